/* Migration through its host interface, without KVM: a fake host (guest RAM in a
 * memfd, fake KVM dirty bits, fake vCPU and VM state, a fake device that logs its
 * writes into the shared log it is given) migrates over a Unix socket to the real
 * destination code, on another thread, into a second fake host. Also: the
 * destination's bounds (a silent peer, a bad header then a good peer, stop_fd),
 * max-bandwidth's throttle, and the resolver's address forms. */
#include "../../common/util.h"
#include "../../vmm/dirty.h"
#include "../../vmm/migration.h"
#include "../../vmm/migration_resolve.h"
#include "../../vmm/migration_stream.h"

#include "check_main.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RAM (64ULL << 20)
#define PAGES (RAM / 4096)
#define NCPUS 2

/* ---- the fake host ---- */

struct fake_host;

struct fake_dev {
    struct device dev;
    struct fake_host *host;
    const char *check_err; /* log_check fails with this */
    int log_fd;            /* the fd log_start got (-1: none) */
    uint64_t log_size;
    uint64_t *log; /* the shared log, mapped from log_fd as a backend would */
    bool log_fd_ok;
    int log_start_calls, log_stop_calls, pause_calls, resume_calls, load_calls;
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

static struct fake_host *host_of(void *opaque)
{
    return opaque;
}

static const struct guest_memory *fh_memory(void *opaque)
{
    return &host_of(opaque)->mem;
}

static void fh_machine(void *opaque, struct migration_machine *m)
{
    (void)opaque;
    *m = (struct migration_machine){.ncpus = NCPUS, .nnets = 1, .net_queue_pairs = {1}};
}

static unsigned fh_devices(void *opaque, struct device *const **list)
{
    *list = host_of(opaque)->list;
    return 2;
}

static int fh_pause(void *opaque)
{
    struct fake_host *h = opaque;

    pthread_mutex_lock(&h->lock);
    h->pauses++;
    h->paused = true;
    pthread_mutex_unlock(&h->lock);
    if (h->at_pause)
        h->at_pause(h);
    return 0;
}

static int fh_resume(void *opaque)
{
    struct fake_host *h = opaque;

    pthread_mutex_lock(&h->lock);
    h->resumes++;
    h->paused = false;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static bool fh_paused(void *opaque)
{
    return host_of(opaque)->paused;
}

static int put_str(struct state_buf *out, const char *s)
{
    return state_buf_put(out, s, strlen(s) + 1);
}

static int fh_vcpu_save(void *opaque, unsigned cpu, struct state_buf *out)
{
    char s[32];

    (void)opaque;
    snprintf(s, sizeof(s), "vcpu%u-regs", cpu);
    return put_str(out, s);
}

static int fh_vcpu_load(void *opaque, unsigned cpu, const uint8_t *data, size_t len)
{
    struct fake_host *h = opaque;

    if (cpu >= NCPUS || len > sizeof(h->vcpu_loaded[0]))
        return -EINVAL;
    memcpy(h->vcpu_loaded[cpu], data, len);
    return 0;
}

static int fh_vm_save(void *opaque, struct state_buf *out)
{
    (void)opaque;
    return put_str(out, "irqchip-pit-clock");
}

static int fh_vm_load(void *opaque, const uint8_t *data, size_t len)
{
    struct fake_host *h = opaque;

    if (len > sizeof(h->vm_loaded))
        return -EINVAL;
    memcpy(h->vm_loaded, data, len);
    return 0;
}

static int fh_slot_log(void *opaque, bool on)
{
    struct fake_host *h = opaque;

    h->slot_logging = on;
    *(on ? &h->slot_on : &h->slot_off) += 1;
    return 0;
}

static bool fh_manual_protect(void *opaque)
{
    (void)opaque;
    return true;
}

/* KVM's log: what the fake vCPUs dirtied since the last get. */
static int fh_slot_log_get(void *opaque, int region, uint64_t *bits)
{
    struct fake_host *h = opaque;
    size_t words = dirty_words(h->mem.regions[region].size / 4096);
    int n;

    pthread_mutex_lock(&h->lock);
    n = region == 0 ? ++h->gets : h->gets;
    pthread_mutex_unlock(&h->lock);
    if (region == 0 && h->at_harvest)
        h->at_harvest(h, n);
    pthread_mutex_lock(&h->lock);
    memcpy(bits, h->kvm_bits[region], words * 8);
    memset(h->kvm_bits[region], 0, words * 8);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static int fh_slot_log_clear(void *opaque, int region, uint64_t npages, uint64_t *bits)
{
    (void)region, (void)npages, (void)bits;
    host_of(opaque)->clears++;
    return 0;
}

static void fh_own_log(void *opaque, struct dirty_own_log *log)
{
    struct fake_host *h = opaque;

    pthread_mutex_lock(&h->lock);
    h->own = log;
    *(log ? &h->own_on : &h->own_off) += 1;
    pthread_mutex_unlock(&h->lock);
}

static const struct migration_host_ops fake_host_ops = {
    .memory = fh_memory,
    .machine = fh_machine,
    .devices = fh_devices,
    .pause = fh_pause,
    .resume = fh_resume,
    .paused = fh_paused,
    .vcpu_save = fh_vcpu_save,
    .vcpu_load = fh_vcpu_load,
    .vm_save = fh_vm_save,
    .vm_load = fh_vm_load,
    .slot_log = fh_slot_log,
    .slot_log_manual_protect = fh_manual_protect,
    .slot_log_get = fh_slot_log_get,
    .slot_log_clear = fh_slot_log_clear,
    .own_log = fh_own_log,
};

/* ---- the fake devices ---- */

static struct fake_dev *dev_of(struct device *d)
{
    return (struct fake_dev *)d;
}

static int fd_save(struct device *d, struct state_buf *out)
{
    char s[64];

    snprintf(s, sizeof(s), "%s-state", d->id);
    return put_str(out, s);
}

static int fd_load(struct device *d, const uint8_t *data, size_t len)
{
    struct fake_dev *f = dev_of(d);

    if (len > sizeof(f->loaded))
        return -EINVAL;
    memcpy(f->loaded, data, len);
    f->load_calls++;
    return 0;
}

static int fd_pause(struct device *d)
{
    dev_of(d)->pause_calls++;
    return 0;
}

static int fd_resume(struct device *d)
{
    dev_of(d)->resume_calls++;
    return 0;
}

static int fd_log_check(struct device *d, char *why, size_t len)
{
    struct fake_dev *f = dev_of(d);

    if (!f->check_err)
        return 0;
    snprintf(why, len, "%s", f->check_err);
    return -ENOTSUP;
}

/* As a vhost-user backend does with SET_LOG_BASE: map the fd it was given. */
static int fd_log_start(struct device *d, int log_fd, uint64_t log_size)
{
    struct fake_dev *f = dev_of(d);
    struct stat st;

    f->log_start_calls++;
    f->log_fd = log_fd;
    f->log_size = log_size;
    f->log_fd_ok =
        fstat(log_fd, &st) == 0 && (uint64_t)st.st_size == log_size && log_size * 8 >= RAM / 4096;
    f->log = mmap(NULL, log_size, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd, 0);
    if (f->log == MAP_FAILED) {
        f->log = NULL;
        return -errno;
    }
    return 0;
}

static int fd_log_stop(struct device *d)
{
    struct fake_dev *f = dev_of(d);

    f->log_stop_calls++;
    if (f->log)
        munmap(f->log, f->log_size);
    f->log = NULL;
    return 0;
}

static const struct device_ops logging_dev_ops = {
    .save = fd_save,
    .load = fd_load,
    .pause = fd_pause,
    .resume = fd_resume,
    .log_check = fd_log_check,
    .log_start = fd_log_start,
    .log_stop = fd_log_stop,
};

static const struct device_ops plain_dev_ops = {
    .save = fd_save,
    .load = fd_load,
};

static void host_init(struct fake_host *h)
{
    memset(h, 0, sizeof(*h));
    ck_assert_int_eq(guest_memory_create(&h->mem, RAM, false), 0);
    pthread_mutex_init(&h->lock, NULL);
    for (int i = 0; i < h->mem.nregions; i++) {
        h->kvm_bits[i] = calloc(dirty_words(h->mem.regions[i].size / 4096), 8);
        ck_assert_ptr_nonnull(h->kvm_bits[i]);
    }
    h->dev[0] =
        (struct fake_dev){.dev = {.id = "fake0", .ops = &logging_dev_ops}, .host = h, .log_fd = -1};
    h->dev[1] = (struct fake_dev){.dev = {.id = "fake1", .ops = &plain_dev_ops}, .host = h};
    h->list[0] = &h->dev[0].dev;
    h->list[1] = &h->dev[1].dev;
}

static void host_destroy(struct fake_host *h)
{
    fd_log_stop(&h->dev[0].dev);
    for (int i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
        free(h->kvm_bits[i]);
    guest_memory_destroy(&h->mem);
    pthread_mutex_destroy(&h->lock);
}

static struct migration_host host_iface(struct fake_host *h)
{
    return (struct migration_host){.ops = &fake_host_ops, .opaque = h};
}

/* ---- writers: the "vCPUs" (KVM's log), the "backend" (the shared log), vmm ---- */

static void fill_page(struct fake_host *h, uint64_t gpa, uint32_t seed)
{
    uint32_t *p = guest_memory_ptr(&h->mem, gpa, 4096);

    for (size_t i = 0; i < 1024; i++)
        p[i] = seed * 2654435761u + (uint32_t)i;
}

static void vcpu_writes(struct fake_host *h, uint64_t gpa, uint32_t seed)
{
    uint64_t pg = gpa / 4096;

    fill_page(h, gpa, seed);
    pthread_mutex_lock(&h->lock);
    h->kvm_bits[0][pg / 64] |= 1ULL << (pg % 64);
    pthread_mutex_unlock(&h->lock);
}

static void backend_writes(struct fake_host *h, uint64_t gpa, uint32_t seed)
{
    uint64_t pg = gpa / 4096;

    fill_page(h, gpa, seed);
    ck_assert_msg(h->dev[0].log, "the device writes while no log was started");
    __atomic_fetch_or(&h->dev[0].log[pg / 64], 1ULL << (pg % 64), __ATOMIC_SEQ_CST);
}

static void vmm_writes(struct fake_host *h, uint64_t gpa, uint32_t seed)
{
    fill_page(h, gpa, seed);
    dirty_own_log_mark(h->own, &h->mem, guest_memory_ptr(&h->mem, gpa, 4096), 4096);
}

/* After the first pass: each writer changes pages the pass has sent already. */
static void writers_after_first_pass(struct fake_host *h, int n)
{
    if (n != 1)
        return;
    vcpu_writes(h, 0x100000, 11);
    vcpu_writes(h, 0x101000, 12);
    backend_writes(h, 0x200000, 21);
    backend_writes(h, 0x3ff000, 22);
    vmm_writes(h, 0x300000, 31);
}

/* While the vCPUs stop: the backend writes until its rings stop. */
static void writers_at_pause(struct fake_host *h)
{
    vcpu_writes(h, 0x500000, 41);
    backend_writes(h, 0x600000, 51);
    vmm_writes(h, 0x700000, 61);
}

static const uint64_t corrupted_gpa = 0x800000;

/* A writer no log covers: --verify must find its page. */
static void unlogged_write_at_pause(struct fake_host *h)
{
    writers_at_pause(h);
    fill_page(h, corrupted_gpa, 99);
}

/* Some RAM the guest wrote before the migration; the rest stays zero (holes). */
static void guest_wrote(struct fake_host *h, uint64_t bytes)
{
    for (uint64_t gpa = 0; gpa < bytes; gpa += 4096)
        fill_page(h, gpa, (uint32_t)(gpa / 4096) + 1);
}

/* ---- running a migration ---- */

struct dest {
    struct fake_host host;
    struct migration_incoming_opts opts;
    char uri[128];
    pthread_t thread;
    int ret;
    uint64_t took_ms;
};

static char tmpdir[64];

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *dest_thread(void *arg)
{
    struct dest *d = arg;
    struct migration_host h = host_iface(&d->host);
    uint64_t t0 = now_ms();

    d->ret = migration_incoming_opts(&h, d->uri, &d->opts);
    d->took_ms = now_ms() - t0;
    return NULL;
}

static void wait_listening(const char *uri)
{
    struct stat st;

    for (int i = 0; i < 500; i++) {
        if (strncmp(uri, "unix:", 5) || stat(uri + 5, &st) == 0)
            return;
        usleep(10000);
    }
    ck_abort_msg("the destination never listened on %s", uri);
}

/* The destination on a thread, listening on tmpdir/name (unix) or uri (tcp:). */
static void dest_start_bounded(struct dest *d, const char *name, int stop_fd, unsigned header_ms,
                               unsigned idle_ms)
{
    host_init(&d->host);
    if (!strncmp(name, "tcp:", 4))
        snprintf(d->uri, sizeof(d->uri), "%s", name);
    else
        snprintf(d->uri, sizeof(d->uri), "unix:%s/%s", tmpdir, name);
    d->opts = (struct migration_incoming_opts){
        .stop_fd = stop_fd, .header_timeout_ms = header_ms, .idle_timeout_ms = idle_ms};
    d->ret = 1;
    ck_assert_int_eq(pthread_create(&d->thread, NULL, dest_thread, d), 0);
    if (!strncmp(d->uri, "unix:", 5))
        wait_listening(d->uri);
}

static void dest_start(struct dest *d, const char *name, int stop_fd)
{
    dest_start_bounded(d, name, stop_fd, MIGRATION_HEADER_TIMEOUT_MS, MIGRATION_IDLE_TIMEOUT_MS);
}

static void dest_join(struct dest *d)
{
    pthread_join(d->thread, NULL);
}

static bool running(const char *status)
{
    return !strcmp(status, "setup") || !strcmp(status, "active");
}

/* Waits (bounded) for the migration to end; its last info. */
static void wait_done(struct migration *m, struct migration_info *info, unsigned max_ms)
{
    uint64_t end = now_ms() + max_ms;

    do {
        migration_query(m, info);
        if (!running(info->status))
            return;
        usleep(5000);
    } while (now_ms() < end);
    ck_abort_msg("the migration is still %s after %u ms", info->status, max_ms);
}

static int start(struct migration *m, const char *uri, bool verify, uint64_t max_bw)
{
    struct migration_params p = {.verify = verify};
    char err[256] = "";
    int ret;

    snprintf(p.uri, sizeof(p.uri), "%s", uri);
    if (max_bw)
        p.tune = (struct migration_tunables){.has_max_bandwidth = true, .max_bandwidth = max_bw};
    ret = migration_start(m, &p, err, sizeof(err));
    ck_assert_msg(!ret, "migration_start: %d %s", ret, err);
    return ret;
}

static void assert_same_ram(struct fake_host *a, struct fake_host *b)
{
    for (uint64_t gpa = 0; gpa < RAM; gpa += 4096)
        ck_assert_msg(!memcmp(guest_memory_ptr(&a->mem, gpa, 4096),
                              guest_memory_ptr(&b->mem, gpa, 4096), 4096),
                      "the page at 0x%llx differs on the destination", (unsigned long long)gpa);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_migration.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A peer that takes the whole stream and never answers. */
struct mute_peer {
    int lfd;
    pthread_t thread;
};

static void *mute_thread(void *arg)
{
    struct mute_peer *p = arg;
    char buf[65536];
    int fd = accept(p->lfd, NULL, NULL);

    while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
        ;
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* A peer that reads the header and a little more, then goes away. */
struct closing_peer {
    int lfd;
    pthread_t thread;
};

static void *closing_thread(void *arg)
{
    struct closing_peer *p = arg;
    char buf[8192];
    int fd = accept(p->lfd, NULL, NULL);

    if (fd >= 0) {
        if (read(fd, buf, sizeof(buf)) <= 0)
            fprintf(stderr, "closing peer: nothing read\n");
        close(fd);
    }
    return NULL;
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s, 4), 0);
    return s;
}

/* ---- full migrations ---- */

START_TEST(every_writers_pages_arrive)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;

    host_init(&src);
    guest_wrote(&src, 8 << 20);
    src.at_harvest = writers_after_first_pass;
    src.at_pause = writers_at_pause;
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "mig.sock", -1);
    start(m, d.uri, true, 0);
    wait_done(m, &info, 30000);
    dest_join(&d);
    ck_assert_msg(!strcmp(info.status, "completed"), "status %s: %s", info.status, info.error);
    ck_assert_int_eq(d.ret, 0);
    assert_same_ram(&src, &d.host);
    ck_assert(info.verify_done);
    ck_assert_uint_eq(info.verify_pages_compared, PAGES);
    ck_assert_uint_eq(info.verify_pages_differ, 0);
    /* The state, by id and by vCPU, arrived. */
    ck_assert_str_eq(d.host.vcpu_loaded[0], "vcpu0-regs");
    ck_assert_str_eq(d.host.vcpu_loaded[1], "vcpu1-regs");
    ck_assert_str_eq(d.host.vm_loaded, "irqchip-pit-clock");
    ck_assert_str_eq(d.host.dev[0].loaded, "fake0-state");
    ck_assert_str_eq(d.host.dev[1].loaded, "fake1-state");
    /* The source stays paused, devices stopped; all logging is off. */
    ck_assert_int_eq(src.pauses, 1);
    ck_assert_int_eq(src.resumes, 0);
    ck_assert_int_eq(src.dev[0].pause_calls, 1);
    ck_assert_int_eq(src.slot_on, 1);
    ck_assert_int_eq(src.slot_off, 1);
    ck_assert(src.clears > 0); /* manual protection re-armed each harvest */
    ck_assert_int_eq(src.own_on, 1);
    ck_assert_ptr_null(src.own);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

START_TEST(log_start_gets_a_log_and_log_stop_always_runs)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;

    host_init(&src);
    src.at_harvest = writers_after_first_pass;
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "mig.sock", -1);
    start(m, d.uri, false, 0);
    wait_done(m, &info, 30000);
    dest_join(&d);
    ck_assert_str_eq(info.status, "completed");
    ck_assert_int_eq(src.dev[0].log_start_calls, 1);
    ck_assert_int_ge(src.dev[0].log_fd, 0);
    ck_assert_msg(src.dev[0].log_fd_ok, "log_start's fd is not a log of %llu bytes covering RAM",
                  (unsigned long long)src.dev[0].log_size);
    ck_assert_int_eq(src.dev[0].log_stop_calls, 1);
    ck_assert_int_eq(src.dev[1].log_start_calls, 0);
    host_destroy(&d.host);
    migration_destroy(m);

    /* A destination that goes away after the header: logging had started. */
    {
        struct closing_peer peer;
        char path[128], uri[140];

        snprintf(path, sizeof(path), "%s/closing.sock", tmpdir);
        snprintf(uri, sizeof(uri), "unix:%s", path);
        peer.lfd = listen_unix(path);
        pthread_create(&peer.thread, NULL, closing_thread, &peer);
        src.at_harvest = NULL;
        guest_wrote(&src, 8 << 20);
        m = migration_create(&h);
        start(m, uri, false, 0);
        wait_done(m, &info, 10000);
        pthread_join(peer.thread, NULL);
        close(peer.lfd);
    }
    ck_assert_msg(!strcmp(info.status, "failed"), "%s", info.status);
    ck_assert_int_eq(src.dev[0].log_start_calls, 2);
    ck_assert_int_eq(src.dev[0].log_stop_calls, 2);
    ck_assert(!src.slot_logging);
    migration_destroy(m);
    host_destroy(&src);
}
END_TEST

START_TEST(verify_counts_every_page_and_names_a_corrupted_one)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;

