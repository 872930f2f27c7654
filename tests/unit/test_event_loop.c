/* The epoll loop over pipes: dispatch, removal, and removal from inside a handler. */
#include "../../common/event_loop.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define NPIPES 3

struct source {
    int rfd, wfd;
    int calls;
    uint32_t events;
    int victim; /* index of the pipe this handler unregisters, or -1 */
};

static struct event_loop loop;
static struct source src[NPIPES];

static void on_readable(void *opaque, uint32_t events)
{
    struct source *s = opaque;
    char buf[16];

    s->calls++;
    s->events = events;
    while (read(s->rfd, buf, sizeof(buf)) > 0)
        ;
    if (s->victim >= 0)
        ck_assert_int_eq(event_loop_del(&loop, src[s->victim].rfd), 0);
}

static void setup(void)
{
    int fds[2];

    ck_assert_int_eq(event_loop_init(&loop), 0);
    for (int i = 0; i < NPIPES; i++) {
        ck_assert_int_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
        src[i] = (struct source){.rfd = fds[0], .wfd = fds[1], .victim = -1};
    }
}

static void teardown(void)
{
    event_loop_destroy(&loop);
    for (int i = 0; i < NPIPES; i++) {
        close(src[i].rfd);
        close(src[i].wfd);
    }
}

static void add(int i)
{
    ck_assert_int_eq(event_loop_add(&loop, src[i].rfd, EPOLLIN, on_readable, &src[i]), 0);
}

static void poke(int i)
{
    ck_assert_int_eq(write(src[i].wfd, "x", 1), 1);
}

START_TEST(handler_runs_when_readable)
{
    add(0);
    add(1);
    poke(0);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 1);
    ck_assert_int_eq(src[0].calls, 1);
    ck_assert_uint_eq(src[0].events & EPOLLIN, EPOLLIN);
    ck_assert_int_eq(src[1].calls, 0);
}
END_TEST

START_TEST(run_once_idle_returns_zero)
{
    add(0);
    ck_assert_int_eq(event_loop_run_once(&loop, 0), 0);
    ck_assert_int_eq(src[0].calls, 0);
}
END_TEST

START_TEST(run_once_counts_every_handler)
{
    add(0);
    add(1);
    add(2);
    poke(0);
    poke(2);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 2);
    ck_assert_int_eq(src[0].calls + src[1].calls + src[2].calls, 2);
    ck_assert_int_eq(src[1].calls, 0);
}
END_TEST

START_TEST(del_stops_dispatch)
{
    add(0);
    ck_assert_int_eq(event_loop_del(&loop, src[0].rfd), 0);
    poke(0);
    ck_assert_int_eq(event_loop_run_once(&loop, 0), 0);
    ck_assert_int_eq(src[0].calls, 0);
}
END_TEST

START_TEST(del_unknown_fd_is_enoent)
{
    add(0);
    ck_assert_int_eq(event_loop_del(&loop, src[1].rfd), -ENOENT);
    ck_assert_int_eq(event_loop_del(&loop, src[0].rfd), 0);
    ck_assert_int_eq(event_loop_del(&loop, src[0].rfd), -ENOENT);
}
END_TEST

/* Both ready in one batch, each deletes the other: whichever runs first wins, the
 * other's queued event must be skipped without touching freed memory. */
START_TEST(del_from_handler_in_same_batch_is_safe)
{
    add(0);
    add(1);
    src[0].victim = 1;
    src[1].victim = 0;
    poke(0);
    poke(1);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 1);
    ck_assert_int_eq(src[0].calls + src[1].calls, 1);
    src[0].victim = src[1].victim = -1;
    poke(0);
    poke(1);
    ck_assert_int_eq(event_loop_run_once(&loop, 0), 1);
    ck_assert_int_eq(src[0].calls + src[1].calls, 2);
}
END_TEST

static void del_self(void *opaque, uint32_t events)
{
    struct source *s = opaque;

    (void)events;
    s->calls++;
    ck_assert_int_eq(event_loop_del(&loop, s->rfd), 0);
}

START_TEST(del_self_from_handler_is_safe)
{
    ck_assert_int_eq(event_loop_add(&loop, src[0].rfd, EPOLLIN, del_self, &src[0]), 0);
    poke(0);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 1);
    ck_assert_int_eq(event_loop_run_once(&loop, 0), 0);
    ck_assert_int_eq(src[0].calls, 1);
}
END_TEST

