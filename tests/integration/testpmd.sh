# shellcheck shell=bash
# Helpers for the NIC tests: DPDK's testpmd as the vhost-user backend of the guest's
# virtio-net NIC (sourced after lib.sh; boot_net_guest also needs guest.sh).
# A test goes:
#   net_test_begin NAME "$0" "$@"       # the shared start (below): sets $sock and $log
#   start_testpmd txonly "$sock" 1      # waits for its socket
#   boot_net_guest "$log" 'GUEST CMD' --net vhost-user,socket=/tmp/x.sock
#   stop_testpmd                        # SIGINT; TESTPMD_RX / TESTPMD_TX from its totals
# testpmd polls with one forwarding core, so it needs 2 CPUs (-l 0-1): the rig has 2.

TESTPMD_BIN=${VMM_TESTPMD:-dpdk-testpmd}
# Under TCG in the rig, EAL takes 20-50 s to load its driver plugins over 9p.
TESTPMD_START_TIMEOUT=${VMM_TESTPMD_START_TIMEOUT:-300}
TESTPMD_PID=
TESTPMD_LOG=

# net_test_begin NAME "$0" "$@": the start every NIC test shares: SKIP (77) or, under
# CI, FAIL without testpmd, then guest_test_begin (lib.sh: the guest image, the rig
# where this host needs it, with RIG_TIMEOUT exported before for a longer bound, KVM,
# guest.sh). Then the test's files: sock, the vhost-user socket /tmp/vmm-NAME-PID.sock
# (none there yet), and log, a temporary file for vmm's output; both removed at exit.
net_test_begin() {
    local name=$1
    shift
    need_testpmd
    guest_test_begin "$@"
    sock=/tmp/vmm-$name-$$.sock
    log=$(mktemp)
    rm -f "$sock"
    at_exit "rm -f '$log' '$sock'"
}

need_testpmd() {
    command -v "$TESTPMD_BIN" >/dev/null 2>&1 && return 0
    local why="$TESTPMD_BIN not found (it comes with the dpdk-dev package)"
    if [ -n "${CI:-}" ]; then fail "$why (CI must run this test)"; fi
    echo "SKIP: $why"
    exit 77
}

# start_testpmd MODE SOCKET QUEUES [EXTRA_VDEV_ARGS]: testpmd in the background
# (forwarding MODE: txonly, rxonly, io...; QUEUES queue pairs) on a vhost-user port at
# SOCKET; its PID in TESTPMD_PID, its output in TESTPMD_LOG. It is the vhost-user
# server: waits (bounded) until SOCKET exists. With client=1 in EXTRA_VDEV_ARGS it is
# the client, retrying every second until vmm listens on SOCKET: returns at once.
start_testpmd() {
    local mode=$1 sock=$2 queues=$3 extra=${4:-} prefix start=$SECONDS qargs=()
    local client=0
    case ",$extra," in *,client=1,*) client=1 ;; esac
    [ -z "$TESTPMD_PID" ] || fail "start_testpmd: testpmd is already running"
    # Unique per run: EAL keeps its runtime files in /var/run/dpdk/PREFIX.
    prefix=vmm-$(basename "$0" .sh)-$$
    TESTPMD_LOG=$(mktemp)
    at_exit "rm -f '$TESTPMD_LOG' '$sock'; rm -rf '/var/run/dpdk/$prefix'"
    [ "$client" = 1 ] || rm -f "$sock"
    if [ "$queues" -gt 1 ]; then qargs=(--rxq="$queues" --txq="$queues"); fi
    start_bg "$(dirname "${BASH_SOURCE[0]}")/testpmd-lean" "$TESTPMD_BIN" --no-huge -m 256 --no-pci -l 0-1 --file-prefix="$prefix" \
        --vdev "net_vhost0,iface=$sock,queues=$queues${extra:+,$extra}" -- \
        --total-num-mbufs=8192 --forward-mode="$mode" --auto-start --stats-period 5 \
        --nb-cores=1 "${qargs[@]}" </dev/null >"$TESTPMD_LOG" 2>&1
    TESTPMD_PID=$BG_PID
    if [ "$client" = 1 ]; then
        echo "ok: testpmd ($mode, $queues queue pair(s), vhost-user client) started, pid $TESTPMD_PID"
        return 0
    fi
    until [ -S "$sock" ]; do
        if ! kill -0 "$TESTPMD_PID" 2>/dev/null || [ "$(_testpmd_state)" = Z ]; then
            tail -n 30 "$TESTPMD_LOG"
            fail "testpmd exited before creating its socket $sock"
        fi
        if [ $((SECONDS - start)) -ge "$TESTPMD_START_TIMEOUT" ]; then
            tail -n 30 "$TESTPMD_LOG"
            fail "testpmd created no socket $sock within $TESTPMD_START_TIMEOUT s"
        fi
        sleep 0.2
    done
    echo "ok: testpmd ($mode, $queues queue pair(s)) listening on $sock after $((SECONDS - start)) s"
}

