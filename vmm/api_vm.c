/* The machine behind the control socket's commands: api_ops over a struct vm
 * (the protocol itself is in api.c). */
#include "api.h"

#include "vm.h"
#include "vm_migration.h"

#include <errno.h>
#include <stdio.h>

static void vm_op_status(void *opaque, struct api_status *st)
{
    struct vm *vm = opaque;
    int phase = atomic_load(&vm->phase);

    /* QEMU's words for a VM whose vCPUs have not run yet. */
    if (atomic_load(&vm->stopping))
        st->state = "shutting-down";
    else if (phase == VM_PHASE_RECEIVING)
        st->state = "inmigrate";
    else if (phase == VM_PHASE_CONNECTING || phase == VM_PHASE_LAUNCHING)
        st->state = "prelaunch";
    else
        st->state = vm_is_paused(vm) ? "paused" : "running";
    st->vcpus = vm->ncpus;
    st->memory_bytes = vm->opts->memory;
    st->uptime_ms = vm_uptime_ms(vm);
    st->reboots = vm->reboots;
    st->nnets = vm->opts->nnets;
    for (unsigned i = 0; i < st->nnets; i++)
        vm_net_status(vm, i, &st->nets[i]);
}

static int vm_op_pause(void *opaque)
{
    return vm_pause(opaque);
}

static int vm_op_resume(void *opaque)
{
    return vm_resume(opaque);
}

static void vm_op_shutdown(void *opaque, const char *reason)
{
    vm_request_stop(opaque, VMM_EXIT_OK, reason);
}

/* A migration or a snapshot starts from a running (or paused) guest: before its
 * vCPUs ran, or while it reboots, there is no machine state to send. */
static int vm_op_check_running(struct vm *vm, char *err, size_t errlen)
{
    if (atomic_load(&vm->phase) == VM_PHASE_RUNNING)
        return 0;
    snprintf(err, errlen, "the guest is not running yet (or is rebooting): try again later");
    return -EAGAIN;
}

static int vm_op_migrate(void *opaque, const struct migration_params *p, char *err, size_t errlen)
{
    struct vm *vm = opaque;
    int ret = vm_op_check_running(vm, err, errlen);

    return ret ? ret : migration_start(vm->mig, p, err, errlen);
}

static int vm_op_migrate_cancel(void *opaque, char *err, size_t errlen)
{
    struct vm *vm = opaque;

    return migration_cancel(vm->mig, err, errlen);
}

static int vm_op_snapshot(void *opaque, const char *dir, char *err, size_t errlen)
{
    struct vm *vm = opaque;
    int ret = vm_op_check_running(vm, err, errlen);

    return ret ? ret : snapshot_start(vm->mig, dir, err, errlen);
}

static void vm_op_query_migrate(void *opaque, struct migration_info *info)
{
    struct vm *vm = opaque;

    migration_query(vm->mig, info);
}

static int vm_op_migrate_set_parameters(void *opaque, const struct migration_tunables *t, char *err,
                                        size_t errlen)
{
    struct vm *vm = opaque;

    return migration_set_tunables(vm->mig, t, err, errlen);
}

static void vm_op_query_migrate_parameters(void *opaque, struct migration_tunables *t)
{
    struct vm *vm = opaque;

    migration_get_tunables(vm->mig, t);
}

static const struct api_ops api_vm_ops = {
    .status = vm_op_status,
    .pause = vm_op_pause,
    .resume = vm_op_resume,
    .shutdown = vm_op_shutdown,
    .migrate = vm_op_migrate,
    .migrate_cancel = vm_op_migrate_cancel,
    .snapshot = vm_op_snapshot,
    .query_migrate = vm_op_query_migrate,
    .migrate_set_parameters = vm_op_migrate_set_parameters,
    .query_migrate_parameters = vm_op_query_migrate_parameters,
};

int api_init(struct api *api, const char *path, struct vm *vm, struct event_loop *loop)
{
    api_setup(api, &api_vm_ops, vm);
    return api_listen(api, path, loop);
}
