/* virtio-net's pure parts: the --net option string, the features offered to the
 * guest from what the backend offers, and the features passed on to the
 * backend from what the guest acked; and the control queue vmm handles itself,
 * on a device set up without a backend. */
#include "../../devices/virtio_net.h"

#include "../support/fake_platform.h"
#include "../support/guest_mem.h"
#include "../support/vu_wire.h"
#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIT(n) (1ULL << (n))

/* What the backend implements on the data path (QEMU's user_feature_bits). */
#define DATA_PATH_BITS                                                                             \
    (BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |        \
     BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) | BIT(VIRTIO_NET_F_GUEST_UFO) |    \
     BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN) |      \
     BIT(VIRTIO_NET_F_HOST_UFO) | BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_F_RING_INDIRECT_DESC) | \
     BIT(VIRTIO_F_RING_EVENT_IDX) | BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_IN_ORDER) |             \
     BIT(VIRTIO_F_NOTIFICATION_DATA))

/* What vmm provides itself: config space, the control queue, announcements. */
#define VMM_BITS                                                                                   \
    (BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_CTRL_VQ) |                \
     BIT(VIRTIO_NET_F_CTRL_RX) | BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |                                 \
     BIT(VIRTIO_NET_F_GUEST_ANNOUNCE) | BIT(VIRTIO_NET_F_CTRL_VLAN) |                              \
     BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS))

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

START_TEST(packed_and_queue_size_options)
{
    ck_assert_int_eq(parse("vhost-user,socket=/s"), 0);
    ck_assert(!opts.packed);
    ck_assert_uint_eq(opts.queue_size, 256);
    ck_assert_int_eq(parse("vhost-user,socket=/s,packed=on,queue-size=1024"), 0);
    ck_assert(opts.packed);
    ck_assert_uint_eq(opts.queue_size, 1024);
    ck_assert_int_eq(parse("vhost-user,socket=/s,packed=off,queue-size=64"), 0);
    ck_assert(!opts.packed);
    ck_assert_uint_eq(opts.queue_size, 64);
    ck_assert_int_eq(parse("vhost-user,socket=/s,queue-size=32768"), 0);
    ck_assert_uint_eq(opts.queue_size, 32768);
    expect_error("vhost-user,socket=/s,packed=yes", "'packed=yes'");
    expect_error("vhost-user,socket=/s,packed", "'packed'");
    expect_error("vhost-user,socket=/s,queue-size=1000", "'queue-size=1000'");
    expect_error("vhost-user,socket=/s,queue-size=32", "'queue-size=32'");
    expect_error("vhost-user,socket=/s,queue-size=65536", "'queue-size=65536'");
    expect_error("vhost-user,socket=/s,queue-size=0", "'queue-size=0'");
}
END_TEST

START_TEST(reconnect_ms_option)
{
    ck_assert_int_eq(parse("vhost-user,socket=/s"), 0);
    ck_assert_uint_eq(opts.reconnect_ms, 1000);
    ck_assert_int_eq(parse("vhost-user,socket=/s,reconnect-ms=1"), 0);
    ck_assert_uint_eq(opts.reconnect_ms, 1);
    ck_assert_int_eq(parse("vhost-user,socket=/s,reconnect-ms=250,server"), 0);
    ck_assert_uint_eq(opts.reconnect_ms, 250);
    ck_assert_int_eq(parse("vhost-user,socket=/s,reconnect-ms=3600000"), 0);
    ck_assert_uint_eq(opts.reconnect_ms, 3600000);
    expect_error("vhost-user,socket=/s,reconnect-ms=0", "'reconnect-ms=0'");
    expect_error("vhost-user,socket=/s,reconnect-ms=3600001", "'reconnect-ms=3600001'");
    expect_error("vhost-user,socket=/s,reconnect-ms=-1", "'reconnect-ms=-1'");
    expect_error("vhost-user,socket=/s,reconnect-ms=1s", "'reconnect-ms=1s'");
    expect_error("vhost-user,socket=/s,reconnect-ms=", "'reconnect-ms='");
    expect_error("vhost-user,socket=/s,reconnect-ms", "'reconnect-ms'");
    expect_error("vhost-user,socket=/s,reconnect-ms=18446744073709551617", "reconnect-ms=");
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

/* Packed rings: only with packed=on and the backend offering them (QEMU: packed=off). */
START_TEST(offered_packed_only_when_asked_and_offered)
{
    struct virtio_net_options o = with(1, 0);

    ck_assert_uint_eq(virtio_net_offered_features(BIT(VIRTIO_F_RING_PACKED), &o), VMM_BITS);
    o.packed = true;
    ck_assert_uint_eq(virtio_net_offered_features(BIT(VIRTIO_F_RING_PACKED), &o),
                      VMM_BITS | BIT(VIRTIO_F_RING_PACKED));
    ck_assert_uint_eq(virtio_net_offered_features(0, &o), VMM_BITS);
    ck_assert_uint_eq(virtio_net_offered_features(~0ULL, &o),
                      DATA_PATH_BITS | VMM_BITS | BIT(VIRTIO_F_RING_PACKED));
    /* The backend gets it back when the guest acked it, as any data-path bit. */
    ck_assert_uint_eq(
        virtio_net_backend_features(BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_F_IN_ORDER),
                                    BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_F_IN_ORDER)),
        BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_F_IN_ORDER));
    ck_assert_int_eq(virtio_net_missing_feature(BIT(VIRTIO_F_RING_PACKED), 0),
                     VIRTIO_F_RING_PACKED);
}
END_TEST

START_TEST(offered_in_order_and_notification_data_pass_through)
{
    struct virtio_net_options o = with(1, 0);

    ck_assert_uint_eq(virtio_net_offered_features(BIT(VIRTIO_F_IN_ORDER), &o),
                      VMM_BITS | BIT(VIRTIO_F_IN_ORDER));
    ck_assert_uint_eq(virtio_net_offered_features(BIT(VIRTIO_F_NOTIFICATION_DATA), &o),
                      VMM_BITS | BIT(VIRTIO_F_NOTIFICATION_DATA));
}
END_TEST

START_TEST(offered_drops_unknown_backend_bits)
{
    struct virtio_net_options o = with(1, 0);
    const uint64_t unknown = BIT(VHOST_USER_F_PROTOCOL_FEATURES) | BIT(VHOST_USER_F_LOG_ALL) |
                             BIT(33) /* ACCESS_PLATFORM */ | BIT(34) /* RING_PACKED, packed=off */ |
                             BIT(63);

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
                      DATA_PATH_BITS | BIT(VIRTIO_F_RING_PACKED) |
                          BIT(VHOST_USER_F_PROTOCOL_FEATURES));
    ck_assert_uint_eq(virtio_net_backend_features(~0ULL, ~0ULL) &
                          (BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_MQ) |
                           BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS)),
                      0);
}
END_TEST

/* ---- a new backend against what the guest uses ---- */

START_TEST(missing_feature_none)
{
    ck_assert_int_eq(virtio_net_missing_feature(0, 0), -1);
    ck_assert_int_eq(virtio_net_missing_feature(DATA_PATH_BITS, DATA_PATH_BITS), -1);
    ck_assert_int_eq(virtio_net_missing_feature(BIT(VIRTIO_NET_F_CSUM), ~0ULL), -1);
    /* Offering more than the guest uses is fine. */
    ck_assert_int_eq(virtio_net_missing_feature(BIT(VIRTIO_F_VERSION_1), DATA_PATH_BITS), -1);
}
END_TEST

START_TEST(missing_feature_lowest_bit)
{
    const uint64_t in_use = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_NET_F_MRG_RXBUF) |
                            BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_F_RING_EVENT_IDX);

    ck_assert_int_eq(virtio_net_missing_feature(in_use, 0), VIRTIO_NET_F_HOST_TSO4);
    ck_assert_int_eq(virtio_net_missing_feature(in_use, BIT(VIRTIO_NET_F_HOST_TSO4)),
                     VIRTIO_NET_F_MRG_RXBUF);
    ck_assert_int_eq(virtio_net_missing_feature(in_use, in_use & ~BIT(VIRTIO_F_VERSION_1)),
                     VIRTIO_F_VERSION_1);
    ck_assert_int_eq(virtio_net_missing_feature(DATA_PATH_BITS, 0), VIRTIO_NET_F_CSUM);
}
END_TEST

/* Only what the backend implements counts: vmm's own bits (config space, control
 * queue, MQ, MTU) and the vhost-user protocol bit never make a backend unfit. */
START_TEST(missing_feature_only_data_path_bits)
{
    for (unsigned bit = 0; bit < 64; bit++) {
        int want = ((DATA_PATH_BITS | BIT(VIRTIO_F_RING_PACKED)) & BIT(bit)) ? (int)bit : -1;

        ck_assert_msg(virtio_net_missing_feature(BIT(bit), 0) == want,
                      "bit %u in use, not offered: %d, expected %d", bit,
                      virtio_net_missing_feature(BIT(bit), 0), want);
    }
    ck_assert_int_eq(virtio_net_missing_feature(VMM_BITS | BIT(VIRTIO_NET_F_MQ) |
                                                    BIT(VIRTIO_NET_F_MTU) |
                                                    BIT(VHOST_USER_F_PROTOCOL_FEATURES),
                                                0),
                     -1);
}
END_TEST

/* ---- the control queue ----
 * A struct virtio_net from virtio_net_setup (no backend connected), its control
 * queue's rings laid out by hand in a fake guest memory, commands offered on
 * the avail ring as a guest driver writes them, and virtio_net_ctrl_process
 * run as on a kick. */

#define CQ_MEM_BASE 0x100000ULL
#define CQ_MEM_SIZE 0x20000ULL
#define CQ_QSIZE 16
#define CQ_PAIRS 2
#define CQ_INDEX (2 * CQ_PAIRS) /* the control queue follows the data queues */
#define CQ_DESC (CQ_MEM_BASE + 0x0000)
#define CQ_AVAIL (CQ_MEM_BASE + 0x1000)
#define CQ_USED (CQ_MEM_BASE + 0x2000)
#define CQ_TABLE (CQ_MEM_BASE + 0x3000) /* indirect tables */
#define CQ_BUFS (CQ_MEM_BASE + 0x4000)  /* command buffers, handed out in order */
#define CQ_USED_EVENT (CQ_AVAIL + 4 + 2 * CQ_QSIZE)
#define CQ_AVAIL_EVENT (CQ_USED + 4 + 8 * CQ_QSIZE)

#define ACK_OK 0
#define ACK_ERR 1
#define ACK_UNWRITTEN 0xee /* what the ack byte holds until the device writes it */

#define CLASS_RX 0
#define CLASS_MAC 1
#define CLASS_VLAN 2
#define CLASS_ANNOUNCE 3
#define CLASS_MQ 4
#define CLASS_GUEST_OFFLOADS 5
#define RX_PROMISC 0
#define RX_ALLMULTI 1
#define MAC_TABLE_SET 0
#define MAC_ADDR_SET 1
#define MQ_VQ_PAIRS_SET 0

#define CQ_FEATURES                                                                                \
    (BIT(VIRTIO_NET_F_CTRL_VQ) | BIT(VIRTIO_NET_F_CTRL_RX) | BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |     \
     BIT(VIRTIO_NET_F_MQ) | BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) |                     \
     BIT(VIRTIO_F_VERSION_1))

/* How a command's device-readable bytes are laid out in descriptors. */
enum cq_layout {
    LAYOUT_SPLIT,    /* header, data (if any), ack: the Linux driver's layout */
    LAYOUT_JOINED,   /* header and data in one descriptor, ack */
    LAYOUT_INDIRECT, /* header, data, ack in an indirect table */
};

static struct guest_mem cq_ram;
static const struct split_ring cq_ring = {&cq_ram, CQ_DESC, CQ_AVAIL, CQ_USED, CQ_QSIZE};
/* Nothing the control queue does may reach the platform: no KVM, no event loop. */
static struct fake_platform cq_platform;
static struct virtio_net_options cq_opts;
static struct virtio_net cq_net;
static uint16_t cq_next_desc;     /* next free descriptor in the ring */
static unsigned cq_next_table;    /* next free entry in the indirect-table area */
static uint64_t cq_next_buf;      /* next free command buffer */
static uint64_t cq_ack[CQ_QSIZE]; /* the ack byte's address, by head */

/* The NIC's loop, pumped by the test thread where a test needs it (the NIC's
 * watches live there); config interrupts are counted through the transport ops. */
static struct event_loop cq_loop;
static unsigned config_irqs;

static void count_config_irq(void *transport)
{
    (void)transport;
    config_irqs++;
}

static const struct virtio_transport_ops count_transport_ops = {.notify_config = count_config_irq};

