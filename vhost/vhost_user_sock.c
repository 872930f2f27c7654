/* vhost-user sockets: client connect with retries, server listen and accept. */
#include "vhost_user.h"
#include "vhost_user_msg.h"

#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_RETRY_MS 50

static int make_addr(const char *path, struct sockaddr_un *sa)
{
    size_t len = strlen(path);

    memset(sa, 0, sizeof(*sa));
    if (len == 0 || len >= sizeof(sa->sun_path)) {
        pr_err("vhost-user: socket path '%s' must be 1 to %zu bytes long", path,
               sizeof(sa->sun_path) - 1);
        return -ENAMETOOLONG;
    }
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, len + 1);
    return 0;
}

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

int vhost_user_connect(const char *path, unsigned timeout_ms, int *fd)
{
    int64_t deadline = vu_now_ms() + timeout_ms, left;
    struct sockaddr_un sa;
    int s, err, r = make_addr(path, &sa);

    if (r)
        return r;
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    for (;;) {
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            *fd = s;
            return 0;
        }
        err = errno;
        if (err == EINTR)
            continue;
        if (!connect_retryable(err)) {
            pr_err("vhost-user: cannot connect to %s: %s", path, strerror(err));
            close(s);
            return -err;
        }
        left = deadline - vu_now_ms();
        if (left <= 0) {
            pr_err("vhost-user: no back-end listening on %s after %u ms (%s)", path, timeout_ms,
                   strerror(err));
            close(s);
            return -ETIMEDOUT;
        }
        sleep_ms(left < CONNECT_RETRY_MS ? left : CONNECT_RETRY_MS);
    }
}

int vhost_user_try_connect(const char *path, int *fd)
{
    struct sockaddr_un sa;
    int s, err, r = make_addr(path, &sa);

    if (r)
        return r;
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    while (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        err = errno;
        if (err == EINTR)
            continue;
        close(s);
        return -err;
    }
    *fd = s;
    return 0;
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

/* A socket someone still accepts on is not stale. */
static bool socket_in_use(const struct sockaddr_un *sa)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bool used;

    if (s < 0)
        return false;
    used = connect(s, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN;
    close(s);
    return used;
}

static int remove_stale(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    int err;

    if (lstat(path, &st) < 0) {
        err = errno;
        if (err == ENOENT)
            return 0;
        pr_err("vhost-user: cannot stat %s: %s", path, strerror(err));
        return -err;
    }
    if (!S_ISSOCK(st.st_mode)) {
        pr_err("vhost-user: %s exists and is not a socket; refusing to replace it", path);
        return -EEXIST;
    }
    if (socket_in_use(sa)) {
        pr_err("vhost-user: %s is a live socket another process listens on", path);
        return -EADDRINUSE;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        err = errno;
        pr_err("vhost-user: cannot remove stale socket %s: %s", path, strerror(err));
        return -err;
    }
    pr_debug("vhost-user: removed stale socket %s", path);
    return 0;
}

int vhost_user_listen(const char *path, int *listen_fd)
{
    struct sockaddr_un sa;
    int s, r = make_addr(path, &sa);

    if (!r)
        r = remove_stale(path, &sa);
    if (r)
        return r;
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0) {
        r = -errno;
        pr_err("vhost-user: cannot listen on %s: %s", path, strerror(-r));
        close(s);
        return r;
    }
    *listen_fd = s;
    return 0;
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
