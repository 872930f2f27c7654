/*
 * virtio-net's vhost-user reconnect, end to end on the event loop: the real device model
 * against scripted fake back-ends on a real Unix socket (tests/support/vu_backend). The test
 * thread is the event-loop thread, as vmm's main thread is, and pumps the loop itself; each
 * back-end is a thread serving a list of sessions (one connection each) that can hang up,
 * stall, answer with the wrong request, close in the middle of activation or lack a feature
 * the guest uses. What vmm logs goes to a memfd and is checked line by line. Wire layouts
 * are read at literal offsets. The last cases are the scenarios of QEMU's
 * tests/qtest/vhost-user-test.c (flags-mismatch, connect-fail, reconnect, migrate,
 * multiqueue) as vmm meets them.
 */
#include "../../common/log.h"
#include "../../devices/virtio_net.h"
#include "../../common/event_loop.h"

#include "../support/fake_platform.h"
#include "../support/guest_mem.h"
#include "../support/vu_backend.h"
#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BIT(n) (1ULL << (n))
#define MEM_SIZE (1u << 20)
#define QSIZE 64
#define NQ 3     /* one queue pair and the control queue */
#define MAX_NQ 5 /* two queue pairs and the control queue: the multiqueue cases */
#define DESC(q) (0x10000ULL + (q)*0x4000ULL)
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q) (DESC(q) + 0x2000)
#define MTU 1500
/* Replies get a generous bound, as a loaded machine may be slow to run the back-end;
 * the attempts meant to stall get a short one (vmm reads it at each connection). */
#define REPLY_TIMEOUT_MS 3000
#define STALL_TIMEOUT_MS 400
#define RECONNECT_MS 50
#define WAIT_MS 5000     /* bound on waiting for what should happen soon */
#define BE_IDLE_MS 10000 /* the watchdog's bound, as the back-end's idle one */

#define BACKEND_FEATURES                                                                           \
    (BIT(VIRTIO_F_VERSION_1) | BIT(VHOST_USER_F_PROTOCOL_FEATURES) | BIT(VIRTIO_NET_F_MRG_RXBUF) | \
     BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_HOST_TSO4))
#define BACKEND_PROTOCOL                                                                           \
    (BIT(VHOST_USER_PROTOCOL_F_MQ) | BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) |                        \
     BIT(VHOST_USER_PROTOCOL_F_MTU))
#define GUEST_FEATURES                                                                             \
    (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_CSUM) |              \
     BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_CTRL_VQ) |                \
     BIT(VIRTIO_NET_F_MTU))
/* What the rings run with: acked, offered and data-path, plus the protocol bit. */
#define RING_FEATURES                                                                              \
    (BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_CSUM) |              \
     BIT(VHOST_USER_F_PROTOCOL_FEATURES))

/* --- the fake back-ends (tests/support/vu_backend) ---------------------------------------- */

static char sock_path[108];

/* Every session answers as a backend offering BACKEND_PROTOCOL with 8 memory slots. */
static void be_init(struct vu_backend *be)
{
    vu_backend_init(be, sock_path);
    be->script.protocol = BACKEND_PROTOCOL;
    be->script.slots = 8;
}

static void be_listen(struct vu_backend *be)
{
    vu_backend_listen(be, 8);
}

static struct vu_session *be_add(struct vu_backend *be, enum vu_fault fault, uint32_t at,
                                 uint64_t features)
{
    struct vu_session *s = vu_backend_add(be, fault, at);

    s->features = features;
    return s;
}

/* A well-behaved session offering more protocol features, with `slots` memory slots. */
static struct vu_session *be_add_protocol(struct vu_backend *be, uint64_t protocol, uint64_t slots)
{
    struct vu_session *s = be_add(be, VU_WELL, 0, BACKEND_FEATURES);

    s->protocol = protocol;
    s->slots = slots;
    return s;
}

static void drain(int efd)
{
    uint64_t v;

    while (read(efd, &v, sizeof(v)) == sizeof(v))
        ;
}

/* --- vmm's side: loop, platform, guest memory, captured log -------------------------------- */

static struct event_loop loop;
static struct fake_platform fp; /* virtio-net makes no KVM call: the transport does */
static struct guest_mem ram;    /* a memfd at guest-physical 0, as the backend maps it */
static struct virtio_net_options opts;
static struct virtio_net net;
static bool net_up;
static struct vu_backend bes[2];
static char dir[64];
static int kick[MAX_NQ], call[MAX_NQ];
static unsigned config_irqs;
static int log_fd = -1, saved_stderr = -1;

#define pump_until(cond, ms)                                                                       \
    do {                                                                                           \
        int64_t deadline_ = support_now_ms() + (ms);                                               \
        while (!(cond)) {                                                                          \
            ck_assert_msg(support_now_ms() < deadline_, "still not (%s) after %d ms", #cond,       \
                          (int)(ms));                                                              \
            ck_assert_int_ge(event_loop_run_once(&loop, 5), 0);                                    \
        }                                                                                          \
    } while (0)

/* Runs the loop for ms whatever happens: for what must not happen. */
static void pump_for(int ms)
{
    int64_t deadline = support_now_ms() + ms;

    while (support_now_ms() < deadline)
        ck_assert_int_ge(event_loop_run_once(&loop, 5), 0);
}

static void count_config_irq(void *transport)
{
    (void)transport;
    config_irqs++;
}

static const struct virtio_transport_ops transport_ops = {.notify_config = count_config_irq};

