/* virtio-net's vhost-user link: the first connection, the handshake, watching the
 * socket and the backend's request channel, losing a backend (link down, ring
 * positions kept) and getting one back (reconnect timer in client mode, the
 * listening socket in server mode), all on the NIC's loop. */
#include "net_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Which vhost-user protocol features vmm asks for. Not CONFIG: vmm owns the config
 * space (MAC, link, MTU), as QEMU does for vhost-user net. */
#define NET_PROTOCOL_FEATURES                                                                      \
    (PF(MQ) | PF(REPLY_ACK) | PF(MTU) | PF(RARP) | PF(LOG_SHMFD) | PF(STATUS) | PF(RESET_DEVICE) | \
     PF(CONFIGURE_MEM_SLOTS) | PF(BACKEND_REQ))

static void net_on_conn_event(void *arg, uint32_t events);
static void net_on_backend_req(void *arg, uint32_t events);
static void net_on_listen(void *arg, uint32_t events);
static void net_on_retry(void *arg, uint32_t events);
static void net_first_tick(struct virtio_net *net);
static void net_first_attach(struct virtio_net *net, int fd);
static void net_first_finish(struct virtio_net *net, int ret);

int net_watch(struct virtio_net *net, int fd, void (*cb)(void *, uint32_t), bool *watched, bool on)
{
    int ret;

    if (*watched == on)
        return 0;
    ret = on ? event_loop_add(net->vdev.loop, fd, EPOLLIN, cb, net)
             : event_loop_del(net->vdev.loop, fd);
    if (!ret || !on)
        *watched = on;
    return ret;
}

static void net_trace(void *opaque, int64_t time_us, const char *line)
{
    struct virtio_net *net = opaque;
    const struct virtio_platform *p = net->vdev.platform;

    if (p->vhost_trace)
        p->vhost_trace(p->opaque, net->vdev.id, time_us, line);
    else
        pr_debug("%s: %s", net->vdev.id, line);
}

static void net_open_conn(struct virtio_net *net, int fd)
{
    pthread_mutex_lock(&net->fd_lock);
    vhost_user_conn_init(&net->conn, fd);
    pthread_mutex_unlock(&net->fd_lock);
    net->conn.id = net->vdev.id; /* vhost/'s lines name the NIC */
    net->conn.held = &net->held;
    net->conn.timeout_ms = net->opts.reply_timeout_ms;
    if (net->vdev.platform->vhost_trace || log_get_level() >= LOG_DEBUG) {
        net->conn.trace = net_trace;
        net->conn.trace_opaque = net;
    }
}

/* With CONFIGURE_MEM_SLOTS, a backend with fewer slots than guest RAM regions is refused
 * here (QEMU refuses it at vhost_dev_init), not at the guest's DRIVER_OK. */
static int net_check_mem_slots(struct virtio_net *net)
{
    struct vhost_user_mem_region regions[VHOST_USER_MAX_REGIONS];
    const struct virtio_platform *p = net->vdev.platform;
    int n;

    if (!net_has(net, PF(CONFIGURE_MEM_SLOTS)))
        return 0;
    n = p->mem_regions(p->opaque, regions, VHOST_USER_MAX_REGIONS);
    if (n < 0)
        return n;
    if ((uint64_t)n <= net->conn.max_mem_slots)
        return 0;
    vhost_user_say(&net->conn, VHOST_USER_ERR,
                   "the backend has %llu memory slots, guest RAM needs %d",
                   (unsigned long long)net->conn.max_mem_slots, n);
    return -ENOSPC;
}

/* QEMU's order: features, protocol features, queues, memory slots, the backend's
 * request channel when it offers one, then SET_OWNER. */
