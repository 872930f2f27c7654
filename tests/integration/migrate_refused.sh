#!/usr/bin/env bash
# A backend without dirty logging (tests/tools/vu_fake_backend.c: no LOG_SHMFD, no
# VHOST_F_LOG_ALL): `migrate` is refused at once with an error naming what is
# missing, and the guest keeps running (its heartbeat goes on; status: running).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export RIG_TIMEOUT=${RIG_TIMEOUT:-600}
guest_test_begin "$0" "$@"

VMMCTL=${VMMCTL_BIN:-$(dirname "$VMM_BIN")/vmmctl}
BACKEND=${VMM_FAKE_BACKEND:-$(dirname "$VMM_BIN")/tests/vu-fake-backend}
[ -x "$VMMCTL" ] || fail "vmmctl not found at $VMMCTL"
[ -x "$BACKEND" ] || fail "vu-fake-backend not found at $BACKEND"
dir=$(mktemp -d)
at_exit "rm -rf '$dir'"
log=$dir/vmm.log
start_bg "$BACKEND" "$dir/port.sock" >"$dir/backend.log" 2>&1
until [ -S "$dir/port.sock" ]; do sleep 0.1; done
# shellcheck disable=SC2016 # $(...) runs in the guest
guest='i=0; while :; do echo TICK=$i; i=$((i+1)); sleep 1; done'
start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$guest\"" --memory 256M --api-socket "$dir/api" \
    --net "vhost-user,socket=$dir/port.sock" </dev/null >"$log" 2>&1
vmm=$BG_PID
end=$((SECONDS + 300))
until grep -aq '^TICK=2' "$log"; do
    kill -0 "$vmm" 2>/dev/null || { tail -n 20 "$log"; fail "vmm exited"; }
    [ "$SECONDS" -lt "$end" ] || { tail -n 20 "$log"; fail "the guest did not start ticking"; }
    sleep 0.5
done
rc=0
"$VMMCTL" --api-socket "$dir/api" migrate "unix:$dir/mig.sock" >"$dir/out" 2>&1 || rc=$?
cat "$dir/out"
[ "$rc" -ne 0 ] || fail "vmmctl migrate exited 0 with a backend that cannot log"
grep -q "LOG_SHMFD" "$dir/out" || fail "the refusal does not name LOG_SHMFD"
"$VMMCTL" --api-socket "$dir/api" status | tee "$dir/status"
grep -q running "$dir/status" || fail "the VM is not running after the refused migrate"
t=$(grep -a '^TICK=' "$log" | tail -n 1 | cut -d= -f2 | tr -d '\r')
until [ "$(grep -a '^TICK=' "$log" | tail -n 1 | cut -d= -f2 | tr -d '\r')" -ge $((t + 3)) ]; do
    [ "$SECONDS" -lt "$end" ] || fail "the guest stopped ticking after the refused migrate"
    sleep 0.5
done
echo "ok: the guest kept running (tick $t -> $((t + 3)))"
"$VMMCTL" --api-socket "$dir/api" shutdown
rc=0
wait "$vmm" || rc=$?
check_eq "vmm exit status after shutdown" "$rc" 0
pass "migrate is refused, naming LOG_SHMFD, with a backend that cannot log; the VM keeps running"
