/* virtio-pci's migration state: the caps device's save, load, pause and resume and
 * the dirty-log ops forwarded to the model (the transport is in virtio_pci.c). Each
 * waits for the model's loop, holding no lock meanwhile. */
#include "virtio_pci_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

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

int vp_caps_save(struct device *dev, struct state_buf *out)
{
    struct virtio_pci *vp = vp_from_caps(dev);
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
    return v == VIRTIO_NO_VECTOR || vp_vector_valid(vp, v);
}

static int check_loaded_queues(struct virtio_pci *vp, const struct vp_loaded *l)
{
    bool packed = l->t.acked_features & (1ULL << VIRTIO_F_RING_PACKED);

    for (unsigned q = 0; q < l->hdr.num_queues; q++) {
        const struct vp_queue_state *s = &l->q[q];

        if (!virtio_queue_size_ok(s->size, vp->vdev->queues[q].max_size, packed) ||
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
    uint64_t offered = vp_offered_features(vp);

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
        ret = vp_set_doorbells(vp, vp->notify_base, true);
    if (!ret) {
        for (unsigned q = 0; q < vp->vdev->num_queues; q++)
            vp_attach_call(vp, q);
        vp->wired = true;
        vp->phase = VP_STARTING;
    }
    pthread_mutex_unlock(&vp->lock);
    if (ret)
        return ret;
    ret = event_loop_call(vp->vdev->loop, model_start_loaded_call, vp->vdev);
    pthread_mutex_lock(&vp->lock);
    if (ret)
        vp_unwire(vp);
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

int vp_caps_load(struct device *dev, const uint8_t *data, size_t len)
{
    struct virtio_pci *vp = vp_from_caps(dev);
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
            vp_on_masked_call(&vp->qrefs[q], 0);
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
int vp_caps_pause(struct device *dev)
{
    struct virtio_pci *vp = vp_from_caps(dev);

    return event_loop_call(vp->vdev->loop, model_stop_call, vp);
}

int vp_caps_resume(struct device *dev)
{
    struct virtio_pci *vp = vp_from_caps(dev);

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
int vp_caps_log_check(struct device *dev, char *why, size_t len)
{
    struct virtio_pci *vp = vp_from_caps(dev);

    return vp->vdev->ops->log_check ? vp->vdev->ops->log_check(vp->vdev, why, len) : 0;
}

int vp_caps_log_start(struct device *dev, int fd, uint64_t size)
{
    struct virtio_pci *vp = vp_from_caps(dev);
    struct log_args a = {.vdev = vp->vdev, .fd = fd, .size = size};

    return vp->vdev->ops->log_start ? event_loop_call(vp->vdev->loop, model_log_start_call, &a) : 0;
}

int vp_caps_log_stop(struct device *dev)
{
    struct virtio_pci *vp = vp_from_caps(dev);
    struct log_args a = {.vdev = vp->vdev};

    return vp->vdev->ops->log_stop ? event_loop_call(vp->vdev->loop, model_log_stop_call, &a) : 0;
}
