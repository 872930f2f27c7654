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

#define KVM_VCPU_STATE_MAGIC 0x55504356u /* "VCPU" */
#define KVM_VCPU_STATE_VERSION 1u
#define KVM_VCPU_STATE_MAX_MSRS 256u

/* The optional parts of a blob. */
enum {
    KVM_VCPU_HAS_XSAVE = 1u << 0, /* the FPU area is XSAVE; clear: struct kvm_fpu */
    KVM_VCPU_HAS_XCRS = 1u << 1,
    KVM_VCPU_HAS_EVENTS = 1u << 2,
    KVM_VCPU_HAS_MP_STATE = 1u << 3,
    KVM_VCPU_HAS_DEBUGREGS = 1u << 4,
    KVM_VCPU_HAS_ALL = (1u << 5) - 1,
};

struct kvm_vcpu_state_hdr {
    uint32_t magic;
    uint32_t version;
    uint32_t parts; /* KVM_VCPU_HAS_* */
    uint32_t fpu_size;
    uint32_t nmsrs;
    uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct kvm_vcpu_state_hdr) == 24, "kvm_vcpu_state_hdr is 24 bytes");

/* A blob taken apart: kvm_regs, kvm_sregs, the FPU area (hdr.fpu_size bytes: struct
 * kvm_xsave as KVM_GET_XSAVE2 fills it, or struct kvm_fpu), kvm_xcrs, hdr.nmsrs
 * kvm_msr_entry, kvm_lapic_state, kvm_vcpu_events, kvm_mp_state, kvm_debugregs; a
 * part whose KVM_VCPU_HAS_* bit is clear is absent from the blob. */
struct kvm_vcpu_state_parts {
    struct kvm_vcpu_state_hdr hdr;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    void *fpu; /* hdr.fpu_size bytes */
    struct kvm_xcrs xcrs;
    struct kvm_msrs *msrs; /* room for KVM_VCPU_STATE_MAX_MSRS entries */
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp_state;
    struct kvm_debugregs debugregs;
};

/* What a host's KVM can load: its optional parts (KVM_VCPU_HAS_XSAVE set exactly
 * when xsave_size is not 0) and the size of its XSAVE area. */
struct kvm_vcpu_state_host {
    uint32_t parts;
    uint32_t xsave_size;
};

/* The vCPU must not be in KVM_RUN (paused or never started). */
int kvm_vcpu_state_save(struct kvm_vcpu *vcpu, struct state_buf *out);

/* Validates the whole blob first (one pr_err line and -EINVAL for a truncated,
 * foreign or other-version blob, or one this host cannot take), then applies
 * it. The vCPU must not be running and needs its CPUID set already: which
 * MSRs KVM accepts depends on it. */
int kvm_vcpu_state_load(struct kvm_vcpu *vcpu, const uint8_t *data, size_t len);

/* What this vCPU's KVM can load. */
void kvm_vcpu_state_host(struct kvm_vcpu *vcpu, struct kvm_vcpu_state_host *host);

/* Every check kvm_vcpu_state_load makes before its first ioctl, with no KVM: takes
 * the blob apart into *out (zeroed first) for a host that can load `host`. 0, or
 * -EINVAL (-ENOMEM) with one pr_err line naming vCPU index. Free *out with
 * kvm_vcpu_state_parts_free whatever the result. */
int kvm_vcpu_state_parse(const uint8_t *data, size_t len, const struct kvm_vcpu_state_host *host,
                         int index, struct kvm_vcpu_state_parts *out);
void kvm_vcpu_state_parts_free(struct kvm_vcpu_state_parts *p);
/* Writes the parts as a blob: what save writes, and the inverse of parse. */
int kvm_vcpu_state_put(const struct kvm_vcpu_state_parts *p, struct state_buf *out);

#endif
