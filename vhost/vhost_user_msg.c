/*
 * The single path every vhost-user message takes: request table, sendmsg/recvmsg with
 * SCM_RIGHTS, bounded waits, reply validation and the trace. Nothing the back-end sends
 * is trusted; anything malformed marks the connection broken.
 */
#include "vhost_user_msg.h"
#include "vhost_user_trace.h"

#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define P(bit) VU_G_PROTO, VHOST_USER_PROTOCOL_F_##bit

/* name, request payload, fds, reply, gate, sync */
static const struct vu_req_info req_table[] = {
    [VHOST_USER_GET_FEATURES] = {"GET_FEATURES", VU_L_NONE, VU_FD_NONE, VU_R_U64, VU_G_NONE, 0,
                                 VU_S_NONE},
    [VHOST_USER_SET_FEATURES] = {"SET_FEATURES", VU_L_U64, VU_FD_NONE, VU_R_NONE, VU_G_NONE, 0,
                                 VU_S_LOG_ALL},
    [VHOST_USER_SET_OWNER] = {"SET_OWNER", VU_L_NONE, VU_FD_NONE, VU_R_NONE, VU_G_NONE, 0,
                              VU_S_NONE},
    [VHOST_USER_RESET_OWNER] = {"RESET_OWNER", VU_L_NONE, VU_FD_NONE, VU_R_NONE, VU_G_NONE, 0,
                                VU_S_NONE},
    [VHOST_USER_SET_MEM_TABLE] = {"SET_MEM_TABLE", VU_L_MEMORY, VU_FD_REGIONS, VU_R_NONE, VU_G_NONE,
                                  0, VU_S_NONE},
    [VHOST_USER_SET_LOG_BASE] = {"SET_LOG_BASE", VU_L_LOG, VU_FD_ONE, VU_R_LOG, P(LOG_SHMFD),
                                 VU_S_NONE},
    [VHOST_USER_SET_LOG_FD] = {"SET_LOG_FD", VU_L_NONE, VU_FD_ONE, VU_R_NONE, VU_G_NONE, 0,
                               VU_S_NONE},
    [VHOST_USER_SET_VRING_NUM] = {"SET_VRING_NUM", VU_L_STATE, VU_FD_NONE, VU_R_NONE, VU_G_NONE, 0,
                                  VU_S_NONE},
    [VHOST_USER_SET_VRING_ADDR] = {"SET_VRING_ADDR", VU_L_ADDR, VU_FD_NONE, VU_R_NONE, VU_G_NONE, 0,
                                   VU_S_VRING_LOG},
    [VHOST_USER_SET_VRING_BASE] = {"SET_VRING_BASE", VU_L_STATE, VU_FD_NONE, VU_R_NONE, VU_G_NONE,
                                   0, VU_S_NONE},
    [VHOST_USER_GET_VRING_BASE] = {"GET_VRING_BASE", VU_L_STATE, VU_FD_NONE, VU_R_STATE, VU_G_NONE,
                                   0, VU_S_NONE},
    [VHOST_USER_SET_VRING_KICK] = {"SET_VRING_KICK", VU_L_U64, VU_FD_VRING, VU_R_NONE, VU_G_NONE, 0,
                                   VU_S_NONE},
    [VHOST_USER_SET_VRING_CALL] = {"SET_VRING_CALL", VU_L_U64, VU_FD_VRING, VU_R_NONE, VU_G_NONE, 0,
                                   VU_S_NONE},
    [VHOST_USER_SET_VRING_ERR] = {"SET_VRING_ERR", VU_L_U64, VU_FD_VRING, VU_R_NONE, VU_G_NONE, 0,
                                  VU_S_NONE},
    [VHOST_USER_GET_PROTOCOL_FEATURES] = {"GET_PROTOCOL_FEATURES", VU_L_NONE, VU_FD_NONE, VU_R_U64,
                                          VU_G_F_PROTOCOL, 0, VU_S_NONE},
    [VHOST_USER_SET_PROTOCOL_FEATURES] = {"SET_PROTOCOL_FEATURES", VU_L_U64, VU_FD_NONE,
                                          VU_R_NONE_NOACK, VU_G_F_PROTOCOL, 0, VU_S_NONE},
    [VHOST_USER_GET_QUEUE_NUM] = {"GET_QUEUE_NUM", VU_L_NONE, VU_FD_NONE, VU_R_U64, P(MQ),
                                  VU_S_NONE},
    [VHOST_USER_SET_VRING_ENABLE] = {"SET_VRING_ENABLE", VU_L_STATE, VU_FD_NONE, VU_R_NONE,
                                     VU_G_F_PROTOCOL, 0, VU_S_ALWAYS},
    [VHOST_USER_SEND_RARP] = {"SEND_RARP", VU_L_U64, VU_FD_NONE, VU_R_NONE, P(RARP), VU_S_NONE},
    [VHOST_USER_NET_SET_MTU] = {"NET_SET_MTU", VU_L_U64, VU_FD_NONE, VU_R_NONE, P(MTU), VU_S_NONE},
    [VHOST_USER_SET_BACKEND_REQ_FD] = {"SET_BACKEND_REQ_FD", VU_L_NONE, VU_FD_ONE, VU_R_NONE,
                                       P(BACKEND_REQ), VU_S_NONE},
    [VHOST_USER_IOTLB_MSG] = {"IOTLB_MSG", VU_L_IOTLB, VU_FD_NONE, VU_R_ACK, VU_G_IOMMU, 0,
                              VU_S_NONE},
    [VHOST_USER_SET_VRING_ENDIAN] = {"SET_VRING_ENDIAN", VU_L_STATE, VU_FD_NONE, VU_R_NONE,
                                     P(CROSS_ENDIAN), VU_S_NONE},
    [VHOST_USER_GET_CONFIG] = {"GET_CONFIG", VU_L_CONFIG, VU_FD_NONE, VU_R_CONFIG, P(CONFIG),
                               VU_S_NONE},
    [VHOST_USER_SET_CONFIG] = {"SET_CONFIG", VU_L_CONFIG, VU_FD_NONE, VU_R_NONE, P(CONFIG),
                               VU_S_NONE},
    [VHOST_USER_RESET_DEVICE] = {"RESET_DEVICE", VU_L_NONE, VU_FD_NONE, VU_R_NONE, P(RESET_DEVICE),
                                 VU_S_NONE},
    [VHOST_USER_GET_MAX_MEM_SLOTS] = {"GET_MAX_MEM_SLOTS", VU_L_NONE, VU_FD_NONE, VU_R_U64,
                                      P(CONFIGURE_MEM_SLOTS), VU_S_NONE},
    [VHOST_USER_ADD_MEM_REG] = {"ADD_MEM_REG", VU_L_MEM_REG, VU_FD_ONE, VU_R_NONE,
                                P(CONFIGURE_MEM_SLOTS), VU_S_NONE},
    [VHOST_USER_REM_MEM_REG] = {"REM_MEM_REG", VU_L_MEM_REG, VU_FD_NONE, VU_R_NONE,
                                P(CONFIGURE_MEM_SLOTS), VU_S_NONE},
    [VHOST_USER_SET_STATUS] = {"SET_STATUS", VU_L_U64, VU_FD_NONE, VU_R_NONE, P(STATUS), VU_S_NONE},
    [VHOST_USER_GET_STATUS] = {"GET_STATUS", VU_L_NONE, VU_FD_NONE, VU_R_U64, P(STATUS), VU_S_NONE},
};

