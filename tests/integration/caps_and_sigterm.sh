#!/usr/bin/env bash
# While the guest runs, vmm holds no capability (effective, permitted, bounding),
# has no_new_privs set, every thread runs under exactly one seccomp filter (its
# role's), and with --user runs as that user; SIGTERM then stops the guest and
# vmm exits 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
guest_test_begin "$0" "$@"

status_field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# start_vmm LOG VMM-OPTIONS...: vmm in the background (BG_PID is vmm itself).
start_vmm() {
    local log=$1
    shift
    start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
        --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"sleep 600\"" --memory 512M "$@" \
        </dev/null >"$log" 2>&1
}

# stop_vmm PID LOG: SIGTERM must end vmm with status 0 and a reason.
stop_vmm() {
    local rc=0
    kill -TERM "$1"
    wait "$1" || rc=$?
    [ "$rc" -eq 0 ] || { tail -n 20 "$2"; fail "vmm exited $rc after SIGTERM, want 0"; }
    grep -aq 'stopped by signal' "$2" || fail "vmm gave no reason for stopping"
    echo "ok: SIGTERM stopped vmm with status 0"
}

check_no_caps() {
    check_eq "CapEff of vmm" "$(status_field "$1" CapEff)" 0000000000000000
    check_eq "CapPrm of vmm" "$(status_field "$1" CapPrm)" 0000000000000000
    check_eq "NoNewPrivs of vmm" "$(status_field "$1" NoNewPrivs)" 1
}

# Seccomp 2 is filter mode; one filter per thread: the main thread loads its own
# only after creating the vCPU threads, so none inherits it. Newer kernels add
# KVM worker tasks (kvm-nx-lpage-recovery) to the process: only vmm's own count.
check_sandboxed() {
    local task tid n=0
    for task in /proc/"$1"/task/*; do
        tid=${task##*/}
        [ "$(cat "$task/comm")" = vmm ] || continue
        check_eq "seccomp mode of vmm thread $tid" "$(status_field "$1/task/$tid" Seccomp)" 2
        check_eq "seccomp filters of vmm thread $tid" \
            "$(status_field "$1/task/$tid" Seccomp_filters)" 1
        n=$((n + 1))
    done
    check_eq "vmm threads (main + 1 vCPU)" "$n" 2
}

[ "$(status_field $$ CapEff)" != 0000000000000000 ] ||
    fail "the test itself has no capabilities, so it cannot show vmm dropping them"

log=$(mktemp)
at_exit "rm -f '$log'"
start_vmm "$log"
pid=$BG_PID
wait_grep "$log" '^VMM-GUEST-UP' "${GUEST_TIMEOUT:-300}" "$pid" || { tail -n 30 "$log"; fail "guest did not reach /init"; }
echo "ok: guest is up, vmm pid $pid"
check_no_caps "$pid"
check_eq "CapBnd of vmm" "$(status_field "$pid" CapBnd)" 0000000000000000
check_sandboxed "$pid"
stop_vmm "$pid" "$log"

# --user: the switch happens before the vCPU threads start, so once they exist
# the ids must have changed; no need to wait for the guest to boot.
start_vmm "$log" --user nobody
pid=$BG_PID
for _ in $(seq 100); do
    [ "$(ls "/proc/$pid/task" 2>/dev/null | wc -l)" -gt 1 ] && break
    sleep 0.1
done
check_eq "uid of vmm --user nobody" "$(status_field "$pid" Uid)" "$(id -u nobody)"
check_no_caps "$pid"
stop_vmm "$pid" "$log"
pass "vmm runs with no capabilities and stops cleanly on SIGTERM"
