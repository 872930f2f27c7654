#include "virtio_pci_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_SUBSYSTEM 0x1100
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000
#define VIRTIO_PCI_PBA_OFFSET 0x800

enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };

/* Offsets in the common configuration structure. */
enum {
    COMMON_DFSELECT = 0x00,
    COMMON_DF = 0x04,
    COMMON_GFSELECT = 0x08,
    COMMON_GF = 0x0c,
    COMMON_MSIX = 0x10,
    COMMON_NUMQ = 0x12,
    COMMON_STATUS = 0x14,
    COMMON_CFGGENERATION = 0x15,
    COMMON_Q_SELECT = 0x16,
    COMMON_Q_SIZE = 0x18,
    COMMON_Q_MSIX = 0x1a,
    COMMON_Q_ENABLE = 0x1c,
    COMMON_Q_NOFF = 0x1e,
    COMMON_Q_DESCLO = 0x20,
    COMMON_Q_DESCHI = 0x24,
    COMMON_Q_AVAILLO = 0x28,
    COMMON_Q_AVAILHI = 0x2c,
    COMMON_Q_USEDLO = 0x30,
    COMMON_Q_USEDHI = 0x34,
};

static const struct device_ops caps_ops;

uint64_t vp_offered_features(struct virtio_pci *vp)
{
    return vp->vdev->ops->features(vp->vdev) | (1ULL << VIRTIO_F_VERSION_1);
}

