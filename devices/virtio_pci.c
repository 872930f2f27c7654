#include "virtio_pci.h"

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

#define ISR_QUEUE 0x1
#define ISR_CONFIG 0x2

static const struct device_ops caps_ops;

static struct virtio_pci *from_caps(struct device *dev)
{
    return (struct virtio_pci *)((char *)dev - offsetof(struct virtio_pci, caps_dev));
}

static uint64_t offered_features(struct virtio_pci *vp)
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
    uint64_t features = offered_features(vp);

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

static bool vector_valid(struct virtio_pci *vp, uint16_t vector)
{
    return vector < vp->nvectors;
}

/* A masked vector's call eventfd is polled (on the loop thread): what it carries
 * becomes a pending bit, delivered when the guest unmasks the vector. */
static void on_masked_call(void *arg, uint32_t events)
{
    struct virtio_pci_queue_ref *ref = arg;
    struct virtio_queue *vq = &ref->vp->vdev->queues[ref->index];
    uint64_t count;

    (void)events;
    if (read(vq->call_fd, &count, sizeof(count)) == sizeof(count) && count)
        msix_notify(&ref->vp->msix, vq->msix_vector);
}

/* Caller holds vp->lock. */
static void attach_call(struct virtio_pci *vp, unsigned q)
{
    const struct virtio_platform *p = vp->platform;
    struct virtio_queue *vq = &vp->vdev->queues[q];
    struct virtio_pci_vector *v;

    if (!vector_valid(vp, vq->msix_vector))
        return;
    v = &vp->vectors[vq->msix_vector];
    /* KVM raises at once what the eventfd already holds when it is assigned. */
    if (!v->masked && p->irqfd(p->opaque, v->gsi, vq->call_fd, true) == 0) {
        vp->queue_irqfd[q] = true;
        return;
    }
    p->watch_fd(p->opaque, vq->call_fd, on_masked_call, &vp->qrefs[q], true);
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

static int set_doorbell(struct virtio_pci *vp, uint64_t base, unsigned q, bool assign)
{
    const struct virtio_platform *p = vp->platform;

    return p->ioeventfd(p->opaque, base + q * VIRTIO_PCI_NOTIFY_MULTIPLIER, 2,
                        vp->vdev->queues[q].kick_fd, assign);
}

/* All queues' doorbells at base, or none: a failed assign undoes the earlier ones. */
static int set_doorbells(struct virtio_pci *vp, uint64_t base, bool assign)
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
    ret = set_doorbells(vp, vp->notify_base, true);
    if (ret)
        return ret;
    for (unsigned q = 0; q < vp->vdev->num_queues; q++)
        attach_call(vp, q);
    vp->wired = true;
    return 0;
}

static void unwire(struct virtio_pci *vp)
{
    if (!vp->wired)
        return;
    set_doorbells(vp, vp->notify_base, false);
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
    unwire(vp);
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
        unwire(vp);
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

    if ((f & ~offered_features(vp)) || !(f & (1ULL << VIRTIO_F_VERSION_1)))
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
        unwire(vp);
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
    return vector_valid(vp, v) ? v : VIRTIO_NO_VECTOR;
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
        if (v && v <= q->max_size && !(v & (v - 1)))
            q->size = (uint16_t)v;
        break;
    case COMMON_Q_MSIX:
        if (vp->wired)
            detach_call(vp, index);
        q->msix_vector = checked_vector(vp, (uint16_t)v);
        if (vp->wired)
            attach_call(vp, index);
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
    struct virtio_pci *vp = from_caps(dev);
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
    struct virtio_pci *vp = from_caps(dev);

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
                attach_call(vp, q);
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
        set_doorbells(vp, vp->notify_base, false);
    vp->notify_base =
        new_addr == PCI_BAR_UNMAPPED ? PCI_BAR_UNMAPPED : new_addr + VIRTIO_PCI_NOTIFY_OFFSET;
    if (vp->wired && vp->notify_base != PCI_BAR_UNMAPPED &&
        set_doorbells(vp, vp->notify_base, true))
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

/* ---- migration: the caps device's save/load/pause/resume ---- */

#define VP_STATE_MAGIC 0x49435056u /* "VPCI" */
#define VP_STATE_VERSION 1

/* The blob: this header, PCI config, MSI-X, the transport, one vp_queue_state per
 * queue, then the device model's own state. */
struct vp_state_header {
    uint32_t magic;
    uint16_t version;
    uint16_t num_queues;
    uint16_t nvectors;
    uint16_t reserved;
    uint32_t pci_len, msix_len, model_len;
} __attribute__((packed));
_Static_assert(sizeof(struct vp_state_header) == 24, "vp_state_header is 24 bytes");

struct vp_transport_state {
    uint64_t driver_features;
    uint64_t acked_features;
    uint32_t device_feature_select, driver_feature_select;
    uint16_t msix_config;
    uint16_t queue_select;
    uint8_t status, config_generation, isr, active;
} __attribute__((packed));
_Static_assert(sizeof(struct vp_transport_state) == 32, "vp_transport_state is 32 bytes");

struct vp_queue_state {
    uint64_t desc, avail, used;
    uint16_t size, msix_vector;
    uint8_t enabled;
    uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct vp_queue_state) == 32, "vp_queue_state is 32 bytes");

