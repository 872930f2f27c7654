/* virtio-net's migration state: the blob saved and loaded (through the
 * transport's), the source's final stop and its restart after a failed migration,
 * and the destination's start from the loaded state, with the announcement. */
#include "net_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define NET_STATE_MAGIC 0x54454e56u /* "VNET" */
/* Version 2: each data ring's base is 32 bits (a packed ring's two positions and wrap
 * counters) and the control queue's position carries its wrap counters. Version 1 (16-bit
 * bases) is refused, and a vmm that reads only version 1 refuses this one. */
#define NET_STATE_VERSION 2
#define NET_STATUS_BITS (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE)

/* Followed by the ring base of each data queue (2 * queue_pairs uint32_t, as
 * SET_VRING_BASE carries them). */
struct net_state {
    uint32_t magic;
    uint16_t version;
    uint16_t queue_pairs;
    uint64_t acked_features;
    uint8_t mac[6];
    uint16_t status;
    uint16_t mtu;
    uint16_t active_pairs;
    uint32_t ctrl_position; /* net_ctrl_position_encode */
    uint8_t started;
    uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct net_state) == 36, "net_state is 36 bytes");

int net_save(struct virtio_device *vdev, struct state_buf *out)
{
    struct virtio_net *net = to_net(vdev);
    struct net_state st = {
        .magic = NET_STATE_MAGIC,
        .version = NET_STATE_VERSION,
        .queue_pairs = (uint16_t)net->opts.queue_pairs,
        .acked_features = vdev->acked_features,
        .active_pairs = (uint16_t)net->active_pairs,
        .ctrl_position = net_ctrl_position_encode(&net->ctrl_vq),
        .started = net->phase != NET_IDLE,
    };
    int ret;

    if (net->phase == NET_RUNNING) {
        pr_err("%s: cannot save the NIC while its rings run: stop it first", vdev->id);
        return -EBUSY;
    }
    if (net->rings_unknown) {
        pr_err("%s: cannot save the NIC: where packed queue %d stopped is unknown (its backend "
               "died; see the earlier line)",
               vdev->id, __builtin_ctz(net->rings_unknown));
        return -EINVAL;
    }
    pthread_mutex_lock(&net->lock);
    memcpy(st.mac, net->config.mac, 6);
    st.status = net->config.status;
    st.mtu = net->config.mtu;
    pthread_mutex_unlock(&net->lock);
    ret = state_buf_put(out, &st, sizeof(st));
    for (unsigned q = 0; !ret && q < net_ctrl_index(net); q++)
        ret = state_buf_put(out, &net->ring_base[q], sizeof(net->ring_base[q]));
    return ret;
}

/* Features the guest uses must all be offered here (this backend's data path). */
static int net_check_loaded_features(struct virtio_net *net, const struct net_state *st)
{
    uint64_t offered = net_offered_features(net) | BIT(VIRTIO_F_VERSION_1);
    uint64_t extra = st->acked_features & ~offered;
    int bit = virtio_net_missing_feature(st->acked_features, offered);

    if (bit >= 0) {
        pr_err("%s: the guest uses %s (feature bit %d), which the backend on %s does not offer",
               net->vdev.id, net_feature_name(bit), bit, net->opts.socket_path);
        return -EINVAL;
    }
    if (extra) {
        pr_err("%s: the guest uses feature bit %d, which this NIC does not offer", net->vdev.id,
               __builtin_ctzll(extra));
        return -EINVAL;
    }
    if ((st->acked_features & BIT(VIRTIO_NET_F_MTU)) && st->mtu != net->opts.mtu) {
        pr_err("%s: the guest uses MTU %u, this NIC has %u", net->vdev.id, st->mtu, net->opts.mtu);
        return -EINVAL;
    }
    return 0;
}

