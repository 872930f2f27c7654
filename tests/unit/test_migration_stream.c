/* The migration stream: the header's checks (each mismatch named), record bounds,
 * whole-buffer I/O that reports a closed peer, batched writes and buffered reads
 * that keep every byte in order, and the unix/tcp transports. */
#include "../../common/util.h"
#include "../../vmm/migration_stream.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct guest_memory mem_of(uint64_t size)
{
    struct guest_memory m = {.fd = -1, .size = size};

    m.nregions = guest_memory_layout(size, m.regions);
    return m;
}

static void header(struct mig_header *h, uint64_t size, unsigned cpus, unsigned pairs)
{
    struct guest_memory m = mem_of(size);
    unsigned qp[MIG_MAX_NETS] = {pairs};

    mig_header_fill(h, &m, cpus, pairs ? 1 : 0, qp, 0);
}

static void assert_refused(const struct mig_header *got, const struct mig_header *mine,
                           const char *needle)
{
    char why[200] = "";

    ck_assert_int_eq(mig_header_check(got, mine, why, sizeof(why)), -EINVAL);
    ck_assert_msg(strstr(why, needle), "'%s' does not mention '%s'", why, needle);
}

START_TEST(header_matches_itself)
{
    struct mig_header a, b;
    char why[200] = "";

    header(&a, 1 * GiB, 2, 1);
    header(&b, 1 * GiB, 2, 1);
    ck_assert_int_eq(mig_header_check(&a, &b, why, sizeof(why)), 0);
    a.flags = MIG_F_VERIFY;
    b.flags = MIG_F_VERIFY;
    ck_assert_int_eq(mig_header_check(&a, &b, why, sizeof(why)), 0);
}
END_TEST

START_TEST(header_mismatches_are_named)
{
    struct mig_header got, mine;

    header(&mine, 1 * GiB, 2, 1);
    header(&got, 2 * GiB, 2, 1);
    assert_refused(&got, &mine, "RAM");
    header(&got, 1 * GiB, 4, 1);
    assert_refused(&got, &mine, "vCPUs");
    header(&got, 1 * GiB, 2, 0);
    assert_refused(&got, &mine, "NICs");
    header(&got, 1 * GiB, 2, 2);
    assert_refused(&got, &mine, "queue pairs");
    header(&got, 1 * GiB, 2, 1);
    got.version = MIG_VERSION + 1;
    assert_refused(&got, &mine, "version");
    header(&got, 1 * GiB, 2, 1);
    got.magic[0] = 'X';
    assert_refused(&got, &mine, "magic");
    header(&got, 1 * GiB, 2, 1);
    got.flags = 0x80;
    assert_refused(&got, &mine, "flags");
}
END_TEST

