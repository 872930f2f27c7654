/* virtio-net's pure parts: the --net option string, the features offered to the
 * guest from what the backend offers, and the features passed on to the
 * backend from what the guest acked. */
#include "../../devices/virtio_net.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIT(n) (1ULL << (n))

/* What the backend implements on the data path (QEMU's user_feature_bits). */
#define DATA_PATH_BITS                                                                             \
    (BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |        \
     BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) | BIT(VIRTIO_NET_F_GUEST_UFO) |    \
     BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN) |      \
     BIT(VIRTIO_NET_F_HOST_UFO) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_F_RING_INDIRECT_DESC) | \
     BIT(VIRTIO_F_RING_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1))

/* What vmm provides itself: config space and the control queue. */
#define VMM_BITS                                                                                   \
    (BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_CTRL_VQ) |                \
     BIT(VIRTIO_NET_F_CTRL_RX) | BIT(VIRTIO_NET_F_CTRL_MAC_ADDR))

static struct virtio_net_options opts;
static char err[256];

static int parse(const char *arg)
{
    memset(&opts, 0xa5, sizeof(opts)); /* defaults must come from the parser */
    err[0] = '\0';
    return virtio_net_parse_options(arg, &opts, err, sizeof(err));
}

/* Fails unless arg is refused with a message quoting `names`. */
static void expect_error(const char *arg, const char *names)
{
    ck_assert_msg(parse(arg) == -EINVAL, "'%s' accepted", arg);
    ck_assert_msg(strstr(err, names) != NULL, "'%s': error '%s' does not name '%s'", arg, err,
                  names);
}

/* ---- option parsing ---- */

START_TEST(defaults)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    ck_assert_int_eq(parse("vhost-user,socket=/run/vhost.sock"), 0);
    ck_assert_str_eq(opts.socket_path, "/run/vhost.sock");
    ck_assert(!opts.server);
    ck_assert_uint_eq(opts.queue_pairs, 1);
    ck_assert_mem_eq(opts.mac, mac, 6);
    ck_assert_uint_eq(opts.mtu, 0);
    ck_assert_uint_eq(opts.connect_timeout_ms, 30000);
    ck_assert_uint_eq(opts.reply_timeout_ms, 30000);
}
END_TEST

START_TEST(every_key)
{
    static const uint8_t mac[6] = {0x02, 0x00, 0x00, 0xab, 0xcd, 0xef};

    ck_assert_int_eq(parse("vhost-user,socket=/tmp/s,server,queues=4,mac=02:00:00:AB:cd:ef,"
                           "mtu=9000,connect-timeout-ms=0,reply-timeout-ms=500"),
                     0);
    ck_assert_str_eq(opts.socket_path, "/tmp/s");
    ck_assert(opts.server);
    ck_assert_uint_eq(opts.queue_pairs, 4);
    ck_assert_mem_eq(opts.mac, mac, 6);
    ck_assert_uint_eq(opts.mtu, 9000);
    ck_assert_uint_eq(opts.connect_timeout_ms, 0);
    ck_assert_uint_eq(opts.reply_timeout_ms, 500);
}
END_TEST

START_TEST(limits_accepted)
{
    char path[200];

    ck_assert_int_eq(parse("vhost-user,socket=/s,queues=1"), 0);
    ck_assert_uint_eq(opts.queue_pairs, 1);
    ck_assert_int_eq(parse("vhost-user,socket=/s,queues=8"), 0);
    ck_assert_uint_eq(opts.queue_pairs, VIRTIO_NET_MAX_PAIRS);
    ck_assert_int_eq(parse("vhost-user,socket=/s,mtu=68"), 0);
    ck_assert_uint_eq(opts.mtu, 68);
    ck_assert_int_eq(parse("vhost-user,socket=/s,mtu=65535"), 0);
    ck_assert_uint_eq(opts.mtu, 65535);
    ck_assert_int_eq(parse("vhost-user,socket=/s,connect-timeout-ms=3600000"), 0);
    ck_assert_uint_eq(opts.connect_timeout_ms, 3600000);
    ck_assert_int_eq(parse("vhost-user,socket=/s,reply-timeout-ms=1"), 0);
    ck_assert_uint_eq(opts.reply_timeout_ms, 1);
    /* The longest path a sockaddr_un holds with its NUL. */
    memset(path, 'p', 107);
    path[107] = '\0';
    {
        char arg[300];

        snprintf(arg, sizeof(arg), "vhost-user,socket=%s", path);
        ck_assert_int_eq(parse(arg), 0);
        ck_assert_uint_eq(strlen(opts.socket_path), 107);
    }
    /* Later settings win, in order. */
    ck_assert_int_eq(parse("vhost-user,socket=/a,queues=2,socket=/b,queues=3"), 0);
    ck_assert_str_eq(opts.socket_path, "/b");
    ck_assert_uint_eq(opts.queue_pairs, 3);
}
END_TEST

