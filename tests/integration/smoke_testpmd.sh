#!/usr/bin/env bash
# scripts/vhost-user-smoke against real testpmd, which it starts with --backend-cmd.
# smoke_testpmd.sh full: testpmd with four vhost ports in io forwarding (0<->1, 2<->3),
#   2 queue pairs each; the guest's two NICs (on ports 0 and 1) sit in separate network
#   namespaces and talk through testpmd; the migration's destination gets ports 2 and 3.
#   Every check passes, the smoke exits 0, and its JUnit XML parses: 8 testcases, 0
#   failures, 0 skipped.
# smoke_testpmd.sh queue_mismatch: one vhost port with 1 queue pair (txonly) while
#   --queues 2 is asked (reboot and backend-restart skipped, to keep it short): exactly
#   the multiqueue check fails, its reason names queue pair 1 that carried nothing (or
#   the backend's 1 queue pair), the smoke exits 1, and the JUnit XML has that one failure.
# smoke_testpmd.sh backend_killed: one vhost port (txonly); this test kills testpmd
#   (SIGKILL, by PID) as soon as the traffic check begins: exactly that check fails,
#   its reason says the backend exited, every later check is skipped saying why, and
#   the smoke exits 1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/testpmd.sh"
case "${1:-}" in full | queue_mismatch | backend_killed) ;; *) fail "usage: smoke_testpmd.sh full|queue_mismatch|backend_killed" ;; esac
need_testpmd
ensure_guest_image
# Two testpmd starts and two guest boots: far more than one NIC test, above all on a
# busy host.
RIG_TIMEOUT=${RIG_TIMEOUT:-1700}
run_in_rig_if_needed "$0" "$@"
need_kvm
command -v python3 >/dev/null || command -v xmllint >/dev/null ||
    fail "neither python3 nor xmllint is there to parse the JUnit XML"

VMM_BIN=${VMM_BIN:-$VMM_REPO_ROOT/build/vmm}
dir=$(mktemp -d)
prefix=vmm-smoke-$$
at_exit "rm -rf '$dir' '/var/run/dpdk/$prefix'"
testpmd="$VMM_REPO_ROOT/tests/integration/testpmd-lean $TESTPMD_BIN --no-huge -m 256 --no-pci -l 0-1 --file-prefix=$prefix"

if [ "$1" = full ]; then
    cmd="$testpmd --vdev 'net_vhost0,iface=$dir/a.sock,queues=2'
 --vdev 'net_vhost1,iface=$dir/b.sock,queues=2' --vdev 'net_vhost2,iface=$dir/c.sock,queues=2'
 --vdev 'net_vhost3,iface=$dir/d.sock,queues=2' -- --total-num-mbufs=16384 --forward-mode=io
 --auto-start --nb-cores=1 --rxq=2 --txq=2"
    args=(--queues 2 --migrate-to "$dir/c.sock,$dir/d.sock" "$dir/a.sock" "$dir/b.sock")
    want="handshake=pass link=pass traffic=pass multiqueue=pass mtu=pass reboot=pass
 backend-restart=pass migration=pass"
    want_rc=0 want_failures=0 want_skipped=0
elif [ "$1" = backend_killed ]; then
    cmd="$testpmd --vdev 'net_vhost0,iface=$dir/a.sock,queues=1' -- --total-num-mbufs=8192
 --forward-mode=txonly --auto-start --nb-cores=1"
    args=("$dir/a.sock")
    want="handshake=pass link=pass traffic=FAIL multiqueue=skipped mtu=skipped reboot=skipped
 backend-restart=skipped migration=skipped"
    want_rc=1 want_failures=1 want_skipped=5
else
    cmd="$testpmd --vdev 'net_vhost0,iface=$dir/a.sock,queues=1' -- --total-num-mbufs=8192
 --forward-mode=txonly --auto-start --nb-cores=1"
    args=(--queues 2 --skip "reboot,backend-restart" "$dir/a.sock")
    want="handshake=pass link=pass traffic=pass multiqueue=FAIL mtu=pass reboot=skipped
 backend-restart=skipped migration=skipped"
    want_rc=1 want_failures=1 want_skipped=3
