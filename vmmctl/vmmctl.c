/* vmmctl: drives a running vmm through its control socket (--api-socket), so
 * nobody has to type JSON. One request per command; migrate then polls
 * query-migrate and shows the progress. What a reply says, and how it is printed,
 * is vmmctl_reply.c's. */
#include "vmmctl_reply.h"

#include "../common/util.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VMMCTL_REPLY_TIMEOUT_MS 30000 /* a pause may take vmm 5 s; leave room */
#define VMMCTL_SHUTDOWN_TIMEOUT_MS 30000
#define VMMCTL_POLL_MS 500
#define VMMCTL_NONE_POLLS 10 /* query-migrate may say "none" this long after migrate */
#define VMMCTL_MAX_REPLY (64 * 1024)

enum { EXIT_FAIL = VMMCTL_EXIT_FAIL, EXIT_USAGE = VMMCTL_EXIT_USAGE };

struct conn {
    const char *path;
    int fd;
    char buf[VMMCTL_MAX_REPLY + 1];
    size_t len;
    unsigned next_id;
};

struct ctl {
    const char *socket;
    bool json, verify;
    const char *downtime_limit, *max_bandwidth; /* ms; MiB/s (vmm takes bytes/s) */
    const char *command;
    char **args;
    int nargs;
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: vmmctl --api-socket PATH [--json] COMMAND [ARGS]\n"
                 "Drives a running vmm through its control socket (vmm --api-socket PATH).\n"
                 "\n"
                 "Commands:\n"
                 "  status                 state, vCPUs, memory, uptime, reboots, NICs\n"
                 "  pause                  stop every vCPU (the console and NICs stay up)\n"
                 "  resume                 run the vCPUs again\n"
                 "  shutdown               stop the VM (vmm exits 0); waits for vmm to close\n"
                 "  migrate URI [--verify] migrate to unix:PATH or tcp:HOST:PORT, showing the\n"
                 "                         progress; --verify compares the memory afterwards.\n"
                 "                         Exit 0 only when it completed (and verified clean)\n"
                 "  migrate-cancel         cancel the migration in progress\n"
                 "  migrate-set-parameters [--downtime-limit MS] [--max-bandwidth MIB]\n"
                 "                         set the next migrations' tunables\n"
                 "  query-migrate-parameters  the tunables in force\n"
                 "  snapshot DIR           save the VM into directory DIR (waits until it is\n"
                 "                         written: a job query-migrate follows)\n"
                 "  query-migrate          the migration's or snapshot's progress or result\n"
                 "  raw LINE               send LINE as it is (one JSON request) and print the\n"
                 "                         reply line; exit 0 when it is a return, 1 an error\n"
                 "\n"
                 "Options:\n"
                 "  -s, --api-socket PATH  vmm's control socket (required)\n"
                 "      --json             print vmm's JSON replies as they are\n"
                 "      --verify           with migrate: verify the destination's memory\n"
                 "      --downtime-limit MS  with migrate: the downtime budget (QEMU's name)\n"
                 "      --max-bandwidth MIB  with migrate: MiB/s at most on the stream\n"
                 "  -h, --help             show this help\n"
                 "\n"
                 "Exit status: 0 on success; 1 when vmm reports an error, cannot be reached,\n"
                 "or sends a reply vmmctl cannot read (one error line says which member);\n"
                 "2 on a usage error.\n");
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- the connection ---- */

static int conn_open(struct conn *c, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    c->path = path;
    c->len = 0;
    c->next_id = 1;
    if (strlen(path) == 0 || strlen(path) >= sizeof(sa.sun_path))
        return vmmctl_fail(EXIT_USAGE, "--api-socket '%s': the path must be 1 to %zu bytes long",
                           path, sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return vmmctl_fail(EXIT_FAIL, "cannot create a socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int err = errno;

        close(c->fd);
        c->fd = -1;
        return vmmctl_fail(EXIT_FAIL,
                           "cannot connect to %s: %s (is vmm running with --api-socket %s?)", path,
                           strerror(err), path);
    }
    return 0;
}

static int conn_send(struct conn *c, const char *line)
{
    size_t len = strlen(line), off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vmmctl_fail(EXIT_FAIL, "cannot write to %s: %s", c->path, strerror(errno));
        off += (size_t)n;
    }
    return 0;
}

