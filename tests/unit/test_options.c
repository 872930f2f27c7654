/* parse_size() and options_parse(): sizes, defaults, every option and every error. */
#include "../../common/util.h"
#include "../../vmm/options.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- parse_size ---- */

static void assert_size(const char *s, uint64_t expected)
{
    uint64_t v = 0;

    ck_assert_msg(parse_size(s, &v) == 0, "parse_size(\"%s\") failed", s);
    ck_assert_msg(v == expected, "parse_size(\"%s\") = %llu, expected %llu", s,
                  (unsigned long long)v, (unsigned long long)expected);
}

static void assert_size_error(const char *s, int expected)
{
    uint64_t v = 12345;
    int ret = parse_size(s, &v);

    ck_assert_msg(ret == expected, "parse_size(\"%s\") = %d, expected %d", s, ret, expected);
}

START_TEST(size_accepts_suffixes)
{
    assert_size("512M", 512 * MiB);
    assert_size("1G", GiB);
    assert_size("16G", 16 * GiB);
    assert_size("64k", 64 * KiB);
    assert_size("2T", 2048 * GiB);
}
END_TEST

START_TEST(size_accepts_ib_and_b_forms)
{
    assert_size("1GiB", GiB);
    assert_size("256MiB", 256 * MiB);
    assert_size("1GB", GiB);
}
END_TEST

START_TEST(size_plain_number_is_bytes)
{
    assert_size("4096", 4096);
    assert_size("0", 0);
}
END_TEST

START_TEST(size_rejects_malformed)
{
    assert_size_error("12Q", -EINVAL);
    assert_size_error("", -EINVAL);
    assert_size_error("G", -EINVAL);
    assert_size_error("-1", -EINVAL);
    assert_size_error("1.5G", -EINVAL);
    assert_size_error(" 1G", -EINVAL);
    assert_size_error("1Gx", -EINVAL);
    assert_size_error("1Gi", -EINVAL);
    assert_size_error(NULL, -EINVAL);
}
END_TEST

START_TEST(size_rejects_overflow)
{
    assert_size_error("99999999999T", -ERANGE);
    assert_size_error("99999999999999999999", -ERANGE);
    assert_size_error("16777216T", -ERANGE); /* 2^64 exactly */
}
END_TEST

/* ---- options_parse ---- */

static char err[256];
static char *out_text;
static size_t out_len;
static FILE *out;

static void out_open(void)
{
    out_text = NULL;
    out_len = 0;
    out = open_memstream(&out_text, &out_len);
    ck_assert_ptr_nonnull(out);
    err[0] = '\0';
}

static void out_close(void)
{
    fclose(out);
    free(out_text);
    out = NULL;
}

static enum options_result parse_argv(struct vmm_options *o, char **argv)
{
    int argc = 0;

    while (argv[argc])
        argc++;
    return options_parse(argc, argv, o, out, err, sizeof(err));
}

#define PARSE(o, ...) parse_argv((o), (char *[]){"vmm", __VA_ARGS__, NULL})

static void assert_error(enum options_result res, const char *part1, const char *part2)
{
    ck_assert_int_eq(res, OPTIONS_ERROR);
    ck_assert_msg(strstr(err, part1), "error '%s' does not mention '%s'", err, part1);
    if (part2)
        ck_assert_msg(strstr(err, part2), "error '%s' does not mention '%s'", err, part2);
}

START_TEST(defaults_with_only_kernel)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "--kernel", "bzImage"), OPTIONS_OK);
    ck_assert_str_eq(o.kernel, "bzImage");
    ck_assert_str_eq(o.cmdline, VMM_DEFAULT_CMDLINE);
    ck_assert_uint_eq(o.memory, 512 * MiB);
    ck_assert_uint_eq(o.cpus, 1);
    ck_assert_str_eq(o.kvm_device, "/dev/kvm");
    ck_assert_ptr_null(o.initrd);
    ck_assert_ptr_null(o.user);
    ck_assert_ptr_null(o.group);
    ck_assert(!o.hugepages);
    ck_assert(o.seccomp);
    ck_assert_int_eq(o.verbosity, 0);
}
END_TEST

