#!/usr/bin/env bash
# A guest reboot with the NIC up (--on-reboot restart), with testpmd (txonly) flooding
# the guest's virtio-net NIC the whole time:
#  1. first boot: eth0 up, 3 s of traffic, rx_packets >= 1000, then reboot -f;
#  2. vmm stops both rings (GET_VRING_BASE), resets its devices, zeroes RAM, loads the
#     kernel again into a new KVM VM: the guest boots again (a new boot_id) on the
#     same vhost-user connection, and its eth0 again receives >= 1000 packets in 3 s.
# The guest would reboot forever: the test stops vmm with SIGTERM after the second
# boot's figures (exit status 0).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
net_test_begin net-reboot "$0" "$@"

n=/sys/class/net/eth0
guest="echo BOOT_ID=\$(cat /proc/sys/kernel/random/boot_id) && ip link set eth0 up &&
 sleep 3 && echo RX=\$(cat $n/statistics/rx_packets)"
guest=${guest//$'\n'/}

start_testpmd txonly "$sock" 1
rc=0
boot_twice "$log" "$guest" --memory 512M --cpus 1 --net "vhost-user,socket=$sock" -v || rc=$?
stop_testpmd
grep -aE '^vmm: (net0|guest reset|debug: net0: (queue|<- GET_VRING_BASE))' "$log" || true
check_two_boots "$log" "$rc"
# Between the first and the second start of the rings, the reset stopped both.
stopped=$(awk '/net0: started/ {s++} s == 1 && /net0: <- GET_VRING_BASE .*index=[01] / {n++}
               END {print n + 0}' "$log")
check_eq "GET_VRING_BASE replies between the first and second start" "$stopped" 2
read -r rx1 rx2 _ <<<"$(boot_values "$log" RX)"
check_ge "first boot: packets eth0 received in 3 s" "$rx1" 1000
check_ge "second boot: packets eth0 received in 3 s" "$rx2" 1000
check_ge "testpmd TX-packets" "$TESTPMD_TX" 2000
pass "the guest rebooted with its NIC up and received testpmd's traffic again"
