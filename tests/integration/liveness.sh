#!/usr/bin/env bash
# Nothing vmm talks to can hang it: black-box, against scripted peers, on this host
# directly (vmm itself runs fine on PVM; the guest only crawls, which does not matter
# here). Usage: liveness.sh CASE, one of
#   stray-byte   a backend writes 1 byte of a header on its request channel and stops:
#                the control socket answers each status within 1 s meanwhile, the
#                channel alone is closed once reply-timeout-ms passed (the connection
#                goes on), and SIGTERM ends vmm within 1 s (before: all of vmm frozen
#                for reply-timeout-ms, 30 s by default)
#   stall        a backend stops answering in the middle of the handshake: the control
#                socket answers, and SIGTERM ends vmm within 400 ms (the NIC, with no
#                rings to stop, is cut at once)
#   dns          `migrate tcp:NAME:PORT` with a name that does not resolve (glibc's
#                resolver asks DNS, over UDP with sendmmsg) fails with one error and the
#                VM keeps running (before: the sandbox killed vmm), and one that does
#                (from /etc/hosts) is connected to. In a mount namespace of its own whose
#                resolv.conf names 127.0.0.1 (nothing listens): no query leaves the host.
#   sealed       a backend tries to shrink guest RAM's memfd as SET_MEM_TABLE hands it
#                over (on a migration's destination, before any stream): the seals
#                refuse it (EPERM) and vmm answers on (unsealed, the next guest-RAM
#                access would kill vmm with SIGBUS)
#   sandbox      every thread of a running vmm (main, vCPUs, NIC, worker) is under a
#                seccomp filter (/proc/PID/task/*/status: Seccomp: 2), and the NIC's
#                --vhost-trace lines are written within its filter
set -euo pipefail
# dns: the whole test in a private mount namespace (its resolv.conf and hosts).
if [ "${1:-}" = dns ] && [ -z "${LIVENESS_NS:-}" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
        [ -z "${CI:-}" ] || { echo "FAIL: the dns case needs root and unshare under CI"; exit 1; }
        echo "SKIP: the dns case needs root and unshare (a private /etc/resolv.conf)"
        exit 77
    fi
    exec env LIVENESS_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
case "${1:-}" in stray-byte | stall | dns | sandbox | sealed) ;; *) fail "usage: liveness.sh stray-byte|stall|dns|sandbox|sealed" ;; esac
ensure_guest_image
need_kvm
VMM_BIN=${VMM_BIN:-$VMM_REPO_ROOT/build/vmm}
VMMCTL=${VMMCTL_BIN:-$(dirname "$VMM_BIN")/vmmctl}
GUEST_DIR=$(guest_image_dir)
BACKEND="python3 $VMM_REPO_ROOT/tests/tools/vu_backend.py"
dir=$(mktemp -d)
at_exit "rm -rf '$dir'"

now_ms() { date +%s%3N; }

# start_vmm ARGS...: vmm on the project's kernel, its control socket at $dir/api.
start_vmm() {
    start_bg "$VMM_BIN" --kernel "$GUEST_DIR/bzImage" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
        --memory 256M --api-socket "$dir/api" "$@" </dev/null >"$dir/vmm.log" 2>&1
    VMM_PID=$BG_PID
    wait_grep "$dir/vmm.log" "." 30 "$VMM_PID" || true
    local end=$((SECONDS + 30))
    until [ -S "$dir/api" ]; do
        kill -0 "$VMM_PID" 2>/dev/null || { cat "$dir/vmm.log"; fail "vmm exited"; }
        [ "$SECONDS" -lt "$end" ] || fail "no control socket after 30 s"
        sleep 0.1
    done
}

# status_within MS ROUNDS: each of ROUNDS `vmmctl status` answers within MS ms.
status_within() {
    local limit=$1 rounds=$2 t0 dt worst=0
    for _ in $(seq "$rounds"); do
        t0=$(now_ms)
        timeout 30 "$VMMCTL" --api-socket "$dir/api" status >"$dir/status" 2>&1 ||
            { cat "$dir/status"; fail "vmmctl status failed"; }
        dt=$(($(now_ms) - t0))
        [ "$dt" -le "$worst" ] || worst=$dt
        [ "$dt" -lt "$limit" ] || { cat "$dir/vmm.log"; fail "status took $dt ms (limit $limit)"; }
        sleep 0.3
    done
    echo "ok: $rounds status requests answered, the slowest in $worst ms"
}

# sigterm_within MS: SIGTERM ends vmm within MS ms, with status 0.
sigterm_within() {
    local limit=$1 t0 dt rc=0
    t0=$(now_ms)
    kill -TERM "$VMM_PID"
    while kill -0 "$VMM_PID" 2>/dev/null; do
        [ $(($(now_ms) - t0)) -lt 10000 ] || break
        sleep 0.02
    done
    dt=$(($(now_ms) - t0))
    wait "$VMM_PID" || rc=$?
    [ "$dt" -lt "$limit" ] || { cat "$dir/vmm.log"; fail "SIGTERM took $dt ms to end vmm (limit $limit)"; }
    check_eq "vmm exit status after SIGTERM" "$rc" 0
    # Its control socket goes with it (the worker removes it; the main thread's
    # sandbox cannot, and must not try).
    [ ! -e "$dir/api" ] || fail "the control socket file stays after SIGTERM"
    ! grep -a 'cannot remove' "$dir/vmm.log" || fail "vmm could not remove a socket file"
    echo "ok: SIGTERM ended vmm in $dt ms"
}

