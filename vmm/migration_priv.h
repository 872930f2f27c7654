/* What the migration files share (not for the rest of vmm): the source's state
 * and one run's, and the writing half that a migration and a snapshot have in
 * common (migration_send.c). */
#ifndef VMM_MIGRATION_PRIV_H
#define VMM_MIGRATION_PRIV_H

#include "dirty.h"
#include "migration.h"
#include "migration_stream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

_Static_assert(MIGRATION_MAX_NETS == MIG_MAX_NETS, "the header holds every NIC's queue pairs");

#define MIG_DEFAULT_MAX_ROUNDS 30
#define SNAPSHOT_FILE "vmm-state"

struct migration {
    struct migration_host host;
    pthread_mutex_t lock; /* info, params, tune */
    struct migration_info info;
    struct migration_params params;
    struct migration_tunables tune;
    pthread_t thread;
    bool thread_started;
    atomic_bool cancel;
    int fd;       /* the running migration's stream: a cancel shuts it down */
    int stop_efd; /* written by migration_interrupt: a destination's stop_fd */
    unsigned max_rounds;
    /* KVM's manual protection, probed at the first migration (it stays on). */
    bool slot_log_probed, slot_log_manual;
    /* vmm's own writes: kept until destroy, since a writer may still hold it. */
    struct dirty_own_log own_log;
    /* Test-only (VMM_TEST_MIGRATION_IGNORE_BACKEND_LOG): see README. */
    bool ignore_backend_log;
    char snapshot_dir[4096]; /* snapshot_start's, for its thread */
};

void *snapshot_thread(void *arg);

/* One run of the source or of a snapshot save, held by the thread doing it. */
struct mig_run {
    struct migration *m;
    const struct migration_host_ops *ops;
    void *opaque;
    const struct guest_memory *mem;
    struct device *const *devs;
    unsigned ndevs;
    struct migration_machine machine;
    int fd;
    struct dirty_map dirty;
    struct vhost_log log;                       /* the devices' shared log */
    uint64_t *slot_bits[GUEST_MEM_MAX_REGIONS]; /* KVM's log of the last harvest */
    struct mig_out out; /* pages queued for one sendmsg; flushed before any other record */
    struct mig_throttle throttle;
    bool throttled; /* precopy: max-bandwidth applies (not to the final stop) */
    bool slot_logging, devices_logging, own_logging, paused;
    uint64_t bytes, pages_sent, start_ms, down_ms;
    uint64_t phase_us[MIGRATION_PHASES]; /* the final stop's, as it went */
    char err[256];
};

uint64_t mig_now_ms(void);
uint64_t mig_now_us(void);

/* The machine's memory map, devices and description into r. */
void mig_run_init(struct mig_run *r, struct migration *m, int fd);
/* Records why (the first reason wins) and returns ret, or -EIO. */
int mig_run_fail(struct mig_run *r, int ret, const char *fmt, const char *what);
void mig_run_header(struct mig_run *r, struct mig_header *h, uint32_t flags);

int mig_send_rec(struct mig_run *r, uint32_t type, uint64_t a, uint64_t b, const void *payload,
                 size_t len);
/* Sends every page set in the dirty map and clears it. first_pass: the
 * destination's RAM is still all zeros, so zero pages and holes are skipped. */
int mig_send_dirty(struct mig_run *r, bool first_pass);
/* Each vCPU's state, the VM's, each device's by id. */
int mig_send_machine_state(struct mig_run *r);
/* --verify: a hash of every RAM page, in region order. */
int mig_send_hashes(struct mig_run *r);

/* The devices' pause and resume ops, in list order (each waits for its own thread,
 * no lock held). */
int mig_pause_devices(struct mig_run *r);
void mig_resume_devices(struct mig_run *r);

/* migration_dest.c: a whole stream from fd (a snapshot's file) into the host;
 * the reason in why on failure. */
int mig_receive_file(const struct migration_host *host, int fd, int stop_fd, char *why, size_t len);

#endif
