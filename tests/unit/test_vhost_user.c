/*
 * The vhost-user frontend against a scripted fake back-end on a socketpair: byte layouts,
 * fds passed, negotiation, REPLY_ACK, malformed replies, sockets and the back-end channel.
 * Layouts are checked at literal offsets, not through the library's own structs; the
 * back-end's side of the wire is tests/support's (vu_wire, and vu_backend for a threaded
 * one).
 */
#include "../../vhost/vhost_user.h"

#include "../support/vu_backend.h"
#include "../support/vu_wire.h"
#include "check_main.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 200
#define FL_REQ VU_WIRE_FL_REQ
#define FL_REQ_NEED (VU_WIRE_FL_REQ | VU_WIRE_FL_NEED_REPLY)
#define FL_REPLY VU_WIRE_FL_REPLY
#define PF(bit) (1ULL << VHOST_USER_PROTOCOL_F_##bit)
#define F_PROTOCOL (1ULL << 30)

static struct vhost_user_conn conn;
static int be = -1; /* the fake back-end's end of the vhost-user socket */
static int bk = -1; /* the fake back-end's end of the backend-request channel */

/* --- fake back-end plumbing ----------------------------------------------------------- */

static void be_read(struct vu_wire_msg *m)
{
    ck_assert_msg(vu_wire_recv(be, m, 1000) == 0, "the back-end received no complete message");
}

static void be_reply(uint32_t request, uint32_t flags, const void *payload, uint32_t size)
{
    ck_assert_int_eq(vu_wire_send(be, request, flags, size, payload, size, NULL, 0), 0);
}

static void be_reply_u64(uint32_t request, uint64_t value)
{
    be_reply(request, FL_REPLY, &value, 8);
}

static void be_reply_state(uint32_t request, uint32_t index, uint32_t num)
{
    uint32_t p[2] = {index, num};

    be_reply(request, FL_REPLY, p, 8);
}

static int pending(int fd)
{
    int n = -1;

    ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

static void expect_header(const struct vu_wire_msg *m, uint32_t request, uint32_t flags,
                          uint32_t size, int nfds)
{
    ck_assert_uint_eq(m->request, request);
    ck_assert_uint_eq(m->flags, flags);
    ck_assert_uint_eq(m->size, size);
    ck_assert_int_eq(m->nfds, nfds);
}

static void same_file(int a, int b)
{
    struct stat sa, sb;

    ck_assert_int_eq(fstat(a, &sa), 0);
    ck_assert_int_eq(fstat(b, &sb), 0);
    ck_assert_uint_eq(sa.st_ino, sb.st_ino);
    ck_assert_uint_eq(sa.st_dev, sb.st_dev);
}

static int make_memfd(const char *name, size_t size, const char *magic)
{
    int fd = memfd_create(name, MFD_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    ck_assert_int_eq(pwrite(fd, magic, strlen(magic), 0), (ssize_t)strlen(magic));
    return fd;
}

/* stderr capture, to check what the library logs. */
static FILE *capture_file;
static int saved_stderr = -1;
static char captured[8192];

static void capture_start(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    ck_assert_ptr_nonnull(capture_file);
    saved_stderr = dup(2);
    dup2(fileno(capture_file), 2);
}

static const char *capture_end(void)
{
    size_t n;

    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    rewind(capture_file);
    n = fread(captured, 1, sizeof(captured) - 1, capture_file);
    captured[n] = 0;
    fclose(capture_file);
    return captured;
}

static void setup(void)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    vhost_user_conn_init(&conn, sv[0]);
    conn.timeout_ms = TIMEOUT_MS;
    be = sv[1];
}

static void teardown(void)
{
    vhost_user_conn_close(&conn);
    if (be >= 0)
        close(be);
    if (bk >= 0)
        close(bk);
    be = bk = -1;
}

/* After a protocol error: broken, and nothing more is sent. */
static void expect_broken(void)
{
    ck_assert(conn.broken);
    ck_assert_int_eq(vhost_user_set_owner(&conn), -EPIPE);
}

/* --- layouts -------------------------------------------------------------------------- */

START_TEST(get_features_layout_and_reply)
{
    struct vu_wire_msg m;
    uint64_t f = 0;

    be_reply_u64(1, 0x1122334455667788ULL);
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), 0);
    ck_assert_uint_eq(f, 0x1122334455667788ULL);
    ck_assert_uint_eq(conn.features, 0x1122334455667788ULL);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
}
END_TEST

START_TEST(set_features_adds_protocol_bit_and_refuses_unoffered)
{
    struct vu_wire_msg m;
    uint64_t f;

    be_reply_u64(1, (1ULL << 32) | F_PROTOCOL | (1ULL << 5));
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), 0);
    ck_assert_int_eq(vhost_user_set_features(&conn, (1ULL << 32) | (1ULL << 5)), 0);
    be_read(&m);
    be_read(&m);
    expect_header(&m, 2, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), (1ULL << 32) | F_PROTOCOL | (1ULL << 5));
    ck_assert_uint_eq(conn.acked_features, (1ULL << 32) | F_PROTOCOL | (1ULL << 5));
    ck_assert_int_eq(vhost_user_set_features(&conn, 1ULL << 7), -EINVAL);
    ck_assert_int_eq(pending(be), 0);
    ck_assert(!conn.broken);
}
END_TEST

START_TEST(set_mem_table_layout_and_fds)
{
    int lo = make_memfd("guest-lo", 0x8000, "LOWMEM");
    int hi = make_memfd("guest-hi", 0x5000, "HIGHMEM");
    struct vhost_user_mem_region r[2] = {
        {0x0, 0x8000, 0x7f0000000000ULL, 0x0, lo},
        {0x100000000ULL, 0x4000, 0x7f1000000000ULL, 0x1000, hi},
    };
    struct vu_wire_msg m;
    char *p;

    ck_assert_int_eq(vhost_user_set_mem_table(&conn, r, 2), 0);
    be_read(&m);
    expect_header(&m, 5, FL_REQ, 8 + 2 * 32, 2);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 2);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 8), 0x0);
    ck_assert_uint_eq(vu_wire_u64(&m, 16), 0x8000);
    ck_assert_uint_eq(vu_wire_u64(&m, 24), 0x7f0000000000ULL);
    ck_assert_uint_eq(vu_wire_u64(&m, 32), 0x0);
    ck_assert_uint_eq(vu_wire_u64(&m, 40), 0x100000000ULL);
    ck_assert_uint_eq(vu_wire_u64(&m, 48), 0x4000);
    ck_assert_uint_eq(vu_wire_u64(&m, 56), 0x7f1000000000ULL);
    ck_assert_uint_eq(vu_wire_u64(&m, 64), 0x1000);
    same_file(m.fds[0], lo);
    same_file(m.fds[1], hi);
    /* The back-end maps what it received and sees our memory. */
    p = mmap(NULL, 0x5000, PROT_READ, MAP_SHARED, m.fds[1], 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    ck_assert_str_eq(p, "HIGHMEM");
    munmap(p, 0x5000);
    vu_wire_close_fds(&m);
    close(lo);
    close(hi);
}
END_TEST

START_TEST(set_mem_table_rejects_bad_arguments_without_sending)
{
    struct vhost_user_mem_region r[9] = {{0}};

    for (int i = 0; i < 9; i++)
        r[i].fd = 0;
    ck_assert_int_eq(vhost_user_set_mem_table(&conn, r, 9), -E2BIG);
    r[1].fd = -1;
    ck_assert_int_eq(vhost_user_set_mem_table(&conn, r, 2), -EBADF);
    ck_assert_int_eq(pending(be), 0);
    ck_assert(!conn.broken);
}
END_TEST

START_TEST(set_vring_addr_layout)
{
    struct vhost_user_vring_addr a = {
        .index = 1,
        .flags = VHOST_USER_VRING_F_LOG,
        .desc_user_addr = 0x7f0000001000ULL,
        .used_user_addr = 0x7f0000002000ULL,
        .avail_user_addr = 0x7f0000003000ULL,
        .log_guest_addr = 0x4000,
    };
    struct vu_wire_msg m;

    be_reply_u64(1, 0); /* the logging flag asks for a barrier (see below) */
    ck_assert_int_eq(vhost_user_set_vring_addr(&conn, &a), 0);
    be_read(&m);
    expect_header(&m, 9, FL_REQ, 40, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 1);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 1);
    ck_assert_uint_eq(vu_wire_u64(&m, 8), 0x7f0000001000ULL);
    ck_assert_uint_eq(vu_wire_u64(&m, 16), 0x7f0000002000ULL);
    ck_assert_uint_eq(vu_wire_u64(&m, 24), 0x7f0000003000ULL);
    ck_assert_uint_eq(vu_wire_u64(&m, 32), 0x4000);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
}
END_TEST

START_TEST(vring_state_requests_layout)
{
    struct vu_wire_msg m;

    conn.features = F_PROTOCOL;
    conn.protocol_features = PF(CROSS_ENDIAN);
    ck_assert_int_eq(vhost_user_set_vring_num(&conn, 0, 256), 0);
    ck_assert_int_eq(vhost_user_set_vring_base(&conn, 1, 0x1234), 0);
    be_reply_u64(1, F_PROTOCOL); /* SET_VRING_ENABLE's barrier (see below) */
    ck_assert_int_eq(vhost_user_set_vring_enable(&conn, 1, true), 0);
    ck_assert_int_eq(vhost_user_set_vring_endian(&conn, 2, true), 0);
    be_read(&m);
    expect_header(&m, 8, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 256);
    be_read(&m);
    expect_header(&m, 10, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 1);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 0x1234);
    be_read(&m);
    expect_header(&m, 18, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 1);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 1);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    be_read(&m);
    expect_header(&m, 23, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 2);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 1);
}
END_TEST

START_TEST(get_vring_base_layout_and_reply)
{
    struct vu_wire_msg m;
    unsigned base = 0;

    be_reply_state(11, 1, 0x4321);
    ck_assert_int_eq(vhost_user_get_vring_base(&conn, 1, &base), 0);
    ck_assert_uint_eq(base, 0x4321);
    be_read(&m);
    expect_header(&m, 11, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 1);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 0);
}
END_TEST

START_TEST(vring_kick_call_err_fds_and_nofd)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    uint64_t v = 0x2a, got = 0;
    struct vu_wire_msg m;

    ck_assert_int_ge(efd, 0);
    ck_assert_int_eq(vhost_user_set_vring_kick(&conn, 1, efd), 0);
    ck_assert_int_eq(vhost_user_set_vring_call(&conn, 0, -1), 0);
    ck_assert_int_eq(vhost_user_set_vring_err(&conn, 3, efd), 0);
    ck_assert_int_eq(vhost_user_set_vring_kick(&conn, 256, efd), -EINVAL);
    be_read(&m);
    expect_header(&m, 12, FL_REQ, 8, 1);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), 1);
    /* Writing through the received fd signals our eventfd: it is the same object. */
    ck_assert_int_eq(write(m.fds[0], &v, 8), 8);
    ck_assert_int_eq(read(efd, &got, 8), 8);
    ck_assert_uint_eq(got, 0x2a);
    vu_wire_close_fds(&m);
    be_read(&m);
    expect_header(&m, 13, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), 0x100);
    be_read(&m);
    expect_header(&m, 14, FL_REQ, 8, 1);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), 3);
    same_file(m.fds[0], efd);
    vu_wire_close_fds(&m);
    ck_assert_int_eq(pending(be), 0);
    close(efd);
}
END_TEST

