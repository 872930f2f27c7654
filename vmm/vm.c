#include "vm.h"

#include "boot.h"
#include "layout.h"
#include "mptable.h"
#include "vcpu_exit.h"
#include "vm_net.h"
#include "../common/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define VCPU_KICK_SIGNAL SIGUSR1

void vm_request_stop(struct vm *vm, int exit_code, const char *reason)
{
    uint64_t one = 1;

    pthread_mutex_lock(&vm->stop_lock);
    if (!atomic_load(&vm->stopping)) {
        vm->exit_code = exit_code;
        snprintf(vm->exit_reason, sizeof(vm->exit_reason), "%s", reason);
        atomic_store(&vm->stopping, true);
    }
    pthread_mutex_unlock(&vm->stop_lock);
    if (write(vm->stop_efd, &one, sizeof(one)) < 0)
        pr_debug("stop eventfd: %s", strerror(errno));
}

static void vm_irq_set(void *opaque, uint32_t irq, int level)
{
    struct vm *vm = opaque;

    kvm_irq_line(&vm->kvm, irq, level);
}

static bool vm_is_stopping(void *opaque)
{
    struct vm *vm = opaque;

    return atomic_load(&vm->stopping);
}

/* From a vCPU thread: the guest asked for a reset. The loop thread does the
 * reboot once every vCPU has left KVM_RUN. */
static void vm_request_reset(struct vm *vm)
{
    uint64_t one = 1;

    if (vm->opts->on_reboot == VMM_ON_REBOOT_EXIT) {
        vm_request_stop(vm, VMM_EXIT_OK, "guest reset (reboot)");
        return;
    }
    atomic_store(&vm->reset_requested, true);
    if (write(vm->stop_efd, &one, sizeof(one)) < 0)
        pr_debug("stop eventfd: %s", strerror(errno));
}

static void vm_reset_cpu(void *opaque)
{
    vm_request_reset(opaque);
}

static void vm_console_quit(void *opaque)
{
    vm_request_stop(opaque, VMM_EXIT_OK, "quit from the console (Ctrl-A x)");
}

static int vm_map_memory(struct vm *vm)
{
    int ret = 0;

    for (int i = 0; !ret && i < vm->mem.nregions; i++) {
        const struct guest_region *r = &vm->mem.regions[i];

        ret = kvm_set_user_memory_region(&vm->kvm, (uint32_t)i, r->gpa, r->size, r->hva, 0);
    }
    return ret;
}

static int vm_setup_memory(struct vm *vm)
{
    int ret = guest_memory_create(&vm->mem, vm->opts->memory, vm->opts->hugepages);

    return ret ? ret : vm_map_memory(vm);
}

static int vm_load_guest(struct vm *vm, const struct boot_files *files)
{
    uint8_t *mp = guest_memory_ptr(&vm->mem, LAYOUT_MPTABLE_ADDR, mptable_size(vm->ncpus));
    int ret = boot_load(&vm->mem, files);

    if (ret)
        return ret;
    mptable_build(mp, LAYOUT_MPTABLE_ADDR, vm->ncpus);
    return 0;
}

static void *memdup_or_null(const void *data, size_t size)
{
    void *copy = size ? malloc(size) : NULL;

    if (copy)
        memcpy(copy, data, size);
    return copy;
}

/* A guest that may reboot needs its kernel and initrd again: keep copies. */
static int vm_keep_boot_files(struct vm *vm, const struct boot_files *files)
{
    if (vm->opts->on_reboot != VMM_ON_REBOOT_RESTART)
        return 0;
    vm->boot = *files;
    vm->boot.kernel = vm->kernel_copy = memdup_or_null(files->kernel, files->kernel_size);
    vm->boot.initrd = vm->initrd_copy = memdup_or_null(files->initrd, files->initrd_size);
    if (!vm->kernel_copy || (files->initrd_size && !vm->initrd_copy)) {
        pr_err("out of memory keeping the kernel and initrd for guest reboots");
        return -ENOMEM;
    }
    return 0;
}

static int vm_setup_boot(struct vm *vm, const uint8_t *kernel, size_t kernel_size,
                         const uint8_t *initrd, size_t initrd_size)
{
    struct boot_files files = {
        .kernel = kernel,
        .kernel_size = kernel_size,
        .initrd = initrd,
        .initrd_size = initrd_size,
        .cmdline = vm->opts->cmdline,
    };
    int ret = vm_load_guest(vm, &files);

    return ret ? ret : vm_keep_boot_files(vm, &files);
}