/* Config interrupts since the last call. */
static unsigned config_irqs_take(void)
{
    unsigned n = config_irqs;

    config_irqs = 0;
    return n;
}

/* Copies bytes into a fresh buffer of guest memory; returns its address. */
static uint64_t cq_buf(const void *data, uint32_t len)
{
    uint64_t gpa = cq_next_buf;

    ck_assert_uint_le(gpa + len, CQ_MEM_BASE + CQ_MEM_SIZE);
    if (len)
        memcpy(guest_mem_host(&cq_ram, gpa, len), data, len);
    cq_next_buf = (gpa + len + 15) & ~15ULL;
    return gpa;
}

static uint16_t cq_alloc_desc(void)
{
    ck_assert_uint_lt(cq_next_desc, CQ_QSIZE);
    return cq_next_desc++;
}

/* Writes the chain for a command whose readable bytes are `bytes` (header and
 * data) followed by a one-byte writable ack; returns its head. */
static uint16_t cq_chain(const uint8_t *bytes, uint32_t len, enum cq_layout layout)
{
    const uint8_t unwritten = ACK_UNWRITTEN;
    uint64_t ack = cq_buf(&unwritten, 1);
    uint64_t parts[3];
    uint32_t lens[3], flags[3];
    unsigned n = 0;
    uint16_t head;

    if (layout == LAYOUT_JOINED || len <= 2) {
        parts[n] = cq_buf(bytes, len);
        lens[n++] = len;
    } else {
        parts[n] = cq_buf(bytes, 2);
        lens[n++] = 2;
        parts[n] = cq_buf(bytes + 2, len - 2);
        lens[n++] = len - 2;
    }
    for (unsigned i = 0; i < n; i++)
        flags[i] = VIRTQ_DESC_F_NEXT;
    parts[n] = ack;
    lens[n] = 1;
    flags[n++] = VIRTQ_DESC_F_WRITE;

    if (layout == LAYOUT_INDIRECT) {
        unsigned first = cq_next_table;

        ck_assert_uint_le(first + n, 256);
        for (unsigned i = 0; i < n; i++)
            split_desc_put(&cq_ram, CQ_TABLE + 16ULL * first, i, parts[i], lens[i],
                           (uint16_t)flags[i], (uint16_t)(i + 1));
        cq_next_table += n;
        head = cq_alloc_desc();
        split_desc_put(&cq_ram, CQ_DESC, head, CQ_TABLE + 16ULL * first, 16 * n,
                       VIRTQ_DESC_F_INDIRECT, 0);
    } else {
        uint16_t idx[3];

        for (unsigned i = 0; i < n; i++)
            idx[i] = cq_alloc_desc();
        for (unsigned i = 0; i < n; i++)
            split_desc_put(&cq_ram, CQ_DESC, idx[i], parts[i], lens[i], (uint16_t)flags[i],
                           i + 1 < n ? idx[i + 1] : 0);
        head = idx[0];
    }
    cq_ack[head] = ack;
    return head;
}

/* Builds {class, cmd} + data into out; returns the length. */
static uint32_t cq_cmd(uint8_t *out, uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
    out[0] = cls;
    out[1] = cmd;
    if (len)
        memcpy(out + 2, data, len);
    return 2 + len;
}

/* Queues one command; returns its head. */
static uint16_t cq_queue(uint8_t cls, uint8_t cmd, const void *data, uint32_t len,
                         enum cq_layout layout)
{
    uint8_t bytes[64];
    uint16_t head;

    ck_assert_uint_le(len + 2, sizeof(bytes));
    head = cq_chain(bytes, cq_cmd(bytes, cls, cmd, data, len), layout);
    split_ring_offer(&cq_ring, head);
    return head;
}

static uint16_t cq_used_idx(void)
{
    return split_ring_used_idx(&cq_ring);
}

/* The used entry at position pos must be {head, 1}, with the ack byte written. */
static uint8_t cq_used_ack(uint16_t pos, uint16_t head)
{
    uint32_t id, len;

    split_ring_used_elem(&cq_ring, pos, &id, &len);
    ck_assert_uint_eq(id, head);
    ck_assert_uint_eq(len, 1);
    return guest_get8(&cq_ram, cq_ack[head]);
}

/* How many times the queue's call eventfd was signalled since the last look. */
static uint64_t cq_calls_of(unsigned q)
{
    uint64_t v = 0;

    if (read(cq_net.vdev.queues[q].call_fd, &v, sizeof(v)) < 0) {
        ck_assert_int_eq(errno, EAGAIN);
        v = 0;
    }
    return v;
}

static uint64_t cq_calls(void)
{
    return cq_calls_of(CQ_INDEX);
}

/* Processes one command that must come back as the next used entry, and
 * returns its ack. */
static uint8_t cq_run(uint16_t head)
{
    uint16_t before = cq_used_idx();

    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), (uint16_t)(before + 1));
    ck_assert_uint_eq(cq_net.ctrl_vq.used_idx, cq_used_idx());
    return cq_used_ack(before, head);
}

/* Sends one command in the Linux layout; returns the device's ack. */
static uint8_t ctrl(uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
    cq_next_desc = 0; /* each command reuses the ring's descriptors once it is used */
    return cq_run(cq_queue(cls, cmd, data, len, LAYOUT_SPLIT));
}

/* Lays the rings out and fills ctrl_vq as start_ctrl_queue does. */
static void cq_start(uint64_t acked)
{
    struct virtio_queue *vq = &cq_net.vdev.queues[CQ_INDEX];

    cq_net.vdev.acked_features = acked;
    vq->size = CQ_QSIZE;
    vq->desc = CQ_DESC;
    vq->avail = CQ_AVAIL;
    vq->used = CQ_USED;
    vq->enabled = true;
    cq_net.ctrl_vq = (struct virtq){
        .size = vq->size,
        .desc_gpa = vq->desc,
        .avail_gpa = vq->avail,
        .used_gpa = vq->used,
        .event_idx = virtio_has_feature(&cq_net.vdev, VIRTIO_F_RING_EVENT_IDX),
        .mem = cq_net.vdev.mem,
    };
    ck_assert_int_eq(virtq_check_layout(&cq_net.ctrl_vq), 0);
    cq_net.phase = NET_RUNNING;
}

static void cq_setup(void)
{
    char e[128];

    guest_mem_init(&cq_ram, CQ_MEM_BASE, CQ_MEM_SIZE);
    fake_platform_init(&cq_platform);
    cq_platform.forbid = FAKE_ALL_CALLS;
    cq_platform.who = "control queue processing";
    ck_assert_int_eq(
        virtio_net_parse_options("vhost-user,socket=/x,queues=2", &cq_opts, e, sizeof(e)), 0);
    ck_assert_int_eq(event_loop_init(&cq_loop), 0);
    config_irqs = 0;
    virtio_net_setup(&cq_net, "net0", &cq_opts, &cq_platform.ops, &cq_ram.access, &cq_loop);
    cq_net.vdev.transport_ops = &count_transport_ops;
    ck_assert_uint_eq(cq_net.vdev.num_queues, CQ_INDEX + 1);
    /* Every queue gets a call eventfd, so an interrupt on the wrong one shows. */
    for (unsigned q = 0; q < cq_net.vdev.num_queues; q++) {
        cq_net.vdev.queues[q].kick_fd = -1;
        cq_net.vdev.queues[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(cq_net.vdev.queues[q].call_fd, 0);
    }
    cq_next_desc = 0;
    cq_next_table = 0;
    cq_next_buf = CQ_BUFS;
    memset(cq_ack, 0, sizeof(cq_ack));
    cq_start(CQ_FEATURES);
}

static void cq_teardown(void)
{
    for (unsigned q = 0; q < cq_net.vdev.num_queues; q++) {
        if (q != CQ_INDEX)
            ck_assert_msg(cq_calls_of(q) == 0, "interrupt raised on data queue %u", q);
        close(cq_net.vdev.queues[q].call_fd);
        cq_net.vdev.queues[q].call_fd = -1;
    }
    virtio_net_destroy(&cq_net);
    event_loop_destroy(&cq_loop);
    fake_platform_destroy(&cq_platform);
    guest_mem_destroy(&cq_ram);
}

static void cq_mac(uint8_t mac[6])
{
    cq_net.vdev.ops->config_read(&cq_net.vdev, 0, mac, 6);
}

START_TEST(ctrl_rx_promisc_on)
{
    const uint8_t on = 1;
    uint16_t head = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);

    ck_assert_uint_eq(cq_run(head), ACK_OK);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 1);
    ck_assert_uint_eq(cq_calls(), 1);
    /* Nothing more waiting: nothing pushed, no interrupt. */
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 1);
    ck_assert_uint_eq(cq_calls(), 0);
}
END_TEST

START_TEST(ctrl_header_and_data_in_one_descriptor)
{
    const uint8_t on = 1, mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    uint8_t got[6];
    uint16_t h1 = cq_queue(CLASS_RX, RX_ALLMULTI, &on, 1, LAYOUT_JOINED);
    uint16_t h2;

    ck_assert_uint_eq(cq_run(h1), ACK_OK);
    h2 = cq_queue(CLASS_MAC, MAC_ADDR_SET, mac, 6, LAYOUT_JOINED);
    ck_assert_uint_eq(cq_run(h2), ACK_OK);
    cq_mac(got);
    ck_assert_mem_eq(got, mac, 6);
    ck_assert_uint_eq(cq_calls(), 2);
}
END_TEST

START_TEST(ctrl_indirect_table)
{
    const uint8_t on = 0, mac[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
    const uint8_t two[2] = {1, 1};
    uint8_t got[6];
    uint16_t h1 = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_INDIRECT);
    uint16_t h2 = cq_queue(CLASS_MAC, MAC_ADDR_SET, mac, 6, LAYOUT_INDIRECT);
    uint16_t h3 = cq_queue(CLASS_RX, RX_PROMISC, two, 2, LAYOUT_INDIRECT);

    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 3);
    ck_assert_uint_eq(cq_used_ack(0, h1), ACK_OK);
    ck_assert_uint_eq(cq_used_ack(1, h2), ACK_OK);
    ck_assert_uint_eq(cq_used_ack(2, h3), ACK_ERR);
    cq_mac(got);
    ck_assert_mem_eq(got, mac, 6);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

START_TEST(ctrl_rx_data_must_be_one_byte)
{
    const uint8_t data[2] = {1, 0};

    ck_assert_uint_eq(ctrl(CLASS_RX, RX_PROMISC, data, 1), ACK_OK);
    ck_assert_uint_eq(ctrl(CLASS_RX, RX_PROMISC, data + 1, 1), ACK_OK); /* off */
    ck_assert_uint_eq(ctrl(CLASS_RX, RX_ALLMULTI, data, 1), ACK_OK);
    ck_assert_uint_eq(ctrl(CLASS_RX, RX_PROMISC, data, 2), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_RX, RX_PROMISC, NULL, 0), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_RX, RX_ALLMULTI, NULL, 0), ACK_ERR);
}
END_TEST

START_TEST(ctrl_rx_unknown_command)
{
    const uint8_t on = 1;

    ck_assert_uint_eq(ctrl(CLASS_RX, 6, &on, 1), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_RX, 0x80, &on, 1), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_RX, 0xff, &on, 1), ACK_ERR);
}
END_TEST

START_TEST(ctrl_mac_addr_set)
{
    static const uint8_t initial[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    const uint8_t mac[6] = {0x02, 0x00, 0xde, 0xad, 0xbe, 0xef};
    uint8_t got[6];

    cq_mac(got);
    ck_assert_mem_eq(got, initial, 6);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_ADDR_SET, mac, 6), ACK_OK);
    cq_mac(got);
    ck_assert_mem_eq(got, mac, 6);
    ck_assert_mem_eq(cq_net.config.mac, mac, 6);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

START_TEST(ctrl_mac_addr_set_wrong_length)
{
    static const uint8_t initial[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    const uint8_t mac[7] = {0x02, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x01};
    uint8_t got[6];

    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_ADDR_SET, mac, 5), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_ADDR_SET, mac, 7), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_ADDR_SET, NULL, 0), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_MAC, 2, mac, 6), ACK_ERR); /* no such MAC command */
    cq_mac(got);
    ck_assert_mem_eq(got, initial, 6);
}
END_TEST

START_TEST(ctrl_mac_addr_set_needs_ctrl_mac_addr)
{
    static const uint8_t initial[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    const uint8_t mac[6] = {0x02, 0x00, 0xde, 0xad, 0xbe, 0xef};
    uint8_t got[6];

    cq_start(CQ_FEATURES & ~BIT(VIRTIO_NET_F_CTRL_MAC_ADDR));
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_ADDR_SET, mac, 6), ACK_ERR);
    cq_mac(got);
    ck_assert_mem_eq(got, initial, 6);
    ck_assert_uint_eq(cq_calls(), 1); /* refused, still returned with an interrupt */
}
END_TEST

