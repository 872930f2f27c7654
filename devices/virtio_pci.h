/* The virtio-pci modern transport (virtio 1.x only): common, notify, ISR and
 * device configuration capabilities in one 64-bit BAR, MSI-X in another. Queue
 * doorbells are KVM ioeventfds and queue interrupts KVM irqfds on MSI routes, so
 * neither passes through vmm; a masked vector is polled and kept pending. */
#ifndef VMM_DEVICES_VIRTIO_PCI_H
#define VMM_DEVICES_VIRTIO_PCI_H

#include "msix.h"
#include "pci.h"
#include "virtio.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_PCI_CAPS_BAR 4
#define VIRTIO_PCI_MSIX_BAR 1
#define VIRTIO_PCI_CAPS_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON_OFFSET 0x0000
#define VIRTIO_PCI_ISR_OFFSET 0x1000
#define VIRTIO_PCI_DEVICE_OFFSET 0x2000
#define VIRTIO_PCI_NOTIFY_OFFSET 0x3000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4
#define VIRTIO_PCI_COMMON_SIZE 0x38

struct virtio_pci_vector {
    int gsi; /* its KVM MSI route */
    uint64_t addr;
    uint32_t data;
    bool masked;
};

struct virtio_pci;

struct virtio_pci_queue_ref {
    struct virtio_pci *vp;
    unsigned index;
};

struct virtio_pci {
    struct pci_device pci;
    struct msix msix;
    struct device caps_dev; /* BAR 4; its save/load/pause/resume migrate the function */
    struct virtio_device *vdev;
    const struct virtio_platform *platform;
    pthread_mutex_t lock; /* common configuration and queue wiring */

    uint32_t device_feature_select, driver_feature_select;
    uint64_t driver_features;
    uint16_t msix_config;
    uint8_t status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint8_t isr;
    bool active; /* DRIVER_OK accepted and the device model started */
    bool wired;  /* ioeventfds assigned at notify_base */
    uint64_t notify_base;
    unsigned nvectors;
    struct virtio_pci_vector vectors[VIRTIO_MAX_QUEUES + 1];
    bool queue_irqfd[VIRTIO_MAX_QUEUES];   /* call_fd attached as an irqfd */
    bool queue_watched[VIRTIO_MAX_QUEUES]; /* call_fd polled: its vector is masked */
    struct virtio_pci_queue_ref qrefs[VIRTIO_MAX_QUEUES];
};

/* Wraps vdev in a PCI function (vendor 0x1af4, device 0x1040 + device id) with
 * one MSI-X vector per queue plus one for configuration changes, and creates the
 * queues' kick and call eventfds. Register vp->pci on the bus afterwards. */
int virtio_pci_init(struct virtio_pci *vp, struct virtio_device *vdev,
                    const struct virtio_platform *platform);
void virtio_pci_destroy(struct virtio_pci *vp);

/* A platform reset (guest reboot, vmm exit): the model's reset, the wiring, then
 * MSI-X and config space as at power-on. */
void virtio_pci_reset(struct virtio_pci *vp);

/* Migration goes through caps_dev.ops (the migration code knows no device type):
 * - pause: with the vCPUs paused, the model stops its queues (virtio stop) and a
 *   masked vector's unpolled interrupt moves into the PBA; resume restarts them.
 * - save: one versioned blob: PCI config, MSI-X table and PBA, the common
 *   configuration and each queue, then the model's state. Save after pause.
 * - load: into a function at power-on; checks the blob (version, queue and vector
 *   counts, sizes, vectors, features against this device's offer) before touching
 *   anything, then loads the model, config space (which maps the BARs), MSI-X
 *   (which sets every route) and the transport. A device the guest had started is
 *   wired as DRIVER_OK wires it and started with the model's start_loaded on the
 *   event loop (run_on_loop: the loop must be running, or this is its thread). A
 *   refused blob leaves the function untouched, or at power-on once loading began. */

#endif
