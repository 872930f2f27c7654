/* What fuzz_guest and fuzz_device_state build their machines on (tests/support): KVM's
 * view, failing the input on any call KVM would refuse, over guest RAM at 0 whose fd
 * is /dev/null (the drained backend never maps it). */
#ifndef VMM_TESTS_FUZZ_PLATFORM_H
#define VMM_TESTS_FUZZ_PLATFORM_H

#include "../support/fake_platform.h"
#include "fuzz_util.h"

#include <fcntl.h>

/* Once per process; returns the /dev/null fd, which the UART writes to as well. */
static inline int fuzz_platform_init(struct fake_platform *kvm, struct guest_mem *ram,
                                     uint64_t size)
{
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (null_fd < 0)
        fuzz_fail("cannot open /dev/null");
    guest_mem_init(ram, 0, size);
    ram->fd = null_fd;
    fake_platform_init(kvm);
    kvm->fail_on_bad = true;
    kvm->mem = ram;
    return null_fd;
}

#endif
