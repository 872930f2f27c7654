/* vmmctl's reading of vmm's replies: a reply line, the request's result in it, and the
 * text for people. Every member a printer uses is checked for presence and type before
 * anything is printed: a missing or mistyped one is one "vmmctl: ..." error line and
 * VMMCTL_EXIT_FAIL, never an abort (json-c asserts on, say, the length of something
 * that is not an array). No socket here: tests/fuzz/fuzz_vmmctl.c feeds it any bytes. */
#ifndef VMM_VMMCTL_REPLY_H
#define VMM_VMMCTL_REPLY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { VMMCTL_EXIT_FAIL = 1, VMMCTL_EXIT_USAGE = 2 };

/* Where error lines go: stderr unless set (the fuzzer counts them). */
extern FILE *vmmctl_err;

/* Writes "vmmctl: " and the message as one line to vmmctl_err; returns code. */
int vmmctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A reply line (without its newline) as a JSON object; NULL after an error line. */
struct json_object *vmmctl_reply_parse(const char *line);

/* What request id (command name) got in reply: its "return" value, a new reference;
 * NULL after an error line (vmm's error, another id, neither return nor error). */
struct json_object *vmmctl_reply_result(struct json_object *reply, const char *name, unsigned id);

/* raw: the reply line as vmm sent it; 0 when it is a return, VMMCTL_EXIT_FAIL if not. */
int vmmctl_print_raw(FILE *out, struct json_object *reply);

/* The results of status and query-migrate, checked then printed; 0 or VMMCTL_EXIT_FAIL
 * after an error line. */
int vmmctl_print_status(FILE *out, struct json_object *st);
int vmmctl_print_migration(FILE *out, struct json_object *m);

/* migrate polls query-migrate and shows each new round. */
struct vmmctl_progress {
    bool tty, shown; /* tty: one line rewritten in place */
    char last_status[32];
    uint64_t last_round;
    int none_polls;
};

/* The status member of a query-migrate result; NULL after an error line. */
const char *vmmctl_migration_status(struct json_object *m);
/* One progress line for a running migration; 0 or VMMCTL_EXIT_FAIL after an error line. */
int vmmctl_show_progress(FILE *out, struct vmmctl_progress *p, struct json_object *m);
/* The summary of a finished migration and migrate's exit status: 0 when it completed
 * and, with verify, compared clean; else VMMCTL_EXIT_FAIL after one error line. */
int vmmctl_migration_result(FILE *out, struct json_object *m, bool verify);
/* A failed job's reason (its error member, checked), or NULL. */
const char *vmmctl_migration_error(struct json_object *m);
/* query-migrate-parameters' result; 0 or VMMCTL_EXIT_FAIL after an error line. */
int vmmctl_print_migration_parameters(FILE *out, struct json_object *p);

#endif
