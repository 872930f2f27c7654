/* The destination: takes a peer whose header matches this machine, receives the
 * RAM and the state into the host, verifies, and answers (see migration.h for the
 * listener's rule). Everything the peer sends is checked before it is used, and
 * every wait is bounded and ends when stop_fd is readable. */
#include "migration_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIG_READ_BUFFER (256u << 10)

struct mig_in {
    const struct migration_host_ops *ops;
    void *opaque;
    const struct guest_memory *mem;
    struct device *const *devs;
    unsigned ndevs, ncpus;
    int fd;
    struct mig_reader rd;
    bool verify_done;
    uint64_t compared, differ, first[8];
    unsigned nfirst;
    uint64_t devices_us, verify_us; /* this side's share of the downtime (its log line) */
    char why[200];
};

/* The first reason wins; a stop or a silent peer is named as such, whatever the
 * read was for. */
static int in_fail(struct mig_in *in, int ret, const char *what)
{
    if (in->why[0])
        return ret ? ret : -EINVAL;
    if (ret == -ECANCELED)
        snprintf(in->why, sizeof(in->why), "stopped (a signal) while receiving");
    else if (ret == -ETIMEDOUT)
        snprintf(in->why, sizeof(in->why), "the source went silent mid-stream: no data for %d ms",
                 in->rd.idle_ms);
    else
        snprintf(in->why, sizeof(in->why), "%s", what);
    return ret ? ret : -EINVAL;
}

static void in_init(struct mig_in *in, const struct migration_host *host)
{
    struct migration_machine mach;

    memset(in, 0, sizeof(*in));
    in->ops = host->ops;
    in->opaque = host->opaque;
    in->fd = -1;
    in->mem = in->ops->memory(in->opaque);
    in->ndevs = in->ops->devices(in->opaque, &in->devs);
    in->ops->machine(in->opaque, &mach);
    in->ncpus = mach.ncpus;
}

