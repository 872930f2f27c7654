/* How migration reaches the machine it moves: an ops table the VM fills
 * (vmm/vm_migration.c) and a test fills with a fake (tests/unit/test_migration.c),
 * as the control socket reaches it through api_ops. Migration knows no device
 * model and no struct vm: it walks the device list, the memory map and these ops.
 * Cloud Hypervisor's vm-migration traits (Pausable, Snapshottable, Migratable with
 * start/stop_dirty_log and dirty_log) are the model. */
#ifndef VMM_MIGRATION_HOST_H
#define VMM_MIGRATION_HOST_H

#include "memory.h"
#include "../common/state_buf.h"
#include "../devices/device.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIGRATION_MAX_NETS 4

struct dirty_own_log;

/* What the stream's header says of the machine, beside its RAM layout: both ends
 * must agree before any page moves. */
struct migration_machine {
    unsigned ncpus;
    unsigned nnets;
    unsigned net_queue_pairs[MIGRATION_MAX_NETS];
};

/* Every op but pause/resume may be called from any thread, the migration's own
 * included; none is called with a migration lock held. */
struct migration_host_ops {
    /* ---- what the machine is ---- */
    /* The guest memory map (regions: gpa, size, hva; the memfd, whose holes the
     * first pass skips). Fixed for the machine's life. */
    const struct guest_memory *(*memory)(void *opaque);
    void (*machine)(void *opaque, struct migration_machine *m);
    /* The devices whose state is saved by id, and whose save/load/pause/resume and
     * log_check/log_start/log_stop ops migration calls. Fixed after set-up. */
    unsigned (*devices)(void *opaque, struct device *const **list);

    /* ---- vCPUs and the VM's own (KVM) state ---- */
    /* Every vCPU out of KVM_RUN and parked, or running again. They may wait for
     * vmm's main loop (the migration thread calls them; on the loop thread they run
     * at once). pause: 0, -ESHUTDOWN (the VM is stopping), -ETIMEDOUT. */
    int (*pause)(void *opaque);
    int (*resume)(void *opaque);
    bool (*paused)(void *opaque);
    /* A parked (or not yet started) vCPU's state, and the VM's (irqchip, PIT,
     * clock): blobs the other end's load takes as they are. */
    int (*vcpu_save)(void *opaque, unsigned cpu, struct state_buf *out);
    int (*vcpu_load)(void *opaque, unsigned cpu, const uint8_t *data, size_t len);
    int (*vm_save)(void *opaque, struct state_buf *out);
    int (*vm_load)(void *opaque, const uint8_t *data, size_t len);

    /* ---- dirty logging of the vCPUs' writes (KVM's per-slot log) ---- */
    /* Logging on or off on every RAM region's slot (region i is slot i). */
    int (*slot_log)(void *opaque, bool on);
    /* Tries once to switch the slots to manual protection (pages stay writable
     * until slot_log_clear): true when it is on. */
    bool (*slot_log_manual_protect)(void *opaque);
    /* Region i's log since the last get (one bit per 4 KiB page, 64-bit words). */
    int (*slot_log_get)(void *opaque, int region, uint64_t *bits);
    /* Manual protection only: re-protects the pages set in bits. */
    int (*slot_log_clear)(void *opaque, int region, uint64_t npages, uint64_t *bits);

    /* ---- vmm's own writes into guest RAM (the NICs' control queue) ---- */
    /* From now on, mark them in log (dirty_own_log_mark); NULL: stop. The log
     * stays valid until the migration is destroyed: a writer may still hold it. */
    void (*own_log)(void *opaque, struct dirty_own_log *log);
    /* Optional: starts the migration's (or snapshot's) thread, as pthread_create does:
     * vmm creates it on a thread whose sandbox allows that (the main loop's does
     * not). NULL: pthread_create here. */
    int (*spawn)(void *opaque, pthread_t *thread, void *(*fn)(void *), void *arg);
};

struct migration_host {
    const struct migration_host_ops *ops;
    void *opaque;
};

#endif
