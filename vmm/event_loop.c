#include "event_loop.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define EVENT_BATCH 16

struct event_source {
    int fd;
    atomic_bool dead;
    event_handler_fn fn;
    void *opaque;
    struct event_source *next;
};

struct event_call {
    int (*fn)(void *arg);
    void *arg;
    int ret;
    bool running; /* taken by the loop thread: the caller must wait for it */
    bool done;
    struct event_call *next;
};

static void run_calls(void *opaque, uint32_t events);

int event_loop_init(struct event_loop *loop)
{
    memset(loop, 0, sizeof(*loop));
    loop->thread = pthread_self();
    pthread_mutex_init(&loop->lock, NULL);
    pthread_cond_init(&loop->call_done, NULL);
    loop->call_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0 || loop->call_efd < 0) {
        int ret = -errno;

        event_loop_destroy(loop);
        return ret;
    }
    return event_loop_add(loop, loop->call_efd, EPOLLIN, run_calls, loop);
}

/* Frees the sources marked dead; only the loop thread calls it, after dispatch. */
static void event_loop_reap(struct event_loop *loop)
{
    struct event_source **pp;

    pthread_mutex_lock(&loop->lock);
    pp = &loop->sources;
    while (*pp) {
        struct event_source *s = *pp;

        if (atomic_load(&s->dead)) {
            *pp = s->next;
            free(s);
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&loop->lock);
}

void event_loop_destroy(struct event_loop *loop)
{
    event_loop_close_calls(loop);
    for (struct event_source *s = loop->sources; s; s = s->next)
        atomic_store(&s->dead, true);
    event_loop_reap(loop);
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->call_efd >= 0)
        close(loop->call_efd);
    loop->epfd = loop->call_efd = -1;
    pthread_cond_destroy(&loop->call_done);
    pthread_mutex_destroy(&loop->lock);
}

static struct event_source *find_live(struct event_loop *loop, int fd)
{
    for (struct event_source *s = loop->sources; s; s = s->next)
        if (s->fd == fd && !atomic_load(&s->dead))
            return s;
    return NULL;
}

int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_handler_fn fn,
                   void *opaque)
{
    struct event_source *s = calloc(1, sizeof(*s));
    struct epoll_event ev = {.events = events};
    int ret = 0;

    if (!s)
        return -ENOMEM;
    *s = (struct event_source){.fd = fd, .fn = fn, .opaque = opaque};
    ev.data.ptr = s;
    pthread_mutex_lock(&loop->lock);
    if (find_live(loop, fd))
        ret = -EEXIST;
    else if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        ret = -errno;
    if (!ret) {
        s->next = loop->sources;
        loop->sources = s;
    }
    pthread_mutex_unlock(&loop->lock);
    if (ret)
        free(s);
    return ret;
}

int event_loop_del(struct event_loop *loop, int fd)
{
    struct event_source *s;
    int ret = -ENOENT;

    pthread_mutex_lock(&loop->lock);
    s = find_live(loop, fd);
    if (s) {
        atomic_store(&s->dead, true); /* freed after dispatch: its event may be queued */
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
        ret = 0;
    }
    pthread_mutex_unlock(&loop->lock);
    return ret;
}

int event_loop_mod(struct event_loop *loop, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events};
    struct event_source *s;
    int ret = -ENOENT;

    pthread_mutex_lock(&loop->lock);
    s = find_live(loop, fd);
    if (s) {
        ev.data.ptr = s;
        ret = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
    }
    pthread_mutex_unlock(&loop->lock);
    return ret;
}

int event_loop_run_once(struct event_loop *loop, int timeout_ms)
{
    struct epoll_event events[EVENT_BATCH];
    int n, ran = 0;

    n = epoll_wait(loop->epfd, events, EVENT_BATCH, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        struct event_source *s = events[i].data.ptr;

        if (atomic_load(&s->dead))
            continue;
        s->fn(s->opaque, events[i].events);
        ran++;
    }
    event_loop_reap(loop);
    return ran;
}

static void run_calls(void *opaque, uint32_t events)
{
    struct event_loop *loop = opaque;
    struct event_call *c;
    uint64_t v;

    (void)events;
    if (read(loop->call_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&loop->lock);
    while ((c = loop->calls)) {
        loop->calls = c->next;
        c->running = true;
        pthread_mutex_unlock(&loop->lock);
        c->ret = c->fn(c->arg);
        pthread_mutex_lock(&loop->lock);
        c->done = true;
    }
    pthread_cond_broadcast(&loop->call_done);
    pthread_mutex_unlock(&loop->lock);
}

int event_loop_call(struct event_loop *loop, int (*fn)(void *arg), void *arg)
{
    struct event_call call = {.fn = fn, .arg = arg};
    struct event_call **tail;
    uint64_t one = 1;

    if (pthread_equal(pthread_self(), loop->thread))
        return fn(arg);
    pthread_mutex_lock(&loop->lock);
    if (loop->calls_closed) {
        pthread_mutex_unlock(&loop->lock);
        return -ESHUTDOWN;
    }
    for (tail = &loop->calls; *tail; tail = &(*tail)->next)
        ;
    *tail = &call;
    if (write(loop->call_efd, &one, sizeof(one)) < 0)
        call.ret = -errno; /* the counter is full: the loop is already due to run */
    while (!call.done && (call.running || !loop->calls_closed))
        pthread_cond_wait(&loop->call_done, &loop->lock);
    if (!call.done) { /* closed before it ran: take it off the queue */
        for (tail = &loop->calls; *tail && *tail != &call; tail = &(*tail)->next)
            ;
        if (*tail)
            *tail = call.next;
        call.ret = -ESHUTDOWN;
    }
    pthread_mutex_unlock(&loop->lock);
    return call.ret;
}

int event_loop_wait_calls(struct event_loop *loop, int fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = loop->call_efd, .events = POLLIN}};
    int n;

    if (!pthread_equal(pthread_self(), loop->thread))
        return -EPERM;
    n = poll(p, 2, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (p[1].revents)
        run_calls(loop, p[1].revents);
    return p[0].revents ? 1 : 0;
}

void event_loop_open_calls(struct event_loop *loop)
{
    pthread_mutex_lock(&loop->lock);
    loop->calls_closed = false;
    pthread_mutex_unlock(&loop->lock);
}

void event_loop_close_calls(struct event_loop *loop)
{
    pthread_mutex_lock(&loop->lock);
    loop->calls_closed = true;
    pthread_cond_broadcast(&loop->call_done);
    pthread_mutex_unlock(&loop->lock);
}
