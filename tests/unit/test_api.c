/* The control socket: request parsing and dispatch against a fake machine
 * (api_handle_line), then the socket itself on a real event loop: several
 * clients, partial and pipelined lines, an overlong line, a slow reader,
 * hang-ups, too many clients, an idle client evicted for a new one, stale socket
 * files. */
#include "../../vmm/api.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- the fake machine ---- */

struct fake {
    int pause_calls, resume_calls, shutdown_calls, migrate_calls, cancel_calls, snapshot_calls;
    int pause_ret, op_ret;
    const char *op_err;
    char reason[128];
    struct migration_params params;
    struct migration_tunables tune;
    int set_parameters_calls;
    char dir[256];
    struct migration_info info;
    struct api_status status;
};

static struct fake fake;
static struct api api;

static void fake_status(void *opaque, struct api_status *st)
{
    *st = ((struct fake *)opaque)->status;
}

static int fake_pause(void *opaque)
{
    struct fake *f = opaque;

    f->pause_calls++;
    return f->pause_ret;
}

static int fake_resume(void *opaque)
{
    ((struct fake *)opaque)->resume_calls++;
    return 0;
}

static void fake_shutdown(void *opaque, const char *reason)
{
    struct fake *f = opaque;

    f->shutdown_calls++;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

static int fake_op_result(struct fake *f, char *err, size_t errlen)
{
    if (f->op_err)
        snprintf(err, errlen, "%s", f->op_err);
    return f->op_ret;
}

static int fake_migrate(void *opaque, const struct migration_params *p, char *err, size_t errlen)
{
    struct fake *f = opaque;

    f->migrate_calls++;
    f->params = *p;
    return fake_op_result(f, err, errlen);
}

static int fake_cancel(void *opaque, char *err, size_t errlen)
{
    struct fake *f = opaque;

    f->cancel_calls++;
    return fake_op_result(f, err, errlen);
}

static int fake_snapshot(void *opaque, const char *dir, char *err, size_t errlen)
{
    struct fake *f = opaque;

    f->snapshot_calls++;
    snprintf(f->dir, sizeof(f->dir), "%s", dir);
    return fake_op_result(f, err, errlen);
}

static void fake_query(void *opaque, struct migration_info *info)
{
    *info = ((struct fake *)opaque)->info;
}

static int fake_set_parameters(void *opaque, const struct migration_tunables *t, char *err,
                               size_t errlen)
{
    struct fake *f = opaque;

    f->set_parameters_calls++;
    if (t->has_downtime_limit)
        f->tune.downtime_limit_ms = t->downtime_limit_ms;
    if (t->has_max_bandwidth)
        f->tune.max_bandwidth = t->max_bandwidth;
    return fake_op_result(f, err, errlen);
}

static void fake_query_parameters(void *opaque, struct migration_tunables *t)
{
    *t = ((struct fake *)opaque)->tune;
}

static const struct api_ops fake_ops = {
    .status = fake_status,
    .pause = fake_pause,
    .resume = fake_resume,
    .shutdown = fake_shutdown,
    .migrate = fake_migrate,
    .migrate_cancel = fake_cancel,
    .snapshot = fake_snapshot,
    .query_migrate = fake_query,
    .migrate_set_parameters = fake_set_parameters,
    .query_migrate_parameters = fake_query_parameters,
};

static void setup(void)
{
    memset(&fake, 0, sizeof(fake));
    fake.info.status = "none";
    api_setup(&api, &fake_ops, &fake);
}

static void teardown(void)
{
    api_destroy(&api);
}

/* ---- requests ---- */

static struct json_object *ask_len(const char *line, size_t len)
{
    char *reply = api_handle_line(&api, line, len);
    struct json_object *o;

    ck_assert_msg(reply, "no reply to '%s'", line);
    ck_assert_msg(!strchr(reply, '\n'), "reply '%s' spans lines", reply);
    o = json_tokener_parse(reply);
    ck_assert_msg(json_object_is_type(o, json_type_object), "reply '%s' is not an object", reply);
    free(reply);
    return o;
}

static struct json_object *ask(const char *line)
{
    return ask_len(line, strlen(line));
}

static void assert_error(struct json_object *reply, const char *class, const char *part)
{
    struct json_object *err, *v;
    const char *desc;

    ck_assert_msg(json_object_object_get_ex(reply, "error", &err), "no error in %s",
                  json_object_to_json_string(reply));
    ck_assert(!json_object_object_get_ex(reply, "return", NULL));
    ck_assert(json_object_object_get_ex(err, "class", &v));
    ck_assert_str_eq(json_object_get_string(v), class);
    ck_assert(json_object_object_get_ex(err, "desc", &v));
    desc = json_object_get_string(v);
    ck_assert_msg(strstr(desc, part), "error '%s' does not mention '%s'", desc, part);
    ck_assert_msg(!strchr(desc, '\n'), "error '%s' spans lines", desc);
}

static void expect_error(const char *line, const char *class, const char *part)
{
    struct json_object *reply = ask(line);

    assert_error(reply, class, part);
    json_object_put(reply);
}

/* The "return" member, which the reply keeps owning. */
static struct json_object *returned(struct json_object *reply)
{
    struct json_object *ret;

    ck_assert_msg(json_object_object_get_ex(reply, "return", &ret), "no return in %s",
                  json_object_to_json_string(reply));
    ck_assert(!json_object_object_get_ex(reply, "error", NULL));
    ck_assert(json_object_is_type(ret, json_type_object));
    return ret;
}

static void expect_empty_return(const char *line)
{
    struct json_object *reply = ask(line);

    ck_assert_int_eq(json_object_object_length(returned(reply)), 0);
    json_object_put(reply);
}

static int64_t get_int(struct json_object *o, const char *key)
{
    struct json_object *v;

    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no '%s' in %s", key,
                  json_object_to_json_string(o));
    ck_assert_msg(json_object_is_type(v, json_type_int), "'%s' is not an integer", key);
    return json_object_get_int64(v);
}