START_TEST(every_long_option_is_stored)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "--kernel", "k", "--initrd", "i", "--cmdline", "c x", "--memory",
                           "1G", "--cpus", "4", "--hugepages", "--user", "nobody", "--group",
                           "nogroup", "--kvm-device", "/dev/kvm2", "--seccomp", "off", "--verbose",
                           "--verbose"),
                     OPTIONS_OK);
    ck_assert_str_eq(o.kernel, "k");
    ck_assert_str_eq(o.initrd, "i");
    ck_assert_str_eq(o.cmdline, "c x");
    ck_assert_uint_eq(o.memory, GiB);
    ck_assert_uint_eq(o.cpus, 4);
    ck_assert(o.hugepages);
    ck_assert_str_eq(o.user, "nobody");
    ck_assert_str_eq(o.group, "nogroup");
    ck_assert_str_eq(o.kvm_device, "/dev/kvm2");
    ck_assert(!o.seccomp);
    ck_assert_int_eq(o.verbosity, 2);
}
END_TEST

START_TEST(every_short_option_is_stored)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "-i", "i", "-c", "c", "-m", "64M", "-n", "2", "-v"),
                     OPTIONS_OK);
    ck_assert_str_eq(o.kernel, "k");
    ck_assert_str_eq(o.initrd, "i");
    ck_assert_str_eq(o.cmdline, "c");
    ck_assert_uint_eq(o.memory, 64 * MiB);
    ck_assert_uint_eq(o.cpus, 2);
    ck_assert_int_eq(o.verbosity, 1);
}
END_TEST

START_TEST(quiet_sets_verbosity_minus_one)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--quiet"), OPTIONS_OK);
    ck_assert_int_eq(o.verbosity, -1);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "-q"), OPTIONS_OK);
    ck_assert_int_eq(o.verbosity, -1);
}
END_TEST

START_TEST(max_cpus_accepted)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--cpus", "254"), OPTIONS_OK);
    ck_assert_uint_eq(o.cpus, VMM_MAX_CPUS);
}
END_TEST

START_TEST(memory_zero_is_too_small)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--memory", "0"), "--memory", "at least");
}
END_TEST

START_TEST(memory_bad_suffix_is_not_a_size)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--memory", "12Q"), "--memory", "12Q");
}
END_TEST

START_TEST(memory_1m_is_too_small)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--memory", "1M"), "--memory", "at least 32 MiB");
}
END_TEST

START_TEST(memory_not_multiple_of_2m)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--memory", "33M"), "--memory", "multiple of 2 MiB");
}
END_TEST

START_TEST(cpus_zero_rejected)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--cpus", "0"), "--cpus", "'0'");
}
END_TEST

START_TEST(cpus_255_rejected)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--cpus", "255"), "--cpus", "'255'");
}
END_TEST

START_TEST(cpus_not_a_number_rejected)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--cpus", "abc"), "--cpus", "'abc'");
    assert_error(PARSE(&o, "-k", "k", "--cpus", "2x"), "--cpus", "'2x'");
}
END_TEST

START_TEST(seccomp_takes_on_or_off)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--seccomp", "off", "--seccomp=on"), OPTIONS_OK);
    ck_assert(o.seccomp);
    assert_error(PARSE(&o, "-k", "k", "--seccomp=yes"), "--seccomp", "'yes'");
    assert_error(PARSE(&o, "-k", "k", "--seccomp", ""), "--seccomp", "on or off");
}
END_TEST

START_TEST(unknown_long_option_named)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--bogus"), "--bogus", NULL);
}
END_TEST

START_TEST(unknown_short_option_named)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "-x"), "-x", NULL);
}
END_TEST

/* getopt has not advanced optind past "-xq" yet when it reports 'x'. */
START_TEST(unknown_option_inside_cluster_named)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "-xq"), "-x", NULL);
}
END_TEST

START_TEST(missing_value_named)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--memory"), "--memory", "needs a value");
}
END_TEST

