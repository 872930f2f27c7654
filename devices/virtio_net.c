/* virtio-net, the model: the features offered, the config space, and the guest
 * starting and resetting the NIC. Its other concerns have files of their own
 * (net_priv.h lists them). */
#include "net_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const uint64_t backend_feature_mask =
    BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |
    BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) | BIT(VIRTIO_NET_F_GUEST_UFO) |
    BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN) |
    BIT(VIRTIO_NET_F_HOST_UFO) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_F_RING_INDIRECT_DESC) |
    BIT(VIRTIO_F_RING_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED) |
    BIT(VIRTIO_F_IN_ORDER) | BIT(VIRTIO_F_NOTIFICATION_DATA);

uint64_t virtio_net_offered_features(uint64_t backend, const struct virtio_net_options *opts)
{
    /* vmm itself provides the config space, the control queue and announcements;
     * the VLAN table and guest offloads are acknowledged as QEMU does for a
     * vhost-user NIC (the backend filters and offloads as it is configured). */
    uint64_t f = (backend & backend_feature_mask) | BIT(VIRTIO_NET_F_MAC) |
                 BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_CTRL_RX) |
                 BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) | BIT(VIRTIO_NET_F_GUEST_ANNOUNCE) |
                 BIT(VIRTIO_NET_F_CTRL_VLAN) | BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);

    /* Packed rings only when asked for (QEMU's packed=off default): the backend's offer
     * alone does not change the ring format a guest gets. IN_ORDER and NOTIFICATION_DATA
     * pass through as QEMU's vhost-user net passes them: vmm's control queue uses its
     * buffers in order, and the transport's doorbell takes the 32-bit notification. */
    if (!opts->packed)
        f &= ~BIT(VIRTIO_F_RING_PACKED);
    if (opts->queue_pairs > 1)
        f |= BIT(VIRTIO_NET_F_MQ);
    if (opts->mtu)
        f |= BIT(VIRTIO_NET_F_MTU);
    return f;
}

uint64_t virtio_net_backend_features(uint64_t acked, uint64_t backend)
{
    uint64_t f = acked & backend & backend_feature_mask;

    if (backend & BIT(VHOST_USER_F_PROTOCOL_FEATURES))
        f |= BIT(VHOST_USER_F_PROTOCOL_FEATURES);
    return f;
}

/* What the guest is offered: F_MTU only when the first backend takes NET_SET_MTU
 * (the spec sends it only then; QEMU offers F_MTU anyway and skips the message). */
uint64_t net_offered_features(const struct virtio_net *net)
{
    uint64_t f = virtio_net_offered_features(net->backend_features, &net->opts);

    return net->backend_protocol & PF(MTU) ? f : f & ~BIT(VIRTIO_NET_F_MTU);
}

static uint64_t net_features(struct virtio_device *vdev)
{
    return net_offered_features(to_net(vdev));
}

static int net_set_features(struct virtio_device *vdev, uint64_t acked)
{
    (void)vdev;
    (void)acked;
    return 0;
}

static void net_config_read(struct virtio_device *vdev, uint32_t offset, uint8_t *data,
                            uint32_t len)
{
    struct virtio_net *net = to_net(vdev);

    memset(data, 0, len);
    pthread_mutex_lock(&net->lock);
    if (offset < sizeof(net->config)) {
        uint32_t n = len < sizeof(net->config) - offset ? len : sizeof(net->config) - offset;

        memcpy(data, (uint8_t *)&net->config + offset, n);
    }
    pthread_mutex_unlock(&net->lock);
}

/* The MAC is writable through config space only without CTRL_MAC_ADDR (legacy
 * drivers); the rest is read-only. */
