/* Raw vCPU ioctls and the x86 state Linux expects at entry. */
#ifndef VMM_KVM_VCPU_H
#define VMM_KVM_VCPU_H

#include "kvm.h"

#include <linux/kvm.h>
#include <stddef.h>

struct kvm_vcpu {
    struct kvm *kvm; /* the VM it belongs to: capability checks and system ioctls */
    int fd;
    int index;
    struct kvm_run *run;
    size_t run_size;
};

int kvm_vcpu_create(struct kvm *kvm, int index, struct kvm_vcpu *vcpu);
void kvm_vcpu_destroy(struct kvm_vcpu *vcpu);

/* The VM's coalesced-write ring, mapped with this vCPU's run area (every vCPU maps
 * the same page); NULL when the host has none. */
struct kvm_coalesced_mmio_ring *kvm_vcpu_coalesced_ring(struct kvm_vcpu *vcpu);

/* Entries of a ring page: KVM_COALESCED_MMIO_MAX, which the uapi header defines
 * with the kernel's PAGE_SIZE. */
#define KVM_COALESCED_RING_ENTRIES                                                                 \
    ((4096 - sizeof(struct kvm_coalesced_mmio_ring)) / sizeof(struct kvm_coalesced_mmio))

/* Hands each buffered write to fn, oldest first, freeing its slot after; returns how
 * many. Callers serialize among themselves; KVM fills the ring concurrently. */
unsigned kvm_coalesced_drain(struct kvm_coalesced_mmio_ring *ring,
                             void (*fn)(void *opaque, const struct kvm_coalesced_mmio *w),
                             void *opaque);

/* One KVM_RUN; returns 0, or -errno (-EINTR when kicked by a signal). */
int kvm_vcpu_run(struct kvm_vcpu *vcpu);

int kvm_vcpu_get_regs(struct kvm_vcpu *vcpu, struct kvm_regs *regs);
int kvm_vcpu_set_regs(struct kvm_vcpu *vcpu, const struct kvm_regs *regs);
int kvm_vcpu_get_sregs(struct kvm_vcpu *vcpu, struct kvm_sregs *sregs);
int kvm_vcpu_set_sregs(struct kvm_vcpu *vcpu, const struct kvm_sregs *sregs);
int kvm_vcpu_set_fpu(struct kvm_vcpu *vcpu, const struct kvm_fpu *fpu);
int kvm_vcpu_set_cpuid(struct kvm_vcpu *vcpu, const struct kvm_cpuid2 *cpuid);

/* Boot MSRs (SYSCALL/SYSENTER cleared, fast strings, MTRRs on with write-back). */
int kvm_vcpu_setup_msrs(struct kvm_vcpu *vcpu);
/* LINT0 as ExtINT and LINT1 as NMI: the virtual-wire mode an MP-table boot expects. */
int kvm_vcpu_setup_lapic(struct kvm_vcpu *vcpu);

/* Rewrites a copy of the supported CPUID for vCPU `index` of `ncpus`: APIC ids and a
 * topology of one socket with ncpus cores, one thread each. Pure: unit-tested. */
void kvm_cpuid_adjust(struct kvm_cpuid2 *cpuid, unsigned index, unsigned ncpus);

/* Adds leaf 0xb subleaf 1 when the kernel reported only subleaf 0; `cpuid` must
 * have room for one more entry. */
void kvm_cpuid_add_core_level(struct kvm_cpuid2 *cpuid);

/* Sets the TSC-deadline timer bit (leaf 1 ECX[24]): KVM emulates that timer in its
 * in-kernel LAPIC (KVM_CAP_TSC_DEADLINE_TIMER) but never reports the bit in
 * KVM_GET_SUPPORTED_CPUID. Without it Linux calibrates the LAPIC timer against the
 * PIT at boot, and under nested virtualization may disable it. */
void kvm_cpuid_set_tsc_deadline(struct kvm_cpuid2 *cpuid);

/* Applies kvm_cpuid_adjust() to a copy of `supported` and sets it on the vCPU. */
int kvm_vcpu_setup_cpuid(struct kvm_vcpu *vcpu, const struct kvm_cpuid2 *supported, unsigned ncpus);

#endif
