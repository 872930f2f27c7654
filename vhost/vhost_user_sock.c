/* vhost-user sockets: client connect with retries, server listen and accept. */
#include "vhost_user.h"
#include "vhost_user_msg.h"

#include "../common/log.h"
#include "../common/unix_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_RETRY_MS 50

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The back-end may not have created its socket yet: those errors are worth a retry. */
static bool connect_retryable(int err)
{
    return err == ENOENT || err == ECONNREFUSED || err == EAGAIN;
}

/* Non-blocking: a back-end whose listen queue is full (stopped, wedged, not accepting)
 * gives -EAGAIN instead of blocking the caller, the event loop on a reconnect. The
 * connected socket is made blocking again: its I/O waits with poll() deadlines. */
static int connect_once(const struct sockaddr_un *sa, int *fd)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err;

    if (s < 0)
        return -errno;
    while (connect(s, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        err = errno;
        if (err == EINTR)
            continue;
        close(s);
        return -err;
    }
    if (fcntl(s, F_SETFL, 0) < 0) {
        err = errno;
        close(s);
        return -err;
    }
    *fd = s;
    return 0;
}

int vhost_user_connect(const char *path, unsigned timeout_ms, int *fd)
{
    int64_t deadline = vu_now_ms() + timeout_ms, left;
    struct sockaddr_un sa;
    int r = unix_sock_addr("vhost-user", path, &sa);

    if (r)
        return r;
    for (;;) {
        r = connect_once(&sa, fd);
        if (!r)
            return 0;
        if (!connect_retryable(-r)) {
            pr_err("vhost-user: cannot connect to %s: %s", path, strerror(-r));
            return r;
        }
        left = deadline - vu_now_ms();
        if (left <= 0) {
            pr_err("vhost-user: no back-end listening on %s after %u ms (%s)", path, timeout_ms,
                   strerror(-r));
            return -ETIMEDOUT;
        }
        sleep_ms(left < CONNECT_RETRY_MS ? left : CONNECT_RETRY_MS);
    }
}

int vhost_user_try_connect(const char *path, int *fd)
{
    struct sockaddr_un sa;
    int r = unix_sock_addr("vhost-user", path, &sa);

    return r ? r : connect_once(&sa, fd);
}

int vhost_user_try_accept(int listen_fd, int *fd)
{
    int s = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (s < 0)
        return -errno;
    /* The connection's I/O is blocking with poll() deadlines, like a connected one. */
    if (fcntl(s, F_SETFL, 0) < 0) {
        int err = errno;

        close(s);
        return -err;
    }
    *fd = s;
    return 0;
}

int vhost_user_listen(const char *path, int *listen_fd)
{
    return unix_sock_listen("vhost-user", path, 1, 0, listen_fd);
}

int vhost_user_accept(int listen_fd, unsigned timeout_ms, int *fd)
{
    int r = vu_wait_fd(listen_fd, POLLIN, vu_now_ms() + timeout_ms);
    int s;

    if (r == -ETIMEDOUT)
        pr_err("vhost-user: no back-end connected within %u ms", timeout_ms);
    else if (r)
        pr_err("vhost-user: cannot wait for a back-end: %s", strerror(-r));
    if (r)
        return r;
    s = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) {
        r = -errno;
        pr_err("vhost-user: cannot accept a back-end: %s", strerror(-r));
        return r;
    }
    *fd = s;
    return 0;
}