static void net_config_write(struct virtio_device *vdev, uint32_t offset, const uint8_t *data,
                             uint32_t len)
{
    struct virtio_net *net = to_net(vdev);

    if (virtio_has_feature(vdev, VIRTIO_NET_F_CTRL_MAC_ADDR) || offset >= 6 || len > 6 - offset)
        return;
    pthread_mutex_lock(&net->lock);
    memcpy(net->config.mac + offset, data, len);
    pthread_mutex_unlock(&net->lock);
}
static int net_activate(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    bool lost = false;
    int ret = 0;

    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        net->ring_base[q] = net_ring_start_base(net);
    net->rings_unknown = 0;
    net->active_pairs = 1;
    /* Checked with the backend away too: bad rings fail DRIVER_OK, not every reconnect. */
    for (unsigned q = 0; !ret && q < net_ctrl_index(net); q++)
        if (vdev->queues[q].enabled)
            ret = net_vring_addr(net, q, &(struct vhost_user_vring_addr){0});
    if (!ret && net->connected) {
        ret = net_start_backend(net);
        /* A backend that died meanwhile gets the rings when it is back. */
        lost = ret && net->conn.broken;
        if (lost)
            ret = 0;
    }
    if (!ret)
        ret = net_ctrl_start(net);
    if (ret) {
        pr_err("%s: starting the backend failed: %s", vdev->id, strerror(-ret));
        net_stop_rings(net); /* the backend must not run rings the guest will reuse */
        net_reset_status(net);
        return ret;
    }
    net->phase = NET_RUNNING;
    if (lost)
        net_lost_backend(net, "it failed while the rings started");
    if (net->connected)
        pr_info("%s: started %u queue pair(s) on %s", vdev->id, net->opts.queue_pairs,
                net->opts.socket_path);
    else
        pr_info("%s: the guest started the NIC; its rings start when the backend is back",
                vdev->id);
    return 0;
}

/* Device reset: the control queue off the loop, every started ring stopped. */
static void net_reset(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    enum virtio_net_phase was = net->phase;

    net->phase = NET_IDLE;
    /* Halted for a migration, or loaded and never run: nothing runs or is watched. */
    if (was != NET_RUNNING)
        return;
    net_ctrl_watch(net, false);
    if (net->connected)
        net_stop_rings(net);
    net->rings_started = 0;
    net_reset_status(net);
    /* As QEMU's virtio_reset: the device state goes too, where the backend can say so.
     * The memory it holds and the request channel stay (it keeps its owner). */
    if (net->connected && !net->conn.broken && net_has(net, PF(RESET_DEVICE)) &&
        vhost_user_reset_device(&net->conn) == 0)
        net->conn.nmem_held = 0; /* reset means re-initialised: the memory goes again */
    if (net->connected && net->conn.broken)
        net_lost_backend(net, "it failed during GET_VRING_BASE");
}
static const struct virtio_device_ops virtio_net_ops = {
    .features = net_features,
    .set_features = net_set_features,
    .config_read = net_config_read,
    .config_write = net_config_write,
    .activate = net_activate,
    .reset = net_reset,
    .save = net_save,
    .load = net_load,
    .start_loaded = net_start_loaded,
    .stop = net_stop,
    .restart = net_restart,
    .log_check = net_log_check,
    .log_start = net_log_start,
    .log_stop = net_log_stop,
    .config_size = sizeof(struct virtio_net_config),
};
static const char *const feature_names[64] = {
    [VIRTIO_NET_F_CSUM] = "CSUM",
    [VIRTIO_NET_F_GUEST_CSUM] = "GUEST_CSUM",
    [VIRTIO_NET_F_GUEST_TSO4] = "GUEST_TSO4",
    [VIRTIO_NET_F_GUEST_TSO6] = "GUEST_TSO6",
    [VIRTIO_NET_F_GUEST_ECN] = "GUEST_ECN",
    [VIRTIO_NET_F_GUEST_UFO] = "GUEST_UFO",
    [VIRTIO_NET_F_HOST_TSO4] = "HOST_TSO4",
    [VIRTIO_NET_F_HOST_TSO6] = "HOST_TSO6",
    [VIRTIO_NET_F_HOST_ECN] = "HOST_ECN",
    [VIRTIO_NET_F_HOST_UFO] = "HOST_UFO",
    [VIRTIO_NET_F_MRG_RXBUF] = "MRG_RXBUF",
    [VIRTIO_F_RING_INDIRECT_DESC] = "RING_INDIRECT_DESC",
    [VIRTIO_F_RING_EVENT_IDX] = "RING_EVENT_IDX",
    [VIRTIO_F_VERSION_1] = "VERSION_1",
    [VIRTIO_F_RING_PACKED] = "RING_PACKED",
    [VIRTIO_F_IN_ORDER] = "IN_ORDER",
    [VIRTIO_F_NOTIFICATION_DATA] = "NOTIFICATION_DATA",
};

