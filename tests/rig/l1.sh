# shellcheck shell=bash
# What rig-run, rig-session and the integration tests share: whether guests run
# here or in the rig, the L1 images and QEMU's command line. Sourced; the rig_*
# functions but rig_mode need $repo (this repository's root).

# direct: run on this machine's /dev/kvm; nested: run inside tests/rig/rig-run.
# This machine's /dev/kvm is PVM (kvm_pvm), too slow for Linux guests: nested there.
rig_mode() {
    if [ -n "${VMM_IN_RIG:-}" ]; then echo direct; return; fi
    case "${VMM_TEST_RIG:-}" in
    direct | nested) echo "$VMM_TEST_RIG" ;;
    "") if [ -e /sys/module/kvm_pvm ]; then echo nested; else echo direct; fi ;;
    *) echo "FAIL: VMM_TEST_RIG must be direct or nested, not '$VMM_TEST_RIG'" >&2; return 1 ;;
    esac
}

rig_guest_dir() { echo "${VMM_GUEST_DIR:-$repo/build/guest}"; }

# rig_ensure_images: builds the guest images if they are missing.
rig_ensure_images() {
    local guest
    guest=$(rig_guest_dir)
    if [ ! -f "$guest/bzImage" ] || [ ! -f "$guest/rig-initramfs.cpio.gz" ]; then
        "$repo/guest-images/build.sh" "$guest" >&2 || return 1
    fi
}

rig_b64() { printf '%s' "$1" | base64 -w 0; }

# rig_qemu_cmd MEMORY SMP APPEND [QEMU-ARGS...]: sets RIG_QEMU to QEMU's command line
# for an L1 with this machine's / (read-only) and the repository shared over 9p, its
# serial line on stdio (its monitor on $RIG_MONITOR if set). APPEND is added to L1's
# kernel command line, which is left in RIG_CMDLINE.
rig_qemu_cmd() {
    local memory=$1 smp=$2 append=$3 guest
    shift 3
    guest=$(rig_guest_dir)
    # kvm_amd.npt=0 (APPEND can say npt=1; the last one wins): with nested paging, two
    # L2 vCPUs running at once on both L1 vCPUs now and then reset silently under TCG
    # (a triple fault reported at the reset vector, a 2-vCPU boot in about 1 of 20).
    # L2 boots take about as long without it.
    # nokaslr: the symbols tests/rig/rig-where saved from one L1 name every L1's RIPs.
    RIG_CMDLINE="console=ttyS0 reboot=k panic=-1 nokaslr kvm_amd.npt=0 $append rig.repo=$(rig_b64 "$repo")"
    RIG_QEMU=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$memory" -smp "$smp"
        -nodefaults -display none -no-reboot -serial stdio
        -kernel "$guest/bzImage" -initrd "$guest/rig-initramfs.cpio.gz"
        -append "$RIG_CMDLINE"
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
        -virtfs local,path="$repo",mount_tag=repo,security_model=none,readonly=on,multidevs=remap
        "$@")
    # RIG_MONITOR: a socket for QEMU's monitor, for tests/rig/rig-where.
    [ -z "${RIG_MONITOR:-}" ] || RIG_QEMU+=(-monitor "unix:$RIG_MONITOR,server=on,wait=off")
}