/* Waits until deadline for more bytes: 1 when some came, 0 at the end of
 * input, -ETIMEDOUT or -errno otherwise. */
static int conn_fill(struct conn *c, int64_t deadline)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int64_t left = deadline - now_ms();
    ssize_t n;
    int r;

    if (left <= 0)
        return -ETIMEDOUT;
    r = poll(&p, 1, (int)left);
    if (r < 0)
        return errno == EINTR ? 1 : -errno;
    if (r == 0)
        return -ETIMEDOUT;
    n = read(c->fd, c->buf + c->len, VMMCTL_MAX_REPLY - c->len);
    if (n < 0)
        return errno == EINTR ? 1 : -errno;
    c->len += (size_t)n;
    return n > 0;
}

/* The next reply line, parsed; NULL (reported) on error. */
static struct json_object *conn_read_reply(struct conn *c)
{
    int64_t deadline = now_ms() + VMMCTL_REPLY_TIMEOUT_MS;
    struct json_object *reply;
    char *nl;
    int ret;

    while (!(nl = memchr(c->buf, '\n', c->len))) {
        if (c->len == VMMCTL_MAX_REPLY) {
            vmmctl_fail(EXIT_FAIL, "a reply longer than %d bytes from vmm", VMMCTL_MAX_REPLY);
            return NULL;
        }
        ret = conn_fill(c, deadline);
        if (ret == 0)
            vmmctl_fail(EXIT_FAIL, "vmm closed the control socket %s without a reply", c->path);
        else if (ret == -ETIMEDOUT)
            vmmctl_fail(EXIT_FAIL, "no reply from vmm on %s within %d ms", c->path,
                        VMMCTL_REPLY_TIMEOUT_MS);
        else if (ret < 0)
            vmmctl_fail(EXIT_FAIL, "cannot read from %s: %s", c->path, strerror(-ret));
        if (ret <= 0)
            return NULL;
    }
    *nl = '\0';
    reply = vmmctl_reply_parse(c->buf);
    c->len -= (size_t)(nl + 1 - c->buf);
    memmove(c->buf, nl + 1, c->len);
    return reply;
}

/* Sends one command and returns its "return" value (a new reference) or NULL
 * after printing vmm's error. raw: the reply line as it came, for --json. */