/* Appends a MAC table (u32 count, then count entries) to out; returns its size. */
static uint32_t mac_table(uint8_t *out, uint32_t count, unsigned entries)
{
    memcpy(out, &count, 4);
    for (unsigned i = 0; i < entries; i++) {
        const uint8_t e[6] = {0x02, 0, 0, 0, (uint8_t)(i >> 8), (uint8_t)i};

        memcpy(out + 4 + 6 * i, e, 6);
    }
    return 4 + 6 * entries;
}

START_TEST(ctrl_mac_table_set_well_formed)
{
    uint8_t d[64];
    uint32_t n;

    /* One unicast, two multicast. */
    n = mac_table(d, 1, 1);
    n += mac_table(d + n, 2, 2);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_OK);
    /* Both tables empty. */
    n = mac_table(d, 0, 0);
    n += mac_table(d + n, 0, 0);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_OK);
    /* Multicast only. */
    n = mac_table(d, 0, 0);
    n += mac_table(d + n, 3, 3);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_OK);
}
END_TEST

START_TEST(ctrl_mac_table_set_malformed)
{
    uint8_t d[64];
    uint32_t n;

    /* The first table claims more entries than there are bytes. */
    n = mac_table(d, 3, 1);
    n += mac_table(d + n, 0, 0);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_ERR);
    /* The second table does. */
    n = mac_table(d, 1, 1);
    n += mac_table(d + n, 2, 1);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_ERR);
    /* A count whose byte size would overflow 32 bits. */
    n = mac_table(d, 0xffffffffu, 1);
    n += mac_table(d + n, 0, 0);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_ERR);
    n = mac_table(d, 0x2aaaaaabu, 0); /* 6 * count wraps to 2 */
    n += mac_table(d + n, 0, 0);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_ERR);
    /* Trailing bytes after the second table. */
    n = mac_table(d, 1, 1);
    n += mac_table(d + n, 1, 1);
    d[n++] = 0;
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_ERR);
    /* The second table missing, or cut short in its count. */
    n = mac_table(d, 1, 1);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, n + 2), ACK_ERR);
    /* Nothing at all, or a partial first count. */
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, 0), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_TABLE_SET, d, 3), ACK_ERR);
}
END_TEST

/* A command longer than vmm's 4096-byte command buffer must not be judged on
 * its first 4096 bytes: here those are a well-formed MAC_TABLE_SET (681
 * unicast entries, no multicast) and one trailing byte follows. */
START_TEST(ctrl_mac_table_set_trailing_byte_past_4096)
{
    enum { ENTRIES = 681 };
    static uint8_t bytes[2 + 4 + 6 * ENTRIES + 4 + 1];
    uint32_t n;
    uint16_t head;

    bytes[0] = CLASS_MAC;
    bytes[1] = MAC_TABLE_SET;
    n = 2 + mac_table(bytes + 2, ENTRIES, ENTRIES);
    n += mac_table(bytes + n, 0, 0);
    ck_assert_uint_eq(n, 4096);
    /* Without the trailing byte the command is valid. */
    head = cq_chain(bytes, n, LAYOUT_JOINED);
    split_ring_offer(&cq_ring, head);
    ck_assert_uint_eq(cq_run(head), ACK_OK);
    bytes[n++] = 0;
    cq_next_desc = 0;
    head = cq_chain(bytes, n, LAYOUT_JOINED);
    split_ring_offer(&cq_ring, head);
    ck_assert_msg(cq_run(head) == ACK_ERR,
                  "a 4097-byte MAC_TABLE_SET with a trailing byte was accepted (truncated to "
                  "4096 bytes before validation)");
}
END_TEST

START_TEST(ctrl_mq_refusals)
{
    uint16_t pairs;

    cq_net.active_pairs = 1;
    pairs = 3; /* more than queues=2 */
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_ERR);
    pairs = 0;
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_ERR);
    pairs = 0xffff;
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_ERR);
    pairs = 0x0100; /* 256, or 1 read big-endian */
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_ERR);
    pairs = 2; /* valid value, wrong length or command */
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 1), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_MQ, 1, &pairs, 2), ACK_ERR);
    {
        const uint8_t three[3] = {2, 0, 0};

        ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, three, 3), ACK_ERR);
    }
    ck_assert_uint_eq(cq_net.active_pairs, 1);
}
END_TEST

START_TEST(ctrl_mq_needs_mq)
{
    uint16_t pairs = 2;

    cq_start(CQ_FEATURES & ~BIT(VIRTIO_NET_F_MQ));
    cq_net.active_pairs = 1;
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_ERR);
    ck_assert_uint_eq(cq_net.active_pairs, 1);
}
END_TEST

/* The backend negotiated protocol features (rings are enabled one by one) and
 * its connection broke: SET_VRING_ENABLE gives -EPIPE. That is the backend's
 * loss, not the guest's error: the command is acknowledged, the link goes down,
 * and the pair count applies when a backend is back. */
START_TEST(ctrl_mq_on_a_broken_backend_applies_later)
{
    uint16_t pairs = 2;

    cq_net.conn.features = BIT(VHOST_USER_F_PROTOCOL_FEATURES) | BIT(VIRTIO_F_VERSION_1);
    cq_net.conn.broken = true;
    cq_net.connected = true;
    cq_net.rings_started = (1u << CQ_INDEX) - 1; /* every data ring handed to the backend */
    cq_net.active_pairs = 1;
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_OK);
    ck_assert_uint_eq(cq_net.active_pairs, 2);
    ck_assert(!cq_net.connected);
    ck_assert_uint_eq(cq_net.config.status & VIRTIO_NET_S_LINK_UP, 0);
    /* With no backend at all, the choice is only recorded. */
    pairs = 1;
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_OK);
    ck_assert_uint_eq(cq_net.active_pairs, 1);
    ck_assert_uint_eq(cq_calls(), 2);
}
END_TEST

/* Without protocol features a vhost-user ring runs as soon as it is started:
 * there is nothing to tell the backend, and a valid value is accepted. */
START_TEST(ctrl_mq_without_protocol_features_sends_nothing)
{
    uint16_t pairs = 2;

    cq_net.conn.features = BIT(VIRTIO_F_VERSION_1);
    cq_net.rings_started = (1u << CQ_INDEX) - 1; /* every data ring handed to the backend */
    cq_net.active_pairs = 1;
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_OK);
    ck_assert_uint_eq(cq_net.active_pairs, 2);
    pairs = 1;
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_OK);
    ck_assert_uint_eq(cq_net.active_pairs, 1);
}
END_TEST

START_TEST(ctrl_unsupported_classes)
{
    const uint8_t data[4] = {0x05, 0x00, 0x00, 0x00};

    ck_assert_uint_eq(ctrl(CLASS_VLAN, 0, data, 2), ACK_ERR); /* VLAN_ADD vid 5 */
    ck_assert_uint_eq(ctrl(CLASS_VLAN, 1, data, 2), ACK_ERR); /* VLAN_DEL */
    ck_assert_uint_eq(ctrl(CLASS_ANNOUNCE, 0, NULL, 0), ACK_ERR);
    ck_assert_uint_eq(ctrl(5, 0, data, 4), ACK_ERR); /* GUEST_OFFLOADS_SET */
    ck_assert_uint_eq(ctrl(9, 0, data, 1), ACK_ERR);
    ck_assert_uint_eq(ctrl(0xff, 0xff, NULL, 0), ACK_ERR);
}
END_TEST

/* Offered as QEMU offers them for vhost-user: the VLAN table takes ids below 4096, the
 * guest offloads only ones the guest negotiated. */
START_TEST(ctrl_vlan_table_acked_as_qemu_does)
{
    const uint16_t vid = 5, too_big = 4096;

    cq_start(CQ_FEATURES | BIT(VIRTIO_NET_F_CTRL_VLAN));
    ck_assert_uint_eq(ctrl(CLASS_VLAN, 0, &vid, 2), ACK_OK); /* VLAN_ADD */
    ck_assert_uint_eq(ctrl(CLASS_VLAN, 1, &vid, 2), ACK_OK); /* VLAN_DEL */
    ck_assert_uint_eq(ctrl(CLASS_VLAN, 0, &too_big, 2), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_VLAN, 2, &vid, 2), ACK_ERR); /* no such command */
    ck_assert_uint_eq(ctrl(CLASS_VLAN, 0, &vid, 1), ACK_ERR); /* a vid is 2 bytes */
}
END_TEST

START_TEST(ctrl_guest_offloads_only_negotiated_ones)
{
    const uint64_t csum = BIT(VIRTIO_NET_F_GUEST_CSUM), tso4 = BIT(VIRTIO_NET_F_GUEST_TSO4);
    const uint64_t none = 0, host = BIT(VIRTIO_NET_F_HOST_TSO4);

    cq_start(CQ_FEATURES | BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | csum);
    ck_assert_uint_eq(ctrl(CLASS_GUEST_OFFLOADS, 0, &csum, 8), ACK_OK);
    ck_assert_uint_eq(ctrl(CLASS_GUEST_OFFLOADS, 0, &none, 8), ACK_OK);
    ck_assert_uint_eq(ctrl(CLASS_GUEST_OFFLOADS, 0, &tso4, 8), ACK_ERR); /* not negotiated */
    ck_assert_uint_eq(ctrl(CLASS_GUEST_OFFLOADS, 0, &host, 8), ACK_ERR); /* not a guest one */
    ck_assert_uint_eq(ctrl(CLASS_GUEST_OFFLOADS, 1, &csum, 8), ACK_ERR);
    ck_assert_uint_eq(ctrl(CLASS_GUEST_OFFLOADS, 0, &csum, 4), ACK_ERR);
}
END_TEST

/* A guest that keeps the control queue full (200 commands in a 256-entry ring, all on
 * the same descriptors, as one re-posting at once would) gets a batch of 64 per turn:
 * the rest is posted to the NIC's loop, whose other work runs in between. */
#define FLOOD_SIZE 256
#define FLOOD_DESC (CQ_MEM_BASE + 0x8000)
#define FLOOD_AVAIL (CQ_MEM_BASE + 0x9000)
#define FLOOD_USED (CQ_MEM_BASE + 0xa000)
#define FLOOD_CMD (CQ_MEM_BASE + 0xb000)
#define FLOOD_ACK (CQ_MEM_BASE + 0xb010)

START_TEST(ctrl_a_flood_is_served_in_bounded_batches)
{
    const uint8_t cmd[3] = {CLASS_RX, RX_PROMISC, 1};
    int turns = 0;

    memcpy(guest_mem_host(&cq_ram, FLOOD_CMD, sizeof(cmd)), cmd, sizeof(cmd));
    split_desc_put(&cq_ram, FLOOD_DESC, 0, FLOOD_CMD, sizeof(cmd), VIRTQ_DESC_F_NEXT, 1);
    split_desc_put(&cq_ram, FLOOD_DESC, 1, FLOOD_ACK, 1, VIRTQ_DESC_F_WRITE, 0);
    for (unsigned i = 0; i < FLOOD_SIZE; i++)
        guest_put16(&cq_ram, FLOOD_AVAIL + 4 + 2 * i, 0);
    guest_put16(&cq_ram, FLOOD_AVAIL + 2, 200);
    cq_net.ctrl_vq = (struct virtq){.size = FLOOD_SIZE,
                                    .desc_gpa = FLOOD_DESC,
                                    .avail_gpa = FLOOD_AVAIL,
                                    .used_gpa = FLOOD_USED,
                                    .mem = cq_net.vdev.mem};
    ck_assert_int_eq(virtq_check_layout(&cq_net.ctrl_vq), 0);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 64);
    ck_assert(cq_net.ctrl_pending);
    while (cq_net.ctrl_vq.last_avail < 200) {
        ck_assert_int_eq(event_loop_run_once(&cq_loop, 1000), 1);
        turns++;
    }
    ck_assert_int_eq(turns, 3); /* 64 + 64 + 64 + 8 */
    ck_assert(!cq_net.ctrl_pending);
    ck_assert_int_eq(event_loop_run_once(&cq_loop, 0), 0); /* nothing left behind */
    ck_assert_uint_eq(guest_get16(&cq_ram, FLOOD_USED + 2), 200);
}
END_TEST

