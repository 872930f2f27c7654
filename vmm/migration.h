/* Live migration, snapshots and the destination side (--incoming, --restore).
 *
 * The source runs precopy in its own thread: a full pass over guest RAM, then
 * rounds of the pages dirtied meanwhile, merged from KVM's log (vCPU writes) and
 * the vhost-user backends' shared log (device writes), until the rest fits the
 * downtime budget; then it pauses the vCPUs, stops the rings, sends the last pages
 * and every device's state, and waits for the destination's verdict. A failure or
 * a cancel leaves the source running: logging off, rings restarted, vCPUs resumed.
 * The stream format is in migration.c. */
#ifndef VMM_MIGRATION_H
#define VMM_MIGRATION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

struct migration_params {
    char uri[256]; /* unix:PATH or tcp:HOST:PORT */
    bool verify;
};

struct migration_info {
    const char *status; /* "none" "setup" "active" "completed" "failed" "cancelled" */
    unsigned round;
    uint64_t pages_dirtied_last_round, pages_sent, total_pages;
    double mbps;
    uint64_t expected_downtime_ms, total_time_ms, downtime_ms;
    bool verify_done;
    uint64_t verify_pages_compared, verify_pages_differ;
    uint64_t verify_first_differ[8];
    unsigned verify_nfirst;
    char error[256];
};

struct migration {
    pthread_mutex_t lock; /* info */
    struct migration_info info;
    struct migration_params params;
    pthread_t thread;
    bool thread_started;
    atomic_bool cancel;
    int fd; /* the running migration's stream: a cancel shuts it down */
    uint64_t downtime_budget_ms;
    unsigned max_rounds;
};

void migration_init(struct migration *m);
/* Joins a finished migration thread. */
void migration_destroy(struct migration *m);
/* From any thread (vmm is exiting): a running migration fails at once. */
void migration_interrupt(struct migration *m);

/* Source (from the control socket, on the loop thread). start returns at once. */
int migration_start(struct vm *vm, const struct migration_params *p, char *err, size_t errlen);
int migration_cancel(struct vm *vm, char *err, size_t errlen);
void migration_query(struct vm *vm, struct migration_info *info);
/* Writes the VM, paused meanwhile, to DIR/vmm-state; it runs again afterwards if
 * it was running. */
int snapshot_save(struct vm *vm, const char *dir, char *err, size_t errlen);

/* Destination (main thread, before the vCPUs start): receives a migration on uri,
 * or reads DIR/vmm-state, into this machine; 0 when the guest can run. */
int migration_incoming(struct vm *vm, const char *uri);
int snapshot_restore(struct vm *vm, const char *dir);

#endif