static const struct vu_req_info backend_table[] = {
    [VHOST_USER_BACKEND_IOTLB_MSG] = {"BACKEND_IOTLB_MSG", VU_L_IOTLB, VU_FD_NONE, VU_R_NONE,
                                      VU_G_IOMMU, 0, VU_S_NONE},
    [VHOST_USER_BACKEND_CONFIG_CHANGE_MSG] = {"BACKEND_CONFIG_CHANGE_MSG", VU_L_NONE, VU_FD_NONE,
                                              VU_R_NONE, P(CONFIG), VU_S_NONE},
    [VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG] = {"BACKEND_VRING_HOST_NOTIFIER_MSG", VU_L_AREA,
                                                    VU_FD_VRING, VU_R_NONE, P(HOST_NOTIFIER),
                                                    VU_S_NONE},
};

static const char *const proto_names[] = {
    "MQ",
    "LOG_SHMFD",
    "RARP",
    "REPLY_ACK",
    "MTU",
    "BACKEND_REQ",
    "CROSS_ENDIAN",
    "CRYPTO_SESSION",
    "PAGEFAULT",
    "CONFIG",
    "BACKEND_SEND_FD",
    "HOST_NOTIFIER",
    "INFLIGHT_SHMFD",
    "RESET_DEVICE",
    "INBAND_NOTIFICATIONS",
    "CONFIGURE_MEM_SLOTS",
    "STATUS",
    "XEN_MMAP",
    "SHARED_OBJECT",
    "DEVICE_STATE",
};

