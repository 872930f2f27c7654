/* kvm_vcpu_state_* and kvm_vm_state_*: distinctive state saved from one VM and
 * loaded into a second comes back the same; malformed blobs are refused with
 * one error line and change nothing. Needs /dev/kvm (fails without it under CI).
 *
 * Each value is checked at three stages, and a failure says which: on the
 * source right after it is set ("source:"), inside the saved blob ("saved
 * blob:"), and on the destination against the blob ("destination:"). Nothing
 * here depends on how long a run takes: the TSC deadline is 60 s ahead (a
 * slow run times out first), and time-moving values are bounded by the time
 * measured while the test ran. */
#include "../../common/log.h"
#include "../../kvm/vcpu_state.h"
#include "../../kvm/vm_state.h"
#include "../../vmm/layout.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define APIC_TASKPRI 0x80
#define APIC_LVTT 0x320
#define LVTT_MODE_MASK (3u << 17)
#define LVTT_TSC_DEADLINE (2u << 17)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define XCR0_X87_SSE 0x3ULL /* the reset value is x87 alone */
#define VECTOR_GP 13

#define TEST_TSC (1ULL << 40)
#define TEST_TSC_PROBE (1ULL << 41) /* KVM ignores a write within 1 s of the last */
#define TSC_SLACK_S 10      /* on top of the ticks measured: a write read back, rate rounding */
#define DEADLINE_AHEAD_S 60 /* the tcase times out before the timer fires */
#define TEST_CLOCK_NS 1000000000000ULL /* 1000 s */
#define CLOCK_SLACK_NS 100000000ULL    /* kvmclock against CLOCK_MONOTONIC: rates, rounding */

/* The vCPU blob header (kvm/vcpu_state.c): magic, version, parts, fpu_size, nmsrs. */
#define HDR_VERSION 4
#define HDR_PARTS 8
#define HDR_FPU_SIZE 12
#define HDR_NMSRS 16
#define HDR_SIZE 24
#define HDR_HAS_XCRS (1u << 1)
#define HDR_HAS_EVENTS (1u << 2)
#define HDR_HAS_MP_STATE (1u << 3)
#define HDR_HAS_DEBUGREGS (1u << 4)
#define BLOB_MAX_MSRS 256

struct test_vm {
    struct kvm kvm;
    struct kvm_vcpu vcpu;
};

/* The parts of a saved vCPU blob the round trip compares, copied out of it. */
struct saved_vcpu {
    uint32_t parts;
    struct kvm_xcrs xcrs;
    uint32_t nmsrs;
    struct kvm_msr_entry msrs[BLOB_MAX_MSRS];
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp_state;
};

static struct test_vm src, dst;
static struct state_buf vcpu_blob, vm_blob;
static struct saved_vcpu saved;

/* What the source was given and reported: whether KVM honoured TSC writes (PVM
 * does not: its guests read the host TSC), the TSC rate, TSC ticks per
 * TSC_SLACK_S, when TEST_TSC was written, the deadline MSR as read just before
 * the save, and when kvmclock was set. */
static bool tsc_writable;
static uint32_t tsc_khz;
static uint64_t tsc_slack, tsc_set_ns, src_deadline, clock_set_ns;

/* Distinctive values for MSRs KVM lists on every x86-64 host. SYSENTER_ESP/EIP
 * keep 32 bits on AMD (kvm_amd drops the upper half for a guest that is not Intel). */
static const struct {
    uint32_t index;
    uint64_t value;
} test_msrs[] = {
    {MSR_IA32_SYSENTER_CS, 0x10},        {MSR_IA32_SYSENTER_ESP, 0x12345000},
    {MSR_IA32_SYSENTER_EIP, 0x81c00000}, {MSR_STAR, 0x0023001000000000ULL},
    {MSR_LSTAR, 0xffffffff81a00000ULL},  {MSR_CSTAR, 0xffffffff81a00100ULL},
    {MSR_SYSCALL_MASK, 0x47700},         {MSR_KERNEL_GS_BASE, 0xffff888012345000ULL},
};

