#!/usr/bin/env bash
# Builds the guest images used by the integration tests, from Debian packages only:
#   bzImage               Debian's kernel (the vmlinuz of the linux-image-amd64 kernel)
#   vmlinux               the same kernel uncompressed: the ELF inside the bzImage, for
#                         vmm --kernel vmlinux (no decompression in the guest)
#   initramfs.cpio.gz     L2 test guest: busybox + virtio modules, /init = guest-init,
#                         pktgen.ko (not loaded at boot), /bin/vmm-pktgen,
#                         /bin/vmm-memtest (the migration tests' workload) and
#                         /bin/vmm-smoke-guest (scripts/vhost-user-smoke's guest side),
#                         /bin/vmm-tick (a console line every 50 ms: the migration gap)
#   rig-initramfs.cpio.gz L1 rig: busybox + kvm/kvm-amd/9p modules, /init = rig-init
# Usage: guest-images/build.sh [OUTDIR]   (default: <repo>/build/guest)
# Downloaded .deb files are cached in ${VMM_CACHE_DIR:-$HOME/.cache/vmm-guest}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/build/guest}
cache=${VMM_CACHE_DIR:-$HOME/.cache/vmm-guest}
busybox=/bin/busybox

die() { echo "guest-images/build.sh: $*" >&2; exit 1; }

[ -x "$busybox" ] || die "$busybox missing: apt-get install busybox-static"
"$busybox" --list-full >/dev/null 2>&1 || die "$busybox is not busybox-static"

# The kernel package that linux-image-amd64 points at (e.g. linux-image-6.1.0-56-amd64).
# Without apt lists, fall back to the newest cached one.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }') || true
mkdir -p "$cache"
if [ -n "$kpkg" ]; then
    deb=$(find "$cache" -maxdepth 1 -name "${kpkg}_*_amd64.deb" | sort -V | tail -n 1)
else
    deb=$(find "$cache" -maxdepth 1 -name 'linux-image-[0-9]*_amd64.deb' | sort -V | tail -n 1)
    [ -n "$deb" ] || die "cannot resolve linux-image-amd64 (run apt-get update) and no cached kernel .deb in $cache"
fi
if [ -z "$deb" ]; then
    # Run apt as the caller (no _apt sandbox): the cache dir belongs to the caller.
    (cd "$cache" && apt-get -q -o APT::Sandbox::User="$(id -un)" download "$kpkg" >/dev/null 2>&1) ||
        die "cannot download the kernel package $kpkg (apt-get download failed; is the Debian mirror reachable?)"
    deb=$(find "$cache" -maxdepth 1 -name "${kpkg}_*_amd64.deb" | sort -V | tail -n 1)
    [ -n "$deb" ] || die "apt-get download $kpkg left no .deb in $cache"
fi

# Up to date: every output newer than every input.
outputs=("$out/bzImage" "$out/vmlinux" "$out/initramfs.cpio.gz" "$out/rig-initramfs.cpio.gz")
inputs=("$deb" "$(readlink -f "$busybox")" "${BASH_SOURCE[0]}" "$here/guest-init" "$here/rig-init"
        "$here/vmm-pktgen" "$here/vmm-memtest.c" "$here/vmm-smoke-guest" "$here/vmm-tick"
        "$here/rig-kvm-holder.c")
uptodate() {
    local o i
    for o in "${outputs[@]}"; do
        for i in "${inputs[@]}"; do [ "$o" -nt "$i" ] || return 1; done
    done
}
if uptodate; then
    echo "guest images up to date in $out"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/kernel"
mods=$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -d "$mods/kernel" ] || die "no modules in $deb"

