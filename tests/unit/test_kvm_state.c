/* kvm_vcpu_state_* and kvm_vm_state_*: distinctive state saved from one VM and
 * loaded into a second comes back the same; malformed blobs are refused with
 * one error line and change nothing. Needs /dev/kvm (fails without it under CI). */
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
#include <unistd.h>

#define MSR_IA32_TSC 0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_LSTAR 0xc0000082
#define MSR_KERNEL_GS_BASE 0xc0000102
#define APIC_TASKPRI 0x80
#define APIC_LVTT 0x320
#define LVTT_TSC_DEADLINE (2u << 17)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

#define TEST_TSC (1ULL << 40)
#define TEST_CLOCK_NS 1000000000000ULL /* 1000 s */
#define SLACK_NS 60000000000ULL        /* what a slow run may add between save and load */

/* The vCPU blob header (kvm/vcpu_state.c): magic, version, parts, fpu_size, nmsrs. */
#define HDR_VERSION 4
#define HDR_PARTS 8
#define HDR_FPU_SIZE 12
#define HDR_NMSRS 16
#define HDR_HAS_DEBUGREGS (1u << 4)

struct test_vm {
    struct kvm kvm;
    struct kvm_vcpu vcpu;
};

static struct test_vm src, dst;
static struct state_buf vcpu_blob, vm_blob;

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
    ck_assert_int_eq(ioctl(vcpu->fd, KVM_SET_MSRS, &m), 1);
}

