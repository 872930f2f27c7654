#include "vm_priv.h"

#include "boot.h"
#include "layout.h"
#include "mptable.h"
#include "sandbox.h"
#include "vcpu_exit.h"
#include "vm_migration.h"
#include "vm_net.h"
#include "../common/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

void vm_request_stop(struct vm *vm, int exit_code, const char *reason)
{
    uint64_t one = 1;

    pthread_mutex_lock(&vm->stop_lock);
    if (!atomic_load(&vm->stopping)) {
        vm->exit_code = exit_code;
        snprintf(vm->exit_reason, sizeof(vm->exit_reason), "%s", reason ? reason : "");
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
void vm_request_reset(struct vm *vm)
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

int vm_map_memory(struct vm *vm)
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

int vm_load_guest(struct vm *vm, const struct boot_files *files)
{
    uint8_t *mp = guest_memory_ptr(&vm->mem, LAYOUT_MPTABLE_ADDR, mptable_size(vm->ncpus));
    int ret = boot_load(&vm->mem, files, &vm->boot_entry);

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

/* The kernel loaded into guest memory and kept for reboots; with --incoming or
 * --restore (QEMU's destination takes the source's command line) main checked that it
 * parses, and nothing is loaded: the guest's RAM comes from the stream, which skips zero
 * pages (a kernel loaded here would stay where the source has zeroes). It is kept for a
 * reboot with --on-reboot restart, as QEMU's destination boots its own -kernel then. */
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
    int ret = 0;

    if (vm->opts->incoming || vm->opts->restore)
        pr_info("--kernel, --initrd and --cmdline are not loaded: the guest's memory comes from "
                "%s; they are %s",
                vm->opts->incoming ? "the migration stream" : "the snapshot",
                vm->opts->on_reboot == VMM_ON_REBOOT_RESTART ? "kept for a guest reboot"
                                                             : "checked and otherwise ignored");
    else
        ret = vm_load_guest(vm, &files);
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
    /* Application processors wait for INIT/SIPI from the boot CPU. A migrated or
     * restored guest brings its own registers. */
    if (!ret && i == 0 && !vm->opts->incoming && !vm->opts->restore)
        ret = boot_setup_bsp(&v->kvm, vm->boot_entry);
    return ret;
}

/* The guest's writes to the PCI address latch (0xCF8) need no exit of their own: KVM
 * keeps them in a ring that is applied before the next exit is handled, so a
 * config-space access costs one exit, not two (QEMU does the same). Linux's early
 * scans read every bus, slot and function: tens of thousands of accesses at boot. */
static void vm_setup_coalesced(struct vm *vm)
{
    vm->coalesced = NULL;
    if (kvm_coalesced_pio_add(&vm->kvm, PCI_CONFIG_ADDR_PORT, 4) == 0)
        vm->coalesced = kvm_vcpu_coalesced_ring(&vm->vcpus[0].kvm);
    pr_debug("PCI address latch writes %s",
             vm->coalesced ? "coalesced" : "exit (no coalesced PIO)");
}

int vm_create_vcpus(struct vm *vm)
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
    if (!ret)
        vm_setup_coalesced(vm);
    return ret;
}

void vm_destroy_vcpus(struct vm *vm)
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
    vm->pause_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->signal_fd < 0 || vm->stop_efd < 0 || vm->pause_efd < 0) {
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

static void vm_debug_exit(void *opaque, uint32_t value, int status)
{
    char reason[128];

    snprintf(reason, sizeof(reason), "the guest wrote 0x%x to the debug-exit port: exit status %d",
             value, status);
    vm_request_stop(opaque, status, reason);
}

/* After the PCI devices, so an overlap with any of them is reported here. */
static int vm_setup_debug_exit(struct vm *vm)
{
    unsigned port = vm->opts->debug_exit_port;
    int ret;

    if (!vm->opts->debug_exit)
        return 0;
    debug_exit_init(&vm->debug_exit, vm_debug_exit, vm);
    ret = bus_register(&vm->pio, port, DEBUG_EXIT_NR_PORTS, &vm->debug_exit.dev);
    if (ret)
        pr_err("--debug-exit: cannot claim ports 0x%x-0x%x: %s", port,
               port + DEBUG_EXIT_NR_PORTS - 1,
               ret == -EEXIST ? "another device has some of them" : strerror(-ret));
    return ret;
}

static void vm_on_timeout(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t expirations;
    char reason[96];

    (void)events;
    if (read(vm->timer_fd, &expirations, sizeof(expirations)) != sizeof(expirations))
        return;
    snprintf(reason, sizeof(reason),
             "timeout after %u s; the guest's last lines:", vm->opts->timeout);
    vm_request_stop(vm, VMM_EXIT_TIMEOUT, reason);
}

/* The time limit runs from the end of set-up, i.e. from the guest's start. */
static int vm_setup_timeout(struct vm *vm)
{
    struct itimerspec its = {.it_value.tv_sec = (time_t)vm->opts->timeout};
    int err;

    if (!vm->opts->timeout)
        return 0;
    tail_init(&vm->console_tail);
    vm->serial.tx_tail = &vm->console_tail;
    vm->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (vm->timer_fd < 0 || timerfd_settime(vm->timer_fd, 0, &its, NULL)) {
        err = errno;
        pr_err("--timeout: cannot set up a timerfd: %s", strerror(err));
        return -err;
    }
    err = event_loop_add(&vm->loop, vm->timer_fd, EPOLLIN, vm_on_timeout, vm);
    if (err)
        pr_err("--timeout: cannot add the timerfd to the event loop: %s", strerror(-err));
    return err;
}

/* The framing lines make the guest's words distinguishable from vmm's. */
static int vm_setup_worker(struct vm *vm)
{
    int ret;

    vm->worker_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->worker_efd < 0) {
        ret = -errno;
        pr_err("cannot create the worker's eventfd: %s", strerror(-ret));
        return ret;
    }
    ret = event_thread_init(&vm->worker, "vmm-worker");
    if (ret) {
        pr_err("cannot create the worker's loop: %s", strerror(-ret));
        return ret;
    }
    vm->worker_ready = true;
    return 0;
}

