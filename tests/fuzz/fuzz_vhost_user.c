/*
 * Fuzz target: what a vhost-user back-end sends. The harness plays the back-end on two
 * socketpairs (the vhost-user socket and the backend-request channel): it writes the
 * input's byte stream, in chunks with fds attached, then shuts its ends for writing so
 * a short stream ends in EOF rather than a wait. The library then runs a sequence of
 * requests (each reading its reply from that stream) and backend-request handling.
 * Oracles: the sanitizers; fds handed to callbacks are open; success results keep the
 * API's promises; a broken connection, or a request refused for a feature that was not
 * negotiated, sends nothing; no fd leaks.
 *
 * Input: flags byte, op count byte, op bytes, then chunks of
 * [u16 length][u8 control: bit 7 backend channel, bits 4-5 fd kind, bits 0-3 fd count][bytes].
 */
#include "../../vhost/vhost_user.h"

#include "../support/vu_wire.h"
#include "fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define F_REPLY_ACK 0x01   /* REPLY_ACK negotiated */
#define F_SEND_FD 0x02     /* BACKEND_SEND_FD negotiated */
#define F_IOMMU 0x04       /* VIRTIO_F_IOMMU_PLATFORM acked (gates IOTLB messages) */
#define F_TRACE 0x08       /* a trace callback: exercises the message decode */
#define F_CB_FAIL 0x10     /* the back-end request callbacks fail */
#define F_NO_CB 0x20       /* no callbacks: every back-end request is refused */
#define F_NO_PROTOCOL 0x40 /* the back-end did not offer VHOST_USER_F_PROTOCOL_FEATURES */

#define MAX_OPS 8
#define CHUNK_MAX 1023

static int null_fd = -1; /* what the front-end sends as region, log and ring fds */

static int on_config_change(void *opaque)
{
    const uint8_t *flags = opaque;

    return (*flags & F_CB_FAIL) ? -EIO : 0;
}

static int on_host_notifier(void *opaque, unsigned index, uint64_t size, uint64_t offset, int fd)
{
    const uint8_t *flags = opaque;

    (void)size, (void)offset;
    if (index > 0xff)
        fuzz_fail("host notifier for ring %u: the index has 8 bits", index);
    if (fd >= 0 && fcntl(fd, F_GETFD) < 0)
        fuzz_fail("host notifier fd %d is not open", fd);
    return (*flags & F_CB_FAIL) ? -EIO : 0;
}

static int on_iotlb(void *opaque, const struct vhost_user_iotlb *msg)
{
    const uint8_t *flags = opaque;

    (void)msg;
    return (*flags & F_CB_FAIL) ? -EIO : 0;
}

static const struct vhost_user_backend_ops backend_ops = {
    .config_change = on_config_change,
    .vring_host_notifier = on_host_notifier,
    .iotlb_msg = on_iotlb,
};

static const struct vhost_user_backend_ops no_ops;

static void on_trace(void *opaque, int64_t time_us, const char *line)
{
    size_t *total = opaque;

    (void)time_us;
    *total += strlen(line);
    pr_debug("trace: %s", line);
}

/* An fd of the kind the control byte asks for, or -1. */
static int make_fd(unsigned kind)
{
    switch (kind) {
    case 1:
        return eventfd(0, EFD_CLOEXEC);
    case 2:
        return memfd_create("fuzz", MFD_CLOEXEC);
    default:
        return open("/dev/null", O_RDWR | O_CLOEXEC);
    }
}

/* Sends one chunk with nfds fresh fds attached; false when the socket takes no more. */
static bool send_chunk(int sock, const uint8_t *data, size_t len, unsigned nfds, unsigned kind)
{
    int fds[15];
    unsigned n = 0;
    bool sent;

    for (; n < nfds; n++) {
        fds[n] = make_fd(kind);
        if (fds[n] < 0)
            break;
    }
    sent = vu_wire_send_bytes(sock, data, len, fds, (int)n) == 0;
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    return sent;
}