    host_init(&src);
    guest_wrote(&src, 16 << 20);
    src.at_harvest = writers_after_first_pass;
    src.at_pause = unlogged_write_at_pause;
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "mig.sock", -1);
    start(m, d.uri, true, 0);
    wait_done(m, &info, 30000);
    dest_join(&d);
    ck_assert(info.verify_done);
    ck_assert_uint_eq(info.verify_pages_compared, PAGES);
    ck_assert_uint_eq(info.verify_pages_differ, 1);
    ck_assert_uint_eq(info.verify_nfirst, 1);
    ck_assert_msg(info.verify_first_differ[0] == corrupted_gpa, "verify named 0x%llx",
                  (unsigned long long)info.verify_first_differ[0]);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

START_TEST(a_device_that_cannot_log_refuses_at_once)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_info info;
    struct migration_params p = {.uri = "unix:/nonexistent/never.sock"};
    struct migration *m;
    char err[256] = "";

    host_init(&src);
    src.dev[0].check_err = "fake0: the backend lacks LOG_SHMFD";
    h = host_iface(&src);
    m = migration_create(&h);
    ck_assert_int_eq(migration_start(m, &p, err, sizeof(err)), -ENOTSUP);
    ck_assert_str_eq(err, "fake0: the backend lacks LOG_SHMFD");
    migration_query(m, &info);
    ck_assert_str_eq(info.status, "none");
    ck_assert_int_eq(src.pauses + src.slot_on + src.dev[0].log_start_calls, 0);
    migration_destroy(m);
    host_destroy(&src);
}
END_TEST

