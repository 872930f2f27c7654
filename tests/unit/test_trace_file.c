/* The --vhost-trace sink: the time column, the id prefix, stderr for "-", open errors. */
#include "../../vmm/trace_file.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void setup(void)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/vmm-trace-test-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static void teardown(void)
{
    unlink(path);
}

static const char *read_back(char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

START_TEST(lines_have_time_since_start_then_id)
{
    struct trace_file t;
    char buf[512];

    ck_assert_int_eq(trace_file_open(&t, path, 5000000), 0);
    ck_assert(t.owned);
    trace_file_write(&t, "net0", 5000000, "-> GET_FEATURES flags=v1 size=0 fds=0");
    trace_file_write(&t, "net1", 6234567, "<- GET_FEATURES flags=v1|REPLY size=8");
    trace_file_write(&t, "net0", 125000001, "x");
    /* Every line is in the file before the close. */
    ck_assert_str_eq(read_back(buf, sizeof(buf)),
                     "0.000000 net0 -> GET_FEATURES flags=v1 size=0 fds=0\n"
                     "1.234567 net1 <- GET_FEATURES flags=v1|REPLY size=8\n"
                     "120.000001 net0 x\n");
    trace_file_close(&t);
    ck_assert(!trace_file_on(&t));
}
END_TEST

/* A line longer than the buffer is cut, still one line, its end marked. */
START_TEST(a_long_line_is_cut_and_marked)
{
    struct trace_file t;
    static char big[3 * TRACE_FILE_LINE_MAX], buf[2 * TRACE_FILE_LINE_MAX];
    const char *got;

    memset(big, 'x', sizeof(big) - 1);
    ck_assert_int_eq(trace_file_open(&t, path, 0), 0);
    trace_file_write(&t, "net0", 0, big);
    trace_file_write(&t, "net0", 0, "next");
    trace_file_close(&t);
    got = read_back(buf, sizeof(buf));
    ck_assert_uint_eq(strlen(got), TRACE_FILE_LINE_MAX - 1 + strlen("0.000000 net0 next\n"));
    ck_assert_msg(!strncmp(got + TRACE_FILE_LINE_MAX - 5, "...\n0.000000 net0 next\n", 24), "%s",
                  got + TRACE_FILE_LINE_MAX - 5);
}
END_TEST

START_TEST(open_truncates_an_old_trace)
{
    struct trace_file t;
    char buf[64];
    FILE *f = fopen(path, "w");

    fputs("old contents\n", f);
    fclose(f);
    ck_assert_int_eq(trace_file_open(&t, path, 0), 0);
    trace_file_close(&t);
    ck_assert_str_eq(read_back(buf, sizeof(buf)), "");
}
END_TEST

START_TEST(dash_is_stderr_and_not_closed)
{
    struct trace_file t;

    ck_assert_int_eq(trace_file_open(&t, "-", 0), 0);
    ck_assert_int_eq(t.fd, STDERR_FILENO);
    ck_assert(!t.owned);
    trace_file_close(&t);
    ck_assert_int_ne(fcntl(STDERR_FILENO, F_GETFD), -1);
}
END_TEST

START_TEST(open_failure_returns_errno)
{
    struct trace_file t;

    ck_assert_int_eq(trace_file_open(&t, "/nonexistent-dir/trace.log", 0), -ENOENT);
    ck_assert(!trace_file_on(&t));
    trace_file_close(&t); /* harmless after a failed open */
}
END_TEST

START_TEST(now_is_monotonic_microseconds)
{
    int64_t a = trace_file_now_us(), b;

    usleep(2000);
    b = trace_file_now_us();
    ck_assert_int_ge(b - a, 2000);
    ck_assert_int_lt(b - a, 2000000);
}
END_TEST

static Suite *trace_file_suite(void)
{
    Suite *s = suite_create("trace_file");
    TCase *tc = tcase_create("trace_file");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, lines_have_time_since_start_then_id);
    tcase_add_test(tc, open_truncates_an_old_trace);
    tcase_add_test(tc, a_long_line_is_cut_and_marked);
    tcase_add_test(tc, dash_is_stderr_and_not_closed);
    tcase_add_test(tc, open_failure_returns_errno);
    tcase_add_test(tc, now_is_monotonic_microseconds);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(trace_file_suite)
