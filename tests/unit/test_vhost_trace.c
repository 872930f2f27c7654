/*
 * The vhost-user trace decoder: the exact line for each kind of message, both directions and
 * both channels, malformed payloads shown raw, and feature bits by name.
 * (The trace of a real exchange over a socketpair is in test_vhost_user.c.)
 */
#include "../../vhost/vhost_user_trace.h"

#include "check_main.h"

#include <check.h>
#include <string.h>

#define FL_REQ 0x1u
#define FL_NEED 0x9u
#define FL_REPLY 0x5u

static char line[1024];

static struct vu_msg msg(uint32_t request, uint32_t flags, uint32_t size)
{
    struct vu_msg m;

    memset(&m, 0, sizeof(m));
    m.hdr.request = request;
    m.hdr.flags = flags;
    m.hdr.size = size;
    return m;
}

static const char *request_line(const struct vu_msg *m, unsigned nfds)
{
    vu_trace_format(line, sizeof(line),
                    &(struct vu_trace_msg){.outgoing = true, .msg = m, .nfds = nfds});
    return line;
}

static const char *reply_line(const struct vu_msg *rep, const struct vu_msg *req, bool ack,
                              int64_t latency_us)
{
    vu_trace_format(
        line, sizeof(line),
        &(struct vu_trace_msg){.msg = rep, .req = req, .ack = ack, .latency_us = latency_us});
    return line;
}

/* --- requests: one line each, from the message alone ----------------------------------- */

#define HDR(req, fl, sz) .hdr = {.request = (req), .flags = (fl), .size = (sz)}

