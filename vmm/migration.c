/* Precopy migration, snapshots and the destination (see migration.h).
 *
 * Stream (migration_stream.h): header; RAM and ZERO records (a full pass that
 * skips zero pages, since the destination's memfd starts zeroed, then the dirty
 * rounds); after the final stop, with --verify, a hash of every RAM page; each
 * vCPU's state, the VM state (irqchip, PIT, clock), each device's state by id; END.
 * The destination answers with a struct mig_reply. */
#include "migration.h"

#include "dirty.h"
#include "migration_stream.h"
#include "vm.h"
#include "../common/log.h"
#include "../kvm/dirty_log.h"
#include "../kvm/vcpu_state.h"
#include "../kvm/vm_state.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIG_DEFAULT_DOWNTIME_MS 300
#define MIG_DEFAULT_MAX_ROUNDS 30
#define SNAPSHOT_FILE "vmm-state"

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void migration_init(struct migration *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    m->info.status = "none";
    m->fd = -1;
    m->downtime_budget_ms = MIG_DEFAULT_DOWNTIME_MS;
    m->max_rounds = MIG_DEFAULT_MAX_ROUNDS;
}

void migration_interrupt(struct migration *m)
{
    atomic_store(&m->cancel, true);
    pthread_mutex_lock(&m->lock);
    if (m->fd >= 0)
        shutdown(m->fd, SHUT_RDWR);
    pthread_mutex_unlock(&m->lock);
}