START_TEST(set_log_base_accepts_0_8_16_byte_replies)
{
    static const uint8_t body[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    int log = make_memfd("dirty-log", 0x10000, "");
    uint32_t sizes[3] = {0, 8, 16};
    struct vu_wire_msg m;

    conn.protocol_features = PF(LOG_SHMFD) | PF(REPLY_ACK);
    /* All three replies queued at once: each call must read exactly its own. */
    for (int i = 0; i < 3; i++)
        be_reply(6, FL_REPLY, body, sizes[i]);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(vhost_user_set_log_base(&conn, log, 0x10000, 0x200), 0);
        be_read(&m);
        /* It has a reply of its own, so no NEED_REPLY even with REPLY_ACK. */
        expect_header(&m, 6, FL_REQ, 16, 1);
        ck_assert_uint_eq(vu_wire_u64(&m, 0), 0x10000);
        ck_assert_uint_eq(vu_wire_u64(&m, 8), 0x200);
        same_file(m.fds[0], log);
        vu_wire_close_fds(&m);
    }
    ck_assert(!conn.broken);
    ck_assert_int_eq(pending(conn.fd), 0);
    close(log);
}
END_TEST

START_TEST(set_log_fd_layout)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    struct vu_wire_msg m;

    ck_assert_int_eq(vhost_user_set_log_fd(&conn, efd), 0);
    be_read(&m);
    expect_header(&m, 7, FL_REQ, 0, 1);
    same_file(m.fds[0], efd);
    vu_wire_close_fds(&m);
    close(efd);
}
END_TEST

START_TEST(backend_channel_fd_reaches_the_backend)
{
    struct vu_wire_msg m;
    char buf[8] = {0};
    struct stat st;

    ck_assert_int_eq(vhost_user_open_backend_channel(&conn), -ENOTSUP);
    ck_assert_int_eq(pending(be), 0);
    conn.protocol_features = PF(BACKEND_REQ);
    ck_assert_int_eq(vhost_user_open_backend_channel(&conn), 0);
    ck_assert_int_ge(conn.backend_fd, 0);
    be_read(&m);
    expect_header(&m, 21, FL_REQ, 0, 1);
    ck_assert_int_eq(fstat(m.fds[0], &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(write(m.fds[0], "ping", 4), 4);
    ck_assert_int_eq(read(conn.backend_fd, buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "ping");
    vu_wire_close_fds(&m);
}
END_TEST

START_TEST(rarp_mtu_status_layout)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    struct vu_wire_msg m;
    uint8_t status = 0;

    conn.protocol_features = PF(RARP) | PF(MTU) | PF(STATUS);
    ck_assert_int_eq(vhost_user_send_rarp(&conn, mac), 0);
    ck_assert_int_eq(vhost_user_net_set_mtu(&conn, 9000), 0);
    ck_assert_int_eq(vhost_user_set_status(&conn, 0x0f), 0);
    be_reply_u64(40, 0x07);
    ck_assert_int_eq(vhost_user_get_status(&conn, &status), 0);
    ck_assert_uint_eq(status, 0x07);
    be_read(&m);
    expect_header(&m, 19, FL_REQ, 8, 0);
    ck_assert_mem_eq(m.payload, mac, 6);
    ck_assert_uint_eq(m.payload[6], 0);
    ck_assert_uint_eq(m.payload[7], 0);
    be_read(&m);
    expect_header(&m, 20, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), 9000);
    be_read(&m);
    expect_header(&m, 39, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), 0x0f);
    be_read(&m);
    expect_header(&m, 40, FL_REQ, 0, 0);
}
END_TEST

START_TEST(mem_slot_requests_layout)
{
    int fd = make_memfd("hotplug", 0x2000, "");
    struct vhost_user_mem_region r = {0x200000000ULL, 0x2000, 0x7f2000000000ULL, 0x1000, fd};
    uint64_t slots = 0;
    struct vu_wire_msg m;

    conn.protocol_features = PF(CONFIGURE_MEM_SLOTS);
    be_reply_u64(36, 509);
    ck_assert_int_eq(vhost_user_get_max_mem_slots(&conn, &slots), 0);
    ck_assert_uint_eq(slots, 509);
    ck_assert_int_eq(vhost_user_add_mem_reg(&conn, &r), 0);
    ck_assert_int_eq(vhost_user_rem_mem_reg(&conn, &r), 0);
    be_read(&m);
    expect_header(&m, 36, FL_REQ, 0, 0);
    for (int req = 37; req <= 38; req++) {
        be_read(&m);
        expect_header(&m, req, FL_REQ, 40, req == 37 ? 1 : 0);
        ck_assert_uint_eq(vu_wire_u64(&m, 0), 0);
        ck_assert_uint_eq(vu_wire_u64(&m, 8), 0x200000000ULL);
        ck_assert_uint_eq(vu_wire_u64(&m, 16), 0x2000);
        ck_assert_uint_eq(vu_wire_u64(&m, 24), 0x7f2000000000ULL);
        ck_assert_uint_eq(vu_wire_u64(&m, 32), 0x1000);
        if (req == 37)
            same_file(m.fds[0], fd);
        vu_wire_close_fds(&m);
    }
    close(fd);
}
END_TEST

/* GET_STATUS, then SET_STATUS with the bits added; nothing more when they are set. */
START_TEST(add_status_sets_missing_bits_only)
{
    struct vu_wire_msg m;

    conn.protocol_features = PF(STATUS);
    be_reply_u64(40, 0x08);
    be_reply_u64(40, 0x0f);
    ck_assert_int_eq(vhost_user_add_status(&conn, 0x07), 0);
    ck_assert_int_eq(vhost_user_add_status(&conn, 0x07), 0);
    be_read(&m);
    expect_header(&m, 40, FL_REQ, 0, 0);
    be_read(&m);
    expect_header(&m, 39, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), 0x0f);
    be_read(&m);
    expect_header(&m, 40, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
    conn.protocol_features = 0;
    ck_assert_int_eq(vhost_user_add_status(&conn, 0x08), -ENOTSUP);
}
END_TEST

static void expect_mem_reg(uint32_t request, const struct vhost_user_mem_region *r)
{
    struct vu_wire_msg m;

    be_read(&m);
    expect_header(&m, request, FL_REQ, 40, request == 37 ? 1 : 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 8), r->guest_phys_addr);
    ck_assert_uint_eq(vu_wire_u64(&m, 16), r->memory_size);
    ck_assert_uint_eq(vu_wire_u64(&m, 24), r->userspace_addr);
    vu_wire_close_fds(&m);
}

/* Without CONFIGURE_MEM_SLOTS: the whole table every time. With it: only the difference
 * between what the back-end holds and the regions given (QEMU's add/remove diff). */
START_TEST(update_mem_sends_table_or_difference)
{
    int fd = make_memfd("ram", 0x2000, "");
    struct vhost_user_mem_region r[3] = {{0, 0x1000, 0x7f0000000000ULL, 0, fd},
                                         {0x100000000ULL, 0x1000, 0x7f0000001000ULL, 0x1000, fd},
                                         {0x200000000ULL, 0x1000, 0x7f0000002000ULL, 0, fd}};
    struct vu_wire_msg m;

    ck_assert_int_eq(vhost_user_update_mem(&conn, r, 2), 0);
    be_read(&m);
    expect_header(&m, 5, FL_REQ, 8 + 2 * 32, 2);
    vu_wire_close_fds(&m);
    /* The same table again: the back-end holds it (a migration's destination sent it
     * ahead), nothing is sent. */
    ck_assert_int_eq(vhost_user_update_mem(&conn, r, 2), 0);
    ck_assert_int_eq(pending(be), 0);
    /* Another table: all of it again. */
    ck_assert_int_eq(vhost_user_update_mem(&conn, r + 1, 2), 0);
    be_read(&m);
    expect_header(&m, 5, FL_REQ, 8 + 2 * 32, 2);
    vu_wire_close_fds(&m);
    /* CONFIGURE_MEM_SLOTS, as a new connection negotiates it: nothing held yet. */
    conn.nmem_held = 0;
    conn.protocol_features = PF(CONFIGURE_MEM_SLOTS);
    conn.max_mem_slots = 2;
    ck_assert_int_eq(vhost_user_update_mem(&conn, r, 2), 0);
    expect_mem_reg(37, &r[0]);
    expect_mem_reg(37, &r[1]);
    ck_assert_uint_eq(conn.nmem_held, 2);
    /* The same regions again: nothing to send. */
    ck_assert_int_eq(vhost_user_update_mem(&conn, r, 2), 0);
    ck_assert_int_eq(pending(be), 0);
    /* Region 0 goes, region 2 comes: removal first. */
    ck_assert_int_eq(vhost_user_update_mem(&conn, r + 1, 2), 0);
    expect_mem_reg(38, &r[0]);
    expect_mem_reg(37, &r[2]);
    ck_assert_int_eq(pending(be), 0);
    /* More regions than slots: refused before anything is sent. */
    ck_assert_int_eq(vhost_user_update_mem(&conn, r, 3), -ENOSPC);
    ck_assert_int_eq(pending(be), 0);
    ck_assert(!conn.broken);
    /* A new connection holds nothing. */
    vhost_user_conn_init(&conn, conn.fd);
    ck_assert_uint_eq(conn.nmem_held, 0);
    close(fd);
}
END_TEST

/* A failed ADD_MEM_REG is not recorded as held: the next update sends it again. */
START_TEST(update_mem_records_only_acked_regions)
{
    int fd = make_memfd("ram", 0x1000, "");
    struct vhost_user_mem_region r = {0, 0x1000, 0x7f0000000000ULL, 0, fd};
    struct vu_wire_msg m;

    conn.protocol_features = PF(CONFIGURE_MEM_SLOTS) | PF(REPLY_ACK);
    conn.max_mem_slots = 8;
    be_reply_u64(37, 1);
    ck_assert_int_eq(vhost_user_update_mem(&conn, &r, 1), -EIO);
    ck_assert_uint_eq(conn.nmem_held, 0);
    be_reply_u64(37, 0);
    ck_assert_int_eq(vhost_user_update_mem(&conn, &r, 1), 0);
    ck_assert_uint_eq(conn.nmem_held, 1);
    for (int i = 0; i < 2; i++) {
        be_read(&m);
        expect_header(&m, 37, FL_REQ_NEED, 40, 1);
        vu_wire_close_fds(&m);
    }
    close(fd);
}
END_TEST

START_TEST(config_requests_layout)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
    uint8_t reply[18] = {0}, buf[6] = {0};
    uint32_t six = 6;
    struct vu_wire_msg m;

    conn.protocol_features = PF(CONFIG);
    memcpy(reply + 4, &six, 4);
    memcpy(reply + 12, mac, 6);
    be_reply(24, FL_REPLY, reply, sizeof(reply));
    ck_assert_int_eq(vhost_user_get_config(&conn, 0, buf, 6, 0), 0);
    ck_assert_mem_eq(buf, mac, 6);
    ck_assert_int_eq(vhost_user_set_config(&conn, 4, "\xaa\xbb", 2, 1), 0);
    be_read(&m);
    expect_header(&m, 24, FL_REQ, 18, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 6);
    ck_assert_uint_eq(vu_wire_u32(&m, 8), 0);
    be_read(&m);
    expect_header(&m, 25, FL_REQ, 14, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 4);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 2);
    ck_assert_uint_eq(vu_wire_u32(&m, 8), 1);
    ck_assert_uint_eq(m.payload[12], 0xaa);
    ck_assert_uint_eq(m.payload[13], 0xbb);
}
END_TEST

