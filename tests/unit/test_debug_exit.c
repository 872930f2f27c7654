/* The debug-exit port: 1-, 2- and 4-byte writes, QEMU's exit-status rule, reads. */
#include "../../devices/bus.h"
#include "../../devices/debug_exit.h"

#include "check_main.h"

#include <check.h>
#include <string.h>

#define PORT DEBUG_EXIT_DEFAULT_PORT

static struct debug_exit d;
static struct bus pio;
static int requests;
static uint32_t last_value;
static int last_status;

static void on_exit_request(void *opaque, uint32_t value, int status)
{
    ck_assert_ptr_eq(opaque, &d);
    requests++;
    last_value = value;
    last_status = status;
}

static void setup(void)
{
    requests = 0;
    last_value = 0;
    last_status = -1;
    debug_exit_init(&d, on_exit_request, &d);
    ck_assert_int_eq(bus_init(&pio, "pio"), 0);
    ck_assert_int_eq(bus_register(&pio, PORT, DEBUG_EXIT_NR_PORTS, &d.dev), 0);
}

static void teardown(void)
{
    bus_destroy(&pio);
}

/* An OUT of len bytes at port, as the vCPU loop hands it to the bus. */
static bool out(uint16_t port, uint32_t value, uint32_t len)
{
    uint8_t data[4] = {value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, value >> 24};

    return bus_write(&pio, port, data, len);
}

START_TEST(status_follows_qemu_rule)
{
    ck_assert_int_eq(debug_exit_status(0), 1);
    ck_assert_int_eq(debug_exit_status(1), 3);
    ck_assert_int_eq(debug_exit_status(0x2a), 85);
    ck_assert_int_eq(debug_exit_status(0x7f), 255);
    /* exit() keeps 8 bits: bit 7 and above of the value are lost. */
    ck_assert_int_eq(debug_exit_status(0x80), 1);
    ck_assert_int_eq(debug_exit_status(0xff), 255);
    ck_assert_int_eq(debug_exit_status(0x12345), 0x8b);
    ck_assert_int_eq(debug_exit_status(0xffffffff), 255);
}
END_TEST

START_TEST(byte_write_requests_exit)
{
    ck_assert(out(PORT, 0x2a, 1));
    ck_assert_int_eq(requests, 1);
    ck_assert_uint_eq(last_value, 0x2a);
    ck_assert_int_eq(last_status, 85);
}
END_TEST

START_TEST(word_write_is_little_endian)
{
    ck_assert(out(PORT, 0x1234, 2));
    ck_assert_int_eq(requests, 1);
    ck_assert_uint_eq(last_value, 0x1234);
    ck_assert_int_eq(last_status, (0x2469) & 0xff);
}
END_TEST

START_TEST(dword_write_keeps_all_32_bits)
{
    ck_assert(out(PORT, 0x80000011, 4));
    ck_assert_int_eq(requests, 1);
    ck_assert_uint_eq(last_value, 0x80000011);
    ck_assert_int_eq(last_status, 0x23);
}
END_TEST

/* As in QEMU, every port of the range is the device. */
START_TEST(write_to_any_port_of_the_range_counts)
{
    ck_assert(out(PORT + 3, 7, 1));
    ck_assert_uint_eq(last_value, 7);
    ck_assert(out(PORT + 2, 0x0102, 2));
    ck_assert_uint_eq(last_value, 0x0102);
    ck_assert_int_eq(requests, 2);
}
END_TEST

START_TEST(ports_outside_the_range_are_not_claimed)
{
    ck_assert(!out(PORT - 1, 1, 1));
    ck_assert(!out(PORT + DEBUG_EXIT_NR_PORTS, 1, 1));
    ck_assert(!out(PORT + 2, 1, 4)); /* would run past the range */
    ck_assert_int_eq(requests, 0);
}
END_TEST

/* QEMU's device reads 0 at every width; reading never ends the guest. */
START_TEST(reads_return_zero)
{
    uint8_t data[4];

    for (uint32_t len = 1; len <= 4; len *= 2) {
        memset(data, 0xaa, sizeof(data));
        ck_assert(bus_read(&pio, PORT, data, len));
        for (uint32_t i = 0; i < len; i++)
            ck_assert_uint_eq(data[i], 0);
    }
    ck_assert_int_eq(requests, 0);
}
END_TEST

START_TEST(no_callback_is_harmless)
{
    struct debug_exit quiet;
    uint8_t v = 1;

    debug_exit_init(&quiet, NULL, NULL);
    quiet.dev.ops->write(&quiet.dev, 0, &v, 1);
    ck_assert_str_eq(quiet.dev.id, "debug-exit");
}
END_TEST

static Suite *debug_exit_suite(void)
{
    Suite *s = suite_create("debug_exit");
    TCase *tc = tcase_create("debug_exit");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, status_follows_qemu_rule);
    tcase_add_test(tc, byte_write_requests_exit);
    tcase_add_test(tc, word_write_is_little_endian);
    tcase_add_test(tc, dword_write_keeps_all_32_bits);
    tcase_add_test(tc, write_to_any_port_of_the_range_counts);
    tcase_add_test(tc, ports_outside_the_range_are_not_claimed);
    tcase_add_test(tc, reads_return_zero);
    tcase_add_test(tc, no_callback_is_harmless);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(debug_exit_suite)