fi
cmd=${cmd//$'\n'/}
want=${want//$'\n'/}

start=$SECONDS
rc=0
smoke=("$VMM_REPO_ROOT/scripts/vhost-user-smoke" --vmm "$VMM_BIN" --out "$dir/out"
    --junit "$dir/junit.xml" --backend-cmd "$cmd" "${args[@]}")
if [ "$1" = backend_killed ]; then
    # The smoke in the background, its output followed line by line as it comes (tail
    # -f): testpmd (found by its unique --file-prefix once its sockets are up) is
    # killed the moment the traffic check begins. The receive window is 3 s: polling
    # the output with grep and looking testpmd up only then (forks, a second each on a
    # busy emulated L1) once killed it after that check had passed.
    start_bg "${smoke[@]}" >"$dir/smoke.out" 2>&1
    smoke_pid=$BG_PID
    # A coprocess: the rig has no /dev/fd for a process substitution.
    coproc FOLLOW { exec tail -n +1 -f "$dir/smoke.out"; }
    follow=${FOLLOW[0]} follow_pid=$FOLLOW_PID
    at_exit "kill $follow_pid 2>/dev/null"
    backend='' killed=''
    until [ -n "$killed" ] || [ $((SECONDS - start)) -ge 1500 ]; do
        if ! IFS= read -r -t 2 -u "$follow" line; then
            # Nothing for 2 s: has the smoke ended (a zombie until waited for)?
            case "$(awk '{print $3}' "/proc/$smoke_pid/stat" 2>/dev/null)" in "" | Z | X) break ;; esac
            continue
        fi
        case $line in
        "smoke: backend up"*)
            # testpmd itself, not the smoke or the wrappers whose command lines name it too.
            backend=$(pgrep -f -- "^[^ ]*${TESTPMD_BIN##*/} .*--file-prefix=$prefix( |\$)" | head -n 1) ;;
        "smoke: [traffic]"*)
            [ -n "$backend" ] || { cat "$dir/smoke.out"; fail "no testpmd with --file-prefix=$prefix to kill"; }
            kill -KILL "$backend"
            killed=1 ;;
        esac
    done
    kill "$follow_pid" 2>/dev/null || true
    [ -n "$killed" ] || { cat "$dir/smoke.out"; fail "the smoke never began its traffic check"; }
    echo "ok: killed testpmd (pid $backend) as the traffic check began"
    wait "$smoke_pid" || rc=$?
    cat "$dir/smoke.out"
else
    "${smoke[@]}" || rc=$?
fi
echo "the smoke run took $((SECONDS - start)) s"
[ -f "$dir/out/results.tsv" ] || fail "the smoke run wrote no results.tsv"
echo "--- report.txt ---"
cat "$dir/out/report.txt"
echo "---"
got=$(awk -F'\t' '{printf "%s%s=%s", (NR > 1 ? " " : ""), $1, $2}' "$dir/out/results.tsv")
check_eq "check results" "$got" "$want"
check_eq "smoke exit status" "$rc" "$want_rc"
# A check that did not pass says why.
check_eq "checks failed or skipped without a reason" \
    "$(awk -F'\t' '$2 != "pass" && $4 == "" {n++} END {print n + 0}' "$dir/out/results.tsv")" 0
[ -s "$dir/out/trace.log" ] || fail "no vhost-user trace beside the report"
echo "ok: vhost-user trace beside the report, $(wc -l <"$dir/out/trace.log") lines"

if [ "$1" = backend_killed ]; then
    reason=$(awk -F'\t' '$1 == "traffic" {print $4}' "$dir/out/results.tsv")
    [[ $reason == *"backend exited"* ]] || fail "traffic reason '$reason' does not say the backend exited"
    later=$(awk -F'\t' '$2 == "skipped" && $4 !~ /backend exited during check traffic/ {print $1}' "$dir/out/results.tsv")
    [ -z "$later" ] || fail "skipped checks without the backend's exit as their reason: $later"
    echo "ok: traffic failed with: $reason"
fi
if [ "$1" = queue_mismatch ]; then
    reason=$(awk -F'\t' '$1 == "multiqueue" {print $4}' "$dir/out/results.tsv")
    # DPDK's vhost library answers GET_QUEUE_NUM with its own maximum (128), not the
    # port's queues=1: then vmm starts 2 pairs and the second carries nothing. A
    # backend that says 1 makes vmm refuse to start with 2.
    [[ $reason == *"queue pair 1 carried no traffic"* || $reason == *"the backend offers 1 "* ]] ||
        fail "multiqueue reason '$reason' names neither the idle queue pair 1 nor the backend's 1 queue pair"
    echo "ok: multiqueue failed with: $reason"
fi

# The JUnit XML parses, and its counts and failure names match.
if command -v python3 >/dev/null; then
    counts=$(python3 -c '
import sys, xml.etree.ElementTree as ET
s = ET.parse(sys.argv[1]).getroot().find("testsuite")
cases = s.findall("testcase")
failed = " ".join(c.get("name") for c in cases if c.find("failure") is not None)
print(len(cases), s.get("failures"), s.get("skipped"), failed or "-")' "$dir/junit.xml")
else
    xmllint --noout "$dir/junit.xml" || fail "the JUnit XML does not parse"
    counts="$(xmllint --xpath 'count(//testcase)' "$dir/junit.xml") \
$(xmllint --xpath 'string(//testsuite/@failures)' "$dir/junit.xml") \
$(xmllint --xpath 'string(//testsuite/@skipped)' "$dir/junit.xml") -"
fi
read -r n failures skipped failed <<<"$counts"
check_eq "JUnit testcases" "$n" 8
check_eq "JUnit failures" "$failures" "$want_failures"
check_eq "JUnit skipped" "$skipped" "$want_skipped"
if [ "$1" = queue_mismatch ] && [ "$failed" != "-" ]; then check_eq "JUnit failed testcase" "$failed" multiqueue; fi
if [ "$1" = backend_killed ] && [ "$failed" != "-" ]; then check_eq "JUnit failed testcase" "$failed" traffic; fi
pass "vhost-user-smoke against testpmd ($1): the results, exit status and JUnit XML are as expected"