static int net_check_loaded(struct virtio_net *net, const struct net_state *st, size_t len)
{
    const char *id = net->vdev.id;
    size_t want = sizeof(*st) + 2 * sizeof(uint32_t) * (size_t)st->queue_pairs;

    if (st->magic != NET_STATE_MAGIC) {
        pr_err("%s: saved state is not virtio-net state", id);
        return -EINVAL;
    }
    if (st->version != NET_STATE_VERSION) {
        pr_err("%s: saved state is virtio-net state version %u; this vmm reads version %d only", id,
               st->version, NET_STATE_VERSION);
        return -EINVAL;
    }
    if (st->queue_pairs != net->opts.queue_pairs) {
        pr_err("%s: the saved NIC has %u queue pair(s), this one %u", id, st->queue_pairs,
               net->opts.queue_pairs);
        return -EINVAL;
    }
    if (len != want) {
        pr_err("%s: saved NIC state has %zu bytes, expected %zu", id, len, want);
        return -EINVAL;
    }
    if (st->active_pairs < 1 || st->active_pairs > st->queue_pairs || st->started > 1 ||
        (st->status & ~NET_STATUS_BITS)) {
        pr_err("%s: saved NIC state is corrupt (active pairs %u, started %u, status 0x%x)", id,
               st->active_pairs, st->started, st->status);
        return -EINVAL;
    }
    return net_check_loaded_features(net, st);
}

/* A split ring's base is a 16-bit index; a packed one's two positions are checked
 * against the ring's size when it starts (net_start_loaded: the transport's queues are
 * loaded after the model). */
static int net_check_loaded_bases(struct virtio_net *net, const struct net_state *st,
                                  const uint32_t *bases)
{
    if (st->acked_features & BIT(VIRTIO_F_RING_PACKED))
        return 0;
    for (unsigned q = 0; q < 2 * (unsigned)st->queue_pairs; q++) {
        if (bases[q] > 0xffff) {
            pr_err("%s: saved NIC state is corrupt (split queue %u at 0x%x)", net->vdev.id, q,
                   bases[q]);
            return -EINVAL;
        }
    }
    return 0;
}

int net_load(struct virtio_device *vdev, const uint8_t *data, size_t len)
{
    struct virtio_net *net = to_net(vdev);
    struct state_reader r = state_reader_init(data, len);
    uint32_t bases[VIRTIO_MAX_QUEUES] = {0};
    struct net_state st;
    int ret;

    if (state_get(&r, &st, sizeof(st))) {
        pr_err("%s: saved NIC state has %zu bytes, expected at least %zu", vdev->id, len,
               sizeof(st));
        return -EINVAL;
    }
    ret = net_check_loaded(net, &st, len);
    /* The ring bases follow, one per data queue: what the header announced, no more. */
    if (!ret && (state_get(&r, bases, 2 * sizeof(uint32_t) * (size_t)st.queue_pairs) ||
                 !state_reader_done(&r)))
        ret = -EINVAL;
    if (!ret)
        ret = net_check_loaded_bases(net, &st, bases);
    if (ret)
        return ret;
    if (net->phase == NET_RUNNING || net->phase == NET_STOPPED) {
        pr_err("%s: cannot load state into a running NIC", vdev->id);
        return -EBUSY;
    }
    pthread_mutex_lock(&net->lock);
    memcpy(net->config.mac, st.mac, 6);
    /* The link bit is what the guest saw; start_loaded sets this backend's. A NIC the
     * guest never started shows this backend's link at once. */
    net->config.status = st.status;
    if (!st.started)
        net->config.status = (uint16_t)((st.status & ~VIRTIO_NET_S_LINK_UP) |
                                        (net->connected ? VIRTIO_NET_S_LINK_UP : 0));
    pthread_mutex_unlock(&net->lock);
    vdev->acked_features = st.acked_features;
    net->active_pairs = st.active_pairs;
    net->ctrl_loaded = st.ctrl_position;
    memcpy(net->ring_base, bases, sizeof(net->ring_base));
    net->rings_unknown = 0;
    net->phase = st.started ? NET_LOADED : NET_IDLE;
    return 0;
}

static void resume_io(struct virtio_net *net)
{
    uint64_t one = 1;

    for (unsigned q = 0; net->connected && q < net_ctrl_index(net); q++)
        if ((net->rings_started & (1u << q)) && write(net->vdev.queues[q].kick_fd, &one, 8) < 0)
            pr_debug("%s: queue %u kick: %s", net->vdev.id, q, strerror(errno));
    if (net->vdev.queues[net_ctrl_index(net)].enabled)
        virtio_net_ctrl_process(net);
}

