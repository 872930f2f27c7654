/*
 * Fuzz target: the control socket (vmm/api.c) against a fake machine, in two modes.
 * - One request line through api_handle_line: parsing, dispatch, every command and
 *   argument shape, and the fake machine's successes and failures.
 * - Client byte streams: up to 24 clients on socketpairs (admitted as the listening
 *   socket admits them, with eviction of idle ones and refusal), on a real event loop,
 *   sending chunks that split, join and overflow request lines, reading replies slowly
 *   or not at all, hanging up, while a fake clock moves.
 *
 * Oracles: every reply is one line of JSON: an object holding exactly one of return
 * and error (an error with a string class and desc), and at most an id besides; the
 * machine is called only with arguments the command checked (a migrate URI of the
 * right form, a non-empty snapshot directory); a blank line gets no reply; clients
 * never exceed API_MAX_CLIENTS; no fd leaks.
 *
 * Input: a mode byte, a flags byte (which machine calls fail, F_*), then for mode bit 0
 * clear one request line; for bit 0 set, ops of [op][len]: op % 8 = 0 sends the len
 * bytes that follow on client op >> 3, 1 runs the loop, 2 reads the client's replies,
 * 3 closes it, 4 shuts its writing side (end of input), 5 connects a new client,
 * 6 moves the clock len seconds on, 7 sets the flags to len.
 */
#include "../../vmm/api.h"

#include "fuzz_util.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define F_PAUSE_FAILS 0x01
#define F_PAUSE_TIMEOUT 0x02
#define F_OP_FAILS 0x04
#define F_OP_MESSAGE 0x08
#define F_MIGRATING 0x10
#define F_TWO_NETS 0x20

#define MAX_FDS (API_MAX_CLIENTS + 8)
/* The longest reply: a request line's id echoed back, and the rest of the reply. */
#define READ_MAX (API_MAX_LINE + 4096)

static struct event_loop loop;
static struct api api;
static uint8_t flags;
static uint64_t fake_now;

/* ---- the fake machine ---- */

static void fake_status(void *opaque, struct api_status *st)
{
    (void)opaque;
    *st = (struct api_status){.state = "running", .vcpus = 2, .memory_bytes = 1ULL << 30};
    st->nnets = flags & F_TWO_NETS ? 2 : 0;
    for (unsigned i = 0; i < st->nnets; i++)
        st->nets[i] = (struct vm_net_status){.id = i ? "net1" : "net0",
                                             .socket = "/tmp/vhost.sock",
                                             .connected = true,
                                             .queue_pairs = 1 + i};
}

static int fake_pause(void *opaque)
{
    (void)opaque;
    if (flags & F_PAUSE_TIMEOUT)
        return -ETIMEDOUT;
    return flags & F_PAUSE_FAILS ? -ESHUTDOWN : 0;
}

static int fake_resume(void *opaque)
{
    (void)opaque;
    return flags & F_PAUSE_FAILS ? -EIO : 0;
}

static void fake_shutdown(void *opaque, const char *reason)
{
    (void)opaque;
    if (!reason || !*reason)
        fuzz_fail("shutdown without a reason");
}

static int fake_result(char *err, size_t errlen)
{
    if (flags & F_OP_MESSAGE)
        snprintf(err, errlen, "the machine says no");
    return flags & F_OP_FAILS ? -EINVAL : 0;
}

static int fake_migrate(void *opaque, const struct migration_params *p, char *err, size_t errlen)
{
    (void)opaque;
    if (strnlen(p->uri, sizeof(p->uri)) == sizeof(p->uri) ||
        (strncmp(p->uri, "unix:", 5) && strncmp(p->uri, "tcp:", 4)) ||
        (!strncmp(p->uri, "unix:", 5) && !p->uri[5]))
        fuzz_fail("migrate reached the machine with the URI '%.40s'", p->uri);
    return fake_result(err, errlen);
}

static int fake_cancel(void *opaque, char *err, size_t errlen)
{
    (void)opaque;
    return fake_result(err, errlen);
}

static int fake_snapshot(void *opaque, const char *dir, char *err, size_t errlen)
{
    (void)opaque;
    if (!*dir || strlen(dir) >= PATH_MAX)
        fuzz_fail("snapshot reached the machine with a directory of %zu bytes", strlen(dir));
    return fake_result(err, errlen);
}

static void fake_query(void *opaque, struct migration_info *info)
{
    (void)opaque;
    *info = (struct migration_info){
        .status = flags & F_MIGRATING ? "active" : "none", .round = 3, .mbps = 512.25};
    if (flags & F_OP_MESSAGE) {
        info->verify_done = true;
        info->verify_pages_differ = 9;
        info->verify_nfirst = 9; /* more than the 8 there is room for */
        snprintf(info->error, sizeof(info->error), "the destination said \"no\"\n");
    }
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
};

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* ---- replies ---- */

