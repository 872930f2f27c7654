/* vu-fake-backend SOCKET: the smallest vhost-user backend a guest can boot with.
 * It offers VIRTIO_F_VERSION_1 and no protocol features at all (so no REPLY_ACK,
 * no LOG_SHMFD, no VHOST_F_LOG_ALL: a backend that cannot be migrated), listens on
 * SOCKET, serves one frontend at a time, answers the requests that have replies
 * (GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_VRING_BASE) and drops
 * the rest, closing any fds that come with them (tests/support/vu_wire reads them).
 * It never touches the rings. */
#include "../../vhost/vhost_user.h"
#include "../support/vu_wire.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define F_VERSION_1 (1ULL << 32)

/* The reply to m, 0 for a request without one, -1 when it cannot be sent. */
static int answer(int fd, const struct vu_wire_msg *m)
{
    switch (m->request) {
    case VHOST_USER_GET_FEATURES:
        return vu_wire_reply_u64(fd, m->request, F_VERSION_1);
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        return vu_wire_reply_u64(fd, m->request, 0);
    case VHOST_USER_GET_QUEUE_NUM:
        return vu_wire_reply_u64(fd, m->request, 1);
    case VHOST_USER_GET_VRING_BASE: /* {index, num}: the ring stopped where it started */
        return vu_wire_reply_state(fd, m->request, vu_wire_u32(m, 0), 0);
    default:
        return 0;
    }
}

static void serve(int fd)
{
    struct vu_wire_msg m;

    while (vu_wire_recv(fd, &m, -1) == 0) {
        vu_wire_close_fds(&m);
        if (answer(fd, &m))
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