START_TEST(records_are_bounded)
{
    struct guest_memory m = mem_of(6 * GiB);
    char why[200];
    struct mig_rec ok_ram = {.type = MIG_REC_RAM, .a = 4 * GiB, .b = 256};
    struct mig_rec bad[] = {
        {.type = MIG_REC_RAM, .a = 3 * GiB, .b = 1},           /* in the hole */
        {.type = MIG_REC_RAM, .a = 3 * GiB - 4096, .b = 2},    /* runs into the hole */
        {.type = MIG_REC_RAM, .a = 4096, .b = 257},            /* too many pages */
        {.type = MIG_REC_ZERO, .a = 4097, .b = 1},             /* not page-aligned */
        {.type = MIG_REC_RAM, .a = 0, .b = 0},                 /* empty */
        {.type = MIG_REC_ZERO, .a = 7 * GiB, .b = 1},          /* past RAM */
        {.type = MIG_REC_VCPU, .a = 0, .b = MIG_MAX_BLOB + 1}, /* huge state */
        {.type = MIG_REC_DEVICE, .a = MIG_MAX_ID + 1, .b = 8}, /* long id */
        {.type = MIG_REC_DEVICE, .a = 0, .b = 8},              /* no id */
        {.type = MIG_REC_VERIFY, .a = 6 * GiB / 4096 - 1},     /* wrong page count */
        {.type = 99},                                          /* unknown */
    };

    ck_assert_int_eq(mig_rec_check(&ok_ram, &m, why, sizeof(why)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(mig_rec_check(&bad[i], &m, why, sizeof(why)) == -EINVAL,
                      "record %zu was accepted", i);
}
END_TEST

/* A device id from the stream goes into the destination's one error line. */
START_TEST(device_ids_are_printable)
{
    char why[200] = "";

    ck_assert_int_eq(mig_device_id_check("serial0", 7, why, sizeof(why)), 0);
    ck_assert_int_eq(mig_device_id_check("net\n0", 5, why, sizeof(why)), -EINVAL);
    ck_assert_msg(strstr(why, "byte 0x0a at 3"), "why: %s", why);
    ck_assert_int_eq(mig_device_id_check("rtc\0x", 5, why, sizeof(why)), -EINVAL);
    ck_assert_int_eq(mig_device_id_check("\xff", 1, why, sizeof(why)), -EINVAL);
}
END_TEST

START_TEST(io_reports_a_closed_peer)
{
    int sv[2];
    char buf[16] = "0123456789abcdef", in[16];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(mig_write(sv[0], buf, 10), 0);
    close(sv[0]);
    ck_assert_int_eq(mig_read(sv[1], in, 16), -EPIPE); /* 10 of 16 bytes, then EOF */
    ck_assert_int_eq(mig_write(sv[1], buf, 16), -EPIPE);
    close(sv[1]);
}
END_TEST

/* Record i: a = i, b = payload length (0 to 3 pages, varied), payload bytes i + offset. */
#define BATCH_RECS 300
static size_t batch_len(unsigned i)
{
    return (i % 4) * 4096 + (i % 3);
}

static uint8_t *batch_payloads(void)
{
    uint8_t *p = malloc(BATCH_RECS * 3 * 4096 + BATCH_RECS * 2);

    for (size_t i = 0, off = 0; i < BATCH_RECS; off += batch_len((unsigned)i++))
        for (size_t j = 0; j < batch_len((unsigned)i); j++)
            p[off + j] = (uint8_t)(i + j);
    return p;
}

/* Queues every record through mig_out: more records than a batch and more bytes than
 * a socket buffer, so flushes happen mid-way and sendmsg writes partly. */
static void write_batch(int fd, const uint8_t *payloads)
{
    static struct mig_out o;

    o.fd = fd;
    for (size_t i = 0, off = 0; i < BATCH_RECS; off += batch_len((unsigned)i++)) {
        struct mig_rec rec = {.type = MIG_REC_RAM, .a = i, .b = batch_len((unsigned)i)};

        ck_assert_int_eq(mig_out_rec(&o, &rec, payloads + off, rec.b), 0);
    }
    ck_assert_int_eq(mig_out_flush(&o), 0);
}

/* Reads them back with a reader of CAP bytes: small reads come from its buffer,
 * payloads of CAP bytes or more straight from the fd. */
static void read_batch(int fd, size_t cap, const uint8_t *payloads)
{
    struct mig_reader rd;
    uint8_t *got = malloc(3 * 4096 + 2);

    ck_assert_int_eq(mig_reader_init(&rd, fd, cap), 0);
    for (size_t i = 0, off = 0; i < BATCH_RECS; off += batch_len((unsigned)i++)) {
        struct mig_rec rec;

        ck_assert_int_eq(mig_reader_read(&rd, &rec, sizeof(rec)), 0);
        ck_assert_uint_eq(rec.a, i);
        ck_assert_uint_eq(rec.b, batch_len((unsigned)i));
        ck_assert_int_eq(mig_reader_read(&rd, got, rec.b), 0);
        ck_assert_msg(!memcmp(got, payloads + off, rec.b), "record %zu's payload differs", i);
    }
    ck_assert_int_eq(mig_reader_read(&rd, got, 1), -EPIPE);
    mig_reader_free(&rd);
    free(got);
}

struct batch_writer {
    int fd;
    const uint8_t *payloads;
};

static void *batch_writer_thread(void *arg)
{
    struct batch_writer *w = arg;

    write_batch(w->fd, w->payloads);
    close(w->fd);
    return NULL;
}

START_TEST(batched_writes_and_buffered_reads_keep_the_stream)
{
    uint8_t *payloads = batch_payloads();
    size_t caps[] = {64, 5000, 256 << 10};

    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        int sv[2];
        struct batch_writer w;
        pthread_t t;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        w = (struct batch_writer){.fd = sv[0], .payloads = payloads};
        ck_assert_int_eq(pthread_create(&t, NULL, batch_writer_thread, &w), 0);
        read_batch(sv[1], caps[c], payloads);
        pthread_join(t, NULL);
        close(sv[1]);
    }
    /* A snapshot file: writev instead of sendmsg. */
    {
        FILE *f = tmpfile();

        write_batch(fileno(f), payloads);
        ck_assert_int_eq(lseek(fileno(f), 0, SEEK_SET), 0);
        read_batch(fileno(f), 4096, payloads);
        fclose(f);
    }
    free(payloads);
}
END_TEST

START_TEST(batched_write_to_a_closed_peer_fails)
{
    static struct mig_out o;
    struct mig_rec rec = {.type = MIG_REC_ZERO};
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    o.fd = sv[0];
    ck_assert_int_eq(mig_out_rec(&o, &rec, NULL, 0), 0); /* queued, not sent yet */
    ck_assert_int_eq(mig_out_flush(&o), -EPIPE);
    close(sv[0]);
}
END_TEST

struct acceptor {
    int lfd, fd, ret;
};

static void *accept_one(void *arg)
{
    struct acceptor *a = arg;

    a->ret = mig_accept(a->lfd, -1, &a->fd);
    return NULL;
}

static void round_trip(const char *uri)
{
    struct acceptor a = {.fd = -1};
    pthread_t t;
    int c = -1;
    uint64_t v = 0x1122334455667788ULL, got = 0;

    ck_assert_int_eq(mig_listen(uri, &a.lfd), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, accept_one, &a), 0);
    ck_assert_int_eq(mig_connect(uri, &c), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.ret, 0);
    ck_assert_int_eq(mig_write(c, &v, sizeof(v)), 0);
    ck_assert_int_eq(mig_read(a.fd, &got, sizeof(got)), 0);
    ck_assert_uint_eq(got, v);
    close(c);
    close(a.fd);
    close(a.lfd);
}

