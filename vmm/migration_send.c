/* The writing half a migration and a snapshot share: RAM records (runs of data
 * or zero pages), the machine's state, the verify hashes, throttled to
 * max-bandwidth during precopy. */
#include "migration_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void mig_run_init(struct mig_run *r, struct migration *m, int fd)
{
    memset(r, 0, sizeof(*r));
    r->m = m;
    r->ops = m->host.ops;
    r->opaque = m->host.opaque;
    r->fd = fd;
    r->log.fd = -1;
    r->mem = r->ops->memory(r->opaque);
    r->ndevs = r->ops->devices(r->opaque, &r->devs);
    r->ops->machine(r->opaque, &r->machine);
    r->start_ms = mig_now_ms();
}

int mig_run_fail(struct mig_run *r, int ret, const char *fmt, const char *what)
{
    if (!r->err[0])
        snprintf(r->err, sizeof(r->err), fmt, what);
    return ret ? ret : -EIO;
}

void mig_run_header(struct mig_run *r, struct mig_header *h, uint32_t flags)
{
    mig_header_fill(h, r->mem, r->machine.ncpus, r->machine.nnets, r->machine.net_queue_pairs,
                    flags);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* Counts len bytes and, in precopy, waits until max-bandwidth allows them: in
 * slices, so that a cancel or a new limit is seen within 100 ms. */
static int account(struct mig_run *r, size_t len)
{
    uint64_t wait_ns;

    r->bytes += len;
    if (!r->throttled)
        return 0;
    pthread_mutex_lock(&r->m->lock);
    wait_ns = mig_throttle_take(&r->throttle, r->m->tune.max_bandwidth, now_ns(), len);
    pthread_mutex_unlock(&r->m->lock);
    while (wait_ns) {
        uint64_t slice = wait_ns < 100000000 ? wait_ns : 100000000;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice};

        if (atomic_load(&r->m->cancel))
            return -ECANCELED;
        nanosleep(&ts, NULL);
        wait_ns -= slice;
    }
    return 0;
}

int mig_send_rec(struct mig_run *r, uint32_t type, uint64_t a, uint64_t b, const void *payload,
                 size_t len)
{
    struct mig_rec rec = {.type = type, .a = a, .b = b};
    int ret;

    r->out.fd = r->fd;
    ret = mig_out_flush(&r->out);
    if (!ret)
        ret = account(r, sizeof(rec) + len);
    if (!ret)
        ret = mig_write(r->fd, &rec, sizeof(rec));
    if (!ret && len)
        ret = mig_write(r->fd, payload, len);
    return ret;
}

/* One run of consecutive dirty pages of the same kind (data or zero). */
static int send_run(struct mig_run *r, uint64_t gpa, uint64_t pages, bool zero)
{
    struct mig_rec rec = {.type = zero ? MIG_REC_ZERO : MIG_REC_RAM, .a = gpa, .b = pages};
    size_t len = zero ? 0 : pages * 4096;
    int ret = account(r, sizeof(rec) + len);

    r->pages_sent += pages;
    r->out.fd = r->fd;
    return ret ? ret : mig_out_rec(&r->out, &rec, guest_memory_ptr(r->mem, gpa, len), len);
}

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[64];

    for (size_t off = 0; off < 4096; off += 64)
        if (memcmp(p + off, zero, 64))
            return false;
    return true;
}

/* The first pass need not read pages the guest never touched: they are holes in
 * the memfd (reading them would allocate them). Clears their bits. */
static void skip_holes(struct mig_run *r)
{
    const struct guest_memory *mem = r->mem;

    for (int i = 0; mem->fd >= 0 && i < r->dirty.nregions; i++) {
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

static int send_region(struct mig_run *r, struct dirty_region *d, bool first_pass)
{
    uint64_t run_start = 0, run_len = 0;
    bool run_zero = false;

    for (uint64_t pg = 0; pg <= d->npages; pg++) {
        bool dirty = pg < d->npages && (d->bits[pg / 64] & (1ULL << (pg % 64)));
        bool zero = dirty && page_is_zero(guest_memory_ptr(r->mem, d->gpa + pg * 4096, 4096));
        bool extend = dirty && run_len && zero == run_zero && run_len < MIG_MAX_PAGES_PER_RECORD &&
                      run_start + run_len == pg;
        int ret = 0;

        if (run_len && !extend) {
            if (!(first_pass && run_zero))
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
        if (atomic_load(&r->m->cancel))
            return -ECANCELED;
    }
    memset(d->bits, 0, dirty_words(d->npages) * sizeof(uint64_t));
    return 0;
}

int mig_send_dirty(struct mig_run *r, bool first_pass)
{
    int ret = 0;

    if (first_pass)
        skip_holes(r);
    for (int i = 0; !ret && i < r->dirty.nregions; i++)
        ret = send_region(r, &r->dirty.r[i], first_pass);
    r->out.fd = r->fd;
    return ret ? ret : mig_out_flush(&r->out);
}

static int send_blob(struct mig_run *r, uint32_t type, uint64_t a, struct state_buf *b,
                     const char *id)
{
    size_t idlen = id ? strlen(id) : 0;
    int ret;

    if (!id)
        return mig_send_rec(r, type, a, b->len, b->data, b->len);
    ret = mig_send_rec(r, type, idlen, b->len, id, idlen);
    if (!ret && b->len)
        ret = mig_write(r->fd, b->data, b->len);
    r->bytes += b->len;
    return ret;
}

/* vCPUs first, then the VM: the destination loads them in stream order, and the
 * IOAPIC rebuilds its EOI tracking from the LAPICs; the clock is read last. */
int mig_send_machine_state(struct mig_run *r)
{
    struct state_buf b = {0};
    int ret = 0;

    for (unsigned i = 0; !ret && i < r->machine.ncpus; i++) {
        b.len = 0;
        ret = r->ops->vcpu_save(r->opaque, i, &b);
        if (!ret)
            ret = send_blob(r, MIG_REC_VCPU, i, &b, NULL);
    }
    if (!ret) {
        b.len = 0;
        ret = r->ops->vm_save(r->opaque, &b);
    }
    if (!ret)
        ret = send_blob(r, MIG_REC_VM, 0, &b, NULL);
    for (unsigned i = 0; !ret && i < r->ndevs; i++) {
        struct device *d = r->devs[i];

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

int mig_send_hashes(struct mig_run *r)
{
    const struct guest_memory *mem = r->mem;
    uint64_t total = mem->size / 4096, *h = malloc(total * sizeof(uint64_t)), n = 0;
    int ret;

    if (!h)
        return -ENOMEM;
    for (int i = 0; i < mem->nregions; i++)
        for (uint64_t off = 0; off < mem->regions[i].size; off += 4096)
            h[n++] = dirty_page_hash(mem->regions[i].hva + off);
    ret = mig_send_rec(r, MIG_REC_VERIFY, total, 0, h, total * sizeof(uint64_t));
    free(h);
    return ret;
}

int mig_pause_devices(struct mig_run *r)
{
    int ret = 0;

    for (unsigned i = 0; !ret && i < r->ndevs; i++)
        if (r->devs[i]->ops->pause)
            ret = r->devs[i]->ops->pause(r->devs[i]);
    return ret;
}

void mig_resume_devices(struct mig_run *r)
{
    for (unsigned i = 0; i < r->ndevs; i++)
        if (r->devs[i]->ops->resume && r->devs[i]->ops->resume(r->devs[i]))
            pr_err("%s: could not restart after the migration stopped", r->devs[i]->id);
}
