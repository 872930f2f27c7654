#include "trace_file.h"

#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t trace_file_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int trace_file_open(struct trace_file *t, const char *path, int64_t start_us)
{
    *t = (struct trace_file){.fd = -1, .start_us = start_us};
    if (!strcmp(path, "-")) {
        t->fd = STDERR_FILENO;
        return 0;
    }
    t->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        int err = errno;

        pr_err("cannot open the --vhost-trace file '%s': %s", path, strerror(err));
        return -err;
    }
    t->owned = true;
    return 0;
}

void trace_file_write(struct trace_file *t, const char *id, int64_t time_us, const char *line)
{
    char buf[TRACE_FILE_LINE_MAX];
    int64_t us = time_us - t->start_us;
    int n;

    if (us < 0) /* cannot happen with one clock; keeps the column parseable if it does */
        us = 0;
    n = snprintf(buf, sizeof(buf), "%" PRId64 ".%06" PRId64 " %s %s\n", us / 1000000, us % 1000000,
                 id, line);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf)) {
        memcpy(buf + sizeof(buf) - 5, "...\n", 5);
        n = sizeof(buf) - 1;
    }
    /* A trace is best effort: a full disk must not stop the NIC. */
    ssize_t w = write(t->fd, buf, (size_t)n);
    (void)w;
}

void trace_file_close(struct trace_file *t)
{
    if (t->owned && t->fd >= 0 && close(t->fd))
        pr_warn("closing the --vhost-trace file: %s", strerror(errno));
    *t = (struct trace_file){.fd = -1};
}
