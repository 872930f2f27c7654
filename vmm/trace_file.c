#include "trace_file.h"

#include "../common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

int64_t trace_file_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int trace_file_open(struct trace_file *t, const char *path, int64_t start_us)
{
    *t = (struct trace_file){.start_us = start_us};
    if (!strcmp(path, "-")) {
        t->f = stderr;
        return 0;
    }
    t->f = fopen(path, "we");
    if (!t->f) {
        int err = errno;

        pr_err("cannot open the --vhost-trace file '%s': %s", path, strerror(err));
        return -err;
    }
    t->owned = true;
    /* Whole lines reach the file as they happen, so a trace survives a crash or a kill. */
    setvbuf(t->f, NULL, _IOLBF, 0);
    return 0;
}

void trace_file_write(struct trace_file *t, const char *id, int64_t time_us, const char *line)
{
    int64_t us = time_us - t->start_us;

    if (us < 0) /* cannot happen with one clock; keeps the column parseable if it does */
        us = 0;
    fprintf(t->f, "%" PRId64 ".%06" PRId64 " %s %s\n", us / 1000000, us % 1000000, id, line);
}

void trace_file_close(struct trace_file *t)
{
    if (t->owned && t->f && fclose(t->f))
        pr_warn("closing the --vhost-trace file: %s", strerror(errno));
    *t = (struct trace_file){0};
}
