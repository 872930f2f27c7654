/* The --vhost-trace sink: one file (or stderr) every NIC's vhost-user trace lines go to. */
#ifndef VMM_TRACE_FILE_H
#define VMM_TRACE_FILE_H

#include <stdbool.h>
#include <stdint.h>

struct trace_file {
    int fd;           /* -1: no trace */
    bool owned;       /* opened here (not stderr): closed by trace_file_close */
    int64_t start_us; /* CLOCK_MONOTONIC at vmm's start: time 0 of the trace */
};

#define TRACE_FILE_LINE_MAX 1024 /* longer lines are cut, ending in "..." */

int64_t trace_file_now_us(void);
/* path "-" is stderr; a file is created or truncated. Logs why it failed. */
int trace_file_open(struct trace_file *t, const char *path, int64_t start_us);
static inline bool trace_file_on(const struct trace_file *t)
{
    return t->fd >= 0;
}
/* "SECONDS.MICROS ID LINE": time_us is CLOCK_MONOTONIC. One write(2) per line: lines
 * of several NICs' threads never interleave, each is in the file as it happens (a
 * trace survives a crash or a kill), and no stdio buffer is set up on the NIC's
 * thread, whose sandbox has no fstat. */
void trace_file_write(struct trace_file *t, const char *id, int64_t time_us, const char *line);
void trace_file_close(struct trace_file *t);

#endif