START_TEST(ctrl_command_shorter_than_header)
{
    const uint8_t one = CLASS_RX;
    uint16_t head;

    head = cq_chain(&one, 1, LAYOUT_SPLIT);
    split_ring_offer(&cq_ring, head);
    ck_assert_uint_eq(cq_run(head), ACK_ERR);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

/* Zero-length descriptors are legal in a chain (virtq_pop keeps them, with a
 * NULL address) and must simply contribute no bytes. Under UBSan this also
 * checks that no memcpy gets that NULL address. */
START_TEST(ctrl_zero_length_readable_descriptors)
{
    const uint8_t cmd[3] = {CLASS_RX, RX_PROMISC, 1};
    const uint8_t unwritten = ACK_UNWRITTEN;
    uint64_t ack = cq_buf(&unwritten, 1);
    uint16_t head;

    /* A command that is nothing but a zero-length readable descriptor. */
    split_desc_put(&cq_ram, CQ_DESC, 0, CQ_BUFS, 0, VIRTQ_DESC_F_NEXT, 1);
    split_desc_put(&cq_ram, CQ_DESC, 1, ack, 1, VIRTQ_DESC_F_WRITE, 0);
    cq_ack[0] = ack;
    split_ring_offer(&cq_ring, 0);
    ck_assert_uint_eq(cq_run(0), ACK_ERR);
    /* An empty descriptor between the header and the data. */
    *guest_mem_host(&cq_ram, ack, 1) = ACK_UNWRITTEN;
    split_desc_put(&cq_ram, CQ_DESC, 2, cq_buf(cmd, 2), 2, VIRTQ_DESC_F_NEXT, 3);
    split_desc_put(&cq_ram, CQ_DESC, 3, CQ_BUFS, 0, VIRTQ_DESC_F_NEXT, 4);
    split_desc_put(&cq_ram, CQ_DESC, 4, cq_buf(cmd + 2, 1), 1, VIRTQ_DESC_F_NEXT, 5);
    split_desc_put(&cq_ram, CQ_DESC, 5, ack, 1, VIRTQ_DESC_F_WRITE, 0);
    head = 2;
    cq_ack[head] = ack;
    split_ring_offer(&cq_ring, head);
    ck_assert_uint_eq(cq_run(head), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 2);
}
END_TEST

/* An empty writable descriptor before the ack byte: the ack lands in the next. */
START_TEST(ctrl_zero_length_writable_descriptor)
{
    const uint8_t cmd[3] = {CLASS_RX, RX_PROMISC, 1};
    const uint8_t unwritten = ACK_UNWRITTEN;
    uint64_t ack = cq_buf(&unwritten, 1);

    split_desc_put(&cq_ram, CQ_DESC, 0, cq_buf(cmd, 3), 3, VIRTQ_DESC_F_NEXT, 1);
    split_desc_put(&cq_ram, CQ_DESC, 1, CQ_BUFS, 0, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    split_desc_put(&cq_ram, CQ_DESC, 2, ack, 1, VIRTQ_DESC_F_WRITE, 0);
    cq_ack[0] = ack;
    split_ring_offer(&cq_ring, 0);
    ck_assert_uint_eq(cq_run(0), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

/* A chain with no writable buffer: handled, returned with nothing written. */
START_TEST(ctrl_command_without_ack_buffer)
{
    const uint8_t cmd[3] = {CLASS_RX, RX_PROMISC, 1};
    uint64_t gpa = cq_buf(cmd, 3);

    split_desc_put(&cq_ram, CQ_DESC, 0, gpa, 3, 0, 0);
    split_ring_offer(&cq_ring, 0);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 1);
    ck_assert_uint_eq(guest_get32(&cq_ram, CQ_USED + 4), 0);
    ck_assert_uint_eq(guest_get32(&cq_ram, CQ_USED + 8), 0);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

START_TEST(ctrl_several_commands_in_order)
{
    const uint8_t on = 1, mac1[6] = {0x02, 1, 1, 1, 1, 1}, mac2[6] = {0x02, 2, 2, 2, 2, 2};
    uint16_t pairs = 3;
    uint16_t h[5];
    uint8_t got[6];

    h[0] = cq_queue(CLASS_MAC, MAC_ADDR_SET, mac1, 6, LAYOUT_SPLIT);
    h[1] = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_JOINED);
    h[2] = cq_queue(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2, LAYOUT_INDIRECT);
    h[3] = cq_queue(CLASS_MAC, MAC_ADDR_SET, mac2, 6, LAYOUT_SPLIT);
    h[4] = cq_queue(9, 0, NULL, 0, LAYOUT_SPLIT);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 5);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 5);
    ck_assert_uint_eq(cq_used_ack(0, h[0]), ACK_OK);
    ck_assert_uint_eq(cq_used_ack(1, h[1]), ACK_OK);
    ck_assert_uint_eq(cq_used_ack(2, h[2]), ACK_ERR);
    ck_assert_uint_eq(cq_used_ack(3, h[3]), ACK_OK);
    ck_assert_uint_eq(cq_used_ack(4, h[4]), ACK_ERR);
    cq_mac(got);
    ck_assert_mem_eq(got, mac2, 6);   /* the later MAC wins */
    ck_assert_uint_eq(cq_calls(), 1); /* one interrupt for the batch */
}
END_TEST

START_TEST(ctrl_across_the_index_wrap)
{
    const uint8_t on = 1;
    uint16_t h1, h2;

    /* Both sides far along: the avail and used indexes wrap past 0xffff. */
    cq_net.ctrl_vq.last_avail = 0xffff;
    cq_net.ctrl_vq.used_idx = 0xffff;
    guest_put16(&cq_ram, CQ_AVAIL + 2, 0xffff);
    guest_put16(&cq_ram, CQ_USED + 2, 0xffff);
    h1 = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    h2 = cq_queue(CLASS_RX, 6, &on, 1, LAYOUT_SPLIT);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 1);
    ck_assert_uint_eq(cq_used_ack(0xffff, h1), ACK_OK);
    ck_assert_uint_eq(cq_used_ack(0, h2), ACK_ERR);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

START_TEST(ctrl_no_interrupt_flag)
{
    const uint8_t on = 1;
    uint16_t head;

    guest_put16(&cq_ram, CQ_AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
    head = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    ck_assert_uint_eq(cq_run(head), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 0);
    /* used_event means nothing without EVENT_IDX. */
    guest_put16(&cq_ram, CQ_AVAIL, 0);
    guest_put16(&cq_ram, CQ_USED_EVENT, 0x1234);
    head = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    ck_assert_uint_eq(cq_run(head), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

START_TEST(ctrl_event_idx)
{
    const uint8_t on = 1;
    uint16_t head;

    cq_start(CQ_FEATURES | BIT(VIRTIO_F_RING_EVENT_IDX));
    ck_assert(cq_net.ctrl_vq.event_idx);
    /* used_event 0: the first used entry crosses it. The flag is ignored. */
    guest_put16(&cq_ram, CQ_AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
    guest_put16(&cq_ram, CQ_USED_EVENT, 0);
    head = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    ck_assert_uint_eq(cq_run(head), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 1);
    ck_assert_uint_eq(guest_get16(&cq_ram, CQ_AVAIL_EVENT), 1); /* the device read up to 1 */
    /* Still 0: the second entry does not cross it. */
    head = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    ck_assert_uint_eq(cq_run(head), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 0);
    ck_assert_uint_eq(guest_get16(&cq_ram, CQ_AVAIL_EVENT), 2);
    /* The guest asks again at 2: the third one does. */
    guest_put16(&cq_ram, CQ_USED_EVENT, 2);
    head = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    ck_assert_uint_eq(cq_run(head), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 1);
    /* Two at once, used_event far ahead: none. */
    guest_put16(&cq_ram, CQ_USED_EVENT, 100);
    cq_next_desc = 0;
    cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 5);
    ck_assert_uint_eq(cq_calls(), 0);
    ck_assert_uint_eq(guest_get16(&cq_ram, CQ_AVAIL_EVENT), 5);
    /* Two at once with used_event at the first of them (3 -> 5 crosses 3): one. */
    guest_put16(&cq_ram, CQ_USED_EVENT, 5);
    cq_next_desc = 0;
    cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 7);
    ck_assert_uint_eq(cq_calls(), 1);
}
END_TEST

/* A good command, then a head out of range: the first is handled and
 * signalled, the bad one left on the ring untouched. */
START_TEST(ctrl_malformed_chain_stops_processing)
{
    const uint8_t on = 1;
    uint16_t head = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    uint16_t after;

    split_ring_offer(&cq_ring, CQ_QSIZE);                         /* head == size */
    after = cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT); /* never reached */
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 1);
    ck_assert_uint_eq(cq_net.ctrl_vq.used_idx, 1);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 1);
    ck_assert_uint_eq(cq_used_ack(0, head), ACK_OK);
    ck_assert_uint_eq(*guest_mem_host(&cq_ram, cq_ack[after], 1), ACK_UNWRITTEN);
    ck_assert_uint_eq(cq_calls(), 1);
    /* Another kick changes nothing. */
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 1);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 1);
    ck_assert_uint_eq(cq_calls(), 0);
}
END_TEST

START_TEST(ctrl_malformed_chain_alone)
{
    static const uint8_t zero[8 * CQ_QSIZE];

    split_ring_offer(&cq_ring, 0xffff);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 0);
    ck_assert_uint_eq(cq_net.ctrl_vq.used_idx, 0);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 0);
    ck_assert_mem_eq(guest_mem_host(&cq_ram, CQ_USED + 4, sizeof(zero)), zero, sizeof(zero));
    ck_assert_uint_eq(cq_calls(), 0);
    /* A descriptor loop and a buffer outside RAM: the same. */
    guest_put16(&cq_ram, CQ_AVAIL + 4, 0);
    split_desc_put(&cq_ram, CQ_DESC, 0, CQ_BUFS, 2, VIRTQ_DESC_F_NEXT, 0);
    virtio_net_ctrl_process(&cq_net);
    split_desc_put(&cq_ram, CQ_DESC, 0, CQ_MEM_BASE + CQ_MEM_SIZE - 1, 2, 0, 0);
    virtio_net_ctrl_process(&cq_net);
    /* An avail index more than a ring ahead. */
    guest_put16(&cq_ram, CQ_AVAIL + 2, CQ_QSIZE + 1);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 0);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 0);
    ck_assert_mem_eq(guest_mem_host(&cq_ram, CQ_USED + 4, sizeof(zero)), zero, sizeof(zero));
    ck_assert_uint_eq(cq_calls(), 0);
}
END_TEST

START_TEST(ctrl_empty_queue)
{
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(cq_used_idx(), 0);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 0);
    ck_assert_uint_eq(cq_calls(), 0);
}
END_TEST

/* ---- start and stop against a back-end (found by fuzz_guest) ----
 * The model activated and reset as the transport does, its vhost-user connection a
 * socketpair whose far end collects the requests; GET_VRING_BASE replies are queued
 * before the reset asks for them. Without protocol features nothing else is answered. */

#define LC_PAIRS 2
#define LC_CTRL (2 * LC_PAIRS)

static struct virtio_net lc_net;
static int lc_backend = -1;
static struct event_loop lc_loop;

static bool lc_ctrl_watched(void)
{
    return event_loop_watching(&lc_loop, lc_net.vdev.queues[LC_CTRL].kick_fd);
}

