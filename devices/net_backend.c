/* virtio-net's data path as the backend runs it: the features, memory table and
 * rings it is given when the guest starts the NIC (or a backend comes back), the
 * pairs the guest enables, the rings' stop, and migration's dirty log. */
#include "net_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int send_enable(struct virtio_net *net)
{
    bool protocol = net->conn.features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
    int ret = 0;

    /* Without protocol features, rings run as soon as they are started. */
    for (unsigned q = 0; protocol && !ret && q < net_ctrl_index(net); q++)
        if (net->rings_started & (1u << q))
            ret = vhost_user_set_vring_enable(&net->conn, q, q < 2 * net->active_pairs);
    return ret;
}

/* The guest's MQ command. With the backend away, the choice applies when it is back. */
int net_enable_pairs(struct virtio_net *net, unsigned pairs)
{
    int ret;

    net->active_pairs = pairs;
    if (!net->connected)
        return 0;
    ret = send_enable(net);
    if (ret && net->conn.broken) {
        net_lost_backend(net, "it failed during SET_VRING_ENABLE");
        return 0;
    }
    if (ret)
        pr_err("%s: cannot switch to %u queue pairs: %s", net->vdev.id, pairs, strerror(-ret));
    return ret;
}

static uint64_t host_addr(struct virtio_net *net, uint64_t gpa, uint64_t len)
{
    return (uint64_t)(uintptr_t)guest_mem_ptr(net->vdev.mem, gpa, len);
}

/* A ring's addresses in vmm's mapping; while migrating, the backend also logs its
 * used-ring writes (by guest-physical address) in the dirty log. A packed ring's driver
 * and device areas are the two 4-byte event suppression structures, and its device
 * writes used elements into the descriptor ring itself: that is what it logs, from the
 * log address on (DPDK logs log_guest_addr + entry * 16 for a packed ring). */
int net_vring_addr(struct virtio_net *net, unsigned q, struct vhost_user_vring_addr *addr)
{
    const struct virtio_queue *vq = &net->vdev.queues[q];
    bool packed = net_packed(net);

    *addr = (struct vhost_user_vring_addr){
        .index = q,
        .desc_user_addr = host_addr(net, vq->desc, 16ULL * vq->size),
        .avail_user_addr = host_addr(net, vq->avail, packed ? 4 : 6 + 2ULL * vq->size),
        .used_user_addr = host_addr(net, vq->used, packed ? 4 : 6 + 8ULL * vq->size),
    };
    if (net->logging && !net->log_lost) {
        addr->flags = VHOST_USER_VRING_F_LOG;
        addr->log_guest_addr = packed ? vq->desc : vq->used;
    }
    if (!addr->desc_user_addr || !addr->avail_user_addr || !addr->used_user_addr) {
        pr_err("%s: queue %u: rings outside guest RAM", net->vdev.id, q);
        return -EINVAL;
    }
    return 0;
}

/* Where a new ring starts: index 0, and for a packed ring both wrap counters 1. */
uint32_t net_ring_start_base(const struct virtio_net *net)
{
    struct vhost_user_vring_pos pos = {.avail_wrap = true, .used_wrap = true};

    return net_packed(net) ? vhost_user_vring_pos_encode(&pos) : 0;
}

/* A packed base must name entries inside the ring: anything else came from a corrupt
 * state blob or a backend's reply, and the backend must not get it. */
bool net_ring_base_valid(const struct virtio_net *net, unsigned q, uint32_t base)
{
    struct vhost_user_vring_pos pos;

    if (!net_packed(net))
        return base <= 0xffff;
    vhost_user_vring_pos_decode(base, &pos);
    return pos.avail_idx < net->vdev.queues[q].size && pos.used_idx < net->vdev.queues[q].size;
}

static int send_ring_base(struct virtio_net *net, unsigned q)
{
    struct vhost_user_vring_pos pos;

    if (!net_packed(net))
        return vhost_user_set_vring_base(&net->conn, q, net->ring_base[q] & 0xffff);
    vhost_user_vring_pos_decode(net->ring_base[q], &pos);
    return vhost_user_set_vring_base_packed(&net->conn, q, &pos);
}

/* GET_VRING_BASE as SET_VRING_BASE takes it back. DPDK's lib/vhost answers a packed ring
 * with bits 0-15 only (the used half 0) and, once stopped, has its used position equal
 * to its avail one: a zero used half is read that way. A base outside the ring is the
 * backend's error. */
int net_get_ring_base(struct virtio_net *net, unsigned q, uint32_t *base)
{
    struct vhost_user_vring_pos pos;
    unsigned num;
    int ret;

    if (!net_packed(net)) {
        ret = vhost_user_get_vring_base(&net->conn, q, &num);
        if (!ret)
            *base = num & 0xffff;
        return ret;
    }
    ret = vhost_user_get_vring_base_packed(&net->conn, q, &pos);
    if (ret)
        return ret;
    if (!pos.used_idx && !pos.used_wrap) {
        pos.used_idx = pos.avail_idx;
        pos.used_wrap = pos.avail_wrap;
    }
    *base = vhost_user_vring_pos_encode(&pos);
    if (net_ring_base_valid(net, q, *base))
        return 0;
    pr_err("%s: queue %u: the backend's GET_VRING_BASE names entry %u or %u of a %u-entry ring",
           net->vdev.id, q, pos.avail_idx, pos.used_idx, net->vdev.queues[q].size);
    net->conn.broken = true; /* a protocol error: the backend is treated as lost */
    return -EPROTO;
}

