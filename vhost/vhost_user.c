/*
 * vhost-user requests: one function per message, each filling the wire payload from plain
 * data and going through vu_call(), which owns sending, replies and validation.
 */
#include "vhost_user.h"
#include "vhost_user_msg.h"

#include "../common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MSG(req, len)                                                                              \
    {                                                                                              \
        .hdr = {.request = (req), .size = (len) }                                                  \
    }

void vhost_user_conn_init(struct vhost_user_conn *c, int fd)
{
    *c = (struct vhost_user_conn){
        .fd = fd,
        .backend_fd = -1,
        .max_queues = 1,
        .timeout_ms = VHOST_USER_DEFAULT_TIMEOUT_MS,
    };
}

void vhost_user_conn_close(struct vhost_user_conn *c)
{
    vu_backend_rx_drop(c);
    if (c->fd >= 0)
        close(c->fd);
    if (c->backend_fd >= 0)
        close(c->backend_fd);
    c->fd = -1;
    c->backend_fd = -1;
    c->broken = true;
}

void vhost_user_close_backend_channel(struct vhost_user_conn *c)
{
    vu_backend_rx_drop(c);
    if (c->backend_fd >= 0)
        close(c->backend_fd);
    c->backend_fd = -1;
    c->backend_broken = false;
}

static int call(struct vhost_user_conn *c, struct vu_msg *m, const int *fds, unsigned nfds)
{
    return vu_call(c, m, fds, nfds, NULL);
}

static int send_u64(struct vhost_user_conn *c, uint32_t req, uint64_t value)
{
    struct vu_msg m = MSG(req, sizeof(uint64_t));

    m.payload.u64 = value;
    return call(c, &m, NULL, 0);
}

static int get_u64(struct vhost_user_conn *c, uint32_t req, uint64_t *value)
{
    struct vu_msg m = MSG(req, 0), reply;
    int r = vu_call(c, &m, NULL, 0, &reply);

    if (!r)
        *value = reply.payload.u64;
    return r;
}

static int send_state(struct vhost_user_conn *c, uint32_t req, unsigned index, unsigned num)
{
    struct vu_msg m = MSG(req, sizeof(struct vu_state));

    m.payload.state.index = index;
    m.payload.state.num = num;
    return call(c, &m, NULL, 0);
}

static int send_none(struct vhost_user_conn *c, uint32_t req)
{
    struct vu_msg m = MSG(req, 0);

    return call(c, &m, NULL, 0);
}

static int send_fd(struct vhost_user_conn *c, uint32_t req, int fd)
{
    struct vu_msg m = MSG(req, 0);

    return call(c, &m, &fd, 1);
}

int vhost_user_get_features(struct vhost_user_conn *c, uint64_t *features)
{
    int r = get_u64(c, VHOST_USER_GET_FEATURES, features);

    if (!r)
        c->features = *features;
    return r;
}

int vhost_user_set_features(struct vhost_user_conn *c, uint64_t features)
{
    uint64_t fp = 1ULL << VHOST_USER_F_PROTOCOL_FEATURES;
    int r;

    /* Without this bit the back-end enables every ring at once and forgets the protocol
     * features, so it goes along whenever the back-end offered it. */
    features |= c->features & fp;
    if (features & ~c->features) {
        vu_err(c,
               "vhost-user: SET_FEATURES 0x%" PRIx64 " asks for 0x%" PRIx64
               ", not offered by GET_FEATURES",
               features, features & ~c->features);
        return -EINVAL;
    }
    r = send_u64(c, VHOST_USER_SET_FEATURES, features);
    if (!r)
        c->acked_features = features;
    return r;
}

int vhost_user_get_protocol_features(struct vhost_user_conn *c, uint64_t *features)
{
    int r = get_u64(c, VHOST_USER_GET_PROTOCOL_FEATURES, features);

    if (!r)
        c->backend_protocol_features = *features;
    return r;
}

int vhost_user_set_protocol_features(struct vhost_user_conn *c, uint64_t features)
{
    int r;

    if (features & ~c->backend_protocol_features) {
        vu_err(c,
               "vhost-user: SET_PROTOCOL_FEATURES 0x%" PRIx64 " asks for 0x%" PRIx64
               ", not offered by GET_PROTOCOL_FEATURES",
               features, features & ~c->backend_protocol_features);
        return -EINVAL;
    }
    r = send_u64(c, VHOST_USER_SET_PROTOCOL_FEATURES, features);
    if (!r)
        c->protocol_features = features;
    return r;
}

