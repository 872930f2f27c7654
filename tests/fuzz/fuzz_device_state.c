/*
 * Fuzz target: each device's saved state as a migration stream or a snapshot hands it
 * to the device's load: the UART, the i8042, the RTC, a PCI function's config space,
 * its MSI-X table, and a whole virtio-pci function (transport, queues and the
 * virtio-net model's state inside it), loaded into a machine at power-on like the
 * destination's, with a fake platform (KVM's wiring kept in tables, as fuzz_guest
 * does), a vhost-user back-end on a socketpair, and the NIC's loop run on the
 * harness's own thread (see nic_run).
 *
 * Oracles besides the sanitizers and fd leaks:
 * - a legacy device's loaded state is one its guest could reach, and loads again
 *   from its own save to the same save (load and save agree);
 * - a PCI config space that loads saves as the same bytes; MSI-X loads its own save;
 * - a virtio-pci blob that loads leaves KVM's view matching the transport (doorbells
 *   where the BAR is, each queue's interrupt on its vector or polled), pauses, saves,
 *   and that save loads into a fresh machine; a refused blob leaves nothing wired.
 *
 * Input: a selector byte (% 7), then
 *   0 UART, 1 i8042, 2 RTC, 3 PCI config, 4 MSI-X: the blob;
 *   5 virtio-pci: a 12-byte machine header, then the blob;
 *   6 virtio-pci from a real save: the machine header, then bytes XORed onto what this
 *     machine saved (power-on, or started by a guest and paused: header flag), so
 *     mutations start from a blob that loads.
 * Machine header: flags, queue pairs - 1, MTU u16, back-end features u64.
 *
 * VMM_FUZZ_WRITE_SEEDS=DIR: writes a real save of each device (legacy devices after a
 * guest's set-up writes, the virtio function at power-on and started) into DIR as seeds,
 * and exits (tests/fuzz/make_seeds.py runs it).
 */
#include "../../devices/bus.h"
#include "../../devices/i8042.h"
#include "../../devices/pci.h"
#include "../../devices/rtc.h"
#include "../../devices/serial.h"
#include "../../devices/virtio_net.h"
#include "../../devices/virtio_pci.h"
#include "../../common/event_loop.h"

#include "../support/vu_wire.h"
#include "fuzz_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum kind { K_SERIAL, K_I8042, K_RTC, K_PCI, K_MSIX, K_VIRTIO, K_VIRTIO_PATCH, K_COUNT };

#define HEADER_SIZE 12
#define H_PROTOCOL 0x01 /* the back-end offered VHOST_USER_F_PROTOCOL_FEATURES */
#define H_OFFLINE 0x02  /* no back-end is connected */
#define H_STARTED 0x04  /* patch mode: the saved device was started by its guest */
#define H_MASKED 0x08   /* patch mode: the guest masked vector 1 before the save */

#define GUEST_RAM 0x10000

/* ---- the platform: KVM's state as it would be (tests/support, as fuzz_guest has it) ----
 * A call KVM would refuse fails the input at once (fail_on_bad). */

static struct fake_platform kvm;
static int null_fd = -1;
static struct guest_mem ram; /* at 0; its fd is null_fd: the drained backend never maps it */

/* ---- the NIC's loop ----
 * In vmm the NIC's ops run on a loop on a thread of its own. Here that loop is the
 * harness's own thread: the transport's calls (load, start_loaded, save, pause, reset)
 * run at once, inline, and what it posts (activation and reset on a guest's status
 * write) runs when nic_run() dispatches it. One thread keeps every input reproducible;
 * these two functions are all that knows how the NIC's loop is run. */

static struct event_loop nic_loop;

static void nic_loop_init(void)
{
    if (event_loop_init(&nic_loop))
        fuzz_fail("cannot create the NIC's loop");
}

/* Runs what was posted to the NIC's loop (and watched fds that are ready) until
 * nothing is left; a bounded number of rounds, since a job may post another. */
static void nic_run(void)
{
    for (int i = 0; i < 16 && event_loop_run_once(&nic_loop, 0) > 0; i++)
        ;
}

/* ---- the machine ---- */

static struct bus pio, mmio;
static struct pci pci;
static struct serial uart;
static struct i8042 kbd;
static struct rtc rtc;
static struct virtio_net net;
static struct virtio_pci vp;
static int backend = -1;                       /* the back-end's end of the vhost-user socket */
static uint16_t vring_base[VIRTIO_MAX_QUEUES]; /* what SET_VRING_BASE gave each ring */

