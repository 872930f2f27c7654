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

# boot_values LOG KEY: the values of every KEY=value line, one per boot, space-separated.
boot_values() { grep -a "^$2=" "$1" | cut -d= -f2- | tr -d '\r' | tr '\n' ' '; }

# boot_twice LOG 'GUEST COMMAND' VMM-OPTIONS...: boots the guest with --on-reboot
# restart, so it runs the command, reboots and runs it again; once the second run has
# ended (400 s at most) vmm is stopped with SIGTERM. Returns vmm's exit status.
boot_twice() {
    local log=$1 run=$2 start=$SECONDS vmm rc=0
    shift 2
    start_bg "$VMM_BIN" --kernel "$GUEST_KERNEL" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
        --cmdline "$GUEST_CMDLINE_BASE vmm.run=\"$run\"" --on-reboot restart "$@" </dev/null >"$log" 2>&1
    vmm=$BG_PID
    until [ "$(grep -ac '^VMM-RUN-EXIT=' "$log")" -ge 2 ]; do
        kill -0 "$vmm" 2>/dev/null || { tail -n 40 "$log"; fail "vmm exited before the second boot finished"; }
        [ $((SECONDS - start)) -lt 400 ] || { tail -n 40 "$log"; fail "no second boot within 400 s"; }
        sleep 0.5
    done
    echo "two boots took $((SECONDS - start)) s"
    kill -TERM "$vmm"
    wait "$vmm" || rc=$?
    return "$rc"
}

# check_two_boots LOG RC: after boot_twice, vmm exited 0 on SIGTERM, the guest command
# succeeded in both boots, the boots had different boot ids (the guest prints
# BOOT_ID=...), and vmm reported the reboot.
check_two_boots() {
    local id1 id2
    check_eq "vmm exit status after SIGTERM" "$2" 0
    [ "$(boot_values "$1" VMM-RUN-EXIT)" = "0 0 " ] || { grep -av '^vmm: debug' "$1" | tail -n 60; }
    check_eq "guest command status, both boots" "$(boot_values "$1" VMM-RUN-EXIT)" "0 0 "
    read -r id1 id2 _ <<<"$(boot_values "$1" BOOT_ID)"
    [ -n "$id2" ] && [ "$id1" != "$id2" ] || fail "boot ids '$id1' and '$id2': want two different boots"
    echo "ok: two boots, boot_id $id1 then $id2"
    grep -aq 'guest reset (reboot 1): restarting it' "$1" || fail "vmm did not report the reboot"
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