/* The saved state taken apart (and bounds-checked); nothing applied yet. */
struct vp_loaded {
    struct vp_state_header hdr;
    const uint8_t *pci, *msix, *model;
    struct vp_transport_state t;
    struct vp_queue_state q[VIRTIO_MAX_QUEUES];
};

static void transport_state(struct virtio_pci *vp, struct vp_transport_state *t,
                            struct vp_queue_state *qs)
{
    *t = (struct vp_transport_state){
        .driver_features = vp->driver_features,
        .acked_features = vp->vdev->acked_features,
        .device_feature_select = vp->device_feature_select,
        .driver_feature_select = vp->driver_feature_select,
        .msix_config = vp->msix_config,
        .queue_select = vp->queue_select,
        .status = vp->status,
        .config_generation = vp->config_generation,
        .isr = vp->isr,
        .active = vp->phase == VP_ACTIVE,
    };
    for (unsigned q = 0; q < vp->vdev->num_queues; q++) {
        const struct virtio_queue *vq = &vp->vdev->queues[q];

        qs[q] = (struct vp_queue_state){.desc = vq->desc,
                                        .avail = vq->avail,
                                        .used = vq->used,
                                        .size = vq->size,
                                        .msix_vector = vq->msix_vector,
                                        .enabled = vq->enabled};
    }
}

static int put_sections(struct virtio_pci *vp, struct state_buf *out, const struct state_buf *pci,
                        const struct state_buf *msix, const struct state_buf *model)
{
    struct vp_state_header hdr = {.magic = VP_STATE_MAGIC,
                                  .version = VP_STATE_VERSION,
                                  .num_queues = (uint16_t)vp->vdev->num_queues,
                                  .nvectors = (uint16_t)vp->nvectors,
                                  .pci_len = (uint32_t)pci->len,
                                  .msix_len = (uint32_t)msix->len,
                                  .model_len = (uint32_t)model->len};
    struct vp_transport_state t;
    struct vp_queue_state qs[VIRTIO_MAX_QUEUES];
    int ret;

    pthread_mutex_lock(&vp->lock);
    transport_state(vp, &t, qs);
    pthread_mutex_unlock(&vp->lock);
    ret = state_buf_put(out, &hdr, sizeof(hdr));
    if (!ret)
        ret = state_buf_put(out, pci->data, pci->len);
    if (!ret)
        ret = state_buf_put(out, msix->data, msix->len);
    if (!ret)
        ret = state_buf_put(out, &t, sizeof(t));
    if (!ret)
        ret = state_buf_put(out, qs, vp->vdev->num_queues * sizeof(qs[0]));
    if (!ret && model->len)
        ret = state_buf_put(out, model->data, model->len);
    return ret;
}

struct model_blob {
    struct virtio_device *vdev;
    struct state_buf *buf;
    const uint8_t *data;
    size_t len;
};

/* The model's state belongs to its loop: saved and loaded there. */
static int model_save_call(void *arg)
{
    struct model_blob *b = arg;

    return b->vdev->ops->save(b->vdev, b->buf);
}

static int model_load_call(void *arg)
{
    struct model_blob *b = arg;

    return b->vdev->ops->load(b->vdev, b->data, b->len);
}

static int caps_save(struct device *dev, struct state_buf *out)
{
    struct virtio_pci *vp = from_caps(dev);
    struct virtio_device *vdev = vp->vdev;
    struct state_buf pci = {0}, msix = {0}, model = {0};
    struct model_blob b = {.vdev = vdev, .buf = &model};
    int ret = pci_device_save(&vp->pci, &pci);

    if (!ret)
        ret = msix_save(&vp->msix, &msix);
    if (!ret && vdev->ops->save)
        ret = event_loop_call(vdev->loop, model_save_call, &b);
    if (!ret)
        ret = put_sections(vp, out, &pci, &msix, &model);
    state_buf_free(&pci);
    state_buf_free(&msix);
    state_buf_free(&model);
    return ret;
}

