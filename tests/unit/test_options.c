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
}
END_TEST

/* Apart from the strings: their messages print the argument with %s, which must
 * never be handed NULL (gcc -O3 inlines the helper and -Wformat-overflow sees it). */
START_TEST(size_rejects_null)
{
    uint64_t v = 12345;

    ck_assert_int_eq(parse_size(NULL, &v), -EINVAL);
    ck_assert_uint_eq(v, 12345);
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
    ck_assert_ptr_null(o.vhost_trace);
    ck_assert(!o.debug_exit);
    ck_assert_uint_eq(o.timeout, 0);
    ck_assert_ptr_null(o.api_socket);
}
END_TEST

START_TEST(vhost_trace_takes_a_file_or_dash)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--vhost-trace", "/tmp/t.log"), OPTIONS_OK);
    ck_assert_str_eq(o.vhost_trace, "/tmp/t.log");
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--vhost-trace", "-"), OPTIONS_OK);
    ck_assert_str_eq(o.vhost_trace, "-");
    assert_error(PARSE(&o, "-k", "k", "--vhost-trace", ""), "--vhost-trace", "file name");
    assert_error(PARSE(&o, "-k", "k", "--vhost-trace"), "--vhost-trace", "needs a value");
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

/* Command lines refused with one line naming the option (and, where given, the reason). */
static const struct {
    const char *what;
    const char *argv[6]; /* after "vmm" */
    const char *part1, *part2;
} refused[] = {
    {"memory_zero_is_too_small", {"-k", "k", "--memory", "0"}, "--memory", "at least"},
    {"memory_bad_suffix_is_not_a_size", {"-k", "k", "--memory", "12Q"}, "--memory", "12Q"},
    {"memory_1m_is_too_small", {"-k", "k", "--memory", "1M"}, "--memory", "at least 32 MiB"},
    {"memory_not_multiple_of_2m", {"-k", "k", "--memory", "33M"}, "--memory", "multiple of 2 MiB"},
    {"cpus_zero_rejected", {"-k", "k", "--cpus", "0"}, "--cpus", "'0'"},
    {"cpus_255_rejected", {"-k", "k", "--cpus", "255"}, "--cpus", "'255'"},
    {"cpus_not_a_number_rejected", {"-k", "k", "--cpus", "abc"}, "--cpus", "'abc'"},
    {"cpus_with_a_suffix_rejected", {"-k", "k", "--cpus", "2x"}, "--cpus", "'2x'"},
    {"unknown_long_option_named", {"-k", "k", "--bogus"}, "--bogus", NULL},
    {"unknown_short_option_named", {"-k", "k", "-x"}, "-x", NULL},
    /* getopt has not advanced optind past "-xq" yet when it reports 'x'. */
    {"unknown_option_inside_cluster_named", {"-k", "k", "-xq"}, "-x", NULL},
    {"missing_value_named", {"-k", "k", "--memory"}, "--memory", "needs a value"},
    {"missing_kernel_rejected", {"--memory", "1G"}, "--kernel", "required"},
    {"stray_argument_rejected", {"-k", "k", "extra"}, "extra", NULL},
};

START_TEST(refused_with_its_reason)
{
    struct vmm_options o;
    char *argv[8] = {"vmm"};
    enum options_result res;

    for (int i = 0; refused[_i].argv[i]; i++)
        argv[i + 1] = (char *)refused[_i].argv[i];
    res = parse_argv(&o, argv);
    ck_assert_msg(res == OPTIONS_ERROR, "%s: not refused", refused[_i].what);
    assert_error(res, refused[_i].part1, refused[_i].part2);
}
END_TEST

START_TEST(debug_exit_defaults_to_port_0xf4)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--debug-exit"), OPTIONS_OK);
    ck_assert(o.debug_exit);
    ck_assert_uint_eq(o.debug_exit_port, 0xf4);
}
END_TEST