static const struct request_case {
    const char *what;
    struct vu_msg m;
    unsigned nfds;
    const char *line;
} request_cases[] = {
    /* CSUM, MRG_RXBUF, LOG_ALL, EVENT_IDX, PROTOCOL_FEATURES, VERSION_1 and unknown bit 45 */
    {"set_features_names_every_bit",
     {HDR(VHOST_USER_SET_FEATURES, FL_NEED, 8), .payload.u64 = 1ULL | 1ULL << 15 | 1ULL << 26 |
                                                               1ULL << 29 | 1ULL << 30 |
                                                               1ULL << 32 | 1ULL << 45},
     0,
     "-> SET_FEATURES flags=v1|NEED_REPLY size=8 features=0x200164008001("
     "CSUM|MRG_RXBUF|LOG_ALL|EVENT_IDX|PROTOCOL_FEATURES|VERSION_1|0x200000000000) fds=0"},
    {"set_protocol_features_names_every_bit",
     {HDR(VHOST_USER_SET_PROTOCOL_FEATURES, FL_REQ, 8),
      .payload.u64 = 1ULL << VHOST_USER_PROTOCOL_F_MQ | 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK |
                     1ULL << VHOST_USER_PROTOCOL_F_BACKEND_REQ |
                     1ULL << VHOST_USER_PROTOCOL_F_STATUS | 1ULL << 40},
     0,
     "-> SET_PROTOCOL_FEATURES flags=v1 size=8 protocol_features=0x10000010029("
     "MQ|REPLY_ACK|BACKEND_REQ|STATUS|0x10000000000) fds=0"},
    {"set_vring_addr_fields",
     {HDR(VHOST_USER_SET_VRING_ADDR, FL_NEED, 40), .payload.addr = {.index = 1,
                                                                    .flags = VHOST_USER_VRING_F_LOG,
                                                                    .desc = 0x7f0000001000,
                                                                    .used = 0x7f0000003000,
                                                                    .avail = 0x7f0000002000,
                                                                    .log = 0x3000}},
     0,
     "-> SET_VRING_ADDR flags=v1|NEED_REPLY size=40 index=1 ring_flags=LOG "
     "desc=0x7f0000001000 used=0x7f0000003000 avail=0x7f0000002000 log=0x3000 fds=0"},
    {"set_mem_table_lists_regions",
     {HDR(VHOST_USER_SET_MEM_TABLE, FL_NEED, 8 + 2 * 32),
      .payload.memory = {.nregions = 2,
                         .regions = {{0, 0xc0000000, 0x7f1200000000, 0},
                                     {0x100000000, 0x40000000, 0x7f12c0000000, 0xc0000000}}}},
     2,
     "-> SET_MEM_TABLE flags=v1|NEED_REPLY size=72 nregions=2 "
     "{gpa=0x0 size=0xc0000000 uaddr=0x7f1200000000 offset=0x0} "
     "{gpa=0x100000000 size=0x40000000 uaddr=0x7f12c0000000 offset=0xc0000000} fds=2"},
    /* vring states name their value */
    {"set_vring_num",
     {HDR(VHOST_USER_SET_VRING_NUM, FL_NEED, 8), .payload.state = {.index = 0, .num = 256}},
     0,
     "-> SET_VRING_NUM flags=v1|NEED_REPLY size=8 index=0 num=256 fds=0"},
    {"set_vring_base",
     {HDR(VHOST_USER_SET_VRING_BASE, FL_NEED, 8), .payload.state = {.index = 0, .num = 0}},
     0,
     "-> SET_VRING_BASE flags=v1|NEED_REPLY size=8 index=0 base=0 fds=0"},
    {"set_vring_enable",
     {HDR(VHOST_USER_SET_VRING_ENABLE, FL_NEED, 8), .payload.state = {.index = 3, .num = 1}},
     0,
     "-> SET_VRING_ENABLE flags=v1|NEED_REPLY size=8 index=3 enable=1 fds=0"},
    {"get_vring_base",
     {HDR(VHOST_USER_GET_VRING_BASE, FL_REQ, 8), .payload.state = {.index = 3, .num = 1}},
     0,
     "-> GET_VRING_BASE flags=v1 size=8 index=3 fds=0"},
    /* the transport bits a packed or in-order ring negotiates, by name */
    {"transport_feature_bits_are_named",
     {HDR(VHOST_USER_SET_FEATURES, FL_REQ, 8),
      .payload.u64 = 1ULL << 34 | 1ULL << 35 | 1ULL << 38 | 1ULL << 40},
     0,
     "-> SET_FEATURES flags=v1 size=8 features=0x14c00000000("
     "RING_PACKED|IN_ORDER|NOTIFICATION_DATA|RING_RESET) fds=0"},
    /* vring fd requests show the index and nofd */
    {"set_vring_kick",
     {HDR(VHOST_USER_SET_VRING_KICK, FL_NEED, 8), .payload.u64 = 1},
     1,
     "-> SET_VRING_KICK flags=v1|NEED_REPLY size=8 index=1 fds=1"},
    {"set_vring_call_nofd",
     {HDR(VHOST_USER_SET_VRING_CALL, FL_NEED, 8), .payload.u64 = 2 | VHOST_USER_VRING_NOFD},
     0,
     "-> SET_VRING_CALL flags=v1|NEED_REPLY size=8 index=2 nofd fds=0"},
    {"set_vring_err_unknown_bit", /* a bit the spec does not define */
     {HDR(VHOST_USER_SET_VRING_ERR, FL_NEED, 8), .payload.u64 = 0x10002},
     1,
     "-> SET_VRING_ERR flags=v1|NEED_REPLY size=8 index=2 bits=0x10000 fds=1"},
    /* the log base, and requests of one u64 */
    {"set_log_base",
     {HDR(VHOST_USER_SET_LOG_BASE, FL_REQ, 16),
      .payload.log = {.mmap_size = 0x8000, .mmap_offset = 0}},
     1,
     "-> SET_LOG_BASE flags=v1 size=16 mmap_size=0x8000 mmap_offset=0x0 fds=1"},
    {"net_set_mtu",
     {HDR(VHOST_USER_NET_SET_MTU, FL_NEED, 8), .payload.u64 = 9000},
     0,
     "-> NET_SET_MTU flags=v1|NEED_REPLY size=8 mtu=9000 fds=0"},
    {"send_rarp", /* 52:54:00:12:34:56 in memory order */
     {HDR(VHOST_USER_SEND_RARP, FL_REQ, 8), .payload.u64 = 0x563412005452ULL},
     0,
     "-> SEND_RARP flags=v1 size=8 mac=52:54:00:12:34:56 fds=0"},
    {"set_status",
     {HDR(VHOST_USER_SET_STATUS, FL_REQ, 8), .payload.u64 = 0xf},
     0,
     "-> SET_STATUS flags=v1 size=8 status=0xf(ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK) fds=0"},
    /* no payload */
    {"set_owner",
     {HDR(VHOST_USER_SET_OWNER, FL_NEED, 0)},
     0,
     "-> SET_OWNER flags=v1|NEED_REPLY size=0 fds=0"},
    {"get_features",
     {HDR(VHOST_USER_GET_FEATURES, FL_REQ, 0)},
     0,
     "-> GET_FEATURES flags=v1 size=0 fds=0"},
    /* IOTLB, config and memory-slot requests */
    {"iotlb_msg",
     {HDR(VHOST_USER_IOTLB_MSG, FL_NEED, 32),
      .payload.iotlb = {.iova = 0x1000, .size = 0x2000, .uaddr = 0x7f00, .perm = 3, .type = 2}},
     0,
     "-> IOTLB_MSG flags=v1|NEED_REPLY size=32 iova=0x1000 len=0x2000 uaddr=0x7f00 perm=RW "
     "type=UPDATE fds=0"},
    {"iotlb_msg_unknown_perm_and_type",
     {HDR(VHOST_USER_IOTLB_MSG, FL_NEED, 32),
      .payload.iotlb = {.iova = 0x1000, .size = 0x2000, .uaddr = 0x7f00, .perm = 9, .type = 7}},
     0,
     "-> IOTLB_MSG flags=v1|NEED_REPLY size=32 iova=0x1000 len=0x2000 uaddr=0x7f00 perm=9 "
     "type=7 fds=0"},
    {"set_config",
     {HDR(VHOST_USER_SET_CONFIG, FL_REQ, 12 + 4),
      .payload.config = {.offset = 6, .size = 4, .flags = 1, .region = {0x01, 0x00, 0xab, 0xcd}}},
     0,
     "-> SET_CONFIG flags=v1 size=16 offset=6 len=4 config_flags=0x1 data=0100abcd fds=0"},
    {"add_mem_reg",
     {HDR(VHOST_USER_ADD_MEM_REG, FL_NEED, 40),
      .payload.mem_reg.region = {0x100000, 0x200000, 0x7f0000100000, 0x100000}},
     1,
     "-> ADD_MEM_REG flags=v1|NEED_REPLY size=40 {gpa=0x100000 size=0x200000 "
     "uaddr=0x7f0000100000 offset=0x100000} fds=1"},
    /* what a message gets wrong is shown, not hidden */
    {"memory_table_with_too_many_regions_is_raw",
     {HDR(VHOST_USER_SET_MEM_TABLE, FL_REQ, 8), .payload.memory.nregions = 9},
     0,
     "-> SET_MEM_TABLE flags=v1 size=8 raw=0900000000000000 fds=0"},
    {"unknown_request_and_flag_bits",
     {HDR(99, 0x31, 4), .payload.u64 = 0x04030201},
     3,
     "-> UNKNOWN_99 flags=v1|0x30 size=4 raw=01020304 fds=3"},
    {"version_0",
     {HDR(VHOST_USER_SET_OWNER, 0x4, 0)},
     0,
     "-> SET_OWNER flags=v0|REPLY size=0 fds=0"},
    /* every named bit, and unnamed ones */
    {"named_feature_bits",
     {HDR(VHOST_USER_SET_FEATURES, FL_REQ, 8),
      .payload.u64 = 1ULL << 17 | 1ULL << 3 | 1ULL << 16 | 1ULL << 33},
     0,
     "-> SET_FEATURES flags=v1 size=8 features=0x200030008(MTU|STATUS|CTRL_VQ|IOMMU_PLATFORM) "
     "fds=0"},
    {"bits_without_virtio_net_meaning",
     {HDR(VHOST_USER_SET_FEATURES, FL_REQ, 8), .payload.u64 = 1ULL << 4 | 1ULL << 25},
     0,
     "-> SET_FEATURES flags=v1 size=8 features=0x2000010(0x2000010) fds=0"},
    {"every_protocol_feature_named",
     {HDR(VHOST_USER_SET_PROTOCOL_FEATURES, FL_REQ, 8), .payload.u64 = 0x1ffff},
     0,
     "-> SET_PROTOCOL_FEATURES flags=v1 size=8 protocol_features=0x1ffff("
     "MQ|LOG_SHMFD|RARP|REPLY_ACK|MTU|BACKEND_REQ|CROSS_ENDIAN|CRYPTO_SESSION|"
     "PAGEFAULT|CONFIG|BACKEND_SEND_FD|HOST_NOTIFIER|INFLIGHT_SHMFD|RESET_DEVICE|"
     "INBAND_NOTIFICATIONS|CONFIGURE_MEM_SLOTS|STATUS) fds=0"},
};

