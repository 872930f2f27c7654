# shellcheck shell=bash
# Helpers for tests that boot the real guest image with vmm (sourced after lib.sh).

VMM_BIN=${VMM_BIN:-$VMM_REPO_ROOT/build/vmm}
GUEST_DIR=$(guest_image_dir)
# quiet: each console byte is a VM exit, which is slow in the nested rig.
GUEST_CMDLINE_BASE="console=ttyS0 reboot=k quiet i8042.noaux i8042.nomux i8042.dumbkbd"
# The kernel boot_guest boots: the bzImage, or (GUEST_KERNEL=vmlinux) the ELF inside it.
GUEST_KERNEL=$GUEST_DIR/${GUEST_KERNEL:-bzImage}

[ -x "$VMM_BIN" ] || fail "vmm binary not found at $VMM_BIN (build first, or set VMM_BIN)"

# boot_guest LOG 'GUEST COMMAND' VMM-OPTIONS...: boots the guest, which runs the
# command and reboots; vmm's stdout+stderr go to LOG. Returns vmm's exit status
# (124 if it did not finish within ${GUEST_TIMEOUT:-300} s).
boot_guest() {
    local log=$1 run=$2 rc=0
    shift 2
    start_bg timeout -k 5 "${GUEST_TIMEOUT:-300}" "$VMM_BIN" \
        --kernel "$GUEST_KERNEL" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
        --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$run\"" "$@" </dev/null >"$log" 2>&1
    wait "$BG_PID" || rc=$?
    return "$rc"
}

# guest_value LOG KEY: the value of the first KEY=value line the guest printed.
guest_value() {
    grep -a -m1 "^$2=" "$1" | cut -d= -f2- | tr -d '\r'
}

# check_booted LOG: the guest reached /init and its command ran to the end.
check_booted() {
    grep -aq '^VMM-GUEST-UP uptime=' "$1" || { cat "$1"; fail "the guest never reached /init"; }
    echo "ok: guest reached /init at uptime $(grep -a -m1 '^VMM-GUEST-UP' "$1" | cut -d= -f2) s"
    check_eq "guest command status" "$(guest_value "$1" VMM-RUN-EXIT)" 0
}

# check_mem_total LOG BYTES: the guest's MemTotal is between 80% and 100% of BYTES.
check_mem_total() {
    local kb want_kb=$(($2 / 1024))
    kb=$(grep -a -m1 '^MemTotal:' "$1" | awk '{print $2}')
    [ -n "$kb" ] || fail "the guest printed no MemTotal"
    if [ "$kb" -gt "$want_kb" ] || [ "$kb" -lt $((want_kb * 8 / 10)) ]; then
        fail "guest MemTotal ${kb} kB is not within 80-100% of ${want_kb} kB"
    fi
    echo "ok: guest MemTotal ${kb} kB for ${want_kb} kB of RAM"
}

# The guest command that reports what the boot tests check. It sits inside
# vmm.run="..." on the kernel command line, so it cannot contain double quotes.
GUEST_REPORT='echo NPROC=$(nproc); grep MemTotal /proc/meminfo; echo PACKAGES=$(cat /sys/devices/system/cpu/cpu*/topology/physical_package_id | sort -u | wc -l); echo CORES=$(cat /sys/devices/system/cpu/cpu*/topology/core_id | sort -u | wc -l)'