START_TEST(missing_kernel_rejected)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "--memory", "1G"), "--kernel", "required");
}
END_TEST

START_TEST(stray_argument_rejected)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "extra"), "extra", NULL);
}
END_TEST

START_TEST(help_prints_every_long_option)
{
    static const char *const names[] = {
        "--kernel",    "--initrd",  "--cmdline", "--memory",     "--cpus",
        "--hugepages", "--user",    "--group",   "--kvm-device", "--seccomp",
        "--quiet",     "--verbose", "--help",    "--version",
    };
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "--help"), OPTIONS_EXIT_OK);
    fflush(out);
    ck_assert_ptr_nonnull(out_text);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_assert_msg(strstr(out_text, names[i]), "usage lacks %s", names[i]);
}
END_TEST

START_TEST(version_prints_name)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "--version"), OPTIONS_EXIT_OK);
    fflush(out);
    ck_assert_ptr_nonnull(out_text);
    ck_assert_msg(strncmp(out_text, "vmm ", 4) == 0, "version output: '%s'", out_text);
}
END_TEST

/* The parser resets getopt itself, even after stopping mid-cluster on an error. */
START_TEST(parse_repeatable_in_one_process)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "a", "--cpus", "4"), OPTIONS_OK);
    ck_assert_uint_eq(o.cpus, 4);
    ck_assert_int_eq(PARSE(&o, "-k", "a", "-xq"), OPTIONS_ERROR); /* stops inside "-xq" */
    ck_assert_int_eq(PARSE(&o, "-k", "b", "-v"), OPTIONS_OK);
    ck_assert_str_eq(o.kernel, "b");
    ck_assert_uint_eq(o.cpus, 1);
    ck_assert_int_eq(o.verbosity, 1);
    ck_assert_int_eq(PARSE(&o, "-k", "c", "-m", "2G"), OPTIONS_OK);
    ck_assert_uint_eq(o.memory, 2 * GiB);
}
END_TEST

static Suite *options_suite(void)
{
    Suite *s = suite_create("options");
    TCase *size = tcase_create("parse_size");
    TCase *parse = tcase_create("options_parse");

    tcase_add_test(size, size_accepts_suffixes);
    tcase_add_test(size, size_accepts_ib_and_b_forms);
    tcase_add_test(size, size_plain_number_is_bytes);
    tcase_add_test(size, size_rejects_malformed);
    tcase_add_test(size, size_rejects_overflow);
    suite_add_tcase(s, size);

    tcase_add_checked_fixture(parse, out_open, out_close);
    tcase_add_test(parse, defaults_with_only_kernel);
    tcase_add_test(parse, every_long_option_is_stored);
    tcase_add_test(parse, every_short_option_is_stored);
    tcase_add_test(parse, quiet_sets_verbosity_minus_one);
    tcase_add_test(parse, max_cpus_accepted);
    tcase_add_test(parse, memory_zero_is_too_small);
    tcase_add_test(parse, memory_bad_suffix_is_not_a_size);
    tcase_add_test(parse, memory_1m_is_too_small);
    tcase_add_test(parse, memory_not_multiple_of_2m);
    tcase_add_test(parse, cpus_zero_rejected);
    tcase_add_test(parse, cpus_255_rejected);
    tcase_add_test(parse, cpus_not_a_number_rejected);
    tcase_add_test(parse, seccomp_takes_on_or_off);
    tcase_add_test(parse, unknown_long_option_named);
    tcase_add_test(parse, unknown_short_option_named);
    tcase_add_test(parse, unknown_option_inside_cluster_named);
    tcase_add_test(parse, missing_value_named);
    tcase_add_test(parse, missing_kernel_rejected);
    tcase_add_test(parse, stray_argument_rejected);
    tcase_add_test(parse, help_prints_every_long_option);
    tcase_add_test(parse, version_prints_name);
    tcase_add_test(parse, parse_repeatable_in_one_process);
    suite_add_tcase(s, parse);
    return s;
}

CHECK_MAIN(options_suite)
