/* The control socket's requests: a line is parsed, checked against the command's
 * arguments and dispatched (api_handle_line); the reply is one JSON line, QMP's shape
 * ({"return": ...} or {"error": {"class", "desc"}}). No I/O here: api.c runs the
 * clients. */
#include "api_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_SHUTDOWN_REASON "shutdown requested on the control socket"

/* ---- replies ---- */

struct api_error {
    const char *class; /* NULL: no error */
    char desc[320];
};

static void api_fail(struct api_error *e, const char *class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void api_fail(struct api_error *e, const char *class, const char *fmt, ...)
{
    va_list ap;

    e->class = class;
    va_start(ap, fmt);
    vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
    va_end(ap);
}

/* A failed machine operation: its own message, or errno's. */
static void api_fail_op(struct api_error *e, const char *what, int ret, const char *err)
{
    api_fail(e, "GenericError", "%s: %s", what, err && *err ? err : strerror(-ret));
}

static struct json_object *api_reply(struct json_object *ret, const struct api_error *e,
                                     struct json_object *id, bool has_id)
{
    struct json_object *reply = json_object_new_object();

    if (e->class) {
        struct json_object *err = json_object_new_object();

        json_object_object_add(err, "class", json_object_new_string(e->class));
        json_object_object_add(err, "desc", json_object_new_string(e->desc));
        json_object_object_add(reply, "error", err);
        json_object_put(ret);
    } else {
        json_object_object_add(reply, "return", ret ? ret : json_object_new_object());
    }
    if (has_id)
        json_object_object_add(reply, "id", json_object_get(id));
    return reply;
}

static char *api_reply_string(struct json_object *reply)
{
    const char *s = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);

    return s ? strdup(s) : NULL;
}

/* An error reply to no request in particular (the connection's own trouble). */
char *api_error_line(const char *desc)
{
    struct api_error e = {0};
    struct json_object *reply;
    char *s;

    api_fail(&e, "GenericError", "%s", desc);
    reply = api_reply(NULL, &e, NULL, false);
    s = api_reply_string(reply);
    json_object_put(reply);
    return s;
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
    json_object_object_add(o, key, json_object_new_string(v ? v : ""));
}

static void add_bool(struct json_object *o, const char *key, bool v)
{
    json_object_object_add(o, key, json_object_new_boolean(v));
}

/* ---- arguments ---- */

struct api_arg {
    const char *name;
    enum json_type type;
    bool required;
};

static const char *json_type_words(enum json_type t)
{
    switch (t) {
    case json_type_boolean:
        return "a boolean (true or false)";
    case json_type_string:
        return "a string";
    case json_type_int:
        return "an integer";
    default:
        return json_type_to_name(t);
    }
}

static const struct api_arg *find_arg(const struct api_arg *args, const char *name)
{
    for (; args && args->name; args++)
        if (!strcmp(args->name, name))
            return args;
    return NULL;
}

/* Every argument known and of its type, every required one there. */
static bool check_args(const char *cmd, const struct api_arg *spec, struct json_object *args,
                       struct api_error *e)
{
    if (args) {
        json_object_object_foreach(args, key, val)
        {
            const struct api_arg *a = find_arg(spec, key);

            if (!a) {
                api_fail(e, "InvalidParameter", "'%s' is not an argument of %s", key, cmd);
                return false;
            }
            if (!json_object_is_type(val, a->type)) {
                api_fail(e, "InvalidParameter", "argument '%s' of %s must be %s", key, cmd,
                         json_type_words(a->type));
                return false;
            }
        }
    }
    for (; spec && spec->name; spec++) {
        if (spec->required && !json_object_object_get_ex(args, spec->name, NULL)) {
            api_fail(e, "InvalidParameter", "%s needs the argument '%s'", cmd, spec->name);
            return false;
        }
    }
    return true;
}

/* "unix:PATH" (a socket path that fits sun_path) or "tcp:HOST:PORT". */
static bool check_uri(const char *uri, struct api_error *e)
{
    const char *port;
    char *end;
    long n;

    if (strlen(uri) >= sizeof(((struct migration_params *)0)->uri)) {
        api_fail(e, "InvalidParameter", "argument 'uri' is longer than %zu bytes",
                 sizeof(((struct migration_params *)0)->uri) - 1);
        return false;
    }
    if (!strncmp(uri, "unix:", 5)) {
        if (uri[5] && strlen(uri + 5) < sizeof(((struct api *)0)->path))
            return true;
        api_fail(e, "InvalidParameter",
                 "argument 'uri' '%s': unix:PATH needs a path of 1 to %zu "
                 "bytes",
                 uri, sizeof(((struct api *)0)->path) - 1);
        return false;
    }
    if (!strncmp(uri, "tcp:", 4)) {
        port = strrchr(uri + 4, ':');
        if (port && port > uri + 4) {
            errno = 0;
            n = strtol(port + 1, &end, 10);
            if (port[1] >= '0' && port[1] <= '9' && !*end && !errno && n >= 1 && n <= 65535)
                return true;
        }
        api_fail(e, "InvalidParameter",
                 "argument 'uri' '%s': tcp:HOST:PORT needs a host and a port from 1 to 65535", uri);
        return false;
    }
    api_fail(e, "InvalidParameter", "argument 'uri' '%s' must be unix:PATH or tcp:HOST:PORT", uri);
    return false;
}

