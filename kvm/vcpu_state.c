/* A vCPU's KVM state as one blob, after QEMU's kvm_arch_get/put_registers and
 * Firecracker's save_state/restore_state (see the order notes below).
 *
 * Blob: struct kvm_vcpu_state_hdr, then the parts struct kvm_vcpu_state_parts lists,
 * in its order (vcpu_state.h). Loading parses and checks the whole blob without KVM
 * (kvm_vcpu_state_parse, which the fuzzer drives), then applies it. */
#include "vcpu_state.h"

#include "../common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_IA32_TSC 0x10
#define MSR_MTRRCAP 0xfe
#define MSR_MTRRCAP_FIXED (1u << 8)
#define MSR_MTRR_VAR_BASE0 0x200
#define MSR_MTRR_VAR_MAX 16u
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

/* Guest-writable MSRs QEMU migrates (its kvm_put_msrs) and those vmm sets at
 * boot, in the order they are written back; each is saved when
 * KVM_GET_MSR_INDEX_LIST lists it. The old kvmclock MSRs (0x11, 0x12) are
 * left out: they read and write the same KVM fields as the _NEW ones. */
static const uint32_t listed_msrs[] = {
    MSR_IA32_TSC,
    0x174,      /* SYSENTER_CS */
    0x175,      /* SYSENTER_ESP */
    0x176,      /* SYSENTER_EIP */
    0xc0000081, /* STAR */
    0xc0000082, /* LSTAR */
    0xc0000083, /* CSTAR */
    0xc0000084, /* SYSCALL_MASK (FMASK) */
    0xc0000102, /* KERNEL_GS_BASE */
    0xc0000103, /* TSC_AUX */
    0x277,      /* PAT */
    0x1a0,      /* MISC_ENABLE */
    0x3b,       /* TSC_ADJUST */
    MSR_IA32_TSC_DEADLINE,
    0x48,       /* SPEC_CTRL */
    0x3a,       /* FEATURE_CONTROL */
    0x34,       /* SMI_COUNT */
    0x140,      /* MISC_FEATURES_ENABLES */
    0x17a,      /* MCG_STATUS */
    0x17b,      /* MCG_CTL */
    0x1d9,      /* DEBUGCTL */
    0x1fc,      /* POWER_CTL */
    0xda0,      /* XSS */
    0xe1,       /* UMWAIT_CONTROL */
    0xc0010015, /* K7_HWCR */
    0xc0010117, /* VM_HSAVE_PA */
    0xc001011f, /* VIRT_SPEC_CTRL */
    MSR_KVM_WALL_CLOCK_NEW,
    MSR_KVM_SYSTEM_TIME_NEW,
    0x4b564d06, /* KVM_ASYNC_PF_INT: before ASYNC_PF_EN, which may need it set */
    0x4b564d02, /* KVM_ASYNC_PF_EN */
    0x4b564d03, /* KVM_STEAL_TIME */
    0x4b564d04, /* KVM_PV_EOI_EN */
    0x4b564d05, /* KVM_POLL_CONTROL */
};

/* MTRRs are emulated for every vCPU but never listed by KVM_GET_MSR_INDEX_LIST. */
static const uint32_t fixed_mtrrs[] = {0x250, 0x258, 0x259, 0x268, 0x269, 0x26a,
                                       0x26b, 0x26c, 0x26d, 0x26e, 0x26f};

static int vcpu_ioctl_err(struct kvm_vcpu *vcpu, const char *name)
{
    return kvm_ioctl_failed("vcpu%d: %s", vcpu->index, name);
}

static int vcpu_ioctl(struct kvm_vcpu *vcpu, unsigned long req, void *arg, const char *name)
{
    return ioctl(vcpu->fd, req, arg) < 0 ? vcpu_ioctl_err(vcpu, name) : 0;
}

static bool vcpu_has_cap(struct kvm_vcpu *vcpu, long cap)
{
    return kvm_check_extension(vcpu->kvm, cap) > 0;
}

/* Bytes of this host's XSAVE area; 0 when only KVM_GET/SET_FPU exist. */
static uint32_t vcpu_xsave_size(struct kvm_vcpu *vcpu)
{
    int size = kvm_check_extension(vcpu->kvm, KVM_CAP_XSAVE2);

    if (size >= (int)sizeof(struct kvm_xsave))
        return (uint32_t)size;
    return vcpu_has_cap(vcpu, KVM_CAP_XSAVE) ? sizeof(struct kvm_xsave) : 0;
}

