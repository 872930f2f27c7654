#!/usr/bin/env bash
# vmm as a CI instrument. debug-exit: with --debug-exit the guest writes 42 to port
# 0xf4 (a byte through /dev/port) and vmm exits at once with (42 << 1) | 1 = 85.
# timeout: with --timeout T a guest that only sleeps is stopped after T s; vmm exits
# 124 and prints the guest's last console lines on stderr. T is 20 s more than the
# first boot took (at least 20 s): a slow rig must not stop the guest before it speaks.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
guest_test_begin "$0" "$@"

tmp=$(mktemp -d)
at_exit "rm -rf '$tmp'"

# run_vmm NAME 'GUEST COMMAND' VMM-OPTIONS...: the guest's console (vmm's stdout)
# goes to $tmp/NAME.out and vmm's stderr to $tmp/NAME.err; sets rc and ms (wall
# time). A vmm that never ends is killed after 300 s.
run_vmm() {
    local name=$1 run=$2 start=${EPOCHREALTIME/./}
    shift 2
    rc=0
    start_bg timeout -k 5 300 "$VMM_BIN" \
        --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
        --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$run\"" "$@" \
        </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err"
    wait "$BG_PID" || rc=$?
    ms=$(((${EPOCHREALTIME/./} - start) / 1000))
    echo "$name: vmm exited $rc after $ms ms"
}

show() { echo "--- stdout"; tail -n 20 "$tmp/$1.out"; echo "--- stderr"; cat "$tmp/$1.err"; }

# debug-exit: \052 is 42; dd writes the byte with outb to port seek=244 (0xf4).
run_vmm exit "echo VMM-WRITING-PORT; printf '\\052' | dd of=/dev/port bs=1 seek=244 count=1" \
    --debug-exit
grep -aq '^VMM-WRITING-PORT' "$tmp/exit.out" || { show exit; fail "the guest never ran its command"; }
[ "$rc" -eq 85 ] || { show exit; fail "vmm exited $rc after the guest wrote 42, want 85"; }
echo "ok: exit status $rc = (42 << 1) | 1"
grep -q 'the guest wrote 0x2a to the debug-exit port: exit status 85' "$tmp/exit.err" ||
    { show exit; fail "vmm did not report the debug-exit write"; }
! grep -q 'error:' "$tmp/exit.err" || { show exit; fail "a status the guest chose is reported as an error"; }
# The write stops the guest: its command never gets to report its own end.
! grep -aq 'VMM-RUN-EXIT' "$tmp/exit.out" || { show exit; fail "the guest ran on after the write"; }
echo "ok: the guest stopped at the port write"

# timeout: the guest announces itself, then sleeps until vmm stops it.
limit=$((ms / 1000 + 20))
run_vmm timeout "echo VMM-SLEEPING; sleep 1000" --timeout "$limit"
[ "$rc" -eq 124 ] || { show timeout; fail "vmm exited $rc on --timeout $limit, want 124"; }
grep -aq '^VMM-SLEEPING' "$tmp/timeout.out" ||
    { show timeout; fail "the guest did not reach its command within $limit s"; }
if [ "$ms" -lt $((limit * 1000)) ] || [ "$ms" -ge $(((limit + 20) * 1000)) ]; then
    show timeout
    fail "vmm stopped after $ms ms, want $limit s and a little"
fi
echo "ok: exit status 124 after $ms ms with --timeout $limit"
header="vmm: error: timeout after $limit s; the guest's last lines:"
grep -qxF "$header" "$tmp/timeout.err" || { show timeout; fail "no timeout header on stderr"; }
# The guest's last line is the last one shown, after the header.
last=$(sed -n "/timeout after $limit s; the guest's last lines:/,\$p" "$tmp/timeout.err" | tail -n 1)
check_eq "last line shown" "$last" "vmm: | VMM-SLEEPING"
echo "ok: $(grep -c '^vmm: | ' "$tmp/timeout.err") guest lines shown on stderr:"
grep '^vmm: | ' "$tmp/timeout.err" | sed 's/^/    /'
grep -q '^vmm: | VMM-GUEST-UP uptime=' "$tmp/timeout.err" && echo "ok: they include VMM-GUEST-UP"
pass "debug-exit status 85 from the guest's write of 42; --timeout $limit exits 124 with the guest's last lines"
