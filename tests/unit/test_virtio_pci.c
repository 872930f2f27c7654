/* The virtio-pci modern transport driven as a guest driver drives it, through
 * the MMIO bus at the BARs the PCI registry placed, with a fake platform that
 * keeps KVM's view (live ioeventfds, irqfds, watched fds) and a fake device model
 * that counts its calls. No KVM. The model's loop is pumped by the test thread
 * after each guest write (settle): the model's activate and reset must run only
 * there, posted, never inside the write, as a vCPU must never wait for them. */
#include "../../devices/bus.h"
#include "../../devices/virtio_pci.h"

#include "../support/fake_platform.h"
#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NQ 3
#define NVEC (NQ + 1)
#define CONFIG_VECTOR NQ
#define QMAX 256
#define GSI_BASE 24
#define CFG_SIZE 8
#define DEV_FEATURES ((1ULL << 0) | (1ULL << 5) | (1ULL << VIRTIO_F_RING_EVENT_IDX) | (1ULL << 40))
#define VERSION_1 (1ULL << VIRTIO_F_VERSION_1)

#define MEM32_BASE 0xc0000000ULL
#define MEM32_SIZE 0x3e000000ULL
#define MEM64_BASE 0x200000000ULL
#define MEM64_SIZE 0x400000000ULL

/* Offsets in BAR4 and in the common configuration (virtio 1.2, 4.1.4.3). */
#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_NUMQ 0x12
#define COMMON_STATUS 0x14
#define COMMON_CFGGENERATION 0x15
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESCLO 0x20
#define COMMON_Q_DESCHI 0x24
#define COMMON_Q_AVAILLO 0x28
#define COMMON_Q_AVAILHI 0x2c
#define COMMON_Q_USEDLO 0x30
#define COMMON_Q_USEDHI 0x34
#define ISR 0x1000
#define DEVCFG 0x2000
#define NOTIFY 0x3000
#define PBA 0x800

#define S_ACK VIRTIO_STATUS_ACKNOWLEDGE
#define S_DRIVER VIRTIO_STATUS_DRIVER
#define S_FEATURES_OK VIRTIO_STATUS_FEATURES_OK
#define S_DRIVER_OK VIRTIO_STATUS_DRIVER_OK
#define S_LIVE (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)

/* ---- the fake platform: KVM's state as it would be (tests/support) ---- */

static struct fake_platform fp;

static bool ioev_live(uint64_t addr, int fd)
{
    return fake_ioeventfd_at(&fp, addr, fd) == 2;
}

static bool irqfd_live(int gsi, int fd)
{
    return fake_irqfd_gsi(&fp, fd) == gsi;
}

static int watch_index(int fd)
{
    return fake_watch_index(&fp, fd);
}

/* ---- the fake device model ---- */

struct fake_dev {
    struct virtio_device vdev;
    uint8_t config[CFG_SIZE];
    uint64_t features;
    uint32_t model_state; /* what save and load carry, besides config */
    int saves, loads, start_loadeds, stops, restarts;
    int load_ret, start_loaded_ret;
    int activates, resets, set_features_calls, activate_ret, set_features_ret;
    uint64_t last_acked;
    int cfg_reads, cfg_writes;
    uint32_t last_cfg_off, last_cfg_len;
    uint8_t last_written;
};

static struct fake_dev *to_fake(struct virtio_device *vdev)
{
    return (struct fake_dev *)vdev;
}

static uint64_t dev_features(struct virtio_device *vdev)
{
    return to_fake(vdev)->features;
}

static int dev_set_features(struct virtio_device *vdev, uint64_t acked)
{
    struct fake_dev *d = to_fake(vdev);

    d->set_features_calls++;
    d->last_acked = acked;
    return d->set_features_ret;
}

static void dev_config_read(struct virtio_device *vdev, uint32_t offset, uint8_t *data,
                            uint32_t len)
{
    struct fake_dev *d = to_fake(vdev);

    ck_assert_uint_le(offset + len, CFG_SIZE);
    d->cfg_reads++;
    d->last_cfg_off = offset;
    d->last_cfg_len = len;
    memcpy(data, d->config + offset, len);
}

static void dev_config_write(struct virtio_device *vdev, uint32_t offset, const uint8_t *data,
                             uint32_t len)
{
    struct fake_dev *d = to_fake(vdev);

    ck_assert_uint_le(offset + len, CFG_SIZE);
    d->cfg_writes++;
    d->last_cfg_off = offset;
    d->last_cfg_len = len;
    d->last_written = data[0];
}

/* The model's loop, pumped by this thread; in_guest_write: inside a vCPU's access. */
static struct event_loop loop;
static bool in_guest_write;

/* Runs what the transport posted until nothing is left. */
static void settle(void)
{
    while (event_loop_run_once(&loop, 0) > 0)
        ;
}

static int dev_activate(struct virtio_device *vdev)
{
    struct fake_dev *d = to_fake(vdev);

    ck_assert_msg(!in_guest_write, "the model's activate ran inside the guest's write");
    d->activates++;
    return d->activate_ret;
}

static void dev_reset(struct virtio_device *vdev)
{
    ck_assert_msg(!in_guest_write, "the model's reset ran inside the guest's write");
    to_fake(vdev)->resets++;
}

static int dev_save(struct virtio_device *vdev, struct state_buf *out)
{
    struct fake_dev *d = to_fake(vdev);
    int ret = state_buf_put(out, d->config, CFG_SIZE);

    d->saves++;
    return ret ? ret : state_buf_put(out, &d->model_state, 4);
}

static int dev_load(struct virtio_device *vdev, const uint8_t *data, size_t len)
{
    struct fake_dev *d = to_fake(vdev);

    d->loads++;
    if (d->load_ret || len != CFG_SIZE + 4)
        return d->load_ret ? d->load_ret : -EINVAL;
    memcpy(d->config, data, CFG_SIZE);
    memcpy(&d->model_state, data + CFG_SIZE, 4);
    return 0;
}

static int dev_start_loaded(struct virtio_device *vdev)
{
    struct fake_dev *d = to_fake(vdev);

    d->start_loadeds++;
    return d->start_loaded_ret;
}

static int dev_stop(struct virtio_device *vdev)
{
    to_fake(vdev)->stops++;
    return 0;
}

static int dev_restart(struct virtio_device *vdev)
{
    to_fake(vdev)->restarts++;
    return 0;
}

static const struct virtio_device_ops dev_ops = {
    .features = dev_features,
    .set_features = dev_set_features,
    .config_read = dev_config_read,
    .config_write = dev_config_write,
    .activate = dev_activate,
    .reset = dev_reset,
    .save = dev_save,
    .load = dev_load,
    .start_loaded = dev_start_loaded,
    .stop = dev_stop,
    .restart = dev_restart,
    .config_size = CFG_SIZE,
};

static void fake_dev_init(struct fake_dev *d, unsigned nq)
{
    memset(d, 0, sizeof(*d));
    d->vdev.id = "net0";
    d->vdev.device_id = 1;
    d->vdev.num_queues = nq;
    d->vdev.ops = &dev_ops;
    d->features = DEV_FEATURES;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        d->vdev.queues[q].max_size = QMAX;
    for (unsigned i = 0; i < CFG_SIZE; i++)
        d->config[i] = (uint8_t)(0x10 + i);
}

/* ---- the fixture: a registered function with memory decode on ---- */

static struct bus pio, mmio;
static struct pci host;
static struct virtio_pci vp;
static struct fake_dev dev;
static uint64_t bar4, bar1;
static unsigned msix_cap;

static unsigned find_cap(uint8_t id)
{
    for (unsigned off = pci_config_read(&vp.pci, PCI_CAPABILITY_LIST, 1); off;
         off = pci_config_read(&vp.pci, off + 1, 1))
        if (pci_config_read(&vp.pci, off, 1) == id)
            return off;
    return 0;
}

/* A registered function on fresh buses and a fresh platform, as at power-on. */
static void setup_function(unsigned nq, uint64_t features)
{
    const struct pci_layout layout = {MEM32_BASE, MEM32_SIZE, MEM64_BASE, MEM64_SIZE};

    fake_platform_init(&fp);
    fake_dev_init(&dev, nq);
    dev.features = features;
    ck_assert_int_eq(event_loop_init(&loop), 0);
    dev.vdev.loop = &loop;
    ck_assert_int_eq(bus_init(&pio, "pio"), 0);
    ck_assert_int_eq(bus_init(&mmio, "mmio"), 0);
    ck_assert_int_eq(pci_init(&host, &pio, &mmio, &layout), 0);
    ck_assert_int_eq(virtio_pci_init(&vp, &dev.vdev, &fp.ops), 0);
    ck_assert_int_eq(pci_register(&host, &vp.pci, -1), 0);
    bar4 = pci_bar_address(&vp.pci, VIRTIO_PCI_CAPS_BAR);
    bar1 = pci_bar_address(&vp.pci, VIRTIO_PCI_MSIX_BAR);
    msix_cap = find_cap(PCI_CAP_ID_MSIX);
    ck_assert_uint_ge(msix_cap, PCI_CAP_START);
}

