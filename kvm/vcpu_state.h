/* Saves a stopped vCPU's KVM state into a versioned blob and loads it into a
 * fresh vCPU (migration, snapshots): registers, special registers, FPU/XSAVE,
 * XCRs, MSRs (TSC and kvmclock included), LAPIC, events, MP state, debug
 * registers. Parts the host's KVM lacks are recorded as absent. */
#ifndef VMM_KVM_VCPU_STATE_H
#define VMM_KVM_VCPU_STATE_H

#include "../common/state_buf.h"
#include "vcpu.h"

#include <stddef.h>
#include <stdint.h>

/* The vCPU must not be in KVM_RUN (paused or never started). */
int kvm_vcpu_state_save(struct kvm_vcpu *vcpu, struct state_buf *out);

/* Validates the whole blob first (one pr_err line and -EINVAL for a truncated,
 * foreign or other-version blob, or one this host cannot take), then applies
 * it. The vCPU must not be running and needs its CPUID set already: which
 * MSRs KVM accepts depends on it. */
int kvm_vcpu_state_load(struct kvm_vcpu *vcpu, const uint8_t *data, size_t len);

#endif