START_TEST(request_lines)
{
    const struct request_case *c = &request_cases[_i];
    const char *got = request_line(&c->m, c->nfds);

    ck_assert_msg(!strcmp(got, c->line), "%s:\n  got  '%s'\n  want '%s'", c->what, got, c->line);
}
END_TEST

/* With VIRTIO_F_RING_PACKED acked, a vring base is two positions: bits 0-14 the avail
 * index, 15 its wrap counter, 16-30 the used index, 31 its wrap counter. */
START_TEST(packed_vring_base_shows_both_positions)
{
    struct vu_msg m = msg(VHOST_USER_SET_VRING_BASE, FL_REQ, 8);
    struct vu_msg req = msg(VHOST_USER_GET_VRING_BASE, FL_REQ, 8);
    struct vu_msg rep = msg(VHOST_USER_GET_VRING_BASE, FL_REPLY, 8);

    m.payload.state = (struct vu_state){.index = 2, .num = 0x80038005u};
    vu_trace_format(line, sizeof(line),
                    &(struct vu_trace_msg){.outgoing = true, .msg = &m, .packed = true});
    ck_assert_str_eq(line, "-> SET_VRING_BASE flags=v1 size=8 index=2 base=2147713029 idx=5 "
                           "wrap=1 used_idx=3 used_wrap=1 fds=0");
    /* A split ring's base, the same number: as it is. */
    ck_assert_str_eq(request_line(&m, 0),
                     "-> SET_VRING_BASE flags=v1 size=8 index=2 base=2147713029 fds=0");
    req.payload.state.index = 2;
    rep.payload.state = (struct vu_state){.index = 2, .num = 0x8005}; /* DPDK: bits 0-15 only */
    vu_trace_format(
        line, sizeof(line),
        &(struct vu_trace_msg){.msg = &rep, .req = &req, .latency_us = 9, .packed = true});
    ck_assert_str_eq(line, "<- GET_VRING_BASE flags=v1|REPLY size=8 index=2 base=32773 idx=5 "
                           "wrap=1 used_idx=0 used_wrap=0 fds=0 reply_to=GET_VRING_BASE "
                           "latency=9us");
    /* Other vring states are not bases: no positions. */
    m.hdr.request = VHOST_USER_SET_VRING_NUM;
    m.payload.state.num = 256;
    vu_trace_format(line, sizeof(line),
                    &(struct vu_trace_msg){.outgoing = true, .msg = &m, .packed = true});
    ck_assert_str_eq(line, "-> SET_VRING_NUM flags=v1 size=8 index=2 num=256 fds=0");
}
END_TEST