# mkroot DIR INIT MODULE...: busybox with its applet symlinks, the named modules
# (flat in /lib/modules, absent ones skipped), INIT as /init.
mkroot() {
    local root=$1 init=$2 m f link
    shift 2
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,lib/modules}
    cp "$busybox" "$root/bin/busybox"
    # Like `busybox --install -s`, but at build time from the applet list.
    while IFS= read -r link; do
        [ -e "$root/$link" ] || ln -s /bin/busybox "$root/$link"
    done < <("$busybox" --list-full)
    for m in "$@"; do
        f=$(find "$mods/kernel" -name "$m.ko" | head -n 1)
        if [ -n "$f" ]; then cp "$f" "$root/lib/modules/"; fi
    done
    install -m 0755 "$init" "$root/init"
}

# mkcpio DIR FILE: newc cpio, files owned by root, gzip, replaced atomically.
mkcpio() {
    (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$2.tmp"
    mv "$2.tmp" "$2"
}

mkroot "$work/l2" "$here/guest-init" \
    virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
    failover net_failover virtio_net pktgen
# Traffic generator for the NIC tests: pktgen.ko stays in /lib/modules until used.
install -m 0755 "$here/vmm-pktgen" "$work/l2/bin/vmm-pktgen"
# The guest side of scripts/vhost-user-smoke: commands it sends over the console.
install -m 0755 "$here/vmm-smoke-guest" "$work/l2/bin/vmm-smoke-guest"
# Ticks on the console, stamped by the host on both sides of a live migration.
install -m 0755 "$here/vmm-tick" "$work/l2/bin/vmm-tick"
# The migration tests' workload: a pattern it rewrites and checks, and a heartbeat.
gcc -static -O2 -Wall -Wextra -Werror -o "$work/l2/bin/vmm-memtest" "$here/vmm-memtest.c" ||
    die "cannot build vmm-memtest (gcc and the static glibc from libc6-dev are needed)"
mkroot "$work/rig" "$here/rig-init" \
    irqbypass kvm ccp kvm-amd virtio_ring virtio virtio_pci_modern_dev \
    virtio_pci_legacy_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p
# Keeps L1's KVM from patching its own code as L2 guests come and go (see the file).
gcc -static -O2 -Wall -Wextra -Werror -o "$work/rig/bin/rig-kvm-holder" "$here/rig-kvm-holder.c" ||
    die "cannot build rig-kvm-holder (gcc and the static glibc from libc6-dev are needed)"

# extract_vmlinux BZIMAGE OUT: the compressed payload the setup header points at
# (payload_offset/payload_length, boot protocol 2.08+, from the protected-mode code
# after setup_sects+1 sectors), decompressed: an ELF vmlinux. Debian compresses it
# with xz; the build appends the size after the stream, hence --single-stream.
extract_vmlinux() {
    local sects off len
    sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$1" | tr -d ' ')
    [ "$sects" != 0 ] || sects=4
    read -r off len < <(od -An -tu4 -j $((0x248)) -N8 "$1")
    [ "${len:-0}" -gt 0 ] || die "$1 has no payload to extract a vmlinux from"
    dd if="$1" iflag=skip_bytes,count_bytes skip=$(((sects + 1) * 512 + off)) count="$len" \
        bs=1M status=none | xz -dc --single-stream >"$2" ||
        die "cannot decompress the payload of $1 (not xz?)"
    [ "$(head -c 4 "$2" | od -An -c | tr -d ' ')" = '177ELF' ] || die "the payload of $1 is not an ELF"
}

mkdir -p "$out"
mkcpio "$work/l2" "$out/initramfs.cpio.gz"
mkcpio "$work/rig" "$out/rig-initramfs.cpio.gz"
cp "$(find "$work/kernel/boot" -name 'vmlinuz-*' | head -n 1)" "$out/bzImage.tmp"
extract_vmlinux "$out/bzImage.tmp" "$out/vmlinux.tmp"
mv "$out/vmlinux.tmp" "$out/vmlinux"
mv "$out/bzImage.tmp" "$out/bzImage"
echo "guest images built in $out from $(basename "$deb")"