static void setup(void)
{
    setup_function(NQ, DEV_FEATURES);
    pci_config_write(&vp.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
}

static void teardown(void)
{
    pci_destroy(&host);
    virtio_pci_destroy(&vp);
    bus_destroy(&mmio);
    bus_destroy(&pio);
    event_loop_destroy(&loop);
    fake_platform_destroy(&fp);
}

/* ---- the guest's accesses ---- */

static uint64_t bar_read(uint64_t bar, uint64_t off, uint32_t len)
{
    uint8_t b[8] = {0};
    uint64_t v = 0;

    ck_assert(bus_read(&mmio, bar + off, b, len));
    memcpy(&v, b, len);
    return v;
}

/* The guest's write alone, as a vCPU makes it. */
static void bar_write_raw(uint64_t bar, uint64_t off, uint32_t len, uint64_t v)
{
    uint8_t b[8];

    memcpy(b, &v, 8);
    in_guest_write = true;
    ck_assert(bus_write(&mmio, bar + off, b, len));
    in_guest_write = false;
}

/* BAR4 (the virtio capabilities) and BAR1 (MSI-X); a write, then what it queued on the
 * model's loop. */
static uint64_t rd(uint64_t off, uint32_t len)
{
    return bar_read(bar4, off, len);
}

static void wr_raw(uint64_t off, uint32_t len, uint64_t v)
{
    bar_write_raw(bar4, off, len, v);
}

static void wr(uint64_t off, uint32_t len, uint64_t v)
{
    wr_raw(off, len, v);
    settle();
}

static uint64_t mrd(uint64_t off, uint32_t len)
{
    return bar_read(bar1, off, len);
}

static void mwr(uint64_t off, uint32_t len, uint64_t v)
{
    bar_write_raw(bar1, off, len, v);
    settle();
}

static uint8_t status(void)
{
    return (uint8_t)rd(COMMON_STATUS, 1);
}

static void set_status(uint8_t s)
{
    wr(COMMON_STATUS, 1, s);
}

static void driver_features(uint64_t f)
{
    wr(COMMON_GFSELECT, 4, 0);
    wr(COMMON_GF, 4, (uint32_t)f);
    wr(COMMON_GFSELECT, 4, 1);
    wr(COMMON_GF, 4, (uint32_t)(f >> 32));
}

static uint64_t desc_gpa(unsigned q)
{
    return 0x100000000ULL + 0x10000ULL * q;
}

static void setup_queue(unsigned q, uint16_t size, uint16_t vector)
{
    wr(COMMON_Q_SELECT, 2, q);
    wr(COMMON_Q_SIZE, 2, size);
    wr(COMMON_Q_MSIX, 2, vector);
    wr(COMMON_Q_DESCLO, 4, (uint32_t)desc_gpa(q));
    wr(COMMON_Q_DESCHI, 4, (uint32_t)(desc_gpa(q) >> 32));
    wr(COMMON_Q_AVAILLO, 4, (uint32_t)desc_gpa(q) + 0x1000);
    wr(COMMON_Q_AVAILHI, 4, 1);
    wr(COMMON_Q_USEDLO, 4, (uint32_t)desc_gpa(q) + 0x2000);
    wr(COMMON_Q_USEDHI, 4, 1);
    wr(COMMON_Q_ENABLE, 2, 1);
}

static uint64_t vec_addr(unsigned v)
{
    return 0xfee00000ULL + ((uint64_t)v << 12);
}

static uint32_t vec_data(unsigned v)
{
    return 0x4020 + v;
}

static void mask_vector(unsigned v, bool masked)
{
    mwr(16ULL * v + 12, 4, masked);
}

/* What Linux does for one vector: address, data, then the mask. */
static void program_vector(unsigned v, bool masked)
{
    mwr(16ULL * v, 4, (uint32_t)vec_addr(v));
    mwr(16ULL * v + 4, 4, 0);
    mwr(16ULL * v + 8, 4, vec_data(v));
    mask_vector(v, masked);
}

static void msix_control(uint16_t ctrl)
{
    pci_config_write(&vp.pci, msix_cap + 2, 2, ctrl);
}

static uint64_t pba(void)
{
    return mrd(PBA, 8);
}

/* virtio_pci's probe: features, queues q -> vector q, config -> vector NQ, MSI-X
 * on with the vectors in `unmasked` unmasked, then DRIVER_OK. */
static void bring_up_with(unsigned unmasked, uint64_t extra_features)
{
    set_status(S_ACK);
    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1 | extra_features);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(COMMON_MSIX, 2, CONFIG_VECTOR);
    for (unsigned q = 0; q < NQ; q++)
        setup_queue(q, 64, (uint16_t)q);
    for (unsigned v = 0; v < NVEC; v++)
        program_vector(v, !(unmasked & (1u << v)));
    msix_control(MSIX_CTRL_ENABLE);
    set_status(S_LIVE);
}

static void bring_up(unsigned unmasked)
{
    bring_up_with(unmasked, 0);
}

static int kick_fd(unsigned q)
{
    return dev.vdev.queues[q].kick_fd;
}

static int call_fd(unsigned q)
{
    return dev.vdev.queues[q].call_fd;
}

static uint64_t eventfd_take(int fd)
{
    uint64_t v = 0;

    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

static void eventfd_put(int fd)
{
    uint64_t one = 1;

    ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

static void assert_no_bad_calls(void)
{
    ck_assert_int_eq(fp.ioev_bad, 0);
    ck_assert_int_eq(fp.irqfd_bad, 0);
    ck_assert_int_eq(fp.watch_bad, 0);
    ck_assert_int_eq(fp.route_bad, 0);
}

static void assert_nothing_wired(void)
{
    ck_assert_int_eq(fp.nioev, 0);
    ck_assert_int_eq(fp.nirqfd, 0);
    ck_assert_int_eq(fp.nwatch, 0);
}

/* ---- the PCI function ---- */

START_TEST(pci_identity_and_bars)
{
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_VENDOR_ID, 2), 0x1af4);
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_DEVICE_ID, 2), 0x1041);
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_SUBSYSTEM_ID, 2), 0x1100);
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_REVISION_ID, 1), 1);
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_REVISION_ID, 4) >> 8, 0x020000);
    /* BAR4: 64-bit prefetchable, above 4 GiB; BAR1: 32-bit, in the hole. */
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_BASE_ADDRESS_0 + 16, 4) & 0xf,
                      PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
    ck_assert_uint_ge(bar4, MEM64_BASE);
    ck_assert_uint_eq(bar4 % VIRTIO_PCI_CAPS_BAR_SIZE, 0);
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_BASE_ADDRESS_0 + 4, 4) & 0xf, 0);
    ck_assert_uint_ge(bar1, MEM32_BASE);
    ck_assert_uint_lt(bar1, MEM32_BASE + MEM32_SIZE);
    /* Both decode only while memory decode is on. */
    pci_config_write(&vp.pci, PCI_COMMAND, 2, 0);
    {
        uint8_t b[4];

        ck_assert(!bus_read(&mmio, bar4 + COMMON_NUMQ, b, 2));
        ck_assert(!bus_read(&mmio, bar1, b, 4));
    }
    pci_config_write(&vp.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(rd(COMMON_NUMQ, 2), NQ);
}
END_TEST

START_TEST(capability_list)
{
    bool seen[5] = {false};
    int ncaps = 0;

    for (unsigned off = pci_config_read(&vp.pci, PCI_CAPABILITY_LIST, 1); off;
         off = pci_config_read(&vp.pci, off + 1, 1)) {
        uint8_t id = (uint8_t)pci_config_read(&vp.pci, off, 1);

        ck_assert_int_lt(++ncaps, 16);
        ck_assert_uint_ge(off, PCI_CAP_START);
        ck_assert_uint_eq(off % 4, 0);
        if (id == PCI_CAP_ID_MSIX) {
            ck_assert_uint_eq(off, msix_cap);
            ck_assert_uint_eq(pci_config_read(&vp.pci, off + 2, 2) & MSIX_CTRL_TABLE_SIZE,
                              NVEC - 1);
            ck_assert_uint_eq(pci_config_read(&vp.pci, off + 4, 4), 0 | VIRTIO_PCI_MSIX_BAR);
            ck_assert_uint_eq(pci_config_read(&vp.pci, off + 8, 4), PBA | VIRTIO_PCI_MSIX_BAR);
            continue;
        }
        ck_assert_uint_eq(id, PCI_CAP_ID_VNDR);
        {
            uint8_t type = (uint8_t)pci_config_read(&vp.pci, off + 3, 1);
            uint32_t cap_len = pci_config_read(&vp.pci, off + 2, 1);
            uint32_t offset = pci_config_read(&vp.pci, off + 8, 4);
            uint32_t length = pci_config_read(&vp.pci, off + 12, 4);

            ck_assert_uint_ge(type, 1);
            ck_assert_uint_le(type, 4);
            ck_assert_msg(!seen[type], "cfg_type %u twice", type);
            seen[type] = true;
            ck_assert_uint_eq(pci_config_read(&vp.pci, off + 4, 1), VIRTIO_PCI_CAPS_BAR);
            switch (type) {
            case 1: /* common */
                ck_assert_uint_eq(cap_len, 16);
                ck_assert_uint_eq(offset, 0);
                ck_assert_uint_eq(length, 0x38);
                break;
            case 2: /* notify */
                ck_assert_uint_eq(cap_len, 20);
                ck_assert_uint_eq(offset, NOTIFY);
                ck_assert_uint_eq(length, 4 * NQ);
                ck_assert_uint_eq(pci_config_read(&vp.pci, off + 16, 4), 4);
                break;
            case 3: /* ISR */
                ck_assert_uint_eq(cap_len, 16);
                ck_assert_uint_eq(offset, ISR);
                ck_assert_uint_ge(length, 1);
                break;
            case 4: /* device */
                ck_assert_uint_eq(cap_len, 16);
                ck_assert_uint_eq(offset, DEVCFG);
                ck_assert_uint_eq(length, CFG_SIZE);
                break;
            }
        }
    }
    ck_assert_int_eq(ncaps, 5);
    ck_assert(seen[1] && seen[2] && seen[3] && seen[4]);
    ck_assert_uint_ne(pci_config_read(&vp.pci, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
}
END_TEST

/* ---- common configuration ---- */

START_TEST(device_feature_windows)
{
    ck_assert_uint_eq(rd(COMMON_DFSELECT, 4), 0);
    ck_assert_uint_eq(rd(COMMON_DF, 4), (uint32_t)DEV_FEATURES);
    wr(COMMON_DFSELECT, 4, 1);
    ck_assert_uint_eq(rd(COMMON_DFSELECT, 4), 1);
    ck_assert_uint_eq(rd(COMMON_DF, 4), (uint32_t)((DEV_FEATURES | VERSION_1) >> 32));
    ck_assert_uint_eq(rd(COMMON_DF, 4) & 1, 1); /* VERSION_1 is bit 32 */
    wr(COMMON_DFSELECT, 4, 2);
    ck_assert_uint_eq(rd(COMMON_DF, 4), 0);
    wr(COMMON_DFSELECT, 4, 0xffffffff);
    ck_assert_uint_eq(rd(COMMON_DF, 4), 0);
    /* The feature window is read-only. */
    wr(COMMON_DFSELECT, 4, 0);
    wr(COMMON_DF, 4, 0);
    ck_assert_uint_eq(rd(COMMON_DF, 4), (uint32_t)DEV_FEATURES);
}
END_TEST

START_TEST(driver_feature_windows)
{
    driver_features(0x21 | VERSION_1);
    wr(COMMON_GFSELECT, 4, 0);
    ck_assert_uint_eq(rd(COMMON_GF, 4), 0x21);
    wr(COMMON_GFSELECT, 4, 1);
    ck_assert_uint_eq(rd(COMMON_GFSELECT, 4), 1);
    ck_assert_uint_eq(rd(COMMON_GF, 4), 1);
    wr(COMMON_GFSELECT, 4, 2);
    wr(COMMON_GF, 4, 0xffffffff);
    ck_assert_uint_eq(rd(COMMON_GF, 4), 0);
    wr(COMMON_GFSELECT, 4, 0);
    ck_assert_uint_eq(rd(COMMON_GF, 4), 0x21);
    /* Frozen once FEATURES_OK is accepted. */
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status() & S_FEATURES_OK, S_FEATURES_OK);
    wr(COMMON_GF, 4, 0x1);
    ck_assert_uint_eq(rd(COMMON_GF, 4), 0x21);
    ck_assert_uint_eq(dev.vdev.acked_features, 0x21 | VERSION_1);
}
END_TEST

START_TEST(num_queues_and_queue_select)
{
    ck_assert_uint_eq(rd(COMMON_NUMQ, 2), NQ);
    wr(COMMON_NUMQ, 2, 7); /* read-only */
    ck_assert_uint_eq(rd(COMMON_NUMQ, 2), NQ);
    for (unsigned q = 0; q < NQ; q++) {
        wr(COMMON_Q_SELECT, 2, q);
        ck_assert_uint_eq(rd(COMMON_Q_SELECT, 2), q);
        ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), QMAX);
        ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
        ck_assert_uint_eq(rd(COMMON_Q_ENABLE, 2), 0);
        ck_assert_uint_eq(rd(COMMON_Q_NOFF, 2), q);
    }
    /* A queue that does not exist reads as size 0 and ignores writes. */
    for (unsigned q = NQ; q <= 0xffff; q += 0xffff - NQ) {
        wr(COMMON_Q_SELECT, 2, q);
        ck_assert_uint_eq(rd(COMMON_Q_SELECT, 2), q);
        ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), 0);
        wr(COMMON_Q_SIZE, 2, 16);
        wr(COMMON_Q_MSIX, 2, 0);
        wr(COMMON_Q_DESCLO, 4, 0x1000);
        wr(COMMON_Q_ENABLE, 2, 1);
        ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), 0);
        ck_assert_uint_eq(rd(COMMON_Q_ENABLE, 2), 0);
        ck_assert_uint_eq(rd(COMMON_Q_DESCLO, 8), 0);
    }
    ck_assert_uint_eq(dev.vdev.queues[NQ].size, 0);
    ck_assert(!dev.vdev.queues[NQ].enabled);
}
END_TEST

