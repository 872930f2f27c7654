#include "vm.h"

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

#define VCPU_KICK_SIGNAL SIGUSR1
#define VM_PAUSE_REKICK_MS 100
#define VM_TIMEOUT_LINES 20 /* the guest's console lines shown when --timeout expires */

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

static void vm_apply_coalesced(void *opaque, const struct kvm_coalesced_mmio *w)
{
    struct vm *vm = opaque;
    uint32_t len = w->len <= sizeof(w->data) ? w->len : sizeof(w->data);

    bus_write(w->pio ? &vm->pio : &vm->mmio, w->phys_addr, w->data, len);
}

/* Called by each vCPU out of KVM_RUN, before it handles its exit or parks. */
static void vm_flush_coalesced(struct vm *vm)
{
    struct kvm_coalesced_mmio_ring *ring = vm->coalesced;

    if (!ring || __atomic_load_n(&ring->first, __ATOMIC_RELAXED) ==
                     __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&vm->coalesced_lock);
    kvm_coalesced_drain(ring, vm_apply_coalesced, vm);
    pthread_mutex_unlock(&vm->coalesced_lock);
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
    if (!ret)
        vm_setup_coalesced(vm);
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

static void vm_print_console_tail(struct vm *vm)
{
    char text[TAIL_SIZE + 2], *line = text, *nl;

    if (!tail_last_lines(&vm->console_tail, VM_TIMEOUT_LINES, text, sizeof(text))) {
        fprintf(stderr, "vmm: | (the guest wrote nothing on its console)\n");
        return;
    }
    for (; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        fprintf(stderr, "vmm: | %s\n", line);
    }
}

/* Any status other than vmm's own was chosen by the guest (--debug-exit). */
static bool vm_exit_is_error(int code)
{
    return code == VMM_EXIT_ERROR || code == VMM_EXIT_GUEST_CRASH || code == VMM_EXIT_TIMEOUT;
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
    if (!ret)
        ret = kernel ? vm_setup_boot(vm, kernel, kernel_size, initrd, initrd_size) : 0;
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

static void vcpu_set_state(struct vm_vcpu *v, enum vm_vcpu_state state)
{
    uint64_t one = 1;

    v->state = state;
    if (state != VM_VCPU_RUNNING && write(v->vm->pause_efd, &one, sizeof(one)) < 0)
        pr_debug("pause eventfd: %s", strerror(errno));
}

/* Out of KVM_RUN and at the top of the loop: nothing of a half-handled exit is
 * pending, so the vCPU's state can be saved while it waits here. */
static void vcpu_park(struct vm_vcpu *v)
{
    struct vm *vm = v->vm;

    pthread_mutex_lock(&vm->pause_lock);
    vcpu_set_state(v, VM_VCPU_PARKED);
    while (atomic_load(&vm->pause_requested) && !atomic_load(&vm->stopping) &&
           !atomic_load(&vm->reset_requested))
        pthread_cond_wait(&vm->resume_cond, &vm->pause_lock);
    vcpu_set_state(v, VM_VCPU_RUNNING);
    pthread_mutex_unlock(&vm->pause_lock);
}

static void vcpu_exited(struct vm_vcpu *v)
{
    pthread_mutex_lock(&v->vm->pause_lock);
    vcpu_set_state(v, VM_VCPU_EXITED);
    pthread_mutex_unlock(&v->vm->pause_lock);
}

/* Before the vCPU's first KVM_RUN: the guest never runs unconfined. */
static int vcpu_sandbox(struct vm_vcpu *v)
{
    char reason[128];
    int ret = sandbox_install(SANDBOX_VCPU);

    if (ret) {
        snprintf(reason, sizeof(reason), "vcpu%d: cannot install its seccomp filter: %s",
                 v->kvm.index, strerror(-ret));
        vm_request_stop(v->vm, VMM_EXIT_ERROR, reason);
    }
    return ret;
}

static void *vcpu_thread(void *arg)
{
    struct vm_vcpu *v = arg;
    struct vm *vm = v->vm;
    sigset_t kick;
    char why[256];

    char name[16];

    snprintf(name, sizeof(name), "vmm-vcpu%d", v->kvm.index);
    pthread_setname_np(pthread_self(), name); /* before the filter, which forbids prctl */
    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    if (vm->opts->seccomp && vcpu_sandbox(v)) {
        vcpu_exited(v);
        return NULL;
    }
    while (!atomic_load(&vm->stopping) && !atomic_load(&vm->reset_requested)) {
        enum vcpu_action action;
        int ret;

        if (atomic_load(&vm->pause_requested)) {
            vcpu_park(v);
            continue;
        }
        ret = kvm_vcpu_run(&v->kvm);
        vm_flush_coalesced(vm);
        if (ret == -EINTR || ret == -EAGAIN) {
            v->kvm.run->immediate_exit = 0;
            /* Cleared before pause_requested is read again: a kick that set
             * immediate_exit after this store is not lost. */
            atomic_thread_fence(memory_order_seq_cst);
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
    vcpu_exited(v);
    return NULL;
}

/* immediate_exit catches a vCPU about to enter KVM_RUN, the signal one inside. */
static void vm_kick_vcpus(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++) {
        if (vm->vcpus[i].started) {
            vm->vcpus[i].kvm.run->immediate_exit = 1;
            pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
        }
    }
}

/* Parked vCPUs look at stopping/reset_requested again. */
static void vm_wake_parked(struct vm *vm)
{
    pthread_mutex_lock(&vm->pause_lock);
    pthread_cond_broadcast(&vm->resume_cond);
    pthread_mutex_unlock(&vm->pause_lock);
}

/* No vCPU ever waits for another thread (README, "Threads"): kicked out of KVM_RUN
 * or its park, each one ends within a device access. */
static void vm_stop_vcpus(struct vm *vm)
{
    vm_kick_vcpus(vm);
    vm_wake_parked(vm);
    for (unsigned i = 0; i < vm->ncpus; i++) {
        if (vm->vcpus[i].started) {
            pthread_join(vm->vcpus[i].thread, NULL);
            vm->vcpus[i].started = false;
        }
    }
}

/* Under pause_lock: vm_pause, on the main loop, sees each vCPU started or not. */
static int vm_start_vcpus(struct vm *vm)
{
    int ret = 0;

    pthread_mutex_lock(&vm->pause_lock);
    for (unsigned i = 0; !ret && i < vm->ncpus; i++) {
        vm->vcpus[i].state = VM_VCPU_RUNNING;
        ret = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
        if (ret)
            pr_err("cannot start vcpu%u thread: %s", i, strerror(ret));
        else
            vm->vcpus[i].started = true;
    }
    pthread_mutex_unlock(&vm->pause_lock);
    return -ret;
}

static void vm_reset_legacy_devices(struct vm *vm)
{
    struct device *legacy[] = {&vm->serial.dev, &vm->i8042.cmd_dev, &vm->rtc.dev};

    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
        if (legacy[i]->ops->reset)
            legacy[i]->ops->reset(legacy[i]);
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

/* On the last NIC's thread: every NIC has stopped; the loop finishes the reboot. */
static void vm_reboot_devices_done(struct vm *vm)
{
    uint64_t one = 1;

    atomic_store(&vm->reboot_devices_done, true);
    if (write(vm->stop_efd, &one, sizeof(one)) < 0)
        pr_debug("stop eventfd: %s", strerror(errno));
}

/* The vCPUs stop, then the devices: each NIC stops its rings and unhooks from the
 * old VM on its own thread while the loop goes on (a slow backend delays the
 * reboot, not signals or the control socket). vm_reboot_finish does the rest. */
static void vm_reboot_begin(struct vm *vm)
{
    vm->reboots++;
    pr_info("guest reset (reboot %u): restarting it", vm->reboots);
    atomic_store(&vm->phase, VM_PHASE_REBOOTING);
    vm_stop_vcpus(vm); /* they leave their loop on reset_requested: clear it after */
    atomic_store(&vm->reset_requested, false);
    vm_reset_legacy_devices(vm);
    vm_reset_pci_devices(vm, vm_reboot_devices_done);
}

/* On the worker: zeroed RAM with the kernel loaded again, then a new VM and its
 * vCPUs. */
static int vm_reboot_finish(struct vm *vm)
{
    int ret;

    if (vm->pci_ready)
        pci_reset(&vm->pci);
    ret = guest_memory_clear(&vm->mem);
    if (!ret)
        ret = vm_load_guest(vm, &vm->boot);
    if (!ret)
        ret = vm_rebuild_kvm(vm);
    return ret ? ret : vm_start_vcpus(vm);
}

/* A migrated or restored guest arrives before its vCPUs first run (on the
 * worker); vm_stop_worker's migration_interrupt ends every wait of it at once. */
static int vm_receive_guest(struct vm *vm)
{
    struct migration_host host = vm_migration_host(vm);

    if (vm->opts->incoming)
        return migration_incoming(&host, vm->opts->incoming, migration_stop_fd(vm->mig));
    if (vm->opts->restore)
        return snapshot_restore(&host, vm->opts->restore, migration_stop_fd(vm->mig));
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t vm_uptime_ms(struct vm *vm)
{
    return vm->start_ms ? (uint64_t)(now_ms() - vm->start_ms) : 0;
}

bool vm_is_paused(struct vm *vm)
{
    return atomic_load(&vm->paused);
}

static bool vm_all_parked(struct vm *vm, unsigned *running)
{
    bool all = true;

    pthread_mutex_lock(&vm->pause_lock);
    for (unsigned i = 0; all && i < vm->ncpus; i++) {
        if (vm->vcpus[i].started && vm->vcpus[i].state == VM_VCPU_RUNNING) {
            *running = i;
            all = false;
        }
    }
    pthread_mutex_unlock(&vm->pause_lock);
    return all;
}

/* The loop thread cannot simply block: a vCPU may be waiting for it in
 * event_loop_call (a NIC starting), so the calls keep running meanwhile. The
 * kick is repeated now and then: cheap insurance against a lost one. */
static int vm_wait_parked(struct vm *vm)
{
    int64_t deadline = now_ms() + VM_PAUSE_TIMEOUT_MS, left;
    unsigned running = 0;
    uint64_t v;
    int ret;

    while (!vm_all_parked(vm, &running)) {
        left = deadline - now_ms();
        if (left <= 0) {
            pr_err("pause: vcpu%u did not stop within %d ms", running, VM_PAUSE_TIMEOUT_MS);
            return -ETIMEDOUT;
        }
        ret = event_loop_wait_calls(&vm->loop, vm->pause_efd,
                                    left < VM_PAUSE_REKICK_MS ? (int)left : VM_PAUSE_REKICK_MS);
        if (ret < 0)
            return ret;
        if (ret > 0 && read(vm->pause_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            return -errno;
        if (ret == 0)
            vm_kick_vcpus(vm);
    }
    return 0;
}

static void vm_release_vcpus(struct vm *vm)
{
    pthread_mutex_lock(&vm->pause_lock);
    atomic_store(&vm->pause_requested, false);
    pthread_cond_broadcast(&vm->resume_cond);
    pthread_mutex_unlock(&vm->pause_lock);
}

int vm_pause(struct vm *vm)
{
    int64_t start = now_ms();
    int ret;

    if (atomic_load(&vm->stopping))
        return -ESHUTDOWN;
    if (atomic_load(&vm->paused))
        return 0;
    if (atomic_load(&vm->phase) == VM_PHASE_REBOOTING)
        return -EBUSY; /* the worker is building the new VM's vCPUs */
    atomic_store(&vm->pause_requested, true);
    vm_kick_vcpus(vm);
    ret = vm_wait_parked(vm);
    if (ret) {
        vm_release_vcpus(vm);
        return ret;
    }
    atomic_store(&vm->paused, true);
    pr_info("paused: %u vCPUs stopped in %lld ms", vm->ncpus, (long long)(now_ms() - start));
    return 0;
}

int vm_resume(struct vm *vm)
{
    if (!atomic_load(&vm->paused))
        return 0;
    atomic_store(&vm->paused, false);
    vm_release_vcpus(vm);
    pr_info("resumed");
    return 0;
}

static int vm_sandbox_prepare(struct vm *vm)
{
    struct sandbox_config cfg = {
        .exit_status = VMM_EXIT_ERROR,
        .kick_signal = VCPU_KICK_SIGNAL,
        .tty_fd = vm->console.raw_set ? vm->console.in_fd : -1,
        .tty = vm->console.saved,
        .kvm_vm_fd = vm->kvm.vm_fd,
    };
    int ret = sandbox_prepare(&cfg);

    if (ret)
        pr_err("cannot build the seccomp filters: %s", strerror(-ret));
    return ret;
}

/* A helper thread's first act, before its loop runs anything: its role's filter. */
static int vm_sandbox_net_thread(void *arg)
{
    (void)arg;
    return sandbox_install(SANDBOX_NET);
}

static int vm_sandbox_worker_thread(void *arg)
{
    (void)arg;
    return sandbox_install(SANDBOX_WORKER);
}

/* Each thread loads only its own role's filter. A thread inherits its creator's
 * filter, and stacked filters intersect, so the main thread confines itself
 * once the vCPU threads exist. Threads it creates later (vCPUs after a reboot, a
 * migration) inherit its filter, whose list therefore covers theirs too. */
static void vm_sandbox_main(struct vm *vm)
{
    char reason[128];
    int ret = sandbox_install(SANDBOX_MAIN);

    if (ret) {
        snprintf(reason, sizeof(reason), "cannot install the main thread's seccomp filter: %s",
                 strerror(-ret));
        vm_request_stop(vm, VMM_EXIT_ERROR, reason);
    }
}

/* ---- start-up, on the loop: the NICs' backends, then the guest arrives, then
 * the vCPUs; signals and the control socket are served all along ---- */

static void vm_worker_result(struct vm *vm, int ret)
{
    uint64_t one = 1;

    vm->worker_ret = ret;
    atomic_store(&vm->worker_done, true);
    if (write(vm->worker_efd, &one, sizeof(one)) < 0)
        pr_debug("worker eventfd: %s", strerror(errno));
}

/* On the worker: vCPU threads are created here (the main thread's sandbox has no
 * clone), and a reboot's new VM. */
static void vm_launch_job(void *arg)
{
    struct vm *vm = arg;
    int ret = vm_start_vcpus(vm);

    vm->start_ms = now_ms();
    vm_worker_result(vm, ret);
}

static void vm_receive_job(void *arg)
{
    struct vm *vm = arg;

    vm_worker_result(vm, vm_receive_guest(vm));
}

static void vm_reboot_job(void *arg)
{
    struct vm *vm = arg;

    vm_worker_result(vm, vm_reboot_finish(vm));
}

static void vm_post_to_worker(struct vm *vm, enum vm_phase phase, void (*job)(void *))
{
    int ret;

    atomic_store(&vm->phase, phase);
    ret = event_loop_post(&vm->worker.loop, job, vm);
    if (ret)
        vm_request_stop(vm, VMM_EXIT_ERROR, "the worker thread refused a job");
}

static void vm_launch(struct vm *vm)
{
    vm_post_to_worker(vm, VM_PHASE_LAUNCHING, vm_launch_job);
}

/* Every NIC has its first backend: the guest arrives (migration, snapshot) or boots. */
static void vm_nets_ready(struct vm *vm)
{
    if (vm->opts->incoming || vm->opts->restore)
        vm_post_to_worker(vm, VM_PHASE_RECEIVING, vm_receive_job);
    else
        vm_launch(vm);
}

static void vm_on_nets_ready(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t v;
    int ret;

    (void)events;
    if (read(vm->nets_ready_efd, &v, sizeof(v)) < 0 ||
        atomic_load(&vm->phase) != VM_PHASE_CONNECTING)
        return;
    ret = vm_nets_started(vm);
    if (ret == -EINPROGRESS)
        return;
    if (ret) /* the NIC said why, in one line */
        vm_request_stop(vm, VMM_EXIT_ERROR, NULL);
    else
        vm_nets_ready(vm);
}

/* A job the worker finished: the next phase, or the end. */
static void vm_on_worker(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t v;

    (void)events;
    if (read(vm->worker_efd, &v, sizeof(v)) < 0 || !atomic_exchange(&vm->worker_done, false))
        return;
    switch (atomic_load(&vm->phase)) {
    case VM_PHASE_RECEIVING:
        if (vm->worker_ret) /* the migration or restore said why */
            vm_request_stop(vm, VMM_EXIT_ERROR, NULL);
        else
            vm_launch(vm);
        break;
    case VM_PHASE_LAUNCHING:
    case VM_PHASE_REBOOTING:
        if (vm->worker_ret)
            vm_request_stop(vm, VMM_EXIT_ERROR,
                            atomic_load(&vm->phase) == VM_PHASE_REBOOTING
                                ? "the guest's reboot failed"
                                : "vCPU threads could not start");
        atomic_store(&vm->phase, VM_PHASE_RUNNING);
        break;
    default:
        break;
    }
}

/* The helper threads start now, after vmm gave up its privileges (glibc's setuid
 * reaches every thread, which their filters forbid), each confined before it runs
 * anything for a guest or a peer. */
static int vm_start(struct vm *vm)
{
    bool confine = vm->opts->seccomp;
    int ret = event_loop_add(&vm->loop, vm->nets_ready_efd, EPOLLIN, vm_on_nets_ready, vm);

    if (!ret)
        ret = event_loop_add(&vm->loop, vm->worker_efd, EPOLLIN, vm_on_worker, vm);
    if (ret) {
        pr_err("cannot watch the start-up's eventfds: %s", strerror(-ret));
        return ret;
    }
    ret = event_thread_run(&vm->worker, confine ? vm_sandbox_worker_thread : NULL, NULL);
    if (ret) {
        pr_err("cannot start the worker thread: %s", strerror(-ret));
        return ret;
    }
    atomic_store(&vm->phase, VM_PHASE_CONNECTING);
    ret = vm_start_nets(vm, confine ? vm_sandbox_net_thread : NULL, NULL);
    if (!ret && !vm->opts->nnets)
        vm_nets_ready(vm);
    return ret;
}

/* On the worker: the socket files vmm made (the control socket, server-mode NICs')
 * go with it, as QEMU removes its own; the main thread's sandbox cannot unlink. */
static void vm_unlink_job(void *arg)
{
    struct vm *vm = arg;

    if (vm->opts->api_socket && unlink(vm->opts->api_socket) < 0 && errno != ENOENT)
        pr_debug("cannot remove %s: %s", vm->opts->api_socket, strerror(errno));
    for (unsigned i = 0; i < vm->opts->nnets; i++)
        if (vm->opts->nets[i].server && vm->nets[i].net_ready && vm->nets[i].net.listen_fd >= 0 &&
            unlink(vm->opts->nets[i].socket_path) < 0 && errno != ENOENT)
            pr_debug("cannot remove %s: %s", vm->opts->nets[i].socket_path, strerror(errno));
}

/* Queued before the worker stops: it runs once the worker's current job ends. */
static void vm_remove_socket_files(struct vm *vm)
{
    if (vm->worker_ready && vm->worker.started &&
        event_loop_post(&vm->worker.loop, vm_unlink_job, vm))
        pr_debug("the socket files stay: the worker took no job");
}

/* What the worker or a NIC may be waiting on is told to stop; the worker gets a
 * grace period, after which every NIC's backend sockets are shut down (a job of the
 * worker may wait for a NIC that waits for a stalled backend). */
static void vm_stop_worker(struct vm *vm)
{
    struct pollfd p = {.fd = vm->worker_efd, .events = POLLIN};

    if (!vm->worker_ready)
        return;
    migration_interrupt(vm->mig);
    if (atomic_load(&vm->phase) == VM_PHASE_RECEIVING ||
        atomic_load(&vm->phase) == VM_PHASE_LAUNCHING ||
        atomic_load(&vm->phase) == VM_PHASE_REBOOTING) {
        if (!atomic_load(&vm->worker_done) && poll(&p, 1, VM_NET_STOP_GRACE_MS) <= 0)
            for (unsigned i = 0; i < VMM_MAX_NETS; i++)
                if (vm->nets[i].net_ready)
                    virtio_net_abort(&vm->nets[i].net);
    }
    event_thread_stop(&vm->worker);
}

int vm_run(struct vm *vm)
{
    if (vm->opts->seccomp && vm_sandbox_prepare(vm))
        return VMM_EXIT_ERROR;
    if (vm_start(vm))
        vm_request_stop(vm, VMM_EXIT_ERROR, "vmm could not start");
    else if (vm->opts->seccomp)
        vm_sandbox_main(vm);
    while (!atomic_load(&vm->stopping)) {
        int ret = event_loop_run_once(&vm->loop, -1);

        if (ret < 0) {
            pr_err("event loop failed: %s", strerror(-ret));
            vm_request_stop(vm, VMM_EXIT_ERROR, "event loop failed");
        }
        /* A reboot asked for just before a pause waits for the resume. */
        if (atomic_load(&vm->reset_requested) && !atomic_load(&vm->stopping) &&
            !atomic_load(&vm->paused) && atomic_load(&vm->phase) == VM_PHASE_RUNNING)
            vm_reboot_begin(vm);
        if (atomic_exchange(&vm->reboot_devices_done, false) && !atomic_load(&vm->stopping))
            vm_post_to_worker(vm, VM_PHASE_REBOOTING, vm_reboot_job);
    }
    /* A migration thread waiting for the loop gives up now. */
    event_loop_close_calls(&vm->loop);
    vm_remove_socket_files(vm);
    vm_stop_worker(vm);
    vm_stop_vcpus(vm);
    vm_stop_pci_devices(vm);
    console_restore(&vm->console);
    if (!vm->exit_reason[0])
        ; /* said already, where it happened */
    else if (vm_exit_is_error(vm->exit_code))
        pr_err("%s", vm->exit_reason);
    else
        pr_info("%s", vm->exit_reason);
    if (vm->exit_code == VMM_EXIT_TIMEOUT)
        vm_print_console_tail(vm);
    return vm->exit_code;
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