START_TEST(unknown_key)
{
    expect_error("vhost-user,socket=/s,speed=10", "'speed=10'");
    expect_error("vhost-user,socket=/s,Socket=/t", "'Socket=/t'");
    expect_error("vhost-user,socket=/s,queue", "'queue'");
}
END_TEST

START_TEST(bad_queues)
{
    expect_error("vhost-user,socket=/s,queues=0", "'queues=0'");
    expect_error("vhost-user,socket=/s,queues=9", "'queues=9'");
    expect_error("vhost-user,socket=/s,queues=-1", "'queues=-1'");
    expect_error("vhost-user,socket=/s,queues=+2", "'queues=+2'");
    expect_error("vhost-user,socket=/s,queues=2x", "'queues=2x'");
    expect_error("vhost-user,socket=/s,queues=", "'queues='");
    expect_error("vhost-user,socket=/s,queues", "'queues'");
    expect_error("vhost-user,socket=/s,queues=18446744073709551617", "queues=");
}
END_TEST

START_TEST(bad_mac)
{
    expect_error("vhost-user,socket=/s,mac=zz:00:00:00:00:01", "'mac=zz:00:00:00:00:01'");
    expect_error("vhost-user,socket=/s,mac=52:54:00:12:34", "'mac=52:54:00:12:34'");
    expect_error("vhost-user,socket=/s,mac=52:54:00:12:34:56:78", "'mac=52:54:00:12:34:56:78'");
    expect_error("vhost-user,socket=/s,mac=52:54:00:12:34:567", "'mac=52:54:00:12:34:567'");
    expect_error("vhost-user,socket=/s,mac=", "'mac='");
    /* The group bit makes it multicast: no NIC can own it. */
    expect_error("vhost-user,socket=/s,mac=01:00:5e:00:00:01", "'mac=01:00:5e:00:00:01'");
    expect_error("vhost-user,socket=/s,mac=ff:ff:ff:ff:ff:ff", "'mac=ff:ff:ff:ff:ff:ff'");
}
END_TEST

START_TEST(mac_takes_hex_digits_only)
{
    /* No signs or blanks, which sscanf("%2x") would take: "-2" reads as 0xfe. */
    expect_error("vhost-user,socket=/s,mac=-2:00:00:00:00:01", "'mac=-2:00:00:00:00:01'");
    expect_error("vhost-user,socket=/s,mac=+2:00:00:00:00:01", "'mac=+2:00:00:00:00:01'");
    expect_error("vhost-user,socket=/s,mac= 2:00:00:00:00:01", "'mac= 2:00:00:00:00:01'");
}
END_TEST

START_TEST(bad_numbers)
{
    expect_error("vhost-user,socket=/s,mtu=10", "'mtu=10'");
    expect_error("vhost-user,socket=/s,mtu=67", "'mtu=67'");
    expect_error("vhost-user,socket=/s,mtu=65536", "'mtu=65536'");
    expect_error("vhost-user,socket=/s,connect-timeout-ms=3600001", "'connect-timeout-ms=3600001'");
    expect_error("vhost-user,socket=/s,reply-timeout-ms=0", "'reply-timeout-ms=0'");
    expect_error("vhost-user,socket=/s,reply-timeout-ms=600001", "'reply-timeout-ms=600001'");
    expect_error("vhost-user,socket=/s,server=1", "'server=1'");
}
END_TEST

START_TEST(bad_socket)
{
    char arg[300];

    expect_error("vhost-user", "socket=PATH is required");
    expect_error("vhost-user,server,queues=2", "socket=PATH is required");
    expect_error("vhost-user,socket=", "'socket='");
    expect_error("vhost-user,socket", "'socket'");
    memset(arg, 0, sizeof(arg));
    strcpy(arg, "vhost-user,socket=");
    memset(arg + strlen(arg), 'p', 108); /* no room for the NUL in sun_path */
    ck_assert_int_eq(parse(arg), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "socket=ppp"));
}
END_TEST

