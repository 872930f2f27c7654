/* The machine: KVM, memory, devices, vCPU threads and the event loop, set up
 * in order and torn down in reverse. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include "boot.h"
#include "console.h"
#include "dirty.h"
#include "../common/event_loop.h"
#include "memory.h"
#include "options.h"
#include "trace_file.h"
#include "../common/tail.h"
#include "../devices/bus.h"
#include "../devices/debug_exit.h"
#include "../devices/i8042.h"
#include "../devices/pci.h"
#include "../devices/rtc.h"
#include "../devices/virtio_net.h"
#include "../devices/virtio_pci.h"
#include "../kvm/irq_routing.h"
#include "../devices/serial.h"
#include "../kvm/kvm.h"
#include "../kvm/vcpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

enum vmm_exit_code {
    VMM_EXIT_OK = 0,
    VMM_EXIT_ERROR = 1,
    VMM_EXIT_GUEST_CRASH = 2,
    VMM_EXIT_TIMEOUT = 124, /* --timeout expired; coreutils timeout(1) uses it too */
};

/* Debug-exit statuses are odd: an even status is always vmm's own. */
_Static_assert(VMM_EXIT_TIMEOUT % 2 == 0, "--timeout's status must not be a debug-exit one");

struct vm;
struct migration;

/* Where the machine is, as the main loop drives it. */
enum vm_phase {
    VM_PHASE_CONNECTING, /* each NIC waits for its first backend on its own thread */
    VM_PHASE_RECEIVING,  /* --incoming/--restore: the worker receives the guest */
    VM_PHASE_LAUNCHING,  /* the worker starts the vCPU threads */
    VM_PHASE_RUNNING,
    VM_PHASE_REBOOTING, /* vCPUs stopped; NICs stopping, then the worker rebuilds the VM */
};

/* Where a vCPU thread is, for vm_pause (under vm->pause_lock). */
enum vm_vcpu_state { VM_VCPU_RUNNING, VM_VCPU_PARKED, VM_VCPU_EXITED };

struct vm_vcpu {
    struct vm *vm;
    struct kvm_vcpu kvm;
    pthread_t thread;
    bool started;
    enum vm_vcpu_state state;
};

struct vm_net {
    struct vm *vm;
    char id[16];
    struct event_thread thread; /* the NIC's loop: its vhost-user link, control queue */
    struct virtio_net net;
    struct virtio_pci vp;
    bool thread_ready, net_ready, pci_ready, registered;
    atomic_bool reset_done; /* vm_reset_pci_devices / vm_stop_pci_devices */
    atomic_bool started;    /* its first backend came, or failed to: start_ret */
    int start_ret;
};

struct vm {
    const struct vmm_options *opts;
    struct trace_file *vhost_trace; /* borrowed; NULL without --vhost-trace */
    struct kvm kvm;
    struct guest_memory mem;
    unsigned ncpus;
    struct vm_vcpu *vcpus;
    struct bus pio;
    struct bus mmio;
    struct serial serial;
    struct i8042 i8042;
    struct rtc rtc;
    struct pci pci;
    bool pci_ready;
    struct kvm_irq_routing_table routing;
    struct virtio_platform platform;
    struct guest_mem_access mem_access;
    struct vm_net nets[VMM_MAX_NETS];
    atomic_uint nets_resetting; /* NICs whose platform reset is under way */
    void (*nets_reset_done)(struct vm *vm);
    int nets_stop_efd;  /* the last NIC stopped (vm_stop_pci_devices) */
    int nets_ready_efd; /* a NIC's first backend came or failed to (vm_start_nets) */
    struct event_loop loop;
    struct console console;
    int signal_fd;
    int stop_efd;
    struct debug_exit debug_exit; /* with --debug-exit */
    int timer_fd;                 /* with --timeout */
    struct tail console_tail;     /* with --timeout: the guest's last console output */

    struct boot_files boot; /* kept for reboots (--on-reboot restart) */
    uint8_t *kernel_copy, *initrd_copy;
    uint64_t boot_entry; /* where the boot CPU starts: the bzImage's or ELF's 64-bit entry */
    unsigned reboots;

    /* Migration (vm_migration.c): the devices it saves by id, and the log of vmm's
     * own writes into guest RAM while one runs (NULL otherwise). */
    struct migration *mig;
    struct device *devices[8 + VMM_MAX_NETS];
    unsigned ndevices;
    _Atomic(struct dirty_own_log *) own_log;
    int64_t start_ms; /* CLOCK_MONOTONIC at vm_run */

    /* Pausing: vCPUs park at the top of their loop until resumed. */
    pthread_mutex_t pause_lock;
    /* KVM's ring of coalesced writes (the PCI address latch), NULL without; drained
     * under coalesced_lock by whichever vCPU leaves KVM_RUN. */
    struct kvm_coalesced_mmio_ring *coalesced;
    pthread_mutex_t coalesced_lock;
    pthread_cond_t resume_cond;
    atomic_bool pause_requested;
    atomic_bool paused; /* vm_pause finished: every vCPU parked or exited */
    int pause_efd;      /* a vCPU parked or exited: vm_pause looks again */

    atomic_bool stopping;
    atomic_bool reset_requested;
    atomic_bool reboot_devices_done; /* a reboot's NICs stopped: the worker finishes it */
    atomic_int phase;                /* enum vm_phase */
    /* The worker thread: what the main loop must not do itself (it creates the
     * vCPU threads, receives a migrated guest, rebuilds the VM on a reboot), one job
     * at a time; each result comes back through worker_efd. */
    struct event_thread worker;
    bool worker_ready;
    int worker_efd;
    atomic_bool worker_done;
    atomic_bool socket_files_removed; /* by the worker, at exit: nothing else unlinks them */
    int worker_ret;
    pthread_mutex_t stop_lock;
    int exit_code;
    char exit_reason[256];
};

/* Builds the whole machine; on failure logs why and returns -errno with
 * everything already built torn down. vhost_trace (may be NULL) must outlive vm. */
int vm_create(struct vm *vm, const struct vmm_options *opts, struct trace_file *vhost_trace,
              const uint8_t *kernel, size_t kernel_size, const uint8_t *initrd, size_t initrd_size);

/* Starts the vCPUs and runs the event loop until the guest or a signal ends it. */
int vm_run(struct vm *vm);

/* Thread-safe; the first request decides the exit code and reason (NULL: logged
 * already where it happened, nothing more is said at exit). */
void vm_request_stop(struct vm *vm, int exit_code, const char *reason);

void vm_destroy(struct vm *vm);

/* From the loop thread: takes every vCPU out of KVM_RUN and parks it; returns
 * once all are parked (or have exited). Idempotent. Calls vCPUs post to the loop
 * meanwhile still run. -ESHUTDOWN when the VM is stopping, -ETIMEDOUT (resumed
 * again) when a vCPU does not stop within VM_PAUSE_TIMEOUT_MS. A guest reboot
 * requested while paused happens at vm_resume; a stop request ends a paused VM. */
#define VM_PAUSE_TIMEOUT_MS 5000
int vm_pause(struct vm *vm);
/* From the loop thread: the parked vCPUs run again. Idempotent. */
int vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);
/* Milliseconds since vm_run started the guest. */
uint64_t vm_uptime_ms(struct vm *vm);

#endif
