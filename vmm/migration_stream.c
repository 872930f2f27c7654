#include "migration_stream.h"

#include "migration_resolve.h"
#include "../common/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Sends the iovecs, resuming after partial writes. MSG_NOSIGNAL: a vanished peer is
 * an error, not a SIGPIPE (files: writev). */
static int write_iov(int fd, struct iovec *iov, unsigned n)
{
    while (n) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);

        if (w < 0 && errno == ENOTSOCK)
            w = writev(fd, iov, (int)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno;
        while (n && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++, n--;
        }
        if (n) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

int mig_write(int fd, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

    return write_iov(fd, &iov, len ? 1 : 0);
}

/* Waits until fd has data: 0, -ECANCELED once stop_fd is readable, -ETIMEDOUT
 * after idle_ms (-1: no bound). A regular file is always readable. */
static int wait_readable(int fd, int stop_fd, int idle_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
    int n;

    if (stop_fd < 0 && idle_ms < 0)
        return 0;
    do
        n = poll(p, stop_fd >= 0 ? 2 : 1, idle_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (stop_fd >= 0 && p[1].revents)
        return -ECANCELED;
    return n ? 0 : -ETIMEDOUT;
}

/* One read(): bytes read, or -errno (-EPIPE at end of stream or on a reset). */
static ssize_t read_some(int fd, void *buf, size_t len, int stop_fd, int idle_ms)
{
    for (;;) {
        int ret = wait_readable(fd, stop_fd, idle_ms);
        ssize_t n;

        if (ret)
            return ret;
        n = read(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ECONNRESET ? -EPIPE : -errno;
        return n ? n : -EPIPE;
    }
}

static int read_all(int fd, void *buf, size_t len, int stop_fd, int idle_ms)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = read_some(fd, p, len, stop_fd, idle_ms);

        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mig_read(int fd, void *buf, size_t len)
{
    return read_all(fd, buf, len, -1, -1);
}

int mig_out_flush(struct mig_out *o)
{
    int ret = write_iov(o->fd, o->iov, o->niov);

    o->nrec = o->niov = 0;
    o->bytes = 0;
    return ret;
}

int mig_out_rec(struct mig_out *o, const struct mig_rec *rec, const void *payload, size_t len)
{
    int ret = 0;

    if (o->nrec == MIG_OUT_RECS || o->bytes >= MIG_OUT_BYTES)
        ret = mig_out_flush(o);
    if (ret)
        return ret;
    o->rec[o->nrec] = *rec;
    o->iov[o->niov++] = (struct iovec){.iov_base = &o->rec[o->nrec++], .iov_len = sizeof(*rec)};
    if (len)
        o->iov[o->niov++] = (struct iovec){.iov_base = (void *)payload, .iov_len = len};
    o->bytes += sizeof(*rec) + len;
    return 0;
}

int mig_reader_init(struct mig_reader *rd, int fd, size_t cap)
{
    *rd =
        (struct mig_reader){.fd = fd, .stop_fd = -1, .idle_ms = -1, .cap = cap, .buf = malloc(cap)};
    return rd->buf ? 0 : -ENOMEM;
}

void mig_reader_free(struct mig_reader *rd)
{
    free(rd->buf);
    rd->buf = NULL;
}

int mig_reader_read(struct mig_reader *rd, void *dst, size_t len)
{
    uint8_t *p = dst;

    while (len) {
        size_t have = rd->len - rd->pos;
        ssize_t n;

        if (have) {
            size_t take = have < len ? have : len;

            memcpy(p, rd->buf + rd->pos, take);
            rd->pos += take, p += take, len -= take;
            continue;
        }
        if (len >= rd->cap)
            return read_all(rd->fd, p, len, rd->stop_fd, rd->idle_ms);
        n = read_some(rd->fd, rd->buf, rd->cap, rd->stop_fd, rd->idle_ms);
        if (n < 0)
            return (int)n;
        rd->pos = 0;
        rd->len = (size_t)n;
    }
    return 0;
}

/* Refills at rate, holding at most a tenth of a second's worth while idle, so a
 * pause is not followed by a burst. Debt is allowed: a record goes whole. */
uint64_t mig_throttle_take(struct mig_throttle *t, uint64_t rate, uint64_t now_ns, size_t len)
{
    double burst = (double)rate / 10;

    if (!rate) {
        t->tokens = 0;
        t->last_ns = now_ns;
        return 0;
    }
    if (t->last_ns && now_ns > t->last_ns)
        t->tokens += (double)(now_ns - t->last_ns) * (double)rate / 1e9;
    t->last_ns = now_ns;
    if (t->tokens > burst)
        t->tokens = burst;
    t->tokens -= (double)len;
    return t->tokens >= 0 ? 0 : (uint64_t)(-t->tokens * 1e9 / (double)rate);
}

int mig_reader_read_some(struct mig_reader *rd, void *dst, size_t len)
{
    return (int)read_some(rd->fd, dst, len, rd->stop_fd, rd->idle_ms);
}

void mig_header_fill(struct mig_header *h, const struct guest_memory *mem, unsigned ncpus,
                     unsigned nnets, const unsigned *queue_pairs, uint32_t flags)
{
    memset(h, 0, sizeof(*h));
    memcpy(h->magic, MIG_MAGIC, sizeof(h->magic));
    h->version = MIG_VERSION;
    h->ncpus = ncpus;
    h->mem_size = mem->size;
    h->nregions = (uint32_t)mem->nregions;
    for (int i = 0; i < mem->nregions; i++) {
        h->regions[i].gpa = mem->regions[i].gpa;
        h->regions[i].size = mem->regions[i].size;
    }
    h->nnets = nnets;
    for (unsigned i = 0; i < nnets && i < MIG_MAX_NETS; i++)
        h->net_queue_pairs[i] = queue_pairs[i];
    h->flags = flags;
}

int mig_header_check(const struct mig_header *got, const struct mig_header *mine, char *why,
                     size_t len)
{
    if (memcmp(got->magic, MIG_MAGIC, sizeof(got->magic)))
        snprintf(why, len, "not a vmm migration stream (bad magic)");
    else if (got->version != MIG_VERSION)
        snprintf(why, len, "stream version %u, this vmm reads version %u", got->version,
                 MIG_VERSION);
    else if (got->mem_size != mine->mem_size)
        snprintf(why, len, "the source has %llu MiB of RAM, this VM %llu MiB (use --memory)",
                 (unsigned long long)(got->mem_size >> 20),
                 (unsigned long long)(mine->mem_size >> 20));
    else if (got->nregions != mine->nregions ||
             memcmp(got->regions, mine->regions, sizeof(got->regions)))
        snprintf(why, len, "the source's RAM layout differs from this VM's");
    else if (got->ncpus != mine->ncpus)
        snprintf(why, len, "the source has %u vCPUs, this VM %u (use --cpus)", got->ncpus,
                 mine->ncpus);
    else if (got->nnets != mine->nnets)
        snprintf(why, len, "the source has %u NICs, this VM %u (use --net)", got->nnets,
                 mine->nnets);
    else if (memcmp(got->net_queue_pairs, mine->net_queue_pairs, sizeof(got->net_queue_pairs)))
        snprintf(why, len, "the NICs' queue pairs differ from the source's (queues=)");
    else if (got->flags & ~MIG_F_VERIFY)
        snprintf(why, len, "unknown stream flags 0x%x", got->flags);
    else
        return 0;
    return -EINVAL;
}

static bool pages_in_ram(const struct guest_memory *mem, uint64_t gpa, uint64_t pages)
{
    if (!pages || pages > MIG_MAX_PAGES_PER_RECORD || (gpa & 4095))
        return false;
    for (int i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];

        if (gpa >= r->gpa && gpa - r->gpa <= r->size && pages * 4096 <= r->size - (gpa - r->gpa))
            return true;
    }
    return false;
}

int mig_rec_check(const struct mig_rec *r, const struct guest_memory *mem, char *why, size_t len)
{
    switch (r->type) {
    case MIG_REC_RAM:
    case MIG_REC_ZERO:
        if (pages_in_ram(mem, r->a, r->b))
            return 0;
        snprintf(why, len, "RAM record of %llu pages at 0x%llx is outside guest RAM",
                 (unsigned long long)r->b, (unsigned long long)r->a);
        return -EINVAL;
    case MIG_REC_VM:
    case MIG_REC_VCPU:
        if (r->b && r->b <= MIG_MAX_BLOB)
            return 0;
        break;
    case MIG_REC_DEVICE:
        if (r->a && r->a <= MIG_MAX_ID && r->b <= MIG_MAX_BLOB)
            return 0;
        break;
    case MIG_REC_VERIFY:
        if (r->a == mem->size / 4096)
            return 0;
        snprintf(why, len, "verify record has %llu pages, this VM %llu", (unsigned long long)r->a,
                 (unsigned long long)(mem->size / 4096));
        return -EINVAL;
    case MIG_REC_END:
        return 0;
    default:
        snprintf(why, len, "unknown record type %u", r->type);
        return -EINVAL;
    }
    snprintf(why, len, "record type %u has a bad size (%llu, %llu)", r->type,
             (unsigned long long)r->a, (unsigned long long)r->b);
    return -EINVAL;
}

int mig_device_id_check(const char *id, size_t id_len, char *why, size_t len)
{
    for (size_t i = 0; i < id_len; i++) {
        if (id[i] < 0x20 || id[i] > 0x7e) {
            snprintf(why, len, "a device record's id has byte 0x%02x at %zu (not printable)",
                     (unsigned char)id[i], i);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- sockets ---- */

static int stream_socket(const struct sockaddr_storage *ss, socklen_t len, bool listening, int *fd)
{
    int one = 1, err, s = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (s < 0)
        return -errno;
    if (listening && ss->ss_family != AF_UNIX)
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* A backlog of a few: a peer the destination drops is followed by the next. */
    if (listening ? bind(s, (const struct sockaddr *)ss, len) < 0 || listen(s, 4) < 0
                  : connect(s, (const struct sockaddr *)ss, len) < 0) {
        err = -errno;
        close(s);
        return err;
    }
    *fd = s;
    return 0;
}

static int open_uri(const char *uri, bool listening, int *fd)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct stat st;
    int ret = migration_uri_addr(uri, &ss, &len);

    if (ret)
        return ret;
    if (listening && ss.ss_family == AF_UNIX && lstat(uri + 5, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST; /* never replace a file that is not a socket */
        unlink(uri + 5);
    }
    return stream_socket(&ss, len, listening, fd);
}

int mig_connect(const char *uri, int *fd)
{
    return open_uri(uri, false, fd);
}

int mig_listen(const char *uri, int *listen_fd)
{
    return open_uri(uri, true, listen_fd);
}

int mig_accept(int listen_fd, int abort_fd, int *fd)
{
    struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN}, {.fd = abort_fd, .events = POLLIN}};

    for (;;) {
        int n = poll(p, abort_fd >= 0 ? 2 : 1, -1), s;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (p[1].revents)
            return -ECANCELED;
        s = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (s >= 0) {
            *fd = s;
            return 0;
        }
        if (errno != EINTR && errno != ECONNABORTED)
            return -errno;
    }
}