/* ---- commands ---- */

typedef struct json_object *(*api_cmd_fn)(struct api *api, struct json_object *args,
                                          struct api_error *e);

struct api_command {
    const char *name;
    const struct api_arg *args;
    api_cmd_fn fn;
};

static struct json_object *net_status(const struct vm_net_status *n)
{
    struct json_object *o = json_object_new_object();

    add_str(o, "id", n->id);
    add_str(o, "socket", n->socket);
    add_bool(o, "connected", n->connected);
    add_bool(o, "link-up", n->link_up);
    add_u64(o, "queue-pairs", n->queue_pairs);
    return o;
}

static struct json_object *cmd_status(struct api *api, struct json_object *args,
                                      struct api_error *e)
{
    struct api_status st = {0};
    struct json_object *ret = json_object_new_object(), *nets = json_object_new_array();

    (void)args;
    (void)e;
    api->ops->status(api->opaque, &st);
    add_str(ret, "state", st.state);
    add_u64(ret, "vcpus", st.vcpus);
    add_u64(ret, "memory-bytes", st.memory_bytes);
    add_u64(ret, "uptime-ms", st.uptime_ms);
    for (unsigned i = 0; i < st.nnets && i < VMM_MAX_NETS; i++)
        json_object_array_add(nets, net_status(&st.nets[i]));
    json_object_object_add(ret, "nets", nets);
    add_u64(ret, "reboots", st.reboots);
    return ret;
}

static const char *pause_error(int ret)
{
    switch (ret) {
    case -ESHUTDOWN:
        return "the VM is shutting down";
    case -ETIMEDOUT:
        return "a vCPU did not stop in time (see vmm's log)";
    default:
        return NULL;
    }
}

static struct json_object *cmd_pause(struct api *api, struct json_object *args, struct api_error *e)
{
    int ret = api->ops->pause(api->opaque);

    (void)args;
    if (ret)
        api_fail_op(e, "cannot pause", ret, pause_error(ret));
    return NULL;
}

static struct json_object *cmd_resume(struct api *api, struct json_object *args,
                                      struct api_error *e)
{
    int ret = api->ops->resume(api->opaque);

    (void)args;
    if (ret)
        api_fail_op(e, "cannot resume", ret, NULL);
    return NULL;
}

static struct json_object *cmd_shutdown(struct api *api, struct json_object *args,
                                        struct api_error *e)
{
    (void)args;
    (void)e;
    api->ops->shutdown(api->opaque, API_SHUTDOWN_REASON);
    return NULL;
}

static const struct api_arg migrate_args[] = {
    {"uri", json_type_string, true},
    {"verify", json_type_boolean, false},
    {"downtime-limit", json_type_int, false},
    {"max-bandwidth", json_type_int, false},
    {NULL, json_type_null, false},
};

/* QEMU's migrate-set-parameters: downtime-limit in ms, max-bandwidth in bytes/s. */
static const struct api_arg tunable_args[] = {
    {"downtime-limit", json_type_int, false},
    {"max-bandwidth", json_type_int, false},
    {NULL, json_type_null, false},
};

/* A non-negative integer argument, if given. */
static bool get_u64_arg(const char *cmd, struct json_object *args, const char *name, bool *has,
                        uint64_t *v, struct api_error *e)
{
    struct json_object *o;
    int64_t n;

    *has = json_object_object_get_ex(args, name, &o);
    if (!*has)
        return true;
    n = json_object_get_int64(o);
    if (n < 0) {
        api_fail(e, "InvalidParameter", "argument '%s' of %s must not be negative", name, cmd);
        return false;
    }
    *v = (uint64_t)n;
    return true;
}

static bool get_tunables(const char *cmd, struct json_object *args, struct migration_tunables *t,
                         struct api_error *e)
{
    char why[200] = "";

    memset(t, 0, sizeof(*t));
    if (!get_u64_arg(cmd, args, "downtime-limit", &t->has_downtime_limit, &t->downtime_limit_ms,
                     e) ||
        !get_u64_arg(cmd, args, "max-bandwidth", &t->has_max_bandwidth, &t->max_bandwidth, e))
        return false;
    if (migration_check_tunables(t, why, sizeof(why))) {
        api_fail(e, "InvalidParameter", "%s: %s", cmd, why);
        return false;
    }
    return true;
}