static const char *get_string(struct json_object *o, const char *key)
{
    struct json_object *v;

    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no '%s' in %s", key,
                  json_object_to_json_string(o));
    ck_assert_msg(json_object_is_type(v, json_type_string), "'%s' is not a string", key);
    return json_object_get_string(v);
}

static bool get_bool(struct json_object *o, const char *key)
{
    struct json_object *v;

    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no '%s'", key);
    ck_assert_msg(json_object_is_type(v, json_type_boolean), "'%s' is not a boolean", key);
    return json_object_get_boolean(v);
}

START_TEST(bad_json_is_named)
{
    static const char *const bad[] = {
        "{",    "{\"execute\": }", "not json",       "{\"execute\":\"status\"} x",
        "[1,]", "{\"a\" 1}",       "\"unterminated",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(bad[i], "BadJSON", "invalid JSON at byte");
}
END_TEST

START_TEST(nul_byte_is_bad_json)
{
    static const char line[] = "{\"execute\":\"st\0atus\"}";
    struct json_object *reply = ask_len(line, sizeof(line) - 1);

    assert_error(reply, "BadJSON", "NUL byte");
    json_object_put(reply);
}
END_TEST

START_TEST(request_must_be_an_object)
{
    expect_error("[1, 2]", "GenericError", "must be a JSON object, not array");
    expect_error("42", "GenericError", "not int");
    expect_error("\"status\"", "GenericError", "not string");
    expect_error("null", "GenericError", "must be a JSON object");
}
END_TEST

START_TEST(blank_line_gets_no_reply)
{
    ck_assert_ptr_null(api_handle_line(&api, "", 0));
    ck_assert_ptr_null(api_handle_line(&api, "  \t\r", 4));
}
END_TEST

START_TEST(execute_missing_or_not_a_string)
{
    expect_error("{}", "GenericError", "no 'execute'");
    expect_error("{\"id\": 3, \"arguments\": {}}", "GenericError", "no 'execute'");
    expect_error("{\"execute\": 5}", "GenericError", "'execute' must be a string");
    expect_error("{\"execute\": null}", "GenericError", "'execute' must be a string");
}
END_TEST

START_TEST(unexpected_member_named)
{
    expect_error("{\"execute\": \"status\", \"argument\": {}}", "GenericError",
                 "unexpected member 'argument'");
    ck_assert_int_eq(fake.pause_calls, 0);
}
END_TEST

START_TEST(unknown_command_named)
{
    struct json_object *reply = ask("{\"execute\": \"reboot-now\", \"id\": 7}");

    assert_error(reply, "CommandNotFound", "unknown command 'reboot-now'");
    ck_assert_int_eq(get_int(reply, "id"), 7);
    json_object_put(reply);
}
END_TEST

START_TEST(arguments_must_be_an_object_of_known_names)
{
    expect_error("{\"execute\": \"status\", \"arguments\": [1]}", "InvalidParameter",
                 "'arguments' of status must be an object");
    expect_error("{\"execute\": \"pause\", \"arguments\": {\"now\": true}}", "InvalidParameter",
                 "'now' is not an argument of pause");
    ck_assert_int_eq(fake.pause_calls, 0);
    expect_empty_return("{\"execute\": \"pause\", \"arguments\": {}}");
    expect_empty_return("{\"execute\": \"resume\", \"arguments\": null}");
}
END_TEST

START_TEST(id_is_echoed_as_given)
{
    static const char *const ids[] = {"1", "\"abc\"", "{\"n\":[1,2]}", "null", "-3.5", "true"};

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char line[128];
        struct json_object *reply, *want, *got;

        for (int ok = 0; ok < 2; ok++) {
            snprintf(line, sizeof(line), "{\"execute\": \"%s\", \"id\": %s}",
                     ok ? "status" : "nope", ids[i]);
            reply = ask(line);
            want = json_tokener_parse(ids[i]);
            ck_assert_msg(json_object_object_get_ex(reply, "id", &got), "no id in %s",
                          json_object_to_json_string(reply));
            ck_assert_msg(json_object_equal(got, want), "id %s came back as %s", ids[i],
                          json_object_to_json_string(got));
            json_object_put(want);
            json_object_put(reply);
        }
    }
}
END_TEST