start_backend() {
    start_bg $BACKEND "$dir/port.sock" "$@" >"$dir/backend.log" 2>&1
    wait_grep "$dir/backend.log" "^listening" 30 "$BG_PID" || fail "the scripted backend did not start"
}

case "$1" in
stray-byte)
    start_backend --stray-channel-byte
    start_vmm --net "vhost-user,socket=$dir/port.sock,reply-timeout-ms=3000"
    wait_grep "$dir/backend.log" "stray byte sent" 30 || { cat "$dir/vmm.log"; fail "the backend never got its channel"; }
    status_within 1000 10
    wait_grep "$dir/vmm.log" "request channel on .* is closed" 10 ||
        { cat "$dir/vmm.log"; fail "the half-sent request was never given up on"; }
    ! grep -q "lost" "$dir/vmm.log" || { cat "$dir/vmm.log"; fail "the backend was dropped, not its channel"; }
    grep "request channel" "$dir/vmm.log"
    sigterm_within 1000
    pass "a stray byte on the backend channel froze nothing"
    ;;
stall)
    start_backend --stall-on SET_OWNER
    start_vmm --net "vhost-user,socket=$dir/port.sock"
    wait_grep "$dir/backend.log" "stalling on SET_OWNER" 30 || fail "the backend never stalled"
    status_within 1000 5
    # A NIC mid-handshake has no rings to stop: it is cut at once, not after the
    # 400 ms grace a running NIC's backend gets (about 35 ms here, idle).
    sigterm_within 400
    pass "a backend stalled mid-handshake froze nothing"
    ;;
dns)
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$dir/resolv.conf"
    printf '127.0.0.1 localhost\n127.0.0.1 vmm-dest.test\n' >"$dir/hosts"
    mount --bind "$dir/resolv.conf" /etc/resolv.conf
    mount --bind "$dir/hosts" /etc/hosts
    # A listener for the name that resolves: it takes the connection and hangs up.
    start_bg python3 -c 'import socket,sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); print("connected", flush=True); c.close()' >"$dir/listener.log"
    wait_grep "$dir/listener.log" "^[0-9]" 10 || fail "the listener did not start"
    port=$(head -n 1 "$dir/listener.log")
    start_vmm
    rc=0
    timeout 60 "$VMMCTL" --api-socket "$dir/api" migrate "tcp:no-such-host.invalid:4444" \
        >"$dir/out" 2>&1 || rc=$?
    cat "$dir/out"
    [ "$rc" -ne 0 ] || fail "migrate to a name that does not resolve succeeded"
    grep -qi "resolve\|no-such-host" "$dir/out" || fail "the error does not name the failed lookup"
    sleep 1
    kill -0 "$VMM_PID" 2>/dev/null || { cat "$dir/vmm.log"; fail "vmm died"; }
    rc=0
    timeout 60 "$VMMCTL" --api-socket "$dir/api" migrate "tcp:vmm-dest.test:$port" \
        >"$dir/out2" 2>&1 || rc=$?
    cat "$dir/out2"
    wait_grep "$dir/listener.log" "^connected" 10 || fail "vmm-dest.test was not connected to"
    kill -0 "$VMM_PID" 2>/dev/null || { cat "$dir/vmm.log"; fail "vmm died"; }
    status_within 2000 2
    grep -q '"running"\|running' "$dir/status" || fail "the VM is not running"
    sigterm_within 2000
    pass "migrate to an unresolvable name failed cleanly and the VM ran on"
    ;;
sealed)
    start_backend --truncate-memfd
    # A destination hands its memory table to the backend before the stream arrives.
    start_vmm --net "vhost-user,socket=$dir/port.sock" --incoming "unix:$dir/mig.sock"
    wait_grep "$dir/backend.log" "^ftruncate: " 30 "$VMM_PID" ||
        fail "the backend got no memory table; vmm said: $(tail -n 1 "$dir/vmm.log")"
    grep "^ftruncate: " "$dir/backend.log"
    grep -q "^ftruncate: EPERM" "$dir/backend.log" ||
        fail "the backend could resize guest RAM: its memfd is not sealed"
    status_within 1000 3
    sigterm_within 1000
    pass "a backend cannot resize guest RAM (sealed), and vmm answers on"
    ;;
sandbox)
    start_backend
    # With --vhost-trace: the NIC's thread writes the trace under its own filter.
    start_vmm --net "vhost-user,socket=$dir/port.sock" --vhost-trace "$dir/trace.log"
    wait_grep "$dir/backend.log" "handshake done" 30 "$VMM_PID" ||
        fail "no handshake; vmm said: $(tail -n 1 "$dir/vmm.log")"
    sleep 0.5
    kill -0 "$VMM_PID" 2>/dev/null || { cat "$dir/vmm.log"; fail "vmm died during the handshake"; }
    grep -q ' net0 -> GET_FEATURES' "$dir/trace.log" ||
        { cat "$dir/vmm.log"; fail "the trace has no GET_FEATURES line"; }
    names=()
    for t in /proc/"$VMM_PID"/task/*; do
        name=$(cat "$t/comm")
        mode=$(awk '/^Seccomp:/ {print $2}' "$t/status")
        names+=("$name")
        echo "thread $(basename "$t") ($name): Seccomp: $mode"
        [ "$mode" = 2 ] || fail "thread $(basename "$t") ($name) is not under a seccomp filter"
    done
    for want in vmm vmm-net0 vmm-worker vmm-vcpu0; do
        printf '%s\n' "${names[@]}" | grep -qx "$want" || fail "no thread named $want"
    done
    sigterm_within 2000
    pass "every one of ${#names[@]} threads runs under its seccomp filter"
    ;;
esac