/* --- replies: each line names the request it answers and the wait ------------------------ */

static const struct reply_case {
    const char *what;
    struct vu_msg rep, req;
    bool ack;
    int64_t latency_us;
    const char *line;
} reply_cases[] = {
    {"get_features_names_bits_and_latency",
     {HDR(VHOST_USER_GET_FEATURES, FL_REPLY, 8),
      .payload.u64 = 1ULL << 32 | 1ULL << 30 | 1ULL << 22},
     {HDR(VHOST_USER_GET_FEATURES, FL_REQ, 0)},
     false,
     42,
     "<- GET_FEATURES flags=v1|REPLY size=8 features=0x140400000(MQ|PROTOCOL_FEATURES|VERSION_1) "
     "fds=0 reply_to=GET_FEATURES latency=42us"},
    {"get_features_none",
     {HDR(VHOST_USER_GET_FEATURES, FL_REPLY, 8)},
     {HDR(VHOST_USER_GET_FEATURES, FL_REQ, 0)},
     false,
     0,
     "<- GET_FEATURES flags=v1|REPLY size=8 features=0x0() fds=0 reply_to=GET_FEATURES "
     "latency=0us"},
    {"get_vring_base_has_base_and_latency",
     {HDR(VHOST_USER_GET_VRING_BASE, FL_REPLY, 8), .payload.state = {.index = 1, .num = 77}},
     {HDR(VHOST_USER_GET_VRING_BASE, FL_REQ, 8), .payload.state.index = 1},
     false,
     1234,
     "<- GET_VRING_BASE flags=v1|REPLY size=8 index=1 base=77 fds=0 reply_to=GET_VRING_BASE "
     "latency=1234us"},
    {"get_queue_num",
     {HDR(VHOST_USER_GET_QUEUE_NUM, FL_REPLY, 8), .payload.u64 = 2},
     {HDR(VHOST_USER_GET_QUEUE_NUM, FL_REQ, 0)},
     false,
     9,
     "<- GET_QUEUE_NUM flags=v1|REPLY size=8 queues=2 fds=0 reply_to=GET_QUEUE_NUM latency=9us"},
    {"get_protocol_features",
     {HDR(VHOST_USER_GET_PROTOCOL_FEATURES, FL_REPLY, 8), .payload.u64 = 0x8 | 1ULL << 60},
     {HDR(VHOST_USER_GET_PROTOCOL_FEATURES, FL_REQ, 0)},
     false,
     9,
     "<- GET_PROTOCOL_FEATURES flags=v1|REPLY size=8 protocol_features="
     "0x1000000000000008(REPLY_ACK|0x1000000000000000) fds=0 "
     "reply_to=GET_PROTOCOL_FEATURES latency=9us"},
    {"ack_0",
     {HDR(VHOST_USER_SET_MEM_TABLE, FL_REPLY, 8)},
     {HDR(VHOST_USER_SET_MEM_TABLE, FL_NEED, 8)},
     true,
     5,
     "<- SET_MEM_TABLE flags=v1|REPLY size=8 ack=0 fds=0 reply_to=SET_MEM_TABLE latency=5us"},
    {"ack_1",
     {HDR(VHOST_USER_SET_MEM_TABLE, FL_REPLY, 8), .payload.u64 = 1},
     {HDR(VHOST_USER_SET_MEM_TABLE, FL_NEED, 8)},
     true,
     5,
     "<- SET_MEM_TABLE flags=v1|REPLY size=8 ack=1 fds=0 reply_to=SET_MEM_TABLE latency=5us"},
    {"log_base_empty",
     {HDR(VHOST_USER_SET_LOG_BASE, FL_REPLY, 0)},
     {HDR(VHOST_USER_SET_LOG_BASE, FL_REQ, 16)},
     false,
     1,
     "<- SET_LOG_BASE flags=v1|REPLY size=0 fds=0 reply_to=SET_LOG_BASE latency=1us"},
    {"log_base_16_bytes",
     {HDR(VHOST_USER_SET_LOG_BASE, FL_REPLY, 16),
      .payload.log = {.mmap_size = 0x100, .mmap_offset = 0x10}},
     {HDR(VHOST_USER_SET_LOG_BASE, FL_REQ, 16)},
     false,
     1,
     "<- SET_LOG_BASE flags=v1|REPLY size=16 mmap_size=0x100 mmap_offset=0x10 fds=0 "
     "reply_to=SET_LOG_BASE latency=1us"},
    /* what the back-end got wrong is shown, not hidden */
    {"mismatched_reply_names_both_requests",
     {HDR(VHOST_USER_GET_QUEUE_NUM, FL_REPLY, 8), .payload.u64 = 1ULL << 32},
     {HDR(VHOST_USER_GET_FEATURES, FL_REQ, 0)},
     false,
     3,
     "<- GET_QUEUE_NUM flags=v1|REPLY size=8 features=0x100000000(VERSION_1) fds=0 "
     "reply_to=GET_FEATURES latency=3us"},
};

