#include "unix_sock.h"

#include "log.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int unix_sock_addr(const char *who, const char *path, struct sockaddr_un *sa)
{
    size_t len = strlen(path);

    memset(sa, 0, sizeof(*sa));
    if (len == 0 || len >= sizeof(sa->sun_path)) {
        pr_err("%s: socket path '%s' must be 1 to %zu bytes long", who, path,
               sizeof(sa->sun_path) - 1);
        return -ENAMETOOLONG;
    }
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, len + 1);
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

static int remove_stale(const char *who, const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    int err;

    if (lstat(path, &st) < 0) {
        err = errno;
        if (err == ENOENT)
            return 0;
        pr_err("%s: cannot stat %s: %s", who, path, strerror(err));
        return -err;
    }
    if (!S_ISSOCK(st.st_mode)) {
        pr_err("%s: %s exists and is not a socket; refusing to replace it", who, path);
        return -EEXIST;
    }
    if (socket_in_use(sa)) {
        pr_err("%s: %s is a live socket another process listens on", who, path);
        return -EADDRINUSE;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        err = errno;
        pr_err("%s: cannot remove stale socket %s: %s", who, path, strerror(err));
        return -err;
    }
    pr_debug("%s: removed stale socket %s", who, path);
    return 0;
}

int unix_sock_listen(const char *who, const char *path, int backlog, int flags, int *fd)
{
    struct sockaddr_un sa;
    int s, r = unix_sock_addr(who, path, &sa);

    if (!r)
        r = remove_stale(who, path, &sa);
    if (r)
        return r;
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    if (s < 0) {
        r = -errno;
        pr_err("%s: cannot create a socket: %s", who, strerror(-r));
        return r;
    }
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, backlog) < 0) {
        r = -errno;
        pr_err("%s: cannot listen on %s: %s", who, path, strerror(-r));
        close(s);
        return r;
    }
    *fd = s;
    return 0;
}
