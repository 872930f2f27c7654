#!/usr/bin/env bash
# Transmit path: the guest sends 20000 packets out of its virtio-net NIC with the
# kernel's pktgen (/bin/vmm-pktgen), and testpmd (rxonly) at the other end of
# vhost-user must count at least 20000 received (the guest may add a few of its own,
# e.g. IPv6 neighbour discovery). The guest reports PKTGEN-SENT=20000 and its
# tx_packets; vmm must exit 0 after the guest's reboot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
need_testpmd
ensure_guest_image
run_in_rig_if_needed "$0" "$@"
need_kvm
. "$(dirname "$0")/guest.sh"

count=20000
sock=/tmp/vmm-net-tx-$$.sock
log=$(mktemp)
at_exit "rm -f '$log'"
start_testpmd rxonly "$sock" 1
rc=0
boot_net_guest "$log" "ip link set eth0 up && vmm-pktgen $count eth0 && echo TX=\$(cat /sys/class/net/eth0/statistics/tx_packets)" \
    --net "vhost-user,socket=$sock" || rc=$?
stop_testpmd
grep -a '^vmm-pktgen:' "$log" || true
check_net_guest_done "$log" "$rc"
check_eq "packets pktgen sent (PKTGEN-SENT)" "$(guest_value "$log" PKTGEN-SENT)" "$count"
check_ge "guest eth0 tx_packets" "$(guest_value "$log" TX)" "$count"
check_ge "testpmd RX-packets" "$TESTPMD_RX" "$count"
# The guest counts a packet as sent once the backend has used it: none went missing.
check_ge "testpmd RX-packets against the guest's tx_packets" "$TESTPMD_RX" "$(guest_value "$log" TX)"
pass "$count packets from the guest's pktgen reached testpmd through vhost-user"