static void lc_setup(void)
{
    char e[128];
    int sv[2];

    guest_mem_init(&cq_ram, CQ_MEM_BASE, CQ_MEM_SIZE);
    /* The model alone: no KVM call; no memory region to give either. */
    fake_platform_init(&cq_platform);
    cq_platform.forbid = FAKE_KVM_CALLS | FAKE_WATCH_FD;
    cq_platform.who = "virtio-net";
    ck_assert_int_eq(event_loop_init(&lc_loop), 0);
    ck_assert_int_eq(
        virtio_net_parse_options("vhost-user,socket=/x,queues=2", &cq_opts, e, sizeof(e)), 0);
    virtio_net_setup(&lc_net, "net0", &cq_opts, &cq_platform.ops, &cq_ram.access, &lc_loop);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    vhost_user_conn_init(&lc_net.conn, sv[0]);
    lc_net.conn.features = BIT(VIRTIO_F_VERSION_1);
    lc_net.conn.timeout_ms = 200;
    lc_net.backend_features = lc_net.conn.features;
    lc_net.connected = true; /* what virtio_net_init leaves after its handshake */
    lc_net.vdev.acked_features = BIT(VIRTIO_F_VERSION_1);
    lc_backend = sv[1];
    for (unsigned q = 0; q < lc_net.vdev.num_queues; q++) {
        lc_net.vdev.queues[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        lc_net.vdev.queues[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
}

static void lc_teardown(void)
{
    for (unsigned q = 0; q < lc_net.vdev.num_queues; q++) {
        close(lc_net.vdev.queues[q].kick_fd);
        close(lc_net.vdev.queues[q].call_fd);
    }
    virtio_net_destroy(&lc_net);
    event_loop_destroy(&lc_loop);
    close(lc_backend);
    fake_platform_destroy(&cq_platform);
    guest_mem_destroy(&cq_ram);
}

/* Queue q's rings in guest RAM, as a driver sets them up; enabled or not. */
static void lc_queue(unsigned q, bool enabled)
{
    struct virtio_queue *vq = &lc_net.vdev.queues[q];
    uint64_t base = CQ_MEM_BASE + 0x1000 * q;

    vq->size = CQ_QSIZE;
    vq->desc = base;
    vq->avail = base + 0x400;
    vq->used = base + 0x800;
    vq->enabled = enabled;
}

static void lc_queue_vring_base_reply(uint32_t index)
{
    ck_assert_int_eq(vu_wire_reply_state(lc_backend, VHOST_USER_GET_VRING_BASE, index, 0), 0);
}

/* Reads what the front-end sent; returns how many GET_VRING_BASE, their rings in a mask. */
static int lc_vring_base_requests(uint32_t *rings)
{
    struct vu_wire_msg m;
    int count = 0, ret;

    *rings = 0;
    while ((ret = vu_wire_recv(lc_backend, &m, 0)) == 0) {
        vu_wire_close_fds(&m);
        if (m.request == VHOST_USER_GET_VRING_BASE) {
            *rings |= 1u << vu_wire_u32(&m, 0);
            count++;
        }
    }
    ck_assert_int_eq(ret, -ETIMEDOUT);
    return count;
}

/* The guest enabled the control queue and a data ring only after DRIVER_OK: the reset
 * unwatches nothing it did not watch and stops only the rings it started. */
START_TEST(reset_stops_only_what_activate_started)
{
    uint32_t rings;

    lc_queue(0, true);
    lc_queue(1, true);
    lc_queue(2, false);
    lc_queue(LC_CTRL, false);
    ck_assert_int_eq(lc_net.vdev.ops->activate(&lc_net.vdev), 0);
    ck_assert_int_eq(lc_vring_base_requests(&rings), 0);
    ck_assert(!lc_ctrl_watched());
    lc_net.vdev.queues[2].enabled = true;
    lc_net.vdev.queues[LC_CTRL].enabled = true;
    lc_queue_vring_base_reply(0);
    lc_queue_vring_base_reply(1);
    lc_net.vdev.ops->reset(&lc_net.vdev);
    ck_assert(!lc_ctrl_watched());
    ck_assert_int_eq(lc_vring_base_requests(&rings), 2);
    ck_assert_uint_eq(rings, 0x3);
    ck_assert(!lc_net.conn.broken);
}
END_TEST

/* A control queue the guest laid out badly fails the start after the data rings were
 * given to the backend: they are stopped, not left running on memory the guest reuses. */
START_TEST(failed_activate_stops_the_rings_it_started)
{
    uint32_t rings;

    lc_queue(0, true);
    lc_queue(1, true);
    lc_queue(LC_CTRL, true);
    lc_net.vdev.queues[LC_CTRL].desc += 8; /* descriptors must be 16-byte aligned */
    lc_queue_vring_base_reply(0);
    lc_queue_vring_base_reply(1);
    ck_assert_int_eq(lc_net.vdev.ops->activate(&lc_net.vdev), -EINVAL);
    ck_assert_int_eq(lc_net.phase, NET_IDLE);
    ck_assert_int_eq(lc_vring_base_requests(&rings), 2);
    ck_assert_uint_eq(rings, 0x3);
    ck_assert(!lc_ctrl_watched());
    ck_assert(!lc_net.conn.broken);
}
END_TEST

/* The usual case still works: the control queue is watched, then unwatched. */
START_TEST(reset_unwatches_the_control_queue_it_watched)
{
    uint32_t rings;

    lc_queue(0, true);
    lc_queue(1, true);
    lc_queue(LC_CTRL, true);
    ck_assert_int_eq(lc_net.vdev.ops->activate(&lc_net.vdev), 0);
    ck_assert(lc_ctrl_watched());
    lc_queue_vring_base_reply(0);
    lc_queue_vring_base_reply(1);
    lc_net.vdev.ops->reset(&lc_net.vdev);
    ck_assert(!lc_ctrl_watched());
    ck_assert_int_eq(lc_vring_base_requests(&rings), 2);
}
END_TEST

/* ---- migration ----
 * The control-queue device again, now with its four data rings in the fake guest
 * memory and a scripted vhost-user backend on a socketpair: vmm's requests are
 * read back from the backend's end, and replies (GET_VRING_BASE) are queued
 * there before the call that waits for them. */

#define MG_RINGS CQ_INDEX
#define MG_RING_MEM (CQ_MEM_BASE + 0x10000)
#define MG_QSIZE 16
#define MG_BACKEND                                                                                 \
    (BIT(VIRTIO_F_VERSION_1) | BIT(VHOST_USER_F_PROTOCOL_FEATURES) | BIT(VIRTIO_NET_F_MRG_RXBUF))
#define MG_ACKED (CQ_FEATURES | BIT(VIRTIO_NET_F_MRG_RXBUF))
#define PF_RARP (1ULL << VHOST_USER_PROTOCOL_F_RARP)
#define PF_MTU (1ULL << VHOST_USER_PROTOCOL_F_MTU)
#define PF_RESET (1ULL << VHOST_USER_PROTOCOL_F_RESET_DEVICE)
#define PF_SLOTS (1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)

static int mg_be = -1; /* the backend's end of the socket */
static int mg_memfd = -1;
/* Watched on the NIC's loop (cq_loop). */
static bool mg_watched(int fd)
{
    return event_loop_watching(&cq_loop, fd);
}

/* One message as the backend reads it, its fds closed (counted); false when none is
 * waiting. */
static bool be_recv(struct vu_wire_msg *m)
{
    int ret = vu_wire_recv(mg_be, m, 0);

    if (ret == -ETIMEDOUT)
        return false;
    ck_assert_int_eq(ret, 0);
    vu_wire_close_fds(m);
    return true;
}

static void be_reply_base(unsigned index, unsigned base)
{
    ck_assert_int_eq(vu_wire_reply_state(mg_be, VHOST_USER_GET_VRING_BASE, index, base), 0);
}

/* Without REPLY_ACK, vmm follows each SET_VRING_ENABLE with GET_FEATURES and waits for its
 * reply (QEMU's enforce_reply): the answers to the n enables to come, queued beforehand. */
static void be_reply_barriers(int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(vu_wire_reply_u64(mg_be, VHOST_USER_GET_FEATURES, MG_BACKEND), 0);
}

/* What vmm sent since the last look. */
struct be_log {
    struct vu_wire_msg m[64];
    int n;
};

static void be_collect(struct be_log *log)
{
    static struct vu_wire_msg extra;

    log->n = 0;
    while (log->n < 64 && be_recv(&log->m[log->n]))
        log->n++;
    ck_assert_msg(!be_recv(&extra), "more than 64 messages");
}

static int be_count(const struct be_log *log, uint32_t request)
{
    int n = 0;

    for (int i = 0; i < log->n; i++)
        n += log->m[i].request == request;
    return n;
}

/* The base SET_VRING_BASE gave ring q, or -1. */
static int be_base(const struct be_log *log, unsigned q)
{
    for (int i = 0; i < log->n; i++)
        if (log->m[i].request == VHOST_USER_SET_VRING_BASE && vu_wire_u32(&log->m[i], 0) == q)
            return (int)vu_wire_u32(&log->m[i], 4);
    return -1;
}

/* Each data ring started once, from bases[q]: NUM, ADDR, BASE, KICK and CALL with
 * their fds, and the enables for the active pairs; the memory table tables times
 * (none to a backend that holds it already on this connection). */
static void expect_rings_started(const struct be_log *log, const uint16_t *bases,
                                 unsigned active_pairs, int tables)
{
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_FEATURES), 1);
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_MEM_TABLE), tables);
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_VRING_NUM), MG_RINGS);
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_VRING_ADDR), MG_RINGS);
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_VRING_KICK), MG_RINGS);
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_VRING_CALL), MG_RINGS);
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_VRING_BASE), MG_RINGS);
    for (unsigned q = 0; q < MG_RINGS; q++)
        ck_assert_msg(be_base(log, q) == bases[q], "ring %u started at %d, expected %u", q,
                      be_base(log, q), bases[q]);
    ck_assert_int_eq(be_count(log, VHOST_USER_SET_VRING_ENABLE), MG_RINGS);
    for (int i = 0; i < log->n; i++)
        if (log->m[i].request == VHOST_USER_SET_VRING_ENABLE)
            ck_assert_uint_eq(vu_wire_u32(&log->m[i], 4),
                              vu_wire_u32(&log->m[i], 0) < 2 * active_pairs);
    ck_assert_int_eq(be_count(log, VHOST_USER_GET_VRING_BASE), 0);
}

static uint64_t efd_take(int fd)
{
    uint64_t v = 0;

    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

/* Features the fake backend offers (and the guest acks) beyond MG_BACKEND: the packed
 * tests add VIRTIO_F_RING_PACKED and INDIRECT_DESC. */
static uint64_t mg_extra;

/* A fresh backend connection for cq_net, as virtio_net_init leaves it. */
static void mg_connect(uint64_t protocol_features)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    vhost_user_conn_init(&cq_net.conn, sv[0]);
    cq_net.conn.timeout_ms = 500;
    cq_net.conn.features = MG_BACKEND | mg_extra;
    cq_net.conn.protocol_features = protocol_features;
    cq_net.backend_features = MG_BACKEND | mg_extra;
    cq_net.connected = true;
    cq_net.link_features = MG_BACKEND | mg_extra;
    cq_net.link_protocol = protocol_features;
    cq_net.backend_protocol = protocol_features; /* as if this were the first backend */
    mg_be = sv[1];
}

/* What the backend got when the guest started the NIC. */
static struct be_log mg_start_log;

/* The guest set up every ring and started the NIC (DRIVER_OK). */
static void mg_setup(void)
{
    struct be_log log;

    cq_setup();
    mg_memfd = eventfd(0, EFD_CLOEXEC); /* any fd: the fake backend only counts it */
    cq_ram.fd = mg_memfd;
    cq_platform.forbid &= ~FAKE_MEM_REGIONS;
    cq_platform.mem = &cq_ram;
    for (unsigned q = 0; q < MG_RINGS; q++) {
        struct virtio_queue *vq = &cq_net.vdev.queues[q];

        vq->size = MG_QSIZE;
        vq->desc = MG_RING_MEM + 0x1000ULL * q;
        vq->avail = vq->desc + 0x100;
        vq->used = vq->desc + 0x200;
        vq->enabled = true;
        vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    cq_net.vdev.queues[CQ_INDEX].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cq_net.phase = NET_IDLE;
    cq_net.vdev.acked_features = MG_ACKED | mg_extra;
    mg_connect(0);
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->activate(&cq_net.vdev), 0);
    ck_assert_int_eq(cq_net.phase, NET_RUNNING);
    ck_assert(mg_watched(cq_net.vdev.queues[CQ_INDEX].kick_fd));
    be_collect(&log);
    ck_assert_int_eq(be_count(&log, VHOST_USER_SET_VRING_BASE), MG_RINGS);
    mg_start_log = log;
}

/* The same with packed rings (the guest acked RING_PACKED and INDIRECT_DESC). */
static void mg_setup_packed(void)
{
    mg_extra = BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_F_RING_INDIRECT_DESC);
    mg_setup();
}

static void mg_teardown(void)
{
    for (unsigned q = 0; q <= CQ_INDEX; q++) {
        close(cq_net.vdev.queues[q].kick_fd);
        cq_net.vdev.queues[q].kick_fd = -1;
    }
    if (mg_be >= 0)
        close(mg_be);
    close(mg_memfd);
    mg_be = mg_memfd = -1;
    mg_extra = 0;
    cq_teardown(); /* closes the connection */
}

static void mg_set_used_idx(unsigned q, uint16_t idx)
{
    guest_put16(&cq_ram, cq_net.vdev.queues[q].used + 2, idx);
}

static void mg_stop_at(const uint16_t *bases)
{
    for (unsigned q = 0; q < MG_RINGS; q++)
        be_reply_base(q, bases[q]);
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
}

static struct state_buf mg_blob;

static void mg_save(void)
{
    state_buf_free(&mg_blob);
    ck_assert_int_eq(cq_net.vdev.ops->save(&cq_net.vdev, &mg_blob), 0);
}

/* The destination: a new NIC on the same guest memory with the queues the transport
 * restored, its own backend; the source NIC is gone. */
