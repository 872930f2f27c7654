#!/usr/bin/env bash
# Multiqueue: vmm offers 2 queue pairs (--net ...,queues=2) to a guest with 2 vCPUs;
# the guest's virtio-net driver turns both on with the control queue's MQ command, and
# testpmd (txonly, 2 queues) sends on both. After 3 s of traffic the guest's
# /sys/class/net/eth0/queues must list rx-0 rx-1 (and tx-0 tx-1), and its
# /proc/interrupts lines virtio*-input.0 and virtio*-input.1 must both have counted
# interrupts; vmm (-v) must have enabled rings 2 and 3 (pair 1) on the MQ command, and
# exit 0 after the guest's reboot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
net_test_begin net-mq "$0" "$@"

# IRQ-<name>=<count on CPU0 + CPU1> for each virtio interrupt line (2 vCPUs).
guest="ip link set eth0 up && sleep 3 && echo QUEUES=\$(ls /sys/class/net/eth0/queues) &&
 echo RX=\$(cat /sys/class/net/eth0/statistics/rx_packets) && grep virtio /proc/interrupts &&
 grep virtio /proc/interrupts | while read -r irq a b rest; do echo IRQ-\${rest##* }=\$((a + b)); done"
guest=${guest//$'\n'/}

start_testpmd txonly "$sock" 2
rc=0
boot_net_guest "$log" "$guest" --cpus 2 --net "vhost-user,socket=$sock,queues=2" -v || rc=$?
stop_testpmd
grep -aE '^vmm: (net0|debug: net0: (control|-> SET_VRING_ENABLE))' "$log" || true
grep -a 'virtio' "$log" | grep -av '^vmm' || true
check_net_guest_done "$log" "$rc"
check_eq "guest eth0 queues" "$(guest_value "$log" QUEUES)" "rx-0 rx-1 tx-0 tx-1"
check_ge "packets the guest received in 3 s" "$(guest_value "$log" RX)" 1000
irq0=$(grep -a -m1 '^IRQ-virtio[0-9]*-input\.0=' "$log" | cut -d= -f2 | tr -d '\r')
irq1=$(grep -a -m1 '^IRQ-virtio[0-9]*-input\.1=' "$log" | cut -d= -f2 | tr -d '\r')
check_ge "interrupts on virtio-input.0 (rx queue pair 0)" "$irq0" 1
check_ge "interrupts on virtio-input.1 (rx queue pair 1)" "$irq1" 1
# The guest's MQ command (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 2) made vmm enable rings 2, 3.
check_ge "SET_VRING_ENABLE of ring 3 (pair 1) to 1 sent by vmm" \
    "$(grep -acE 'net0: -> SET_VRING_ENABLE .*index=3 enable=1 ' "$log")" 1
pass "the guest runs 2 queue pairs and both receive testpmd's traffic"