static struct json_object *conn_call(struct conn *c, const char *name, struct json_object *args,
                                     bool raw)
{
    struct json_object *req = json_object_new_object(), *reply, *ret;
    unsigned id = c->next_id++;
    char *line;
    int r;

    json_object_object_add(req, "execute", json_object_new_string(name));
    if (args)
        json_object_object_add(req, "arguments", args);
    json_object_object_add(req, "id", json_object_new_int64(id));
    r = asprintf(&line, "%s\n",
                 json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(req);
    if (r < 0) {
        vmmctl_fail(EXIT_FAIL, "out of memory");
        return NULL;
    }
    r = conn_send(c, line);
    free(line);
    reply = r ? NULL : conn_read_reply(c);
    if (!reply)
        return NULL;
    if (raw)
        vmmctl_print_raw(stdout, reply);
    ret = vmmctl_reply_result(reply, name, id);
    json_object_put(reply);
    return ret;
}

/* ---- commands ---- */

static int cmd_simple(struct conn *c, const struct ctl *ctl, const char *done)
{
    struct json_object *ret = conn_call(c, ctl->command, NULL, ctl->json);

    if (!ret)
        return EXIT_FAIL;
    json_object_put(ret);
    if (!ctl->json)
        printf("%s\n", done);
    return 0;
}

static int cmd_status(struct conn *c, const struct ctl *ctl)
{
    struct json_object *ret = conn_call(c, ctl->command, NULL, ctl->json);
    int r = 0;

    if (!ret)
        return EXIT_FAIL;
    if (!ctl->json && !strcmp(ctl->command, "status"))
        r = vmmctl_print_status(stdout, ret);
    else if (!ctl->json && !strcmp(ctl->command, "query-migrate-parameters"))
        r = vmmctl_print_migration_parameters(stdout, ret);
    else if (!ctl->json)
        r = vmmctl_print_migration(stdout, ret);
    json_object_put(ret);
    return r;
}

/* vmm closes every client as it exits: the end of input says it is gone. */
static int cmd_shutdown(struct conn *c, const struct ctl *ctl)
{
    int64_t deadline = now_ms() + VMMCTL_SHUTDOWN_TIMEOUT_MS;
    struct json_object *ret = conn_call(c, "shutdown", NULL, ctl->json);
    int r = 1;

    if (!ret)
        return EXIT_FAIL;
    json_object_put(ret);
    while (r > 0) {
        c->len = 0; /* nothing more is expected; only the end counts */
        r = conn_fill(c, deadline);
    }
    if (r == -ETIMEDOUT)
        return vmmctl_fail(EXIT_FAIL, "shutdown requested, but vmm did not exit within %d ms",
                           VMMCTL_SHUTDOWN_TIMEOUT_MS);
    /* A reset connection also means vmm's end is closed. */
    if (r < 0 && r != -ECONNRESET)
        return vmmctl_fail(EXIT_FAIL, "shutdown requested; then cannot read from %s: %s", c->path,
                           strerror(-r));
    if (!ctl->json)
        printf("vmm has shut down\n");
    return 0;
}

static bool migration_running(const char *status)
{
    return !strcmp(status, "none") || !strcmp(status, "setup") || !strcmp(status, "active");
}

/* The snapshot is a job on vmm's side (query-migrate follows it): wait for its end. */
static int cmd_snapshot(struct conn *c, const struct ctl *ctl)
{
    struct json_object *args = json_object_new_object(), *m;
    const char *status = NULL, *why;
    int none_polls = 0, ret;

    json_object_object_add(args, "dir", json_object_new_string(ctl->args[0]));
    m = conn_call(c, "snapshot", args, ctl->json);
    while (m) {
        json_object_put(m);
        sleep_ms(VMMCTL_POLL_MS);
        m = conn_call(c, "query-migrate", NULL, ctl->json);
        status = m ? vmmctl_migration_status(m) : NULL;
        if (!status || !migration_running(status) ||
            (!strcmp(status, "none") && ++none_polls > VMMCTL_NONE_POLLS))
            break;
    }
    if (!m)
        return EXIT_FAIL;
    ret = status && !strcmp(status, "completed") ? 0 : EXIT_FAIL;
    why = ret ? vmmctl_migration_error(m) : NULL;
    json_object_put(m);
    if (ret)
        return vmmctl_fail(EXIT_FAIL, "snapshot %s: %s", status ? status : "lost",
                           why ? why : "no reason given");
    if (!ctl->json)
        printf("snapshot saved in %s\n", ctl->args[0]);
    return 0;
}

/* A request as the user wrote it, for anything the commands above do not say. */
static int cmd_raw(struct conn *c, const struct ctl *ctl)
{
    const char *line = ctl->args[0];
    struct json_object *reply;
    char *text;
    int r;

    if (strchr(line, '\n'))
        return vmmctl_fail(EXIT_USAGE, "raw: the line must not contain a newline");
    if (!line[strspn(line, " \t\r")])
        return vmmctl_fail(EXIT_USAGE, "raw: the line is blank (vmm does not answer those)");
    if (asprintf(&text, "%s\n", line) < 0)
        return vmmctl_fail(EXIT_FAIL, "out of memory");
    r = conn_send(c, text);
    free(text);
    reply = r ? NULL : conn_read_reply(c);
    if (!reply)
        return EXIT_FAIL;
    r = vmmctl_print_raw(stdout, reply);
    json_object_put(reply);
    return r;
}

/* A whole number in [0, max], or -1 with the error said. */
static long long parse_count(const char *what, const char *s, long long max)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v > max) {
        vmmctl_fail(EXIT_USAGE, "%s '%s': a whole number from 0 to %lld is needed", what, s, max);
        return -1;
    }
    return v;
}