const struct vu_req_info *vu_req_info(uint32_t request)
{
    if (request >= ARRAY_SIZE(req_table) || !req_table[request].name)
        return NULL;
    return &req_table[request];
}

const struct vu_req_info *vu_backend_req_info(uint32_t request)
{
    if (request >= ARRAY_SIZE(backend_table) || !backend_table[request].name)
        return NULL;
    return &backend_table[request];
}

const char *vhost_user_request_name(uint32_t request)
{
    const struct vu_req_info *ri = vu_req_info(request);

    return ri ? ri->name : "UNKNOWN";
}

const char *vu_proto_name(unsigned bit)
{
    return bit < ARRAY_SIZE(proto_names) ? proto_names[bit] : "UNKNOWN";
}

void vhost_user_say(const struct vhost_user_conn *c, enum vhost_user_level level, const char *fmt,
                    ...)
{
    struct vhost_user_held *h = c ? c->held : NULL;
    const char *id = c && c->id ? c->id : NULL;
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (h && h->on) {
        if (!h->count++) /* cut to fit: it goes into a longer line */
            snprintf(h->first, sizeof(h->first), "%.*s", (int)sizeof(h->first) - 1, line);
        pr_debug("%s%s(held) %s", id ? id : "", id ? ": " : "", line);
        return;
    }
    if (level == VHOST_USER_ERR)
        pr_err("%s%s%s", id ? id : "", id ? ": " : "", line);
    else
        pr_warn("%s%s%s", id ? id : "", id ? ": " : "", line);
}

void vhost_user_hold(struct vhost_user_conn *c, bool on)
{
    if (!c->held)
        return;
    if (on) {
        c->held->first[0] = '\0';
        c->held->count = 0;
    }
    c->held->on = on;
}

int64_t vu_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t vu_now_ms(void)
{
    return vu_now_us() / 1000;
}

int vu_wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - vu_now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int r;

        if (left <= 0)
            return -ETIMEDOUT;
        r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0)
            return (p.revents & POLLNVAL) ? -EBADF : 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

