#include "virtio_net.h"

#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define VIRTIO_NET_OK 0
#define VIRTIO_NET_ERR 1

enum {
    CTRL_RX = 0,
    CTRL_MAC = 1,
    CTRL_VLAN = 2,
    CTRL_ANNOUNCE = 3,
    CTRL_MQ = 4,
};
#define CTRL_MAC_TABLE_SET 0
#define CTRL_MAC_ADDR_SET 1
#define CTRL_RX_NOBCAST 5
#define CTRL_MQ_VQ_PAIRS_SET 0
#define CTRL_ANNOUNCE_ACK 0
#define CTRL_MAX_DATA 4096

#define BIT(n) (1ULL << (n))

/* Feature bits the backend implements on the data path, passed through when it
 * offers them (QEMU's user_feature_bits). */
static const uint64_t backend_feature_mask =
    BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |
    BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) | BIT(VIRTIO_NET_F_GUEST_UFO) |
    BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN) |
    BIT(VIRTIO_NET_F_HOST_UFO) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_F_RING_INDIRECT_DESC) |
    BIT(VIRTIO_F_RING_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1);

uint64_t virtio_net_offered_features(uint64_t backend, const struct virtio_net_options *opts)
{
    /* vmm itself provides the config space, the control queue and announcements. */
    uint64_t f = (backend & backend_feature_mask) | BIT(VIRTIO_NET_F_MAC) |
                 BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_CTRL_RX) |
                 BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) | BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);

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

static unsigned ctrl_index(const struct virtio_net *net)
{
    return 2 * net->opts.queue_pairs;
}

static struct virtio_net *to_net(struct virtio_device *vdev)
{
    return (struct virtio_net *)((char *)vdev - offsetof(struct virtio_net, vdev));
}

static uint64_t net_features(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);

    return virtio_net_offered_features(net->backend_features, &net->opts);
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

static uint8_t ctrl_rx(uint32_t len, uint8_t cmd)
{
    /* vmm cannot filter the backend's traffic; the modes are accepted as QEMU does. */
    return cmd <= CTRL_RX_NOBCAST && len == 1 ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
}

static bool mac_table_valid(const uint8_t *data, uint32_t len)
{
    uint32_t off = 0;

    for (int table = 0; table < 2; table++) {
        uint32_t entries;

        if (len - off < 4)
            return false;
        memcpy(&entries, data + off, 4);
        off += 4;
        if (entries > (len - off) / 6)
            return false;
        off += entries * 6;
    }
    return off == len;
}

static uint8_t ctrl_mac(struct virtio_net *net, const uint8_t *data, uint32_t len, uint8_t cmd)
{
    if (cmd == CTRL_MAC_ADDR_SET && len == 6 &&
        virtio_has_feature(&net->vdev, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
        pthread_mutex_lock(&net->lock);
        memcpy(net->config.mac, data, 6);
        pthread_mutex_unlock(&net->lock);
        return VIRTIO_NET_OK;
    }
    if (cmd == CTRL_MAC_TABLE_SET && mac_table_valid(data, len))
        return VIRTIO_NET_OK;
    return VIRTIO_NET_ERR;
}

static int net_enable_pairs(struct virtio_net *net, unsigned pairs);

static uint8_t ctrl_mq(struct virtio_net *net, const uint8_t *data, uint32_t len, uint8_t cmd)
{
    uint16_t pairs;

    if (cmd != CTRL_MQ_VQ_PAIRS_SET || len != 2 || !virtio_has_feature(&net->vdev, VIRTIO_NET_F_MQ))
        return VIRTIO_NET_ERR;
    memcpy(&pairs, data, 2);
    if (pairs < 1 || pairs > net->opts.queue_pairs)
        return VIRTIO_NET_ERR;
    return net_enable_pairs(net, pairs) ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
}

/* The guest announced itself after a migration (VIRTIO_NET_S_ANNOUNCE). */
static uint8_t ctrl_announce(struct virtio_net *net, uint32_t len, uint8_t cmd)
{
    if (cmd != CTRL_ANNOUNCE_ACK || len ||
        !virtio_has_feature(&net->vdev, VIRTIO_NET_F_GUEST_ANNOUNCE))
        return VIRTIO_NET_ERR;
    pthread_mutex_lock(&net->lock);
    net->config.status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
    pthread_mutex_unlock(&net->lock);
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_dispatch(struct virtio_net *net, const uint8_t *cmd, uint32_t len)
{
    const uint8_t *data = cmd + 2;

    if (len < 2)
        return VIRTIO_NET_ERR;
    switch (cmd[0]) {
    case CTRL_RX:
        return ctrl_rx(len - 2, cmd[1]);
    case CTRL_MAC:
        return ctrl_mac(net, data, len - 2, cmd[1]);
    case CTRL_MQ:
        return ctrl_mq(net, data, len - 2, cmd[1]);
    case CTRL_ANNOUNCE:
        return ctrl_announce(net, len - 2, cmd[1]);
    default: /* VLAN filtering, offloads: not offered */
        return VIRTIO_NET_ERR;
    }
}

/* Handles one control command: header and data in the readable buffers, the
 * one-byte ack in the writable one. */
/* Readable bytes in a chain: a command longer than vmm's buffer is refused whole. */
static uint64_t chain_readable(const struct virtq_chain *c)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < c->count; i++)
        if (!c->bufs[i].writable)
            n += c->bufs[i].len;
    return n;
}

/* Handles one control command: header and data in the readable buffers, the
 * one-byte ack in the writable one. */