/* Reads and drops whatever the front-end sent, closing the fds that came with it. */
static void backend_drain(void)
{
    vu_wire_drain(backend);
}

/* An idle, well-behaved back-end: GET_VRING_BASE answers the base the ring was started
 * from (it moved no packets). It sees each request, from the connection's trace hook,
 * just before it is sent, and queues the reply. */
static void backend_on_request(void *opaque, int64_t time_us, const char *line)
{
    unsigned size, index, base;

    (void)opaque, (void)time_us;
    if (sscanf(line, "-> SET_VRING_BASE flags=%*s size=%u index=%u base=%u", &size, &index,
               &base) == 3 &&
        index < VIRTIO_MAX_QUEUES)
        vring_base[index] = (uint16_t)base;
    if (sscanf(line, "-> GET_VRING_BASE flags=%*s size=%u index=%u", &size, &index) == 2 &&
        vu_wire_reply_state(backend, VHOST_USER_GET_VRING_BASE, index,
                            index < VIRTIO_MAX_QUEUES ? vring_base[index] : 0))
        fuzz_fail("cannot queue a GET_VRING_BASE reply");
}

static void backend_connect(const uint8_t *h)
{
    int sv[2];

    if (h[0] & H_OFFLINE)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        fuzz_fail("socketpair: %s", strerror(errno));
    vhost_user_conn_init(&net.conn, sv[0]);
    backend = sv[1];
    memcpy(&net.conn.features, h + 4, 8);
    if (h[0] & H_PROTOCOL)
        net.conn.features |= 1ULL << VHOST_USER_F_PROTOCOL_FEATURES;
    net.conn.timeout_ms = 0; /* every reply is queued before it is asked for */
    net.conn.trace = backend_on_request;
    net.backend_features = net.conn.features;
    pthread_mutex_lock(&net.lock);
    net.connected = true;
    net.link_features = net.conn.features;
    pthread_mutex_unlock(&net.lock);
}

static void legacy_init(void)
{
    const struct irq_line com1 = {.set = fuzz_irq_set, .irq = SERIAL_COM1_IRQ};
    const struct irq_line kbd_irq = {.set = fuzz_irq_set, .irq = I8042_KBD_IRQ};

    if (serial_init(&uart, "serial0", &com1, null_fd) ||
        i8042_init(&kbd, &kbd_irq, fuzz_reset_cpu, NULL) || rtc_init(&rtc, fuzz_fixed_time))
        fuzz_fail("cannot build the legacy devices");
}

static void legacy_destroy(void)
{
    serial_destroy(&uart);
    i8042_destroy(&kbd);
    rtc_destroy(&rtc);
}

/* The PCI host and a virtio-net function at power-on, as the destination has it. */
static void machine_init(const uint8_t *h)
{
    const struct pci_layout layout = {0xc0000000ULL, 0x3e000000ULL, 0x200000000ULL, 0x400000000ULL};
    struct virtio_net_options opts = {
        .socket_path = "fuzz",
        .queue_pairs = 1 + h[1] % VIRTIO_NET_MAX_PAIRS,
        .mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
        .mtu = (uint16_t)(h[2] | h[3] << 8),
    };

    fake_platform_reset(&kvm);
    memset(vring_base, 0, sizeof(vring_base));
    guest_mem_clear(&ram);
    if (bus_init(&pio, "pio") || bus_init(&mmio, "mmio") || pci_init(&pci, &pio, &mmio, &layout))
        fuzz_fail("cannot build the PCI host");
    nic_loop_init();
    virtio_net_setup(&net, "net0", &opts, &kvm.ops, &ram.access, &nic_loop);
    backend = -1;
    backend_connect(h);
    if (virtio_pci_init(&vp, &net.vdev, &kvm.ops) || pci_register(&pci, &vp.pci, -1))
        fuzz_fail("cannot register the virtio-pci function");
}