START_TEST(no_id_no_id_member)
{
    struct json_object *reply = ask("{\"execute\": \"status\"}");

    ck_assert(!json_object_object_get_ex(reply, "id", NULL));
    json_object_put(reply);
    reply = ask("{oops");
    ck_assert(!json_object_object_get_ex(reply, "id", NULL));
    json_object_put(reply);
}
END_TEST

START_TEST(status_reply_shape)
{
    struct json_object *reply, *ret, *nets, *n;

    fake.status = (struct api_status){
        .state = "paused",
        .vcpus = 2,
        .reboots = 3,
        .nnets = 2,
        .memory_bytes = 1ULL << 30,
        .uptime_ms = 12345,
        .nets = {{"net0", "/tmp/a.sock", true, true, 2}, {"net1", "/tmp/b.sock", false, false, 1}},
    };
    reply = ask("{\"execute\": \"status\", \"id\": 1}");
    ret = returned(reply);
    ck_assert_str_eq(get_string(ret, "state"), "paused");
    ck_assert_int_eq(get_int(ret, "vcpus"), 2);
    ck_assert_int_eq(get_int(ret, "memory-bytes"), 1LL << 30);
    ck_assert_int_eq(get_int(ret, "uptime-ms"), 12345);
    ck_assert_int_eq(get_int(ret, "reboots"), 3);
    ck_assert(json_object_object_get_ex(ret, "nets", &nets));
    ck_assert_int_eq(json_object_array_length(nets), 2);
    n = json_object_array_get_idx(nets, 0);
    ck_assert_str_eq(get_string(n, "id"), "net0");
    ck_assert_str_eq(get_string(n, "socket"), "/tmp/a.sock");
    ck_assert(get_bool(n, "connected"));
    ck_assert(get_bool(n, "link-up"));
    ck_assert_int_eq(get_int(n, "queue-pairs"), 2);
    n = json_object_array_get_idx(nets, 1);
    ck_assert_str_eq(get_string(n, "id"), "net1");
    ck_assert(!get_bool(n, "connected"));
    ck_assert(!get_bool(n, "link-up"));
    ck_assert_int_eq(json_object_object_length(ret), 6);
    json_object_put(reply);
}
END_TEST

START_TEST(pause_resume_call_the_machine)
{
    expect_empty_return("{\"execute\": \"pause\"}");
    expect_empty_return("{\"execute\": \"pause\"}");
    ck_assert_int_eq(fake.pause_calls, 2);
    expect_empty_return("{\"execute\": \"resume\"}");
    ck_assert_int_eq(fake.resume_calls, 1);
    fake.pause_ret = -ESHUTDOWN;
    expect_error("{\"execute\": \"pause\"}", "GenericError",
                 "cannot pause: the VM is shutting down");
    fake.pause_ret = -ETIMEDOUT;
    expect_error("{\"execute\": \"pause\"}", "GenericError", "did not stop in time");
}
END_TEST

START_TEST(shutdown_gives_a_reason)
{
    expect_empty_return("{\"execute\": \"shutdown\", \"id\": \"bye\"}");
    ck_assert_int_eq(fake.shutdown_calls, 1);
    ck_assert_str_eq(fake.reason, "shutdown requested on the control socket");
}
END_TEST

START_TEST(migrate_checks_its_arguments)
{
    expect_error("{\"execute\": \"migrate\"}", "InvalidParameter", "needs the argument 'uri'");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"verify\": true}}",
                 "InvalidParameter", "needs the argument 'uri'");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": 5}}", "InvalidParameter",
                 "argument 'uri' of migrate must be a string");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/x\", \"verify\": "
                 "\"yes\"}}",
                 "InvalidParameter", "argument 'verify' of migrate must be a boolean");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/x\", \"verify\": 1}}",
                 "InvalidParameter", "'verify'");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/x\", \"speed\": 1}}",
                 "InvalidParameter", "'speed' is not an argument of migrate");
    ck_assert_int_eq(fake.migrate_calls, 0);
}
END_TEST

START_TEST(migrate_checks_the_uri)
{
    static const char *const bad[] = {
        "",          "file:/tmp/x", "unix:",       "tcp:",   "tcp:host",
        "tcp::4444", "tcp:h:0",     "tcp:h:65536", "tcp:h:", "tcp:h:8x",
        "tcp:h:-1",  "tcp:h: 80",   "UNIX:/tmp/x"};
    char line[640], long_path[300];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"%s\"}}",
                 bad[i]);
        expect_error(line, "InvalidParameter", "argument 'uri'");
    }
    memset(long_path, 'p', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    snprintf(line, sizeof(line),
             "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/%s\"}}", long_path);
    expect_error(line, "InvalidParameter", "longer than 255 bytes");
    long_path[110] = '\0'; /* fits the URI, not a socket address */
    snprintf(line, sizeof(line),
             "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/%s\"}}", long_path);
    expect_error(line, "InvalidParameter", "a path of 1 to 107 bytes");
    ck_assert_int_eq(fake.migrate_calls, 0);
}
END_TEST