static void ctrl_handle_chain(struct virtio_net *net, const struct virtq_chain *chain)
{
    uint8_t cmd[CTRL_MAX_DATA];
    uint32_t len = virtq_chain_read(chain, cmd, sizeof(cmd));
    uint8_t ack =
        chain_readable(chain) > sizeof(cmd) ? VIRTIO_NET_ERR : ctrl_dispatch(net, cmd, len);

    if (ack != VIRTIO_NET_OK)
        pr_debug("%s: control command class %u cmd %u refused", net->vdev.id, len ? cmd[0] : 0,
                 len > 1 ? cmd[1] : 0);
    virtq_push(&net->ctrl_vq, chain->head, virtq_chain_write(chain, &ack, 1));
}

void virtio_net_ctrl_process(struct virtio_net *net)
{
    struct virtq_chain chain;
    uint16_t old_used = net->ctrl_vq.used_idx;
    int ret;

    while ((ret = virtq_pop(&net->ctrl_vq, &chain)) > 0)
        ctrl_handle_chain(net, &chain);
    if (ret < 0)
        pr_warn("%s: the guest's control queue is malformed; ignoring it", net->vdev.id);
    if (net->ctrl_vq.used_idx != old_used && virtq_needs_interrupt(&net->ctrl_vq, old_used)) {
        uint64_t one = 1;
        int fd = net->vdev.queues[ctrl_index(net)].call_fd;

        if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
            pr_debug("%s: control queue interrupt: %s", net->vdev.id, strerror(errno));
    }
}