START_TEST(get_config_empty_reply_is_failure_not_break)
{
    uint8_t buf[4];

    conn.protocol_features = PF(CONFIG);
    be_reply(24, FL_REPLY, NULL, 0);
    ck_assert_int_eq(vhost_user_get_config(&conn, 0, buf, 4, 0), -EIO);
    ck_assert(!conn.broken);
    ck_assert_int_eq(vhost_user_get_config(&conn, 0, buf, 257, 0), -E2BIG);
}
END_TEST

START_TEST(iotlb_msg_layout_always_needs_reply)
{
    struct vhost_user_iotlb t = {0x1000, 0x2000, 0x7f3000000000ULL, 3, 2};
    struct vu_wire_msg m;

    ck_assert_int_eq(vhost_user_iotlb_msg(&conn, &t), -ENOTSUP);
    conn.acked_features = 1ULL << 33;
    be_reply_u64(22, 0);
    ck_assert_int_eq(vhost_user_iotlb_msg(&conn, &t), 0);
    be_read(&m);
    expect_header(&m, 22, FL_REQ_NEED, 32, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), 0x1000);
    ck_assert_uint_eq(vu_wire_u64(&m, 8), 0x2000);
    ck_assert_uint_eq(vu_wire_u64(&m, 16), 0x7f3000000000ULL);
    ck_assert_uint_eq(m.payload[24], 3);
    ck_assert_uint_eq(m.payload[25], 2);
    for (int i = 26; i < 32; i++)
        ck_assert_uint_eq(m.payload[i], 0);
}
END_TEST

START_TEST(owner_and_reset_requests_layout)
{
    struct vu_wire_msg m;

    ck_assert_int_eq(vhost_user_set_owner(&conn), 0);
    ck_assert_int_eq(vhost_user_reset_owner(&conn), 0);
    ck_assert_int_eq(vhost_user_reset_device(&conn), -ENOTSUP);
    conn.protocol_features = PF(RESET_DEVICE);
    ck_assert_int_eq(vhost_user_reset_device(&conn), 0);
    be_read(&m);
    expect_header(&m, 3, FL_REQ, 0, 0);
    be_read(&m);
    expect_header(&m, 4, FL_REQ, 0, 0);
    be_read(&m);
    expect_header(&m, 34, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
}
END_TEST

/* --- negotiation and REPLY_ACK -------------------------------------------------------- */

START_TEST(negotiate_without_protocol_features)
{
    struct vu_wire_msg m;

    be_reply_u64(1, (1ULL << 32) | (1ULL << 5));
    ck_assert_int_eq(vhost_user_negotiate(&conn, ~0ULL), 0);
    ck_assert_uint_eq(conn.features, (1ULL << 32) | (1ULL << 5));
    ck_assert_uint_eq(conn.protocol_features, 0);
    ck_assert_uint_eq(conn.max_queues, 1);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
    /* Nothing that needs the protocol-features extension may be sent now. */
    ck_assert_int_eq(vhost_user_set_vring_enable(&conn, 0, true), -ENOTSUP);
    ck_assert_int_eq(vhost_user_set_protocol_features(&conn, 0), -ENOTSUP);
    ck_assert_int_eq(pending(be), 0);
}
END_TEST

START_TEST(negotiate_with_protocol_features_and_mq)
{
    uint64_t offered = PF(MQ) | PF(LOG_SHMFD) | PF(RARP) | PF(PAGEFAULT);
    struct vu_wire_msg m;

    be_reply_u64(1, (1ULL << 32) | F_PROTOCOL);
    be_reply_u64(15, offered);
    be_reply_u64(17, 4);
    ck_assert_int_eq(vhost_user_negotiate(&conn, PF(MQ) | PF(RARP) | PF(PAGEFAULT) | PF(REPLY_ACK)),
                     0);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    be_read(&m);
    expect_header(&m, 15, FL_REQ, 0, 0);
    be_read(&m);
    expect_header(&m, 16, FL_REQ, 8, 0);
    /* PAGEFAULT is offered and wanted but this library cannot drive it. */
    ck_assert_uint_eq(vu_wire_u64(&m, 0), PF(MQ) | PF(RARP));
    be_read(&m);
    expect_header(&m, 17, FL_REQ, 0, 0);
    ck_assert_uint_eq(conn.backend_protocol_features, offered);
    ck_assert_uint_eq(conn.protocol_features, PF(MQ) | PF(RARP));
    ck_assert_uint_eq(conn.max_queues, 4);
    /* Without REPLY_ACK a plain request goes without NEED_REPLY and returns at once. */
    ck_assert_int_eq(vhost_user_set_owner(&conn), 0);
    be_read(&m);
    expect_header(&m, 3, FL_REQ, 0, 0);
}
END_TEST

/* GET_MAX_MEM_SLOTS follows GET_QUEUE_NUM when CONFIGURE_MEM_SLOTS is negotiated. */
START_TEST(negotiate_reads_max_mem_slots)
{
    struct vu_wire_msg m;

    be_reply_u64(1, F_PROTOCOL);
    be_reply_u64(15, PF(MQ) | PF(CONFIGURE_MEM_SLOTS));
    be_reply_u64(17, 2);
    be_reply_u64(36, 32);
    ck_assert_int_eq(vhost_user_negotiate(&conn, PF(MQ) | PF(CONFIGURE_MEM_SLOTS)), 0);
    ck_assert_uint_eq(conn.max_mem_slots, 32);
    for (uint32_t req = 0; req < 5; req++)
        be_read(&m);
    expect_header(&m, 36, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
    /* Not wanted: not asked. */
    be_reply_u64(1, F_PROTOCOL);
    be_reply_u64(15, PF(CONFIGURE_MEM_SLOTS));
    ck_assert_int_eq(vhost_user_negotiate(&conn, 0), 0);
    ck_assert_uint_eq(conn.max_mem_slots, 0);
    for (uint32_t req = 0; req < 3; req++)
        be_read(&m);
    expect_header(&m, 16, FL_REQ, 8, 0);
    ck_assert_int_eq(pending(be), 0);
}
END_TEST

START_TEST(negotiate_with_reply_ack)
{
    struct vu_wire_msg m;
    uint64_t f;

    be_reply_u64(1, F_PROTOCOL);
    be_reply_u64(15, PF(REPLY_ACK));
    ck_assert_int_eq(vhost_user_negotiate(&conn, PF(REPLY_ACK) | PF(MQ)), 0);
    ck_assert_uint_eq(conn.protocol_features, PF(REPLY_ACK));
    ck_assert_uint_eq(conn.max_queues, 1);
    be_read(&m);
    be_read(&m);
    be_read(&m);
    /* REPLY_ACK takes effect after SET_PROTOCOL_FEATURES, not on it. */
    expect_header(&m, 16, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), PF(REPLY_ACK));
    ck_assert_int_eq(pending(be), 0);
    be_reply_u64(8, 0);
    ck_assert_int_eq(vhost_user_set_vring_num(&conn, 0, 256), 0);
    be_read(&m);
    expect_header(&m, 8, FL_REQ_NEED, 8, 0);
    /* A request with a reply of its own does not ask for an ack too. */
    be_reply_u64(1, F_PROTOCOL);
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), 0);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    /* Even with REPLY_ACK already on, SET_PROTOCOL_FEATURES goes without NEED_REPLY. */
    ck_assert_int_eq(vhost_user_set_protocol_features(&conn, PF(REPLY_ACK)), 0);
    be_read(&m);
    expect_header(&m, 16, FL_REQ, 8, 0);
    ck_assert_int_eq(pending(conn.fd), 0);
    ck_assert(!conn.broken);
}
END_TEST

START_TEST(reply_ack_failure_returns_eio_and_keeps_connection)
{
    const char *log;
    struct vu_wire_msg m;

    conn.protocol_features = PF(REPLY_ACK);
    be_reply_u64(8, 1);
    capture_start();
    ck_assert_int_eq(vhost_user_set_vring_num(&conn, 0, 3), -EIO);
    log = capture_end();
    ck_assert_ptr_nonnull(strstr(log, "SET_VRING_NUM failed: back-end replied 0x1"));
    ck_assert(!conn.broken);
    be_reply_u64(10, 0);
    ck_assert_int_eq(vhost_user_set_vring_base(&conn, 0, 0), 0);
    be_read(&m);
    expect_header(&m, 8, FL_REQ_NEED, 8, 0);
    be_read(&m);
    expect_header(&m, 10, FL_REQ_NEED, 8, 0);
}
END_TEST

START_TEST(unnegotiated_requests_are_refused_without_sending)
{
    struct vhost_user_mem_region r = {0, 0x1000, 0, 0, 0};
    struct vhost_user_iotlb t = {0};
    uint64_t v;
    uint8_t s, buf[4] = {0};
    uint8_t mac[6] = {0};

    conn.features = F_PROTOCOL; /* offered, but no protocol feature negotiated */
    ck_assert_int_eq(vhost_user_get_queue_num(&conn, &v), -ENOTSUP);
    ck_assert_int_eq(vhost_user_send_rarp(&conn, mac), -ENOTSUP);
    ck_assert_int_eq(vhost_user_net_set_mtu(&conn, 1500), -ENOTSUP);
    ck_assert_int_eq(vhost_user_set_log_base(&conn, 0, 0x1000, 0), -ENOTSUP);
    ck_assert_int_eq(vhost_user_set_backend_req_fd(&conn, 0), -ENOTSUP);
    ck_assert_int_eq(vhost_user_set_vring_endian(&conn, 0, false), -ENOTSUP);
    ck_assert_int_eq(vhost_user_get_config(&conn, 0, buf, 4, 0), -ENOTSUP);
    ck_assert_int_eq(vhost_user_set_config(&conn, 0, buf, 4, 0), -ENOTSUP);
    ck_assert_int_eq(vhost_user_reset_device(&conn), -ENOTSUP);
    ck_assert_int_eq(vhost_user_get_max_mem_slots(&conn, &v), -ENOTSUP);
    ck_assert_int_eq(vhost_user_add_mem_reg(&conn, &r), -ENOTSUP);
    ck_assert_int_eq(vhost_user_rem_mem_reg(&conn, &r), -ENOTSUP);
    ck_assert_int_eq(vhost_user_get_status(&conn, &s), -ENOTSUP);
    ck_assert_int_eq(vhost_user_set_status(&conn, 1), -ENOTSUP);
    ck_assert_int_eq(vhost_user_iotlb_msg(&conn, &t), -ENOTSUP);
    ck_assert_int_eq(pending(be), 0);
    ck_assert(!conn.broken);
}
END_TEST

START_TEST(set_protocol_features_refuses_unoffered_bits)
{
    conn.features = F_PROTOCOL;
    conn.backend_protocol_features = PF(MQ);
    ck_assert_int_eq(vhost_user_set_protocol_features(&conn, PF(MQ) | PF(REPLY_ACK)), -EINVAL);
    ck_assert_int_eq(pending(be), 0);
    ck_assert_uint_eq(conn.protocol_features, 0);
}
END_TEST

/* --- requests that must be applied before the caller goes on ------------------------- */