/* --downtime-limit MS and --max-bandwidth MIB as QEMU's downtime-limit (ms) and
 * max-bandwidth (bytes/s); non-zero when one is malformed. */
static int add_tunables(struct json_object *args, const struct ctl *ctl)
{
    long long v;

    if (ctl->downtime_limit) {
        v = parse_count("--downtime-limit", ctl->downtime_limit, 2000000);
        if (v < 0)
            return -1;
        json_object_object_add(args, "downtime-limit", json_object_new_int64(v));
    }
    if (ctl->max_bandwidth) {
        v = parse_count("--max-bandwidth", ctl->max_bandwidth, 1LL << 40);
        if (v < 0)
            return -1;
        json_object_object_add(args, "max-bandwidth", json_object_new_int64(v * 1048576));
    }
    return 0;
}

static int cmd_set_parameters(struct conn *c, const struct ctl *ctl)
{
    struct json_object *args = json_object_new_object(), *ret;

    if (add_tunables(args, ctl)) {
        json_object_put(args);
        return EXIT_USAGE;
    }
    ret = conn_call(c, "migrate-set-parameters", args, ctl->json);
    if (!ret)
        return EXIT_FAIL;
    json_object_put(ret);
    if (!ctl->json)
        printf("migration parameters set\n");
    return 0;
}

static int cmd_migrate(struct conn *c, const struct ctl *ctl)
{
    struct json_object *args = json_object_new_object(), *m;
    struct vmmctl_progress p = {.tty = !ctl->json && isatty(STDOUT_FILENO)};
    const char *status;
    int ret = 0;

    json_object_object_add(args, "uri", json_object_new_string(ctl->args[0]));
    json_object_object_add(args, "verify", json_object_new_boolean(ctl->verify));
    if (add_tunables(args, ctl)) {
        json_object_put(args);
        return EXIT_USAGE;
    }
    m = conn_call(c, "migrate", args, ctl->json);
    if (!m)
        return EXIT_FAIL;
    for (;;) {
        json_object_put(m);
        sleep_ms(VMMCTL_POLL_MS);
        m = conn_call(c, "query-migrate", NULL, ctl->json);
        if (!m)
            return EXIT_FAIL;
        status = vmmctl_migration_status(m);
        if (!status || !migration_running(status))
            break;
        if (!strcmp(status, "none") && ++p.none_polls > VMMCTL_NONE_POLLS) {
            json_object_put(m);
            return vmmctl_fail(EXIT_FAIL, "vmm reports no migration after %d ms",
                               VMMCTL_NONE_POLLS * VMMCTL_POLL_MS);
        }
        if (!ctl->json && (ret = vmmctl_show_progress(stdout, &p, m)))
            break;
    }
    if (p.shown)
        printf("\n");
    if (status && !ret)
        ret = vmmctl_migration_result(stdout, m, ctl->verify);
    json_object_put(m);
    return status ? ret : EXIT_FAIL;
}

/* ---- the command line ---- */

struct command {
    const char *name;
    int nargs;
    const char *args_usage;
};