static void assert_source_running(struct fake_host *src)
{
    ck_assert_int_eq(src->pauses, src->resumes);
    ck_assert(!src->paused);
    ck_assert(!src->slot_logging);
    ck_assert_int_eq(src->slot_off, 1);
    ck_assert_int_eq(src->dev[0].log_stop_calls, src->dev[0].log_start_calls);
    ck_assert_ptr_null(src->own);
}

START_TEST(cancel_mid_precopy_leaves_the_source_running)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    char err[128];
    uint64_t t0;

    host_init(&src);
    guest_wrote(&src, RAM); /* 64 MiB at 8 MiB/s: 8 s of precopy */
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "mig.sock", -1);
    start(m, d.uri, false, 8 << 20);
    usleep(300000);
    migration_query(m, &info);
    ck_assert_str_eq(info.status, "active");
    t0 = now_ms();
    ck_assert_int_eq(migration_cancel(m, err, sizeof(err)), 0);
    wait_done(m, &info, 2000);
    ck_assert_str_eq(info.status, "cancelled");
    ck_assert_msg(now_ms() - t0 < 1000, "the cancel took %llu ms",
                  (unsigned long long)(now_ms() - t0));
    dest_join(&d);
    ck_assert_int_ne(d.ret, 0);
    ck_assert_int_eq(src.pauses, 0);
    assert_source_running(&src);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