/* The backend's data plane may see the guest's first request before its control plane
 * sees the enable: without REPLY_ACK, a GET_FEATURES round trip after SET_VRING_ENABLE
 * (QEMU's enforce_reply) tells vmm the enable was handled. */
START_TEST(set_vring_enable_without_reply_ack_is_followed_by_get_features)
{
    struct vu_wire_msg m;

    conn.features = F_PROTOCOL | (1ULL << 32);
    be_reply_u64(1, 0x5); /* whatever it says: only its arrival counts */
    ck_assert_int_eq(vhost_user_set_vring_enable(&conn, 3, false), 0);
    ck_assert_uint_eq(conn.features, F_PROTOCOL | (1ULL << 32));
    be_read(&m);
    expect_header(&m, 18, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 3);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 0);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
    ck_assert_int_eq(pending(conn.fd), 0);
    ck_assert(!conn.broken);
}
END_TEST

/* A back-end that never answers the barrier is treated like one that never replies. */
START_TEST(set_vring_enable_barrier_unanswered_times_out)
{
    int64_t t0 = support_now_ms();

    conn.features = F_PROTOCOL;
    ck_assert_int_eq(vhost_user_set_vring_enable(&conn, 0, true), -ETIMEDOUT);
    ck_assert_int_ge(support_now_ms() - t0, TIMEOUT_MS - 10);
    expect_broken();
}
END_TEST

/* With REPLY_ACK the ack is the confirmation: no GET_FEATURES, and a refusal is -EIO. */
START_TEST(set_vring_enable_with_reply_ack_waits_for_the_ack)
{
    struct vu_wire_msg m;

    conn.features = F_PROTOCOL;
    conn.protocol_features = PF(REPLY_ACK);
    be_reply_u64(18, 0);
    be_reply_u64(18, 1);
    ck_assert_int_eq(vhost_user_set_vring_enable(&conn, 0, true), 0);
    capture_start();
    ck_assert_int_eq(vhost_user_set_vring_enable(&conn, 1, true), -EIO);
    capture_end();
    for (int i = 0; i < 2; i++) {
        be_read(&m);
        expect_header(&m, 18, FL_REQ_NEED, 8, 0);
    }
    ck_assert_int_eq(pending(be), 0);
    ck_assert(!conn.broken);
}
END_TEST

/* Dirty logging counts from the moment the back-end has it: SET_FEATURES with LOG_ALL waits,
 * as in QEMU's vhost_user_set_features; without it, nothing more is sent. */
START_TEST(set_features_with_log_all_waits_for_the_backend)
{
    uint64_t log_all = 1ULL << VHOST_USER_F_LOG_ALL;
    struct vu_wire_msg m;

    conn.features = (1ULL << 32) | log_all;
    ck_assert_int_eq(vhost_user_set_features(&conn, 1ULL << 32), 0);
    be_read(&m);
    expect_header(&m, 2, FL_REQ, 8, 0);
    ck_assert_int_eq(pending(be), 0);
    be_reply_u64(1, conn.features);
    ck_assert_int_eq(vhost_user_set_features(&conn, (1ULL << 32) | log_all), 0);
    be_read(&m);
    expect_header(&m, 2, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), (1ULL << 32) | log_all);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
    ck_assert_int_eq(pending(conn.fd), 0);
    ck_assert_uint_eq(conn.acked_features, (1ULL << 32) | log_all);
}
END_TEST

/* Likewise a ring address that turns on logging of its used ring. */
START_TEST(set_vring_addr_with_log_flag_waits_for_the_backend)
{
    struct vhost_user_vring_addr a = {.index = 0, .desc_user_addr = 0x1000};
    struct vu_wire_msg m;

    ck_assert_int_eq(vhost_user_set_vring_addr(&conn, &a), 0);
    be_read(&m);
    expect_header(&m, 9, FL_REQ, 40, 0);
    ck_assert_int_eq(pending(be), 0);
    a.flags = VHOST_USER_VRING_F_LOG;
    a.log_guest_addr = 0x2000;
    be_reply_u64(1, 0);
    ck_assert_int_eq(vhost_user_set_vring_addr(&conn, &a), 0);
    be_read(&m);
    expect_header(&m, 9, FL_REQ, 40, 0);
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    ck_assert_int_eq(pending(be), 0);
    ck_assert_int_eq(pending(conn.fd), 0);
}
END_TEST

/* --- packed rings: the vring base carries both positions ------------------------------- */

#define F_RING_PACKED (1ULL << 34)

START_TEST(set_vring_base_packed_encodes_both_positions)
{
    struct vhost_user_vring_pos pos = {.avail_idx = 5, .avail_wrap = true, .used_idx = 3};
    struct vu_wire_msg m;

    /* The encoding means nothing to a back-end that was not told the ring is packed. */
    capture_start();
    ck_assert_int_eq(vhost_user_set_vring_base_packed(&conn, 1, &pos), -EINVAL);
    capture_end();
    ck_assert_int_eq(pending(be), 0);
    conn.acked_features = F_RING_PACKED;
    ck_assert_int_eq(vhost_user_set_vring_base_packed(&conn, 1, &pos), 0);
    pos = (struct vhost_user_vring_pos){
        .avail_idx = 0x7fff, .avail_wrap = false, .used_idx = 0x7ffe, .used_wrap = true};
    ck_assert_int_eq(vhost_user_set_vring_base_packed(&conn, 2, &pos), 0);
    be_read(&m);
    expect_header(&m, 10, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 1);
    /* bits 0-14 avail index, 15 its wrap counter, 16-30 used index, 31 its wrap counter */
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 5 | 0x8000 | 3 << 16);
    be_read(&m);
    ck_assert_uint_eq(vu_wire_u32(&m, 0), 2);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 0x7fffu | 0x7ffeu << 16 | 0x80000000u);
    /* An index past 15 bits would spill into the wrap counter: refused. */
    pos.used_idx = 0x8000;
    capture_start();
    ck_assert_int_eq(vhost_user_set_vring_base_packed(&conn, 2, &pos), -EINVAL);
    capture_end();
    ck_assert_int_eq(pending(be), 0);
    ck_assert(!conn.broken);
}
END_TEST

START_TEST(get_vring_base_packed_decodes_both_positions)
{
    struct vhost_user_vring_pos pos;
    struct vu_wire_msg m;

    conn.acked_features = F_RING_PACKED;
    be_reply_state(11, 0, 0x80028007u); /* avail 7 wrap 0, used 2 wrap 1 */
    ck_assert_int_eq(vhost_user_get_vring_base_packed(&conn, 0, &pos), 0);
    ck_assert_uint_eq(pos.avail_idx, 7);
    ck_assert(pos.avail_wrap);
    ck_assert_uint_eq(pos.used_idx, 2);
    ck_assert(pos.used_wrap);
    /* As DPDK answers: only bits 0-15, the used half zero. */
    be_reply_state(11, 0, 0x8005);
    ck_assert_int_eq(vhost_user_get_vring_base_packed(&conn, 0, &pos), 0);
    ck_assert_uint_eq(pos.avail_idx, 5);
    ck_assert(pos.avail_wrap);
    ck_assert_uint_eq(pos.used_idx, 0);
    ck_assert(!pos.used_wrap);
    be_read(&m);
    expect_header(&m, 11, FL_REQ, 8, 0);
    ck_assert_uint_eq(vu_wire_u32(&m, 4), 0); /* the request's num is reserved */
    be_read(&m);
    conn.acked_features = 0;
    capture_start();
    ck_assert_int_eq(vhost_user_get_vring_base_packed(&conn, 0, &pos), -EINVAL);
    capture_end();
    ck_assert_int_eq(pending(be), 0);
}
END_TEST

START_TEST(vring_pos_encoding_round_trips)
{
    for (uint32_t i = 0; i < 4096; i++) {
        uint32_t num = i * 0x9e3779b9u; /* spread over all 32 bits */
        struct vhost_user_vring_pos pos;

        vhost_user_vring_pos_decode(num, &pos);
        ck_assert_uint_lt(pos.avail_idx, 0x8000);
        ck_assert_uint_lt(pos.used_idx, 0x8000);
        ck_assert_uint_eq(vhost_user_vring_pos_encode(&pos), num);
    }
}
END_TEST

/* --- malformed replies ---------------------------------------------------------------- */

/* A reply the call must refuse: -EPROTO, the connection broken, and the reason logged. */
enum bad_call {
    CALL_GET_FEATURES,
    CALL_GET_VRING_BASE,
    CALL_GET_STATUS,
    CALL_GET_QUEUE_NUM,
    CALL_SET_VRING_NUM,
    CALL_SET_LOG_BASE
};

static const struct bad_reply {
    const char *what;
    uint64_t protocol; /* negotiated before */
    uint32_t request, flags, size;
    uint64_t value; /* the payload's first 8 bytes; the rest zero */
    enum bad_call call;
    const char *says; /* in the log, when given */
} bad_replies[] = {
    {"missing_reply_flag", 0, 1, FL_REQ, 8, 3, CALL_GET_FEATURES, NULL},
    {"wrong_version", 0, 1, 0x4 | 0x2, 8, 3, CALL_GET_FEATURES, NULL},
    {"wrong_payload_size_is_named", 0, 11, FL_REPLY, 4, 7, CALL_GET_VRING_BASE,
     "vhost-user: GET_VRING_BASE reply has size 4, expected 8"},
    {"get_vring_base_reply_for_another_ring", 0, 11, FL_REPLY, 8, (uint64_t)100 << 32 | 5,
     CALL_GET_VRING_BASE, NULL},
    {"set_log_base_rejects_24_byte_reply", PF(LOG_SHMFD), 6, FL_REPLY, 24, 0, CALL_SET_LOG_BASE,
     NULL},
    {"reply_ack_with_wrong_size_breaks", PF(REPLY_ACK), 8, FL_REPLY, 4, 0, CALL_SET_VRING_NUM,
     NULL},
    {"get_status_rejects_value_over_8_bits", PF(STATUS), 40, FL_REPLY, 8, 0x1ff, CALL_GET_STATUS,
     NULL},
    {"get_queue_num_of_zero_is_a_protocol_error", PF(MQ), 17, FL_REPLY, 8, 0, CALL_GET_QUEUE_NUM,
     NULL},
};

static int bad_reply_call(enum bad_call call)
{
    uint64_t u64;
    uint8_t status;
    unsigned base = 0;
    int log, ret;

    switch (call) {
    case CALL_GET_FEATURES:
        return vhost_user_get_features(&conn, &u64);
    case CALL_GET_VRING_BASE:
        ret = vhost_user_get_vring_base(&conn, 1, &base);
        ck_assert_uint_eq(base, 0); /* nothing taken from the bad reply */
        return ret;
    case CALL_GET_STATUS:
        return vhost_user_get_status(&conn, &status);
    case CALL_GET_QUEUE_NUM:
        return vhost_user_get_queue_num(&conn, &u64);
    case CALL_SET_VRING_NUM:
        return vhost_user_set_vring_num(&conn, 0, 256);
    case CALL_SET_LOG_BASE:
        log = make_memfd("dirty-log", 0x1000, "");
        ret = vhost_user_set_log_base(&conn, log, 0x1000, 0);
        close(log);
        return ret;
    }
    return -EINVAL;
}