int vhost_user_set_owner(struct vhost_user_conn *c)
{
    return send_none(c, VHOST_USER_SET_OWNER);
}

int vhost_user_reset_owner(struct vhost_user_conn *c)
{
    return send_none(c, VHOST_USER_RESET_OWNER);
}

static void fill_region(struct vu_region *dst, const struct vhost_user_mem_region *src)
{
    dst->guest_phys_addr = src->guest_phys_addr;
    dst->memory_size = src->memory_size;
    dst->userspace_addr = src->userspace_addr;
    dst->mmap_offset = src->mmap_offset;
}

int vhost_user_set_mem_table(struct vhost_user_conn *c, const struct vhost_user_mem_region *regions,
                             unsigned nregions)
{
    struct vu_msg m = MSG(VHOST_USER_SET_MEM_TABLE, 8 + nregions * sizeof(struct vu_region));
    int fds[VHOST_USER_MAX_REGIONS];

    if (nregions > VHOST_USER_MAX_REGIONS) {
        vu_err(c, "vhost-user: SET_MEM_TABLE with %u regions, the protocol allows %d", nregions,
               VHOST_USER_MAX_REGIONS);
        return -E2BIG;
    }
    m.payload.memory.nregions = nregions;
    for (unsigned i = 0; i < nregions; i++) {
        fill_region(&m.payload.memory.regions[i], &regions[i]);
        fds[i] = regions[i].fd;
    }
    return call(c, &m, fds, nregions);
}

int vhost_user_set_log_base(struct vhost_user_conn *c, int fd, uint64_t mmap_size,
                            uint64_t mmap_offset)
{
    struct vu_msg m = MSG(VHOST_USER_SET_LOG_BASE, sizeof(struct vu_log));

    m.payload.log.mmap_size = mmap_size;
    m.payload.log.mmap_offset = mmap_offset;
    return call(c, &m, &fd, 1);
}

int vhost_user_set_log_fd(struct vhost_user_conn *c, int fd)
{
    return send_fd(c, VHOST_USER_SET_LOG_FD, fd);
}

int vhost_user_set_vring_num(struct vhost_user_conn *c, unsigned index, unsigned num)
{
    return send_state(c, VHOST_USER_SET_VRING_NUM, index, num);
}

int vhost_user_set_vring_addr(struct vhost_user_conn *c, const struct vhost_user_vring_addr *addr)
{
    struct vu_msg m = MSG(VHOST_USER_SET_VRING_ADDR, sizeof(struct vu_addr));

    m.payload.addr = (struct vu_addr){
        .index = addr->index,
        .flags = addr->flags,
        .desc = addr->desc_user_addr,
        .used = addr->used_user_addr,
        .avail = addr->avail_user_addr,
        .log = addr->log_guest_addr,
    };
    return call(c, &m, NULL, 0);
}

int vhost_user_set_vring_base(struct vhost_user_conn *c, unsigned index, unsigned base)
{
    return send_state(c, VHOST_USER_SET_VRING_BASE, index, base);
}

int vhost_user_get_vring_base(struct vhost_user_conn *c, unsigned index, unsigned *base)
{
    struct vu_msg m = MSG(VHOST_USER_GET_VRING_BASE, sizeof(struct vu_state)), reply;
    int r;

    m.payload.state.index = index;
    r = vu_call(c, &m, NULL, 0, &reply);
    if (r)
        return r;
    if (reply.payload.state.index != index) {
        vu_err(c, "vhost-user: GET_VRING_BASE reply is for ring %u, asked for ring %u",
               reply.payload.state.index, index);
        vu_break(c);
        return -EPROTO;
    }
    *base = reply.payload.state.num;
    return 0;
}

#define PACKED_IDX_MASK 0x7fffu
#define PACKED_WRAP (1u << 15)

uint32_t vhost_user_vring_pos_encode(const struct vhost_user_vring_pos *pos)
{
    uint32_t avail = (pos->avail_idx & PACKED_IDX_MASK) | (pos->avail_wrap ? PACKED_WRAP : 0);
    uint32_t used = (pos->used_idx & PACKED_IDX_MASK) | (pos->used_wrap ? PACKED_WRAP : 0);

    return avail | used << 16;
}