static uint64_t get_msr(struct kvm_vcpu *vcpu, uint32_t index)
{
    union one_msr m;

    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = 1;
    m.hdr.entries[0].index = index;
    ck_assert_int_eq(ioctl(vcpu->fd, KVM_GET_MSRS, &m), 1);
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

/* The source's TSC once written, whether KVM honoured the write (PVM does not:
 * its guests read the host TSC), and the TSC deadline armed after it. */
static uint64_t src_tsc, deadline;
static bool tsc_writable;

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

/* Registers, a segment, MSRs, the FPU, LAPIC, events and debug registers. */
static void vcpu_set_distinctive(struct kvm_vcpu *vcpu)
{
    struct kvm_regs regs = {.rip = 0x1234567, .rax = 0xdeadbeefcafef00dULL, .rflags = 0x246};
    struct kvm_sregs sregs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_debugregs dbg = {.db = {0x1000}, .dr6 = 0xffff0ff0, .dr7 = 0x401};

    xioctl(vcpu->fd, KVM_SET_REGS, &regs, "KVM_SET_REGS");
    xioctl(vcpu->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    sregs.ds.selector = 0x1234;
    sregs.ds.base = 0x12340;
    xioctl(vcpu->fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    set_xmm0(vcpu, xmm0_pattern);
    set_msr(vcpu, MSR_LSTAR, 0xffffffff81a00000ULL);
    set_msr(vcpu, MSR_KERNEL_GS_BASE, 0xffff888012345000ULL);
    set_msr(vcpu, MSR_IA32_TSC, TEST_TSC);
    src_tsc = get_msr(vcpu, MSR_IA32_TSC);
    tsc_writable = src_tsc >= TEST_TSC && src_tsc < TEST_TSC + SLACK_NS * 10;
    deadline = src_tsc + (1ULL << 50); /* days away: never fires */
    xioctl(vcpu->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    lapic_set_reg(&lapic, APIC_TASKPRI, 0x20);
    lapic_set_reg(&lapic, APIC_LVTT, LVTT_TSC_DEADLINE | 0xec);
    xioctl(vcpu->fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
    set_msr(vcpu, MSR_IA32_TSC_DEADLINE, deadline);
    xioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS");
    events.nmi.masked = 1;
    xioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS");
    xioctl(vcpu->fd, KVM_SET_DEBUGREGS, &dbg, "KVM_SET_DEBUGREGS");
}

static void vm_set_distinctive(struct kvm *kvm)
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
    xioctl(kvm->vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK");
}

static void check_vcpu_restored(struct kvm_vcpu *vcpu)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint8_t xmm0[16];
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_debugregs dbg;
    uint64_t tsc = get_msr(vcpu, MSR_IA32_TSC);

    xioctl(vcpu->fd, KVM_GET_REGS, &regs, "KVM_GET_REGS");
    ck_assert_uint_eq(regs.rip, 0x1234567);
    ck_assert_uint_eq(regs.rax, 0xdeadbeefcafef00dULL);
    ck_assert_uint_eq(regs.rflags, 0x246);
    xioctl(vcpu->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    ck_assert_uint_eq(sregs.ds.selector, 0x1234);
    ck_assert_uint_eq(sregs.ds.base, 0x12340);
    get_xmm0(vcpu, xmm0);
    ck_assert_mem_eq(xmm0, xmm0_pattern, sizeof(xmm0_pattern));
    ck_assert_uint_eq(get_msr(vcpu, MSR_LSTAR), 0xffffffff81a00000ULL);
    ck_assert_uint_eq(get_msr(vcpu, MSR_KERNEL_GS_BASE), 0xffff888012345000ULL);
    /* The TSC went on from the saved value; the deadline needed the LAPIC first. */
    ck_assert_uint_ge(tsc, src_tsc);
    if (tsc_writable)
        ck_assert_uint_lt(tsc, TEST_TSC + SLACK_NS * 10); /* even at 10 GHz */
    else
        printf("this KVM ignores TSC writes (PVM): TSC restore not compared\n");
    ck_assert_uint_eq(get_msr(vcpu, MSR_IA32_TSC_DEADLINE), deadline);
    xioctl(vcpu->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    ck_assert_uint_eq(lapic_reg(&lapic, APIC_TASKPRI), 0x20);
    ck_assert_uint_eq(lapic_reg(&lapic, APIC_LVTT), LVTT_TSC_DEADLINE | 0xec);
    xioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS");
    ck_assert_uint_eq(events.nmi.masked, 1);
    xioctl(vcpu->fd, KVM_GET_DEBUGREGS, &dbg, "KVM_GET_DEBUGREGS");
    ck_assert_uint_eq(dbg.db[0], 0x1000);
    ck_assert_uint_eq(dbg.dr7, 0x401);
    printf("vCPU state: TSC %#llx after restore (saved %#llx)\n", (unsigned long long)tsc,
           (unsigned long long)src_tsc);
}

static void check_vm_restored(struct kvm *kvm)
{
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock = {0};
    struct kvm_irqchip pic = {.chip_id = KVM_IRQCHIP_PIC_MASTER};

    xioctl(kvm->vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
    ck_assert_uint_eq(pit.channels[0].count, 0x1234);
    ck_assert_uint_eq(pit.channels[0].mode, 2);
    xioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &pic, "KVM_GET_IRQCHIP");
    ck_assert_uint_eq(pic.chip.pic.imr, 0xa5);
    ck_assert_uint_eq(pic.chip.pic.irq_base, 0x20);
    xioctl(kvm->vm_fd, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK");
    ck_assert_uint_ge(clock.clock, TEST_CLOCK_NS);
    ck_assert_uint_lt(clock.clock, TEST_CLOCK_NS + SLACK_NS);
    printf("VM state: kvmclock %llu ns after restore (saved %llu)\n",
           (unsigned long long)clock.clock, TEST_CLOCK_NS);
}

/* A source VM with distinctive state, saved into both blobs, and an empty destination. */
static bool setup_saved(void)
{
    if (!need_kvm())
        return false;
    vm_new(&src);
    vcpu_set_distinctive(&src.vcpu);
    vm_set_distinctive(&src.kvm);
    ck_assert_int_eq(kvm_vcpu_state_save(&src.vcpu, &vcpu_blob), 0);
    ck_assert_int_eq(kvm_vm_state_save(&src.kvm, &vm_blob), 0);
    vm_new(&dst);
    return true;
}

START_TEST(state_moves_to_a_second_vm)
{
    uint32_t nmsrs;

    if (!setup_saved())
        return;
    memcpy(&nmsrs, vcpu_blob.data + HDR_NMSRS, sizeof(nmsrs));
    printf("vCPU blob %zu bytes (%u MSRs), VM blob %zu bytes\n", vcpu_blob.len, nmsrs, vm_blob.len);
    ck_assert_int_eq(kvm_vcpu_state_load(&dst.vcpu, vcpu_blob.data, vcpu_blob.len), 0);
    ck_assert_int_eq(kvm_vm_state_load(&dst.kvm, vm_blob.data, vm_blob.len), 0);
    check_vcpu_restored(&dst.vcpu);
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
