/* The control socket (--api-socket): newline-delimited JSON requests and
 * replies on a Unix socket, served on the event loop (QMP-like, see README).
 *   {"execute": "NAME", "arguments": {...}, "id": ANY}
 *   {"return": {...}, "id": ...}  or  {"error": {"class": ..., "desc": ...}, "id": ...}
 * The commands reach the machine through an ops table, so the dispatcher runs
 * without KVM in the unit tests. */
#ifndef VMM_API_H
#define VMM_API_H

#include "../common/event_loop.h"
#include "migration.h"
#include "options.h"
#include "vm_net.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_MAX_LINE (64 * 1024) /* a longer request line drops its client */
#define API_MAX_CLIENTS 16
/* With API_MAX_CLIENTS connected, a new client takes the place of the one idle longest
 * if it has been idle this long: it sent nothing, has no partial request buffered and
 * no reply waiting to be read. That one gets an error line and is closed. */
#define API_IDLE_EVICT_MS 10000

struct api_status {
    const char *state; /* "prelaunch" "inmigrate" "running" "paused" "shutting-down" */
    unsigned vcpus, reboots, nnets;
    uint64_t memory_bytes, uptime_ms;
    struct vm_net_status nets[VMM_MAX_NETS];
};

/* What the commands do; opaque is the machine (a struct vm, or a test's fake). */
struct api_ops {
    void (*status)(void *opaque, struct api_status *st);
    int (*pause)(void *opaque);
    int (*resume)(void *opaque);
    void (*shutdown)(void *opaque, const char *reason);
    int (*migrate)(void *opaque, const struct migration_params *p, char *err, size_t errlen);
    int (*migrate_cancel)(void *opaque, char *err, size_t errlen);
    int (*snapshot)(void *opaque, const char *dir, char *err, size_t errlen);
    void (*query_migrate)(void *opaque, struct migration_info *info);
    int (*migrate_set_parameters)(void *opaque, const struct migration_tunables *t, char *err,
                                  size_t errlen);
    void (*query_migrate_parameters)(void *opaque, struct migration_tunables *t);
};

struct api_client;

struct api {
    const struct api_ops *ops;
    void *opaque;
    struct event_loop *loop;
    int listen_fd;
    char path[108];
    struct api_client *clients;
    unsigned nclients;
    uint64_t (*now_ms)(void); /* CLOCK_MONOTONIC; tests and the fuzzer set their own */
};

/* Listens on path (replacing a stale socket file) and serves it on loop, the
 * commands acting on vm (api_vm.c). */
int api_init(struct api *api, const char *path, struct vm *vm, struct event_loop *loop);
/* Closes every client and the socket, and removes the socket file (unless
 * api_file_removed said it is gone). */
void api_destroy(struct api *api);
/* Someone else removed the socket file (vmm's worker, whose sandbox may unlink):
 * api_destroy leaves the name alone, which may be another vmm's socket by then. */
void api_file_removed(struct api *api);

/* The parts api_init is made of, for tests: the ops, then the socket. */
void api_setup(struct api *api, const struct api_ops *ops, void *opaque);
int api_listen(struct api *api, const char *path, struct event_loop *loop);

/* What the listening socket does with a connection (fd: a non-blocking stream socket,
 * now owned by the api): serves it, making room by evicting the longest-idle client
 * when API_MAX_CLIENTS are connected, or refuses it with an error line. For tests and
 * the fuzzer, which hand it one end of a socketpair; api->loop must be set. */
void api_accept_fd(struct api *api, int fd);

/* Runs one request line (len bytes, no newline, NUL-terminated at len) and
 * returns the malloc'ed reply line without its newline; NULL for a blank line
 * (nothing to answer) or when out of memory. */
char *api_handle_line(struct api *api, const char *line, size_t len);

#endif
