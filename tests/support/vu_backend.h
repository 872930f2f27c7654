/* A scripted fake vhost-user backend: a thread serving a list of sessions (one
 * connection each) on a Unix socket, or on one end of a socketpair. Each session
 * answers from its script (features, protocol features, memory slots, queue pairs,
 * ring bases) and may misbehave once: stall at a request, answer it with another
 * request's type or with wrong header flags, close the connection on it or after it.
 * Every message is recorded with the inode of the first fd it carried; the memory a
 * session is given is mapped and its first bytes kept (what the backend reads of the
 * guest); a dirty log it is given can be marked; the backend-request channel it is
 * given is kept for the test to speak on.
 *
 * The thread never fails the test itself (Check's asserts belong to the test's
 * thread): it records its error, which vu_backend_check turns into a failure. Two
 * threads share a session's records under the lock; accessors copy them out. */
#ifndef VMM_TESTS_VU_BACKEND_H
#define VMM_TESTS_VU_BACKEND_H

#include "vu_wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VU_MAX_SESSIONS 10
#define VU_MAX_RECORDS 64

enum vu_fault {
    VU_WELL,        /* answers everything, hangs up when the test asks */
    VU_STALL,       /* stops answering at `at` and waits for the frontend to give up */
    VU_WRONG_REPLY, /* answers `at` with another request's type */
    VU_WRONG_FLAGS, /* answers `at` with reply_flags in its header */
    VU_CLOSE,       /* closes the connection on `at`, without answering */
    VU_CLOSE_AFTER, /* answers `at`, then closes */
};

struct vu_record {
    uint32_t request, flags, size;
    uint8_t payload[64];
    int nfds;
    ino_t ino; /* the first fd's inode: which file came along */
};

struct vu_session {
    /* the script */
    enum vu_fault fault;
    uint32_t at;          /* the request the fault hits */
    uint32_t reply_flags; /* VU_WRONG_FLAGS: the header flags of that reply */
    uint64_t features;    /* GET_FEATURES */
    uint64_t protocol;    /* GET_PROTOCOL_FEATURES */
    uint64_t slots;       /* GET_MAX_MEM_SLOTS */
    uint64_t queues;      /* GET_QUEUE_NUM */
    uint32_t vring_base;  /* GET_VRING_BASE's num */
    bool mark_log;        /* sets the first byte of a log it is given (page 0 dirty) */
    const char *mem_mark; /* written at offset 64 of the memory it is given */
    /* what happened (read with the accessors) */
    struct vu_record records[VU_MAX_RECORDS];
    int nrecords;
    uint8_t status;       /* what SET_STATUS left (backend thread only) */
    int chan;             /* the backend-request channel SET_BACKEND_REQ_FD gave, or -1 */
    uint8_t mem_head[16]; /* the first bytes of the memory it was given, read through its fd */
    bool mem_mapped;
    uint64_t log_size; /* SET_LOG_BASE's mmap_size, once it came with an fd */
    bool log_marked;
    bool ended;
};

struct vu_backend {
    char path[108];           /* the socket; empty with a socketpair */
    int listen_fd;            /* the frontend connects here; -1: we connect to its socket */
    int pair_fd;              /* vu_backend_start_pair: the one connection, served once */
    int ctl;                  /* eventfd: hang up the current session, or stop */
    int reply_wait_ms;        /* bound on each part of a message (5000) */
    int idle_ms;              /* bound on waiting for a connection or a message (10000) */
    struct vu_session script; /* what vu_backend_add copies */
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_barrier_t ready;
    pthread_mutex_t lock; /* sessions: written by the backend thread, read by the test */
    struct vu_session s[VU_MAX_SESSIONS];
    int nsessions;
    char error[160];
};

/* The backend of the socket at path (path NULL: a socketpair's end, see start_pair). */
void vu_backend_init(struct vu_backend *be, const char *path);
/* Stops it and closes what it kept. */
void vu_backend_free(struct vu_backend *be);
/* A backend process appearing: its socket first (the frontend is the client). */
void vu_backend_listen(struct vu_backend *be, int backlog);
/* The next session, a copy of be->script with its fault; returns it for changes
 * before the start. */
struct vu_session *vu_backend_add(struct vu_backend *be, enum vu_fault fault, uint32_t at);
/* The thread: it accepts (listening), or connects to path (the frontend listens). */
void vu_backend_start(struct vu_backend *be);
/* The thread serves the first session on fd (a socketpair's end, owned from now). */
void vu_backend_start_pair(struct vu_backend *be, int fd);
/* Ends the current session. */
void vu_backend_hangup(struct vu_backend *be);
/* The backend process going away: no session left, its socket closed. */
void vu_backend_stop(struct vu_backend *be);

/* The test's view of session s. */
int vu_backend_nrecords(struct vu_backend *be, int s);
struct vu_record vu_backend_record(struct vu_backend *be, int s, int k); /* k must exist */
bool vu_backend_saw(struct vu_backend *be, int s, uint32_t request);
int vu_backend_find(struct vu_backend *be, int s, uint32_t request, int from); /* index or -1 */
bool vu_backend_ended(struct vu_backend *be, int s);
/* Waits up to ms for session s to end (the frontend hung up); whether it did. */
bool vu_backend_wait_ended(struct vu_backend *be, int s, int ms);
struct vu_session vu_backend_session(struct vu_backend *be, int s); /* a copy */
int vu_backend_chan(struct vu_backend *be, int s);                  /* or -1 */
void vu_backend_close_chan(struct vu_backend *be, int s);
/* Fails the test with the thread's error, if it had one. */
void vu_backend_check(struct vu_backend *be);

uint32_t vu_record_u32(const struct vu_record *r, size_t off);
uint64_t vu_record_u64(const struct vu_record *r, size_t off);

#endif