void migration_destroy(struct migration *m)
{
    if (m->thread_started) {
        atomic_store(&m->cancel, true);
        pthread_mutex_lock(&m->lock);
        if (m->fd >= 0)
            shutdown(m->fd, SHUT_RDWR);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
    pthread_mutex_destroy(&m->lock);
}

static void set_status(struct migration *m, const char *status)
{
    pthread_mutex_lock(&m->lock);
    m->info.status = status;
    pthread_mutex_unlock(&m->lock);
}

void migration_query(struct vm *vm, struct migration_info *info)
{
    pthread_mutex_lock(&vm->mig.lock);
    *info = vm->mig.info;
    pthread_mutex_unlock(&vm->mig.lock);
}

/* ---- one run of the source: its state, held by the migration thread ---- */

struct mig_run {
    struct vm *vm;
    int fd;
    struct dirty_map dirty;
    struct vhost_log log;
    uint64_t **kvm_bits; /* per region, KVM's log of the last harvest */
    struct mig_out out;  /* pages queued for one sendmsg; flushed before any other record */
    bool kvm_logging, vhost_logging, paused, ignore_backend_log;
    uint64_t bytes, pages_sent, start_ms, down_ms;
    char err[256];
};

static int run_fail(struct mig_run *r, int ret, const char *fmt, const char *what)
{
    if (!r->err[0])
        snprintf(r->err, sizeof(r->err), fmt, what);
    return ret ? ret : -EIO;
}

/* ---- dirty tracking ---- */

static int kvm_slots_logging(struct vm *vm, bool on)
{
    int ret = 0;

    for (int i = 0; !ret && i < vm->mem.nregions; i++) {
        const struct guest_region *g = &vm->mem.regions[i];

        ret = kvm_set_user_memory_region(&vm->kvm, (uint32_t)i, g->gpa, g->size, g->hva,
                                         on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
    }
    return ret;
}

/* Fetches and re-arms KVM's log of each slot into the dirty map. */
static int harvest_kvm(struct mig_run *r)
{
    struct vm *vm = r->vm;

    for (int i = 0; i < vm->mem.nregions; i++) {
        uint64_t npages = r->dirty.r[i].npages;
        int ret = kvm_get_dirty_log(&vm->kvm, (uint32_t)i, r->kvm_bits[i]);

        if (!ret && vm->kvm_manual_protect)
            ret = kvm_clear_dirty_log(&vm->kvm, (uint32_t)i, npages, r->kvm_bits[i]);
        if (ret)
            return ret;
        dirty_map_merge(&r->dirty, i, r->kvm_bits[i]);
    }
    return 0;
}

static uint64_t harvest(struct mig_run *r)
{
    if (harvest_kvm(r))
        return UINT64_MAX;
    if (r->vhost_logging && !r->ignore_backend_log)
        vhost_log_harvest(&r->log, &r->dirty);
    if (r->vm->vmm_log.words)
        vhost_log_harvest(&r->vm->vmm_log, &r->dirty);
    return dirty_map_count(&r->dirty);
}

/* Every device that writes guest RAM behind vmm's back logs into r->log (each
 * waits for its own thread, no lock held); the first failure stops the start. */
static int devices_log(struct mig_run *r, bool on)
{
    struct vm *vm = r->vm;
    int ret = 0;

    for (unsigned i = 0; i < vm->ndevices; i++) {
        struct device *d = vm->devices[i];
        int err = 0;

        if (on && d->ops->log_start)
            err = d->ops->log_start(d, r->log.fd, r->log.mmap_size);
        else if (!on && d->ops->log_stop)
            err = d->ops->log_stop(d);
        if (err && !ret)
            ret = err;
        if (on && err)
            break;
    }
    return ret;
}

static bool devices_log_anything(const struct vm *vm)
{
    for (unsigned i = 0; i < vm->ndevices; i++)
        if (vm->devices[i]->ops->log_start)
            return true;
    return false;
}

static uint64_t ram_end(const struct vm *vm)
{
    const struct guest_region *last = &vm->mem.regions[vm->mem.nregions - 1];

    return last->gpa + last->size;
}

static int start_tracking(struct mig_run *r)
{
    struct vm *vm = r->vm;
    int ret = dirty_map_init(&r->dirty, &vm->mem);

    r->kvm_bits = calloc((size_t)vm->mem.nregions, sizeof(*r->kvm_bits));
    if (ret || !r->kvm_bits)
        return run_fail(r, -ENOMEM, "%s", "out of memory for the dirty bitmaps");
    for (int i = 0; i < vm->mem.nregions; i++) {
        r->kvm_bits[i] = calloc(dirty_words(r->dirty.r[i].npages), sizeof(uint64_t));
        if (!r->kvm_bits[i])
            return run_fail(r, -ENOMEM, "%s", "out of memory for the dirty bitmaps");
    }
    if (!vm->kvm_manual_protect_tried) {
        vm->kvm_manual_protect = kvm_dirty_log_enable_manual_protect(&vm->kvm);
        vm->kvm_manual_protect_tried = true;
    }
    ret = kvm_slots_logging(vm, true);
    if (ret)
        return run_fail(r, ret, "%s", "KVM refused dirty logging on the RAM slots");
    r->kvm_logging = true;
    if (!vm->vmm_log.words && vhost_log_create(&vm->vmm_log, ram_end(vm)))
        return run_fail(r, -ENOMEM, "%s", "out of memory for vmm's own dirty log");
    memset(vm->vmm_log.words, 0, vm->vmm_log.nwords * 8);
    atomic_store(&vm->vmm_log_on, true);
    if (!devices_log_anything(vm))
        return 0;
    ret = vhost_log_create(&r->log, ram_end(vm));
    if (!ret)
        ret = devices_log(r, true);
    if (ret) {
        devices_log(r, false);
        return run_fail(r, ret, "%s", "a vhost-user backend did not start dirty logging");
    }
    r->vhost_logging = true;
    return 0;
}

static void stop_tracking(struct mig_run *r)
{
    struct vm *vm = r->vm;

    atomic_store(&vm->vmm_log_on, false);
    if (r->vhost_logging)
        devices_log(r, false);
    r->vhost_logging = false;
    if (r->kvm_logging)
        kvm_slots_logging(vm, false);
    r->kvm_logging = false;
    if (r->log.words || r->log.fd > 0)
        vhost_log_destroy(&r->log);
    for (int i = 0; r->kvm_bits && i < vm->mem.nregions; i++)
        free(r->kvm_bits[i]);
    free(r->kvm_bits);
    r->kvm_bits = NULL;
    dirty_map_free(&r->dirty);
}

/* ---- sending RAM ---- */

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[64];

    for (size_t off = 0; off < 4096; off += 64)
        if (memcmp(p + off, zero, 64))
            return false;
    return true;
}

static int send_rec(struct mig_run *r, uint32_t type, uint64_t a, uint64_t b, const void *payload,
                    size_t len)
{
    struct mig_rec rec = {.type = type, .a = a, .b = b};
    int ret;

    r->out.fd = r->fd;
    ret = mig_out_flush(&r->out);
    if (!ret)
        ret = mig_write(r->fd, &rec, sizeof(rec));
    if (!ret && len)
        ret = mig_write(r->fd, payload, len);
    r->bytes += sizeof(rec) + len;
    return ret;
}

/* One run of consecutive dirty pages of the same kind (data or zero). */
static int send_run(struct mig_run *r, uint64_t gpa, uint64_t pages, bool zero)
{
    struct mig_rec rec = {.type = zero ? MIG_REC_ZERO : MIG_REC_RAM, .a = gpa, .b = pages};
    size_t len = zero ? 0 : pages * 4096;

    r->pages_sent += pages;
    r->bytes += sizeof(rec) + len;
    r->out.fd = r->fd;
    return mig_out_rec(&r->out, &rec, guest_memory_ptr(&r->vm->mem, gpa, len), len);
}

/* The first pass need not read pages the guest never touched: they are holes in
 * the memfd (reading them would allocate them). Clears their bits. */
static void skip_holes(struct mig_run *r)
{
    const struct guest_memory *mem = &r->vm->mem;

    for (int i = 0; i < r->dirty.nregions; i++) {
        struct dirty_region *d = &r->dirty.r[i];
        uint64_t base = mem->regions[i].fd_offset, end = base + mem->regions[i].size;
        uint64_t off = base;

        while (off < end) {
            off_t data = lseek(mem->fd, (off_t)off, SEEK_DATA), hole;

            if (data < 0 || (uint64_t)data >= end)
                data = (off_t)end; /* ENXIO: no data past off */
            for (uint64_t pg = (off - base) >> 12; pg < ((uint64_t)data - base) >> 12; pg++)
                d->bits[pg / 64] &= ~(1ULL << (pg % 64));
            if ((uint64_t)data >= end)
                break;
            hole = lseek(mem->fd, data, SEEK_HOLE);
            off = hole < 0 ? end : (uint64_t)hole;
        }
    }
}

/* Sends every page set in the map and clears it. skip_zero: the first pass, where
 * the destination's RAM is still all zeros. */
static int send_dirty(struct mig_run *r, bool skip_zero)
{
    if (skip_zero)
        skip_holes(r);
    for (int i = 0; i < r->dirty.nregions; i++) {
        struct dirty_region *d = &r->dirty.r[i];
        uint64_t run_start = 0, run_len = 0;
        bool run_zero = false;

        for (uint64_t pg = 0; pg <= d->npages; pg++) {
            bool dirty = pg < d->npages && (d->bits[pg / 64] & (1ULL << (pg % 64)));
            bool zero =
                dirty && page_is_zero(guest_memory_ptr(&r->vm->mem, d->gpa + pg * 4096, 4096));
            bool extend = dirty && run_len && zero == run_zero &&
                          run_len < MIG_MAX_PAGES_PER_RECORD && run_start + run_len == pg;
            int ret = 0;

            if (run_len && !extend) {
                if (!(skip_zero && run_zero))
                    ret = send_run(r, d->gpa + run_start * 4096, run_len, run_zero);
                run_len = 0;
            }
            if (ret)
                return ret;
            if (dirty && !run_len) {
                run_start = pg;
                run_zero = zero;
            }
            run_len += dirty;
            if (atomic_load(&r->vm->mig.cancel))
                return -ECANCELED;
        }
        memset(d->bits, 0, dirty_words(d->npages) * sizeof(uint64_t));
    }
    r->out.fd = r->fd;
    return mig_out_flush(&r->out);
}

static void update_info(struct mig_run *r, unsigned round, uint64_t dirtied, double bytes_per_ms)
{
    struct migration *m = &r->vm->mig;

    pthread_mutex_lock(&m->lock);
    m->info.round = round;
    m->info.pages_dirtied_last_round = dirtied;
    m->info.pages_sent = r->pages_sent;
    m->info.mbps = bytes_per_ms * 1000.0 / (1024 * 1024);
    m->info.expected_downtime_ms = precopy_expected_downtime_ms(dirtied, bytes_per_ms);
    m->info.total_time_ms = now_ms() - r->start_ms;
    pthread_mutex_unlock(&m->lock);
}

/* Full pass, then rounds until the rest fits the downtime budget. */
static int precopy(struct mig_run *r)
{
    struct migration *m = &r->vm->mig;
    double rate = 0;
    uint64_t dirtied;
    int ret;

    dirty_map_set_all(&r->dirty);
    for (unsigned round = 1;; round++) {
        uint64_t t0 = now_ms(), b0 = r->bytes;

        ret = send_dirty(r, round == 1);
        if (ret)
            return run_fail(r, ret, "%s", ret == -ECANCELED ? "cancelled" : "the stream broke");
        if (now_ms() > t0)
            rate = (double)(r->bytes - b0) / (double)(now_ms() - t0);
        else if (rate == 0)
            rate = (double)(r->bytes - b0);
        dirtied = harvest(r);
        if (dirtied == UINT64_MAX)
            return run_fail(r, -EIO, "%s", "KVM's dirty log could not be read");
        update_info(r, round, dirtied, rate);
        if (precopy_should_stop(dirtied, rate, m->downtime_budget_ms, round, m->max_rounds))
            return 0;
    }
}

/* ---- the final stop: vCPUs, then devices ---- */

static int pause_vcpus(void *arg)
{
    return vm_pause(arg);
}

static int pause_devices(void *arg)
{
    struct vm *vm = arg;
    int ret = 0;

    for (unsigned i = 0; !ret && i < vm->ndevices; i++)
        if (vm->devices[i]->ops->pause)
            ret = vm->devices[i]->ops->pause(vm->devices[i]);
    return ret;
}

static int pause_all(void *arg)
{
    int ret = pause_vcpus(arg);

    return ret ? ret : pause_devices(arg);
}

static void resume_devices(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ndevices; i++)
        if (vm->devices[i]->ops->resume && vm->devices[i]->ops->resume(vm->devices[i]))
            pr_err("%s: could not restart after the migration stopped", vm->devices[i]->id);
}

