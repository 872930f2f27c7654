/* The fake host and the helpers the migration suites share (migration_fake.h). */
#include "migration_fake.h"

#include "../../vmm/migration_stream.h"

#include <check.h>
#include <errno.h>
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

/* ---- the fake host ---- */

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
    usleep(f->load_ms * 1000);
    return 0;
}

static int fd_pause(struct device *d)
{
    dev_of(d)->pause_calls++;
    usleep(dev_of(d)->pause_ms * 1000);
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

void host_init(struct fake_host *h)
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

void host_destroy(struct fake_host *h)
{
    fd_log_stop(&h->dev[0].dev);
    for (int i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
        free(h->kvm_bits[i]);
    guest_memory_destroy(&h->mem);
    pthread_mutex_destroy(&h->lock);
}

struct migration_host host_iface(struct fake_host *h)
{
    return (struct migration_host){.ops = &fake_host_ops, .opaque = h};
}

/* ---- writers: the "vCPUs" (KVM's log), the "backend" (the shared log), vmm ---- */

void fill_page(struct fake_host *h, uint64_t gpa, uint32_t seed)
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
void writers_after_first_pass(struct fake_host *h, int n)
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
void writers_at_pause(struct fake_host *h)
{
    vcpu_writes(h, 0x500000, 41);
    backend_writes(h, 0x600000, 51);
    vmm_writes(h, 0x700000, 61);
}

const uint64_t corrupted_gpa = 0x800000;

/* A writer no log covers: --verify must find its page. */
void unlogged_write_at_pause(struct fake_host *h)
{
    writers_at_pause(h);
    fill_page(h, corrupted_gpa, 99);
}

/* Some RAM the guest wrote before the migration; the rest stays zero (holes). */
void guest_wrote(struct fake_host *h, uint64_t bytes)
{
    for (uint64_t gpa = 0; gpa < bytes; gpa += 4096)
        fill_page(h, gpa, (uint32_t)(gpa / 4096) + 1);
}

/* ---- running a migration ---- */

char tmpdir[64];

uint64_t now_ms(void)
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

/* The socket file exists from bind() on, before listen(): a connect in between is
 * refused. /proc/net/unix says when it listens (flag __SO_ACCEPTCON), without
 * connecting (a probe would be a peer the destination has to drop). */
static bool unix_listening(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "r");
    char line[512], sock[256];
    unsigned flags;
    bool found = false;

    while (f && !found && fgets(line, sizeof(line), f))
        found = sscanf(line, "%*s %*s %*s %x %*s %*s %*s %255s", &flags, sock) == 2 &&
                (flags & 0x10000) && !strcmp(sock, path);
    if (f)
        fclose(f);
    return found;
}

static void wait_listening(const char *uri)
{
    for (int i = 0; i < 500; i++) {
        if (strncmp(uri, "unix:", 5) || unix_listening(uri + 5))
            return;
        usleep(10000);
    }
    ck_abort_msg("the destination never listened on %s", uri);
}

/* The destination on a thread, listening on tmpdir/name (unix) or uri (tcp:). */
void dest_start_bounded(struct dest *d, const char *name, int stop_fd, unsigned header_ms,
                        unsigned idle_ms)
{
    dest_start_slow(d, name, stop_fd, header_ms, idle_ms, 0);
}

void dest_start_slow(struct dest *d, const char *name, int stop_fd, unsigned header_ms,
                     unsigned idle_ms, unsigned load_ms)
{
    host_init(&d->host);
    d->host.dev[1].load_ms = load_ms; /* before its thread reads it */
    if (!strncmp(name, "tcp:", 4))
        snprintf(d->uri, sizeof(d->uri), "%s", name);
    else
        snprintf(d->uri, sizeof(d->uri), "unix:%s/%s", tmpdir, name);
    d->own_stop_efd = stop_fd < 0 ? eventfd(0, EFD_CLOEXEC) : -1;
    d->opts = (struct migration_incoming_opts){.stop_fd = stop_fd < 0 ? d->own_stop_efd : stop_fd,
                                               .header_timeout_ms = header_ms,
                                               .idle_timeout_ms = idle_ms};
    d->ret = 1;
    ck_assert_int_eq(pthread_create(&d->thread, NULL, dest_thread, d), 0);
    if (!strncmp(d->uri, "unix:", 5))
        wait_listening(d->uri);
}

void dest_start(struct dest *d, const char *name, int stop_fd)
{
    dest_start_bounded(d, name, stop_fd, MIGRATION_HEADER_TIMEOUT_MS, MIGRATION_IDLE_TIMEOUT_MS);
}

/* A destination still waiting after 60 s (its source failed: the test's own
 * assertions say why) is stopped, so that a failure never hangs the suite. */
void dest_join(struct dest *d)
{
    struct timespec ts;
    uint64_t one = 1;
    int ret;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    ret = pthread_timedjoin_np(d->thread, NULL, &ts);
    if (ret == ETIMEDOUT && d->own_stop_efd >= 0 &&
        write(d->own_stop_efd, &one, sizeof(one)) == sizeof(one))
        ret = pthread_join(d->thread, NULL);
    if (d->own_stop_efd >= 0)
        close(d->own_stop_efd);
    d->own_stop_efd = -1;
    ck_assert_msg(!ret, "the destination on %s did not finish", d->uri);
}

static bool running(const char *status)
{
    return !strcmp(status, "setup") || !strcmp(status, "active");
}

/* Waits (bounded) for the migration to end; its last info. */
void wait_done(struct migration *m, struct migration_info *info, unsigned max_ms)
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

void assert_completed(const struct migration_info *info)
{
    ck_assert_msg(!strcmp(info->status, "completed"), "the migration is %s: %s", info->status,
                  info->error);
}

int start(struct migration *m, const char *uri, bool verify, uint64_t max_bw)
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

void assert_same_ram(struct fake_host *a, struct fake_host *b)
{
    for (uint64_t gpa = 0; gpa < RAM; gpa += 4096)
        ck_assert_msg(!memcmp(guest_memory_ptr(&a->mem, gpa, 4096),
                              guest_memory_ptr(&b->mem, gpa, 4096), 4096),
                      "the page at 0x%llx differs on the destination", (unsigned long long)gpa);
}

void tmpdir_setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_migration.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

void tmpdir_teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

void *mute_thread(void *arg)
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

void *closing_thread(void *arg)
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

int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s, 4), 0);
    return s;
}
