#!/usr/bin/env bash
# boot.sh CPUS MEMORY [KERNEL]: boots the real guest image with CPUS vCPUs and MEMORY
# of RAM (e.g. 512M, 6G); the guest reports nproc and MemTotal, then reboots with
# `reboot -f`, and vmm must exit 0. KERNEL: bzImage (default) or vmlinux, the
# uncompressed ELF. CTest runs it as boot_one_vcpu_512m, boot_two_vcpus,
# boot_6g_across_hole and boot_vmlinux.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cpus=${1:?usage: boot.sh CPUS MEMORY}
memory=${2:?usage: boot.sh CPUS MEMORY [bzImage|vmlinux]}
export GUEST_KERNEL=${3:-bzImage}
mem_gib=${memory%G}
# L1 needs room for the guest plus its own few hundred MiB; up to 1G, the rig's
# default 3G does (and the shared rig session can run the test).
if [ "$mem_gib" != "$memory" ] && [ "$mem_gib" -gt 1 ]; then RIG_MEMORY=$((mem_gib + 3))G; fi
guest_test_begin "$0" "$@"

log=$(mktemp)
at_exit "rm -f '$log'"
rc=0
start=$SECONDS
boot_guest "$log" "$GUEST_REPORT" --cpus "$cpus" --memory "$memory" || rc=$?
echo "vmm ran for $((SECONDS - start)) s"
[ "$rc" -eq 0 ] || { tail -n 30 "$log"; fail "vmm exited $rc, want 0 after the guest's reboot -f"; }
check_booted "$log"
check_eq "guest nproc" "$(guest_value "$log" NPROC)" "$cpus"
# CPUID describes one socket with one core per vCPU.
check_eq "guest CPU packages" "$(guest_value "$log" PACKAGES)" 1
check_eq "guest cores" "$(guest_value "$log" CORES)" "$cpus"
check_mem_total "$log" "$(numfmt --from=iec "$memory")"
grep -aq 'guest reset (reboot)' "$log" || fail "vmm did not report the guest's reset"
pass "booted $GUEST_KERNEL with $cpus vCPU(s) and $memory, exit 0 after reboot"