static struct virtio_queue *selected_queue(struct virtio_pci *vp)
{
    return vp->queue_select < vp->vdev->num_queues ? &vp->vdev->queues[vp->queue_select] : NULL;
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* The common configuration as the guest reads it; caller holds vp->lock. */
static void common_image(struct virtio_pci *vp, uint8_t img[VIRTIO_PCI_COMMON_SIZE])
{
    const struct virtio_queue *q = selected_queue(vp);
    uint64_t features = vp_offered_features(vp);

    memset(img, 0, VIRTIO_PCI_COMMON_SIZE);
    put32(img + COMMON_DFSELECT, vp->device_feature_select);
    if (vp->device_feature_select < 2)
        put32(img + COMMON_DF, (uint32_t)(features >> (32 * vp->device_feature_select)));
    put32(img + COMMON_GFSELECT, vp->driver_feature_select);
    if (vp->driver_feature_select < 2)
        put32(img + COMMON_GF, (uint32_t)(vp->driver_features >> (32 * vp->driver_feature_select)));
    put16(img + COMMON_MSIX, vp->msix_config);
    put16(img + COMMON_NUMQ, (uint16_t)vp->vdev->num_queues);
    img[COMMON_STATUS] = vp->status;
    img[COMMON_CFGGENERATION] = vp->config_generation;
    put16(img + COMMON_Q_SELECT, vp->queue_select);
    if (!q)
        return; /* a queue that does not exist reads as size 0 */
    put16(img + COMMON_Q_SIZE, q->size);
    put16(img + COMMON_Q_MSIX, q->msix_vector);
    put16(img + COMMON_Q_ENABLE, q->enabled);
    put16(img + COMMON_Q_NOFF, vp->queue_select);
    put64(img + COMMON_Q_DESCLO, q->desc);
    put64(img + COMMON_Q_AVAILLO, q->avail);
    put64(img + COMMON_Q_USEDLO, q->used);
}

bool vp_vector_valid(struct virtio_pci *vp, uint16_t vector)
{
    return vector < vp->nvectors;
}

/* A masked vector's call eventfd is polled (on the loop thread): what it carries
 * becomes a pending bit, delivered when the guest unmasks the vector. */
void vp_on_masked_call(void *arg, uint32_t events)
{
    struct virtio_pci_queue_ref *ref = arg;
    struct virtio_queue *vq = &ref->vp->vdev->queues[ref->index];
    uint64_t count;

    (void)events;
    if (read(vq->call_fd, &count, sizeof(count)) == sizeof(count) && count)
        msix_notify(&ref->vp->msix, vq->msix_vector);
}

/* Caller holds vp->lock. */
void vp_attach_call(struct virtio_pci *vp, unsigned q)
{
    const struct virtio_platform *p = vp->platform;
    struct virtio_queue *vq = &vp->vdev->queues[q];
    struct virtio_pci_vector *v;

    if (!vp_vector_valid(vp, vq->msix_vector))
        return;
    v = &vp->vectors[vq->msix_vector];
    /* KVM raises at once what the eventfd already holds when it is assigned. */
    if (!v->masked && p->irqfd(p->opaque, v->gsi, vq->call_fd, true) == 0) {
        vp->queue_irqfd[q] = true;
        return;
    }
    p->watch_fd(p->opaque, vq->call_fd, vp_on_masked_call, &vp->qrefs[q], true);
    vp->queue_watched[q] = true;
}

static void detach_call(struct virtio_pci *vp, unsigned q)
{
    const struct virtio_platform *p = vp->platform;
    struct virtio_queue *vq = &vp->vdev->queues[q];

    if (vp->queue_irqfd[q])
        p->irqfd(p->opaque, vp->vectors[vq->msix_vector].gsi, vq->call_fd, false);
    if (vp->queue_watched[q])
        p->watch_fd(p->opaque, vq->call_fd, NULL, NULL, false);
    vp->queue_irqfd[q] = vp->queue_watched[q] = false;
}

/* The width of the guest's doorbell write: the queue index (16 bits), or with
 * NOTIFICATION_DATA that and where the driver's next available buffer is (32 bits, the
 * spec's "Notification Data"). A KVM ioeventfd without datamatch catches writes of its
 * own length only: any other reaches notify_write and still kicks. The features do not
 * change while the doorbells are wired (set at DRIVER_OK, cleared by reset after
 * unwiring), so assign and deassign agree. */
static uint32_t doorbell_len(const struct virtio_pci *vp)
{
    return virtio_has_feature(vp->vdev, VIRTIO_F_NOTIFICATION_DATA) ? 4 : 2;
}

static int set_doorbell(struct virtio_pci *vp, uint64_t base, unsigned q, bool assign)
{
    const struct virtio_platform *p = vp->platform;

    return p->ioeventfd(p->opaque, base + q * VIRTIO_PCI_NOTIFY_MULTIPLIER, doorbell_len(vp),
                        vp->vdev->queues[q].kick_fd, assign);
}

/* All queues' doorbells at base, or none: a failed assign undoes the earlier ones. */
int vp_set_doorbells(struct virtio_pci *vp, uint64_t base, bool assign)
{
    if (base == PCI_BAR_UNMAPPED)
        return assign ? -EINVAL : 0;
    for (unsigned q = 0; q < vp->vdev->num_queues; q++) {
        int ret = set_doorbell(vp, base, q, assign);

        if (ret && assign) {
            while (q--)
                set_doorbell(vp, base, q, false);
            return ret;
        }
    }
    return 0;
}

/* Doorbells and interrupts of every queue, for a device going live. */
static int wire(struct virtio_pci *vp)
{
    int ret;

    if (vp->notify_base == PCI_BAR_UNMAPPED) {
        pr_err("%s: DRIVER_OK with the virtio BAR unmapped", vp->vdev->id);
        return -EINVAL;
    }
    ret = vp_set_doorbells(vp, vp->notify_base, true);
    if (ret)
        return ret;
    for (unsigned q = 0; q < vp->vdev->num_queues; q++)
        vp_attach_call(vp, q);
    vp->wired = true;
    return 0;
}

void vp_unwire(struct virtio_pci *vp)
{
    if (!vp->wired)
        return;
    vp_set_doorbells(vp, vp->notify_base, false);
    for (unsigned q = 0; q < vp->vdev->num_queues; q++)
        detach_call(vp, q);
    vp->wired = false;
}

static void reset_queues(struct virtio_pci *vp)
{
    for (unsigned q = 0; q < vp->vdev->num_queues; q++) {
        struct virtio_queue *vq = &vp->vdev->queues[q];
        uint64_t drain;

        vq->size = vq->max_size;
        vq->enabled = false;
        vq->msix_vector = VIRTIO_NO_VECTOR;
        vq->desc = vq->avail = vq->used = 0;
        /* Stale doorbells or interrupts must not leak into the next start. */
        if (read(vq->kick_fd, &drain, sizeof(drain)) < 0 && errno != EAGAIN)
            pr_debug("%s: queue %u kick drain: %s", vp->vdev->id, q, strerror(errno));
        if (read(vq->call_fd, &drain, sizeof(drain)) < 0 && errno != EAGAIN)
            pr_debug("%s: queue %u call drain: %s", vp->vdev->id, q, strerror(errno));
    }
}

/* Back to the state after a device reset; the model is stopped already. Caller holds
 * vp->lock. */
static void reset_transport(struct virtio_pci *vp)
{
    vp_unwire(vp);
    vp->phase = VP_IDLE;
    reset_queues(vp);
    vp->status = 0;
    vp->isr = 0;
    vp->driver_features = 0;
    vp->vdev->acked_features = 0;
    vp->device_feature_select = vp->driver_feature_select = 0;
    vp->queue_select = 0;
    vp->msix_config = VIRTIO_NO_VECTOR;
    vp->config_generation++;
}

/* NEEDS_RESET and the config interrupt's vector (VIRTIO_NO_VECTOR: none); caller
 * holds vp->lock and raises the interrupt after dropping it. */
static void needs_reset_locked(struct virtio_pci *vp, uint16_t *vector)
{
    vp->status |= VIRTIO_STATUS_NEEDS_RESET;
    vp->config_generation++;
    vp->isr |= ISR_CONFIG;
    *vector = vp->msix_config;
}

static void raise_vector(struct virtio_pci *vp, uint16_t vector)
{
    if (vector != VIRTIO_NO_VECTOR)
        msix_notify(&vp->msix, vector);
}

/* On the device's loop: the model's reset, then the transport's. A device reset
 * completes here: until then the guest reads its old status, as the spec allows
 * (the driver waits for a read of 0). */
static void reset_job(void *arg)
{
    struct virtio_pci *vp = arg;

    vp->vdev->ops->reset(vp->vdev);
    pthread_mutex_lock(&vp->lock);
    reset_transport(vp);
    pthread_mutex_unlock(&vp->lock);
}

/* On the device's loop: the model starts its queues, with no lock held, so that a
 * vCPU writing MSI-X or the common configuration meanwhile is never blocked. */
static void activate_job(void *arg)
{
    struct virtio_pci *vp = arg;
    uint16_t vector = VIRTIO_NO_VECTOR;
    int ret;

    pthread_mutex_lock(&vp->lock);
    if (vp->phase != VP_STARTING) { /* reset meanwhile: its job follows this one */
        pthread_mutex_unlock(&vp->lock);
        return;
    }
    pthread_mutex_unlock(&vp->lock);
    ret = vp->vdev->ops->activate(vp->vdev);
    pthread_mutex_lock(&vp->lock);
    if (vp->phase == VP_STARTING && !ret) {
        vp->phase = VP_ACTIVE;
    } else if (vp->phase == VP_STARTING) {
        pr_err("%s: cannot start the device: %s", vp->vdev->id, strerror(-ret));
        vp_unwire(vp);
        vp->phase = VP_IDLE;
        needs_reset_locked(vp, &vector);
    }
    pthread_mutex_unlock(&vp->lock);
    raise_vector(vp, vector);
}

/* Status 0 from the driver. A device whose model never started resets at once;
 * otherwise the model stops on its loop first. Caller holds vp->lock. */
static void request_reset(struct virtio_pci *vp)
{
    int ret;

    switch (vp->phase) {
    case VP_IDLE:
        reset_transport(vp);
        return;
    case VP_RESETTING:
        return;
    case VP_STARTING:
    case VP_ACTIVE:
        break;
    }
    ret = event_loop_post(vp->vdev->loop, reset_job, vp);
    if (ret) { /* vmm is stopping: its own teardown stops the model */
        pr_debug("%s: reset not queued: %s", vp->vdev->id, strerror(-ret));
        return;
    }
    vp->phase = VP_RESETTING;
}

static bool features_acceptable(struct virtio_pci *vp)
{
    uint64_t f = vp->driver_features;

    if ((f & ~vp_offered_features(vp)) || !(f & (1ULL << VIRTIO_F_VERSION_1)))
        return false;
    return vp->vdev->ops->set_features(vp->vdev, f) == 0;
}

/* DRIVER_OK: wire the queues, then let the model start them on its loop, later.
 * false when the device cannot start (the caller sets NEEDS_RESET). Caller holds
 * vp->lock. */
static bool request_activate(struct virtio_pci *vp)
{
    int ret = wire(vp);

    if (!ret)
        ret = event_loop_post(vp->vdev->loop, activate_job, vp);
    if (ret) {
        pr_err("%s: cannot start the device: %s", vp->vdev->id, strerror(-ret));
        vp_unwire(vp);
        return false;
    }
    vp->phase = VP_STARTING;
    return true;
}

/* Returns true when the guest must be told (config interrupt) of NEEDS_RESET. */
static bool write_status(struct virtio_pci *vp, uint8_t val)
{
    /* Bits stay set until a reset (a driver must not clear them): a cleared and set
     * again DRIVER_OK would wire a live device twice, FEATURES_OK renegotiate under it. */
    uint8_t old = vp->status, status = val | old;

    if (val == 0) {
        request_reset(vp);
        return false;
    }
    if (vp->phase == VP_RESETTING)
        return false; /* the driver must wait for status 0 first */
    if ((status & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
        vp->vdev->acked_features = vp->driver_features;
        if (!features_acceptable(vp)) {
            status &= ~VIRTIO_STATUS_FEATURES_OK;
            vp->vdev->acked_features = 0; /* refused: saved as acked, it would not load */
        }
    }
    vp->status = status;
    if ((status & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
        (status & VIRTIO_STATUS_FEATURES_OK) && !request_activate(vp)) {
        vp->status |= VIRTIO_STATUS_NEEDS_RESET;
        return true;
    }
    return false;
}

static uint16_t checked_vector(struct virtio_pci *vp, uint16_t v)
{
    return vp_vector_valid(vp, v) ? v : VIRTIO_NO_VECTOR;
}

/* A new 32-bit half of a 64-bit queue address. */
static void set_half(uint64_t *field, bool high, uint32_t v)
{
    *field = high ? (*field & 0xffffffffULL) | ((uint64_t)v << 32) : (*field & ~0xffffffffULL) | v;
}

static void write_queue_field(struct virtio_pci *vp, unsigned off, uint32_t v)
{
    struct virtio_queue *q = selected_queue(vp);
    unsigned index = vp->queue_select;

    if (!q || (q->enabled && off != COMMON_Q_MSIX))
        return; /* an enabled queue's set-up is frozen */
    switch (off) {
    case COMMON_Q_SIZE:
        /* Set after FEATURES_OK (the spec's order): the ring format is known. */
        if (virtio_queue_size_ok(v, q->max_size,
                                 virtio_has_feature(vp->vdev, VIRTIO_F_RING_PACKED)))
            q->size = (uint16_t)v;
        break;
    case COMMON_Q_MSIX:
        if (vp->wired)
            detach_call(vp, index);
        q->msix_vector = checked_vector(vp, (uint16_t)v);
        if (vp->wired)
            vp_attach_call(vp, index);
        break;
    case COMMON_Q_ENABLE:
        if (v == 1)
            q->enabled = true;
        break;
    case COMMON_Q_DESCLO:
    case COMMON_Q_DESCHI:
        set_half(&q->desc, off == COMMON_Q_DESCHI, v);
        break;
    case COMMON_Q_AVAILLO:
    case COMMON_Q_AVAILHI:
        set_half(&q->avail, off == COMMON_Q_AVAILHI, v);
        break;
    case COMMON_Q_USEDLO:
    case COMMON_Q_USEDHI:
        set_half(&q->used, off == COMMON_Q_USEDHI, v);
        break;
    }
}

/* One field written with its natural size; returns true to raise a config interrupt. */
static bool write_common_field(struct virtio_pci *vp, unsigned off, uint32_t v)
{
    switch (off) {
    case COMMON_DFSELECT:
        vp->device_feature_select = v;
        break;
    case COMMON_GFSELECT:
        vp->driver_feature_select = v;
        break;
    case COMMON_GF:
        if (vp->driver_feature_select < 2 && !(vp->status & VIRTIO_STATUS_FEATURES_OK))
            set_half(&vp->driver_features, vp->driver_feature_select == 1, v);
        break;
    case COMMON_MSIX:
        vp->msix_config = checked_vector(vp, (uint16_t)v);
        break;
    case COMMON_STATUS:
        return write_status(vp, (uint8_t)v);
    case COMMON_Q_SELECT:
        vp->queue_select = (uint16_t)v;
        break;
    default:
        write_queue_field(vp, off, v);
        break;
    }
    return false;
}

/* Natural size of the field at off (0: read-only or not a field start). */
static unsigned common_field_size(unsigned off)
{
    switch (off) {
    case COMMON_STATUS:
        return 1;
    case COMMON_MSIX:
    case COMMON_Q_SELECT:
    case COMMON_Q_SIZE:
    case COMMON_Q_MSIX:
    case COMMON_Q_ENABLE:
        return 2;
    case COMMON_DFSELECT:
    case COMMON_GFSELECT:
    case COMMON_GF:
    case COMMON_Q_DESCLO:
    case COMMON_Q_DESCHI:
    case COMMON_Q_AVAILLO:
    case COMMON_Q_AVAILHI:
    case COMMON_Q_USEDLO:
    case COMMON_Q_USEDHI:
        return 4;
    default:
        return 0;
    }
}

static void notify_config_locked(struct virtio_pci *vp, uint16_t *vector)
{
    vp->config_generation++;
    vp->isr |= ISR_CONFIG;
    *vector = vp->msix_config;
}

static void common_write(struct virtio_pci *vp, unsigned off, const uint8_t *data, uint32_t len)
{
    uint32_t v = 0;
    bool notify = false;
    uint16_t vector = VIRTIO_NO_VECTOR;

    /* Fields are written whole (a 64-bit address as two 32-bit halves). */
    if (common_field_size(off) != len)
        return;
    memcpy(&v, data, len);
    pthread_mutex_lock(&vp->lock);
    /* While a reset completes, the driver waits for status 0 and writes nothing. */
    if (vp->phase == VP_RESETTING) {
        pthread_mutex_unlock(&vp->lock);
        return;
    }
    notify = write_common_field(vp, off, v);
    if (notify)
        notify_config_locked(vp, &vector);
    pthread_mutex_unlock(&vp->lock);
    if (vector != VIRTIO_NO_VECTOR)
        msix_notify(&vp->msix, vector);
}

static void caps_read(struct device *dev, uint64_t off, uint8_t *data, uint32_t len)
{
    struct virtio_pci *vp = vp_from_caps(dev);
    uint8_t img[VIRTIO_PCI_COMMON_SIZE];

    memset(data, 0, len);
    if (off + len <= VIRTIO_PCI_COMMON_SIZE) {
        pthread_mutex_lock(&vp->lock);
        common_image(vp, img);
        pthread_mutex_unlock(&vp->lock);
        memcpy(data, img + off, len);
    } else if (off == VIRTIO_PCI_ISR_OFFSET) {
        pthread_mutex_lock(&vp->lock);
        data[0] = vp->isr; /* reading acknowledges */
        vp->isr = 0;
        pthread_mutex_unlock(&vp->lock);
    } else if (off >= VIRTIO_PCI_DEVICE_OFFSET &&
               off + len <= VIRTIO_PCI_DEVICE_OFFSET + vp->vdev->ops->config_size) {
        vp->vdev->ops->config_read(vp->vdev, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFFSET), data, len);
    }
}

/* A doorbell that reached vmm (no ioeventfd yet, or an odd width) still kicks. */
static void notify_write(struct virtio_pci *vp, uint64_t off)
{
    uint64_t q = (off - VIRTIO_PCI_NOTIFY_OFFSET) / VIRTIO_PCI_NOTIFY_MULTIPLIER;
    uint64_t one = 1;

    if (q < vp->vdev->num_queues && write(vp->vdev->queues[q].kick_fd, &one, sizeof(one)) < 0)
        pr_debug("%s: kick queue %llu: %s", vp->vdev->id, (unsigned long long)q, strerror(errno));
}

static void caps_write(struct device *dev, uint64_t off, const uint8_t *data, uint32_t len)
{
    struct virtio_pci *vp = vp_from_caps(dev);

    if (off + len <= VIRTIO_PCI_COMMON_SIZE)
        common_write(vp, (unsigned)off, data, len);
    else if (off >= VIRTIO_PCI_NOTIFY_OFFSET &&
             off < VIRTIO_PCI_NOTIFY_OFFSET +
                       VIRTIO_PCI_NOTIFY_MULTIPLIER * (uint64_t)vp->vdev->num_queues)
        notify_write(vp, off);
    else if (off >= VIRTIO_PCI_DEVICE_OFFSET &&
             off + len <= VIRTIO_PCI_DEVICE_OFFSET + vp->vdev->ops->config_size)
        vp->vdev->ops->config_write(vp->vdev, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFFSET), data,
                                    len);
}

/* Runs with the msix lock (and maybe the PCI device lock) held; takes vp->lock,
 * which nothing holds while calling into msix or pci. */
static void msix_vector_changed(void *opaque, unsigned vector, uint64_t addr, uint32_t data,
                                bool masked)
{
    struct virtio_pci *vp = opaque;
    struct virtio_pci_vector *v;
    const struct virtio_platform *p = vp->platform;

    if (vector >= vp->nvectors)
        return;
    pthread_mutex_lock(&vp->lock);
    v = &vp->vectors[vector];
    if (v->addr != addr || v->data != data) {
        v->addr = addr;
        v->data = data;
        p->msi_route_set(p->opaque, v->gsi, addr, data);
    }
    if (v->masked != masked) {
        for (unsigned q = 0; vp->wired && q < vp->vdev->num_queues; q++)
            if (vp->vdev->queues[q].msix_vector == vector)
                detach_call(vp, q);
        v->masked = masked;
        for (unsigned q = 0; vp->wired && q < vp->vdev->num_queues; q++)
            if (vp->vdev->queues[q].msix_vector == vector)
                vp_attach_call(vp, q);
    }
    pthread_mutex_unlock(&vp->lock);
}

static void msix_deliver(void *opaque, uint64_t addr, uint32_t data)
{
    struct virtio_pci *vp = opaque;

    vp->platform->signal_msi(vp->platform->opaque, addr, data);
}

static const struct msix_ops virtio_msix_ops = {
    .vector_changed = msix_vector_changed,
    .deliver = msix_deliver,
};

static void transport_notify_config(void *transport)
{
    struct virtio_pci *vp = transport;
    uint16_t vector;

    pthread_mutex_lock(&vp->lock);
    notify_config_locked(vp, &vector);
    pthread_mutex_unlock(&vp->lock);
    if (vector != VIRTIO_NO_VECTOR)
        msix_notify(&vp->msix, vector);
}

static const struct virtio_transport_ops virtio_pci_transport_ops = {
    .notify_config = transport_notify_config,
};

/* The guest moved (or unmapped) the virtio BAR: move the doorbells with it. */
static void virtio_bar_moved(struct pci_device *dev, int bar, uint64_t old_addr, uint64_t new_addr)
{
    struct virtio_pci *vp = dev->opaque;

    (void)old_addr;
    if (bar != VIRTIO_PCI_CAPS_BAR)
        return;
    pthread_mutex_lock(&vp->lock);
    if (vp->wired)
        vp_set_doorbells(vp, vp->notify_base, false);
    vp->notify_base =
        new_addr == PCI_BAR_UNMAPPED ? PCI_BAR_UNMAPPED : new_addr + VIRTIO_PCI_NOTIFY_OFFSET;
    if (vp->wired && vp->notify_base != PCI_BAR_UNMAPPED &&
        vp_set_doorbells(vp, vp->notify_base, true))
        pr_warn("%s: doorbells lost after a BAR move", vp->vdev->id);
    pthread_mutex_unlock(&vp->lock);
}

/* A vendor capability pointing at [offset, offset+length) of the virtio BAR. */
static int add_virtio_cap(struct virtio_pci *vp, uint8_t type, uint32_t offset, uint32_t length)
{
    uint8_t len = type == CAP_NOTIFY ? 20 : 16;
    int cap = pci_add_capability(&vp->pci, PCI_CAP_ID_VNDR, len);
    uint8_t *c;

    if (cap < 0)
        return cap;
    c = vp->pci.config + cap;
    c[2] = len;
    c[3] = type;
    c[4] = VIRTIO_PCI_CAPS_BAR;
    put32(c + 8, offset);
    put32(c + 12, length);
    if (type == CAP_NOTIFY)
        put32(c + 16, VIRTIO_PCI_NOTIFY_MULTIPLIER);
    return 0;
}

static int add_virtio_caps(struct virtio_pci *vp)
{
    uint32_t notify_len = VIRTIO_PCI_NOTIFY_MULTIPLIER * vp->vdev->num_queues;
    int ret = add_virtio_cap(vp, CAP_COMMON, VIRTIO_PCI_COMMON_OFFSET, VIRTIO_PCI_COMMON_SIZE);

    if (!ret)
        ret = add_virtio_cap(vp, CAP_ISR, VIRTIO_PCI_ISR_OFFSET, 1);
    if (!ret && vp->vdev->ops->config_size)
        ret = add_virtio_cap(vp, CAP_DEVICE, VIRTIO_PCI_DEVICE_OFFSET, vp->vdev->ops->config_size);
    if (!ret)
        ret = add_virtio_cap(vp, CAP_NOTIFY, VIRTIO_PCI_NOTIFY_OFFSET, notify_len);
    return ret;
}

static int create_queue_fds(struct virtio_pci *vp)
{
    for (unsigned q = 0; q < vp->vdev->num_queues; q++) {
        struct virtio_queue *vq = &vp->vdev->queues[q];

        vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (vq->kick_fd < 0 || vq->call_fd < 0)
            return -errno;
        vp->qrefs[q] = (struct virtio_pci_queue_ref){.vp = vp, .index = q};
    }
    return 0;
}

static int alloc_vectors(struct virtio_pci *vp)
{
    vp->nvectors = vp->vdev->num_queues + 1;
    for (unsigned i = 0; i < vp->nvectors; i++) {
        int gsi = vp->platform->msi_route_alloc(vp->platform->opaque);

        if (gsi < 0)
            return gsi;
        vp->vectors[i] = (struct virtio_pci_vector){.gsi = gsi, .masked = true};
    }
    return 0;
}

static int setup_pci_function(struct virtio_pci *vp)
{
    struct pci_ids ids = {
        .vendor = VIRTIO_PCI_VENDOR,
        .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + vp->vdev->device_id),
        .subsystem_vendor = VIRTIO_PCI_VENDOR,
        .subsystem = VIRTIO_PCI_SUBSYSTEM,
        .class_code = vp->vdev->device_id == 1 ? 0x020000 : 0xff0000,
        .revision = 1,
    };
    int ret = pci_device_init(&vp->pci, vp->vdev->id, &ids);

