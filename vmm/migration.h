/* Live migration, snapshots and the destination side (--incoming, --restore).
 *
 * The source runs precopy in its own thread: a full pass over guest RAM, then
 * rounds of the pages dirtied meanwhile, merged from KVM's log (vCPU writes), the
 * devices' shared log (a vhost-user backend's writes) and vmm's own log, until the
 * rest fits the downtime limit; then it pauses the vCPUs, stops the devices, sends
 * the last pages and every device's state, and waits for the destination's
 * verdict. A failure or a cancel leaves the source running: logging off, devices
 * restarted, vCPUs resumed. Migration reaches the machine only through a
 * struct migration_host (migration_host.h). The stream format is in
 * migration_stream.h; the files: migration.c (state, start/cancel/query),
 * migration_source.c, migration_dest.c, snapshot.c, migration_resolve.c. */
#ifndef VMM_MIGRATION_H
#define VMM_MIGRATION_H

#include "migration_host.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* QEMU's migrate-set-parameters names and units. */
#define MIGRATION_DEFAULT_DOWNTIME_MS 300
#define MIGRATION_MAX_DOWNTIME_MS 2000000 /* QEMU's bound too: 2000 s */

struct migration_tunables {
    bool has_downtime_limit, has_max_bandwidth; /* which are set (a query sets both) */
    uint64_t downtime_limit_ms;                 /* the pause the final stop may cost */
    uint64_t max_bandwidth;                     /* bytes/s the precopy may send; 0: unlimited */
};

struct migration_params {
    char uri[256]; /* unix:PATH or tcp:HOST:PORT */
    bool verify;
    struct migration_tunables tune; /* set for this and later migrations */
};

/* Where the final stop of a completed migration went, in ms, as the source timed it
 * (query-migrate's "downtime-breakdown"): the phases of complete() in order. The
 * destination's share is one figure here; its own log line splits it. */
enum migration_phase {
    MIGRATION_PHASE_PAUSE,        /* the vCPUs out of the guest */
    MIGRATION_PHASE_STOP_DEVICES, /* each device stopped: a NIC's rings (GET_VRING_BASE) */
    MIGRATION_PHASE_FINAL_PAGES,  /* the last harvest of the dirty logs, its pages sent */
    MIGRATION_PHASE_VERIFY,       /* --verify: every page hashed, the hashes sent */
    MIGRATION_PHASE_STATE,        /* vCPU, VM and device state sent */
    MIGRATION_PHASE_DESTINATION,  /* END sent to the destination's answer: its loads, its
                                     NICs started on their backends, its verify */
    MIGRATION_PHASES
};
/* QEMU-style names, for the reply and the log. */
extern const char *const migration_phase_names[MIGRATION_PHASES];

struct migration_info {
    const char *status; /* "none" "setup" "active" "completed" "failed" "cancelled" */
    bool snapshot;      /* the job is a snapshot (snapshot_start), not a migration */
    unsigned round;
    uint64_t pages_dirtied_last_round, pages_sent, total_pages;
    double mbps;
    uint64_t expected_downtime_ms, total_time_ms, downtime_ms;
    bool downtime_known;                       /* a completed migration: phase_ms is set */
    uint64_t phase_ms[MIGRATION_PHASES];       /* the downtime's breakdown */
    uint64_t downtime_limit_ms, max_bandwidth; /* the tunables in force */
    bool verify_done;
    uint64_t verify_pages_compared, verify_pages_differ;
    uint64_t verify_first_differ[8];
    unsigned verify_nfirst;
    char error[256];
};

struct migration;

/* The source's state for one machine; host is copied. NULL when out of memory. */
struct migration *migration_create(const struct migration_host *host);
/* Cancels a running migration and joins its thread; NULL is fine. */
void migration_destroy(struct migration *m);
/* From any thread (vmm is exiting): a running migration fails at once, and the
 * destination waiting on migration_stop_fd returns -ECANCELED. NULL is fine. */
void migration_interrupt(struct migration *m);
/* An eventfd that migration_interrupt makes readable: the stop_fd to give
 * migration_incoming and snapshot_restore. */
int migration_stop_fd(struct migration *m);

/* Source (from the control socket, on the loop thread). start returns at once:
 * the devices' log_check runs first, and one that cannot log fails it with its
 * reason in err. The destination's name is resolved on the migration thread. */
int migration_start(struct migration *m, const struct migration_params *p, char *err,
                    size_t errlen);
int migration_cancel(struct migration *m, char *err, size_t errlen);
void migration_query(struct migration *m, struct migration_info *info);
/* Sets the tunables given (a running migration follows at once); -EINVAL with the
 * reason in err when one is out of range. */
int migration_set_tunables(struct migration *m, const struct migration_tunables *t, char *err,
                           size_t errlen);
void migration_get_tunables(struct migration *m, struct migration_tunables *t);
/* 0, or -EINVAL with why: the range checks migrate and migrate-set-parameters share. */
int migration_check_tunables(const struct migration_tunables *t, char *why, size_t len);

/* Writes the VM, paused meanwhile, to DIR/vmm-state; it runs again afterwards if
 * it was running. On the calling thread (it waits for the devices' threads). */
int snapshot_save(struct migration *m, const char *dir, char *err, size_t errlen);
/* The same as a job on the migration's thread, as QEMU's snapshot-save is one:
 * returns at once (0, or -errno with err when one is running already), and
 * migration_query follows it (info.snapshot set, status "active" then "completed"
 * or "failed" with the reason). The main loop never waits for a backend this way. */
int snapshot_start(struct migration *m, const char *dir, char *err, size_t errlen);

/* Destination, before the vCPUs first run (any thread): receives a migration on
 * uri, or reads DIR/vmm-state, into the host's machine; 0 when the guest can run.
 * Every wait polls stop_fd too (-1: none): once it is readable (e.g. an eventfd
 * written on SIGTERM, or a signalfd) the wait returns -ECANCELED at once (a
 * snapshot's file is read in chunks that each take well under 100 ms).
 *
 * The listener (unix or tcp) takes peers in turn: one that sends no complete
 * stream header within MIGRATION_HEADER_TIMEOUT_MS, or a header that does not
 * match this machine, is answered (when it sent one), dropped with one line, and
 * the next is awaited; the wait ends only with a matching peer or stop_fd. Once a
 * stream is accepted, a peer silent for MIGRATION_IDLE_TIMEOUT_MS fails it. */
#define MIGRATION_HEADER_TIMEOUT_MS 10000
#define MIGRATION_IDLE_TIMEOUT_MS 30000
int migration_incoming(const struct migration_host *host, const char *uri, int stop_fd);
int snapshot_restore(const struct migration_host *host, const char *dir, int stop_fd);

/* migration_incoming with its bounds chosen (tests: short ones). */
struct migration_incoming_opts {
    int stop_fd;
    unsigned header_timeout_ms, idle_timeout_ms;
};
int migration_incoming_opts(const struct migration_host *host, const char *uri,
                            const struct migration_incoming_opts *o);

#endif
