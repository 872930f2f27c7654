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

/* Applies kvm_cpuid_adjust() to a copy of `supported` and sets it on the vCPU. */
int kvm_vcpu_setup_cpuid(struct kvm_vcpu *vcpu, const struct kvm_cpuid2 *supported, unsigned ncpus);

#endif