static void machine_destroy(void)
{
    if (virtio_pci_reset(&vp))
        fuzz_fail("the platform reset failed");
    nic_run();
    backend_drain();
    if (kvm.nioev || kvm.nirqfd || kvm.nwatch)
        fuzz_fail("after a device reset %d ioeventfds, %d irqfds, %d watches are left", kvm.nioev,
                  kvm.nirqfd, kvm.nwatch);
    pci_destroy(&pci);
    virtio_net_destroy(&net);
    virtio_pci_destroy(&vp);
    event_loop_destroy(&nic_loop);
    if (backend >= 0)
        close(backend);
    backend = -1;
    bus_destroy(&mmio);
    bus_destroy(&pio);
}

/* ---- a guest drives the virtio function, for the saves patch mode starts from ---- */

static void bar_write(int bar, uint64_t off, uint32_t len, uint32_t v)
{
    uint8_t b[4];

    memcpy(b, &v, sizeof(b));
    bus_write(&mmio, pci_bar_address(&vp.pci, bar) + off, b, len);
}

static uint32_t bar_read32(int bar, uint64_t off)
{
    uint8_t b[4];
    uint32_t v;

    bus_read(&mmio, pci_bar_address(&vp.pci, bar) + off, b, 4);
    memcpy(&v, b, 4);
    return v;
}

static void common_write(uint32_t off, uint32_t len, uint32_t v)
{
    bar_write(VIRTIO_PCI_CAPS_BAR, VIRTIO_PCI_COMMON_OFFSET + off, len, v);
}

/* What a Linux driver acks of what the device offers. */
static uint64_t driver_features(void)
{
    const uint64_t wanted =
        1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_RING_EVENT_IDX | 1ULL << VIRTIO_NET_F_MAC |
        1ULL << VIRTIO_NET_F_STATUS | 1ULL << VIRTIO_NET_F_CTRL_VQ | 1ULL << VIRTIO_NET_F_CTRL_RX |
        1ULL << VIRTIO_NET_F_MQ | 1ULL << VIRTIO_NET_F_MTU | 1ULL << VIRTIO_NET_F_GUEST_ANNOUNCE |
        1ULL << VIRTIO_NET_F_MRG_RXBUF | 1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR;
    uint64_t offered;

    common_write(0x00, 4, 0);
    offered = bar_read32(VIRTIO_PCI_CAPS_BAR, 0x04);
    common_write(0x00, 4, 1);
    offered |= (uint64_t)bar_read32(VIRTIO_PCI_CAPS_BAR, 0x04) << 32;
    return offered & wanted;
}

/* MSI-X on, every vector programmed (vector 1 masked with H_MASKED), features, each
 * queue's rings at 0x200 * q, then DRIVER_OK: the device runs on its back-end. */