static int net_handshake(struct virtio_net *net)
{
    int ret = vhost_user_negotiate(&net->conn, NET_PROTOCOL_FEATURES);

    if (!ret)
        ret = net_check_mem_slots(net);
    if (!ret && net_has(net, PF(BACKEND_REQ))) {
        pthread_mutex_lock(&net->fd_lock);
        ret = vhost_user_open_backend_channel(&net->conn);
        pthread_mutex_unlock(&net->fd_lock);
    }
    if (!ret)
        ret = vhost_user_set_owner(&net->conn);
    if (ret)
        return ret;
    if (!(net->conn.features & (1ULL << VIRTIO_F_VERSION_1))) {
        vhost_user_say(&net->conn, VHOST_USER_ERR, "the backend does not offer VIRTIO_F_VERSION_1");
        return -ENOTSUP;
    }
    if (net->opts.queue_pairs > 1 && net->conn.max_queues < net->opts.queue_pairs) {
        vhost_user_say(&net->conn, VHOST_USER_ERR,
                       "queues=%u, but the backend offers %llu queue pair(s)",
                       net->opts.queue_pairs, (unsigned long long)net->conn.max_queues);
        return -ENOTSUP;
    }
    return 0;
}

/* A new backend must offer every data-path feature the guest uses (or, before the
 * guest negotiated, every one vmm already offered it). */
static int net_check_new_backend(struct virtio_net *net)
{
    uint64_t in_use = net->vdev.acked_features ? net->vdev.acked_features : net->backend_features;
    int bit = virtio_net_missing_feature(in_use, net->conn.features);

    if (bit < 0)
        return 0;
    pr_err("%s: the backend on %s lacks %s (feature bit %d), which the guest uses: the link "
           "stays down",
           net->vdev.id, net->opts.socket_path, net_feature_name(bit), bit);
    return -ENOTSUP;
}

/* The config interrupt is raised from here at once: the transport holds no lock
 * while the NIC's loop runs (README, "Threads"). */
void net_set_link(struct virtio_net *net, bool up)
{
    bool was_up;

    pthread_mutex_lock(&net->lock);
    was_up = net->config.status & VIRTIO_NET_S_LINK_UP;
    if (up)
        net->config.status |= VIRTIO_NET_S_LINK_UP;
    else
        net->config.status &= (uint16_t)~VIRTIO_NET_S_LINK_UP;
    pthread_mutex_unlock(&net->lock);
    if (was_up != up)
        virtio_notify_config(&net->vdev);
}

void net_set_connected(struct virtio_net *net, bool connected)
{
    pthread_mutex_lock(&net->lock);
    net->connected = connected;
    net->link_features = connected ? net->conn.features : 0;
    net->link_protocol = connected ? net->conn.protocol_features : 0;
    pthread_mutex_unlock(&net->lock);
}

/* A split ring resumes at its used index in guest memory: everything before it was used,
 * everything after it is used again. With VIRTIO_F_IN_ORDER that is exact (the device
 * used buffers in the order they were made available: Cloud Hypervisor's rule); without,
 * it is QEMU's rule, exact for a device that uses buffers in order anyway (DPDK's
 * synchronous datapath, which testpmd's and OVS's vhost ports run). */
static uint32_t net_recover_split(struct virtio_net *net, unsigned q)
{
    const uint8_t *idx = guest_mem_ptr(net->vdev.mem, net->vdev.queues[q].used + 2, 2);

    return idx ? (uint32_t)(idx[0] | idx[1] << 8) : 0;
}

/* A packed ring keeps no used index: virtq_recover_packed reads the position from the
 * descriptor ring when the ring shows only one reading. With IN_ORDER a device may mark
 * a batch used with one descriptor, and memory does not say where the batch ends; without
 * INDIRECT_DESC the driver chains, and the end of a two-entry chain is not seen. A ring
 * it cannot read is marked unknown (it stays stopped until the guest resets the NIC);
 * loud says so now (else at the retry). */
