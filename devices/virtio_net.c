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
    /* vmm itself provides the config space and the control queue. */
    uint64_t f = (backend & backend_feature_mask) | BIT(VIRTIO_NET_F_MAC) |
                 BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_CTRL_RX) |
                 BIT(VIRTIO_NET_F_CTRL_MAC_ADDR);

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
    default: /* VLAN filtering, announcements, offloads: not offered */
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

/* Which vhost-user protocol features vmm asks for. */
#define NET_PROTOCOL_FEATURES                                                                      \
    ((1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) |              \
     (1ULL << VHOST_USER_PROTOCOL_F_MTU) | (1ULL << VHOST_USER_PROTOCOL_F_RARP))

static void net_lost_backend(struct virtio_net *net, const char *why);

/* SET_VRING_ENABLE for every started ring: the first active_pairs pairs run. */
static int net_send_enable(struct virtio_net *net)
{
    bool protocol = net->conn.features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
    int ret = 0;

    /* Without protocol features, rings run as soon as they are started. */
    for (unsigned q = 0; protocol && !ret && q < ctrl_index(net); q++)
        if (net->vdev.queues[q].enabled)
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

/* One data queue's rings, base and eventfds to the backend. */
static int start_vring(struct virtio_net *net, unsigned q)
{
    const struct virtio_queue *vq = &net->vdev.queues[q];
    struct vhost_user_vring_addr addr = {
        .index = q,
        .desc_user_addr = host_addr(net, vq->desc, 16ULL * vq->size),
        .avail_user_addr = host_addr(net, vq->avail, 6 + 2ULL * vq->size),
        .used_user_addr = host_addr(net, vq->used, 6 + 8ULL * vq->size),
    };
    int ret;

    if (!addr.desc_user_addr || !addr.avail_user_addr || !addr.used_user_addr) {
        pr_err("%s: queue %u: rings outside guest RAM", net->vdev.id, q);
        return -EINVAL;
    }
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

static int send_mem_table(struct virtio_net *net)
{
    struct vhost_user_mem_region regions[VHOST_USER_MAX_REGIONS];
    const struct virtio_platform *p = net->vdev.platform;
    int n = p->mem_regions(p->opaque, regions, VHOST_USER_MAX_REGIONS);

    return n < 0 ? n : vhost_user_set_mem_table(&net->conn, regions, (unsigned)n);
}

static int start_ctrl_queue(struct virtio_net *net)
{
    const struct virtio_queue *vq = &net->vdev.queues[ctrl_index(net)];
    const struct virtio_platform *p = net->vdev.platform;

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
    return p->watch_fd(p->opaque, vq->kick_fd, ctrl_on_kick, net, true);
}

/* Features, MTU, memory table, then each enabled ring from its ring_base. */
static int net_start_backend(struct virtio_net *net)
{
    uint64_t features = virtio_net_backend_features(net->vdev.acked_features, net->conn.features);
    int ret = vhost_user_set_features(&net->conn, features);

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
    return ret;
}

static int net_activate(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    bool lost = false;
    int ret = 0;

    memset(net->ring_base, 0, sizeof(net->ring_base));
    net->active_pairs = 1;
    if (net->connected) {
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

/* Stops every started ring (GET_VRING_BASE), as the spec asks on a device reset. */
static void net_reset(struct virtio_device *vdev)
{
    struct virtio_net *net = to_net(vdev);
    const struct virtio_platform *p = vdev->platform;

    if (!net->started)
        return;
    net->started = false;
    p->watch_fd(p->opaque, vdev->queues[ctrl_index(net)].kick_fd, NULL, NULL, false);
    for (unsigned q = 0; net->connected && !net->conn.broken && q < ctrl_index(net); q++) {
        unsigned base;

        if (vdev->queues[q].enabled && vhost_user_get_vring_base(&net->conn, q, &base) == 0)
            pr_debug("%s: queue %u stopped at %u", vdev->id, q, base);
    }
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

static int net_handshake(struct virtio_net *net)
{
    int ret = vhost_user_negotiate(&net->conn, NET_PROTOCOL_FEATURES);

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
static void net_on_listen(void *arg, uint32_t events);

static int net_watch(struct virtio_net *net, int fd, void (*cb)(void *, uint32_t), bool on)
{
    const struct virtio_platform *p = net->vdev.platform;

    return p->watch_fd(p->opaque, fd, cb, net, on);
}

/* Client: a timer paces connect attempts. Server: the listening socket is watched. */
static void net_wait_for_backend(struct virtio_net *net, bool on)
{
    long ms = on ? (long)net->opts.reconnect_ms : 0;
    struct itimerspec its = {
        .it_value = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000},
        .it_interval = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000},
    };

    if (net->opts.server) {
        if (net->listen_fd >= 0 && net_watch(net, net->listen_fd, net_on_listen, on))
            pr_err("%s: cannot watch %s for the backend", net->vdev.id, net->opts.socket_path);
    } else if (net->retry_fd >= 0 && timerfd_settime(net->retry_fd, 0, &its, NULL)) {
        pr_err("%s: reconnect timer: %s", net->vdev.id, strerror(errno));
    }
}

static void net_close_conn(struct virtio_net *net)
{
    if (net->conn_watched)
        net_watch(net, net->conn.fd, NULL, false);
    net->conn_watched = false;
    if (net->conn.fd >= 0)
        vhost_user_conn_close(&net->conn);
    net->conn.fd = -1;
    net->connected = false;
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

/* The handshake again, then the rings as the guest left them, one kick each for
 * what it queued meanwhile, and the link up. */
static void net_reconnect(struct virtio_net *net, int fd)
{
    int ret;

    net_open_conn(net, fd);
    ret = net_handshake(net);
    if (!ret)
        ret = net_check_new_backend(net);
    if (!ret && net->started)
        ret = net_start_backend(net);
    if (!ret)
        ret = net_watch(net, fd, net_on_conn_event, true);
    if (ret) {
        pr_warn("%s: the backend on %s failed the handshake (%s); waiting for another",
                net->vdev.id, net->opts.socket_path, strerror(-ret));
        net_close_conn(net);
        return;
    }
    net->conn_watched = true;
    net->connected = true;
    net_wait_for_backend(net, false);
    for (unsigned q = 0; net->started && q < ctrl_index(net); q++) {
        uint64_t one = 1;

        if (net->vdev.queues[q].enabled && write(net->vdev.queues[q].kick_fd, &one, 8) < 0)
            pr_debug("%s: queue %u kick: %s", net->vdev.id, q, strerror(errno));
    }
    net->reconnects++;
    net_set_link(net, true);
    pr_info("%s: vhost-user backend back on %s (reconnect %u): link up", net->vdev.id,
            net->opts.socket_path, net->reconnects);
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
    if (ret)
        pr_warn("%s: cannot accept a backend on %s: %s", net->vdev.id, net->opts.socket_path,
                strerror(-ret));
    else
        net_reconnect(net, fd);
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
    if (!net->opts.server)
        net->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (net->link_efd < 0 || (!net->opts.server && net->retry_fd < 0)) {
        ret = -errno;
        pr_err("%s: cannot create its eventfd/timerfd: %s", net->vdev.id, strerror(-ret));
        return ret;
    }
    ret = net_watch(net, net->link_efd, net_on_link_change, true);
    if (!ret && net->retry_fd >= 0)
        ret = net_watch(net, net->retry_fd, net_on_retry, true);
    if (!ret)
        ret = net_watch(net, net->conn.fd, net_on_conn_event, true);
    if (ret) {
        pr_err("%s: cannot watch its backend: %s", net->vdev.id, strerror(-ret));
        return ret;
    }
    net->conn_watched = true;
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
    int fd = -1, ret;

    virtio_net_setup(net, id, opts, platform, mem);
    ret = net_connect(net, &fd); /* the vhost-user library says why it failed */
    if (ret) {
        virtio_net_destroy(net);
        return ret;
    }
    net_open_conn(net, fd);
    ret = net_handshake(net);
    if (ret)
        pr_err("%s: vhost-user handshake on %s failed: %s", id, opts->socket_path, strerror(-ret));
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