/* Everything vmm logs since the test began. */
static const char *logged(void)
{
    static char buf[1 << 16];
    ssize_t n = pread(log_fd, buf, sizeof(buf) - 1, 0);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static int count_in(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Fails unless the formatted line was logged exactly `times` times. */
__attribute__((format(printf, 2, 3))) static void expect_logged(int times, const char *fmt, ...)
{
    char needle[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(needle, sizeof(needle), fmt, ap);
    va_end(ap);
    ck_assert_msg(count_in(logged(), needle) == times,
                  "'%s' logged %d times, expected %d; log:\n%s", needle, count_in(logged(), needle),
                  times, logged());
}

static int log_lines(void)
{
    return count_in(logged(), "\n");
}

static void setup(void)
{
    fflush(stderr);
    log_fd = memfd_create("vmm-log", MFD_CLOEXEC);
    saved_stderr = dup(2);
    ck_assert_int_ge(log_fd, 0);
    ck_assert_int_ge(dup2(log_fd, 2), 0);
    strcpy(dir, "/tmp/vmm-net-reconnect-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/vhost.sock", dir);
    guest_mem_init_shared(&ram, 0, MEM_SIZE);
    ck_assert_int_eq(event_loop_init(&loop), 0);
    fake_platform_init(&fp);
    fp.forbid = FAKE_KVM_CALLS;
    fp.who = "virtio-net";
    fp.loop = &loop;
    fp.mem = &ram;
    opts = (struct virtio_net_options){.queue_pairs = 1,
                                       .mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
                                       .mtu = MTU,
                                       .connect_timeout_ms = WAIT_MS,
                                       .reply_timeout_ms = REPLY_TIMEOUT_MS,
                                       .reconnect_ms = RECONNECT_MS};
    strcpy(opts.socket_path, sock_path);
    for (int q = 0; q < MAX_NQ; q++) {
        kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(kick[q], 0);
        ck_assert_int_ge(call[q], 0);
    }
    for (int i = 0; i < 2; i++)
        be_init(&bes[i]);
    config_irqs = 0;
    net_up = false;
}

static void teardown(void)
{
    const char *log;

    for (int i = 0; i < 2; i++)
        vu_backend_free(&bes[i]);
    if (net_up)
        virtio_net_destroy(&net);
    event_loop_destroy(&loop);
    for (int q = 0; q < MAX_NQ; q++) {
        close(kick[q]);
        close(call[q]);
    }
    fake_platform_destroy(&fp);
    guest_mem_destroy(&ram);
    unlink(sock_path);
    rmdir(dir);
    log = logged();
    /* The log goes to the real stderr too: ctest shows it when a test fails. */
    dup2(saved_stderr, 2);
    close(saved_stderr);
    if (write(2, log, strlen(log)) < 0)
        perror("write");
    close(log_fd);
}

/* --- steps --------------------------------------------------------------------------------- */

static bool link_started;
static int link_start_ret;

static void on_link_started(void *arg, int ret)
{
    (void)arg;
    link_started = true;
    link_start_ret = ret;
}

/* vmm's start: the NIC, then its first backend, waited for on its loop. */
static void net_begin(void)
{
    ck_assert_int_eq(virtio_net_init(&net, "net0", &opts, &fp.ops, &ram.access, &loop), 0);
    net_up = true;
    net.vdev.transport_ops = &transport_ops;
    link_started = false;
    ck_assert_int_eq(virtio_net_start_link(&net, on_link_started, NULL), 0);
}

/* The start, its loop pumped here until the first backend came or the start failed. */
static int net_start_ret(void)
{
    net_begin();
    pump_until(link_started, WAIT_MS + 1000);
    return link_start_ret;
}

static void net_start(void)
{
    ck_assert_int_eq(net_start_ret(), 0);
    ck_assert(net.connected);
}

/* The guest's driver: nq queues' rings in guest memory, features acked, DRIVER_OK. */
static void guest_start_queues(int nq, uint64_t features)
{
    for (int q = 0; q < nq; q++) {
        struct virtio_queue *vq = &net.vdev.queues[q];

        vq->size = QSIZE;
        vq->desc = DESC(q);
        vq->avail = AVAIL(q);
        vq->used = USED(q);
        vq->enabled = true;
        vq->kick_fd = kick[q];
        vq->call_fd = call[q];
    }
    net.vdev.acked_features = features;
    ck_assert_int_eq(net.vdev.ops->activate(&net.vdev), 0);
    ck_assert_int_eq(net.phase, NET_RUNNING);
}

static void guest_start(void)
{
    guest_start_queues(NQ, GUEST_FEATURES);
}

/* The guest's driver consuming used entries: the used index it has reached. */
static void set_used_idx(int q, uint16_t idx)
{
    guest_put16(&ram, USED(q) + 2, idx);
}

static bool link_up(void)
{
    uint16_t status;

    net.vdev.ops->config_read(&net.vdev, 6, (uint8_t *)&status, 2);
    return status & VIRTIO_NET_S_LINK_UP;
}

static uint64_t read_kick(int q)
{
    uint64_t v = 0;

    return read(kick[q], &v, sizeof(v)) == sizeof(v) ? v : 0;
}

static void drain_kicks(void)
{
    for (int q = 0; q < NQ; q++)
        drain(kick[q]);
}

/* The back-end closes while idle; vmm sees it on the loop: link down, positions kept. */
static void lose_backend(struct vu_backend *be)
{
    unsigned irqs = config_irqs;

    vu_backend_hangup(be);
    pump_until(!net.connected, WAIT_MS);
    ck_assert(!link_up());
    vu_backend_stop(be);
    pump_until(config_irqs == irqs + 1, WAIT_MS);
}

/* vmm back on a back-end: link up, announced, one kick per data ring, none for the
 * control queue vmm serves itself. */
static void expect_back(unsigned reconnects)
{
    unsigned irqs = config_irqs;

    pump_until(net.connected, WAIT_MS);
    ck_assert(link_up());
    ck_assert_uint_eq(net.reconnects, reconnects);
    pump_until(config_irqs == irqs + 1, WAIT_MS);
    expect_logged(1, "net0: vhost-user backend back on %s (reconnect %u): link up", sock_path,
                  reconnects);
    ck_assert_uint_eq(read_kick(0), 1);
    ck_assert_uint_eq(read_kick(1), 1);
    ck_assert_uint_eq(read_kick(2), 0);
}

/* --- what a back-end must have received ---------------------------------------------------- */

static const uint32_t handshake[] = {VHOST_USER_GET_FEATURES, VHOST_USER_GET_PROTOCOL_FEATURES,
                                     VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_GET_QUEUE_NUM,
                                     VHOST_USER_SET_OWNER};
#define NHANDSHAKE 5
#define RING_MSGS 5 /* NUM, ADDR, BASE, KICK, CALL */
#define NSTART (3 + 2 * RING_MSGS + 2)

/* The k-th message of session s is `request`; returns it. */
static struct vu_record expect_msg(struct vu_backend *be, int s, int k, uint32_t request)
{
    struct vu_record m = vu_backend_record(be, s, k);

    ck_assert_msg(m.request == request, "session %d message %d is %s, expected %s", s, k,
                  vhost_user_request_name(m.request), vhost_user_request_name(request));
    return m;
}

static void expect_handshake(struct vu_backend *be, int s)
{
    struct vu_record set_protocol;

    for (int k = 0; k < NHANDSHAKE; k++)
        expect_msg(be, s, k, handshake[k]);
    set_protocol = vu_backend_record(be, s, 2);
    ck_assert_uint_eq(vu_record_u64(&set_protocol, 0), BACKEND_PROTOCOL);
    /* REPLY_ACK is in force from the request after SET_PROTOCOL_FEATURES. */
    ck_assert_uint_eq(set_protocol.flags & VU_WIRE_FL_NEED_REPLY, 0);
    ck_assert_uint_eq(vu_backend_record(be, s, 4).flags & VU_WIRE_FL_NEED_REPLY,
                      VU_WIRE_FL_NEED_REPLY);
}

static void expect_vring(struct vu_backend *be, int s, int k, unsigned q, uint16_t base)
{
    struct vu_record m = expect_msg(be, s, k, VHOST_USER_SET_VRING_NUM);

    ck_assert_uint_eq(vu_record_u32(&m, 0), q);
    ck_assert_uint_eq(vu_record_u32(&m, 4), QSIZE);
    m = expect_msg(be, s, k + 1, VHOST_USER_SET_VRING_ADDR);
    ck_assert_uint_eq(vu_record_u32(&m, 0), q);
    ck_assert_uint_eq(vu_record_u64(&m, 8), (uintptr_t)ram.buf + DESC(q));
    ck_assert_uint_eq(vu_record_u64(&m, 16), (uintptr_t)ram.buf + USED(q));
    ck_assert_uint_eq(vu_record_u64(&m, 24), (uintptr_t)ram.buf + AVAIL(q));
    m = expect_msg(be, s, k + 2, VHOST_USER_SET_VRING_BASE);
    ck_assert_uint_eq(vu_record_u32(&m, 0), q);
    ck_assert_msg(vu_record_u32(&m, 4) == base, "queue %u restarted at %u, expected %u", q,
                  vu_record_u32(&m, 4), base);
    m = expect_msg(be, s, k + 3, VHOST_USER_SET_VRING_KICK);
    ck_assert_uint_eq(vu_record_u64(&m, 0), q);
    ck_assert_int_eq(m.nfds, 1);
    m = expect_msg(be, s, k + 4, VHOST_USER_SET_VRING_CALL);
    ck_assert_uint_eq(vu_record_u64(&m, 0), q);
    ck_assert_int_eq(m.nfds, 1);
}

/* Features, MTU, the memory table, each data ring from its base, both enabled. */
static void expect_rings_started(struct vu_backend *be, int s, uint16_t base0, uint16_t base1)
{
    struct stat st;
    struct vu_record m = expect_msg(be, s, NHANDSHAKE, VHOST_USER_SET_FEATURES);
    int k = NHANDSHAKE + 3;

    ck_assert_uint_eq(vu_record_u64(&m, 0), RING_FEATURES);
    m = expect_msg(be, s, NHANDSHAKE + 1, VHOST_USER_NET_SET_MTU);
    ck_assert_uint_eq(vu_record_u64(&m, 0), MTU);
    m = expect_msg(be, s, NHANDSHAKE + 2, VHOST_USER_SET_MEM_TABLE);
    ck_assert_int_eq(fstat(ram.fd, &st), 0);
    ck_assert_int_eq(m.nfds, 1);
    ck_assert_uint_eq(m.ino, st.st_ino);
    ck_assert_uint_eq(vu_record_u32(&m, 0), 1);
    ck_assert_uint_eq(vu_record_u64(&m, 8), 0);
    ck_assert_uint_eq(vu_record_u64(&m, 16), MEM_SIZE);
    ck_assert_uint_eq(vu_record_u64(&m, 24), (uintptr_t)ram.buf);
    expect_vring(be, s, k, 0, base0);
    expect_vring(be, s, k + RING_MSGS, 1, base1);
    for (int q = 0; q < 2; q++) {
        m = expect_msg(be, s, k + 2 * RING_MSGS + q, VHOST_USER_SET_VRING_ENABLE);
        ck_assert_uint_eq(vu_record_u32(&m, 0), q);
        ck_assert_uint_eq(vu_record_u32(&m, 4), 1);
    }
    for (int i = NHANDSHAKE; i < NHANDSHAKE + NSTART; i++)
        ck_assert_uint_eq(vu_backend_record(be, s, i).flags & VU_WIRE_FL_NEED_REPLY,
                          VU_WIRE_FL_NEED_REPLY);
}

/* A whole session: the handshake and the rings, nothing else. */
static void expect_session(struct vu_backend *be, int s, uint16_t base0, uint16_t base1)
{
    vu_backend_check(be);
    ck_assert_int_eq(vu_backend_nrecords(be, s), NHANDSHAKE + NSTART);
    expect_handshake(be, s);
    expect_rings_started(be, s, base0, base1);
}

/* A client-mode vmm whose guest runs on the first back-end, which then goes away with
 * the guest at used index base0/base1. */
static void running_then_lost(uint16_t base0, uint16_t base1)
{
    struct vu_backend *a = &bes[0];

    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    guest_start();
    expect_session(a, 0, 0, 0);
    ck_assert(link_up());
    set_used_idx(0, base0);
    set_used_idx(1, base1);
    lose_backend(a);
    ck_assert_uint_eq(net.ring_base[0], base0);
    ck_assert_uint_eq(net.ring_base[1], base1);
    expect_logged(1,
                  "net0: vhost-user backend on %s lost (it closed the connection): link down, "
                  "reconnecting every %d ms",
                  sock_path, RECONNECT_MS);
}

/* --- scenarios ----------------------------------------------------------------------------- */

START_TEST(idle_hangup_restarts_rings_where_the_guest_left_them)
{
    struct vu_backend *b = &bes[1];
    int lines;

    running_then_lost(1234, 65535);
    /* No back-end at all for a while: silent retries, the link stays down. */
    lines = log_lines();
    pump_for(4 * RECONNECT_MS);
    ck_assert(!net.connected);
    ck_assert(!link_up());
    ck_assert_uint_eq(config_irqs, 1);
    ck_assert_int_eq(log_lines(), lines);
    drain_kicks();
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    expect_back(1);
    expect_session(b, 0, 1234, 65535);
    /* The new back-end is watched like the first. */
    lose_backend(b);
    ck_assert_uint_eq(net.ring_base[0], 1234);
    expect_logged(0, "error:");
}
END_TEST

/* --- packed rings: where each ring restarts comes from the descriptor ring -------------- */

#define PACKED_BITS (BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_F_RING_INDIRECT_DESC))

/* The SET_VRING_BASE session s of be gave ring q, or -1 when it gave none. */
static int64_t packed_base_sent(struct vu_backend *be, int s, unsigned q)
{
    for (int k = 0; k < vu_backend_nrecords(be, s); k++) {
        struct vu_record m = vu_backend_record(be, s, k);

        if (m.request == VHOST_USER_SET_VRING_BASE && vu_record_u32(&m, 0) == q)
            return vu_record_u32(&m, 4);
    }
    return -1;
}

/* Ring q as a driver and an in-order device left it: `used` one-entry buffers used in
 * lap 1, then `avail` available ones, with extra flags on those. */
static void lay_packed_ring(int q, unsigned used, unsigned avail, uint16_t extra)
{
    for (unsigned i = 0; i < used + avail; i++) {
        uint16_t f = 0x80 /* AVAIL */ | (i < used ? 0x8000 /* USED */ : extra);

        guest_put16(&ram, DESC(q) + 16 * i + 14, f);
    }
}

/* The guest's driver starts packed rings on be, a well-behaved back-end, and each ring's
 * base has gone to it. */
static void packed_guest_running_on(struct vu_backend *be)
{
    be_listen(be);
    be_add(be, VU_WELL, 0, BACKEND_FEATURES | PACKED_BITS);
    vu_backend_start(be);
    net_start();
    guest_start_queues(NQ, GUEST_FEATURES | PACKED_BITS);
    pump_until(packed_base_sent(be, 0, 1) >= 0, WAIT_MS);
}

/* The guest runs packed rings on the first back-end, which dies; the next one starts
 * each ring where the descriptor ring says the dead one stopped. */
START_TEST(packed_rings_restart_where_the_descriptor_ring_says)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];

    packed_guest_running_on(a);
    ck_assert_int_eq(packed_base_sent(a, 0, 0), 0x80008000);
    ck_assert_int_eq(packed_base_sent(a, 0, 1), 0x80008000);
    lay_packed_ring(0, 5, 2, 0);
    lay_packed_ring(1, QSIZE, 0, 0); /* a whole lap used: entry 0 of lap 0 is next */
    lose_backend(a);
    ck_assert_uint_eq(net.ring_base[0], 0x80058005u);
    ck_assert_uint_eq(net.ring_base[1], 0);
    drain_kicks();
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES | PACKED_BITS);
    vu_backend_start(b);
    expect_back(1);
    pump_until(packed_base_sent(b, 0, 1) >= 0, WAIT_MS);
    ck_assert_int_eq(packed_base_sent(b, 0, 0), 0x80058005);
    ck_assert_int_eq(packed_base_sent(b, 0, 1), 0);
    expect_logged(0, "error:");
}
END_TEST