static const struct command commands[] = {
    {"status", 0, ""},
    {"pause", 0, ""},
    {"resume", 0, ""},
    {"shutdown", 0, ""},
    {"migrate", 1, " URI"},
    {"migrate-cancel", 0, ""},
    {"snapshot", 1, " DIR"},
    {"query-migrate", 0, ""},
    {"raw", 1, " LINE"},
    {"migrate-set-parameters", 0, ""},
    {"query-migrate-parameters", 0, ""},
};

static int check_command(const struct ctl *ctl)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, ctl->command))
            continue;
        if (ctl->nargs != commands[i].nargs)
            return vmmctl_fail(EXIT_USAGE, "usage: vmmctl --api-socket PATH %s%s", commands[i].name,
                               commands[i].args_usage);
        if (ctl->verify && strcmp(ctl->command, "migrate"))
            return vmmctl_fail(EXIT_USAGE, "--verify goes with migrate only");
        if ((ctl->downtime_limit || ctl->max_bandwidth) && strcmp(ctl->command, "migrate") &&
            strcmp(ctl->command, "migrate-set-parameters"))
            return vmmctl_fail(EXIT_USAGE,
                               "--downtime-limit and --max-bandwidth go with migrate and "
                               "migrate-set-parameters only");
        return 0;
    }
    return vmmctl_fail(EXIT_USAGE, "unknown command '%s' (see --help)", ctl->command);
}

static int parse_args(int argc, char **argv, struct ctl *ctl)
{
    static const struct option opts[] = {
        {"api-socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"verify", no_argument, NULL, 'V'},
        {"downtime-limit", required_argument, NULL, 'D'},
        {"max-bandwidth", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            ctl->socket = optarg;
            break;
        case 'j':
            ctl->json = true;
            break;
        case 'V':
            ctl->verify = true;
            break;
        case 'D':
            ctl->downtime_limit = optarg;
            break;
        case 'B':
            ctl->max_bandwidth = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case ':':
            return vmmctl_fail(EXIT_USAGE, "option '%s' needs a value", argv[optind - 1]);
        default:
            return vmmctl_fail(EXIT_USAGE, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (!ctl->socket)
        return vmmctl_fail(EXIT_USAGE, "--api-socket PATH is required (see --help)");
    if (optind == argc)
        return vmmctl_fail(EXIT_USAGE, "no command given (see --help)");
    ctl->command = argv[optind];
    ctl->args = argv + optind + 1;
    ctl->nargs = argc - optind - 1;
    return check_command(ctl);
}

static int run(struct conn *c, const struct ctl *ctl)
{
    const char *cmd = ctl->command;

    if (!strcmp(cmd, "status") || !strcmp(cmd, "query-migrate") ||
        !strcmp(cmd, "query-migrate-parameters"))
        return cmd_status(c, ctl);
    if (!strcmp(cmd, "migrate-set-parameters"))
        return cmd_set_parameters(c, ctl);
    if (!strcmp(cmd, "pause"))
        return cmd_simple(c, ctl, "paused");
    if (!strcmp(cmd, "resume"))
        return cmd_simple(c, ctl, "resumed");
    if (!strcmp(cmd, "migrate-cancel"))
        return cmd_simple(c, ctl, "migration cancel requested");
    if (!strcmp(cmd, "shutdown"))
        return cmd_shutdown(c, ctl);
    if (!strcmp(cmd, "snapshot"))
        return cmd_snapshot(c, ctl);
    if (!strcmp(cmd, "raw"))
        return cmd_raw(c, ctl);
    return cmd_migrate(c, ctl);
}

int main(int argc, char **argv)
{
    static struct conn conn = {.fd = -1};
    struct ctl ctl = {0};
    int ret = parse_args(argc, argv, &ctl);

    if (ret)
        return ret < 0 ? 0 : ret;
    ret = conn_open(&conn, ctl.socket);
    if (!ret)
        ret = run(&conn, &ctl);
    if (conn.fd >= 0)
        close(conn.fd);
    return ret;
}
