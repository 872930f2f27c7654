/* The machine's life on the main loop: start-up (each NIC's first backend, the guest
 * arriving, the vCPUs starting), reboots, the sandbox's roles, and the exit. */
#include "vm_priv.h"

#include "layout.h"
#include "sandbox.h"
#include "vcpu_exit.h"
#include "vm_migration.h"
#include "vm_net.h"
#include "../common/log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

void vm_print_console_tail(struct vm *vm)
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
bool vm_exit_is_error(int code)
{
    return code == VMM_EXIT_ERROR || code == VMM_EXIT_GUEST_CRASH || code == VMM_EXIT_TIMEOUT;
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

/* Each thread loads only its own role's filter. The main thread's comes last, once
 * every other thread exists: the threads started later (vCPUs, a migration's) are
 * the worker's, whose filter they inherit, never the main thread's. */
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

    vm->start_ms = vm_now_ms();
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
    if (vm->opts->incoming || vm->opts->restore) {
        for (unsigned i = 0; i < vm->opts->nnets; i++)
            if (virtio_net_prepare_memory(&vm->nets[i].net))
                pr_debug("%s: the memory table waits for the start", vm->nets[i].id);
        vm_post_to_worker(vm, VM_PHASE_RECEIVING, vm_receive_job);
    } else
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
    atomic_store(&vm->socket_files_removed, true);
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
void vm_stop_worker(struct vm *vm)
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