START_TEST(cancel_after_the_pause_resumes_the_source)
{
    struct fake_host src;
    struct mute_peer peer;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    char path[128], uri[140], err[128];

    host_init(&src);
    guest_wrote(&src, 4 << 20);
    snprintf(path, sizeof(path), "%s/mute.sock", tmpdir);
    snprintf(uri, sizeof(uri), "unix:%s", path);
    peer.lfd = listen_unix(path);
    pthread_create(&peer.thread, NULL, mute_thread, &peer);
    h = host_iface(&src);
    m = migration_create(&h);
    start(m, uri, false, 0);
    for (int i = 0; i < 1000 && !src.paused; i++)
        usleep(5000);
    ck_assert_msg(src.paused, "the source never paused");
    usleep(100000); /* it waits for the verdict now */
    ck_assert_int_eq(migration_cancel(m, err, sizeof(err)), 0);
    wait_done(m, &info, 2000);
    ck_assert_str_eq(info.status, "cancelled");
    ck_assert_int_eq(src.pauses, 1);
    ck_assert_int_eq(src.dev[0].resume_calls, 1); /* devices restarted */
    assert_source_running(&src);
    migration_destroy(m);
    pthread_join(peer.thread, NULL);
    close(peer.lfd);
    host_destroy(&src);
}
END_TEST

