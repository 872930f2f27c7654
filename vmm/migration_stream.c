#include "migration_stream.h"

#include "../common/log.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/* One read(): bytes read, or -errno (-EPIPE at end of stream or on a reset). */
static ssize_t read_some(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ECONNRESET ? -EPIPE : -errno;
        return n ? n : -EPIPE;
    }
}

int mig_read(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = read_some(fd, p, len);

        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return 0;
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
    *rd = (struct mig_reader){.fd = fd, .cap = cap, .buf = malloc(cap)};
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
            return mig_read(rd->fd, p, len);
        n = read_some(rd->fd, rd->buf, rd->cap);
        if (n < 0)
            return (int)n;
        rd->pos = 0;
        rd->len = (size_t)n;
    }
    return 0;
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

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    if (!*path || strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    sa->sun_family = AF_UNIX;
    strcpy(sa->sun_path, path);
    return 0;
}

/* "tcp:HOST:PORT" -> host and port strings (the last colon splits, for IPv6 literals). */
static int split_tcp(const char *rest, char *host, size_t hlen, const char **port)
{
    const char *colon = strrchr(rest, ':');

    if (!colon || colon == rest || !colon[1] || (size_t)(colon - rest) >= hlen)
        return -EINVAL;
    memcpy(host, rest, (size_t)(colon - rest));
    host[colon - rest] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    *port = colon + 1;
    return 0;
}

static int tcp_socket(const char *rest, bool listening, int *fd)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = listening ? AI_PASSIVE : 0};
    struct addrinfo *res, *ai;
    const char *port;
    char host[256];
    int s = -1, err = EINVAL, one = 1;

    if (split_tcp(rest, host, sizeof(host), &port))
        return -EINVAL;
    if (getaddrinfo(host, port, &hints, &res))
        return -EHOSTUNREACH;
    for (ai = res; ai && s < 0; ai = ai->ai_next) {
        s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (s < 0)
            continue;
        if (listening)
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (listening ? bind(s, ai->ai_addr, ai->ai_addrlen) == 0 && listen(s, 1) == 0
                      : connect(s, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(s);
        s = -1;
    }
    freeaddrinfo(res);
    if (s < 0)
        return -err;
    *fd = s;
    return 0;
}

static int unix_socket(const char *path, bool listening, int *fd)
{
    struct sockaddr_un sa;
    struct stat st;
    int s, err = unix_addr(path, &sa);

    if (err)
        return err;
    if (listening && lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST; /* never replace a file that is not a socket */
        unlink(path);
    }
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (listening ? bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0
                  : connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        err = -errno;
        close(s);
        return err;
    }
    *fd = s;
    return 0;
}

static int open_uri(const char *uri, bool listening, int *fd)
{
    if (!strncmp(uri, "unix:", 5))
        return unix_socket(uri + 5, listening, fd);
    if (!strncmp(uri, "tcp:", 4))
        return tcp_socket(uri + 4, listening, fd);
    return -EINVAL;
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