/* A ring that reads two ways (here a chain) is not started: the next back-end is
 * attached, the link stays down with one line, until the guest resets the NIC. */
START_TEST(packed_ring_that_memory_cannot_place_keeps_the_link_down)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];

    packed_guest_running_on(a);
    lay_packed_ring(0, 2, 3, 0x1 /* NEXT */);
    lose_backend(a);
    ck_assert_uint_eq(net.rings_unknown, 1);
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES | PACKED_BITS);
    vu_backend_start(b);
    pump_until(net.connected, WAIT_MS);
    pump_for(4 * RECONNECT_MS);
    ck_assert(!link_up());
    ck_assert(!vu_backend_saw(b, 0, VHOST_USER_SET_VRING_BASE));
    expect_logged(1, "net0: queue 0: where the packed ring stopped cannot be read from guest "
                     "memory (the driver chains descriptors");
    net.vdev.ops->reset(&net.vdev); /* the guest's reset: its rings start from 0 again */
    ck_assert_int_eq(net.phase, NET_IDLE);
    guest_start_queues(NQ, GUEST_FEATURES | PACKED_BITS);
    ck_assert_uint_eq(net.rings_unknown, 0);
    pump_until(packed_base_sent(b, 0, 1) >= 0, WAIT_MS);
    ck_assert_int_eq(packed_base_sent(b, 0, 0), 0x80008000);
}
END_TEST

/* A migration's destination hands guest RAM's table to its backend while the stream
 * arrives (virtio_net_prepare_memory); a backend that comes back before the start gets
 * it at once too, not when the NIC starts after the source stopped. */
START_TEST(destination_backend_back_gets_the_memory_table_at_once)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];

    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    ck_assert_int_eq(virtio_net_prepare_memory(&net), 0);
    pump_until(vu_backend_saw(a, 0, VHOST_USER_SET_MEM_TABLE), WAIT_MS);
    vu_backend_hangup(a);
    pump_until(!net.connected, WAIT_MS);
    vu_backend_stop(a);
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    pump_until(net.connected, WAIT_MS);
    pump_until(vu_backend_saw(b, 0, VHOST_USER_SET_MEM_TABLE), WAIT_MS);
    ck_assert_int_eq(net.phase, NET_IDLE); /* no guest start: the table went ahead */
    expect_logged(0, "error:");
}
END_TEST

/* Stops answering at a request of the handshake, or at an ack while the rings start. */
static const uint32_t stall_at[] = {VHOST_USER_GET_PROTOCOL_FEATURES, VHOST_USER_SET_VRING_ADDR};

START_TEST(stalled_backend_is_abandoned_after_the_reply_timeout)
{
    struct vu_backend *b = &bes[1];
    uint32_t at = stall_at[_i];
    int64_t t0;

    running_then_lost(7, 9);
    be_listen(b);
    be_add(b, VU_STALL, at, BACKEND_FEATURES);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    net.opts.reply_timeout_ms = STALL_TIMEOUT_MS;
    t0 = support_now_ms();
    pump_until(vu_backend_saw(b, 0, at) && net.conn.fd < 0, WAIT_MS);
    ck_assert_int_ge(support_now_ms() - t0, STALL_TIMEOUT_MS);
    net.opts.reply_timeout_ms = REPLY_TIMEOUT_MS;
    ck_assert(!net.connected);
    ck_assert(!link_up());
    ck_assert_uint_eq(config_irqs, 1);
    /* One line: the vhost-user layer's reason inside the NIC's. */
    expect_logged(1,
                  "warning: net0: the backend on %s failed the handshake (vhost-user: no %s reply "
                  "within %d ms); waiting for another",
                  sock_path, vhost_user_request_name(at), STALL_TIMEOUT_MS);
    expect_logged(0, "error:");
    expect_back(1);
    expect_session(b, 1, 7, 9);
}
END_TEST

/* A reply of another request's type, in the handshake or as an ack. */
static const uint32_t wrong_at[] = {VHOST_USER_GET_PROTOCOL_FEATURES, VHOST_USER_SET_MEM_TABLE};

START_TEST(wrong_reply_type_fails_the_attempt_cleanly)
{
    struct vu_backend *b = &bes[1];
    uint32_t at = wrong_at[_i];

    running_then_lost(100, 200);
    be_listen(b);
    be_add(b, VU_WRONG_REPLY, at, BACKEND_FEATURES);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    pump_until(vu_backend_saw(b, 0, at) && net.conn.fd < 0, WAIT_MS);
    ck_assert(!net.connected);
    ck_assert(!link_up());
    expect_logged(1,
                  "warning: net0: the backend on %s failed the handshake (vhost-user: %s reply "
                  "has request type 1 (GET_FEATURES)",
                  sock_path, vhost_user_request_name(at));
    expect_logged(0, "error:");
    expect_back(1);
    expect_session(b, 1, 100, 200);
}
END_TEST

/* Dies on SET_MEM_TABLE, before or after acking it, while the guest starts the NIC. */
static const enum vu_fault close_how[] = {VU_CLOSE, VU_CLOSE_AFTER};