void vu_close_fds(int *fds, unsigned nfds)
{
    for (unsigned i = 0; i < nfds; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

void vu_break(struct vhost_user_conn *c)
{
    /* Shut the socket so the back-end sees the end now, not at close(). */
    if (!c->broken && c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    c->broken = true;
}

int vu_check_gate(const struct vhost_user_conn *c, const struct vu_req_info *ri)
{
    switch (ri->gate) {
    case VU_G_F_PROTOCOL:
        if (c->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))
            return 0;
        vu_warn(c,
                "vhost-user: %s needs VHOST_USER_F_PROTOCOL_FEATURES, not offered by the back-end",
                ri->name);
        return -ENOTSUP;
    case VU_G_PROTO:
        if (c->protocol_features & (1ULL << ri->proto_bit))
            return 0;
        vu_warn(c, "vhost-user: %s needs protocol feature %s, which was not negotiated", ri->name,
                vu_proto_name(ri->proto_bit));
        return -ENOTSUP;
    case VU_G_IOMMU:
        if (c->acked_features & (1ULL << VHOST_USER_F_IOMMU_PLATFORM))
            return 0;
        vu_warn(c, "vhost-user: %s needs VIRTIO_F_IOMMU_PLATFORM, which was not acked", ri->name);
        return -ENOTSUP;
    default:
        return 0;
    }
}

bool vu_layout_size(enum vu_layout l, const struct vu_msg *m, uint32_t *size)
{
    static const uint8_t fixed[] = {
        [VU_L_NONE] = 0,     [VU_L_U64] = 8,  [VU_L_STATE] = 8,  [VU_L_ADDR] = 40,
        [VU_L_MEM_REG] = 40, [VU_L_LOG] = 16, [VU_L_IOTLB] = 32, [VU_L_AREA] = 24,
    };

    switch (l) {
    case VU_L_MEMORY:
        *size = 8;
        if (m->hdr.size < 8 || m->payload.memory.nregions > VHOST_USER_MAX_REGIONS)
            return false;
        *size += m->payload.memory.nregions * (uint32_t)sizeof(struct vu_region);
        return true;
    case VU_L_CONFIG:
        *size = VU_CONFIG_HDR_SIZE;
        if (m->hdr.size < VU_CONFIG_HDR_SIZE || m->payload.config.size > VHOST_USER_MAX_CONFIG_SIZE)
            return false;
        *size += m->payload.config.size;
        return true;
    default:
        *size = fixed[l];
        return true;
    }
}

static unsigned expected_fds(const struct vu_req_info *ri, const struct vu_msg *m)
{
    switch (ri->fds) {
    case VU_FD_ONE:
        return 1;
    case VU_FD_VRING:
        /* The kick/call/err u64 and the host-notifier area both start with index|NOFD. */
        return (m->payload.u64 & VHOST_USER_VRING_NOFD) ? 0 : 1;
    case VU_FD_REGIONS:
        return m->payload.memory.nregions;
    default:
        return 0;
    }
}

/* --- socket I/O ----------------------------------------------------------------------- */

union cmsg_space {
    char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
    struct cmsghdr align;
};

static void attach_fds(struct msghdr *mh, union cmsg_space *ctl, const int *fds, unsigned nfds)
{
    struct cmsghdr *cm;

    memset(ctl, 0, sizeof(*ctl));
    mh->msg_control = ctl->buf;
    mh->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cm = CMSG_FIRSTHDR(mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
}

/* Writes all of buf; the fds go with the first byte. */
static int send_all(int sock, const void *buf, size_t len, const int *fds, unsigned nfds,
                    int64_t deadline)
{
    union cmsg_space ctl;
    size_t done = 0;

    while (done < len) {
        struct iovec iov = {.iov_base = (char *)buf + done, .iov_len = len - done};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;
        int r;

        if (done == 0 && nfds)
            attach_fds(&mh, &ctl, fds, nfds);
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        r = vu_wait_fd(sock, POLLOUT, deadline);
        if (r)
            return r;
    }
    return 0;
}

/* Appends received fds; returns false if there were too many or some were truncated. */
static bool take_fds(struct msghdr *mh, int *fds, unsigned *nfds)
{
    bool ok = !(mh->msg_flags & MSG_CTRUNC);

    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        size_t n;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
            if (*nfds < VHOST_USER_MAX_FDS) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
                ok = false;
            }
        }
    }
    return ok;
}

/* Reads exactly len bytes into buf, advancing *got; collects any fds that arrive. */
static int recv_exact(int sock, void *buf, size_t len, size_t *got, int *fds, unsigned *nfds,
                      int64_t deadline)
{
    while (*got < len) {
        union cmsg_space ctl;
        struct iovec iov = {.iov_base = (char *)buf + *got, .iov_len = len - *got};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof(ctl)};
        ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        int r;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECONNRESET)
                return -ECONNRESET;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            r = vu_wait_fd(sock, POLLIN, deadline);
            if (r)
                return r;
            continue;
        }
        if (!take_fds(&mh, fds, nfds))
            return -E2BIG;
        if (n == 0)
            return -ECONNRESET;
        *got += (size_t)n;
    }
    return 0;
}