/* One data queue's rings, base and eventfds to the backend. */
static int start_vring(struct virtio_net *net, unsigned q)
{
    const struct virtio_queue *vq = &net->vdev.queues[q];
    struct vhost_user_vring_addr addr;
    int ret = net_vring_addr(net, q, &addr);

    if (ret)
        return ret;
    net->rings_started |= 1u << q; /* from the first message on, it needs a stop */
    ret = vhost_user_set_vring_num(&net->conn, q, vq->size);
    if (!ret)
        ret = vhost_user_set_vring_addr(&net->conn, &addr);
    if (!ret)
        ret = send_ring_base(net, q);
    if (!ret)
        ret = vhost_user_set_vring_kick(&net->conn, q, vq->kick_fd);
    if (!ret)
        ret = vhost_user_set_vring_call(&net->conn, q, vq->call_fd);
    return ret;
}

/* SET_MEM_TABLE, or with CONFIGURE_MEM_SLOTS the regions this backend lacks. */
static int send_mem_table(struct virtio_net *net)
{
    struct vhost_user_mem_region regions[VHOST_USER_MAX_REGIONS];
    const struct virtio_platform *p = net->vdev.platform;
    int n = p->mem_regions(p->opaque, regions, VHOST_USER_MAX_REGIONS);

    return n < 0 ? n : vhost_user_update_mem(&net->conn, regions, (unsigned)n);
}

/* On the NIC's loop, while a migrated guest's RAM is still arriving: the backend maps
 * it now, not after the source stopped (a backend maps all of guest RAM on
 * SET_MEM_TABLE: seconds for a large guest under emulation). The start that follows
 * finds it held and sends nothing more. */
static void prepare_memory_job(void *arg)
{
    struct virtio_net *net = arg;

    net->memory_ahead = true;
    net_send_memory_ahead(net);
}

void net_send_memory_ahead(struct virtio_net *net)
{
    if (net->memory_ahead && net->connected)
        net_failed(net, send_mem_table(net), "SET_MEM_TABLE ahead of the migrated guest");
}

int virtio_net_prepare_memory(struct virtio_net *net)
{
    return event_loop_post(net->vdev.loop, prepare_memory_job, net);
}

static uint64_t net_backend_features(const struct virtio_net *net)
{
    uint64_t f = virtio_net_backend_features(net->vdev.acked_features, net->conn.features);

    return net->logging && !net->log_lost ? f | (1ULL << VHOST_USER_F_LOG_ALL) : f;
}

/* SET_FEATURES; with STATUS and status set, FEATURES_OK follows (QEMU's
 * vhost_user_set_features). */
static int net_send_features(struct virtio_net *net, bool status)
{
    int ret = vhost_user_set_features(&net->conn, net_backend_features(net));

    if (!ret && status && net_has(net, PF(STATUS)))
        ret = vhost_user_add_status(&net->conn, VIRTIO_STATUS_FEATURES_OK);
    return ret;
}

/* Features, MTU, memory table, then each enabled ring from its ring_base; with
 * STATUS, DRIVER_OK once they run. */
int net_start_backend(struct virtio_net *net)
{
    int ret = net_send_features(net, true);

    /* Spec: NET_SET_MTU only when the guest negotiated VIRTIO_NET_F_MTU. */
    if (!ret && net->opts.mtu && net_has(net, PF(MTU)) &&
        virtio_has_feature(&net->vdev, VIRTIO_NET_F_MTU))
        ret = vhost_user_net_set_mtu(&net->conn, net->opts.mtu);
    if (!ret)
        ret = send_mem_table(net);
    /* A ring whose position was lost with its backend stays stopped (net_recover_packed). */
    for (unsigned q = 0; !ret && q < net_ctrl_index(net); q++)
        if (net->vdev.queues[q].enabled && !(net->rings_unknown & (1u << q)))
            ret = start_vring(net, q);
    if (!ret)
        ret = send_enable(net);
    if (!ret && net_has(net, PF(STATUS)))
        ret = vhost_user_add_status(&net->conn, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                                    VIRTIO_STATUS_DRIVER_OK);
    return ret;
}

/* With STATUS, status 0 once the rings are stopped (QEMU's vhost_user_reset_status). */
void net_reset_status(struct virtio_net *net)
{
    if (net->connected && !net->conn.broken && net_has(net, PF(STATUS)))
        vhost_user_set_status(&net->conn, 0);
}

/* GET_VRING_BASE on every ring the backend was given, as the spec asks before they are
 * set up again: a ring the guest enabled after DRIVER_OK was never started. */
