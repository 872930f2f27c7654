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

/* Where the device is in its life, as the transport sees it. The model's ops run
 * on its own loop (vdev->loop), posted there: a vCPU never waits for them. */
enum virtio_pci_phase {
    VP_IDLE,      /* not started (or reset) */
    VP_STARTING,  /* DRIVER_OK accepted and wired; the model's activate is queued */
    VP_ACTIVE,    /* the model started */
    VP_RESETTING, /* status 0 written; the model's reset is queued: status reads old */
};

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
    /* The common configuration and queue wiring. Lock order: a PCI function's lock,
     * then msix.lock, then this one, then the model's; nobody waits for another
     * thread while holding any of them (README, "Threads"). */
    pthread_mutex_t lock;

    uint32_t device_feature_select, driver_feature_select;
    uint64_t driver_features;
    uint16_t msix_config;
    uint8_t status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint8_t isr;
    enum virtio_pci_phase phase;
    bool wired; /* doorbells at notify_base and calls attached */
    uint64_t notify_base;
    unsigned nvectors;
    struct virtio_pci_vector vectors[VIRTIO_MAX_QUEUES + 1];
    bool queue_irqfd[VIRTIO_MAX_QUEUES];   /* call_fd attached as an irqfd */
    bool queue_watched[VIRTIO_MAX_QUEUES]; /* call_fd polled: its vector is masked */
    struct virtio_pci_queue_ref qrefs[VIRTIO_MAX_QUEUES];
    void (*reset_done)(void *arg); /* a platform reset's completion, on the device's loop */
    void *reset_done_arg;
};

/* Wraps vdev in a PCI function (vendor 0x1af4, device 0x1040 + device id) with
 * one MSI-X vector per queue plus one for configuration changes, and creates the
 * queues' kick and call eventfds. Register vp->pci on the bus afterwards. */
int virtio_pci_init(struct virtio_pci *vp, struct virtio_device *vdev,
                    const struct virtio_platform *platform);
void virtio_pci_destroy(struct virtio_pci *vp);

/* A platform reset (guest reboot, vmm exit): the model stops on its loop, then the
 * wiring, MSI-X and config space return to power-on. The async form returns at
 * once and calls done(arg) on the device's loop when it is over (0, or -errno and
 * nothing happens); virtio_pci_reset waits for it, holding no lock. */
int virtio_pci_reset_async(struct virtio_pci *vp, void (*done)(void *arg), void *arg);
int virtio_pci_reset(struct virtio_pci *vp);

/* Migration goes through caps_dev.ops (the migration code knows no device type).
 * Each waits for the model's op on its loop, holding no lock meanwhile:
 * - pause: with the vCPUs paused, the model stops its queues (virtio stop) and a
 *   masked vector's unpolled interrupt moves into the PBA; resume restarts them.
 * - log_check/log_start/log_stop: the model's dirty logging.
 * - save: one versioned blob: PCI config, MSI-X table and PBA, the common
 *   configuration and each queue, then the model's state. Save after pause.
 * - load: into a function at power-on; checks the blob (version, queue and vector
 *   counts, sizes, vectors, features against this device's offer) before touching
 *   anything, then loads the model, config space (which maps the BARs), MSI-X
 *   (which sets every route) and the transport. A device the guest had started is
 *   wired as DRIVER_OK wires it and started with the model's start_loaded on its
 *   loop (which must be running, or be the caller's). A
 *   refused blob leaves the function untouched, or at power-on once loading began. */

#endif
