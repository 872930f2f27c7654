/* The control socket: its clients on the event loop, all non-blocking (each
 * request line goes to api_handle_line, api_request.c). */
#include "api_priv.h"

#include "../common/log.h"
#include "../common/unix_sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define API_OUT_HIGH (256 * 1024) /* stop running a client's requests until it reads */
/* ---- clients ---- */

struct api_client {
    struct api *api;
    int fd;
    uint32_t events;
    char *in; /* API_IN_CAP: the longest line and its newline */
    size_t in_len;
    char *out;
    size_t out_off, out_len, out_cap;
    uint64_t last_input_ms; /* when it connected or last sent bytes: eviction picks the oldest */
    bool eof;               /* the peer sent all it will */
    bool closing;           /* drop once the output is written */
    struct api_client *next;
};

#define API_IN_CAP ((size_t)API_MAX_LINE + 1)

static void client_free(struct api_client *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void client_drop(struct api_client *c)
{
    struct api *api = c->api;
    struct api_client **pp;

    for (pp = &api->clients; *pp && *pp != c; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = c->next;
    api->nclients--;
    event_loop_del(api->loop, c->fd);
    pr_debug("control socket: client %d gone", c->fd);
    client_free(c);
}

static int client_queue(struct api_client *c, const char *text)
{
    size_t len = strlen(text);

    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + len + 1 > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        char *p;

        while (cap < c->out_len + len + 1)
            cap *= 2;
        p = realloc(c->out, cap);
        if (!p)
            return -ENOMEM;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, text, len);
    c->out[c->out_len + len] = '\n';
    c->out_len += len + 1;
    return 0;
}

static int client_write(struct api_client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static bool client_has_output(const struct api_client *c)
{
    return c->out_off < c->out_len;
}

static char *client_next_line(struct api_client *c)
{
    return memchr(c->in, '\n', c->in_len);
}

static int client_run_line(struct api_client *c, char *nl)
{
    size_t len = (size_t)(nl - c->in);
    char *reply;
    int ret = 0;

    *nl = '\0';
    reply = api_handle_line(c->api, c->in, len);
    if (reply)
        ret = client_queue(c, reply);
    free(reply);
    c->in_len -= len + 1;
    memmove(c->in, nl + 1, c->in_len);
    return ret;
}

static int client_too_long(struct api_client *c)
{
    char desc[96], *reply;
    int ret;

    snprintf(desc, sizeof(desc), "request line longer than %d bytes; closing the connection",
             API_MAX_LINE);
    pr_warn("control socket: a request line longer than %d bytes; dropping the client",
            API_MAX_LINE);
    c->in_len = 0;
    c->closing = true;
    reply = api_error_line(desc);
    ret = reply ? client_queue(c, reply) : -ENOMEM;
    free(reply);
    return ret;
}

/* Runs the buffered lines while the client keeps up with the replies. */
static int client_run_lines(struct api_client *c)
{
    char *nl;
    int ret = 0;

    while (!ret && !c->closing && c->out_len - c->out_off < API_OUT_HIGH &&
           (nl = client_next_line(c)))
        ret = client_run_line(c, nl);
    if (!ret && !c->closing && c->in_len == API_IN_CAP && !client_next_line(c))
        ret = client_too_long(c);
    if (!ret && c->eof && !client_next_line(c))
        c->closing = true;
    return ret;
}

static bool client_watch(struct api_client *c, uint32_t events)
{
    int ret = 0;

    if (events != c->events)
        ret = event_loop_mod(c->api->loop, c->fd, events);
    if (ret) {
        pr_err("control socket: cannot watch a client: %s", strerror(-ret));
        client_drop(c);
        return false;
    }
    c->events = events;
    return true;
}

/* Runs what is buffered, writes what the socket takes, and waits for whatever
 * comes next: input, room to write, or nothing (the client is dropped). */
static void client_pump(struct api_client *c)
{
    for (;;) {
        if (client_run_lines(c) || client_write(c)) {
            client_drop(c);
            return;
        }
        if (client_has_output(c)) {
            client_watch(c, EPOLLOUT);
            return;
        }
        if (c->closing) {
            client_drop(c);
            return;
        }
        if (!client_next_line(c)) {
            client_watch(c, EPOLLIN);
            return;
        }
    }
}

/* One read; at the end of input, an unterminated last request still counts. */
static int client_read(struct api_client *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, API_IN_CAP - c->in_len);

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n == 0) {
        c->eof = true;
        if (c->in_len && c->in_len < API_IN_CAP)
            c->in[c->in_len++] = '\n';
        return 0;
    }
    c->in_len += (size_t)n;
    c->last_input_ms = c->api->now_ms();
    return 0;
}

static void client_on_event(void *opaque, uint32_t events)
{
    struct api_client *c = opaque;

    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->events & EPOLLIN) && client_read(c)) {
        client_drop(c);
        return;
    }
    client_pump(c);
}

