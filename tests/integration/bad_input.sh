#!/usr/bin/env bash
# Each bad input makes vmm print one error line naming the problem and exit 1:
# no crash, no hang, no guest started. Runs on this host directly: every case
# fails before a guest would run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ensure_guest_image
need_kvm
VMM_BIN=${VMM_BIN:-$VMM_REPO_ROOT/build/vmm}
GUEST_DIR=$(guest_image_dir)
kernel=$GUEST_DIR/bzImage
initrd=$GUEST_DIR/initramfs.cpio.gz
tmp=$(mktemp -d)
chmod 755 "$tmp"
at_exit "rm -rf '$tmp'"

# expect_error NAME ERE VMM-ARGS...: exit status 1, exactly one "error:" line on
# stderr and it matches ERE, nothing on stdout, done within 30 s.
expect_error() {
    local name=$1 want=$2 rc=0 errors
    shift 2
    timeout -k 5 30 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
    [ "$rc" -eq 1 ] || { cat "$tmp/err"; fail "$name: exit status $rc, want 1"; }
    errors=$(grep -c 'error:' "$tmp/err" || true)
    [ "$errors" -eq 1 ] || { cat "$tmp/err"; fail "$name: $errors error lines, want 1"; }
    grep -Eq -- "$want" "$tmp/err" || { cat "$tmp/err"; fail "$name: message does not match /$want/"; }
    [ ! -s "$tmp/out" ] || fail "$name: unexpected output on stdout"
    echo "ok: $name -> $(grep 'error:' "$tmp/err")"
}

vmm() { echo "$VMM_BIN" --kernel "$kernel"; }

# Files: missing, unreadable, not a bzImage, too old a protocol, initrd too big.
head -c 100000 /dev/urandom >"$tmp/garbage"
cp "$kernel" "$tmp/old-bzimage"
printf '\x00\x02' | dd of="$tmp/old-bzimage" bs=1 seek=$((0x206)) conv=notrunc status=none
truncate -s 200M "$tmp/huge-initrd"
cp "$kernel" "$tmp/unreadable"
chmod 000 "$tmp/unreadable"

expect_error "missing kernel" "cannot read kernel '/nonexistent/bzImage'.*No such file" \
    "$VMM_BIN" --kernel /nonexistent/bzImage
expect_error "kernel is a directory" "cannot read kernel.*directory" "$VMM_BIN" --kernel "$tmp"
expect_error "unreadable kernel" "cannot read kernel.*Permission denied" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$VMM_BIN" --kernel "$tmp/unreadable"
expect_error "not a bzImage" "not a bzImage" "$VMM_BIN" --kernel "$tmp/garbage"
expect_error "old boot protocol" "boot protocol too old" "$VMM_BIN" --kernel "$tmp/old-bzimage"
expect_error "missing initrd" "cannot read initrd '/nonexistent/initrd'" \
    $(vmm) --initrd /nonexistent/initrd
expect_error "initrd does not fit" "initrd of 200 MiB does not fit" \
    $(vmm) --initrd "$tmp/huge-initrd" --memory 128M

# Sizes and counts.
expect_error "memory 12Q" "--memory '12Q': not a size" $(vmm) --memory 12Q
expect_error "memory 0" "--memory '0': at least" $(vmm) --memory 0
expect_error "memory beyond the host" "more than this host has" $(vmm) --memory 64T
expect_error "cpus 0" "--cpus '0': must be a number from 1" $(vmm) --cpus 0
expect_error "cpus 255" "--cpus '255': must be a number from 1 to 254" $(vmm) --cpus 255
expect_error "timeout 0" "--timeout '0': must be a whole number of seconds from 1" \
    $(vmm) --timeout 0
expect_error "timeout 1.5" "--timeout '1.5': must be a whole number" $(vmm) --timeout 1.5
expect_error "debug-exit port too high" "--debug-exit '0xfffd': must be a port from 0 to 0xfffc" \
    $(vmm) --debug-exit=0xfffd
expect_error "debug-exit on the UART" "--debug-exit: cannot claim ports 0x3f8-0x3fb: another device" \
    $(vmm) --debug-exit=0x3f8
expect_error "unknown option" "unknown option '--frobnicate'" $(vmm) --frobnicate
expect_error "missing value" "option '--memory' needs a value" $(vmm) --memory
expect_error "no kernel" "--kernel is required" "$VMM_BIN"

# The KVM device: missing, and not permitted for an unprivileged user.
expect_error "kvm device missing" "cannot open /nonexistent/kvm: No such file" \
    $(vmm) --kvm-device /nonexistent/kvm
expect_error "kvm not permitted" "cannot open /dev/kvm: Permission denied" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups $(vmm)
expect_error "bad --net setting" "--net: bad or unknown setting 'queues=0'" \
    $(vmm) --net vhost-user,socket=/tmp/x.sock,queues=0
expect_error "--net without a socket" "socket=PATH is required" $(vmm) --net vhost-user
expect_error "no backend on the socket" "no back-end listening on $tmp/none.sock after 300 ms" \
    $(vmm) --net "vhost-user,socket=$tmp/none.sock,connect-timeout-ms=300"
expect_error "a regular file as the server socket" "$tmp/garbage.*not a socket" \
    $(vmm) --net "vhost-user,socket=$tmp/garbage,server,connect-timeout-ms=300"
expect_error "--vhost-trace in a missing directory" \
    "cannot open the --vhost-trace file '/nonexistent/trace.log': No such file" \
    $(vmm) --vhost-trace /nonexistent/trace.log
expect_error "--vhost-trace with an empty name" "--vhost-trace: needs a file name" \
    $(vmm) --vhost-trace ""
expect_error "not a kvm device" "/dev/null is not a KVM device" $(vmm) --kvm-device /dev/null
expect_error "user id -1" "--user '-1': no such user" $(vmm) --user -1
expect_error "unknown user" "--user 'no-such-user-here': no such user" \
    $(vmm) --user no-such-user-here
if [ "$(awk '/^HugePages_Free:/{print $2}' /proc/meminfo)" = 0 ]; then
    expect_error "hugepages with none reserved" "--hugepages: .* free \\(reserve them" \
        $(vmm) --hugepages
else
    echo "note: huge pages are reserved on this host; the --hugepages error case is not exercised"
fi
pass "every bad input gave one clear error line and exit 1"