static void mg_new_destination(const char *net_arg, uint64_t protocol_features)
{
    struct virtio_queue queues[VIRTIO_MAX_QUEUES];
    char e[128];

    memcpy(queues, cq_net.vdev.queues, sizeof(queues));
    close(mg_be);
    mg_be = -1;
    for (unsigned q = 0; q < cq_net.vdev.num_queues; q++)
        cq_net.vdev.queues[q].call_fd = cq_net.vdev.queues[q].kick_fd = -1;
    virtio_net_destroy(&cq_net);
    ck_assert_int_eq(virtio_net_parse_options(net_arg, &cq_opts, e, sizeof(e)), 0);
    virtio_net_setup(&cq_net, "net0", &cq_opts, &cq_platform.ops, &cq_ram.access, &cq_loop);
    cq_net.vdev.transport_ops = &count_transport_ops;
    memcpy(cq_net.vdev.queues, queues, sizeof(queues));
    mg_connect(protocol_features);
}

static int mg_load(size_t len)
{
    return cq_net.vdev.ops->load(&cq_net.vdev, mg_blob.data, len);
}

/* stderr capture, to check what a refusal says. */
static char mg_err[4096];

static int mg_load_logged(size_t len)
{
    FILE *f = tmpfile();
    int saved = dup(2), ret;
    size_t n;

    ck_assert_ptr_nonnull(f);
    fflush(stderr);
    dup2(fileno(f), 2);
    ret = mg_load(len);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    n = fread(mg_err, 1, sizeof(mg_err) - 1, f);
    mg_err[n] = '\0';
    fclose(f);
    return ret;
}

START_TEST(mig_stop_reads_each_ring_base_once)
{
    static const uint16_t bases[MG_RINGS] = {100, 200, 65535, 7};
    struct be_log log;
    struct state_buf early = {0};

    /* The rings run: their bases are not known yet. */
    ck_assert_int_eq(cq_net.vdev.ops->save(&cq_net.vdev, &early), -EBUSY);
    mg_stop_at(bases);
    be_collect(&log);
    ck_assert_int_eq(log.n, MG_RINGS);
    for (unsigned q = 0; q < MG_RINGS; q++) {
        ck_assert_uint_eq(log.m[q].request, VHOST_USER_GET_VRING_BASE);
        ck_assert_uint_eq(vu_wire_u32(&log.m[q], 0), q);
        ck_assert_uint_eq(cq_net.ring_base[q], bases[q]);
    }
    ck_assert_int_eq(cq_net.phase, NET_STOPPED); /* logically started */
    ck_assert(!mg_watched(cq_net.vdev.queues[CQ_INDEX].kick_fd));
    /* A second stop asks nothing. */
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_int_eq(log.n, 0);
    ck_assert_int_eq(cq_net.vdev.ops->save(&cq_net.vdev, &early), 0);
    state_buf_free(&early);
}
END_TEST

START_TEST(mig_stop_skips_rings_the_guest_did_not_enable)
{
    static const uint16_t bases[MG_RINGS] = {1, 2, 3, 4};
    struct be_log log;

    /* As if the guest had not enabled ring 3 at DRIVER_OK: vmm never started it. */
    cq_net.vdev.queues[3].enabled = false;
    cq_net.rings_started &= ~(1u << 3);
    cq_net.ring_base[3] = 0;
    for (unsigned q = 0; q < 3; q++)
        be_reply_base(q, bases[q]);
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_int_eq(be_count(&log, VHOST_USER_GET_VRING_BASE), 3);
    ck_assert_uint_eq(cq_net.ring_base[2], 3);
    ck_assert_uint_eq(cq_net.ring_base[3], 0);
}
END_TEST

/* A backend that died cannot answer: each ring stops at its used index. */
START_TEST(mig_stop_with_a_dead_backend_takes_the_used_indexes)
{
    static const uint16_t used[MG_RINGS] = {11, 22, 33, 44};

    for (unsigned q = 0; q < MG_RINGS; q++)
        mg_set_used_idx(q, used[q]);
    close(mg_be);
    mg_be = -1;
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    for (unsigned q = 0; q < MG_RINGS; q++)
        ck_assert_uint_eq(cq_net.ring_base[q], used[q]);
    ck_assert(!cq_net.connected);
    ck_assert_int_eq(cq_net.phase, NET_STOPPED);
    ck_assert_uint_eq(cq_net.config.status & VIRTIO_NET_S_LINK_UP, 0);
    ck_assert_uint_eq(config_irqs_take(), 1);
}
END_TEST

START_TEST(mig_restart_runs_the_rings_from_their_bases)
{
    static const uint16_t bases[MG_RINGS] = {5, 6, 7, 8};
    const uint8_t on = 1;
    struct be_log log;

    mg_stop_at(bases);
    be_collect(&log);
    /* A command the guest queued while vmm was not watching. */
    cq_queue(CLASS_RX, RX_PROMISC, &on, 1, LAYOUT_SPLIT);
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->restart(&cq_net.vdev), 0);
    be_collect(&log);
    expect_rings_started(&log, bases, 1, 0); /* the same backend holds the table */
    ck_assert_int_ne(cq_net.phase, NET_STOPPED);
    ck_assert(mg_watched(cq_net.vdev.queues[CQ_INDEX].kick_fd));
    for (unsigned q = 0; q < MG_RINGS; q++)
        ck_assert_uint_eq(efd_take(cq_net.vdev.queues[q].kick_fd), 1);
    ck_assert_uint_eq(cq_used_idx(), 1);
    ck_assert_uint_eq(cq_calls(), 1);
    /* Restarting a running NIC sends nothing. */
    ck_assert_int_eq(cq_net.vdev.ops->restart(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_int_eq(log.n, 0);
}
END_TEST

/* The enable SET_VRING_ENABLE gave ring q in log (the last one), or -1. */
static int be_enable(const struct be_log *log, unsigned q)
{
    int v = -1;

    for (int i = 0; i < log->n; i++)
        if (log->m[i].request == VHOST_USER_SET_VRING_ENABLE && vu_wire_u32(&log->m[i], 0) == q)
            v = (int)vu_wire_u32(&log->m[i], 4);
    return v;
}

/* The guest's MQ command on a running NIC: pair 1's rings (2 and 3) are enabled on the
 * backend for 2 pairs and disabled again for 1; pair 0 stays enabled. */
START_TEST(ctrl_mq_sets_the_backend_rings_enabled)
{
    struct be_log log;
    uint16_t pairs = 2;

    ck_assert_uint_eq(cq_net.active_pairs, 1);
    be_reply_barriers(MG_RINGS);
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_OK);
    ck_assert_uint_eq(cq_net.active_pairs, 2);
    be_collect(&log);
    for (unsigned q = 0; q < 4; q++)
        ck_assert_int_eq(be_enable(&log, q), 1);
    pairs = 1;
    be_reply_barriers(MG_RINGS);
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_OK);
    ck_assert_uint_eq(cq_net.active_pairs, 1);
    be_collect(&log);
    ck_assert_int_eq(be_enable(&log, 0), 1);
    ck_assert_int_eq(be_enable(&log, 1), 1);
    ck_assert_int_eq(be_enable(&log, 2), 0);
    ck_assert_int_eq(be_enable(&log, 3), 0);
}
END_TEST

START_TEST(mig_reset_of_a_stopped_nic_sends_nothing)
{
    static const uint16_t bases[MG_RINGS] = {5, 6, 7, 8};
    struct be_log log;

    mg_stop_at(bases);
    be_collect(&log);
    cq_net.vdev.ops->reset(&cq_net.vdev);
    ck_assert_int_ne(cq_net.phase, NET_RUNNING);
    ck_assert_int_ne(cq_net.phase, NET_STOPPED);
    be_collect(&log);
    ck_assert_int_eq(log.n, 0);
}
END_TEST

/* Source: two commands handled (a new MAC, two pairs), the rings stopped. */
static void mg_busy_source(const uint16_t *bases)
{
    static const uint8_t mac[6] = {0x02, 0x12, 0x34, 0x56, 0x78, 0x9a};
    uint16_t pairs = 2;
    struct be_log log;

    ck_assert_uint_eq(ctrl(CLASS_MAC, MAC_ADDR_SET, mac, 6), ACK_OK);
    be_reply_barriers(MG_RINGS);
    ck_assert_uint_eq(ctrl(CLASS_MQ, MQ_VQ_PAIRS_SET, &pairs, 2), ACK_OK);
    ck_assert_uint_eq(cq_calls(), 2);
    mg_stop_at(bases);
    be_collect(&log);
    mg_save();
}

START_TEST(mig_round_trip_starts_where_the_source_stopped)
{
    static const uint16_t bases[MG_RINGS] = {300, 301, 65534, 2};
    uint8_t before[sizeof(struct virtio_net_config)], after[sizeof(before)];
    const uint8_t on = 1;
    struct be_log log;

    mg_busy_source(bases);
    cq_net.vdev.ops->config_read(&cq_net.vdev, 0, before, sizeof(before));
    mg_new_destination("vhost-user,socket=/x,queues=2", 0);
    ck_assert_int_eq(mg_load(mg_blob.len), 0);
    /* Loaded, not started. */
    ck_assert_int_ne(cq_net.phase, NET_RUNNING);
    be_collect(&log);
    ck_assert_int_eq(log.n, 0);
    ck_assert(!mg_watched(cq_net.vdev.queues[CQ_INDEX].kick_fd));
    cq_net.vdev.ops->config_read(&cq_net.vdev, 0, after, sizeof(after));
    ck_assert_mem_eq(before, after, sizeof(before));
    ck_assert_uint_eq(cq_net.vdev.acked_features, MG_ACKED);
    ck_assert_uint_eq(cq_net.active_pairs, 2);

    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->start_loaded(&cq_net.vdev), 0);
    ck_assert_int_eq(cq_net.phase, NET_RUNNING);
    be_collect(&log);
    expect_rings_started(&log, bases, 2, 1);
    ck_assert_int_eq(be_count(&log, VHOST_USER_SEND_RARP), 0);
    ck_assert(mg_watched(cq_net.vdev.queues[CQ_INDEX].kick_fd));
    for (unsigned q = 0; q < MG_RINGS; q++)
        ck_assert_uint_eq(efd_take(cq_net.vdev.queues[q].kick_fd), 1);
    /* No GUEST_ANNOUNCE, link as before: the guest is not told anything. */
    ck_assert_uint_eq(cq_net.config.status, VIRTIO_NET_S_LINK_UP);
    ck_assert_uint_eq(config_irqs_take(), 0);
    /* The control queue goes on from the third command. */
    ck_assert_uint_eq(ctrl(CLASS_RX, RX_PROMISC, &on, 1), ACK_OK);
    ck_assert_uint_eq(cq_used_idx(), 3);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 3);
    ck_assert_uint_eq(ctrl(CLASS_ANNOUNCE, 0, NULL, 0), ACK_ERR); /* not negotiated */
    /* And a later save carries the same bases again. */
    mg_stop_at(bases);
    be_collect(&log);
    {
        struct state_buf again = {0};

        ck_assert_int_eq(cq_net.vdev.ops->save(&cq_net.vdev, &again), 0);
        ck_assert_uint_eq(again.len, mg_blob.len);
        ck_assert_mem_eq(again.data + again.len - 2 * MG_RINGS,
                         mg_blob.data + mg_blob.len - 2 * MG_RINGS, 2 * MG_RINGS);
        ck_assert_uint_eq(again.data[32], 1); /* started */
        state_buf_free(&again);
    }
    state_buf_free(&mg_blob);
}
END_TEST

/* A guest that announces itself (GUEST_ANNOUNCE): S_ANNOUNCE and a config interrupt,
 * and no SEND_RARP even from a backend that could (spec; QEMU returns early too):
 * peers must not get two announcements. */
START_TEST(mig_announce_by_the_guest_sends_no_rarp)
{
    static const uint16_t bases[MG_RINGS] = {1, 1, 1, 1};
    static const uint8_t mac[6] = {0x02, 0x12, 0x34, 0x56, 0x78, 0x9a};
    struct be_log log;

    cq_net.vdev.acked_features |= BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);
    mg_busy_source(bases);
    mg_new_destination("vhost-user,socket=/x,queues=2", PF_RARP);
    ck_assert_int_eq(mg_load(mg_blob.len), 0);
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->start_loaded(&cq_net.vdev), 0);
    ck_assert_uint_eq(cq_net.config.status, VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
    ck_assert_uint_eq(config_irqs_take(), 1);
    be_collect(&log);
    expect_rings_started(&log, bases, 2, 1);
    ck_assert_int_eq(be_count(&log, VHOST_USER_SEND_RARP), 0);
    /* The guest acknowledges: S_ANNOUNCE clears, the link stays. */
    ck_assert_uint_eq(ctrl(CLASS_ANNOUNCE, 1, NULL, 0), ACK_ERR); /* no such command */
    ck_assert_uint_eq(ctrl(CLASS_ANNOUNCE, 0, &mac, 1), ACK_ERR); /* ACK carries no data */
    ck_assert_uint_eq(cq_net.config.status & VIRTIO_NET_S_ANNOUNCE, VIRTIO_NET_S_ANNOUNCE);
    ck_assert_uint_eq(ctrl(CLASS_ANNOUNCE, 0, NULL, 0), ACK_OK);
    ck_assert_uint_eq(cq_net.config.status, VIRTIO_NET_S_LINK_UP);
    state_buf_free(&mg_blob);
}
END_TEST

