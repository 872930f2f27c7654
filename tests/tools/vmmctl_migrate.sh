#!/usr/bin/env bash
# vmmctl migrate against a scripted control socket (tests/tools/fake_vmm_api.py):
# the progress lines (one per new round when stdout is not a terminal), the summary
# line, and the exit status: 0 only for a completed migration with a clean verify.
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/vmmctl_lib.sh"
vmmctl_test_begin

# run SCENARIO [VMMCTL-ARGS]: vmmctl migrate against the scenario; sets rc, out, err.
run() {
    local sc=$1
    shift
    vmmctl_run "$sc" migrate unix:/tmp/mig.sock "$@"
    echo "$sc: exit $rc; last line: $(tail -n 1 "$tmp/out")${err:+; stderr: $err}"
}

summary='migration completed in 2140 ms, downtime 11 ms, 3 rounds, 140000 pages sent'
run completed --verify
check_eq "completed, clean verify: exit status" "$rc" 0
check_eq "progress and summary" "$out" "migration: setup
migration: round 1, 0 pages dirtied in the last round, 700.0 MiB/s, expected downtime 300 ms
migration: round 2, 5000 pages dirtied in the last round, 800.5 MiB/s, expected downtime 25 ms
$summary, verify: 131072 pages compared, 0 differ
downtime breakdown: pause 0 ms, stop-devices 3 ms, final-pages 2 ms, verify 1 ms, state 1 ms, destination 4 ms"

run differ --verify
check_eq "completed, 2 pages differ: exit status" "$rc" 1
grep -qx "$summary, verify: 131072 pages compared, 2 differ" <<<"$out" || fail "no summary line"
grep -q 'first: 0x1000, 0x2000' <<<"$out" || fail "the differing pages are not shown"

run no-verify
check_eq "completed without --verify: exit status" "$rc" 0
check_eq "summary without verify" "$(tail -n 1 <<<"$out")" "$summary"

run no-verify --verify
check_eq "--verify but no verify result: exit status" "$rc" 1

run failed --verify
check_eq "failed: exit status" "$rc" 1
check_eq "failed: message" "$err" "vmmctl: migration failed: the destination closed the connection"

run cancelled
check_eq "cancelled: exit status" "$rc" 1
check_eq "cancelled: message" "$err" "vmmctl: migration cancelled"
pass "vmmctl migrate: progress, summary and exit status for each outcome"
