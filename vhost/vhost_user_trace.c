/*
 * Decodes vhost-user messages into trace lines:
 *   DIR NAME flags=v1|NEED_REPLY size=N <payload fields> fds=N [reply_to=NAME latency=Nus]
 * Fields are space-separated key=value pairs (a memory region's in braces), no key twice on
 * a line, so two traces diff well once the time column is cut off. A payload whose size does not
 * fit its request is printed as raw hex: the trace shows what was on the wire, not what should have
 * been.
 */
#include "vhost_user_trace.h"

#include "../common/util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RAW_BYTES 32 /* payload bytes shown in hex for a malformed message or config data */

struct sbuf {
    char *p;
    size_t cap, len;
};

static void __attribute__((format(printf, 2, 3))) sb_add(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->len + 1 >= b->cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len = b->len + (size_t)n < b->cap ? b->len + (size_t)n : b->cap - 1;
}

/* --- bit names ------------------------------------------------------------------------ */

/* virtio-net device bits, the transport bits, and vhost's LOG_ALL and PROTOCOL_FEATURES. */
static const char *const feature_names[64] = {
    [0] = "CSUM",
    [1] = "GUEST_CSUM",
    [2] = "CTRL_GUEST_OFFLOADS",
    [3] = "MTU",
    [5] = "MAC",
    [6] = "GSO",
    [7] = "GUEST_TSO4",
    [8] = "GUEST_TSO6",
    [9] = "GUEST_ECN",
    [10] = "GUEST_UFO",
    [11] = "HOST_TSO4",
    [12] = "HOST_TSO6",
    [13] = "HOST_ECN",
    [14] = "HOST_UFO",
    [15] = "MRG_RXBUF",
    [16] = "STATUS",
    [17] = "CTRL_VQ",
    [18] = "CTRL_RX",
    [19] = "CTRL_VLAN",
    [20] = "CTRL_RX_EXTRA",
    [21] = "GUEST_ANNOUNCE",
    [22] = "MQ",
    [23] = "CTRL_MAC_ADDR",
    [24] = "NOTIFY_ON_EMPTY",
    [VHOST_USER_F_LOG_ALL] = "LOG_ALL",
    [27] = "ANY_LAYOUT",
    [28] = "INDIRECT_DESC",
    [29] = "EVENT_IDX",
    [VHOST_USER_F_PROTOCOL_FEATURES] = "PROTOCOL_FEATURES",
    [32] = "VERSION_1",
    [VHOST_USER_F_IOMMU_PLATFORM] = "IOMMU_PLATFORM",
    [34] = "RING_PACKED",
    [35] = "IN_ORDER",
    [36] = "ORDER_PLATFORM",
    [37] = "SR_IOV",
    [38] = "NOTIFICATION_DATA",
    [39] = "NOTIF_CONFIG_DATA",
    [40] = "RING_RESET",
    [41] = "ADMIN_VQ",
    [50] = "DEVICE_STATS",
    [52] = "VQ_NOTF_COAL",
    [53] = "NOTF_COAL",
    [54] = "GUEST_USO4",
    [55] = "GUEST_USO6",
    [56] = "HOST_USO",
    [57] = "HASH_REPORT",
    [59] = "GUEST_HDRLEN",
    [60] = "RSS",
    [61] = "RSC_EXT",
    [62] = "STANDBY",
    [63] = "SPEED_DUPLEX",
};

static const char *feature_name(unsigned bit)
{
    return feature_names[bit];
}

static const char *protocol_feature_name(unsigned bit)
{
    const char *name = vu_proto_name(bit);

    return strcmp(name, "UNKNOWN") ? name : NULL;
}

/* NAME|NAME|0xUNKNOWN, or 0 for no bits. */
static void add_bit_names(struct sbuf *b, uint64_t bits, const char *(*name)(unsigned))
{
    uint64_t unknown = 0;
    const char *sep = "";

    if (!bits) {
        sb_add(b, "0");
        return;
    }
    for (unsigned i = 0; i < 64; i++) {
        const char *n;

        if (!(bits & (1ULL << i)))
            continue;
        n = name(i);
        if (n) {
            sb_add(b, "%s%s", sep, n);
            sep = "|";
        } else {
            unknown |= 1ULL << i;
        }
    }
    if (unknown)
        sb_add(b, "%s0x%" PRIx64, sep, unknown);
}

