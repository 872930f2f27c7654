/* PCI and the vhost-user NICs of a vm (see vm_net.c). */
#ifndef VMM_VM_NET_H
#define VMM_VM_NET_H

#include "vm.h"

/* The PCI bus, then one virtio-net PCI function per --net, each connected to its
 * backend (blocking, bounded by the option's timeout). Needs the event loop. */
int vm_setup_pci_devices(struct vm *vm);
/* Stops the NICs' backends (GET_VRING_BASE): on the loop thread, vCPUs stopped. */
void vm_stop_pci_devices(struct vm *vm);
/* A platform reset (guest reboot): the NICs stopped, PCI config as at power-on. */
void vm_reset_pci_devices(struct vm *vm);
void vm_destroy_pci_devices(struct vm *vm);

/* What the control socket's status shows of one NIC. */
struct vm_net_status {
    const char *id, *socket; /* borrowed from the NIC */
    bool connected, link_up;
    unsigned queue_pairs;
};
/* On the loop thread (the connection state changes there); i < opts->nnets. */
void vm_net_status(struct vm *vm, unsigned i, struct vm_net_status *st);

#endif