void vhost_user_vring_pos_decode(uint32_t num, struct vhost_user_vring_pos *pos)
{
    *pos = (struct vhost_user_vring_pos){
        .avail_idx = num & PACKED_IDX_MASK,
        .avail_wrap = num & PACKED_WRAP,
        .used_idx = (num >> 16) & PACKED_IDX_MASK,
        .used_wrap = (num >> 16) & PACKED_WRAP,
    };
}

/* The packed encoding only means something to a back-end that was told the ring is packed. */
static int check_packed(const struct vhost_user_conn *c, const char *name)
{
    if (c->acked_features & (1ULL << VHOST_USER_F_RING_PACKED))
        return 0;
    vu_err(c, "vhost-user: %s with packed ring indices, but VIRTIO_F_RING_PACKED was not acked",
           name);
    return -EINVAL;
}

int vhost_user_set_vring_base_packed(struct vhost_user_conn *c, unsigned index,
                                     const struct vhost_user_vring_pos *pos)
{
    int r = check_packed(c, "SET_VRING_BASE");

    if (r)
        return r;
    if (pos->avail_idx > PACKED_IDX_MASK || pos->used_idx > PACKED_IDX_MASK) {
        vu_err(c, "vhost-user: SET_VRING_BASE for ring %u: packed indices %u and %u, at most %u",
               index, pos->avail_idx, pos->used_idx, PACKED_IDX_MASK);
        return -EINVAL;
    }
    return send_state(c, VHOST_USER_SET_VRING_BASE, index, vhost_user_vring_pos_encode(pos));
}

int vhost_user_get_vring_base_packed(struct vhost_user_conn *c, unsigned index,
                                     struct vhost_user_vring_pos *pos)
{
    unsigned num;
    int r = check_packed(c, "GET_VRING_BASE");

    if (!r)
        r = vhost_user_get_vring_base(c, index, &num);
    if (!r)
        vhost_user_vring_pos_decode(num, pos);
    return r;
}

static int send_vring_fd(struct vhost_user_conn *c, uint32_t req, unsigned index, int fd)
{
    struct vu_msg m = MSG(req, sizeof(uint64_t));

    if (index > VHOST_USER_VRING_IDX_MASK) {
        vu_err(c, "vhost-user: %s for ring %u, the message carries at most %u",
               vhost_user_request_name(req), index, VHOST_USER_VRING_IDX_MASK);
        return -EINVAL;
    }
    m.payload.u64 = index | (fd < 0 ? VHOST_USER_VRING_NOFD : 0);
    return call(c, &m, &fd, fd < 0 ? 0 : 1);
}

int vhost_user_set_vring_kick(struct vhost_user_conn *c, unsigned index, int fd)
{
    return send_vring_fd(c, VHOST_USER_SET_VRING_KICK, index, fd);
}

int vhost_user_set_vring_call(struct vhost_user_conn *c, unsigned index, int fd)
{
    return send_vring_fd(c, VHOST_USER_SET_VRING_CALL, index, fd);
}

int vhost_user_set_vring_err(struct vhost_user_conn *c, unsigned index, int fd)
{
    return send_vring_fd(c, VHOST_USER_SET_VRING_ERR, index, fd);
}

int vhost_user_get_queue_num(struct vhost_user_conn *c, uint64_t *num)
{
    int r = get_u64(c, VHOST_USER_GET_QUEUE_NUM, num);

    if (r)
        return r;
    if (*num == 0) {
        vu_err(c, "vhost-user: GET_QUEUE_NUM reply says the back-end has 0 queues");
        vu_break(c);
        return -EPROTO;
    }
    c->max_queues = *num;
    return 0;
}

int vhost_user_set_vring_enable(struct vhost_user_conn *c, unsigned index, bool enable)
{
    return send_state(c, VHOST_USER_SET_VRING_ENABLE, index, enable ? 1 : 0);
}

int vhost_user_send_rarp(struct vhost_user_conn *c, const uint8_t mac[6])
{
    struct vu_msg m = MSG(VHOST_USER_SEND_RARP, sizeof(uint64_t));

    m.payload.u64 = 0;
    memcpy(&m.payload.u64, mac, 6); /* the MAC is the first 6 bytes of the payload */
    return call(c, &m, NULL, 0);
}

int vhost_user_net_set_mtu(struct vhost_user_conn *c, uint16_t mtu)
{
    return send_u64(c, VHOST_USER_NET_SET_MTU, mtu);
}

