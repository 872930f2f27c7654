#!/usr/bin/env bash
# The destination (--incoming) against peers that misbehave, on this host directly (no
# guest runs: the guest never arrives). Usage: incoming_bounds.sh CASE, one of
#   silent-peer  issue 15: a peer sends 8 bytes of a stream header and stops. status
#                answers (inmigrate) meanwhile, and SIGTERM ends vmm at once (before:
#                every read blocked; SIGTERM did nothing until the peer closed)
#   bad-peer     a peer sends a whole header for another machine (7 vCPUs): it gets an
#                answer naming the mismatch, vmm logs one line and keeps listening (the
#                socket is there, a second such peer is answered too), then SIGTERM
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "${1:-}" in silent-peer | bad-peer) ;; *) fail "usage: incoming_bounds.sh silent-peer|bad-peer" ;; esac
need_kvm
VMM_BIN=${VMM_BIN:-$VMM_REPO_ROOT/build/vmm}
VMMCTL=${VMMCTL_BIN:-$(dirname "$VMM_BIN")/vmmctl}
dir=$(mktemp -d)
at_exit "rm -rf '$dir'"
now_ms() { date +%s%3N; }

start_bg "$VMM_BIN" --memory 256M --cpus 1 --api-socket "$dir/api" --incoming "unix:$dir/mig.sock" \
    </dev/null >"$dir/vmm.log" 2>&1
VMM_PID=$BG_PID
wait_grep "$dir/vmm.log" "waiting for a migration" 30 "$VMM_PID" || { cat "$dir/vmm.log"; fail "vmm is not listening"; }

# peer MODE: a client of the migration socket (python: exact bytes, held open).
peer() {
    python3 - "$dir/mig.sock" "$1" <<'EOF'
import socket, struct, sys, time
path, mode = sys.argv[1:]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
if mode == "eight-bytes":
    s.send(b"VMMMIGR\0")
    print("sent 8 bytes", flush=True)
    time.sleep(30)
else:
    # struct mig_header: magic, version, ncpus, mem_size, nregions, nnets,
    # regions[2] {gpa, size}, net_queue_pairs[4], flags, reserved
    hdr = struct.pack("<8sIIQII4Q4III", b"VMMMIGR\0", 1, 7, 256 << 20, 1, 0,
                      0, 256 << 20, 0, 0, 0, 0, 0, 0, 0, 0)
    s.send(hdr)
    # struct mig_reply: magic, status, nfirst, compared, differ, first[8], msg[200]
    rep = b""
    while len(rep) < 296:
        chunk = s.recv(296 - len(rep))
        if not chunk:
            break
        rep += chunk
    magic, status = rep[:8], struct.unpack("<i", rep[8:12])[0]
    msg = rep[96:].split(b"\0")[0].decode()
    print("reply %s status %d: %s" % (magic.decode(), status, msg), flush=True)
EOF
}

case $1 in
silent-peer)
    peer eight-bytes >"$dir/peer.out" 2>&1 &
    peer_pid=$!
    at_exit "kill $peer_pid 2>/dev/null || true"
    wait_grep "$dir/peer.out" "sent 8 bytes" 10 || fail "the peer did not connect"
    sleep 1
    timeout 10 "$VMMCTL" --api-socket "$dir/api" status >"$dir/status" 2>&1 || { cat "$dir/status"; fail "status failed"; }
    grep -q inmigrate "$dir/status" || { cat "$dir/status"; fail "status does not say inmigrate"; }
    echo "ok: status answers while the peer holds its header: $(grep -o 'state[^,]*' "$dir/status" | head -n 1)"
    t0=$(now_ms)
    kill -TERM "$VMM_PID"
    wait_grep "$dir/vmm.log" "--incoming .*: stopped" 5 || { cat "$dir/vmm.log"; fail "the wait did not end on SIGTERM"; }
    echo "ok: the destination's wait ended $(($(now_ms) - t0)) ms after SIGTERM"
    rc=0
    wait "$VMM_PID" || rc=$?
    dt=$(($(now_ms) - t0))
    [ "$dt" -lt 5000 ] || { cat "$dir/vmm.log"; fail "vmm took $dt ms to exit after SIGTERM"; }
    check_eq "vmm exit status after SIGTERM" "$rc" 0
    pass "a peer silent after 8 header bytes: SIGTERM ended vmm in $dt ms"
    ;;
bad-peer)
    for i in 1 2; do
        timeout 20 bash -c "$(declare -f peer); dir='$dir'; peer wrong-header" >"$dir/peer$i.out" 2>&1 ||
            { cat "$dir/peer$i.out"; fail "peer $i got no answer"; }
        cat "$dir/peer$i.out"
        grep -q "status -1: the source has 7 vCPUs, this VM 1" "$dir/peer$i.out" ||
            fail "peer $i's answer does not name the mismatch"
        [ -S "$dir/mig.sock" ] || fail "vmm stopped listening after peer $i"
        kill -0 "$VMM_PID" 2>/dev/null || { cat "$dir/vmm.log"; fail "vmm exited after peer $i"; }
    done
    check_eq "lines about dropped peers" "$(grep -c 'dropped a peer: the source has 7 vCPUs' "$dir/vmm.log")" 2
    kill -TERM "$VMM_PID"
    rc=0
    wait "$VMM_PID" || rc=$?
    check_eq "vmm exit status after SIGTERM" "$rc" 0
    pass "peers with a wrong header were answered and dropped; vmm kept listening"
    ;;
esac