START_TEST(malformed_reply_breaks_the_connection)
{
    const struct bad_reply *c = &bad_replies[_i];
    uint8_t payload[24] = {0};
    const char *log;
    int ret;

    memcpy(payload, &c->value, sizeof(c->value));
    conn.protocol_features = c->protocol;
    ck_assert_int_eq(vu_wire_send(be, c->request, c->flags, c->size, payload, c->size, NULL, 0), 0);
    capture_start();
    ret = bad_reply_call(c->call);
    log = capture_end();
    ck_assert_msg(ret == -EPROTO, "%s: %d", c->what, ret);
    ck_assert_msg(!c->says || strstr(log, c->says), "%s: the log says '%s'", c->what, log);
    expect_broken();
}
END_TEST

START_TEST(short_header_then_close)
{
    uint64_t f;

    ck_assert_int_eq(write(be, "\x01\x00\x00\x00\x05", 5), 5);
    ck_assert_int_eq(shutdown(be, SHUT_WR), 0);
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -ECONNRESET);
    expect_broken();
}
END_TEST

START_TEST(short_header_then_silence_times_out)
{
    uint64_t f;

    ck_assert_int_eq(write(be, "\x01\x00\x00\x00\x05", 5), 5);
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -ETIMEDOUT);
    expect_broken();
}
END_TEST

START_TEST(wrong_request_type)
{
    const char *log;
    struct vu_wire_msg m;
    uint64_t f;

    be_reply_u64(15, 0);
    capture_start();
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -EPROTO);
    log = capture_end();
    ck_assert_ptr_nonnull(
        strstr(log, "vhost-user: GET_FEATURES reply has request type 15 (GET_PROTOCOL_FEATURES)"));
    expect_broken();
    /* The back-end is told at once: after the request it reads end-of-file. */
    be_read(&m);
    expect_header(&m, 1, FL_REQ, 0, 0);
    ck_assert_int_eq(recv(be, &f, sizeof(f), MSG_DONTWAIT), 0);
}
END_TEST

START_TEST(oversized_size_fails_without_waiting_for_payload)
{
    int64_t t0;
    uint64_t f;

    ck_assert_int_eq(vu_wire_send(be, 1, FL_REPLY, 4096, NULL, 0, NULL, 0), 0);
    t0 = support_now_ms();
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -EPROTO);
    ck_assert_int_lt(support_now_ms() - t0, TIMEOUT_MS / 2);
    expect_broken();
}
END_TEST

START_TEST(fds_attached_to_reply_are_closed)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    uint64_t f, v = 3;
    int before;

    ck_assert_int_ge(efd, 0);
    ck_assert_int_eq(vu_wire_send(be, 1, FL_REPLY, 8, &v, 8, &efd, 1), 0);
    before = support_count_fds();
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -EPROTO);
    ck_assert_int_eq(support_count_fds(), before);
    expect_broken();
    close(efd);
}
END_TEST

START_TEST(peer_closes_mid_message)
{
    uint8_t half[4] = {1, 2, 3, 4};
    uint64_t f;

    ck_assert_int_eq(vu_wire_send(be, 1, FL_REPLY, 8, half, 4, NULL, 0), 0);
    ck_assert_int_eq(shutdown(be, SHUT_WR), 0);
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -ECONNRESET);
    expect_broken();
}
END_TEST

START_TEST(peer_closes_before_replying)
{
    struct vu_wire_msg m;
    uint64_t f;

    ck_assert_int_eq(shutdown(be, SHUT_WR), 0);
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -ECONNRESET);
    be_read(&m); /* the request itself went out */
    expect_header(&m, 1, FL_REQ, 0, 0);
    expect_broken();
}
END_TEST

START_TEST(peer_gone_before_request_no_sigpipe)
{
    close(be);
    be = -1;
    ck_assert_int_eq(vhost_user_set_owner(&conn), -EPIPE);
    ck_assert(conn.broken);
}
END_TEST

START_TEST(no_reply_within_timeout)
{
    int64_t t0 = support_now_ms(), dt;
    uint64_t f;

    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -ETIMEDOUT);
    dt = support_now_ms() - t0;
    ck_assert_int_ge(dt, TIMEOUT_MS - 10);
    ck_assert_int_lt(dt, 5 * TIMEOUT_MS);
    expect_broken();
}
END_TEST

START_TEST(broken_connection_returns_epipe_without_sending)
{
    uint64_t f;

    conn.broken = true;
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), -EPIPE);
    ck_assert_int_eq(vhost_user_set_vring_num(&conn, 0, 256), -EPIPE);
    ck_assert_int_eq(pending(be), 0);
}
END_TEST

/* Answers GET_VRING_BASE for ring 1 with base 5, 30 ms after the request arrives. */
static void *late_vring_base(void *arg)
{
    struct vu_wire_msg m;

    (void)arg;
    if (vu_wire_recv(be, &m, 2000) == 0) {
        usleep(30000);
        vu_wire_send(be, 11, FL_REPLY, 8, (uint32_t[2]){1, 5}, 8, NULL, 0);
    }
    return NULL;
}

/* --- trace ---------------------------------------------------------------------------- */

#define MAX_TRACE 64

static struct {
    char lines[MAX_TRACE][1024];
    int64_t times[MAX_TRACE];
    int n;
} tr;

static void collect(void *opaque, int64_t time_us, const char *line)
{
    ck_assert_ptr_eq(opaque, &tr);
    if (tr.n < MAX_TRACE) {
        snprintf(tr.lines[tr.n], sizeof(tr.lines[0]), "%s", line);
        tr.times[tr.n++] = time_us;
    }
}

static void trace_on(void)
{
    memset(&tr, 0, sizeof(tr));
    conn.trace = collect;
    conn.trace_opaque = &tr;
}

/* A reply line is "<prefix>NNNus" with NNN the latency; returns it. */
static long long expect_reply_line(int i, const char *prefix)
{
    const char *l = tr.lines[i];
    char *end;
    long long us;

    ck_assert_msg(!strncmp(l, prefix, strlen(prefix)), "line %d: '%s', want '%s...'", i, l, prefix);
    us = strtoll(l + strlen(prefix), &end, 10);
    ck_assert_msg(end != l + strlen(prefix) && !strcmp(end, "us"), "line %d: bad latency: '%s'", i,
                  l);
    ck_assert_int_ge(us, 0);
    return us;
}

START_TEST(trace_has_one_line_per_message)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    int64_t t0 = support_now_ms() * 1000;
    uint64_t f;
    struct vu_wire_msg m;

    trace_on();
    be_reply_u64(1, 0x3);
    ck_assert_int_eq(vhost_user_get_features(&conn, &f), 0);
    ck_assert_int_eq(vhost_user_set_vring_kick(&conn, 1, efd), 0);
    ck_assert_int_eq(tr.n, 3);
    ck_assert_str_eq(tr.lines[0], "-> GET_FEATURES flags=v1 size=0 fds=0");
    expect_reply_line(1, "<- GET_FEATURES flags=v1|REPLY size=8 features=0x3(CSUM|GUEST_CSUM) "
                         "fds=0 reply_to=GET_FEATURES latency=");
    ck_assert_str_eq(tr.lines[2], "-> SET_VRING_KICK flags=v1 size=8 index=1 fds=1");
    /* CLOCK_MONOTONIC microseconds, in order. */
    ck_assert_int_ge(tr.times[0], t0 - 1000);
    ck_assert_int_le(tr.times[2], support_now_ms() * 1000 + 1000);
    ck_assert_int_le(tr.times[0], tr.times[1]);
    ck_assert_int_le(tr.times[1], tr.times[2]);
    be_read(&m);
    be_read(&m);
    vu_wire_close_fds(&m);
    close(efd);
}
END_TEST

START_TEST(trace_reply_latency_is_the_wait)
{
    unsigned base;
    pthread_t t;

    trace_on();
    ck_assert_int_eq(pthread_create(&t, NULL, late_vring_base, NULL), 0);
    ck_assert_int_eq(vhost_user_get_vring_base(&conn, 1, &base), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(tr.n, 2);
    ck_assert_str_eq(tr.lines[0], "-> GET_VRING_BASE flags=v1 size=8 index=1 fds=0");
    ck_assert_int_ge(expect_reply_line(1, "<- GET_VRING_BASE flags=v1|REPLY size=8 index=1 "
                                          "base=5 fds=0 reply_to=GET_VRING_BASE latency="),
                     20000);
    ck_assert_int_ge(tr.times[1] - tr.times[0], 20000);
}
END_TEST

/* With RING_PACKED acked, the trace shows a vring base's two positions as well. */
START_TEST(trace_shows_packed_vring_base_positions)
{
    struct vhost_user_vring_pos pos = {.avail_idx = 9, .avail_wrap = true, .used_idx = 4};
    struct vu_wire_msg m;

    trace_on();
    ck_assert_int_eq(vhost_user_set_vring_base(&conn, 0, 9), 0);
    conn.acked_features = F_RING_PACKED;
    ck_assert_int_eq(vhost_user_set_vring_base_packed(&conn, 1, &pos), 0);
    be_reply_state(11, 1, 0x8004800a);
    ck_assert_int_eq(vhost_user_get_vring_base_packed(&conn, 1, &pos), 0);
    ck_assert_int_eq(tr.n, 4);
    ck_assert_str_eq(tr.lines[0], "-> SET_VRING_BASE flags=v1 size=8 index=0 base=9 fds=0");
    ck_assert_str_eq(tr.lines[1], "-> SET_VRING_BASE flags=v1 size=8 index=1 base=294921 idx=9 "
                                  "wrap=1 used_idx=4 used_wrap=0 fds=0");
    expect_reply_line(3, "<- GET_VRING_BASE flags=v1|REPLY size=8 index=1 base=2147778570 "
                         "idx=10 wrap=1 used_idx=4 used_wrap=1 fds=0 "
                         "reply_to=GET_VRING_BASE latency=");
    for (int i = 0; i < 3; i++)
        be_read(&m);
}
END_TEST

/* --- sockets -------------------------------------------------------------------------- */

static char sock_dir[64], sock_path[96];

static void sock_setup(void)
{
    snprintf(sock_dir, sizeof(sock_dir), "/tmp/vhost-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(sock_dir));
    snprintf(sock_path, sizeof(sock_path), "%s/vhost.sock", sock_dir);
}

static void sock_teardown(void)
{
    unlink(sock_path);
    rmdir(sock_dir);
}

START_TEST(connect_times_out_on_missing_path)
{
    int64_t t0 = support_now_ms();
    const char *log;
    int fd = -1;

    capture_start();
    ck_assert_int_eq(vhost_user_connect(sock_path, TIMEOUT_MS, &fd), -ETIMEDOUT);
    log = capture_end();
    ck_assert_int_ge(support_now_ms() - t0, TIMEOUT_MS - 10);
    ck_assert_int_eq(fd, -1);
    ck_assert_ptr_nonnull(strstr(log, sock_path));
}
END_TEST

static void *late_listener(void *arg)
{
    int lfd = -1, fd = -1;

    (void)arg;
    usleep(150 * 1000);
    if (vhost_user_listen(sock_path, &lfd) || vhost_user_accept(lfd, 2000, &fd)) {
        close(lfd);
        return NULL;
    }
    if (write(fd, "hello", 5) != 5)
        fd = -1;
    close(lfd);
    return (void *)(intptr_t)fd;
}

START_TEST(connect_waits_for_a_late_backend)
{
    pthread_t t;
    void *res;
    char buf[8] = {0};
    int fd = -1;

    ck_assert_int_eq(pthread_create(&t, NULL, late_listener, NULL), 0);
    ck_assert_int_eq(vhost_user_connect(sock_path, 2000, &fd), 0);
    ck_assert_int_eq(pthread_join(t, &res), 0);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 5);
    ck_assert_str_eq(buf, "hello");
    close(fd);
    close((int)(intptr_t)res);
}
END_TEST

START_TEST(listen_refuses_a_regular_file)
{
    struct stat st;
    int fd = open(sock_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600), lfd = -1;

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(vhost_user_listen(sock_path, &lfd), -EEXIST);
    ck_assert_int_eq(lfd, -1);
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
}
END_TEST

START_TEST(listen_replaces_a_stale_socket)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), lfd = -1, cfd = -1, afd = -1;
    char c = 0;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s); /* the file stays behind, nobody listens: stale */
    ck_assert_int_eq(vhost_user_listen(sock_path, &lfd), 0);
    ck_assert_int_eq(vhost_user_connect(sock_path, 500, &cfd), 0);
    ck_assert_int_eq(vhost_user_accept(lfd, 500, &afd), 0);
    ck_assert_int_eq(write(cfd, "x", 1), 1);
    ck_assert_int_eq(read(afd, &c, 1), 1);
    ck_assert_int_eq(c, 'x');
    close(afd);
    close(cfd);
    close(lfd);
}
END_TEST