static int resume_vcpus(void *arg)
{
    return vm_resume(arg);
}

static int resume_all(void *arg)
{
    resume_devices(arg);
    return vm_resume(arg);
}

static int send_blob(struct mig_run *r, uint32_t type, uint64_t a, struct state_buf *b,
                     const char *id)
{
    size_t idlen = id ? strlen(id) : 0;
    int ret;

    if (!id)
        return send_rec(r, type, a, b->len, b->data, b->len);
    ret = send_rec(r, type, idlen, b->len, id, idlen);
    if (!ret && b->len)
        ret = mig_write(r->fd, b->data, b->len);
    r->bytes += b->len;
    return ret;
}

/* vCPUs first, then the VM: the destination loads them in stream order, and the
 * IOAPIC rebuilds its EOI tracking from the LAPICs; the clock is read last. */
static int send_machine_state(struct mig_run *r)
{
    struct vm *vm = r->vm;
    struct state_buf b = {0};
    int ret = 0;

    for (unsigned i = 0; !ret && i < vm->ncpus; i++) {
        b.len = 0;
        ret = kvm_vcpu_state_save(&vm->vcpus[i].kvm, &b);
        if (!ret)
            ret = send_blob(r, MIG_REC_VCPU, i, &b, NULL);
    }
    if (!ret) {
        b.len = 0;
        ret = kvm_vm_state_save(&vm->kvm, &b);
    }
    if (!ret)
        ret = send_blob(r, MIG_REC_VM, 0, &b, NULL);
    for (unsigned i = 0; !ret && i < vm->ndevices; i++) {
        struct device *d = vm->devices[i];

        if (!d->ops->save)
            continue;
        b.len = 0;
        ret = d->ops->save(d, &b);
        if (!ret)
            ret = send_blob(r, MIG_REC_DEVICE, 0, &b, d->id);
    }
    state_buf_free(&b);
    return ret;
}

