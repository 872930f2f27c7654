/* vmm's replies, checked then printed (see vmmctl_reply.h). */
#include "vmmctl_reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

FILE *vmmctl_err;

/* Control characters in text from vmm (a migration peer's error message travels in
 * it) become '?': one line stays one line, and no escape sequence reaches a terminal. */
static void scrub(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

int vmmctl_fail(int code, const char *fmt, ...)
{
    FILE *f = vmmctl_err ? vmmctl_err : stderr;
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    scrub(line);
    fprintf(f, "vmmctl: %s\n", line);
    return code;
}

/* A string from vmm fit for one line of output: scrubbed, at most 255 bytes. Four
 * rotating buffers: enough for the strings of one printf. */
static const char *clean(const char *s)
{
    static char bufs[4][256];
    static unsigned next;
    char *b = bufs[next++ % 4];

    snprintf(b, sizeof(bufs[0]), "%s", s ? s : "?");
    scrub(b);
    return b;
}

/* A JSON value for an error message: compact, and cut at 60 bytes. */
static const char *plain(struct json_object *o)
{
    static char buf[64];
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

    snprintf(buf, sizeof(buf), "%.60s", s ? s : "?");
    return buf;
}

/* ---- members, checked ---- */

enum member_type { M_U64, M_STR, M_BOOL, M_NUM, M_ARRAY, M_OBJECT };

struct member {
    const char *key;
    enum member_type type;
};

static const char *const member_words[] = {
    [M_U64] = "a non-negative integer",
    [M_STR] = "a string",
    [M_BOOL] = "true or false",
    [M_NUM] = "a number",
    [M_ARRAY] = "an array",
    [M_OBJECT] = "an object",
};

static bool member_is(struct json_object *v, enum member_type t)
{
    switch (t) {
    case M_U64:
        return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0;
    case M_STR:
        return json_object_is_type(v, json_type_string);
    case M_BOOL:
        return json_object_is_type(v, json_type_boolean);
    case M_NUM:
        return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
    case M_ARRAY:
        return json_object_is_type(v, json_type_array);
    default:
        return json_object_is_type(v, json_type_object);
    }
}

/* cmd: the command, for the message; where: "" for the result itself, or the path to
 * o with a dot ("nets[1]."). */
static bool check_object(const char *cmd, const char *where, struct json_object *o)
{
    if (json_object_is_type(o, json_type_object))
        return true;
    if (*where)
        vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: '%.*s' in vmm's reply is %s, expected an object", cmd,
                    (int)strlen(where) - 1, where, plain(o));
    else
        vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: vmm's reply returned %s, expected an object", cmd,
                    plain(o));
    return false;
}

/* Each member there and of its type; the first that is not gets the error line. */
static bool check_members(const char *cmd, const char *where, struct json_object *o,
                          const struct member *m, size_t n)
{
    struct json_object *v;

    if (!check_object(cmd, where, o))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!json_object_object_get_ex(o, m[i].key, &v)) {
            vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: vmm's reply has no '%s%s'", cmd, where, m[i].key);
            return false;
        }
        if (!member_is(v, m[i].type)) {
            vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: '%s%s' in vmm's reply is %s, expected %s", cmd,
                        where, m[i].key, plain(v), member_words[m[i].type]);
            return false;
        }
    }
    return true;
}

/* An optional member: absent is fine, present must be of its type. */
static bool check_optional(const char *cmd, struct json_object *o, const struct member *m)
{
    return !json_object_object_get_ex(o, m->key, NULL) || check_members(cmd, "", o, m, 1);
}

/* Checked members only. */
static struct json_object *get(struct json_object *o, const char *key)
{
    return json_object_object_get(o, key);
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
    return (uint64_t)json_object_get_int64(get(o, key));
}

static const char *get_str(struct json_object *o, const char *key)
{
    return clean(json_object_get_string(get(o, key)));
}

static bool get_bool(struct json_object *o, const char *key)
{
    return json_object_get_boolean(get(o, key));
}

static double get_num(struct json_object *o, const char *key)
{
    return json_object_get_double(get(o, key));
}

/* ---- the reply line ---- */

struct json_object *vmmctl_reply_parse(const char *line)
{
    struct json_object *reply = json_tokener_parse(line);

    if (!json_object_is_type(reply, json_type_object)) {
        json_object_put(reply);
        vmmctl_fail(VMMCTL_EXIT_FAIL, "vmm sent a reply that is not a JSON object");
        return NULL;
    }
    return reply;
}

