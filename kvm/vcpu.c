#include "vcpu.h"

#include "../common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int vcpu_ioctl(struct kvm_vcpu *vcpu, unsigned long req, const void *arg, const char *name)
{
    return ioctl(vcpu->fd, req, arg) < 0 ? kvm_ioctl_failed("vcpu%d: %s", vcpu->index, name) : 0;
}

int kvm_vcpu_create(struct kvm *kvm, int index, struct kvm_vcpu *vcpu)
{
    int ret;

    vcpu->kvm = kvm;
    vcpu->index = index;
    vcpu->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (vcpu->fd < 0)
        return kvm_ioctl_failed("KVM_CREATE_VCPU %d", index);
    vcpu->run_size = kvm->vcpu_mmap_size;
    vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (vcpu->run == MAP_FAILED) {
        ret = -errno;
        pr_err("kvm: mmap of vcpu%d run area failed: %s", index, strerror(errno));
        close(vcpu->fd);
        vcpu->fd = -1;
        return ret;
    }
    return 0;
}

void kvm_vcpu_destroy(struct kvm_vcpu *vcpu)
{
    if (vcpu->run && vcpu->run != MAP_FAILED)
        munmap(vcpu->run, vcpu->run_size);
    if (vcpu->fd >= 0)
        close(vcpu->fd);
    vcpu->run = NULL;
    vcpu->fd = -1;
}

struct kvm_coalesced_mmio_ring *kvm_vcpu_coalesced_ring(struct kvm_vcpu *vcpu)
{
    long page = sysconf(_SC_PAGESIZE);
    int off = kvm_check_extension(vcpu->kvm, KVM_CAP_COALESCED_MMIO);

    if (off <= 0 || page != 4096 || (size_t)(off + 1) * (size_t)page > vcpu->run_size)
        return NULL;
    return (struct kvm_coalesced_mmio_ring *)(void *)((uint8_t *)vcpu->run + (size_t)off * 4096);
}

unsigned kvm_coalesced_drain(struct kvm_coalesced_mmio_ring *ring,
                             void (*fn)(void *opaque, const struct kvm_coalesced_mmio *w),
                             void *opaque)
{
    unsigned n = 0;

    /* last: KVM's producer index (acquire: the entry is written before it moves);
     * first: ours, moved only once the entry has been used (release). */
    for (;;) {
        uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);

        if (first == __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE) ||
            first >= KVM_COALESCED_RING_ENTRIES)
            break;
        fn(opaque, &ring->coalesced_mmio[first]);
        __atomic_store_n(&ring->first, (first + 1) % (uint32_t)KVM_COALESCED_RING_ENTRIES,
                         __ATOMIC_RELEASE);
        n++;
    }
    return n;
}

int kvm_vcpu_run(struct kvm_vcpu *vcpu)
{
    if (ioctl(vcpu->fd, KVM_RUN, 0) < 0)
        return -errno;
    return 0;
}

int kvm_vcpu_get_regs(struct kvm_vcpu *vcpu, struct kvm_regs *regs)
{
    return vcpu_ioctl(vcpu, KVM_GET_REGS, regs, "KVM_GET_REGS");
}

int kvm_vcpu_set_regs(struct kvm_vcpu *vcpu, const struct kvm_regs *regs)
{
    return vcpu_ioctl(vcpu, KVM_SET_REGS, regs, "KVM_SET_REGS");
}

int kvm_vcpu_get_sregs(struct kvm_vcpu *vcpu, struct kvm_sregs *sregs)
{
    return vcpu_ioctl(vcpu, KVM_GET_SREGS, sregs, "KVM_GET_SREGS");
}

int kvm_vcpu_set_sregs(struct kvm_vcpu *vcpu, const struct kvm_sregs *sregs)
{
    return vcpu_ioctl(vcpu, KVM_SET_SREGS, sregs, "KVM_SET_SREGS");
}

int kvm_vcpu_set_fpu(struct kvm_vcpu *vcpu, const struct kvm_fpu *fpu)
{
    return vcpu_ioctl(vcpu, KVM_SET_FPU, fpu, "KVM_SET_FPU");
}

int kvm_vcpu_set_cpuid(struct kvm_vcpu *vcpu, const struct kvm_cpuid2 *cpuid)
{
    return vcpu_ioctl(vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
}

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_IA32_MISC_ENABLE_FAST_STRING 0x1
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_MTRR_ENABLE (1u << 11)
#define MTRR_TYPE_WRBACK 6
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

int kvm_vcpu_setup_msrs(struct kvm_vcpu *vcpu)
{
    static const struct {
        uint32_t index;
        uint64_t value;
    } boot_msrs[] = {
        {MSR_IA32_SYSENTER_CS, 0},
        {MSR_IA32_SYSENTER_ESP, 0},
        {MSR_IA32_SYSENTER_EIP, 0},
        {MSR_STAR, 0},
        {MSR_CSTAR, 0},
        {MSR_KERNEL_GS_BASE, 0},
        {MSR_SYSCALL_MASK, 0},
        {MSR_LSTAR, 0},
        {MSR_IA32_MISC_ENABLE, MSR_IA32_MISC_ENABLE_FAST_STRING},
        {MSR_MTRR_DEF_TYPE, MSR_MTRR_ENABLE | MTRR_TYPE_WRBACK},
    };
    enum { N = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
    /* kvm_msrs ends in a flexible array: room for N entries behind its header. */
    union {
        struct kvm_msrs hdr;
        uint8_t bytes[sizeof(struct kvm_msrs) + N * sizeof(struct kvm_msr_entry)];
    } msrs;
    int ret;

    memset(&msrs, 0, sizeof(msrs));
    msrs.hdr.nmsrs = N;
    for (int i = 0; i < N; i++) {
        msrs.hdr.entries[i].index = boot_msrs[i].index;
        msrs.hdr.entries[i].data = boot_msrs[i].value;
    }
    /* KVM_SET_MSRS returns how many it set; fewer means one was refused. */
    ret = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
    if (ret < 0)
        return vcpu_ioctl(vcpu, KVM_SET_MSRS, &msrs, "KVM_SET_MSRS");
    if (ret != N) {
        pr_err("kvm: vcpu%d: KVM_SET_MSRS refused MSR 0x%x", vcpu->index,
               msrs.hdr.entries[ret].index);
        return -EINVAL;
    }
    return 0;
}

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI 0x4

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

static uint32_t lvt_with_mode(uint32_t lvt, uint32_t mode)
{
    return (lvt & ~0x700u) | (mode << 8);
}

int kvm_vcpu_setup_lapic(struct kvm_vcpu *vcpu)
{
    struct kvm_lapic_state lapic = {0};
    int ret;

    ret = vcpu_ioctl(vcpu, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    if (ret)
        return ret;
    lapic_set_reg(&lapic, APIC_LVT0, lvt_with_mode(lapic_reg(&lapic, APIC_LVT0), APIC_MODE_EXTINT));
    lapic_set_reg(&lapic, APIC_LVT1, lvt_with_mode(lapic_reg(&lapic, APIC_LVT1), APIC_MODE_NMI));
    return vcpu_ioctl(vcpu, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
}