START_TEST(debug_exit_port_hex_or_decimal)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--debug-exit=0x501"), OPTIONS_OK);
    ck_assert(o.debug_exit);
    ck_assert_uint_eq(o.debug_exit_port, 0x501);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--debug-exit=0XF4"), OPTIONS_OK);
    ck_assert_uint_eq(o.debug_exit_port, 0xf4);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--debug-exit=244"), OPTIONS_OK);
    ck_assert_uint_eq(o.debug_exit_port, 244);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--debug-exit=0"), OPTIONS_OK);
    ck_assert_uint_eq(o.debug_exit_port, 0);
    /* The last port whose 4-port range still fits. */
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--debug-exit=0xfffc"), OPTIONS_OK);
    ck_assert_uint_eq(o.debug_exit_port, 0xfffc);
}
END_TEST

START_TEST(debug_exit_bad_port_rejected)
{
    static const char *const bad[] = {
        "--debug-exit=0xfffd", "--debug-exit=65536", "--debug-exit=0x",
        "--debug-exit=",       "--debug-exit=-1",    "--debug-exit=+4",
        "--debug-exit=f4",     "--debug-exit=0xf4z", "--debug-exit= 4",
        "--debug-exit=0x-4",   "--debug-exit=1e3",   "--debug-exit=99999999999999999999",
    };
    struct vmm_options o;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *value = strchr(bad[i], '=') + 1;
        char quoted[64];

        snprintf(quoted, sizeof(quoted), "'%s'", value);
        assert_error(PARSE(&o, "-k", "k", (char *)bad[i]), "--debug-exit", quoted);
        ck_assert_msg(strstr(err, "0 to 0xfffc"), "error '%s' gives no range", err);
    }
}
END_TEST

/* An optional argument is only taken with '=': a separate word is a stray argument. */
START_TEST(debug_exit_port_needs_equals)
{
    struct vmm_options o;

    assert_error(PARSE(&o, "-k", "k", "--debug-exit", "0x501"), "unexpected argument", "0x501");
}
END_TEST

START_TEST(timeout_stored_in_seconds)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--timeout", "20"), OPTIONS_OK);
    ck_assert_uint_eq(o.timeout, 20);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--timeout=1"), OPTIONS_OK);
    ck_assert_uint_eq(o.timeout, 1);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--timeout", "2147483647"), OPTIONS_OK);
    ck_assert_uint_eq(o.timeout, VMM_MAX_TIMEOUT);
}
END_TEST

START_TEST(timeout_bad_value_rejected)
{
    static const char *const bad[] = {"0",
                                      "-5",
                                      "+5",
                                      "1.5",
                                      "20s",
                                      "0x10",
                                      "abc",
                                      "",
                                      " 20",
                                      "2147483648",
                                      "99999999999999999999"};
    struct vmm_options o;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char quoted[64];

        snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
        assert_error(PARSE(&o, "-k", "k", "--timeout", (char *)bad[i]), "--timeout", quoted);
        ck_assert_msg(strstr(err, "seconds from 1 to"), "error '%s' gives no range", err);
    }
    assert_error(PARSE(&o, "-k", "k", "--timeout"), "--timeout", "needs a value");
}
END_TEST

START_TEST(api_socket_stored)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k", "--api-socket", "/tmp/vm.api"), OPTIONS_OK);
    ck_assert_str_eq(o.api_socket, "/tmp/vm.api");
}
END_TEST

START_TEST(api_socket_bad_path_rejected)
{
    char longest[108], too_long[109];
    struct vmm_options o;

    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--api-socket", longest), OPTIONS_OK);
    assert_error(PARSE(&o, "-k", "k", "--api-socket", too_long), "--api-socket", "1 to 107 bytes");
    assert_error(PARSE(&o, "-k", "k", "--api-socket", ""), "--api-socket", "1 to 107 bytes");
    assert_error(PARSE(&o, "-k", "k", "--api-socket"), "--api-socket", "needs a value");
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

START_TEST(on_reboot_values)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "-k", "k"), OPTIONS_OK);
    ck_assert_int_eq(o.on_reboot, VMM_ON_REBOOT_EXIT);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--on-reboot", "restart"), OPTIONS_OK);
    ck_assert_int_eq(o.on_reboot, VMM_ON_REBOOT_RESTART);
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--on-reboot=exit"), OPTIONS_OK);
    ck_assert_int_eq(o.on_reboot, VMM_ON_REBOOT_EXIT);
    assert_error(PARSE(&o, "-k", "k", "--on-reboot", "reset"), "--on-reboot 'reset'",
                 "exit or restart");
}
END_TEST