START_TEST(migrate_passes_the_parameters)
{
    static const char *const good[] = {"unix:/tmp/mig.sock", "tcp:127.0.0.1:4444",
                                       "tcp:[::1]:65535", "tcp:dest.example:1"};
    char line[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(line, sizeof(line),
                 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"%s\", \"verify\": %s}}",
                 good[i], i % 2 ? "true" : "false");
        expect_empty_return(line);
        ck_assert_str_eq(fake.params.uri, good[i]);
        ck_assert_int_eq(fake.params.verify, i % 2);
    }
    expect_empty_return("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\"}}");
    ck_assert(!fake.params.verify);
    ck_assert_int_eq(fake.migrate_calls, 5);
}
END_TEST

START_TEST(migrate_takes_downtime_limit_and_max_bandwidth)
{
    expect_empty_return("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\", "
                        "\"downtime-limit\": 50, \"max-bandwidth\": 33554432}}");
    ck_assert(fake.params.tune.has_downtime_limit && fake.params.tune.has_max_bandwidth);
    ck_assert_uint_eq(fake.params.tune.downtime_limit_ms, 50);
    ck_assert_uint_eq(fake.params.tune.max_bandwidth, 32 << 20);
    expect_empty_return("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\"}}");
    ck_assert(!fake.params.tune.has_downtime_limit && !fake.params.tune.has_max_bandwidth);
    expect_empty_return("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\", "
                        "\"max-bandwidth\": 0}}");
    ck_assert(!fake.params.tune.has_downtime_limit && fake.params.tune.has_max_bandwidth);
    ck_assert_uint_eq(fake.params.tune.max_bandwidth, 0);
    ck_assert_int_eq(fake.migrate_calls, 3);
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\", "
                 "\"downtime-limit\": -1}}",
                 "InvalidParameter", "argument 'downtime-limit' of migrate must not be negative");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\", "
                 "\"max-bandwidth\": \"32M\"}}",
                 "InvalidParameter", "argument 'max-bandwidth' of migrate must be an integer");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\", "
                 "\"downtime-limit\": 2000001}}",
                 "InvalidParameter", "downtime-limit 2000001 ms is over the maximum of 2000000 ms");
    ck_assert_int_eq(fake.migrate_calls, 3);
}
END_TEST

