/* virtio-net's control queue, which vmm serves itself: receive modes, MAC
 * addresses, the number of queue pairs (SET_VRING_ENABLE to the backend) and the
 * guest's announcement acknowledgement. */
#include "net_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define VIRTIO_NET_OK 0
#define VIRTIO_NET_ERR 1

enum {
    CTRL_RX = 0,
    CTRL_MAC = 1,
    CTRL_VLAN = 2,
    CTRL_ANNOUNCE = 3,
    CTRL_MQ = 4,
    CTRL_GUEST_OFFLOADS = 5,
};
#define CTRL_MAC_TABLE_SET 0
#define CTRL_MAC_ADDR_SET 1
#define CTRL_RX_NOBCAST 5
#define CTRL_MQ_VQ_PAIRS_SET 0
#define CTRL_ANNOUNCE_ACK 0
#define CTRL_VLAN_ADD 0
#define CTRL_VLAN_DEL 1
#define CTRL_GUEST_OFFLOADS_SET 0
#define MAX_VLAN 4096
#define CTRL_MAX_DATA 4096
#define CTRL_BATCH 64 /* commands handled before the loop's other work gets a turn */
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

/* The VLAN filter table: as QEMU does for a vhost-user NIC, an id below 4096 is
 * accepted (the backend does its own filtering, as it is configured). */
static uint8_t ctrl_vlan(struct virtio_net *net, const uint8_t *data, uint32_t len, uint8_t cmd)
{
    uint16_t vid;

    if ((cmd != CTRL_VLAN_ADD && cmd != CTRL_VLAN_DEL) || len != 2 ||
        !virtio_has_feature(&net->vdev, VIRTIO_NET_F_CTRL_VLAN))
        return VIRTIO_NET_ERR;
    memcpy(&vid, data, 2);
    return vid < MAX_VLAN ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
}

/* The guest offloads the driver turns on: only ones it negotiated (QEMU's check). */
static uint8_t ctrl_guest_offloads(struct virtio_net *net, const uint8_t *data, uint32_t len,
                                   uint8_t cmd)
{
    const uint64_t guest_offloads = BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |
                                    BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) |
                                    BIT(VIRTIO_NET_F_GUEST_UFO);
    uint64_t offloads;

    if (cmd != CTRL_GUEST_OFFLOADS_SET || len != 8 ||
        !virtio_has_feature(&net->vdev, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS))
        return VIRTIO_NET_ERR;
    memcpy(&offloads, data, 8);
    return offloads & ~(guest_offloads & net->vdev.acked_features) ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
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
    case CTRL_VLAN:
        return ctrl_vlan(net, data, len - 2, cmd[1]);
    case CTRL_GUEST_OFFLOADS:
        return ctrl_guest_offloads(net, data, len - 2, cmd[1]);
    default:
        return VIRTIO_NET_ERR;
    }
}

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
    if (virtq_push_chain(&net->ctrl_vq, chain, virtq_chain_write(chain, &ack, 1)))
        pr_warn("%s: the guest's control queue is malformed; the ack is lost", net->vdev.id);
}

static void ctrl_interrupt(struct virtio_net *net, uint16_t old_used)
{
    uint64_t one = 1;
    int fd = net->vdev.queues[net_ctrl_index(net)].call_fd;

    /* A packed position can come back to where it was (a whole lap): count instead. */
    bool none =
        net->ctrl_vq.packed ? !net->ctrl_vq.used_unsignalled : net->ctrl_vq.used_idx == old_used;

    if (none || !virtq_needs_interrupt(&net->ctrl_vq, old_used))
        return;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
        pr_debug("%s: control queue interrupt: %s", net->vdev.id, strerror(errno));
}

static void ctrl_continue(void *arg)
{
    struct virtio_net *net = arg;

    net->ctrl_pending = false;
    if (net_running(net))
        virtio_net_ctrl_process(net);
}

/* A guest that re-posts commands as fast as they are answered must not hold the
 * NIC's loop: a batch of CTRL_BATCH, then the rest after the loop's other work. */
void virtio_net_ctrl_process(struct virtio_net *net)
{
    struct virtq_chain chain;
    uint16_t old_used = net->ctrl_vq.used_idx;
    unsigned n = 0;
    int ret = 0;

    while (n < CTRL_BATCH && (ret = virtq_pop(&net->ctrl_vq, &chain)) > 0) {
        ctrl_handle_chain(net, &chain);
        n++;
    }
    if (ret < 0)
        pr_warn("%s: the guest's control queue is malformed; ignoring it", net->vdev.id);
    ctrl_interrupt(net, old_used);
    if (n == CTRL_BATCH && !net->ctrl_pending &&
        event_loop_post(net->vdev.loop, ctrl_continue, net) == 0)
        net->ctrl_pending = true;
}

static void ctrl_on_kick(void *arg, uint32_t events)
{
    struct virtio_net *net = arg;
    uint64_t v;
    int fd = net->vdev.queues[net_ctrl_index(net)].kick_fd;

    (void)events;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    if (net_running(net))
        virtio_net_ctrl_process(net);
}

/* DRIVER_OK: the control queue vmm serves itself, watched when the guest enabled it. */
int net_ctrl_start(struct virtio_net *net)
{
    const struct virtio_queue *vq = &net->vdev.queues[net_ctrl_index(net)];

    net->ctrl_vq = (struct virtq){
        .size = vq->size,
        .desc_gpa = vq->desc,
        .avail_gpa = vq->avail,
        .used_gpa = vq->used,
        .event_idx = virtio_has_feature(&net->vdev, VIRTIO_F_RING_EVENT_IDX),
        .packed = net_packed(net),
        .mem = net->vdev.mem,
    };
    virtq_reset_position(&net->ctrl_vq);
    pr_debug("%s: control queue %u: size %u enabled %d", net->vdev.id, net_ctrl_index(net),
             vq->size, vq->enabled);
    if (!vq->enabled)
        return 0;
    if (virtq_check_layout(&net->ctrl_vq)) {
        pr_err("%s: control queue rings are invalid", net->vdev.id);
        return -EINVAL;
    }
    return net_watch(net, vq->kick_fd, ctrl_on_kick, &net->ctrl_watched, true);
}

int net_ctrl_watch(struct virtio_net *net, bool on)
{
    const struct virtio_queue *vq = &net->vdev.queues[net_ctrl_index(net)];

    if (!vq->enabled && on)
        return 0;
    return net_watch(net, vq->kick_fd, ctrl_on_kick, &net->ctrl_watched, on);
}

uint32_t net_ctrl_position_encode(const struct virtq *q)
{
    struct virtq_position pos;

    virtq_get_position(q, &pos);
    if (q->packed)
        return virtq_position_encode(&pos);
    return pos.last_avail | (uint32_t)pos.used_idx << 16;
}

int net_ctrl_position_decode(struct virtio_net *net, uint32_t value)
{
    struct virtq_position pos = {.last_avail = value & 0xffff, .used_idx = value >> 16};

    if (net->ctrl_vq.packed)
        virtq_position_decode(value, &pos);
    if (virtq_set_position(&net->ctrl_vq, &pos) == 0)
        return 0;
    pr_err("%s: saved NIC state is corrupt (control queue at 0x%x, a %u-entry ring)", net->vdev.id,
           value, net->ctrl_vq.size);
    return -EINVAL;
}