static int vm_setup_vcpu(struct vm *vm, unsigned i, const struct kvm_cpuid2 *cpuid)
{
    struct vm_vcpu *v = &vm->vcpus[i];
    int ret;

    v->vm = vm;
    ret = kvm_vcpu_create(&vm->kvm, (int)i, &v->kvm);
    if (!ret)
        ret = kvm_vcpu_setup_cpuid(&v->kvm, cpuid, vm->ncpus);
    if (!ret)
        ret = kvm_vcpu_setup_msrs(&v->kvm);
    if (!ret)
        ret = kvm_vcpu_setup_lapic(&v->kvm);
    /* Application processors wait for INIT/SIPI from the boot CPU. */
    if (!ret && i == 0)
        ret = boot_setup_bsp(&v->kvm);
    return ret;
}

static int vm_create_vcpus(struct vm *vm)
{
    struct kvm_cpuid2 *cpuid;
    int ret = kvm_get_supported_cpuid(&vm->kvm, &cpuid);

    if (ret)
        return ret;
    /* The in-kernel LAPIC (vmm always has one) emulates it: QEMU sets it too. */
    if (kvm_check_extension(&vm->kvm, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        kvm_cpuid_set_tsc_deadline(cpuid);
    for (unsigned i = 0; !ret && i < vm->ncpus; i++)
        ret = vm_setup_vcpu(vm, i, cpuid);
    free(cpuid);
    return ret;
}

static void vm_destroy_vcpus(struct vm *vm)
{
    for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
        kvm_vcpu_destroy(&vm->vcpus[i].kvm);
}

static int vm_setup_vcpus(struct vm *vm)
{
    vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        pr_err("out of memory for %u vCPUs", vm->ncpus);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < vm->ncpus; i++)
        vm->vcpus[i].kvm.fd = -1;
    return vm_create_vcpus(vm);
}

static time_t rtc_host_time(void)
{
    return time(NULL);
}

static int vm_setup_devices(struct vm *vm)
{
    struct irq_line com1 = {.set = vm_irq_set, .opaque = vm, .irq = SERIAL_COM1_IRQ};
    struct irq_line kbd = {.set = vm_irq_set, .opaque = vm, .irq = I8042_KBD_IRQ};
    int ret;

    ret = bus_init(&vm->pio, "pio");
    if (!ret)
        ret = bus_init(&vm->mmio, "mmio");
    if (!ret)
        ret = serial_init(&vm->serial, "serial0", &com1, STDOUT_FILENO);
    vm->serial.tx_abort = vm_is_stopping;
    vm->serial.tx_abort_opaque = vm;
    if (!ret)
        ret = i8042_init(&vm->i8042, &kbd, vm_reset_cpu, vm);
    if (!ret)
        ret = rtc_init(&vm->rtc, rtc_host_time);
    if (!ret)
        ret = bus_register(&vm->pio, RTC_INDEX_PORT, RTC_NR_PORTS, &vm->rtc.dev);
    if (!ret)
        ret = bus_register(&vm->pio, SERIAL_COM1_BASE, SERIAL_NR_PORTS, &vm->serial.dev);
    if (!ret)
        ret = bus_register(&vm->pio, I8042_DATA_PORT, 1, &vm->i8042.data_dev);
    if (!ret)
        ret = bus_register(&vm->pio, I8042_CMD_PORT, 1, &vm->i8042.cmd_dev);
    if (ret)
        pr_err("device set-up failed: %s", strerror(-ret));
    return ret;
}

static void vm_on_signal(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    struct signalfd_siginfo si;
    char reason[64];

    (void)events;
    if (read(vm->signal_fd, &si, sizeof(si)) != sizeof(si))
        return;
    snprintf(reason, sizeof(reason), "stopped by signal %s", strsignal((int)si.ssi_signo));
    vm_request_stop(vm, VMM_EXIT_OK, reason);
}

static void vm_on_stop(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t v;

    (void)events;
    if (read(vm->stop_efd, &v, sizeof(v)) < 0)
        pr_debug("stop eventfd: %s", strerror(errno));
}

static void vcpu_kick_handler(int sig)
{
    (void)sig;
}

/* SIGINT/SIGTERM/SIGHUP arrive through a signalfd in the loop; every thread
 * created afterwards inherits the blocked mask. */
static int vm_setup_signals(struct vm *vm)
{
    struct sigaction sa = {.sa_handler = vcpu_kick_handler};
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGALRM);
    sigaddset(&set, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sigdelset(&set, VCPU_KICK_SIGNAL);
    vm->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->signal_fd < 0 || vm->stop_efd < 0) {
        int err = errno;

        pr_err("cannot create the signalfd/eventfd of the event loop: %s", strerror(err));
        return -err;
    }
    if (event_loop_add(&vm->loop, vm->signal_fd, EPOLLIN, vm_on_signal, vm) ||
        event_loop_add(&vm->loop, vm->stop_efd, EPOLLIN, vm_on_stop, vm)) {
        pr_err("cannot register signals with the event loop");
        return -EIO;
    }
    return 0;
}