/* A guest without GUEST_ANNOUNCE: the backend sends a RARP in its name, last, with the
 * MAC the guest set; no S_ANNOUNCE (the guest could not acknowledge it). */
START_TEST(mig_announce_for_the_guest_by_rarp)
{
    static const uint16_t bases[MG_RINGS] = {1, 1, 1, 1};
    static const uint8_t mac[6] = {0x02, 0x12, 0x34, 0x56, 0x78, 0x9a};
    struct be_log log;
    int rarp = -1;

    mg_busy_source(bases);
    mg_new_destination("vhost-user,socket=/x,queues=2", PF_RARP);
    ck_assert_int_eq(mg_load(mg_blob.len), 0);
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->start_loaded(&cq_net.vdev), 0);
    ck_assert_uint_eq(cq_net.config.status, VIRTIO_NET_S_LINK_UP);
    be_collect(&log);
    for (int i = 0; i < log.n; i++)
        if (log.m[i].request == VHOST_USER_SEND_RARP)
            rarp = i;
    ck_assert_int_eq(be_count(&log, VHOST_USER_SEND_RARP), 1);
    ck_assert_int_eq(rarp, log.n - 1);
    ck_assert_uint_eq(log.m[rarp].size, 8);
    ck_assert_mem_eq(log.m[rarp].payload, mac, 6);
    state_buf_free(&mg_blob);
}
END_TEST

/* A NIC with mtu= whose backend takes NET_SET_MTU: the guest is offered F_MTU, and the
 * backend gets NET_SET_MTU only when the guest negotiated it (spec). */
