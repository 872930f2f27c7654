/* The migration stream: a header, then records, then the destination's reply.
 * All integers are little-endian (x86 to x86). Pure I/O over an fd: unit-tested
 * over a socketpair and a file. */
#ifndef VMM_MIGRATION_STREAM_H
#define VMM_MIGRATION_STREAM_H

#include "memory.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define MIG_MAGIC "VMMMIGR\0"
#define MIG_REPLY_MAGIC "VMMMIGOK"
#define MIG_VERSION 1
#define MIG_MAX_NETS 4
#define MIG_MAX_PAGES_PER_RECORD 256 /* 1 MiB of RAM per record */
#define MIG_MAX_BLOB (16u << 20)     /* a device's or vCPU's state */
#define MIG_MAX_ID 63

/* What both ends must agree on before any page moves. */
struct mig_header {
    char magic[8];
    uint32_t version;
    uint32_t ncpus;
    uint64_t mem_size;
    uint32_t nregions;
    uint32_t nnets;
    struct {
        uint64_t gpa, size;
    } regions[GUEST_MEM_MAX_REGIONS];
    uint32_t net_queue_pairs[MIG_MAX_NETS];
    uint32_t flags; /* MIG_F_* */
    uint32_t reserved;
} __attribute__((packed));
#define MIG_F_VERIFY 0x1

enum mig_rec_type {
    MIG_REC_RAM = 1, /* a = gpa, b = pages; the pages follow */
    MIG_REC_ZERO,    /* a = gpa, b = pages that are all zero */
    MIG_REC_VM,      /* b = bytes of KVM VM state (irqchip, PIT, clock) */
    MIG_REC_VCPU,    /* a = vCPU index, b = bytes of its state */
    MIG_REC_DEVICE,  /* a = id length, b = state bytes; id then state follow */
    MIG_REC_VERIFY,  /* a = pages; one 64-bit hash per RAM page follows, in region order */
    MIG_REC_END,
};

struct mig_rec {
    uint32_t type;
    uint32_t reserved;
    uint64_t a, b;
} __attribute__((packed));

/* The destination's verdict. status 0: loaded (and verified when asked). */
struct mig_reply {
    char magic[8];
    int32_t status;
    uint32_t nfirst;
    uint64_t compared, differ;
    uint64_t first[8];
    char msg[200];
} __attribute__((packed));

/* Whole-buffer I/O: -errno, or -EPIPE when the peer closed (read: EOF). */
int mig_write(int fd, const void *buf, size_t len);
int mig_read(int fd, void *buf, size_t len);

/* Records queued for one sendmsg: a run of one-page records costs a system call per
 * batch, not two per page (expensive under nested virtualization). Payloads are
 * not copied: they must stay valid until the flush. */
#define MIG_OUT_RECS 64
#define MIG_OUT_BYTES (1u << 20)
struct mig_out {
    int fd;
    unsigned nrec, niov;
    size_t bytes;
    struct mig_rec rec[MIG_OUT_RECS];
    struct iovec iov[2 * MIG_OUT_RECS];
};
/* Queues a record (flushing first when the batch is full); 0 or -errno. */
int mig_out_rec(struct mig_out *o, const struct mig_rec *rec, const void *payload, size_t len);
int mig_out_flush(struct mig_out *o);

/* Buffered reads of the stream: a header and a page in one read(), not two. Large
 * reads go straight to their destination. */
struct mig_reader {
    int fd;
    int stop_fd; /* -1, or: readable ends every wait with -ECANCELED */
    int idle_ms; /* -1, or: a peer silent that long fails the read with -ETIMEDOUT */
    uint8_t *buf;
    size_t cap, pos, len;
};
/* Unbounded until the caller sets stop_fd and idle_ms. */
int mig_reader_init(struct mig_reader *rd, int fd, size_t cap);
void mig_reader_free(struct mig_reader *rd);
/* Like mig_read. */
int mig_reader_read(struct mig_reader *rd, void *dst, size_t len);
/* One wait and one read() of at most len bytes, past the buffer (which must be
 * empty): bytes read, or like mig_read. */
int mig_reader_read_some(struct mig_reader *rd, void *dst, size_t len);

/* max-bandwidth: a token bucket over the bytes the source queues. */
struct mig_throttle {
    double tokens;    /* bytes that may go now; negative: owed */
    uint64_t last_ns; /* CLOCK_MONOTONIC of the last take; 0: none yet */
};
/* Takes len bytes at rate bytes/s (0: unlimited) at now_ns; returns how long to
 * wait (ns) before sending them keeps to the rate. Pure: unit-tested. */
uint64_t mig_throttle_take(struct mig_throttle *t, uint64_t rate, uint64_t now_ns, size_t len);

void mig_header_fill(struct mig_header *h, const struct guest_memory *mem, unsigned ncpus,
                     unsigned nnets, const unsigned *queue_pairs, uint32_t flags);
/* 0 when `got` matches what this machine is; else -EINVAL with the first
 * difference named in why. */
int mig_header_check(const struct mig_header *got, const struct mig_header *mine, char *why,
                     size_t len);
/* Checks a record's type and sizes before its payload is read. */
int mig_rec_check(const struct mig_rec *r, const struct guest_memory *mem, char *why, size_t len);
/* A device record's id (the a bytes after the record): printable ASCII with no NUL, as
 * every device id is; it names the device in the destination's one error line. */
int mig_device_id_check(const char *id, size_t id_len, char *why, size_t len);

/* Opens the stream: the source connects (a tcp name is resolved here, by
 * migration_resolve), the destination listens then accepts (abort_fd readable,
 * e.g. a signalfd, gives up: -ECANCELED). unix:PATH or tcp:HOST:PORT. */
int mig_connect(const char *uri, int *fd);
int mig_listen(const char *uri, int *listen_fd);
int mig_accept(int listen_fd, int abort_fd, int *fd);

#endif