START_TEST(reply_lines)
{
    const struct reply_case *c = &reply_cases[_i];
    const char *got = reply_line(&c->rep, &c->req, c->ack, c->latency_us);

    ck_assert_msg(!strcmp(got, c->line), "%s:\n  got  '%s'\n  want '%s'", c->what, got, c->line);
}
END_TEST

START_TEST(wrong_size_payload_is_raw_hex)
{
    struct vu_msg req = msg(VHOST_USER_GET_FEATURES, FL_REQ, 0);
    struct vu_msg rep = msg(VHOST_USER_GET_FEATURES, FL_REPLY, 4);

    memcpy(&rep.payload, "\x01\x02\x03\xff", 4);
    ck_assert_str_eq(reply_line(&rep, &req, false, 3),
                     "<- GET_FEATURES flags=v1|REPLY size=4 raw=010203ff fds=0 "
                     "reply_to=GET_FEATURES latency=3us");
    rep.hdr.size = 40; /* longer than RAW_BYTES: cut with "..." */
    memset(&rep.payload, 0xaa, 40);
    ck_assert_str_eq(reply_line(&rep, &req, false, 3),
                     "<- GET_FEATURES flags=v1|REPLY size=40 "
                     "raw=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... "
                     "fds=0 reply_to=GET_FEATURES latency=3us");
}
END_TEST