START_TEST(close_after_set_mem_table_during_activation)
{
    struct vu_backend *a = &bes[0];

    be_listen(a);
    be_add(a, close_how[_i], VHOST_USER_SET_MEM_TABLE, BACKEND_FEATURES);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    guest_start(); /* returns 0: the guest is not failed for the back-end's death */
    ck_assert(!net.connected);
    ck_assert(!link_up());
    ck_assert_uint_eq(net.ring_base[0], 0);
    ck_assert_uint_eq(net.ring_base[1], 0);
    pump_until(config_irqs == 1, WAIT_MS);
    ck_assert_int_eq(vu_backend_nrecords(a, 0), NHANDSHAKE + 3);
    expect_msg(a, 0, NHANDSHAKE + 2, VHOST_USER_SET_MEM_TABLE);
    expect_logged(1, "net0: vhost-user backend on %s lost (it failed while the rings started)",
                  sock_path);
    expect_logged(1, "net0: the guest started the NIC; its rings start when the backend is back");
    expect_back(1);
    expect_session(a, 1, 0, 0);
}
END_TEST

START_TEST(server_mode_accepts_the_next_backend)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];
    int lines;

    opts.server = true;
    be_add(a, VU_WELL, 0, BACKEND_FEATURES); /* connects once vmm listens */
    vu_backend_start(a);
    net_start();
    guest_start();
    expect_session(a, 0, 0, 0);
    set_used_idx(0, 3);
    set_used_idx(1, 5);
    lose_backend(a);
    ck_assert_uint_eq(net.ring_base[0], 3);
    ck_assert_uint_eq(net.ring_base[1], 5);
    expect_logged(1,
                  "net0: vhost-user backend on %s lost (it closed the connection): link down "
                  "until a backend connects",
                  sock_path);
    lines = log_lines();
    pump_for(3 * RECONNECT_MS);
    ck_assert(!net.connected);
    ck_assert_int_eq(log_lines(), lines);
    drain_kicks();
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    expect_back(1);
    expect_session(b, 0, 3, 5);
    /* And once more: the listening socket is watched again after the second loss. */
    lose_backend(b);
    vu_backend_free(a);
    be_init(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    drain_kicks();
    expect_back(2);
    expect_session(a, 0, 3, 5);
    expect_logged(0, "error:");
}
END_TEST

/* A failing accept (here EMFILE: the connection stays queued, the socket readable)
 * pauses the listening socket for reconnect-ms instead of spinning on it; once accept
 * works again the queued connection is taken, and the next backend after it. */
START_TEST(server_accept_failure_backs_off_instead_of_spinning)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct rlimit old, low;
    int client, lowest = 0, failures;
    char c;

    opts.server = true;
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    guest_start();
    expect_session(a, 0, 0, 0);
    lose_backend(a);
    client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(client, 0);
    while (fcntl(lowest, F_GETFD) >= 0)
        lowest++;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest; /* no fd left for accept() */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    strcpy(sa.sun_path, sock_path);
    ck_assert_int_eq(connect(client, (struct sockaddr *)&sa, sizeof(sa)), 0);
    pump_for(5 * RECONNECT_MS);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    failures = count_in(logged(), "cannot accept a backend");
    ck_assert_msg(failures >= 1 && failures <= 7, "%d failed accepts logged in %d ms", failures,
                  5 * RECONNECT_MS);
    ck_assert(!net.connected);
    /* The queued connection is taken now; it never answers, so it fails the handshake. */
    net.opts.reply_timeout_ms = STALL_TIMEOUT_MS;
    pump_until(recv(client, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1 && net.conn.fd < 0, WAIT_MS);
    net.opts.reply_timeout_ms = REPLY_TIMEOUT_MS;
    close(client);
    expect_logged(1,
                  "net0: the backend on %s failed the handshake (vhost-user: no GET_FEATURES "
                  "reply within %d ms); waiting for another",
                  sock_path, STALL_TIMEOUT_MS);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    drain_kicks();
    expect_back(1);
}
END_TEST

START_TEST(backend_lacking_an_acked_feature_is_refused)
{
    struct vu_backend *b = &bes[1];

    running_then_lost(11, 22);
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES & ~BIT(VIRTIO_NET_F_MRG_RXBUF));
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    pump_until(vu_backend_saw(b, 0, VHOST_USER_SET_OWNER) && net.conn.fd < 0, WAIT_MS);
    ck_assert(!net.connected);
    ck_assert(!link_up());
    ck_assert_uint_eq(config_irqs, 1);
    /* Refused before anything of the guest's reached it. */
    ck_assert_int_eq(vu_backend_nrecords(b, 0), NHANDSHAKE);
    expect_logged(1,
                  "net0: the backend on %s lacks MRG_RXBUF (feature bit 15), which the guest "
                  "uses: the link stays down",
                  sock_path);
    expect_back(1);
    expect_session(b, 1, 11, 22);
}
END_TEST

/* Before DRIVER_OK the back-end goes and comes back: the rings start on activation. */
START_TEST(guest_starts_the_nic_while_the_backend_is_away)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];

    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    lose_backend(a);
    guest_start();
    ck_assert(!net.connected);
    expect_logged(1, "net0: the guest started the NIC; its rings start when the backend is back");
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    expect_back(1);
    expect_session(b, 0, 0, 0);
    expect_logged(0, "error:");
}
END_TEST

/* Rings outside guest RAM fail the guest's DRIVER_OK whether or not a back-end is there:
 * accepted while it is away, they would fail every reconnect, one pair of lines each
 * reconnect-ms, and the link would never come up. */
START_TEST(guest_rings_outside_ram_fail_activation_while_the_backend_is_away)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];

    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    lose_backend(a);
    net.vdev.queues[1] = (struct virtio_queue){.size = QSIZE,
                                               .desc = DESC(1),
                                               .avail = AVAIL(1),
                                               .used = MEM_SIZE - 8, /* runs past the end */
                                               .enabled = true,
                                               .kick_fd = kick[1],
                                               .call_fd = call[1]};
    net.vdev.acked_features = GUEST_FEATURES;
    ck_assert_int_eq(net.vdev.ops->activate(&net.vdev), -EINVAL);
    ck_assert_int_ne(net.phase, NET_RUNNING);
    expect_logged(1, "net0: queue 1: rings outside guest RAM");
    /* The back-end returns to a device the guest has not started: handshake only. */
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    pump_until(net.connected, WAIT_MS);
    ck_assert(link_up());
    ck_assert_int_eq(vu_backend_nrecords(b, 0), NHANDSHAKE);
    expect_handshake(b, 0);
    expect_logged(0, "failed the handshake");
}
END_TEST

/* Turns a hang into a failure: if the test is still pumping after WAIT_MS, accepts (and
 * drops) whatever waits on the listening socket, which unblocks a stuck connect(). */
struct watchdog {
    pthread_t thread;
    int listen_fd;
    int cancel; /* eventfd */
    atomic_bool fired;
};

static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    struct pollfd p[2] = {{.fd = w->cancel, .events = POLLIN},
                          {.fd = w->listen_fd, .events = POLLIN}};
    int64_t deadline = support_now_ms() + BE_IDLE_MS;

    if (poll(p, 1, WAIT_MS) > 0)
        return NULL;
    atomic_store(&w->fired, true);
    while (support_now_ms() < deadline && poll(p, 2, 100) >= 0 && !p[0].revents) {
        int fd = p[1].revents ? accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC) : -1;

        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

/* A back-end that listens but does not accept (stopped, wedged): vmm's connects fill its
 * queue. Each must fail at once, never block the event loop; once it accepts again, the
 * next attempt brings the link up. */
START_TEST(backend_not_accepting_never_blocks_the_loop)
{
    struct vu_backend *b = &bes[1];
    struct watchdog w = {.cancel = eventfd(0, EFD_CLOEXEC)};
    uint64_t one = 1;

    running_then_lost(1, 2);
    vu_backend_listen(b, 0);
    w.listen_fd = b->listen_fd;
    ck_assert_int_ge(w.cancel, 0);
    ck_assert_int_eq(pthread_create(&w.thread, NULL, watchdog_main, &w), 0);
    net.opts.reply_timeout_ms = STALL_TIMEOUT_MS;
    pump_for(STALL_TIMEOUT_MS + 6 * RECONNECT_MS);
    net.opts.reply_timeout_ms = REPLY_TIMEOUT_MS;
    ck_assert_int_eq(write(w.cancel, &one, sizeof(one)), sizeof(one));
    pthread_join(w.thread, NULL);
    close(w.cancel);
    ck_assert_msg(!atomic_load(&w.fired), "the event loop was stuck for %d ms", WAIT_MS);
    ck_assert(!net.connected);
    ck_assert(!link_up());
    /* The one connection the queue took timed out; the rest were refused, silently. */
    expect_logged(1, "vhost-user: no GET_FEATURES reply within %d ms", STALL_TIMEOUT_MS);
    expect_logged(1, "failed the handshake");
    /* It wakes up: the stale connection first (vmm gave up on it), then a real one. */
    be_add(b, VU_CLOSE, VHOST_USER_GET_FEATURES, BACKEND_FEATURES);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    expect_back(1);
    expect_session(b, 1, 1, 2);
}
END_TEST

