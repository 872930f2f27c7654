/* Raw /dev/kvm ioctls for the VM as a whole. Every wrapper returns 0 (or a
 * non-negative value) on success and -errno on failure, after logging the
 * ioctl name and the cause. */
#ifndef VMM_KVM_KVM_H
#define VMM_KVM_KVM_H

#include <stdbool.h>
#include <stdint.h>

struct kvm_cpuid2;

struct kvm {
    int sys_fd;
    int vm_fd;
    int vcpu_mmap_size;
    int max_vcpus;
};

/* Opens the device, checks the API version and creates an empty VM. */
int kvm_open(struct kvm *kvm, const char *dev_path);
void kvm_close(struct kvm *kvm);

/* Replaces the VM with an empty one (a guest reboot starts from scratch): every
 * vCPU, memory slot, irqchip, route, irqfd and ioeventfd of the old VM is gone. */
int kvm_create_vm(struct kvm *kvm);

int kvm_check_extension(struct kvm *kvm, long cap);

/* Coalesced PIO (KVM_CAP_COALESCED_PIO): KVM keeps the guest's writes to
 * [port, port + size) in a ring shared with us instead of exiting for each; they
 * must be applied, in order, before any exit is handled (kvm_coalesced_drain).
 * -ENOTSUP when the host lacks it. */
int kvm_coalesced_pio_add(struct kvm *kvm, uint16_t port, uint32_t size);

int kvm_set_user_memory_region(struct kvm *kvm, uint32_t slot, uint64_t gpa, uint64_t size,
                               void *hva, uint32_t flags);

/* TSS and identity-map pages (Intel needs them), IOAPIC+PIC+LAPICs, and the PIT. */
int kvm_create_irqchip(struct kvm *kvm, uint64_t tss_addr, uint64_t identity_map_addr);

int kvm_irq_line(struct kvm *kvm, uint32_t irq, int level);
int kvm_irqfd(struct kvm *kvm, int fd, uint32_t gsi, bool assign);

struct kvm_ioeventfd_spec {
    uint64_t addr;
    uint32_t len;
    bool pio;
    bool has_datamatch;
    uint64_t datamatch;
};
int kvm_ioeventfd(struct kvm *kvm, const struct kvm_ioeventfd_spec *spec, int fd, bool assign);

/* Returns a malloc'ed table the caller frees. */
int kvm_get_supported_cpuid(struct kvm *kvm, struct kvm_cpuid2 **out);

/* True when /dev/kvm is PVM, where guest kernel code is emulated. */
bool kvm_host_is_pvm(void);

/* The one way kvm/ reports a failed ioctl: one line "kvm: <what> failed: <errno's
 * text>", what printf-formatted; returns -errno, read before anything else runs. */
int kvm_ioctl_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ioctl(fd, req, arg): 0, or kvm_ioctl_failed's line naming the request. */
int kvm_fd_ioctl(int fd, unsigned long req, const void *arg, const char *name);

#endif
