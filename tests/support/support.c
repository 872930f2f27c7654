#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static support_fail_fn fail_hook;

void support_set_fail(support_fail_fn fail)
{
    fail_hook = fail;
}

void support_fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (fail_hook)
        fail_hook(msg);
    /* A hook that returned (or none): the failure must still end the test. */
    fprintf(stderr, "test support: %s\n", msg);
    abort();
}

int64_t support_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void support_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

int support_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (!d)
        support_fail("cannot open /proc/self/fd");
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}
