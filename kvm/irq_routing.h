/* KVM's GSI routing table: the in-kernel irqchip's default routes plus one MSI
 * route per MSI-X vector, so an irqfd on that GSI raises the vector in the kernel. */
#ifndef VMM_KVM_IRQ_ROUTING_H
#define VMM_KVM_IRQ_ROUTING_H

#include "kvm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define KVM_IRQCHIP_GSIS 24 /* IOAPIC pins; the PIC shares GSIs 0-15 */
#define KVM_MSI_GSI_BASE 24 /* MSI routes are allocated from here */
#define KVM_MSI_ROUTES_MAX 1000

struct kvm_msi_route {
    bool used;
    uint64_t addr;
    uint32_t data;
};

struct kvm_irq_routing_table {
    struct kvm *kvm;
    pthread_mutex_t lock;
    struct kvm_msi_route routes[KVM_MSI_ROUTES_MAX];
};

int kvm_irq_routing_init(struct kvm_irq_routing_table *t, struct kvm *kvm);
void kvm_irq_routing_destroy(struct kvm_irq_routing_table *t);

/* Allocates a GSI for an MSI route (initially pointing nowhere); -ENOSPC when full. */
int kvm_msi_route_alloc(struct kvm_irq_routing_table *t);
void kvm_msi_route_free(struct kvm_irq_routing_table *t, int gsi);

/* Points an MSI GSI at address/data and pushes the whole table to KVM. */
int kvm_msi_route_set(struct kvm_irq_routing_table *t, int gsi, uint64_t addr, uint32_t data);

/* Injects one MSI directly (used for interrupts vmm raises itself). */
int kvm_signal_msi(struct kvm *kvm, uint64_t addr, uint32_t data);

#endif