void net_stop_rings(struct virtio_net *net)
{
    for (unsigned q = 0; !net->conn.broken && q < net_ctrl_index(net); q++) {
        uint32_t base;

        if ((net->rings_started & (1u << q)) && net_get_ring_base(net, q, &base) == 0)
            pr_debug("%s: queue %u stopped at 0x%x", net->vdev.id, q, base);
    }
    net->rings_started = 0;
}

/* ---- dirty logging, for migration ---- */

/* From any thread: what the attached backend offers, under the model's lock. */
int net_log_check(struct virtio_device *vdev, char *why, size_t len)
{
    struct virtio_net *net = to_net(vdev);
    bool connected, lost, logging;
    uint64_t features, protocol;

    pthread_mutex_lock(&net->lock);
    connected = net->connected;
    lost = net->log_lost;
    logging = net->logging;
    features = net->link_features;
    protocol = net->link_protocol;
    pthread_mutex_unlock(&net->lock);
    if (lost)
        snprintf(why, len, "%s: a backend that came back while migrating could not log its writes",
                 net->vdev.id);
    else if (logging)
        return 0; /* a backend away meanwhile writes nothing; one back logs again */
    else if (!connected)
        snprintf(why, len, "%s: no vhost-user backend is connected", net->vdev.id);
    else if (!(protocol & PF(LOG_SHMFD)))
        snprintf(why, len, "%s: the backend does not offer LOG_SHMFD (a shared dirty log)",
                 net->vdev.id);
    else if (!(features & BIT(VHOST_USER_F_LOG_ALL)))
        snprintf(why, len, "%s: the backend does not offer VHOST_F_LOG_ALL (dirty logging)",
                 net->vdev.id);
    else
        return 0;
    return -ENOTSUP;
}

/* logging is written under the lock (log_check reads it from the migration's
 * thread), read without it on the NIC's own thread. */
static void net_set_logging_flag(struct virtio_net *net, bool on)
{
    pthread_mutex_lock(&net->lock);
    net->logging = on;
    if (!on)
        net->log_lost = false;
    pthread_mutex_unlock(&net->lock);
}

static void net_log_forget(struct virtio_net *net)
{
    net_set_logging_flag(net, false);
    if (net->log_fd >= 0)
        close(net->log_fd);
    net->log_fd = -1;
}

/* SET_FEATURES and every started ring's address, with or without logging. Turning
 * logging on, each returns once the backend applied it (its ack, or a GET_FEATURES
 * round trip without REPLY_ACK: vhost/ does it, as QEMU's enforce_reply). */
static int net_set_logging(struct virtio_net *net, bool on)
{
    int ret;

    net_set_logging_flag(net, on);
    ret = net_send_features(net, net_running(net));
    for (unsigned q = 0; !ret && q < net_ctrl_index(net); q++) {
        struct vhost_user_vring_addr addr;

        if (!(net->rings_started & (1u << q)))
            continue;
        ret = net_vring_addr(net, q, &addr);
        if (!ret)
            ret = vhost_user_set_vring_addr(&net->conn, &addr);
    }
    return ret;
}

int net_log_start(struct virtio_device *vdev, int log_fd, uint64_t log_size)
{
    struct virtio_net *net = to_net(vdev);
    char why[160];
    int ret = net_log_check(vdev, why, sizeof(why));

    if (ret) {
        pr_err("%s", why);
        return ret;
    }
    /* Kept: a backend that comes back before the migration ends gets it again. */
    net->log_fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 0);
    if (net->log_fd < 0) {
        ret = -errno;
        pr_err("%s: cannot keep the dirty log: %s", net->vdev.id, strerror(-ret));
        return ret;
    }
    net->log_size = log_size;
    ret = vhost_user_set_log_base(&net->conn, log_fd, log_size, 0);
    if (!ret)
        ret = net_set_logging(net, true);
    if (ret) {
        pr_err("%s: the backend did not start dirty logging: %s", net->vdev.id, strerror(-ret));
        net_log_forget(net);
        if (net->conn.broken)
            net_lost_backend(net, "it failed while dirty logging started");
    }
    return ret;
}

/* The backend that (re)connected during a migration gets the shared log before its
 * rings start, as QEMU resends SET_LOG_BASE whenever logging is on; one that cannot
 * log makes the log incomplete, which the migration is told (log_check fails). */
int net_log_resume(struct virtio_net *net)
{
    if (!net->logging || net->log_lost)
        return 0;
    if (net_has(net, PF(LOG_SHMFD)) && (net->conn.features & BIT(VHOST_USER_F_LOG_ALL)))
        return vhost_user_set_log_base(&net->conn, net->log_fd, net->log_size, 0);
    pr_err("%s: the backend on %s cannot log its writes (no LOG_SHMFD or VHOST_F_LOG_ALL): the "
           "migration's dirty log is incomplete",
           net->vdev.id, net->opts.socket_path);
    pthread_mutex_lock(&net->lock);
    net->log_lost = true;
    pthread_mutex_unlock(&net->lock);
    return 0;
}

int net_log_stop(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    int ret = 0;

    if (!net->logging)
        return 0;
    if (net->connected)
        ret = net_set_logging(net, false);
    net_log_forget(net);
    if (ret && net->conn.broken)
        net_lost_backend(net, "it failed while dirty logging stopped");
    return ret;
}