# The state letter of testpmd in /proc (Z once it has exited but is not reaped yet).
_testpmd_state() { awk '{print $3}' "/proc/$TESTPMD_PID/stat" 2>/dev/null; }

# stop_testpmd: SIGINT, waits (bounded) for testpmd to exit, and sets TESTPMD_RX and
# TESTPMD_TX from its "Accumulated forward statistics" (all ports, the whole run).
stop_testpmd() {
    local end=$((SECONDS + 60)) totals
    [ -n "$TESTPMD_PID" ] || fail "stop_testpmd: testpmd is not running"
    kill -INT "$TESTPMD_PID" 2>/dev/null || true
    # A child that has exited stays a zombie (kill -0 succeeds) until wait reaps it.
    while kill -0 "$TESTPMD_PID" 2>/dev/null && [ "$(_testpmd_state)" != Z ]; do
        if [ "$SECONDS" -ge "$end" ]; then
            tail -n 30 "$TESTPMD_LOG"
            fail "testpmd did not exit within 60 s of SIGINT"
        fi
        sleep 0.2
    done
    wait "$TESTPMD_PID" 2>/dev/null || true
    TESTPMD_PID=
    totals=$(sed -n '/Accumulated forward statistics/,/+++++++++*$/p' "$TESTPMD_LOG")
    TESTPMD_RX=$(echo "$totals" | awk '$1 == "RX-packets:" {print $2; exit}')
    TESTPMD_TX=$(echo "$totals" | awk '$1 == "TX-packets:" {print $2; exit}')
    if [ -z "$TESTPMD_RX" ] || [ -z "$TESTPMD_TX" ]; then
        tail -n 30 "$TESTPMD_LOG"
        fail "testpmd printed no accumulated forward statistics"
    fi
    echo "testpmd totals: RX-packets $TESTPMD_RX, TX-packets $TESTPMD_TX"
}

# check_ge NAME GOT MIN: prints the figure seen; fails unless it is a number >= MIN.
check_ge() {
    [[ $2 =~ ^[0-9]+$ ]] || fail "$1: got '$2', want a number >= $3"
    [ "$2" -ge "$3" ] || fail "$1: got $2, want >= $3"
    echo "ok: $1 = $2 (>= $3)"
}

# boot_net_guest LOG 'GUEST COMMAND' VMM-OPTIONS...: boot_guest with 512M and one vCPU
# unless VMM-OPTIONS say otherwise (later options win), for the NIC tests; the guest
# runs the command and reboots. Returns vmm's exit status (124 on timeout).
boot_net_guest() {
    local log=$1 run=$2 rc=0 start=$SECONDS
    shift 2
    boot_guest "$log" "$run" --memory 512M --cpus 1 "$@" || rc=$?
    echo "vmm ran for $((SECONDS - start)) s, exit status $rc"
    return "$rc"
}

# check_net_guest_done LOG RC: vmm exited 0 after the guest's reboot -f, the guest's
# command ran to the end with status 0.
check_net_guest_done() {
    [ "$2" -eq 0 ] || { tail -n 40 "$1"; fail "vmm exited $2, want 0 after the guest's reboot -f"; }
    check_booted "$1"
    grep -aq 'guest reset (reboot)' "$1" || { tail -n 40 "$1"; fail "vmm did not report the guest's reset"; }
    echo "ok: vmm exited 0 after the guest's reboot -f"
}