static int vm_setup_kvm(struct vm *vm)
{
    int ret = kvm_open(&vm->kvm, vm->opts->kvm_device);

    if (ret)
        return ret;
    if (vm->ncpus > (unsigned)vm->kvm.max_vcpus) {
        pr_err("--cpus %u: KVM allows at most %d vCPUs", vm->ncpus, vm->kvm.max_vcpus);
        return -EINVAL;
    }
    return kvm_create_irqchip(&vm->kvm, LAYOUT_KVM_TSS_ADDR, LAYOUT_KVM_IDENTITY_MAP_ADDR);
}

int vm_create(struct vm *vm, const struct vmm_options *opts, struct trace_file *vhost_trace,
              const uint8_t *kernel, size_t kernel_size, const uint8_t *initrd, size_t initrd_size)
{
    int ret;

    memset(vm, 0, sizeof(*vm));
    vm->opts = opts;
    vm->vhost_trace = vhost_trace;
    vm->ncpus = opts->cpus;
    vm->signal_fd = vm->stop_efd = vm->console.space_efd = -1;
    vm->kvm.sys_fd = vm->kvm.vm_fd = vm->mem.fd = -1;
    vm->loop.epfd = -1;
    pthread_mutex_init(&vm->stop_lock, NULL);

    ret = vm_setup_kvm(vm);
    if (!ret)
        ret = vm_setup_memory(vm);
    if (!ret)
        ret = vm_setup_boot(vm, kernel, kernel_size, initrd, initrd_size);
    if (!ret)
        ret = vm_setup_vcpus(vm);
    if (!ret && (ret = event_loop_init(&vm->loop)))
        pr_err("cannot create the event loop: %s", strerror(-ret));
    if (!ret)
        ret = vm_setup_devices(vm);
    if (!ret)
        ret = vm_setup_pci_devices(vm);
    if (!ret)
        ret = vm_setup_signals(vm);
    if (!ret)
        ret = console_init(&vm->console, STDIN_FILENO, &vm->serial, &vm->loop, vm_console_quit, vm);
    if (ret)
        vm_destroy(vm);
    return ret;
}

static void vcpu_report_crash(struct vm_vcpu *v, const char *why)
{
    struct kvm_regs regs;
    char reason[384];
    unsigned long long rip = 0;

    if (kvm_vcpu_get_regs(&v->kvm, &regs) == 0)
        rip = regs.rip;
    snprintf(reason, sizeof(reason), "vcpu%d: %s at RIP 0x%llx", v->kvm.index, why, rip);
    vm_request_stop(v->vm, VMM_EXIT_GUEST_CRASH, reason);
}

static void *vcpu_thread(void *arg)
{
    struct vm_vcpu *v = arg;
    struct vm *vm = v->vm;
    sigset_t kick;
    char why[256];

    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    while (!atomic_load(&vm->stopping) && !atomic_load(&vm->reset_requested)) {
        enum vcpu_action action;
        int ret = kvm_vcpu_run(&v->kvm);

        if (ret == -EINTR || ret == -EAGAIN) {
            v->kvm.run->immediate_exit = 0;
            continue;
        }
        if (ret) {
            snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(-ret));
            vcpu_report_crash(v, why);
            break;
        }
        action = vcpu_handle_exit(v->kvm.run, &vm->pio, &vm->mmio, why, sizeof(why));
        if (action == VCPU_GUEST_RESET) {
            vm_request_reset(vm);
        } else if (action != VCPU_CONTINUE) {
            vcpu_report_crash(v, why);
            break;
        }
    }
    return NULL;
}

static void vm_stop_vcpus(struct vm *vm)
{
    /* A vCPU may wait for the loop (a NIC starting): fail that wait first. */
    if (vm->loop.epfd >= 0)
        event_loop_close_calls(&vm->loop);
    for (unsigned i = 0; i < vm->ncpus; i++) {
        if (vm->vcpus[i].started) {
            vm->vcpus[i].kvm.run->immediate_exit = 1;
            pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
        }
    }
    for (unsigned i = 0; i < vm->ncpus; i++) {
        if (vm->vcpus[i].started) {
            pthread_join(vm->vcpus[i].thread, NULL);
            vm->vcpus[i].started = false;
        }
    }
}