/* The parts this host's KVM can save and load, KVM_VCPU_HAS_XSAVE included. */
static uint32_t vcpu_host_parts(struct kvm_vcpu *vcpu)
{
    uint32_t parts = 0;

    if (vcpu_xsave_size(vcpu))
        parts |= KVM_VCPU_HAS_XSAVE;
    if (vcpu_has_cap(vcpu, KVM_CAP_XCRS))
        parts |= KVM_VCPU_HAS_XCRS;
    if (vcpu_has_cap(vcpu, KVM_CAP_VCPU_EVENTS))
        parts |= KVM_VCPU_HAS_EVENTS;
    if (vcpu_has_cap(vcpu, KVM_CAP_MP_STATE))
        parts |= KVM_VCPU_HAS_MP_STATE;
    if (vcpu_has_cap(vcpu, KVM_CAP_DEBUGREGS))
        parts |= KVM_VCPU_HAS_DEBUGREGS;
    return parts;
}

static int vcpu_state_alloc(struct kvm_vcpu_state_parts *st, uint32_t fpu_size)
{
    st->fpu = calloc(1, fpu_size);
    st->msrs =
        calloc(1, sizeof(*st->msrs) + KVM_VCPU_STATE_MAX_MSRS * sizeof(st->msrs->entries[0]));
    if (!st->fpu || !st->msrs)
        return -ENOMEM;
    return 0;
}

void kvm_vcpu_state_parts_free(struct kvm_vcpu_state_parts *st)
{
    free(st->fpu);
    free(st->msrs);
    st->fpu = NULL;
    st->msrs = NULL;
}

/* ---- which MSRs ---- */