START_TEST(queue_size_power_of_two_up_to_max)
{
    static const struct {
        uint16_t write, expect;
    } steps[] = {{128, 128}, {100, 128}, {512, 128},    {0, 128}, {1, 1},
                 {256, 256}, {3, 256},   {0x8000, 256}, {64, 64}};

    wr(COMMON_Q_SELECT, 2, 1);
    for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        wr(COMMON_Q_SIZE, 2, steps[i].write);
        ck_assert_msg(rd(COMMON_Q_SIZE, 2) == steps[i].expect, "size %u: reads %u, expected %u",
                      steps[i].write, (unsigned)rd(COMMON_Q_SIZE, 2), steps[i].expect);
        ck_assert_uint_eq(dev.vdev.queues[1].size, steps[i].expect);
    }
    ck_assert_uint_eq(dev.vdev.queues[0].size, QMAX);
}
END_TEST

/* Packed rings: any size up to the maximum (the spec drops the power of two), once the
 * driver accepted VIRTIO_F_RING_PACKED; a split ring still needs one. */
START_TEST(queue_size_any_for_packed_rings_only)
{
    dev.features |= 1ULL << VIRTIO_F_RING_PACKED;
    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(COMMON_Q_SELECT, 2, 1);
    wr(COMMON_Q_SIZE, 2, 100);
    ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), QMAX); /* split: refused */
    set_status(0);
    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1 | (1ULL << VIRTIO_F_RING_PACKED));
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(COMMON_Q_SELECT, 2, 1);
    wr(COMMON_Q_SIZE, 2, 100);
    ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), 100);
    ck_assert_uint_eq(dev.vdev.queues[1].size, 100);
    wr(COMMON_Q_SIZE, 2, QMAX + 1);
    wr(COMMON_Q_SIZE, 2, 0);
    ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), 100);
    wr(COMMON_Q_SIZE, 2, 3);
    ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), 3);
}
END_TEST

START_TEST(vectors_validated)
{
    wr(COMMON_Q_SELECT, 2, 2);
    wr(COMMON_Q_MSIX, 2, 0);
    ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), 0);
    wr(COMMON_Q_MSIX, 2, NVEC - 1);
    ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), NVEC - 1);
    ck_assert_uint_eq(dev.vdev.queues[2].msix_vector, NVEC - 1);
    wr(COMMON_Q_MSIX, 2, NVEC);
    ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
    wr(COMMON_Q_MSIX, 2, 1);
    wr(COMMON_Q_MSIX, 2, 0x8000);
    ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);

    ck_assert_uint_eq(rd(COMMON_MSIX, 2), VIRTIO_NO_VECTOR);
    wr(COMMON_MSIX, 2, CONFIG_VECTOR);
    ck_assert_uint_eq(rd(COMMON_MSIX, 2), CONFIG_VECTOR);
    wr(COMMON_MSIX, 2, NVEC);
    ck_assert_uint_eq(rd(COMMON_MSIX, 2), VIRTIO_NO_VECTOR);
}
END_TEST

START_TEST(queue_addresses_in_halves)
{
    wr(COMMON_Q_SELECT, 2, 2);
    wr(COMMON_Q_DESCHI, 4, 0x1);
    wr(COMMON_Q_DESCLO, 4, 0x12345000);
    wr(COMMON_Q_AVAILLO, 4, 0x22220000);
    wr(COMMON_Q_AVAILHI, 4, 0x2);
    wr(COMMON_Q_USEDLO, 4, 0x33330000);
    wr(COMMON_Q_USEDHI, 4, 0x3);
    ck_assert_uint_eq(rd(COMMON_Q_DESCLO, 8), 0x112345000ULL);
    ck_assert_uint_eq(rd(COMMON_Q_DESCLO, 4), 0x12345000);
    ck_assert_uint_eq(rd(COMMON_Q_DESCHI, 4), 1);
    ck_assert_uint_eq(rd(COMMON_Q_AVAILLO, 8), 0x222220000ULL);
    ck_assert_uint_eq(rd(COMMON_Q_USEDLO, 8), 0x333330000ULL);
    ck_assert_uint_eq(dev.vdev.queues[2].desc, 0x112345000ULL);
    ck_assert_uint_eq(dev.vdev.queues[2].avail, 0x222220000ULL);
    ck_assert_uint_eq(dev.vdev.queues[2].used, 0x333330000ULL);
    /* A new low half keeps the high one. */
    wr(COMMON_Q_DESCLO, 4, 0x5000);
    ck_assert_uint_eq(dev.vdev.queues[2].desc, 0x100005000ULL);
    /* Fields are written whole: other widths are dropped. */
    wr(COMMON_Q_DESCLO, 2, 0x7777);
    wr(COMMON_Q_DESCLO, 8, 0x4444444444444444ULL);
    wr(COMMON_Q_SIZE, 4, 16);
    wr(COMMON_Q_SELECT, 4, 0);
    ck_assert_uint_eq(dev.vdev.queues[2].desc, 0x100005000ULL);
    ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), QMAX);
    ck_assert_uint_eq(rd(COMMON_Q_SELECT, 2), 2);
    ck_assert_uint_eq(dev.vdev.queues[0].desc, 0);
}
END_TEST

START_TEST(enabled_queue_is_frozen_but_its_vector_is_not)
{
    wr(COMMON_Q_SELECT, 2, 0);
    wr(COMMON_Q_SIZE, 2, 64);
    wr(COMMON_Q_DESCLO, 4, 0x4000);
    wr(COMMON_Q_ENABLE, 2, 1);
    ck_assert_uint_eq(rd(COMMON_Q_ENABLE, 2), 1);
    ck_assert(dev.vdev.queues[0].enabled);
    wr(COMMON_Q_SIZE, 2, 32);
    wr(COMMON_Q_DESCLO, 4, 0x8000);
    wr(COMMON_Q_ENABLE, 2, 0);
    ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), 64);
    ck_assert_uint_eq(rd(COMMON_Q_DESCLO, 4), 0x4000);
    ck_assert_uint_eq(rd(COMMON_Q_ENABLE, 2), 1);
    wr(COMMON_Q_MSIX, 2, 1);
    ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), 1);
}
END_TEST

/* ---- feature negotiation ---- */

START_TEST(features_ok_needs_version_1)
{
    set_status(S_ACK | S_DRIVER);
    driver_features(0x21);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER);
    ck_assert_int_eq(dev.set_features_calls, 0);
}
END_TEST

START_TEST(features_ok_refuses_unoffered_bits)
{
    set_status(S_ACK | S_DRIVER);
    driver_features(0x21 | (1ULL << 1) | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER);
    driver_features(0x21 | (1ULL << 41) | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER);
    ck_assert_int_eq(dev.set_features_calls, 0);
    /* The same set without the extra bit is fine. */
    driver_features(0x21 | (1ULL << 40) | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER | S_FEATURES_OK);
}
END_TEST

START_TEST(features_ok_refused_by_the_model)
{
    dev.set_features_ret = -EINVAL;
    set_status(S_ACK | S_DRIVER);
    driver_features(0x1 | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER);
    ck_assert_int_eq(dev.set_features_calls, 1);
    ck_assert_uint_eq(dev.last_acked, 0x1 | VERSION_1);
}
END_TEST