/* Points *p at the next len bytes of r. */
static int state_take(struct state_reader *r, size_t len, const uint8_t **p)
{
    if (len > r->len - r->off)
        return -EINVAL;
    *p = r->data + r->off;
    r->off += len;
    return 0;
}

static int parse_header(struct virtio_pci *vp, struct state_reader *r, struct vp_state_header *h)
{
    const char *id = vp->vdev->id;

    if (state_get(r, h, sizeof(*h)) || h->magic != VP_STATE_MAGIC ||
        h->version != VP_STATE_VERSION) {
        pr_err("%s: saved state is not virtio-pci state version %d", id, VP_STATE_VERSION);
        return -EINVAL;
    }
    if (h->num_queues != vp->vdev->num_queues) {
        pr_err("%s: the saved device has %u queues, this one %u", id, h->num_queues,
               vp->vdev->num_queues);
        return -EINVAL;
    }
    if (h->nvectors != vp->nvectors) {
        pr_err("%s: the saved device has %u MSI-X vectors, this one %u", id, h->nvectors,
               vp->nvectors);
        return -EINVAL;
    }
    if (h->pci_len != PCI_CONFIG_SPACE_SIZE) {
        pr_err("%s: saved PCI config has %u bytes, expected %d", id, h->pci_len,
               PCI_CONFIG_SPACE_SIZE);
        return -EINVAL;
    }
    return 0;
}

static int parse_state(struct virtio_pci *vp, const uint8_t *data, size_t len, struct vp_loaded *l)
{
    struct state_reader r = state_reader_init(data, len);
    int ret = parse_header(vp, &r, &l->hdr);

    if (ret)
        return ret;
    if (state_take(&r, l->hdr.pci_len, &l->pci) || state_take(&r, l->hdr.msix_len, &l->msix) ||
        state_get(&r, &l->t, sizeof(l->t)) ||
        state_get(&r, l->q, l->hdr.num_queues * sizeof(l->q[0])) ||
        state_take(&r, l->hdr.model_len, &l->model) || !state_reader_done(&r)) {
        pr_err("%s: saved virtio-pci state has %zu bytes, which does not match its sections",
               vp->vdev->id, len);
        return -EINVAL;
    }
    return 0;
}

static bool loaded_vector_ok(struct virtio_pci *vp, uint16_t v)
{
    return v == VIRTIO_NO_VECTOR || vector_valid(vp, v);
}

static int check_loaded_queues(struct virtio_pci *vp, const struct vp_loaded *l)
{
    for (unsigned q = 0; q < l->hdr.num_queues; q++) {
        const struct vp_queue_state *s = &l->q[q];

        if (!s->size || s->size > vp->vdev->queues[q].max_size || (s->size & (s->size - 1)) ||
            !loaded_vector_ok(vp, s->msix_vector) || s->enabled > 1) {
            pr_err("%s: saved queue %u is corrupt (size %u, vector %u, enabled %u)", vp->vdev->id,
                   q, s->size, s->msix_vector, s->enabled);
            return -EINVAL;
        }
    }
    return 0;
}

/* Features are checked once the guest accepted them (FEATURES_OK). */
static int check_loaded_features(struct virtio_pci *vp, const struct vp_transport_state *t)
{
    uint64_t offered = offered_features(vp);

    if (!(t->status & VIRTIO_STATUS_FEATURES_OK))
        return 0;
    if ((t->driver_features & ~offered) || !(t->driver_features & (1ULL << VIRTIO_F_VERSION_1))) {
        pr_err("%s: the guest uses features 0x%llx, this device offers 0x%llx", vp->vdev->id,
               (unsigned long long)t->driver_features, (unsigned long long)offered);
        return -EINVAL;
    }
    if (t->acked_features != t->driver_features) {
        pr_err("%s: saved state is corrupt (acked features 0x%llx, the driver's 0x%llx)",
               vp->vdev->id, (unsigned long long)t->acked_features,
               (unsigned long long)t->driver_features);
        return -EINVAL;
    }
    return 0;
}

