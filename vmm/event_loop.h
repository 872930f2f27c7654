/* The main thread's epoll loop. Handlers run on the loop thread and never block.
 * Sources may be added and removed from any thread; other threads can also run a
 * function on the loop thread and wait for it (event_loop_call). */
#ifndef VMM_EVENT_LOOP_H
#define VMM_EVENT_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef void (*event_handler_fn)(void *opaque, uint32_t events);

struct event_source;
struct event_call;

struct event_loop {
    int epfd;
    pthread_mutex_t lock;
    pthread_cond_t call_done;
    struct event_source *sources; /* all registrations, dead ones freed after dispatch */
    struct event_call *calls;     /* waiting for the loop thread */
    int call_efd;
    bool calls_closed;
    pthread_t thread; /* the loop thread: the one that called event_loop_init */
};

int event_loop_init(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);

/* events are EPOLLIN/EPOLLOUT/...; returns 0 or -errno (-EEXIST for a watched fd). */
int event_loop_add(struct event_loop *loop, int fd, uint32_t events, event_handler_fn fn,
                   void *opaque);
int event_loop_del(struct event_loop *loop, int fd);
/* Changes the events a watched fd waits for; -ENOENT if it is not watched. */
int event_loop_mod(struct event_loop *loop, int fd, uint32_t events);

/* Waits up to timeout_ms (-1: forever) and dispatches; returns handlers run or -errno. */
int event_loop_run_once(struct event_loop *loop, int timeout_ms);

/* Runs fn(arg) on the loop thread and returns its result; on the loop thread it
 * runs at once. -ESHUTDOWN once calls are closed. */
int event_loop_call(struct event_loop *loop, int (*fn)(void *arg), void *arg);
/* Fails every waiting and future call: for shutdown, before joining threads that
 * may be waiting in event_loop_call. */
void event_loop_close_calls(struct event_loop *loop);
/* On the loop thread, for a function there that waits for threads which may
 * themselves wait in event_loop_call: waits up to timeout_ms for fd to be
 * readable, running the calls posted meanwhile. Returns 1 when fd is readable,
 * 0 otherwise (timeout, calls run, a signal), -errno on error. */
int event_loop_wait_calls(struct event_loop *loop, int fd, int timeout_ms);
/* Accepts calls again (the vCPUs restart after a guest reboot). */
void event_loop_open_calls(struct event_loop *loop);

#endif