START_TEST(features_ok_accepted)
{
    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_uint_eq(status(), S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_int_eq(dev.set_features_calls, 1);
    ck_assert_uint_eq(dev.last_acked, DEV_FEATURES | VERSION_1);
    ck_assert_uint_eq(dev.vdev.acked_features, DEV_FEATURES | VERSION_1);
    /* Rewriting the status does not negotiate again. */
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    ck_assert_int_eq(dev.set_features_calls, 1);
}
END_TEST

/* ---- DRIVER_OK and the wiring ---- */

START_TEST(driver_ok_activates_and_wires)
{
    bring_up(0xb); /* vectors 0, 1 and the config vector unmasked; 2 masked */
    ck_assert_uint_eq(status(), S_LIVE);
    ck_assert_int_eq(dev.activates, 1);
    ck_assert_int_eq(fp.nioev, NQ);
    for (unsigned q = 0; q < NQ; q++)
        ck_assert_msg(ioev_live(bar4 + NOTIFY + 4 * q, kick_fd(q)), "queue %u doorbell", q);
    ck_assert_int_eq(fp.nirqfd, 2);
    ck_assert(irqfd_live(GSI_BASE + 0, call_fd(0)));
    ck_assert(irqfd_live(GSI_BASE + 1, call_fd(1)));
    ck_assert_int_eq(fp.nwatch, 1);
    ck_assert_int_ge(watch_index(call_fd(2)), 0);
    /* Every vector's route carries what the guest programmed. */
    for (unsigned v = 0; v < NVEC; v++) {
        ck_assert_uint_eq(vp.vectors[v].gsi, GSI_BASE + v);
        ck_assert_uint_eq(fp.route_addr[v], vec_addr(v));
        ck_assert_uint_eq(fp.route_data[v], vec_data(v));
    }
    /* DRIVER_OK again starts nothing twice. */
    set_status(S_LIVE);
    ck_assert_int_eq(dev.activates, 1);
    ck_assert_int_eq(fp.ioev_assigns, NQ);
    ck_assert_int_eq(fp.irqfd_assigns, 2);
    assert_no_bad_calls();
}
END_TEST

/* With NOTIFICATION_DATA the driver writes 32 bits to the doorbell (the queue index and
 * its next available position): the ioeventfds are 4 bytes wide, and come off as such. */
START_TEST(notification_data_doorbells_are_four_bytes)
{
    dev.features |= 1ULL << VIRTIO_F_NOTIFICATION_DATA;
    bring_up_with(0xb, 1ULL << VIRTIO_F_NOTIFICATION_DATA);
    ck_assert_uint_eq(status(), S_LIVE);
    ck_assert_int_eq(fp.nioev, NQ);
    for (int i = 0; i < fp.nioev; i++)
        ck_assert_uint_eq(fp.ioev[i].len, 4);
    set_status(0);
    ck_assert_uint_eq(status(), 0);
    ck_assert_int_eq(fp.nioev, 0);
    assert_no_bad_calls();
    bring_up(0xb); /* and without it, 2 bytes again */
    for (unsigned q = 0; q < NQ; q++)
        ck_assert(ioev_live(bar4 + NOTIFY + 4 * q, kick_fd(q)));
}
END_TEST

/* The guest's write returns before the model starts: the model's activate is
 * queued on its loop and runs later, with the device already wired (a kick the
 * guest makes meanwhile waits in its eventfd). */
START_TEST(driver_ok_returns_before_the_model_starts)
{
    set_status(S_ACK);
    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    for (unsigned q = 0; q < NQ; q++)
        setup_queue(q, 64, (uint16_t)q);
    wr_raw(COMMON_STATUS, 1, S_LIVE);
    ck_assert_int_eq(dev.activates, 0);
    ck_assert_uint_eq(status(), S_LIVE);
    ck_assert_int_eq(vp.phase, VP_STARTING);
    ck_assert_int_eq(fp.nioev, NQ);
    settle();
    ck_assert_int_eq(dev.activates, 1);
    ck_assert_int_eq(vp.phase, VP_ACTIVE);
    assert_no_bad_calls();
}
END_TEST

/* Status 0 on a live device: the write returns at once, the status still reads as
 * before (the driver waits for 0, as the spec asks), the driver's other writes are
 * ignored meanwhile, and the reset completes when the model's loop has stopped it. */
START_TEST(reset_completes_after_the_model_stopped)
{
    bring_up(0xf);
    wr(COMMON_Q_SELECT, 2, 1);
    wr_raw(COMMON_STATUS, 1, 0);
    ck_assert_int_eq(dev.resets, 0);
    ck_assert_uint_eq(status(), S_LIVE);
    ck_assert_int_eq(vp.phase, VP_RESETTING);
    wr_raw(COMMON_Q_SELECT, 2, 2);
    wr_raw(COMMON_STATUS, 1, S_ACK);
    ck_assert_uint_eq(rd(COMMON_Q_SELECT, 2), 1);
    ck_assert_uint_eq(status(), S_LIVE);
    settle();
    ck_assert_int_eq(dev.resets, 1);
    ck_assert_uint_eq(status(), 0);
    ck_assert_int_eq(vp.phase, VP_IDLE);
    assert_nothing_wired();
    assert_no_bad_calls();
}
END_TEST

/* DRIVER_OK and status 0 both queued before the loop runs: the model never starts,
 * the reset runs once, and nothing stays wired. */
START_TEST(reset_queued_behind_activation_cancels_it)
{
    set_status(S_ACK);
    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    for (unsigned q = 0; q < NQ; q++)
        setup_queue(q, 64, (uint16_t)q);
    wr_raw(COMMON_STATUS, 1, S_LIVE);
    wr_raw(COMMON_STATUS, 1, 0);
    settle();
    ck_assert_int_eq(dev.activates, 0);
    ck_assert_int_eq(dev.resets, 1);
    ck_assert_uint_eq(status(), 0);
    assert_nothing_wired();
    assert_no_bad_calls();
}
END_TEST

START_TEST(driver_ok_without_features_ok_starts_nothing)
{
    set_status(S_ACK | S_DRIVER);
    set_status(S_ACK | S_DRIVER | S_DRIVER_OK);
    ck_assert_int_eq(dev.activates, 0);
    assert_nothing_wired();
    ck_assert_int_eq(fp.ioev_assigns, 0);
}
END_TEST

START_TEST(activate_failure_needs_reset)
{
    uint8_t gen;

    dev.activate_ret = -EIO;
    gen = (uint8_t)rd(COMMON_CFGGENERATION, 1);
    bring_up(0xb);
    ck_assert_int_eq(dev.activates, 1);
    ck_assert_uint_eq(status(), S_LIVE | VIRTIO_STATUS_NEEDS_RESET);
    assert_nothing_wired();
    assert_no_bad_calls();
    /* The guest is told through the config vector. */
    ck_assert_int_eq(fp.nmsis, 1);
    ck_assert_uint_eq(fp.msis[0].addr, vec_addr(CONFIG_VECTOR));
    ck_assert_uint_eq(fp.msis[0].data, vec_data(CONFIG_VECTOR));
    ck_assert_uint_eq(rd(COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
    ck_assert_uint_eq(rd(ISR, 1), 0x2);
    /* NEEDS_RESET sticks until the reset; a model that never started is not reset. */
    set_status(S_LIVE);
    ck_assert_uint_eq(status() & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
    set_status(0);
    ck_assert_uint_eq(status(), 0);
    ck_assert_int_eq(dev.resets, 0);
}
END_TEST

START_TEST(doorbell_failure_needs_reset_and_undoes_only_its_own)
{
    fp.ioev_fail_addr = bar4 + NOTIFY + 4;
    bring_up(0xb);
    ck_assert_int_eq(dev.activates, 0);
    ck_assert_uint_eq(status(), S_LIVE | VIRTIO_STATUS_NEEDS_RESET);
    assert_nothing_wired();
    set_status(0);
    ck_assert_int_eq(dev.resets, 0);
    assert_nothing_wired();
    ck_assert_int_eq(fp.irqfd_bad, 0);
    ck_assert_int_eq(fp.watch_bad, 0);
    /* Only the doorbells that were assigned are deassigned. */
    ck_assert_msg(fp.ioev_bad == 0, "%d deassigns of doorbells never assigned", fp.ioev_bad);
}
END_TEST

START_TEST(status_bits_cleared_without_a_reset)
{
    /* The spec forbids it; a guest doing it must not start the model twice, wire
     * the live device again (found by fuzz_guest: KVM refused the second ioeventfd
     * and the unwind tore down the live doorbells) nor leave anything wired past
     * the reset. The bits stay set until the reset. */
    bring_up(0xb);
    set_status(S_ACK);
    ck_assert_uint_eq(status(), S_LIVE);
    set_status(S_LIVE);
    ck_assert_uint_eq(status(), S_LIVE);
    ck_assert_int_eq(dev.activates, 1);
    ck_assert_int_eq(fp.ioev_assigns, NQ);
    for (unsigned q = 0; q < NQ; q++)
        ck_assert_msg(ioev_live(bar4 + NOTIFY + 4 * q, kick_fd(q)), "queue %u doorbell", q);
    ck_assert(irqfd_live(GSI_BASE + 0, call_fd(0)));
    assert_no_bad_calls();
    set_status(0);
    ck_assert_int_eq(dev.resets, 1);
    assert_nothing_wired();
}
END_TEST

START_TEST(driver_ok_with_the_bar_unmapped_needs_reset)
{
    const uint8_t live = S_LIVE;

    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    pci_config_write(&vp.pci, PCI_COMMAND, 2, 0);
    /* The write cannot come through the bus now; send it to the BAR's device. */
    vp.caps_dev.ops->write(&vp.caps_dev, COMMON_STATUS, &live, 1);
    ck_assert_int_eq(dev.activates, 0);
    ck_assert_uint_eq(vp.status, S_LIVE | VIRTIO_STATUS_NEEDS_RESET);
    assert_nothing_wired();
    assert_no_bad_calls();
}
END_TEST

START_TEST(unmasking_switches_a_queue_from_watch_to_irqfd)
{
    bring_up(0xb);
    mask_vector(2, false);
    ck_assert_int_eq(watch_index(call_fd(2)), -1);
    ck_assert(irqfd_live(GSI_BASE + 2, call_fd(2)));
    ck_assert_int_eq(fp.nirqfd, 3);
    ck_assert_int_eq(fp.nwatch, 0);
    /* Masking goes back. */
    mask_vector(0, true);
    ck_assert(!irqfd_live(GSI_BASE + 0, call_fd(0)));
    ck_assert_int_ge(watch_index(call_fd(0)), 0);
    ck_assert_int_eq(fp.nirqfd, 2);
    /* The function mask and disabling MSI-X mask every vector. */
    msix_control(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    ck_assert_int_eq(fp.nirqfd, 0);
    ck_assert_int_eq(fp.nwatch, NQ);
    msix_control(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(fp.nirqfd, 2);
    ck_assert(irqfd_live(GSI_BASE + 1, call_fd(1)));
    ck_assert(irqfd_live(GSI_BASE + 2, call_fd(2)));
    ck_assert_int_eq(fp.nwatch, 1);
    msix_control(0);
    ck_assert_int_eq(fp.nirqfd, 0);
    ck_assert_int_eq(fp.nwatch, NQ);
    assert_no_bad_calls();
}
END_TEST

START_TEST(masked_call_pends_and_unmask_delivers)
{
    int w;

    bring_up(0xb);
    w = watch_index(call_fd(2));
    ck_assert_int_ge(w, 0);
    /* Nothing in the eventfd: nothing pends. */
    fp.watch[w].cb(fp.watch[w].arg, 1);
    ck_assert_uint_eq(pba(), 0);
    /* The backend signals the masked queue. */
    eventfd_put(call_fd(2));
    fp.watch[w].cb(fp.watch[w].arg, 1);
    ck_assert_uint_eq(pba(), 1u << 2);
    ck_assert_uint_eq(eventfd_take(call_fd(2)), 0); /* consumed */
    ck_assert_int_eq(fp.nmsis, 0);
    mask_vector(2, false);
    ck_assert_int_eq(fp.nmsis, 1);
    ck_assert_uint_eq(fp.msis[0].addr, vec_addr(2));
    ck_assert_uint_eq(fp.msis[0].data, vec_data(2));
    ck_assert_uint_eq(pba(), 0);
}
END_TEST

START_TEST(queue_vector_change_while_live)
{
    bring_up(0xb);
    wr(COMMON_Q_SELECT, 2, 0);
    wr(COMMON_Q_MSIX, 2, 2); /* masked */
    ck_assert(!irqfd_live(GSI_BASE + 0, call_fd(0)));
    ck_assert_int_ge(watch_index(call_fd(0)), 0);
    wr(COMMON_Q_MSIX, 2, 1); /* unmasked, shared with queue 1 */
    ck_assert_int_eq(watch_index(call_fd(0)), -1);
    ck_assert(irqfd_live(GSI_BASE + 1, call_fd(0)));
    ck_assert(irqfd_live(GSI_BASE + 1, call_fd(1)));
    wr(COMMON_Q_MSIX, 2, VIRTIO_NO_VECTOR);
    ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
    ck_assert_int_eq(watch_index(call_fd(0)), -1);
    ck_assert_int_eq(fp.nirqfd, 1);
    assert_no_bad_calls();
}
END_TEST

static void assert_reset_state(void)
{
    ck_assert_uint_eq(status(), 0);
    ck_assert_uint_eq(dev.vdev.acked_features, 0);
    ck_assert_uint_eq(rd(COMMON_MSIX, 2), VIRTIO_NO_VECTOR);
    ck_assert_uint_eq(rd(COMMON_Q_SELECT, 2), 0);
    wr(COMMON_GFSELECT, 4, 0);
    ck_assert_uint_eq(rd(COMMON_GF, 4), 0);
    for (unsigned q = 0; q < NQ; q++) {
        wr(COMMON_Q_SELECT, 2, q);
        ck_assert_uint_eq(rd(COMMON_Q_SIZE, 2), QMAX);
        ck_assert_uint_eq(rd(COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
        ck_assert_uint_eq(rd(COMMON_Q_ENABLE, 2), 0);
        ck_assert_uint_eq(rd(COMMON_Q_DESCLO, 8), 0);
        ck_assert_uint_eq(rd(COMMON_Q_AVAILLO, 8), 0);
        ck_assert_uint_eq(rd(COMMON_Q_USEDLO, 8), 0);
        /* Stale doorbells and interrupts are gone. */
        ck_assert_uint_eq(eventfd_take(kick_fd(q)), 0);
        ck_assert_uint_eq(eventfd_take(call_fd(q)), 0);
    }
}

START_TEST(status_zero_resets_and_unwires)
{
    uint8_t gen;

    bring_up(0xb);
    eventfd_put(kick_fd(1));
    eventfd_put(call_fd(2));
    virtio_notify_config(&dev.vdev);
    gen = (uint8_t)rd(COMMON_CFGGENERATION, 1);
    set_status(0);
    ck_assert_int_eq(dev.resets, 1);
    ck_assert_uint_eq(rd(ISR, 1), 0);
    assert_nothing_wired();
    assert_no_bad_calls();
    ck_assert_uint_eq(rd(COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
    assert_reset_state();
    ck_assert(msix_enabled(&vp.msix)); /* MSI-X is PCI state, not virtio state */
    /* A second reset does not stop the model again. */
    set_status(0);
    ck_assert_int_eq(dev.resets, 1);
    /* And the device comes up again. */
    bring_up(0xf);
    ck_assert_int_eq(dev.activates, 2);
    ck_assert_int_eq(fp.nioev, NQ);
    ck_assert_int_eq(fp.nirqfd, NQ);
    assert_no_bad_calls();
}
END_TEST

/* After a platform reset the function is as at power-on: decode off (nothing on the
 * bus), its BARs where the registry placed them, MSI-X off with every entry masked. */
static void assert_pci_power_on_state(void)
{
    uint8_t b[4];

    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_COMMAND, 2), 0);
    ck_assert(!bus_read(&mmio, bar4, b, sizeof(b)));
    ck_assert(!bus_read(&mmio, bar1, b, sizeof(b)));
    ck_assert_uint_eq(pci_config_read(&vp.pci, msix_cap + 2, 2) & MSIX_CTRL_ENABLE, 0);
    ck_assert(!msix_enabled(&vp.msix));
    pci_config_write(&vp.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(pci_bar_address(&vp.pci, VIRTIO_PCI_CAPS_BAR), bar4);
    ck_assert_uint_eq(pci_bar_address(&vp.pci, VIRTIO_PCI_MSIX_BAR), bar1);
    for (unsigned v = 0; v < NVEC; v++)
        ck_assert(msix_vector_masked(&vp.msix, v));
}

START_TEST(platform_reset_stops_a_live_device)
{
    bring_up(0xb);
    virtio_pci_reset(&vp);
    ck_assert_int_eq(dev.resets, 1);
    assert_nothing_wired();
    assert_no_bad_calls();
    assert_pci_power_on_state();
    assert_reset_state();
}
END_TEST

START_TEST(reset_with_the_bar_unmapped_deassigns_nothing_twice)
{
    bring_up(0xb);
    pci_config_write(&vp.pci, PCI_COMMAND, 2, 0);
    ck_assert_int_eq(fp.nioev, 0); /* the doorbells left with the BAR */
    assert_no_bad_calls();
    virtio_pci_reset(&vp);
    ck_assert_int_eq(dev.resets, 1);
    assert_nothing_wired();
    ck_assert_int_eq(fp.irqfd_bad, 0);
    ck_assert_int_eq(fp.watch_bad, 0);
    /* Nothing was assigned at the unmapped base: no deassign may be sent there. */
    ck_assert_msg(fp.ioev_bad == 0, "%d ioeventfd deassigns at the unmapped BAR base", fp.ioev_bad);
}
END_TEST

START_TEST(bar_move_moves_the_doorbells)
{
    uint64_t new_base = bar4 + 0x100000;

    bring_up(0xb);
    pci_config_write(&vp.pci, PCI_COMMAND, 2, 0);
    ck_assert_int_eq(fp.nioev, 0);
    pci_config_write(&vp.pci, PCI_BASE_ADDRESS_0 + 16, 4, (uint32_t)new_base);
    pci_config_write(&vp.pci, PCI_BASE_ADDRESS_0 + 20, 4, (uint32_t)(new_base >> 32));
    pci_config_write(&vp.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(pci_bar_address(&vp.pci, VIRTIO_PCI_CAPS_BAR), new_base);
    bar4 = new_base;
    ck_assert_int_eq(fp.nioev, NQ);
    for (unsigned q = 0; q < NQ; q++)
        ck_assert(ioev_live(new_base + NOTIFY + 4 * q, kick_fd(q)));
    ck_assert_uint_eq(status(), S_LIVE);
    ck_assert_int_eq(fp.nirqfd, 2); /* interrupts do not depend on the BAR */
    set_status(0);
    assert_nothing_wired();
    ck_assert_int_eq(fp.irqfd_bad, 0);
    ck_assert_int_eq(fp.watch_bad, 0);
    /* The old doorbells left with the unmap: none may be deassigned again at
     * the unmapped base (KVM answers ENOENT and vmm logs an error per queue). */
    ck_assert_msg(fp.ioev_bad == 0, "%d ioeventfd deassigns at the unmapped BAR base", fp.ioev_bad);
}
END_TEST

/* ---- ISR, config changes, device config, doorbells ---- */

START_TEST(isr_read_clears)
{
    ck_assert_uint_eq(rd(ISR, 1), 0);
    virtio_notify_config(&dev.vdev);
    ck_assert_uint_eq(rd(ISR, 1), 0x2);
    ck_assert_uint_eq(rd(ISR, 1), 0);
    virtio_notify_config(&dev.vdev);
    ck_assert_uint_eq(rd(ISR, 4), 0x2);
    ck_assert_uint_eq(rd(ISR, 4), 0);
}
END_TEST

START_TEST(config_change_signals_an_unmasked_vector)
{
    uint8_t gen;

    bring_up(0xb);
    gen = (uint8_t)rd(COMMON_CFGGENERATION, 1);
    ck_assert_ptr_eq(dev.vdev.transport, &vp);
    dev.vdev.transport_ops->notify_config(dev.vdev.transport);
    ck_assert_uint_eq(rd(COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
    ck_assert_int_eq(fp.nmsis, 1);
    ck_assert_uint_eq(fp.msis[0].addr, vec_addr(CONFIG_VECTOR));
    ck_assert_uint_eq(fp.msis[0].data, vec_data(CONFIG_VECTOR));
    ck_assert_uint_eq(pba(), 0);
}
END_TEST

START_TEST(config_change_pends_on_a_masked_vector)
{
    uint8_t gen;

    bring_up(0x3);
    gen = (uint8_t)rd(COMMON_CFGGENERATION, 1);
    virtio_notify_config(&dev.vdev);
    ck_assert_uint_eq(rd(COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
    ck_assert_int_eq(fp.nmsis, 0);
    ck_assert_uint_eq(pba(), 1u << CONFIG_VECTOR);
    mask_vector(CONFIG_VECTOR, false);
    ck_assert_int_eq(fp.nmsis, 1);
    ck_assert_uint_eq(fp.msis[0].data, vec_data(CONFIG_VECTOR));
    ck_assert_uint_eq(pba(), 0);
}
END_TEST

START_TEST(config_change_without_a_vector)
{
    bring_up(0xf);
    wr(COMMON_MSIX, 2, VIRTIO_NO_VECTOR);
    virtio_notify_config(&dev.vdev);
    ck_assert_int_eq(fp.nmsis, 0);
    ck_assert_uint_eq(pba(), 0);
    ck_assert_uint_eq(rd(ISR, 1), 0x2);
}
END_TEST

START_TEST(device_config_reaches_the_model)
{
    ck_assert_uint_eq(rd(DEVCFG + 2, 2), 0x1312);
    ck_assert_uint_eq(dev.last_cfg_off, 2);
    ck_assert_uint_eq(dev.last_cfg_len, 2);
    ck_assert_uint_eq(rd(DEVCFG, 8), 0x1716151413121110ULL);
    ck_assert_uint_eq(rd(DEVCFG + 7, 1), 0x17);
    ck_assert_uint_eq(dev.last_cfg_off, 7);
    ck_assert_int_eq(dev.cfg_reads, 3);
    /* Past the model's config: zeros, and the model is not asked. */
    ck_assert_uint_eq(rd(DEVCFG + CFG_SIZE, 1), 0);
    ck_assert_uint_eq(rd(DEVCFG + 6, 4), 0);
    ck_assert_uint_eq(rd(DEVCFG + 0x100, 4), 0);
    ck_assert_int_eq(dev.cfg_reads, 3);
    wr(DEVCFG + 1, 1, 0xaa);
    ck_assert_int_eq(dev.cfg_writes, 1);
    ck_assert_uint_eq(dev.last_cfg_off, 1);
    ck_assert_uint_eq(dev.last_cfg_len, 1);
    ck_assert_uint_eq(dev.last_written, 0xaa);
    wr(DEVCFG + CFG_SIZE, 1, 0xbb);
    wr(DEVCFG + 6, 4, 0xbb);
    ck_assert_int_eq(dev.cfg_writes, 1);
}
END_TEST

START_TEST(doorbell_writes_kick_the_queue)
{
    wr(NOTIFY + 4, 2, 1);
    ck_assert_uint_eq(eventfd_take(kick_fd(1)), 1);
    ck_assert_uint_eq(eventfd_take(kick_fd(0)), 0);
    wr(NOTIFY + 4 * (NQ - 1), 4, 0);
    ck_assert_uint_eq(eventfd_take(kick_fd(NQ - 1)), 1);
    wr(NOTIFY + 4 * NQ, 2, 1); /* no such queue */
    wr(NOTIFY + 0x400, 2, 1);
    for (unsigned q = 0; q < NQ; q++)
        ck_assert_uint_eq(eventfd_take(kick_fd(q)), 0);
    ck_assert_uint_eq(rd(NOTIFY, 2), 0);
}
END_TEST

/* ---- hostile guests ---- */

static void junk_everywhere(void)
{
    static const uint32_t lens[] = {1, 2, 4, 8};

    for (unsigned l = 0; l < 4; l++) {
        for (uint64_t off = 0; off + lens[l] <= VIRTIO_PCI_CAPS_BAR_SIZE; off++) {
            wr(off, lens[l], UINT64_MAX);
            rd(off, lens[l]);
        }
        for (uint64_t off = 0; off + lens[l] <= 0x1000; off++) {
            mwr(off, lens[l], UINT64_MAX);
            mrd(off, lens[l]);
        }
    }
}

START_TEST(junk_in_both_bars_while_idle)
{
    junk_everywhere();
    ck_assert_int_eq(dev.activates, 0); /* all-ones features are never acceptable */
    assert_no_bad_calls();
    set_status(0);
    assert_nothing_wired();
    bring_up(0xf);
    ck_assert_int_eq(dev.activates, 1);
    ck_assert_int_eq(fp.nioev, NQ);
    ck_assert_int_eq(fp.nirqfd, NQ);
}
END_TEST

START_TEST(junk_in_both_bars_while_live)
{
    bring_up(0xb);
    junk_everywhere();
    assert_no_bad_calls();
    set_status(0);
    ck_assert_int_eq(dev.resets, 1);
    assert_nothing_wired();
    assert_no_bad_calls();
}
END_TEST

/* ---- creation and destruction ---- */

START_TEST(init_rejects_too_many_queues)
{
    static struct virtio_pci vp2;
    static struct fake_dev dev2;
    int allocs = fp.allocs;

    fake_dev_init(&dev2, VIRTIO_MAX_QUEUES + 1);
    ck_assert_int_eq(virtio_pci_init(&vp2, &dev2.vdev, &fp.ops), -EINVAL);
    ck_assert_int_eq(fp.allocs, allocs);
    ck_assert_int_eq(dev2.vdev.queues[0].kick_fd, -1);
}
END_TEST

START_TEST(init_failure_releases_what_it_took)
{
    static struct virtio_pci vp2;
    static struct fake_dev dev2;
    int fds = support_count_fds();
    int first_gsi = fp.next_gsi;

    fake_dev_init(&dev2, NQ);
    fp.alloc_fail_at = fp.allocs + 2; /* the third route */
    ck_assert_int_eq(virtio_pci_init(&vp2, &dev2.vdev, &fp.ops), -ENOSPC);
    ck_assert_int_eq(fp.nfreed, 2);
    ck_assert_int_eq(fp.freed[0], first_gsi);
    ck_assert_int_eq(fp.freed[1], first_gsi + 1);
    for (unsigned q = 0; q < NQ; q++) {
        ck_assert_int_eq(dev2.vdev.queues[q].kick_fd, -1);
        ck_assert_int_eq(dev2.vdev.queues[q].call_fd, -1);
    }
    ck_assert_int_eq(support_count_fds(), fds);
}
END_TEST

START_TEST(destroy_releases_routes_and_eventfds)
{
    static struct virtio_pci vp2;
    static struct fake_dev dev2;
    int fds = support_count_fds();
    int first_gsi = fp.next_gsi;

    fake_dev_init(&dev2, 1);
    ck_assert_int_eq(virtio_pci_init(&vp2, &dev2.vdev, &fp.ops), 0);
    ck_assert_int_eq(support_count_fds(), fds + 2);
    ck_assert_uint_eq(pci_config_read(&vp2.pci, PCI_DEVICE_ID, 2), 0x1041);
    virtio_pci_destroy(&vp2);
    ck_assert_int_eq(fp.nfreed, 2);
    ck_assert_int_eq(fp.freed[0], first_gsi);
    ck_assert_int_eq(fp.freed[1], first_gsi + 1);
    ck_assert_int_eq(support_count_fds(), fds);
}
END_TEST

/* ---- migration: the caps device's save/load/pause/resume ----
 * A device is saved, the whole function (buses, platform, model) is torn down, a
 * fresh one at power-on loads the blob, and everything the guest can read, and
 * every piece of KVM wiring the fake platform holds, must be as before. */

#define COMMON_IMAGE 0x38

struct guest_view {
    uint8_t config[PCI_CONFIG_SPACE_SIZE];
    uint8_t common[COMMON_IMAGE];     /* at the guest's queue_select */
    uint8_t queues[NQ][COMMON_IMAGE]; /* with each queue selected */
    uint32_t device_features[2], driver_features[2];
    uint8_t table[NVEC * 16];
    uint64_t pba;
    uint8_t devcfg[CFG_SIZE];
    uint8_t isr; /* read last: reading clears it */
};

/* KVM's view, by queue and vector rather than by fd and GSI. */
struct wiring {
    uint64_t doorbell[NQ]; /* where the queue's kick fd is an ioeventfd, or 0 */
    int irqfd_vector[NQ];  /* the vector whose GSI has the queue's call fd, or -1 */
    bool watched[NQ];      /* the call fd is polled (a masked vector) */
    int nioev, nirqfd, nwatch;
    uint64_t route_addr[NVEC];
    uint32_t route_data[NVEC];
};

static struct state_buf blob;

static void read_common(uint8_t *out)
{
    for (unsigned off = 0; off < COMMON_IMAGE; off += 4) {
        uint32_t v = (uint32_t)rd(off, 4);

        memcpy(out + off, &v, 4);
    }
}

static void capture_view(struct guest_view *v)
{
    uint32_t dsel, gsel, qsel;

    memset(v, 0, sizeof(*v));
    for (unsigned off = 0; off < PCI_CONFIG_SPACE_SIZE; off += 4) {
        uint32_t w = pci_config_read(&vp.pci, off, 4);

        memcpy(v->config + off, &w, 4);
    }
    read_common(v->common);
    dsel = (uint32_t)rd(COMMON_DFSELECT, 4);
    gsel = (uint32_t)rd(COMMON_GFSELECT, 4);
    qsel = (uint32_t)rd(COMMON_Q_SELECT, 2);
    for (unsigned i = 0; i < 2; i++) {
        wr(COMMON_DFSELECT, 4, i);
        v->device_features[i] = (uint32_t)rd(COMMON_DF, 4);
        wr(COMMON_GFSELECT, 4, i);
        v->driver_features[i] = (uint32_t)rd(COMMON_GF, 4);
    }
    for (unsigned q = 0; q < NQ; q++) {
        wr(COMMON_Q_SELECT, 2, q);
        read_common(v->queues[q]);
    }
    wr(COMMON_DFSELECT, 4, dsel);
    wr(COMMON_GFSELECT, 4, gsel);
    wr(COMMON_Q_SELECT, 2, qsel);
    for (unsigned off = 0; off < sizeof(v->table); off += 4) {
        uint32_t w = (uint32_t)mrd(off, 4);

        memcpy(v->table + off, &w, 4);
    }
    v->pba = pba();
    for (unsigned off = 0; off < CFG_SIZE; off++)
        v->devcfg[off] = (uint8_t)rd(DEVCFG + off, 1);
    v->isr = (uint8_t)rd(ISR, 1);
}

static void capture_wiring(struct wiring *w)
{
    memset(w, 0, sizeof(*w));
    w->nioev = fp.nioev;
    w->nirqfd = fp.nirqfd;
    w->nwatch = fp.nwatch;
    for (unsigned q = 0; q < NQ; q++) {
        w->irqfd_vector[q] = -1;
        for (int i = 0; i < fp.nioev; i++)
            if (fp.ioev[i].fd == kick_fd(q) && fp.ioev[i].len == 2)
                w->doorbell[q] = fp.ioev[i].addr;
        for (int i = 0; i < fp.nirqfd; i++)
            if (fp.irqfd[i].fd == call_fd(q))
                w->irqfd_vector[q] = fp.irqfd[i].gsi - GSI_BASE;
        w->watched[q] = watch_index(call_fd(q)) >= 0;
    }
    for (unsigned v = 0; v < NVEC; v++) {
        ck_assert_int_eq(vp.vectors[v].gsi, GSI_BASE + (int)v);
        w->route_addr[v] = fp.route_addr[v];
        w->route_data[v] = fp.route_data[v];
    }
}

static void save_blob(void)
{
    state_buf_free(&blob);
    ck_assert_int_eq(vp.caps_dev.ops->save(&vp.caps_dev, &blob), 0);
    ck_assert_uint_gt(blob.len, PCI_CONFIG_SPACE_SIZE);
}

/* A new function at power-on (memory decode off, nothing wired) in place of the old. */
static void new_destination(unsigned nq, uint64_t features)
{
    teardown();
    setup_function(nq, features);
}

static int load_blob(size_t len)
{
    int ret = vp.caps_dev.ops->load(&vp.caps_dev, blob.data, len);

    bar4 = pci_bar_address(&vp.pci, VIRTIO_PCI_CAPS_BAR);
    return ret;
}

static void assert_same_view(const struct guest_view *a, const struct guest_view *b)
{
    ck_assert_mem_eq(a->config, b->config, sizeof(a->config));
    ck_assert_mem_eq(a->common, b->common, sizeof(a->common));
    for (unsigned q = 0; q < NQ; q++)
        ck_assert_mem_eq(a->queues[q], b->queues[q], sizeof(a->queues[q]));
    ck_assert_mem_eq(a->device_features, b->device_features, sizeof(a->device_features));
    ck_assert_mem_eq(a->driver_features, b->driver_features, sizeof(a->driver_features));
    ck_assert_mem_eq(a->table, b->table, sizeof(a->table));
    ck_assert_uint_eq(a->pba, b->pba);
    ck_assert_mem_eq(a->devcfg, b->devcfg, sizeof(a->devcfg));
    ck_assert_uint_eq(a->isr, b->isr);
}

static void assert_same_wiring(const struct wiring *a, const struct wiring *b)
{
    for (unsigned q = 0; q < NQ; q++) {
        ck_assert_msg(a->doorbell[q] == b->doorbell[q], "queue %u doorbell 0x%llx, expected 0x%llx",
                      q, (unsigned long long)b->doorbell[q], (unsigned long long)a->doorbell[q]);
        ck_assert_msg(a->irqfd_vector[q] == b->irqfd_vector[q],
                      "queue %u irqfd on vector %d, "
                      "expected %d",
                      q, b->irqfd_vector[q], a->irqfd_vector[q]);
        ck_assert_msg(a->watched[q] == b->watched[q], "queue %u watched %d, expected %d", q,
                      b->watched[q], a->watched[q]);
    }
    ck_assert_int_eq(a->nioev, b->nioev);
    ck_assert_int_eq(a->nirqfd, b->nirqfd);
    ck_assert_int_eq(a->nwatch, b->nwatch);
    ck_assert_mem_eq(a->route_addr, b->route_addr, sizeof(a->route_addr));
    ck_assert_mem_eq(a->route_data, b->route_data, sizeof(a->route_data));
}

/* A live device with state in every corner: selects moved, a pending config
 * interrupt in the ISR, a pending queue interrupt on the masked vector 2. */
static void bring_up_busy_device(void)
{
    bring_up(0xb);
    dev.model_state = 0xc0ffee;
    dev.config[3] = 0x99;
    virtio_notify_config(&dev.vdev);
    eventfd_put(call_fd(2));
    wr(COMMON_DFSELECT, 4, 1);
    wr(COMMON_GFSELECT, 4, 1);
    wr(COMMON_Q_SELECT, 2, 1);
}

START_TEST(pause_stops_the_model_and_keeps_masked_interrupts)
{
    bring_up_busy_device();
    ck_assert_uint_eq(pba(), 0);
    ck_assert_int_eq(vp.caps_dev.ops->pause(&vp.caps_dev), 0);
    ck_assert_int_eq(dev.stops, 1);
    /* The masked queue's interrupt, never polled, is pending in the PBA (which is saved). */
    ck_assert_uint_eq(pba(), 1u << 2);
    ck_assert_uint_eq(eventfd_take(call_fd(2)), 0);
    ck_assert_int_eq(fp.nioev, NQ); /* the wiring stays: the vCPUs are paused */
    ck_assert_int_eq(vp.caps_dev.ops->resume(&vp.caps_dev), 0);
    ck_assert_int_eq(dev.restarts, 1);
    assert_no_bad_calls();
}
END_TEST

START_TEST(pause_and_resume_of_an_idle_device_do_nothing)
{
    ck_assert_int_eq(vp.caps_dev.ops->pause(&vp.caps_dev), 0);
    ck_assert_int_eq(vp.caps_dev.ops->resume(&vp.caps_dev), 0);
    ck_assert_int_eq(dev.stops + dev.restarts, 0);
}
END_TEST

START_TEST(live_device_round_trip)
{
    struct guest_view before, after;
    struct wiring wired_before, wired_after;

    bring_up_busy_device();
    ck_assert_int_eq(vp.caps_dev.ops->pause(&vp.caps_dev), 0);
    save_blob();
    ck_assert_int_eq(dev.saves, 1);
    capture_wiring(&wired_before);
    capture_view(&before);

    new_destination(NQ, DEV_FEATURES);
    ck_assert_int_eq(load_blob(blob.len), 0);
    ck_assert_int_eq(dev.loads, 1);
    ck_assert_int_eq(dev.start_loadeds, 1);
    ck_assert_int_eq(dev.activates, 0);
    ck_assert_uint_eq(dev.model_state, 0xc0ffee);
    ck_assert_uint_eq(dev.vdev.acked_features, DEV_FEATURES | VERSION_1);
    /* Wired exactly as the guest's DRIVER_OK left the source, with one assign each. */
    capture_wiring(&wired_after);
    assert_same_wiring(&wired_before, &wired_after);
    ck_assert_int_eq(fp.ioev_assigns, NQ);
    ck_assert_int_eq(fp.irqfd_assigns, 2);
    assert_no_bad_calls();
    capture_view(&after);
    assert_same_view(&before, &after);
    ck_assert_uint_eq(after.isr, 0x2);
    ck_assert_uint_eq(after.pba, 1u << 2);

    /* The loaded device lives on: unmasking delivers the pending interrupt and
     * moves the queue to an irqfd; a reset stops the model and unwires it. */
    mask_vector(2, false);
    ck_assert_int_eq(fp.nmsis, 1);
    ck_assert_uint_eq(fp.msis[0].data, vec_data(2));
    ck_assert(irqfd_live(GSI_BASE + 2, call_fd(2)));
    /* Once by the load (a platform reset first, of the model too), once now. */
    ck_assert_int_eq(dev.resets, 1);
    set_status(0);
    ck_assert_int_eq(dev.resets, 2);
    assert_nothing_wired();
    assert_no_bad_calls();
    state_buf_free(&blob);
}
END_TEST

/* Features negotiated, queues set up, no DRIVER_OK yet: nothing is started or wired
 * on the destination, and the guest finishes its probe there. */
START_TEST(half_probed_device_round_trip)
{
    struct guest_view before, after;

    set_status(S_ACK | S_DRIVER);
    driver_features(DEV_FEATURES | VERSION_1);
    set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(COMMON_MSIX, 2, CONFIG_VECTOR);
    for (unsigned q = 0; q < NQ; q++)
        setup_queue(q, 32, (uint16_t)q);
    program_vector(0, false);
    msix_control(MSIX_CTRL_ENABLE);
    save_blob();
    capture_view(&before);

    new_destination(NQ, DEV_FEATURES);
    ck_assert_int_eq(load_blob(blob.len), 0);
    ck_assert_int_eq(dev.start_loadeds, 0);
    assert_nothing_wired();
    capture_view(&after);
    assert_same_view(&before, &after);
    for (unsigned v = 1; v < NVEC; v++)
        program_vector(v, false);
    set_status(S_LIVE);
    ck_assert_int_eq(dev.activates, 1);
    ck_assert_int_eq(fp.nioev, NQ);
    ck_assert_int_eq(fp.nirqfd, NQ);
    assert_no_bad_calls();
    state_buf_free(&blob);
}
END_TEST

/* The guest had turned memory decode off: the doorbells come with the BAR. */
START_TEST(live_device_with_decode_off_gets_its_doorbells_with_the_bar)
{
    bring_up(0xf);
    pci_config_write(&vp.pci, PCI_COMMAND, 2, 0);
    ck_assert_int_eq(vp.caps_dev.ops->pause(&vp.caps_dev), 0);
    save_blob();

    new_destination(NQ, DEV_FEATURES);
    ck_assert_int_eq(load_blob(blob.len), 0);
    ck_assert_int_eq(dev.start_loadeds, 1);
    ck_assert_int_eq(fp.nioev, 0);
    ck_assert_int_eq(fp.nirqfd, NQ);
    pci_config_write(&vp.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert_int_eq(fp.nioev, NQ);
    for (unsigned q = 0; q < NQ; q++)
        ck_assert(ioev_live(bar4 + NOTIFY + 4 * q, kick_fd(q)));
    set_status(0);
    assert_nothing_wired();
    assert_no_bad_calls();
    state_buf_free(&blob);
}
END_TEST

/* The destination stays at power-on: nothing wired, nothing started, nothing readable. */
static void assert_refused_cleanly(void)
{
    ck_assert_int_eq(dev.start_loadeds, 0);
    assert_nothing_wired();
    assert_no_bad_calls();
    ck_assert_uint_eq(vp.status, 0);
    ck_assert_int_eq(vp.phase, VP_IDLE);
    ck_assert_uint_eq(pci_config_read(&vp.pci, PCI_COMMAND, 2), 0);
}

START_TEST(every_truncation_is_refused)
{
    bring_up_busy_device();
    ck_assert_int_eq(vp.caps_dev.ops->pause(&vp.caps_dev), 0);
    save_blob();
    new_destination(NQ, DEV_FEATURES);
    for (size_t len = 0; len < blob.len; len++) {
        ck_assert_msg(load_blob(len) == -EINVAL, "a blob cut to %zu of %zu bytes was taken", len,
                      blob.len);
        assert_refused_cleanly();
    }
    /* With a byte too many, too. */
    ck_assert_int_eq(state_buf_put(&blob, "", 1), 0);
    ck_assert_int_eq(load_blob(blob.len), -EINVAL);
    assert_refused_cleanly();
    ck_assert_int_eq(load_blob(blob.len - 1), 0);
    ck_assert_int_eq(dev.start_loadeds, 1);
    state_buf_free(&blob);
}
END_TEST

/* Every byte flipped in turn: refused or taken, never a crash or a bad KVM call,
 * and a reset after a taken one leaves nothing wired. */
START_TEST(every_corrupted_byte_is_survived)
{
    int refused = 0;

    bring_up_busy_device();
    ck_assert_int_eq(vp.caps_dev.ops->pause(&vp.caps_dev), 0);
    save_blob();
    new_destination(NQ, DEV_FEATURES);
    for (size_t i = 0; i < blob.len; i++) {
        static const uint8_t flips[] = {0x01, 0x80, 0xff};

        for (unsigned f = 0; f < sizeof(flips); f++) {
            int ret;

            blob.data[i] ^= flips[f];
            ret = load_blob(blob.len);
            blob.data[i] ^= flips[f];
            ck_assert_msg(ret == 0 || ret == -EINVAL, "byte %zu ^ 0x%02x: load returned %d", i,
                          flips[f], ret);
            refused += ret != 0;
            assert_no_bad_calls();
            virtio_pci_reset(&vp);
            assert_nothing_wired();
            assert_no_bad_calls();
        }
    }
    /* The header, PCI identity and MSI-X size, queue sizes and vectors are checked. */
    ck_assert_int_gt(refused, 200);
    ck_assert_int_eq(load_blob(blob.len), 0);
    state_buf_free(&blob);
}
END_TEST

/* A saved live device the destination refuses: another queue count, features this
 * function lacks, a model refusing its part, a model failing to start. Each leaves the
 * destination at power-on, nothing wired, every vector masked. */
static const struct refusal {
    const char *what;
    unsigned unmasked; /* the source's unmasked vectors */
    unsigned nq;       /* the destination's queues and features */
    uint64_t features;
    int load_ret, start_loaded_ret; /* what the destination's model returns */
    int ret;                        /* what the load returns */
    int loads, start_loadeds;       /* the model's calls it saw */
} refusals[] = {
    {"wrong_queue_count_is_refused", 0xf, NQ - 1, DEV_FEATURES, 0, 0, -EINVAL, 0, 0},
    {"features_this_device_lacks_are_refused", 0xf, NQ, DEV_FEATURES & ~(1ULL << 40), 0, 0, -EINVAL,
     0, 0},
    {"model_refusal_leaves_power_on_state", 0xf, NQ, DEV_FEATURES, -EINVAL, 0, -EINVAL, 1, 0},
    {"start_failure_unwires_and_leaves_power_on_state", 0xb, NQ, DEV_FEATURES, 0, -EIO, -EIO, 1, 1},
};

START_TEST(refused_blob_leaves_power_on_state)
{
    const struct refusal *r = &refusals[_i];

    bring_up(r->unmasked);
    ck_assert_int_eq(vp.caps_dev.ops->pause(&vp.caps_dev), 0);
    save_blob();
    new_destination(r->nq, r->features);
    dev.load_ret = r->load_ret;
    dev.start_loaded_ret = r->start_loaded_ret;
    ck_assert_msg(load_blob(blob.len) == r->ret, "%s", r->what);
    ck_assert_msg(dev.loads == r->loads, "%s: %d loads", r->what, dev.loads);
    ck_assert_msg(dev.start_loadeds == r->start_loadeds, "%s: %d starts", r->what,
                  dev.start_loadeds);
    dev.start_loadeds = 0;
    assert_refused_cleanly();
    for (unsigned v = 0; v < NVEC; v++)
        ck_assert(msix_vector_masked(&vp.msix, v));
    state_buf_free(&blob);
}
END_TEST

static Suite *virtio_pci_suite(void)
{
    Suite *s = suite_create("virtio_pci");
    TCase *pci = tcase_create("pci");
    TCase *common = tcase_create("common");
    TCase *features = tcase_create("features");
    TCase *live = tcase_create("live");
    TCase *irq = tcase_create("notifications");
    TCase *hostile = tcase_create("hostile");
    TCase *life = tcase_create("lifetime");
    TCase *mig = tcase_create("migration");

    tcase_add_checked_fixture(pci, setup, teardown);
    tcase_add_test(pci, pci_identity_and_bars);
    tcase_add_test(pci, capability_list);
    suite_add_tcase(s, pci);

    tcase_add_checked_fixture(common, setup, teardown);
    tcase_add_test(common, device_feature_windows);
    tcase_add_test(common, driver_feature_windows);
    tcase_add_test(common, num_queues_and_queue_select);
    tcase_add_test(common, queue_size_power_of_two_up_to_max);
    tcase_add_test(common, queue_size_any_for_packed_rings_only);
    tcase_add_test(common, vectors_validated);
    tcase_add_test(common, queue_addresses_in_halves);
    tcase_add_test(common, enabled_queue_is_frozen_but_its_vector_is_not);
    suite_add_tcase(s, common);

    tcase_add_checked_fixture(features, setup, teardown);
    tcase_add_test(features, features_ok_needs_version_1);
    tcase_add_test(features, features_ok_refuses_unoffered_bits);
    tcase_add_test(features, features_ok_refused_by_the_model);
    tcase_add_test(features, features_ok_accepted);
    suite_add_tcase(s, features);

    tcase_add_checked_fixture(live, setup, teardown);
    tcase_add_test(live, driver_ok_activates_and_wires);
    tcase_add_test(live, notification_data_doorbells_are_four_bytes);
    tcase_add_test(live, driver_ok_returns_before_the_model_starts);
    tcase_add_test(live, reset_completes_after_the_model_stopped);
    tcase_add_test(live, reset_queued_behind_activation_cancels_it);
    tcase_add_test(live, driver_ok_without_features_ok_starts_nothing);
    tcase_add_test(live, activate_failure_needs_reset);
    tcase_add_test(live, driver_ok_with_the_bar_unmapped_needs_reset);
    tcase_add_test(live, doorbell_failure_needs_reset_and_undoes_only_its_own);
    tcase_add_test(live, status_bits_cleared_without_a_reset);
    tcase_add_test(live, unmasking_switches_a_queue_from_watch_to_irqfd);
    tcase_add_test(live, masked_call_pends_and_unmask_delivers);
    tcase_add_test(live, queue_vector_change_while_live);
    tcase_add_test(live, status_zero_resets_and_unwires);
    tcase_add_test(live, platform_reset_stops_a_live_device);
    tcase_add_test(live, reset_with_the_bar_unmapped_deassigns_nothing_twice);
    tcase_add_test(live, bar_move_moves_the_doorbells);
    suite_add_tcase(s, live);

    tcase_add_checked_fixture(irq, setup, teardown);
    tcase_add_test(irq, isr_read_clears);
    tcase_add_test(irq, config_change_signals_an_unmasked_vector);
    tcase_add_test(irq, config_change_pends_on_a_masked_vector);
    tcase_add_test(irq, config_change_without_a_vector);
    tcase_add_test(irq, device_config_reaches_the_model);
    tcase_add_test(irq, doorbell_writes_kick_the_queue);
    suite_add_tcase(s, irq);

    tcase_add_checked_fixture(hostile, setup, teardown);
    tcase_add_test(hostile, junk_in_both_bars_while_idle);
    tcase_add_test(hostile, junk_in_both_bars_while_live);
    tcase_set_timeout(hostile, 60);
    suite_add_tcase(s, hostile);

    tcase_add_checked_fixture(life, setup, teardown);
    tcase_add_test(life, init_rejects_too_many_queues);
    tcase_add_test(life, init_failure_releases_what_it_took);
    tcase_add_test(life, destroy_releases_routes_and_eventfds);
    suite_add_tcase(s, life);

    tcase_add_checked_fixture(mig, setup, teardown);
    tcase_add_test(mig, pause_stops_the_model_and_keeps_masked_interrupts);
    tcase_add_test(mig, pause_and_resume_of_an_idle_device_do_nothing);
    tcase_add_test(mig, live_device_round_trip);
    tcase_add_test(mig, half_probed_device_round_trip);
    tcase_add_test(mig, live_device_with_decode_off_gets_its_doorbells_with_the_bar);
    tcase_add_test(mig, every_truncation_is_refused);
    tcase_add_test(mig, every_corrupted_byte_is_survived);
    tcase_add_loop_test(mig, refused_blob_leaves_power_on_state, 0,
                        sizeof(refusals) / sizeof(refusals[0]));
    tcase_set_timeout(mig, 60);
    suite_add_tcase(s, mig);
    return s;
}

CHECK_MAIN(virtio_pci_suite)
