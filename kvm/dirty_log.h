/* KVM's dirty page log of a memory slot: one bit per 4 KiB page the vCPUs wrote. */
#ifndef VMM_KVM_DIRTY_LOG_H
#define VMM_KVM_DIRTY_LOG_H

#include "kvm.h"

#include <stdbool.h>
#include <stdint.h>

/* With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_GET_DIRTY_LOG leaves pages writable
 * until KVM_CLEAR_DIRTY_LOG: fewer write faults while migrating. Returns true when
 * it is enabled, false when the host lacks it (the plain log still works). */
bool kvm_dirty_log_enable_manual_protect(struct kvm *kvm);

/* Copies the slot's log (npages bits, 64-bit words) into bitmap. */
int kvm_get_dirty_log(struct kvm *kvm, uint32_t slot, uint64_t *bitmap);

/* Re-protects the pages set in bitmap (manual-protect mode only); npages is the
 * slot's page count. */
int kvm_clear_dirty_log(struct kvm *kvm, uint32_t slot, uint64_t npages, uint64_t *bitmap);

#endif
