/* The source: dirty tracking from the three writers, precopy, the final stop, the
 * state and the destination's verdict; on its own thread (see migration.h).
 *
 * Stream (migration_stream.h): header; RAM and ZERO records (a full pass that
 * skips zero pages, since the destination's memfd starts zeroed, then the dirty
 * rounds); after the final stop, with --verify, a hash of every RAM page; each
 * vCPU's state, the VM state (irqchip, PIT, clock), each device's state by id; END.
 * The destination answers with a struct mig_reply. */
#include "migration_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *migration_source_thread(void *arg);

/* ---- dirty tracking: KVM's slots (vCPUs), the devices' shared log, vmm's own ---- */

/* Fetches (and in manual-protect mode re-arms) each slot's log into the map. */
static int harvest_slots(struct mig_run *r)
{
    for (int i = 0; i < r->mem->nregions; i++) {
        int ret = r->ops->slot_log_get(r->opaque, i, r->slot_bits[i]);

        if (!ret && r->m->slot_log_manual)
            ret = r->ops->slot_log_clear(r->opaque, i, r->dirty.r[i].npages, r->slot_bits[i]);
        if (ret)
            return ret;
        dirty_map_merge(&r->dirty, i, r->slot_bits[i]);
    }
    return 0;
}

/* The pages dirty now, or UINT64_MAX when KVM's log could not be read. */
static uint64_t harvest(struct mig_run *r)
{
    if (harvest_slots(r))
        return UINT64_MAX;
    if (r->devices_logging && !r->m->ignore_backend_log)
        vhost_log_harvest(&r->log, &r->dirty);
    if (r->own_logging)
        vhost_log_harvest(&r->m->own_log.log, &r->dirty);
    return dirty_map_count(&r->dirty);
}

/* Every device that writes guest RAM behind vmm's back logs into r->log; the
 * first failure stops the start. */
