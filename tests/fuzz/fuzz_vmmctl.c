/*
 * Fuzz target: vmmctl's handling of what vmm's control socket answers
 * (vmmctl/vmmctl_reply.c), the way vmmctl.c runs each command: a reply line parsed,
 * the request's result taken out of it, then printed for status and query-migrate, a
 * raw reply printed as it is, or migrate's polling: each line a query-migrate reply,
 * progress lines while it runs, then the summary and exit status.
 *
 * Oracles: nothing aborts (json-c asserts on an array call on a non-array); the exit
 * status is 0 or 1, with exactly one "vmmctl: " error line for 1 (raw: or the error
 * reply printed) and none for 0; no control character but the newline ends up in the
 * output or the error line.
 *
 * Input: a byte (bits 0-2: status, query-migrate, migrate, migrate --verify, raw,
 * pause; bit 3: the reply's id is 7, else 1), then the reply line, or for migrate
 * several lines.
 */
#include "../../vmmctl/vmmctl_reply.h"

#include "fuzz_util.h"

#include <string.h>

enum view { V_STATUS, V_QUERY, V_MIGRATE, V_MIGRATE_VERIFY, V_RAW, V_PAUSE, V_COUNT };

#define MAX_POLLS 16

static const char *const names[] = {"status",        "query-migrate", "query-migrate",
                                    "query-migrate", "raw",           "pause"};

static FILE *out;

/* One reply line to the command's result: 0, or 1 after an error line; *ret owned. */
static int take_result(const char *line, enum view v, unsigned id, struct json_object **ret)
{
    struct json_object *reply = vmmctl_reply_parse(line);

    *ret = NULL;
    if (!reply)
        return VMMCTL_EXIT_FAIL;
    if (v == V_RAW) {
        int r = vmmctl_print_raw(out, reply);

        json_object_put(reply);
        return r;
    }
    *ret = vmmctl_reply_result(reply, names[v], id);
    json_object_put(reply);
    return *ret ? 0 : VMMCTL_EXIT_FAIL;
}

static bool running(const char *status)
{
    return !strcmp(status, "none") || !strcmp(status, "setup") || !strcmp(status, "active");
}

/* cmd_migrate's loop over the query-migrate replies, one per line. */
static int migrate(char *lines, unsigned id, bool verify)
{
    struct vmmctl_progress p = {0};
    struct json_object *m = NULL;
    const char *status = NULL;
    char *line = lines, *nl;
    int ret = 0;

    for (int polls = 0; polls < MAX_POLLS; polls++) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        json_object_put(m);
        ret = take_result(line, V_MIGRATE, id, &m);
        if (ret)
            return ret;
        status = vmmctl_migration_status(m);
        if (!status || !running(status) || !nl)
            break;
        if ((ret = vmmctl_show_progress(out, &p, m)))
            break;
        line = nl + 1;
    }
    if (status && !ret)
        ret = vmmctl_migration_result(out, m, verify);
    json_object_put(m);
    return status ? ret : VMMCTL_EXIT_FAIL;
}

static int run(enum view v, char *text, unsigned id)
{
    struct json_object *ret;
    int r;

    if (v == V_MIGRATE || v == V_MIGRATE_VERIFY)
        return migrate(text, id, v == V_MIGRATE_VERIFY);
    r = take_result(text, v, id, &ret);
    if (!r && v == V_STATUS)
        r = vmmctl_print_status(out, ret);
    else if (!r && v == V_QUERY)
        r = vmmctl_print_migration(out, ret);
    json_object_put(ret);
    return r;
}

/* Only newlines: no carriage return, escape or other control byte from vmm. */
static void check_text(const char *s, size_t len, const char *what)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n')
            fuzz_fail("control byte 0x%02x in vmmctl's %s", (unsigned char)s[i], what);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *err_text = NULL, *out_text = NULL, *text;
    size_t err_len = 0, out_len = 0, lines = 0;
    enum view v;
    int r;

    if (size < 1 || (data[0] & 7) >= V_COUNT)
        return 0;
    v = (enum view)(data[0] & 7);
    text = strndup((const char *)data + 1, size - 1); /* vmmctl cuts a line at a NUL too */
    vmmctl_err = open_memstream(&err_text, &err_len);
    out = open_memstream(&out_text, &out_len);
    if (!text || !vmmctl_err || !out)
        fuzz_fail("out of memory");
    if (v != V_MIGRATE && v != V_MIGRATE_VERIFY && strchr(text, '\n'))
        *strchr(text, '\n') = '\0';
    r = run(v, text, data[0] & 8 ? 7 : 1);
    fclose(vmmctl_err);
    fclose(out);
    vmmctl_err = NULL;
    for (size_t i = 0; i < err_len; i++)
        lines += err_text[i] == '\n';
    if (r != 0 && r != VMMCTL_EXIT_FAIL)
        fuzz_fail("exit status %d", r);
    /* raw alone may fail without an error line: the reply it printed is the error. */
    if (lines != (r ? 1u : 0u) && !(v == V_RAW && r && !lines && out_len))
        fuzz_fail("exit status %d with %zu error lines: '%.300s'", r, lines, err_text);
    if (lines && strncmp(err_text, "vmmctl: ", 8))
        fuzz_fail("error line '%.300s'", err_text);
    check_text(err_text, err_len, "error line");
    check_text(out_text, out_len, "output");
    free(err_text);
    free(out_text);
    free(text);
    return 0;
}