START_TEST(fd_can_be_added_again_after_del)
{
    add(0);
    ck_assert_int_eq(event_loop_del(&loop, src[0].rfd), 0);
    add(0);
    poke(0);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 1);
    ck_assert_int_eq(src[0].calls, 1);
}
END_TEST

START_TEST(add_same_fd_twice_fails)
{
    add(0);
    ck_assert_int_eq(event_loop_add(&loop, src[0].rfd, EPOLLIN, on_readable, &src[1]), -EEXIST);
    poke(0);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 1);
    ck_assert_int_eq(src[0].calls, 1);
    ck_assert_int_eq(src[1].calls, 0);
}
END_TEST

START_TEST(add_bad_fd_fails)
{
    ck_assert_int_eq(event_loop_add(&loop, -1, EPOLLIN, on_readable, &src[0]), -EBADF);
}
END_TEST

static void on_event(void *opaque, uint32_t events)
{
    struct source *s = opaque;

    s->calls++;
    s->events = events;
}

START_TEST(mod_changes_the_events_waited_for)
{
    ck_assert_int_eq(event_loop_add(&loop, src[0].wfd, EPOLLIN, on_event, &src[0]), 0);
    ck_assert_int_eq(event_loop_run_once(&loop, 0), 0); /* a write end is never readable */
    ck_assert_int_eq(event_loop_mod(&loop, src[0].wfd, EPOLLOUT), 0);
    ck_assert_int_eq(event_loop_run_once(&loop, 0), 1);
    ck_assert_uint_eq(src[0].events & EPOLLOUT, EPOLLOUT);
    ck_assert_int_eq(event_loop_mod(&loop, src[0].wfd, EPOLLIN), 0);
    ck_assert_int_eq(event_loop_run_once(&loop, 0), 0);
    ck_assert_int_eq(src[0].calls, 1);
}
END_TEST

START_TEST(mod_unknown_fd_is_enoent)
{
    ck_assert_int_eq(event_loop_mod(&loop, src[0].rfd, EPOLLIN), -ENOENT);
    add(0);
    ck_assert_int_eq(event_loop_del(&loop, src[0].rfd), 0);
    ck_assert_int_eq(event_loop_mod(&loop, src[0].rfd, EPOLLIN), -ENOENT);
}
END_TEST

static int mark_call(void *arg)
{
    int *ran = arg;

    (*ran)++;
    return 42;
}

struct call_result {
    int ran, ret;
};

/* Like a vCPU: waits for the loop to run a call, then signals the pipe. */
static void *call_then_poke(void *arg)
{
    struct call_result *r = arg;

    r->ret = event_loop_call(&loop, mark_call, &r->ran);
    if (write(src[0].wfd, "x", 1) != 1)
        r->ret = -EIO;
    return NULL;
}

START_TEST(wait_calls_runs_calls_while_waiting)
{
    struct call_result r = {0};
    pthread_t t;
    int ret = 0;

    ck_assert_int_eq(pthread_create(&t, NULL, call_then_poke, &r), 0);
    for (int i = 0; i < 100 && ret == 0; i++)
        ret = event_loop_wait_calls(&loop, src[0].rfd, 100);
    ck_assert_int_eq(ret, 1);
    pthread_join(t, NULL);
    ck_assert_int_eq(r.ran, 1);
    ck_assert_int_eq(r.ret, 42);
}
END_TEST

START_TEST(wait_calls_times_out)
{
    ck_assert_int_eq(event_loop_wait_calls(&loop, src[0].rfd, 10), 0);
    poke(0);
    ck_assert_int_eq(event_loop_wait_calls(&loop, src[0].rfd, 10), 1);
}
END_TEST

static void *wait_calls_elsewhere(void *arg)
{
    static int ret;

    (void)arg;
    ret = event_loop_wait_calls(&loop, src[0].rfd, 0);
    return &ret;
}

START_TEST(wait_calls_only_on_the_loop_thread)
{
    pthread_t t;
    void *ret;

    ck_assert_int_eq(pthread_create(&t, NULL, wait_calls_elsewhere, NULL), 0);
    pthread_join(t, &ret);
    ck_assert_int_eq(*(int *)ret, -EPERM);
}
END_TEST

/* ---- posts: queued in order, never waited for ---- */

struct post_log {
    int order[8];
    int n;
    pthread_t ran_on[8];
};

static struct post_log plog;

static void record_post(void *arg)
{
    plog.ran_on[plog.n] = pthread_self();
    plog.order[plog.n++] = (int)(intptr_t)arg;
}

