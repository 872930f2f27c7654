/* MSI-X driven as Linux's pci_msix_enable() and a device backend drive it:
 * the capability's control word through config space, the table and PBA through
 * the BAR, interrupts through msix_notify. */
#include "../../devices/msix.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NVEC 4
#define BAR 2
#define BAR_SIZE 0x4000
#define TABLE 0x1000
#define PBA 0x3000
#define CTRL_OFF 2

struct change {
    unsigned vector;
    uint64_t addr;
    uint32_t data;
    bool masked;
};

struct owner {
    struct change changes[512];
    int nr_changes;
    struct {
        uint64_t addr;
        uint32_t data;
    } delivered[64];
    int nr_delivered;
};

static struct pci_device dev;
static struct msix m;
static struct owner own;
static int cap;

static void on_vector_changed(void *opaque, unsigned vector, uint64_t addr, uint32_t data,
                              bool masked)
{
    struct owner *o = opaque;

    ck_assert_int_lt(o->nr_changes, 512);
    o->changes[o->nr_changes++] = (struct change){vector, addr, data, masked};
}

static void on_deliver(void *opaque, uint64_t addr, uint32_t data)
{
    struct owner *o = opaque;

    ck_assert_int_lt(o->nr_delivered, 64);
    o->delivered[o->nr_delivered].addr = addr;
    o->delivered[o->nr_delivered].data = data;
    o->nr_delivered++;
}

static const struct msix_ops ops = {.vector_changed = on_vector_changed, .deliver = on_deliver};

static const struct pci_ids ids = {.vendor = 0x1af4, .device = 0x1041, .class_code = 0x020000};

static int find_msix_cap(struct pci_device *d)
{
    for (unsigned off = pci_config_read(d, PCI_CAPABILITY_LIST, 1); off;
         off = pci_config_read(d, off + 1, 1))
        if (pci_config_read(d, off, 1) == PCI_CAP_ID_MSIX)
            return (int)off;
    return -1;
}

static void make_device(struct pci_device *d, struct msix *mx, struct owner *o, unsigned n)
{
    memset(o, 0, sizeof(*o));
    ck_assert_int_eq(pci_device_init(d, "net0", &ids), 0);
    /* The BAR holds only the MSI-X structures, so msix's own device serves it. */
    ck_assert_int_eq(pci_set_bar(d, BAR, BAR_SIZE, PCI_BAR_MEM64, &mx->bar_dev), 0);
    ck_assert_int_eq(msix_init(mx, d, n, BAR, TABLE, PBA, &ops, o), 0);
}

static void setup(void)
{
    make_device(&dev, &m, &own, NVEC);
    cap = find_msix_cap(&dev);
    ck_assert_int_ge(cap, PCI_CAP_START);
}

static void teardown(void)
{
    msix_destroy(&m);
    pci_device_destroy(&dev);
}

/* ---- helpers: the guest's accesses ---- */

static uint16_t ctrl(void)
{
    return (uint16_t)pci_config_read(&dev, (uint32_t)cap + CTRL_OFF, 2);
}

static void set_ctrl(uint16_t v)
{
    pci_config_write(&dev, (uint32_t)cap + CTRL_OFF, 2, v);
}

