/* The console tail: the last lines of the guest's output, shown when --timeout stops it. */
#include "../../common/tail.h"

#include "check_main.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static struct tail t;
static char out[TAIL_SIZE + 2];

static void setup(void)
{
    tail_init(&t);
    memset(out, 'X', sizeof(out));
}

static void put(const char *s)
{
    tail_append(&t, s, strlen(s));
}

/* What the guest wrote, the lines asked for, and the lines the tail gives back. */
static const struct {
    const char *what, *input;
    unsigned asked, lines;
    const char *out;
} last_lines[] = {
    {"empty_has_no_lines", "", 20, 0, ""},
    {"keeps_every_line_when_few", "VMM-GUEST-UP uptime=5.10\r\nhello\r\n", 20, 2,
     "VMM-GUEST-UP uptime=5.10\nhello\n"},
    {"keeps_only_the_last_3", "1\n2\n3\n4\n5\n", 3, 3, "3\n4\n5\n"},
    {"keeps_only_the_last_1", "1\n2\n3\n4\n5\n", 1, 1, "5\n"},
    {"keeps_only_the_last_0", "1\n2\n3\n4\n5\n", 0, 0, ""},
    /* A prompt or a line still being written counts: it is what the guest was doing. */
    {"unfinished_last_line_counts", "a\nb\n~ # ", 2, 2, "b\n~ # \n"},
    {"empty_lines_count", "a\n\n\nb\n", 3, 3, "\n\nb\n"},
    /* Escape sequences and other control bytes must not reach the CI log raw. */
    {"control_characters_are_shown_as_question_marks", "\x1b[1mbold\x1b[0m\tx\x7f\x01\r\n", 20, 1,
     "?[1mbold?[0m\tx??\n"},
};

START_TEST(last_lines_of_what_the_guest_wrote)
{
    unsigned n;

    put(last_lines[_i].input);
    n = tail_last_lines(&t, last_lines[_i].asked, out, sizeof(out));
    ck_assert_msg(n == last_lines[_i].lines && !strcmp(out, last_lines[_i].out),
                  "%s: %u lines '%s'", last_lines[_i].what, n, out);
}
END_TEST

/* Appends a line numbered i of about 40 bytes. */
static void put_numbered(int i)
{
    char line[64];

    snprintf(line, sizeof(line), "line %05d of the guest's boot messages...\r\n", i);
    put(line);
}

/* After a wrap the oldest kept line is partial and left out; the newest are all there. */
START_TEST(wraps_and_drops_the_partial_first_line)
{
    const char *first;

    for (int i = 0; i < 1000; i++)
        put_numbered(i);
    ck_assert(t.dropped);
    ck_assert_uint_eq(t.len, TAIL_SIZE);
    ck_assert_uint_eq(tail_last_lines(&t, 2, out, sizeof(out)), 2);
    ck_assert_str_eq(out, "line 00998 of the guest's boot messages...\n"
                          "line 00999 of the guest's boot messages...\n");
    /* All of them: only whole lines, the first kept one starts with "line ". */
    ck_assert_uint_gt(tail_last_lines(&t, 1000, out, sizeof(out)), 80);
    first = out;
    ck_assert_msg(strncmp(first, "line ", 5) == 0, "first kept line: %.50s", first);
}
END_TEST

START_TEST(one_huge_line_after_a_wrap_keeps_its_end)
{
    for (int i = 0; i < TAIL_SIZE + 100; i++)
        put(i % 10 == 0 ? "0" : "x");
    put("END");
    ck_assert_uint_eq(tail_last_lines(&t, 20, out, sizeof(out)), 1);
    ck_assert_uint_eq(strlen(out), TAIL_SIZE + 1);
    ck_assert_str_eq(out + TAIL_SIZE - 3, "END\n");
}
END_TEST

/* A small out keeps the newest lines that fit, then the end of the newest alone. */
START_TEST(small_output_keeps_the_newest_lines)
{
    char small[8];

    put("aa\nbb\ncc\n");
    ck_assert_uint_eq(tail_last_lines(&t, 20, small, sizeof(small)), 2);
    ck_assert_str_eq(small, "bb\ncc\n");
    ck_assert_uint_eq(tail_last_lines(&t, 20, small, 4), 1);
    ck_assert_str_eq(small, "cc\n");
    ck_assert_uint_eq(tail_last_lines(&t, 20, small, 3), 1);
    ck_assert_str_eq(small, "c\n");
    ck_assert_uint_eq(tail_last_lines(&t, 20, small, 1), 0);
    ck_assert_str_eq(small, "");
}
END_TEST

static Suite *tail_suite(void)
{
    Suite *s = suite_create("tail");
    TCase *tc = tcase_create("tail");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, last_lines_of_what_the_guest_wrote, 0,
                        sizeof(last_lines) / sizeof(last_lines[0]));
    tcase_add_test(tc, wraps_and_drops_the_partial_first_line);
    tcase_add_test(tc, one_huge_line_after_a_wrap_keeps_its_end);
    tcase_add_test(tc, small_output_keeps_the_newest_lines);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(tail_suite)