/* ---- max-bandwidth ---- */

START_TEST(max_bandwidth_throttles_the_precopy)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    uint64_t t0, took;

    host_init(&src);
    guest_wrote(&src, RAM);
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "mig.sock", -1);
    t0 = now_ms();
    start(m, d.uri, false, 32 << 20);
    wait_done(m, &info, 30000);
    took = now_ms() - t0;
    dest_join(&d);
    ck_assert_str_eq(info.status, "completed");
    ck_assert_msg(took >= 1900, "64 MiB at 32 MiB/s took %llu ms", (unsigned long long)took);
    ck_assert_msg(info.mbps <= 32 * 1.05, "mbps %.1f over the limit", info.mbps);
    ck_assert_uint_eq(info.max_bandwidth, 32 << 20);
    ck_assert_uint_eq(info.downtime_limit_ms, MIGRATION_DEFAULT_DOWNTIME_MS);
    assert_same_ram(&src, &d.host);
    printf("64 MiB at max-bandwidth 32 MiB/s: %llu ms, %.1f MiB/s\n", (unsigned long long)took,
           info.mbps);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

START_TEST(throttle_bucket_arithmetic)
{
    struct mig_throttle t = {0};
    uint64_t ns = 1000000000ULL;

    ck_assert_uint_eq(mig_throttle_take(&t, 0, ns, 1 << 20), 0); /* unlimited */
    /* 1 MiB at 1 MiB/s, nothing saved up: a second's wait. */
    ck_assert_uint_eq(mig_throttle_take(&t, 1 << 20, ns, 1 << 20), ns);
    /* A second later the debt is paid: the next MiB waits a second again. */
    ck_assert_uint_eq(mig_throttle_take(&t, 1 << 20, 2 * ns, 1 << 20), ns);
    /* Idle for an hour: at most a tenth of a second is saved up. */
    ck_assert_uint_eq(mig_throttle_take(&t, 1 << 20, 3600 * ns, (1 << 20) / 10), 0);
    ck_assert_uint_gt(mig_throttle_take(&t, 1 << 20, 3600 * ns, 4096), 0);
}
END_TEST

