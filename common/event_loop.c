#include "event_loop.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
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

/* A waited-for call lives on its caller's stack; a posted one (post_fn set) is
 * malloc'ed and freed by the loop once it ran or was dropped. */
struct event_call {
    int (*fn)(void *arg);
    void (*post_fn)(void *arg);
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

/* Posts that never ran: their functions are not called. */
static void free_posted(struct event_loop *loop)
{
    struct event_call **pp;

    pthread_mutex_lock(&loop->lock);
    pp = &loop->calls;
    while (*pp) {
        struct event_call *c = *pp;

        if (c->post_fn) {
            *pp = c->next;
            free(c);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&loop->lock);
}

void event_loop_destroy(struct event_loop *loop)
{
    if (loop->epfd < 0 && loop->call_efd < 0)
        return; /* never initialised, or destroyed already */
    event_loop_close_calls(loop);
    free_posted(loop);
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

bool event_loop_watching(struct event_loop *loop, int fd)
{
    bool found;

    pthread_mutex_lock(&loop->lock);
    found = find_live(loop, fd) != NULL;
    pthread_mutex_unlock(&loop->lock);
    return found;
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

/* Only the calls queued when it starts: a call that posts another (a NIC's
 * bounded batch going on later) lets the rest of the loop run in between. */
static void run_calls(void *opaque, uint32_t events)
{
    struct event_loop *loop = opaque;
    struct event_call *c, *batch;
    uint64_t v;

    (void)events;
    if (read(loop->call_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&loop->lock);
    batch = loop->calls;
    loop->calls = NULL;
    /* Taken, all of them: a waiter whose call is in the batch must wait for it. */
    for (c = batch; c; c = c->next)
        c->running = true;
    while ((c = batch)) {
        bool posted = c->post_fn != NULL;

        batch = c->next;
        pthread_mutex_unlock(&loop->lock);
        if (posted) {
            c->post_fn(c->arg);
            free(c); /* nobody waits for it: gone now */
        } else {
            c->ret = c->fn(c->arg);
        }
        pthread_mutex_lock(&loop->lock);
        if (!posted)
            c->done = true;
    }
    pthread_cond_broadcast(&loop->call_done);
    pthread_mutex_unlock(&loop->lock);
}

/* Caller holds loop->lock and has checked calls_closed. */
static void queue_call(struct event_loop *loop, struct event_call *call)
{
    struct event_call **tail;
    uint64_t one = 1;

    for (tail = &loop->calls; *tail; tail = &(*tail)->next)
        ;
    *tail = call;
    /* A full counter (EAGAIN) means the loop is already due to run. */
    if (write(loop->call_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        call->ret = -errno;
}

int event_loop_post(struct event_loop *loop, void (*fn)(void *arg), void *arg)
{
    struct event_call *call = calloc(1, sizeof(*call));

    if (!call)
        return -ENOMEM;
    *call = (struct event_call){.post_fn = fn, .arg = arg};
    pthread_mutex_lock(&loop->lock);
    if (loop->calls_closed) {
        pthread_mutex_unlock(&loop->lock);
        free(call);
        return -ESHUTDOWN;
    }
    queue_call(loop, call);
    pthread_mutex_unlock(&loop->lock);
    return 0;
}

int event_loop_call(struct event_loop *loop, int (*fn)(void *arg), void *arg)
{
    struct event_call call = {.fn = fn, .arg = arg};
    struct event_call **tail;

    if (pthread_equal(pthread_self(), loop->thread))
        return fn(arg);
    pthread_mutex_lock(&loop->lock);
    if (loop->calls_closed) {
        pthread_mutex_unlock(&loop->lock);
        return -ESHUTDOWN;
    }
    queue_call(loop, &call);
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

/* ---- a loop on a thread of its own ---- */

static void *event_thread_main(void *arg)
{
    struct event_thread *t = arg;
    int ret;

    /* The name shows in /proc/PID/task/TID/comm, top and gdb: which NIC is which
     * (named before init: a sandbox may not allow it afterwards). */
    pthread_setname_np(pthread_self(), t->name);
    ret = t->init ? t->init(t->init_arg) : 0;
    pthread_mutex_lock(&t->loop.lock);
    t->init_ret = ret;
    t->init_done = true;
    pthread_cond_broadcast(&t->loop.call_done);
    pthread_mutex_unlock(&t->loop.lock);
    while (!ret && !atomic_load(&t->stop)) {
        int n = event_loop_run_once(&t->loop, -1);

        if (n < 0 && n != -EINTR)
            break;
    }
    return NULL;
}

int event_thread_init(struct event_thread *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    return event_loop_init(&t->loop);
}

static const int sync_signals[] = {SIGSYS, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};

int event_thread_run(struct event_thread *t, int (*init)(void *arg), void *arg)
{
    sigset_t all, old;
    int ret;

    t->init = init;
    t->init_arg = arg;
    /* The loop is the new thread's before it runs anything: calls from this
     * thread must queue, not run here. The thread takes no signal (vmm's main loop
     * reads them from a signalfd): it starts with every one blocked. */
    sigfillset(&all);
    /* Not the synchronous ones: a blocked SIGSYS (a seccomp refusal) would kill vmm
     * without the line that names the call. */
    for (size_t i = 0; i < sizeof(sync_signals) / sizeof(sync_signals[0]); i++)
        sigdelset(&all, sync_signals[i]);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_mutex_lock(&t->loop.lock);
    ret = pthread_create(&t->thread, NULL, event_thread_main, t);
    if (!ret)
        t->loop.thread = t->thread;
    /* A short wait, no other lock held: init is the thread's own set-up. */
    while (!ret && !t->init_done)
        pthread_cond_wait(&t->loop.call_done, &t->loop.lock);
    pthread_mutex_unlock(&t->loop.lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret)
        return -ret;
    if (t->init_ret) {
        pthread_join(t->thread, NULL);
        t->loop.thread = pthread_self();
        return t->init_ret;
    }
    t->started = true;
    return 0;
}

int event_thread_start(struct event_thread *t, const char *name)
{
    int ret = event_thread_init(t, name);

    if (!ret)
        ret = event_thread_run(t, NULL, NULL);
    if (ret)
        event_loop_destroy(&t->loop);
    return ret;
}

static void mark_stop(void *arg)
{
    struct event_thread *t = arg;

    atomic_store(&t->stop, true);
}

void event_thread_stop(struct event_thread *t)
{
    uint64_t one = 1;

    if (!t->started)
        return;
    /* After what is queued: a NIC's last jobs (its rings' stop) still run. Without
     * memory for the post, or with calls closed, the flag alone ends it. */
    if (event_loop_post(&t->loop, mark_stop, t)) {
        atomic_store(&t->stop, true);
        if (write(t->loop.call_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            pr_err("%s: cannot wake its loop: %s", t->name, strerror(errno));
    }
    pthread_join(t->thread, NULL);
    t->started = false;
    t->loop.thread = pthread_self();
}

void event_thread_destroy(struct event_thread *t)
{
    event_thread_stop(t);
    event_loop_destroy(&t->loop);
}
