#!/usr/bin/env bash
# Transmit path, in server mode, across a guest reboot (--on-reboot restart):
#  - vmm listens on the vhost-user socket (--net ...,server) and testpmd (rxonly,
#    client=1) connects to it;
#  - each boot, the guest sends 20000 packets out of its virtio-net NIC with the
#    kernel's pktgen (/bin/vmm-pktgen), reports PKTGEN-SENT=20000 and its tx_packets,
#    and reboots; vmm stops the rings, resets its devices and boots the guest again on
#    the same vhost-user connection;
#  - after the second boot's figures the test stops vmm with SIGTERM (exit status 0).
# testpmd must count at least what both boots sent (the guest may add a few packets
# of its own, e.g. IPv6 neighbour discovery).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
net_test_begin net-tx "$0" "$@"

count=20000
n=/sys/class/net/eth0
guest="echo BOOT_ID=\$(cat /proc/sys/kernel/random/boot_id) && ip link set eth0 up &&
 vmm-pktgen $count eth0 && echo TX=\$(cat $n/statistics/tx_packets)"
guest=${guest//$'\n'/}

start_testpmd rxonly "$sock" 1 client=1
rc=0
boot_twice "$log" "$guest" --memory 512M --cpus 1 \
    --net "vhost-user,socket=$sock,server,connect-timeout-ms=$((TESTPMD_START_TIMEOUT * 1000))" || rc=$?
stop_testpmd
grep -aE '^(vmm: (net0|guest reset)|vmm-pktgen:)' "$log" || true
grep -aq "net0: waiting up to .* for a vhost-user backend on $sock" "$log" ||
    fail "vmm did not listen on $sock as the vhost-user server"
check_two_boots "$log" "$rc"
check_eq "packets pktgen sent (PKTGEN-SENT), both boots" "$(boot_values "$log" PKTGEN-SENT)" "$count $count "
read -r tx1 tx2 _ <<<"$(boot_values "$log" TX)"
check_ge "first boot: guest eth0 tx_packets" "$tx1" "$count"
check_ge "second boot: guest eth0 tx_packets" "$tx2" "$count"
# The guest counts a packet as sent once the backend has used it: none went missing.
check_ge "testpmd RX-packets against both boots' tx_packets" "$TESTPMD_RX" $((tx1 + tx2))
pass "2 x $count packets from the guest's pktgen reached testpmd (vmm the vhost-user server), before and after a reboot"
