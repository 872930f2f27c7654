/* The vCPU threads: each one's KVM_RUN loop, parking for a pause, kicks, and
 * starting and stopping them all (see README, "Threads"). */
#include "vm_priv.h"

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
void vm_kick_vcpus(struct vm *vm)
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
void vm_stop_vcpus(struct vm *vm)
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
int vm_start_vcpus(struct vm *vm)
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

int64_t vm_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t vm_uptime_ms(struct vm *vm)
{
    return vm->start_ms ? (uint64_t)(vm_now_ms() - vm->start_ms) : 0;
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

/* The loop waits for the vCPUs to park, at most VM_PAUSE_TIMEOUT_MS (no vCPU waits
 * for the loop, so they get there), and keeps running what other threads hand it
 * meanwhile. The kick is repeated now and then: cheap insurance against a lost one. */
static int vm_wait_parked(struct vm *vm)
{
    int64_t deadline = vm_now_ms() + VM_PAUSE_TIMEOUT_MS, left;
    unsigned running = 0;
    uint64_t v;
    int ret;

    while (!vm_all_parked(vm, &running)) {
        left = deadline - vm_now_ms();
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
    int64_t start = vm_now_ms();
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
    pr_info("paused: %u vCPUs stopped in %lld ms", vm->ncpus, (long long)(vm_now_ms() - start));
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
