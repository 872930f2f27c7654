#!/usr/bin/env bash
# --vhost-trace FILE against real testpmd: the guest boots with one NIC (one queue pair),
# brings eth0 up and reboots; vmm writes every vhost-user message into FILE. Checks:
#  - every line is "SECONDS.MICROS net0 ->|<- NAME flags=... size=N ... fds=N", times in
#    order, and every "<-" line names the request it answers and its latency;
#  - the sequence of messages (direction, name, ring index) is exactly that of a normal
#    start and stop, as vmm's code sends it to a back-end offering what testpmd offers
#    (the diff is printed if not).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
net_test_begin net-trace "$0" "$@"

trace=$(mktemp)
want=$(mktemp)
got=$(mktemp)
at_exit "rm -f '$trace' '$want' '$got'"

# Of what vmm asks for, testpmd 22.11 (DPDK's vhost library) offers MQ, REPLY_ACK, MTU,
# RARP, LOG_SHMFD, STATUS and BACKEND_REQ (not RESET_DEVICE, CONFIGURE_MEM_SLOTS), so:
#  - GET_QUEUE_NUM follows SET_PROTOCOL_FEATURES (MQ);
#  - SET_BACKEND_REQ_FD opens the backend's request channel before SET_OWNER (BACKEND_REQ);
#  - every request without a reply of its own, from SET_BACKEND_REQ_FD on, carries
#    NEED_REPLY and gets an ack (REPLY_ACK); SET_PROTOCOL_FEATURES never does;
#  - no NET_SET_MTU: the --net option sets no mtu.
# At DRIVER_OK vmm sends SET_FEATURES, then GET_STATUS/SET_STATUS with FEATURES_OK
# (STATUS), SET_MEM_TABLE, then rings 0 and 1 each get NUM/ADDR/BASE/KICK/CALL, then
# SET_VRING_ENABLE for both (the control queue stays in vmm), then GET_STATUS/SET_STATUS
# with DRIVER_OK. The guest's reboot resets the device (or vmm does at exit):
# GET_VRING_BASE per ring, then SET_STATUS 0.
expected_sequence() {
    local q r
    printf '%s\n' "-> GET_FEATURES" "<- GET_FEATURES" \
        "-> GET_PROTOCOL_FEATURES" "<- GET_PROTOCOL_FEATURES" "-> SET_PROTOCOL_FEATURES" \
        "-> GET_QUEUE_NUM" "<- GET_QUEUE_NUM" "-> SET_BACKEND_REQ_FD" "<- SET_BACKEND_REQ_FD" \
        "-> SET_OWNER" "<- SET_OWNER" "-> SET_FEATURES" "<- SET_FEATURES" \
        "-> GET_STATUS" "<- GET_STATUS" "-> SET_STATUS" "<- SET_STATUS" \
        "-> SET_MEM_TABLE" "<- SET_MEM_TABLE"
    for q in 0 1; do
        for r in NUM ADDR BASE KICK CALL; do
            printf '%s\n' "-> SET_VRING_$r $q" "<- SET_VRING_$r"
        done
    done
    for q in 0 1; do printf '%s\n' "-> SET_VRING_ENABLE $q" "<- SET_VRING_ENABLE"; done
    printf '%s\n' "-> GET_STATUS" "<- GET_STATUS" "-> SET_STATUS" "<- SET_STATUS"
    for q in 0 1; do printf '%s\n' "-> GET_VRING_BASE $q" "<- GET_VRING_BASE $q"; done
    printf '%s\n' "-> SET_STATUS" "<- SET_STATUS"
}

start_testpmd rxonly "$sock" 1
rc=0
boot_net_guest "$log" "ip link set eth0 up && sleep 1 && echo UP=\$(cat /sys/class/net/eth0/operstate)" \
    --net "vhost-user,socket=$sock" --vhost-trace "$trace" || rc=$?
stop_testpmd
check_net_guest_done "$log" "$rc"
check_eq "guest eth0 state" "$(guest_value "$log" UP)" up
echo "--- the trace ($(wc -l <"$trace") lines) ---"
cat "$trace"
echo "---"

bad=$(grep -cvE '^[0-9]+\.[0-9]{6} net0 (->|<-) [A-Z_0-9]+ flags=v1(\|[A-Z_]+)* size=[0-9]+ .*fds=[0-9]+( reply_to=[A-Z_]+ latency=[0-9]+us)?$' "$trace" || true)
check_eq "trace lines not in the documented format" "$bad" 0
check_eq "times out of order" "$(awk '$1 < prev {n++} {prev = $1} END {print n + 0}' "$trace")" 0
# A reply answers the request just before it, and says so.
unmatched=$(awk '$3 == "->" {req = $4} $3 == "<-" && $0 !~ (" reply_to=" req " latency=") {n++}
                 END {print n + 0}' "$trace")
check_eq "replies not naming the request before them" "$unmatched" 0
grep -m1 ' <- GET_PROTOCOL_FEATURES ' "$trace" | sed 's/^/testpmd offers: /'
grep -m1 ' -> SET_FEATURES ' "$trace" | sed 's/^/vmm acks: /'

# direction, name, and the ring index of ring requests (and of GET_VRING_BASE replies).
awk '{ line = $3 " " $4
       for (i = 5; i <= NF; i++) if ($i ~ /^index=/) { line = line " " substr($i, 7); break }
       if ($3 == "<-" && $4 != "GET_VRING_BASE") line = $3 " " $4
       print line }' "$trace" >"$got"
expected_sequence >"$want"
if ! diff -u "$want" "$got"; then
    fail "the vhost-user messages differ from a normal start and stop (diff above: - expected, + traced)"
fi
echo "ok: $(wc -l <"$got") messages in the expected order"
latency=$(grep -m1 ' <- SET_MEM_TABLE ' "$trace" | grep -oE 'latency=[0-9]+us' | cut -d= -f2)
echo "testpmd answered SET_MEM_TABLE in $latency"
pass "--vhost-trace recorded a normal start and stop against testpmd, message by message"
