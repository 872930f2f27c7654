/* The VM-wide in-kernel device state as one blob.
 *
 * Blob: struct kvm_vm_state_hdr, then three struct kvm_irqchip (PIC master, PIC
 * slave, IOAPIC), struct kvm_pit_state2 and struct kvm_clock_data; a part
 * whose KVM_VM_HAS_* bit is clear is absent. Loading parses and checks the whole
 * blob without KVM (kvm_vm_state_parse, which the fuzzer drives), then applies it. */
#include "vm_state.h"

#include "../common/log.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>

static const char *const chip_names[KVM_VM_STATE_NCHIPS] = {"PIC master", "PIC slave", "IOAPIC"};

static int vm_ioctl(struct kvm *kvm, unsigned long req, void *arg, const char *name)
{
    return kvm_fd_ioctl(kvm->vm_fd, req, arg, name);
}

uint32_t kvm_vm_state_host_parts(struct kvm *kvm)
{
    uint32_t parts = 0;

    if (kvm_check_extension(kvm, KVM_CAP_PIT_STATE2) > 0)
        parts |= KVM_VM_HAS_PIT;
    if (kvm_check_extension(kvm, KVM_CAP_ADJUST_CLOCK) > 0)
        parts |= KVM_VM_HAS_CLOCK;
    return parts;
}

/* ---- save ---- */

int kvm_vm_state_put(const struct kvm_vm_state_parts *st, struct state_buf *out)
{
    int ret = state_buf_put(out, &st->hdr, sizeof(st->hdr));

    if (!ret)
        ret = state_buf_put(out, st->chips, sizeof(st->chips));
    if (!ret && (st->hdr.parts & KVM_VM_HAS_PIT))
        ret = state_buf_put(out, &st->pit, sizeof(st->pit));
    if (!ret && (st->hdr.parts & KVM_VM_HAS_CLOCK))
        ret = state_buf_put(out, &st->clock, sizeof(st->clock));
    return ret;
}

static int vm_state_get(struct kvm *kvm, struct kvm_vm_state_parts *st)
{
    int ret = 0;

    for (int i = 0; !ret && i < KVM_VM_STATE_NCHIPS; i++) {
        st->chips[i].chip_id = (uint32_t)i;
        ret = vm_ioctl(kvm, KVM_GET_IRQCHIP, &st->chips[i], "KVM_GET_IRQCHIP");
    }
    if (!ret && (st->hdr.parts & KVM_VM_HAS_PIT))
        ret = vm_ioctl(kvm, KVM_GET_PIT2, &st->pit, "KVM_GET_PIT2");
    /* Last: the clock is read as close to the pause as this gets. */
    if (!ret && (st->hdr.parts & KVM_VM_HAS_CLOCK))
        ret = vm_ioctl(kvm, KVM_GET_CLOCK, &st->clock, "KVM_GET_CLOCK");
    return ret;
}

int kvm_vm_state_save(struct kvm *kvm, struct state_buf *out)
{
    struct kvm_vm_state_parts st = {
        .hdr = {.magic = KVM_VM_STATE_MAGIC,
                .version = KVM_VM_STATE_VERSION,
                .parts = kvm_vm_state_host_parts(kvm)},
    };
    int ret = vm_state_get(kvm, &st);

    return ret ? ret : kvm_vm_state_put(&st, out);
}

/* ---- load: parse and check everything, then apply ---- */

static int get_part(struct state_reader *r, bool present, void *out, size_t len, const char *name)
{
    if (!present)
        return 0;
    if (state_get(r, out, len)) {
        pr_err("kvm: saved VM state truncated in %s (%zu bytes in all)", name, r->len);
        return -EINVAL;
    }
    return 0;
}