START_TEST(bad_backend_type)
{
    expect_error("tap,ifname=tap0", "only vhost-user");
    expect_error("vhost-userx,socket=/s", "only vhost-user");
    expect_error("vhost-kernel,socket=/s", "only vhost-user");
    expect_error("", "only vhost-user");
    expect_error("socket=/s,vhost-user", "only vhost-user");
}
END_TEST

START_TEST(too_long)
{
    char arg[600];

    memset(arg, 0, sizeof(arg));
    strcpy(arg, "vhost-user,socket=/s,");
    memset(arg + strlen(arg), 'x', sizeof(arg) - 1 - strlen(arg));
    ck_assert_int_eq(parse(arg), -EINVAL);
    /* The reason must survive main()'s 256-byte buffer, and be the real one: the
     * string is vhost-user, it is too long. */
    ck_assert_msg(strstr(err, "long") != NULL, "error '%s' does not say the argument is too long",
                  err);
}
END_TEST

START_TEST(error_fits_small_buffers)
{
    char small[8];

    memset(small, 'z', sizeof(small));
    ck_assert_int_eq(
        virtio_net_parse_options("vhost-user,socket=/s,queues=0", &opts, small, sizeof(small)),
        -EINVAL);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

/* ---- features offered to the guest ---- */

static struct virtio_net_options with(unsigned pairs, uint16_t mtu)
{
    struct virtio_net_options o;

    memset(&o, 0, sizeof(o));
    o.queue_pairs = pairs;
    o.mtu = mtu;
    return o;
}

START_TEST(offered_vmm_bits_always)
{
    struct virtio_net_options o = with(1, 0);

    ck_assert_uint_eq(virtio_net_offered_features(0, &o), VMM_BITS);
}
END_TEST

START_TEST(offered_passes_data_path_bits_through)
{
    struct virtio_net_options o = with(1, 0);

    ck_assert_uint_eq(virtio_net_offered_features(DATA_PATH_BITS, &o), DATA_PATH_BITS | VMM_BITS);
    for (unsigned bit = 0; bit < 64; bit++) {
        uint64_t f = virtio_net_offered_features(BIT(bit), &o);

        if (DATA_PATH_BITS & BIT(bit))
            ck_assert_msg(f == (VMM_BITS | BIT(bit)), "bit %u not passed through", bit);
        else
            ck_assert_msg(f == VMM_BITS || (VMM_BITS & BIT(bit)),
                          "backend bit %u leaked to the guest", bit);
    }
}
END_TEST

START_TEST(offered_drops_unknown_backend_bits)
{
    struct virtio_net_options o = with(1, 0);
    const uint64_t unknown = BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | BIT(VIRTIO_NET_F_CTRL_VLAN) |
                             BIT(21) /* GUEST_ANNOUNCE */ | BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
                             BIT(VHOST_USER_F_LOG_ALL) | BIT(33) /* ACCESS_PLATFORM */ |
                             BIT(34) /* RING_PACKED */ | BIT(63);

    ck_assert_uint_eq(virtio_net_offered_features(unknown, &o), VMM_BITS);
    ck_assert_uint_eq(virtio_net_offered_features(~0ULL, &o), DATA_PATH_BITS | VMM_BITS);
}
END_TEST

START_TEST(offered_mq_only_with_several_pairs)
{
    struct virtio_net_options one = with(1, 0), two = with(2, 0), eight = with(8, 0);

    ck_assert_uint_eq(virtio_net_offered_features(BIT(VIRTIO_NET_F_MQ), &one), VMM_BITS);
    ck_assert_uint_eq(virtio_net_offered_features(0, &two), VMM_BITS | BIT(VIRTIO_NET_F_MQ));
    ck_assert_uint_eq(virtio_net_offered_features(0, &eight), VMM_BITS | BIT(VIRTIO_NET_F_MQ));
}
END_TEST

START_TEST(offered_mtu_only_with_mtu_set)
{
    struct virtio_net_options none = with(1, 0), jumbo = with(1, 9000);

    ck_assert_uint_eq(virtio_net_offered_features(BIT(VIRTIO_NET_F_MTU), &none), VMM_BITS);
    ck_assert_uint_eq(virtio_net_offered_features(0, &jumbo), VMM_BITS | BIT(VIRTIO_NET_F_MTU));
    {
        struct virtio_net_options both = with(4, 1500);

        ck_assert_uint_eq(virtio_net_offered_features(BIT(VIRTIO_F_VERSION_1), &both),
                          VMM_BITS | BIT(VIRTIO_NET_F_MTU) | BIT(VIRTIO_NET_F_MQ) |
                              BIT(VIRTIO_F_VERSION_1));
    }
}
END_TEST

/* ---- features passed to the backend ---- */

START_TEST(backend_gets_acked_data_path_bits_it_offered)
{
    const uint64_t acked = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_CSUM) |
                           BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_F_RING_EVENT_IDX);
    const uint64_t backend = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_CSUM) |
                             BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_HOST_TSO4);

    /* EVENT_IDX acked but not offered by the backend; HOST_TSO4 offered, not acked. */
    ck_assert_uint_eq(virtio_net_backend_features(acked, backend), BIT(VIRTIO_F_VERSION_1) |
                                                                       BIT(VIRTIO_NET_F_CSUM) |
                                                                       BIT(VIRTIO_NET_F_MRG_RXBUF));
    ck_assert_uint_eq(virtio_net_backend_features(0, backend), 0);
    ck_assert_uint_eq(virtio_net_backend_features(DATA_PATH_BITS, DATA_PATH_BITS), DATA_PATH_BITS);
}
END_TEST