static void check_reply(const char *line, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o, *ret, *err, *v;
    int members = 0;

    if (!tok)
        fuzz_fail("out of memory");
    o = json_tokener_parse_ex(tok, line, (int)len);
    if (!o || json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))
        fuzz_fail("reply '%.*s' is not one JSON object", (int)(len > 200 ? 200 : len), line);
    json_tokener_free(tok);
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        members++;
        if (strcmp(key, "return") && strcmp(key, "error") && strcmp(key, "id"))
            fuzz_fail("reply has a member '%s'", key);
    }
    if (json_object_object_get_ex(o, "return", &ret) == json_object_object_get_ex(o, "error", &err))
        fuzz_fail("reply '%.*s' has both or neither of return and error", (int)len, line);
    if (json_object_object_get_ex(o, "error", &err) &&
        (!json_object_object_get_ex(err, "class", &v) ||
         !json_object_is_type(v, json_type_string) || !json_object_object_get_ex(err, "desc", &v) ||
         !json_object_is_type(v, json_type_string)))
        fuzz_fail("error reply '%.*s' without a string class and desc", (int)len, line);
    if (members > 2)
        fuzz_fail("reply with %d members", members);
    json_object_put(o);
}

static bool is_blank(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

static void fuzz_line(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1), *reply;

    if (!line)
        fuzz_fail("out of memory");
    memcpy(line, data, size);
    line[size] = '\0';
    reply = api_handle_line(&api, line, size);
    if (!reply && !is_blank(data, size))
        fuzz_fail("no reply to a line that is not blank");
    if (reply && is_blank(data, size))
        fuzz_fail("a reply to a blank line");
    if (reply) {
        if (strchr(reply, '\n'))
            fuzz_fail("reply spans lines");
        check_reply(reply, strlen(reply));
    }
    free(reply);
    free(line);
}

/* ---- clients ---- */

static struct peer {
    int fd; /* the client's end; -1 when closed */
    char buf[READ_MAX];
    size_t len;
} peers[MAX_FDS];
static int npeers;

static void peer_connect(void)
{
    int sv[2];

    if (npeers == MAX_FDS)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        fuzz_fail("socketpair: %s", strerror(errno));
    peers[npeers].fd = sv[0];
    peers[npeers++].len = 0;
    api_accept_fd(&api, sv[1]);
    if (api.nclients > API_MAX_CLIENTS)
        fuzz_fail("%u clients", api.nclients);
}

/* Takes every whole line the server sent; a line longer than the server's longest
 * reply means the lines run together. */
static void peer_read(struct peer *p)
{
    char *nl;

    if (p->fd < 0)
        return;
    for (;;) {
        ssize_t n = recv(p->fd, p->buf + p->len, READ_MAX - p->len, MSG_DONTWAIT);

        if (n <= 0)
            break;
        p->len += (size_t)n;
        while ((nl = memchr(p->buf, '\n', p->len))) {
            check_reply(p->buf, (size_t)(nl - p->buf));
            p->len -= (size_t)(nl + 1 - p->buf);
            memmove(p->buf, nl + 1, p->len);
        }
        if (p->len == READ_MAX)
            fuzz_fail("a reply line longer than %d bytes", READ_MAX);
    }
}

static void peers_close(void)
{
    for (int i = 0; i < npeers; i++)
        if (peers[i].fd >= 0)
            close(peers[i].fd);
    npeers = 0;
}

static void run_op(uint8_t op, const uint8_t *arg, size_t len)
{
    struct peer *p = npeers ? &peers[(op >> 3) % npeers] : NULL;

    switch (op & 7) {
    case 0:
        if (p && p->fd >= 0 && send(p->fd, arg, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
            errno != EAGAIN && errno != EPIPE && errno != ECONNRESET)
            fuzz_fail("send: %s", strerror(errno));
        break;
    case 1:
        event_loop_run_once(&loop, 0);
        break;
    case 2:
        if (p)
            peer_read(p);
        break;
    case 3:
        if (p && p->fd >= 0) {
            close(p->fd);
            p->fd = -1;
        }
        break;
    case 4:
        if (p && p->fd >= 0)
            shutdown(p->fd, SHUT_WR);
        break;
    case 5:
        peer_connect();
        break;
    case 6:
        fake_now += 1000ULL * len;
        break;
    case 7:
        flags = (uint8_t)len;
        break;
    }
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
    api.loop = &loop;
    api.now_ms = fake_clock;
    fake_now = 1000000;
    peer_connect();
    for (size_t off = 0; off + 2 <= size;) {
        uint8_t op = data[off];
        size_t len = data[off + 1];

        off += 2;
        if ((op & 7) != 0) {
            run_op(op, NULL, len);
            continue;
        }
        if (len > size - off)
            len = size - off;
        run_op(op, data + off, len);
        off += len;
    }
    for (int i = 0; i < 4; i++)
        event_loop_run_once(&loop, 0);
    for (int i = 0; i < npeers; i++)
        peer_read(&peers[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    fuzz_log_level();
    if (event_loop_init(&loop))
        fuzz_fail("cannot create the event loop");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds_before = fuzz_count_fds();

    if (size < 2)
        return 0;
    api_setup(&api, &fake_ops, NULL);
    flags = data[1];
    if (data[0] & 1)
        fuzz_stream(data + 2, size - 2);
    else
        fuzz_line(data + 2, size - 2);
    api_destroy(&api);
    peers_close();
    fuzz_check_fds(fds_before);
    return 0;
}