static int send_hashes(struct mig_run *r)
{
    struct vm *vm = r->vm;
    uint64_t total = vm->mem.size / 4096, *h = malloc(total * sizeof(uint64_t)), n = 0;
    int ret;

    if (!h)
        return -ENOMEM;
    for (int i = 0; i < vm->mem.nregions; i++)
        for (uint64_t off = 0; off < vm->mem.regions[i].size; off += 4096)
            h[n++] = dirty_page_hash(vm->mem.regions[i].hva + off);
    ret = send_rec(r, MIG_REC_VERIFY, total, 0, h, total * sizeof(uint64_t));
    free(h);
    return ret;
}

static int read_reply(struct mig_run *r)
{
    struct migration *m = &r->vm->mig;
    struct mig_reply rep;
    int ret = mig_read(r->fd, &rep, sizeof(rep));

    if (ret)
        return run_fail(r, ret, "%s", "the destination closed the stream before answering");
    if (memcmp(rep.magic, MIG_REPLY_MAGIC, sizeof(rep.magic)))
        return run_fail(r, -EPROTO, "%s", "the destination's answer is malformed");
    rep.msg[sizeof(rep.msg) - 1] = '\0';
    pthread_mutex_lock(&m->lock);
    if (m->params.verify) {
        m->info.verify_done = true;
        m->info.verify_pages_compared = rep.compared;
        m->info.verify_pages_differ = rep.differ;
        m->info.verify_nfirst = rep.nfirst < 8 ? rep.nfirst : 8;
        memcpy(m->info.verify_first_differ, rep.first, sizeof(rep.first));
    }
    pthread_mutex_unlock(&m->lock);
    if (rep.status)
        return run_fail(r, -EIO, "the destination failed: %s", rep.msg);
    return 0;
}