static void ctrl_on_kick(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    uint64_t v;
    int fd = net->vdev.queues[ctrl_index(net)].kick_fd;

    (void)events;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    if (net->started)
        virtio_net_ctrl_process(net);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Exactly six pairs of hex digits separated by colons. */
static int parse_mac(const char *s, uint8_t mac[6])
{
    if (strlen(s) != 17)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        int hi = hex_digit(s[3 * i]), lo = hex_digit(s[3 * i + 1]);

        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            return -EINVAL;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return (mac[0] & 1) ? -EINVAL : 0; /* a multicast address cannot be a NIC's */
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return (errno || *end || *out < min || *out > max) ? -EINVAL : 0;
}

static void net_option_defaults(struct virtio_net_options *o)
{
    static const uint8_t default_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    memset(o, 0, sizeof(*o));
    o->queue_pairs = 1;
    memcpy(o->mac, default_mac, 6);
    o->connect_timeout_ms = 30000;
    o->reply_timeout_ms = 30000; /* DPDK maps and walks all of guest RAM in SET_MEM_TABLE */
    o->reconnect_ms = 1000;
}

static int net_parse_kv(struct virtio_net_options *o, const char *key, const char *val, char *err,
                        size_t errlen)
{
    unsigned long n;

    if (!strcmp(key, "socket") && val && *val && strlen(val) < sizeof(o->socket_path)) {
        strcpy(o->socket_path, val);
    } else if (!strcmp(key, "server") && !val) {
        o->server = true;
    } else if (!strcmp(key, "queues") && val && !parse_uint(val, 1, VIRTIO_NET_MAX_PAIRS, &n)) {
        o->queue_pairs = (unsigned)n;
    } else if (!strcmp(key, "mac") && val && !parse_mac(val, o->mac)) {
    } else if (!strcmp(key, "mtu") && val && !parse_uint(val, 68, 65535, &n)) {
        o->mtu = (uint16_t)n;
    } else if (!strcmp(key, "connect-timeout-ms") && val && !parse_uint(val, 0, 3600000, &n)) {
        o->connect_timeout_ms = (unsigned)n;
    } else if (!strcmp(key, "reply-timeout-ms") && val && !parse_uint(val, 1, 600000, &n)) {
        o->reply_timeout_ms = (unsigned)n;
    } else if (!strcmp(key, "reconnect-ms") && val && !parse_uint(val, 1, 3600000, &n)) {
        o->reconnect_ms = (unsigned)n;
    } else {
        snprintf(err, errlen, "--net: bad or unknown setting '%s%s%s'", key, val ? "=" : "",
                 val ? val : "");
        return -EINVAL;
    }
    return 0;
}

int virtio_net_parse_options(const char *arg, struct virtio_net_options *opts, char *err,
                             size_t errlen)
{
    char buf[512], *save = NULL, *tok;
    int ret = 0;

    net_option_defaults(opts);
    if (strlen(arg) >= sizeof(buf)) {
        snprintf(err, errlen, "--net: argument too long (at most %zu bytes)", sizeof(buf) - 1);
        return -EINVAL;
    }
    if (strncmp(arg, "vhost-user", 10) || (arg[10] && arg[10] != ',')) {
        snprintf(err, errlen, "--net '%s': only vhost-user,socket=PATH[,...] is supported", arg);
        return -EINVAL;
    }
    strcpy(buf, arg + (arg[10] ? 11 : 10));
    for (tok = strtok_r(buf, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');

        if (eq)
            *eq++ = '\0';
        ret = net_parse_kv(opts, tok, eq, err, errlen);
    }
    if (!ret && !opts->socket_path[0]) {
        snprintf(err, errlen, "--net '%s': socket=PATH is required", arg);
        ret = -EINVAL;
    }
    return ret;
}

#define PF(bit) (1ULL << VHOST_USER_PROTOCOL_F_##bit)

/* Which vhost-user protocol features vmm asks for. Not CONFIG: vmm owns the config
 * space (MAC, link, MTU), as QEMU does for vhost-user net. */
#define NET_PROTOCOL_FEATURES                                                                      \
    (PF(MQ) | PF(REPLY_ACK) | PF(MTU) | PF(RARP) | PF(LOG_SHMFD) | PF(STATUS) | PF(RESET_DEVICE) | \
     PF(CONFIGURE_MEM_SLOTS) | PF(BACKEND_REQ))

static bool net_has(const struct virtio_net *net, uint64_t pf)
{
    return net->conn.protocol_features & pf;
}

static void net_lost_backend(struct virtio_net *net, const char *why);

/* SET_VRING_ENABLE for every started ring: the first active_pairs pairs run. */
static int net_send_enable(struct virtio_net *net)
{
    bool protocol = net->conn.features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
    int ret = 0;

    /* Without protocol features, rings run as soon as they are started. */
    for (unsigned q = 0; protocol && !ret && q < ctrl_index(net); q++)
        if (net->rings_started & (1u << q))
            ret = vhost_user_set_vring_enable(&net->conn, q, q < 2 * net->active_pairs);
    return ret;
}

/* The guest's MQ command. With the backend away, the choice applies when it is back. */
static int net_enable_pairs(struct virtio_net *net, unsigned pairs)
{
    int ret;

    net->active_pairs = pairs;
    if (!net->connected)
        return 0;
    ret = net_send_enable(net);
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
 * used-ring writes (by guest-physical address) in the dirty log. */
static int vring_addr(struct virtio_net *net, unsigned q, struct vhost_user_vring_addr *addr)
{
    const struct virtio_queue *vq = &net->vdev.queues[q];

    *addr = (struct vhost_user_vring_addr){
        .index = q,
        .desc_user_addr = host_addr(net, vq->desc, 16ULL * vq->size),
        .avail_user_addr = host_addr(net, vq->avail, 6 + 2ULL * vq->size),
        .used_user_addr = host_addr(net, vq->used, 6 + 8ULL * vq->size),
    };
    if (net->logging) {
        addr->flags = VHOST_USER_VRING_F_LOG;
        addr->log_guest_addr = vq->used;
    }
    if (!addr->desc_user_addr || !addr->avail_user_addr || !addr->used_user_addr) {
        pr_err("%s: queue %u: rings outside guest RAM", net->vdev.id, q);
        return -EINVAL;
    }
    return 0;
}

/* One data queue's rings, base and eventfds to the backend. */
static int start_vring(struct virtio_net *net, unsigned q)
{
    const struct virtio_queue *vq = &net->vdev.queues[q];
    struct vhost_user_vring_addr addr;
    int ret = vring_addr(net, q, &addr);

    if (ret)
        return ret;
    net->rings_started |= 1u << q; /* from the first message on, it needs a stop */
    ret = vhost_user_set_vring_num(&net->conn, q, vq->size);
    if (!ret)
        ret = vhost_user_set_vring_addr(&net->conn, &addr);
    if (!ret)
        ret = vhost_user_set_vring_base(&net->conn, q, net->ring_base[q]);
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

static int start_ctrl_queue(struct virtio_net *net)
{
    const struct virtio_queue *vq = &net->vdev.queues[ctrl_index(net)];
    const struct virtio_platform *p = net->vdev.platform;
    int ret;

    net->ctrl_vq = (struct virtq){
        .size = vq->size,
        .desc_gpa = vq->desc,
        .avail_gpa = vq->avail,
        .used_gpa = vq->used,
        .event_idx = virtio_has_feature(&net->vdev, VIRTIO_F_RING_EVENT_IDX),
        .mem = net->vdev.mem,
    };
    pr_debug("%s: control queue %u: size %u enabled %d", net->vdev.id, ctrl_index(net), vq->size,
             vq->enabled);
    if (!vq->enabled)
        return 0;
    if (virtq_check_layout(&net->ctrl_vq)) {
        pr_err("%s: control queue rings are invalid", net->vdev.id);
        return -EINVAL;
    }
    ret = p->watch_fd(p->opaque, vq->kick_fd, ctrl_on_kick, net, true);
    net->ctrl_watched = ret == 0;
    return ret;
}

static uint64_t net_backend_features(const struct virtio_net *net)
{
    uint64_t f = virtio_net_backend_features(net->vdev.acked_features, net->conn.features);

    return net->logging ? f | (1ULL << VHOST_USER_F_LOG_ALL) : f;
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
static int net_start_backend(struct virtio_net *net)
{
    int ret = net_send_features(net, true);

    if (!ret && net->opts.mtu &&
        (net->conn.protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_MTU)))
        ret = vhost_user_net_set_mtu(&net->conn, net->opts.mtu);
    if (!ret)
        ret = send_mem_table(net);
    for (unsigned q = 0; !ret && q < ctrl_index(net); q++)
        if (net->vdev.queues[q].enabled)
            ret = start_vring(net, q);
    if (!ret)
        ret = net_send_enable(net);
    if (!ret && net_has(net, PF(STATUS)))
        ret = vhost_user_add_status(&net->conn, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                                    VIRTIO_STATUS_DRIVER_OK);
    return ret;
}

/* With STATUS, status 0 once the rings are stopped (QEMU's vhost_user_reset_status). */
static void net_reset_status(struct virtio_net *net)
{
    if (net->connected && !net->conn.broken && net_has(net, PF(STATUS)))
        vhost_user_set_status(&net->conn, 0);
}

/* GET_VRING_BASE on every ring the backend was given, as the spec asks before they are
 * set up again: a ring the guest enabled after DRIVER_OK was never started. */
static void net_stop_rings(struct virtio_net *net)
{
    for (unsigned q = 0; !net->conn.broken && q < ctrl_index(net); q++) {
        unsigned base;

        if ((net->rings_started & (1u << q)) &&
            vhost_user_get_vring_base(&net->conn, q, &base) == 0)
            pr_debug("%s: queue %u stopped at %u", net->vdev.id, q, base);
    }
    net->rings_started = 0;
}

static int net_activate(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    bool lost = false;
    int ret = 0;

    memset(net->ring_base, 0, sizeof(net->ring_base));
    net->active_pairs = 1;
    /* Checked with the backend away too: bad rings fail DRIVER_OK, not every reconnect. */
    for (unsigned q = 0; !ret && q < ctrl_index(net); q++)
        if (vdev->queues[q].enabled)
            ret = vring_addr(net, q, &(struct vhost_user_vring_addr){0});
    if (!ret && net->connected) {
        ret = net_start_backend(net);
        /* A backend that died meanwhile gets the rings when it is back. */
        lost = ret && net->conn.broken;
        if (lost)
            ret = 0;
    }
    if (!ret)
        ret = start_ctrl_queue(net);
    if (ret) {
        pr_err("%s: starting the backend failed: %s", vdev->id, strerror(-ret));
        net_stop_rings(net); /* the backend must not run rings the guest will reuse */
        net_reset_status(net);
        return ret;
    }
    net->started = true;
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
    const struct virtio_platform *p = vdev->platform;

    if (!net->started)
        return;
    net->started = false;
    if (net->stopped) { /* halted for a migration: nothing runs or is watched */
        net->stopped = false;
        return;
    }
    /* Only a control queue enabled at DRIVER_OK was put on the loop. */
    if (net->ctrl_watched)
        p->watch_fd(p->opaque, vdev->queues[ctrl_index(net)].kick_fd, NULL, NULL, false);
    net->ctrl_watched = false;
    if (net->connected)
        net_stop_rings(net);
    net->rings_started = 0;
    net_reset_status(net);
    /* As QEMU's virtio_reset: the device state goes too, where the backend can say so.
     * The memory it holds and the request channel stay (it keeps its owner). */
    if (net->connected && !net->conn.broken && net_has(net, PF(RESET_DEVICE)))
        vhost_user_reset_device(&net->conn);
    if (net->connected && net->conn.broken)
        net_lost_backend(net, "it failed during GET_VRING_BASE");
}

/* ---- dirty logging, for migration ---- */

int virtio_net_log_check(const struct virtio_net *net, char *why, size_t len)
{
    if (!net->connected)
        snprintf(why, len, "%s: no vhost-user backend is connected", net->vdev.id);
    else if (!(net->conn.protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_LOG_SHMFD)))
        snprintf(why, len, "%s: the backend does not offer LOG_SHMFD (a shared dirty log)",
                 net->vdev.id);
    else if (!(net->conn.features & (1ULL << VHOST_USER_F_LOG_ALL)))
        snprintf(why, len, "%s: the backend does not offer VHOST_F_LOG_ALL (dirty logging)",
                 net->vdev.id);
    else
        return 0;
    return -ENOTSUP;
}

/* Without REPLY_ACK nothing confirms a request: a GET_FEATURES round trip does,
 * since the backend handles messages in order. */
static int net_barrier(struct virtio_net *net)
{
    uint64_t features;

    if (net->conn.protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK))
        return 0;
    return vhost_user_get_features(&net->conn, &features);
}

/* SET_FEATURES and every started ring's address, with or without logging. */
static int net_set_logging(struct virtio_net *net, bool on)
{
    int ret;

    net->logging = on;
    ret = net_send_features(net, net->started && !net->stopped);
    for (unsigned q = 0; !ret && q < ctrl_index(net); q++) {
        struct vhost_user_vring_addr addr;

        if (!(net->rings_started & (1u << q)))
            continue;
        ret = vring_addr(net, q, &addr);
        if (!ret)
            ret = vhost_user_set_vring_addr(&net->conn, &addr);
    }
    return ret ? ret : net_barrier(net);
}

int virtio_net_log_start(struct virtio_net *net, int log_fd, uint64_t log_size)
{
    char why[160];
    int ret = virtio_net_log_check(net, why, sizeof(why));

    if (ret) {
        pr_err("%s", why);
        return ret;
    }
    ret = vhost_user_set_log_base(&net->conn, log_fd, log_size, 0);
    if (!ret)
        ret = net_set_logging(net, true);
    if (ret) {
        pr_err("%s: the backend did not start dirty logging: %s", net->vdev.id, strerror(-ret));
        net->logging = false;
        if (net->conn.broken)
            net_lost_backend(net, "it failed while dirty logging started");
    }
    return ret;
}

int virtio_net_log_stop(struct virtio_net *net)
{
    int ret;

    if (!net->logging)
        return 0;
    if (!net->connected) {
        net->logging = false;
        return 0;
    }
    ret = net_set_logging(net, false);
    if (ret && net->conn.broken)
        net_lost_backend(net, "it failed while dirty logging stopped");
    return ret;
}

/* ---- migration: save and load, the source's stop and restart, the destination's start ---- */

static void net_set_link(struct virtio_net *net, bool up);
static const char *const data_feature_names[64];

#define NET_STATE_MAGIC 0x54454e56u /* "VNET" */
#define NET_STATE_VERSION 1
#define NET_STATUS_BITS (VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE)

/* Followed by the ring base of each data queue (2 * queue_pairs uint16_t). */
struct net_state {
    uint32_t magic;
    uint16_t version;
    uint16_t queue_pairs;
    uint64_t acked_features;
    uint8_t mac[6];
    uint16_t status;
    uint16_t mtu;
    uint16_t active_pairs;
    uint16_t ctrl_last_avail;
    uint16_t ctrl_used_idx;
    uint8_t started;
    uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct net_state) == 36, "net_state is 36 bytes");

static int net_save(struct virtio_device *vdev, struct state_buf *out)
{
    struct virtio_net *net = to_net(vdev);
    struct net_state st = {
        .magic = NET_STATE_MAGIC,
        .version = NET_STATE_VERSION,
        .queue_pairs = (uint16_t)net->opts.queue_pairs,
        .acked_features = vdev->acked_features,
        .active_pairs = (uint16_t)net->active_pairs,
        .ctrl_last_avail = net->ctrl_vq.last_avail,
        .ctrl_used_idx = net->ctrl_vq.used_idx,
        .started = net->started || net->loaded_started,
    };
    int ret;

    if (net->started && !net->stopped) {
        pr_err("%s: cannot save the NIC while its rings run: stop it first", vdev->id);
        return -EBUSY;
    }
    pthread_mutex_lock(&net->lock);
    memcpy(st.mac, net->config.mac, 6);
    st.status = net->config.status;
    st.mtu = net->config.mtu;
    pthread_mutex_unlock(&net->lock);
    ret = state_buf_put(out, &st, sizeof(st));
    for (unsigned q = 0; !ret && q < ctrl_index(net); q++)
        ret = state_buf_put(out, &net->ring_base[q], sizeof(net->ring_base[q]));
    return ret;
}

/* Features the guest uses must all be offered here (this backend's data path). */
static int net_check_loaded_features(struct virtio_net *net, const struct net_state *st)
{
    uint64_t offered = net_features(&net->vdev) | BIT(VIRTIO_F_VERSION_1);
    uint64_t extra = st->acked_features & ~offered;
    int bit = virtio_net_missing_feature(st->acked_features, offered);

    if (bit >= 0) {
        pr_err("%s: the guest uses %s (feature bit %d), which the backend on %s does not offer",
               net->vdev.id, data_feature_names[bit] ? data_feature_names[bit] : "?", bit,
               net->opts.socket_path);
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
    size_t want = sizeof(*st) + 4 * (size_t)st->queue_pairs;

    if (st->magic != NET_STATE_MAGIC || st->version != NET_STATE_VERSION) {
        pr_err("%s: saved state is not virtio-net state version %d", id, NET_STATE_VERSION);
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

static int net_load(struct virtio_device *vdev, const uint8_t *data, size_t len)
{
    struct virtio_net *net = to_net(vdev);
    struct net_state st;
    int ret;

    if (len < sizeof(st)) {
        pr_err("%s: saved NIC state has %zu bytes, expected at least %zu", vdev->id, len,
               sizeof(st));
        return -EINVAL;
    }
    memcpy(&st, data, sizeof(st));
    ret = net_check_loaded(net, &st, len);
    if (ret)
        return ret;
    if (net->started) {
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
    net->ctrl_vq.last_avail = st.ctrl_last_avail;
    net->ctrl_vq.used_idx = st.ctrl_used_idx;
    memset(net->ring_base, 0, sizeof(net->ring_base));
    memcpy(net->ring_base, data + sizeof(st), 4 * (size_t)st.queue_pairs);
    net->loaded_started = st.started;
    net->stopped = false;
    return 0;
}

static int net_watch_ctrl(struct virtio_net *net, bool on)
{
    const struct virtio_queue *vq = &net->vdev.queues[ctrl_index(net)];
    const struct virtio_platform *p = net->vdev.platform;

    int ret;

    if (!vq->enabled || net->ctrl_watched == on)
        return 0;
    ret = p->watch_fd(p->opaque, vq->kick_fd, on ? ctrl_on_kick : NULL, net, on);
    if (!ret)
        net->ctrl_watched = on;
    return ret;
}

/* One kick per data ring for what the guest queued while no backend listened, and
 * the control commands queued since the last kick vmm saw. */
static void net_resume_io(struct virtio_net *net)
{
    uint64_t one = 1;

    for (unsigned q = 0; net->connected && q < ctrl_index(net); q++)
        if ((net->rings_started & (1u << q)) && write(net->vdev.queues[q].kick_fd, &one, 8) < 0)
            pr_debug("%s: queue %u kick: %s", net->vdev.id, q, strerror(errno));
    if (net->vdev.queues[ctrl_index(net)].enabled)
        virtio_net_ctrl_process(net);
}

/* The source's final stop: GET_VRING_BASE of each ring tells where it stopped. */
static int net_stop(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);

    if (!net->started || net->stopped)
        return 0;
    net_watch_ctrl(net, false);
    for (unsigned q = 0; net->connected && !net->conn.broken && q < ctrl_index(net); q++) {
        unsigned base;

        if ((net->rings_started & (1u << q)) &&
            vhost_user_get_vring_base(&net->conn, q, &base) == 0)
            net->ring_base[q] = (uint16_t)base;
    }
    if (!net->conn.broken)
        net->rings_started = 0;
    net_reset_status(net);
    net->stopped = true;
    /* A dead backend cannot say: each ring's used index in guest memory does. */
    if (net->connected && net->conn.broken)
        net_lost_backend(net, "it failed during GET_VRING_BASE");
    pr_info("%s: rings stopped for migration", vdev->id);
    return 0;
}

/* The source again, after a failed or cancelled migration. */
static int net_restart(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    int ret = 0;

    if (!net->stopped)
        return 0;
    net->stopped = false;
    if (net->connected)
        ret = net_start_backend(net);
    if (ret && net->conn.broken) {
        net_lost_backend(net, "it failed while the rings restarted");
        ret = 0;
    }
    if (!ret)
        ret = net_watch_ctrl(net, true);
    if (ret) {
        pr_err("%s: cannot restart the rings: %s", vdev->id, strerror(-ret));
        return ret;
    }
    net_resume_io(net);
    pr_info("%s: rings running again", vdev->id);
    return 0;
}

/* The guest tells its peers where it is now (GUEST_ANNOUNCE: a config interrupt
 * with S_ANNOUNCE, acknowledged on the control queue), and a backend that can
 * sends a RARP in its name. */
static void net_announce(struct virtio_net *net)
{
    bool guest = virtio_has_feature(&net->vdev, VIRTIO_NET_F_GUEST_ANNOUNCE);
    uint64_t one = 1;
    uint8_t mac[6];
    int ret;

    pthread_mutex_lock(&net->lock);
    memcpy(mac, net->config.mac, 6);
    if (guest)
        net->config.status |= VIRTIO_NET_S_ANNOUNCE;
    pthread_mutex_unlock(&net->lock);
    /* Deferred to the loop like a link change: the transport's lock may be held. */
    if (guest && write(net->link_efd, &one, sizeof(one)) < 0)
        pr_debug("%s: link eventfd: %s", net->vdev.id, strerror(errno));
    if (!net->connected || !(net->conn.protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_RARP)))
        return;
    ret = vhost_user_send_rarp(&net->conn, mac);
    if (ret && net->conn.broken)
        net_lost_backend(net, "it failed during SEND_RARP");
    else if (ret)
        pr_warn("%s: SEND_RARP failed: %s", net->vdev.id, strerror(-ret));
}

/* The destination: the rings from the migrated bases, the control queue where the
 * source left it, then the announcement. */
static int net_start_loaded(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    uint16_t last_avail = net->ctrl_vq.last_avail, used_idx = net->ctrl_vq.used_idx;
    bool lost = false;
    int ret = 0;

    if (!net->loaded_started) {
        pr_err("%s: the loaded NIC was not started by its guest", vdev->id);
        return -EINVAL;
    }
    if (net->connected) {
        ret = net_start_backend(net);
        lost = ret && net->conn.broken; /* the rings start when a backend is back */
        if (lost)
            ret = 0;
    }
    if (!ret)
        ret = start_ctrl_queue(net);
    if (ret) {
        pr_err("%s: cannot start the migrated NIC: %s", vdev->id, strerror(-ret));
        return ret;
    }
    net->ctrl_vq.last_avail = last_avail;
    net->ctrl_vq.used_idx = used_idx;
    net->started = true;
    net->loaded_started = false;
    if (lost)
        net_lost_backend(net, "it failed while the rings started");
    net_resume_io(net);
    net_set_link(net, net->connected);
    net_announce(net);
    pr_info("%s: started from the migrated state, %u of %u queue pair(s) active", vdev->id,
            net->active_pairs, net->opts.queue_pairs);
    return 0;
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
    .config_size = sizeof(struct virtio_net_config),
};

/* ---- the connection: set-up, loss and reconnect ---- */

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
    vhost_user_conn_init(&net->conn, fd);
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
    pr_err("%s: the backend has %llu memory slots, guest RAM needs %d", net->vdev.id,
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
    if (!ret && net_has(net, PF(BACKEND_REQ)))
        ret = vhost_user_open_backend_channel(&net->conn);
    if (!ret)
        ret = vhost_user_set_owner(&net->conn);
    if (ret)
        return ret;
    if (!(net->conn.features & (1ULL << VIRTIO_F_VERSION_1))) {
        pr_err("%s: the backend does not offer VIRTIO_F_VERSION_1", net->vdev.id);
        return -ENOTSUP;
    }
    if (net->opts.queue_pairs > 1 && net->conn.max_queues < net->opts.queue_pairs) {
        pr_err("%s: queues=%u, but the backend offers %llu queue pair(s)", net->vdev.id,
               net->opts.queue_pairs, (unsigned long long)net->conn.max_queues);
        return -ENOTSUP;
    }
    return 0;
}

static const char *const data_feature_names[64] = {
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
};

/* A new backend must offer every data-path feature the guest uses (or, before the
 * guest negotiated, every one vmm already offered it). */
int virtio_net_missing_feature(uint64_t in_use, uint64_t offered)
{
    uint64_t missing = in_use & backend_feature_mask & ~offered;

    return missing ? __builtin_ctzll(missing) : -1;
}

static int net_check_new_backend(struct virtio_net *net)
{
    uint64_t in_use = net->vdev.acked_features ? net->vdev.acked_features : net->backend_features;
    int bit = virtio_net_missing_feature(in_use, net->conn.features);

    if (bit < 0)
        return 0;
    pr_err("%s: the backend on %s lacks %s (feature bit %d), which the guest uses: the link "
           "stays down",
           net->vdev.id, net->opts.socket_path,
           data_feature_names[bit] ? data_feature_names[bit] : "?", bit);
    return -ENOTSUP;
}

/* Link changes are announced from the loop, later: callers may run while a vCPU
 * holds the transport's lock, which raising the config interrupt takes. */
static void net_set_link(struct virtio_net *net, bool up)
{
    uint64_t one = 1;
    bool was_up;

    pthread_mutex_lock(&net->lock);
    was_up = net->config.status & VIRTIO_NET_S_LINK_UP;
    if (up)
        net->config.status |= VIRTIO_NET_S_LINK_UP;
    else
        net->config.status &= (uint16_t)~VIRTIO_NET_S_LINK_UP;
    pthread_mutex_unlock(&net->lock);
    if (was_up != up && write(net->link_efd, &one, sizeof(one)) < 0)
        pr_debug("%s: link eventfd: %s", net->vdev.id, strerror(errno));
}

static void net_on_link_change(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    uint64_t v;

    (void)events;
    if (read(net->link_efd, &v, sizeof(v)) == sizeof(v))
        virtio_notify_config(&net->vdev);
}

/* A dead backend cannot answer GET_VRING_BASE: each ring resumes from its used
 * index in guest memory, as QEMU does for in-order devices. */
static void net_recover_ring_bases(struct virtio_net *net)
{
    for (unsigned q = 0; q < ctrl_index(net); q++) {
        const struct virtio_queue *vq = &net->vdev.queues[q];
        const uint8_t *idx = vq->enabled ? guest_mem_ptr(net->vdev.mem, vq->used + 2, 2) : NULL;

        net->ring_base[q] = idx ? (uint16_t)(idx[0] | idx[1] << 8) : 0;
    }
}

static void net_on_conn_event(void *arg, uint32_t events);
static int net_watch_backend_channel(struct virtio_net *net);
static void net_on_listen(void *arg, uint32_t events);

static int net_watch(struct virtio_net *net, int fd, void (*cb)(void *, uint32_t), bool on)
{
    const struct virtio_platform *p = net->vdev.platform;

    return p->watch_fd(p->opaque, fd, cb, net, on);
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
    if (net->listen_fd < 0 || net->listen_watched == on)
        return;
    if (net_watch(net, net->listen_fd, net_on_listen, on))
        pr_err("%s: cannot watch %s for the backend", net->vdev.id, net->opts.socket_path);
    else
        net->listen_watched = on;
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
    if (net->backend_watched)
        net_watch(net, net->conn.backend_fd, NULL, false);
    net->backend_watched = false;
}

static void net_close_conn(struct virtio_net *net)
{
    if (net->conn_watched)
        net_watch(net, net->conn.fd, NULL, false);
    net->conn_watched = false;
    net_unwatch_backend_channel(net);
    if (net->conn.fd >= 0)
        vhost_user_conn_close(&net->conn);
    net->conn.fd = -1;
    net->connected = false;
    net->rings_started = 0; /* the next backend starts with none */
}

static void net_lost_backend(struct virtio_net *net, const char *why)
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
    if (net->started)
        net_recover_ring_bases(net);
    net_set_link(net, false);
    net_wait_for_backend(net, true);
}

/* Why a held attempt failed: the first message it held (without our id in front), or
 * the error code's name. */
static const char *net_held_reason(const struct virtio_net *net, const struct log_held *held,
                                   int ret)
{
    size_t idlen = strlen(net->vdev.id);
    const char *why = held->count ? held->first : strerror(-ret);

    if (!strncmp(why, net->vdev.id, idlen) && !strncmp(why + idlen, ": ", 2))
        why += idlen + 2;
    return why;
}

static int net_handshake_held(struct virtio_net *net, struct log_held *held)
{
    int ret;

    log_hold(held);
    ret = net_handshake(net);
    log_release();
    return ret;
}

/* The handshake again, then the rings as the guest left them, one kick each for
 * what it queued meanwhile, and the link up. */
static void net_reconnect(struct virtio_net *net, int fd)
{
    struct log_held held;
    int ret;

    net_open_conn(net, fd);
    ret = net_handshake_held(net, &held);
    if (!ret && net_check_new_backend(net)) { /* it said why, in one line */
        net_close_conn(net);
        return;
    }
    if (!ret) {
        log_hold(&held);                   /* what went wrong goes into the one line below */
        if (net->started && !net->stopped) /* stopped: restart() starts them */
            ret = net_start_backend(net);
        if (!ret)
            ret = net_watch(net, fd, net_on_conn_event, true);
        net->conn_watched = ret == 0;
        if (!ret)
            ret = net_watch_backend_channel(net);
        log_release();
    }
    if (ret) {
        pr_warn("%s: the backend on %s failed the handshake (%s); waiting for another",
                net->vdev.id, net->opts.socket_path, net_held_reason(net, &held, ret));
        net_close_conn(net);
        return;
    }
    net->connected = true;
    net_wait_for_backend(net, false);
    for (unsigned q = 0; net->started && !net->stopped && q < ctrl_index(net); q++) {
        uint64_t one = 1;

        if (net->vdev.queues[q].enabled && write(net->vdev.queues[q].kick_fd, &one, 8) < 0)
            pr_debug("%s: queue %u kick: %s", net->vdev.id, q, strerror(errno));
    }
    net->reconnects++;
    net_set_link(net, true);
    pr_info("%s: vhost-user backend back on %s (reconnect %u): link up", net->vdev.id,
            net->opts.socket_path, net->reconnects);
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

/* One request on the backend's channel. A channel that fails or closes is closed alone,
 * in one line: the connection goes on, and a reconnect opens a new channel. */
static void net_on_backend_req(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    struct log_held held;
    int ret;

    (void)events;
    if (!net->connected || !net->backend_watched)
        return;
    log_hold(&held);
    ret = vhost_user_backend_req_handle(&net->conn, &net_backend_ops, net);
    log_release();
    if (net->conn.backend_broken && net_peer_gone(net)) {
        /* A backend that died closed both: one loss, not a channel close first. */
        net_lost_backend(net, "it closed the connection");
    } else if (net->conn.backend_broken) {
        pr_warn("%s: the backend's request channel on %s is closed (%s); the connection goes on",
                net->vdev.id, net->opts.socket_path,
                ret == -ECONNRESET ? "the backend closed it" : net_held_reason(net, &held, ret));
        net_unwatch_backend_channel(net);
        vhost_user_close_backend_channel(&net->conn);
    } else if (held.count) {
        pr_warn("%s: %s", net->vdev.id, held.first);
    }
}

static int net_watch_backend_channel(struct virtio_net *net)
{
    int ret;

    if (net->conn.backend_fd < 0)
        return 0;
    ret = net_watch(net, net->conn.backend_fd, net_on_backend_req, true);
    net->backend_watched = ret == 0;
    return ret;
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

static void net_on_retry(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    uint64_t expirations;
    int fd, ret;

    (void)events;
    if (read(net->retry_fd, &expirations, sizeof(expirations)) != sizeof(expirations) ||
        net->connected)
        return;
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
    if (ret) {
        /* E.g. EMFILE: the connection stays queued and the socket readable. Pause
         * instead of spinning on it, and try again after reconnect-ms. */
        pr_warn("%s: cannot accept a backend on %s: %s; trying again in %u ms", net->vdev.id,
                net->opts.socket_path, strerror(-ret), net->opts.reconnect_ms);
        net_watch_listen(net, false);
        net_retry_timer(net, true, false);
    } else {
        net_reconnect(net, fd);
    }
}

static int net_connect(struct virtio_net *net, int *fd)
{
    int ret;

    if (!net->opts.server) {
        pr_info("%s: connecting to vhost-user backend %s (waiting up to %u ms)", net->vdev.id,
                net->opts.socket_path, net->opts.connect_timeout_ms);
        return vhost_user_connect(net->opts.socket_path, net->opts.connect_timeout_ms, fd);
    }
    ret = vhost_user_listen(net->opts.socket_path, &net->listen_fd);
    if (ret)
        return ret;
    pr_info("%s: waiting up to %u ms for a vhost-user backend on %s", net->vdev.id,
            net->opts.connect_timeout_ms, net->opts.socket_path);
    return vhost_user_accept(net->listen_fd, net->opts.connect_timeout_ms, fd);
}

/* The fds the event loop watches for the connection's whole life. */
static int net_setup_watches(struct virtio_net *net)
{
    int ret;

    net->link_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    net->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (net->link_efd < 0 || net->retry_fd < 0) {
        ret = -errno;
        pr_err("%s: cannot create its eventfd/timerfd: %s", net->vdev.id, strerror(-ret));
        return ret;
    }
    ret = net_watch(net, net->link_efd, net_on_link_change, true);
    if (!ret && net->retry_fd >= 0)
        ret = net_watch(net, net->retry_fd, net_on_retry, true);
    if (!ret)
        ret = net_watch(net, net->conn.fd, net_on_conn_event, true);
    net->conn_watched = ret == 0;
    if (!ret)
        ret = net_watch_backend_channel(net);
    if (ret) {
        pr_err("%s: cannot watch its backend: %s", net->vdev.id, strerror(-ret));
        return ret;
    }
    return 0;
}

void virtio_net_setup(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                      const struct virtio_platform *platform, const struct guest_mem_access *mem)
{
    memset(net, 0, sizeof(*net));
    net->opts = *opts;
    net->vdev = (struct virtio_device){.id = id,
                                       .device_id = VIRTIO_ID_NET,
                                       .num_queues = 2 * opts->queue_pairs + 1,
                                       .ops = &virtio_net_ops,
                                       .mem = mem,
                                       .platform = platform};
    for (unsigned q = 0; q < net->vdev.num_queues; q++)
        net->vdev.queues[q].max_size = 256;
    net->conn.fd = net->listen_fd = net->retry_fd = net->link_efd = -1;
    net->active_pairs = 1;
    pthread_mutex_init(&net->lock, NULL);
    memcpy(net->config.mac, opts->mac, 6);
    net->config.status = VIRTIO_NET_S_LINK_UP;
    net->config.max_virtqueue_pairs = (uint16_t)opts->queue_pairs;
    net->config.mtu = opts->mtu;
}

int virtio_net_init(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                    const struct virtio_platform *platform, const struct guest_mem_access *mem)
{
    struct log_held held;
    int fd = -1, ret;

    virtio_net_setup(net, id, opts, platform, mem);
    ret = net_connect(net, &fd); /* the vhost-user library says why it failed */
    if (ret) {
        virtio_net_destroy(net);
        return ret;
    }
    net_open_conn(net, fd);
    ret = net_handshake_held(net, &held);
    if (ret)
        pr_err("%s: vhost-user handshake on %s failed: %s", id, opts->socket_path,
               net_held_reason(net, &held, ret));
    if (!ret)
        ret = net_setup_watches(net);
    if (ret) {
        virtio_net_destroy(net);
        return ret;
    }
    net->backend_features = net->conn.features;
    net->connected = true;
    return 0;
}

void virtio_net_destroy(struct virtio_net *net)
{
    int *fds[] = {&net->link_efd, &net->retry_fd, &net->listen_fd};
    bool listened = net->listen_fd >= 0;

    if (net->vdev.platform)
        net_close_conn(net);
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] < 0)
            continue;
        net_watch(net, *fds[i], NULL, false);
        close(*fds[i]);
        *fds[i] = -1;
    }
    if (listened) /* the socket file is ours: QEMU removes its server socket too */
        unlink(net->opts.socket_path);
    pthread_mutex_destroy(&net->lock);
}