START_TEST(listen_refuses_a_live_socket)
{
    int lfd = -1, lfd2 = -1;

    ck_assert_int_eq(vhost_user_listen(sock_path, &lfd), 0);
    ck_assert_int_eq(vhost_user_listen(sock_path, &lfd2), -EADDRINUSE);
    ck_assert_int_eq(lfd2, -1);
    close(lfd);
}
END_TEST

START_TEST(accept_times_out)
{
    int64_t t0;
    int lfd = -1, fd = -1;

    ck_assert_int_eq(vhost_user_listen(sock_path, &lfd), 0);
    t0 = support_now_ms();
    ck_assert_int_eq(vhost_user_accept(lfd, 100, &fd), -ETIMEDOUT);
    ck_assert_int_ge(support_now_ms() - t0, 90);
    ck_assert_int_eq(fd, -1);
    close(lfd);
}
END_TEST

/* Fills a listen queue nobody accepts from, then connects once more with a timeout. */
struct full_queue {
    int fds[5];
    int n;      /* connections the queue took */
    int r;      /* the try_connect that found it full */
    int r_wait; /* vhost_user_connect with a timeout */
    int64_t wait_ms;
};

static void *fill_the_queue(void *arg)
{
    struct full_queue *q = arg;
    int64_t t0;

    while (q->n < 4 && (q->r = vhost_user_try_connect(sock_path, &q->fds[q->n])) == 0)
        q->n++;
    t0 = support_now_ms();
    q->r_wait = vhost_user_connect(sock_path, TIMEOUT_MS, &q->fds[q->n]);
    q->wait_ms = support_now_ms() - t0;
    return NULL;
}

/* A back-end that listens but never accepts: a blocking connect() would wait for a free
 * slot forever, which on a reconnect is the event loop. */
START_TEST(connect_to_a_full_listen_queue_fails_at_once)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;
    struct full_queue q = {.r = 1};
    int64_t deadline = support_now_ms() + 3000;
    bool stuck = false;
    pthread_t t;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 0), 0);
    capture_start();
    ck_assert_int_eq(pthread_create(&t, NULL, fill_the_queue, &q), 0);
    while (pthread_tryjoin_np(t, NULL)) {
        /* Past the deadline, unblock a stuck connect() so that the test fails, not hangs. */
        if (support_now_ms() > deadline && (fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
            stuck = true;
            close(fd);
        }
        usleep(10 * 1000);
    }
    capture_end();
    ck_assert_msg(!stuck, "connect() blocked on a full listen queue");
    ck_assert_int_ge(q.n, 1);
    ck_assert_int_eq(q.r, -EAGAIN);
    ck_assert_int_eq(q.r_wait, -ETIMEDOUT);
    ck_assert_int_lt(q.wait_ms, TIMEOUT_MS + 1000);
    /* What vmm talks over blocks with poll() deadlines, like an accepted socket. */
    ck_assert_int_eq(fcntl(q.fds[0], F_GETFL) & O_NONBLOCK, 0);
    while (q.n--)
        close(q.fds[q.n]);
    close(lfd);
}
END_TEST

START_TEST(connect_rejects_an_overlong_path)
{
    char path[200];
    int fd = -1;

    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = 0;
    ck_assert_int_eq(vhost_user_connect(path, 10, &fd), -ENAMETOOLONG);
}
END_TEST

/* --- backend-request channel ---------------------------------------------------------- */

struct seen {
    int config_changes;
    int result;
    unsigned index;
    uint64_t size, offset;
    int fd;
    bool fd_matches;
    int expect_fd_of;
    struct vhost_user_iotlb iotlb;
};

static struct seen seen;

static int on_config_change(void *opaque)
{
    struct seen *s = opaque;

    s->config_changes++;
    return s->result;
}

static int on_host_notifier(void *opaque, unsigned index, uint64_t size, uint64_t offset, int fd)
{
    struct seen *s = opaque;
    struct stat a, b;

    s->index = index;
    s->size = size;
    s->offset = offset;
    s->fd = fd;
    s->fd_matches = fd >= 0 && !fstat(fd, &a) && !fstat(s->expect_fd_of, &b) &&
                    a.st_ino == b.st_ino && a.st_dev == b.st_dev;
    return s->result;
}

static int on_iotlb(void *opaque, const struct vhost_user_iotlb *msg)
{
    struct seen *s = opaque;

    s->iotlb = *msg;
    return s->result;
}

static const struct vhost_user_backend_ops ops = {
    .config_change = on_config_change,
    .vring_host_notifier = on_host_notifier,
    .iotlb_msg = on_iotlb,
};

static void bk_setup(void)
{
    int sv[2];

    setup();
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    conn.backend_fd = sv[0];
    bk = sv[1];
    conn.protocol_features =
        PF(CONFIG) | PF(BACKEND_REQ) | PF(REPLY_ACK) | PF(HOST_NOTIFIER) | PF(BACKEND_SEND_FD);
    memset(&seen, 0, sizeof(seen));
    seen.fd = -2;
}

static void bk_expect_ack(uint32_t request, uint64_t value)
{
    struct vu_wire_msg m;

    ck_assert_int_eq(vu_wire_recv(bk, &m, 1000), 0);
    expect_header(&m, request, FL_REPLY, 8, 0);
    ck_assert_uint_eq(vu_wire_u64(&m, 0), value);
}

START_TEST(backend_config_change_with_need_reply_gets_ack)
{
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 0, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    ck_assert_int_eq(seen.config_changes, 1);
    bk_expect_ack(2, 0);
    ck_assert_int_eq(pending(bk), 0);
}
END_TEST

START_TEST(backend_request_and_ack_are_traced)
{
    trace_on();
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 0, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    bk_expect_ack(2, 0);
    ck_assert_int_eq(tr.n, 2);
    ck_assert_str_eq(tr.lines[0], "<- BACKEND_CONFIG_CHANGE_MSG flags=v1|NEED_REPLY size=0 fds=0");
    expect_reply_line(1, "-> BACKEND_CONFIG_CHANGE_MSG flags=v1|REPLY size=8 ack=0 fds=0 "
                         "reply_to=BACKEND_CONFIG_CHANGE_MSG latency=");
}
END_TEST

START_TEST(backend_config_change_failure_acks_nonzero)
{
    const char *log;

    seen.result = -EIO;
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 0, NULL, 0, NULL, 0), 0);
    capture_start();
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -EIO);
    log = capture_end();
    ck_assert_ptr_nonnull(strstr(log, "vhost-user: BACKEND_CONFIG_CHANGE_MSG failed: "));
    bk_expect_ack(2, 1);
    ck_assert(!conn.broken);
}
END_TEST

START_TEST(backend_config_change_without_need_reply_gets_no_reply)
{
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ, 0, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    ck_assert_int_eq(seen.config_changes, 1);
    ck_assert_int_eq(pending(bk), 0);
}
END_TEST

START_TEST(backend_host_notifier_passes_fd_then_closes_it)
{
    int mfd = make_memfd("notify", 4096, "");
    uint64_t area[3] = {2, 4096, 0};
    uint64_t nofd[3] = {2 | 0x100, 0, 0};

    seen.expect_fd_of = mfd;
    ck_assert_int_eq(vu_wire_send(bk, 3, FL_REQ, 24, area, 24, &mfd, 1), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    ck_assert_uint_eq(seen.index, 2);
    ck_assert_uint_eq(seen.size, 4096);
    ck_assert_uint_eq(seen.offset, 0);
    ck_assert(seen.fd_matches);
    ck_assert_int_eq(fcntl(seen.fd, F_GETFD), -1); /* closed once the callback returned */
    ck_assert_int_eq(vu_wire_send(bk, 3, FL_REQ, 24, nofd, 24, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    ck_assert_int_eq(seen.fd, -1);
    close(mfd);
}
END_TEST

START_TEST(backend_iotlb_msg_is_decoded)
{
    uint8_t p[32] = {0};
    uint64_t iova = 0xfee00000ULL, size = 0x1000;

    conn.acked_features = 1ULL << 33;
    memcpy(p, &iova, 8);
    memcpy(p + 8, &size, 8);
    p[24] = 1; /* read */
    p[25] = 1; /* miss */
    ck_assert_int_eq(vu_wire_send(bk, 1, FL_REQ_NEED, 32, p, 32, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    ck_assert_uint_eq(seen.iotlb.iova, 0xfee00000ULL);
    ck_assert_uint_eq(seen.iotlb.size, 0x1000);
    ck_assert_uint_eq(seen.iotlb.perm, 1);
    ck_assert_uint_eq(seen.iotlb.type, 1);
    bk_expect_ack(1, 0);
}
END_TEST

START_TEST(backend_unknown_request_is_refused_and_stream_stays_in_sync)
{
    uint64_t junk = 0xdeadbeef;

    ck_assert_int_eq(vu_wire_send(bk, 99, FL_REQ_NEED, 8, &junk, 8, NULL, 0), 0);
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 0, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -ENOTSUP);
    bk_expect_ack(99, 1);
    ck_assert(!conn.broken);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    bk_expect_ack(2, 0);
}
END_TEST

START_TEST(backend_request_for_unnegotiated_feature_is_refused)
{
    conn.protocol_features &= ~PF(CONFIG);
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 0, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -ENOTSUP);
    ck_assert_int_eq(seen.config_changes, 0);
    bk_expect_ack(2, 1);
}
END_TEST

/* A failed channel breaks the channel alone: the connection goes on (QEMU closes just
 * the channel too). */
static void expect_channel_broken(void)
{
    struct vu_wire_msg m;

    ck_assert(conn.backend_broken);
    ck_assert(!conn.broken);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -EPIPE);
    be_reply_u64(3, 0); /* REPLY_ACK is negotiated */
    ck_assert_int_eq(vhost_user_set_owner(&conn), 0);
    be_read(&m);
    expect_header(&m, 3, FL_REQ_NEED, 0, 0);
    vhost_user_close_backend_channel(&conn);
    ck_assert_int_eq(conn.backend_fd, -1);
    ck_assert(!conn.backend_broken);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -EBADF);
}

START_TEST(backend_request_with_bad_size_breaks_the_channel)
{
    uint64_t junk = 1;

    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 8, &junk, 8, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -EPROTO);
    ck_assert_int_eq(seen.config_changes, 0);
    expect_channel_broken();
}
END_TEST