/* Writes the chunks of the stream to the two back-end sockets. */
static void write_stream(const uint8_t *p, size_t left, int be, int bk)
{
    while (left >= 3) {
        size_t len = (size_t)(p[0] | p[1] << 8) & CHUNK_MAX;
        uint8_t ctl = p[2];

        p += 3, left -= 3;
        if (len > left)
            len = left;
        if (!send_chunk((ctl & 0x80) ? bk : be, p, len, ctl & 0x0f, (ctl >> 4) & 3))
            return;
        p += len, left -= len;
    }
}

static void conn_state(struct vhost_user_conn *c, uint8_t flags)
{
    uint64_t proto = VHOST_USER_PROTOCOL_SUPPORTED;

    if (!(flags & F_REPLY_ACK))
        proto &= ~(1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    if (!(flags & F_SEND_FD))
        proto &= ~(1ULL << VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD);
    c->features = ~0ULL;
    if (flags & F_NO_PROTOCOL)
        c->features &= ~(1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
    c->acked_features = (flags & F_IOMMU) ? 1ULL << VHOST_USER_F_IOMMU_PLATFORM : 0;
    c->backend_protocol_features = proto;
    c->protocol_features = proto;
    c->max_queues = 2;
    c->timeout_ms = 2000; /* never reached: the stream ends in EOF */
}

static void region(struct vhost_user_mem_region *r, uint64_t gpa)
{
    *r = (struct vhost_user_mem_region){
        .guest_phys_addr = gpa,
        .memory_size = 0x100000,
        .userspace_addr = 0x7f0000000000ULL + gpa,
        .fd = null_fd,
    };
}

/* Requests with a reply of their own: what a success promises is checked. */
static int op_get(struct vhost_user_conn *c, unsigned op)
{
    uint64_t v = 0;
    unsigned base;
    uint8_t status, cfg[12];
    int r = 0;

    switch (op) {
    case 0:
        return vhost_user_get_features(c, &v);
    case 1:
        return vhost_user_get_protocol_features(c, &v);
    case 2:
        return vhost_user_get_vring_base(c, 1, &base);
    case 3:
        r = vhost_user_get_queue_num(c, &v);
        if (r == 0 && (v == 0 || c->max_queues != v))
            fuzz_fail("GET_QUEUE_NUM succeeded with %llu queues", (unsigned long long)v);
        return r;
    case 4:
        return vhost_user_get_config(c, 0, cfg, sizeof(cfg), 0);
    case 5:
        return vhost_user_get_status(c, &status);
    case 6:
        return vhost_user_get_max_mem_slots(c, &v);
    default:
        r = vhost_user_negotiate(c, VHOST_USER_PROTOCOL_SUPPORTED);
        if (c->protocol_features & ~c->backend_protocol_features)
            fuzz_fail("negotiated protocol features the back-end did not offer");
        return r;
    }
}

static int op_set_rings(struct vhost_user_conn *c, unsigned op)
{
    struct vhost_user_vring_addr addr = {.index = 1, .desc_user_addr = 0x1000};

    switch (op) {
    case 0:
        return vhost_user_set_vring_num(c, 0, 256);
    case 1:
        return vhost_user_set_vring_addr(c, &addr);
    case 2:
        return vhost_user_set_vring_base(c, 0, 0);
    case 3:
        return vhost_user_set_vring_kick(c, 0, null_fd);
    case 4:
        return vhost_user_set_vring_call(c, 1, -1);
    case 5:
        return vhost_user_set_vring_err(c, 0, null_fd);
    case 6:
        return vhost_user_set_vring_enable(c, 1, true);
    default:
        return vhost_user_set_vring_endian(c, 0, false);
    }
}

static int op_set(struct vhost_user_conn *c, unsigned op)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    struct vhost_user_mem_region regions[2];
    struct vhost_user_iotlb iotlb = {.iova = 0x1000, .size = 0x1000, .perm = 3, .type = 2};
    uint8_t cfg[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    region(&regions[0], 0);
    region(&regions[1], 0x100000000ULL);
    switch (op) {
    case 0:
        return vhost_user_set_features(c, c->features);
    case 1:
        return vhost_user_set_protocol_features(c, c->backend_protocol_features);
    case 2:
        return vhost_user_set_owner(c);
    case 3:
        return vhost_user_set_mem_table(c, regions, 2);
    case 4:
        return vhost_user_set_log_base(c, null_fd, 0x1000, 0);
    case 5:
        return vhost_user_set_log_fd(c, null_fd);
    case 6:
        return vhost_user_send_rarp(c, mac);
    case 7:
        return vhost_user_net_set_mtu(c, 1500);
    case 8:
        return vhost_user_set_backend_req_fd(c, null_fd);
    case 9:
        return vhost_user_iotlb_msg(c, &iotlb);
    case 10:
        return vhost_user_set_config(c, 0, cfg, sizeof(cfg), 0);
    case 11:
        return vhost_user_set_status(c, 0x0f);
    case 12:
        return vhost_user_reset_device(c);
    case 13:
        return vhost_user_add_mem_reg(c, &regions[1]);
    case 14:
        return vhost_user_rem_mem_reg(c, &regions[1]);
    default:
        return vhost_user_reset_owner(c);
    }
}

/* Bytes the front-end sent that the back-end has not read: the harness never reads. */
static int unread(int sock)
{
    int n = 0;

    if (ioctl(sock, FIONREAD, &n) < 0)
        fuzz_fail("FIONREAD: %s", strerror(errno));
    return n;
}

/* One op: a quarter of the op space handles back-end requests, the rest sends a request.
 * A request on a broken connection, or one refused for a feature not negotiated, must
 * not reach the socket. */
static void run_op(struct vhost_user_conn *c, int be, uint8_t op, uint8_t *flags)
{
    const struct vhost_user_backend_ops *ops = (*flags & F_NO_CB) ? &no_ops : &backend_ops;
    bool was_broken = c->broken, negotiate = op % 4 == 1 && (op >> 2) % 8 == 7;
    int sent = unread(be), r;

    switch (op % 4) {
    case 0:
        r = vhost_user_backend_req_handle(c, ops, flags);
        if (r == 0 && was_broken)
            fuzz_fail("a back-end request was handled on a broken connection");
        return;
    case 1:
        r = op_get(c, (op >> 2) % 8);
        break;
    case 2:
        r = op_set_rings(c, (op >> 2) % 8);
        break;
    default:
        r = op_set(c, (op >> 2) % 16);
        break;
    }
    if (was_broken && r != -EPIPE && r != -ENOTSUP && r != -EINVAL)
        fuzz_fail("op 0x%02x on a broken connection returned %d, not -EPIPE", op, r);
    if ((was_broken || (r == -ENOTSUP && !negotiate)) && unread(be) != sent)
        fuzz_fail("op 0x%02x (%d) sent %d bytes on a %s connection", op, r, unread(be) - sent,
                  was_broken ? "broken" : "refusing");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vhost_user_conn c;
    int sv[2], bv[2], fds_before;
    size_t traced = 0;
    uint8_t flags, ops[MAX_OPS];
    unsigned nops;

    if (size < 2)
        return 0;
    if (null_fd < 0) {
        fuzz_log_level();
        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
            fuzz_fail("cannot open /dev/null");
    }
    flags = data[0];
    nops = 1 + data[1] % MAX_OPS;
    if (size < 2 + nops)
        return 0;
    memcpy(ops, data + 2, nops);
    fds_before = fuzz_count_fds();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bv))
        fuzz_fail("socketpair: %s", strerror(errno));
    vhost_user_conn_init(&c, sv[0]);
    c.backend_fd = bv[0];
    conn_state(&c, flags);
    if (flags & F_TRACE) {
        c.trace = on_trace;
        c.trace_opaque = &traced;
    }
    write_stream(data + 2 + nops, size - 2 - nops, sv[1], bv[1]);
    shutdown(sv[1], SHUT_WR);
    shutdown(bv[1], SHUT_WR);
    for (unsigned i = 0; i < nops; i++)
        run_op(&c, sv[1], ops[i], &flags);
    vhost_user_conn_close(&c);
    close(sv[1]);
    close(bv[1]);
    fuzz_check_fds(fds_before);
    return 0;
}
