/*
 * Fuzz target: what a guest can do to the devices vmm emulates. A machine of buses,
 * the PCI host (0xCF8/0xCFC), the UART, i8042 and RTC on port I/O, and the real
 * virtio-net in a virtio-pci function (BAR4 capabilities, BAR1 MSI-X) whose back-end
 * is a socketpair the harness drains, answering GET_VRING_BASE as a back-end does.
 * Guest RAM is a 64 KiB buffer the input writes into, so the control queue walks
 * whatever rings and descriptors the input lays out.
 *
 * The NIC's loop runs on a thread of its own, as in vmm, so that the transport's
 * hand-over of activation and reset to it is exercised for real; after each op the
 * harness waits for that loop to run what the op queued (nothing else waits for it).
 * The platform keeps KVM's view (ioeventfds, irqfds, watched fds) and fails on any
 * call KVM would refuse (double assign, unknown deassign). After every op that view
 * must match the transport's (doorbells where the BAR is, each queue's interrupt on its
 * vector's route or polled while masked); after a final device reset nothing may be
 * left wired, and no fd may leak.
 *
 * Input: a 16-byte header (backend features u64, queue pairs, flags, MTU u16), then
 * 8-byte ops: target, control (bit 0 write, bits 1-2 log2 size), offset u16, value u32;
 * a RAM-image op ends the ops, the bytes after it are the image.
 */
#include "../../devices/bus.h"
#include "../../devices/i8042.h"
#include "../../devices/pci.h"
#include "../../devices/rtc.h"
#include "../../devices/serial.h"
#include "../../devices/virtio_net.h"
#include "../../devices/virtio_pci.h"

#include "../support/vu_wire.h"
#include "fuzz_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER_SIZE 16
#define OP_SIZE 8
#define GUEST_RAM 0x10000

#define H_PROTOCOL 0x01 /* the back-end offered VHOST_USER_F_PROTOCOL_FEATURES */

enum target {
    T_LEGACY_PIO, /* 0xCF8-0xCFF, the UART, i8042, RTC: port = base + (offset & 7) */
    T_BAR4,       /* virtio capabilities, at the BAR's current address + offset */
    T_BAR1,       /* MSI-X table and PBA */
    T_CONFIG,     /* the virtio function's config space directly */
    T_RAM,        /* a guest write to RAM */
    T_CONSOLE,    /* console input for the UART */
    T_LOOP,       /* the event loop: every watched fd that is readable */
    T_SYSTEM,     /* value % 3 = 0: reboot (device resets); 1: back-end reconnect;
                   * 2: the rest of the input is a RAM image at offset, then a control
                   * queue kick (a fast way into the virtqueue walk) */
};

/* ---- the platform: KVM's state as it would be (tests/support) ----
 * A call KVM would refuse fails the input at once (fail_on_bad). */

static struct fake_platform kvm;

/* ---- the machine ---- */

static int null_fd = -1;
static struct guest_mem ram; /* at 0; its fd is null_fd: the drained backend never maps it */
static struct bus pio, mmio;
static struct pci pci;
static struct serial uart;
static struct i8042 kbd;
static struct rtc rtc;
static struct virtio_net net;
static struct virtio_pci vp;
static struct event_thread nic; /* the NIC's loop, on its own thread as in vmm */
static int backend = -1;        /* the back-end's end of the vhost-user socket */
static uint64_t backend_features;
static uint8_t header_flags;

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

/* Waits until the NIC's loop ran everything queued before, twice: a readable fd it
 * watches (a kick) may share the first dispatch with the call. The ops' effects
 * are then all visible to the checks. */
static void nic_sync(void)
{
    for (int i = 0; i < 2; i++)
        if (event_loop_call(&nic.loop, nothing, NULL))
            fuzz_fail("the NIC's loop refused a call");
}

/* ---- the back-end ----
 * A well-behaved back-end without threads: it answers GET_VRING_BASE (what the model
 * sends to stop a ring) from the connection's trace hook, which sees each request just
 * before it is sent, and drops everything else after each op. */

/* Reads and drops whatever the front-end sent, closing the fds that came with it. */
static void backend_drain(void)
{
    vu_wire_drain(backend);
}

