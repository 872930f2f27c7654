#include "vu_backend.h"
#include "support.h"

#include "../../vhost/vhost_user.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void be_fail(struct vu_backend *be, const char *what)
{
    int err = errno;

    pthread_mutex_lock(&be->lock);
    if (!be->error[0])
        snprintf(be->error, sizeof(be->error), "back-end: %s: %s", what, strerror(err));
    pthread_mutex_unlock(&be->lock);
}

static int be_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void drain_ctl(int efd)
{
    uint64_t v;

    while (read(efd, &v, sizeof(v)) == sizeof(v))
        ;
}

/* The next connection: the socketpair's, accepted (the frontend is the client) or made
 * (the frontend is the server). */
static int be_open(struct vu_backend *be)
{
    int64_t deadline = support_now_ms() + be->idle_ms;

    if (be->pair_fd >= 0) {
        int fd = be->pair_fd;

        be->pair_fd = -1;
        return fd;
    }
    while (!atomic_load(&be->stop) && support_now_ms() < deadline) {
        struct pollfd p[2] = {{.fd = be->listen_fd, .events = POLLIN},
                              {.fd = be->ctl, .events = POLLIN}};
        int fd;

        if (be->listen_fd < 0) {
            fd = be_connect(be->path);
            if (fd >= 0)
                return fd;
            support_sleep_ms(5); /* the frontend's socket is not there yet */
            continue;
        }
        if (poll(p, 2, 100) <= 0)
            continue;
        if (p[1].revents)
            drain_ctl(be->ctl);
        if (p[0].revents & POLLIN)
            return accept4(be->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    }
    return -1;
}

/* True when fd has something (a message or EOF); false on hang-up, stop or idle timeout. */
static bool be_wait(struct vu_backend *be, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = be->ctl, .events = POLLIN}};

    if (poll(p, 2, be->idle_ms) <= 0)
        return false;
    if (p[1].revents) {
        drain_ctl(be->ctl);
        return false;
    }
    return !atomic_load(&be->stop);
}

/* SET_MEM_TABLE's first region and ADD_MEM_REG's one share the layout: size at 16,
 * mmap offset at 32. The backend reads the guest's first bytes through the fd, as a
 * real one would, and may leave its mark for the frontend to see. */
static void be_map_memory(struct vu_session *s, const struct vu_wire_msg *m)
{
    uint64_t size = vu_wire_u64(m, 16), off = vu_wire_u64(m, 32);
    uint8_t *p;

    if (size < 128 || off > UINT64_MAX - size)
        return;
    p = mmap(NULL, size + off, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[0], 0);
    if (p == MAP_FAILED)
        return;
    memcpy(s->mem_head, p + off, sizeof(s->mem_head));
    if (s->mem_mark)
        strcpy((char *)p + off + 64, s->mem_mark);
    munmap(p, size + off);
    s->mem_mapped = true;
}

/* SET_LOG_BASE: {mmap_size, mmap_offset} and the log's fd. */
static void be_take_log(struct vu_session *s, const struct vu_wire_msg *m)
{
    uint64_t size = vu_wire_u64(m, 0), off = vu_wire_u64(m, 8);
    uint8_t *log;

    s->log_size = size;
    if (!s->mark_log || !size || off > UINT64_MAX - size)
        return;
    log = mmap(NULL, size + off, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[0], 0);
    if (log == MAP_FAILED)
        return;
    log[off] |= 1; /* guest page 0 written */
    munmap(log, size + off);
    s->log_marked = true;
}

static void be_look_at_fds(struct vu_backend *be, struct vu_session *s, const struct vu_wire_msg *m)
{
    bool mem = m->request == VHOST_USER_SET_MEM_TABLE || m->request == VHOST_USER_ADD_MEM_REG;

    if (!m->nfds)
        return;
    pthread_mutex_lock(&be->lock);
    if (mem && m->size >= 40)
        be_map_memory(s, m);
    if (m->request == VHOST_USER_SET_LOG_BASE && m->size >= 16)
        be_take_log(s, m);
    pthread_mutex_unlock(&be->lock);
}

/* Recorded, and its fds closed, before it is answered: once the frontend has the answer,
 * the test sees the message and the backend holds no fd of it. */
static void be_record(struct vu_backend *be, struct vu_session *s, struct vu_wire_msg *m)
{
    struct stat st = {0};

    if (m->nfds)
        fstat(m->fds[0], &st);
    be_look_at_fds(be, s, m);
    pthread_mutex_lock(&be->lock);
    if (s->nrecords < VU_MAX_RECORDS) {
        struct vu_record *r = &s->records[s->nrecords++];

        *r = (struct vu_record){
            .request = m->request, .flags = m->flags, .size = m->size, .nfds = m->nfds};
        r->ino = st.st_ino;
        memcpy(r->payload, m->payload, sizeof(r->payload));
    }
    if (m->request == VHOST_USER_SET_BACKEND_REQ_FD && m->nfds == 1 && s->chan < 0) {
        s->chan = m->fds[0]; /* kept: the test speaks on it */
        m->fds[0] = -1;
    }
    pthread_mutex_unlock(&be->lock);
    vu_wire_close_fds(m);
}

