/* /bin/rig-kvm-holder, started by the rig's L1 init: holds one KVM VM with one vCPU
 * whose local APIC stays software-disabled, and sleeps for as long as L1 runs.
 *
 * Why: KVM counts software-disabled APICs in a static key (apic_sw_disabled). Each
 * time the count crosses zero, as each L2 guest starts or enables its APIC, L1's
 * kernel rewrites the key's jump sites with int3-based text patching. The rig's
 * QEMU (TCG, one thread per vCPU) can keep a stale translation holding that int3:
 * the L1 vCPU then traps on it forever while memory holds the new instruction, and
 * L1 stalls with both host cores busy. With this vCPU the count never reaches zero,
 * so those sites are patched once, here, before any test runs. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what)
{
    printf("rig-kvm-holder: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm, vcpu;

    if (kvm < 0)
        return fail("open /dev/kvm");
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        return fail("KVM_CREATE_VM");
    /* The local APIC is KVM's (and counted) only with the in-kernel irqchip. */
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
        return fail("KVM_CREATE_IRQCHIP");
    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        return fail("KVM_CREATE_VCPU");
    for (;;)
        pause();
}
