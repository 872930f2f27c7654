#include "kvm.h"

#include "../common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_EXPECTED_API 12
#define KVM_CPUID_MAX_ENTRIES 256

int kvm_ioctl_failed(const char *fmt, ...)
{
    int err = errno;
    char what[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    pr_err("kvm: %s failed: %s", what, strerror(err));
    return -err;
}

int kvm_fd_ioctl(int fd, unsigned long req, const void *arg, const char *name)
{
    return ioctl(fd, req, arg) < 0 ? kvm_ioctl_failed("%s", name) : 0;
}

static int kvm_ioctl_err(const char *name)
{
    return kvm_ioctl_failed("%s", name);
}

/* A new VM replaces the old one under the same fd number: the seccomp filters,
 * built once, allow interrupt ioctls on that number only. */
int kvm_create_vm(struct kvm *kvm)
{
    int fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);

    if (fd < 0)
        return kvm_ioctl_err("KVM_CREATE_VM");
    if (kvm->vm_fd < 0) {
        kvm->vm_fd = fd;
        return 0;
    }
    if (dup3(fd, kvm->vm_fd, O_CLOEXEC) < 0) {
        int ret = -errno;

        close(fd);
        pr_err("cannot put the new VM at fd %d: %s", kvm->vm_fd, strerror(-ret));
        return ret;
    }
    close(fd);
    return 0;
}

int kvm_open(struct kvm *kvm, const char *dev_path)
{
    int ret, api;

    memset(kvm, 0, sizeof(*kvm));
    kvm->vm_fd = -1;
    kvm->sys_fd = open(dev_path, O_RDWR | O_CLOEXEC);
    if (kvm->sys_fd < 0) {
        ret = -errno;
        pr_err("cannot open %s: %s", dev_path, strerror(errno));
        return ret;
    }
    api = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);
    if (api < 0) {
        pr_err("%s is not a KVM device: %s", dev_path, strerror(errno));
        ret = -ENOTTY;
        goto err_close;
    }
    if (api != KVM_EXPECTED_API) {
        pr_err("%s: KVM API version %d, expected %d", dev_path, api, KVM_EXPECTED_API);
        ret = -ENOTSUP;
        goto err_close;
    }
    kvm->vcpu_mmap_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (kvm->vcpu_mmap_size <= 0) {
        ret = kvm_ioctl_err("KVM_GET_VCPU_MMAP_SIZE");
        goto err_close;
    }
    kvm->max_vcpus = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (kvm->max_vcpus <= 0)
        kvm->max_vcpus = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (kvm->max_vcpus <= 0)
        kvm->max_vcpus = 4; /* the API's documented floor */
    ret = kvm_create_vm(kvm);
    if (ret)
        goto err_close;
    return 0;

err_close:
    close(kvm->sys_fd);
    kvm->sys_fd = -1;
    return ret;
}

void kvm_close(struct kvm *kvm)
{
    if (kvm->vm_fd >= 0)
        close(kvm->vm_fd);
    if (kvm->sys_fd >= 0)
        close(kvm->sys_fd);
    kvm->vm_fd = kvm->sys_fd = -1;
}

int kvm_check_extension(struct kvm *kvm, long cap)
{
    int ret = ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, cap);

    return ret < 0 ? 0 : ret;
}

int kvm_set_user_memory_region(struct kvm *kvm, uint32_t slot, uint64_t gpa, uint64_t size,
                               void *hva, uint32_t flags)
{
    struct kvm_userspace_memory_region region = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)hva,
    };

    if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return kvm_ioctl_err("KVM_SET_USER_MEMORY_REGION");
    return 0;
}

int kvm_create_irqchip(struct kvm *kvm, uint64_t tss_addr, uint64_t identity_map_addr)
{
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    uint64_t idmap = identity_map_addr;

    if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss_addr) < 0)
        return kvm_ioctl_err("KVM_SET_TSS_ADDR");
    if (ioctl(kvm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
        return kvm_ioctl_err("KVM_SET_IDENTITY_MAP_ADDR");
    if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return kvm_ioctl_err("KVM_CREATE_IRQCHIP");
    if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return kvm_ioctl_err("KVM_CREATE_PIT2");
    return 0;
}

int kvm_irq_line(struct kvm *kvm, uint32_t irq, int level)
{
    struct kvm_irq_level line = {.irq = irq, .level = level};

    if (ioctl(kvm->vm_fd, KVM_IRQ_LINE, &line) < 0)
        return kvm_ioctl_err("KVM_IRQ_LINE");
    return 0;
}

int kvm_irqfd(struct kvm *kvm, int fd, uint32_t gsi, bool assign)
{
    struct kvm_irqfd req = {
        .fd = (uint32_t)fd,
        .gsi = gsi,
        .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
    };

    if (ioctl(kvm->vm_fd, KVM_IRQFD, &req) < 0)
        return kvm_ioctl_err("KVM_IRQFD");
    return 0;
}

int kvm_coalesced_pio_add(struct kvm *kvm, uint16_t port, uint32_t size)
{
    struct kvm_coalesced_mmio_zone zone = {.addr = port, .size = size, .pio = 1};

    if (kvm_check_extension(kvm, KVM_CAP_COALESCED_PIO) <= 0 ||
        kvm_check_extension(kvm, KVM_CAP_COALESCED_MMIO) <= 0)
        return -ENOTSUP;
    if (ioctl(kvm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &zone) < 0)
        return kvm_ioctl_err("KVM_REGISTER_COALESCED_MMIO");
    return 0;
}

int kvm_ioeventfd(struct kvm *kvm, const struct kvm_ioeventfd_spec *spec, int fd, bool assign)
{
    struct kvm_ioeventfd req = {
        .datamatch = spec->datamatch,
        .addr = spec->addr,
        .len = spec->len,
        .fd = fd,
    };

    if (spec->pio)
        req.flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (spec->has_datamatch)
        req.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    if (!assign)
        req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    if (ioctl(kvm->vm_fd, KVM_IOEVENTFD, &req) < 0)
        return kvm_ioctl_err("KVM_IOEVENTFD");
    return 0;
}

int kvm_get_supported_cpuid(struct kvm *kvm, struct kvm_cpuid2 **out)
{
    struct kvm_cpuid2 *cpuid;
    size_t size = sizeof(*cpuid) + KVM_CPUID_MAX_ENTRIES * sizeof(cpuid->entries[0]);

    cpuid = calloc(1, size);
    if (!cpuid)
        return -ENOMEM;
    cpuid->nent = KVM_CPUID_MAX_ENTRIES;
    if (ioctl(kvm->sys_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
        int ret = kvm_ioctl_err("KVM_GET_SUPPORTED_CPUID");
        free(cpuid);
        return ret;
    }
    *out = cpuid;
    return 0;
}

bool kvm_host_is_pvm(void)
{
    return access("/sys/module/kvm_pvm", F_OK) == 0;
}