/* The value a request with a reply of its own gets, or false for one without. */
static bool be_reply_value(struct vu_session *s, const struct vu_wire_msg *m, uint64_t *v)
{
    switch (m->request) {
    case VHOST_USER_GET_FEATURES:
        *v = s->features;
        return true;
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        *v = s->protocol;
        return true;
    case VHOST_USER_GET_STATUS:
        *v = s->status;
        return true;
    case VHOST_USER_GET_MAX_MEM_SLOTS:
        *v = s->slots;
        return true;
    case VHOST_USER_GET_QUEUE_NUM:
        *v = s->queues;
        return true;
    case VHOST_USER_GET_VRING_BASE: /* {index, num} */
        *v = (uint64_t)s->vring_base << 32 | vu_wire_u32(m, 0);
        return true;
    case VHOST_USER_SET_LOG_BASE: /* the spec's reply to it, with LOG_SHMFD */
        *v = 0;
        return true;
    default:
        *v = 0; /* an ack, when asked for one */
        return m->flags & VU_WIRE_FL_NEED_REPLY;
    }
}

static int be_answer(struct vu_session *s, int fd, const struct vu_wire_msg *m, bool faulty)
{
    uint32_t type = m->request, flags = VU_WIRE_FL_REPLY;
    uint64_t v;

    if (m->request == VHOST_USER_SET_STATUS)
        s->status = m->payload[0];
    if (!be_reply_value(s, m, &v))
        return 0;
    if (faulty && s->fault == VU_WRONG_REPLY)
        type = type == VHOST_USER_GET_FEATURES ? VHOST_USER_GET_PROTOCOL_FEATURES
                                               : VHOST_USER_GET_FEATURES;
    if (faulty && s->fault == VU_WRONG_FLAGS)
        flags = s->reply_flags;
    return vu_wire_send(fd, type, flags, 8, &v, 8, NULL, 0);
}

static void be_serve(struct vu_backend *be, struct vu_session *s, int fd)
{
    struct vu_wire_msg m;

    while (be_wait(be, fd) && vu_wire_recv(fd, &m, be->reply_wait_ms) == 0) {
        bool hit = s->fault != VU_WELL && m.request == s->at;

        be_record(be, s, &m);
        if (hit && s->fault == VU_CLOSE)
            return;
        if (hit && s->fault == VU_STALL) {
            be_wait(be, fd); /* until the frontend gives up and closes */
            return;
        }
        if (be_answer(s, fd, &m, hit)) {
            be_fail(be, "cannot answer");
            return;
        }
        if (hit && s->fault == VU_CLOSE_AFTER)
            return;
    }
}

static void *be_main(void *arg)
{
    struct vu_backend *be = arg;
    bool pair = be->pair_fd >= 0;

    pthread_barrier_wait(&be->ready);
    for (int i = 0; i < be->nsessions && !atomic_load(&be->stop); i++) {
        int fd = be_open(be);

        if (fd < 0) {
            if (!atomic_load(&be->stop))
                be_fail(be, "no connection from the frontend");
            break;
        }
        be_serve(be, &be->s[i], fd);
        close(fd);
        pthread_mutex_lock(&be->lock);
        be->s[i].ended = true;
        pthread_mutex_unlock(&be->lock);
        if (pair)
            break; /* a socketpair is one connection */
    }
    return NULL;
}

void vu_backend_init(struct vu_backend *be, const char *path)
{
    memset(be, 0, sizeof(*be));
    pthread_mutex_init(&be->lock, NULL);
    if (path)
        snprintf(be->path, sizeof(be->path), "%s", path);
    be->listen_fd = -1;
    be->pair_fd = -1;
    be->reply_wait_ms = 5000;
    be->idle_ms = 10000;
    be->script = (struct vu_session){.queues = 1, .slots = 8};
    be->ctl = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (be->ctl < 0)
        support_fail("back-end: eventfd: %s", strerror(errno));
}

void vu_backend_listen(struct vu_backend *be, int backlog)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", be->path);
    unlink(be->path);
    be->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (be->listen_fd < 0 || bind(be->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
        listen(be->listen_fd, backlog))
        support_fail("back-end: cannot listen on %s: %s", be->path, strerror(errno));
}

struct vu_session *vu_backend_add(struct vu_backend *be, enum vu_fault fault, uint32_t at)
{
    struct vu_session *s;

    if (be->nsessions == VU_MAX_SESSIONS)
        support_fail("back-end: more than %d sessions", VU_MAX_SESSIONS);
    s = &be->s[be->nsessions++];
    *s = be->script;
    s->fault = fault;
    s->at = at;
    s->chan = -1;
    return s;
}