START_TEST(migrate_set_and_query_parameters)
{
    struct json_object *reply, *ret;

    fake.tune.downtime_limit_ms = 300;
    reply = ask("{\"execute\": \"query-migrate-parameters\"}");
    ret = returned(reply);
    ck_assert_int_eq(get_int(ret, "downtime-limit"), 300);
    ck_assert_int_eq(get_int(ret, "max-bandwidth"), 0);
    json_object_put(reply);
    expect_empty_return("{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                        "{\"max-bandwidth\": 1048576}}");
    expect_empty_return("{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                        "{\"downtime-limit\": 20}}");
    reply = ask("{\"execute\": \"query-migrate-parameters\"}");
    ret = returned(reply);
    ck_assert_int_eq(get_int(ret, "downtime-limit"), 20);
    ck_assert_int_eq(get_int(ret, "max-bandwidth"), 1048576);
    json_object_put(reply);
    expect_error("{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                 "{\"speed\": 1}}",
                 "InvalidParameter", "'speed' is not an argument of migrate-set-parameters");
    expect_error("{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                 "{\"max-bandwidth\": -5}}",
                 "InvalidParameter", "must not be negative");
    ck_assert_int_eq(fake.set_parameters_calls, 2);
    fake.op_ret = -EINVAL;
    fake.op_err = "nope";
    expect_error("{\"execute\": \"migrate-set-parameters\", \"arguments\": {}}", "GenericError",
                 "cannot set the migration parameters: nope");
}
END_TEST

START_TEST(migration_errors_are_replied)
{
    fake.op_ret = -ENOSYS;
    fake.op_err = "migration is not built yet";
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:/m\"}}",
                 "GenericError", "cannot migrate: migration is not built yet");
    expect_error("{\"execute\": \"migrate-cancel\"}", "GenericError",
                 "cannot cancel the migration: migration is not built yet");
    expect_error("{\"execute\": \"snapshot\", \"arguments\": {\"dir\": \"/tmp/s\"}}",
                 "GenericError", "cannot take a snapshot: migration is not built yet");
    fake.op_err = NULL; /* no message: errno's */
    fake.op_ret = -EBUSY;
    expect_error("{\"execute\": \"migrate-cancel\"}", "GenericError", strerror(EBUSY));
    fake.op_ret = 0;
    expect_empty_return("{\"execute\": \"migrate-cancel\"}");
    ck_assert_int_eq(fake.cancel_calls, 3);
}
END_TEST

START_TEST(snapshot_checks_dir)
{
    expect_error("{\"execute\": \"snapshot\"}", "InvalidParameter", "needs the argument 'dir'");
    expect_error("{\"execute\": \"snapshot\", \"arguments\": {\"dir\": \"\"}}", "InvalidParameter",
                 "argument 'dir' must be a directory path");
    expect_error("{\"execute\": \"snapshot\", \"arguments\": {\"dir\": [\"/tmp\"]}}",
                 "InvalidParameter", "argument 'dir' of snapshot must be a string");
    ck_assert_int_eq(fake.snapshot_calls, 0);
    expect_empty_return("{\"execute\": \"snapshot\", \"arguments\": {\"dir\": \"/tmp/snap 1\"}}");
    ck_assert_str_eq(fake.dir, "/tmp/snap 1");
}
END_TEST

/* The breakdown's phases, in order, as JSON text. */
static void expect_breakdown(struct json_object *ret, const char *want)
{
    struct json_object *b;

    ck_assert(json_object_object_get_ex(ret, "downtime-breakdown", &b));
    ck_assert_str_eq(json_object_to_json_string_ext(b, JSON_C_TO_STRING_SPACED), want);
}

START_TEST(query_migrate_reply_shape)
{
    struct json_object *reply, *ret, *v, *first;

    reply = ask("{\"execute\": \"query-migrate\"}");
    ret = returned(reply);
    ck_assert_str_eq(get_string(ret, "status"), "none");
    ck_assert(!json_object_object_get_ex(ret, "verify", NULL));
    ck_assert(!json_object_object_get_ex(ret, "error", NULL));
    ck_assert(!json_object_object_get_ex(ret, "downtime-breakdown", NULL));
    json_object_put(reply);

    fake.info = (struct migration_info){
        .status = "completed",
        .round = 4,
        .pages_dirtied_last_round = 17,
        .pages_sent = 140000,
        .total_pages = 131072,
        .mbps = 812.5,
        .expected_downtime_ms = 9,
        .total_time_ms = 2100,
        .downtime_ms = 11,
        .downtime_known = true,
        .phase_ms = {1, 2, 3, 4, 5, 6},
        .downtime_limit_ms = 300,
        .max_bandwidth = 33554432,
        .verify_done = true,
        .verify_pages_compared = 131072,
        .verify_pages_differ = 2,
        .verify_first_differ = {0x1000, 0xfee00000},
        .verify_nfirst = 2,
        .error = "late page",
    };
    reply = ask("{\"execute\": \"query-migrate\", \"id\": 9}");
    ret = returned(reply);
    ck_assert_str_eq(get_string(ret, "status"), "completed");
    ck_assert_int_eq(get_int(ret, "round"), 4);
    ck_assert_int_eq(get_int(ret, "pages-dirtied-last-round"), 17);
    ck_assert_int_eq(get_int(ret, "pages-sent"), 140000);
    ck_assert_int_eq(get_int(ret, "total-pages"), 131072);
    ck_assert(json_object_object_get_ex(ret, "mbps", &v));
    ck_assert(json_object_get_double(v) == 812.5);
    ck_assert_int_eq(get_int(ret, "expected-downtime-ms"), 9);
    ck_assert_int_eq(get_int(ret, "total-time-ms"), 2100);
    ck_assert_int_eq(get_int(ret, "downtime-ms"), 11);
    ck_assert_int_eq(get_int(ret, "downtime-limit"), 300);
    ck_assert_int_eq(get_int(ret, "max-bandwidth"), 33554432);
    ck_assert_str_eq(get_string(ret, "error"), "late page");
    ck_assert(json_object_object_get_ex(ret, "verify", &v));
    ck_assert_int_eq(get_int(v, "pages-compared"), 131072);
    ck_assert_int_eq(get_int(v, "pages-differ"), 2);
    ck_assert(json_object_object_get_ex(v, "first-differing", &first));
    ck_assert_int_eq(json_object_array_length(first), 2);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(first, 0)), "0x1000");
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(first, 1)), "0xfee00000");
    expect_breakdown(ret, "{ \"pause\": 1, \"stop-devices\": 2, \"final-pages\": 3, \"verify\": 4, "
                          "\"state\": 5, \"destination\": 6 }");
    json_object_put(reply);
    /* Without verify, no verify phase. */
    fake.info.verify_done = false;
    reply = ask("{\"execute\": \"query-migrate\"}");
    expect_breakdown(returned(reply), "{ \"pause\": 1, \"stop-devices\": 2, \"final-pages\": 3, "
                                      "\"state\": 5, \"destination\": 6 }");
    json_object_put(reply);
}
END_TEST

/* ---- the socket ---- */

static struct event_loop loop;
static char dir[64], sock_path[96];

/* What each client fd has received and not yet taken as lines. */
#define RBUF_FDS 256
#define RBUF_SIZE (128 * 1024)
static struct rbuf {
    char *data;
    size_t len;
} rbufs[RBUF_FDS];

static void rbufs_reset(void)
{
    for (int i = 0; i < RBUF_FDS; i++) {
        free(rbufs[i].data);
        rbufs[i] = (struct rbuf){0};
    }
}

static void sock_setup(void)
{
    setup();
    snprintf(dir, sizeof(dir), "/tmp/test_api.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/vm.api", dir);
    ck_assert_int_eq(event_loop_init(&loop), 0);
}

static void sock_teardown(void)
{
    api_destroy(&api);
    event_loop_destroy(&loop);
    rbufs_reset();
    unlink(sock_path);
    rmdir(dir);
}

static void listen_now(void)
{
    ck_assert_int_eq(api_listen(&api, sock_path, &loop), 0);
}