/* 0x140008000(MRG_RXBUF|VERSION_1|PROTOCOL_FEATURES) */
static void add_features(struct sbuf *b, const char *key, uint64_t bits,
                         const char *(*name)(unsigned))
{
    sb_add(b, " %s=0x%" PRIx64 "(", key, bits);
    if (bits)
        add_bit_names(b, bits, name);
    sb_add(b, ")");
}

static const char *status_name(unsigned bit)
{
    static const char *const names[8] = {
        "ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK", NULL, NULL, "NEEDS_RESET", "FAILED",
    };

    return bit < 8 ? names[bit] : NULL;
}

static const char *header_flag_name(unsigned bit)
{
    if (bit == 2)
        return "REPLY";
    return bit == 3 ? "NEED_REPLY" : NULL;
}

/* v1|NEED_REPLY: the version field, then the flag bits. */
static void add_header_flags(struct sbuf *b, uint32_t flags)
{
    uint32_t rest = flags & ~VHOST_USER_VERSION_MASK;

    sb_add(b, " flags=v%u", flags & VHOST_USER_VERSION_MASK);
    if (rest) {
        sb_add(b, "|");
        add_bit_names(b, rest, header_flag_name);
    }
}

/* --- payloads ------------------------------------------------------------------------- */

static void add_raw(struct sbuf *b, const struct vu_msg *m)
{
    const uint8_t *p = (const uint8_t *)&m->payload;
    uint32_t n = m->hdr.size < RAW_BYTES ? m->hdr.size : RAW_BYTES;

    if (!m->hdr.size)
        return;
    sb_add(b, " raw=");
    for (uint32_t i = 0; i < n; i++)
        sb_add(b, "%02x", p[i]);
    if (m->hdr.size > n)
        sb_add(b, "...");
}

/* The index|NOFD u64 of SET_VRING_KICK/CALL/ERR and of the host-notifier area. */
static void add_vring_u64(struct sbuf *b, uint64_t v)
{
    uint64_t rest = v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD);

    sb_add(b, " index=%u", (unsigned)(v & VHOST_USER_VRING_IDX_MASK));
    if (v & VHOST_USER_VRING_NOFD)
        sb_add(b, " nofd");
    if (rest)
        sb_add(b, " bits=0x%" PRIx64, rest);
}

static void add_u64(struct sbuf *b, uint32_t request, uint64_t v)
{
    const uint8_t *mac = (const uint8_t *)&v;

    switch (request) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_SET_FEATURES:
        add_features(b, "features", v, feature_name);
        return;
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        add_features(b, "protocol_features", v, protocol_feature_name);
        return;
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        add_vring_u64(b, v);
        return;
    case VHOST_USER_GET_QUEUE_NUM:
        sb_add(b, " queues=%" PRIu64, v);
        return;
    case VHOST_USER_GET_MAX_MEM_SLOTS:
        sb_add(b, " slots=%" PRIu64, v);
        return;
    case VHOST_USER_NET_SET_MTU:
        sb_add(b, " mtu=%" PRIu64, v);
        return;
    case VHOST_USER_SEND_RARP: /* the MAC is the first 6 bytes of the payload */
        sb_add(b, " mac=%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
               mac[5]);
        return;
    case VHOST_USER_GET_STATUS:
    case VHOST_USER_SET_STATUS:
        add_features(b, "status", v, status_name);
        return;
    default:
        sb_add(b, " u64=0x%" PRIx64, v);
    }
}

/* A packed ring's base: bits 0-14 avail index, 15 its wrap counter, 16-30 used index, 31
 * its wrap counter (the spec's "vring descriptor indices for packed virtqueues"). */
static void add_packed_base(struct sbuf *b, uint32_t num)
{
    sb_add(b, " idx=%u wrap=%u used_idx=%u used_wrap=%u", num & 0x7fff, (num >> 15) & 1,
           (num >> 16) & 0x7fff, num >> 31);
}

