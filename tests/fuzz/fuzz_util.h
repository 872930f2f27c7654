/* Shared by the fuzz targets: failing loudly and counting open fds. */
#ifndef VMM_TESTS_FUZZ_UTIL_H
#define VMM_TESTS_FUZZ_UTIL_H

#include "../../common/log.h"
#include "../support/support.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Where fuzz_fail writes: stderr, kept open when libFuzzer's -close_fd_mask=2 silences
 * the library's log lines (LLVMFuzzerInitialize runs before it closes stderr:
 * fuzz_keep_stderr). */
static int fuzz_err_fd = STDERR_FILENO;

/* A broken invariant: the message, then abort() so the fuzzer keeps the input. */
static inline void __attribute__((noreturn, format(printf, 1, 2))) fuzz_fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dprintf(fuzz_err_fd, "fuzz: invariant broken: %s\n", msg);
    abort();
}

/* A helper of tests/support that fails (the fake platform refusing a call, ...)
 * breaks an invariant too. */
static inline void fuzz_support_fail(const char *msg)
{
    fuzz_fail("%s", msg);
}

static inline void fuzz_keep_stderr(void)
{
    int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);

    if (fd >= 0)
        fuzz_err_fd = fd;
    support_set_fail(fuzz_support_fail);
}

/* VMM_FUZZ_DEBUG=1 shows the library's debug lines (the vhost-user trace, device logs). */
static inline void fuzz_log_level(void)
{
    if (getenv("VMM_FUZZ_DEBUG"))
        log_set_level(LOG_DEBUG);
}

static inline int fuzz_count_fds(void)
{
    return support_count_fds();
}

/* The legacy devices' outside world, for the targets that build a machine: an
 * interrupt line to nowhere, a reset that does nothing, a fixed clock (an input
 * replays the same). */
static inline void fuzz_irq_set(void *opaque, uint32_t irq, int level)
{
    (void)opaque, (void)irq, (void)level;
}

static inline void fuzz_reset_cpu(void *opaque)
{
    (void)opaque;
}

static inline time_t fuzz_fixed_time(void)
{
    return 1700000000;
}

/* Every fd the library received or created during one input is closed again. */
static inline void fuzz_check_fds(int before)
{
    int after = fuzz_count_fds();

    if (after != before)
        fuzz_fail("%d fds open before the input, %d after", before, after);
}

#endif