static int client(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    event_loop_run_once(&loop, 100); /* accept it */
    return fd;
}

static void put(int fd, const char *text)
{
    ck_assert_int_eq(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until fd has a whole line (returned, malloc'ed) or 2 s pass;
 * *eof tells whether the server closed instead. */
static char *get_line(int fd, bool *eof)
{
    int64_t end = now_ms() + 2000;
    struct rbuf *b;
    char *nl, *line;

    ck_assert_int_lt(fd, RBUF_FDS);
    b = &rbufs[fd];
    if (!b->data)
        b->data = malloc(RBUF_SIZE);
    *eof = false;
    while (!(nl = memchr(b->data, '\n', b->len))) {
        ssize_t n = recv(fd, b->data + b->len, RBUF_SIZE - b->len, MSG_DONTWAIT);

        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            *eof = true;
            b->len = 0;
            return NULL;
        }
        if (n > 0) {
            b->len += (size_t)n;
            continue;
        }
        ck_assert_msg(errno == EAGAIN, "recv: %s", strerror(errno));
        ck_assert_msg(now_ms() < end, "no reply within 2 s");
        event_loop_run_once(&loop, 20);
    }
    line = strndup(b->data, (size_t)(nl - b->data));
    b->len -= (size_t)(nl + 1 - b->data);
    memmove(b->data, nl + 1, b->len);
    return line;
}

static struct json_object *get_reply(int fd)
{
    bool eof;
    char *line = get_line(fd, &eof);
    struct json_object *o;

    ck_assert_msg(line, "the server closed the connection");
    o = json_tokener_parse(line);
    ck_assert_msg(o, "reply '%s' is not JSON", line);
    free(line);
    return o;
}

static void expect_reply_id(int fd, int id)
{
    struct json_object *reply = get_reply(fd);

    ck_assert_int_eq(get_int(reply, "id"), id);
    json_object_put(reply);
}

static void expect_closed(int fd)
{
    bool eof;
    char *line = get_line(fd, &eof);

    ck_assert_msg(!line && eof, "the server sent '%s' instead of closing", line ? line : "");
}

START_TEST(socket_serves_a_request)
{
    struct json_object *reply;
    int fd;

    fake.status.state = "running";
    listen_now();
    fd = client();
    put(fd, "{\"execute\": \"status\", \"id\": 1}\n");
    reply = get_reply(fd);
    ck_assert_str_eq(get_string(returned(reply), "state"), "running");
    json_object_put(reply);
    ck_assert_uint_eq(api.nclients, 1);
    close(fd);
}
END_TEST

START_TEST(socket_serves_clients_at_once)
{
    int a, b;

    listen_now();
    a = client();
    b = client();
    ck_assert_uint_eq(api.nclients, 2);
    put(a, "{\"execute\": \"status\",");
    put(b, "{\"execute\": \"status\", \"id\": 2}\n");
    expect_reply_id(b, 2);
    put(a, " \"id\": 1}\n");
    expect_reply_id(a, 1);
    close(a);
    close(b);
}
END_TEST

START_TEST(socket_pipelined_requests_in_order)
{
    struct json_object *reply;
    int fd;

    listen_now();
    fd = client();
    put(fd, "{\"execute\": \"pause\", \"id\": 1}\n\n{\"execute\": \"bad\", \"id\": 2}\r\n"
            "{\"execute\": \"resume\", \"id\": 3}\n");
    expect_reply_id(fd, 1);
    reply = get_reply(fd);
    assert_error(reply, "CommandNotFound", "'bad'");
    ck_assert_int_eq(get_int(reply, "id"), 2);
    json_object_put(reply);
    expect_reply_id(fd, 3);
    ck_assert_int_eq(fake.pause_calls, 1);
    ck_assert_int_eq(fake.resume_calls, 1);
    close(fd);
}
END_TEST

START_TEST(socket_bad_json_keeps_the_client)
{
    struct json_object *reply;
    int fd;

    listen_now();
    fd = client();
    put(fd, "this is not json\n");
    reply = get_reply(fd);
    assert_error(reply, "BadJSON", "invalid JSON");
    json_object_put(reply);
    put(fd, "{\"execute\": \"status\", \"id\": 4}\n");
    expect_reply_id(fd, 4);
    close(fd);
}
END_TEST

/* A request of exactly API_MAX_LINE bytes, padded inside its id. */
static char *max_request(size_t len)
{
    static const char head[] = "{\"execute\": \"status\", \"id\": \"";
    char *s = malloc(len + 2);

    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, 'x', len - (sizeof(head) - 1) - 2);
    memcpy(s + len - 2, "\"}", 2);
    s[len] = '\n';
    s[len + 1] = '\0';
    return s;
}

static void put_all(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    int64_t end = now_ms() + 2000;

    while (off < len) {
        ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0)
            off += (size_t)n;
        else
            ck_assert_msg(errno == EAGAIN && now_ms() < end, "send: %s", strerror(errno));
        event_loop_run_once(&loop, 0);
    }
}

