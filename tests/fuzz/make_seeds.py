#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are checked in; rerun this after changing an input format:
    python3 tests/fuzz/make_seeds.py
"""
import os
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


if __name__ == "__main__":
    vhost_user_seeds()
    guest_seeds()