START_TEST(tunables_are_checked_and_kept)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_tunables t = {.has_downtime_limit = true, .downtime_limit_ms = 2000001};
    struct migration *m;
    char err[200] = "";

    host_init(&src);
    h = host_iface(&src);
    m = migration_create(&h);
    ck_assert_int_eq(migration_set_tunables(m, &t, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "downtime-limit"), "%s", err);
    t = (struct migration_tunables){.has_max_bandwidth = true, .max_bandwidth = 1 << 20};
    ck_assert_int_eq(migration_set_tunables(m, &t, err, sizeof(err)), 0);
    migration_get_tunables(m, &t);
    ck_assert_uint_eq(t.downtime_limit_ms, 300);
    ck_assert_uint_eq(t.max_bandwidth, 1 << 20);
    migration_destroy(m);
    host_destroy(&src);
}
END_TEST

/* ---- the destination's bounds ---- */

static int connect_unix(const char *uri)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uri + 5);
    ck_assert_int_eq(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return s;
}

static void matching_header(struct fake_host *h, struct mig_header *hdr)
{
    unsigned pairs[MIG_MAX_NETS] = {1};

    mig_header_fill(hdr, &h->mem, NCPUS, 1, pairs, 0);
}

/* The reply a dropped or failed peer gets. */
static void read_reply(int fd, struct mig_reply *rep)
{
    ck_assert_int_eq(mig_read(fd, rep, sizeof(*rep)), 0);
    ck_assert(!memcmp(rep->magic, MIG_REPLY_MAGIC, 8));
    rep->msg[sizeof(rep->msg) - 1] = '\0';
}