START_TEST(post_runs_later_in_order)
{
    plog = (struct post_log){0};
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(event_loop_post(&loop, record_post, (void *)(intptr_t)i), 0);
    ck_assert_int_eq(plog.n, 0); /* posted from the loop thread too: not at once */
    while (plog.n < 3)
        ck_assert_int_ge(event_loop_run_once(&loop, 1000), 1);
    ck_assert_int_eq(plog.order[0], 1);
    ck_assert_int_eq(plog.order[1], 2);
    ck_assert_int_eq(plog.order[2], 3);
}
END_TEST

/* A post that posts again runs its successor on a later dispatch: a bounded batch
 * lets the loop's other sources in between. */
static int reposts;

static void repost(void *arg)
{
    if (++reposts < 5)
        ck_assert_int_eq(event_loop_post(&loop, repost, arg), 0);
}

START_TEST(post_from_a_post_waits_for_the_next_dispatch)
{
    reposts = 0;
    ck_assert_int_eq(event_loop_post(&loop, repost, NULL), 0);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 1);
    ck_assert_int_eq(reposts, 1);
    poke(0);
    add(0);
    ck_assert_int_eq(event_loop_run_once(&loop, 1000), 2); /* the pipe and one post */
    ck_assert_int_eq(reposts, 2);
    ck_assert_int_eq(src[0].calls, 1);
}
END_TEST

START_TEST(post_after_close_is_refused_and_never_runs)
{
    plog = (struct post_log){0};
    ck_assert_int_eq(event_loop_post(&loop, record_post, (void *)1), 0);
    event_loop_close_calls(&loop);
    ck_assert_int_eq(event_loop_post(&loop, record_post, (void *)2), -ESHUTDOWN);
    ck_assert_int_eq(event_loop_run_once(&loop, 100), 1);
    ck_assert_int_eq(plog.n, 1); /* queued before the close: it still runs */
    ck_assert_int_eq(plog.order[0], 1);
    event_loop_open_calls(&loop);
}
END_TEST

/* ---- event_thread: a loop on its own thread ---- */

static int on_thread(void *arg)
{
    pthread_t *self = arg;

    *self = pthread_self();
    return 7;
}

START_TEST(event_thread_runs_calls_and_posts_on_its_thread)
{
    struct event_thread t;
    pthread_t seen = pthread_self();

    plog = (struct post_log){0};
    ck_assert_int_eq(event_thread_start(&t, "vmm-test-loop"), 0);
    ck_assert_int_eq(event_loop_post(&t.loop, record_post, (void *)1), 0);
    ck_assert_int_eq(event_loop_call(&t.loop, on_thread, &seen), 7);
    ck_assert(pthread_equal(seen, t.thread));
    ck_assert_int_eq(plog.n, 1); /* the post queued before the call ran before it */
    ck_assert(pthread_equal(plog.ran_on[0], t.thread));
    /* What is queued when it stops still runs. */
    ck_assert_int_eq(event_loop_post(&t.loop, record_post, (void *)2), 0);
    event_thread_stop(&t);
    ck_assert_int_eq(plog.n, 2);
    event_thread_stop(&t); /* idempotent */
    event_thread_destroy(&t);
}
END_TEST

static Suite *event_loop_suite(void)
{
    Suite *s = suite_create("event_loop");
    TCase *tc = tcase_create("event_loop");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, handler_runs_when_readable);
    tcase_add_test(tc, run_once_idle_returns_zero);
    tcase_add_test(tc, run_once_counts_every_handler);
    tcase_add_test(tc, del_stops_dispatch);
    tcase_add_test(tc, del_unknown_fd_is_enoent);
    tcase_add_test(tc, del_from_handler_in_same_batch_is_safe);
    tcase_add_test(tc, del_self_from_handler_is_safe);
    tcase_add_test(tc, fd_can_be_added_again_after_del);
    tcase_add_test(tc, add_same_fd_twice_fails);
    tcase_add_test(tc, add_bad_fd_fails);
    tcase_add_test(tc, mod_changes_the_events_waited_for);
    tcase_add_test(tc, mod_unknown_fd_is_enoent);
    tcase_add_test(tc, wait_calls_runs_calls_while_waiting);
    tcase_add_test(tc, wait_calls_times_out);
    tcase_add_test(tc, wait_calls_only_on_the_loop_thread);
    tcase_add_test(tc, post_runs_later_in_order);
    tcase_add_test(tc, post_from_a_post_waits_for_the_next_dispatch);
    tcase_add_test(tc, post_after_close_is_refused_and_never_runs);
    tcase_add_test(tc, event_thread_runs_calls_and_posts_on_its_thread);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(event_loop_suite)