static void add_state(struct sbuf *b, uint32_t request, bool reply, bool packed,
                      const struct vu_state *s)
{
    const char *key = "num";

    switch (request) {
    case VHOST_USER_GET_VRING_BASE:
        if (!reply) { /* the request's num is unused */
            sb_add(b, " index=%u", s->index);
            return;
        }
        /* fall through */
    case VHOST_USER_SET_VRING_BASE:
        sb_add(b, " index=%u base=%u", s->index, s->num);
        if (packed)
            add_packed_base(b, s->num);
        return;
    case VHOST_USER_SET_VRING_ENABLE:
        key = "enable";
        break;
    case VHOST_USER_SET_VRING_ENDIAN:
        key = "big_endian";
        break;
    }
    sb_add(b, " index=%u %s=%u", s->index, key, s->num);
}

/* In braces: its size is not the header's. */
static void add_region(struct sbuf *b, const struct vu_region *r)
{
    sb_add(b, " {gpa=0x%" PRIx64 " size=0x%" PRIx64 " uaddr=0x%" PRIx64 " offset=0x%" PRIx64 "}",
           r->guest_phys_addr, r->memory_size, r->userspace_addr, r->mmap_offset);
}

static const char *ring_flag_name(unsigned bit)
{
    return bit == 0 ? "LOG" : NULL;
}

static void add_addr(struct sbuf *b, const struct vu_addr *a)
{
    sb_add(b, " index=%u ring_flags=", a->index);
    add_bit_names(b, a->flags, ring_flag_name);
    sb_add(b, " desc=0x%" PRIx64 " used=0x%" PRIx64 " avail=0x%" PRIx64 " log=0x%" PRIx64, a->desc,
           a->used, a->avail, a->log);
}

static void add_iotlb(struct sbuf *b, const struct vu_iotlb *t)
{
    static const char *const perms[] = {"NONE", "RO", "WO", "RW"};
    static const char *const types[] = {NULL, "MISS", "UPDATE", "INVALIDATE", "ACCESS_FAIL"};

    sb_add(b, " iova=0x%" PRIx64 " len=0x%" PRIx64 " uaddr=0x%" PRIx64, t->iova, t->size, t->uaddr);
    if (t->perm < ARRAY_SIZE(perms))
        sb_add(b, " perm=%s", perms[t->perm]);
    else
        sb_add(b, " perm=%u", t->perm);
    if (t->type < ARRAY_SIZE(types) && types[t->type])
        sb_add(b, " type=%s", types[t->type]);
    else
        sb_add(b, " type=%u", t->type);
}

static void add_config(struct sbuf *b, const struct vu_config *c)
{
    uint32_t n = c->size < RAW_BYTES ? c->size : RAW_BYTES;

    sb_add(b, " offset=%u len=%u config_flags=0x%x", c->offset, c->size, c->flags);
    if (!c->size)
        return;
    sb_add(b, " data=");
    for (uint32_t i = 0; i < n; i++)
        sb_add(b, "%02x", c->region[i]);
    if (c->size > n)
        sb_add(b, "...");
}

static void add_memory(struct sbuf *b, const struct vu_memory *m)
{
    sb_add(b, " nregions=%u", m->nregions);
    for (uint32_t i = 0; i < m->nregions; i++)
        add_region(b, &m->regions[i]);
}

static void add_area(struct sbuf *b, const struct vu_area *a)
{
    add_vring_u64(b, a->u64);
    sb_add(b, " len=0x%" PRIx64 " offset=0x%" PRIx64, a->size, a->offset);
}

