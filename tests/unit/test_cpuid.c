/* kvm_cpuid_adjust(): APIC ids and a one-socket, n-core topology in every topology leaf. */
#include "../../kvm/vcpu.h"

#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define HTT (1u << 28)
#define HYPERVISOR (1u << 31)
#define CMP_LEGACY (1u << 1)

static struct kvm_cpuid2 *cpuid;

static void add(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                uint32_t edx)
{
    cpuid->entries[cpuid->nent++] = (struct kvm_cpuid_entry2){
        .function = function, .index = index, .eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx};
}

/* Leaf 4 EAX: type in [4:0], level in [7:5], and bits [13:8] the adjustment keeps. */
static uint32_t cache(uint32_t type, uint32_t level)
{
    return type | level << 5 | 0x100;
}

/* A host-like table with fields the adjustment must overwrite, or keep. */
static void setup(void)
{
    cpuid = calloc(1, sizeof(*cpuid) + 16 * sizeof(cpuid->entries[0]));
    ck_assert_ptr_nonnull(cpuid);
    add(0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69);
    add(1, 0, 0x000906ea, 0xff3f0800, 0x7ffafbff, 0xbfebfbff);
    add(4, 0, cache(1, 1) | 0xfc000000, 0, 0x3f, 0);
    add(4, 1, cache(2, 1) | 0xfc000000, 0, 0x3f, 0);
    add(4, 2, cache(3, 2) | 0xfc000000, 0, 0x3ff, 0);
    add(4, 3, cache(3, 3) | 0xfc0fc000, 0, 0x2fff, 0);
    add(4, 4, 0, 0, 0, 0);
    add(0xb, 0, 1, 2, 0x100, 0x55);
    add(0xb, 1, 4, 12, 0x201, 0x55);
    add(0xb, 2, 0, 0, 2, 0x55);
    add(0x80000001, 0, 0, 0, 0x121, 0x2c100800);
    add(0x80000008, 0, 0x3027, 0, 0x0000f00f | 0x30000, 0);
    add(0x8000001e, 0, 0x55, 0x0101, 0x0300, 0);
}

static void teardown(void)
{
    free(cpuid);
}

static const struct kvm_cpuid_entry2 *leaf(uint32_t function, uint32_t index)
{
    for (uint32_t i = 0; i < cpuid->nent; i++)
        if (cpuid->entries[i].function == function && cpuid->entries[i].index == index)
            return &cpuid->entries[i];
    ck_abort_msg("no leaf %#x.%u", function, index);
    return NULL;
}

START_TEST(leaf1_apic_id_and_count)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    ck_assert_uint_eq(leaf(1, 0)->ebx >> 24, 3);
    ck_assert_uint_eq((leaf(1, 0)->ebx >> 16) & 0xff, 4);
    ck_assert_uint_eq(leaf(1, 0)->ebx & 0xffff, 0x0800); /* CLFLUSH size, brand kept */
}
END_TEST

START_TEST(leaf1_sets_htt_and_hypervisor)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    ck_assert_uint_eq(leaf(1, 0)->edx & HTT, HTT);
    ck_assert_uint_eq(leaf(1, 0)->ecx & HYPERVISOR, HYPERVISOR);
    ck_assert_uint_eq(leaf(1, 0)->eax, 0x000906ea);
}
END_TEST

START_TEST(one_cpu_clears_htt)
{
    kvm_cpuid_adjust(cpuid, 0, 1);
    ck_assert_uint_eq(leaf(1, 0)->edx & HTT, 0);
    ck_assert_uint_eq(leaf(1, 0)->ebx >> 24, 0);
    ck_assert_uint_eq((leaf(1, 0)->ebx >> 16) & 0xff, 1);
    ck_assert_uint_eq(leaf(1, 0)->ecx & HYPERVISOR, HYPERVISOR);
    ck_assert_uint_eq(leaf(0x80000001, 0)->ecx & CMP_LEGACY, 0);
}
END_TEST

