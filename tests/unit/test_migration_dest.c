/* The destination's bounds against misbehaving peers, without KVM: a peer silent
 * mid-stream fails the migration; issue 15's 8-byte peer and a wrong header are
 * dropped and the next source migrates (unix and tcp); stop_fd and
 * migration_interrupt end every wait at once. The fake host: migration_fake.c. */
#include "migration_fake.h"

#include "../../vmm/migration_stream.h"

#include "check_main.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the destination's bounds ---- */

static int connect_unix(const char *uri)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uri + 5);
    ck_assert_int_eq(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return s;
}

static void matching_header(struct fake_host *h, struct mig_header *hdr)
{
    unsigned pairs[MIG_MAX_NETS] = {1};

    mig_header_fill(hdr, &h->mem, NCPUS, 1, pairs, 0);
}

/* The reply a dropped or failed peer gets. */
static void read_reply(int fd, struct mig_reply *rep)
{
    ck_assert_int_eq(mig_read(fd, rep, sizeof(*rep)), 0);
    ck_assert(!memcmp(rep->magic, MIG_REPLY_MAGIC, 8));
    rep->msg[sizeof(rep->msg) - 1] = '\0';
}

START_TEST(a_peer_silent_mid_stream_fails_the_migration)
{
    struct mig_header hdr;
    struct mig_rec rec = {.type = MIG_REC_RAM, .a = 0, .b = 1};
    struct mig_reply rep;
    struct dest d;
    int s;

    dest_start_bounded(&d, "mig.sock", -1, MIGRATION_HEADER_TIMEOUT_MS, 300);
    s = connect_unix(d.uri);
    matching_header(&d.host, &hdr);
    ck_assert_int_eq(mig_write(s, &hdr, sizeof(hdr)), 0);
    ck_assert_int_eq(mig_write(s, &rec, sizeof(rec)), 0);
    ck_assert_int_eq(mig_write(s, "half a page", 11), 0);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ETIMEDOUT);
    ck_assert_msg(d.took_ms < 3000, "took %llu ms", (unsigned long long)d.took_ms);
    read_reply(s, &rep);
    ck_assert_int_ne(rep.status, 0);
    ck_assert_msg(strstr(rep.msg, "silent"), "reply: %s", rep.msg);
    close(s);
    host_destroy(&d.host);
}
END_TEST

/* Issue 15's peer (8 header bytes, then silence) and a peer with a wrong header
 * are dropped; the source that comes next migrates. */
START_TEST(bad_peers_are_dropped_and_the_next_migrates)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_info info;
    struct mig_header hdr;
    struct mig_reply rep;
    struct migration *m;
    struct dest d;
    int silent, wrong;

    host_init(&src);
    guest_wrote(&src, 1 << 20);
    dest_start_bounded(&d, "mig.sock", -1, 300, MIGRATION_IDLE_TIMEOUT_MS);
    silent = connect_unix(d.uri);
    ck_assert_int_eq(mig_write(silent, MIG_MAGIC, 8), 0);
    usleep(600000); /* dropped after 300 ms */
    wrong = connect_unix(d.uri);
    matching_header(&d.host, &hdr);
    hdr.ncpus = 7;
    ck_assert_int_eq(mig_write(wrong, &hdr, sizeof(hdr)), 0);
    read_reply(wrong, &rep);
    ck_assert_int_ne(rep.status, 0);
    ck_assert_msg(strstr(rep.msg, "7 vCPUs"), "reply: %s", rep.msg);
    h = host_iface(&src);
    m = migration_create(&h);
    start(m, d.uri, true, 0);
    wait_done(m, &info, 30000);
    assert_completed(&info);
    dest_join(&d);
    ck_assert_int_eq(d.ret, 0);
    ck_assert_uint_eq(info.verify_pages_differ, 0);
    close(silent);
    close(wrong);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

/* The same over TCP: a real listener on 127.0.0.1. */
static int tcp_connect(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int s = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 100; i++) {
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return s;
        usleep(20000);
    }
    ck_abort_msg("cannot connect to 127.0.0.1:%u", port);
    return -1;
}

static uint16_t free_tcp_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(s);
    return port;
}