START_TEST(socket_longest_line_is_served)
{
    char *req = max_request(API_MAX_LINE);
    struct json_object *reply;
    int fd;

    listen_now();
    fd = client();
    put_all(fd, req);
    reply = get_reply(fd);
    returned(reply);
    ck_assert_int_eq(strlen(get_string(reply, "id")), API_MAX_LINE - 31);
    json_object_put(reply);
    free(req);
    close(fd);
}
END_TEST

START_TEST(socket_overlong_line_drops_the_client)
{
    char *req = max_request(API_MAX_LINE + 1);
    struct json_object *reply;
    int fd, other;

    listen_now();
    other = client();
    fd = client();
    put_all(fd, req);
    reply = get_reply(fd);
    assert_error(reply, "GenericError", "longer than 65536 bytes");
    json_object_put(reply);
    expect_closed(fd);
    ck_assert_uint_eq(api.nclients, 1);
    put(other, "{\"execute\": \"status\", \"id\": 5}\n"); /* the others are served on */
    expect_reply_id(other, 5);
    free(req);
    close(fd);
    close(other);
}
END_TEST

START_TEST(socket_hang_up_is_cleaned_up)
{
    int a, b;

    listen_now();
    a = client();
    b = client();
    ck_assert_uint_eq(api.nclients, 2);
    put(a, "{\"execute\": \"sta"); /* half a request, then gone */
    close(a);
    for (int i = 0; i < 10 && api.nclients > 1; i++)
        event_loop_run_once(&loop, 50);
    ck_assert_uint_eq(api.nclients, 1);
    close(b);
    for (int i = 0; i < 10 && api.nclients > 0; i++)
        event_loop_run_once(&loop, 50);
    ck_assert_uint_eq(api.nclients, 0);
}
END_TEST

START_TEST(socket_last_request_without_newline)
{
    int fd;

    listen_now();
    fd = client();
    put(fd, "{\"execute\": \"status\", \"id\": 6}");
    shutdown(fd, SHUT_WR);
    expect_reply_id(fd, 6);
    expect_closed(fd);
    ck_assert_uint_eq(api.nclients, 0);
    close(fd);
}
END_TEST

/* A client that sends a lot and reads nothing: the loop never blocks on it,
 * and every reply arrives once it reads. The replies (~700 bytes each) are far
 * more than a socket buffer holds. */
START_TEST(socket_slow_reader_does_not_block_the_loop)
{
    static const char req[] = "{\"execute\": \"status\", \"id\": 1}\n";
    static char paths[VMM_MAX_NETS][108];
    int fd, other, sent = 0, got = 0;
    int64_t start;
    bool eof;
    char *line;

    fake.status.nnets = VMM_MAX_NETS;
    for (int i = 0; i < VMM_MAX_NETS; i++) {
        memset(paths[i], 'p', sizeof(paths[i]) - 1);
        fake.status.nets[i] = (struct vm_net_status){.id = "net", .socket = paths[i]};
    }
    listen_now();
    fd = client();
    other = client();
    start = now_ms();
    while (now_ms() - start < 1500) {
        if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof(req) - 1)
            sent++;
        event_loop_run_once(&loop, 0);
        if (sent > 20000)
            break;
    }
    ck_assert_int_gt(sent, 200);
    /* The loop still answers someone else at once. */
    put(other, "{\"execute\": \"status\", \"id\": 8}\n");
    expect_reply_id(other, 8);
    while (got < sent && (line = get_line(fd, &eof))) {
        got++;
        free(line);
    }
    ck_assert_int_eq(got, sent);
    close(fd);
    close(other);
}
END_TEST

START_TEST(socket_too_many_clients_refused)
{
    int fds[API_MAX_CLIENTS], extra;
    struct json_object *reply;

    listen_now();
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        fds[i] = client();
    ck_assert_uint_eq(api.nclients, API_MAX_CLIENTS);
    extra = client();
    reply = get_reply(extra);
    assert_error(reply, "GenericError", "too many control socket clients");
    json_object_put(reply);
    expect_closed(extra);
    close(extra);
    close(fds[0]);
    for (int i = 0; i < 10 && api.nclients == API_MAX_CLIENTS; i++)
        event_loop_run_once(&loop, 50);
    extra = client();
    put(extra, "{\"execute\": \"status\", \"id\": 9}\n");
    expect_reply_id(extra, 9);
    close(extra);
    for (int i = 1; i < API_MAX_CLIENTS; i++)
        close(fds[i]);
}
END_TEST

/* The control socket's clock, moved by the tests below. */
static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* 16 clients, the 17th arrives once they have idled 10 s: the one idle longest (not the
 * one that asked something since) is closed with an error line, the newcomer served. */
START_TEST(socket_idle_client_evicted_for_a_new_one)
{
    int fds[API_MAX_CLIENTS], extra;
    struct json_object *reply;

    api.now_ms = fake_clock;
    fake_now = 1000;
    listen_now();
    for (int i = 0; i < API_MAX_CLIENTS; i++) {
        fake_now += 10;
        fds[i] = client();
    }
    fake_now = 5000;
    put(fds[0], "{\"execute\": \"status\", \"id\": 1}\n");
    expect_reply_id(fds[0], 1);
    fake_now = 1000 + API_IDLE_EVICT_MS + 1500;
    extra = client();
    reply = get_reply(fds[1]);
    assert_error(reply, "GenericError", "idle for 11 s while 16 clients are connected");
    json_object_put(reply);
    expect_closed(fds[1]);
    ck_assert_uint_eq(api.nclients, API_MAX_CLIENTS);
    put(extra, "{\"execute\": \"status\", \"id\": 2}\n");
    expect_reply_id(extra, 2);
    put(fds[0], "{\"execute\": \"status\", \"id\": 3}\n");
    expect_reply_id(fds[0], 3);
    close(extra);
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        close(fds[i]);
}
END_TEST

