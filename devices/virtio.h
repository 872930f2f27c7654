/* The virtio device model interface: a transport (virtio-pci) owns the common
 * configuration, queues and interrupts, and calls the device model through
 * virtio_device_ops. A device model knows nothing of PCI. */
#ifndef VMM_DEVICES_VIRTIO_H
#define VMM_DEVICES_VIRTIO_H

#include "device.h"
#include "../common/event_loop.h"

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35
#define VIRTIO_F_NOTIFICATION_DATA 38

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_MAX_QUEUES 17 /* 8 queue pairs and a control queue */
#define VIRTIO_NO_VECTOR 0xffff
#define VIRTIO_QUEUE_SIZE_MAX 32768 /* the spec's limit for both ring formats */

struct virtio_queue {
    uint16_t max_size;
    uint16_t size;
    bool enabled;
    uint16_t msix_vector;
    uint64_t desc, avail, used; /* guest-physical */
    int kick_fd;                /* eventfd signalled by the guest's doorbell (a KVM ioeventfd) */
    int call_fd;                /* eventfd that raises the queue's interrupt (a KVM irqfd) */
};

struct virtio_device;

struct virtio_device_ops {
    /* Features the device offers (the transport adds VIRTIO_F_VERSION_1). */
    uint64_t (*features)(struct virtio_device *vdev);
    /* The driver's accepted features; -EINVAL refuses them (FEATURES_OK stays clear). */
    int (*set_features)(struct virtio_device *vdev, uint64_t acked);
    void (*config_read)(struct virtio_device *vdev, uint32_t offset, uint8_t *data, uint32_t len);
    void (*config_write)(struct virtio_device *vdev, uint32_t offset, const uint8_t *data,
                         uint32_t len);
    /* Every op below runs on the device's loop (vdev->loop), posted there by the
     * transport, which holds no lock meanwhile: an op may take the model's own lock
     * and raise a config interrupt (virtio_notify_config).
     * DRIVER_OK: start the enabled queues. */
    int (*activate)(struct virtio_device *vdev);
    /* Device reset by the driver (status 0), or before the guest reboots: stop
     * the queues. Idempotent: also called on a device that never started. */
    void (*reset)(struct virtio_device *vdev);

    /* Migration. The transport saves and loads the common configuration and the
     * queues (struct virtio_queue, acked_features); these carry the model's own state.
     * save: on a stopped device (after stop) or one the guest never started. */
    int (*save)(struct virtio_device *vdev, struct state_buf *out);
    /* Restores the model's state and validates it against this device; starts
     * nothing. -EINVAL with a one-line error for a blob this device cannot take. */
    int (*load)(struct virtio_device *vdev, const uint8_t *data, size_t len);
    /* Destination, after load and with the transport's queues and wiring restored:
     * starts the device from the loaded state. */
    int (*start_loaded)(struct virtio_device *vdev);
    /* Source, the final stop: halts the queues and records where each stopped; the
     * device stays logically started and vmm stops touching guest memory for it.
     * Idempotent. */
    int (*stop)(struct virtio_device *vdev);
    /* Source, after a failed or cancelled migration: runs the queues again from
     * where stop left them. */
    int (*restart)(struct virtio_device *vdev);
    /* Dirty logging (struct device_ops says what each does); NULL: the model
     * writes no guest memory behind vmm's back. log_check runs on any thread (a
     * quick look under the model's lock: migrate answers at once). */
    int (*log_check)(struct virtio_device *vdev, char *why, size_t len);
    int (*log_start)(struct virtio_device *vdev, int log_fd, uint64_t log_size);
    int (*log_stop)(struct virtio_device *vdev);

    /* Bytes of device-specific configuration. */
    uint32_t config_size;
};

struct virtio_transport_ops {
    /* Raises the configuration-change interrupt. */
    void (*notify_config)(void *transport);
};

struct vhost_user_mem_region;

/* What the platform (vmm/) does for virtio devices: KVM wiring, the event loop,
 * and guest memory as the backend must map it. Devices never see KVM. */
struct virtio_platform {
    int (*ioeventfd)(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign);
    int (*irqfd)(void *opaque, int gsi, int fd, bool assign);
    int (*msi_route_alloc)(void *opaque);
    void (*msi_route_free)(void *opaque, int gsi);
    int (*msi_route_set)(void *opaque, int gsi, uint64_t addr, uint32_t data);
    int (*signal_msi)(void *opaque, uint64_t addr, uint32_t data);
    /* Watches fd on vmm's main loop (on=false stops); cb runs on the loop thread.
     * Callable from any thread. The transport polls a masked vector's call fd there. */
    int (*watch_fd)(void *opaque, int fd, void (*cb)(void *arg, uint32_t events), void *arg,
                    bool on);
    /* Guest RAM regions with the memfd and host address of each, for SET_MEM_TABLE. */
    int (*mem_regions)(void *opaque, struct vhost_user_mem_region *regions, int max);
    /* Optional (--vhost-trace): one vhost-user trace line of device id, stamped with its
     * CLOCK_MONOTONIC time in us. Without it the lines are debug messages. */
    void (*vhost_trace)(void *opaque, const char *id, int64_t time_us, const char *line);
    void *opaque;
};

struct virtio_device {
    const char *id; /* "net0": the prefix of its log lines */
    uint16_t device_id;
    unsigned num_queues;
    struct virtio_queue queues[VIRTIO_MAX_QUEUES];
    uint64_t acked_features;
    const struct virtio_device_ops *ops;
    const struct guest_mem_access *mem;
    const struct virtio_platform *platform;
    const struct virtio_transport_ops *transport_ops;
    void *transport;
    /* Where the model's ops run: a loop on a thread of its own in vmm (a NIC's
     * vhost-user conversations never hold up vmm's main loop or a vCPU). */
    struct event_loop *loop;
};

static inline bool virtio_has_feature(const struct virtio_device *vdev, unsigned bit)
{
    return vdev->acked_features & (1ULL << bit);
}

/* A queue size the driver may set: 1 to max, a power of two for a split ring; any size
 * for a packed one (virtio 1.2, "Packed Virtqueues": Queue Size need not be one). */
static inline bool virtio_queue_size_ok(uint32_t size, uint32_t max, bool packed)
{
    return size && size <= max && size <= VIRTIO_QUEUE_SIZE_MAX && (packed || !(size & (size - 1)));
}

static inline void virtio_notify_config(struct virtio_device *vdev)
{
    if (vdev->transport_ops)
        vdev->transport_ops->notify_config(vdev->transport);
}

#endif
