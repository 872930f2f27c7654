/* What every helper in tests/support shares: one way to fail. A Check suite fails
 * the running test (tests/unit/check_main.h installs that), a fuzz target aborts
 * with the input kept (fuzz_fail); without a hook the message goes to stderr and the
 * process aborts. Helpers fail only on the test's own thread: a helper thread (the
 * scripted backend) records its errors for the test to check instead. */
#ifndef VMM_TESTS_SUPPORT_H
#define VMM_TESTS_SUPPORT_H

#include <stdint.h>

typedef void (*support_fail_fn)(const char *msg);

void support_set_fail(support_fail_fn fail);
__attribute__((noreturn, format(printf, 1, 2))) void support_fail(const char *fmt, ...);

/* CLOCK_MONOTONIC, in ms: deadlines of tests and helpers. */
int64_t support_now_ms(void);
void support_sleep_ms(long ms);
/* Open fds of this process (leak checks: the same count before and after). */
int support_count_fds(void);

#endif
