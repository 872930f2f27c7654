/* The fake host the migration suites share (migration_fake.c): guest RAM in a
 * memfd, fake KVM dirty bits, fake vCPU and VM state, a fake device that maps the
 * log fd log_start gets and writes bits into it as a vhost-user backend does; the
 * real destination on a thread; scripted peers. */
#ifndef VMM_TESTS_MIGRATION_FAKE_H
#define VMM_TESTS_MIGRATION_FAKE_H

#include "../../vmm/dirty.h"
#include "../../vmm/migration.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define RAM (64ULL << 20)
#define PAGES (RAM / 4096)
#define NCPUS 2

struct fake_dev {
    struct device dev;
    struct fake_host *host;
    const char *check_err; /* log_check fails with this */
    int log_fd;            /* the fd log_start got (-1: none) */
    uint64_t log_size;
    uint64_t *log; /* the shared log, mapped from log_fd as a backend would */
    bool log_fd_ok;
    int log_start_calls, log_stop_calls, pause_calls, resume_calls, load_calls;
    unsigned pause_ms, load_ms; /* how long pause and load take (a backend's stop, a start) */
    char loaded[64];
};

struct fake_host {
    struct guest_memory mem;
    struct fake_dev dev[2]; /* fake0 logs (a vhost-user NIC), fake1 does not (a UART) */
    struct device *list[2];
    uint64_t *kvm_bits[GUEST_MEM_MAX_REGIONS]; /* what the fake vCPUs dirtied */
    pthread_mutex_t lock;
    int pauses, resumes, slot_on, slot_off, gets, clears, own_on, own_off;
    bool paused, slot_logging;
    struct dirty_own_log *own;
    /* Writers: called at the n-th harvest of region 0, and at the pause. */
    void (*at_harvest)(struct fake_host *h, int n);
    void (*at_pause)(struct fake_host *h);
    char vcpu_loaded[NCPUS][32], vm_loaded[32];
};

struct dest {
    struct fake_host host;
    struct migration_incoming_opts opts;
    char uri[128];
    pthread_t thread;
    int own_stop_efd; /* the stop fd when the test gives none: dest_join's way out */
    int ret;
    uint64_t took_ms;
};

/* A peer that takes the whole stream and never answers. */
struct mute_peer {
    int lfd;
    pthread_t thread;
};

/* A peer that reads the header and a little more, then goes away. */
struct closing_peer {
    int lfd;
    pthread_t thread;
};

/* A page written with no log at the pause (unlogged_write_at_pause). */
extern const uint64_t corrupted_gpa;
/* Each test's scratch directory (tmpdir_setup/tmpdir_teardown, a checked fixture). */
extern char tmpdir[64];
void tmpdir_setup(void);
void tmpdir_teardown(void);

void host_init(struct fake_host *h);
void host_destroy(struct fake_host *h);
struct migration_host host_iface(struct fake_host *h);
void fill_page(struct fake_host *h, uint64_t gpa, uint32_t seed);
void writers_after_first_pass(struct fake_host *h, int n);
void writers_at_pause(struct fake_host *h);
void unlogged_write_at_pause(struct fake_host *h);
void guest_wrote(struct fake_host *h, uint64_t bytes);
uint64_t now_ms(void);
void dest_start_bounded(struct dest *d, const char *name, int stop_fd, unsigned header_ms,
                        unsigned idle_ms);
void dest_start(struct dest *d, const char *name, int stop_fd);
/* The same, its second device taking load_ms to load (a NIC starting on its backend). */
void dest_start_slow(struct dest *d, const char *name, int stop_fd, unsigned header_ms,
                     unsigned idle_ms, unsigned load_ms);
void dest_join(struct dest *d);
void wait_done(struct migration *m, struct migration_info *info, unsigned max_ms);
/* The status is "completed", or the test fails with the migration's error. */
void assert_completed(const struct migration_info *info);
int start(struct migration *m, const char *uri, bool verify, uint64_t max_bw);
void assert_same_ram(struct fake_host *a, struct fake_host *b);
void *mute_thread(void *arg);
void *closing_thread(void *arg);
int listen_unix(const char *path);

#endif