int vhost_user_set_backend_req_fd(struct vhost_user_conn *c, int fd)
{
    return send_fd(c, VHOST_USER_SET_BACKEND_REQ_FD, fd);
}

int vhost_user_open_backend_channel(struct vhost_user_conn *c)
{
    int sv[2], r;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        r = -errno;
        vu_err(c, "vhost-user: cannot create the back-end request channel: %s", strerror(-r));
        return r;
    }
    r = vhost_user_set_backend_req_fd(c, sv[1]);
    close(sv[1]);
    if (r) {
        close(sv[0]);
        return r;
    }
    vu_backend_rx_drop(c); /* a half-read message of the old channel */
    if (c->backend_fd >= 0)
        close(c->backend_fd);
    c->backend_fd = sv[0];
    c->backend_broken = false;
    return 0;
}

int vhost_user_iotlb_msg(struct vhost_user_conn *c, const struct vhost_user_iotlb *msg)
{
    struct vu_msg m = MSG(VHOST_USER_IOTLB_MSG, sizeof(struct vu_iotlb));

    m.payload.iotlb = (struct vu_iotlb){
        .iova = msg->iova,
        .size = msg->size,
        .uaddr = msg->uaddr,
        .perm = msg->perm,
        .type = msg->type,
    };
    return call(c, &m, NULL, 0);
}

int vhost_user_set_vring_endian(struct vhost_user_conn *c, unsigned index, bool big_endian)
{
    return send_state(c, VHOST_USER_SET_VRING_ENDIAN, index, big_endian ? 1 : 0);
}

static int fill_config(const struct vhost_user_conn *c, struct vu_msg *m, const char *name,
                       uint32_t offset, uint32_t size, uint32_t flags)
{
    if (size > VHOST_USER_MAX_CONFIG_SIZE) {
        vu_err(c, "vhost-user: %s of %u bytes, the protocol allows %d", name, size,
               VHOST_USER_MAX_CONFIG_SIZE);
        return -E2BIG;
    }
    m->hdr.size = VU_CONFIG_HDR_SIZE + size;
    m->payload.config.offset = offset;
    m->payload.config.size = size;
    m->payload.config.flags = flags;
    return 0;
}

int vhost_user_get_config(struct vhost_user_conn *c, uint32_t offset, void *buf, uint32_t size,
                          uint32_t flags)
{
    struct vu_msg m = MSG(VHOST_USER_GET_CONFIG, 0), reply;
    int r = fill_config(c, &m, "GET_CONFIG", offset, size, flags);

    if (!r)
        r = vu_call(c, &m, NULL, 0, &reply);
    if (r)
        return r;
    if (reply.hdr.size == 0) {
        vu_err(c, "vhost-user: GET_CONFIG failed: back-end replied with an empty payload");
        return -EIO;
    }
    memcpy(buf, reply.payload.config.region, size);
    return 0;
}

int vhost_user_set_config(struct vhost_user_conn *c, uint32_t offset, const void *buf,
                          uint32_t size, uint32_t flags)
{
    struct vu_msg m = MSG(VHOST_USER_SET_CONFIG, 0);
    int r = fill_config(c, &m, "SET_CONFIG", offset, size, flags);

    if (r)
        return r;
    memcpy(m.payload.config.region, buf, size);
    return call(c, &m, NULL, 0);
}

int vhost_user_get_status(struct vhost_user_conn *c, uint8_t *status)
{
    uint64_t v;
    int r = get_u64(c, VHOST_USER_GET_STATUS, &v);

    if (r)
        return r;
    if (v > UINT8_MAX) {
        vu_err(c, "vhost-user: GET_STATUS reply 0x%" PRIx64 " is not an 8-bit device status", v);
        vu_break(c);
        return -EPROTO;
    }
    *status = (uint8_t)v;
    return 0;
}

int vhost_user_set_status(struct vhost_user_conn *c, uint8_t status)
{
    return send_u64(c, VHOST_USER_SET_STATUS, status);
}

int vhost_user_add_status(struct vhost_user_conn *c, uint8_t bits)
{
    uint8_t status;
    int r = vhost_user_get_status(c, &status);

    if (r || (status & bits) == bits)
        return r;
    return vhost_user_set_status(c, status | bits);
}

int vhost_user_reset_device(struct vhost_user_conn *c)
{
    return send_none(c, VHOST_USER_RESET_DEVICE);
}

