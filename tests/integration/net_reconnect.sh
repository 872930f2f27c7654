#!/usr/bin/env bash
# net_reconnect.sh MODE [CYCLES]: the backend dies and comes back under traffic.
# MODE client: vmm connects, testpmd is the vhost-user server; MODE server: vmm
# listens (--net ...,server), testpmd connects with client=1. testpmd (txonly)
# floods the guest, whose command prints its eth0 rx count and carrier every
# second. Then CYCLES times (default 10, VMM_RECONNECT_CYCLES overrides): SIGKILL
# testpmd; the guest must see its carrier go down; start testpmd again; the guest
# must see carrier up and its rx count grow again within a bound. vmm never exits,
# and its open fds and RSS after the last cycle equal those after the first.
# MODE reboot: client mode with --on-reboot restart; the guest reboots itself once
# its carrier has been down for 3 s. testpmd is killed, the guest reboots while the
# backend is away (and keeps rebooting while it stays away), testpmd comes back:
# the rebooted guest's NIC gets its rings, carrier and traffic.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
export RIG_TIMEOUT=${RIG_TIMEOUT:-880} # ten restarts of testpmd under TCG take long
net_test_begin net-reconnect "$0" "$@"

mode=${1:?usage: net_reconnect.sh client|server|reboot [CYCLES]}
cycles=${VMM_RECONNECT_CYCLES:-${2:-10}}
recover_s=${VMM_RECONNECT_BOUND_S:-$((TESTPMD_START_TIMEOUT + 120))} # testpmd start + handshake + traffic
n=/sys/class/net/eth0
# shellcheck disable=SC2016 # $(...) runs in the guest
guest='ip link set eth0 up; while :; do echo STAT rx=$(cat '$n'/statistics/rx_packets) carrier=$(cat '$n'/carrier); sleep 1; done'
testpmd_extra=
net="vhost-user,socket=$sock,reconnect-ms=500"
extra=()
if [ "$mode" = reboot ]; then
    # shellcheck disable=SC2016 # $(...) runs in the guest
    guest='ip link set eth0 up; down=0; while :; do c=$(cat '$n'/carrier); echo STAT rx=$(cat '$n'/statistics/rx_packets) carrier=$c; if [ $c = 0 ]; then down=$((down+1)); else down=0; fi; if [ $down -ge 3 ]; then echo REBOOTING; reboot -f; fi; sleep 1; done'
    extra=(--on-reboot restart)
fi
if [ "$mode" = server ]; then
    testpmd_extra=client=1
    net="vhost-user,socket=$sock,server,connect-timeout-ms=$((TESTPMD_START_TIMEOUT * 1000))"
fi

# The guest's last STAT line: "RX CARRIER".
last_stat() { grep -a '^STAT rx=' "$log" | tail -n 1 | tr -d '\r' | sed 's/STAT rx=\([0-9]*\) carrier=\([0-9]*\)/\1 \2/'; }
# wait_stat SECS TEST: waits until TEST (evaluated with $rx and $carrier set) holds.
wait_stat() {
    local end=$((SECONDS + $1)) rx carrier
    while :; do
        kill -0 "$vmm" 2>/dev/null || { tail -n 30 "$log"; show_testpmd; fail "vmm exited"; }
        read -r rx carrier <<<"$(last_stat)"
        if [ -n "${rx:-}" ] && eval "$2"; then
            STAT_RX=$rx
            return 0
        fi
        [ "$SECONDS" -lt "$end" ] || { tail -n 30 "$log"; show_testpmd; fail "waited $1 s for: $2 (rx=$rx carrier=$carrier)"; }
        sleep 0.5
    done
}
show_testpmd() {
    echo "--- vmm:"
    grep -a '^vmm: ' "$log" | grep -av 'debug' | tail -n 20
    [ -z "${TESTPMD_LOG:-}" ] || { echo "--- testpmd:"; tail -n 20 "$TESTPMD_LOG"; }
}
vmm_fds() { ls "/proc/$vmm/fd" | wc -l; }
vmm_rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$vmm/status"; }