/* A client with half a request buffered is never idle, however long it waits; those
 * idle for less than 10 s keep their place too: the 17th is refused. */
START_TEST(socket_busy_or_recent_clients_kept)
{
    int fds[API_MAX_CLIENTS], extra;
    struct json_object *reply;

    api.now_ms = fake_clock;
    fake_now = 1000;
    listen_now();
    fds[0] = client();
    put(fds[0], "{\"execute\": ");
    event_loop_run_once(&loop, 100);
    fake_now = 5000;
    for (int i = 1; i < API_MAX_CLIENTS; i++)
        fds[i] = client();
    fake_now = 5000 + API_IDLE_EVICT_MS - 1;
    extra = client();
    reply = get_reply(extra);
    assert_error(reply, "GenericError", "too many control socket clients (16, none idle for 10 s)");
    json_object_put(reply);
    expect_closed(extra);
    close(extra);
    put(fds[0], "\"status\", \"id\": 4}\n");
    expect_reply_id(fds[0], 4);
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        close(fds[i]);
}
END_TEST

START_TEST(socket_file_removed_on_destroy)
{
    struct stat st;

    listen_now();
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    api_destroy(&api);
    ck_assert_int_eq(lstat(sock_path, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(socket_stale_file_replaced_live_one_refused)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct api second;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s); /* nobody listens: stale */
    listen_now();
    api_setup(&second, &fake_ops, &fake);
    ck_assert_int_eq(api_listen(&second, sock_path, &loop), -EADDRINUSE);
    api_destroy(&second); /* must not remove the live socket */
    ck_assert_int_eq(access(sock_path, F_OK), 0);
}
END_TEST

START_TEST(socket_regular_file_refused)
{
    int fd = open(sock_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    struct stat st;

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(api_listen(&api, sock_path, &loop), -EEXIST);
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *req = tcase_create("requests");
    TCase *sock = tcase_create("socket");

    tcase_add_checked_fixture(req, setup, teardown);
    tcase_add_test(req, bad_json_is_named);
    tcase_add_test(req, nul_byte_is_bad_json);
    tcase_add_test(req, request_must_be_an_object);
    tcase_add_test(req, blank_line_gets_no_reply);
    tcase_add_test(req, execute_missing_or_not_a_string);
    tcase_add_test(req, unexpected_member_named);
    tcase_add_test(req, unknown_command_named);
    tcase_add_test(req, arguments_must_be_an_object_of_known_names);
    tcase_add_test(req, id_is_echoed_as_given);
    tcase_add_test(req, no_id_no_id_member);
    tcase_add_test(req, status_reply_shape);
    tcase_add_test(req, pause_resume_call_the_machine);
    tcase_add_test(req, shutdown_gives_a_reason);
    tcase_add_test(req, migrate_checks_its_arguments);
    tcase_add_test(req, migrate_checks_the_uri);
    tcase_add_test(req, migrate_passes_the_parameters);
    tcase_add_test(req, migrate_takes_downtime_limit_and_max_bandwidth);
    tcase_add_test(req, migrate_set_and_query_parameters);
    tcase_add_test(req, migration_errors_are_replied);
    tcase_add_test(req, snapshot_checks_dir);
    tcase_add_test(req, query_migrate_reply_shape);
    suite_add_tcase(s, req);

    tcase_add_checked_fixture(sock, sock_setup, sock_teardown);
    tcase_set_timeout(sock, 20);
    tcase_add_test(sock, socket_serves_a_request);
    tcase_add_test(sock, socket_serves_clients_at_once);
    tcase_add_test(sock, socket_pipelined_requests_in_order);
    tcase_add_test(sock, socket_bad_json_keeps_the_client);
    tcase_add_test(sock, socket_longest_line_is_served);
    tcase_add_test(sock, socket_overlong_line_drops_the_client);
    tcase_add_test(sock, socket_hang_up_is_cleaned_up);
    tcase_add_test(sock, socket_last_request_without_newline);
    tcase_add_test(sock, socket_slow_reader_does_not_block_the_loop);
    tcase_add_test(sock, socket_too_many_clients_refused);
    tcase_add_test(sock, socket_idle_client_evicted_for_a_new_one);
    tcase_add_test(sock, socket_busy_or_recent_clients_kept);
    tcase_add_test(sock, socket_file_removed_on_destroy);
    tcase_add_test(sock, socket_stale_file_replaced_live_one_refused);
    tcase_add_test(sock, socket_regular_file_refused);
    suite_add_tcase(s, sock);
    return s;
}

CHECK_MAIN(api_suite)