/* Pause, stop the rings, the last pages, the state, the verdict. */
static int complete(struct mig_run *r)
{
    struct vm *vm = r->vm;
    uint64_t t0 = now_ms();
    int ret = event_loop_call(&vm->loop, pause_vcpus, vm);

    r->paused = true;
    /* Test-only (the backend's log is ignored): the backend keeps filling a guest that
     * cannot touch those pages for a second, so only its log could report them. */
    if (!ret && r->ignore_backend_log)
        sleep(1);
    /* Here, not on the main loop: each device waits for its own thread, which may
     * be waiting for a slow backend. */
    if (!ret)
        ret = pause_devices(vm);
    if (ret)
        return run_fail(r, ret, "%s", "the VM could not be paused");
    if (harvest(r) == UINT64_MAX)
        return run_fail(r, -EIO, "%s", "KVM's dirty log could not be read");
    ret = send_dirty(r, false);
    /* The hashes before the state: the destination compares its RAM before its
     * NICs start and its backend writes into the guest again. */
    if (!ret && vm->mig.params.verify)
        ret = send_hashes(r);
    if (!ret)
        ret = send_machine_state(r);
    if (!ret)
        ret = send_rec(r, MIG_REC_END, 0, 0, NULL, 0);
    if (ret)
        return run_fail(r, ret, "%s", "sending the final state failed");
    ret = read_reply(r);
    r->down_ms = now_ms() - t0;
    return ret;
}

static int check_backends(struct vm *vm, char *err, size_t len)
{
    for (unsigned i = 0; i < vm->ndevices; i++) {
        struct device *d = vm->devices[i];
        int ret = d->ops->log_check ? d->ops->log_check(d, err, len) : 0;

        if (ret)
            return ret;
    }
    return 0;
}

static void finish(struct mig_run *r, int ret)
{
    struct migration *m = &r->vm->mig;
    bool cancelled = atomic_load(&m->cancel);

    stop_tracking(r);
    if (ret && r->paused) {
        resume_devices(r->vm);
        event_loop_call(&r->vm->loop, resume_vcpus, r->vm);
    }
    pthread_mutex_lock(&m->lock);
    m->info.total_time_ms = now_ms() - r->start_ms;
    m->info.downtime_ms = r->down_ms;
    m->info.pages_sent = r->pages_sent;
    if (!ret) {
        m->info.status = "completed";
    } else {
        m->info.status = cancelled ? "cancelled" : "failed";
        snprintf(m->info.error, sizeof(m->info.error), "%s", r->err);
    }
    pthread_mutex_unlock(&m->lock);
    if (ret)
        pr_err("migration %s: %s; the VM keeps running here", cancelled ? "cancelled" : "failed",
               r->err);
    else
        pr_info("migration completed in %llu ms, downtime %llu ms; the VM stays paused here",
                (unsigned long long)m->info.total_time_ms, (unsigned long long)r->down_ms);
}