    if (!ret)
        ret = pci_set_bar(&vp->pci, VIRTIO_PCI_MSIX_BAR, VIRTIO_PCI_MSIX_BAR_SIZE, 0,
                          &vp->msix.bar_dev);
    if (!ret)
        ret = pci_set_bar(&vp->pci, VIRTIO_PCI_CAPS_BAR, VIRTIO_PCI_CAPS_BAR_SIZE,
                          PCI_BAR_MEM64 | PCI_BAR_PREFETCH, &vp->caps_dev);
    if (!ret)
        ret = add_virtio_caps(vp);
    if (!ret)
        ret = msix_init(&vp->msix, &vp->pci, vp->nvectors, VIRTIO_PCI_MSIX_BAR, 0,
                        VIRTIO_PCI_PBA_OFFSET, &virtio_msix_ops, vp);
    return ret;
}

int virtio_pci_init(struct virtio_pci *vp, struct virtio_device *vdev,
                    const struct virtio_platform *platform)
{
    int ret;

    memset(vp, 0, sizeof(*vp));
    vp->vdev = vdev;
    vp->platform = platform;
    vp->notify_base = PCI_BAR_UNMAPPED;
    vp->caps_dev = (struct device){.id = vdev->id, .ops = &caps_ops};
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        vdev->queues[q].kick_fd = vdev->queues[q].call_fd = -1;
    if (vdev->num_queues > VIRTIO_MAX_QUEUES)
        return -EINVAL;
    ret = pthread_mutex_init(&vp->lock, NULL);
    if (ret)
        return -ret;
    ret = create_queue_fds(vp);
    if (!ret)
        ret = alloc_vectors(vp);
    if (!ret)
        ret = setup_pci_function(vp);
    if (ret) {
        pr_err("%s: cannot create its virtio-pci function: %s", vdev->id, strerror(-ret));
        virtio_pci_destroy(vp);
        return ret;
    }
    vp->pci.opaque = vp;
    vp->pci.bar_moved = virtio_bar_moved;
    vdev->platform = platform;
    vdev->transport = vp;
    vdev->transport_ops = &virtio_pci_transport_ops;
    pthread_mutex_lock(&vp->lock);
    reset_transport(vp); /* the model has not started: nothing to stop */
    pthread_mutex_unlock(&vp->lock);
    return 0;
}

