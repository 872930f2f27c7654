/* The machine behind migration_host_ops: the memory map, the device list, the
 * vCPUs (paused through the main loop), KVM's state and slot logging. */
#include "vm_migration.h"

#include "vm.h"
#include "../common/log.h"
#include "../kvm/dirty_log.h"
#include "../kvm/vcpu_state.h"
#include "../kvm/vm_state.h"

#include <errno.h>
#include <linux/kvm.h>

static const struct guest_memory *host_memory(void *opaque)
{
    struct vm *vm = opaque;

    return &vm->mem;
}

static void host_machine(void *opaque, struct migration_machine *m)
{
    struct vm *vm = opaque;

    *m = (struct migration_machine){.ncpus = vm->ncpus};
    m->nnets = vm->opts->nnets;
    for (unsigned i = 0; i < vm->opts->nnets && i < MIGRATION_MAX_NETS; i++)
        m->net_queue_pairs[i] = vm->opts->nets[i].queue_pairs;
}

static unsigned host_devices(void *opaque, struct device *const **list)
{
    struct vm *vm = opaque;

    *list = vm->devices;
    return vm->ndevices;
}

static int loop_pause(void *arg)
{
    return vm_pause(arg);
}

static int loop_resume(void *arg)
{
    return vm_resume(arg);
}

/* vm_pause and vm_resume belong to the loop thread; on it they run at once. */
static int host_pause(void *opaque)
{
    struct vm *vm = opaque;

    return event_loop_call(&vm->loop, loop_pause, vm);
}

static int host_resume(void *opaque)
{
    struct vm *vm = opaque;

    return event_loop_call(&vm->loop, loop_resume, vm);
}

static bool host_paused(void *opaque)
{
    return vm_is_paused(opaque);
}

static int host_vcpu_save(void *opaque, unsigned cpu, struct state_buf *out)
{
    struct vm *vm = opaque;

    return cpu < vm->ncpus ? kvm_vcpu_state_save(&vm->vcpus[cpu].kvm, out) : -EINVAL;
}

static int host_vcpu_load(void *opaque, unsigned cpu, const uint8_t *data, size_t len)
{
    struct vm *vm = opaque;

    return cpu < vm->ncpus ? kvm_vcpu_state_load(&vm->vcpus[cpu].kvm, data, len) : -EINVAL;
}

static int host_vm_save(void *opaque, struct state_buf *out)
{
    struct vm *vm = opaque;

    return kvm_vm_state_save(&vm->kvm, out);
}

static int host_vm_load(void *opaque, const uint8_t *data, size_t len)
{
    struct vm *vm = opaque;

    return kvm_vm_state_load(&vm->kvm, data, len);
}

static int host_slot_log(void *opaque, bool on)
{
    struct vm *vm = opaque;
    int ret = 0;

    for (int i = 0; !ret && i < vm->mem.nregions; i++) {
        const struct guest_region *g = &vm->mem.regions[i];

        ret = kvm_set_user_memory_region(&vm->kvm, (uint32_t)i, g->gpa, g->size, g->hva,
                                         on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
    }
    return ret;
}

static bool host_slot_log_manual_protect(void *opaque)
{
    struct vm *vm = opaque;

    return kvm_dirty_log_enable_manual_protect(&vm->kvm);
}

static int host_slot_log_get(void *opaque, int region, uint64_t *bits)
{
    struct vm *vm = opaque;

    return kvm_get_dirty_log(&vm->kvm, (uint32_t)region, bits);
}

static int host_slot_log_clear(void *opaque, int region, uint64_t npages, uint64_t *bits)
{
    struct vm *vm = opaque;

    return kvm_clear_dirty_log(&vm->kvm, (uint32_t)region, npages, bits);
}

static void host_own_log(void *opaque, struct dirty_own_log *log)
{
    struct vm *vm = opaque;

    atomic_store(&vm->own_log, log);
}

struct spawn_args {
    pthread_t *thread;
    void *(*fn)(void *);
    void *arg;
};

static int spawn_on_worker(void *arg)
{
    struct spawn_args *a = arg;

    return -pthread_create(a->thread, NULL, a->fn, a->arg);
}

/* The worker creates the job's thread: the main loop's sandbox has no clone, and the
 * new thread inherits the worker's filter, which allows what a migration does. */
static int host_spawn(void *opaque, pthread_t *thread, void *(*fn)(void *), void *arg)
{
    struct vm *vm = opaque;
    struct spawn_args a = {.thread = thread, .fn = fn, .arg = arg};

    if (!vm->worker_ready)
        return -pthread_create(thread, NULL, fn, arg);
    return event_loop_call(&vm->worker.loop, spawn_on_worker, &a);
}

static const struct migration_host_ops vm_migration_ops = {
    .memory = host_memory,
    .machine = host_machine,
    .devices = host_devices,
    .pause = host_pause,
    .resume = host_resume,
    .paused = host_paused,
    .vcpu_save = host_vcpu_save,
    .vcpu_load = host_vcpu_load,
    .vm_save = host_vm_save,
    .vm_load = host_vm_load,
    .slot_log = host_slot_log,
    .slot_log_manual_protect = host_slot_log_manual_protect,
    .slot_log_get = host_slot_log_get,
    .slot_log_clear = host_slot_log_clear,
    .own_log = host_own_log,
    .spawn = host_spawn,
};

struct migration_host vm_migration_host(struct vm *vm)
{
    return (struct migration_host){.ops = &vm_migration_ops, .opaque = vm};
}

int vm_migration_init(struct vm *vm)
{
    struct migration_host host = vm_migration_host(vm);

    vm->mig = migration_create(&host);
    if (!vm->mig) {
        pr_err("out of memory for the migration state");
        return -ENOMEM;
    }
    return 0;
}

void vm_migration_destroy(struct vm *vm)
{
    migration_destroy(vm->mig);
    vm->mig = NULL;
}