START_TEST(tcp_listener_drops_a_silent_peer_and_takes_the_next)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    struct dest d;
    uint16_t port = free_tcp_port();
    char uri[64];
    int silent;

    host_init(&src);
    guest_wrote(&src, 1 << 20);
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", port);
    dest_start_bounded(&d, uri, -1, 300, MIGRATION_IDLE_TIMEOUT_MS);
    silent = tcp_connect(port);
    ck_assert_int_eq(mig_write(silent, MIG_MAGIC, 8), 0);
    usleep(500000);
    h = host_iface(&src);
    m = migration_create(&h);
    start(m, d.uri, true, 0);
    wait_done(m, &info, 30000);
    assert_completed(&info);
    dest_join(&d);
    ck_assert_int_eq(d.ret, 0);
    close(silent);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

/* ~100 ms is the promise; the bound leaves room for a loaded CI machine. */
#define STOP_BOUND_MS 300

static void stop_after(int efd, unsigned ms)
{
    uint64_t one = 1;

    usleep(ms * 1000);
    ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
}

START_TEST(stop_fd_ends_every_wait_at_once)
{
    struct mig_header hdr;
    struct dest d;
    int efd, s;
    uint64_t t0;

    /* 1. Waiting for a peer. */
    efd = eventfd(0, EFD_CLOEXEC);
    dest_start(&d, "a.sock", efd);
    t0 = now_ms();
    stop_after(efd, 100);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < 100 + STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    host_destroy(&d.host);
    close(efd);

    /* 2. A peer that sent 8 bytes of its header (issue 15: SIGTERM did nothing). */
    efd = eventfd(0, EFD_CLOEXEC);
    dest_start(&d, "b.sock", efd);
    s = connect_unix(d.uri);
    ck_assert_int_eq(mig_write(s, MIG_MAGIC, 8), 0);
    usleep(100000);
    t0 = now_ms();
    stop_after(efd, 0);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    close(s);
    host_destroy(&d.host);
    close(efd);

    /* 3. Mid-stream, the peer silent (the idle bound is 30 s). */
    efd = eventfd(0, EFD_CLOEXEC);
    dest_start(&d, "c.sock", efd);
    s = connect_unix(d.uri);
    matching_header(&d.host, &hdr);
    ck_assert_int_eq(mig_write(s, &hdr, sizeof(hdr)), 0);
    usleep(100000);
    t0 = now_ms();
    stop_after(efd, 0);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    close(s);
    host_destroy(&d.host);
    close(efd);
}
END_TEST

/* vmm's exit path: migration_interrupt makes migration_stop_fd readable. */
START_TEST(migration_interrupt_stops_the_destination)
{
    struct fake_host src;
    struct migration_host h;
    struct migration *m;
    struct dest d;
    uint64_t t0;

    host_init(&src);
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "d.sock", migration_stop_fd(m));
    usleep(100000);
    t0 = now_ms();
    migration_interrupt(m);
    dest_join(&d);
    ck_assert_int_eq(d.ret, -ECANCELED);
    ck_assert_msg(now_ms() - t0 < STOP_BOUND_MS, "stopped after %llu ms",
                  (unsigned long long)(now_ms() - t0));
    migration_interrupt(NULL);
    migration_destroy(m);
    host_destroy(&d.host);
    host_destroy(&src);
}
END_TEST

static Suite *migration_dest_suite(void)
{
    Suite *s = suite_create("migration_dest");
    TCase *bounds = tcase_create("bounds");

    tcase_add_checked_fixture(bounds, tmpdir_setup, tmpdir_teardown);
    tcase_set_timeout(bounds, 60);
    tcase_add_test(bounds, a_peer_silent_mid_stream_fails_the_migration);
    tcase_add_test(bounds, bad_peers_are_dropped_and_the_next_migrates);
    tcase_add_test(bounds, tcp_listener_drops_a_silent_peer_and_takes_the_next);
    tcase_add_test(bounds, stop_fd_ends_every_wait_at_once);
    tcase_add_test(bounds, migration_interrupt_stops_the_destination);
    suite_add_tcase(s, bounds);
    return s;
}

CHECK_MAIN(migration_dest_suite)
