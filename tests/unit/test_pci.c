/* The PCI host bridge and registry driven as Linux drives them: configuration
 * mechanism #1 on ports 0xCF8/0xCFC, BAR sizing and placement, capability lists,
 * and BARs appearing on the MMIO bus only while memory decode is on. */
#include "../../devices/pci.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MEM32_BASE 0xc0000000ULL
#define MEM32_SIZE 0x3e000000ULL /* up to 0xfe000000 */
#define MEM64_BASE 0x200000000ULL
#define MEM64_SIZE 0x400000000ULL

#define BAR0_SIZE 0x1000ULL
#define BAR2_SIZE 0x4000ULL /* 64-bit, prefetchable, takes BAR2 and BAR3 */
#define BAR4_SIZE 0x100ULL

/* One BAR's struct device: records the last access it got. */
struct bar_probe {
    struct device dev;
    int bar;
    int reads, writes;
    uint64_t last_offset;
};

struct test_dev {
    struct pci_device pci;
    struct bar_probe bars[PCI_NUM_BARS];
    struct {
        int bar;
        uint64_t old_addr, new_addr;
    } moves[16];
    int nr_moves;
};

static struct bus pio, mmio;
static struct pci pci;
static struct test_dev td;

static void probe_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
    struct bar_probe *p = (struct bar_probe *)dev;

    p->reads++;
    p->last_offset = offset;
    memset(data, 0x5a, len);
}

static void probe_write(struct device *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct bar_probe *p = (struct bar_probe *)dev;

    (void)data, (void)len;
    p->writes++;
    p->last_offset = offset;
}

static const struct device_ops probe_ops = {.read = probe_read, .write = probe_write};

static void record_move(struct pci_device *dev, int bar, uint64_t old_addr, uint64_t new_addr)
{
    struct test_dev *t = dev->opaque;

    ck_assert_int_lt(t->nr_moves, 16);
    t->moves[t->nr_moves].bar = bar;
    t->moves[t->nr_moves].old_addr = old_addr;
    t->moves[t->nr_moves].new_addr = new_addr;
    t->nr_moves++;
}

static const struct pci_ids test_ids = {
    .vendor = 0x1af4,
    .device = 0x1041,
    .subsystem_vendor = 0x1af4,
    .subsystem = 0x1100,
    .class_code = 0x020000,
    .revision = 1,
};

/* BAR0: 32-bit 4 KiB; BAR2: 64-bit prefetchable 16 KiB; BAR4: 32-bit 256 bytes. */
static void test_dev_init(struct test_dev *t, const char *id)
{
    memset(t, 0, sizeof(*t));
    ck_assert_int_eq(pci_device_init(&t->pci, id, &test_ids), 0);
    for (int i = 0; i < PCI_NUM_BARS; i++)
        t->bars[i] = (struct bar_probe){.dev = {.id = id, .ops = &probe_ops}, .bar = i};
    ck_assert_int_eq(pci_set_bar(&t->pci, 0, BAR0_SIZE, 0, &t->bars[0].dev), 0);
    ck_assert_int_eq(
        pci_set_bar(&t->pci, 2, BAR2_SIZE, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, &t->bars[2].dev), 0);
    ck_assert_int_eq(pci_set_bar(&t->pci, 4, BAR4_SIZE, 0, &t->bars[4].dev), 0);
    t->pci.bar_moved = record_move;
    t->pci.opaque = t;
}

static void setup(void)
{
    const struct pci_layout layout = {MEM32_BASE, MEM32_SIZE, MEM64_BASE, MEM64_SIZE};

    ck_assert_int_eq(bus_init(&pio, "pio"), 0);
    ck_assert_int_eq(bus_init(&mmio, "mmio"), 0);
    ck_assert_int_eq(pci_init(&pci, &pio, &mmio, &layout), 0);
    test_dev_init(&td, "net0");
}

static void teardown(void)
{
    pci_destroy(&pci);
    pci_device_destroy(&td.pci);
    bus_destroy(&mmio);
    bus_destroy(&pio);
}

/* ---- port helpers, as arch/x86/pci/direct.c does them ---- */

static uint32_t in(uint16_t port, uint32_t len)
{
    uint8_t b[4] = {0};

    bus_read(&pio, port, b, len);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void out(uint16_t port, uint32_t len, uint32_t val)
{
    uint8_t b[4] = {(uint8_t)val, (uint8_t)(val >> 8), (uint8_t)(val >> 16), (uint8_t)(val >> 24)};

    bus_write(&pio, port, b, len);
}

static uint32_t conf1_addr(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
    return PCI_CONFIG_ENABLE | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t conf1_read(unsigned slot, unsigned reg, uint32_t len)
{
    out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(0, slot, 0, reg));
    return in(PCI_CONFIG_DATA_PORT + (reg & 3), len);
}

static void conf1_write(unsigned slot, unsigned reg, uint32_t len, uint32_t val)
{
    out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(0, slot, 0, reg));
    out(PCI_CONFIG_DATA_PORT + (reg & 3), len, val);
}

static void register_td(void)
{
    ck_assert_int_eq(pci_register(&pci, &td.pci, -1), 0);
    ck_assert_int_eq(td.pci.slot, 1);
}

static uint32_t cfg(unsigned off, unsigned len)
{
    return pci_config_read(&td.pci, off, len);
}

static void set_cfg(unsigned off, unsigned len, uint32_t val)
{
    pci_config_write(&td.pci, off, len, val);
}

static bool mmio_claims(uint64_t addr)
{
    uint8_t b[4];

    return bus_read(&mmio, addr, b, 4);
}

/* ---- configuration mechanism #1 ---- */