START_TEST(mtu_is_sent_only_when_the_guest_negotiated_it)
{
    static const uint16_t bases[MG_RINGS] = {0, 0, 0, 0};
    struct be_log log;

    mg_stop_at(bases); /* the set-up's NIC goes; a fresh one with mtu= takes its rings */
    mg_new_destination("vhost-user,socket=/x,queues=2,mtu=1400", PF_MTU);
    ck_assert_uint_ne(cq_net.vdev.ops->features(&cq_net.vdev) & BIT(VIRTIO_NET_F_MTU), 0);
    cq_net.vdev.acked_features = MG_ACKED; /* no F_MTU */
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->activate(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_int_eq(be_count(&log, VHOST_USER_NET_SET_MTU), 0);
    mg_stop_at(bases);
    mg_new_destination("vhost-user,socket=/x,queues=2,mtu=1400", PF_MTU);
    cq_net.vdev.acked_features = MG_ACKED | BIT(VIRTIO_NET_F_MTU);
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->activate(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_int_eq(be_count(&log, VHOST_USER_NET_SET_MTU), 1);
}
END_TEST

/* A backend without NET_SET_MTU cannot be told: F_MTU is not offered at all. */
START_TEST(mtu_is_not_offered_without_the_backends_net_set_mtu)
{
    mg_new_destination("vhost-user,socket=/x,queues=2,mtu=1400", 0);
    ck_assert_uint_eq(cq_net.vdev.ops->features(&cq_net.vdev) & BIT(VIRTIO_NET_F_MTU), 0);
}
END_TEST

/* RESET_DEVICE re-initialises the backend: the next start gives it the memory again
 * (with CONFIGURE_MEM_SLOTS, where vmm tracks what the backend holds). */
START_TEST(reset_device_gives_the_memory_again)
{
    static const uint16_t bases[MG_RINGS] = {0, 0, 0, 0};
    struct be_log log;

    mg_stop_at(bases);
    mg_new_destination("vhost-user,socket=/x,queues=2", PF_RESET | PF_SLOTS);
    cq_net.conn.max_mem_slots = 8;
    cq_net.vdev.acked_features = MG_ACKED;
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->activate(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_int_eq(be_count(&log, VHOST_USER_ADD_MEM_REG), 1);
    for (unsigned q = 0; q < MG_RINGS; q++)
        be_reply_base(q, bases[q]);
    cq_net.vdev.ops->reset(&cq_net.vdev);
    be_collect(&log);
    ck_assert_int_eq(be_count(&log, VHOST_USER_RESET_DEVICE), 1);
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->activate(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_int_eq(be_count(&log, VHOST_USER_ADD_MEM_REG), 1);
}
END_TEST

/* The source's link was down (its backend gone); the destination's is up: the
 * guest gets LINK_UP with a config interrupt. */
START_TEST(mig_link_state_follows_the_destination_backend)
{
    static const uint16_t used[MG_RINGS] = {9, 9, 9, 9};
    uint16_t status;

    for (unsigned q = 0; q < MG_RINGS; q++)
        mg_set_used_idx(q, used[q]);
    close(mg_be);
    mg_be = -1;
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    config_irqs_take();
    mg_save();
    mg_new_destination("vhost-user,socket=/x,queues=2", 0);
    ck_assert_int_eq(mg_load(mg_blob.len), 0);
    cq_net.vdev.ops->config_read(&cq_net.vdev, 6, (uint8_t *)&status, 2);
    ck_assert_uint_eq(status & VIRTIO_NET_S_LINK_UP, 0); /* what the guest saw so far */
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->start_loaded(&cq_net.vdev), 0);
    cq_net.vdev.ops->config_read(&cq_net.vdev, 6, (uint8_t *)&status, 2);
    ck_assert_uint_eq(status & VIRTIO_NET_S_LINK_UP, VIRTIO_NET_S_LINK_UP);
    ck_assert_uint_eq(config_irqs_take(), 1);
    {
        struct be_log log;

        be_collect(&log);
        expect_rings_started(&log, used, 1, 1);
    }
    state_buf_free(&mg_blob);
}
END_TEST

START_TEST(mig_load_refuses_another_queue_pair_count)
{
    static const uint16_t bases[MG_RINGS] = {1, 2, 3, 4};

    mg_busy_source(bases);
    mg_new_destination("vhost-user,socket=/x,queues=1", 0);
    ck_assert_int_eq(mg_load_logged(mg_blob.len), -EINVAL);
    ck_assert_msg(strstr(mg_err, "2 queue pair(s), this one 1"), "error: %s", mg_err);
    ck_assert_int_ne(cq_net.phase, NET_LOADED);
    ck_assert_int_eq(cq_net.vdev.ops->start_loaded(&cq_net.vdev), -EINVAL);
    state_buf_free(&mg_blob);
}
END_TEST

START_TEST(mig_load_refuses_features_the_backend_here_lacks)
{
    static const uint16_t bases[MG_RINGS] = {1, 2, 3, 4};

    mg_busy_source(bases);
    mg_new_destination("vhost-user,socket=/x,queues=2", 0);
    cq_net.backend_features = MG_BACKEND & ~BIT(VIRTIO_NET_F_MRG_RXBUF);
    ck_assert_int_eq(mg_load_logged(mg_blob.len), -EINVAL);
    ck_assert_msg(strstr(mg_err, "MRG_RXBUF (feature bit 15)"), "error: %s", mg_err);
    state_buf_free(&mg_blob);
}
END_TEST

START_TEST(mig_load_refuses_truncated_and_corrupt_state)
{
    static const uint16_t bases[MG_RINGS] = {1, 2, 3, 4};
    /* Offsets in struct net_state: version 4, status 22, active_pairs 26, started 32. */
    static const struct {
        unsigned off;
        uint8_t value;
        const char *says;
    } bad[] = {
        {0, 'X', "not virtio-net state"},
        {4, 1, "version 1; this vmm reads version 2"},
        {26, 0, "active pairs 0"},
        {26, 3, "active pairs 3"},
        {32, 2, "started 2"},
        {22, 0x04, "status 0x4"},
    };

    mg_busy_source(bases);
    mg_new_destination("vhost-user,socket=/x,queues=2", 0);
    for (size_t len = 0; len < mg_blob.len; len++)
        ck_assert_msg(mg_load_logged(len) == -EINVAL, "a blob cut to %zu bytes was taken", len);
    ck_assert_int_eq(state_buf_put(&mg_blob, "", 1), 0);
    ck_assert_int_eq(mg_load_logged(mg_blob.len), -EINVAL);
    mg_blob.len--;
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t old = mg_blob.data[bad[i].off];

        mg_blob.data[bad[i].off] = bad[i].value;
        ck_assert_int_eq(mg_load_logged(mg_blob.len), -EINVAL);
        ck_assert_msg(strstr(mg_err, bad[i].says), "byte %u = %u: error '%s'", bad[i].off,
                      bad[i].value, mg_err);
        mg_blob.data[bad[i].off] = old;
    }
    ck_assert_int_ne(cq_net.phase, NET_LOADED);
    ck_assert_int_eq(mg_load(mg_blob.len), 0);
    ck_assert_int_eq(cq_net.phase, NET_LOADED);
    state_buf_free(&mg_blob);
}
END_TEST

/* ---- packed rings: the 32-bit bases through start, stop, migration, a dead backend ---- */

#define PACKED_START 0x80008000u /* (0, wrap 1, 0, wrap 1) */

static uint32_t be_base32(const struct be_log *log, unsigned q)
{
    for (int i = 0; i < log->n; i++)
        if (log->m[i].request == VHOST_USER_SET_VRING_BASE && vu_wire_u32(&log->m[i], 0) == q)
            return vu_wire_u32(&log->m[i], 4);
    ck_abort_msg("no SET_VRING_BASE for ring %u", q);
    return 0;
}

START_TEST(packed_rings_start_with_both_wrap_counters_set)
{
    for (unsigned q = 0; q < MG_RINGS; q++)
        ck_assert_uint_eq(be_base32(&mg_start_log, q), PACKED_START);
    ck_assert(cq_net.ctrl_vq.packed);
    ck_assert(cq_net.ctrl_vq.avail_wrap && cq_net.ctrl_vq.used_wrap);
}
END_TEST

/* DPDK answers GET_VRING_BASE of a packed ring with bits 0-15 (its used half 0): used
 * is avail once stopped. The destination starts each ring from the whole position. */
START_TEST(packed_bases_stop_save_load_and_start_the_destination)
{
    struct be_log log;

    be_reply_base(0, 0x8005);      /* avail 5, wrap 1 (DPDK) */
    be_reply_base(1, 0x0003);      /* avail 3, wrap 0 (DPDK) */
    be_reply_base(2, 0x0002800au); /* avail 10 wrap 1, used 2 wrap 0 */
    be_reply_base(3, 0x800f800fu); /* a backend that says both */
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    ck_assert_uint_eq(cq_net.ring_base[0], 0x80058005u);
    ck_assert_uint_eq(cq_net.ring_base[1], 0x00030003u);
    ck_assert_uint_eq(cq_net.ring_base[2], 0x0002800au);
    ck_assert_uint_eq(cq_net.ring_base[3], 0x800f800fu);
    mg_save();
    mg_new_destination("vhost-user,socket=/x,queues=2,packed=on", 0);
    ck_assert_int_eq(mg_load(mg_blob.len), 0);
    be_reply_barriers(MG_RINGS);
    ck_assert_int_eq(cq_net.vdev.ops->start_loaded(&cq_net.vdev), 0);
    be_collect(&log);
    ck_assert_uint_eq(be_base32(&log, 0), 0x80058005u);
    ck_assert_uint_eq(be_base32(&log, 1), 0x00030003u);
    ck_assert_uint_eq(be_base32(&log, 2), 0x0002800au);
    ck_assert_uint_eq(be_base32(&log, 3), 0x800f800fu);
    ck_assert(cq_net.ctrl_vq.packed && cq_net.ctrl_vq.avail_wrap && cq_net.ctrl_vq.used_wrap);
    state_buf_free(&mg_blob);
}
END_TEST

/* A base naming an entry past the ring is the backend's protocol error. */
START_TEST(packed_base_outside_the_ring_is_a_lost_backend)
{
    be_reply_base(0, 0x8000 | MG_QSIZE);
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    ck_assert(!cq_net.connected);
}
END_TEST

/* Lays ring q out as a driver and an in-order device left it: `used` one-entry buffers
 * used in lap 1 (AVAIL = USED = 1), then `avail` available (AVAIL 1, USED 0). */
static void mg_packed_ring(unsigned q, unsigned used, unsigned avail, uint16_t extra_flags)
{
    uint64_t desc = cq_net.vdev.queues[q].desc;

    for (unsigned i = 0; i < used; i++)
        guest_put16(&cq_ram, desc + 16 * i + 14, VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED);
    for (unsigned i = used; i < used + avail; i++)
        guest_put16(&cq_ram, desc + 16 * i + 14, VIRTQ_DESC_F_AVAIL | extra_flags);
}

START_TEST(packed_dead_backend_reads_where_each_ring_stopped)
{
    mg_packed_ring(0, 3, 2, 0);
    mg_packed_ring(1, 0, 16, 0); /* a full ring, nothing used */
    mg_packed_ring(2, 16, 0, 0); /* a whole lap used: the next entry is 0 in lap 0 */
    mg_packed_ring(3, 7, 0, 0);
    close(mg_be);
    mg_be = -1;
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    ck_assert(!cq_net.connected);
    ck_assert_uint_eq(cq_net.ring_base[0], 0x80038003u);
    ck_assert_uint_eq(cq_net.ring_base[1], PACKED_START);
    ck_assert_uint_eq(cq_net.ring_base[2], 0x00000000u);
    ck_assert_uint_eq(cq_net.ring_base[3], 0x80078007u);
    ck_assert_uint_eq(cq_net.rings_unknown, 0);
    mg_save();
    state_buf_free(&mg_blob);
}
END_TEST

/* A ring that does not read one way stays stopped, and the NIC refuses to be saved. */
START_TEST(packed_dead_backend_unreadable_ring_is_refused)
{
    struct state_buf out = {0};

    mg_packed_ring(1, 2, 2, VIRTQ_DESC_F_NEXT);
    close(mg_be);
    mg_be = -1;
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    ck_assert_uint_eq(cq_net.rings_unknown, 1u << 1);
    ck_assert_int_eq(cq_net.vdev.ops->save(&cq_net.vdev, &out), -EINVAL);
    state_buf_free(&out);
}
END_TEST

/* With IN_ORDER a used descriptor may stand for a batch: no packed ring is read. */
START_TEST(packed_dead_backend_with_in_order_is_refused)
{
    cq_net.vdev.acked_features |= BIT(VIRTIO_F_IN_ORDER);
    mg_packed_ring(0, 3, 2, 0);
    close(mg_be);
    mg_be = -1;
    ck_assert_int_eq(cq_net.vdev.ops->stop(&cq_net.vdev), 0);
    ck_assert_uint_eq(cq_net.rings_unknown, (1u << MG_RINGS) - 1);
}
END_TEST

/* Packed descriptor i (virtio 1.2, 2.8.13): address, length, buffer ID, flags. */
static void packed_desc_put(uint64_t table_gpa, unsigned i, uint64_t addr, uint32_t len,
                            uint16_t id, uint16_t flags)
{
    uint64_t d = table_gpa + 16ULL * i;

    guest_put64(&cq_ram, d, addr);
    guest_put32(&cq_ram, d + 8, len);
    guest_put16(&cq_ram, d + 12, id);
    guest_put16(&cq_ram, d + 14, flags);
}

/* The control queue on a packed ring: vmm walks the chain the driver made available,
 * writes one used descriptor in its first entry (the buffer ID, the ack's length, flags
 * AVAIL = USED = 1) and raises the queue's interrupt; its position skips the chain. */
START_TEST(packed_control_queue_acks_a_command)
{
    static const uint8_t promisc[3] = {CLASS_RX, RX_PROMISC, 1};
    const uint64_t cmd = CQ_BUFS + 0x800, ack = CQ_BUFS + 0x900;
    const uint16_t avail = VIRTQ_DESC_F_AVAIL;

    guest_write(&cq_ram, cmd, promisc, 3);
    guest_put8(&cq_ram, ack, ACK_UNWRITTEN);
    cq_calls();
    /* The first entry's flags written last, as a driver does. */
    packed_desc_put(CQ_DESC, 1, ack, 1, 7, avail | VIRTQ_DESC_F_WRITE);
    packed_desc_put(CQ_DESC, 0, cmd, 3, 7, avail | VIRTQ_DESC_F_NEXT);
    virtio_net_ctrl_process(&cq_net);
    ck_assert_uint_eq(guest_get8(&cq_ram, ack), ACK_OK);
    ck_assert_uint_eq(guest_get16(&cq_ram, CQ_DESC + 14),
                      VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED | VIRTQ_DESC_F_WRITE);
    ck_assert_uint_eq(guest_get16(&cq_ram, CQ_DESC + 12), 7);
    ck_assert_uint_eq(guest_get32(&cq_ram, CQ_DESC + 8), 1);
    ck_assert_uint_eq(cq_net.ctrl_vq.last_avail, 2);
    ck_assert_uint_eq(cq_net.ctrl_vq.used_idx, 2);
    ck_assert_uint_eq(cq_calls(), 1);
    ck_assert(cq_net.ctrl_vq.avail_wrap && cq_net.ctrl_vq.used_wrap);
}
END_TEST

/* Split rings: the saved 32-bit base must be a 16-bit index. */
START_TEST(split_state_with_a_wide_base_is_refused)
{
    static const uint16_t bases[MG_RINGS] = {1, 2, 3, 4};

    mg_stop_at(bases);
    mg_save();
    mg_new_destination("vhost-user,socket=/x,queues=2", 0);
    mg_blob.data[36 + 4 * 2 + 2] = 1; /* ring 2's base: 0x10003 */
    ck_assert_int_eq(mg_load_logged(mg_blob.len), -EINVAL);
    ck_assert_ptr_nonnull(strstr(mg_err, "split queue 2"));
    state_buf_free(&mg_blob);
}
END_TEST

static Suite *virtio_net_suite(void)
{
    Suite *s = suite_create("virtio_net");
    TCase *options = tcase_create("options");
    TCase *offered = tcase_create("offered");
    TCase *packed = tcase_create("packed");
    TCase *backend = tcase_create("backend");
    TCase *ctrlq = tcase_create("ctrl_queue");
    TCase *lifecycle = tcase_create("lifecycle");
    TCase *mig = tcase_create("migration");

    tcase_add_test(options, defaults);
    tcase_add_test(options, every_key);
    tcase_add_test(options, limits_accepted);
    tcase_add_test(options, unknown_key);
    tcase_add_test(options, bad_queues);
    tcase_add_test(options, bad_mac);
    tcase_add_test(options, mac_takes_hex_digits_only);
    tcase_add_test(options, bad_numbers);
    tcase_add_test(options, reconnect_ms_option);
    tcase_add_test(options, packed_and_queue_size_options);
    tcase_add_test(options, bad_socket);
    tcase_add_test(options, bad_backend_type);
    tcase_add_test(options, too_long);
    tcase_add_test(options, error_fits_small_buffers);
    suite_add_tcase(s, options);

    tcase_add_test(offered, offered_vmm_bits_always);
    tcase_add_test(offered, offered_passes_data_path_bits_through);
    tcase_add_test(offered, offered_drops_unknown_backend_bits);
    tcase_add_test(offered, offered_packed_only_when_asked_and_offered);
    tcase_add_test(offered, offered_in_order_and_notification_data_pass_through);
    tcase_add_test(offered, offered_mq_only_with_several_pairs);
    tcase_add_test(offered, offered_mtu_only_with_mtu_set);
    suite_add_tcase(s, offered);

    tcase_add_test(backend, backend_gets_acked_data_path_bits_it_offered);
    tcase_add_test(backend, backend_gets_protocol_features_when_it_offered_them);
    tcase_add_test(backend, backend_never_gets_vmm_bits);
    tcase_add_test(backend, missing_feature_none);
    tcase_add_test(backend, missing_feature_lowest_bit);
    tcase_add_test(backend, missing_feature_only_data_path_bits);
    suite_add_tcase(s, backend);

    tcase_add_checked_fixture(ctrlq, cq_setup, cq_teardown);
    tcase_add_test(ctrlq, ctrl_rx_promisc_on);
    tcase_add_test(ctrlq, ctrl_header_and_data_in_one_descriptor);
    tcase_add_test(ctrlq, ctrl_indirect_table);
    tcase_add_test(ctrlq, ctrl_rx_data_must_be_one_byte);
    tcase_add_test(ctrlq, ctrl_rx_unknown_command);
    tcase_add_test(ctrlq, ctrl_mac_addr_set);
    tcase_add_test(ctrlq, ctrl_mac_addr_set_wrong_length);
    tcase_add_test(ctrlq, ctrl_mac_addr_set_needs_ctrl_mac_addr);
    tcase_add_test(ctrlq, ctrl_mac_table_set_well_formed);
    tcase_add_test(ctrlq, ctrl_mac_table_set_malformed);
    tcase_add_test(ctrlq, ctrl_mac_table_set_trailing_byte_past_4096);
    tcase_add_test(ctrlq, ctrl_mq_refusals);
    tcase_add_test(ctrlq, ctrl_mq_needs_mq);
    tcase_add_test(ctrlq, ctrl_mq_on_a_broken_backend_applies_later);
    tcase_add_test(ctrlq, ctrl_mq_without_protocol_features_sends_nothing);
    tcase_add_test(ctrlq, ctrl_unsupported_classes);
    tcase_add_test(ctrlq, ctrl_a_flood_is_served_in_bounded_batches);
    tcase_add_test(ctrlq, ctrl_vlan_table_acked_as_qemu_does);
    tcase_add_test(ctrlq, ctrl_guest_offloads_only_negotiated_ones);
    tcase_add_test(ctrlq, ctrl_command_shorter_than_header);
    tcase_add_test(ctrlq, ctrl_zero_length_readable_descriptors);
    tcase_add_test(ctrlq, ctrl_zero_length_writable_descriptor);
    tcase_add_test(ctrlq, ctrl_command_without_ack_buffer);
    tcase_add_test(ctrlq, ctrl_several_commands_in_order);
    tcase_add_test(ctrlq, ctrl_across_the_index_wrap);
    tcase_add_test(ctrlq, ctrl_no_interrupt_flag);
    tcase_add_test(ctrlq, ctrl_event_idx);
    tcase_add_test(ctrlq, ctrl_malformed_chain_stops_processing);
    tcase_add_test(ctrlq, ctrl_malformed_chain_alone);
    tcase_add_test(ctrlq, ctrl_empty_queue);
    suite_add_tcase(s, ctrlq);

    tcase_add_checked_fixture(lifecycle, lc_setup, lc_teardown);
    tcase_add_test(lifecycle, reset_stops_only_what_activate_started);
    tcase_add_test(lifecycle, failed_activate_stops_the_rings_it_started);
    tcase_add_test(lifecycle, reset_unwatches_the_control_queue_it_watched);
    suite_add_tcase(s, lifecycle);
    tcase_add_checked_fixture(mig, mg_setup, mg_teardown);
    tcase_add_test(mig, mig_stop_reads_each_ring_base_once);
    tcase_add_test(mig, mig_stop_skips_rings_the_guest_did_not_enable);
    tcase_add_test(mig, mig_stop_with_a_dead_backend_takes_the_used_indexes);
    tcase_add_test(mig, mig_restart_runs_the_rings_from_their_bases);
    tcase_add_test(mig, mig_reset_of_a_stopped_nic_sends_nothing);
    tcase_add_test(mig, ctrl_mq_sets_the_backend_rings_enabled);
    tcase_add_test(mig, mig_round_trip_starts_where_the_source_stopped);
    tcase_add_test(mig, mig_announce_by_the_guest_sends_no_rarp);
    tcase_add_test(mig, mig_announce_for_the_guest_by_rarp);
    tcase_add_test(mig, mtu_is_sent_only_when_the_guest_negotiated_it);
    tcase_add_test(mig, mtu_is_not_offered_without_the_backends_net_set_mtu);
    tcase_add_test(mig, reset_device_gives_the_memory_again);
    tcase_add_test(mig, mig_link_state_follows_the_destination_backend);
    tcase_add_test(mig, mig_load_refuses_another_queue_pair_count);
    tcase_add_test(mig, mig_load_refuses_features_the_backend_here_lacks);
    tcase_add_test(mig, mig_load_refuses_truncated_and_corrupt_state);
    tcase_add_test(mig, split_state_with_a_wide_base_is_refused);
    suite_add_tcase(s, mig);
    tcase_add_checked_fixture(packed, mg_setup_packed, mg_teardown);
    tcase_add_test(packed, packed_rings_start_with_both_wrap_counters_set);
    tcase_add_test(packed, packed_control_queue_acks_a_command);
    tcase_add_test(packed, packed_bases_stop_save_load_and_start_the_destination);
    tcase_add_test(packed, packed_base_outside_the_ring_is_a_lost_backend);
    tcase_add_test(packed, packed_dead_backend_reads_where_each_ring_stopped);
    tcase_add_test(packed, packed_dead_backend_unreadable_ring_is_refused);
    tcase_add_test(packed, packed_dead_backend_with_in_order_is_refused);
    suite_add_tcase(s, packed);
    return s;
}

CHECK_MAIN(virtio_net_suite)