/* Hang-ups, refusals and failed attempts leave no fd behind in vmm. */
START_TEST(fds_back_to_the_same_count_after_cycles)
{
    struct vu_backend *a = &bes[0];
    int fds;

    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    be_add(a, VU_WRONG_REPLY, VHOST_USER_GET_FEATURES, BACKEND_FEATURES);
    be_add(a, VU_CLOSE, VHOST_USER_SET_VRING_KICK, BACKEND_FEATURES);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES & ~BIT(VIRTIO_NET_F_CSUM));
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    guest_start();
    vu_backend_hangup(a);
    pump_until(vu_backend_nrecords(a, 1) == NHANDSHAKE + NSTART && net.connected, WAIT_MS);
    fds = support_count_fds();
    for (int cycle = 0; cycle < 3; cycle++) {
        vu_backend_hangup(a);
        pump_until(!net.connected, WAIT_MS);
        pump_until(net.connected, WAIT_MS);
        ck_assert_int_eq(support_count_fds(), fds);
    }
    vu_backend_check(a);
    ck_assert_uint_eq(net.reconnects, 4);
    /* The backend lacking CSUM is refused with a line of its own. */
    expect_logged(2, "failed the handshake");
    expect_logged(1, "lacks CSUM");
    expect_session(a, 7, 0, 0);
}
END_TEST

/* --- protocol features a backend may offer ------------------------------------------------ */

#define PF(bit) BIT(VHOST_USER_PROTOCOL_F_##bit)

/* From message k of session s on, exactly these requests, in order; returns the next k. */
static int expect_requests(struct vu_backend *be, int s, int k, const uint32_t *reqs, int n)
{
    for (int i = 0; i < n; i++)
        expect_msg(be, s, k + i, reqs[i]);
    return k + n;
}

/* The handshake with what the extra protocol features add, in QEMU's order. */
static int expect_handshake_with(struct vu_backend *be, int s, uint64_t extra)
{
    uint32_t reqs[8];
    int n = 0;

    expect_msg(be, s, 2, VHOST_USER_SET_PROTOCOL_FEATURES);
    for (int i = 0; i < NHANDSHAKE - 1; i++)
        reqs[n++] = handshake[i];
    if (extra & PF(CONFIGURE_MEM_SLOTS))
        reqs[n++] = VHOST_USER_GET_MAX_MEM_SLOTS;
    if (extra & PF(BACKEND_REQ))
        reqs[n++] = VHOST_USER_SET_BACKEND_REQ_FD;
    reqs[n++] = VHOST_USER_SET_OWNER;
    struct vu_record set_protocol = vu_backend_record(be, s, 2);

    ck_assert_uint_eq(vu_record_u64(&set_protocol, 0), BACKEND_PROTOCOL | extra);
    return expect_requests(be, s, 0, reqs, n);
}

/* A device start from message k: with STATUS, FEATURES_OK after SET_FEATURES and
 * ACKNOWLEDGE|DRIVER|DRIVER_OK once the rings are enabled; the memory as `mem` says
 * (SET_MEM_TABLE, ADD_MEM_REG or nothing). Returns the next k. */
static int expect_start(struct vu_backend *be, int s, int k, bool status, uint32_t mem,
                        uint8_t status_before)
{
    uint32_t reqs[32];
    int n = 0, first = k;

    reqs[n++] = VHOST_USER_SET_FEATURES;
    if (status) {
        reqs[n++] = VHOST_USER_GET_STATUS;
        if (!(status_before & VIRTIO_STATUS_FEATURES_OK))
            reqs[n++] = VHOST_USER_SET_STATUS;
    }
    reqs[n++] = VHOST_USER_NET_SET_MTU;
    if (mem)
        reqs[n++] = mem;
    for (int q = 0; q < 2; q++) {
        reqs[n++] = VHOST_USER_SET_VRING_NUM;
        reqs[n++] = VHOST_USER_SET_VRING_ADDR;
        reqs[n++] = VHOST_USER_SET_VRING_BASE;
        reqs[n++] = VHOST_USER_SET_VRING_KICK;
        reqs[n++] = VHOST_USER_SET_VRING_CALL;
    }
    reqs[n++] = VHOST_USER_SET_VRING_ENABLE;
    reqs[n++] = VHOST_USER_SET_VRING_ENABLE;
    if (status) {
        reqs[n++] = VHOST_USER_GET_STATUS;
        reqs[n++] = VHOST_USER_SET_STATUS;
    }
    k = expect_requests(be, s, k, reqs, n);
    for (int i = first; status && i < k; i++) {
        struct vu_record m = vu_backend_record(be, s, i);

        if (m.request == VHOST_USER_SET_STATUS)
            ck_assert_uint_eq(vu_record_u64(&m, 0), i == k - 1 ? 0x0f : 0x08);
    }
    return k;
}

static void guest_reset(void)
{
    net.vdev.ops->reset(&net.vdev);
    ck_assert_int_ne(net.phase, NET_RUNNING);
}

static const uint64_t status_reset_variants[] = {0, PF(STATUS), PF(RESET_DEVICE),
                                                 PF(STATUS) | PF(RESET_DEVICE)};

/* Start, reset, start again: STATUS adds its bits in order and status 0 after the rings
 * stop; RESET_DEVICE follows the reset. A backend offering neither gets what it always
 * got. */
START_TEST(status_and_reset_device_when_the_backend_offers_them)
{
    struct vu_backend *a = &bes[0];
    uint64_t extra = status_reset_variants[_i];
    bool status = extra & PF(STATUS);
    uint32_t stop[4] = {VHOST_USER_GET_VRING_BASE, VHOST_USER_GET_VRING_BASE};
    int k, nstop = 2;

    if (status)
        stop[nstop++] = VHOST_USER_SET_STATUS;
    if (extra & PF(RESET_DEVICE))
        stop[nstop++] = VHOST_USER_RESET_DEVICE;
    be_listen(a);
    be_add_protocol(a, BACKEND_PROTOCOL | extra, 8);
    vu_backend_start(a);
    net_start();
    guest_start();
    k = expect_handshake_with(a, 0, extra);
    k = expect_start(a, 0, k, status, VHOST_USER_SET_MEM_TABLE, 0);
    ck_assert_int_eq(vu_backend_nrecords(a, 0), k);
    guest_reset();
    k = expect_requests(a, 0, k, stop, nstop);
    ck_assert_int_eq(vu_backend_nrecords(a, 0), k);
    if (status) {
        struct vu_record zero = vu_backend_record(a, 0, k - nstop + 2);

        ck_assert_uint_eq(vu_record_u64(&zero, 0), 0);
    }
    guest_start();
    /* The backend keeps the table it holds, unless RESET_DEVICE re-initialised it. */
    k = expect_start(a, 0, k, status, extra & PF(RESET_DEVICE) ? VHOST_USER_SET_MEM_TABLE : 0, 0);
    ck_assert_int_eq(vu_backend_nrecords(a, 0), k);
    for (int i = NHANDSHAKE; i < k; i++)
        ck_assert_uint_eq(vu_backend_record(a, 0, i).flags & VU_WIRE_FL_NEED_REPLY,
                          vu_backend_record(a, 0, i).request == VHOST_USER_GET_STATUS ||
                                  vu_backend_record(a, 0, i).request == VHOST_USER_GET_VRING_BASE
                              ? 0
                              : VU_WIRE_FL_NEED_REPLY);
    ck_assert(net.connected);
    expect_logged(0, "error:");
    expect_logged(0, "warning:");
}
END_TEST

/* With CONFIGURE_MEM_SLOTS: the region once per connection (ADD_MEM_REG with the
 * memfd), nothing on a second start, all of it again to the next backend. */
START_TEST(mem_slots_add_each_region_once_per_connection)
{
    struct vu_backend *a = &bes[0];
    const uint64_t extra = PF(CONFIGURE_MEM_SLOTS);
    struct stat st;
    struct vu_record add;
    int k;

    be_listen(a);
    be_add_protocol(a, BACKEND_PROTOCOL | extra, 2);
    be_add_protocol(a, BACKEND_PROTOCOL | extra, 1);
    vu_backend_start(a);
    net_start();
    ck_assert_uint_eq(net.conn.max_mem_slots, 2);
    guest_start();
    k = expect_handshake_with(a, 0, extra);
    add = vu_backend_record(a, 0, k + 2);
    k = expect_start(a, 0, k, false, VHOST_USER_ADD_MEM_REG, 0);
    ck_assert_int_eq(fstat(ram.fd, &st), 0);
    ck_assert_int_eq(add.nfds, 1);
    ck_assert_uint_eq(add.ino, st.st_ino);
    ck_assert_uint_eq(add.size, 40);
    ck_assert_uint_eq(vu_record_u64(&add, 8), 0);
    ck_assert_uint_eq(vu_record_u64(&add, 16), MEM_SIZE);
    ck_assert_uint_eq(vu_record_u64(&add, 24), (uintptr_t)ram.buf);
    guest_reset();
    k += 2;
    guest_start();
    k = expect_start(a, 0, k, false, 0, 0);
    ck_assert_int_eq(vu_backend_nrecords(a, 0), k);
    vu_backend_hangup(a);
    pump_until(!net.connected, WAIT_MS);
    expect_back(1);
    k = expect_handshake_with(a, 1, extra);
    k = expect_start(a, 1, k, false, VHOST_USER_ADD_MEM_REG, 0);
    ck_assert_int_eq(vu_backend_nrecords(a, 1), k);
    expect_logged(0, "error:");
}
END_TEST