static void api_refuse(int fd)
{
    char desc[128], *reply;
    size_t len;

    snprintf(desc, sizeof(desc),
             "too many control socket clients (%d, none idle for %d s); try again later",
             API_MAX_CLIENTS, API_IDLE_EVICT_MS / 1000);
    reply = api_error_line(desc);
    len = reply ? strlen(reply) : 0;

    /* A fresh socket has room for one line: this does not block. */
    if (reply) {
        reply[len] = '\n'; /* over the NUL: the length is known */
        if (send(fd, reply, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            pr_debug("control socket: cannot tell a client it is refused: %s", strerror(errno));
    }
    free(reply);
    close(fd);
}

static int api_add_client(struct api *api, int fd)
{
    struct api_client *c = calloc(1, sizeof(*c));
    int ret;

    if (c)
        c->in = malloc(API_IN_CAP);
    if (!c || !c->in) {
        free(c);
        close(fd);
        return -ENOMEM;
    }
    c->api = api;
    c->fd = fd;
    c->events = EPOLLIN;
    c->last_input_ms = api->now_ms();
    ret = event_loop_add(api->loop, fd, EPOLLIN, client_on_event, c);
    if (ret) {
        client_free(c);
        return ret;
    }
    c->next = api->clients;
    api->clients = c;
    api->nclients++;
    pr_debug("control socket: client %d connected", fd);
    return 0;
}

/* Sent nothing for API_IDLE_EVICT_MS, with no request half-sent and no reply unread. */
static bool client_idle(const struct api_client *c, uint64_t now)
{
    return !c->in_len && !client_has_output(c) && !c->closing && !c->eof &&
           now - c->last_input_ms >= API_IDLE_EVICT_MS;
}

/* Closes the client idle longest, with an error line; false when none is idle. */
static bool api_evict_idle(struct api *api)
{
    struct api_client *oldest = NULL;
    uint64_t now = api->now_ms();
    char desc[160], *reply;

    /* The list is newest first: on a tie, the one connected first goes. */
    for (struct api_client *c = api->clients; c; c = c->next)
        if (client_idle(c, now) && (!oldest || c->last_input_ms <= oldest->last_input_ms))
            oldest = c;
    if (!oldest)
        return false;
    snprintf(desc, sizeof(desc),
             "idle for %llu s while %d clients are connected; closing this connection to make "
             "room for a new one",
             (unsigned long long)((now - oldest->last_input_ms) / 1000), API_MAX_CLIENTS);
    pr_info("control socket: closing client %d, idle for %llu s, to make room", oldest->fd,
            (unsigned long long)((now - oldest->last_input_ms) / 1000));
    reply = api_error_line(desc);
    /* Its buffer is empty: one line fits without blocking; lost if it does not. */
    if (!reply || client_queue(oldest, reply) || client_write(oldest))
        pr_debug("control socket: cannot tell an idle client it is closed");
    free(reply);
    client_drop(oldest);
    return true;
}

void api_accept_fd(struct api *api, int fd)
{
    int ret;

    if (api->nclients >= API_MAX_CLIENTS && !api_evict_idle(api)) {
        pr_warn("control socket: %d clients already, none idle for %d s; refusing another",
                API_MAX_CLIENTS, API_IDLE_EVICT_MS / 1000);
        api_refuse(fd);
        return;
    }
    ret = api_add_client(api, fd);
    if (ret)
        pr_warn("control socket: cannot take a client: %s", strerror(-ret));
}

static void api_on_accept(void *opaque, uint32_t events)
{
    struct api *api = opaque;
    int fd;

    (void)events;
    fd = accept4(api->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            pr_warn("control socket: accept failed: %s", strerror(errno));
        return;
    }
    api_accept_fd(api, fd);
}

/* ---- life cycle ---- */

static uint64_t api_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void api_setup(struct api *api, const struct api_ops *ops, void *opaque)
{
    memset(api, 0, sizeof(*api));
    api->ops = ops;
    api->opaque = opaque;
    api->listen_fd = -1;
    api->now_ms = api_clock_ms;
}

int api_listen(struct api *api, const char *path, struct event_loop *loop)
{
    int ret = unix_sock_listen("control socket", path, 8, SOCK_NONBLOCK, &api->listen_fd);

    if (ret)
        return ret;
    api->loop = loop;
    snprintf(api->path, sizeof(api->path), "%s", path);
    ret = event_loop_add(loop, api->listen_fd, EPOLLIN, api_on_accept, api);
    if (ret) {
        pr_err("control socket: cannot watch %s: %s", path, strerror(-ret));
        api_destroy(api);
        return ret;
    }
    pr_info("control socket on %s", path);
    return 0;
}

void api_file_removed(struct api *api)
{
    api->path[0] = '\0';
}

/* The last replies (a shutdown's) go out if the socket takes them now. */
void api_destroy(struct api *api)
{
    while (api->clients) {
        struct api_client *c = api->clients;

        if (client_write(c))
            pr_debug("control socket: a reply was not delivered on exit");
        client_drop(c);
    }
    if (api->listen_fd >= 0) {
        if (api->loop)
            event_loop_del(api->loop, api->listen_fd);
        close(api->listen_fd);
        if (api->path[0] && unlink(api->path) < 0)
            pr_warn("control socket: cannot remove %s: %s", api->path, strerror(errno));
    }
    api->listen_fd = -1;
    api->path[0] = '\0';
}
