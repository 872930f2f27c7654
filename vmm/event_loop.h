/* The main thread's epoll loop. Handlers run on the main thread and never block. */
#ifndef VMM_EVENT_LOOP_H
#define VMM_EVENT_LOOP_H

#include <stdint.h>

typedef void (*event_handler_fn)(void *opaque, uint32_t events);

struct event_source;

struct event_loop {
    int epfd;
    struct event_source *sources; /* all registrations, dead ones freed after dispatch */
};

int event_loop_init(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);

/* events are EPOLLIN/EPOLLOUT/...; returns 0 or -errno. */
int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_handler_fn fn,
                   void *opaque);
int event_loop_del(struct event_loop *loop, int fd);

/* Waits up to timeout_ms (-1: forever) and dispatches; returns handlers run or -errno. */
int event_loop_run_once(struct event_loop *loop, int timeout_ms);

#endif