START_TEST(a_peer_silent_mid_stream_fails_the_migration)
{
    struct mig_header hdr;
    struct mig_rec rec = {.type = MIG_REC_RAM, .a = 0, .b = 1};
    struct mig_reply rep;
    struct dest d;
    int s;

    dest_start_bounded(&d, "mig.sock", -1, MIGRATION_HEADER_TIMEOUT_MS, 300);
    s = connect_unix(d.uri);
    matching_header(&d.host, &hdr);
    ck_assert_int_eq(mig_write(s, &hdr, sizeof(hdr)), 0);
    ck_assert_int_eq(mig_write(s, &rec, sizeof(rec)), 0);
    ck_assert_int_eq(mig_write(s, "half a page", 11), 0);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ETIMEDOUT);
    ck_assert_msg(d.took_ms < 3000, "took %llu ms", (unsigned long long)d.took_ms);
    read_reply(s, &rep);
    ck_assert_int_ne(rep.status, 0);
    ck_assert_msg(strstr(rep.msg, "silent"), "reply: %s", rep.msg);
    close(s);
    host_destroy(&d.host);
}
END_TEST

/* Issue 15's peer (8 header bytes, then silence) and a peer with a wrong header
 * are dropped; the source that comes next migrates. */
START_TEST(bad_peers_are_dropped_and_the_next_migrates)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_info info;
    struct mig_header hdr;
    struct mig_reply rep;
    struct migration *m;
    struct dest d;
    int silent, wrong;

    host_init(&src);
    guest_wrote(&src, 1 << 20);
    dest_start_bounded(&d, "mig.sock", -1, 300, MIGRATION_IDLE_TIMEOUT_MS);
    silent = connect_unix(d.uri);
    ck_assert_int_eq(mig_write(silent, MIG_MAGIC, 8), 0);
    usleep(600000); /* dropped after 300 ms */
    wrong = connect_unix(d.uri);
    matching_header(&d.host, &hdr);
    hdr.ncpus = 7;
    ck_assert_int_eq(mig_write(wrong, &hdr, sizeof(hdr)), 0);
    read_reply(wrong, &rep);
    ck_assert_int_ne(rep.status, 0);
    ck_assert_msg(strstr(rep.msg, "7 vCPUs"), "reply: %s", rep.msg);
    h = host_iface(&src);
    m = migration_create(&h);
    start(m, d.uri, true, 0);
    wait_done(m, &info, 30000);
    dest_join(&d);
    ck_assert_msg(!strcmp(info.status, "completed"), "%s: %s", info.status, info.error);
    ck_assert_int_eq(d.ret, 0);
    ck_assert_uint_eq(info.verify_pages_differ, 0);
    close(silent);
    close(wrong);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

/* The same over TCP: a real listener on 127.0.0.1. */
static int tcp_connect(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int s = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 100; i++) {
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return s;
        usleep(20000);
    }
    ck_abort_msg("cannot connect to 127.0.0.1:%u", port);
    return -1;
}

static uint16_t free_tcp_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(s);
    return port;
}

START_TEST(tcp_listener_drops_a_silent_peer_and_takes_the_next)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    struct dest d;
    uint16_t port = free_tcp_port();
    char uri[64];
    int silent;

    host_init(&src);
    guest_wrote(&src, 1 << 20);
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", port);
    dest_start_bounded(&d, uri, -1, 300, MIGRATION_IDLE_TIMEOUT_MS);
    silent = tcp_connect(port);
    ck_assert_int_eq(mig_write(silent, MIG_MAGIC, 8), 0);
    usleep(500000);
    h = host_iface(&src);
    m = migration_create(&h);
    start(m, d.uri, true, 0);
    wait_done(m, &info, 30000);
    dest_join(&d);
    ck_assert_msg(!strcmp(info.status, "completed"), "%s: %s", info.status, info.error);
    ck_assert_int_eq(d.ret, 0);
    close(silent);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

/* ~100 ms is the promise; the bound leaves room for a loaded CI machine. */
#define STOP_BOUND_MS 300

static void stop_after(int efd, unsigned ms)
{
    uint64_t one = 1;

    usleep(ms * 1000);
    ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
}

START_TEST(stop_fd_ends_every_wait_at_once)
{
    struct mig_header hdr;
    struct dest d;
    int efd, s;
    uint64_t t0;

    /* 1. Waiting for a peer. */
    efd = eventfd(0, EFD_CLOEXEC);
    dest_start(&d, "a.sock", efd);
    t0 = now_ms();
    stop_after(efd, 100);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < 100 + STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    host_destroy(&d.host);
    close(efd);

    /* 2. A peer that sent 8 bytes of its header (issue 15: SIGTERM did nothing). */
    efd = eventfd(0, EFD_CLOEXEC);
    dest_start(&d, "b.sock", efd);
    s = connect_unix(d.uri);
    ck_assert_int_eq(mig_write(s, MIG_MAGIC, 8), 0);
    usleep(100000);
    t0 = now_ms();
    stop_after(efd, 0);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    close(s);
    host_destroy(&d.host);
    close(efd);

    /* 3. Mid-stream, the peer silent (the idle bound is 30 s). */
    efd = eventfd(0, EFD_CLOEXEC);
    dest_start(&d, "c.sock", efd);
    s = connect_unix(d.uri);
    matching_header(&d.host, &hdr);
    ck_assert_int_eq(mig_write(s, &hdr, sizeof(hdr)), 0);
    usleep(100000);
    t0 = now_ms();
    stop_after(efd, 0);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    close(s);
    host_destroy(&d.host);
    close(efd);
}
END_TEST