static void my_header(struct mig_in *in, struct mig_header *h, uint32_t flags)
{
    struct migration_machine mach;

    in->ops->machine(in->opaque, &mach);
    mig_header_fill(h, in->mem, mach.ncpus, mach.nnets, mach.net_queue_pairs, flags);
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

static struct device *find_device(struct mig_in *in, const char *id)
{
    for (unsigned i = 0; i < in->ndevs; i++)
        if (!strcmp(in->devs[i]->id, id))
            return in->devs[i];
    return NULL;
}

static int in_device(struct mig_in *in, const struct mig_rec *rec, struct state_buf *b)
{
    char id[MIG_MAX_ID + 1] = {0};
    struct device *d;
    uint64_t t0;
    int ret = mig_reader_read(&in->rd, id, rec->a);

    if (!ret)
        ret = in_blob(in, rec->b, b);
    if (ret)
        return in_fail(in, ret, "the stream ended inside a device's state");
    /* Printable, or the one error line that quotes it could be forged into two. */
    ret = mig_device_id_check(id, rec->a, in->why, sizeof(in->why));
    if (ret)
        return ret;
    d = find_device(in, id);
    if (!d || !d->ops->load) {
        snprintf(in->why, sizeof(in->why), "the source has a device '%s' this VM lacks", id);
        return -EINVAL;
    }
    t0 = mig_now_us();
    ret = d->ops->load(d, b->data, b->len); /* a started NIC starts on its backend here */
    in->devices_us += mig_now_us() - t0;
    if (ret)
        snprintf(in->why, sizeof(in->why), "device '%s' refused its state: %s", id, strerror(-ret));
    return ret;
}

/* Compares every page with the source's hash (mig_rec_check made pages the
 * machine's page count). */
static int in_verify(struct mig_in *in, uint64_t pages)
{
    uint64_t *h = malloc(pages * sizeof(uint64_t)), n = 0, t0 = mig_now_us();
    int ret;

    if (!h)
        return in_fail(in, -ENOMEM, "out of memory for the verify hashes");
    ret = mig_reader_read(&in->rd, h, pages * sizeof(uint64_t));
    for (int i = 0; !ret && i < in->mem->nregions; i++) {
        const struct guest_region *g = &in->mem->regions[i];

        for (uint64_t off = 0; off < g->size && n < pages; off += 4096, n++) {
            if (dirty_page_hash(g->hva + off) == h[n])
                continue;
            if (in->nfirst < 8)
                in->first[in->nfirst++] = g->gpa + off;
            in->differ++;
        }
    }
    in->compared = n;
    in->verify_done = !ret;
    in->verify_us = mig_now_us() - t0;
    free(h);
    return ret ? in_fail(in, ret, "the stream ended inside the verify hashes") : 0;
}

static int in_record(struct mig_in *in, const struct mig_rec *rec, struct state_buf *b)
{
    void *p;
    int ret;

    switch (rec->type) {
    case MIG_REC_RAM:
        p = guest_memory_ptr(in->mem, rec->a, rec->b * 4096);
        return mig_reader_read(&in->rd, p, rec->b * 4096);
    case MIG_REC_ZERO:
        memset(guest_memory_ptr(in->mem, rec->a, rec->b * 4096), 0, rec->b * 4096);
        return 0;
    case MIG_REC_VM:
        ret = in_blob(in, rec->b, b);
        if (!ret && (ret = in->ops->vm_load(in->opaque, b->data, b->len)))
            return in_fail(in, ret, "the VM's KVM state was refused");
        return ret;
    case MIG_REC_VCPU:
        if (rec->a >= in->ncpus)
            return in_fail(in, -EINVAL, "a vCPU index beyond this VM's vCPUs");
        ret = in_blob(in, rec->b, b);
        if (!ret && (ret = in->ops->vcpu_load(in->opaque, (unsigned)rec->a, b->data, b->len)))
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

/* The records after an accepted header, up to END. */
static int in_records(struct mig_in *in)
{
    struct state_buf b = {0};
    struct mig_rec rec;
    int ret = 0;

    while (!ret) {
        ret = mig_reader_read(&in->rd, &rec, sizeof(rec));
        if (ret) {
            in_fail(in, ret, "the stream ended before its END record (truncated)");
            break;
        }
        ret = mig_rec_check(&rec, in->mem, in->why, sizeof(in->why));
        if (!ret && rec.type == MIG_REC_END)
            break;
        if (!ret)
            ret = in_record(in, &rec, &b);
        if (ret)
            in_fail(in, ret, "the stream ended inside a record (truncated)");
    }
    state_buf_free(&b);
    return ret;
}

/* Reads the header (unless the listener has) and checks it against this machine. */
static int in_header(struct mig_in *in, bool header_read, const struct mig_header *got_in)
{
    struct mig_header got, mine;
    int ret = 0;

    if (header_read)
        got = *got_in;
    else
        ret = mig_reader_read(&in->rd, &got, sizeof(got));
    if (ret)
        return in_fail(in, ret, "the stream ended inside its header");
    my_header(in, &mine, got.flags);
    return mig_header_check(&got, &mine, in->why, sizeof(in->why));
}

static int in_receive(struct mig_in *in, int fd, const struct migration_incoming_opts *o,
                      bool header_read, const struct mig_header *got)
{
    int ret = mig_reader_init(&in->rd, fd, MIG_READ_BUFFER);

    in->fd = fd;
    if (ret)
        return in_fail(in, ret, "out of memory for the stream's buffer");
    in->rd.stop_fd = o->stop_fd;
    in->rd.idle_ms = o->idle_timeout_ms ? (int)o->idle_timeout_ms : -1;
    ret = in_header(in, header_read, got);
    if (!ret)
        ret = in_records(in);
    mig_reader_free(&in->rd);
    return ret;
}

/* The verdict. The source reads it once it has sent END: our socket's send
 * buffer is empty then, so the write of a few hundred bytes cannot block. */
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

/* This side's share of the downtime: what the source's "destination" phase holds
 * besides the stream still in flight. */
static void in_report_done(const struct mig_in *in)
{
    char verify[48] = "";

    if (in->verify_done)
        snprintf(verify, sizeof(verify), ", verify %llu ms",
                 (unsigned long long)(in->verify_us + 500) / 1000);
    pr_info("incoming migration complete: the guest runs here now (device state loaded and "
            "NICs started in %llu ms%s)",
            (unsigned long long)(in->devices_us + 500) / 1000, verify);
}

/* ---- the listener: peers in turn until one's header matches ---- */

/* The whole header within timeout_ms (one bound, so a peer dribbling a byte at a
 * time is cut too), and not a byte more: the stream's reader takes the rest. */
static int read_header(int fd, int stop_fd, unsigned timeout_ms, struct mig_header *h)
{
    uint64_t deadline = mig_now_ms() + timeout_ms;
    uint8_t *p = (uint8_t *)h;
    size_t got = 0;

    while (got < sizeof(*h)) {
        uint64_t now = mig_now_ms();
        struct mig_reader rd = {.fd = fd, .stop_fd = stop_fd};
        int ret;

        if (now >= deadline)
            return -ETIMEDOUT;
        rd.idle_ms = (int)(deadline - now);
        /* A reader without a buffer: each read goes straight to the header. */
        ret = mig_reader_read_some(&rd, p + got, sizeof(*h) - got);
        if (ret < 0)
            return ret;
        got += (size_t)ret;
    }
    return 0;
}

/* Reads a new peer's header within the header bound. 0: it matches this machine;
 * -EAGAIN: drop this peer (logged, answered when it sent a header); else stop. */
static int screen_peer(struct mig_in *in, int fd, const char *uri,
                       const struct migration_incoming_opts *o, struct mig_header *got)
{
    struct mig_header mine;
    char why[200] = "";
    int ret = read_header(fd, o->stop_fd, o->header_timeout_ms, got);

    if (ret == -ECANCELED)
        return ret;
    if (ret) {
        pr_warn("--incoming %s: dropped a peer that sent no stream header within %u ms (%s); "
                "waiting for the next",
                uri, o->header_timeout_ms, ret == -ETIMEDOUT ? "silent" : "it closed");
        return -EAGAIN;
    }
    my_header(in, &mine, got->flags);
    if (!mig_header_check(got, &mine, why, sizeof(why)))
        return 0;
    pr_warn("--incoming %s: dropped a peer: %s; waiting for the next", uri, why);
    snprintf(in->why, sizeof(in->why), "%s", why);
    in_reply(in, -EINVAL);
    in->why[0] = '\0';
    return -EAGAIN;
}

static int accept_stream(struct mig_in *in, int lfd, const char *uri,
                         const struct migration_incoming_opts *o, struct mig_header *got)
{
    for (;;) {
        int ret = mig_accept(lfd, o->stop_fd, &in->fd);

        if (ret)
            return ret;
        ret = screen_peer(in, in->fd, uri, o, got);
        if (ret != -EAGAIN)
            return ret;
        close(in->fd);
        in->fd = -1;
    }
}

int migration_incoming_opts(const struct migration_host *host, const char *uri,
                            const struct migration_incoming_opts *o)
{
    struct mig_header got;
    struct mig_in in;
    int lfd, ret = mig_listen(uri, &lfd);

    in_init(&in, host);
    if (ret) {
        pr_err("--incoming %s: cannot listen: %s", uri, strerror(-ret));
        return ret;
    }
    pr_info("waiting for a migration on %s", uri);
    ret = accept_stream(&in, lfd, uri, o, &got);
    close(lfd);
    if (!strncmp(uri, "unix:", 5))
        unlink(uri + 5);
    if (ret) {
        if (in.fd >= 0)
            close(in.fd);
        pr_err("--incoming %s: %s", uri, ret == -ECANCELED ? "stopped" : strerror(-ret));
        return ret;
    }
    ret = in_receive(&in, in.fd, o, true, &got);
    if (ret != -ECANCELED)
        in_reply(&in, ret);
    close(in.fd);
    in_report(&in);
    if (ret)
        pr_err("incoming migration failed: %s", in.why);
    else
        in_report_done(&in);
    return ret;
}

int migration_incoming(const struct migration_host *host, const char *uri, int stop_fd)
{
    struct migration_incoming_opts o = {
        .stop_fd = stop_fd,
        .header_timeout_ms = MIGRATION_HEADER_TIMEOUT_MS,
        .idle_timeout_ms = MIGRATION_IDLE_TIMEOUT_MS,
    };

    return migration_incoming_opts(host, uri, &o);
}

int mig_receive_file(const struct migration_host *host, int fd, int stop_fd, char *why, size_t len)
{
    struct migration_incoming_opts o = {.stop_fd = stop_fd};
    struct mig_in in;
    int ret;

    in_init(&in, host);
    ret = in_receive(&in, fd, &o, false, NULL);
    snprintf(why, len, "%s", in.why);
    return ret;
}
