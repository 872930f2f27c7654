/* What a vCPU does with a KVM exit: a pure function over a kvm_run, so every
 * exit reason can be unit-tested with a made-up one. */
#ifndef VMM_VCPU_EXIT_H
#define VMM_VCPU_EXIT_H

#include "../devices/bus.h"

#include <linux/kvm.h>
#include <stddef.h>

enum vcpu_action {
    VCPU_CONTINUE,
    VCPU_GUEST_RESET,    /* the guest asked for a reset or power-off: a normal end */
    VCPU_GUEST_CRASH,    /* triple fault or a crash event */
    VCPU_INTERNAL_ERROR, /* KVM could not go on (emulation failure, failed entry) */
};

enum vcpu_action vcpu_handle_exit(struct kvm_run *run, struct bus *pio, struct bus *mmio, char *why,
                                  size_t why_len);

#endif