int vhost_user_get_max_mem_slots(struct vhost_user_conn *c, uint64_t *slots)
{
    return get_u64(c, VHOST_USER_GET_MAX_MEM_SLOTS, slots);
}

static int send_mem_reg(struct vhost_user_conn *c, uint32_t req,
                        const struct vhost_user_mem_region *region, const int *fd, unsigned nfds)
{
    struct vu_msg m = MSG(req, sizeof(struct vu_mem_reg));

    m.payload.mem_reg.padding = 0;
    fill_region(&m.payload.mem_reg.region, region);
    return call(c, &m, fd, nfds);
}

int vhost_user_add_mem_reg(struct vhost_user_conn *c, const struct vhost_user_mem_region *region)
{
    return send_mem_reg(c, VHOST_USER_ADD_MEM_REG, region, &region->fd, 1);
}

int vhost_user_rem_mem_reg(struct vhost_user_conn *c, const struct vhost_user_mem_region *region)
{
    return send_mem_reg(c, VHOST_USER_REM_MEM_REG, region, NULL, 0);
}

static bool same_region(const struct vhost_user_mem_region *a,
                        const struct vhost_user_mem_region *b)
{
    return a->guest_phys_addr == b->guest_phys_addr && a->userspace_addr == b->userspace_addr &&
           a->memory_size == b->memory_size;
}

static bool region_in(const struct vhost_user_mem_region *r,
                      const struct vhost_user_mem_region *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (same_region(r, &list[i]))
            return true;
    return false;
}

/* The same table the back-end holds already (on this connection, since no reset):
 * nothing to send. A back-end maps it again on each SET_MEM_TABLE, which costs seconds
 * for a large guest under emulation; a migration's destination sends it early. */
static bool table_held(const struct vhost_user_conn *c, const struct vhost_user_mem_region *regions,
                       unsigned nregions)
{
    if (c->nmem_held != nregions)
        return false;
    for (unsigned i = 0; i < nregions; i++)
        if (!region_in(&regions[i], c->mem_held, c->nmem_held))
            return false;
    return true;
}

static int update_mem_table(struct vhost_user_conn *c, const struct vhost_user_mem_region *regions,
                            unsigned nregions)
{
    int r;

    if (nregions && table_held(c, regions, nregions))
        return 0;
    r = vhost_user_set_mem_table(c, regions, nregions);
    c->nmem_held = 0;
    for (unsigned i = 0; !r && i < nregions && i < VHOST_USER_MAX_REGIONS; i++) {
        c->mem_held[c->nmem_held] = regions[i];
        c->mem_held[c->nmem_held++].fd = -1;
    }
    return r;
}

/* REM_MEM_REG for each held region not in regions; the table follows what was acked. */
static int remove_stale_regions(struct vhost_user_conn *c,
                                const struct vhost_user_mem_region *regions, unsigned nregions)
{
    for (unsigned i = c->nmem_held; i-- > 0;) {
        int r;

        if (region_in(&c->mem_held[i], regions, nregions))
            continue;
        r = vhost_user_rem_mem_reg(c, &c->mem_held[i]);
        if (r)
            return r;
        memmove(&c->mem_held[i], &c->mem_held[i + 1],
                (c->nmem_held - i - 1) * sizeof(c->mem_held[0]));
        c->nmem_held--;
    }
    return 0;
}

int vhost_user_update_mem(struct vhost_user_conn *c, const struct vhost_user_mem_region *regions,
                          unsigned nregions)
{
    int r;

    if (!(c->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)))
        return update_mem_table(c, regions, nregions);
    if (nregions > c->max_mem_slots || nregions > VHOST_USER_MAX_REGIONS) {
        vu_err(c, "vhost-user: %u memory regions, the back-end has %" PRIu64 " memory slots",
               nregions, c->max_mem_slots);
        return -ENOSPC;
    }
    r = remove_stale_regions(c, regions, nregions);
    for (unsigned i = 0; !r && i < nregions; i++) {
        if (region_in(&regions[i], c->mem_held, c->nmem_held))
            continue;
        r = vhost_user_add_mem_reg(c, &regions[i]);
        if (!r) {
            c->mem_held[c->nmem_held] = regions[i];
            c->mem_held[c->nmem_held++].fd = -1;
        }
    }
    return r;
}

