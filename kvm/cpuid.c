#include "vcpu.h"

#include "../common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define CPUID_80000001_ECX_CMP_LEGACY (1u << 1)
#define TOPO_LEVEL_SMT 1u
#define TOPO_LEVEL_CORE 2u

/* Bits needed to number ncpus cores: the APIC id shift of the core level. */
static uint32_t core_id_bits(unsigned ncpus)
{
    uint32_t bits = 0;

    while ((1u << bits) < ncpus)
        bits++;
    return bits;
}

static void adjust_leaf1(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
    e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) | ((ncpus & 0xff) << 16);
    e->ecx |= CPUID_1_ECX_HYPERVISOR;
    if (ncpus > 1)
        e->edx |= CPUID_1_EDX_HTT;
    else
        e->edx &= ~CPUID_1_EDX_HTT;
}

static void adjust_leaf4(struct kvm_cpuid_entry2 *e, unsigned ncpus)
{
    uint32_t level = (e->eax >> 5) & 7;
    uint32_t cores = ncpus > 64 ? 64 : ncpus; /* EAX[31:26] holds at most 63 */
    uint32_t sharing = level >= 3 ? ncpus - 1 : 0;

    if ((e->eax & 0x1f) == 0) /* no more caches */
        return;
    e->eax = (e->eax & 0x3fff) | ((sharing & 0xfff) << 14) | ((cores - 1) << 26);
}

static void adjust_extended_topology(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
    e->edx = index;
    if (e->index == 0) {
        e->eax = 0;
        e->ebx = 1;
        e->ecx = (TOPO_LEVEL_SMT << 8) | 0;
    } else if (e->index == 1) {
        e->eax = core_id_bits(ncpus);
        e->ebx = ncpus;
        e->ecx = (TOPO_LEVEL_CORE << 8) | 1;
    } else {
        e->eax = e->ebx = 0;
        e->ecx = e->index;
    }
}

static void adjust_amd_leaves(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
    switch (e->function) {
    case 0x80000001:
        if (ncpus > 1)
            e->ecx |= CPUID_80000001_ECX_CMP_LEGACY;
        else
            e->ecx &= ~CPUID_80000001_ECX_CMP_LEGACY;
        break;
    case 0x80000008:
        e->ecx = (e->ecx & ~0xf0ffu) | (core_id_bits(ncpus) << 12) | ((ncpus - 1) & 0xff);
        break;
    case 0x8000001e:
        e->eax = index;
        e->ebx = index & 0xff; /* core id; one thread per core */
        e->ecx = 0;            /* node 0, one node */
        break;
    }
}

void kvm_cpuid_adjust(struct kvm_cpuid2 *cpuid, unsigned index, unsigned ncpus)
{
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

        switch (e->function) {
        case 1:
            adjust_leaf1(e, index, ncpus);
            break;
        case 4:
            adjust_leaf4(e, ncpus);
            break;
        case 0xb:
        case 0x1f:
            adjust_extended_topology(e, index, ncpus);
            break;
        default:
            adjust_amd_leaves(e, index, ncpus);
            break;
        }
    }
}

static const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t fn,
                                                 uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == index)
            return &c->entries[i];
    return NULL;
}

void kvm_cpuid_set_tsc_deadline(struct kvm_cpuid2 *c)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == 1)
            c->entries[i].ecx |= CPUID_1_ECX_TSC_DEADLINE;
}

/* Newer kernels return only subleaf 0 of leaf 0xb (they stopped reporting the
 * host's topology): add the core level so kvm_cpuid_adjust() can describe ours. */
void kvm_cpuid_add_core_level(struct kvm_cpuid2 *c)
{
    if (!cpuid_find(c, 0xb, 0) || cpuid_find(c, 0xb, 1))
        return;
    c->entries[c->nent++] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
}

int kvm_vcpu_setup_cpuid(struct kvm_vcpu *vcpu, const struct kvm_cpuid2 *supported, unsigned ncpus)
{
    size_t size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
    struct kvm_cpuid2 *copy = malloc(size + sizeof(supported->entries[0]));
    int ret;

    if (!copy) {
        pr_err("kvm: vcpu%d: out of memory for CPUID", vcpu->index);
        return -ENOMEM;
    }
    memcpy(copy, supported, size);
    kvm_cpuid_add_core_level(copy);
    kvm_cpuid_adjust(copy, vcpu->index, ncpus);
    ret = kvm_vcpu_set_cpuid(vcpu, copy);
    free(copy);
    return ret;
}