static void report_error(const char *name, struct json_object *err)
{
    struct json_object *desc;

    if (json_object_object_get_ex(err, "desc", &desc) &&
        json_object_is_type(desc, json_type_string))
        vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: %s", name, json_object_get_string(desc));
    else
        vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: vmm replied with an error it does not describe: %s",
                    name, plain(err));
}

struct json_object *vmmctl_reply_result(struct json_object *reply, const char *name, unsigned id)
{
    struct json_object *v;

    if (!json_object_object_get_ex(reply, "id", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) != id)
        vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: the reply does not carry the request's id %u", name, id);
    else if (json_object_object_get_ex(reply, "error", &v))
        report_error(name, v);
    else if (!json_object_object_get_ex(reply, "return", &v))
        vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: the reply has neither return nor error", name);
    else
        return json_object_get(v);
    return NULL;
}

/* JSON escapes every control character in strings: the line is safe as it is. */
int vmmctl_print_raw(FILE *out, struct json_object *reply)
{
    const char *s = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);

    fprintf(out, "%s\n", s ? s : "?");
    return json_object_object_get_ex(reply, "return", NULL) ? 0 : VMMCTL_EXIT_FAIL;
}

/* ---- status ---- */

static const struct member net_members[] = {
    {"id", M_STR},       {"socket", M_STR},      {"connected", M_BOOL},
    {"link-up", M_BOOL}, {"queue-pairs", M_U64},
};

static const struct member status_members[] = {
    {"state", M_STR},     {"vcpus", M_U64},   {"memory-bytes", M_U64},
    {"uptime-ms", M_U64}, {"reboots", M_U64}, {"nets", M_ARRAY},
};

#define NMEMBERS(m) (sizeof(m) / sizeof((m)[0]))

static bool check_nets(struct json_object *nets)
{
    char where[48];

    for (size_t i = 0; i < json_object_array_length(nets); i++) {
        snprintf(where, sizeof(where), "nets[%zu].", i);
        if (!check_members("status", where, json_object_array_get_idx(nets, i), net_members,
                           NMEMBERS(net_members)))
            return false;
    }
    return true;
}

static void print_net(FILE *out, struct json_object *n)
{
    uint64_t qp = get_u64(n, "queue-pairs");

    fprintf(out, "%s: %s, %s, link %s, %llu queue pair%s\n", get_str(n, "id"), get_str(n, "socket"),
            get_bool(n, "connected") ? "connected" : "not connected",
            get_bool(n, "link-up") ? "up" : "down", (unsigned long long)qp, qp == 1 ? "" : "s");
}

int vmmctl_print_status(FILE *out, struct json_object *st)
{
    struct json_object *nets;
    uint64_t mem, up;

    if (!check_members("status", "", st, status_members, NMEMBERS(status_members)) ||
        !check_nets(nets = get(st, "nets")))
        return VMMCTL_EXIT_FAIL;
    mem = get_u64(st, "memory-bytes");
    up = get_u64(st, "uptime-ms");
    fprintf(out, "state: %s\n", get_str(st, "state"));
    fprintf(out, "vcpus: %llu\n", (unsigned long long)get_u64(st, "vcpus"));
    fprintf(out, "memory: %llu MiB\n", (unsigned long long)(mem >> 20));
    fprintf(out, "uptime: %llu.%03llu s\n", (unsigned long long)(up / 1000),
            (unsigned long long)(up % 1000));
    fprintf(out, "reboots: %llu\n", (unsigned long long)get_u64(st, "reboots"));
    for (size_t i = 0; i < json_object_array_length(nets); i++)
        print_net(out, json_object_array_get_idx(nets, i));
    return 0;
}

/* ---- query-migrate ---- */

static const struct member verify_members[] = {
    {"pages-compared", M_U64},
    {"pages-differ", M_U64},
    {"first-differing", M_ARRAY},
};

static const struct member migration_members[] = {
    {"status", M_STR},
    {"round", M_U64},
    {"pages-dirtied-last-round", M_U64},
    {"pages-sent", M_U64},
    {"total-pages", M_U64},
    {"mbps", M_NUM},
    {"expected-downtime-ms", M_U64},
    {"total-time-ms", M_U64},
    {"downtime-ms", M_U64},
};

static const struct member verify_member = {"verify", M_OBJECT};
static const struct member error_member = {"error", M_STR};
static const struct member breakdown_member = {"downtime-breakdown", M_OBJECT};