static void log_recv_error(const struct vhost_user_conn *c, const char *what, int err, size_t got,
                           size_t want)
{
    if (err == -ETIMEDOUT && got == 0)
        vu_err(c, "vhost-user: no %s within %u ms", what, c->timeout_ms);
    else if (err == -ETIMEDOUT)
        vu_err(c, "vhost-user: %s stalled after %zu of %zu bytes (%u ms)", what, got, want,
               c->timeout_ms);
    else if (err == -ECONNRESET && got == 0)
        vu_err(c, "vhost-user: back-end closed the connection instead of sending %s", what);
    else if (err == -ECONNRESET)
        vu_err(c,
               "vhost-user: back-end closed the connection in the middle of %s (%zu of %zu "
               "bytes)",
               what, got, want);
    else if (err == -E2BIG)
        vu_err(c, "vhost-user: %s carries more than %d fds", what, VHOST_USER_MAX_FDS);
    else
        vu_err(c, "vhost-user: cannot read %s: %s", what, strerror(-err));
}

/* One message: the header, then exactly the announced payload. Closes fds on error. */
static int recv_msg(struct vhost_user_conn *c, int sock, const char *what, struct vu_msg *m,
                    int *fds, unsigned *nfds)
{
    int64_t deadline = vu_now_ms() + c->timeout_ms;
    size_t got = 0, want = sizeof(m->hdr);
    int r;

    *nfds = 0;
    r = recv_exact(sock, &m->hdr, sizeof(m->hdr), &got, fds, nfds, deadline);
    if (!r && m->hdr.size > VU_MAX_PAYLOAD) {
        vu_err(c, "vhost-user: %s has size %u, more than the maximum %zu", what, m->hdr.size,
               VU_MAX_PAYLOAD);
        vu_close_fds(fds, *nfds);
        *nfds = 0;
        return -EPROTO;
    }
    if (!r) {
        want += m->hdr.size;
        got = 0;
        r = recv_exact(sock, &m->payload, m->hdr.size, &got, fds, nfds, deadline);
        got += sizeof(m->hdr);
    }
    if (r) {
        log_recv_error(c, what, r, got, want);
        vu_close_fds(fds, *nfds);
        *nfds = 0;
        return r == -E2BIG ? -EPROTO : r;
    }
    return 0;
}

/* --- request/reply -------------------------------------------------------------------- */

static bool has_reply(const struct vu_req_info *ri)
{
    return ri->reply != VU_R_NONE && ri->reply != VU_R_NONE_NOACK;
}

static bool needs_sync(const struct vu_req_info *ri, const struct vu_msg *m)
{
    switch (ri->sync) {
    case VU_S_ALWAYS:
        return true;
    case VU_S_LOG_ALL:
        return m->payload.u64 & (1ULL << VHOST_USER_F_LOG_ALL);
    case VU_S_VRING_LOG:
        return m->payload.addr.flags & VHOST_USER_VRING_F_LOG;
    default:
        return false;
    }
}

static bool wants_ack(const struct vhost_user_conn *c, const struct vu_req_info *ri)
{
    if (ri->reply == VU_R_ACK)
        return true;
    return ri->reply == VU_R_NONE &&
           (c->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK));
}

/* Our own request must match the table: a mismatch is a bug here, not the back-end's. */
static int check_request(const struct vhost_user_conn *c, const struct vu_req_info *ri,
                         const struct vu_msg *m, const int *fds, unsigned nfds)
{
    uint32_t size;

    if (!vu_layout_size(ri->layout, m, &size) || size != m->hdr.size) {
        vu_err(c, "vhost-user: %s request has size %u, expected %u", ri->name, m->hdr.size, size);
        return -EINVAL;
    }
    if (nfds != expected_fds(ri, m) || nfds > VHOST_USER_MAX_FDS) {
        vu_err(c, "vhost-user: %s request with %u fds, expected %u", ri->name, nfds,
               expected_fds(ri, m));
        return -EINVAL;
    }
    for (unsigned i = 0; i < nfds; i++) {
        if (fds[i] < 0) {
            vu_err(c, "vhost-user: %s request with invalid fd %d", ri->name, fds[i]);
            return -EBADF;
        }
    }
    return 0;
}