start_testpmd txonly "$sock" 1 "$testpmd_extra"
start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$guest\"" --memory 256M --cpus 1 \
    --net "$net" "${extra[@]}" </dev/null >"$log" 2>&1
vmm=$BG_PID
wait_stat 300 '[ "$carrier" = 1 ] && [ "$rx" -ge 1000 ]'
echo "ok: traffic before the first kill: rx=$STAT_RX"
if [ "$mode" = reboot ]; then
    kill -KILL "$TESTPMD_PID"
    wait "$TESTPMD_PID" 2>/dev/null || true
    TESTPMD_PID=
    end=$((SECONDS + 300))
    until grep -aq 'guest reset (reboot 1)' "$log" && [ "$(grep -ac '^VMM-GUEST-UP' "$log")" -ge 2 ]; do
        kill -0 "$vmm" 2>/dev/null || { tail -n 30 "$log"; fail "vmm exited"; }
        [ "$SECONDS" -lt "$end" ] || { tail -n 30 "$log"; fail "the guest did not reboot while the backend was away"; }
        sleep 0.5
    done
    echo "ok: the guest rebooted while the backend was away"
    start_testpmd txonly "$sock" 1 >/dev/null
    start=$SECONDS
    # After the reboot its counters start again: traffic means >= 1000 on this boot.
    wait_stat "$recover_s" '[ "$carrier" = 1 ] && [ "$rx" -ge 1000 ]'
    echo "ok: backend back after $((SECONDS - start)) s: the rebooted guest's carrier is up, rx $STAT_RX"
    boots=$(grep -ac '^VMM-GUEST-UP' "$log")
    kill -TERM "$vmm"
    rc=0
    wait "$vmm" || rc=$?
    stop_testpmd
    grep -aE '^vmm: (net0|guest reset)' "$log" | tail -n 8
    check_eq "vmm exit status after SIGTERM" "$rc" 0
    pass "the guest rebooted $((boots - 1)) time(s) while the backend was away and got its NIC when it returned"
    exit 0
fi
for i in $(seq 1 "$cycles"); do
    kill -KILL "$TESTPMD_PID"
    wait "$TESTPMD_PID" 2>/dev/null || true
    TESTPMD_PID=
    wait_stat 60 '[ "$carrier" = 0 ]'
    before=$STAT_RX
    start=$SECONDS
    start_testpmd txonly "$sock" 1 "$testpmd_extra" >/dev/null
    wait_stat "$recover_s" '[ "$carrier" = 1 ] && [ "$rx" -ge $((before + 1000)) ]'
    echo "ok: cycle $i: carrier went down, testpmd restarted; link up and rx $before -> $STAT_RX in $((SECONDS - start)) s"
    if [ "$i" = 1 ]; then fds1=$(vmm_fds) rss1=$(vmm_rss_kb); fi
done
fds=$(vmm_fds) rss=$(vmm_rss_kb)
echo "vmm after cycle 1: $fds1 fds, RSS $rss1 kB; after cycle $cycles: $fds fds, RSS $rss kB"
kill -TERM "$vmm"
rc=0
wait "$vmm" || rc=$?
stop_testpmd
grep -aE '^vmm: net0' "$log" | tail -n 6
check_eq "vmm exit status after SIGTERM" "$rc" 0
check_eq "vmm's open fds after the last cycle (vs after the first)" "$fds" "$fds1"
# RSS may move by a few pages (malloc arenas, stack): a leak per cycle would show more.
[ "$rss" -le $((rss1 + 256)) ] || fail "vmm RSS grew from $rss1 kB to $rss kB over $cycles cycles"
echo "ok: vmm RSS $rss1 kB -> $rss kB"
check_eq "reconnects vmm reported" "$(grep -ac 'net0: vhost-user backend back on' "$log")" "$cycles"
pass "$mode mode: testpmd was killed and restarted $cycles times; the link and the traffic came back each time"