static int check_loaded(struct virtio_pci *vp, const struct vp_loaded *l)
{
    const struct vp_transport_state *t = &l->t;
    const uint8_t live = VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
    int ret;

    if ((t->isr & ~(ISR_QUEUE | ISR_CONFIG)) || t->active > 1 ||
        !loaded_vector_ok(vp, t->msix_config) || (t->active && (t->status & live) != live)) {
        pr_err("%s: saved virtio-pci state is corrupt (status 0x%x, active %u, isr 0x%x, config "
               "vector %u)",
               vp->vdev->id, t->status, t->active, t->isr, t->msix_config);
        return -EINVAL;
    }
    ret = check_loaded_features(vp, t);
    if (ret)
        return ret;
    if (t->active && !vp->vdev->ops->start_loaded) {
        pr_err("%s: this device cannot start from a saved state", vp->vdev->id);
        return -ENOTSUP;
    }
    return check_loaded_queues(vp, l);
}

/* Caller holds vp->lock. */
static void apply_transport(struct virtio_pci *vp, const struct vp_loaded *l)
{
    const struct vp_transport_state *t = &l->t;

    vp->driver_features = t->driver_features;
    vp->vdev->acked_features = t->acked_features;
    vp->device_feature_select = t->device_feature_select;
    vp->driver_feature_select = t->driver_feature_select;
    vp->msix_config = t->msix_config;
    vp->queue_select = t->queue_select;
    vp->status = t->status;
    vp->config_generation = t->config_generation;
    vp->isr = t->isr;
    for (unsigned q = 0; q < l->hdr.num_queues; q++) {
        struct virtio_queue *vq = &vp->vdev->queues[q];

        vq->desc = l->q[q].desc;
        vq->avail = l->q[q].avail;
        vq->used = l->q[q].used;
        vq->size = l->q[q].size;
        vq->msix_vector = l->q[q].msix_vector;
        vq->enabled = l->q[q].enabled;
    }
}

static int model_start_loaded_call(void *arg)
{
    struct virtio_device *vdev = arg;

    return vdev->ops->start_loaded(vdev);
}

/* The wiring DRIVER_OK would have made (doorbells wait for the BAR if the guest
 * turned decode off), then the model starts on its loop, no lock held meanwhile. */
static int start_loaded(struct virtio_pci *vp)
{
    int ret = 0;

    pthread_mutex_lock(&vp->lock);
    if (vp->notify_base != PCI_BAR_UNMAPPED)
        ret = set_doorbells(vp, vp->notify_base, true);
    if (!ret) {
        for (unsigned q = 0; q < vp->vdev->num_queues; q++)
            attach_call(vp, q);
        vp->wired = true;
        vp->phase = VP_STARTING;
    }
    pthread_mutex_unlock(&vp->lock);
    if (ret)
        return ret;
    ret = event_loop_call(vp->vdev->loop, model_start_loaded_call, vp->vdev);
    pthread_mutex_lock(&vp->lock);
    if (ret)
        unwire(vp);
    vp->phase = ret ? VP_IDLE : VP_ACTIVE;
    pthread_mutex_unlock(&vp->lock);
    return ret;
}

/* From power-on state: the model (which validates its own state), config space
 * (which maps the BARs), MSI-X (which sets every route), the transport. */
static int apply_loaded(struct virtio_pci *vp, const struct vp_loaded *l)
{
    struct virtio_device *vdev = vp->vdev;
    struct model_blob b = {.vdev = vdev, .data = l->model, .len = l->hdr.model_len};
    int ret = 0;

    /* The features in force, as the transport saved them. A model that saved its own
     * copy (virtio-net) loads it back into vdev: the two must agree, or what this
     * function saves next would not load. */
    vdev->acked_features = l->t.acked_features;
    if (vdev->ops->load)
        ret = event_loop_call(vdev->loop, model_load_call, &b);
    else if (l->hdr.model_len)
        ret = -EINVAL;
    if (!ret && vdev->acked_features != l->t.acked_features) {
        pr_err("%s: saved state is corrupt (acked features 0x%llx, the model's 0x%llx)", vdev->id,
               (unsigned long long)l->t.acked_features, (unsigned long long)vdev->acked_features);
        ret = -EINVAL;
    }
    if (!ret)
        ret = pci_device_load(&vp->pci, l->pci, l->hdr.pci_len);
    if (!ret && msix_load(&vp->msix, l->msix, l->hdr.msix_len)) {
        pr_err("%s: saved MSI-X state does not fit this device", vdev->id);
        ret = -EINVAL;
    }
    if (ret)
        return ret;
    pthread_mutex_lock(&vp->lock);
    apply_transport(vp, l);
    pthread_mutex_unlock(&vp->lock);
    return l->t.active ? start_loaded(vp) : 0;
}