/* The payload fields, by the layout the message has; raw hex when its size does not fit. */
static void add_payload(struct sbuf *b, enum vu_layout l, uint32_t request, bool reply, bool packed,
                        const struct vu_msg *m)
{
    const union vu_payload *p = &m->payload;
    uint32_t size;

    if (m->hdr.size > VU_MAX_PAYLOAD || !vu_layout_size(l, m, &size) || size != m->hdr.size) {
        add_raw(b, m);
        return;
    }
    switch (l) {
    case VU_L_U64:
        add_u64(b, request, p->u64);
        break;
    case VU_L_STATE:
        add_state(b, request, reply, packed, &p->state);
        break;
    case VU_L_ADDR:
        add_addr(b, &p->addr);
        break;
    case VU_L_MEMORY:
        add_memory(b, &p->memory);
        break;
    case VU_L_MEM_REG:
        add_region(b, &p->mem_reg.region);
        break;
    case VU_L_LOG:
        sb_add(b, " mmap_size=0x%" PRIx64 " mmap_offset=0x%" PRIx64, p->log.mmap_size,
               p->log.mmap_offset);
        break;
    case VU_L_IOTLB:
        add_iotlb(b, &p->iotlb);
        break;
    case VU_L_CONFIG:
        add_config(b, &p->config);
        break;
    case VU_L_AREA:
        add_area(b, &p->area);
        break;
    default:
        break;
    }
}

/* --- lines ---------------------------------------------------------------------------- */

static const struct vu_req_info *info(const struct vu_trace_msg *t, uint32_t request)
{
    return t->backend_channel ? vu_backend_req_info(request) : vu_req_info(request);
}

static void add_name(struct sbuf *b, const struct vu_trace_msg *t, uint32_t request)
{
    const struct vu_req_info *ri = info(t, request);

    if (ri)
        sb_add(b, "%s", ri->name);
    else
        sb_add(b, "UNKNOWN_%u", request);
}

/* What a reply carries depends on the request it answers, not on what it claims to be. */
static enum vu_layout reply_layout(const struct vu_trace_msg *t, const struct vu_req_info *ri)
{
    uint32_t size = t->msg->hdr.size;

    if (t->ack || t->backend_channel || !ri)
        return VU_L_U64;
    switch (ri->reply) {
    case VU_R_STATE:
        return VU_L_STATE;
    case VU_R_LOG:
        return size == 16 ? VU_L_LOG : size == 8 ? VU_L_U64 : VU_L_NONE;
    case VU_R_CONFIG:
        return size ? VU_L_CONFIG : VU_L_NONE;
    default:
        return VU_L_U64;
    }
}

static void add_body(struct sbuf *b, const struct vu_trace_msg *t)
{
    const struct vu_msg *m = t->msg;
    const struct vu_req_info *ri;

    if (!t->req) {
        ri = info(t, m->hdr.request);
        add_payload(b, ri ? ri->layout : VU_L_NONE, m->hdr.request, false, t->packed, m);
        return;
    }
    ri = info(t, t->req->hdr.request);
    if (t->ack && m->hdr.size == sizeof(uint64_t))
        sb_add(b, " ack=%" PRIu64, m->payload.u64);
    else
        add_payload(b, reply_layout(t, ri), t->req->hdr.request, true, t->packed, m);
}

void vu_trace_format(char *buf, size_t cap, const struct vu_trace_msg *t)
{
    struct sbuf b = {.p = buf, .cap = cap};
    const struct vu_msg *m = t->msg;

    if (!cap)
        return;
    buf[0] = 0;
    sb_add(&b, "%s ", t->outgoing ? "->" : "<-");
    add_name(&b, t, m->hdr.request);
    add_header_flags(&b, m->hdr.flags);
    sb_add(&b, " size=%u", m->hdr.size);
    add_body(&b, t);
    sb_add(&b, " fds=%u", t->nfds);
    if (t->req) {
        sb_add(&b, " reply_to=");
        add_name(&b, t, t->req->hdr.request);
        sb_add(&b, " latency=%" PRId64 "us", t->latency_us);
    }
}

void vu_trace(const struct vhost_user_conn *c, const struct vu_trace_msg *t, int64_t time_us)
{
    struct vu_trace_msg with_ring = *t;
    char line[1024];

    if (!c->trace)
        return;
    with_ring.packed = c->acked_features & (1ULL << VHOST_USER_F_RING_PACKED);
    vu_trace_format(line, sizeof(line), &with_ring);
    c->trace(c->trace_opaque, time_us, line);
}