static int net_recover_packed(struct virtio_net *net, unsigned q, bool loud)
{
    const struct virtio_queue *vq = &net->vdev.queues[q];
    struct virtq ring = {
        .size = vq->size, .desc_gpa = vq->desc, .packed = true, .mem = net->vdev.mem};
    struct virtq_position pos;
    const char *why = "VIRTIO_F_IN_ORDER: a used descriptor may stand for a batch of buffers";
    int ret = -EINVAL;

    /* Without indirect descriptors a driver chains every buffer of several parts (Linux's
     * transmit): a two-entry chain used last reads like two one-entry buffers. */
    if (!virtio_has_feature(&net->vdev, VIRTIO_F_RING_INDIRECT_DESC))
        why = "no VIRTIO_F_RING_INDIRECT_DESC: the driver chains descriptors";
    else if (!virtio_has_feature(&net->vdev, VIRTIO_F_IN_ORDER))
        ret = virtq_recover_packed(&ring, &pos, &why);
    if (!ret) {
        struct vhost_user_vring_pos p = {pos.last_avail, pos.avail_wrap, pos.used_idx,
                                         pos.used_wrap};

        net->ring_base[q] = vhost_user_vring_pos_encode(&p);
        net->rings_unknown &= ~(1u << q);
        pr_debug("%s: queue %u: the packed ring stopped at entry %u (wrap %d)", net->vdev.id, q,
                 pos.last_avail, pos.avail_wrap);
        return 0;
    }
    net->rings_unknown |= 1u << q;
    if (loud)
        pr_err("%s: queue %u: where the packed ring stopped cannot be read from guest memory "
               "(%s): its rings stay stopped and the link down until the guest resets the NIC",
               net->vdev.id, q, why);
    else
        pr_debug("%s: queue %u: packed ring position not readable yet: %s", net->vdev.id, q, why);
    return ret;
}

/* A dead backend cannot answer GET_VRING_BASE: each ring's position comes from guest
 * memory. */
static void net_recover_ring_bases(struct virtio_net *net)
{
    for (unsigned q = 0; q < net_ctrl_index(net); q++) {
        if (!net->vdev.queues[q].enabled)
            net->ring_base[q] = net_ring_start_base(net);
        else if (net_packed(net))
            net_recover_packed(net, q, false);
        else
            net->ring_base[q] = net_recover_split(net, q);
    }
}

/* The packed rings not read when the backend died, read again now that the guest has
 * seen its link down for a while (it may have been writing a descriptor then). true when
 * one is still unknown: it was said why. */
static bool net_rings_still_unknown(struct virtio_net *net)
{
    for (unsigned q = 0; q < net_ctrl_index(net); q++)
        if (net->rings_unknown & (1u << q))
            net_recover_packed(net, q, true);
    return net->rings_unknown != 0;
}

/* Arms the retry timer every `reconnect-ms` (periodic) or once, or disarms it. */
static void net_retry_timer(struct virtio_net *net, bool on, bool periodic)
{
    long ms = on ? (long)net->opts.reconnect_ms : 0;
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
    struct itimerspec its = {.it_value = t, .it_interval = periodic ? t : (struct timespec){0}};

    if (net->retry_fd >= 0 && timerfd_settime(net->retry_fd, 0, &its, NULL))
        pr_err("%s: reconnect timer: %s", net->vdev.id, strerror(errno));
}

static void net_watch_listen(struct virtio_net *net, bool on)
{
    if (net->listen_fd < 0)
        return;
    if (net_watch(net, net->listen_fd, net_on_listen, &net->listen_watched, on))
        pr_err("%s: cannot watch %s for the backend", net->vdev.id, net->opts.socket_path);
}

/* Client: a timer paces connect attempts. Server: the listening socket is watched
 * (and the timer only brings it back after a failed accept). */
static void net_wait_for_backend(struct virtio_net *net, bool on)
{
    if (net->opts.server) {
        net_watch_listen(net, on);
        if (!on)
            net_retry_timer(net, false, false);
    } else {
        net_retry_timer(net, on, true);
    }
}

static void net_unwatch_backend_channel(struct virtio_net *net)
{
    net_watch(net, net->conn.backend_fd, NULL, &net->backend_watched, false);
}