static void *migration_thread(void *arg)
{
    struct vm *vm = arg;
    struct mig_run r = {.vm = vm, .fd = -1, .log = {.fd = -1}, .start_ms = now_ms()};
    struct mig_header h;
    unsigned pairs[MIG_MAX_NETS] = {0};
    int ret;

    r.ignore_backend_log = getenv("VMM_TEST_MIGRATION_IGNORE_BACKEND_LOG") != NULL;
    for (unsigned i = 0; i < vm->opts->nnets && i < MIG_MAX_NETS; i++)
        pairs[i] = vm->opts->nets[i].queue_pairs;
    mig_header_fill(&h, &vm->mem, vm->ncpus, vm->opts->nnets, pairs,
                    vm->mig.params.verify ? MIG_F_VERIFY : 0);
    ret = mig_connect(vm->mig.params.uri, &r.fd);
    if (ret)
        run_fail(&r, ret, "cannot connect to %.200s", vm->mig.params.uri);
    pthread_mutex_lock(&vm->mig.lock);
    vm->mig.fd = r.fd;
    pthread_mutex_unlock(&vm->mig.lock);
    if (!ret && (ret = mig_write(r.fd, &h, sizeof(h))))
        run_fail(&r, ret, "%s", "the destination closed the stream");
    if (!ret)
        ret = start_tracking(&r);
    if (!ret) {
        set_status(&vm->mig, "active");
        ret = precopy(&r);
    }
    if (!ret)
        ret = complete(&r);
    pthread_mutex_lock(&vm->mig.lock);
    vm->mig.fd = -1;
    pthread_mutex_unlock(&vm->mig.lock);
    if (r.fd >= 0)
        close(r.fd);
    finish(&r, ret);
    return NULL;
}

int migration_start(struct vm *vm, const struct migration_params *p, char *err, size_t errlen)
{
    struct migration *m = &vm->mig;
    const char *st;

    pthread_mutex_lock(&m->lock);
    st = m->info.status;
    pthread_mutex_unlock(&m->lock);
    if (!strcmp(st, "setup") || !strcmp(st, "active")) {
        snprintf(err, errlen, "a migration is already running");
        return -EBUSY;
    }
    if (!strcmp(st, "completed")) {
        snprintf(err, errlen, "this VM has migrated already");
        return -EINVAL;
    }
    if (check_backends(vm, err, errlen))
        return -ENOTSUP;
    if (m->thread_started)
        pthread_join(m->thread, NULL);
    m->thread_started = false;
    pthread_mutex_lock(&m->lock);
    memset(&m->info, 0, sizeof(m->info));
    m->info.status = "setup";
    m->info.total_pages = vm->mem.size / 4096;
    m->params = *p;
    pthread_mutex_unlock(&m->lock);
    atomic_store(&m->cancel, false);
    if (pthread_create(&m->thread, NULL, migration_thread, vm)) {
        set_status(m, "failed");
        snprintf(err, errlen, "cannot start the migration thread");
        return -EAGAIN;
    }
    m->thread_started = true;
    return 0;
}

int migration_cancel(struct vm *vm, char *err, size_t errlen)
{
    struct migration_info info;

    migration_query(vm, &info);
    if (strcmp(info.status, "setup") && strcmp(info.status, "active")) {
        snprintf(err, errlen, "no migration is running (status %s)", info.status);
        return -EINVAL;
    }
    atomic_store(&vm->mig.cancel, true);
    /* Wakes a thread blocked on the destination. */
    pthread_mutex_lock(&vm->mig.lock);
    if (vm->mig.fd >= 0)
        shutdown(vm->mig.fd, SHUT_RDWR);
    pthread_mutex_unlock(&vm->mig.lock);
    return 0;
}

/* ---- snapshots ---- */

static int snapshot_write(struct mig_run *r)
{
    struct vm *vm = r->vm;
    unsigned pairs[MIG_MAX_NETS] = {0};
    struct mig_header h;
    int ret;

    for (unsigned i = 0; i < vm->opts->nnets && i < MIG_MAX_NETS; i++)
        pairs[i] = vm->opts->nets[i].queue_pairs;
    mig_header_fill(&h, &vm->mem, vm->ncpus, vm->opts->nnets, pairs, 0);
    ret = dirty_map_init(&r->dirty, &vm->mem);
    if (!ret)
        ret = mig_write(r->fd, &h, sizeof(h));
    if (!ret) {
        dirty_map_set_all(&r->dirty);
        ret = send_dirty(r, true);
    }
    if (!ret)
        ret = send_machine_state(r);
    if (!ret)
        ret = send_rec(r, MIG_REC_END, 0, 0, NULL, 0);
    dirty_map_free(&r->dirty);
    return ret;
}

int snapshot_save(struct vm *vm, const char *dir, char *err, size_t errlen)
{
    struct mig_run r = {.vm = vm, .log = {.fd = -1}};
    bool was_paused = vm_is_paused(vm);
    char path[4096];
    int ret;

    snprintf(path, sizeof(path), "%s/" SNAPSHOT_FILE, dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -errno;
    }
    r.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (r.fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-ret));
        return ret;
    }
    ret = pause_all(vm);
    if (!ret)
        ret = snapshot_write(&r);
    if (!ret && fsync(r.fd) < 0)
        ret = -errno;
    close(r.fd);
    if (ret)
        snprintf(err, errlen, "writing %s failed: %s", path, strerror(-ret));
    else
        pr_info("snapshot written to %s (%llu pages)", path, (unsigned long long)r.pages_sent);
    if (!was_paused)
        resume_all(vm);
    return ret;
}

