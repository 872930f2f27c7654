/* PCI and the vhost-user NICs of a vm (see vm_net.c). */
#ifndef VMM_VM_NET_H
#define VMM_VM_NET_H

#include "vm.h"

/* The PCI bus, then one virtio-net PCI function per --net, each with a thread of
 * its own for its loop ("vmm-net0"...), a server socket bound. */
int vm_setup_pci_devices(struct vm *vm);
/* Starts each NIC's thread, init(arg) its first act (its seccomp filter), then
 * each NIC waits for its first backend there; each one done (connected, or not
 * within its connect-timeout-ms) makes vm->nets_ready_efd readable. */
int vm_start_nets(struct vm *vm, int (*init)(void *arg), void *arg);
/* 0 when every NIC has its backend, -EINPROGRESS while one still waits, or the
 * first NIC's error (logged by it). */
int vm_nets_started(struct vm *vm);
/* vmm is exiting, vCPUs stopped: each NIC stops its rings (GET_VRING_BASE) on its
 * thread; a NIC still busy after VM_NET_STOP_GRACE_MS has its backend's sockets
 * shut down (a stalled backend cannot hold vmm), then every NIC thread ends. */
#define VM_NET_STOP_GRACE_MS 400
void vm_stop_pci_devices(struct vm *vm);
/* A platform reset (guest reboot), vCPUs stopped: returns at once; each NIC
 * stops on its thread and PCI config returns to power-on, then done(vm) runs on
 * the thread of the last NIC to finish (at once, here, without NICs). */
void vm_reset_pci_devices(struct vm *vm, void (*done)(struct vm *vm));
void vm_destroy_pci_devices(struct vm *vm);

/* What the control socket's status shows of one NIC. */
struct vm_net_status {
    const char *id, *socket; /* borrowed from the NIC */
    bool connected, link_up;
    unsigned queue_pairs;
};
/* From any thread; i < opts->nnets. */
void vm_net_status(struct vm *vm, unsigned i, struct vm_net_status *st);

#endif