void vu_backend_start(struct vu_backend *be)
{
    pthread_barrier_init(&be->ready, NULL, 2);
    if (pthread_create(&be->thread, NULL, be_main, be))
        support_fail("back-end: cannot start its thread");
    be->running = true;
    pthread_barrier_wait(&be->ready);
    pthread_barrier_destroy(&be->ready);
}

void vu_backend_start_pair(struct vu_backend *be, int fd)
{
    be->pair_fd = fd;
    vu_backend_start(be);
}

void vu_backend_hangup(struct vu_backend *be)
{
    uint64_t one = 1;

    if (write(be->ctl, &one, sizeof(one)) != sizeof(one))
        support_fail("back-end: cannot signal its thread: %s", strerror(errno));
}

void vu_backend_stop(struct vu_backend *be)
{
    if (be->running) {
        atomic_store(&be->stop, true);
        vu_backend_hangup(be);
        pthread_join(be->thread, NULL);
        be->running = false;
    }
    if (be->listen_fd >= 0)
        close(be->listen_fd);
    be->listen_fd = -1;
    if (be->pair_fd >= 0)
        close(be->pair_fd); /* never served */
    be->pair_fd = -1;
}

void vu_backend_free(struct vu_backend *be)
{
    vu_backend_stop(be);
    for (int i = 0; i < be->nsessions; i++)
        if (be->s[i].chan >= 0)
            close(be->s[i].chan);
    if (be->ctl >= 0)
        close(be->ctl);
    be->ctl = -1;
    pthread_mutex_destroy(&be->lock);
}

/* nsessions changes only on the test's thread, before the start: no lock to read it. */
static struct vu_session *session(struct vu_backend *be, int s)
{
    if (s < 0 || s >= be->nsessions)
        support_fail("back-end: no session %d (%d scripted)", s, be->nsessions);
    return &be->s[s];
}

int vu_backend_nrecords(struct vu_backend *be, int s)
{
    struct vu_session *x = session(be, s);
    int n;

    pthread_mutex_lock(&be->lock);
    n = x->nrecords;
    pthread_mutex_unlock(&be->lock);
    return n;
}

struct vu_record vu_backend_record(struct vu_backend *be, int s, int k)
{
    struct vu_session *x = session(be, s);
    struct vu_record r;
    int n;

    pthread_mutex_lock(&be->lock);
    n = x->nrecords;
    if (k >= 0 && k < n)
        r = x->records[k];
    pthread_mutex_unlock(&be->lock);
    if (k < 0 || k >= n)
        support_fail("back-end: session %d has %d messages, no message %d", s, n, k);
    return r;
}

int vu_backend_find(struct vu_backend *be, int s, uint32_t request, int from)
{
    struct vu_session *x = session(be, s);
    int found = -1;

    pthread_mutex_lock(&be->lock);
    for (int k = from < 0 ? 0 : from; k < x->nrecords && found < 0; k++)
        if (x->records[k].request == request)
            found = k;
    pthread_mutex_unlock(&be->lock);
    return found;
}

bool vu_backend_saw(struct vu_backend *be, int s, uint32_t request)
{
    return vu_backend_find(be, s, request, 0) >= 0;
}

bool vu_backend_ended(struct vu_backend *be, int s)
{
    struct vu_session *x = session(be, s);
    bool ended;

    pthread_mutex_lock(&be->lock);
    ended = x->ended;
    pthread_mutex_unlock(&be->lock);
    return ended;
}

bool vu_backend_wait_ended(struct vu_backend *be, int s, int ms)
{
    int64_t deadline = support_now_ms() + ms;

    while (!vu_backend_ended(be, s) && support_now_ms() < deadline)
        support_sleep_ms(1);
    return vu_backend_ended(be, s);
}

struct vu_session vu_backend_session(struct vu_backend *be, int s)
{
    struct vu_session *x = session(be, s), copy;

    pthread_mutex_lock(&be->lock);
    copy = *x;
    pthread_mutex_unlock(&be->lock);
    return copy;
}

int vu_backend_chan(struct vu_backend *be, int s)
{
    struct vu_session *x = session(be, s);
    int fd;

    pthread_mutex_lock(&be->lock);
    fd = x->chan;
    pthread_mutex_unlock(&be->lock);
    return fd;
}

void vu_backend_close_chan(struct vu_backend *be, int s)
{
    struct vu_session *x = session(be, s);

    pthread_mutex_lock(&be->lock);
    if (x->chan >= 0)
        close(x->chan);
    x->chan = -1;
    pthread_mutex_unlock(&be->lock);
}

void vu_backend_check(struct vu_backend *be)
{
    char error[sizeof(be->error)];

    pthread_mutex_lock(&be->lock);
    memcpy(error, be->error, sizeof(error));
    pthread_mutex_unlock(&be->lock);
    if (error[0])
        support_fail("%s", error);
}

uint32_t vu_record_u32(const struct vu_record *r, size_t off)
{
    return vu_wire_load32(r->payload, off);
}

uint64_t vu_record_u64(const struct vu_record *r, size_t off)
{
    return vu_wire_load64(r->payload, off);
}