START_TEST(address_latch_reads_back)
{
    uint32_t saved;

    /* pci_check_type1(): a byte to 0xCFB, then the latch must read back 0x80000000. */
    out(0xcfb, 1, 0x01);
    saved = in(PCI_CONFIG_ADDR_PORT, 4);
    out(PCI_CONFIG_ADDR_PORT, 4, 0x80000000);
    ck_assert_uint_eq(in(PCI_CONFIG_ADDR_PORT, 4), 0x80000000);
    out(PCI_CONFIG_ADDR_PORT, 4, saved);
    ck_assert_uint_eq(in(PCI_CONFIG_ADDR_PORT, 4), saved);
    /* Reserved bits (1:0, 30:24) read as zero. */
    out(PCI_CONFIG_ADDR_PORT, 4, 0xffffffff);
    ck_assert_uint_eq(in(PCI_CONFIG_ADDR_PORT, 4), 0x80fffffc);
    /* Narrow accesses to the latch are other registers: they do not touch it. */
    out(PCI_CONFIG_ADDR_PORT, 2, 0);
    ck_assert_uint_eq(in(PCI_CONFIG_ADDR_PORT, 4), 0x80fffffc);
    ck_assert_uint_eq(in(PCI_CONFIG_ADDR_PORT + 1, 1), 0xff);
}
END_TEST

START_TEST(enable_bit_gates_data_port)
{
    out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(0, 0, 0, 0) & ~PCI_CONFIG_ENABLE);
    ck_assert_uint_eq(in(PCI_CONFIG_DATA_PORT, 4), 0xffffffff);
    out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(0, 0, 0, 0));
    ck_assert_uint_eq(in(PCI_CONFIG_DATA_PORT, 4), 0x0d578086);
}
END_TEST

START_TEST(host_bridge_identity)
{
    ck_assert_uint_eq(conf1_read(0, PCI_VENDOR_ID, 2), PCI_HOST_BRIDGE_VENDOR);
    ck_assert_uint_eq(conf1_read(0, PCI_DEVICE_ID, 2), PCI_HOST_BRIDGE_DEVICE);
    ck_assert_uint_eq(conf1_read(0, PCI_REVISION_ID, 4) >> 8, PCI_CLASS_BRIDGE_HOST);
    ck_assert_uint_eq(conf1_read(0, PCI_CLASS_DEVICE, 2), 0x0600); /* pci_sanity_check() */
    ck_assert_uint_eq(conf1_read(0, PCI_HEADER_TYPE, 1), 0);
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++)
        ck_assert_uint_eq(conf1_read(0, PCI_BASE_ADDRESS_0 + 4 * bar, 4), 0);
}
END_TEST

START_TEST(data_port_byte_and_word_offsets)
{
    /* Each byte and word of the vendor/device dword at its own data port. */
    ck_assert_uint_eq(conf1_read(0, 0, 1), 0x86);
    ck_assert_uint_eq(conf1_read(0, 1, 1), 0x80);
    ck_assert_uint_eq(conf1_read(0, 2, 1), 0x57);
    ck_assert_uint_eq(conf1_read(0, 3, 1), 0x0d);
    ck_assert_uint_eq(conf1_read(0, 2, 2), 0x0d57);
    /* Byte writes land in their own byte: cache line size 0x0c, latency 0x0d. */
    conf1_write(0, PCI_CACHE_LINE_SIZE, 1, 0x10);
    conf1_write(0, PCI_LATENCY_TIMER, 1, 0x40);
    ck_assert_uint_eq(conf1_read(0, PCI_CACHE_LINE_SIZE, 4), 0x00004010);
    conf1_write(0, PCI_CACHE_LINE_SIZE, 2, 0x2008);
    ck_assert_uint_eq(conf1_read(0, PCI_CACHE_LINE_SIZE, 2), 0x2008);
    /* An access straddling the end of the data port is not the window's. */
    out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(0, 0, 0, 0));
    ck_assert_uint_eq(in(PCI_CONFIG_DATA_PORT + 2, 4), 0xffffffff);
}
END_TEST

START_TEST(absent_functions_read_all_ones)
{
    register_td();
    ck_assert_uint_eq(conf1_read(1, 0, 4), 0x10411af4);
    for (unsigned slot = 2; slot < 32; slot++)
        ck_assert_uint_eq(conf1_read(slot, 0, 4), 0xffffffff);
    for (unsigned fn = 1; fn < 8; fn++) {
        out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(0, 0, fn, 0));
        ck_assert_uint_eq(in(PCI_CONFIG_DATA_PORT, 4), 0xffffffff);
    }
    for (unsigned bus = 1; bus < 256; bus += 17) {
        out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(bus, 0, 0, 0));
        ck_assert_uint_eq(in(PCI_CONFIG_DATA_PORT, 4), 0xffffffff);
        ck_assert_uint_eq(in(PCI_CONFIG_DATA_PORT + 2, 2), 0xffff);
        out(PCI_CONFIG_DATA_PORT, 4, 0); /* dropped */
    }
    ck_assert_uint_eq(conf1_read(0, 0, 4), 0x0d578086);
}
END_TEST

START_TEST(port_device_ignores_odd_accesses)
{
    uint8_t b[8];

    /* Straight to the device, as a fuzzer or a broken bus would. */
    out(PCI_CONFIG_ADDR_PORT, 4, conf1_addr(0, 0, 0, 0));
    pci.cfg_dev.ops->read(&pci.cfg_dev, 0, b, 8);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(b[i], 0xff);
    pci.cfg_dev.ops->read(&pci.cfg_dev, 6, b, 4);
    ck_assert_uint_eq(b[0] & b[1] & b[2] & b[3], 0xff);
    memset(b, 0, sizeof(b));
    pci.cfg_dev.ops->write(&pci.cfg_dev, 2, b, 4);
    pci.cfg_dev.ops->write(&pci.cfg_dev, 6, b, 4);
    ck_assert_uint_eq(in(PCI_CONFIG_ADDR_PORT, 4), conf1_addr(0, 0, 0, 0));
    ck_assert_uint_eq(in(PCI_CONFIG_DATA_PORT, 4), 0x0d578086);
}
END_TEST