static uint64_t bar_rd(uint64_t off, uint32_t len)
{
    uint8_t b[8] = {0};
    uint64_t v = 0;

    m.bar_dev.ops->read(&m.bar_dev, off, b, len);
    for (uint32_t i = 0; i < len; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static void bar_wr(uint64_t off, uint32_t len, uint64_t v)
{
    uint8_t b[8];

    for (uint32_t i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    m.bar_dev.ops->write(&m.bar_dev, off, b, len);
}

static uint64_t entry(unsigned v, unsigned word)
{
    return TABLE + 16ULL * v + 4 * word;
}

/* What Linux does for one vector: address, data, then unmask. */
static void program(unsigned v, uint64_t addr, uint32_t data)
{
    bar_wr(entry(v, 0), 4, (uint32_t)addr);
    bar_wr(entry(v, 1), 4, (uint32_t)(addr >> 32));
    bar_wr(entry(v, 2), 4, data);
    bar_wr(entry(v, 3), 4, 0);
}

static uint64_t pba(unsigned qword)
{
    return bar_rd(PBA + 8ULL * qword, 8);
}

static const struct change *last_change(void)
{
    ck_assert_int_gt(own.nr_changes, 0);
    return &own.changes[own.nr_changes - 1];
}

/* ---- the capability ---- */

START_TEST(capability_layout)
{
    ck_assert_uint_eq(pci_config_read(&dev, (uint32_t)cap, 1), PCI_CAP_ID_MSIX);
    ck_assert_uint_eq(ctrl(), NVEC - 1);
    ck_assert_uint_eq(pci_config_read(&dev, (uint32_t)cap + 4, 4), TABLE | BAR);
    ck_assert_uint_eq(pci_config_read(&dev, (uint32_t)cap + 8, 4), PBA | BAR);
    ck_assert_uint_ne(pci_config_read(&dev, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
    /* Only enable and function mask are writable. */
    set_ctrl(0xffff);
    ck_assert_uint_eq(ctrl(), MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL | (NVEC - 1));
    ck_assert(msix_enabled(&m));
    set_ctrl(0);
    ck_assert_uint_eq(ctrl(), NVEC - 1);
    ck_assert(!msix_enabled(&m));
    pci_config_write(&dev, (uint32_t)cap + 4, 4, 0);
    pci_config_write(&dev, (uint32_t)cap, 4, 0);
    ck_assert_uint_eq(pci_config_read(&dev, (uint32_t)cap + 4, 4), TABLE | BAR);
    ck_assert_uint_eq(pci_config_read(&dev, (uint32_t)cap + 2, 2), NVEC - 1);
    /* A byte write to the upper control byte, as some drivers do. */
    pci_config_write(&dev, (uint32_t)cap + 3, 1, 0x80);
    ck_assert(msix_enabled(&m));
}
END_TEST

START_TEST(init_rejects_bad_layouts)
{
    struct pci_device d;
    struct msix x;
    struct device bar_dev = {.id = "x"};

    ck_assert_int_eq(pci_device_init(&d, "x", &ids), 0);
    ck_assert_int_eq(pci_set_bar(&d, 0, 0x1000, 0, &bar_dev), 0);
    ck_assert_int_eq(msix_init(&x, &d, 4, 1, 0, 0x800, &ops, NULL), -EINVAL); /* no BAR1 */
    ck_assert_int_eq(msix_init(&x, &d, 0, 0, 0, 0x800, &ops, NULL), -EINVAL);
    ck_assert_int_eq(msix_init(&x, &d, 2049, 0, 0, 0x800, &ops, NULL), -EINVAL);
    ck_assert_int_eq(msix_init(&x, &d, 4, 0, 4, 0x800, &ops, NULL), -EINVAL);  /* unaligned */
    ck_assert_int_eq(msix_init(&x, &d, 4, 0, 0, 0x804, &ops, NULL), -EINVAL);  /* unaligned */
    ck_assert_int_eq(msix_init(&x, &d, 4, 0, 0, 0x38, &ops, NULL), -EINVAL);   /* overlap */
    ck_assert_int_eq(msix_init(&x, &d, 4, 0, 0xfc8, 0, &ops, NULL), -EINVAL);  /* past BAR */
    ck_assert_int_eq(msix_init(&x, &d, 4, 0, 0, 0x1000, &ops, NULL), -EINVAL); /* past BAR */
    ck_assert_int_eq(msix_init(&x, &d, 4, 0, 0, 0x800, NULL, NULL), -EINVAL);
    ck_assert_int_eq(msix_init(&x, &d, 4, 6, 0, 0x800, &ops, NULL), -EINVAL);
    ck_assert_int_eq(pci_config_read(&d, PCI_CAPABILITY_LIST, 1), 0);  /* nothing added */
    ck_assert_int_eq(msix_init(&x, &d, 4, 0, 0x40, 0, &ops, NULL), 0); /* PBA first is fine */
    msix_destroy(&x);
    pci_device_destroy(&d);
}
END_TEST

/* ---- the table ---- */

START_TEST(table_starts_masked_and_zero)
{
    for (unsigned v = 0; v < NVEC; v++) {
        ck_assert_uint_eq(bar_rd(entry(v, 0), 8), 0);
        ck_assert_uint_eq(bar_rd(entry(v, 2), 4), 0);
        ck_assert_uint_eq(bar_rd(entry(v, 3), 4), MSIX_ENTRY_CTRL_MASKBIT);
        ck_assert(msix_vector_masked(&m, v));
    }
    ck_assert_uint_eq(pba(0), 0);
    ck_assert_int_eq(own.nr_changes, 0);
}
END_TEST

START_TEST(table_dword_access)
{
    bar_wr(entry(1, 0), 4, 0xfee01003); /* bits 1:0 are reserved */
    bar_wr(entry(1, 1), 4, 0x12345678);
    bar_wr(entry(1, 2), 4, 0xdeadbeef);
    bar_wr(entry(1, 3), 4, 0xfffffffe); /* reserved bits, mask bit clear */
    ck_assert_uint_eq(bar_rd(entry(1, 0), 4), 0xfee01000);
    ck_assert_uint_eq(bar_rd(entry(1, 1), 4), 0x12345678);
    ck_assert_uint_eq(bar_rd(entry(1, 2), 4), 0xdeadbeef);
    ck_assert_uint_eq(bar_rd(entry(1, 3), 4), 0);
    bar_wr(entry(1, 3), 4, 0xffffffff);
    ck_assert_uint_eq(bar_rd(entry(1, 3), 4), 1);
    /* Neighbours untouched. */
    ck_assert_uint_eq(bar_rd(entry(0, 0), 8), 0);
    ck_assert_uint_eq(bar_rd(entry(2, 0), 8), 0);
    ck_assert_uint_eq(bar_rd(entry(0, 3), 4), 1);
    ck_assert_uint_eq(bar_rd(entry(2, 3), 4), 1);
}
END_TEST

START_TEST(table_qword_access)
{
    bar_wr(entry(2, 0), 8, 0x00000001fee0200cULL);
    ck_assert_uint_eq(bar_rd(entry(2, 0), 8), 0x00000001fee0200cULL);
    ck_assert_uint_eq(bar_rd(entry(2, 0), 4), 0xfee0200c);
    ck_assert_uint_eq(bar_rd(entry(2, 1), 4), 1);
    /* Data and vector control in one qword: one change reported. */
    own.nr_changes = 0;
    bar_wr(entry(2, 2), 8, 0x0000000000004041ULL);
    ck_assert_uint_eq(bar_rd(entry(2, 2), 8), 0x4041);
    ck_assert_int_eq(own.nr_changes, 1);
    ck_assert_uint_eq(last_change()->vector, 2);
    ck_assert_uint_eq(last_change()->data, 0x4041);
    ck_assert(last_change()->masked); /* MSI-X is not enabled yet */
    /* Byte and word accesses work too. */
    bar_wr(entry(2, 2) + 1, 1, 0x55);
    ck_assert_uint_eq(bar_rd(entry(2, 2), 4), 0x5541);
    ck_assert_uint_eq(bar_rd(entry(2, 2) + 2, 2), 0);
}
END_TEST

START_TEST(accesses_outside_the_structures)
{
    uint8_t b[8];

    ck_assert(!msix_bar_read(&m, 0, b, 4));
    ck_assert(!msix_bar_read(&m, TABLE - 4, b, 8)); /* straddles the start */
    ck_assert(!msix_bar_read(&m, TABLE + 16 * NVEC - 4, b, 8));
    ck_assert(!msix_bar_read(&m, TABLE + 16 * NVEC, b, 4));
    ck_assert(!msix_bar_read(&m, PBA + 8, b, 4));
    ck_assert(!msix_bar_read(&m, UINT64_MAX - 2, b, 4));
    ck_assert(!msix_bar_write(&m, TABLE + 16 * NVEC, b, 4));
    ck_assert(!msix_bar_write(&m, UINT64_MAX, b, 8));
    ck_assert(msix_bar_read(&m, TABLE + 16 * NVEC - 8, b, 8));
    ck_assert(msix_bar_read(&m, PBA, b, 8));
    /* Through the BAR device a hole reads zero. */
    ck_assert_uint_eq(bar_rd(0x10, 4), 0);
    ck_assert_int_eq(msix_notify(&m, NVEC), -EINVAL);
    ck_assert_int_eq(msix_notify(&m, 0xffff), -EINVAL);
}
END_TEST

/* ---- masking and delivery ---- */

START_TEST(vector_changes_are_reported)
{
    program(0, 0xfee00000, 0x4021);
    ck_assert_int_eq(own.nr_changes, 2); /* address low, data; the high half stayed 0 */
    ck_assert(last_change()->masked);
    own.nr_changes = 0;
    set_ctrl(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(own.nr_changes, 1); /* only vector 0 is unmasked */
    ck_assert_uint_eq(last_change()->vector, 0);
    ck_assert_uint_eq(last_change()->addr, 0xfee00000);
    ck_assert_uint_eq(last_change()->data, 0x4021);
    ck_assert(!last_change()->masked);
    ck_assert(!msix_vector_masked(&m, 0));
    ck_assert(msix_vector_masked(&m, 1));
    /* Rewriting the same values is not a change. */
    bar_wr(entry(0, 2), 4, 0x4021);
    set_ctrl(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(own.nr_changes, 1);
    bar_wr(entry(0, 2), 4, 0x4022);
    ck_assert_int_eq(own.nr_changes, 2);
    ck_assert_uint_eq(last_change()->data, 0x4022);
}
END_TEST

START_TEST(notify_delivers_when_unmasked)
{
    program(3, 0xfee01000, 0x4033);
    set_ctrl(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(msix_notify(&m, 3), 0);
    ck_assert_int_eq(own.nr_delivered, 1);
    ck_assert_uint_eq(own.delivered[0].addr, 0xfee01000);
    ck_assert_uint_eq(own.delivered[0].data, 0x4033);
    ck_assert_uint_eq(pba(0), 0);
    ck_assert_int_eq(msix_notify(&m, 3), 0);
    ck_assert_int_eq(own.nr_delivered, 2);
}
END_TEST

START_TEST(entry_mask_pends_and_unmask_delivers_once)
{
    program(1, 0xfee00000, 0x4041);
    set_ctrl(MSIX_CTRL_ENABLE);
    bar_wr(entry(1, 3), 4, 1);
    ck_assert_int_eq(msix_notify(&m, 1), 0);
    ck_assert_int_eq(msix_notify(&m, 1), 0);
    ck_assert_int_eq(own.nr_delivered, 0);
    ck_assert_uint_eq(pba(0), 1u << 1);
    own.nr_changes = 0;
    bar_wr(entry(1, 3), 4, 0);
    ck_assert_int_eq(own.nr_delivered, 1);
    ck_assert_uint_eq(own.delivered[0].data, 0x4041);
    ck_assert_uint_eq(pba(0), 0);
    /* The owner heard of the unmask before the delivery could need its route. */
    ck_assert_int_eq(own.nr_changes, 1);
    ck_assert(!last_change()->masked);
    bar_wr(entry(1, 3), 4, 0);
    ck_assert_int_eq(own.nr_delivered, 1);
}
END_TEST

START_TEST(function_mask_pends_and_unmask_delivers_once)
{
    program(0, 0xfee00000, 0x4020);
    program(2, 0xfee00000, 0x4022);
    set_ctrl(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    ck_assert(msix_vector_masked(&m, 0));
    ck_assert(msix_vector_masked(&m, 2));
    msix_notify(&m, 2);
    msix_notify(&m, 0);
    msix_notify(&m, 2);
    ck_assert_int_eq(own.nr_delivered, 0);
    ck_assert_uint_eq(pba(0), 0x5);
    own.nr_changes = 0;
    set_ctrl(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(own.nr_delivered, 2);
    ck_assert_uint_eq(own.delivered[0].data, 0x4020);
    ck_assert_uint_eq(own.delivered[1].data, 0x4022);
    ck_assert_uint_eq(pba(0), 0);
    ck_assert_int_eq(own.nr_changes, 2);
    set_ctrl(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(own.nr_delivered, 2);
}
END_TEST

START_TEST(function_unmask_keeps_entry_masked_vectors_pending)
{
    program(1, 0xfee00000, 0x4041);
    set_ctrl(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    bar_wr(entry(1, 3), 4, 1);
    msix_notify(&m, 1);
    set_ctrl(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(own.nr_delivered, 0);
    ck_assert_uint_eq(pba(0), 0x2);
    bar_wr(entry(1, 3), 4, 0);
    ck_assert_int_eq(own.nr_delivered, 1);
    ck_assert_uint_eq(pba(0), 0);
}
END_TEST

START_TEST(disabled_pends_and_enable_delivers)
{
    program(2, 0xfee00000, 0x4022);
    ck_assert(msix_vector_masked(&m, 2));
    msix_notify(&m, 2);
    ck_assert_int_eq(own.nr_delivered, 0);
    ck_assert_uint_eq(pba(0), 0x4);
    set_ctrl(MSIX_CTRL_ENABLE);
    ck_assert_int_eq(own.nr_delivered, 1);
    ck_assert_uint_eq(pba(0), 0);
    /* Disabling again masks everything. */
    own.nr_changes = 0;
    set_ctrl(0);
    ck_assert_int_eq(own.nr_changes, 1);
    ck_assert(last_change()->masked);
}
END_TEST

START_TEST(pba_is_read_only)
{
    msix_notify(&m, 0);
    ck_assert_uint_eq(pba(0), 1);
    bar_wr(PBA, 8, 0);
    bar_wr(PBA, 4, 0xffffffff);
    bar_wr(PBA + 4, 4, 0xffffffff);
    bar_wr(PBA + 1, 1, 0xff);
    ck_assert_uint_eq(pba(0), 1);
    ck_assert_uint_eq(bar_rd(PBA, 4), 1);
    ck_assert_uint_eq(bar_rd(PBA + 4, 4), 0);
}
END_TEST

START_TEST(pba_spans_qwords)
{
    struct pci_device d;
    struct msix x;
    struct owner o;

    make_device(&d, &x, &o, 70);
    ck_assert_uint_eq(pci_config_read(&d, (uint32_t)find_msix_cap(&d) + 2, 2), 69);
    msix_notify(&x, 69);
    msix_notify(&x, 63);
    {
        uint8_t b[8];
        uint64_t q0, q1;

        ck_assert(msix_bar_read(&x, PBA, b, 8));
        memcpy(&q0, b, 8);
        ck_assert(msix_bar_read(&x, PBA + 8, b, 8));
        memcpy(&q1, b, 8);
        ck_assert_uint_eq(q0, 1ULL << 63);
        ck_assert_uint_eq(q1, 1ULL << 5);
        ck_assert(!msix_bar_read(&x, PBA + 16, b, 8));
    }
    msix_destroy(&x);
    pci_device_destroy(&d);
}
END_TEST

/* ---- through the PCI registry and MMIO bus ---- */

START_TEST(table_through_the_mmio_bus)
{
    const struct pci_layout layout = {0xc0000000, 0x3e000000, 0x200000000ULL, 0x100000000ULL};
    struct bus pio, mmio;
    struct pci host;
    uint64_t base;
    uint8_t b[8] = {0x00, 0x10, 0xe0, 0xfe, 0, 0, 0, 0};
    uint32_t got = 0;

    ck_assert_int_eq(bus_init(&pio, "pio"), 0);
    ck_assert_int_eq(bus_init(&mmio, "mmio"), 0);
    ck_assert_int_eq(pci_init(&host, &pio, &mmio, &layout), 0);
    ck_assert_int_eq(pci_register(&host, &dev, -1), 0);
    base = pci_bar_address(&dev, BAR);
    ck_assert_uint_ge(base, 0x200000000ULL);
    pci_config_write(&dev, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    ck_assert(bus_write(&mmio, base + entry(1, 0), b, 8));
    ck_assert(bus_read(&mmio, base + entry(1, 0), (uint8_t *)&got, 4));
    ck_assert_uint_eq(got, 0xfee01000);
    pci_unregister(&host, &dev);
    pci_destroy(&host);
    bus_destroy(&mmio);
    bus_destroy(&pio);
}
END_TEST

/* ---- migration ---- */

START_TEST(save_load_round_trip)
{
    struct state_buf st = {0};
    struct pci_device d;
    struct msix x;
    struct owner o;

    program(0, 0xfee00000, 0x4020);
    program(1, 0x1fee01000ULL, 0x4021);
    bar_wr(entry(1, 3), 4, 1);
    set_ctrl(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    msix_notify(&m, 1);
    msix_notify(&m, 3);
    ck_assert_int_eq(msix_save(&m, &st), 0);

    make_device(&d, &x, &o, NVEC);
    ck_assert_int_eq(msix_load(&x, st.data, st.len), 0);
    ck_assert_mem_eq(x.table, m.table, NVEC * MSIX_ENTRY_SIZE);
    ck_assert_uint_eq(x.pba[0], 0xa);
    ck_assert_uint_eq(pci_config_read(&d, (uint32_t)find_msix_cap(&d) + 2, 2),
                      MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL | (NVEC - 1));
    /* Every vector is reported so the owner can build its routes. */
    ck_assert_int_eq(o.nr_changes, NVEC);
    ck_assert_uint_eq(o.changes[1].addr, 0x1fee01000ULL);
    ck_assert_uint_eq(o.changes[1].data, 0x4021);
    ck_assert(o.changes[1].masked);
    ck_assert_int_eq(o.nr_delivered, 0);
    /* The loaded state behaves: function unmask delivers nothing for vector 1
     * (entry-masked) or 3 (entry-masked); entry unmask of 1 delivers it. */
    pci_config_write(&d, (uint32_t)find_msix_cap(&d) + 2, 2, MSIX_CTRL_ENABLE);
    ck_assert_int_eq(o.nr_delivered, 0);
    {
        uint8_t z[4] = {0};

        ck_assert(msix_bar_write(&x, entry(1, 3), z, 4));
    }
    ck_assert_int_eq(o.nr_delivered, 1);
    ck_assert_uint_eq(o.delivered[0].addr, 0x1fee01000ULL);

    ck_assert_int_eq(msix_load(&x, st.data, st.len - 1), -EINVAL);
    st.data[0] ^= 1; /* another vector count */
    ck_assert_int_eq(msix_load(&x, st.data, st.len), -EINVAL);
    msix_destroy(&x);
    pci_device_destroy(&d);
    state_buf_free(&st);
}
END_TEST

START_TEST(load_delivers_pending_unmasked_vectors)
{
    struct state_buf st = {0};

    program(2, 0xfee00000, 0x4022);
    msix_notify(&m, 2); /* pending: MSI-X still disabled */
    ck_assert_int_eq(msix_save(&m, &st), 0);
    st.data[4] = (uint8_t)MSIX_CTRL_ENABLE; /* a stream saved as enabled */
    st.data[5] = (uint8_t)(MSIX_CTRL_ENABLE >> 8);
    own.nr_changes = 0;
    ck_assert_int_eq(msix_load(&m, st.data, st.len), 0);
    ck_assert_int_eq(own.nr_changes, NVEC);
    ck_assert_int_eq(own.nr_delivered, 1);
    ck_assert_uint_eq(pba(0), 0);
    state_buf_free(&st);
}
END_TEST

static Suite *msix_suite(void)
{
    Suite *s = suite_create("msix");
    TCase *capc = tcase_create("capability");
    TCase *table = tcase_create("table");
    TCase *irq = tcase_create("delivery");
    TCase *state = tcase_create("state");

    tcase_add_checked_fixture(capc, setup, teardown);
    tcase_add_test(capc, capability_layout);
    tcase_add_test(capc, init_rejects_bad_layouts);
    suite_add_tcase(s, capc);

    tcase_add_checked_fixture(table, setup, teardown);
    tcase_add_test(table, table_starts_masked_and_zero);
    tcase_add_test(table, table_dword_access);
    tcase_add_test(table, table_qword_access);
    tcase_add_test(table, accesses_outside_the_structures);
    tcase_add_test(table, table_through_the_mmio_bus);
    suite_add_tcase(s, table);

    tcase_add_checked_fixture(irq, setup, teardown);
    tcase_add_test(irq, vector_changes_are_reported);
    tcase_add_test(irq, notify_delivers_when_unmasked);
    tcase_add_test(irq, entry_mask_pends_and_unmask_delivers_once);
    tcase_add_test(irq, function_mask_pends_and_unmask_delivers_once);
    tcase_add_test(irq, function_unmask_keeps_entry_masked_vectors_pending);
    tcase_add_test(irq, disabled_pends_and_enable_delivers);
    tcase_add_test(irq, pba_is_read_only);
    tcase_add_test(irq, pba_spans_qwords);
    suite_add_tcase(s, irq);

    tcase_add_checked_fixture(state, setup, teardown);
    tcase_add_test(state, save_load_round_trip);
    tcase_add_test(state, load_delivers_pending_unmasked_vectors);
    suite_add_tcase(s, state);
    return s;
}

CHECK_MAIN(msix_suite)
