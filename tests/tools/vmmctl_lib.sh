# shellcheck shell=bash
# What the vmmctl tests share (sourced after tests/integration/lib.sh): vmmctl against
# a scripted control socket (fake_vmm_api.py), no vmm and no guest.
#   vmmctl_test_begin                    # the vmmctl binary ($VMMCTL_BIN), a $tmp dir
#   vmmctl_run SCENARIO VMMCTL-ARGS...   # sets rc, out and err

vmmctl_test_begin() {
    VMMCTL_BIN=${VMMCTL_BIN:-$VMM_REPO_ROOT/build/vmmctl}
    [ -x "$VMMCTL_BIN" ] || fail "vmmctl binary not found at $VMMCTL_BIN"
    tmp=$(mktemp -d)
    at_exit "rm -rf '$tmp'"
}

# vmmctl_run SCENARIO VMMCTL-ARGS...: a fresh fake_vmm_api.py playing SCENARIO on
# $tmp/api, then vmmctl with those arguments against it.
# shellcheck disable=SC2034 # rc, out and err are the sourcing test's
vmmctl_run() {
    local sc=$1
    shift
    rm -f "$tmp/api"
    start_bg python3 "$VMM_REPO_ROOT/tests/tools/fake_vmm_api.py" "$tmp/api" "$sc"
    for _ in $(seq 100); do [ -S "$tmp/api" ] && break; sleep 0.1; done
    rc=0
    "$VMMCTL_BIN" --api-socket "$tmp/api" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}