/* ---- the destination ---- */

struct mig_in {
    struct vm *vm;
    int fd;
    struct mig_reader rd;
    bool verify_done;
    uint64_t compared, differ, first[8];
    unsigned nfirst;
    char why[200];
};

static int in_fail(struct mig_in *in, int ret, const char *what)
{
    if (!in->why[0])
        snprintf(in->why, sizeof(in->why), "%s", what);
    return ret ? ret : -EINVAL;
}

static int in_blob(struct mig_in *in, uint64_t len, struct state_buf *b)
{
    b->len = 0;
    if (len > b->cap) {
        uint8_t *p = realloc(b->data, len);

        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = len;
    }
    b->len = len;
    return mig_reader_read(&in->rd, b->data, len);
}

static struct device *find_device(struct vm *vm, const char *id)
{
    for (unsigned i = 0; i < vm->ndevices; i++)
        if (!strcmp(vm->devices[i]->id, id))
            return vm->devices[i];
    return NULL;
}

static int in_device(struct mig_in *in, const struct mig_rec *rec, struct state_buf *b)
{
    char id[MIG_MAX_ID + 1] = {0};
    struct device *d;
    int ret = mig_reader_read(&in->rd, id, rec->a);

    if (!ret)
        ret = in_blob(in, rec->b, b);
    if (ret)
        return in_fail(in, ret, "the stream ended inside a device's state");
    ret = mig_device_id_check(id, rec->a, in->why, sizeof(in->why));
    if (ret)
        return ret;
    d = find_device(in->vm, id);
    if (!d || !d->ops->load) {
        snprintf(in->why, sizeof(in->why), "the source has a device '%s' this VM lacks", id);
        return -EINVAL;
    }
    ret = d->ops->load(d, b->data, b->len);
    if (ret)
        snprintf(in->why, sizeof(in->why), "device '%s' refused its state: %s", id, strerror(-ret));
    return ret;
}

static int in_verify(struct mig_in *in, uint64_t pages)
{
    struct vm *vm = in->vm;
    uint64_t *h = malloc(pages * sizeof(uint64_t)), n = 0;
    int ret;

    if (!h)
        return in_fail(in, -ENOMEM, "out of memory for the verify hashes");
    ret = mig_reader_read(&in->rd, h, pages * sizeof(uint64_t));
    for (int i = 0; !ret && i < vm->mem.nregions; i++) {
        const struct guest_region *g = &vm->mem.regions[i];

        for (uint64_t off = 0; off < g->size; off += 4096, n++) {
            if (dirty_page_hash(g->hva + off) == h[n])
                continue;
            if (in->nfirst < 8)
                in->first[in->nfirst++] = g->gpa + off;
            in->differ++;
        }
    }
    in->compared = n;
    in->verify_done = !ret;
    free(h);
    return ret ? in_fail(in, ret, "the stream ended inside the verify hashes") : 0;
}

static int in_record(struct mig_in *in, const struct mig_rec *rec, struct state_buf *b)
{
    struct vm *vm = in->vm;
    void *p;
    int ret;

    switch (rec->type) {
    case MIG_REC_RAM:
        p = guest_memory_ptr(&vm->mem, rec->a, rec->b * 4096);
        return mig_reader_read(&in->rd, p, rec->b * 4096);
    case MIG_REC_ZERO:
        memset(guest_memory_ptr(&vm->mem, rec->a, rec->b * 4096), 0, rec->b * 4096);
        return 0;
    case MIG_REC_VM:
        ret = in_blob(in, rec->b, b);
        if (!ret && (ret = kvm_vm_state_load(&vm->kvm, b->data, b->len)))
            return in_fail(in, ret, "the VM's KVM state was refused");
        return ret;
    case MIG_REC_VCPU:
        if (rec->a >= vm->ncpus)
            return in_fail(in, -EINVAL, "a vCPU index beyond this VM's vCPUs");
        ret = in_blob(in, rec->b, b);
        if (!ret && (ret = kvm_vcpu_state_load(&vm->vcpus[rec->a].kvm, b->data, b->len)))
            return in_fail(in, ret, "a vCPU's state was refused");
        return ret;
    case MIG_REC_DEVICE:
        return in_device(in, rec, b);
    case MIG_REC_VERIFY:
        return in_verify(in, rec->a);
    default:
        return 0;
    }
}

