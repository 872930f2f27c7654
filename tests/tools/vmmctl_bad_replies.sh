#!/usr/bin/env bash
# vmmctl against replies vmm would never send (tests/tools/fake_vmm_api.py, bad-*
# scenarios): a member missing or of the wrong type, e.g. `nets` missing or a string,
# `first-differing` an object. vmmctl must exit 1 with one error line naming the
# member, never abort (json-c asserts on an array call on a non-array: exit 134).
# The good replies first, to show the same commands print them.
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/vmmctl_lib.sh"
vmmctl_test_begin

# bad SCENARIO WANT-IN-ERROR VMMCTL-ARGS...: exit 1, one error line mentioning WANT.
bad() {
    local sc=$1 want=$2
    shift 2
    vmmctl_run "$sc" "$@"
    echo "$sc: vmmctl $*: exit $rc; stderr: $err"
    check_eq "$sc: exit status" "$rc" 1
    check_eq "$sc: error lines" "$(wc -l <"$tmp/err")" 1
    case $err in
    "vmmctl: "*"$want"*) ;;
    *) fail "$sc: the error line does not mention '$want'" ;;
    esac
}

vmmctl_run status status
check_eq "good status: exit status" "$rc" 0
check_eq "good status: its NIC line" "$(tail -n 1 <<<"$out")" \
    "net0: /tmp/vhost0.sock, connected, link up, 1 queue pair"
vmmctl_run query query-migrate
check_eq "good query-migrate: exit status" "$rc" 0
check_eq "good query-migrate: verify line" "$(grep '^verify' <<<"$out")" \
    "verify: 131072 pages compared, 2 differ (first: 0x1000, 0x2000)"
check_eq "good query-migrate: breakdown line" "$(grep '^downtime breakdown' <<<"$out")" \
    "downtime breakdown: pause 0 ms, stop-devices 3 ms, final-pages 2 ms, verify 1 ms, state 1 ms, destination 4 ms"

bad bad-nets-missing "vmm's reply has no 'nets'" status
bad bad-nets-string "'nets' in vmm's reply is \"net0\", expected an array" status
bad bad-net-number "'nets[0]' in vmm's reply is 7, expected an object" status
bad bad-vcpus-string "'vcpus' in vmm's reply is \"two\", expected a non-negative integer" status
bad bad-first-differing-object "'verify.first-differing' in vmm's reply is" query-migrate
bad bad-first-differing-missing "vmm's reply has no 'verify.first-differing'" query-migrate
bad bad-verify-array "'verify' in vmm's reply is [], expected an object" query-migrate
bad bad-migrate-first-differing-object "'verify.first-differing' in vmm's reply is {}" \
    migrate unix:/tmp/mig.sock --verify
bad bad-migrate-status-missing "vmm's reply has no 'status'" migrate unix:/tmp/mig.sock
bad bad-progress-round-string "'round' in vmm's reply is \"1\"" migrate unix:/tmp/mig.sock
bad bad-breakdown-array "'downtime-breakdown' in vmm's reply is [1,2], expected an object" query-migrate
bad bad-migrate-breakdown-phase "'downtime-breakdown.stop-devices' in vmm's reply is -3, expected a non-negative integer" \
    migrate unix:/tmp/mig.sock
pass "vmmctl: each malformed reply is one error line and exit status 1"