void net_close_conn(struct virtio_net *net)
{
    net_watch(net, net->conn.fd, NULL, &net->conn_watched, false);
    net_unwatch_backend_channel(net);
    pthread_mutex_lock(&net->fd_lock);
    if (net->conn.fd >= 0)
        vhost_user_conn_close(&net->conn);
    net->conn.fd = net->conn.backend_fd = -1;
    pthread_mutex_unlock(&net->fd_lock);
    net_set_connected(net, false);
    net->rings_started = 0; /* the next backend starts with none */
}

void net_lost_backend(struct virtio_net *net, const char *why)
{
    if (!net->connected)
        return;
    if (net->opts.server)
        pr_warn("%s: vhost-user backend on %s lost (%s): link down until a backend connects",
                net->vdev.id, net->opts.socket_path, why);
    else
        pr_warn("%s: vhost-user backend on %s lost (%s): link down, reconnecting every %u ms",
                net->vdev.id, net->opts.socket_path, why, net->opts.reconnect_ms);
    net_close_conn(net);
    if (net->phase != NET_IDLE)
        net_recover_ring_bases(net);
    net_set_link(net, false);
    net_wait_for_backend(net, true);
}

int net_failed(struct virtio_net *net, int ret, const char *what)
{
    char why[96];

    if (!ret)
        return 0;
    if (net->connected && net->conn.broken) {
        snprintf(why, sizeof(why), "it failed during %s", what);
        net_lost_backend(net, why);
        return 0;
    }
    pr_err("%s: %s failed: %s", net->vdev.id, what, strerror(-ret));
    return ret;
}

/* Why a held attempt failed: the first line the connection held, or the error
 * code's name. */
static const char *net_held_reason(const struct virtio_net *net, int ret)
{
    return net->held.count ? net->held.first : strerror(-ret);
}

/* The handshake's lines are held: one failure makes one line, said by the caller. */
static int net_handshake_held(struct virtio_net *net)
{
    int ret;

    vhost_user_hold(&net->conn, true);
    ret = net_handshake(net);
    vhost_user_hold(&net->conn, false);
    return ret;
}

static int net_watch_backend_channel(struct virtio_net *net)
{
    if (net->conn.backend_fd < 0)
        return 0;
    return net_watch(net, net->conn.backend_fd, net_on_backend_req, &net->backend_watched, true);
}

/* The connection's sockets on the loop: hang-ups and the backend's requests. */
static int net_watch_conn(struct virtio_net *net)
{
    int ret = net_watch(net, net->conn.fd, net_on_conn_event, &net->conn_watched, true);

    return ret ? ret : net_watch_backend_channel(net);
}

/* The handshake again, then the rings as the guest left them, one kick each for
 * what it queued meanwhile, and the link up. */
static void net_reconnect(struct virtio_net *net, int fd)
{
    int ret;

    net_open_conn(net, fd);
    ret = net_handshake_held(net);
    if (!ret && net_check_new_backend(net)) { /* it said why, in one line */
        net_close_conn(net);
        return;
    }
    if (!ret)
        ret = net_log_resume(net); /* says for itself when the log is lost */
    if (!ret && net_running(net) && net_rings_still_unknown(net)) {
        /* Attached, its rings not started: the guest's reset starts them from 0. */
        ret = net_watch_conn(net);
        if (!ret) {
            net_set_connected(net, true);
            net_wait_for_backend(net, false);
            net->reconnects++;
            return;
        }
    }
    if (!ret) {
        vhost_user_hold(&net->conn, true); /* what went wrong goes into the one line below */
        if (net_running(net))              /* stopped: restart() starts them */
            ret = net_start_backend(net);
        if (!ret)
            ret = net_watch_conn(net);
        vhost_user_hold(&net->conn, false);
    }
    if (ret) {
        pr_warn("%s: the backend on %s failed the handshake (%s); waiting for another",
                net->vdev.id, net->opts.socket_path, net_held_reason(net, ret));
        net_close_conn(net);
        return;
    }
    net_set_connected(net, true);
    net_wait_for_backend(net, false);
    for (unsigned q = 0; net_running(net) && q < net_ctrl_index(net); q++) {
        uint64_t one = 1;

        if (net->vdev.queues[q].enabled && write(net->vdev.queues[q].kick_fd, &one, 8) < 0)
            pr_debug("%s: queue %u kick: %s", net->vdev.id, q, strerror(errno));
    }
    net->reconnects++;
    net_set_link(net, true);
    pr_info("%s: vhost-user backend back on %s (reconnect %u): link up", net->vdev.id,
            net->opts.socket_path, net->reconnects);
    if (!net_running(net)) /* running: its start sent the table */
        net_send_memory_ahead(net);
}

