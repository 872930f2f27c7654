#include "irq_routing.h"

#include "../common/log.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* KVM_SET_GSI_ROUTING replaces everything, so the irqchip's own routes (PIC
 * pins for GSIs 0-15 except the cascade, IOAPIC pins for 0-23) go in each time. */
static unsigned add_irqchip_routes(struct kvm_irq_routing_entry *e)
{
    unsigned n = 0;

    for (uint32_t gsi = 0; gsi < 16; gsi++) {
        if (gsi == 2)
            continue;
        e[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                          .pin = gsi % 8},
        };
    }
    for (uint32_t gsi = 0; gsi < KVM_IRQCHIP_GSIS; gsi++)
        e[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi},
        };
    return n;
}

static unsigned add_msi_routes(const struct kvm_irq_routing_table *t,
                               struct kvm_irq_routing_entry *e)
{
    unsigned n = 0;

    for (unsigned i = 0; i < KVM_MSI_ROUTES_MAX; i++) {
        const struct kvm_msi_route *r = &t->routes[i];

        if (!r->used)
            continue;
        e[n++] = (struct kvm_irq_routing_entry){
            .gsi = KVM_MSI_GSI_BASE + i,
            .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = {.address_lo = (uint32_t)r->addr,
                      .address_hi = (uint32_t)(r->addr >> 32),
                      .data = r->data},
        };
    }
    return n;
}

/* Caller holds t->lock. */
static int kvm_irq_routing_commit(struct kvm_irq_routing_table *t)
{
    size_t max = 16 + KVM_IRQCHIP_GSIS + KVM_MSI_ROUTES_MAX;
    struct kvm_irq_routing *r = calloc(1, sizeof(*r) + max * sizeof(r->entries[0]));
    int ret = 0;

    if (!r)
        return -ENOMEM;
    r->nr = add_irqchip_routes(r->entries);
    r->nr += add_msi_routes(t, r->entries + r->nr);
    ret = kvm_fd_ioctl(t->kvm->vm_fd, KVM_SET_GSI_ROUTING, r, "KVM_SET_GSI_ROUTING");
    free(r);
    return ret;
}

int kvm_irq_routing_init(struct kvm_irq_routing_table *t, struct kvm *kvm)
{
    memset(t, 0, sizeof(*t));
    t->kvm = kvm;
    return -pthread_mutex_init(&t->lock, NULL);
}

void kvm_irq_routing_destroy(struct kvm_irq_routing_table *t)
{
    pthread_mutex_destroy(&t->lock);
}

int kvm_msi_route_alloc(struct kvm_irq_routing_table *t)
{
    int gsi = -ENOSPC;

    pthread_mutex_lock(&t->lock);
    for (unsigned i = 0; i < KVM_MSI_ROUTES_MAX; i++) {
        if (!t->routes[i].used) {
            t->routes[i] = (struct kvm_msi_route){.used = true};
            gsi = (int)(KVM_MSI_GSI_BASE + i);
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return gsi;
}

static struct kvm_msi_route *route_of(struct kvm_irq_routing_table *t, int gsi)
{
    if (gsi < KVM_MSI_GSI_BASE || gsi >= KVM_MSI_GSI_BASE + KVM_MSI_ROUTES_MAX)
        return NULL;
    return &t->routes[gsi - KVM_MSI_GSI_BASE];
}

void kvm_msi_route_free(struct kvm_irq_routing_table *t, int gsi)
{
    struct kvm_msi_route *r;

    pthread_mutex_lock(&t->lock);
    r = route_of(t, gsi);
    if (r && r->used) {
        r->used = false;
        kvm_irq_routing_commit(t);
    }
    pthread_mutex_unlock(&t->lock);
}

int kvm_msi_route_set(struct kvm_irq_routing_table *t, int gsi, uint64_t addr, uint32_t data)
{
    struct kvm_msi_route *r;
    int ret = -EINVAL;

    pthread_mutex_lock(&t->lock);
    r = route_of(t, gsi);
    if (r && r->used) {
        r->addr = addr;
        r->data = data;
        ret = kvm_irq_routing_commit(t);
    }
    pthread_mutex_unlock(&t->lock);
    return ret;
}

int kvm_signal_msi(struct kvm *kvm, uint64_t addr, uint32_t data)
{
    struct kvm_msi msi = {
        .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};

    return kvm_fd_ioctl(kvm->vm_fd, KVM_SIGNAL_MSI, &msi, "KVM_SIGNAL_MSI");
}
