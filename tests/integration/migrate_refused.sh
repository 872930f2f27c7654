#!/usr/bin/env bash
# A backend without dirty logging (tests/tools/vu_fake_backend.c: no LOG_SHMFD, no
# VHOST_F_LOG_ALL): `migrate` is refused at once with an error naming what is
# missing, and the VM stays running (status: running; the refusal comes before any
# pause, which unit_migration's a_device_that_cannot_log_refuses_at_once counts). On
# this host directly, as the liveness tests: vmm runs fine on PVM and the refusal needs
# only the NIC's handshake, not a booted guest.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ensure_guest_image
need_kvm
VMM_BIN=${VMM_BIN:-$VMM_REPO_ROOT/build/vmm}
GUEST_DIR=$(guest_image_dir)
VMMCTL=${VMMCTL_BIN:-$(dirname "$VMM_BIN")/vmmctl}
BACKEND=${VMM_FAKE_BACKEND:-$(dirname "$VMM_BIN")/tests/vu-fake-backend}
[ -x "$VMMCTL" ] || fail "vmmctl not found at $VMMCTL"
[ -x "$BACKEND" ] || fail "vu-fake-backend not found at $BACKEND"
dir=$(mktemp -d)
at_exit "rm -rf '$dir'"
log=$dir/vmm.log
start_bg "$BACKEND" "$dir/port.sock" >"$dir/backend.log" 2>&1
until [ -S "$dir/port.sock" ]; do sleep 0.1; done
start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --memory 256M --api-socket "$dir/api" --net "vhost-user,socket=$dir/port.sock" \
    </dev/null >"$log" 2>&1
vmm=$BG_PID
# The control socket comes up before the NIC's handshake; migrate is taken once the VM
# runs (before that it answers "not running yet").
end=$((SECONDS + 60))
until "$VMMCTL" --api-socket "$dir/api" status 2>/dev/null | grep -q 'state: running'; do
    kill -0 "$vmm" 2>/dev/null || { tail -n 20 "$log"; fail "vmm exited"; }
    [ "$SECONDS" -lt "$end" ] || { tail -n 20 "$log"; fail "the VM was not running after 60 s"; }
    sleep 0.1
done
rc=0
"$VMMCTL" --api-socket "$dir/api" migrate "unix:$dir/mig.sock" >"$dir/out" 2>&1 || rc=$?
cat "$dir/out"
[ "$rc" -ne 0 ] || fail "vmmctl migrate exited 0 with a backend that cannot log"
grep -q "LOG_SHMFD" "$dir/out" || fail "the refusal does not name LOG_SHMFD"
"$VMMCTL" --api-socket "$dir/api" status | tee "$dir/status"
grep -q 'state: running' "$dir/status" || fail "the VM is not running after the refused migrate"
"$VMMCTL" --api-socket "$dir/api" shutdown
rc=0
wait "$vmm" || rc=$?
check_eq "vmm exit status after shutdown" "$rc" 0
pass "migrate is refused, naming LOG_SHMFD, with a backend that cannot log; the VM keeps running"