/* vmm asks for no feature a backend request needs (CONFIG, HOST_NOTIFIER, IOTLB): each
 * one is refused, with a non-zero reply when it asks for one. */
static const struct vhost_user_backend_ops net_backend_ops = {0};

/* The main socket says end of file: the backend is gone, not only its channel. */
static bool net_peer_gone(const struct virtio_net *net)
{
    char b;

    return recv(net->conn.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* A request read in part gives up at its deadline: the timer says when (the channel
 * may never be readable again). */
static void net_arm_channel_timer(struct virtio_net *net)
{
    int64_t deadline = net->connected ? vhost_user_backend_req_deadline_ms(&net->conn) : -1;
    struct itimerspec its = {0};

    if (net->chan_timer_fd < 0)
        return;
    if (deadline >= 0) {
        its.it_value.tv_sec = deadline / 1000;
        its.it_value.tv_nsec = deadline % 1000 * 1000000 + 1;
    }
    if (timerfd_settime(net->chan_timer_fd, TFD_TIMER_ABSTIME, &its, NULL))
        pr_err("%s: backend channel timer: %s", net->vdev.id, strerror(errno));
}

/* What the backend sent on its channel, read as far as it goes without waiting
 * (vhost/ keeps a message's first part). A channel that fails, closes or leaves a
 * message half-sent past reply-timeout-ms is closed alone, in one line: the
 * connection goes on, and a reconnect opens a new channel. */
static void net_on_backend_req(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    int ret;

    (void)events;
    if (!net->connected || !net->backend_watched)
        return;
    vhost_user_hold(&net->conn, true);
    ret = vhost_user_backend_req_handle(&net->conn, &net_backend_ops, net);
    vhost_user_hold(&net->conn, false);
    net_arm_channel_timer(net);
    if (ret == -EAGAIN)
        return; /* the rest of a message is still to come */
    if (net->conn.backend_broken && net_peer_gone(net)) {
        /* A backend that died closed both: one loss, not a channel close first. */
        net_lost_backend(net, "it closed the connection");
    } else if (net->conn.backend_broken) {
        pr_warn("%s: the backend's request channel on %s is closed (%s); the connection goes on",
                net->vdev.id, net->opts.socket_path,
                ret == -ECONNRESET ? "the backend closed it" : net_held_reason(net, ret));
        net_unwatch_backend_channel(net);
        pthread_mutex_lock(&net->fd_lock);
        vhost_user_close_backend_channel(&net->conn);
        pthread_mutex_unlock(&net->fd_lock);
    } else if (net->held.count) {
        pr_warn("%s: %s", net->vdev.id, net->held.first);
    }
}

/* The main channel is request/reply from this thread: anything readable while
 * idle is a hang-up or a message nobody asked for. */
static void net_on_conn_event(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    char b;
    ssize_t n;

    if (!net->connected)
        return;
    n = recv(net->conn.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && !(events & (EPOLLHUP | EPOLLERR)))
        return;
    net_lost_backend(net, n == 0  ? "it closed the connection"
                          : n > 0 ? "it sent a message vmm did not ask for"
                                  : strerror(errno));
}

static void net_on_channel_timer(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    uint64_t expirations;

    if (read(net->chan_timer_fd, &expirations, sizeof(expirations)) == sizeof(expirations))
        net_on_backend_req(net, events);
}

static void net_on_retry(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    uint64_t expirations;
    int fd, ret;

    (void)events;
    if (read(net->retry_fd, &expirations, sizeof(expirations)) != sizeof(expirations) ||
        net->connected)
        return;
    if (net->first_pending) {
        net_first_tick(net);
        return;
    }
    if (net->opts.server) {
        net_watch_listen(net, true); /* the pause after a failed accept is over */
        return;
    }
    ret = vhost_user_try_connect(net->opts.socket_path, &fd);
    if (ret)
        pr_debug("%s: reconnect to %s: %s", net->vdev.id, net->opts.socket_path, strerror(-ret));
    else
        net_reconnect(net, fd);
}

static void net_on_listen(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    int fd, ret;

    (void)events;
    if (net->connected)
        return;
    ret = vhost_user_try_accept(net->listen_fd, &fd);
    if (ret == -EAGAIN || ret == -ECONNABORTED)
        return;
    if (ret && net->first_pending) {
        pr_err("%s: vhost-user: cannot accept a back-end: %s", net->vdev.id, strerror(-ret));
        net_first_finish(net, ret);
    } else if (ret) {
        /* E.g. EMFILE: the connection stays queued and the socket readable. Pause
         * instead of spinning on it, and try again after reconnect-ms. */
        pr_warn("%s: cannot accept a backend on %s: %s; trying again in %u ms", net->vdev.id,
                net->opts.socket_path, strerror(-ret), net->opts.reconnect_ms);
        net_watch_listen(net, false);
        net_retry_timer(net, true, false);
    } else if (net->first_pending) {
        net_first_attach(net, fd);
    } else {
        net_reconnect(net, fd);
    }
}

/* ---- the first backend: waited for on the loop, like a returning one ---- */

#define FIRST_RETRY_MS 50 /* client: connect attempts while the backend starts */

static int64_t net_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void net_timer_ms(struct virtio_net *net, long ms, bool periodic)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
    struct itimerspec its = {.it_value = t, .it_interval = periodic ? t : (struct timespec){0}};

    if (!ms)
        its.it_value.tv_nsec = 1; /* 0 would disarm it: fire at once instead */
    if (timerfd_settime(net->retry_fd, 0, &its, NULL))
        pr_err("%s: connect timer: %s", net->vdev.id, strerror(errno));
}

static void net_first_finish(struct virtio_net *net, int ret)
{
    net->first_pending = false;
    net_retry_timer(net, false, false);
    if (net->opts.server && ret)
        net_watch_listen(net, false);
    net->first_done(net->first_done_arg, ret);
}

/* A connection to the first backend: the handshake, then the NIC is live. */
static void net_first_attach(struct virtio_net *net, int fd)
{
    int ret;

    net_open_conn(net, fd);
    ret = net_handshake_held(net);
    if (ret)
        pr_err("%s: vhost-user handshake on %s failed: %s", net->vdev.id, net->opts.socket_path,
               net_held_reason(net, ret));
    if (!ret && (ret = net_watch_conn(net)))
        pr_err("%s: cannot watch its backend: %s", net->vdev.id, strerror(-ret));
    if (ret) {
        net_close_conn(net);
        net_first_finish(net, ret);
        return;
    }
    net->backend_features = net->conn.features;
    net->backend_protocol = net->conn.protocol_features;
    if (net->opts.mtu && !net_has(net, PF(MTU)))
        pr_warn("%s: mtu=%u is not offered to the guest: the backend does not take NET_SET_MTU",
                net->vdev.id, net->opts.mtu);
    net_set_connected(net, true);
    if (net->opts.server)
        net_watch_listen(net, false);
    net_first_finish(net, 0);
}

/* Client: one attempt (ENOENT, ECONNREFUSED, EAGAIN: the backend is not there yet).
 * Server: the timer only marks the deadline. */
static void net_first_tick(struct virtio_net *net)
{
    bool late = net_now_ms() >= net->first_deadline_ms;
    int fd, ret;

    if (net->opts.server) {
        pr_err("%s: vhost-user: no back-end connected within %u ms", net->vdev.id,
               net->opts.connect_timeout_ms);
        net_first_finish(net, -ETIMEDOUT);
        return;
    }
    ret = vhost_user_try_connect(net->opts.socket_path, &fd);
    if (!ret) {
        net_first_attach(net, fd);
    } else if (ret != -ENOENT && ret != -ECONNREFUSED && ret != -EAGAIN) {
        pr_err("%s: vhost-user: cannot connect to %s: %s", net->vdev.id, net->opts.socket_path,
               strerror(-ret));
        net_first_finish(net, ret);
    } else if (late) {
        pr_err("%s: vhost-user: no back-end listening on %s after %u ms (%s)", net->vdev.id,
               net->opts.socket_path, net->opts.connect_timeout_ms, strerror(-ret));
        net_first_finish(net, -ETIMEDOUT);
    }
}

static void net_first_start(void *arg)
{
    struct virtio_net *net = arg;

    net->first_pending = true;
    net->first_deadline_ms = net_now_ms() + net->opts.connect_timeout_ms;
    if (net->opts.server) {
        pr_info("%s: waiting up to %u ms for a vhost-user backend on %s", net->vdev.id,
                net->opts.connect_timeout_ms, net->opts.socket_path);
        net_watch_listen(net, true);
        net_timer_ms(net, (long)net->opts.connect_timeout_ms, false);
        return;
    }
    pr_info("%s: connecting to vhost-user backend %s (waiting up to %u ms)", net->vdev.id,
            net->opts.socket_path, net->opts.connect_timeout_ms);
    net_timer_ms(net, FIRST_RETRY_MS, true);
    net_first_tick(net);
}

int virtio_net_start_link(struct virtio_net *net, void (*done)(void *arg, int ret), void *arg)
{
    net->first_done = done;
    net->first_done_arg = arg;
    return event_loop_post(net->vdev.loop, net_first_start, net);
}

/* The timer (connect pacing and deadlines) and, with `server`, the socket the
 * backend connects to: bound now, while vmm may still create the file. */
int net_link_init(struct virtio_net *net)
{
    int ret;

    net->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    net->chan_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (net->retry_fd < 0 || net->chan_timer_fd < 0) {
        ret = -errno;
        pr_err("%s: cannot create its timerfds: %s", net->vdev.id, strerror(-ret));
        return ret;
    }
    ret = net_watch(net, net->retry_fd, net_on_retry, &net->retry_watched, true);
    if (!ret)
        ret = net_watch(net, net->chan_timer_fd, net_on_channel_timer, &net->chan_timer_watched,
                        true);
    if (ret) {
        pr_err("%s: cannot watch its timer: %s", net->vdev.id, strerror(-ret));
        return ret;
    }
    return net->opts.server ? vhost_user_listen(net->opts.socket_path, &net->listen_fd) : 0;
}

void net_link_destroy(struct virtio_net *net)
{
    bool listened = net->listen_fd >= 0;

    net_close_conn(net);
    net_ctrl_watch(net, false);
    if (net->retry_fd >= 0) {
        net_watch(net, net->retry_fd, NULL, &net->retry_watched, false);
        close(net->retry_fd);
    }
    if (net->chan_timer_fd >= 0) {
        net_watch(net, net->chan_timer_fd, NULL, &net->chan_timer_watched, false);
        close(net->chan_timer_fd);
    }
    net->chan_timer_fd = -1;
    if (net->listen_fd >= 0) {
        net_watch(net, net->listen_fd, NULL, &net->listen_watched, false);
        close(net->listen_fd);
    }
    net->retry_fd = net->listen_fd = -1;
    if (listened) /* the socket file is ours: QEMU removes its server socket too */
        unlink(net->opts.socket_path);
}

void virtio_net_abort(struct virtio_net *net)
{
    pthread_mutex_lock(&net->fd_lock);
    if (net->conn.fd >= 0)
        shutdown(net->conn.fd, SHUT_RDWR);
    if (net->conn.backend_fd >= 0)
        shutdown(net->conn.backend_fd, SHUT_RDWR);
    pthread_mutex_unlock(&net->fd_lock);
}