static int devices_log(struct mig_run *r, bool on)
{
    int ret = 0;

    for (unsigned i = 0; i < r->ndevs; i++) {
        struct device *d = r->devs[i];
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

static bool devices_log_anything(const struct mig_run *r)
{
    for (unsigned i = 0; i < r->ndevs; i++)
        if (r->devs[i]->ops->log_start)
            return true;
    return false;
}

static int start_slot_logging(struct mig_run *r)
{
    struct migration *m = r->m;
    int ret;

    for (int i = 0; i < r->mem->nregions; i++) {
        r->slot_bits[i] = calloc(dirty_words(r->dirty.r[i].npages), sizeof(uint64_t));
        if (!r->slot_bits[i])
            return mig_run_fail(r, -ENOMEM, "%s", "out of memory for the dirty bitmaps");
    }
    if (!m->slot_log_probed) {
        m->slot_log_manual = r->ops->slot_log_manual_protect(r->opaque);
        m->slot_log_probed = true;
    }
    ret = r->ops->slot_log(r->opaque, true);
    if (ret)
        return mig_run_fail(r, ret, "%s", "KVM refused dirty logging on the RAM slots");
    r->slot_logging = true;
    return 0;
}

static int start_own_logging(struct mig_run *r)
{
    if (dirty_own_log_reset(&r->m->own_log, dirty_ram_end(r->mem)))
        return mig_run_fail(r, -ENOMEM, "%s", "out of memory for vmm's own dirty log");
    r->ops->own_log(r->opaque, &r->m->own_log);
    r->own_logging = true;
    return 0;
}

static int start_devices_logging(struct mig_run *r)
{
    int ret;

    if (!devices_log_anything(r))
        return 0;
    ret = vhost_log_create(&r->log, dirty_ram_end(r->mem));
    if (!ret)
        ret = devices_log(r, true);
    if (ret) {
        devices_log(r, false);
        return mig_run_fail(r, ret, "%s", "a device (vhost-user backend) did not start logging");
    }
    r->devices_logging = true;
    return 0;
}

static int start_tracking(struct mig_run *r)
{
    int ret = dirty_map_init(&r->dirty, r->mem);

    if (ret)
        return mig_run_fail(r, ret, "%s", "out of memory for the dirty bitmaps");
    ret = start_slot_logging(r);
    if (!ret)
        ret = start_own_logging(r);
    return ret ? ret : start_devices_logging(r);
}

static void stop_tracking(struct mig_run *r)
{
    if (r->own_logging)
        r->ops->own_log(r->opaque, NULL);
    r->own_logging = false;
    if (r->devices_logging)
        devices_log(r, false);
    r->devices_logging = false;
    if (r->slot_logging)
        r->ops->slot_log(r->opaque, false);
    r->slot_logging = false;
    vhost_log_destroy(&r->log);
    for (int i = 0; i < GUEST_MEM_MAX_REGIONS; i++) {
        free(r->slot_bits[i]);
        r->slot_bits[i] = NULL;
    }
    dirty_map_free(&r->dirty);
}

/* ---- precopy ---- */

/* A device whose backend came back unable to log (or left) while logging has a gap
 * in its log that nothing can fill: the migration fails with its reason instead of
 * handing the destination RAM that differs where no one can tell. Checked after
 * each round and once the devices stopped. */
static int devices_log_intact(struct mig_run *r)
{
    char why[160];

    if (!r->devices_logging)
        return 0;
    for (unsigned i = 0; i < r->ndevs; i++) {
        struct device *d = r->devs[i];

        if (d->ops->log_start && d->ops->log_check && d->ops->log_check(d, why, sizeof(why)))
            return mig_run_fail(r, -EIO, "the dirty log is incomplete: %s", why);
    }
    return 0;
}

static void update_info(struct mig_run *r, unsigned round, uint64_t dirtied, double bytes_per_ms)
{
    struct migration *m = r->m;

    pthread_mutex_lock(&m->lock);
    m->info.round = round;
    m->info.pages_dirtied_last_round = dirtied;
    m->info.pages_sent = r->pages_sent;
    m->info.mbps = bytes_per_ms * 1000.0 / (1024 * 1024);
    m->info.expected_downtime_ms = precopy_expected_downtime_ms(dirtied, bytes_per_ms);
    m->info.total_time_ms = mig_now_ms() - r->start_ms;
    pthread_mutex_unlock(&m->lock);
}

/* The round's rate, in bytes per ms, never above max-bandwidth: the expected
 * downtime is what the final pages cost at the rate the precopy may use. */
static double round_rate(struct mig_run *r, uint64_t t0, uint64_t bytes, double last)
{
    uint64_t dt = mig_now_ms() - t0, max_bw;
    double rate = dt ? (double)bytes / (double)dt : last ? last : (double)bytes;

    pthread_mutex_lock(&r->m->lock);
    max_bw = r->m->tune.max_bandwidth;
    pthread_mutex_unlock(&r->m->lock);
    if (max_bw && rate > (double)max_bw / 1000)
        rate = (double)max_bw / 1000;
    return rate;
}

/* Full pass, then rounds until the rest fits the downtime limit. */
static int precopy(struct mig_run *r)
{
    struct migration *m = r->m;
    double rate = 0;
    uint64_t dirtied, limit;
    int ret;

    dirty_map_set_all(&r->dirty);
    r->throttled = true;
    for (unsigned round = 1;; round++) {
        uint64_t t0 = mig_now_ms(), b0 = r->bytes;

        ret = mig_send_dirty(r, round == 1);
        if (ret)
            return mig_run_fail(r, ret, "%s", ret == -ECANCELED ? "cancelled" : "the stream broke");
        rate = round_rate(r, t0, r->bytes - b0, rate);
        dirtied = harvest(r);
        if (dirtied == UINT64_MAX)
            return mig_run_fail(r, -EIO, "%s", "KVM's dirty log could not be read");
        update_info(r, round, dirtied, rate);
        ret = devices_log_intact(r);
        if (ret)
            return ret;
        pthread_mutex_lock(&m->lock);
        limit = m->tune.downtime_limit_ms;
        pthread_mutex_unlock(&m->lock);
        if (precopy_should_stop(dirtied, rate, limit, round, m->max_rounds))
            return 0;
    }
}

/* ---- the final stop: vCPUs, then devices, the rest, the verdict ---- */

static int read_reply(struct mig_run *r)
{
    struct migration *m = r->m;
    struct mig_reply rep;
    int ret = mig_read(r->fd, &rep, sizeof(rep));

    if (ret)
        return mig_run_fail(r, ret, "%s", "the destination closed the stream before answering");
    if (memcmp(rep.magic, MIG_REPLY_MAGIC, sizeof(rep.magic)))
        return mig_run_fail(r, -EPROTO, "%s", "the destination's answer is malformed");
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
        return mig_run_fail(r, -EIO, "the destination failed: %s", rep.msg);
    return 0;
}

/* Ends phase p, begun at *t (us), and begins the next one now. */
static void phase_end(struct mig_run *r, enum migration_phase p, uint64_t *t)
{
    uint64_t now = mig_now_us();

    r->phase_us[p] += now - *t;
    *t = now;
}

/* The last pages: every log harvested once more, checked whole, the pages sent. */
static int final_pages(struct mig_run *r)
{
    int ret;

    if (harvest(r) == UINT64_MAX)
        return mig_run_fail(r, -EIO, "%s", "KVM's dirty log could not be read");
    ret = devices_log_intact(r);
    if (!ret)
        ret = mig_send_dirty(r, false);
    return ret;
}

/* Pause, stop the devices, the last pages, the state, the verdict, each phase timed
 * (query-migrate's downtime-breakdown). The final stop is not throttled:
 * max-bandwidth bounds the precopy (as QEMU's does). */
static int complete(struct mig_run *r)
{
    uint64_t t0 = mig_now_us(), t = t0;
    int ret = r->ops->pause(r->opaque);

    r->throttled = false;
    r->paused = !ret;
    phase_end(r, MIGRATION_PHASE_PAUSE, &t);
    /* Here, not on the main loop: each device waits for its own thread, which may
     * be waiting for a slow backend. */
    if (!ret)
        ret = mig_pause_devices(r);
    phase_end(r, MIGRATION_PHASE_STOP_DEVICES, &t);
    if (ret)
        return mig_run_fail(r, ret, "%s", "the VM could not be paused");
    ret = final_pages(r);
    phase_end(r, MIGRATION_PHASE_FINAL_PAGES, &t);
    /* The hashes before the state: the destination compares its RAM before its
     * NICs start and its backend writes into the guest again. */
    if (!ret && r->m->params.verify)
        ret = mig_send_hashes(r);
    phase_end(r, MIGRATION_PHASE_VERIFY, &t);
    if (!ret)
        ret = mig_send_machine_state(r);
    if (!ret)
        ret = mig_send_rec(r, MIG_REC_END, 0, 0, NULL, 0);
    phase_end(r, MIGRATION_PHASE_STATE, &t);
    if (ret)
        return mig_run_fail(r, ret, "%s", "sending the final state failed");
    ret = read_reply(r);
    phase_end(r, MIGRATION_PHASE_DESTINATION, &t);
    r->down_ms = (t - t0) / 1000;
    return ret;
}

/* "pause 1 ms, stop-devices 12 ms, ..." (verify only when it ran). */
static void breakdown_text(const struct migration_info *info, bool verify, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int p = 0; p < MIGRATION_PHASES && n < len; p++) {
        if (p == MIGRATION_PHASE_VERIFY && !verify)
            continue;
        n += (size_t)snprintf(buf + n, len - n, "%s%s %llu ms", n ? ", " : "",
                              migration_phase_names[p], (unsigned long long)info->phase_ms[p]);
    }
}

static void finish(struct mig_run *r, int ret)
{
    struct migration *m = r->m;
    bool cancelled = atomic_load(&m->cancel);
    char phases[200] = "";

    stop_tracking(r);
    if (ret && r->paused) {
        mig_resume_devices(r);
        r->ops->resume(r->opaque);
    }
    pthread_mutex_lock(&m->lock);
    m->info.total_time_ms = mig_now_ms() - r->start_ms;
    m->info.downtime_ms = r->down_ms;
    m->info.pages_sent = r->pages_sent;
    if (!ret) {
        m->info.status = "completed";
        m->info.downtime_known = true;
        for (int p = 0; p < MIGRATION_PHASES; p++)
            m->info.phase_ms[p] = (r->phase_us[p] + 500) / 1000;
        breakdown_text(&m->info, m->params.verify, phases, sizeof(phases));
    } else {
        m->info.status = cancelled ? "cancelled" : "failed";
        snprintf(m->info.error, sizeof(m->info.error), "%s", r->err);
    }
    pthread_mutex_unlock(&m->lock);
    if (ret)
        pr_err("migration %s: %s; the VM keeps running here", cancelled ? "cancelled" : "failed",
               r->err);
    else
        pr_info("migration completed in %llu ms, downtime %llu ms (%s); the VM stays paused here",
                (unsigned long long)m->info.total_time_ms, (unsigned long long)r->down_ms, phases);
}

static void set_fd(struct migration *m, int fd)
{
    pthread_mutex_lock(&m->lock);
    m->fd = fd;
    pthread_mutex_unlock(&m->lock);
}

static int connect_and_send_header(struct mig_run *r)
{
    struct migration *m = r->m;
    struct mig_header h;
    int ret = mig_connect(m->params.uri, &r->fd);

    if (ret)
        return mig_run_fail(r, ret, "cannot connect to %.200s", m->params.uri);
    set_fd(m, r->fd);
    /* A cancel that came before the fd was published found nothing to shut down. */
    if (atomic_load(&m->cancel))
        return mig_run_fail(r, -ECANCELED, "%s", "cancelled");
    mig_run_header(r, &h, m->params.verify ? MIG_F_VERIFY : 0);
    ret = mig_write(r->fd, &h, sizeof(h));
    return ret ? mig_run_fail(r, ret, "%s", "the destination closed the stream") : 0;
}

void *migration_source_thread(void *arg)
{
    struct migration *m = arg;
    struct mig_run r;
    int ret;

    mig_run_init(&r, m, -1);
    ret = connect_and_send_header(&r);
    if (!ret)
        ret = start_tracking(&r);
    if (!ret) {
        pthread_mutex_lock(&m->lock);
        m->info.status = "active";
        pthread_mutex_unlock(&m->lock);
        ret = precopy(&r);
    }
    if (!ret)
        ret = complete(&r);
    set_fd(m, -1);
    if (r.fd >= 0)
        close(r.fd);
    finish(&r, ret);
    return NULL;
}