/* The downtime's breakdown, when vmm gave one: phases in vmm's order, whole ms each. */
static bool check_breakdown(const char *cmd, struct json_object *m)
{
    struct json_object *b;

    if (!json_object_object_get_ex(m, breakdown_member.key, &b))
        return true;
    if (!check_members(cmd, "", m, &breakdown_member, 1))
        return false;
    json_object_object_foreach(b, phase, ms)
    {
        if (!member_is(ms, M_U64)) {
            vmmctl_fail(VMMCTL_EXIT_FAIL,
                        "%s: 'downtime-breakdown.%s' in vmm's reply is %s, "
                        "expected %s",
                        cmd, clean(phase), plain(ms), member_words[M_U64]);
            return false;
        }
    }
    return true;
}

/* "downtime breakdown: pause 0 ms, stop-devices 4 ms, ..." (checked before). */
static void print_breakdown(FILE *out, struct json_object *m)
{
    struct json_object *b;
    const char *sep = "";

    if (!json_object_object_get_ex(m, breakdown_member.key, &b))
        return;
    fprintf(out, "downtime breakdown:");
    json_object_object_foreach(b, phase, ms)
    {
        fprintf(out, "%s %s %llu ms", sep, clean(phase),
                (unsigned long long)json_object_get_int64(ms));
        sep = ",";
    }
    fprintf(out, "\n");
}

/* The verify object, when there is one: its counts and addresses (strings). */
static bool check_verify(const char *cmd, struct json_object *m)
{
    struct json_object *v, *first;
    char where[64];

    if (!json_object_object_get_ex(m, "verify", &v))
        return true;
    if (!check_members(cmd, "", m, &verify_member, 1) ||
        !check_members(cmd, "verify.", v, verify_members, NMEMBERS(verify_members)))
        return false;
    first = get(v, "first-differing");
    for (size_t i = 0; i < json_object_array_length(first); i++) {
        struct json_object *a = json_object_array_get_idx(first, i);

        if (!json_object_is_type(a, json_type_string)) {
            snprintf(where, sizeof(where), "verify.first-differing[%zu]", i);
            vmmctl_fail(VMMCTL_EXIT_FAIL, "%s: '%s' in vmm's reply is %s, expected a string", cmd,
                        where, plain(a));
            return false;
        }
    }
    return true;
}

static void print_verify(FILE *out, struct json_object *v)
{
    struct json_object *first = get(v, "first-differing");
    size_t n = json_object_array_length(first);

    fprintf(out, "verify: %llu pages compared, %llu differ",
            (unsigned long long)get_u64(v, "pages-compared"),
            (unsigned long long)get_u64(v, "pages-differ"));
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s", i ? ", " : " (first: ",
                clean(json_object_get_string(json_object_array_get_idx(first, i))));
    fprintf(out, "%s\n", n ? ")" : "");
}

int vmmctl_print_migration(FILE *out, struct json_object *m)
{
    const char *cmd = "query-migrate";

    if (!check_members(cmd, "", m, migration_members, NMEMBERS(migration_members)) ||
        !check_verify(cmd, m) || !check_breakdown(cmd, m) || !check_optional(cmd, m, &error_member))
        return VMMCTL_EXIT_FAIL;
    fprintf(out, "status: %s\n", get_str(m, "status"));
    fprintf(out, "round: %llu\n", (unsigned long long)get_u64(m, "round"));
    fprintf(out, "pages dirtied last round: %llu\n",
            (unsigned long long)get_u64(m, "pages-dirtied-last-round"));
    fprintf(out, "pages sent: %llu of %llu\n", (unsigned long long)get_u64(m, "pages-sent"),
            (unsigned long long)get_u64(m, "total-pages"));
    fprintf(out, "throughput: %.1f MiB/s\n", get_num(m, "mbps"));
    fprintf(out, "expected downtime: %llu ms\n",
            (unsigned long long)get_u64(m, "expected-downtime-ms"));
    fprintf(out, "total time: %llu ms\n", (unsigned long long)get_u64(m, "total-time-ms"));
    fprintf(out, "downtime: %llu ms\n", (unsigned long long)get_u64(m, "downtime-ms"));
    print_breakdown(out, m);
    if (json_object_object_get_ex(m, "verify", NULL))
        print_verify(out, get(m, "verify"));
    if (json_object_object_get_ex(m, "error", NULL))
        fprintf(out, "error: %s\n", get_str(m, "error"));
    return 0;
}

/* ---- migrate: progress and result ---- */

static const struct member status_member = {"status", M_STR};

/* What a progress line shows of a running migration. */
static const struct member progress_members[] = {
    {"round", M_U64},
    {"pages-dirtied-last-round", M_U64},
    {"mbps", M_NUM},
    {"expected-downtime-ms", M_U64},
};

