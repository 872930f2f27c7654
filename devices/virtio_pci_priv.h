/* What virtio-pci's two files share: the transport (virtio_pci.c: the common
 * configuration, queues, wiring, resets) and its migration state
 * (virtio_pci_state.c). */
#ifndef VMM_DEVICES_VIRTIO_PCI_PRIV_H
#define VMM_DEVICES_VIRTIO_PCI_PRIV_H

#include "virtio_pci.h"

#include <stddef.h>

#define ISR_QUEUE 0x1
#define ISR_CONFIG 0x2

static inline struct virtio_pci *vp_from_caps(struct device *dev)
{
    return (struct virtio_pci *)((char *)dev - offsetof(struct virtio_pci, caps_dev));
}

/* virtio_pci.c. Callers of attach_call, set_doorbells and unwire hold vp->lock. */
uint64_t vp_offered_features(struct virtio_pci *vp);
bool vp_vector_valid(struct virtio_pci *vp, uint16_t vector);
void vp_on_masked_call(void *arg, uint32_t events);
void vp_attach_call(struct virtio_pci *vp, unsigned q);
int vp_set_doorbells(struct virtio_pci *vp, uint64_t base, bool assign);
void vp_unwire(struct virtio_pci *vp);

/* virtio_pci_state.c: the caps device's migration ops. */
int vp_caps_save(struct device *dev, struct state_buf *out);
int vp_caps_load(struct device *dev, const uint8_t *data, size_t len);
int vp_caps_pause(struct device *dev);
int vp_caps_resume(struct device *dev);
int vp_caps_log_check(struct device *dev, char *why, size_t len);
int vp_caps_log_start(struct device *dev, int fd, uint64_t size);
int vp_caps_log_stop(struct device *dev);

#endif
