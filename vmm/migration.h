/* PLACEHOLDER (api branch): the declarations from the migration design doc, so the
 * control socket builds and is tested before vmm/migration.[ch] land. The main
 * branch's vmm/migration.h replaces this file on merge. */
#ifndef VMM_MIGRATION_H
#define VMM_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

struct migration_params {
    char uri[256];
    bool verify;
};

/* Returns at once; runs in its own thread. */
int migration_start(struct vm *vm, const struct migration_params *p, char *err, size_t errlen);
int migration_cancel(struct vm *vm, char *err, size_t errlen);
/* The VM must be paused (or it pauses it). */
int snapshot_save(struct vm *vm, const char *dir, char *err, size_t errlen);

struct migration_info {
    const char *status; /* "none" "setup" "active" "completed" "failed" "cancelled" */
    unsigned round;     /* current/last precopy round */
    uint64_t pages_dirtied_last_round, pages_sent, total_pages;
    double mbps;
    uint64_t expected_downtime_ms, total_time_ms, downtime_ms;
    bool verify_done;
    uint64_t verify_pages_compared, verify_pages_differ;
    uint64_t verify_first_differ[8];
    unsigned verify_nfirst;
    char error[256];
};
void migration_query(struct vm *vm, struct migration_info *info);

#endif
