#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_level current_level = LOG_INFO;
static _Thread_local struct log_held *held;

void log_hold(struct log_held *h)
{
    h->first[0] = '\0';
    h->count = 0;
    held = h;
}

void log_release(void)
{
    held = NULL;
}

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const prefix[] = {"error: ", "warning: ", "", "debug: "};
    char line[1024];
    va_list ap;
    int n;

    if (level > current_level && !(held && level <= LOG_WARN))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (held && level <= LOG_WARN) {
        if (!held->count++) {
            /* Cut to fit: the held line goes into a longer one. */
            memcpy(held->first, line, sizeof(held->first) - 1);
            held->first[sizeof(held->first) - 1] = '\0';
        }
        if (current_level < LOG_DEBUG)
            return;
        level = LOG_DEBUG;
    }
    /* One fprintf per line keeps lines from different threads whole. */
    n = fprintf(stderr, "vmm: %s%s\n", prefix[level], line);
    (void)n;
}
