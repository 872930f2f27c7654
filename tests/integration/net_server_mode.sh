#!/usr/bin/env bash
# Server mode: vmm listens on the vhost-user socket (--net ...,server) and testpmd
# connects to it as the client (client=1). testpmd is started first and retries every
# second; vmm waits for it (connect-timeout-ms) before booting the guest. testpmd's
# txonly traffic must reach the guest (rx_packets >= 1000 after 3 s), and vmm must
# exit 0 after the guest's reboot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
net_test_begin net-server "$0" "$@"

start_testpmd txonly "$sock" 1 client=1
rc=0
# shellcheck disable=SC2016 # $(...) runs in the guest
boot_net_guest "$log" 'ip link set eth0 up && sleep 3 && echo RX=$(cat /sys/class/net/eth0/statistics/rx_packets)' \
    --net "vhost-user,socket=$sock,server,connect-timeout-ms=$((TESTPMD_START_TIMEOUT * 1000))" || rc=$?
stop_testpmd
grep -a '^vmm: net0' "$log" || true
grep -aE 'VHOST_CONFIG: .*(vhost-user client|new device)' "$TESTPMD_LOG" | head -n 5 || true
check_net_guest_done "$log" "$rc"
grep -aq "net0: waiting up to .* for a vhost-user backend on $sock" "$log" ||
    fail "vmm did not listen on $sock as the vhost-user server"
check_ge "packets the guest received in 3 s" "$(guest_value "$log" RX)" 1000
check_ge "testpmd TX-packets" "$TESTPMD_TX" 1000
pass "vmm as the vhost-user server: testpmd connected and its traffic reached the guest"