START_TEST(leaf4_sharing_and_core_count)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t eax = leaf(4, i)->eax;
        uint32_t level = (eax >> 5) & 7;

        ck_assert_uint_eq(eax >> 26, 3); /* cores per package - 1 */
        ck_assert_uint_eq((eax >> 14) & 0xfff, level == 3 ? 3 : 0);
        ck_assert_uint_eq(eax & 0x3fff, cache(eax & 0x1f, level));
    }
}
END_TEST

START_TEST(leaf4_terminator_untouched)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    ck_assert_uint_eq(leaf(4, 4)->eax, 0);
}
END_TEST

/* Leaf 0xb for vCPU 3 of 4: the SMT level, the core level, then the invalid level that
 * ends the list (its ECX keeps the subleaf). */
static const struct {
    const char *what;
    uint32_t subleaf, eax, ebx, ecx;
} leaf_b[] = {
    {"leaf_b_smt_level", 0, 0, 1, 0x100},
    {"leaf_b_core_level", 1, 2, 4, 0x201},
    {"leaf_b_invalid_level", 2, 0, 0, 2},
};

START_TEST(leaf_b_levels)
{
    const struct kvm_cpuid_entry2 *e;

    kvm_cpuid_adjust(cpuid, 3, 4);
    e = leaf(0xb, leaf_b[_i].subleaf);
    ck_assert_msg(e->eax == leaf_b[_i].eax && e->ebx == leaf_b[_i].ebx && e->ecx == leaf_b[_i].ecx,
                  "%s: eax 0x%x ebx 0x%x ecx 0x%x", leaf_b[_i].what, e->eax, e->ebx, e->ecx);
}
END_TEST

START_TEST(leaf_b_x2apic_id_everywhere)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    for (uint32_t i = 0; i < 3; i++)
        ck_assert_uint_eq(leaf(0xb, i)->edx, 3);
}
END_TEST

/* 3 cpus still need 2 bits of core id: the shift rounds up to a power of two. */
START_TEST(leaf_b_shift_rounds_up)
{
    kvm_cpuid_adjust(cpuid, 2, 3);
    ck_assert_uint_eq(leaf(0xb, 1)->eax, 2);
    ck_assert_uint_eq(leaf(0xb, 1)->ebx, 3);
    kvm_cpuid_adjust(cpuid, 4, 5);
    ck_assert_uint_eq(leaf(0xb, 1)->eax, 3);
}
END_TEST

START_TEST(amd_core_count)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    ck_assert_uint_eq(leaf(0x80000008, 0)->ecx & 0xff, 3);
    ck_assert_uint_eq((leaf(0x80000008, 0)->ecx >> 12) & 0xf, 2);
    ck_assert_uint_eq(leaf(0x80000008, 0)->ecx & 0xffff0000, 0x30000);
    ck_assert_uint_eq(leaf(0x80000008, 0)->eax, 0x3027);
}
END_TEST

START_TEST(amd_cmp_legacy_with_several_cpus)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    ck_assert_uint_eq(leaf(0x80000001, 0)->ecx & CMP_LEGACY, CMP_LEGACY);
    ck_assert_uint_eq(leaf(0x80000001, 0)->ecx & ~CMP_LEGACY, 0x121);
}
END_TEST

START_TEST(amd_extended_apic_id)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    ck_assert_uint_eq(leaf(0x8000001e, 0)->eax, 3);
    ck_assert_uint_eq(leaf(0x8000001e, 0)->ebx & 0xff, 3);
    ck_assert_uint_eq((leaf(0x8000001e, 0)->ebx >> 8) & 0xff, 0); /* one thread per core */
    ck_assert_uint_eq(leaf(0x8000001e, 0)->ecx, 0);
}
END_TEST

START_TEST(other_leaves_untouched)
{
    kvm_cpuid_adjust(cpuid, 3, 4);
    ck_assert_uint_eq(leaf(0, 0)->eax, 0xd);
    ck_assert_uint_eq(leaf(0, 0)->ebx, 0x756e6547);
}
END_TEST

