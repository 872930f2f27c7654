/* Saves the VM-wide in-kernel device state into a versioned blob and loads it:
 * both PICs, the IOAPIC, the PIT and the kvmclock. */
#ifndef VMM_KVM_VM_STATE_H
#define VMM_KVM_VM_STATE_H

#include "../common/state_buf.h"
#include "kvm.h"

#include <linux/kvm.h>

#include <stddef.h>
#include <stdint.h>

#define KVM_VM_STATE_MAGIC 0x4d564b56u /* "VKVM" */
#define KVM_VM_STATE_VERSION 1u

/* The optional parts of a blob. */
enum {
    KVM_VM_HAS_PIT = 1u << 0,
    KVM_VM_HAS_CLOCK = 1u << 1,
    KVM_VM_HAS_ALL = (1u << 2) - 1,
};

struct kvm_vm_state_hdr {
    uint32_t magic;
    uint32_t version;
    uint32_t parts; /* KVM_VM_HAS_* */
    uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct kvm_vm_state_hdr) == 16, "kvm_vm_state_hdr is 16 bytes");

#define KVM_VM_STATE_NCHIPS 3

/* A blob taken apart, in blob order; a part whose KVM_VM_HAS_* bit is clear is absent. */
struct kvm_vm_state_parts {
    struct kvm_vm_state_hdr hdr;
    struct kvm_irqchip chips[KVM_VM_STATE_NCHIPS]; /* KVM_IRQCHIP_PIC_MASTER, _SLAVE, _IOAPIC */
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock;
};

/* Every vCPU must be out of KVM_RUN. */
int kvm_vm_state_save(struct kvm *kvm, struct state_buf *out);

/* Validates the whole blob first (one pr_err line and -EINVAL when it is
 * truncated, foreign, another version, or needs what this host lacks), then
 * applies it. Call after every vCPU's kvm_vcpu_state_load(). */
int kvm_vm_state_load(struct kvm *kvm, const uint8_t *data, size_t len);

/* The optional parts (KVM_VM_HAS_*) this host's KVM can load. */
uint32_t kvm_vm_state_host_parts(struct kvm *kvm);
/* Every check kvm_vm_state_load makes before its first ioctl, with no KVM: takes the
 * blob apart into *out for a host that can load host_parts; 0, or -EINVAL with one
 * pr_err line. */
int kvm_vm_state_parse(const uint8_t *data, size_t len, uint32_t host_parts,
                       struct kvm_vm_state_parts *out);
/* Writes the parts as a blob: what save writes, and the inverse of parse. */
int kvm_vm_state_put(const struct kvm_vm_state_parts *p, struct state_buf *out);

#endif