/* What the summary of a completed migration shows. */
static const struct member completed_members[] = {
    {"total-time-ms", M_U64},
    {"downtime-ms", M_U64},
    {"round", M_U64},
    {"pages-sent", M_U64},
};

const char *vmmctl_migration_status(struct json_object *m)
{
    if (!check_members("query-migrate", "", m, &status_member, 1))
        return NULL;
    return get_str(m, "status");
}

int vmmctl_show_progress(FILE *out, struct vmmctl_progress *p, struct json_object *m)
{
    const char *status = vmmctl_migration_status(m);
    bool early = status && (!strcmp(status, "setup") || !strcmp(status, "none"));
    uint64_t round = 0;
    char line[200];

    if (!status || (!early && !check_members("query-migrate", "", m, progress_members,
                                             NMEMBERS(progress_members))))
        return VMMCTL_EXIT_FAIL;
    if (early) {
        snprintf(line, sizeof(line), "migration: %s", status);
    } else {
        round = get_u64(m, "round");
        snprintf(line, sizeof(line),
                 "migration: round %llu, %llu pages dirtied in the last round, %.1f MiB/s, "
                 "expected downtime %llu ms",
                 (unsigned long long)round,
                 (unsigned long long)get_u64(m, "pages-dirtied-last-round"), get_num(m, "mbps"),
                 (unsigned long long)get_u64(m, "expected-downtime-ms"));
    }
    if (p->tty) {
        fprintf(out, "\r%s\033[K", line); /* one line, rewritten in place */
        p->shown = true;
    } else if (strcmp(status, p->last_status) || round != p->last_round) {
        fprintf(out, "%s\n", line);
    }
    fflush(out);
    snprintf(p->last_status, sizeof(p->last_status), "%s", status);
    p->last_round = round;
    return 0;
}

int vmmctl_migration_result(FILE *out, struct json_object *m, bool verify)
{
    const char *status = vmmctl_migration_status(m), *err = "";
    struct json_object *v = NULL;
    uint64_t differ = 0;

    if (!status || !check_optional("migrate", m, &error_member))
        return VMMCTL_EXIT_FAIL;
    if (json_object_object_get_ex(m, "error", NULL))
        err = get_str(m, "error");
    if (strcmp(status, "completed"))
        return vmmctl_fail(VMMCTL_EXIT_FAIL, "migration %s%s%s", status, *err ? ": " : "", err);
    if (!check_members("migrate", "", m, completed_members, NMEMBERS(completed_members)) ||
        !check_verify("migrate", m) || !check_breakdown("migrate", m))
        return VMMCTL_EXIT_FAIL;
    fprintf(out, "migration completed in %llu ms, downtime %llu ms, %llu rounds, %llu pages sent",
            (unsigned long long)get_u64(m, "total-time-ms"),
            (unsigned long long)get_u64(m, "downtime-ms"), (unsigned long long)get_u64(m, "round"),
            (unsigned long long)get_u64(m, "pages-sent"));
    if (json_object_object_get_ex(m, "verify", &v)) {
        differ = get_u64(v, "pages-differ");
        fprintf(out, ", verify: %llu pages compared, %llu differ",
                (unsigned long long)get_u64(v, "pages-compared"), (unsigned long long)differ);
    }
    fprintf(out, "\n");
    print_breakdown(out, m);
    if (verify && !v)
        return vmmctl_fail(VMMCTL_EXIT_FAIL, "--verify: vmm reported no verify result");
    if (differ) {
        print_verify(out, v);
        return vmmctl_fail(VMMCTL_EXIT_FAIL, "verify: %llu pages differ",
                           (unsigned long long)differ);
    }
    return 0;
}

const char *vmmctl_migration_error(struct json_object *m)
{
    static const struct member error_member = {"error", M_STR};

    if (!json_object_is_type(m, json_type_object) || !json_object_object_get_ex(m, "error", NULL) ||
        !check_members("query-migrate", "", m, &error_member, 1))
        return NULL;
    return get_str(m, "error");
}

int vmmctl_print_migration_parameters(FILE *out, struct json_object *p)
{
    static const struct member members[] = {{"downtime-limit", M_U64}, {"max-bandwidth", M_U64}};

    if (!check_members("query-migrate-parameters", "", p, members, 2))
        return VMMCTL_EXIT_FAIL;
    fprintf(out, "downtime-limit: %llu ms\n", (unsigned long long)get_u64(p, "downtime-limit"));
    fprintf(out, "max-bandwidth: %llu bytes/s (%.1f MiB/s)\n",
            (unsigned long long)get_u64(p, "max-bandwidth"),
            (double)get_u64(p, "max-bandwidth") / 1048576.0);
    return 0;
}
