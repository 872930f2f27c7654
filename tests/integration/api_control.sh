#!/usr/bin/env bash
# The control socket on a running 2-vCPU guest that prints TICK=n every second:
# vmmctl status says running; pause stops the guest (no TICK line for 3 s) and
# status says paused; resume brings the ticks back; a bad JSON line, an unknown
# command and a bad argument (sent as they are with vmmctl raw) each get a one-line
# error reply while the VM runs on; vmmctl shutdown of the paused VM ends vmm with
# status 0 and removes the socket.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
guest_test_begin "$0" "$@"

VMMCTL_BIN=${VMMCTL_BIN:-$(dirname "$VMM_BIN")/vmmctl}
[ -x "$VMMCTL_BIN" ] || fail "vmmctl binary not found at $VMMCTL_BIN"

tmp=$(mktemp -d)
at_exit "rm -rf '$tmp'"
api=$tmp/vm.api
log=$tmp/vmm.log

ctl() { "$VMMCTL_BIN" --api-socket "$api" "$@"; }
ticks() { grep -ac '^TICK=' "$log" || true; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
show() { echo "--- vmm's output (last lines)"; tail -n 30 "$log"; }

# expect_raw LINE CLASS: LINE, sent as it is, gets an error reply of CLASS.
expect_raw() {
    local reply rc=0
    reply=$(ctl raw "$1") || rc=$?
    [ "$rc" -eq 1 ] || fail "vmmctl raw '$1' exited $rc, want 1 (an error reply)"
    case "$reply" in
    *'"error":{"class":"'"$2"'"'*) echo "ok: '$1' -> $reply" ;;
    *) fail "'$1' got '$reply', want an error of class $2" ;;
    esac
}

start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"i=0; while :; do echo TICK=\$i; i=\$((i+1)); sleep 1; done\"" \
    --cpus 2 --memory 512M --api-socket "$api" </dev/null >"$log" 2>&1
pid=$BG_PID
wait_grep "$log" '^TICK=2' "${GUEST_TIMEOUT:-300}" "$pid" || { show; fail "the guest never ticked"; }
echo "ok: the guest ticks ($(ticks) lines so far)"

status=$(ctl status) || { show; fail "vmmctl status failed"; }
echo "$status" | sed 's/^/  status: /'
grep -qx 'state: running' <<<"$status" || fail "status does not say running"
grep -qx 'vcpus: 2' <<<"$status" || fail "status does not say 2 vCPUs"
ctl --json status | grep -q '"state":"running"' || fail "status --json does not say running"

start=$(now_ms)
ctl pause >/dev/null || { show; fail "vmmctl pause failed"; }
echo "ok: vmmctl pause took $(($(now_ms) - start)) ms; $(grep -a -m1 'paused:' "$log" | sed 's/^vmm: //')"
before=$(ticks)
sleep 3
after=$(ticks)
check_eq "TICK lines during 3 s of pause (before -> after)" "$before -> $after" "$before -> $before"
ctl status | grep -qx 'state: paused' || fail "status does not say paused"
ctl pause >/dev/null || fail "a second pause failed"
echo "ok: pausing a paused VM is fine"
kill -0 "$pid" 2>/dev/null || fail "vmm is gone while paused"

ctl resume >/dev/null || { show; fail "vmmctl resume failed"; }
wait_grep "$log" "^TICK=$((after + 1))" 30 "$pid" || { show; fail "no TICK after resume"; }
echo "ok: ticks continue after resume (TICK=$((after + 1)) seen)"
ctl status | grep -qx 'state: running' || fail "status does not say running after resume"

ctl raw '{"execute": "status", "id": "raw"}' | grep -q '"return":{"state":"running"' ||
    fail "vmmctl raw of a status request got no return"
expect_raw 'this is {not json' BadJSON
expect_raw '{"execute": "no-such-command", "id": 1}' CommandNotFound
expect_raw '{"execute": "migrate", "arguments": {"uri": "file:/tmp/x"}}' InvalidParameter
expect_raw '{"execute": "pause", "arguments": {"now": true}}' InvalidParameter
rc=0
err=$(ctl migrate ftp:/x 2>&1) || rc=$?
check_eq "vmmctl migrate with a bad URI: exit status" "$rc" 1
echo "ok: vmmctl says: $err"
grep -q "must be unix:PATH or tcp:HOST:PORT" <<<"$err" || fail "vmmctl's error does not name the URI's form"
now=$(ticks)
wait_grep "$log" "^TICK=$((now + 1))" 30 "$pid" || { show; fail "the guest stopped ticking after bad requests"; }
echo "ok: the VM runs on after bad requests (TICK=$((now + 1)) seen)"

ctl pause >/dev/null || fail "pause before shutdown failed"
out=$(ctl shutdown) || { show; fail "vmmctl shutdown failed"; }
check_eq "vmmctl shutdown says" "$out" "vmm has shut down"
rc=0
wait "$pid" || rc=$?
check_eq "vmm's exit status after shutdown of the paused VM" "$rc" 0
grep -q 'shutdown requested on the control socket' "$log" || { show; fail "vmm gave no reason"; }
[ ! -e "$api" ] || fail "the socket file $api is still there after exit"
echo "ok: the socket file is removed on exit"
pass "control socket: status, pause/resume (ticks stop and go on), bad requests answered, shutdown"