int vhost_user_negotiate(struct vhost_user_conn *c, uint64_t wanted_protocol_features)
{
    uint64_t features, offered, num;
    int r;

    c->protocol_features = 0;
    c->max_queues = 1;
    c->max_mem_slots = 0;
    r = vhost_user_get_features(c, &features);
    if (r || !(features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
        return r;
    r = vhost_user_get_protocol_features(c, &offered);
    if (!r)
        r = vhost_user_set_protocol_features(c, offered & wanted_protocol_features &
                                                    VHOST_USER_PROTOCOL_SUPPORTED);
    if (r)
        return r;
    if (c->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_MQ))
        r = vhost_user_get_queue_num(c, &num);
    if (!r && (c->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)))
        r = vhost_user_get_max_mem_slots(c, &c->max_mem_slots);
    pr_debug("vhost-user: features 0x%" PRIx64 ", protocol features 0x%" PRIx64 ", %" PRIu64
             " queues",
             c->features, c->protocol_features, c->max_queues);
    return r;
}

/* --- backend-request channel ---------------------------------------------------------- */

static const char *vu_backend_req_name(uint32_t request)
{
    const struct vu_req_info *ri = vu_backend_req_info(request);

    return ri ? ri->name : "UNKNOWN";
}

static int refuse(const struct vhost_user_conn *c, const char *name)
{
    vu_warn(c, "vhost-user: refusing %s: no handler", name);
    return -ENOTSUP;
}

static int host_notifier(const struct vhost_user_conn *c, const struct vhost_user_backend_ops *ops,
                         void *opaque, const struct vu_area *area, int fd)
{
    if (!ops->vring_host_notifier)
        return refuse(c, "BACKEND_VRING_HOST_NOTIFIER_MSG");
    return ops->vring_host_notifier(opaque, area->u64 & VHOST_USER_VRING_IDX_MASK, area->size,
                                    area->offset, (area->u64 & VHOST_USER_VRING_NOFD) ? -1 : fd);
}

static int iotlb(const struct vhost_user_conn *c, const struct vhost_user_backend_ops *ops,
                 void *opaque, const struct vu_iotlb *m)
{
    struct vhost_user_iotlb msg = {
        .iova = m->iova, .size = m->size, .uaddr = m->uaddr, .perm = m->perm, .type = m->type};

    if (!ops->iotlb_msg)
        return refuse(c, "BACKEND_IOTLB_MSG");
    return ops->iotlb_msg(opaque, &msg);
}

static int dispatch(struct vhost_user_conn *c, const struct vhost_user_backend_ops *ops,
                    void *opaque, const struct vu_msg *m, int fd)
{
    const struct vu_req_info *ri = vu_backend_req_info(m->hdr.request);

    if (!ri) {
        vu_warn(c, "vhost-user: refusing unknown back-end request %u", m->hdr.request);
        return -ENOTSUP;
    }
    if (vu_check_gate(c, ri))
        return -ENOTSUP;
    switch (m->hdr.request) {
    case VHOST_USER_BACKEND_CONFIG_CHANGE_MSG:
        return ops->config_change ? ops->config_change(opaque) : refuse(c, ri->name);
    case VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG:
        return host_notifier(c, ops, opaque, &m->payload.area, fd);
    case VHOST_USER_BACKEND_IOTLB_MSG:
        return iotlb(c, ops, opaque, &m->payload.iotlb);
    default:
        return refuse(c, ri->name);
    }
}

int vhost_user_backend_req_handle(struct vhost_user_conn *c,
                                  const struct vhost_user_backend_ops *ops, void *opaque)
{
    struct vu_msg m;
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds;
    int64_t recv_us;
    int r, result;

    if (c->broken || c->backend_broken)
        return -EPIPE;
    if (c->backend_fd < 0)
        return -EBADF;
    r = vu_backend_recv(c, &m, fds, &nfds, &recv_us);
    if (r)
        return r;
    result = dispatch(c, ops, opaque, &m, nfds ? fds[0] : -1);
    vu_close_fds(fds, nfds);
    if (result && result != -ENOTSUP)
        vu_warn(c, "vhost-user: %s failed: %s", vu_backend_req_name(m.hdr.request),
                strerror(-result));
    if (m.hdr.flags & VHOST_USER_FLAG_NEED_REPLY) {
        r = vu_backend_ack(c, &m, result ? 1 : 0, recv_us);
        if (r)
            return r;
    }
    return result;
}