static struct json_object *cmd_migrate(struct api *api, struct json_object *args,
                                       struct api_error *e)
{
    struct migration_params p = {0};
    struct json_object *v;
    char err[256] = "";
    int ret;

    json_object_object_get_ex(args, "uri", &v);
    if (!check_uri(json_object_get_string(v), e))
        return NULL;
    snprintf(p.uri, sizeof(p.uri), "%s", json_object_get_string(v));
    if (json_object_object_get_ex(args, "verify", &v))
        p.verify = json_object_get_boolean(v);
    if (!get_tunables("migrate", args, &p.tune, e))
        return NULL;
    ret = api->ops->migrate(api->opaque, &p, err, sizeof(err));
    if (ret < 0)
        api_fail_op(e, "cannot migrate", ret, err);
    return NULL;
}

static struct json_object *cmd_migrate_cancel(struct api *api, struct json_object *args,
                                              struct api_error *e)
{
    char err[256] = "";
    int ret = api->ops->migrate_cancel(api->opaque, err, sizeof(err));

    (void)args;
    if (ret < 0)
        api_fail_op(e, "cannot cancel the migration", ret, err);
    return NULL;
}

static struct json_object *cmd_migrate_set_parameters(struct api *api, struct json_object *args,
                                                      struct api_error *e)
{
    struct migration_tunables t;
    char err[256] = "";
    int ret;

    if (!get_tunables("migrate-set-parameters", args, &t, e))
        return NULL;
    ret = api->ops->migrate_set_parameters(api->opaque, &t, err, sizeof(err));
    if (ret < 0)
        api_fail_op(e, "cannot set the migration parameters", ret, err);
    return NULL;
}

static struct json_object *cmd_query_migrate_parameters(struct api *api, struct json_object *args,
                                                        struct api_error *e)
{
    struct migration_tunables t = {0};
    struct json_object *ret = json_object_new_object();

    (void)args;
    (void)e;
    api->ops->query_migrate_parameters(api->opaque, &t);
    add_u64(ret, "downtime-limit", t.downtime_limit_ms);
    add_u64(ret, "max-bandwidth", t.max_bandwidth);
    return ret;
}

static const struct api_arg snapshot_args[] = {
    {"dir", json_type_string, true},
    {NULL, json_type_null, false},
};

static struct json_object *cmd_snapshot(struct api *api, struct json_object *args,
                                        struct api_error *e)
{
    struct json_object *v;
    const char *dir;
    char err[256] = "";
    int ret;

    json_object_object_get_ex(args, "dir", &v);
    dir = json_object_get_string(v);
    if (!*dir || strlen(dir) >= PATH_MAX) {
        api_fail(e, "InvalidParameter", "argument 'dir' must be a directory path of 1 to %d bytes",
                 PATH_MAX - 1);
        return NULL;
    }
    ret = api->ops->snapshot(api->opaque, dir, err, sizeof(err));
    if (ret < 0)
        api_fail_op(e, "cannot take a snapshot", ret, err);
    return NULL;
}

static struct json_object *verify_info(const struct migration_info *m)
{
    struct json_object *o = json_object_new_object(), *first = json_object_new_array();
    char addr[24];

    add_u64(o, "pages-compared", m->verify_pages_compared);
    add_u64(o, "pages-differ", m->verify_pages_differ);
    for (unsigned i = 0; i < m->verify_nfirst && i < 8; i++) {
        snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)m->verify_first_differ[i]);
        json_object_array_add(first, json_object_new_string(addr));
    }
    json_object_object_add(o, "first-differing", first);
    return o;
}

/* Each phase of the final stop in ms, in order (verify only when it ran). */
static struct json_object *downtime_breakdown(const struct migration_info *m)
{
    struct json_object *o = json_object_new_object();

    for (int p = 0; p < MIGRATION_PHASES; p++)
        if (p != MIGRATION_PHASE_VERIFY || m->verify_done)
            add_u64(o, migration_phase_names[p], m->phase_ms[p]);
    return o;
}

static struct json_object *cmd_query_migrate(struct api *api, struct json_object *args,
                                             struct api_error *e)
{
    struct migration_info m = {0};
    struct json_object *ret = json_object_new_object();

