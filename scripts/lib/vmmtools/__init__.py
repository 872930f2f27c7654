"""Pieces shared by scripts/vhost-user-smoke and bench/vmm-vs-qemu (standard library only).

procs      processes started in their own process group, stopped by PID on every path
console    console lines stamped with time.monotonic() as they arrive (a reader thread)
jsonlines  newline-delimited JSON clients: QEMU's QMP, vmm's control socket
migration  the guest-visible gap of a live migration, vmm's and QEMU's own figures
rig        direct or nested (tests/rig), the guest image
"""