static void guest_start(const uint8_t *h)
{
    unsigned nq = net.vdev.num_queues;
    uint64_t acked;

    pci_config_write(&vp.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    pci_config_write(&vp.pci, vp.msix.cap + 2u, 2, MSIX_CTRL_ENABLE);
    for (unsigned v = 0; v < vp.nvectors; v++) {
        bar_write(VIRTIO_PCI_MSIX_BAR, 16 * v, 4, 0xfee00000);
        bar_write(VIRTIO_PCI_MSIX_BAR, 16 * v + 8, 4, 0x30 + v);
        bar_write(VIRTIO_PCI_MSIX_BAR, 16 * v + 12, 4, v == 1 && (h[0] & H_MASKED));
    }
    common_write(0x14, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    acked = driver_features();
    common_write(0x08, 4, 0);
    common_write(0x0c, 4, (uint32_t)acked);
    common_write(0x08, 4, 1);
    common_write(0x0c, 4, (uint32_t)(acked >> 32));
    common_write(0x14, 1,
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    common_write(0x10, 2, nq);
    for (unsigned q = 0; q < nq; q++) {
        common_write(0x16, 2, q);
        common_write(0x18, 2, 16);
        common_write(0x1a, 2, q);
        common_write(0x20, 4, 0x200 * q);
        common_write(0x28, 4, 0x200 * q + 0x100);
        common_write(0x30, 4, 0x200 * q + 0x180);
        common_write(0x1c, 2, 1);
    }
    common_write(0x14, 1,
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                     VIRTIO_STATUS_DRIVER_OK);
    nic_run(); /* the activation the transport posted */
    backend_drain();
    if (vp.phase != VP_ACTIVE)
        fuzz_fail("the guest's DRIVER_OK left the function in phase %d", vp.phase);
}

/* The source's final stop, then its save. */
static void save_paused(struct state_buf *out)
{
    const struct device_ops *ops = vp.caps_dev.ops;

    if (ops->pause(&vp.caps_dev))
        fuzz_fail("a started virtio function cannot pause");
    nic_run();
    backend_drain();
    if (ops->save(&vp.caps_dev, out))
        fuzz_fail("a paused virtio function cannot save");
}

/* What a machine with header h saves: at power-on, or started by its guest. */
static void machine_save(const uint8_t *h, struct state_buf *out)
{
    machine_init(h);
    if (h[0] & H_STARTED)
        guest_start(h);
    save_paused(out);
    machine_destroy();
}

/* ---- what KVM holds must match the transport's state ---- */

static void check_wiring(void)
{
    char why[160];

    if ((vp.phase == VP_ACTIVE) != vp.wired)
        fuzz_fail("loaded function in phase %d is %s", vp.phase, vp.wired ? "wired" : "not wired");
    if (!fake_platform_matches(&kvm, &vp, why, sizeof(why)))
        fuzz_fail("%s", why);
}

/* Every watched fd that is readable gets its callback once, as the loop would. */
static void run_loop(void)
{
    fake_platform_run_watched(&kvm);
}

/* ---- the virtio function ---- */

static int virtio_load(const uint8_t *h, const uint8_t *blob, size_t len)
{
    int ret;

    machine_init(h);
    ret = vp.caps_dev.ops->load(&vp.caps_dev, blob, len);
    nic_run();
    backend_drain();
    if (ret && (vp.phase != VP_IDLE || vp.wired || kvm.nioev || kvm.nirqfd || kvm.nwatch))
        fuzz_fail("a refused blob (%d) left the function in phase %d with %d ioeventfds, %d "
                  "irqfds, %d watches",
                  ret, vp.phase, kvm.nioev, kvm.nirqfd, kvm.nwatch);
    if (!ret)
        check_wiring();
    return ret;
}

/* A loaded function runs, pauses and saves, and what it saved loads into a fresh one. */
static void fuzz_virtio(const uint8_t *h, const uint8_t *blob, size_t len)
{
    struct state_buf again = {0};

    if (virtio_load(h, blob, len) == 0) {
        run_loop();
        nic_run();
        backend_drain();
        check_wiring();
        save_paused(&again);
    }
    machine_destroy();
    if (again.len) {
        if (virtio_load(h, again.data, again.len))
            fuzz_fail("a virtio function's own save (%zu bytes) does not load", again.len);
        machine_destroy();
    }
    state_buf_free(&again);
}

/* The machine's own save with the input XORed onto it. One save per header is kept:
 * making it runs a whole guest start. */
static void fuzz_virtio_patch(const uint8_t *h, const uint8_t *patch, size_t len)
{
    static struct {
        uint8_t h[HEADER_SIZE];
        struct state_buf save;
    } cache[16];
    static unsigned next;
    struct state_buf *save = NULL;
    uint8_t *blob;
    size_t n;

    for (unsigned i = 0; i < 16 && !save; i++)
        if (cache[i].save.len && !memcmp(cache[i].h, h, HEADER_SIZE))
            save = &cache[i].save;
    if (!save) {
        save = &cache[next].save;
        memcpy(cache[next].h, h, HEADER_SIZE);
        next = (next + 1) % 16;
        save->len = 0;
        machine_save(h, save);
    }
    n = len > save->len ? len : save->len;
    blob = calloc(1, n);
    if (!blob)
        fuzz_fail("out of memory");
    memcpy(blob, save->data, save->len);
    for (size_t i = 0; i < len; i++)
        blob[i] ^= patch[i];
    fuzz_virtio(h, blob, n);
    free(blob);
}

/* ---- the legacy devices and a PCI function's parts ---- */

#define LSR_THRE_TEMT 0x60
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_REG_D 0x0d

/* MSR as a guest's MCR write leaves it (16550: loopback maps DTR, RTS, OUT1, OUT2). */
static uint8_t modem_status(uint8_t mcr)
{
    if (!(mcr & 0x10))
        return 0xb0; /* DCD, DSR, CTS */
    return (uint8_t)((mcr & 1 ? 0x20 : 0) | (mcr & 2 ? 0x10 : 0) | (mcr & 4 ? 0x40 : 0) |
                     (mcr & 8 ? 0x80 : 0));
}

/* What a guest can reach: registers only through their write masks, THRE and TEMT
 * always set (a byte goes out at once), no line error or MSR delta (none is raised). */
static void check_reachable(enum kind k)
{
    if (k == K_SERIAL &&
        ((uart.lsr & ~0x01) != LSR_THRE_TEMT || (uart.fcr & ~0xc1) || (uart.ier & ~0x0f) ||
         (uart.mcr & ~0x1f) || uart.msr != modem_status(uart.mcr)))
        fuzz_fail("UART loaded a state no guest reaches (lsr 0x%02x fcr 0x%02x ier 0x%02x mcr "
                  "0x%02x msr 0x%02x)",
                  uart.lsr, uart.fcr, uart.ier, uart.mcr, uart.msr);
    if (k == K_RTC && ((rtc.cmos[RTC_REG_A] & 0x80) || (rtc.cmos[RTC_REG_B] & ~0x06) ||
                       !(rtc.cmos[RTC_REG_B] & 0x02) || rtc.cmos[RTC_REG_C] ||
                       rtc.cmos[RTC_REG_D] != 0x80 || rtc.index > 0x7f))
        fuzz_fail("RTC loaded a state no guest reaches (A 0x%02x B 0x%02x C 0x%02x D 0x%02x)",
                  rtc.cmos[RTC_REG_A], rtc.cmos[RTC_REG_B], rtc.cmos[RTC_REG_C],
                  rtc.cmos[RTC_REG_D]);
}

static struct device *legacy_device(enum kind k)
{
    return k == K_SERIAL ? &uart.dev : k == K_I8042 ? &kbd.cmd_dev : &rtc.dev;
}

/* Loads, checks, saves, loads that save and saves it again: the same bytes. Then the
 * guest reads every register of the loaded device. */
static void fuzz_legacy(enum kind k, const uint8_t *blob, size_t len)
{
    struct device *d = legacy_device(k);
    struct state_buf a = {0}, b = {0};
    uint8_t v[4];

    legacy_init();
    if (d->ops->load(d, blob, len) == 0) {
        check_reachable(k);
        if (d->ops->save(d, &a) || d->ops->load(d, a.data, a.len) || d->ops->save(d, &b))
            fuzz_fail("device %s does not load its own save", d->id);
        if (a.len != b.len || memcmp(a.data, b.data, a.len))
            fuzz_fail("device %s saves differently after loading its own save", d->id);
        for (unsigned port = 0; port < (k == K_SERIAL ? SERIAL_NR_PORTS : 2); port++) {
            struct device *r = k == K_I8042 && port == 0 ? &kbd.data_dev : d;

            r->ops->read(r, k == K_I8042 ? 0 : port, v, 1);
        }
    }
    state_buf_free(&a);
    state_buf_free(&b);
    legacy_destroy();
}

static const uint8_t default_header[HEADER_SIZE] = {H_PROTOCOL, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};

/* Config space and MSI-X of the virtio function, alone. */
static void fuzz_pci_part(enum kind k, const uint8_t *blob, size_t len)
{
    struct state_buf a = {0}, b = {0};

    machine_init(default_header);
    if (k == K_PCI && pci_device_load(&vp.pci, blob, len) == 0) {
        if (pci_device_save(&vp.pci, &a) || a.len != len || memcmp(a.data, blob, len))
            fuzz_fail("loaded PCI config space saves differently");
    }
    if (k == K_MSIX && msix_load(&vp.msix, blob, len) == 0) {
        if (msix_save(&vp.msix, &a) || msix_load(&vp.msix, a.data, a.len) ||
            msix_save(&vp.msix, &b) || a.len != b.len || memcmp(a.data, b.data, a.len))
            fuzz_fail("MSI-X does not load its own save to the same save");
    }
    state_buf_free(&a);
    state_buf_free(&b);
    machine_destroy();
}

/* ---- seeds ---- */

static void write_seed(const char *dir, const char *name, const uint8_t *pre, size_t pre_len,
                       const struct state_buf *b)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(pre, 1, pre_len, f) != pre_len || fwrite(b->data, 1, b->len, f) != b->len)
        fuzz_fail("cannot write %s", path);
    fclose(f);
}

static void write_legacy_seeds(const char *dir)
{
    static const char *const names[] = {"serial", "i8042", "rtc"};
    struct state_buf b = {0};
    uint8_t v;

    legacy_init();
    /* Linux's set-up writes: 8N1 at 115200 with FIFOs and interrupts on, a byte queued;
     * the i8042 command byte read back; the RTC's index and a CMOS byte. */
    for (unsigned i = 0; i < 6; i++) {
        static const uint8_t regs[][2] = {{3, 0x80}, {0, 1}, {1, 0}, {3, 3}, {2, 0xc7}, {1, 5}};

        uart.dev.ops->write(&uart.dev, regs[i][0], &regs[i][1], 1);
    }
    serial_receive(&uart, (const uint8_t *)"ls\n", 3);
    v = 0x20;
    kbd.cmd_dev.ops->write(&kbd.cmd_dev, 0, &v, 1);
    v = 0x10;
    rtc.dev.ops->write(&rtc.dev, 0, &v, 1);
    v = 0x42;
    rtc.dev.ops->write(&rtc.dev, 1, &v, 1);
    for (enum kind k = K_SERIAL; k <= K_RTC; k++) {
        uint8_t sel = (uint8_t)k;

        b.len = 0;
        if (legacy_device(k)->ops->save(legacy_device(k), &b))
            fuzz_fail("cannot save %s", names[k]);
        write_seed(dir, names[k], &sel, 1, &b);
    }
    state_buf_free(&b);
    legacy_destroy();
}

static void write_virtio_seeds(const char *dir)
{
    static const struct {
        const char *name;
        uint8_t h[HEADER_SIZE];
    } shapes[] = {
        {"virtio_power_on", {H_PROTOCOL, 0, 0, 0, 0xff, 0xff, 0x00, 0x00, 0x01, 0, 0, 0}},
        {"virtio_started", {H_PROTOCOL | H_STARTED, 0, 0, 0, 0xff, 0xff, 0x00, 0x00, 1, 0, 0, 0}},
        {"virtio_started_2_pairs_mtu_masked",
         {H_PROTOCOL | H_STARTED | H_MASKED, 1, 0xdc, 0x05, 0xff, 0xff, 0x00, 0x00, 1, 0, 0, 0}},
        {"virtio_started_offline", {H_PROTOCOL | H_STARTED | H_OFFLINE, 2, 0, 0, 0, 0, 0, 0, 1}},
    };
    struct state_buf b = {0};
    uint8_t pre[1 + HEADER_SIZE];

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        char name[96];

        b.len = 0;
        machine_save(shapes[i].h, &b);
        pre[0] = K_VIRTIO;
        memcpy(pre + 1, shapes[i].h, HEADER_SIZE);
        write_seed(dir, shapes[i].name, pre, sizeof(pre), &b);
        pre[0] = K_VIRTIO_PATCH;
        snprintf(name, sizeof(name), "patch_%s", shapes[i].name);
        b.len = 0; /* an empty patch: the save as it is */
        write_seed(dir, name, pre, sizeof(pre), &b);
    }
    machine_init(default_header);
    pre[0] = K_PCI;
    b.len = 0;
    pci_device_save(&vp.pci, &b);
    write_seed(dir, "pci_config", pre, 1, &b);
    pre[0] = K_MSIX;
    b.len = 0;
    msix_save(&vp.msix, &b);
    write_seed(dir, "msix", pre, 1, &b);
    machine_destroy();
    state_buf_free(&b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("VMM_FUZZ_WRITE_SEEDS");

    (void)argc, (void)argv;
    fuzz_keep_stderr();
    fuzz_log_level();
    null_fd = fuzz_platform_init(&kvm, &ram, GUEST_RAM);
    if (dir) {
        write_legacy_seeds(dir);
        write_virtio_seeds(dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds_before = fuzz_count_fds();
    enum kind k;

    if (size < 1)
        return 0;
    k = (enum kind)(data[0] % K_COUNT);
    if (k <= K_RTC)
        fuzz_legacy(k, data + 1, size - 1);
    else if (k <= K_MSIX)
        fuzz_pci_part(k, data + 1, size - 1);
    else if (size >= 1 + HEADER_SIZE && k == K_VIRTIO)
        fuzz_virtio(data + 1, data + 1 + HEADER_SIZE, size - 1 - HEADER_SIZE);
    else if (size >= 1 + HEADER_SIZE)
        fuzz_virtio_patch(data + 1, data + 1 + HEADER_SIZE, size - 1 - HEADER_SIZE);
    fuzz_check_fds(fds_before);
    return 0;
}
