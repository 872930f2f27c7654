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
need_testpmd
ensure_guest_image
run_in_rig_if_needed "$0" "$@"
need_kvm
. "$(dirname "$0")/guest.sh"

sock=/tmp/vmm-net-reboot-$$.sock
log=$(mktemp)
at_exit "rm -f '$log'"
n=/sys/class/net/eth0
guest="echo BOOT_ID=\$(cat /proc/sys/kernel/random/boot_id) && ip link set eth0 up &&
 sleep 3 && echo RX=\$(cat $n/statistics/rx_packets)"
guest=${guest//$'\n'/}

# boot_values KEY: the values of every KEY=value line, one per boot, space-separated.
boot_values() { grep -a "^$1=" "$log" | cut -d= -f2- | tr -d '\r' | tr '\n' ' '; }

start_testpmd txonly "$sock" 1
start=$SECONDS
start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$guest\"" --memory 512M --cpus 1 \
    --net "vhost-user,socket=$sock" --on-reboot restart -v </dev/null >"$log" 2>&1
vmm=$BG_PID
until [ "$(grep -ac '^VMM-RUN-EXIT=' "$log")" -ge 2 ]; do
    kill -0 "$vmm" 2>/dev/null || { tail -n 40 "$log"; fail "vmm exited before the second boot finished"; }
    [ $((SECONDS - start)) -lt 400 ] || { tail -n 40 "$log"; fail "no second boot within 400 s"; }
    sleep 0.5
done
echo "two boots took $((SECONDS - start)) s"
kill -TERM "$vmm"
rc=0
wait "$vmm" || rc=$?
stop_testpmd
grep -aE '^vmm: (net0|guest reset|debug: net0: (queue|<- GET_VRING_BASE))' "$log" || true
check_eq "vmm exit status after SIGTERM" "$rc" 0
[ "$(boot_values VMM-RUN-EXIT)" = "0 0 " ] || { grep -av '^vmm: debug' "$log" | tail -n 60; }
check_eq "guest command status, both boots" "$(boot_values VMM-RUN-EXIT)" "0 0 "
read -r id1 id2 _ <<<"$(boot_values BOOT_ID)"
[ -n "$id2" ] && [ "$id1" != "$id2" ] || fail "boot ids '$id1' and '$id2': want two different boots"
echo "ok: two boots, boot_id $id1 then $id2"
grep -aq 'guest reset (reboot 1): restarting it' "$log" || fail "vmm did not report the reboot"
# Between the first and the second start of the rings, the reset stopped both.
stopped=$(awk '/net0: started/ {s++} s == 1 && /net0: <- GET_VRING_BASE .*index=[01] / {n++}
               END {print n + 0}' "$log")
check_eq "GET_VRING_BASE replies between the first and second start" "$stopped" 2
read -r rx1 rx2 _ <<<"$(boot_values RX)"
check_ge "first boot: packets eth0 received in 3 s" "$rx1" 1000
check_ge "second boot: packets eth0 received in 3 s" "$rx2" 1000
check_ge "testpmd TX-packets" "$TESTPMD_TX" 2000
pass "the guest rebooted with its NIC up and received testpmd's traffic again"