/* Without a usable /dev/kvm: skip with a message, but fail under CI. */
static bool need_kvm(void)
{
    int err;

    if (access("/dev/kvm", R_OK | W_OK) == 0)
        return true;
    err = errno;
    if (getenv("CI"))
        ck_abort_msg("/dev/kvm not usable (%s) and CI is set: KVM state tests cannot run",
                     strerror(err));
    printf("SKIP: /dev/kvm not usable (%s): KVM state tests not run\n", strerror(err));
    return false;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* How far a TSC written at TEST_TSC may have run since: the ticks of the time
 * measured, plus tsc_slack. */
static uint64_t tsc_run_bound(void)
{
    return (now_ns() - tsc_set_ns) * tsc_khz / 1000000 + tsc_slack;
}

/* Sets the vmm's CPUID plus the TSC-deadline timer, so the deadline MSR is live. */
static void vm_setup_cpuid(struct test_vm *vm)
{
    struct kvm_cpuid2 *cpuid;

    ck_assert_int_eq(kvm_get_supported_cpuid(&vm->kvm, &cpuid), 0);
    for (uint32_t i = 0; i < cpuid->nent; i++)
        if (cpuid->entries[i].function == 1)
            cpuid->entries[i].ecx |= CPUID_1_ECX_TSC_DEADLINE;
    ck_assert_int_eq(kvm_vcpu_setup_cpuid(&vm->vcpu, cpuid, 1), 0);
    free(cpuid);
}

/* A VM and one vCPU set up as vmm does at boot (no memory: nothing runs). */
static void vm_new(struct test_vm *vm)
{
    ck_assert_int_eq(kvm_open(&vm->kvm, "/dev/kvm"), 0);
    ck_assert_int_eq(
        kvm_create_irqchip(&vm->kvm, LAYOUT_KVM_TSS_ADDR, LAYOUT_KVM_IDENTITY_MAP_ADDR), 0);
    ck_assert_int_eq(kvm_vcpu_create(&vm->kvm, 0, &vm->vcpu), 0);
    vm_setup_cpuid(vm);
    ck_assert_int_eq(kvm_vcpu_setup_msrs(&vm->vcpu), 0);
    ck_assert_int_eq(kvm_vcpu_setup_lapic(&vm->vcpu), 0);
}

static void vm_free(struct test_vm *vm)
{
    if (vm->vcpu.run)
        kvm_vcpu_destroy(&vm->vcpu);
    if (vm->kvm.sys_fd > 0)
        kvm_close(&vm->kvm);
    memset(vm, 0, sizeof(*vm));
}

static void teardown(void)
{
    vm_free(&src);
    vm_free(&dst);
    state_buf_free(&vcpu_blob);
    state_buf_free(&vm_blob);
}

static void xioctl(int fd, unsigned long req, void *arg, const char *name)
{
    ck_assert_msg(ioctl(fd, req, arg) >= 0, "%s: %s", name, strerror(errno));
}

/* One MSR: a union, since kvm_msrs's flexible array must end any struct. */
union one_msr {
    struct kvm_msrs hdr;
    uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
};

static void set_msr(struct kvm_vcpu *vcpu, uint32_t index, uint64_t value)
{
    union one_msr m;

    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = 1;
    m.hdr.entries[0] = (struct kvm_msr_entry){.index = index, .data = value};
    ck_assert_msg(ioctl(vcpu->fd, KVM_SET_MSRS, &m) == 1, "KVM_SET_MSRS refused MSR %#x", index);
}

static uint64_t get_msr(struct kvm_vcpu *vcpu, uint32_t index)
{
    union one_msr m;

    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = 1;
    m.hdr.entries[0].index = index;
    ck_assert_msg(ioctl(vcpu->fd, KVM_GET_MSRS, &m) == 1, "KVM_GET_MSRS refused MSR %#x", index);
    return m.hdr.entries[0].data;
}

static uint32_t lapic_reg(const struct kvm_lapic_state *s, int off)
{
    uint32_t v;

    memcpy(&v, s->regs + off, sizeof(v));
    return v;
}

static void lapic_set_reg(struct kvm_lapic_state *s, int off, uint32_t v)
{
    memcpy(s->regs + off, &v, sizeof(v));
}

static bool lvtt_in_deadline_mode(const struct kvm_lapic_state *s)
{
    return (lapic_reg(s, APIC_LVTT) & LVTT_MODE_MASK) == LVTT_TSC_DEADLINE;
}

static uint64_t get_xcr0(struct kvm_vcpu *vcpu)
{
    struct kvm_xcrs xcrs;

    xioctl(vcpu->fd, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
    for (uint32_t i = 0; i < xcrs.nr_xcrs; i++)
        if (xcrs.xcrs[i].xcr == 0)
            return xcrs.xcrs[i].value;
    ck_abort_msg("KVM_GET_XCRS has no XCR0 among %u XCRs", xcrs.nr_xcrs);
    return 0;
}

static const uint8_t xmm0_pattern[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                         0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

#define XSAVE_XMM0 160      /* byte offset in the legacy area */
#define XSAVE_XSTATE_BV 512 /* the header's feature bitmap */
#define XFEATURE_SSE (1ULL << 1)

/* Through XSAVE where KVM has it: KVM_SET_FPU leaves XSTATE_BV alone, so XMM
 * written that way reads back as the init state from KVM_GET_XSAVE. */
static void set_xmm0(struct kvm_vcpu *vcpu, const uint8_t value[16])
{
    struct kvm_xsave xsave;
    struct kvm_fpu fpu;
    uint64_t bv;

    if (kvm_check_extension(vcpu->kvm, KVM_CAP_XSAVE) <= 0) {
        xioctl(vcpu->fd, KVM_GET_FPU, &fpu, "KVM_GET_FPU");
        memcpy(fpu.xmm[0], value, 16);
        xioctl(vcpu->fd, KVM_SET_FPU, &fpu, "KVM_SET_FPU");
        return;
    }
    xioctl(vcpu->fd, KVM_GET_XSAVE, &xsave, "KVM_GET_XSAVE");
    memcpy((uint8_t *)xsave.region + XSAVE_XMM0, value, 16);
    memcpy(&bv, (uint8_t *)xsave.region + XSAVE_XSTATE_BV, sizeof(bv));
    bv |= XFEATURE_SSE;
    memcpy((uint8_t *)xsave.region + XSAVE_XSTATE_BV, &bv, sizeof(bv));
    xioctl(vcpu->fd, KVM_SET_XSAVE, &xsave, "KVM_SET_XSAVE");
}

static void get_xmm0(struct kvm_vcpu *vcpu, uint8_t value[16])
{
    struct kvm_xsave xsave;
    struct kvm_fpu fpu;

    if (kvm_check_extension(vcpu->kvm, KVM_CAP_XSAVE) <= 0) {
        xioctl(vcpu->fd, KVM_GET_FPU, &fpu, "KVM_GET_FPU");
        memcpy(value, fpu.xmm[0], 16);
        return;
    }
    xioctl(vcpu->fd, KVM_GET_XSAVE, &xsave, "KVM_GET_XSAVE");
    memcpy(value, (uint8_t *)xsave.region + XSAVE_XMM0, 16);
}

/* ---- the source ---- */

static void src_set_registers(struct kvm_vcpu *vcpu)
{
    struct kvm_regs regs = {.rip = 0x1234567, .rax = 0xdeadbeefcafef00dULL, .rflags = 0x246};
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = XCR0_X87_SSE}}};
    struct kvm_debugregs dbg = {.db = {0x1000}, .dr6 = 0xffff0ff0, .dr7 = 0x401};
    uint64_t xcr0;

    xioctl(vcpu->fd, KVM_SET_REGS, &regs, "KVM_SET_REGS");
    xioctl(vcpu->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    sregs.ds.selector = 0x1234;
    sregs.ds.base = 0x12340;
    xioctl(vcpu->fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    set_xmm0(vcpu, xmm0_pattern);
    xioctl(vcpu->fd, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
    xcr0 = get_xcr0(vcpu);
    ck_assert_msg(xcr0 == XCR0_X87_SSE, "source: XCR0 reads %#llx after setting %#llx",
                  (unsigned long long)xcr0, XCR0_X87_SSE);
    xioctl(vcpu->fd, KVM_SET_DEBUGREGS, &dbg, "KVM_SET_DEBUGREGS");
}

static void src_set_msrs(struct kvm_vcpu *vcpu)
{
    for (size_t i = 0; i < sizeof(test_msrs) / sizeof(test_msrs[0]); i++) {
        uint64_t v;

        set_msr(vcpu, test_msrs[i].index, test_msrs[i].value);
        v = get_msr(vcpu, test_msrs[i].index);
        ck_assert_msg(v == test_msrs[i].value, "source: MSR %#x reads %#llx after writing %#llx",
                      test_msrs[i].index, (unsigned long long)v,
                      (unsigned long long)test_msrs[i].value);
    }
}

/* True when MSR_IA32_TSC reads back within tsc_slack after the write of value. */
static bool tsc_write_took(struct kvm_vcpu *vcpu, uint64_t value)
{
    set_msr(vcpu, MSR_IA32_TSC, value);
    return get_msr(vcpu, MSR_IA32_TSC) - value < tsc_slack;
}

/* Whether KVM honours TSC writes, from two writes far apart read back: a TSC
 * that ignores them may sit near one value at some uptime, never near both.
 * Leaves the TSC at TEST_TSC where they take. PVM ignores them, yet still books
 * the offset: after one that moved the TSC ahead, the deadline MSR read back
 * short by as much (kvm_pvm, Linux 6.18); writing back the TSC it reports
 * (never ahead of itself) clears that. */
static bool src_probe_tsc(struct kvm_vcpu *vcpu)
{
    bool took_probe = tsc_write_took(vcpu, TEST_TSC_PROBE);
    bool took_test;

    tsc_set_ns = now_ns();
    took_test = tsc_write_took(vcpu, TEST_TSC);

    if (took_probe && took_test)
        return true;
    set_msr(vcpu, MSR_IA32_TSC, get_msr(vcpu, MSR_IA32_TSC));
    return false;
}

/* LVTT in TSC-deadline mode first (KVM ignores the MSR otherwise), then a
 * deadline DEADLINE_AHEAD_S out by this vCPU's TSC rate: short enough that
 * KVM's conversion to ns cannot overflow and arm the timer somewhere else. */
static void src_arm_deadline(struct kvm_vcpu *vcpu)
{
    struct kvm_lapic_state lapic;
    uint64_t deadline, v;

    xioctl(vcpu->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    lapic_set_reg(&lapic, APIC_TASKPRI, 0x20);
    lapic_set_reg(&lapic, APIC_LVTT, LVTT_TSC_DEADLINE | 0xec);
    xioctl(vcpu->fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
    deadline = get_msr(vcpu, MSR_IA32_TSC) + (uint64_t)tsc_khz * 1000 * DEADLINE_AHEAD_S;
    set_msr(vcpu, MSR_IA32_TSC_DEADLINE, deadline);
    v = get_msr(vcpu, MSR_IA32_TSC_DEADLINE);
    ck_assert_msg(v == deadline, "source: TSC deadline MSR reads %llu right after writing %llu",
                  (unsigned long long)v, (unsigned long long)deadline);
}

static void src_set_mp_state(struct kvm_vcpu *vcpu)
{
    struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_HALTED};

    xioctl(vcpu->fd, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE");
    xioctl(vcpu->fd, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
    ck_assert_msg(mp.mp_state == KVM_MP_STATE_HALTED, "source: MP state %u after setting HALTED",
                  mp.mp_state);
}

/* An injected #GP with its error code and a pending, masked NMI: what a vCPU
 * paused in the middle of delivering them holds. Set last, as the restore
 * does: KVM_SET_REGS drops a pending exception. */
static void src_set_events(struct kvm_vcpu *vcpu)
{
    struct kvm_vcpu_events events;

    xioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS");
    events.exception.injected = 1;
    events.exception.nr = VECTOR_GP;
    events.exception.has_error_code = 1;
    events.exception.error_code = 0x1234;
    events.nmi.pending = 1;
    events.nmi.masked = 1;
    events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
    xioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS");
}

/* Registers, a segment, XMM0, XCR0, debug registers, MSRs, the TSC, LAPIC with
 * an armed TSC deadline, MP state and pending events. */
static void src_set_distinctive(struct kvm_vcpu *vcpu)
{
    int khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ);

    ck_assert_msg(khz > 0, "KVM_GET_TSC_KHZ: %s", strerror(errno));
    tsc_khz = (uint32_t)khz;
    tsc_slack = (uint64_t)tsc_khz * 1000 * TSC_SLACK_S;
    src_set_registers(vcpu);
    src_set_msrs(vcpu);
    tsc_writable = src_probe_tsc(vcpu);
    src_arm_deadline(vcpu);
    src_set_mp_state(vcpu);
    src_set_events(vcpu);
}

static void src_vm_set_distinctive(struct kvm *kvm)
{
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock = {.clock = TEST_CLOCK_NS};
    struct kvm_irqchip pic = {.chip_id = KVM_IRQCHIP_PIC_MASTER};

    xioctl(kvm->vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
    pit.channels[0].count = 0x1234;
    pit.channels[0].mode = 2;
    xioctl(kvm->vm_fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2");
    xioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &pic, "KVM_GET_IRQCHIP");
    pic.chip.pic.imr = 0xa5;
    pic.chip.pic.irq_base = 0x20;
    xioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &pic, "KVM_SET_IRQCHIP");
    clock_set_ns = now_ns();
    xioctl(kvm->vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
}

/* ---- the saved blob ---- */

static void blob_get(struct state_reader *r, void *out, size_t len, const char *what)
{
    ck_assert_msg(state_get(r, out, len) == 0, "saved blob: ends before its %s (%zu bytes)", what,
                  r->len);
}

/* Walks the vCPU blob as kvm/vcpu_state.c lays it out (its header comment),
 * copying out what the round trip compares; the walk must end on its last byte. */
static void saved_vcpu_parse(const struct state_buf *blob, struct saved_vcpu *s)
{
    struct state_reader r = state_reader_init(blob->data, blob->len);
    uint32_t fpu_size;

    memset(s, 0, sizeof(*s));
    ck_assert_uint_ge(blob->len, HDR_SIZE);
    memcpy(&s->parts, blob->data + HDR_PARTS, sizeof(s->parts));
    memcpy(&fpu_size, blob->data + HDR_FPU_SIZE, sizeof(fpu_size));
    memcpy(&s->nmsrs, blob->data + HDR_NMSRS, sizeof(s->nmsrs));
    ck_assert_uint_le(s->nmsrs, BLOB_MAX_MSRS);
    r.off = HDR_SIZE + sizeof(struct kvm_regs) + sizeof(struct kvm_sregs) + fpu_size;
    if (s->parts & HDR_HAS_XCRS)
        blob_get(&r, &s->xcrs, sizeof(s->xcrs), "XCRs");
    blob_get(&r, s->msrs, s->nmsrs * sizeof(s->msrs[0]), "MSRs");
    blob_get(&r, &s->lapic, sizeof(s->lapic), "LAPIC");
    if (s->parts & HDR_HAS_EVENTS)
        blob_get(&r, &s->events, sizeof(s->events), "events");
    if (s->parts & HDR_HAS_MP_STATE)
        blob_get(&r, &s->mp_state, sizeof(s->mp_state), "MP state");
    if (s->parts & HDR_HAS_DEBUGREGS)
        r.off += sizeof(struct kvm_debugregs);
    ck_assert_msg(r.off == r.len, "saved blob: %zu bytes, its parts add up to %zu", r.len, r.off);
}

static bool saved_msr(const struct saved_vcpu *s, uint32_t index, uint64_t *value)
{
    for (uint32_t i = 0; i < s->nmsrs; i++) {
        if (s->msrs[i].index == index) {
            *value = s->msrs[i].data;
            return true;
        }
    }
    return false;
}

static uint64_t saved_msr_or_fail(const struct saved_vcpu *s, uint32_t index)
{
    uint64_t v = 0;

    ck_assert_msg(saved_msr(s, index, &v), "saved blob: MSR %#x is not among its %u MSRs", index,
                  s->nmsrs);
    return v;
}

static uint64_t saved_xcr0(const struct saved_vcpu *s)
{
    for (uint32_t i = 0; i < s->xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
        if (s->xcrs.xcrs[i].xcr == 0)
            return s->xcrs.xcrs[i].value;
    ck_abort_msg("saved blob: no XCR0 among its %u XCRs", s->xcrs.nr_xcrs);
    return 0;
}

static void check_saved_msrs(const struct saved_vcpu *s)
{
    uint64_t tsc = saved_msr_or_fail(s, MSR_IA32_TSC);
    uint64_t deadline = saved_msr_or_fail(s, MSR_IA32_TSC_DEADLINE);

    for (size_t i = 0; i < sizeof(test_msrs) / sizeof(test_msrs[0]); i++) {
        uint64_t v = saved_msr_or_fail(s, test_msrs[i].index);

        ck_assert_msg(v == test_msrs[i].value, "saved blob: MSR %#x is %#llx, the source had %#llx",
                      test_msrs[i].index, (unsigned long long)v,
                      (unsigned long long)test_msrs[i].value);
    }
    if (tsc_writable)
        ck_assert_msg(tsc - TEST_TSC < tsc_run_bound(),
                      "saved blob: TSC %llu, the source's was set to %llu", (unsigned long long)tsc,
                      TEST_TSC);
    ck_assert_msg(deadline == src_deadline,
                  "saved blob: TSC deadline %llu, the source read %llu just before the save",
                  (unsigned long long)deadline, (unsigned long long)src_deadline);
}

/* What the source was given is in the blob: a loss here is the save's. */
static void check_saved(const struct saved_vcpu *s)
{
    const struct kvm_vcpu_events *ev = &s->events;
    uint64_t xcr0;

    ck_assert_msg((s->parts & (HDR_HAS_XCRS | HDR_HAS_EVENTS | HDR_HAS_MP_STATE)) ==
                      (HDR_HAS_XCRS | HDR_HAS_EVENTS | HDR_HAS_MP_STATE),
                  "saved blob: parts %#x lack XCRs, events or MP state", s->parts);
    xcr0 = saved_xcr0(s);
    ck_assert_msg(xcr0 == XCR0_X87_SSE, "saved blob: XCR0 %#llx, the source had %#llx",
                  (unsigned long long)xcr0, XCR0_X87_SSE);
    check_saved_msrs(s);
    ck_assert_msg(lvtt_in_deadline_mode(&s->lapic), "saved blob: LVTT %#x not in TSC-deadline mode",
                  lapic_reg(&s->lapic, APIC_LVTT));
    ck_assert_msg(s->mp_state.mp_state == KVM_MP_STATE_HALTED,
                  "saved blob: MP state %u, the source was HALTED", s->mp_state.mp_state);
    ck_assert_msg(ev->exception.injected && ev->exception.nr == VECTOR_GP &&
                      ev->exception.has_error_code && ev->exception.error_code == 0x1234,
                  "saved blob: exception injected %u vector %u error code %u/%#x, the source had "
                  "an injected #GP with error code 0x1234",
                  ev->exception.injected, ev->exception.nr, ev->exception.has_error_code,
                  ev->exception.error_code);
    ck_assert_msg(ev->nmi.pending && ev->nmi.masked,
                  "saved blob: NMI pending %u masked %u, the source had both", ev->nmi.pending,
                  ev->nmi.masked);
}

/* ---- the destination, against the blob ---- */

/* The deadline only after LVTT: KVM reads the MSR as 0 unless LVTT is in
 * TSC-deadline mode, so a lost LAPIC would look like a lost deadline. */
static void check_restored_deadline(struct kvm_vcpu *vcpu, const struct saved_vcpu *s,
                                    uint64_t saved_deadline)
{
    struct kvm_lapic_state lapic;
    uint64_t v;

    xioctl(vcpu->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    ck_assert_msg(lvtt_in_deadline_mode(&lapic),
                  "destination: LVTT %#x not in TSC-deadline mode (saved %#x)",
                  lapic_reg(&lapic, APIC_LVTT), lapic_reg(&s->lapic, APIC_LVTT));
    v = get_msr(vcpu, MSR_IA32_TSC_DEADLINE);
    ck_assert_msg(v == saved_deadline,
                  "destination: TSC deadline MSR %llu, saved %llu (0: never armed, or restored "
                  "before the LAPIC)",
                  (unsigned long long)v, (unsigned long long)saved_deadline);
}

/* The TSC ran on from the saved value; where KVM honours TSC writes it must be
 * near it, not the destination's own. */
static void check_restored_tsc(struct kvm_vcpu *vcpu, uint64_t saved_tsc)
{
    uint64_t tsc = get_msr(vcpu, MSR_IA32_TSC);

    ck_assert_msg(tsc >= saved_tsc, "destination: TSC %llu, behind the saved %llu",
                  (unsigned long long)tsc, (unsigned long long)saved_tsc);
    if (tsc_writable)
        ck_assert_msg(tsc - saved_tsc < tsc_run_bound(),
                      "destination: TSC %llu, further past the saved %llu than the test ran",
                      (unsigned long long)tsc, (unsigned long long)saved_tsc);
    else
        printf("this KVM ignores TSC writes (PVM): TSC restore not compared\n");
    printf("vCPU state: TSC %llu after restore (saved %llu)\n", (unsigned long long)tsc,
           (unsigned long long)saved_tsc);
}

/* Every MSR the blob holds reads back as saved; the TSC moves, the deadline
 * needs its LAPIC check. */
static void check_restored_msrs(struct kvm_vcpu *vcpu, const struct saved_vcpu *s)
{
    for (uint32_t i = 0; i < s->nmsrs; i++) {
        const struct kvm_msr_entry *e = &s->msrs[i];
        uint64_t v;

        if (e->index == MSR_IA32_TSC) {
            check_restored_tsc(vcpu, e->data);
            continue;
        }
        if (e->index == MSR_IA32_TSC_DEADLINE) {
            check_restored_deadline(vcpu, s, e->data);
            continue;
        }
        v = get_msr(vcpu, e->index);
        ck_assert_msg(v == e->data, "destination: MSR %#x reads %#llx, saved %#llx", e->index,
                      (unsigned long long)v, (unsigned long long)e->data);
    }
    printf("vCPU state: %u saved MSRs compared after restore\n", s->nmsrs);
}

static void check_restored_events(struct kvm_vcpu *vcpu, const struct saved_vcpu *s)
{
    struct kvm_vcpu_events ev;
    struct kvm_mp_state mp;

    xioctl(vcpu->fd, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
    ck_assert_msg(mp.mp_state == s->mp_state.mp_state, "destination: MP state %u, saved %u",
                  mp.mp_state, s->mp_state.mp_state);
    xioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS");
    ck_assert_msg(ev.exception.injected == s->events.exception.injected &&
                      ev.exception.nr == s->events.exception.nr &&
                      ev.exception.error_code == s->events.exception.error_code,
                  "destination: exception injected %u vector %u error code %#x, saved %u %u %#x",
                  ev.exception.injected, ev.exception.nr, ev.exception.error_code,
                  s->events.exception.injected, s->events.exception.nr,
                  s->events.exception.error_code);
    ck_assert_msg(ev.nmi.pending == s->events.nmi.pending && ev.nmi.masked == s->events.nmi.masked,
                  "destination: NMI pending %u masked %u, saved %u %u", ev.nmi.pending,
                  ev.nmi.masked, s->events.nmi.pending, s->events.nmi.masked);
    ck_assert_msg(memcmp(&ev, &s->events, sizeof(ev)) == 0,
                  "destination: vCPU events differ from the saved ones beyond exception and NMI");
}

static void check_vcpu_restored(struct kvm_vcpu *vcpu, const struct saved_vcpu *s)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint8_t xmm0[16];
    struct kvm_lapic_state lapic;
    struct kvm_debugregs dbg;
    uint64_t xcr0 = get_xcr0(vcpu);

    xioctl(vcpu->fd, KVM_GET_REGS, &regs, "KVM_GET_REGS");
    ck_assert_uint_eq(regs.rip, 0x1234567);
    ck_assert_uint_eq(regs.rax, 0xdeadbeefcafef00dULL);
    ck_assert_uint_eq(regs.rflags, 0x246);
    xioctl(vcpu->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    ck_assert_uint_eq(sregs.ds.selector, 0x1234);
    ck_assert_uint_eq(sregs.ds.base, 0x12340);
    get_xmm0(vcpu, xmm0);
    ck_assert_mem_eq(xmm0, xmm0_pattern, sizeof(xmm0_pattern));
    ck_assert_msg(xcr0 == saved_xcr0(s), "destination: XCR0 %#llx, saved %#llx",
                  (unsigned long long)xcr0, (unsigned long long)saved_xcr0(s));
    check_restored_msrs(vcpu, s);
    xioctl(vcpu->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    ck_assert_uint_eq(lapic_reg(&lapic, APIC_TASKPRI), 0x20);
    ck_assert_uint_eq(lapic_reg(&lapic, APIC_LVTT), lapic_reg(&s->lapic, APIC_LVTT));
    check_restored_events(vcpu, s);
    xioctl(vcpu->fd, KVM_GET_DEBUGREGS, &dbg, "KVM_GET_DEBUGREGS");
    ck_assert_uint_eq(dbg.db[0], 0x1000);
    ck_assert_uint_eq(dbg.dr7, 0x401);
}

/* kvmclock stood still from save to load and ran on since: it is past the
 * source's value by no more than the time this test has taken since setting it. */
static void check_vm_restored(struct kvm *kvm)
{
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock = {0};
    struct kvm_irqchip pic = {.chip_id = KVM_IRQCHIP_PIC_MASTER};
    uint64_t elapsed;

    xioctl(kvm->vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
    ck_assert_uint_eq(pit.channels[0].count, 0x1234);
    ck_assert_uint_eq(pit.channels[0].mode, 2);
    xioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &pic, "KVM_GET_IRQCHIP");
    ck_assert_uint_eq(pic.chip.pic.imr, 0xa5);
    ck_assert_uint_eq(pic.chip.pic.irq_base, 0x20);
    xioctl(kvm->vm_fd, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK");
    elapsed = now_ns() - clock_set_ns;
    ck_assert_msg(clock.clock >= TEST_CLOCK_NS,
                  "destination: kvmclock %llu ns, behind the %llu set",
                  (unsigned long long)clock.clock, TEST_CLOCK_NS);
    ck_assert_msg(clock.clock - TEST_CLOCK_NS <= elapsed + CLOCK_SLACK_NS,
                  "destination: kvmclock %llu ns, more than the %llu ns elapsed past the %llu set",
                  (unsigned long long)clock.clock, (unsigned long long)elapsed, TEST_CLOCK_NS);
    printf("VM state: kvmclock %llu ns after restore (set %llu, %llu ns ago)\n",
           (unsigned long long)clock.clock, TEST_CLOCK_NS, (unsigned long long)elapsed);
}

/* A source VM with distinctive state, saved into both blobs, and an empty destination. */
static bool setup_saved(void)
{
    if (!need_kvm())
        return false;
    vm_new(&src);
    src_set_distinctive(&src.vcpu);
    src_vm_set_distinctive(&src.kvm);
    src_deadline = get_msr(&src.vcpu, MSR_IA32_TSC_DEADLINE);
    ck_assert_int_eq(kvm_vcpu_state_save(&src.vcpu, &vcpu_blob), 0);
    ck_assert_int_eq(kvm_vm_state_save(&src.kvm, &vm_blob), 0);
    vm_new(&dst);
    return true;
}

START_TEST(state_moves_to_a_second_vm)
{
    if (!setup_saved())
        return;
    saved_vcpu_parse(&vcpu_blob, &saved);
    printf("vCPU blob %zu bytes (%u MSRs), VM blob %zu bytes\n", vcpu_blob.len, saved.nmsrs,
           vm_blob.len);
    check_saved(&saved);
    ck_assert_int_eq(kvm_vcpu_state_load(&dst.vcpu, vcpu_blob.data, vcpu_blob.len), 0);
    ck_assert_int_eq(kvm_vm_state_load(&dst.kvm, vm_blob.data, vm_blob.len), 0);
    check_vcpu_restored(&dst.vcpu, &saved);
    check_vm_restored(&dst.kvm);
}
END_TEST

/* ---- malformed blobs ---- */

static FILE *captured;
static int saved_stderr = -1;

static void capture_stderr(void)
{
    fflush(stderr);
    captured = tmpfile();
    ck_assert_ptr_nonnull(captured);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(fileno(captured), STDERR_FILENO), 0);
}

/* Restores stderr and returns what was written meanwhile (static buffer). */
static const char *end_capture(void)
{
    static char text[4096];
    size_t n;

    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    rewind(captured);
    n = fread(text, 1, sizeof(text) - 1, captured);
    text[n] = '\0';
    fclose(captured);
    return text;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Loads a copy of the vCPU blob with a 32-bit field replaced; expects one error line. */
static void expect_vcpu_refused(size_t off, uint32_t value, const char *what)
{
    uint8_t *copy = malloc(vcpu_blob.len);
    const char *err;
    int ret;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, vcpu_blob.data, vcpu_blob.len);
    memcpy(copy + off, &value, sizeof(value));
    capture_stderr();
    ret = kvm_vcpu_state_load(&dst.vcpu, copy, vcpu_blob.len);
    err = end_capture();
    free(copy);
    ck_assert_int_eq(ret, -EINVAL);
    ck_assert_msg(strstr(err, what), "error for %s does not say so: %s", what, err);
    ck_assert_uint_eq(count_lines(err), 1);
    printf("refused: %s", err);
}

static void check_dst_untouched(void)
{
    struct kvm_regs regs;

    xioctl(dst.vcpu.fd, KVM_GET_REGS, &regs, "KVM_GET_REGS");
    ck_assert_uint_eq(regs.rip, 0xfff0); /* the reset value, not the saved one */
    ck_assert_uint_ne(get_msr(&dst.vcpu, MSR_LSTAR), 0xffffffff81a00000ULL);
}

START_TEST(vcpu_blob_truncated_anywhere_is_refused)
{
    uint8_t *longer;

    if (!setup_saved())
        return;
    capture_stderr();
    for (size_t len = 0; len < vcpu_blob.len; len++)
        ck_assert_int_eq(kvm_vcpu_state_load(&dst.vcpu, vcpu_blob.data, len), -EINVAL);
    end_capture();
    longer = calloc(1, vcpu_blob.len + 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, vcpu_blob.data, vcpu_blob.len);
    ck_assert_int_eq(kvm_vcpu_state_load(&dst.vcpu, longer, vcpu_blob.len + 1), -EINVAL);
    free(longer);
    check_dst_untouched();
    printf("vCPU blob refused at all %zu shorter lengths and one longer\n", vcpu_blob.len);
}
END_TEST

START_TEST(vcpu_blob_with_bad_header_is_refused)
{
    uint32_t fpu_size;

    if (!setup_saved())
        return;
    memcpy(&fpu_size, vcpu_blob.data + HDR_FPU_SIZE, sizeof(fpu_size));
    expect_vcpu_refused(0, 0x12345678, "magic");
    expect_vcpu_refused(HDR_VERSION, 99, "version 99");
    expect_vcpu_refused(HDR_PARTS, 1u << 31, "unknown parts");
    expect_vcpu_refused(HDR_FPU_SIZE, fpu_size + 64, "bytes, this host's is");
    expect_vcpu_refused(HDR_NMSRS, 100000, "100000 MSRs");
    check_dst_untouched();
}
END_TEST

/* A part the source's KVM lacked is recorded as absent and the rest still loads. */
START_TEST(vcpu_blob_without_an_optional_part_loads)
{
    uint32_t parts;
    struct kvm_debugregs dbg;

    if (!setup_saved())
        return;
    /* The debug registers are the last part: drop them and their bit. */
    memcpy(&parts, vcpu_blob.data + HDR_PARTS, sizeof(parts));
    ck_assert_uint_ne(parts & HDR_HAS_DEBUGREGS, 0);
    parts &= ~HDR_HAS_DEBUGREGS;
    memcpy(vcpu_blob.data + HDR_PARTS, &parts, sizeof(parts));
    ck_assert_int_eq(kvm_vcpu_state_load(&dst.vcpu, vcpu_blob.data, vcpu_blob.len - sizeof(dbg)),
                     0);
    xioctl(dst.vcpu.fd, KVM_GET_DEBUGREGS, &dbg, "KVM_GET_DEBUGREGS");
    ck_assert_uint_eq(dbg.db[0], 0); /* untouched */
    ck_assert_uint_eq(get_msr(&dst.vcpu, MSR_LSTAR), 0xffffffff81a00000ULL);
}
END_TEST

START_TEST(vm_blob_truncated_or_foreign_is_refused)
{
    uint8_t *copy;
    uint32_t version = 2;

    if (!setup_saved())
        return;
    capture_stderr();
    for (size_t len = 0; len < vm_blob.len; len++)
        ck_assert_int_eq(kvm_vm_state_load(&dst.kvm, vm_blob.data, len), -EINVAL);
    end_capture();
    copy = malloc(vm_blob.len);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, vm_blob.data, vm_blob.len);
    memcpy(copy + 4, &version, sizeof(version));
    ck_assert_int_eq(kvm_vm_state_load(&dst.kvm, copy, vm_blob.len), -EINVAL);
    memcpy(copy, vcpu_blob.data, 8); /* a vCPU blob's magic and version */
    ck_assert_int_eq(kvm_vm_state_load(&dst.kvm, copy, vm_blob.len), -EINVAL);
    /* The vCPU loader refuses a VM blob too. */
    ck_assert_int_eq(kvm_vcpu_state_load(&dst.vcpu, vm_blob.data, vm_blob.len), -EINVAL);
    free(copy);
    printf("VM blob refused at all %zu shorter lengths, another version and magic\n", vm_blob.len);
}
END_TEST

static Suite *kvm_state_suite(void)
{
    Suite *s = suite_create("kvm_state");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, state_moves_to_a_second_vm);
    tcase_add_test(tc, vcpu_blob_truncated_anywhere_is_refused);
    tcase_add_test(tc, vcpu_blob_with_bad_header_is_refused);
    tcase_add_test(tc, vcpu_blob_without_an_optional_part_loads);
    tcase_add_test(tc, vm_blob_truncated_or_foreign_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(kvm_state_suite)
