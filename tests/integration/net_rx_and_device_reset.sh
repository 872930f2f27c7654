#!/usr/bin/env bash
# Receive path and device reset, with one testpmd (txonly) flooding the guest's
# virtio-net NIC through vhost-user, in one guest boot:
#  1. the guest brings eth0 up, waits 3 s: rx_packets from sysfs must be >= 1000;
#  2. with the traffic still flowing, it unbinds its virtio-pci device through sysfs
#     (the driver resets the device: vmm stops the rings with GET_VRING_BASE) and binds
#     it again (vmm starts the rings again), brings the new eth0 up, waits 3 s: its
#     rx_packets must again be >= 1000.
# Then the guest reboots and vmm must exit 0. vmm runs with -v, so its trace shows the
# GET_VRING_BASE of both rings at the reset and the second start.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
net_test_begin net-rx "$0" "$@"

# Inside vmm.run="...": no double quotes. The PCI address is that of eth0's device.
n=/sys/class/net/eth0
drv=/sys/bus/pci/drivers/virtio-pci
guest="ip link set eth0 up && sleep 3 && echo RX1=\$(cat $n/statistics/rx_packets) &&
 a=\$(basename \$(readlink -f $n/device/..)) && echo PCI=\$a &&
 echo \$a > $drv/unbind && echo UNBOUND_ETH0=\$(ls -d $n 2>/dev/null | wc -l) &&
 echo \$a > $drv/bind && ip link set eth0 up && sleep 3 &&
 echo RX2=\$(cat $n/statistics/rx_packets)"
guest=${guest//$'\n'/}

start_testpmd txonly "$sock" 1
rc=0
boot_net_guest "$log" "$guest" --net "vhost-user,socket=$sock" -v || rc=$?
stop_testpmd
grep -aE '^vmm: (net0|debug: net0: (queue|<- GET_VRING_BASE))' "$log" || true
check_net_guest_done "$log" "$rc"
check_ge "phase 1: packets the guest received in 3 s" "$(guest_value "$log" RX1)" 1000
echo "guest's virtio-net PCI device: $(guest_value "$log" PCI)"
check_eq "phase 2: eth0 devices left after the unbind" "$(guest_value "$log" UNBOUND_ETH0)" 0
# -v traces the vhost-user messages: between the first and the second start, the
# reset stopped both rings (the backend answered GET_VRING_BASE for rings 0 and 1).
stopped=$(awk '/net0: started/ {s++} s == 1 && /net0: <- GET_VRING_BASE .*index=[01] / {n++}
               END {print n + 0}' "$log")
check_eq "phase 2: GET_VRING_BASE replies between the two starts" "$stopped" 2
check_eq "phase 2: times vmm started the rings" "$(grep -ac 'net0: started' "$log")" 2
check_ge "phase 2: packets the rebound eth0 received in 3 s" "$(guest_value "$log" RX2)" 1000
check_ge "testpmd TX-packets" "$TESTPMD_TX" 2000
pass "testpmd's txonly traffic reached the guest, and again after a device reset"