/* ---- migration's dirty log across a reconnect ---- */

#define LOG_PROTOCOL (BACKEND_PROTOCOL | PF(LOG_SHMFD))
#define LOG_FEATURES (BACKEND_FEATURES | BIT(VHOST_USER_F_LOG_ALL))
#define LOG_SIZE 4096

static int log_memfd = -1;

/* A session with a backend that logs: LOG_SHMFD and VHOST_F_LOG_ALL. */
static struct vu_session *be_add_logging(struct vu_backend *be)
{
    struct vu_session *s = be_add_protocol(be, LOG_PROTOCOL, 8);

    s->features = LOG_FEATURES;
    return s;
}

/* Migration turns dirty logging on (its device op, called here on the NIC's loop). */
static void start_logging(void)
{
    log_memfd = memfd_create("dirty-log", MFD_CLOEXEC);
    ck_assert_int_ge(log_memfd, 0);
    ck_assert_int_eq(ftruncate(log_memfd, LOG_SIZE), 0);
    ck_assert_int_eq(net.vdev.ops->log_start(&net.vdev, log_memfd, LOG_SIZE), 0);
}

/* The backend of session s got the shared log (this log's memfd) before its first
 * SET_FEATURES, which carries LOG_ALL, and every ring address it got logs. */
static void expect_logging_session(struct vu_backend *be, int s)
{
    struct stat st;
    int k_log = vu_backend_find(be, s, VHOST_USER_SET_LOG_BASE, 0);
    int k_feat = vu_backend_find(be, s, VHOST_USER_SET_FEATURES, 0);
    struct vu_record m;

    ck_assert_msg(k_log >= 0, "the backend that came back never got SET_LOG_BASE; log:\n%s",
                  logged());
    ck_assert_msg(k_feat > k_log, "SET_FEATURES (at %d) came before SET_LOG_BASE (at %d)", k_feat,
                  k_log);
    m = vu_backend_record(be, s, k_log);
    ck_assert_int_eq(fstat(log_memfd, &st), 0);
    ck_assert_int_eq(m.nfds, 1);
    ck_assert_uint_eq(m.ino, st.st_ino);
    ck_assert_uint_eq(vu_record_u64(&m, 0), LOG_SIZE);
    m = vu_backend_record(be, s, k_feat);
    ck_assert_uint_ne(vu_record_u64(&m, 0) & BIT(VHOST_USER_F_LOG_ALL), 0);
    for (int k = vu_backend_find(be, s, VHOST_USER_SET_VRING_ADDR, 0); k >= 0;
         k = vu_backend_find(be, s, VHOST_USER_SET_VRING_ADDR, k + 1)) {
        m = vu_backend_record(be, s, k);
        ck_assert_uint_eq(vu_record_u32(&m, 4) & VHOST_USER_VRING_F_LOG, VHOST_USER_VRING_F_LOG);
    }
}

/* A backend that dies and comes back while a migration logs: without the log base the
 * new backend's writes would be missing on the destination (DPDK does not log without
 * one). QEMU resends SET_LOG_BASE whenever logging is on. */
START_TEST(backend_back_while_migrating_gets_the_log_again)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];
    char why[160];

    be_listen(a);
    be_add_logging(a);
    vu_backend_start(a);
    net_start();
    guest_start();
    start_logging();
    ck_assert(vu_backend_saw(a, 0, VHOST_USER_SET_LOG_BASE));
    lose_backend(a);
    /* Away, it writes nothing: the log has no gap, the migration goes on. */
    ck_assert_msg(net.vdev.ops->log_check(&net.vdev, why, sizeof(why)) == 0, "%s", why);
    be_listen(b);
    be_add_logging(b);
    vu_backend_start(b);
    expect_back(1);
    expect_logging_session(b, 0);
    ck_assert_int_eq(net.vdev.ops->log_check(&net.vdev, why, sizeof(why)), 0);
    ck_assert_int_eq(net.vdev.ops->log_stop(&net.vdev), 0);
    close(log_memfd);
}
END_TEST

/* The guest starts its NIC only after the backend came back, logging on all along: the
 * rings start with logging, after the log base. */
START_TEST(guest_starts_after_a_reconnect_while_migrating)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];

    be_listen(a);
    be_add_logging(a);
    vu_backend_start(a);
    net_start();
    start_logging();
    lose_backend(a);
    be_listen(b);
    be_add_logging(b);
    vu_backend_start(b);
    pump_until(net.connected, WAIT_MS);
    ck_assert(vu_backend_saw(b, 0, VHOST_USER_SET_LOG_BASE));
    guest_start();
    pump_until(vu_backend_find(b, 0, VHOST_USER_SET_VRING_ENABLE, 0) >= 0, WAIT_MS);
    expect_logging_session(b, 0);
    ck_assert_int_eq(net.vdev.ops->log_stop(&net.vdev), 0);
    close(log_memfd);
}
END_TEST

/* A backend that comes back unable to log: it serves the guest (LOG_ALL is not forced
 * on it), and the migration is told its log is incomplete. */
START_TEST(backend_back_unable_to_log_fails_the_log_check)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];
    struct vu_record feat;
    char why[160];

    be_listen(a);
    be_add_logging(a);
    vu_backend_start(a);
    net_start();
    guest_start();
    start_logging();
    lose_backend(a);
    be_listen(b);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES); /* no LOG_SHMFD, no LOG_ALL */
    vu_backend_start(b);
    expect_back(1);
    ck_assert(!vu_backend_saw(b, 0, VHOST_USER_SET_LOG_BASE));
    feat = vu_backend_record(b, 0, vu_backend_find(b, 0, VHOST_USER_SET_FEATURES, 0));
    ck_assert_uint_eq(vu_record_u64(&feat, 0) & BIT(VHOST_USER_F_LOG_ALL), 0);
    ck_assert_int_eq(net.vdev.ops->log_check(&net.vdev, why, sizeof(why)), -ENOTSUP);
    ck_assert_msg(strstr(why, "came back while migrating"), "%s", why);
    expect_logged(1, "net0: the backend on %s cannot log its writes", sock_path);
    ck_assert_int_eq(net.vdev.ops->log_stop(&net.vdev), 0);
    close(log_memfd);
}
END_TEST

/* Fewer slots than guest RAM regions: refused at the handshake, in one line, whether at
 * start or on a reconnect. */
START_TEST(mem_slots_too_few_are_refused)
{
    struct vu_backend *a = &bes[0], *b = &bes[1];

    be_listen(a);
    be_add_protocol(a, BACKEND_PROTOCOL | PF(CONFIGURE_MEM_SLOTS), 0);
    vu_backend_start(a);
    ck_assert_int_eq(net_start_ret(), -ENOSPC);
    expect_logged(1,
                  "net0: vhost-user handshake on %s failed: the backend has 0 memory slots, "
                  "guest RAM needs 1",
                  sock_path);
    ck_assert_int_eq(vu_backend_nrecords(a, 0), NHANDSHAKE);
    vu_backend_free(a);
    be_init(a);
    running_then_lost(3, 4);
    be_listen(b);
    be_add_protocol(b, BACKEND_PROTOCOL | PF(CONFIGURE_MEM_SLOTS), 0);
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    expect_back(1);
    expect_logged(1,
                  "warning: net0: the backend on %s failed the handshake (the backend has 0 "
                  "memory slots, guest RAM needs 1); waiting for another",
                  sock_path);
    expect_session(b, 1, 3, 4);
}
END_TEST

static void chan_send(int chan, uint32_t request, uint32_t flags)
{
    uint32_t hdr[3] = {request, flags, 0};

    ck_assert_int_eq(send(chan, hdr, sizeof(hdr), MSG_NOSIGNAL), (ssize_t)sizeof(hdr));
}

/* vmm's answer on the channel, read while the loop runs. */
static uint64_t chan_reply(int chan, uint32_t request)
{
    uint8_t buf[20];
    uint32_t hdr[3];
    uint64_t v;

    pump_until(recv(chan, buf, 1, MSG_PEEK | MSG_DONTWAIT) == 1, WAIT_MS);
    ck_assert_int_eq(recv(chan, buf, sizeof(buf), MSG_DONTWAIT), (ssize_t)sizeof(buf));
    memcpy(hdr, buf, 12);
    memcpy(&v, buf + 12, 8);
    ck_assert_uint_eq(hdr[0], request);
    ck_assert_uint_eq(hdr[1], VU_WIRE_FL_REPLY);
    ck_assert_uint_eq(hdr[2], 8);
    return v;
}

/* BACKEND_REQ: the channel opens in the handshake; a request is answered (refused: vmm
 * negotiates nothing a request needs); the backend closing it leaves the NIC working;
 * a reconnect opens a new one; no fd is left behind. */