static int check_reply_size(const struct vhost_user_conn *c, const struct vu_req_info *ri,
                            const struct vu_msg *req, uint32_t size, bool ack)
{
    uint32_t want = 8;

    if (!ack && ri->reply == VU_R_LOG) {
        if (size == 0 || size == 8 || size == 16)
            return 0;
        vu_err(c, "vhost-user: %s reply has size %u, expected 0, 8 or 16", ri->name, size);
        return -EPROTO;
    }
    if (!ack && ri->reply == VU_R_CONFIG) {
        want = req->hdr.size;
        if (size == 0) /* the spec's way for the back-end to say it failed */
            return 0;
    }
    if (size == want)
        return 0;
    vu_err(c, "vhost-user: %s reply has size %u, expected %u", ri->name, size, want);
    return -EPROTO;
}

/* Every check a reply must pass, in one place. */
static int check_reply(const struct vhost_user_conn *c, const struct vu_req_info *ri,
                       const struct vu_msg *req, const struct vu_msg *rep, unsigned nfds, bool ack)
{
    if (rep->hdr.request != req->hdr.request) {
        vu_err(c, "vhost-user: %s reply has request type %u (%s)", ri->name, rep->hdr.request,
               vhost_user_request_name(rep->hdr.request));
        return -EPROTO;
    }
    if ((rep->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        vu_err(c, "vhost-user: %s reply has version %u, expected %u", ri->name,
               rep->hdr.flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
        return -EPROTO;
    }
    if (!(rep->hdr.flags & VHOST_USER_FLAG_REPLY)) {
        vu_err(c, "vhost-user: %s reply lacks the reply flag (flags 0x%x)", ri->name,
               rep->hdr.flags);
        return -EPROTO;
    }
    if (nfds) {
        vu_err(c, "vhost-user: %s reply carries %u fds, expected none", ri->name, nfds);
        return -EPROTO;
    }
    return check_reply_size(c, ri, req, rep->hdr.size, ack);
}

/* sent_us: when the request went out, for the trace's latency. */
static int recv_reply(struct vhost_user_conn *c, const struct vu_req_info *ri,
                      const struct vu_msg *req, struct vu_msg *rep, bool ack, int64_t sent_us)
{
    char what[64];
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds;
    int64_t now;
    int r;

    snprintf(what, sizeof(what), "%s reply", ri->name);
    r = recv_msg(c, c->fd, what, rep, fds, &nfds);
    if (r)
        return r;
    now = vu_now_us();
    vu_trace(c,
             &(struct vu_trace_msg){
                 .msg = rep, .nfds = nfds, .req = req, .ack = ack, .latency_us = now - sent_us},
             now);
    r = check_reply(c, ri, req, rep, nfds, ack);
    vu_close_fds(fds, nfds);
    return r;
}

/* Without REPLY_ACK a request that must be applied before the caller goes on is followed
 * by GET_FEATURES: the back-end answers in order, so its reply means it got that far. */
static int barrier(struct vhost_user_conn *c)
{
    struct vu_msg m = {.hdr = {.request = VHOST_USER_GET_FEATURES}};

    return vu_call(c, &m, NULL, 0, NULL);
}

int vu_call(struct vhost_user_conn *c, struct vu_msg *msg, const int *fds, unsigned nfds,
            struct vu_msg *reply)
{
    const struct vu_req_info *ri = vu_req_info(msg->hdr.request);
    struct vu_msg local;
    int64_t sent_us;
    bool ack;
    int r;

    if (!ri)
        return -EINVAL;
    if (c->broken)
        return -EPIPE;
    r = vu_check_gate(c, ri);
    if (!r)
        r = check_request(c, ri, msg, fds, nfds);
    if (r)
        return r;
    ack = wants_ack(c, ri);
    msg->hdr.flags = VHOST_USER_VERSION | (ack ? VHOST_USER_FLAG_NEED_REPLY : 0);
    sent_us = vu_now_us();
    vu_trace(c, &(struct vu_trace_msg){.outgoing = true, .msg = msg, .nfds = nfds}, sent_us);
    r = send_all(c->fd, msg, sizeof(msg->hdr) + msg->hdr.size, fds, nfds,
                 vu_now_ms() + c->timeout_ms);
    if (r) {
        vu_err(c, "vhost-user: cannot send %s: %s", ri->name, strerror(-r));
        vu_break(c);
        return r;
    }
    if (!ack && !has_reply(ri))
        return needs_sync(ri, msg) ? barrier(c) : 0;
    reply = reply ? reply : &local;
    r = recv_reply(c, ri, msg, reply, ack, sent_us);
    if (r) {
        vu_break(c);
        return r;
    }
    if (ack && reply->payload.u64) {
        /* A refusal, not a protocol error: the connection stays usable. */
        vu_err(c, "vhost-user: %s failed: back-end replied 0x%" PRIx64, ri->name,
               reply->payload.u64);
        return -EIO;
    }
    return 0;
}

/* --- backend-request channel ---------------------------------------------------------- */

static int check_backend_req(const struct vhost_user_conn *c, const struct vu_req_info *ri,
                             const struct vu_msg *m, unsigned nfds)
{
    const char *name = ri ? ri->name : "back-end request";
    uint32_t size;

    if ((m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        vu_err(c, "vhost-user: %s has version %u, expected %u", name,
               m->hdr.flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
        return -EPROTO;
    }
    if (m->hdr.flags & VHOST_USER_FLAG_REPLY) {
        vu_err(c, "vhost-user: %s has the reply flag set (flags 0x%x)", name, m->hdr.flags);
        return -EPROTO;
    }
    if (!ri) /* unknown: refused by the caller; its size was bounded when read */
        return 0;
    if (!vu_layout_size(ri->layout, m, &size) || size != m->hdr.size) {
        vu_err(c, "vhost-user: %s has size %u, expected %u", name, m->hdr.size, size);
        return -EPROTO;
    }
    if (nfds != expected_fds(ri, m)) {
        vu_err(c, "vhost-user: %s carries %u fds, expected %u", name, nfds, expected_fds(ri, m));
        return -EPROTO;
    }
    if (nfds && !(c->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD))) {
        vu_err(c, "vhost-user: %s carries an fd but BACKEND_SEND_FD was not negotiated", name);
        return -EPROTO;
    }
    return 0;
}

void vu_backend_rx_drop(struct vhost_user_conn *c)
{
    vu_close_fds(c->backend_rx.fds, c->backend_rx.nfds);
    c->backend_rx.nfds = 0;
    c->backend_rx.got = 0;
}

static uint32_t rx_payload_size(const struct vhost_user_rx *rx)
{
    uint32_t size;

    memcpy(&size, rx->buf + offsetof(struct vu_hdr, size), sizeof(size));
    return size;
}

/* Bytes still missing from the message being read: the header first, then its payload. */
static size_t rx_missing(const struct vhost_user_rx *rx)
{
    if (rx->got < VHOST_USER_HDR_SIZE)
        return VHOST_USER_HDR_SIZE - rx->got;
    return VHOST_USER_HDR_SIZE + (size_t)rx_payload_size(rx) - rx->got;
}

/* One recvmsg of what the socket holds now, never past the message's end; the fds that
 * come with the bytes are kept with them. */
static int rx_read_some(int sock, struct vhost_user_rx *rx)
{
    union cmsg_space ctl;
    struct iovec iov = {.iov_base = rx->buf + rx->got, .iov_len = rx_missing(rx)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    bool fds_ok;

    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
    fds_ok = take_fds(&mh, rx->fds, &rx->nfds);
    if (n == 0)
        return -ECONNRESET;
    if (rx->got == 0)
        rx->first_ms = vu_now_ms();
    rx->got += (uint32_t)n;
    return fds_ok ? 0 : -E2BIG;
}

/* Reads until the message is complete (0) or the socket is empty (-EAGAIN). The size is
 * checked as soon as the header is in: an oversized message fails without waiting, and the
 * payload never overruns the buffer. */
static int rx_fill(struct vhost_user_conn *c)
{
    struct vhost_user_rx *rx = &c->backend_rx;

    while (rx_missing(rx)) {
        bool had_header = rx->got >= VHOST_USER_HDR_SIZE;
        int r = rx_read_some(c->backend_fd, rx);

        if (r == -EINTR)
            continue;
        if (r)
            return r;
        if (!had_header && rx->got >= VHOST_USER_HDR_SIZE && rx_payload_size(rx) > VU_MAX_PAYLOAD) {
            vu_err(c, "vhost-user: back-end request has size %u, more than the maximum %zu",
                   rx_payload_size(rx), VU_MAX_PAYLOAD);
            return -EMSGSIZE;
        }
    }
    return 0;
}

int64_t vhost_user_backend_req_deadline_ms(const struct vhost_user_conn *c)
{
    if (c->backend_fd < 0 || c->backend_broken || !c->backend_rx.got)
        return -1;
    return c->backend_rx.first_ms + c->timeout_ms;
}

/* -EAGAIN while the message is incomplete and young enough; any other error is final. */
static int rx_step(struct vhost_user_conn *c)
{
    struct vhost_user_rx *rx = &c->backend_rx;
    int r = rx_fill(c);
    size_t want = rx->got < VHOST_USER_HDR_SIZE ? VHOST_USER_HDR_SIZE : rx->got + rx_missing(rx);

    if (r == -EAGAIN && rx->got && vu_now_ms() >= vhost_user_backend_req_deadline_ms(c))
        r = -ETIMEDOUT;
    if (r == -EAGAIN || r == -EMSGSIZE)
        return r;
    if (r)
        log_recv_error(c, "back-end request", r, rx->got, want);
    return r;
}

int vu_backend_recv(struct vhost_user_conn *c, struct vu_msg *msg, int *fds, unsigned *nfds,
                    int64_t *recv_us)
{
    struct vhost_user_rx *rx = &c->backend_rx;
    const struct vu_req_info *ri;
    int r = rx_step(c);

    if (r == -EAGAIN)
        return r;
    if (r) {
        vu_backend_rx_drop(c);
        c->backend_broken = true;
        return r == -E2BIG || r == -EMSGSIZE ? -EPROTO : r;
    }
    /* Complete: the message and its fds move to the caller, the buffer is free again. */
    memcpy(msg, rx->buf, rx->got);
    memset((uint8_t *)msg + rx->got, 0, sizeof(*msg) - rx->got);
    memcpy(fds, rx->fds, rx->nfds * sizeof(int));
    *nfds = rx->nfds;
    rx->nfds = 0;
    rx->got = 0;
    *recv_us = vu_now_us();
    vu_trace(c, &(struct vu_trace_msg){.backend_channel = true, .msg = msg, .nfds = *nfds},
             *recv_us);
    ri = vu_backend_req_info(msg->hdr.request);
    r = check_backend_req(c, ri, msg, *nfds);
    if (r) {
        vu_close_fds(fds, *nfds);
        *nfds = 0;
        c->backend_broken = true;
    }
    return r;
}

/* Writes all of buf now or fails: -ENOBUFS when the peer's socket is full. */
static int send_now(int sock, const void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = send(sock, (const char *)buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n >= 0)
            done += (size_t)n;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -ENOBUFS;
        else if (errno != EINTR)
            return -errno;
    }
    return 0;
}

int vu_backend_ack(struct vhost_user_conn *c, const struct vu_msg *req, uint64_t result,
                   int64_t recv_us)
{
    const struct vu_req_info *ri = vu_backend_req_info(req->hdr.request);
    const char *name = ri ? ri->name : "UNKNOWN";
    struct vu_msg m = {
        .hdr = {.request = req->hdr.request,
                .flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
                .size = sizeof(uint64_t)},
        .payload.u64 = result,
    };
    int64_t now = vu_now_us();
    int r;

    vu_trace(c,
             &(struct vu_trace_msg){.outgoing = true,
                                    .backend_channel = true,
                                    .msg = &m,
                                    .req = req,
                                    .ack = true,
                                    .latency_us = now - recv_us},
             now);
    r = send_now(c->backend_fd, &m, sizeof(m.hdr) + m.hdr.size);
    if (r == -ENOBUFS)
        vu_err(c, "vhost-user: cannot send the %s reply: the back-end does not read its channel",
               name);
    else if (r)
        vu_err(c, "vhost-user: cannot send the %s reply: %s", name, strerror(-r));
    if (r)
        c->backend_broken = true;
    return r;
}