/* What migration and snapshots save, by id: the migration code knows no device. */
static void vm_list_devices(struct vm *vm)
{
    struct device *legacy[] = {&vm->serial.dev, &vm->i8042.cmd_dev, &vm->rtc.dev};

    vm->ndevices = 0;
    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
        vm->devices[vm->ndevices++] = legacy[i];
    for (unsigned i = 0; i < vm->opts->nnets; i++)
        vm->devices[vm->ndevices++] = &vm->nets[i].vp.caps_dev;
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
    vm->timer_fd = vm->pause_efd = vm->nets_stop_efd = vm->nets_ready_efd = -1;
    vm->worker_efd = -1;
    vm->kvm.sys_fd = vm->kvm.vm_fd = vm->mem.fd = -1;
    vm->loop.epfd = -1;
    pthread_mutex_init(&vm->stop_lock, NULL);
    pthread_mutex_init(&vm->pause_lock, NULL);
    pthread_mutex_init(&vm->coalesced_lock, NULL);
    pthread_cond_init(&vm->resume_cond, NULL);

    ret = vm_setup_kvm(vm);
    if (!ret)
        ret = vm_setup_memory(vm);
    if (!ret && kernel)
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
    if (!ret)
        ret = vm_setup_debug_exit(vm);
    if (!ret)
        ret = vm_setup_timeout(vm);
    if (!ret)
        ret = vm_setup_worker(vm);
    if (!ret)
        vm_list_devices(vm);
    if (!ret)
        ret = vm_migration_init(vm);
    if (ret)
        vm_destroy(vm);
    return ret;
}

void vm_destroy(struct vm *vm)
{
    if (vm->loop.epfd >= 0)
        event_loop_close_calls(&vm->loop); /* fails a migration thread's calls into the loop */
    vm_stop_worker(vm);
    if (vm->vcpus)
        vm_stop_vcpus(vm);
    vm_migration_destroy(vm);
    console_destroy(&vm->console);
    if (vm->signal_fd >= 0)
        close(vm->signal_fd);
    if (vm->stop_efd >= 0)
        close(vm->stop_efd);
    if (vm->pause_efd >= 0)
        close(vm->pause_efd);
    vm->signal_fd = vm->stop_efd = vm->pause_efd = -1;
    if (vm->timer_fd >= 0)
        close(vm->timer_fd);
    vm->timer_fd = -1;
    if (vm->worker_ready)
        event_thread_destroy(&vm->worker);
    vm->worker_ready = false;
    if (vm->worker_efd >= 0)
        close(vm->worker_efd);
    vm->worker_efd = -1;
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
    pthread_cond_destroy(&vm->resume_cond);
    pthread_mutex_destroy(&vm->pause_lock);
}
