/* The main() every unit suite shares: run one suite, exit non-zero on any failure. */
#ifndef VMM_TESTS_CHECK_MAIN_H
#define VMM_TESTS_CHECK_MAIN_H

#include "../support/support.h"

#include <check.h>
#include <stdlib.h>

/* The support library's helpers fail the running test, as an assert in it would. */
static inline void check_support_fail(const char *msg)
{
    ck_abort_msg("%s", msg);
}

static inline int check_run_suite(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#define CHECK_MAIN(suite_fn)                                                                       \
    int main(void)                                                                                 \
    {                                                                                              \
        support_set_fail(check_support_fail);                                                      \
        return check_run_suite(suite_fn());                                                        \
    }

#endif