static int vcpu_msr_index_list(struct kvm_vcpu *vcpu, struct kvm_msr_list **out)
{
    struct kvm_msr_list probe = {.nmsrs = 0}, *list;

    /* The first call fails with E2BIG and tells the count. */
    if (ioctl(vcpu->kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return kvm_ioctl_failed("KVM_GET_MSR_INDEX_LIST");
    list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
    if (!list)
        return -ENOMEM;
    list->nmsrs = probe.nmsrs;
    if (ioctl(vcpu->kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        int ret = kvm_ioctl_failed("KVM_GET_MSR_INDEX_LIST");

        free(list);
        return ret;
    }
    *out = list;
    return 0;
}

static bool msr_listed(const struct kvm_msr_list *list, uint32_t index)
{
    for (uint32_t i = 0; i < list->nmsrs; i++)
        if (list->indices[i] == index)
            return true;
    return false;
}

static void msrs_add(struct kvm_msrs *msrs, uint32_t index)
{
    for (uint32_t i = 0; i < msrs->nmsrs; i++)
        if (msrs->entries[i].index == index)
            return;
    if (msrs->nmsrs < KVM_VCPU_STATE_MAX_MSRS)
        msrs->entries[msrs->nmsrs++] = (struct kvm_msr_entry){.index = index};
}

/* Reads one MSR; false when KVM refuses it. */
static bool vcpu_read_msr(struct kvm_vcpu *vcpu, uint32_t index, uint64_t *value)
{
    /* A union, not a struct with kvm_msrs first: its flexible array must end it. */
    union {
        struct kvm_msrs hdr;
        uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } one;

    memset(&one, 0, sizeof(one));
    one.hdr.nmsrs = 1;
    one.hdr.entries[0].index = index;
    if (ioctl(vcpu->fd, KVM_GET_MSRS, &one) != 1)
        return false;
    *value = one.hdr.entries[0].data;
    return true;
}

/* Default type, the fixed ranges and as many variable pairs as MTRRcap counts. */
static void vcpu_add_mtrrs(struct kvm_vcpu *vcpu, struct kvm_msrs *msrs)
{
    uint64_t cap;
    uint32_t nvar;

    if (!vcpu_read_msr(vcpu, MSR_MTRRCAP, &cap))
        return;
    msrs_add(msrs, MSR_MTRR_DEF_TYPE);
    if (cap & MSR_MTRRCAP_FIXED)
        for (size_t i = 0; i < sizeof(fixed_mtrrs) / sizeof(fixed_mtrrs[0]); i++)
            msrs_add(msrs, fixed_mtrrs[i]);
    nvar = (uint32_t)(cap & 0xff);
    if (nvar > MSR_MTRR_VAR_MAX)
        nvar = MSR_MTRR_VAR_MAX;
    for (uint32_t i = 0; i < nvar; i++) {
        msrs_add(msrs, MSR_MTRR_VAR_BASE0 + 2 * i);
        msrs_add(msrs, MSR_MTRR_VAR_BASE0 + 2 * i + 1);
    }
}

static int vcpu_msrs_to_save(struct kvm_vcpu *vcpu, struct kvm_msrs *msrs)
{
    struct kvm_msr_list *list = NULL;
    int ret = vcpu_msr_index_list(vcpu, &list);

    if (ret)
        return ret;
    msrs->nmsrs = 0;
    for (size_t i = 0; i < sizeof(listed_msrs) / sizeof(listed_msrs[0]); i++)
        if (msr_listed(list, listed_msrs[i]))
            msrs_add(msrs, listed_msrs[i]);
    free(list);
    vcpu_add_mtrrs(vcpu, msrs);
    return 0;
}

/* KVM_GET_MSRS stops at the first MSR it refuses: drop that one and read on. */
static int vcpu_get_msrs(struct kvm_vcpu *vcpu, struct kvm_msrs *msrs)
{
    int ret = vcpu_msrs_to_save(vcpu, msrs);

    while (!ret) {
        struct kvm_msr_entry *e = msrs->entries;
        int n = ioctl(vcpu->fd, KVM_GET_MSRS, msrs);

        if (n < 0)
            return vcpu_ioctl_err(vcpu, "KVM_GET_MSRS");
        if ((uint32_t)n == msrs->nmsrs)
            return 0;
        pr_warn("kvm: vcpu%d: KVM_GET_MSRS refused MSR 0x%x: not saved", vcpu->index, e[n].index);
        memmove(&e[n], &e[n + 1], (msrs->nmsrs - n - 1) * sizeof(e[0]));
        msrs->nmsrs--;
    }
    return ret;
}

/* ---- save ---- */

static int vcpu_get_fpu(struct kvm_vcpu *vcpu, struct kvm_vcpu_state_parts *st)
{
    if (!(st->hdr.parts & KVM_VCPU_HAS_XSAVE))
        return vcpu_ioctl(vcpu, KVM_GET_FPU, st->fpu, "KVM_GET_FPU");
    if (vcpu_has_cap(vcpu, KVM_CAP_XSAVE2))
        return vcpu_ioctl(vcpu, KVM_GET_XSAVE2, st->fpu, "KVM_GET_XSAVE2");
    return vcpu_ioctl(vcpu, KVM_GET_XSAVE, st->fpu, "KVM_GET_XSAVE");
}

/* KVM_GET_MP_STATE first: it accepts pending INIT/SIPI, which can change the
 * registers, the LAPIC and the events. KVM_GET_VCPU_EVENTS last, after every
 * other read that might still move state (Firecracker's save order). */
static int vcpu_state_get(struct kvm_vcpu *vcpu, struct kvm_vcpu_state_parts *st)
{
    uint32_t parts = st->hdr.parts;
    int ret = 0;

    if (parts & KVM_VCPU_HAS_MP_STATE)
        ret = vcpu_ioctl(vcpu, KVM_GET_MP_STATE, &st->mp_state, "KVM_GET_MP_STATE");
    if (!ret)
        ret = vcpu_ioctl(vcpu, KVM_GET_REGS, &st->regs, "KVM_GET_REGS");
    if (!ret)
        ret = vcpu_ioctl(vcpu, KVM_GET_SREGS, &st->sregs, "KVM_GET_SREGS");
    if (!ret)
        ret = vcpu_get_fpu(vcpu, st);
    if (!ret && (parts & KVM_VCPU_HAS_XCRS))
        ret = vcpu_ioctl(vcpu, KVM_GET_XCRS, &st->xcrs, "KVM_GET_XCRS");
    if (!ret)
        ret = vcpu_get_msrs(vcpu, st->msrs);
    if (!ret)
        ret = vcpu_ioctl(vcpu, KVM_GET_LAPIC, &st->lapic, "KVM_GET_LAPIC");
    if (!ret && (parts & KVM_VCPU_HAS_DEBUGREGS))
        ret = vcpu_ioctl(vcpu, KVM_GET_DEBUGREGS, &st->debugregs, "KVM_GET_DEBUGREGS");
    if (!ret && (parts & KVM_VCPU_HAS_EVENTS))
        ret = vcpu_ioctl(vcpu, KVM_GET_VCPU_EVENTS, &st->events, "KVM_GET_VCPU_EVENTS");
    st->hdr.nmsrs = st->msrs->nmsrs;
    return ret;
}

static int put_part(struct state_buf *out, bool present, const void *data, size_t len)
{
    return present ? state_buf_put(out, data, len) : 0;
}

int kvm_vcpu_state_put(const struct kvm_vcpu_state_parts *st, struct state_buf *out)
{
    uint32_t parts = st->hdr.parts;
    int ret = state_buf_put(out, &st->hdr, sizeof(st->hdr));

    if (!ret)
        ret = state_buf_put(out, &st->regs, sizeof(st->regs));
    if (!ret)
        ret = state_buf_put(out, &st->sregs, sizeof(st->sregs));
    if (!ret)
        ret = state_buf_put(out, st->fpu, st->hdr.fpu_size);
    if (!ret)
        ret = put_part(out, parts & KVM_VCPU_HAS_XCRS, &st->xcrs, sizeof(st->xcrs));
    if (!ret)
        ret = state_buf_put(out, st->msrs->entries, st->hdr.nmsrs * sizeof(st->msrs->entries[0]));
    if (!ret)
        ret = state_buf_put(out, &st->lapic, sizeof(st->lapic));
    if (!ret)
        ret = put_part(out, parts & KVM_VCPU_HAS_EVENTS, &st->events, sizeof(st->events));
    if (!ret)
        ret = put_part(out, parts & KVM_VCPU_HAS_MP_STATE, &st->mp_state, sizeof(st->mp_state));
    if (!ret)
        ret = put_part(out, parts & KVM_VCPU_HAS_DEBUGREGS, &st->debugregs, sizeof(st->debugregs));
    return ret;
}

int kvm_vcpu_state_save(struct kvm_vcpu *vcpu, struct state_buf *out)
{
    struct kvm_vcpu_state_parts st = {0};
    uint32_t xsave_size = vcpu_xsave_size(vcpu);
    int ret;

    st.hdr = (struct kvm_vcpu_state_hdr){
        .magic = KVM_VCPU_STATE_MAGIC,
        .version = KVM_VCPU_STATE_VERSION,
        .parts = vcpu_host_parts(vcpu),
        .fpu_size = xsave_size ? xsave_size : (uint32_t)sizeof(struct kvm_fpu),
    };
    ret = vcpu_state_alloc(&st, st.hdr.fpu_size);
    if (!ret)
        ret = vcpu_state_get(vcpu, &st);
    if (!ret)
        ret = kvm_vcpu_state_put(&st, out);
    kvm_vcpu_state_parts_free(&st);
    return ret;
}

/* ---- load: parse and check everything, then apply ---- */

static int get_part(struct state_reader *r, int index, bool present, void *out, size_t len,
                    const char *name)
{
    if (!present)
        return 0;
    if (state_get(r, out, len)) {
        pr_err("kvm: vcpu%d: saved state truncated in %s (%zu bytes in all)", index, name, r->len);
        return -EINVAL;
    }
    return 0;
}

/* A part the blob has and this host cannot load is refused; an absent one is fine. */
static int vcpu_check_hdr(const struct kvm_vcpu_state_hdr *h,
                          const struct kvm_vcpu_state_host *host, int i)
{
    uint32_t missing = h->parts & ~host->parts;

    if (h->magic != KVM_VCPU_STATE_MAGIC)
        pr_err("kvm: vcpu%d: saved state is not vCPU state (magic 0x%08x)", i, h->magic);
    else if (h->version != KVM_VCPU_STATE_VERSION)
        pr_err("kvm: vcpu%d: saved state has version %u, expected %u", i, h->version,
               KVM_VCPU_STATE_VERSION);
    else if (h->parts & ~KVM_VCPU_HAS_ALL)
        pr_err("kvm: vcpu%d: saved state has unknown parts 0x%x", i, h->parts & ~KVM_VCPU_HAS_ALL);
    else if (missing)
        pr_err("kvm: vcpu%d: saved state has parts 0x%x this host's KVM lacks", i, missing);
    else if ((h->parts & KVM_VCPU_HAS_XSAVE) && h->fpu_size != host->xsave_size)
        pr_err("kvm: vcpu%d: saved XSAVE area is %u bytes, this host's is %u", i, h->fpu_size,
               host->xsave_size);
    else if (!(h->parts & KVM_VCPU_HAS_XSAVE) && h->fpu_size != sizeof(struct kvm_fpu))
        pr_err("kvm: vcpu%d: saved FPU area is %u bytes, expected %zu", i, h->fpu_size,
               sizeof(struct kvm_fpu));
    else if (h->nmsrs > KVM_VCPU_STATE_MAX_MSRS)
        pr_err("kvm: vcpu%d: saved state has %u MSRs, at most %u", i, h->nmsrs,
               KVM_VCPU_STATE_MAX_MSRS);
    else
        return 0;
    return -EINVAL;
}

static int vcpu_state_parse(struct state_reader *r, int i, struct kvm_vcpu_state_parts *st)
{
    uint32_t parts = st->hdr.parts;
    int ret = get_part(r, i, true, &st->regs, sizeof(st->regs), "registers");

    if (!ret)
        ret = get_part(r, i, true, &st->sregs, sizeof(st->sregs), "special registers");
    if (!ret)
        ret = get_part(r, i, true, st->fpu, st->hdr.fpu_size, "FPU/XSAVE area");
    if (!ret)
        ret = get_part(r, i, parts & KVM_VCPU_HAS_XCRS, &st->xcrs, sizeof(st->xcrs), "XCRs");
    if (!ret)
        ret = get_part(r, i, true, st->msrs->entries, st->hdr.nmsrs * sizeof(st->msrs->entries[0]),
                       "MSRs");
    if (!ret)
        ret = get_part(r, i, true, &st->lapic, sizeof(st->lapic), "LAPIC");
    if (!ret)
        ret =
            get_part(r, i, parts & KVM_VCPU_HAS_EVENTS, &st->events, sizeof(st->events), "events");
    if (!ret)
        ret = get_part(r, i, parts & KVM_VCPU_HAS_MP_STATE, &st->mp_state, sizeof(st->mp_state),
                       "MP state");
    if (!ret)
        ret = get_part(r, i, parts & KVM_VCPU_HAS_DEBUGREGS, &st->debugregs, sizeof(st->debugregs),
                       "debug registers");
    st->msrs->nmsrs = st->hdr.nmsrs;
    return ret;
}

int kvm_vcpu_state_parse(const uint8_t *data, size_t len, const struct kvm_vcpu_state_host *host,
                         int index, struct kvm_vcpu_state_parts *st)
{
    struct state_reader r = state_reader_init(data, len);
    int ret;

    memset(st, 0, sizeof(*st));
    ret = get_part(&r, index, true, &st->hdr, sizeof(st->hdr), "header");
    if (!ret)
        ret = vcpu_check_hdr(&st->hdr, host, index);
    if (!ret)
        ret = vcpu_state_alloc(st, st->hdr.fpu_size);
    if (!ret)
        ret = vcpu_state_parse(&r, index, st);
    if (!ret && st->xcrs.nr_xcrs > KVM_MAX_XCRS) {
        pr_err("kvm: vcpu%d: saved state has %u XCRs, at most %d", index, st->xcrs.nr_xcrs,
               KVM_MAX_XCRS);
        ret = -EINVAL;
    }
    if (!ret && !state_reader_done(&r)) {
        pr_err("kvm: vcpu%d: saved state has %zu bytes past its end", index, r.len - r.off);
        ret = -EINVAL;
    }
    return ret;
}

void kvm_vcpu_state_host(struct kvm_vcpu *vcpu, struct kvm_vcpu_state_host *host)
{
    host->parts = vcpu_host_parts(vcpu);
    host->xsave_size = vcpu_xsave_size(vcpu);
}

/* Moves MSR_IA32_TSC_DEADLINE out of the main list: it must follow the LAPIC. */
static void vcpu_split_deadline(struct kvm_msrs *msrs, struct kvm_msrs *deadline)
{
    deadline->nmsrs = 0;
    for (uint32_t i = 0; i < msrs->nmsrs; i++) {
        if (msrs->entries[i].index != MSR_IA32_TSC_DEADLINE)
            continue;
        deadline->entries[0] = msrs->entries[i];
        deadline->nmsrs = 1;
        msrs->nmsrs--;
        memmove(&msrs->entries[i], &msrs->entries[i + 1],
                (msrs->nmsrs - i) * sizeof(msrs->entries[0]));
        return;
    }
}

/* KVM_SET_MSRS returns how many it set; fewer means it refused one. */
static int vcpu_set_msrs(struct kvm_vcpu *vcpu, struct kvm_msrs *msrs)
{
    int n = msrs->nmsrs ? ioctl(vcpu->fd, KVM_SET_MSRS, msrs) : 0;

    if (n < 0)
        return vcpu_ioctl_err(vcpu, "KVM_SET_MSRS");
    if ((uint32_t)n != msrs->nmsrs) {
        pr_err("kvm: vcpu%d: KVM_SET_MSRS refused saved MSR 0x%x", vcpu->index,
               msrs->entries[n].index);
        return -EINVAL;
    }
    return 0;
}

static int vcpu_set_fpu(struct kvm_vcpu *vcpu, struct kvm_vcpu_state_parts *st)
{
    if (st->hdr.parts & KVM_VCPU_HAS_XSAVE)
        return vcpu_ioctl(vcpu, KVM_SET_XSAVE, st->fpu, "KVM_SET_XSAVE");
    return vcpu_ioctl(vcpu, KVM_SET_FPU, st->fpu, "KVM_SET_FPU");
}

/* Order: QEMU's kvm_arch_put_registers as it was while it still put the LAPIC
 * there (today QEMU puts sregs first, for nested state we do not save, and
 * the LAPIC from its APIC device with the APIC base), and Firecracker's
 * restore_state:
 * - regs before events: KVM_SET_REGS drops a pending exception, which
 *   KVM_SET_VCPU_EVENTS then restores;
 * - xsave, xcrs, then sregs, which carry EFER and the APIC base;
 * - sregs before the LAPIC: KVM_SET_LAPIC applies the current APIC base
 *   (enable, x2APIC mode, ID checks);
 * - MSRs with MSR_IA32_TSC before the TSC deadline, and the deadline after
 *   the LAPIC: KVM ignores it unless LVTT is in TSC-deadline mode, and arms
 *   the timer against the guest TSC (QEMU's kvm_put_tscdeadline_msr);
 * - MP state before events: events carry a latched INIT on top of it;
 * - debug registers last.
 * Writing MSR_IA32_TSC from here sets this vCPU's TSC offset so the guest
 * reads the saved TSC (KVM keeps vCPUs written within a second of each other
 * in sync). kvmclock does not follow from it: on the next entry KVM rewrites
 * the guest's pvclock page (at MSR_KVM_SYSTEM_TIME_NEW) from the VM clock
 * that kvm_vm_state_load() sets, paired with this new TSC. */
static int vcpu_state_apply(struct kvm_vcpu *vcpu, struct kvm_vcpu_state_parts *st)
{
    union {
        struct kvm_msrs hdr;
        uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } deadline;
    uint32_t parts = st->hdr.parts;
    int ret;

    vcpu_split_deadline(st->msrs, &deadline.hdr);
    ret = vcpu_ioctl(vcpu, KVM_SET_REGS, &st->regs, "KVM_SET_REGS");
    if (!ret)
        ret = vcpu_set_fpu(vcpu, st);
    if (!ret && (parts & KVM_VCPU_HAS_XCRS))
        ret = vcpu_ioctl(vcpu, KVM_SET_XCRS, &st->xcrs, "KVM_SET_XCRS");
    if (!ret)
        ret = vcpu_ioctl(vcpu, KVM_SET_SREGS, &st->sregs, "KVM_SET_SREGS");
    if (!ret)
        ret = vcpu_set_msrs(vcpu, st->msrs);
    if (!ret && (parts & KVM_VCPU_HAS_MP_STATE))
        ret = vcpu_ioctl(vcpu, KVM_SET_MP_STATE, &st->mp_state, "KVM_SET_MP_STATE");
    if (!ret)
        ret = vcpu_ioctl(vcpu, KVM_SET_LAPIC, &st->lapic, "KVM_SET_LAPIC");
    if (!ret)
        ret = vcpu_set_msrs(vcpu, &deadline.hdr);
    if (!ret && (parts & KVM_VCPU_HAS_EVENTS))
        ret = vcpu_ioctl(vcpu, KVM_SET_VCPU_EVENTS, &st->events, "KVM_SET_VCPU_EVENTS");
    if (!ret && (parts & KVM_VCPU_HAS_DEBUGREGS))
        ret = vcpu_ioctl(vcpu, KVM_SET_DEBUGREGS, &st->debugregs, "KVM_SET_DEBUGREGS");
    return ret;
}

int kvm_vcpu_state_load(struct kvm_vcpu *vcpu, const uint8_t *data, size_t len)
{
    struct kvm_vcpu_state_host host;
    struct kvm_vcpu_state_parts st;
    int ret;

    kvm_vcpu_state_host(vcpu, &host);
    ret = kvm_vcpu_state_parse(data, len, &host, vcpu->index, &st);

    if (!ret)
        ret = vcpu_state_apply(vcpu, &st);
    kvm_vcpu_state_parts_free(&st);
    return ret;
}