START_TEST(incoming_and_restore)
{
    struct vmm_options o;

    ck_assert_int_eq(PARSE(&o, "--incoming", "unix:/tmp/m.sock"), OPTIONS_OK);
    ck_assert_str_eq(o.incoming, "unix:/tmp/m.sock");
    ck_assert_ptr_null(o.kernel);
    ck_assert_int_eq(PARSE(&o, "--incoming", "tcp:10.0.0.1:4444"), OPTIONS_OK);
    ck_assert_int_eq(PARSE(&o, "--restore", "/tmp/snap"), OPTIONS_OK);
    ck_assert_str_eq(o.restore, "/tmp/snap");
    assert_error(PARSE(&o, "--incoming", "udp:x"), "--incoming 'udp:x'", "unix:PATH");
    assert_error(PARSE(&o, "--incoming", "unix:a", "--restore", "b"), "--incoming", "exclude");
    assert_error(PARSE(&o, "--memory", "1G"), "--kernel", "required");
}
END_TEST

/* QEMU's habit: the destination is the source's command line plus --incoming. */
START_TEST(boot_options_go_with_incoming_and_restore)
{
    struct vmm_options o;

    ck_assert_int_eq(
        PARSE(&o, "-k", "bz", "-i", "rd", "-c", "console=ttyS0", "--incoming", "unix:/tmp/m.sock"),
        OPTIONS_OK);
    ck_assert_str_eq(o.kernel, "bz");
    ck_assert_str_eq(o.initrd, "rd");
    ck_assert_str_eq(o.cmdline, "console=ttyS0");
    ck_assert_str_eq(o.incoming, "unix:/tmp/m.sock");
    ck_assert_int_eq(PARSE(&o, "-k", "k", "--restore", "b"), OPTIONS_OK);
    ck_assert_str_eq(o.restore, "b");
}
END_TEST

START_TEST(help_prints_every_long_option)
{
    static const char *const names[] = {
        "--kernel",   "--initrd",  "--cmdline",     "--memory",    "--cpus",       "--hugepages",
        "--user",     "--group",   "--kvm-device",  "--quiet",     "--verbose",    "--help",
        "--version",  "--net",     "--vhost-trace", "--on-reboot", "--debug-exit", "--timeout",
        "--incoming", "--restore", "--api-socket",  "--seccomp",
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
    tcase_add_test(size, on_reboot_values);
    tcase_add_test(size, incoming_and_restore);
    tcase_add_test(size, boot_options_go_with_incoming_and_restore);
    tcase_add_test(size, size_accepts_ib_and_b_forms);
    tcase_add_test(size, size_plain_number_is_bytes);
    tcase_add_test(size, size_rejects_malformed);
    tcase_add_test(size, size_rejects_null);
    tcase_add_test(size, size_rejects_overflow);
    suite_add_tcase(s, size);

    tcase_add_checked_fixture(parse, out_open, out_close);
    tcase_add_test(parse, defaults_with_only_kernel);
    tcase_add_test(parse, every_long_option_is_stored);
    tcase_add_test(parse, every_short_option_is_stored);
    tcase_add_test(parse, quiet_sets_verbosity_minus_one);
    tcase_add_test(parse, max_cpus_accepted);
    tcase_add_loop_test(parse, refused_with_its_reason, 0, sizeof(refused) / sizeof(refused[0]));
    tcase_add_test(parse, debug_exit_defaults_to_port_0xf4);
    tcase_add_test(parse, debug_exit_port_hex_or_decimal);
    tcase_add_test(parse, debug_exit_bad_port_rejected);
    tcase_add_test(parse, debug_exit_port_needs_equals);
    tcase_add_test(parse, timeout_stored_in_seconds);
    tcase_add_test(parse, timeout_bad_value_rejected);
    tcase_add_test(parse, api_socket_stored);
    tcase_add_test(parse, api_socket_bad_path_rejected);
    tcase_add_test(parse, seccomp_takes_on_or_off);
    tcase_add_test(parse, help_prints_every_long_option);
    tcase_add_test(parse, vhost_trace_takes_a_file_or_dash);
    tcase_add_test(parse, version_prints_name);
    tcase_add_test(parse, parse_repeatable_in_one_process);
    suite_add_tcase(s, parse);
    return s;
}

CHECK_MAIN(options_suite)