    (void)args;
    (void)e;
    api->ops->query_migrate(api->opaque, &m);
    add_str(ret, "status", m.status ? m.status : "none");
    if (m.snapshot)
        add_bool(ret, "snapshot", true);
    add_u64(ret, "round", m.round);
    add_u64(ret, "pages-dirtied-last-round", m.pages_dirtied_last_round);
    add_u64(ret, "pages-sent", m.pages_sent);
    add_u64(ret, "total-pages", m.total_pages);
    json_object_object_add(ret, "mbps", json_object_new_double(m.mbps));
    add_u64(ret, "expected-downtime-ms", m.expected_downtime_ms);
    add_u64(ret, "total-time-ms", m.total_time_ms);
    add_u64(ret, "downtime-ms", m.downtime_ms);
    if (m.downtime_known)
        json_object_object_add(ret, "downtime-breakdown", downtime_breakdown(&m));
    add_u64(ret, "downtime-limit", m.downtime_limit_ms);
    add_u64(ret, "max-bandwidth", m.max_bandwidth);
    if (m.verify_done)
        json_object_object_add(ret, "verify", verify_info(&m));
    if (m.error[0])
        add_str(ret, "error", m.error);
    return ret;
}

static const struct api_command api_commands[] = {
    {"status", NULL, cmd_status},
    {"pause", NULL, cmd_pause},
    {"resume", NULL, cmd_resume},
    {"shutdown", NULL, cmd_shutdown},
    {"migrate", migrate_args, cmd_migrate},
    {"migrate-cancel", NULL, cmd_migrate_cancel},
    {"snapshot", snapshot_args, cmd_snapshot},
    {"query-migrate", NULL, cmd_query_migrate},
    {"migrate-set-parameters", tunable_args, cmd_migrate_set_parameters},
    {"query-migrate-parameters", NULL, cmd_query_migrate_parameters},
};

static const struct api_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(api_commands) / sizeof(api_commands[0]); i++)
        if (!strcmp(api_commands[i].name, name))
            return &api_commands[i];
    return NULL;
}

/* ---- requests ---- */

static struct json_object *parse_request(const char *line, size_t len, struct api_error *e)
{
    struct json_tokener *tok;
    struct json_object *req;
    enum json_tokener_error jerr;
    size_t end;

    if (memchr(line, '\0', len)) {
        api_fail(e, "BadJSON", "the request contains a NUL byte");
        return NULL;
    }
    tok = json_tokener_new();
    if (!tok) {
        api_fail(e, "GenericError", "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* The terminating NUL is part of the input: it ends a bare number too. */
    req = json_tokener_parse_ex(tok, line, (int)len + 1);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        api_fail(e, "BadJSON", "invalid JSON at byte %zu: %s", end, json_tokener_error_desc(jerr));
        return NULL;
    }
    if (!json_object_is_type(req, json_type_object)) {
        api_fail(e, "GenericError", "the request must be a JSON object, not %s",
                 json_type_to_name(json_object_get_type(req)));
        json_object_put(req);
        return NULL;
    }
    return req;
}

static bool check_members(struct json_object *req, struct api_error *e)
{
    json_object_object_foreach(req, key, val)
    {
        (void)val;
        if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
            api_fail(e, "GenericError",
                     "unexpected member '%s' in the request (known: execute, arguments, id)", key);
            return false;
        }
    }
    return true;
}

static struct json_object *dispatch(struct api *api, struct json_object *req, struct api_error *e)
{
    const struct api_command *cmd;
    struct json_object *exec, *args = NULL;
    const char *name;

    if (!check_members(req, e))
        return NULL;
    if (!json_object_object_get_ex(req, "execute", &exec)) {
        api_fail(e, "GenericError", "the request has no 'execute' member");
        return NULL;
    }
    if (!json_object_is_type(exec, json_type_string)) {
        api_fail(e, "GenericError", "'execute' must be a string (the command's name)");
        return NULL;
    }
    name = json_object_get_string(exec);
    cmd = find_command(name);
    if (!cmd) {
        api_fail(e, "CommandNotFound", "unknown command '%s'", name);
        return NULL;
    }
    json_object_object_get_ex(req, "arguments", &args);
    if (args && !json_object_is_type(args, json_type_object)) {
        api_fail(e, "InvalidParameter", "'arguments' of %s must be an object", name);
        return NULL;
    }
    if (!check_args(name, cmd->args, args, e))
        return NULL;
    pr_debug("control socket: %s", name);
    return cmd->fn(api, args, e);
}

static bool is_blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            return false;
    return true;
}

char *api_handle_line(struct api *api, const char *line, size_t len)
{
    struct api_error e = {0};
    struct json_object *req, *ret = NULL, *id = NULL, *reply;
    bool has_id = false;
    char *s;

    if (is_blank(line, len))
        return NULL;
    req = parse_request(line, len, &e);
    if (req) {
        has_id = json_object_object_get_ex(req, "id", &id);
        ret = dispatch(api, req, &e);
    }
    reply = api_reply(ret, &e, id, has_id);
    s = api_reply_string(reply);
    json_object_put(reply);
    json_object_put(req);
    if (e.class)
        pr_debug("control socket: %s: %s", e.class, e.desc);
    return s;
}
