#!/usr/bin/env bash
# net_packed.sh [PAIRS]: packed virtqueues of 1024 entries end to end against testpmd.
# vmm offers VIRTIO_F_RING_PACKED (--net ...,packed=on,queue-size=1024,queues=PAIRS;
# the guest gets PAIRS vCPUs); testpmd (icmpecho, PAIRS queues) answers ARP and ping.
# The guest prints its eth0 features once, then every second its rx/tx counts, carrier,
# and whether one ping to 10.0.0.2 was answered (traffic both ways). Checks: bit 34 of
# /sys/class/net/eth0/device/features is 1; pings are answered; testpmd is SIGKILLed
# (the carrier goes down; vmm reads where each packed ring stopped from guest memory);
# testpmd restarts and pings are answered again, the rx and tx counts growing; vmm
# exits 0 on SIGTERM.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
need_testpmd
ensure_guest_image
export RIG_TIMEOUT=${RIG_TIMEOUT:-880}
run_in_rig_if_needed "$0" "$@"
need_kvm
. "$(dirname "$0")/guest.sh"

pairs=${1:-1}
recover_s=$((TESTPMD_START_TIMEOUT + 120))
sock=/tmp/vmm-net-packed-$$.sock
log=$(mktemp)
at_exit "rm -f '$log' '$sock'"
n=/sys/class/net/eth0
# shellcheck disable=SC2016 # $(...) runs in the guest
guest='ip link set eth0 up; ip addr add 10.0.0.1/24 dev eth0; echo FEATURES=$(cat '$n'/device/features);
 while :; do if ping -c 1 -W 1 10.0.0.2 >/dev/null 2>&1; then ok=1; else ok=0; fi;
 echo STAT rx=$(cat '$n'/statistics/rx_packets) tx=$(cat '$n'/statistics/tx_packets) carrier=$(cat '$n'/carrier) ping=$ok; sleep 1; done'
guest=${guest//$'\n'/}
net="vhost-user,socket=$sock,packed=on,queue-size=1024,reconnect-ms=500"
[ "$pairs" = 1 ] || net="$net,queues=$pairs"

last_stat() {
    grep -a '^STAT rx=' "$log" | tail -n 1 | tr -d '\r' |
        sed 's/STAT rx=\([0-9]*\) tx=\([0-9]*\) carrier=\([0-9]*\) ping=\([0-9]*\)/\1 \2 \3 \4/'
}
# wait_stat SECS TEST: until TEST holds with $rx $tx $carrier $ping from the last STAT.
wait_stat() {
    local end=$((SECONDS + $1)) rx tx carrier ping
    while :; do
        kill -0 "$vmm" 2>/dev/null || { tail -n 30 "$log"; fail "vmm exited"; }
        read -r rx tx carrier ping <<<"$(last_stat)"
        if [ -n "${rx:-}" ] && eval "$2"; then
            STAT_RX=$rx STAT_TX=$tx
            return 0
        fi
        [ "$SECONDS" -lt "$end" ] || {
            grep -a '^vmm: ' "$log" | tail -n 20
            tail -n 5 "$log"
            [ -z "${TESTPMD_LOG:-}" ] || tail -n 10 "$TESTPMD_LOG"
            fail "waited $1 s for: $2 (rx=$rx tx=$tx carrier=$carrier ping=$ping)"
        }
        sleep 0.5
    done
}

start=$SECONDS
start_testpmd icmpecho "$sock" "$pairs"
start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$guest\"" --memory 256M --cpus "$pairs" \
    --net "$net" </dev/null >"$log" 2>&1
vmm=$BG_PID
wait_stat 300 '[ "$ping" = 1 ]'
features=$(grep -a '^FEATURES=' "$log" | head -n 1 | cut -d= -f2 | tr -d '\r')
echo "guest eth0 features: $features"
check_eq "VIRTIO_F_RING_PACKED (bit 34) negotiated by the guest" "${features:34:1}" 1
grep -a '^vmm: net0: started' "$log" || true
echo "ok: pings answered over packed rings: rx=$STAT_RX tx=$STAT_TX"
rx1=$STAT_RX tx1=$STAT_TX

kill -KILL "$TESTPMD_PID"
wait "$TESTPMD_PID" 2>/dev/null || true
TESTPMD_PID=
wait_stat 60 '[ "$carrier" = 0 ]'
echo "ok: testpmd killed: carrier down"
t=$SECONDS
start_testpmd icmpecho "$sock" "$pairs" >/dev/null
wait_stat "$recover_s" '[ "$carrier" = 1 ] && [ "$ping" = 1 ] && [ "$rx" -gt '"$rx1"' ] && [ "$tx" -gt '"$tx1"' ]'
echo "ok: testpmd restarted: link up and pings answered again after $((SECONDS - t)) s: rx $rx1 -> $STAT_RX, tx $tx1 -> $STAT_TX"
grep -aE '^vmm: (net0|error)' "$log" | tail -n 8
kill -TERM "$vmm"
rc=0
wait "$vmm" || rc=$?
stop_testpmd
echo "testpmd after the restart: rx $TESTPMD_RX, tx $TESTPMD_TX"
check_eq "vmm exit status after SIGTERM" "$rc" 0
check_eq "reconnects vmm reported" "$(grep -ac 'net0: vhost-user backend back on' "$log")" 1
pass "packed rings of 1024 entries, $pairs queue pair(s): bit 34 negotiated, traffic both ways, a backend restart survived ($((SECONDS - start)) s)"
