# shellcheck shell=bash
# What rig-run and rig-session share: the L1 images and QEMU's command line.
# Sourced; needs $repo (this repository's root).

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
# serial line on stdio. APPEND is added to L1's kernel command line, which is left
# in RIG_CMDLINE.
rig_qemu_cmd() {
    local memory=$1 smp=$2 append=$3 guest
    shift 3
    guest=$(rig_guest_dir)
    RIG_CMDLINE="console=ttyS0 reboot=k panic=-1 $append rig.repo=$(rig_b64 "$repo")"
    RIG_QEMU=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$memory" -smp "$smp"
        -nodefaults -display none -no-reboot -serial stdio
        -kernel "$guest/bzImage" -initrd "$guest/rig-initramfs.cpio.gz"
        -append "$RIG_CMDLINE"
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
        -virtfs local,path="$repo",mount_tag=repo,security_model=none,readonly=on,multidevs=remap
        "$@")
}