START_TEST(backend_message_with_reply_flag_breaks_the_channel)
{
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REPLY, 0, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -EPROTO);
    ck_assert_int_eq(seen.config_changes, 0);
    expect_channel_broken();
}
END_TEST

START_TEST(backend_channel_end_of_file_breaks_the_channel)
{
    close(bk);
    bk = -1;
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -ECONNRESET);
    expect_channel_broken();
}
END_TEST

START_TEST(backend_fd_without_send_fd_breaks_and_closes_it)
{
    int mfd = make_memfd("notify", 4096, "");
    uint64_t area[3] = {0, 4096, 0};
    int before;

    conn.protocol_features &= ~PF(BACKEND_SEND_FD);
    ck_assert_int_eq(vu_wire_send(bk, 3, FL_REQ, 24, area, 24, &mfd, 1), 0);
    before = support_count_fds();
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), -EPROTO);
    ck_assert_int_eq(support_count_fds(), before);
    ck_assert_int_eq(seen.fd, -2); /* the callback never ran */
    expect_channel_broken();
    close(mfd);
}
END_TEST

/* --- backend-request channel read in pieces ------------------------------------------- */

/* One sendmsg of len bytes, with the fds attached to its first byte. */
static void send_piece(int fd, const uint8_t *p, size_t len, const int *fds, int nfds)
{
    ck_assert_int_eq(vu_wire_send_bytes(fd, p, len, fds, nfds), 0);
}

/* The call under test must come back at once, not after a wait for the rest. */
static int handle_timed(int64_t *ms)
{
    int64_t t0 = support_now_ms();
    int r = vhost_user_backend_req_handle(&conn, &ops, &seen);

    *ms = support_now_ms() - t0;
    return r;
}

START_TEST(backend_stray_byte_returns_at_once_then_pieces_complete_it)
{
    int mfd = make_memfd("notify", 4096, "");
    uint64_t area[3] = {5, 4096, 0};
    uint8_t buf[64];
    size_t len = vu_wire_encode(buf, 3, FL_REQ_NEED, area, sizeof(area));
    int64_t ms, first;
    int before;

    seen.expect_fd_of = mfd;
    ck_assert_int_eq(vhost_user_backend_req_deadline_ms(&conn), -1);
    send_piece(bk, buf, 1, NULL, 0);
    first = support_now_ms();
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_lt(ms, 50);
    ck_assert(!conn.backend_broken);
    /* The deadline runs from the first byte. */
    ck_assert_int_ge(vhost_user_backend_req_deadline_ms(&conn), first - 5 + TIMEOUT_MS);
    ck_assert_int_le(vhost_user_backend_req_deadline_ms(&conn), support_now_ms() + TIMEOUT_MS);
    /* The rest in three pieces: the header split, the fd with the first piece. */
    before = support_count_fds();
    send_piece(bk, buf + 1, 5, &mfd, 1);
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_lt(ms, 50);
    ck_assert_int_eq(support_count_fds(), before + 1); /* held with the bytes it came with */
    send_piece(bk, buf + 6, 14, NULL, 0);
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_lt(ms, 50);
    ck_assert_int_eq(seen.fd, -2); /* nothing handled before the message is whole */
    send_piece(bk, buf + 20, len - 20, NULL, 0);
    ck_assert_int_eq(handle_timed(&ms), 0);
    ck_assert_uint_eq(seen.index, 5);
    ck_assert_uint_eq(seen.size, 4096);
    ck_assert(seen.fd_matches);
    ck_assert_int_eq(support_count_fds(), before); /* closed once the callback returned */
    bk_expect_ack(3, 0);
    ck_assert_int_eq(vhost_user_backend_req_deadline_ms(&conn), -1);
    ck_assert(!conn.backend_broken);
    /* Nothing more on the channel: -EAGAIN, not a wait. */
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_lt(ms, 50);
    close(mfd);
}
END_TEST