const char *net_feature_name(int bit)
{
    return bit >= 0 && bit < 64 && feature_names[bit] ? feature_names[bit] : "?";
}

/* A new backend must offer every data-path feature the guest uses (or, before the
 * guest negotiated, every one vmm already offered it). */
int virtio_net_missing_feature(uint64_t in_use, uint64_t offered)
{
    uint64_t missing = in_use & backend_feature_mask & ~offered;

    return missing ? __builtin_ctzll(missing) : -1;
}
void virtio_net_setup(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                      const struct virtio_platform *platform, const struct guest_mem_access *mem,
                      struct event_loop *loop)
{
    memset(net, 0, sizeof(*net));
    net->opts = *opts;
    if (!net->opts.queue_size) /* options built by hand (tests): the default */
        net->opts.queue_size = VIRTIO_NET_QUEUE_SIZE_DEFAULT;
    net->vdev = (struct virtio_device){.id = id,
                                       .device_id = VIRTIO_ID_NET,
                                       .num_queues = 2 * opts->queue_pairs + 1,
                                       .ops = &virtio_net_ops,
                                       .mem = mem,
                                       .platform = platform,
                                       .loop = loop};
    for (unsigned q = 0; q < net->vdev.num_queues; q++)
        net->vdev.queues[q].max_size = net->opts.queue_size;
    net->vdev.queues[2 * opts->queue_pairs].max_size = VIRTIO_NET_CTRL_QUEUE_SIZE;
    net->conn.fd = net->conn.backend_fd = net->listen_fd = net->retry_fd = -1;
    net->chan_timer_fd = net->log_fd = -1;
    net->phase = NET_IDLE;
    net->active_pairs = 1;
    pthread_mutex_init(&net->lock, NULL);
    pthread_mutex_init(&net->fd_lock, NULL);
    memcpy(net->config.mac, opts->mac, 6);
    net->config.status = VIRTIO_NET_S_LINK_UP;
    net->config.max_virtqueue_pairs = (uint16_t)opts->queue_pairs;
    net->config.mtu = opts->mtu;
}

int virtio_net_init(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                    const struct virtio_platform *platform, const struct guest_mem_access *mem,
                    struct event_loop *loop)
{
    int ret;

    virtio_net_setup(net, id, opts, platform, mem, loop);
    ret = net_link_init(net);
    if (ret)
        virtio_net_destroy(net);
    return ret;
}

void virtio_net_destroy(struct virtio_net *net)
{
    if (net->vdev.platform)
        net_link_destroy(net);
    if (net->log_fd >= 0)
        close(net->log_fd);
    net->log_fd = -1;
    pthread_mutex_destroy(&net->fd_lock);
    pthread_mutex_destroy(&net->lock);
}

void virtio_net_link_status(struct virtio_net *net, bool *connected, bool *link_up)
{
    pthread_mutex_lock(&net->lock);
    *connected = net->connected;
    *link_up = net->config.status & VIRTIO_NET_S_LINK_UP;
    pthread_mutex_unlock(&net->lock);
}