/* --- the back-end request channel ----------------------------------------------------- */

START_TEST(backend_requests_and_our_acks)
{
    struct vu_msg req = msg(VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, FL_NEED, 24);
    struct vu_msg ack = msg(VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, FL_REPLY, 8);

    req.payload.area = (struct vu_area){.u64 = 1, .size = 0x1000, .offset = 0x3000};
    vu_trace_format(line, sizeof(line),
                    &(struct vu_trace_msg){.backend_channel = true, .msg = &req, .nfds = 1});
    ck_assert_str_eq(line, "<- BACKEND_VRING_HOST_NOTIFIER_MSG flags=v1|NEED_REPLY size=24 "
                           "index=1 len=0x1000 offset=0x3000 fds=1");
    vu_trace_format(line, sizeof(line),
                    &(struct vu_trace_msg){.outgoing = true,
                                           .backend_channel = true,
                                           .msg = &ack,
                                           .req = &req,
                                           .ack = true,
                                           .latency_us = 17});
    ck_assert_str_eq(line, "-> BACKEND_VRING_HOST_NOTIFIER_MSG flags=v1|REPLY size=8 ack=0 fds=0 "
                           "reply_to=BACKEND_VRING_HOST_NOTIFIER_MSG latency=17us");
    req = msg(VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, FL_REQ, 0);
    vu_trace_format(line, sizeof(line),
                    &(struct vu_trace_msg){.backend_channel = true, .msg = &req});
    ck_assert_str_eq(line, "<- BACKEND_CONFIG_CHANGE_MSG flags=v1 size=0 fds=0");
    req = msg(42, FL_REQ, 0);
    vu_trace_format(line, sizeof(line),
                    &(struct vu_trace_msg){.backend_channel = true, .msg = &req});
    ck_assert_str_eq(line, "<- UNKNOWN_42 flags=v1 size=0 fds=0");
}
END_TEST

/* --- helpers -------------------------------------------------------------------------- */

START_TEST(small_buffer_truncates_without_overflow)
{
    struct vu_msg m = msg(VHOST_USER_SET_FEATURES, FL_NEED, 8);
    char small[24];

    memset(small, 'x', sizeof(small));
    m.payload.u64 = ~0ULL;
    vu_trace_format(small, 16, &(struct vu_trace_msg){.outgoing = true, .msg = &m});
    ck_assert_str_eq(small, "-> SET_FEATURES");
    ck_assert_int_eq(small[16], 'x');
}
END_TEST

static Suite *vhost_trace_suite(void)
{
    Suite *s = suite_create("vhost_trace");
    TCase *req = tcase_create("requests");
    TCase *rep = tcase_create("replies");
    TCase *bad = tcase_create("malformed");
    TCase *misc = tcase_create("backend_and_helpers");

    tcase_add_loop_test(req, request_lines, 0, sizeof(request_cases) / sizeof(request_cases[0]));
    tcase_add_test(req, packed_vring_base_shows_both_positions);
    suite_add_tcase(s, req);
    tcase_add_loop_test(rep, reply_lines, 0, sizeof(reply_cases) / sizeof(reply_cases[0]));
    suite_add_tcase(s, rep);
    tcase_add_test(bad, wrong_size_payload_is_raw_hex);
    suite_add_tcase(s, bad);
    tcase_add_test(misc, backend_requests_and_our_acks);
    tcase_add_test(misc, small_buffer_truncates_without_overflow);
    suite_add_tcase(s, misc);
    return s;
}

CHECK_MAIN(vhost_trace_suite)