/* Each call handles one message; a second one queued behind stays for the next call. */
START_TEST(backend_two_messages_in_one_write_are_handled_one_per_call)
{
    uint8_t buf[64];
    size_t len = vu_wire_encode(buf, 2, FL_REQ_NEED, NULL, 0);

    len += vu_wire_encode(buf + len, 2, FL_REQ, NULL, 0);
    send_piece(bk, buf, len, NULL, 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    ck_assert_int_eq(seen.config_changes, 1);
    bk_expect_ack(2, 0);
    ck_assert_int_eq(vhost_user_backend_req_handle(&conn, &ops, &seen), 0);
    ck_assert_int_eq(seen.config_changes, 2);
    ck_assert_int_eq(pending(bk), 0);
}
END_TEST

START_TEST(backend_partial_message_past_the_deadline_breaks_and_closes_its_fds)
{
    int mfd = make_memfd("notify", 4096, "");
    uint64_t area[3] = {1, 4096, 0};
    uint8_t buf[64];
    int64_t ms;
    const char *log;
    int before = support_count_fds();

    vu_wire_encode(buf, 3, FL_REQ, area, sizeof(area));
    send_piece(bk, buf, 16, &mfd, 1);
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_eq(support_count_fds(), before + 1);
    /* Not stale yet: still waiting, without blocking. */
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_lt(ms, 50);
    while (support_now_ms() < vhost_user_backend_req_deadline_ms(&conn))
        usleep(5000);
    capture_start();
    ck_assert_int_eq(handle_timed(&ms), -ETIMEDOUT);
    log = capture_end();
    ck_assert_int_lt(ms, 50);
    ck_assert_ptr_nonnull(strstr(log, "back-end request stalled after 16 of 36 bytes"));
    ck_assert_int_eq(support_count_fds(), before);
    ck_assert_int_eq(seen.fd, -2);
    ck_assert_int_eq(vhost_user_backend_req_deadline_ms(&conn), -1);
    expect_channel_broken();
    close(mfd);
}
END_TEST

START_TEST(backend_end_of_file_mid_message_breaks_and_closes_its_fds)
{
    int mfd = make_memfd("notify", 4096, "");
    uint64_t area[3] = {1, 4096, 0};
    uint8_t buf[64];
    int64_t ms;
    int before = support_count_fds();

    vu_wire_encode(buf, 3, FL_REQ, area, sizeof(area));
    send_piece(bk, buf, 7, &mfd, 1);
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_eq(shutdown(bk, SHUT_WR), 0);
    ck_assert_int_eq(handle_timed(&ms), -ECONNRESET);
    ck_assert_int_eq(support_count_fds(), before);
    expect_channel_broken();
    close(mfd);
}
END_TEST

/* The header says more than any request holds: refused as soon as the header is in. */
START_TEST(backend_oversized_request_fails_without_waiting_for_payload)
{
    int64_t ms;

    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 4096, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(handle_timed(&ms), -EPROTO);
    ck_assert_int_lt(ms, 50);
    ck_assert_int_eq(seen.config_changes, 0);
    expect_channel_broken();
}
END_TEST

/* Closing the channel mid-message drops what was read, fds included. */
START_TEST(backend_channel_close_drops_a_partial_message)
{
    int mfd = make_memfd("notify", 4096, "");
    uint64_t area[3] = {1, 4096, 0};
    uint8_t buf[64];
    int64_t ms;
    int before = support_count_fds();

    vu_wire_encode(buf, 3, FL_REQ, area, sizeof(area));
    send_piece(bk, buf, 3, &mfd, 1);
    ck_assert_int_eq(handle_timed(&ms), -EAGAIN);
    ck_assert_int_eq(support_count_fds(), before + 1);
    vhost_user_close_backend_channel(&conn);
    ck_assert_int_eq(support_count_fds(), before - 1); /* its fd, and our end of the channel */
    ck_assert_uint_eq(conn.backend_rx.got, 0);
    ck_assert_int_eq(vhost_user_backend_req_deadline_ms(&conn), -1);
    close(mfd);
}
END_TEST

/* A back-end that does not read its channel cannot stall us in the ack: broken at once. */
START_TEST(backend_ack_to_a_backend_that_does_not_read_breaks_at_once)
{
    char junk[4096] = {0};
    const char *log;
    int64_t ms;

    while (send(conn.backend_fd, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
        ;
    ck_assert_int_eq(vu_wire_send(bk, 2, FL_REQ_NEED, 0, NULL, 0, NULL, 0), 0);
    capture_start();
    ck_assert_int_eq(handle_timed(&ms), -ENOBUFS);
    log = capture_end();
    ck_assert_int_lt(ms, 50);
    ck_assert_int_eq(seen.config_changes, 1);
    ck_assert_ptr_nonnull(strstr(log, "BACKEND_CONFIG_CHANGE_MSG reply: the back-end does not "
                                      "read its channel"));
    ck_assert(conn.backend_broken);
    ck_assert(!conn.broken);
}
END_TEST

/* --- a whole device start against a threaded back-end --------------------------------- */

static struct vu_backend scripted;

/* A well-behaved back-end on the socketpair (PROTOCOL_FEATURES, MQ and REPLY_ACK, two
 * queue pairs, rings stopped at 77) that maps the memory it is given and writes
 * "backend" there; then a device start and stop, one ring. */
static struct vu_session device_start_and_stop(int mem, unsigned *base)
{
    int kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
    struct vhost_user_mem_region r = {0, 0x10000, 0x7f0000000000ULL, 0, mem};
    struct vhost_user_vring_addr a = {0, 0, 0x1000, 0x2000, 0x3000, 0};
    struct vu_session *script, seen;

    vu_backend_init(&scripted, NULL);
    script = vu_backend_add(&scripted, VU_WELL, 0);
    script->features = F_PROTOCOL | (1ULL << 32);
    script->protocol = PF(MQ) | PF(REPLY_ACK);
    script->queues = 2;
    script->vring_base = 77;
    script->mem_mark = "backend";
    vu_backend_start_pair(&scripted, be);
    be = -1; /* the back-end's now */
    conn.timeout_ms = 2000;
    ck_assert_int_eq(vhost_user_negotiate(&conn, VHOST_USER_PROTOCOL_SUPPORTED), 0);
    ck_assert_int_eq(vhost_user_set_owner(&conn), 0);
    ck_assert_int_eq(vhost_user_set_features(&conn, 1ULL << 32), 0);
    ck_assert_int_eq(vhost_user_set_mem_table(&conn, &r, 1), 0);
    ck_assert_int_eq(vhost_user_set_vring_num(&conn, 0, 256), 0);
    ck_assert_int_eq(vhost_user_set_vring_addr(&conn, &a), 0);
    ck_assert_int_eq(vhost_user_set_vring_base(&conn, 0, 0), 0);
    ck_assert_int_eq(vhost_user_set_vring_kick(&conn, 0, kick), 0);
    ck_assert_int_eq(vhost_user_set_vring_call(&conn, 0, call), 0);
    ck_assert_int_eq(vhost_user_set_vring_enable(&conn, 0, true), 0);
    ck_assert_int_eq(vhost_user_get_vring_base(&conn, 0, base), 0);
    vhost_user_conn_close(&conn);
    ck_assert_msg(vu_backend_wait_ended(&scripted, 0, 2000),
                  "the back-end did not see the hang-up");
    vu_backend_check(&scripted);
    seen = vu_backend_session(&scripted, 0);
    vu_backend_free(&scripted);
    close(kick);
    close(call);
    return seen;
}

START_TEST(threaded_backend_full_device_start)
{
    static const uint32_t expected[] = {1, 15, 16, 17, 3, 2, 5, 8, 9, 10, 12, 13, 18, 11};
    int mem = make_memfd("guest", 0x10000, "guest");
    char back[8] = {0};
    unsigned base = 0;
    struct vu_session s = device_start_and_stop(mem, &base);

    ck_assert_uint_eq(base, 77);
    ck_assert_uint_eq(conn.max_queues, 2);
    ck_assert(s.mem_mapped);
    ck_assert_str_eq((const char *)s.mem_head, "guest");
    ck_assert_int_eq(pread(mem, back, 7, 64), 7);
    ck_assert_str_eq(back, "backend");
    ck_assert_int_eq(s.nrecords, (int)(sizeof(expected) / sizeof(expected[0])));
    for (int i = 0; i < s.nrecords; i++) {
        ck_assert_uint_eq(s.records[i].request, expected[i]);
        /* Everything after SET_PROTOCOL_FEATURES without a reply of its own asks for an ack. */
        ck_assert_uint_eq(s.records[i].flags, i >= 4 && expected[i] != 11 ? FL_REQ_NEED : FL_REQ);
    }
    close(mem);
}
END_TEST

/* The same start traced: every message in order, each reply naming its request. */
START_TEST(threaded_backend_device_start_traced)
{
    static const char *const expected[] = {
        "-> GET_FEATURES",
        "<- GET_FEATURES",
        "-> GET_PROTOCOL_FEATURES",
        "<- GET_PROTOCOL_FEATURES",
        "-> SET_PROTOCOL_FEATURES",
        "-> GET_QUEUE_NUM",
        "<- GET_QUEUE_NUM",
        "-> SET_OWNER",
        "<- SET_OWNER",
        "-> SET_FEATURES",
        "<- SET_FEATURES",
        "-> SET_MEM_TABLE",
        "<- SET_MEM_TABLE",
        "-> SET_VRING_NUM",
        "<- SET_VRING_NUM",
        "-> SET_VRING_ADDR",
        "<- SET_VRING_ADDR",
        "-> SET_VRING_BASE",
        "<- SET_VRING_BASE",
        "-> SET_VRING_KICK",
        "<- SET_VRING_KICK",
        "-> SET_VRING_CALL",
        "<- SET_VRING_CALL",
        "-> SET_VRING_ENABLE",
        "<- SET_VRING_ENABLE",
        "-> GET_VRING_BASE",
        "<- GET_VRING_BASE",
    };
    int mem = make_memfd("guest", 0x10000, "guest");
    unsigned base = 0;

    trace_on();
    device_start_and_stop(mem, &base);
    close(mem);
    ck_assert_int_eq(tr.n, (int)(sizeof(expected) / sizeof(expected[0])));
    for (int i = 0; i < tr.n; i++) {
        char name[64], reply_to[80];
        const char *sp;

        sp = strchr(tr.lines[i] + 3, ' ');
        ck_assert_ptr_nonnull(sp);
        snprintf(name, sizeof(name), "%.*s", (int)(sp - tr.lines[i]), tr.lines[i]);
        ck_assert_msg(!strcmp(name, expected[i]), "line %d is '%s', want '%s ...'", i, tr.lines[i],
                      expected[i]);
        snprintf(reply_to, sizeof(reply_to), " reply_to=%s latency=", expected[i] + 3);
        ck_assert_msg((tr.lines[i][0] == '<') == (strstr(tr.lines[i], reply_to) != NULL),
                      "line %d: '%s'", i, tr.lines[i]);
        if (i)
            ck_assert_int_le(tr.times[i - 1], tr.times[i]);
    }
    expect_reply_line(1, "<- GET_FEATURES flags=v1|REPLY size=8 "
                         "features=0x140000000(PROTOCOL_FEATURES|VERSION_1) fds=0 "
                         "reply_to=GET_FEATURES latency=");
    ck_assert_str_eq(tr.lines[11], "-> SET_MEM_TABLE flags=v1|NEED_REPLY size=40 nregions=1 "
                                   "{gpa=0x0 size=0x10000 uaddr=0x7f0000000000 offset=0x0} fds=1");
    expect_reply_line(26, "<- GET_VRING_BASE flags=v1|REPLY size=8 index=0 base=77 fds=0 "
                          "reply_to=GET_VRING_BASE latency=");
}
END_TEST

static Suite *vhost_user_suite(void)
{
    Suite *s = suite_create("vhost_user");
    TCase *layout = tcase_create("layout");
    TCase *nego = tcase_create("negotiation");
    TCase *bad = tcase_create("malformed");
    TCase *sock = tcase_create("sockets");
    TCase *back = tcase_create("backend_channel");

    tcase_add_checked_fixture(layout, setup, teardown);
    tcase_add_test(layout, get_features_layout_and_reply);
    tcase_add_test(layout, set_features_adds_protocol_bit_and_refuses_unoffered);
    tcase_add_test(layout, set_mem_table_layout_and_fds);
    tcase_add_test(layout, set_mem_table_rejects_bad_arguments_without_sending);
    tcase_add_test(layout, set_vring_addr_layout);
    tcase_add_test(layout, vring_state_requests_layout);
    tcase_add_test(layout, get_vring_base_layout_and_reply);
    tcase_add_test(layout, vring_kick_call_err_fds_and_nofd);
    tcase_add_test(layout, set_log_base_accepts_0_8_16_byte_replies);
    tcase_add_test(layout, set_log_fd_layout);
    tcase_add_test(layout, backend_channel_fd_reaches_the_backend);
    tcase_add_test(layout, rarp_mtu_status_layout);
    tcase_add_test(layout, mem_slot_requests_layout);
    tcase_add_test(layout, add_status_sets_missing_bits_only);
    tcase_add_test(layout, update_mem_sends_table_or_difference);
    tcase_add_test(layout, update_mem_records_only_acked_regions);
    tcase_add_test(layout, config_requests_layout);
    tcase_add_test(layout, get_config_empty_reply_is_failure_not_break);
    tcase_add_test(layout, iotlb_msg_layout_always_needs_reply);
    tcase_add_test(layout, owner_and_reset_requests_layout);
    tcase_add_test(layout, trace_has_one_line_per_message);
    tcase_add_test(layout, trace_reply_latency_is_the_wait);
    suite_add_tcase(s, layout);

    tcase_add_checked_fixture(nego, setup, teardown);
    tcase_add_test(nego, negotiate_without_protocol_features);
    tcase_add_test(nego, negotiate_with_protocol_features_and_mq);
    tcase_add_test(nego, negotiate_with_reply_ack);
    tcase_add_test(nego, negotiate_reads_max_mem_slots);
    tcase_add_test(nego, reply_ack_failure_returns_eio_and_keeps_connection);
    tcase_add_test(nego, unnegotiated_requests_are_refused_without_sending);
    tcase_add_test(nego, set_protocol_features_refuses_unoffered_bits);
    tcase_add_test(nego, set_vring_enable_without_reply_ack_is_followed_by_get_features);
    tcase_add_test(nego, set_vring_enable_barrier_unanswered_times_out);
    tcase_add_test(nego, set_vring_enable_with_reply_ack_waits_for_the_ack);
    tcase_add_test(nego, set_features_with_log_all_waits_for_the_backend);
    tcase_add_test(nego, set_vring_addr_with_log_flag_waits_for_the_backend);
    tcase_add_test(nego, set_vring_base_packed_encodes_both_positions);
    tcase_add_test(nego, get_vring_base_packed_decodes_both_positions);
    tcase_add_test(nego, vring_pos_encoding_round_trips);
    tcase_add_test(nego, trace_shows_packed_vring_base_positions);
    tcase_add_test(nego, threaded_backend_full_device_start);
    tcase_add_test(nego, threaded_backend_device_start_traced);
    suite_add_tcase(s, nego);

    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, short_header_then_close);
    tcase_add_test(bad, short_header_then_silence_times_out);
    tcase_add_test(bad, wrong_request_type);
    tcase_add_test(bad, oversized_size_fails_without_waiting_for_payload);
    tcase_add_test(bad, fds_attached_to_reply_are_closed);
    tcase_add_test(bad, peer_closes_mid_message);
    tcase_add_test(bad, peer_closes_before_replying);
    tcase_add_test(bad, peer_gone_before_request_no_sigpipe);
    tcase_add_test(bad, no_reply_within_timeout);
    tcase_add_test(bad, broken_connection_returns_epipe_without_sending);
    tcase_add_loop_test(bad, malformed_reply_breaks_the_connection, 0,
                        sizeof(bad_replies) / sizeof(bad_replies[0]));
    suite_add_tcase(s, bad);

    tcase_add_checked_fixture(sock, sock_setup, sock_teardown);
    tcase_add_test(sock, connect_times_out_on_missing_path);
    tcase_add_test(sock, connect_waits_for_a_late_backend);
    tcase_add_test(sock, listen_refuses_a_regular_file);
    tcase_add_test(sock, listen_replaces_a_stale_socket);
    tcase_add_test(sock, listen_refuses_a_live_socket);
    tcase_add_test(sock, accept_times_out);
    tcase_add_test(sock, connect_rejects_an_overlong_path);
    tcase_add_test(sock, connect_to_a_full_listen_queue_fails_at_once);
    suite_add_tcase(s, sock);

    tcase_add_checked_fixture(back, bk_setup, teardown);
    tcase_add_test(back, backend_config_change_with_need_reply_gets_ack);
    tcase_add_test(back, backend_request_and_ack_are_traced);
    tcase_add_test(back, backend_config_change_failure_acks_nonzero);
    tcase_add_test(back, backend_config_change_without_need_reply_gets_no_reply);
    tcase_add_test(back, backend_host_notifier_passes_fd_then_closes_it);
    tcase_add_test(back, backend_iotlb_msg_is_decoded);
    tcase_add_test(back, backend_unknown_request_is_refused_and_stream_stays_in_sync);
    tcase_add_test(back, backend_request_for_unnegotiated_feature_is_refused);
    tcase_add_test(back, backend_request_with_bad_size_breaks_the_channel);
    tcase_add_test(back, backend_message_with_reply_flag_breaks_the_channel);
    tcase_add_test(back, backend_fd_without_send_fd_breaks_and_closes_it);
    tcase_add_test(back, backend_channel_end_of_file_breaks_the_channel);
    tcase_add_test(back, backend_stray_byte_returns_at_once_then_pieces_complete_it);
    tcase_add_test(back, backend_two_messages_in_one_write_are_handled_one_per_call);
    tcase_add_test(back, backend_partial_message_past_the_deadline_breaks_and_closes_its_fds);
    tcase_add_test(back, backend_end_of_file_mid_message_breaks_and_closes_its_fds);
    tcase_add_test(back, backend_oversized_request_fails_without_waiting_for_payload);
    tcase_add_test(back, backend_channel_close_drops_a_partial_message);
    tcase_add_test(back, backend_ack_to_a_backend_that_does_not_read_breaks_at_once);
    suite_add_tcase(s, back);
    return s;
}

CHECK_MAIN(vhost_user_suite)
