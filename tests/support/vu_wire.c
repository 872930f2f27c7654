#include "vu_wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The one place the tests' backends take fds out of SCM_RIGHTS: kept in m while there is
 * room (m NULL: none kept), the rest closed. */
static void take_fds(struct msghdr *mh, struct vu_wire_msg *m)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

        for (size_t i = 0; cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && i < n;
             i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (m && m->nfds < VU_WIRE_MAX_FDS)
                m->fds[m->nfds++] = fd;
            else
                close(fd);
        }
    }
}

/* recvmsg with room for fds; what poll and recvmsg return, as -errno. */
static ssize_t recv_piece(int fd, void *buf, size_t len, struct vu_wire_msg *m, int timeout_ms,
                          int flags)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (timeout_ms >= 0 && poll(&p, 1, timeout_ms) != 1)
        return -ETIMEDOUT;
    n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | flags);
    if (n < 0)
        return -errno;
    take_fds(&mh, m);
    return n;
}

static int recv_all(int fd, void *buf, size_t len, struct vu_wire_msg *m, int timeout_ms)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv_piece(fd, (char *)buf + got, len - got, m, timeout_ms, 0);

        if (n == 0)
            return -ECONNRESET;
        if (n < 0)
            return (int)n;
        got += (size_t)n;
    }
    return 0;
}

void vu_wire_close_fds(struct vu_wire_msg *m)
{
    for (int i = 0; i < m->nfds; i++) {
        if (m->fds[i] >= 0)
            close(m->fds[i]);
        m->fds[i] = -1;
    }
}

int vu_wire_recv(int fd, struct vu_wire_msg *m, int timeout_ms)
{
    uint8_t hdr[VU_WIRE_HDR_SIZE];
    int ret;

    memset(m, 0, sizeof(*m));
    ret = recv_all(fd, hdr, sizeof(hdr), m, timeout_ms);
    if (!ret) {
        memcpy(&m->request, hdr, 4);
        memcpy(&m->flags, hdr + 4, 4);
        memcpy(&m->size, hdr + 8, 4);
        ret = m->size > VU_WIRE_MAX_PAYLOAD ? -EPROTO
                                            : recv_all(fd, m->payload, m->size, m, timeout_ms);
    }
    if (ret)
        vu_wire_close_fds(m);
    return ret;
}

void vu_wire_drain(int fd)
{
    char data[4096];

    while (recv_piece(fd, data, sizeof(data), NULL, -1, MSG_DONTWAIT) > 0)
        ;
}

uint32_t vu_wire_load32(const uint8_t *payload, size_t off)
{
    uint32_t v;

    memcpy(&v, payload + off, sizeof(v));
    return v;
}

uint64_t vu_wire_load64(const uint8_t *payload, size_t off)
{
    uint64_t v;

    memcpy(&v, payload + off, sizeof(v));
    return v;
}

uint32_t vu_wire_u32(const struct vu_wire_msg *m, size_t off)
{
    return vu_wire_load32(m->payload, off);
}

uint64_t vu_wire_u64(const struct vu_wire_msg *m, size_t off)
{
    return vu_wire_load64(m->payload, off);
}

int vu_wire_send_bytes(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * VU_WIRE_SEND_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (nfds < 0 || nfds > VU_WIRE_SEND_MAX_FDS)
        return -1;
    if (nfds) {
        struct cmsghdr *cm;

        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len ? 0 : -1;
}

size_t vu_wire_encode(uint8_t *buf, uint32_t request, uint32_t flags, const void *payload,
                      uint32_t size)
{
    memcpy(buf, &request, 4);
    memcpy(buf + 4, &flags, 4);
    memcpy(buf + 8, &size, 4);
    if (size)
        memcpy(buf + VU_WIRE_HDR_SIZE, payload, size);
    return VU_WIRE_HDR_SIZE + size;
}

int vu_wire_send(int fd, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
                 size_t len, const int *fds, int nfds)
{
    uint8_t buf[VU_WIRE_HDR_SIZE + VU_WIRE_MAX_PAYLOAD];

    if (len > VU_WIRE_MAX_PAYLOAD)
        return -1;
    vu_wire_encode(buf, request, flags, payload, (uint32_t)len);
    memcpy(buf + 8, &size, 4);
    return vu_wire_send_bytes(fd, buf, VU_WIRE_HDR_SIZE + len, fds, nfds);
}

int vu_wire_reply(int fd, uint32_t request, const void *payload, uint32_t size)
{
    return vu_wire_send(fd, request, VU_WIRE_FL_REPLY, size, payload, size, NULL, 0);
}

int vu_wire_reply_u64(int fd, uint32_t request, uint64_t value)
{
    return vu_wire_reply(fd, request, &value, 8);
}

int vu_wire_reply_state(int fd, uint32_t request, uint32_t index, uint32_t num)
{
    uint32_t state[2] = {index, num};

    return vu_wire_reply(fd, request, state, 8);
}
