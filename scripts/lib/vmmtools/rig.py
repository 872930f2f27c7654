"""Where guests run: directly on /dev/kvm, or inside the nested rig (tests/rig/README.md)."""

import os
import subprocess

REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def mode():
    """direct or nested, as tests/rig/l1.sh's rig_mode decides: inside L1 always direct;
    VMM_TEST_RIG overrides; nested when this machine's /dev/kvm is PVM."""
    if os.environ.get("VMM_IN_RIG"):
        return "direct"
    forced = os.environ.get("VMM_TEST_RIG", "")
    if forced in ("direct", "nested"):
        return forced
    if forced:
        raise ValueError("VMM_TEST_RIG must be direct or nested, not '%s'" % forced)
    return "nested" if os.path.exists("/sys/module/kvm_pvm") else "direct"


def guest_dir():
    return os.environ.get("VMM_GUEST_DIR") or os.path.join(REPO, "build", "guest")


def ensure_guest_image(directory):
    """Builds the guest images into DIRECTORY when one is missing (on the host side:
    inside the rig the filesystem is read-only). False when that failed."""
    names = ("bzImage", "initramfs.cpio.gz", "rig-initramfs.cpio.gz")
    if all(os.path.isfile(os.path.join(directory, n)) for n in names):
        return True
    if os.environ.get("VMM_IN_RIG"):
        return False
    build = os.path.join(REPO, "guest-images", "build.sh")
    return subprocess.run([build, directory], check=False).returncode == 0
