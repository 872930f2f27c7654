#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are checked in; rerun this after changing an input format:
    python3 tests/fuzz/make_seeds.py [BUILD_DIR]
Most seeds are built here. fuzz_device_state's real saves (a virtio-pci function at
power-on and started by a guest) come from the target itself: with a BUILD_DIR
(default build/) holding tests/fuzz/fuzz_device_state, it is run with
VMM_FUZZ_WRITE_SEEDS; without one those seeds are left as they are.
"""
import os
import subprocess
import sys
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_vhost_user -----------------------------------------------------------------
# flags, op count - 1, ops, then chunks [u16 len][u8 ctl][bytes]

F_REPLY_ACK, F_SEND_FD, F_IOMMU, F_TRACE = 0x01, 0x02, 0x04, 0x08
REPLY, NEED_REPLY, VERSION = 0x4, 0x8, 0x1
BACKEND = 0x80  # chunk goes to the backend-request channel
FD_EVENTFD, FD_MEMFD = 0x10, 0x20


def op_backend():
    return 0


def op_get(n):
    return 1 | n << 2


def op_ring(n):
    return 2 | n << 2


def op_set(n):
    return 3 | n << 2


def msg(request, flags, payload=b""):
    return struct.pack("<III", request, flags, len(payload)) + payload


def chunk(data, ctl=0):
    return struct.pack("<HB", len(data), ctl) + data


def vu_input(flags, ops, *chunks):
    return bytes([flags, len(ops) - 1]) + bytes(ops) + b"".join(chunks)


def u64(v):
    return struct.pack("<Q", v)


SUPPORTED = sum(1 << b for b in (0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 13, 15, 16))


def vhost_user_seeds():
    rep = VERSION | REPLY
    write("vhost_user", "get_features", vu_input(
        F_TRACE, [op_get(0)], chunk(msg(1, rep, u64((1 << 32) | (1 << 30))))))
    write("vhost_user", "get_vring_base", vu_input(
        F_TRACE, [op_get(2)], chunk(msg(11, rep, struct.pack("<II", 1, 7)))))
    write("vhost_user", "negotiate_mq", vu_input(0, [op_get(7)],
        chunk(msg(1, rep, u64((1 << 32) | (1 << 30)))),
        chunk(msg(15, rep, u64(SUPPORTED))),
        chunk(msg(17, rep, u64(2)))))
    write("vhost_user", "get_config", vu_input(
        F_TRACE, [op_get(4)], chunk(msg(24, rep, struct.pack("<III", 0, 12, 0) + bytes(range(12))))))
    write("vhost_user", "get_status", vu_input(0, [op_get(5)], chunk(msg(40, rep, u64(0x0f)))))
    write("vhost_user", "set_owner_reply_ack", vu_input(
        F_REPLY_ACK | F_TRACE, [op_set(2)], chunk(msg(3, rep, u64(0)))))
    write("vhost_user", "set_mem_table_ack_fails", vu_input(
        F_REPLY_ACK, [op_set(3), op_set(2)], chunk(msg(5, rep, u64(1))), chunk(msg(3, rep, u64(0)))))
    write("vhost_user", "set_log_base_16", vu_input(
        F_TRACE, [op_set(4)], chunk(msg(6, rep, u64(0x1000) + u64(0)))))
    write("vhost_user", "iotlb_msg_ack", vu_input(
        F_IOMMU, [op_set(9)], chunk(msg(22, rep, u64(0)))))
    write("vhost_user", "backend_config_change", vu_input(
        F_TRACE, [op_backend()], chunk(msg(2, VERSION | NEED_REPLY), BACKEND)))
    write("vhost_user", "backend_host_notifier_fd", vu_input(
        F_SEND_FD | F_TRACE, [op_backend(), op_backend()],
        chunk(msg(3, VERSION | NEED_REPLY, u64(1) + u64(0x1000) + u64(0)), BACKEND | FD_MEMFD | 1),
        chunk(msg(3, VERSION, u64(1 | 0x100) + u64(0) + u64(0)), BACKEND)))
    iotlb = u64(0x1000) + u64(0x1000) + u64(0x7f0000000000) + bytes([3, 2]) + bytes(6)
    write("vhost_user", "backend_iotlb", vu_input(
        F_IOMMU, [op_backend()], chunk(msg(1, VERSION, iotlb), BACKEND)))
    write("vhost_user", "mixed_sequence", vu_input(
        F_REPLY_ACK | F_SEND_FD, [op_get(0), op_ring(3), op_backend(), op_get(2)],
        chunk(msg(1, rep, u64(1 << 32))),
        chunk(msg(12, rep, u64(0))),
        chunk(msg(2, VERSION | NEED_REPLY), BACKEND),
        chunk(msg(11, rep, struct.pack("<II", 1, 0)))))


# ---- fuzz_guest -----------------------------------------------------------------------
# header: backend features u64, queue pairs - 1, flags, MTU u16, 4 reserved bytes;
# ops: target, ctl (bit 0 write, bits 1-2 log2 size), offset u16, value u32

T_PIO, T_BAR4, T_BAR1, T_CONFIG, T_RAM, T_CONSOLE, T_LOOP, T_SYSTEM = range(8)
PIO_CF8, PIO_UART, PIO_KBD_DATA, PIO_KBD_CMD, PIO_RTC = range(5)
SIZE_LOG = {1: 0, 2: 1, 4: 2, 8: 3}
MSIX_CTRL = 0x86  # after the four virtio capabilities (0x40-0x83)
VERSION_1, EVENT_IDX, INDIRECT, MRG_RXBUF = 1 << 32, 1 << 29, 1 << 28, 1 << 15


def header(features=VERSION_1 | EVENT_IDX | INDIRECT | MRG_RXBUF, pairs=1, flags=1, mtu=1500):
    return struct.pack("<QBBHI", features, pairs - 1, flags, mtu, 0)


def op(target, offset, size=1, value=0, wr=True):
    ctl = (1 if wr else 0) | SIZE_LOG[size] << 1
    return struct.pack("<BBHI", target, ctl, offset, value & 0xffffffff)


def rd(target, offset, size=1):
    return op(target, offset, size, 0, False)


def pio(dev, port_off, size=1, value=0, wr=True):
    return op(T_PIO, dev << 8 | port_off, size, value, wr)


def cfg_addr(slot, reg):
    return pio(PIO_CF8, 0, 4, 0x80000000 | slot << 11 | reg)


def pci_enumeration():
    ops = []
    for slot in (0, 1, 2):
        for reg in (0x00, 0x08, 0x0c, 0x2c, 0x34):
            ops += [cfg_addr(slot, reg), pio(PIO_CF8, 4, 4, wr=False)]
    # BAR sizing: all ones, read back, restore where the registry placed them (BAR1 in
    # the 32-bit window, BAR4-5 a 64-bit BAR at 0x200000000)
    placed = [0, 0xc0000000, 0, 0, 0x0000000c, 0x2]
    for bar in range(6):
        reg = 0x10 + 4 * bar
        ops += [cfg_addr(1, reg), pio(PIO_CF8, 4, 4, wr=False), pio(PIO_CF8, 4, 4, 0xffffffff),
                pio(PIO_CF8, 4, 4, wr=False), pio(PIO_CF8, 4, 4, placed[bar])]
    for cap in (0x40, 0x50, 0x60, 0x70, 0x84):  # walk the capability list, bytewise
        ops += [cfg_addr(1, cap), pio(PIO_CF8, 4, 1, wr=False), pio(PIO_CF8, 5, 1, wr=False),
                pio(PIO_CF8, 6, 2, wr=False)]
    ops += [cfg_addr(1, 0x04), pio(PIO_CF8, 4, 2, 0x0006)]  # memory decode and bus master
    return ops


def common(off, size, value):
    return op(T_BAR4, off, size, value)


def ram(gpa, data):
    data += bytes(-len(data) % 4)
    return [op(T_RAM, gpa + i, 4, struct.unpack_from("<I", data, i)[0])
            for i in range(0, len(data), 4)]


# The control queue's rings and buffers, low in RAM so that a RAM image covering them
# stays small; the data queues' rings sit at 0x8000 and up.
DESC, AVAIL, USED, BUFS, TABLES = 0x100, 0x200, 0x280, 0x400, 0x600


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def setup_queue(q, size, base):
    return [common(0x16, 2, q), common(0x18, 2, size), common(0x1a, 2, q),
            common(0x20, 4, base + DESC), common(0x24, 4, 0),
            common(0x28, 4, base + AVAIL), common(0x2c, 4, 0),
            common(0x30, 4, base + USED), common(0x34, 4, 0), common(0x1c, 2, 1)]


NET_ACKED = VERSION_1 | EVENT_IDX | 1 << 5 | 1 << 16 | 1 << 17 | 1 << 18 | 1 << 23


def virtio_start(pairs=1, late_ctrl=False):
    acked = NET_ACKED | (1 << 22 if pairs > 1 else 0)  # MQ is offered with queues > 1
    ops = [op(T_CONFIG, 0x04, 2, 0x0006), op(T_CONFIG, MSIX_CTRL, 2, 0x8000)]
    for v in range(2 * pairs + 2):  # MSI-X entries: address, data, unmask
        ops += [op(T_BAR1, 16 * v, 4, 0xfee00000), op(T_BAR1, 16 * v + 8, 4, 0x30 + v),
                op(T_BAR1, 16 * v + 12, 4, 0)]
    ops += [common(0x14, 1, 0), common(0x14, 1, 1), common(0x14, 1, 3)]
    ops += [common(0x00, 4, 0), rd(T_BAR4, 0x04, 4), common(0x00, 4, 1), rd(T_BAR4, 0x04, 4)]
    ops += [common(0x08, 4, 0), common(0x0c, 4, acked & 0xffffffff),
            common(0x08, 4, 1), common(0x0c, 4, acked >> 32)]
    ops += [common(0x14, 1, 0xb), rd(T_BAR4, 0x14, 1), common(0x10, 2, 2 * pairs + 1)]
    for q in range(2 * pairs + 1):
        ops += setup_queue(q, 16, 0x8000 + 0x1000 * q if q < 2 * pairs else 0)
    if late_ctrl:  # the control queue enabled only after DRIVER_OK
        del ops[len(ops) - 1 - ops[::-1].index(common(0x1c, 2, 1))]
        ops += [common(0x14, 1, 0xf), common(0x16, 2, 2 * pairs), common(0x1c, 2, 1)]
    ops += [common(0x14, 1, 0xf), rd(T_BAR4, 0x14, 1)]
    return ops


def ctrl_command(pairs, head, data, indirect=False):
    """A control command at avail slot `head` of the control queue (rings at 0)."""
    cmd_gpa, ack_gpa = BUFS + 0x40 * head, BUFS + 0x40 * head + 0x30
    ops = ram(cmd_gpa, data)
    chain = desc(cmd_gpa, len(data), 1, head * 4 + 1) + desc(ack_gpa, 1, 2)
    if indirect:
        table = TABLES + 0x40 * head
        ops += ram(table, desc(cmd_gpa, len(data), 1, 1) + desc(ack_gpa, 1, 2))
        ops += ram(DESC + 16 * head * 4, desc(table, 32, 4))
    else:
        ops += ram(DESC + 16 * head * 4, chain)
    ops += ram(AVAIL + 4 + 2 * head, struct.pack("<H", head * 4))
    ops += ram(AVAIL + 2, struct.pack("<H", head + 1))
    ops += [op(T_BAR4, 0x3000 + 4 * 2 * pairs, 2, 2 * pairs), op(T_LOOP, 0)]
    return ops


def ctrl_image(pairs, commands, event_idx=True):
    """A RAM image of the control queue holding commands (head i at avail slot i), and the
    op that loads it at 0 and kicks the queue."""
    image = bytearray(0x700)

    def put(gpa, data):
        image[gpa:gpa + len(data)] = data

    for head, (data, indirect) in enumerate(commands):
        cmd_gpa, ack_gpa = BUFS + 0x40 * head, BUFS + 0x40 * head + 0x30
        put(cmd_gpa, data)
        if indirect:
            table = TABLES + 0x40 * head
            put(table, desc(cmd_gpa, len(data), 1, 1) + desc(ack_gpa, 1, 2))
            put(DESC + 16 * head * 4, desc(table, 32, 4))
        else:
            put(DESC + 16 * head * 4, desc(cmd_gpa, len(data), 1, head * 4 + 1) +
                desc(ack_gpa, 1, 2))
        put(AVAIL + 4 + 2 * head, struct.pack("<H", head * 4))
    put(AVAIL + 2, struct.pack("<H", len(commands)))
    if event_idx:
        put(AVAIL + 4 + 2 * 16, struct.pack("<H", 0))  # used_event
    return op(T_SYSTEM, 0, 4, 2) + bytes(image)


def uart_init():
    u = lambda off, v: pio(PIO_UART, off, 1, v)
    r = lambda off: pio(PIO_UART, off, 1, wr=False)
    ops = [u(3, 0x80), u(0, 0x01), u(1, 0x00), u(3, 0x03), u(2, 0xc7), u(4, 0x0b), u(1, 0x0f)]
    ops += [r(2), r(5), r(6), u(0, ord("A")), r(2), r(5)]
    ops += [u(4, 0x1f), r(6), u(0, 0x55), r(5), r(0), u(4, 0x0b)]  # loopback test
    ops += [op(T_CONSOLE, 0, 4, 0x0a6c7300), r(2), r(5), r(0), r(0), r(0), r(0), r(5), r(2)]
    return ops


def legacy():
    return [pio(PIO_KBD_CMD, 0, 1, wr=False), pio(PIO_KBD_CMD, 0, 1, 0x20),
            pio(PIO_KBD_DATA, 0, 1, wr=False), pio(PIO_KBD_CMD, 0, 1, 0xaa),
            pio(PIO_KBD_DATA, 0, 1, wr=False), pio(PIO_RTC, 0, 1, 0x0a),
            pio(PIO_RTC, 1, 1, wr=False), pio(PIO_RTC, 0, 1, 0x00), pio(PIO_RTC, 1, 1, wr=False),
            pio(PIO_KBD_CMD, 0, 1, 0xfe)]


def guest_seeds():
    write("guest", "pci_enumeration", header() + b"".join(pci_enumeration()))
    write("guest", "uart_init", header() + b"".join(uart_init()))
    write("guest", "legacy_ports", header() + b"".join(legacy()))
    start = virtio_start()
    write("guest", "virtio_start", header() + b"".join(pci_enumeration() + start))
    rx = bytes([0, 0, 1])  # CTRL_RX PROMISC on
    mac = bytes([1, 1]) + bytes([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc])  # CTRL_MAC ADDR_SET
    write("guest", "virtio_ctrl_commands", header() + b"".join(
        start + ctrl_command(1, 0, rx) + ctrl_command(1, 1, mac, indirect=True)))
    mq = bytes([4, 0]) + struct.pack("<H", 2)  # CTRL_MQ VQ_PAIRS_SET 2
    start2 = virtio_start(2)
    write("guest", "virtio_two_pairs_mq", header(pairs=2) + b"".join(
        start2 + ctrl_command(2, 0, mq) + [common(0x14, 1, 0)] + start2 +
        [op(T_SYSTEM, 0, 4, 0)]))
    mac_table = bytes([1, 0]) + struct.pack("<I", 1) + bytes(6) + struct.pack("<I", 0)
    write("guest", "ctrl_queue_image", header() + b"".join(start) + ctrl_image(1, [
        (rx, False), (mac, True), (mac_table, False), (bytes([4, 0, 1, 0]), False)]))
    # Once crashes (fixed): DRIVER_OK cleared and set again wired the live device twice;
    # a reset unwatched a control queue that was enabled only after DRIVER_OK.
    write("guest", "virtio_status_cleared_then_set", header() + b"".join(
        start + [common(0x14, 1, 0x0b), common(0x14, 1, 0x0f), op(T_SYSTEM, 0, 4, 0)]))
    write("guest", "virtio_ctrl_queue_enabled_late", header() + b"".join(
        virtio_start(late_ctrl=True) + [op(T_SYSTEM, 0, 4, 0)]))
    write("guest", "virtio_reset_and_restart", header(flags=0) + b"".join(
        start + [common(0x14, 1, 0), op(T_BAR1, 0x800, 8, wr=False)] + start +
        [op(T_CONFIG, MSIX_CTRL, 2, 0xc000), op(T_BAR1, 12, 4, 1), op(T_LOOP, 0),
         op(T_CONFIG, 0x04, 2, 0), op(T_CONFIG, 0x20, 4, 0x10000000), op(T_CONFIG, 0x04, 2, 6)]))


# ---- fuzz_kvm_state ----------------------------------------------------------------
# kind byte (0x80: VM blob), host byte, then the blob (kvm/vcpu_state.h, vm_state.h)

VCPU_MAGIC, VM_MAGIC = 0x55504356, 0x4D564B56
HAS_XSAVE, HAS_XCRS, HAS_EVENTS, HAS_MP, HAS_DEBUGREGS = 1, 2, 4, 8, 16
SIZES = {"regs": 144, "sregs": 312, "fpu": 416, "xsave": 4096, "xcrs": 392, "msr": 16,
         "lapic": 1024, "events": 64, "mp": 4, "dbg": 128, "irqchip": 520, "pit": 112,
         "clock": 48}
MSR_TSC, MSR_LSTAR, MSR_DEADLINE = 0x10, 0xC0000082, 0x6E0


def part(name, fill=0):
    return bytes([fill]) * SIZES[name]


def vcpu_blob(parts, fpu_size=None, msrs=((MSR_TSC, 1 << 40), (MSR_LSTAR, 0xffffffff81000000))):
    if fpu_size is None:
        fpu_size = SIZES["xsave"] if parts & HAS_XSAVE else SIZES["fpu"]
    regs = bytearray(SIZES["regs"])
    struct.pack_into("<QQ", regs, 16 * 8, 0x1000000, 0x2)  # rip, rflags
    b = struct.pack("<6I", VCPU_MAGIC, 1, parts, fpu_size, len(msrs), 0)
    b += bytes(regs) + part("sregs") + bytes(fpu_size)
    if parts & HAS_XCRS:
        b += struct.pack("<II", 1, 0) + struct.pack("<IIQ", 0, 0, 3) + bytes(SIZES["xcrs"] - 24)
    b += b"".join(struct.pack("<IIQ", i, 0, v) for i, v in msrs)
    b += part("lapic")
    if parts & HAS_EVENTS:
        b += part("events")
    if parts & HAS_MP:
        b += struct.pack("<I", 0)
    if parts & HAS_DEBUGREGS:
        b += part("dbg")
    return b


def vm_blob(parts):
    b = struct.pack("<4I", VM_MAGIC, 1, parts, 0)
    b += b"".join(struct.pack("<II", i, 0) + bytes(512) for i in range(3))
    if parts & 1:
        b += part("pit")
    if parts & 2:
        b += struct.pack("<Q", 1000000000000) + bytes(40)
    return b


def kvm_state_seeds():
    all_parts = HAS_XSAVE | HAS_XCRS | HAS_EVENTS | HAS_MP | HAS_DEBUGREGS
    write("kvm_state", "vcpu_all_parts_xsave", bytes([0, 0x1f]) + vcpu_blob(all_parts))
    write("kvm_state", "vcpu_fpu_no_xsave", bytes([0, 0x1e]) + vcpu_blob(all_parts & ~HAS_XSAVE))
    write("kvm_state", "vcpu_xsave2_amx", bytes([0, 0x3f]) + vcpu_blob(all_parts, 11008))
    write("kvm_state", "vcpu_minimal", bytes([0, 0]) + vcpu_blob(0, msrs=()))
    write("kvm_state", "vcpu_tsc_deadline", bytes([0, 0x1f]) + vcpu_blob(
        all_parts, msrs=((MSR_TSC, 5), (MSR_DEADLINE, 6), (0x4b564d01, 0x1001))))
    write("kvm_state", "vcpu_parts_host_lacks", bytes([0, 0x01]) + vcpu_blob(all_parts))
    for parts in range(4):
        write("kvm_state", "vm_parts_%d" % parts, bytes([0x80, 3]) + vm_blob(parts))


# ---- fuzz_migration_stream -----------------------------------------------------------
# reader-size byte, then the stream (vmm/migration_stream.h) for the harness's machine:
# RAM [0, 1 MiB) and [4 GiB, +256 KiB), 2 vCPUs, one NIC of 2 queue pairs

MIG_RAM, MIG_ZERO, MIG_VM, MIG_VCPU, MIG_DEVICE, MIG_VERIFY, MIG_END = range(1, 8)
LOW, HIGH_GPA, HIGH = 1 << 20, 1 << 32, 256 << 10


def mig_header(flags=0, version=1, ncpus=2, magic=b"VMMMIGR\0"):
    return (magic + struct.pack("<IIQII", version, ncpus, LOW + HIGH, 2, 1) +
            struct.pack("<4Q", 0, LOW, HIGH_GPA, HIGH) + struct.pack("<4I", 2, 0, 0, 0) +
            struct.pack("<II", flags, 0))


def rec(rtype, a=0, b=0, payload=b""):
    return struct.pack("<IIQQ", rtype, 0, a, b) + payload


def serial_state(rx=b""):
    return struct.pack("<10BI", 1, 0, 5, 0xc1, 3, 0xb, 0x60, 0xb0, 0, 0, len(rx)) + rx


def i8042_state(queued=b"", pending=0):
    return struct.pack("<3B", 0x47, pending, len(queued)) + queued


def rtc_state():
    cmos = bytearray(128)
    cmos[0x0a], cmos[0x0b], cmos[0x0d], cmos[0x10] = 0x26, 0x02, 0x80, 0x42
    return bytes([0x10]) + bytes(cmos)


def device(id_, state):
    return rec(MIG_DEVICE, len(id_), len(state), id_ + state)


def mig_machine_state(ncpus=2):
    out = b""
    for i in range(ncpus):
        blob = vcpu_blob(HAS_XSAVE | HAS_XCRS | HAS_EVENTS | HAS_MP | HAS_DEBUGREGS)
        out += rec(MIG_VCPU, i, len(blob), blob)
    blob = vm_blob(3)
    out += rec(MIG_VM, 0, len(blob), blob)
    out += device(b"serial0", serial_state(b"x"))
    out += device(b"i8042", i8042_state(b"\xfa", 0x60))
    out += device(b"rtc", rtc_state())
    return out


def migration_stream_seeds():
    page = bytes(range(256)) * 16
    ram = (rec(MIG_RAM, 0x1000, 2, page * 2) + rec(MIG_ZERO, 0x3000, 1) +
           rec(MIG_RAM, HIGH_GPA + HIGH - 0x1000, 1, page) + rec(MIG_ZERO, LOW - 0x100000, 256))
    hashes = rec(MIG_VERIFY, (LOW + HIGH) // 4096, 0, bytes(8 * ((LOW + HIGH) // 4096)))
    end = rec(MIG_END)
    write("migration_stream", "full_stream", bytes([0]) + mig_header() + ram +
          mig_machine_state() + end)
    write("migration_stream", "verified_small_reader", bytes([2]) + mig_header(1) + ram +
          hashes + mig_machine_state() + end)
    write("migration_stream", "snapshot_tiny_reader", bytes([3]) + mig_header() + ram +
          mig_machine_state() + end)
    write("migration_stream", "truncated_in_a_page", bytes([1]) + mig_header() + ram[:100])
    write("migration_stream", "pages_outside_ram", bytes([0]) + mig_header() +
          rec(MIG_RAM, LOW, 1, page) + end)
    write("migration_stream", "other_version", bytes([0]) + mig_header(version=2) + end)
    write("migration_stream", "vcpu_index_too_big", bytes([0]) + mig_header() +
          rec(MIG_VCPU, 2, 4, b"abcd") + end)
    write("migration_stream", "unknown_device", bytes([0]) + mig_header() +
          device(b"net0", b"VNET") + end)


# ---- fuzz_device_state ---------------------------------------------------------------
# selector (0 UART, 1 i8042, 2 RTC, 3 PCI config, 4 MSI-X, 5 virtio, 6 virtio patch)

def device_state_seeds(build):
    write("device_state", "serial_loopback", bytes([0]) + serial_state(b"hello"))
    write("device_state", "i8042_pending_write", bytes([1]) + i8042_state(b"\xaa\x55", 0x60))
    write("device_state", "rtc_cmos", bytes([2]) + rtc_state())
    binary = os.path.join(build, "tests", "fuzz", "fuzz_device_state")
    if not os.access(binary, os.X_OK):
        print("make_seeds: no %s: the device_state saves are left as they are" % binary)
        return
    subprocess.run([binary], check=True, env=dict(os.environ, VMM_FUZZ_WRITE_SEEDS=os.path.join(
        HERE, "corpus", "device_state")), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---- fuzz_api ------------------------------------------------------------------------
# mode (bit 0: client streams), flags, then a request line or ops [op][len](bytes)

def api_line(name, line, flags=0):
    write("api", name, bytes([0, flags]) + line)


def api_ops(*ops):
    out = b""
    for op in ops:
        if isinstance(op, bytes):  # send on client 0
            while op:
                out += bytes([0, min(len(op), 255)]) + op[:255]
                op = op[255:]
        else:
            out += bytes(op)
    return out


RUN, READ, CLOSE, EOF, CONNECT, CLOCK, FLAGS = ([1, 0], [2, 0], [3, 0], [4, 0], [5, 0],
                                                 [6, 11], [7, 0])


def api_seeds():
    api_line("status", b'{"execute": "status", "id": 1}', 0x20)
    api_line("status_id_object", b'{"execute":"status","id":{"a":[1,2]}}')
    api_line("pause_fails", b'{"execute": "pause"}', 0x01)
    api_line("pause_times_out", b'{"execute": "pause", "id": "p"}', 0x02)
    api_line("resume", b'{"execute": "resume", "arguments": {}}')
    api_line("shutdown", b'{"execute": "shutdown", "id": null}')
    api_line("migrate_unix_verify",
             b'{"execute": "migrate", "arguments": {"uri": "unix:/tmp/m.sock", "verify": true}}')
    api_line("migrate_tcp", b'{"execute":"migrate","arguments":{"uri":"tcp:[::1]:4444"}}', 0x0c)
    api_line("migrate_bad_uri", b'{"execute":"migrate","arguments":{"uri":"tcp:host:99999"}}')
    api_line("migrate_verify_not_bool",
             b'{"execute":"migrate","arguments":{"uri":"unix:/x","verify":1}}')
    api_line("migrate_cancel", b'{"execute": "migrate-cancel"}', 0x04)
    api_line("snapshot", b'{"execute": "snapshot", "arguments": {"dir": "/tmp/snap"}}', 0x08)
    api_line("snapshot_empty_dir", b'{"execute": "snapshot", "arguments": {"dir": ""}}')
    api_line("query_migrate_verify", b'{"execute": "query-migrate", "id": 9}', 0x18)
    api_line("unknown_command", b'{"execute": "quit"}')
    api_line("unknown_member", b'{"execute": "status", "x": 1}')
    api_line("arguments_not_object", b'{"execute": "status", "arguments": [1]}')
    api_line("unknown_argument", b'{"execute": "snapshot", "arguments": {"dir": "/a", "b": 2}}')
    api_line("not_an_object", b'[1, 2, 3]')
    api_line("bad_json", b'{"execute": "status",')
    api_line("nul_byte", b'{"execute"\x00: "status"}')
    api_line("blank", b' \t \r')
    api_line("bare_number", b'12345')
    api_line("unicode_escape", b'{"execute": "st\\u0061tus", "id": "\\ud83d\\ude00"}')
    write("api", "stream_pipelined", bytes([1, 0]) + api_ops(
        b'{"execute": "status", "id": 1}\n{"execute": "pause", "id": 2}\n',
        RUN, READ, b'{"execute": "query-migrate"', RUN, b', "id": 3}\n', RUN, READ))
    write("api", "stream_eof_without_newline", bytes([1, 0]) + api_ops(
        b'{"execute": "resume", "id": 4}', EOF, RUN, RUN, READ))
    long_line = b'{"execute": "status", "id": "' + b"x" * 70000 + b'"}\n'
    write("api", "stream_overlong_line", bytes([1, 0]) + api_ops(long_line, RUN, RUN, READ))
    many = []
    for _ in range(16):  # with the first, 17 clients: the last is refused
        many += [CONNECT]
    write("api", "stream_17_clients_then_idle", bytes([1, 0]) + api_ops(
        *many, RUN, CLOCK, CONNECT, RUN, [2, 8], [2, 16], b'{"execute":"status"}\n', RUN, READ))
    write("api", "stream_close_mid_request", bytes([1, 0]) + api_ops(
        b'{"execute": "stat', CLOSE, RUN, CONNECT, [0 | 8, 30], b'{"execute":"status"}\n\n\n\n' +
        b" " * 10, RUN, [2, 0]))


# ---- fuzz_boot -----------------------------------------------------------------------
# byte (bits 0-2 low RAM size, bit 3 initrd), initrd size in 64 KiB, cmdline length,
# cmdline, kernel

def bzimage(payload=4096, pref=0x1000000, init_size=0x400000, align=0x200000, version=0x020f,
            setup_sects=4):
    hdr = bytearray((setup_sects + 1) * 512)
    hdr[0x1f1] = setup_sects
    struct.pack_into("<H", hdr, 0x1fe, 0xaa55)
    hdr[0x201] = 0x290 - 0x202 + 0x10  # the jump: where the header ends
    struct.pack_into("<I", hdr, 0x202, 0x53726448)
    struct.pack_into("<H", hdr, 0x206, version)
    hdr[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", hdr, 0x22c, 0x7fffffff)  # initrd_addr_max
    struct.pack_into("<I", hdr, 0x230, align)
    hdr[0x234] = 1  # relocatable
    struct.pack_into("<H", hdr, 0x236, 0x03)  # XLF_KERNEL_64 | CAN_BE_LOADED_ABOVE_4G
    struct.pack_into("<I", hdr, 0x238, 2047)
    struct.pack_into("<Q", hdr, 0x258, pref)
    struct.pack_into("<I", hdr, 0x260, init_size)
    return bytes(hdr) + bytes(range(256)) * (payload // 256)


def elf_vmlinux(segments=((0x100000, 0x2000, 0x3000), (0x200000, 0x1000, 0x1000)),
                entry=0x1000000 + 0x100000):
    phoff, n = 64, len(segments)
    data_off = phoff + 56 * n
    eh = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    eh += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, phoff, 0, 0, 64, 56, n, 64, 0, 0)
    ph, body = b"", b""
    for paddr, filesz, memsz in segments:
        ph += struct.pack("<IIQQQQQQ", 1, 7, data_off + len(body), paddr | 0xffffffff80000000,
                          paddr, filesz, memsz, 0x1000)
        body += bytes([0x90]) * filesz
    return eh + ph + body


def boot(ram_sel, kernel, initrd_units=0, cmdline=b"console=ttyS0 reboot=k"):
    flags = ram_sel | (8 if initrd_units else 0)
    return bytes([flags, initrd_units, len(cmdline)]) + cmdline + kernel


def boot_seeds():
    write("boot", "bzimage_32m_initrd", boot(7, bzimage(), 16))
    write("boot", "bzimage_small_no_initrd", boot(1, bzimage(pref=0x100000, init_size=0x80000)))
    write("boot", "bzimage_does_not_fit", boot(0, bzimage(pref=0x100000, init_size=0x80000)))
    write("boot", "bzimage_initrd_does_not_fit", boot(2, bzimage(pref=0x100000,
                                                                 init_size=0x100000), 200))
    write("boot", "bzimage_old_protocol", boot(7, bzimage(version=0x020b)))
    write("boot", "bzimage_not_relocatable_high_pref", boot(7, bzimage(
        pref=0x1200000, init_size=0x200000, align=0)))
    write("boot", "elf_vmlinux", boot(3, elf_vmlinux(entry=0x100000), 4))
    write("boot", "elf_entry_outside", boot(3, elf_vmlinux(entry=0x400000)))
    write("boot", "elf_segment_beyond_ram", boot(0, elf_vmlinux(
        segments=((0x100000, 0x1000, 0x400000),), entry=0x100000)))
    write("boot", "long_cmdline", boot(4, bzimage(pref=0x100000, init_size=0x100000),
                                       0, b"x" * 255))


# ---- fuzz_options --------------------------------------------------------------------
# mode (bit 0: --net argument alone), then NUL-separated arguments

def argv(*args):
    return bytes([0]) + b"\0".join(a.encode() for a in args)


def options_seeds():
    write("options", "typical", argv("--kernel", "bzImage", "--initrd", "initrd.gz", "--cmdline",
                                     "console=ttyS0", "-m", "1G", "--cpus", "2", "--net",
                                     "vhost-user,socket=/tmp/vhost0.sock,queues=2"))
    write("options", "every_option", argv(
        "-k", "bz", "-i", "rd", "-c", "x", "--memory=6G", "-n254", "--hugepages", "--user", "nobody",
        "--group", "0", "--kvm-device", "/dev/kvm", "--on-reboot", "restart", "--vhost-trace", "-",
        "--debug-exit=0x501", "--timeout", "600", "--api-socket", "/tmp/vm.api", "--seccomp",
        "off", "-qv", "--net", "vhost-user,socket=/s,server,mac=52:54:00:12:34:57,mtu=9000,"
        "connect-timeout-ms=0,reply-timeout-ms=600000,reconnect-ms=5"))
    write("options", "incoming", argv("--incoming", "tcp:[::1]:4444", "--memory", "512M",
                                      "--net", "vhost-user,socket=/tmp/p1"))
    write("options", "restore", argv("--restore", "/tmp/snap"))
    write("options", "help", argv("--help"))
    write("options", "version", argv("--version"))
    write("options", "five_nets", argv("-k", "k", *["--net", "vhost-user,socket=/s"] * 5))
    write("options", "bad_memory", argv("-k", "k", "-m", "33M"))
    write("options", "missing_value", argv("-k"))
    write("options", "ambiguous_long", argv("-k", "k", "--ver"))
    write("options", "unknown_in_cluster", argv("-k", "k", "-qx"))
    write("options", "stray_argument", argv("-k", "k", "extra"))
    write("options", "kernel_and_incoming", argv("-k", "k", "--incoming", "unix:/m"))
    write("options", "net_alone", bytes([1]) +
          b"vhost-user,socket=/tmp/a.sock,queues=8,mac=02:00:00:00:00:01,mtu=68")
    write("options", "net_alone_multicast_mac", bytes([1]) +
          b"vhost-user,socket=/s,mac=01:00:5e:00:00:01")
    write("options", "net_alone_empty_keys", bytes([1]) + b"vhost-user,,socket=/s,,server=1")


# ---- fuzz_vmmctl ---------------------------------------------------------------------
# view (0 status, 1 query-migrate, 2 migrate, 3 migrate --verify, 4 raw, 5 pause; bit 3:
# id 7, else 1), then the reply line(s)

def reply(ret, id_=1):
    import json
    return json.dumps({"return": ret, "id": id_}).encode()


STATUS = {"state": "running", "vcpus": 2, "memory-bytes": 1 << 30, "uptime-ms": 73012,
          "nets": [{"id": "net0", "socket": "/tmp/vhost0.sock", "connected": True,
                    "link-up": True, "queue-pairs": 1}], "reboots": 0}
MIGRATION = {"status": "completed", "round": 3, "pages-dirtied-last-round": 12,
             "pages-sent": 140000, "total-pages": 131072, "mbps": 812.5,
             "expected-downtime-ms": 9, "total-time-ms": 2140, "downtime-ms": 11,
             "downtime-breakdown": {"pause": 0, "stop-devices": 3, "final-pages": 2, "verify": 1,
                                    "state": 1, "destination": 4},
             "verify": {"pages-compared": 131072, "pages-differ": 2,
                        "first-differing": ["0x1000", "0x2000"]}}


def vmmctl_seeds():
    write("vmmctl", "status", bytes([0]) + reply(STATUS))
    write("vmmctl", "status_nets_missing", bytes([0]) + reply(
        {k: v for k, v in STATUS.items() if k != "nets"}))
    write("vmmctl", "status_nets_a_string", bytes([0]) + reply(dict(STATUS, nets="net0")))
    write("vmmctl", "status_net_not_an_object", bytes([0]) + reply(dict(STATUS, nets=[1])))
    write("vmmctl", "query_migrate", bytes([1]) + reply(MIGRATION))
    write("vmmctl", "query_migrate_first_differing_object", bytes([1]) + reply(dict(
        MIGRATION, verify=dict(MIGRATION["verify"], **{"first-differing": {"a": 1}}))))
    write("vmmctl", "query_migrate_error", bytes([1]) + reply(dict(
        MIGRATION, status="failed", error="the destination said \"no\"")))
    progress = [{"status": "setup", "round": 0},
                {"status": "active", "round": 1, "pages-dirtied-last-round": 0, "mbps": 700.0,
                 "expected-downtime-ms": 300},
                {"status": "active", "round": 2, "pages-dirtied-last-round": 5000,
                 "mbps": 800.5, "expected-downtime-ms": 25}]
    lines = b"\n".join(reply(p) for p in progress)
    write("vmmctl", "migrate_verified", bytes([3]) + lines + b"\n" + reply(MIGRATION))
    write("vmmctl", "query_migrate_breakdown_not_an_object", bytes([1]) + reply(dict(
        MIGRATION, **{"downtime-breakdown": [3]})))
    write("vmmctl", "migrate_failed", bytes([2]) + lines + b"\n" + reply(
        {"status": "failed", "round": 2, "error": "the destination closed the connection"}))
    write("vmmctl", "migrate_verify_first_differing_object", bytes([3]) + reply(dict(
        MIGRATION, verify=dict(MIGRATION["verify"], **{"first-differing": {}}))))
    write("vmmctl", "raw_error", bytes([4]) + b'{"error": {"class": "CommandNotFound", '
          b'"desc": "unknown command \'x\'"}}')
    write("vmmctl", "pause", bytes([5]) + reply({}))
    write("vmmctl", "pause_error", bytes([5]) + b'{"error": {"class": "GenericError", "desc": '
          b'"cannot pause: the VM is shutting down"}, "id": 1}')
    write("vmmctl", "pause_error_without_desc", bytes([5]) + b'{"error": 3, "id": 1}')
    write("vmmctl", "wrong_id", bytes([8]) + reply(STATUS, 1))
    write("vmmctl", "not_json", bytes([0]) + b"{return")


if __name__ == "__main__":
    vhost_user_seeds()
    guest_seeds()
    kvm_state_seeds()
    migration_stream_seeds()
    device_state_seeds(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(HERE, "..", "..", "build"))
    api_seeds()
    boot_seeds()
    options_seeds()
    vmmctl_seeds()
