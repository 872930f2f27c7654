/* MSI-X for any PCI device: the capability, the vector table and the pending bit
 * array in one of the device's BARs. The owner learns each vector's address, data
 * and effective mask through msix_ops, and raises vectors with msix_notify; a
 * vector raised while masked stays pending and is delivered when unmasked.
 *
 * Callbacks run with the msix lock held (and, for a change made through config
 * space, the PCI device lock): they must not call back into msix or pci_config_*. */
#ifndef VMM_DEVICES_MSIX_H
#define VMM_DEVICES_MSIX_H

#include "device.h"
#include "pci.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MSIX_MAX_VECTORS 2048
#define MSIX_ENTRY_SIZE 16
#define MSIX_CAP_LEN 12

/* Message control word, at capability offset 2. */
#define MSIX_CTRL_TABLE_SIZE 0x07ff /* vectors - 1 */
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_ENTRY_CTRL_MASKBIT 0x1

struct msix_ops {
    /* A vector's address, data or effective mask (entry mask, function mask or
     * MSI-X disabled) changed. All vectors start masked, with no call. */
    void (*vector_changed)(void *opaque, unsigned vector, uint64_t addr, uint32_t data,
                           bool masked);
    /* Raise one message now (required). */
    void (*deliver)(void *opaque, uint64_t addr, uint32_t data);
};

struct msix_vector {
    uint64_t addr;
    uint32_t data;
    bool masked;
};

struct msix {
    /* For a BAR that holds nothing but the table and PBA: pass it to pci_set_bar.
     * Owners that share the BAR call msix_bar_read/write from their handler. */
    struct device bar_dev;
    struct pci_device *pci;
    pthread_mutex_t lock;
    const struct msix_ops *ops;
    void *opaque;
    unsigned nvectors;
    int bar;
    uint32_t table_offset, pba_offset; /* within the BAR */
    uint8_t cap;                       /* the capability's config offset */
    bool enabled, fmask;
    uint32_t *table;             /* nvectors entries of 4 dwords */
    uint64_t *pba;               /* one bit per vector */
    struct msix_vector *vectors; /* what vector_changed last reported */
};

/* Adds the capability to dev (before pci_register; the BAR must be declared and
 * hold both structures, 8-byte aligned and apart). Returns 0, -EINVAL, -ENOSPC
 * or -ENOMEM. */
int msix_init(struct msix *m, struct pci_device *dev, unsigned nvectors, int bar,
              uint32_t table_offset, uint32_t pba_offset, const struct msix_ops *ops, void *opaque);
void msix_destroy(struct msix *m);

/* Delivers vector now, or marks it pending while it is masked. -EINVAL for a
 * vector the table does not have. */
int msix_notify(struct msix *m, unsigned vector);

/* A platform reset: MSI-X off, every entry zero and masked, nothing pending. */
void msix_reset(struct msix *m);

bool msix_enabled(struct msix *m);
bool msix_vector_masked(struct msix *m, unsigned vector);

/* Guest accesses at offset within the BAR. They return false, touching nothing,
 * unless the access lies wholly in the table or wholly in the PBA. */
bool msix_bar_read(struct msix *m, uint64_t offset, uint8_t *data, uint32_t len);
bool msix_bar_write(struct msix *m, uint64_t offset, const uint8_t *data, uint32_t len);

/* Migration: control bits, table and PBA. load reports every vector through
 * vector_changed and delivers pending vectors that are not masked. */
int msix_save(struct msix *m, struct state_buf *out);
int msix_load(struct msix *m, const uint8_t *data, size_t len);

#endif
