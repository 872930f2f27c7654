#include "dirty_log.h"

#include "../common/log.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

bool kvm_dirty_log_enable_manual_protect(struct kvm *kvm)
{
    struct kvm_enable_cap cap = {
        .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
        .args = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE},
    };

    if (kvm_check_extension(kvm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) <= 0)
        return false;
    if (ioctl(kvm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
        pr_warn("kvm: cannot enable manual dirty-log protection: %s", strerror(errno));
        return false;
    }
    return true;
}

int kvm_get_dirty_log(struct kvm *kvm, uint32_t slot, uint64_t *bitmap)
{
    struct kvm_dirty_log log = {.slot = slot, .dirty_bitmap = bitmap};

    if (ioctl(kvm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
        return kvm_ioctl_failed("KVM_GET_DIRTY_LOG of slot %u", slot);
    return 0;
}

int kvm_clear_dirty_log(struct kvm *kvm, uint32_t slot, uint64_t npages, uint64_t *bitmap)
{
    struct kvm_clear_dirty_log clear = {
        .slot = slot,
        .num_pages = (uint32_t)npages,
        .first_page = 0,
        .dirty_bitmap = bitmap,
    };

    if (ioctl(kvm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clear) < 0)
        return kvm_ioctl_failed("KVM_CLEAR_DIRTY_LOG of slot %u", slot);
    return 0;
}