/* The source's final stop: GET_VRING_BASE of each ring tells where it stopped. */
int net_stop(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);

    if (net->phase != NET_RUNNING)
        return 0;
    net_ctrl_watch(net, false);
    for (unsigned q = 0; net->connected && !net->conn.broken && q < net_ctrl_index(net); q++) {
        uint32_t base;

        if ((net->rings_started & (1u << q)) && net_get_ring_base(net, q, &base) == 0)
            net->ring_base[q] = base;
    }
    if (!net->conn.broken)
        net->rings_started = 0;
    net_reset_status(net);
    net->phase = NET_STOPPED;
    /* A dead backend cannot say: each ring's used index in guest memory does. */
    if (net->connected && net->conn.broken)
        net_lost_backend(net, "it failed during GET_VRING_BASE");
    pr_info("%s: rings stopped for migration", vdev->id);
    return 0;
}

/* The source again, after a failed or cancelled migration. */
int net_restart(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    int ret = 0;

    if (net->phase != NET_STOPPED)
        return 0;
    net->phase = NET_RUNNING;
    if (net->connected)
        ret = net_start_backend(net);
    if (ret && net->conn.broken) {
        net_lost_backend(net, "it failed while the rings restarted");
        ret = 0;
    }
    if (!ret)
        ret = net_ctrl_watch(net, true);
    if (ret) {
        pr_err("%s: cannot restart the rings: %s", vdev->id, strerror(-ret));
        return ret;
    }
    resume_io(net);
    pr_info("%s: rings running again", vdev->id);
    return 0;
}

/* The guest tells its peers where it is now (GUEST_ANNOUNCE: a config interrupt
 * with S_ANNOUNCE, acknowledged on the control queue), or, for a guest that cannot,
 * a backend that can sends a RARP in its name. */
static void net_announce(struct virtio_net *net)
{
    bool guest = virtio_has_feature(&net->vdev, VIRTIO_NET_F_GUEST_ANNOUNCE);
    uint8_t mac[6];
    int ret;

    pthread_mutex_lock(&net->lock);
    memcpy(mac, net->config.mac, 6);
    if (guest)
        net->config.status |= VIRTIO_NET_S_ANNOUNCE;
    pthread_mutex_unlock(&net->lock);
    /* Spec: SEND_RARP is for a guest that cannot announce itself (QEMU returns early
     * too): a guest with GUEST_ANNOUNCE sends its own, peers must not get two. */
    if (guest) {
        virtio_notify_config(&net->vdev);
        return;
    }
    if (!net->connected || !net_has(net, PF(RARP)))
        return;
    ret = vhost_user_send_rarp(&net->conn, mac);
    if (ret && net->conn.broken)
        net_lost_backend(net, "it failed during SEND_RARP");
    else if (ret)
        pr_warn("%s: SEND_RARP failed: %s", net->vdev.id, strerror(-ret));
}

/* The destination: the rings from the migrated bases, the control queue where the
 * source left it, then the announcement. */
int net_start_loaded(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    bool lost = false;
    int ret = 0;

    if (net->phase != NET_LOADED) {
        pr_err("%s: the loaded NIC was not started by its guest", vdev->id);
        return -EINVAL;
    }
    for (unsigned q = 0; q < net_ctrl_index(net); q++) {
        if (net->vdev.queues[q].enabled && !net_ring_base_valid(net, q, net->ring_base[q])) {
            pr_err("%s: saved NIC state is corrupt (queue %u at 0x%x, a %u-entry ring)", vdev->id,
                   q, net->ring_base[q], net->vdev.queues[q].size);
            return -EINVAL;
        }
    }
    if (net->connected) {
        ret = net_start_backend(net);
        lost = ret && net->conn.broken; /* the rings start when a backend is back */
        if (lost)
            ret = 0;
    }
    if (!ret)
        ret = net_ctrl_start(net);
    if (!ret)
        ret = net_ctrl_position_decode(net, net->ctrl_loaded);
    if (ret) {
        pr_err("%s: cannot start the migrated NIC: %s", vdev->id, strerror(-ret));
        return ret;
    }
    net->phase = NET_RUNNING;
    net->memory_ahead = false; /* from now on a backend gets the table as its rings start */
    if (lost)
        net_lost_backend(net, "it failed while the rings started");
    resume_io(net);
    net_set_link(net, net->connected);
    net_announce(net);
    pr_info("%s: started from the migrated state, %u of %u queue pair(s) active", vdev->id,
            net->active_pairs, net->opts.queue_pairs);
    return 0;
}