START_TEST(unix_and_tcp_transports)
{
    char uri[128];

    snprintf(uri, sizeof(uri), "unix:/tmp/vmm-test-mig-%d.sock", getpid());
    round_trip(uri);
    unlink(uri + 5);
    round_trip("tcp:127.0.0.1:47311");
}
END_TEST

START_TEST(bad_uris_refused)
{
    int fd;
    char path[64];
    FILE *f;

    ck_assert_int_eq(mig_connect("udp:1.2.3.4:5", &fd), -EINVAL);
    ck_assert_int_eq(mig_connect("tcp:nohostport", &fd), -EINVAL);
    ck_assert_int_lt(mig_connect("unix:/nonexistent/vmm.sock", &fd), 0);
    /* Listening never replaces a file that is not a socket. */
    snprintf(path, sizeof(path), "/tmp/vmm-test-mig-file-%d", getpid());
    f = fopen(path, "w");
    fclose(f);
    {
        char uri[80];

        snprintf(uri, sizeof(uri), "unix:%s", path);
        ck_assert_int_eq(mig_listen(uri, &fd), -EEXIST);
    }
    ck_assert_int_eq(access(path, F_OK), 0);
    unlink(path);
}
END_TEST

static Suite *migration_stream_suite(void)
{
    Suite *s = suite_create("migration_stream");
    TCase *tc = tcase_create("stream");

    tcase_add_test(tc, header_matches_itself);
    tcase_add_test(tc, header_mismatches_are_named);
    tcase_add_test(tc, records_are_bounded);
    tcase_add_test(tc, device_ids_are_printable);
    tcase_add_test(tc, io_reports_a_closed_peer);
    tcase_add_test(tc, batched_writes_and_buffered_reads_keep_the_stream);
    tcase_add_test(tc, batched_write_to_a_closed_peer_fails);
    tcase_add_test(tc, unix_and_tcp_transports);
    tcase_add_test(tc, bad_uris_refused);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(migration_stream_suite)