START_TEST(backend_channel_answers_survives_its_close_and_reopens)
{
    struct vu_backend *a = &bes[0];
    const uint64_t extra = PF(BACKEND_REQ);
    int k, fds, chan;

    be_listen(a);
    for (int i = 0; i < 3; i++)
        be_add_protocol(a, BACKEND_PROTOCOL | extra, 8);
    vu_backend_start(a);
    net_start();
    k = expect_handshake_with(a, 0, extra);
    ck_assert_int_eq(vu_backend_record(a, 0, k - 2).nfds, 1);
    ck_assert_uint_eq(vu_backend_record(a, 0, k - 2).flags & VU_WIRE_FL_NEED_REPLY,
                      VU_WIRE_FL_NEED_REPLY);
    chan = vu_backend_chan(a, 0);
    ck_assert_int_ge(chan, 0);
    guest_start();
    expect_start(a, 0, k, false, VHOST_USER_SET_MEM_TABLE, 0);
    fds = support_count_fds();
    /* A config change (CONFIG is not negotiated) and an unknown request: each refused. */
    chan_send(chan, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0x1 | VU_WIRE_FL_NEED_REPLY);
    ck_assert_uint_eq(chan_reply(chan, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG), 1);
    chan_send(chan, 99, 0x1 | VU_WIRE_FL_NEED_REPLY);
    ck_assert_uint_eq(chan_reply(chan, 99), 1);
    ck_assert(net.connected);
    ck_assert(link_up());
    ck_assert_uint_eq(config_irqs, 0);
    expect_logged(1, "warning: net0: vhost-user: BACKEND_CONFIG_CHANGE_MSG needs protocol "
                     "feature CONFIG, which was not negotiated");
    /* The backend closes the channel: closed on vmm's side too, the connection goes on. */
    vu_backend_close_chan(a, 0);
    pump_until(net.conn.backend_fd < 0, WAIT_MS);
    expect_logged(1,
                  "warning: net0: the backend's request channel on %s is closed (the backend "
                  "closed it); the connection goes on",
                  sock_path);
    ck_assert(net.connected);
    ck_assert(!net.conn.broken);
    ck_assert_int_eq(support_count_fds(), fds - 2);
    guest_reset();
    ck_assert_int_eq(vu_backend_nrecords(a, 0), k + NSTART + 2);
    guest_start();
    /* A reconnect opens a new one, which works; the old one is not leaked. */
    for (int s = 1; s <= 2; s++) {
        vu_backend_hangup(a);
        pump_until(!net.connected, WAIT_MS);
        pump_until(net.connected && vu_backend_chan(a, s) >= 0, WAIT_MS);
        if (s == 2)
            vu_backend_close_chan(a, 1);
        ck_assert_int_eq(expect_handshake_with(a, s, extra), k);
        chan = vu_backend_chan(a, s);
        chan_send(chan, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0x1 | VU_WIRE_FL_NEED_REPLY);
        ck_assert_uint_eq(chan_reply(chan, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG), 1);
        ck_assert_int_eq(support_count_fds(), fds);
    }
    /* A backend that dies closes both, the channel first here: one loss, no channel line. */
    vu_backend_close_chan(a, 2);
    vu_backend_hangup(a);
    ck_assert_msg(vu_backend_wait_ended(a, 2, WAIT_MS), "the back-end did not hang up");
    pump_until(!net.connected, WAIT_MS);
    expect_logged(1, "request channel");
    expect_logged(3, "net0: vhost-user backend on %s lost (it closed the connection)", sock_path);
    expect_logged(0, "error:");
}
END_TEST

/* --- QEMU's tests/qtest/vhost-user-test.c, against vmm's virtio-net ----------------------- */

/* flags-mismatch: a backend dies on the guest's SET_FEATURES; the next offers no feature at
 * all (QEMU's TEST_FLAGS_BAD) and is refused for it before anything of the guest's reaches
 * it; the one after runs the guest's rings. With vmm as client, and as the server (QEMU's
 * way: the backend connects). */
static const bool as_server[] = {false, true};

START_TEST(flags_mismatch_backend_offering_nothing_is_refused)
{
    struct vu_backend *a = &bes[0];

    opts.server = as_server[_i];
    if (!opts.server)
        be_listen(a);
    be_add(a, VU_CLOSE, VHOST_USER_SET_FEATURES, BACKEND_FEATURES);
    be_add(a, VU_WELL, 0, 0); /* not even PROTOCOL_FEATURES */
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    net_start();
    guest_start(); /* 0: the backend's death is not the guest's failure */
    pump_until(net.connected && vu_backend_nrecords(a, 2) == NHANDSHAKE + NSTART, WAIT_MS);
    ck_assert(link_up());
    ck_assert_uint_eq(net.reconnects, 1);
    ck_assert_int_eq(vu_backend_nrecords(a, 1), 2);
    expect_msg(a, 1, 0, VHOST_USER_GET_FEATURES);
    expect_msg(a, 1, 1, VHOST_USER_SET_OWNER);
    expect_logged(1, "net0: vhost-user backend on %s lost (it failed while the rings started)",
                  sock_path);
    expect_logged(1,
                  "warning: net0: the backend on %s failed the handshake (the backend does not "
                  "offer VIRTIO_F_VERSION_1); waiting for another",
                  sock_path);
    expect_logged(1, "net0: vhost-user backend back on %s (reconnect 1): link up", sock_path);
    /* The only error: the death, as the guest's start met it. */
    expect_logged(1, "error:");
    expect_logged(1, "error: net0: vhost-user: back-end closed the connection instead of sending "
                     "SET_FEATURES reply");
    expect_session(a, 2, 0, 0);
}
END_TEST

/* flags-mismatch on the wire: a reply whose header has another protocol version, or lacks
 * the reply flag, fails the attempt with the vhost-user layer's reason; the next backend
 * runs the rings from where the guest left them. */
static const struct {
    uint32_t at, flags;
    const char *says;
} wrong_flags[] = {
    {VHOST_USER_GET_PROTOCOL_FEATURES, 0x6,
     "GET_PROTOCOL_FEATURES reply has version 2, expected 1"},
    {VHOST_USER_SET_MEM_TABLE, VU_WIRE_FL_REQ,
     "SET_MEM_TABLE reply lacks the reply flag (flags 0x1)"},
};

