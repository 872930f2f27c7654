/* The MP table as Linux's mpparse.c reads it: signatures, checksums and entries. */
#include "../../vmm/layout.h"
#include "../../vmm/mptable.h"

#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define MPF_SIZE 16
#define MPC_HEADER_SIZE 44
#define TABLE_GPA 0x9fc00ULL

static const unsigned cpu_counts[] = {1, 2, 8};

static uint8_t *buf;
static size_t built;

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;

    while (len--)
        s += *p++;
    return s;
}

/* An exact-size heap buffer, so ASan flags any write past mptable_size(). */
static const uint8_t *build(unsigned ncpus)
{
    buf = malloc(mptable_size(ncpus));
    ck_assert_ptr_nonnull(buf);
    built = mptable_build(buf, TABLE_GPA, ncpus);
    return buf;
}

static void teardown(void)
{
    free(buf);
    buf = NULL;
}

START_TEST(size_matches_build)
{
    unsigned n = cpu_counts[_i];

    build(n);
    ck_assert_uint_eq(built, mptable_size(n));
}
END_TEST

START_TEST(size_grows_20_bytes_per_cpu)
{
    ck_assert_uint_eq(mptable_size(2) - mptable_size(1), 20);
    ck_assert_uint_eq(mptable_size(1), MPF_SIZE + MPC_HEADER_SIZE + 20 + 8 + 8 + 18 * 8);
}
END_TEST

START_TEST(floating_pointer_valid)
{
    const uint8_t *p = build(cpu_counts[_i]);

    ck_assert_mem_eq(p, "_MP_", 4);
    ck_assert_uint_eq(get32(p + 4), TABLE_GPA + MPF_SIZE);
    ck_assert_uint_eq(p[8], 1); /* length in 16-byte units */
    ck_assert_uint_eq(p[9], 4); /* spec revision 1.4 */
    ck_assert_uint_eq(sum(p, MPF_SIZE), 0);
    ck_assert_uint_eq(p[11], 0); /* feature byte 1: no default config, table present */
}
END_TEST

START_TEST(config_header_valid)
{
    unsigned n = cpu_counts[_i];
    const uint8_t *t = build(n) + MPF_SIZE;
    uint16_t len = get16(t + 4);

    ck_assert_mem_eq(t, "PCMP", 4);
    ck_assert_uint_eq(len, built - MPF_SIZE);
    ck_assert_uint_eq(t[6], 4);
    ck_assert_uint_eq(sum(t, len), 0);
    ck_assert_uint_eq(get16(t + 0x22), n + 1 + 1 + 16 + 2); /* entry count */
    ck_assert_uint_eq(get32(t + 0x24), LAYOUT_LAPIC_ADDR);
}
END_TEST

struct mp_counts {
    unsigned cpus, buses, ioapics, intsrcs, lints, total;
};

static size_t entry_size(uint8_t type)
{
    return type == 0 ? 20 : 8;
}

static struct mp_counts walk(const uint8_t *t, unsigned ncpus)
{
    const uint8_t *p = t + MPC_HEADER_SIZE, *end = t + get16(t + 4);
    struct mp_counts c = {0};

    while (p < end) {
        ck_assert_uint_le(p[0], 4);
        switch (p[0]) {
        case 0:
            ck_assert_uint_eq(p[1], c.cpus);                  /* APIC id */
            ck_assert_uint_eq(p[3] & 1, 1);                   /* enabled */
            ck_assert_uint_eq(p[3] & 2, c.cpus == 0 ? 2 : 0); /* BSP */
            c.cpus++;
            break;
        case 1:
            ck_assert_mem_eq(p + 2, "ISA   ", 6);
            c.buses++;
            break;
        case 2:
            ck_assert_uint_eq(p[1], ncpus);
            ck_assert_uint_eq(p[3] & 1, 1);
            ck_assert_uint_eq(get32(p + 4), LAYOUT_IOAPIC_ADDR);
            c.ioapics++;
            break;
        case 3:
            ck_assert_uint_eq(p[1], 0);         /* INT */
            ck_assert_uint_eq(p[5], c.intsrcs); /* source bus irq */
            ck_assert_uint_eq(p[6], ncpus);     /* the IOAPIC */
            ck_assert_uint_eq(p[7], c.intsrcs); /* pin */
            c.intsrcs++;
            break;
        case 4:
            c.lints++;
            break;
        }
        c.total++;
        p += entry_size(p[0]);
    }
    ck_assert_ptr_eq(p, end);
    return c;
}

START_TEST(entries_describe_cpus_ioapic_and_irqs)
{
    unsigned n = cpu_counts[_i];
    const uint8_t *t = build(n) + MPF_SIZE;
    struct mp_counts c = walk(t, n);

    ck_assert_uint_eq(c.cpus, n);
    ck_assert_uint_eq(c.buses, 1);
    ck_assert_uint_eq(c.ioapics, 1);
    ck_assert_uint_eq(c.intsrcs, 16);
    ck_assert_uint_eq(c.lints, 2);
    ck_assert_uint_eq(c.total, get16(t + 0x22));
}
END_TEST

/* Virtual wire: LINT0 is ExtINT and LINT1 NMI, on every local APIC. */
START_TEST(local_interrupts_are_virtual_wire)
{
    const uint8_t *t = build(2) + MPF_SIZE;
    const uint8_t *lint = t + get16(t + 4) - 2 * 8;

    ck_assert_uint_eq(lint[0], 4);
    ck_assert_uint_eq(lint[1], 3);
    ck_assert_uint_eq(lint[6], 0xff);
    ck_assert_uint_eq(lint[7], 0);
    ck_assert_uint_eq(lint[8], 4);
    ck_assert_uint_eq(lint[9], 1);
    ck_assert_uint_eq(lint[14], 0xff);
    ck_assert_uint_eq(lint[15], 1);
}
END_TEST

START_TEST(max_cpus_table_checksums)
{
    const uint8_t *p = build(MPTABLE_MAX_CPUS);

    ck_assert_uint_eq(built, mptable_size(MPTABLE_MAX_CPUS));
    ck_assert_uint_eq(sum(p, MPF_SIZE), 0);
    ck_assert_uint_eq(sum(p + MPF_SIZE, get16(p + MPF_SIZE + 4)), 0);
    ck_assert_uint_eq(walk(p + MPF_SIZE, MPTABLE_MAX_CPUS).cpus, MPTABLE_MAX_CPUS);
}
END_TEST

static Suite *mptable_suite(void)
{
    Suite *s = suite_create("mptable");
    TCase *tc = tcase_create("mptable");
    int n = (int)(sizeof(cpu_counts) / sizeof(cpu_counts[0]));

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, size_matches_build, 0, n);
    tcase_add_test(tc, size_grows_20_bytes_per_cpu);
    tcase_add_loop_test(tc, floating_pointer_valid, 0, n);
    tcase_add_loop_test(tc, config_header_valid, 0, n);
    tcase_add_loop_test(tc, entries_describe_cpus_ioapic_and_irqs, 0, n);
    tcase_add_test(tc, local_interrupts_are_virtual_wire);
    tcase_add_test(tc, max_cpus_table_checksums);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(mptable_suite)
