/* vu-fake-backend SOCKET: the smallest vhost-user backend a guest can boot with.
 * It offers VIRTIO_F_VERSION_1 and no protocol features at all (so no REPLY_ACK,
 * no LOG_SHMFD, no VHOST_F_LOG_ALL: a backend that cannot be migrated), listens on
 * SOCKET, serves one frontend at a time, answers the requests that have replies
 * (GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_VRING_BASE) and drops
 * the rest, closing any fds that come with them. It never touches the rings. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    GET_FEATURES = 1,
    GET_PROTOCOL_FEATURES = 15,
    GET_QUEUE_NUM = 17,
    GET_VRING_BASE = 11,
};
#define FLAG_REPLY 0x4
#define VERSION 0x1
#define F_VERSION_1 (1ULL << 32)

struct hdr {
    uint32_t request, flags, size;
} __attribute__((packed));

static int recv_msg(int fd, struct hdr *h, uint8_t *payload, size_t cap)
{
    char cbuf[CMSG_SPACE(8 * sizeof(int))];
    struct iovec iov = {.iov_base = h, .iov_len = sizeof(*h)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);

    if (n != sizeof(*h))
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        int *fds = (int *)CMSG_DATA(c);

        for (size_t i = 0;
             c->cmsg_type == SCM_RIGHTS && i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
            close(fds[i]);
    }
    if (h->size > cap)
        return -1;
    return h->size && recv(fd, payload, h->size, MSG_WAITALL) != (ssize_t)h->size ? -1 : 0;
}

static int reply(int fd, const struct hdr *req, const void *payload, uint32_t size)
{
    struct hdr h = {.request = req->request, .flags = VERSION | FLAG_REPLY, .size = size};
    uint8_t buf[sizeof(h) + 16];

    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), payload, size);
    return send(fd, buf, sizeof(h) + size, MSG_NOSIGNAL) == (ssize_t)(sizeof(h) + size) ? 0 : -1;
}

static void serve(int fd)
{
    uint8_t payload[4096];
    struct hdr h;

    while (recv_msg(fd, &h, payload, sizeof(payload)) == 0) {
        uint64_t u64 = 0;
        int ret = 0;

        switch (h.request) {
        case GET_FEATURES:
            u64 = F_VERSION_1;
            ret = reply(fd, &h, &u64, 8);
            break;
        case GET_PROTOCOL_FEATURES:
            ret = reply(fd, &h, &u64, 8);
            break;
        case GET_QUEUE_NUM:
            u64 = 1;
            ret = reply(fd, &h, &u64, 8);
            break;
        case GET_VRING_BASE: /* {index, num}: the ring stopped where it started */
            memset(payload + 4, 0, 4);
            ret = reply(fd, &h, payload, 8);
            break;
        default:
            break;
        }
        if (ret)
            break;
    }
    close(fd);
}

int main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s;

    if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: vu-fake-backend SOCKET\n");
        return 2;
    }
    strcpy(sa.sun_path, argv[1]);
    unlink(argv[1]);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 1)) {
        fprintf(stderr, "vu-fake-backend: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    printf("vu-fake-backend: listening on %s\n", argv[1]);
    fflush(stdout);
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);

        if (c >= 0)
            serve(c);
    }
}
