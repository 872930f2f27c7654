/* An epoll loop: vmm's main thread runs one, and each NIC runs one on a thread of
 * its own (event_thread). Handlers run on the loop thread. Sources may be added and
 * removed from any thread; other threads can also hand a function to the loop
 * thread, without waiting (event_loop_post) or waiting for its result
 * (event_loop_call). Whoever waits holds no lock meanwhile (README, "Threads"). */
#ifndef VMM_COMMON_EVENT_LOOP_H
#define VMM_COMMON_EVENT_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
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
/* Whether fd is watched (for checks and tests). */
bool event_loop_watching(struct event_loop *loop, int fd);

/* Waits up to timeout_ms (-1: forever) and dispatches; returns handlers run or -errno. */
int event_loop_run_once(struct event_loop *loop, int timeout_ms);

/* Runs fn(arg) on the loop thread and returns its result; on the loop thread it
 * runs at once. -ESHUTDOWN once calls are closed. */
int event_loop_call(struct event_loop *loop, int (*fn)(void *arg), void *arg);
/* Queues fn(arg) to run on the loop thread after the calls queued before it, and
 * returns at once (also on the loop thread: it runs on a later dispatch). 0, or
 * -ESHUTDOWN once calls are closed (fn will not run), -ENOMEM. */
int event_loop_post(struct event_loop *loop, void (*fn)(void *arg), void *arg);
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

/* A loop on a thread of its own, named name (at most 15 characters: the kernel's
 * limit), dispatching until event_thread_stop. */
struct event_thread {
    struct event_loop loop;
    pthread_t thread;
    bool started;
    int (*init)(void *arg); /* the thread's first act (its seccomp filter) */
    void *init_arg;
    int init_ret;
    bool init_done;
    atomic_bool stop; /* set on the loop thread, after what was queued before */
    char name[16];
};

/* The loop alone: sources may be added and calls posted before its thread runs
 * (they wait for it). */
int event_thread_init(struct event_thread *t, const char *name);
/* Starts the thread; init(arg), when given, runs on it first (vmm: its seccomp
 * filter) and nothing else runs there if it fails: its error is returned here.
 * Returns once the loop belongs to the thread. */
int event_thread_run(struct event_thread *t, int (*init)(void *arg), void *arg);
/* event_thread_init, then event_thread_run without init. */
int event_thread_start(struct event_thread *t, const char *name);
/* Ends the loop after what is queued and joins the thread: whoever owns a handler
 * that can block must unblock it first (shutdown() its socket). Idempotent. The
 * loop stays initialised (sources may still be removed) until event_thread_destroy. */
void event_thread_stop(struct event_thread *t);
void event_thread_destroy(struct event_thread *t);

#endif
