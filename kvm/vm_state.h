/* Saves the VM-wide in-kernel device state into a versioned blob and loads it:
 * both PICs, the IOAPIC, the PIT and the kvmclock. */
#ifndef VMM_KVM_VM_STATE_H
#define VMM_KVM_VM_STATE_H

#include "../common/state_buf.h"
#include "kvm.h"

#include <stddef.h>
#include <stdint.h>

/* Every vCPU must be out of KVM_RUN. */
int kvm_vm_state_save(struct kvm *kvm, struct state_buf *out);

/* Validates the whole blob first (one pr_err line and -EINVAL when it is
 * truncated, foreign, another version, or needs what this host lacks), then
 * applies it. Call after every vCPU's kvm_vcpu_state_load(). */
int kvm_vm_state_load(struct kvm *kvm, const uint8_t *data, size_t len);

#endif