static void backend_on_request(void *opaque, int64_t time_us, const char *line)
{
    unsigned size, index;

    (void)opaque, (void)time_us;
    if (strncmp(line, "-> ", 3))
        return;
    if (strstr(line, "NEED_REPLY"))
        fuzz_fail("'%s' asks for a reply without REPLY_ACK negotiated", line);
    /* The round trip vhost/ makes without REPLY_ACK to know a request was applied. */
    if (!strncmp(line, "-> GET_FEATURES ", 16) &&
        vu_wire_reply_u64(backend, VHOST_USER_GET_FEATURES, net.conn.features))
        fuzz_fail("cannot queue a GET_FEATURES reply");
    if (sscanf(line, "-> GET_VRING_BASE flags=%*s size=%u index=%u", &size, &index) == 2 &&
        vu_wire_reply_state(backend, VHOST_USER_GET_VRING_BASE, index, 0))
        fuzz_fail("cannot queue a GET_VRING_BASE reply");
}

/* On the NIC's loop, where the connection belongs. */
static int backend_connect_on_nic(void *arg)
{
    int sv[2];

    (void)arg;
    if (backend >= 0) {
        vhost_user_conn_close(&net.conn);
        close(backend);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        fuzz_fail("socketpair: %s", strerror(errno));
    vhost_user_conn_init(&net.conn, sv[0]);
    backend = sv[1];
    net.conn.features = backend_features;
    if (header_flags & H_PROTOCOL)
        net.conn.features |= 1ULL << VHOST_USER_F_PROTOCOL_FEATURES;
    net.conn.timeout_ms = 0; /* every reply is queued before it is asked for */
    net.conn.trace = backend_on_request;
    net.backend_features = net.conn.features;
    /* A new backend has no rings: what vmm's reconnect starts from. */
    pthread_mutex_lock(&net.lock);
    net.connected = true;
    net.link_features = net.conn.features;
    pthread_mutex_unlock(&net.lock);
    net.rings_started = 0;
    return 0;
}

static void backend_connect(void)
{
    event_loop_call(&nic.loop, backend_connect_on_nic, NULL);
}

/* ---- set-up and teardown ---- */

static void machine_init(const uint8_t *h)
{
    const struct pci_layout layout = {0xc0000000ULL, 0x3e000000ULL, 0x200000000ULL, 0x400000000ULL};
    const struct irq_line com1 = {.set = fuzz_irq_set, .irq = SERIAL_COM1_IRQ};
    const struct irq_line kbd_irq = {.set = fuzz_irq_set, .irq = I8042_KBD_IRQ};
    struct virtio_net_options opts = {
        .socket_path = "fuzz",
        .queue_pairs = 1 + h[8] % VIRTIO_NET_MAX_PAIRS,
        .mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
        .mtu = (uint16_t)(h[10] | h[11] << 8),
    };
    int ret = 0;

    memcpy(&backend_features, h, 8);
    header_flags = h[9];
    fake_platform_reset(&kvm);
    guest_mem_clear(&ram);
    if (bus_init(&pio, "pio") || bus_init(&mmio, "mmio") || pci_init(&pci, &pio, &mmio, &layout) ||
        serial_init(&uart, "serial0", &com1, null_fd) ||
        i8042_init(&kbd, &kbd_irq, fuzz_reset_cpu, NULL) || rtc_init(&rtc, fuzz_fixed_time))
        fuzz_fail("cannot build the machine");
    ret |= bus_register(&pio, SERIAL_COM1_BASE, SERIAL_NR_PORTS, &uart.dev);
    ret |= bus_register(&pio, I8042_DATA_PORT, 1, &kbd.data_dev);
    ret |= bus_register(&pio, I8042_CMD_PORT, 1, &kbd.cmd_dev);
    ret |= bus_register(&pio, RTC_INDEX_PORT, RTC_NR_PORTS, &rtc.dev);
    if (event_thread_start(&nic, "fuzz-net0"))
        fuzz_fail("cannot start the NIC's thread");
    virtio_net_setup(&net, "net0", &opts, &kvm.ops, &ram.access, &nic.loop);
    backend = -1;
    backend_connect();
    ret |= virtio_pci_init(&vp, &net.vdev, &kvm.ops);
    ret |= pci_register(&pci, &vp.pci, -1);
    if (ret)
        fuzz_fail("cannot register the devices");
}

static void machine_reboot(void)
{
    virtio_pci_reset(&vp);
    uart.dev.ops->reset(&uart.dev);
    backend_drain();
}

static void machine_destroy(void)
{
    machine_reboot();
    if (kvm.nioev || kvm.nirqfd || kvm.nwatch)
        fuzz_fail("after a device reset %d ioeventfds, %d irqfds, %d watches are left", kvm.nioev,
                  kvm.nirqfd, kvm.nwatch);
    event_thread_stop(&nic);
    pci_destroy(&pci);
    virtio_net_destroy(&net);
    virtio_pci_destroy(&vp);
    event_thread_destroy(&nic);
    close(backend);
    serial_destroy(&uart);
    i8042_destroy(&kbd);
    rtc_destroy(&rtc);
    bus_destroy(&mmio);
    bus_destroy(&pio);
}

/* ---- what KVM holds must match the transport's state ---- */

static void check_wiring(void)
{
    char why[160];

    if (!fake_platform_matches(&kvm, &vp, why, sizeof(why)))
        fuzz_fail("%s", why);
}

/* ---- the ops ---- */

static void run_loop(void)
{
    fake_platform_run_watched(&kvm);
}

static void access_bus(struct bus *bus, uint64_t addr, bool write, uint32_t len, uint64_t value)
{
    uint8_t buf[8];

    if (write) {
        memcpy(buf, &value, sizeof(buf));
        bus_write(bus, addr, buf, len);
    } else {
        bus_read(bus, addr, buf, len);
    }
}

/* Guest RAM at offset takes the image, then the driver kicks the control queue. */
static void load_image_and_kick(uint32_t offset, const uint8_t *image, size_t len)
{
    const struct virtio_queue *ctrl = &net.vdev.queues[2 * net.opts.queue_pairs];
    uint64_t one = 1;

    if (len > GUEST_RAM - offset)
        len = GUEST_RAM - offset;
    guest_write(&ram, offset, image, len);
    if (write(ctrl->kick_fd, &one, sizeof(one)) != sizeof(one))
        fuzz_fail("cannot kick the control queue: %s", strerror(errno));
    run_loop();
    backend_drain();
    /* The kick is the NIC's loop's to see: let it (its fd poll may not have run yet). */
    nic_sync();
}

/* Runs one op; false when the rest of the input was consumed by it. */
static bool run_op(const uint8_t *op, const uint8_t *rest, size_t rest_len)
{
    static const uint16_t legacy[] = {PCI_CONFIG_ADDR_PORT, SERIAL_COM1_BASE, I8042_DATA_PORT,
                                      I8042_CMD_PORT, RTC_INDEX_PORT};
    bool write = op[1] & 1;
    uint32_t len = 1u << ((op[1] >> 1) & 3), off = (uint32_t)(op[2] | op[3] << 8), v32;
    uint64_t value;

    memcpy(&v32, op + 4, 4);
    value = (uint64_t)v32 << 32 | v32;
    switch (op[0] % 8) {
    case T_LEGACY_PIO:
        access_bus(&pio, legacy[(off >> 8) % 5] + (off & 7), write, len > 4 ? 4 : len, value);
        break;
    case T_BAR4:
        access_bus(&mmio, pci_bar_address(&vp.pci, VIRTIO_PCI_CAPS_BAR) + (off & 0x3fff), write,
                   len, value);
        break;
    case T_BAR1:
        access_bus(&mmio, pci_bar_address(&vp.pci, VIRTIO_PCI_MSIX_BAR) + (off & 0xfff), write, len,
                   value);
        break;
    case T_CONFIG:
        if (write)
            pci_config_write(&vp.pci, off & 0xff, len, v32);
        else
            pci_config_read(&vp.pci, off & 0xff, len);
        break;
    case T_RAM:
        if (off + len <= GUEST_RAM)
            guest_write(&ram, off, &value, len);
        break;
    case T_CONSOLE:
        serial_receive(&uart, op + 4, len > 4 ? 4 : len);
        break;
    case T_LOOP:
        run_loop();
        break;
    case T_SYSTEM:
        if (v32 % 3 == 0) {
            machine_reboot();
        } else if (v32 % 3 == 1) {
            backend_connect();
        } else {
            load_image_and_kick(off, rest, rest_len);
            return false;
        }
        break;
    }
    backend_drain();
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds_before;

    if (size < HEADER_SIZE)
        return 0;
    if (null_fd < 0) {
        fuzz_log_level();
        null_fd = fuzz_platform_init(&kvm, &ram, GUEST_RAM);
    }
    fds_before = fuzz_count_fds();
    machine_init(data);
    for (size_t off = HEADER_SIZE; off + OP_SIZE <= size; off += OP_SIZE) {
        bool more = run_op(data + off, data + off + OP_SIZE, size - off - OP_SIZE);

        nic_sync();
        backend_drain();
        check_wiring();
        if (!more)
            break;
    }
    machine_destroy();
    fuzz_check_fds(fds_before);
    return 0;
}