/* Newer kernels report only subleaf 0 of leaf 0xb: the core level is added. */
START_TEST(core_level_added_when_missing)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < cpuid->nent; i++) /* drop 0xb.1 and 0xb.2 */
        if (!(cpuid->entries[i].function == 0xb && cpuid->entries[i].index > 0))
            cpuid->entries[n++] = cpuid->entries[i];
    cpuid->nent = n;
    kvm_cpuid_add_core_level(cpuid);
    ck_assert_uint_eq(cpuid->nent, n + 1);
    kvm_cpuid_adjust(cpuid, 1, 2);
    ck_assert_uint_eq(leaf(0xb, 1)->ebx, 2);
    ck_assert_uint_eq(leaf(0xb, 1)->eax, 1);
    ck_assert_uint_eq(leaf(0xb, 1)->ecx, 0x201);
    ck_assert_uint_eq(leaf(0xb, 1)->edx, 1);
    ck_assert_uint_eq(leaf(0xb, 1)->flags, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
}
END_TEST

START_TEST(core_level_not_duplicated)
{
    uint32_t n = cpuid->nent;

    kvm_cpuid_add_core_level(cpuid);
    ck_assert_uint_eq(cpuid->nent, n);
}
END_TEST

/* The TSC-deadline bit goes into leaf 1 ECX, every other bit and leaf as it was. */
START_TEST(tsc_deadline_bit_set)
{
    struct kvm_cpuid_entry2 before[16];
    uint32_t n = cpuid->nent;

    ck_assert_uint_eq(cpuid->entries[1].function, 1);
    cpuid->entries[1].ecx = 0x7efafbff; /* as KVM reports it: bit 24 clear */
    memcpy(before, cpuid->entries, n * sizeof(before[0]));
    kvm_cpuid_set_tsc_deadline(cpuid);
    ck_assert_uint_eq(cpuid->nent, n);
    ck_assert_uint_eq(leaf(1, 0)->ecx, 0x7ffafbff);
    for (uint32_t i = 0; i < n; i++) {
        if (before[i].function == 1)
            before[i].ecx |= 1u << 24;
        ck_assert_mem_eq(&cpuid->entries[i], &before[i], sizeof(before[i]));
    }
}
END_TEST

/* Leaf 4 EAX[31:26] has six bits: more than 64 vCPUs saturates instead of wrapping. */
START_TEST(leaf4_core_count_saturates)
{
    kvm_cpuid_adjust(cpuid, 0, 65);
    ck_assert_uint_eq(leaf(4, 0)->eax >> 26, 63);
}
END_TEST

static Suite *cpuid_suite(void)
{
    Suite *s = suite_create("cpuid");
    TCase *tc = tcase_create("adjust");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, leaf1_apic_id_and_count);
    tcase_add_test(tc, leaf1_sets_htt_and_hypervisor);
    tcase_add_test(tc, one_cpu_clears_htt);
    tcase_add_test(tc, leaf4_sharing_and_core_count);
    tcase_add_test(tc, leaf4_terminator_untouched);
    tcase_add_loop_test(tc, leaf_b_levels, 0, sizeof(leaf_b) / sizeof(leaf_b[0]));
    tcase_add_test(tc, leaf_b_x2apic_id_everywhere);
    tcase_add_test(tc, leaf_b_shift_rounds_up);
    tcase_add_test(tc, amd_core_count);
    tcase_add_test(tc, amd_cmp_legacy_with_several_cpus);
    tcase_add_test(tc, amd_extended_apic_id);
    tcase_add_test(tc, other_leaves_untouched);
    tcase_add_test(tc, core_level_added_when_missing);
    tcase_add_test(tc, core_level_not_duplicated);
    tcase_add_test(tc, leaf4_core_count_saturates);
    tcase_add_test(tc, tsc_deadline_bit_set);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(cpuid_suite)