/* vmm's exit path: migration_interrupt makes migration_stop_fd readable. */
START_TEST(migration_interrupt_stops_the_destination)
{
    struct fake_host src;
    struct migration_host h;
    struct migration *m;
    struct dest d;
    uint64_t t0;

    host_init(&src);
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "d.sock", migration_stop_fd(m));
    usleep(100000);
    t0 = now_ms();
    migration_interrupt(m);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    migration_interrupt(NULL);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

/* ---- snapshots and addresses ---- */

START_TEST(snapshot_round_trip)
{
    struct fake_host src, dst;
    struct migration_host h, hd;
    struct migration *m;
    char err[256] = "", dir[128];

    host_init(&src);
    host_init(&dst);
    guest_wrote(&src, 4 << 20);
    fill_page(&src, 0x1000000, 77);
    h = host_iface(&src);
    hd = host_iface(&dst);
    m = migration_create(&h);
    snprintf(dir, sizeof(dir), "%s/snap", tmpdir);
    ck_assert_msg(!snapshot_save(m, dir, err, sizeof(err)), "%s", err);
    ck_assert_int_eq(src.pauses, 1);
    ck_assert_int_eq(src.resumes, 1); /* it was running: it runs again */
    ck_assert_int_eq(snapshot_restore(&hd, dir, -1), 0);
    assert_same_ram(&src, &dst);
    ck_assert_str_eq(dst.dev[0].loaded, "fake0-state");
    ck_assert_str_eq(dst.vcpu_loaded[1], "vcpu1-regs");
    migration_destroy(m);
    host_destroy(&dst);
    host_destroy(&src);
}
END_TEST

START_TEST(uri_addresses)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[64];

    ck_assert_int_eq(migration_uri_addr("tcp:127.0.0.1:4444", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 4444);
    ck_assert_int_eq(migration_uri_addr("tcp:[::1]:5", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, sizeof(buf));
    ck_assert_str_eq(buf, "::1");
    ck_assert_int_eq(migration_uri_addr("unix:/tmp/x.sock", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_UNIX);
    ck_assert_int_eq(migration_uri_addr("tcp:nohost", &ss, &len), -EINVAL);
    ck_assert_int_eq(migration_uri_addr("tcp::80", &ss, &len), -EINVAL);
    ck_assert_int_eq(migration_uri_addr("file:/x", &ss, &len), -EINVAL);
    ck_assert_int_eq(migration_uri_addr("unix:", &ss, &len), -ENAMETOOLONG);
}
END_TEST

static Suite *migration_suite(void)
{
    Suite *s = suite_create("migration");
    TCase *full = tcase_create("full"), *bounds = tcase_create("destination_bounds");
    TCase *pure = tcase_create("pure");

    tcase_add_checked_fixture(full, setup, teardown);
    tcase_set_timeout(full, 120);
    tcase_add_test(full, every_writers_pages_arrive);
    tcase_add_test(full, log_start_gets_a_log_and_log_stop_always_runs);
    tcase_add_test(full, verify_counts_every_page_and_names_a_corrupted_one);
    tcase_add_test(full, a_device_that_cannot_log_refuses_at_once);
    tcase_add_test(full, cancel_mid_precopy_leaves_the_source_running);
    tcase_add_test(full, cancel_after_the_pause_resumes_the_source);
    tcase_add_test(full, max_bandwidth_throttles_the_precopy);
    tcase_add_test(full, tunables_are_checked_and_kept);
    tcase_add_test(full, snapshot_round_trip);
    suite_add_tcase(s, full);
    tcase_add_checked_fixture(bounds, setup, teardown);
    tcase_set_timeout(bounds, 60);
    tcase_add_test(bounds, a_peer_silent_mid_stream_fails_the_migration);
    tcase_add_test(bounds, bad_peers_are_dropped_and_the_next_migrates);
    tcase_add_test(bounds, tcp_listener_drops_a_silent_peer_and_takes_the_next);
    tcase_add_test(bounds, stop_fd_ends_every_wait_at_once);
    tcase_add_test(bounds, migration_interrupt_stops_the_destination);
    suite_add_tcase(s, bounds);
    tcase_add_test(pure, throttle_bucket_arithmetic);
    tcase_add_test(pure, uri_addresses);
    suite_add_tcase(s, pure);
    return s;
}

CHECK_MAIN(migration_suite)