static int caps_load(struct device *dev, const uint8_t *data, size_t len)
{
    struct virtio_pci *vp = from_caps(dev);
    struct vp_loaded l;
    int ret = parse_state(vp, data, len, &l);

    if (!ret)
        ret = check_loaded(vp, &l);
    if (!ret)
        ret = virtio_pci_reset(vp);
    if (ret)
        return ret;
    ret = apply_loaded(vp, &l);
    if (ret) {
        pr_err("%s: cannot load its saved state: %s", vp->vdev->id, strerror(-ret));
        virtio_pci_reset(vp); /* power-on state, not half of the saved one */
    }
    return ret;
}

/* A masked vector's call eventfd may hold an interrupt the loop has not polled
 * yet: into the PBA with it, which is saved. */
static void drain_masked_calls(struct virtio_pci *vp)
{
    bool watched[VIRTIO_MAX_QUEUES];

    pthread_mutex_lock(&vp->lock);
    memcpy(watched, vp->queue_watched, sizeof(watched));
    pthread_mutex_unlock(&vp->lock);
    for (unsigned q = 0; q < vp->vdev->num_queues; q++)
        if (watched[q])
            on_masked_call(&vp->qrefs[q], 0);
}

static bool is_active(struct virtio_pci *vp)
{
    bool active;

    pthread_mutex_lock(&vp->lock);
    active = vp->phase == VP_ACTIVE;
    pthread_mutex_unlock(&vp->lock);
    return active;
}

/* On the device's loop, where an activation or reset the guest asked for just
 * before the pause has run by now: the phase is settled. */
static int model_stop_call(void *arg)
{
    struct virtio_pci *vp = arg;
    int ret;

    if (!is_active(vp))
        return 0;
    if (!vp->vdev->ops->stop) {
        pr_err("%s: this device cannot be stopped for a migration", vp->vdev->id);
        return -ENOTSUP;
    }
    ret = vp->vdev->ops->stop(vp->vdev);
    drain_masked_calls(vp);
    return ret;
}

static int model_restart_call(void *arg)
{
    struct virtio_pci *vp = arg;

    if (!is_active(vp) || !vp->vdev->ops->restart)
        return 0;
    return vp->vdev->ops->restart(vp->vdev);
}

/* The vCPUs are paused: the model stops its queues (the final stop of a migration). */
static int caps_pause(struct device *dev)
{
    struct virtio_pci *vp = from_caps(dev);

    return event_loop_call(vp->vdev->loop, model_stop_call, vp);
}

static int caps_resume(struct device *dev)
{
    struct virtio_pci *vp = from_caps(dev);

    return event_loop_call(vp->vdev->loop, model_restart_call, vp);
}

/* ---- dirty logging: forwarded to the model, on its loop ---- */

struct log_args {
    struct virtio_device *vdev;
    int fd;
    uint64_t size;
};

static int model_log_start_call(void *arg)
{
    struct log_args *a = arg;

    return a->vdev->ops->log_start(a->vdev, a->fd, a->size);
}

static int model_log_stop_call(void *arg)
{
    struct log_args *a = arg;

    return a->vdev->ops->log_stop(a->vdev);
}

/* A model without dirty-log ops writes no guest memory behind vmm's back. Any
 * thread: the model answers from what it keeps under its lock. */
static int caps_log_check(struct device *dev, char *why, size_t len)
{
    struct virtio_pci *vp = from_caps(dev);

    return vp->vdev->ops->log_check ? vp->vdev->ops->log_check(vp->vdev, why, len) : 0;
}

static int caps_log_start(struct device *dev, int fd, uint64_t size)
{
    struct virtio_pci *vp = from_caps(dev);
    struct log_args a = {.vdev = vp->vdev, .fd = fd, .size = size};

    return vp->vdev->ops->log_start ? event_loop_call(vp->vdev->loop, model_log_start_call, &a) : 0;
}

static int caps_log_stop(struct device *dev)
{
    struct virtio_pci *vp = from_caps(dev);
    struct log_args a = {.vdev = vp->vdev};

    return vp->vdev->ops->log_stop ? event_loop_call(vp->vdev->loop, model_log_stop_call, &a) : 0;
}

static const struct device_ops caps_ops = {
    .read = caps_read,
    .write = caps_write,
    .save = caps_save,
    .load = caps_load,
    .pause = caps_pause,
    .resume = caps_resume,
    .log_check = caps_log_check,
    .log_start = caps_log_start,
    .log_stop = caps_log_stop,
};