static int vm_check_hdr(const struct kvm_vm_state_hdr *h, uint32_t host_parts)
{
    uint32_t missing = h->parts & ~host_parts;

    if (h->magic != KVM_VM_STATE_MAGIC)
        pr_err("kvm: saved VM state is not VM state (magic 0x%08x)", h->magic);
    else if (h->version != KVM_VM_STATE_VERSION)
        pr_err("kvm: saved VM state has version %u, expected %u", h->version, KVM_VM_STATE_VERSION);
    else if (h->parts & ~KVM_VM_HAS_ALL)
        pr_err("kvm: saved VM state has unknown parts 0x%x", h->parts & ~KVM_VM_HAS_ALL);
    else if (missing)
        pr_err("kvm: saved VM state has parts 0x%x this host's KVM lacks", missing);
    else
        return 0;
    return -EINVAL;
}

static int vm_check_chips(const struct kvm_vm_state_parts *st)
{
    for (uint32_t i = 0; i < KVM_VM_STATE_NCHIPS; i++) {
        if (st->chips[i].chip_id != i) {
            pr_err("kvm: saved VM state has chip %u where the %s belongs", st->chips[i].chip_id,
                   chip_names[i]);
            return -EINVAL;
        }
    }
    return 0;
}

int kvm_vm_state_parse(const uint8_t *data, size_t len, uint32_t host_parts,
                       struct kvm_vm_state_parts *st)
{
    struct state_reader r = state_reader_init(data, len);
    int ret;

    memset(st, 0, sizeof(*st));
    ret = get_part(&r, true, &st->hdr, sizeof(st->hdr), "header");
    if (!ret)
        ret = vm_check_hdr(&st->hdr, host_parts);
    if (!ret)
        ret = get_part(&r, true, st->chips, sizeof(st->chips), "irqchips");
    if (!ret)
        ret = get_part(&r, st->hdr.parts & KVM_VM_HAS_PIT, &st->pit, sizeof(st->pit), "PIT");
    if (!ret)
        ret =
            get_part(&r, st->hdr.parts & KVM_VM_HAS_CLOCK, &st->clock, sizeof(st->clock), "clock");
    if (!ret)
        ret = vm_check_chips(st);
    if (!ret && !state_reader_done(&r)) {
        pr_err("kvm: saved VM state has %zu bytes past its end", r.len - r.off);
        ret = -EINVAL;
    }
    return ret;
}

/* The saved clock value, with no KVM_CLOCK_REALTIME: as with QEMU, the guest's
 * kvmclock stands still while the VM is stopped instead of jumping by the
 * whole outage (which after a snapshot restore could be days) or depending on
 * two hosts' wall clocks agreeing; NTP in the guest fixes the wall time. */
static int vm_set_clock(struct kvm *kvm, const struct kvm_clock_data *saved)
{
    struct kvm_clock_data clock = {.clock = saved->clock};

    return vm_ioctl(kvm, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
}

/* PICs and IOAPIC first, after every LAPIC (the IOAPIC rebuilds its RTC EOI
 * tracking from all of them), then the PIT, whose restarted timer may raise
 * IRQ0 at once into the restored chips, then the clock, after every vCPU's
 * TSC: QEMU likewise sets it when the VM starts. */
static int vm_state_apply(struct kvm *kvm, struct kvm_vm_state_parts *st)
{
    int ret = 0;

    for (int i = 0; !ret && i < KVM_VM_STATE_NCHIPS; i++)
        ret = vm_ioctl(kvm, KVM_SET_IRQCHIP, &st->chips[i], "KVM_SET_IRQCHIP");
    if (!ret && (st->hdr.parts & KVM_VM_HAS_PIT))
        ret = vm_ioctl(kvm, KVM_SET_PIT2, &st->pit, "KVM_SET_PIT2");
    if (!ret && (st->hdr.parts & KVM_VM_HAS_CLOCK))
        ret = vm_set_clock(kvm, &st->clock);
    return ret;
}

int kvm_vm_state_load(struct kvm *kvm, const uint8_t *data, size_t len)
{
    struct kvm_vm_state_parts st;
    int ret = kvm_vm_state_parse(data, len, kvm_vm_state_host_parts(kvm), &st);

    return ret ? ret : vm_state_apply(kvm, &st);
}
