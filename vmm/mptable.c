#include "mptable.h"

#include "layout.h"

#include <string.h>

#define MP_SPEC_REV 4
#define MP_APIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_ISA_IRQS 16
#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP 0x02
#define MP_CPU_SIGNATURE 0x600 /* family 6 */
#define MP_CPU_FEATURES 0x201  /* FPU and APIC */

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

struct mpf_intel {
    char signature[4];
    uint32_t physptr;
    uint8_t length;
    uint8_t specification;
    uint8_t checksum;
    uint8_t feature[5];
} __attribute__((packed));

struct mpc_table {
    char signature[4];
    uint16_t length;
    uint8_t spec;
    uint8_t checksum;
    char oem[8];
    char productid[12];
    uint32_t oemptr;
    uint16_t oemsize;
    uint16_t oemcount;
    uint32_t lapic;
    uint32_t reserved;
} __attribute__((packed));

struct mpc_cpu {
    uint8_t type;
    uint8_t apicid;
    uint8_t apicver;
    uint8_t cpuflag;
    uint32_t cpufeature;
    uint32_t featureflag;
    uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
    uint8_t type;
    uint8_t busid;
    char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
    uint8_t type;
    uint8_t apicid;
    uint8_t apicver;
    uint8_t flags;
    uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
    uint8_t type;
    uint8_t irqtype;
    uint16_t irqflag;
    uint8_t srcbus;
    uint8_t srcbusirq;
    uint8_t dstapic;
    uint8_t dstirq;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer is 16 bytes");
_Static_assert(sizeof(struct mpc_table) == 44, "MP config header is 44 bytes");
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry is 20 bytes");
_Static_assert(sizeof(struct mpc_bus) == 8, "MP bus entry is 8 bytes");
_Static_assert(sizeof(struct mpc_ioapic) == 8, "MP IOAPIC entry is 8 bytes");
_Static_assert(sizeof(struct mpc_intsrc) == 8, "MP interrupt entry is 8 bytes");

#define MP_ISA_BUS_ID 0
#define MP_LINT_ENTRIES 2

size_t mptable_size(unsigned ncpus)
{
    return sizeof(struct mpf_intel) + sizeof(struct mpc_table) + ncpus * sizeof(struct mpc_cpu) +
           sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
           (MP_ISA_IRQS + MP_LINT_ENTRIES) * sizeof(struct mpc_intsrc);
}

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;

    while (len--)
        sum += *p++;
    return (uint8_t)-sum;
}

static uint8_t *mp_put(uint8_t *p, const void *entry, size_t len)
{
    memcpy(p, entry, len);
    return p + len;
}

static uint8_t *mp_put_cpus(uint8_t *p, unsigned ncpus)
{
    for (unsigned i = 0; i < ncpus; i++) {
        struct mpc_cpu cpu = {
            .type = MP_PROCESSOR,
            .apicid = (uint8_t)i,
            .apicver = MP_APIC_VERSION,
            .cpuflag = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
            .cpufeature = MP_CPU_SIGNATURE,
            .featureflag = MP_CPU_FEATURES,
        };
        p = mp_put(p, &cpu, sizeof(cpu));
    }
    return p;
}

/* ISA IRQ n goes to IOAPIC pin n, edge/high as the ISA bus conforms: KVM's
 * default GSI routing wires them the same way. */
static uint8_t *mp_put_irqs(uint8_t *p, uint8_t ioapic_id)
{
    for (int irq = 0; irq < MP_ISA_IRQS; irq++) {
        struct mpc_intsrc src = {
            .type = MP_INTSRC,
            .irqtype = MP_INT,
            .srcbus = MP_ISA_BUS_ID,
            .srcbusirq = (uint8_t)irq,
            .dstapic = ioapic_id,
            .dstirq = (uint8_t)irq,
        };
        p = mp_put(p, &src, sizeof(src));
    }
    for (int lint = 0; lint < MP_LINT_ENTRIES; lint++) {
        struct mpc_intsrc src = {
            .type = MP_LINTSRC,
            .irqtype = lint == 0 ? MP_EXTINT : MP_NMI,
            .srcbus = MP_ISA_BUS_ID,
            .dstapic = 0xff,
            .dstirq = (uint8_t)lint,
        };
        p = mp_put(p, &src, sizeof(src));
    }
    return p;
}

size_t mptable_build(uint8_t *buf, uint64_t gpa, unsigned ncpus)
{
    struct mpf_intel mpf = {
        .signature = {'_', 'M', 'P', '_'}, .length = 1, .specification = MP_SPEC_REV};
    struct mpc_table mpc = {.signature = {'P', 'C', 'M', 'P'},
                            .spec = MP_SPEC_REV,
                            .lapic = (uint32_t)LAYOUT_LAPIC_ADDR};
    struct mpc_bus bus = {
        .type = MP_BUS, .busid = MP_ISA_BUS_ID, .bustype = {'I', 'S', 'A', ' ', ' ', ' '}};
    struct mpc_ioapic ioapic = {.type = MP_IOAPIC,
                                .apicid = (uint8_t)ncpus,
                                .apicver = MP_IOAPIC_VERSION,
                                .flags = 1,
                                .apicaddr = (uint32_t)LAYOUT_IOAPIC_ADDR};
    uint8_t *table = buf + sizeof(mpf);
    uint8_t *p = table + sizeof(mpc);

    p = mp_put_cpus(p, ncpus);
    p = mp_put(p, &bus, sizeof(bus));
    p = mp_put(p, &ioapic, sizeof(ioapic));
    p = mp_put_irqs(p, ioapic.apicid);

    memcpy(mpc.oem, "VMM     ", 8);
    memcpy(mpc.productid, "VMM MPTABLE ", 12);
    mpc.length = (uint16_t)(p - table);
    mpc.oemcount = (uint16_t)(ncpus + 2 + MP_ISA_IRQS + MP_LINT_ENTRIES);
    memcpy(table, &mpc, sizeof(mpc));
    table[offsetof(struct mpc_table, checksum)] = mp_checksum(table, mpc.length);

    mpf.physptr = (uint32_t)(gpa + sizeof(mpf));
    mpf.checksum = mp_checksum((const uint8_t *)&mpf, sizeof(mpf));
    memcpy(buf, &mpf, sizeof(mpf));
    return (size_t)(p - buf);
}