/* ---- header fields ---- */

START_TEST(read_only_fields_stay)
{
    register_td();
    conf1_write(1, PCI_VENDOR_ID, 4, 0);
    conf1_write(1, PCI_REVISION_ID, 4, 0);
    conf1_write(1, PCI_SUBSYSTEM_VENDOR_ID, 4, 0);
    conf1_write(1, PCI_CAPABILITY_LIST, 4, 0xffffffff);
    conf1_write(1, PCI_ROM_ADDRESS, 4, 0xfffff800);
    conf1_write(1, PCI_CACHE_LINE_SIZE, 4, 0xffffffff);
    conf1_write(1, PCI_INTERRUPT_LINE, 4, 0xffffffff);
    ck_assert_uint_eq(conf1_read(1, PCI_VENDOR_ID, 4), 0x10411af4);
    ck_assert_uint_eq(conf1_read(1, PCI_REVISION_ID, 4), 0x02000001);
    ck_assert_uint_eq(conf1_read(1, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
    ck_assert_uint_eq(conf1_read(1, PCI_CAPABILITY_LIST, 4), 0);
    ck_assert_uint_eq(conf1_read(1, PCI_ROM_ADDRESS, 4), 0); /* no expansion ROM */
    /* Cache line and latency are writable, header type and BIST are not. */
    ck_assert_uint_eq(conf1_read(1, PCI_CACHE_LINE_SIZE, 4), 0x0000ffff);
    /* Interrupt line is the OS's scratch byte; pin stays 0: no INTx. */
    ck_assert_uint_eq(conf1_read(1, PCI_INTERRUPT_LINE, 4), 0x000000ff);
}
END_TEST

START_TEST(command_and_status_masks)
{
    set_cfg(PCI_COMMAND, 4, 0xffffffff);
    ck_assert_uint_eq(cfg(PCI_COMMAND, 2), 0x0547);
    ck_assert_uint_eq(cfg(PCI_STATUS, 2), 0);
    /* Error bits are write-one-to-clear; the capability bit is read-only. */
    ck_assert_int_ge(pci_add_capability(&td.pci, PCI_CAP_ID_VNDR, 4), 0x40);
    pci_set_word(td.pci.config + PCI_STATUS, 0xf910);
    set_cfg(PCI_STATUS, 2, 0x8000);
    ck_assert_uint_eq(cfg(PCI_STATUS, 2), 0x7910);
    set_cfg(PCI_COMMAND, 4, 0x00000000);
    ck_assert_uint_eq(cfg(PCI_STATUS, 2), 0x7910);
    set_cfg(PCI_COMMAND, 4, 0xffff0000);
    ck_assert_uint_eq(cfg(PCI_STATUS, 2), 0x0010);
    ck_assert_uint_eq(cfg(PCI_COMMAND, 2), 0);
}
END_TEST

START_TEST(bad_config_accesses)
{
    ck_assert_uint_eq(pci_config_read(&td.pci, 254, 4), 0xffffffff);
    ck_assert_uint_eq(pci_config_read(&td.pci, 256, 1), 0xffffffff);
    ck_assert_uint_eq(pci_config_read(&td.pci, 0, 3), 0xffffffff);
    ck_assert_uint_eq(pci_config_read(&td.pci, 0xffffffff, 2), 0xffffffff);
    pci_config_write(&td.pci, 254, 4, 0);
    pci_config_write(&td.pci, 0xfffffffe, 4, 0);
    pci_config_write(&td.pci, PCI_CACHE_LINE_SIZE, 8, 0x12);
    ck_assert_uint_eq(cfg(PCI_CACHE_LINE_SIZE, 1), 0);
    /* An unaligned access inside the space is served byte by byte. */
    ck_assert_uint_eq(pci_config_read(&td.pci, 1, 2), 0x411a);
}
END_TEST

/* A guest may write anything anywhere: identity and the list survive. */
START_TEST(random_writes_are_harmless)
{
    static const uint32_t lens[] = {1, 2, 4};
    unsigned seed = 12345;

    ck_assert_int_ge(pci_add_capability(&td.pci, PCI_CAP_ID_VNDR, 16), 0);
    td.pci.bar_moved = NULL; /* too many moves to log */
    register_td();
    for (int i = 0; i < 20000; i++) {
        uint32_t off = (uint32_t)rand_r(&seed) % 260, len = lens[rand_r(&seed) % 3];

        set_cfg(off, len, (uint32_t)rand_r(&seed) * 2654435761u);
    }
    ck_assert_uint_eq(cfg(PCI_VENDOR_ID, 4), 0x10411af4);
    ck_assert_uint_eq(cfg(PCI_CAPABILITY_LIST, 1), 0x40);
    ck_assert_uint_eq(cfg(0x40, 2), PCI_CAP_ID_VNDR);
    set_cfg(PCI_COMMAND, 2, 0);
    for (int i = 0; i < PCI_NUM_BARS; i++)
        ck_assert_uint_eq(td.pci.bars[i].mapped, PCI_BAR_UNMAPPED);
}
END_TEST

/* ---- BARs ---- */

START_TEST(bar32_sizing)
{
    uint32_t orig;

    register_td();
    orig = conf1_read(1, PCI_BASE_ADDRESS_0, 4);
    conf1_write(1, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    ck_assert_uint_eq(conf1_read(1, PCI_BASE_ADDRESS_0, 4), 0xfffff000);
    conf1_write(1, PCI_BASE_ADDRESS_0 + 16, 4, 0xffffffff);
    ck_assert_uint_eq(conf1_read(1, PCI_BASE_ADDRESS_0 + 16, 4), 0xffffff00);
    conf1_write(1, PCI_BASE_ADDRESS_0, 4, orig);
    ck_assert_uint_eq(conf1_read(1, PCI_BASE_ADDRESS_0, 4), orig);
    /* Unused slots read zero and stay zero. */
    conf1_write(1, PCI_BASE_ADDRESS_0 + 4, 4, 0xffffffff);
    ck_assert_uint_eq(conf1_read(1, PCI_BASE_ADDRESS_0 + 4, 4), 0);
    conf1_write(1, PCI_BASE_ADDRESS_0 + 20, 4, 0xffffffff);
    ck_assert_uint_eq(conf1_read(1, PCI_BASE_ADDRESS_0 + 20, 4), 0);
}
END_TEST

START_TEST(bar64_sizing)
{
    register_td();
    set_cfg(PCI_BASE_ADDRESS_0 + 8, 4, 0xffffffff);
    set_cfg(PCI_BASE_ADDRESS_0 + 12, 4, 0xffffffff);
    /* Low half: size mask plus type bits (64-bit, prefetchable). */
    ck_assert_uint_eq(cfg(PCI_BASE_ADDRESS_0 + 8, 4), 0xffffc00c);
    ck_assert_uint_eq(cfg(PCI_BASE_ADDRESS_0 + 12, 4), 0xffffffff);
}
END_TEST

START_TEST(bar64_larger_than_4g_sizing)
{
    struct pci_device big;
    struct bar_probe p = {.dev = {.id = "big", .ops = &probe_ops}};

    ck_assert_int_eq(pci_device_init(&big, "big", &test_ids), 0);
    ck_assert_int_eq(pci_set_bar(&big, 0, 8ULL << 30, PCI_BAR_MEM64, &p.dev), 0);
    ck_assert_int_eq(pci_register(&pci, &big, 3), 0);
    ck_assert_uint_eq(pci_bar_address(&big, 0) % (8ULL << 30), 0);
    ck_assert_uint_ge(pci_bar_address(&big, 0), MEM64_BASE);
    pci_config_write(&big, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    pci_config_write(&big, PCI_BASE_ADDRESS_0 + 4, 4, 0xffffffff);
    ck_assert_uint_eq(pci_config_read(&big, PCI_BASE_ADDRESS_0, 4), 0x00000004);
    ck_assert_uint_eq(pci_config_read(&big, PCI_BASE_ADDRESS_0 + 4, 4), 0xfffffffe);
    pci_unregister(&pci, &big);
    pci_device_destroy(&big);
}
END_TEST

static void assert_in_window(uint64_t addr, uint64_t size, uint64_t base, uint64_t wsize)
{
    ck_assert_uint_eq(addr % size, 0);
    ck_assert_uint_ge(addr, base);
    ck_assert_uint_le(addr + size, base + wsize);
}

START_TEST(bar_placement)
{
    struct test_dev td2;

    register_td();
    test_dev_init(&td2, "net1");
    ck_assert_int_eq(pci_register(&pci, &td2.pci, -1), 0);
    ck_assert_int_eq(td2.pci.slot, 2);
    assert_in_window(pci_bar_address(&td.pci, 0), BAR0_SIZE, MEM32_BASE, MEM32_SIZE);
    assert_in_window(pci_bar_address(&td.pci, 4), BAR4_SIZE, MEM32_BASE, MEM32_SIZE);
    assert_in_window(pci_bar_address(&td.pci, 2), BAR2_SIZE, MEM64_BASE, MEM64_SIZE);
    assert_in_window(pci_bar_address(&td2.pci, 0), BAR0_SIZE, MEM32_BASE, MEM32_SIZE);
    assert_in_window(pci_bar_address(&td2.pci, 2), BAR2_SIZE, MEM64_BASE, MEM64_SIZE);
    /* Nothing overlaps: td2 was placed after td in both windows. */
    ck_assert_uint_ge(pci_bar_address(&td2.pci, 0), pci_bar_address(&td.pci, 4) + BAR4_SIZE);
    ck_assert_uint_ge(pci_bar_address(&td2.pci, 2), pci_bar_address(&td.pci, 2) + BAR2_SIZE);
    /* The slot of an unused BAR, and the type bits, survive placement. */
    ck_assert_uint_eq(cfg(PCI_BASE_ADDRESS_0 + 8, 4) & 0xf, 0xc);
    ck_assert_uint_eq(cfg(PCI_BASE_ADDRESS_0 + 4, 4), 0);
    pci_unregister(&pci, &td2.pci);
    pci_device_destroy(&td2.pci);
}
END_TEST

START_TEST(bar64_without_high_window_goes_low)
{
    const struct pci_layout low_only = {MEM32_BASE, MEM32_SIZE, 0, 0};

    pci_destroy(&pci);
    ck_assert_int_eq(pci_init(&pci, &pio, &mmio, &low_only), 0);
    register_td();
    assert_in_window(pci_bar_address(&td.pci, 2), BAR2_SIZE, MEM32_BASE, MEM32_SIZE);
    ck_assert_uint_eq(cfg(PCI_BASE_ADDRESS_0 + 12, 4), 0);
}
END_TEST

START_TEST(window_exhaustion_fails_cleanly)
{
    const struct pci_layout tiny = {MEM32_BASE, 0x2000, MEM64_BASE, MEM64_SIZE};
    struct pci_device big;
    struct bar_probe p = {.dev = {.id = "big", .ops = &probe_ops}};

    pci_destroy(&pci);
    ck_assert_int_eq(pci_init(&pci, &pio, &mmio, &tiny), 0);
    ck_assert_int_eq(pci_device_init(&big, "big", &test_ids), 0);
    ck_assert_int_eq(pci_set_bar(&big, 0, 0x1000, 0, &p.dev), 0);
    ck_assert_int_eq(pci_set_bar(&big, 1, 0x4000, 0, &p.dev), 0);
    ck_assert_int_eq(pci_register(&pci, &big, -1), -ENOSPC);
    ck_assert_int_eq(big.slot, -1);
    ck_assert_uint_eq(conf1_read(1, 0, 4), 0xffffffff);
    /* The failed attempt gave its space back. */
    register_td();
    ck_assert_uint_eq(pci_bar_address(&td.pci, 0), MEM32_BASE);
    pci_device_destroy(&big);
}
END_TEST

START_TEST(set_bar_rejects_bad_bars)
{
    struct device d = {.id = "x", .ops = &probe_ops};
    struct pci_device dev;

    ck_assert_int_eq(pci_device_init(&dev, "x", &test_ids), 0);
    ck_assert_int_eq(pci_set_bar(&dev, 0, 0x1800, 0, &d), -EINVAL); /* not a power of two */
    ck_assert_int_eq(pci_set_bar(&dev, 0, 8, 0, &d), -EINVAL);
    ck_assert_int_eq(pci_set_bar(&dev, 6, 0x1000, 0, &d), -EINVAL);
    ck_assert_int_eq(pci_set_bar(&dev, -1, 0x1000, 0, &d), -EINVAL);
    ck_assert_int_eq(pci_set_bar(&dev, 5, 0x1000, PCI_BAR_MEM64, &d), -EINVAL);
    ck_assert_int_eq(pci_set_bar(&dev, 0, 1ULL << 32, 0, &d), -EINVAL); /* 32-bit */
    ck_assert_int_eq(pci_set_bar(&dev, 0, 0x1000, 0, NULL), -EINVAL);
    ck_assert_int_eq(pci_set_bar(&dev, 0, 0x1000, 0x100, &d), -EINVAL);
    ck_assert_int_eq(pci_set_bar(&dev, 1, 0x1000, PCI_BAR_MEM64, &d), 0);
    ck_assert_int_eq(pci_set_bar(&dev, 2, 0x1000, 0, &d), -EINVAL); /* BAR1's upper half */
    ck_assert_int_eq(pci_set_bar(&dev, 0, 0x1000, PCI_BAR_MEM64, &d), -EINVAL);
    ck_assert_int_eq(pci_set_bar(&dev, 1, 0x1000, 0, &d), -EINVAL);
    ck_assert_int_eq(pci_register(&pci, &dev, 4), 0);
    ck_assert_int_eq(pci_set_bar(&dev, 3, 0x1000, 0, &d), -EINVAL); /* after registration */
    pci_unregister(&pci, &dev);
    pci_device_destroy(&dev);
}
END_TEST

START_TEST(register_slot_rules)
{
    struct pci_device devs[31];

    ck_assert_int_eq(pci_register(&pci, &td.pci, 0), -EINVAL);
    ck_assert_int_eq(pci_register(&pci, &td.pci, 32), -EINVAL);
    ck_assert_int_eq(pci_register(&pci, &td.pci, 7), 0);
    ck_assert_int_eq(td.pci.slot, 7);
    ck_assert_uint_eq(conf1_read(7, 0, 2), 0x1af4);
    ck_assert_int_eq(pci_register(&pci, &td.pci, 8), -EBUSY); /* already on the bus */
    for (int i = 0; i < 30; i++) {
        ck_assert_int_eq(pci_device_init(&devs[i], "d", &test_ids), 0);
        ck_assert_int_eq(pci_register(&pci, &devs[i], i == 0 ? 7 : -1), i == 0 ? -EBUSY : 0);
    }
    ck_assert_int_eq(pci_device_init(&devs[30], "d", &test_ids), 0);
    ck_assert_int_eq(pci_register(&pci, &devs[30], -1), 0);
    ck_assert_int_eq(pci_register(&pci, &devs[0], -1), -ENOSPC);
    pci_unregister(&pci, &td.pci);
    ck_assert_uint_eq(conf1_read(7, 0, 4), 0xffffffff);
    ck_assert_int_eq(pci_register(&pci, &devs[0], -1), 0);
    ck_assert_int_eq(devs[0].slot, 7);
    for (int i = 0; i < 31; i++) {
        pci_unregister(&pci, &devs[i]);
        pci_device_destroy(&devs[i]);
    }
}
END_TEST

/* ---- capabilities and hooks ---- */

START_TEST(capability_list_walk)
{
    static const uint8_t ids[] = {PCI_CAP_ID_VNDR, PCI_CAP_ID_VNDR, PCI_CAP_ID_MSIX, 0x05};
    static const uint8_t lens[] = {16, 19, 12, 2};
    int offs[4];
    unsigned off, n = 0;

    ck_assert_uint_eq(cfg(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
    for (int i = 0; i < 4; i++) {
        offs[i] = pci_add_capability(&td.pci, ids[i], lens[i]);
        ck_assert_int_ge(offs[i], PCI_CAP_START);
        ck_assert_int_eq(offs[i] % 4, 0);
        if (i)
            ck_assert_int_ge(offs[i], offs[i - 1] + lens[i - 1]);
    }
    register_td();
    ck_assert_uint_ne(conf1_read(1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
    /* Walk as Linux does: from 0x34 until next is 0. */
    for (off = conf1_read(1, PCI_CAPABILITY_LIST, 1); off; off = conf1_read(1, off + 1, 1)) {
        ck_assert_uint_lt(n, 4);
        ck_assert_uint_eq(off, (unsigned)offs[n]);
        ck_assert_uint_eq(conf1_read(1, off, 1), ids[n]);
        n++;
    }
    ck_assert_uint_eq(n, 4);
    /* The list is read-only to the guest. */
    conf1_write(1, (unsigned)offs[0], 2, 0);
    ck_assert_uint_eq(conf1_read(1, (unsigned)offs[0], 2), (unsigned)offs[1] << 8 | ids[0]);
}
END_TEST

START_TEST(capability_space_runs_out)
{
    int off;

    ck_assert_int_eq(pci_add_capability(&td.pci, 9, 1), -EINVAL);
    ck_assert_int_eq(pci_add_capability(&td.pci, 9, 176), 0x40);
    ck_assert_int_eq(pci_add_capability(&td.pci, 9, 20), -ENOSPC);
    off = pci_add_capability(&td.pci, 9, 16); /* exactly fills the space */
    ck_assert_int_eq(off, 0xf0);
    ck_assert_int_eq(pci_add_capability(&td.pci, 9, 2), -ENOSPC);
    ck_assert_uint_eq(cfg(0x40 + 1, 1), (unsigned)off);
}
END_TEST

struct hook_log {
    int reads, writes;
    uint32_t off, len;
    uint32_t seen; /* the config dword at the hook's start when it ran */
};

static void hook_read(struct pci_device *dev, uint32_t off, uint32_t len, void *opaque)
{
    struct hook_log *h = opaque;

    h->reads++;
    h->off = off, h->len = len;
    dev->config[off] = 0xa5; /* a refresh the read must see */
}

static void hook_write(struct pci_device *dev, uint32_t off, uint32_t len, void *opaque)
{
    struct hook_log *h = opaque;

    h->writes++;
    h->off = off, h->len = len;
    h->seen = pci_get_long(dev->config + 0x48);
}

START_TEST(config_hooks_see_their_range)
{
    struct hook_log h = {0};
    int cap = pci_add_capability(&td.pci, PCI_CAP_ID_VNDR, 16);

    ck_assert_int_eq(cap, 0x40);
    /* Bytes 0x49-0x4a are the owner's; 0x49 writable. */
    td.pci.wmask[0x49] = 0xff;
    ck_assert_int_eq(pci_add_config_hook(&td.pci, 0x49, 2, hook_read, hook_write, &h), 0);
    ck_assert_int_eq(pci_add_config_hook(&td.pci, 0x3f, 2, hook_read, NULL, &h), -EINVAL);
    ck_assert_int_eq(pci_add_config_hook(&td.pci, 0xff, 2, hook_read, NULL, &h), -EINVAL);
    ck_assert_uint_eq(cfg(0x48, 4), 0x0000a500);
    ck_assert_int_eq(h.reads, 1);
    ck_assert_uint_eq(h.off, 0x49);
    ck_assert_uint_eq(h.len, 2);
    cfg(0x44, 4);
    cfg(0x4b, 1);
    ck_assert_int_eq(h.reads, 1);
    set_cfg(0x48, 4, 0x44332211);
    ck_assert_int_eq(h.writes, 1);
    ck_assert_uint_eq(h.off, 0x49);
    ck_assert_uint_eq(h.len, 2);
    ck_assert_uint_eq(h.seen, 0x00002200); /* the write went through the mask first */
    set_cfg(0x4a, 2, 0xffff);
    ck_assert_uint_eq(h.off, 0x4a);
    ck_assert_uint_eq(h.len, 1);
    for (int i = 1; i < PCI_MAX_CONFIG_HOOKS; i++)
        ck_assert_int_eq(pci_add_config_hook(&td.pci, 0x80, 4, NULL, NULL, NULL), 0);
    ck_assert_int_eq(pci_add_config_hook(&td.pci, 0x80, 4, NULL, NULL, NULL), -ENOSPC);
}
END_TEST

/* ---- BARs on the MMIO bus ---- */

START_TEST(bars_mapped_only_with_memory_decode)
{
    uint64_t bar0, bar2, bar4;
    uint8_t b[4];

    register_td();
    bar0 = pci_bar_address(&td.pci, 0);
    bar2 = pci_bar_address(&td.pci, 2);
    bar4 = pci_bar_address(&td.pci, 4);
    ck_assert(!mmio_claims(bar0));
    ck_assert(!mmio_claims(bar2));
    ck_assert_int_eq(td.nr_moves, 0);

    conf1_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert(mmio_claims(bar0 + 0x10));
    ck_assert_int_eq(td.bars[0].reads, 1);
    ck_assert_uint_eq(td.bars[0].last_offset, 0x10);
    ck_assert(bus_write(&mmio, bar2 + BAR2_SIZE - 4, b, 4));
    ck_assert_int_eq(td.bars[2].writes, 1);
    ck_assert_uint_eq(td.bars[2].last_offset, BAR2_SIZE - 4);
    ck_assert(mmio_claims(bar4));
    ck_assert(!mmio_claims(bar0 + BAR0_SIZE) || bar0 + BAR0_SIZE == bar4);
    ck_assert_int_eq(td.nr_moves, 3);
    ck_assert_int_eq(td.moves[0].bar, 0);
    ck_assert_uint_eq(td.moves[0].old_addr, PCI_BAR_UNMAPPED);
    ck_assert_uint_eq(td.moves[0].new_addr, bar0);
    ck_assert_int_eq(td.moves[1].bar, 2);
    ck_assert_uint_eq(td.moves[1].new_addr, bar2);

    /* Rewriting the command register with decode still on changes nothing. */
    conf1_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    ck_assert_int_eq(td.nr_moves, 3);

    conf1_write(1, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
    ck_assert(!mmio_claims(bar0));
    ck_assert(!mmio_claims(bar2));
    ck_assert(!mmio_claims(bar4));
    ck_assert_int_eq(td.nr_moves, 6);
    ck_assert_uint_eq(td.moves[3].old_addr, bar0);
    ck_assert_uint_eq(td.moves[3].new_addr, PCI_BAR_UNMAPPED);
}
END_TEST

START_TEST(bar_rewrite_moves_range)
{
    const uint64_t new0 = 0xd0000000, new2 = 0x345670000ULL;
    uint64_t old0, old2;

    register_td();
    old0 = pci_bar_address(&td.pci, 0);
    old2 = pci_bar_address(&td.pci, 2);
    set_cfg(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    td.nr_moves = 0;

    set_cfg(PCI_BASE_ADDRESS_0, 4, (uint32_t)new0);
    ck_assert(!mmio_claims(old0));
    ck_assert(mmio_claims(new0 + 4));
    ck_assert_uint_eq(td.bars[0].last_offset, 4);
    ck_assert_int_eq(td.nr_moves, 1);
    ck_assert_int_eq(td.moves[0].bar, 0);
    ck_assert_uint_eq(td.moves[0].old_addr, old0);
    ck_assert_uint_eq(td.moves[0].new_addr, new0);

    /* A 64-bit BAR moved the Linux way: decode off, both halves, decode on. */
    set_cfg(PCI_COMMAND, 2, 0);
    set_cfg(PCI_BASE_ADDRESS_0 + 8, 4, (uint32_t)new2);
    set_cfg(PCI_BASE_ADDRESS_0 + 12, 4, (uint32_t)(new2 >> 32));
    ck_assert_uint_eq(pci_bar_address(&td.pci, 2), new2);
    ck_assert_uint_eq(cfg(PCI_BASE_ADDRESS_0 + 8, 4), (uint32_t)new2 | 0xc);
    set_cfg(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert(!mmio_claims(old2));
    ck_assert(mmio_claims(new2));
    ck_assert(mmio_claims(new0));
    ck_assert_int_eq(td.moves[td.nr_moves - 2].bar, 2);
    ck_assert_uint_eq(td.moves[td.nr_moves - 2].new_addr, new2);

    /* Only the upper half rewritten with decode on: the range follows. */
    set_cfg(PCI_BASE_ADDRESS_0 + 12, 4, 0x5);
    ck_assert(!mmio_claims(new2));
    ck_assert(mmio_claims(0x545670000ULL));
    ck_assert_uint_eq(td.moves[td.nr_moves - 1].old_addr, new2);
    ck_assert_uint_eq(td.moves[td.nr_moves - 1].new_addr, 0x545670000ULL);
}
END_TEST

START_TEST(sizing_with_decode_on_unmaps_then_restores)
{
    uint64_t bar0;

    register_td();
    bar0 = pci_bar_address(&td.pci, 0);
    set_cfg(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    td.nr_moves = 0;
    set_cfg(PCI_BASE_ADDRESS_0, 4, 0xffffffff); /* 0xfffff000: ends at 4 GiB, not decoded */
    ck_assert(!mmio_claims(bar0));
    ck_assert(!mmio_claims(0xfffff000));
    ck_assert_int_eq(td.nr_moves, 1);
    ck_assert_uint_eq(td.moves[0].new_addr, PCI_BAR_UNMAPPED);
    set_cfg(PCI_BASE_ADDRESS_0, 4, (uint32_t)bar0);
    ck_assert(mmio_claims(bar0));
    ck_assert_int_eq(td.nr_moves, 2);
    ck_assert_uint_eq(td.moves[1].new_addr, bar0);
    /* Address 0 is not decoded either. */
    set_cfg(PCI_BASE_ADDRESS_0, 4, 0);
    ck_assert(!mmio_claims(0));
    ck_assert_uint_eq(td.pci.bars[0].mapped, PCI_BAR_UNMAPPED);
}
END_TEST

START_TEST(overlapping_bars_do_not_map)
{
    struct test_dev td2;
    uint64_t bar0, other;

    register_td();
    test_dev_init(&td2, "net1");
    ck_assert_int_eq(pci_register(&pci, &td2.pci, -1), 0);
    bar0 = pci_bar_address(&td.pci, 0);
    other = pci_bar_address(&td2.pci, 0);
    set_cfg(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    pci_config_write(&td2.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    td2.nr_moves = 0;
    /* td2 moves BAR0 onto td's: td keeps the range, td2 decodes nothing. */
    pci_config_write(&td2.pci, PCI_BASE_ADDRESS_0, 4, (uint32_t)bar0);
    ck_assert(mmio_claims(bar0));
    ck_assert_int_eq(td.bars[0].reads, 1);
    ck_assert_int_eq(td2.bars[0].reads, 0);
    ck_assert(!mmio_claims(other));
    ck_assert_int_eq(td2.nr_moves, 1);
    ck_assert_uint_eq(td2.moves[0].new_addr, PCI_BAR_UNMAPPED);
    /* Moved back, it maps again. */
    pci_config_write(&td2.pci, PCI_BASE_ADDRESS_0, 4, (uint32_t)other);
    ck_assert(mmio_claims(other));
    ck_assert_int_eq(td2.bars[0].reads, 1);
    pci_unregister(&pci, &td2.pci);
    pci_device_destroy(&td2.pci);
}
END_TEST

START_TEST(unregister_unmaps)
{
    uint64_t bar0;

    register_td();
    bar0 = pci_bar_address(&td.pci, 0);
    set_cfg(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert(mmio_claims(bar0));
    td.nr_moves = 0;
    pci_unregister(&pci, &td.pci);
    ck_assert(!mmio_claims(bar0));
    ck_assert_int_eq(td.nr_moves, 3);
    ck_assert_uint_eq(conf1_read(1, 0, 4), 0xffffffff);
    ck_assert_int_eq(mmio.count, 0);
}
END_TEST

/* ---- migration ---- */

/* A guest reboot: decode off, BARs back where the registry put them, the host
 * bridge and the latch as at power-on. */
START_TEST(reset_restores_power_on_config)
{
    uint64_t bar0;

    register_td();
    bar0 = pci_bar_address(&td.pci, 0);
    conf1_write(1, PCI_BASE_ADDRESS_0, 4, 0xd0000000);
    conf1_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    conf1_write(1, PCI_INTERRUPT_LINE, 1, 11);
    conf1_write(0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert(mmio_claims(0xd0000000));

    pci_device_reset(&td.pci);
    pci_reset(&pci);
    ck_assert(!mmio_claims(0xd0000000));
    ck_assert(!mmio_claims(bar0));
    ck_assert_uint_eq(cfg(PCI_COMMAND, 2), 0);
    ck_assert_uint_eq(cfg(PCI_INTERRUPT_LINE, 1), 0);
    ck_assert_uint_eq(pci_bar_address(&td.pci, 0), bar0);
    ck_assert_uint_eq(in(PCI_CONFIG_ADDR_PORT, 4), 0);
    ck_assert_uint_eq(conf1_read(0, PCI_VENDOR_ID, 2), PCI_HOST_BRIDGE_VENDOR);
    ck_assert_uint_eq(conf1_read(0, PCI_REVISION_ID, 4) >> 8, PCI_CLASS_BRIDGE_HOST);
    ck_assert_uint_eq(conf1_read(0, PCI_COMMAND, 2), 0);
    ck_assert_uint_eq(conf1_read(1, PCI_VENDOR_ID, 2),
                      td.pci.config[PCI_VENDOR_ID] | td.pci.config[PCI_VENDOR_ID + 1] << 8);
    conf1_write(1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert(mmio_claims(bar0));
}
END_TEST

START_TEST(save_load_round_trip)
{
    struct state_buf st = {0};
    struct test_dev td2;
    const uint64_t moved = 0xd0000000;

    ck_assert_int_ge(pci_add_capability(&td.pci, PCI_CAP_ID_VNDR, 16), 0);
    register_td();
    set_cfg(PCI_BASE_ADDRESS_0, 4, (uint32_t)moved);
    set_cfg(PCI_CACHE_LINE_SIZE, 1, 0x10);
    set_cfg(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    ck_assert_int_eq(pci_device_save(&td.pci, &st), 0);
    ck_assert_uint_eq(st.len, PCI_CONFIG_SPACE_SIZE);
    pci_unregister(&pci, &td.pci); /* the source goes away; the destination takes over */

    test_dev_init(&td2, "net0");
    ck_assert_int_ge(pci_add_capability(&td2.pci, PCI_CAP_ID_VNDR, 16), 0);
    ck_assert_int_eq(pci_register(&pci, &td2.pci, 1), 0);
    ck_assert_int_eq(pci_device_load(&td2.pci, st.data, st.len), 0);
    ck_assert_mem_eq(td2.pci.config, st.data, PCI_CONFIG_SPACE_SIZE);
    ck_assert(mmio_claims(moved));
    ck_assert_int_eq(td2.bars[0].reads, 1);
    ck_assert_uint_eq(td2.pci.bars[0].mapped, moved);
    ck_assert_int_eq(td2.nr_moves, 3);

    ck_assert_int_eq(pci_device_load(&td2.pci, st.data, st.len - 1), -EINVAL);
    st.data[PCI_DEVICE_ID] ^= 1; /* another device's state */
    ck_assert_int_eq(pci_device_load(&td2.pci, st.data, st.len), -EINVAL);
    ck_assert_uint_eq(pci_get_word(td2.pci.config + PCI_DEVICE_ID), 0x1041);
    pci_unregister(&pci, &td2.pci);
    pci_device_destroy(&td2.pci);
    state_buf_free(&st);
}
END_TEST

static Suite *pci_suite(void)
{
    Suite *s = suite_create("pci");
    TCase *conf1 = tcase_create("conf1");
    TCase *header = tcase_create("header");
    TCase *bars = tcase_create("bars");
    TCase *caps = tcase_create("capabilities");
    TCase *bus = tcase_create("mmio_bus");
    TCase *state = tcase_create("state");

    tcase_add_checked_fixture(conf1, setup, teardown);
    tcase_add_test(conf1, address_latch_reads_back);
    tcase_add_test(conf1, enable_bit_gates_data_port);
    tcase_add_test(conf1, host_bridge_identity);
    tcase_add_test(conf1, data_port_byte_and_word_offsets);
    tcase_add_test(conf1, absent_functions_read_all_ones);
    tcase_add_test(conf1, port_device_ignores_odd_accesses);
    suite_add_tcase(s, conf1);

    tcase_add_checked_fixture(header, setup, teardown);
    tcase_add_test(header, read_only_fields_stay);
    tcase_add_test(header, command_and_status_masks);
    tcase_add_test(header, bad_config_accesses);
    tcase_add_test(header, random_writes_are_harmless);
    suite_add_tcase(s, header);

    tcase_add_checked_fixture(bars, setup, teardown);
    tcase_add_test(bars, bar32_sizing);
    tcase_add_test(bars, bar64_sizing);
    tcase_add_test(bars, bar64_larger_than_4g_sizing);
    tcase_add_test(bars, bar_placement);
    tcase_add_test(bars, bar64_without_high_window_goes_low);
    tcase_add_test(bars, window_exhaustion_fails_cleanly);
    tcase_add_test(bars, set_bar_rejects_bad_bars);
    tcase_add_test(bars, register_slot_rules);
    suite_add_tcase(s, bars);

    tcase_add_checked_fixture(caps, setup, teardown);
    tcase_add_test(caps, capability_list_walk);
    tcase_add_test(caps, capability_space_runs_out);
    tcase_add_test(caps, config_hooks_see_their_range);
    suite_add_tcase(s, caps);

    tcase_add_checked_fixture(bus, setup, teardown);
    tcase_add_test(bus, bars_mapped_only_with_memory_decode);
    tcase_add_test(bus, bar_rewrite_moves_range);
    tcase_add_test(bus, sizing_with_decode_on_unmaps_then_restores);
    tcase_add_test(bus, overlapping_bars_do_not_map);
    tcase_add_test(bus, unregister_unmaps);
    tcase_add_test(bus, reset_restores_power_on_config);
    suite_add_tcase(s, bus);

    tcase_add_checked_fixture(state, setup, teardown);
    tcase_add_test(state, save_load_round_trip);
    suite_add_tcase(s, state);
    return s;
}

CHECK_MAIN(pci_suite)
