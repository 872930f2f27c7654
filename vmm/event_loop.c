#include "event_loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENT_BATCH 16

struct event_source {
    int fd;
    bool dead;
    event_handler_fn fn;
    void *opaque;
    struct event_source *next;
};

int event_loop_init(struct event_loop *loop)
{
    loop->sources = NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    return loop->epfd < 0 ? -errno : 0;
}

static void event_loop_reap(struct event_loop *loop)
{
    struct event_source **pp = &loop->sources;

    while (*pp) {
        struct event_source *s = *pp;

        if (s->dead) {
            *pp = s->next;
            free(s);
        } else {
            pp = &s->next;
        }
    }
}

void event_loop_destroy(struct event_loop *loop)
{
    for (struct event_source *s = loop->sources; s; s = s->next)
        s->dead = true;
    event_loop_reap(loop);
    if (loop->epfd >= 0)
        close(loop->epfd);
    loop->epfd = -1;
}

int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_handler_fn fn,
                   void *opaque)
{
    struct event_source *s = calloc(1, sizeof(*s));
    struct epoll_event ev = {.events = events};

    if (!s)
        return -ENOMEM;
    *s = (struct event_source){.fd = fd, .fn = fn, .opaque = opaque, .next = loop->sources};
    ev.data.ptr = s;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int ret = -errno;
        free(s);
        return ret;
    }
    loop->sources = s;
    return 0;
}

int event_loop_del(struct event_loop *loop, int fd)
{
    for (struct event_source *s = loop->sources; s; s = s->next) {
        if (s->fd == fd && !s->dead) {
            s->dead = true; /* freed after the current dispatch: its event may be queued */
            epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
            return 0;
        }
    }
    return -ENOENT;
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

        if (s->dead)
            continue;
        s->fn(s->opaque, events[i].events);
        ran++;
    }
    event_loop_reap(loop);
    return ran;
}