static int in_stream(struct mig_in *in)
{
    struct vm *vm = in->vm;
    unsigned pairs[MIG_MAX_NETS] = {0};
    struct mig_header got, mine;
    struct state_buf b = {0};
    struct mig_rec rec;
    int ret;

    for (unsigned i = 0; i < vm->opts->nnets && i < MIG_MAX_NETS; i++)
        pairs[i] = vm->opts->nets[i].queue_pairs;
    mig_header_fill(&mine, &vm->mem, vm->ncpus, vm->opts->nnets, pairs, 0);
    ret = mig_reader_init(&in->rd, in->fd, 256 << 10);
    if (ret)
        return in_fail(in, ret, "out of memory for the stream's buffer");
    ret = mig_reader_read(&in->rd, &got, sizeof(got));
    if (ret) {
        mig_reader_free(&in->rd);
        return in_fail(in, ret, "the stream ended inside its header");
    }
    mine.flags = got.flags;
    ret = mig_header_check(&got, &mine, in->why, sizeof(in->why));
    while (!ret) {
        ret = mig_reader_read(&in->rd, &rec, sizeof(rec));
        if (ret) {
            in_fail(in, ret, "the stream ended before its END record (truncated)");
            break;
        }
        ret = mig_rec_check(&rec, &vm->mem, in->why, sizeof(in->why));
        if (!ret && rec.type == MIG_REC_END)
            break;
        if (!ret)
            ret = in_record(in, &rec, &b);
        if (ret)
            in_fail(in, ret, "the stream ended inside a record (truncated)");
    }
    state_buf_free(&b);
    mig_reader_free(&in->rd);
    return ret;
}

static void in_reply(struct mig_in *in, int ret)
{
    struct mig_reply rep = {.status = ret ? -1 : 0,
                            .compared = in->compared,
                            .differ = in->differ,
                            .nfirst = in->nfirst};

    memcpy(rep.magic, MIG_REPLY_MAGIC, sizeof(rep.magic));
    memcpy(rep.first, in->first, sizeof(rep.first));
    snprintf(rep.msg, sizeof(rep.msg), "%s", ret ? in->why : "ok");
    if (mig_write(in->fd, &rep, sizeof(rep)))
        pr_warn("migration: cannot answer the source");
}

static void in_report(struct mig_in *in)
{
    if (!in->verify_done)
        return;
    pr_info("migration verify: %llu pages compared, %llu differ", (unsigned long long)in->compared,
            (unsigned long long)in->differ);
    for (unsigned i = 0; i < in->nfirst; i++)
        pr_info("migration verify: page at 0x%llx differs", (unsigned long long)in->first[i]);
}

int migration_incoming(struct vm *vm, const char *uri)
{
    struct mig_in in = {.vm = vm, .fd = -1};
    int lfd, ret = mig_listen(uri, &lfd);

    if (ret) {
        pr_err("--incoming %s: cannot listen: %s", uri, strerror(-ret));
        return ret;
    }
    pr_info("waiting for a migration on %s", uri);
    ret = mig_accept(lfd, vm->signal_fd, &in.fd);
    close(lfd);
    if (!strncmp(uri, "unix:", 5))
        unlink(uri + 5);
    if (ret) {
        pr_err("--incoming %s: %s", uri,
               ret == -ECANCELED ? "stopped by a signal" : strerror(-ret));
        return ret;
    }
    ret = in_stream(&in);
    in_reply(&in, ret);
    close(in.fd);
    in_report(&in);
    if (ret)
        pr_err("incoming migration failed: %s", in.why);
    else
        pr_info("incoming migration complete: the guest runs here now");
    return ret;
}

int snapshot_restore(struct vm *vm, const char *dir)
{
    struct mig_in in = {.vm = vm};
    char path[4096];
    int ret;

    snprintf(path, sizeof(path), "%s/" SNAPSHOT_FILE, dir);
    in.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (in.fd < 0) {
        pr_err("--restore: cannot read %s: %s", path, strerror(errno));
        return -errno;
    }
    ret = in_stream(&in);
    close(in.fd);
    if (ret)
        pr_err("--restore %s: %s", path, in.why);
    return ret;
}
