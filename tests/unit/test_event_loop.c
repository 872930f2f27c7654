/* The epoll loop over pipes: dispatch, removal, and removal from inside a handler. */
#include "../../vmm/event_loop.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
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
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(event_loop_suite)
