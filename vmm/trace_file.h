/* The --vhost-trace sink: one file (or stderr) every NIC's vhost-user trace lines go to. */
#ifndef VMM_TRACE_FILE_H
#define VMM_TRACE_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct trace_file {
    FILE *f;
    bool owned;       /* opened here (not stderr): closed by trace_file_close */
    int64_t start_us; /* CLOCK_MONOTONIC at vmm's start: time 0 of the trace */
};

int64_t trace_file_now_us(void);
/* path "-" is stderr; a file is created or truncated. Line-buffered. Logs why it failed. */
int trace_file_open(struct trace_file *t, const char *path, int64_t start_us);
/* "SECONDS.MICROS ID LINE": time_us is CLOCK_MONOTONIC. Thread-safe (one stdio call). */
void trace_file_write(struct trace_file *t, const char *id, int64_t time_us, const char *line);
void trace_file_close(struct trace_file *t);

#endif