START_TEST(reply_with_wrong_header_flags_fails_the_attempt_cleanly)
{
    struct vu_backend *b = &bes[1];
    uint32_t at = wrong_flags[_i].at;

    running_then_lost(100, 200);
    be_listen(b);
    be_add(b, VU_WRONG_FLAGS, at, BACKEND_FEATURES)->reply_flags = wrong_flags[_i].flags;
    be_add(b, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(b);
    pump_until(vu_backend_saw(b, 0, at) && net.conn.fd < 0, WAIT_MS);
    ck_assert(!net.connected);
    ck_assert(!link_up());
    expect_logged(1, "warning: net0: the backend on %s failed the handshake (vhost-user: %s)",
                  sock_path, wrong_flags[_i].says);
    expect_logged(0, "error:");
    expect_back(1);
    expect_session(b, 1, 100, 200);
}
END_TEST

/* connect-fail: at start the backend's socket is there but refuses (a stale file, a backend
 * restarting): vmm tries again, silently, until one listens, and starts on it. */
START_TEST(connect_fail_start_goes_on_through_refused_connects)
{
    struct vu_backend *a = &bes[0];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    strcpy(sa.sun_path, sock_path);
    ck_assert_int_eq(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(stale); /* the file stays, nobody listens: connect() says ECONNREFUSED */
    net_begin();
    pump_for(5 * RECONNECT_MS);
    ck_assert(!link_started);
    expect_logged(0, "error:");
    expect_logged(0, "warning:");
    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    vu_backend_start(a);
    pump_until(link_started, WAIT_MS);
    ck_assert_int_eq(link_start_ret, 0);
    ck_assert(net.connected);
    ck_assert_int_eq(vu_backend_nrecords(a, 0), NHANDSHAKE);
    expect_handshake(a, 0);
    expect_logged(0, "error:");
}
END_TEST

/* reconnect: the backend that comes back is given guest RAM again and reads what the guest
 * wrote through the fd it got (QEMU's read-guest-mem), then runs both rings. Either role. */
START_TEST(reconnect_backend_reads_guest_ram_through_the_new_fd)
{
    static const char first[16] = "guest RAM, 1st", second[16] = "guest RAM, 2nd";
    struct vu_backend *a = &bes[0];
    struct vu_session seen;

    opts.server = as_server[_i];
    if (!opts.server)
        be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES);
    guest_write(&ram, 0, first, sizeof(first));
    vu_backend_start(a);
    net_start();
    guest_start();
    expect_session(a, 0, 0, 0);
    seen = vu_backend_session(a, 0);
    ck_assert(seen.mem_mapped);
    ck_assert_mem_eq(seen.mem_head, first, sizeof(first));
    guest_write(&ram, 0, second, sizeof(second));
    drain_kicks();
    vu_backend_hangup(a);
    pump_until(!net.connected, WAIT_MS);
    expect_back(1);
    expect_session(a, 1, 0, 0);
    seen = vu_backend_session(a, 1);
    ck_assert(seen.mem_mapped);
    ck_assert_mem_eq(seen.mem_head, second, sizeof(second));
    expect_logged(0, "error:");
}
END_TEST

/* migrate: with LOG_SHMFD the backend gets the log's fd and its size (QEMU checks that it
 * is RAM / (4 KiB * 8)), maps it and marks what it writes, which vmm then sees in its own
 * log; LOG_ALL and each started ring's log flag follow, and go again when logging stops. */
START_TEST(migrate_gives_the_backend_the_log_fd_and_its_size)
{
    const uint64_t log_size = MEM_SIZE / (4096 * 8);
    struct vu_backend *a = &bes[0];
    struct vu_record m;
    struct stat st;
    uint8_t dirty = 0;
    int k0, k;

    be_listen(a);
    be_add_logging(a)->mark_log = true;
    vu_backend_start(a);
    net_start();
    guest_start();
    k0 = vu_backend_nrecords(a, 0);
    log_memfd = memfd_create("dirty-log", MFD_CLOEXEC);
    ck_assert_int_ge(log_memfd, 0);
    ck_assert_int_eq(ftruncate(log_memfd, (off_t)log_size), 0);
    ck_assert_int_eq(net.vdev.ops->log_start(&net.vdev, log_memfd, log_size), 0);
    k = vu_backend_find(a, 0, VHOST_USER_SET_LOG_BASE, k0);
    ck_assert_int_eq(k, k0);
    m = vu_backend_record(a, 0, k);
    ck_assert_int_eq(fstat(log_memfd, &st), 0);
    ck_assert_int_eq(m.nfds, 1);
    ck_assert_uint_eq(m.ino, st.st_ino);
    ck_assert_uint_eq(m.size, 16);
    ck_assert_uint_eq(vu_record_u64(&m, 0), log_size);
    ck_assert_uint_eq(vu_record_u64(&m, 8), 0);
    ck_assert(vu_backend_session(a, 0).log_marked);
    ck_assert_int_eq(pread(log_memfd, &dirty, 1, 0), 1);
    ck_assert_uint_eq(dirty & 1, 1);
    m = expect_msg(a, 0, k + 1, VHOST_USER_SET_FEATURES);
    ck_assert_uint_eq(vu_record_u64(&m, 0), RING_FEATURES | BIT(VHOST_USER_F_LOG_ALL));
    for (unsigned q = 0; q < 2; q++) {
        m = expect_msg(a, 0, k + 2 + (int)q, VHOST_USER_SET_VRING_ADDR);
        ck_assert_uint_eq(vu_record_u32(&m, 0), q);
        ck_assert_uint_eq(vu_record_u32(&m, 4), VHOST_USER_VRING_F_LOG);
        ck_assert_uint_eq(vu_record_u64(&m, 32), USED(q));
    }
    ck_assert_int_eq(net.vdev.ops->log_stop(&net.vdev), 0);
    m = expect_msg(a, 0, k + 4, VHOST_USER_SET_FEATURES);
    ck_assert_uint_eq(vu_record_u64(&m, 0), RING_FEATURES);
    for (unsigned q = 0; q < 2; q++) {
        m = expect_msg(a, 0, k + 5 + (int)q, VHOST_USER_SET_VRING_ADDR);
        ck_assert_uint_eq(vu_record_u32(&m, 4), 0);
    }
    ck_assert_int_eq(vu_backend_nrecords(a, 0), k + 7);
    close(log_memfd);
    expect_logged(0, "error:");
}
END_TEST

/* multiqueue: queues=2 against a backend offering at least 2 pairs (GET_QUEUE_NUM): every
 * data ring of both pairs starts, pair 0 enabled until the guest asks for more. */
static const uint64_t pairs_offered[] = {2, 8};

START_TEST(multiqueue_starts_both_pairs_rings)
{
    struct vu_backend *a = &bes[0];
    int k;

    opts.queue_pairs = 2;
    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES)->queues = pairs_offered[_i];
    vu_backend_start(a);
    net_start();
    ck_assert_uint_eq(net.conn.max_queues, pairs_offered[_i]);
    guest_start_queues(MAX_NQ, GUEST_FEATURES | BIT(VIRTIO_NET_F_MQ));
    expect_handshake(a, 0);
    k = vu_backend_find(a, 0, VHOST_USER_SET_VRING_NUM, NHANDSHAKE);
    ck_assert_int_gt(k, NHANDSHAKE);
    for (unsigned q = 0; q < 4; q++, k += RING_MSGS)
        expect_vring(a, 0, k, q, 0);
    for (unsigned q = 0; q < 4; q++) {
        struct vu_record m = expect_msg(a, 0, k + (int)q, VHOST_USER_SET_VRING_ENABLE);

        ck_assert_uint_eq(vu_record_u32(&m, 0), q);
        ck_assert_uint_eq(vu_record_u32(&m, 4), q < 2);
    }
    ck_assert_int_eq(vu_backend_nrecords(a, 0), k + 4);
    expect_logged(0, "error:");
}
END_TEST

/* A backend with fewer pairs than queues= is refused, at start and on a reconnect. */
START_TEST(multiqueue_backend_with_fewer_pairs_is_refused)
{
    struct vu_backend *a = &bes[0];

    opts.queue_pairs = 2;
    be_listen(a);
    be_add(a, VU_WELL, 0, BACKEND_FEATURES)->queues = 1;
    be_add(a, VU_WELL, 0, BACKEND_FEATURES)->queues = 2;
    be_add(a, VU_WELL, 0, BACKEND_FEATURES)->queues = 1;
    be_add(a, VU_WELL, 0, BACKEND_FEATURES)->queues = 2;
    vu_backend_start(a);
    ck_assert_int_eq(net_start_ret(), -ENOTSUP);
    expect_logged(1,
                  "net0: vhost-user handshake on %s failed: queues=2, but the backend offers 1 "
                  "queue pair(s)",
                  sock_path);
    virtio_net_destroy(&net);
    net_up = false;
    net_start();
    vu_backend_hangup(a);
    pump_until(net.connected && vu_backend_nrecords(a, 3) == NHANDSHAKE, WAIT_MS);
    expect_logged(1,
                  "warning: net0: the backend on %s failed the handshake (queues=2, but the "
                  "backend offers 1 queue pair(s)); waiting for another",
                  sock_path);
    ck_assert_uint_eq(net.reconnects, 1);
}
END_TEST

static Suite *net_reconnect_suite(void)
{
    Suite *s = suite_create("net_reconnect");
    TCase *tc = tcase_create("reconnect");
    TCase *qemu = tcase_create("qemu_vhost_user_test");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30); /* a bound for a hung test; each takes well under a second */
    tcase_add_test(tc, idle_hangup_restarts_rings_where_the_guest_left_them);
    tcase_add_test(tc, packed_rings_restart_where_the_descriptor_ring_says);
    tcase_add_test(tc, packed_ring_that_memory_cannot_place_keeps_the_link_down);
    tcase_add_loop_test(tc, stalled_backend_is_abandoned_after_the_reply_timeout, 0, 2);
    tcase_add_loop_test(tc, wrong_reply_type_fails_the_attempt_cleanly, 0, 2);
    tcase_add_loop_test(tc, close_after_set_mem_table_during_activation, 0, 2);
    tcase_add_test(tc, server_mode_accepts_the_next_backend);
    tcase_add_test(tc, server_accept_failure_backs_off_instead_of_spinning);
    tcase_add_test(tc, backend_lacking_an_acked_feature_is_refused);
    tcase_add_test(tc, guest_starts_the_nic_while_the_backend_is_away);
    tcase_add_test(tc, backend_not_accepting_never_blocks_the_loop);
    tcase_add_test(tc, guest_rings_outside_ram_fail_activation_while_the_backend_is_away);
    tcase_add_test(tc, fds_back_to_the_same_count_after_cycles);
    tcase_add_loop_test(tc, status_and_reset_device_when_the_backend_offers_them, 0, 4);
    tcase_add_test(tc, mem_slots_add_each_region_once_per_connection);
    tcase_add_test(tc, mem_slots_too_few_are_refused);
    tcase_add_test(tc, backend_back_while_migrating_gets_the_log_again);
    tcase_add_test(tc, destination_backend_back_gets_the_memory_table_at_once);
    tcase_add_test(tc, guest_starts_after_a_reconnect_while_migrating);
    tcase_add_test(tc, backend_back_unable_to_log_fails_the_log_check);
    tcase_add_test(tc, backend_channel_answers_survives_its_close_and_reopens);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(qemu, setup, teardown);
    tcase_set_timeout(qemu, 30);
    tcase_add_loop_test(qemu, flags_mismatch_backend_offering_nothing_is_refused, 0, 2);
    tcase_add_loop_test(qemu, reply_with_wrong_header_flags_fails_the_attempt_cleanly, 0, 2);
    tcase_add_test(qemu, connect_fail_start_goes_on_through_refused_connects);
    tcase_add_loop_test(qemu, reconnect_backend_reads_guest_ram_through_the_new_fd, 0, 2);
    tcase_add_test(qemu, migrate_gives_the_backend_the_log_fd_and_its_size);
    tcase_add_loop_test(qemu, multiqueue_starts_both_pairs_rings, 0, 2);
    tcase_add_test(qemu, multiqueue_backend_with_fewer_pairs_is_refused);
    suite_add_tcase(s, qemu);
    return s;
}

CHECK_MAIN(net_reconnect_suite)
