#include "vcpu_exit.h"

#include <stdio.h>

static void handle_io(struct kvm_run *run, struct bus *pio)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;

    for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
        if (run->io.direction == KVM_EXIT_IO_OUT)
            bus_write(pio, run->io.port, data, run->io.size);
        else
            bus_read(pio, run->io.port, data, run->io.size);
    }
}

static void handle_mmio(struct kvm_run *run, struct bus *mmio)
{
    uint32_t len = run->mmio.len <= sizeof(run->mmio.data) ? run->mmio.len : 8;

    if (run->mmio.is_write)
        bus_write(mmio, run->mmio.phys_addr, run->mmio.data, len);
    else
        bus_read(mmio, run->mmio.phys_addr, run->mmio.data, len);
}

static enum vcpu_action handle_system_event(struct kvm_run *run, char *why, size_t why_len)
{
    switch (run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
    case KVM_SYSTEM_EVENT_RESET:
        return VCPU_GUEST_RESET;
    case KVM_SYSTEM_EVENT_CRASH:
        snprintf(why, why_len, "guest reported a crash");
        return VCPU_GUEST_CRASH;
    default:
        snprintf(why, why_len, "unknown system event %u", run->system_event.type);
        return VCPU_INTERNAL_ERROR;
    }
}

enum vcpu_action vcpu_handle_exit(struct kvm_run *run, struct bus *pio, struct bus *mmio, char *why,
                                  size_t why_len)
{
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(run, pio);
        return VCPU_CONTINUE;
    case KVM_EXIT_MMIO:
        handle_mmio(run, mmio);
        return VCPU_CONTINUE;
    case KVM_EXIT_INTR:
    case KVM_EXIT_HLT: /* the in-kernel LAPIC handles HLT; nothing to do if one slips out */
        return VCPU_CONTINUE;
    case KVM_EXIT_SHUTDOWN:
        snprintf(why, why_len, "guest triple fault");
        return VCPU_GUEST_CRASH;
    case KVM_EXIT_SYSTEM_EVENT:
        return handle_system_event(run, why, why_len);
    case KVM_EXIT_INTERNAL_ERROR:
        snprintf(why, why_len, "KVM internal error, suberror %u%s", run->internal.suberror,
                 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? " (emulation failure)"
                                                                        : "");
        return VCPU_INTERNAL_ERROR;
    case KVM_EXIT_FAIL_ENTRY:
        snprintf(why, why_len, "VM entry failed, hardware reason 0x%llx",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return VCPU_INTERNAL_ERROR;
    default:
        snprintf(why, why_len, "unhandled KVM exit reason %u", run->exit_reason);
        return VCPU_INTERNAL_ERROR;
    }
}