/* On the device's loop: the model stops (idempotent), then the transport, MSI-X
 * and config space return to power-on. */
static void platform_reset(struct virtio_pci *vp)
{
    vp->vdev->ops->reset(vp->vdev);
    pthread_mutex_lock(&vp->lock);
    reset_transport(vp);
    pthread_mutex_unlock(&vp->lock);
    /* Outside vp->lock: MSI-X calls back into us with its own lock held. */
    msix_reset(&vp->msix);
    pci_device_reset(&vp->pci);
}

static void platform_reset_job(void *arg)
{
    struct virtio_pci *vp = arg;
    void (*done)(void *) = vp->reset_done;

    platform_reset(vp);
    vp->reset_done = NULL;
    if (done)
        done(vp->reset_done_arg);
}

int virtio_pci_reset_async(struct virtio_pci *vp, void (*done)(void *arg), void *arg)
{
    int ret;

    vp->reset_done = done;
    vp->reset_done_arg = arg;
    ret = event_loop_post(vp->vdev->loop, platform_reset_job, vp);
    if (ret)
        vp->reset_done = NULL;
    return ret;
}

static int platform_reset_call(void *arg)
{
    platform_reset(arg);
    return 0;
}

int virtio_pci_reset(struct virtio_pci *vp)
{
    return event_loop_call(vp->vdev->loop, platform_reset_call, vp);
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
    struct virtio_device *vdev = vp->vdev;

    if (vp->msix.table)
        msix_destroy(&vp->msix);
    pci_device_destroy(&vp->pci);
    for (unsigned i = 0; i < vp->nvectors; i++)
        if (vp->vectors[i].gsi > 0)
            vp->platform->msi_route_free(vp->platform->opaque, vp->vectors[i].gsi);
    for (unsigned q = 0; q < vdev->num_queues; q++) {
        if (vdev->queues[q].kick_fd >= 0)
            close(vdev->queues[q].kick_fd);
        if (vdev->queues[q].call_fd >= 0)
            close(vdev->queues[q].call_fd);
        vdev->queues[q].kick_fd = vdev->queues[q].call_fd = -1;
    }
    pthread_mutex_destroy(&vp->lock);
}

static const struct device_ops caps_ops = {
    .read = caps_read,
    .write = caps_write,
    .save = vp_caps_save,
    .load = vp_caps_load,
    .pause = vp_caps_pause,
    .resume = vp_caps_resume,
    .log_check = vp_caps_log_check,
    .log_start = vp_caps_log_start,
    .log_stop = vp_caps_log_stop,
};
