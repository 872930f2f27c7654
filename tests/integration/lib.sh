# shellcheck shell=bash
# Helpers for the integration tests (bash). A test that boots the guest starts like this:
#   . "$(dirname "$0")/lib.sh"
#   RIG_MEMORY=3G                      # optional: L1 memory when run in the rig
#   RIG_APPEND=kvm_amd.npt=1           # optional: extra L1 kernel parameters
#   guest_test_begin "$0" "$@"         # the four steps below, then guest.sh's helpers
# which is:
#   ensure_guest_image                 # builds build/guest on the host side if missing
#   run_in_rig_if_needed "$0" "$@"     # re-runs this script inside L1 where needed
#   need_kvm                           # SKIP (77) or, under CI, FAIL without /dev/kvm
#   . "$(dirname "$0")/guest.sh"
# A NIC test starts with net_test_begin (testpmd.sh) instead.
# Exit codes: 0 pass, 1 fail, 77 skip (CTest SKIP_RETURN_CODE), 125 rig failure.

VMM_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS: $*"; }
# check_eq NAME GOT WANT: prints the figure seen; fails the test on a mismatch.
check_eq() {
    if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', want '$3'"; fi
}

# rig_mode (direct or nested) comes from the rig's own helpers.
. "$VMM_REPO_ROOT/tests/rig/l1.sh"

need_kvm() {
    local why=
    if [ ! -e /dev/kvm ]; then why="/dev/kvm missing"
    elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then why="/dev/kvm not read-writable"
    else return 0
    fi
    if [ -n "${CI:-}" ]; then fail "$why (CI must run this test)"; fi
    echo "SKIP: $why"
    exit 77
}

guest_image_dir() { echo "${VMM_GUEST_DIR:-$VMM_REPO_ROOT/build/guest}"; }

# Build on the host side: inside the rig the filesystem is read-only.
ensure_guest_image() {
    local d
    d=$(guest_image_dir)
    if [ -f "$d/bzImage" ] && [ -f "$d/initramfs.cpio.gz" ] && [ -f "$d/rig-initramfs.cpio.gz" ]; then
        return 0
    fi
    [ -z "${VMM_IN_RIG:-}" ] || fail "guest images missing in $d (build them before entering the rig)"
    "$VMM_REPO_ROOT/guest-images/build.sh" "$d" || fail "cannot build the guest images"
}

# run_in_rig_if_needed "$0" "$@": in nested mode re-runs the test inside L1 (memory
# ${RIG_MEMORY:-3G}, timeout ${RIG_TIMEOUT:-600} s, extra L1 kernel parameters
# $RIG_APPEND, e.g. kvm_amd.npt=1: L1 has npt=0 by default) and exits with its status.
run_in_rig_if_needed() {
    local script=$1 mode
    shift
    mode=$(rig_mode) || exit 1
    [ "$mode" = nested ] || return 0
    ensure_guest_image
    script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
    echo "rig: running $(basename "$script") inside the nested rig"
    exec "$VMM_REPO_ROOT/tests/rig/rig-run" --memory "${RIG_MEMORY:-3G}" \
        --timeout "${RIG_TIMEOUT:-600}" ${RIG_APPEND:+--append "$RIG_APPEND"} -- bash "$script" "$@"
}

# guest_test_begin "$0" "$@": the start every test booting the guest shares (above).
guest_test_begin() {
    ensure_guest_image
    run_in_rig_if_needed "$@"
    need_kvm
    . "$VMM_REPO_ROOT/tests/integration/guest.sh"
}

# start_bg CMD...: runs CMD in the background; its PID is in BG_PID. Each runs in its
# own process group (setsid; no fork, so the PID is CMD's), and every such group is
# killed when the test exits, on any path (TERM, then KILL after a short grace).
_bg_pids=()
_at_exit=()
start_bg() {
    setsid "$@" &
    BG_PID=$!
    _bg_pids+=("$BG_PID")
}
# at_exit CMD: runs CMD (a string, eval'd) at exit, after the background PIDs are gone.
at_exit() { _at_exit+=("$1"); }

# wait_grep FILE ERE SECS [PID]: waits until FILE has a line matching ERE (0), or
# SECS pass or process PID exits first (1).
wait_grep() {
    local end=$((SECONDS + $3)) pid=${4:-}
    until grep -Eq -- "$2" "$1" 2>/dev/null; do
        [ "$SECONDS" -lt "$end" ] || return 1
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            grep -Eq -- "$2" "$1" 2>/dev/null && return 0
            echo "wait_grep: process $pid exited before '$2' appeared"
            return 1
        fi
        sleep 0.2
    done
}

# shellcheck disable=SC2317 # called from the trap
_lib_cleanup() {
    local rc=$? pid c
    for pid in "${_bg_pids[@]}"; do kill -TERM -- "-$pid" "$pid" 2>/dev/null || true; done
    for pid in "${_bg_pids[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for c in "${_at_exit[@]}"; do eval "$c" || true; done
    exit "$rc"
}
trap _lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