static int vm_start_vcpus(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++) {
        int ret = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);

        if (ret) {
            pr_err("cannot start vcpu%u thread: %s", i, strerror(ret));
            return -ret;
        }
        vm->vcpus[i].started = true;
    }
    return 0;
}

static void vm_reset_devices(struct vm *vm)
{
    struct device *legacy[] = {&vm->serial.dev, &vm->i8042.cmd_dev, &vm->rtc.dev};

    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
        if (legacy[i]->ops->reset)
            legacy[i]->ops->reset(legacy[i]);
    vm_reset_pci_devices(vm);
}

/* A fresh KVM VM on the same memory: no vCPU, LAPIC, irqchip, PIT or kvmclock
 * state of the last boot survives, which an in-place reset would have to undo. */
static int vm_rebuild_kvm(struct vm *vm)
{
    int ret;

    vm_destroy_vcpus(vm);
    ret = kvm_create_vm(&vm->kvm);
    if (!ret)
        ret = kvm_create_irqchip(&vm->kvm, LAYOUT_KVM_TSS_ADDR, LAYOUT_KVM_IDENTITY_MAP_ADDR);
    if (!ret)
        ret = vm_map_memory(vm);
    if (!ret)
        ret = vm_create_vcpus(vm);
    return ret;
}

/* Devices first (the NICs stop their rings and unhook from the old VM), then
 * zeroed RAM with the kernel loaded again, then the new VM. */
static int vm_reboot(struct vm *vm)
{
    int ret;

    vm->reboots++;
    pr_info("guest reset (reboot %u): restarting it", vm->reboots);
    vm_stop_vcpus(vm);
    vm_reset_devices(vm);
    ret = guest_memory_clear(&vm->mem);
    if (!ret)
        ret = vm_load_guest(vm, &vm->boot);
    if (!ret)
        ret = vm_rebuild_kvm(vm);
    if (ret)
        return ret;
    event_loop_open_calls(&vm->loop);
    atomic_store(&vm->reset_requested, false);
    return vm_start_vcpus(vm);
}

int vm_run(struct vm *vm)
{
    int ret = vm_start_vcpus(vm);

    if (ret)
        vm_request_stop(vm, VMM_EXIT_ERROR, "vCPU threads could not start");
    while (!atomic_load(&vm->stopping)) {
        ret = event_loop_run_once(&vm->loop, -1);
        if (ret < 0) {
            pr_err("event loop failed: %s", strerror(-ret));
            vm_request_stop(vm, VMM_EXIT_ERROR, "event loop failed");
        }
        if (atomic_load(&vm->reset_requested) && !atomic_load(&vm->stopping) && vm_reboot(vm))
            vm_request_stop(vm, VMM_EXIT_ERROR, "the guest's reboot failed");
    }
    vm_stop_vcpus(vm);
    vm_stop_pci_devices(vm);
    console_restore(&vm->console);
    if (vm->exit_code == VMM_EXIT_OK)
        pr_info("%s", vm->exit_reason);
    else
        pr_err("%s", vm->exit_reason);
    return vm->exit_code;
}

void vm_destroy(struct vm *vm)
{
    if (vm->vcpus)
        vm_stop_vcpus(vm);
    console_destroy(&vm->console);
    if (vm->signal_fd >= 0)
        close(vm->signal_fd);
    if (vm->stop_efd >= 0)
        close(vm->stop_efd);
    vm->signal_fd = vm->stop_efd = -1;
    vm_destroy_pci_devices(vm);
    if (vm->loop.epfd >= 0)
        event_loop_destroy(&vm->loop);
    if (vm->routing.kvm)
        kvm_irq_routing_destroy(&vm->routing);
    if (vm->i8042.cmd_dev.ops)
        i8042_destroy(&vm->i8042);
    if (vm->rtc.dev.ops)
        rtc_destroy(&vm->rtc);
    if (vm->serial.dev.ops)
        serial_destroy(&vm->serial);
    if (vm->pio.name)
        bus_destroy(&vm->pio);
    if (vm->mmio.name)
        bus_destroy(&vm->mmio);
    vm_destroy_vcpus(vm);
    free(vm->vcpus);
    free(vm->kernel_copy);
    free(vm->initrd_copy);
    vm->vcpus = NULL;
    guest_memory_destroy(&vm->mem);
    kvm_close(&vm->kvm);
    pthread_mutex_destroy(&vm->stop_lock);
}