START_TEST(backend_gets_protocol_features_when_it_offered_them)
{
    const uint64_t pf = BIT(VHOST_USER_F_PROTOCOL_FEATURES);

    ck_assert_uint_eq(virtio_net_backend_features(0, pf), pf);
    ck_assert_uint_eq(
        virtio_net_backend_features(BIT(VIRTIO_F_VERSION_1), pf | BIT(VIRTIO_F_VERSION_1)),
        pf | BIT(VIRTIO_F_VERSION_1));
    /* A guest cannot ack it into being. */
    ck_assert_uint_eq(virtio_net_backend_features(pf, 0), 0);
}
END_TEST

START_TEST(backend_never_gets_vmm_bits)
{
    const uint64_t vmm_only = VMM_BITS | BIT(VIRTIO_NET_F_MQ) | BIT(VIRTIO_NET_F_MTU) |
                              BIT(VIRTIO_NET_F_CTRL_VLAN) | BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);

    ck_assert_uint_eq(virtio_net_backend_features(vmm_only, vmm_only), 0);
    ck_assert_uint_eq(virtio_net_backend_features(~0ULL, ~0ULL),
                      DATA_PATH_BITS | BIT(VHOST_USER_F_PROTOCOL_FEATURES));
    ck_assert_uint_eq(virtio_net_backend_features(~0ULL, ~0ULL) &
                          (BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_MQ) |
                           BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS)),
                      0);
}
END_TEST

static Suite *virtio_net_suite(void)
{
    Suite *s = suite_create("virtio_net");
    TCase *options = tcase_create("options");
    TCase *offered = tcase_create("offered");
    TCase *backend = tcase_create("backend");

    tcase_add_test(options, defaults);
    tcase_add_test(options, every_key);
    tcase_add_test(options, limits_accepted);
    tcase_add_test(options, unknown_key);
    tcase_add_test(options, bad_queues);
    tcase_add_test(options, bad_mac);
    tcase_add_test(options, mac_takes_hex_digits_only);
    tcase_add_test(options, bad_numbers);
    tcase_add_test(options, bad_socket);
    tcase_add_test(options, bad_backend_type);
    tcase_add_test(options, too_long);
    tcase_add_test(options, error_fits_small_buffers);
    suite_add_tcase(s, options);

    tcase_add_test(offered, offered_vmm_bits_always);
    tcase_add_test(offered, offered_passes_data_path_bits_through);
    tcase_add_test(offered, offered_drops_unknown_backend_bits);
    tcase_add_test(offered, offered_mq_only_with_several_pairs);
    tcase_add_test(offered, offered_mtu_only_with_mtu_set);
    suite_add_tcase(s, offered);

    tcase_add_test(backend, backend_gets_acked_data_path_bits_it_offered);
    tcase_add_test(backend, backend_gets_protocol_features_when_it_offered_them);
    tcase_add_test(backend, backend_never_gets_vmm_bits);
    suite_add_tcase(s, backend);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(virtio_net_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
