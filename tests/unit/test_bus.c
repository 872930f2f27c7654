/* Range registration and dispatch on a bus. */
#include "../../devices/bus.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A device that records its last access and answers reads with offset-derived bytes. */
struct probe {
    struct device dev;
    int reads, writes;
    uint64_t offset;
    uint32_t len;
    uint8_t data[8];
};

static struct probe *to_probe(struct device *dev)
{
    return (struct probe *)dev;
}

static void probe_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
    struct probe *p = to_probe(dev);

    p->reads++;
    p->offset = offset;
    p->len = len;
    for (uint32_t i = 0; i < len; i++)
        data[i] = (uint8_t)(0x40 + offset + i);
}

static void probe_write(struct device *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct probe *p = to_probe(dev);

    p->writes++;
    p->offset = offset;
    p->len = len;
    memcpy(p->data, data, len);
}

static const struct device_ops probe_ops = {.read = probe_read, .write = probe_write};

static struct bus bus;
static struct probe a, b;

static void setup(void)
{
    ck_assert_int_eq(bus_init(&bus, "test"), 0);
    a = (struct probe){.dev = {.id = "a", .ops = &probe_ops}};
    b = (struct probe){.dev = {.id = "b", .ops = &probe_ops}};
}

static void teardown(void)
{
    bus_destroy(&bus);
}

START_TEST(registered_range_is_dispatched)
{
    uint8_t v = 0;

    ck_assert_int_eq(bus_register(&bus, 0x3f8, 8, &a.dev), 0);
    ck_assert(bus_read(&bus, 0x3f8, &v, 1));
    ck_assert_int_eq(a.reads, 1);
    ck_assert_uint_eq(v, 0x40);
}
END_TEST

START_TEST(dispatch_passes_offset_from_base)
{
    uint8_t v[2] = {0x12, 0x34};

    ck_assert_int_eq(bus_register(&bus, 0x1000, 0x100, &a.dev), 0);
    ck_assert(bus_write(&bus, 0x1010, v, 2));
    ck_assert_int_eq(a.writes, 1);
    ck_assert_uint_eq(a.offset, 0x10);
    ck_assert_uint_eq(a.len, 2);
    ck_assert_mem_eq(a.data, v, 2);
    ck_assert(bus_read(&bus, 0x10ff, v, 1));
    ck_assert_uint_eq(a.offset, 0xff);
    ck_assert_uint_eq(v[0], (uint8_t)(0x40 + 0xff));
}
END_TEST

START_TEST(unregister_stops_dispatch)
{
    uint8_t v = 0;

    ck_assert_int_eq(bus_register(&bus, 0x60, 1, &a.dev), 0);
    ck_assert_int_eq(bus_unregister(&bus, 0x60, &a.dev), 0);
    ck_assert(!bus_read(&bus, 0x60, &v, 1));
    ck_assert_int_eq(a.reads, 0);
    ck_assert_int_eq(bus_unregister(&bus, 0x60, &a.dev), -ENOENT);
}
END_TEST

START_TEST(unregister_needs_matching_device)
{
    ck_assert_int_eq(bus_register(&bus, 0x60, 1, &a.dev), 0);
    ck_assert_int_eq(bus_unregister(&bus, 0x60, &b.dev), -ENOENT);
    ck_assert_int_eq(bus_unregister(&bus, 0x61, &a.dev), -ENOENT);
    ck_assert_int_eq(bus_unregister(&bus, 0x60, &a.dev), 0);
}
END_TEST

START_TEST(overlap_is_eexist)
{
    ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, &a.dev), 0);
    ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, &b.dev), -EEXIST);
    ck_assert_int_eq(bus_register(&bus, 0x10f, 1, &b.dev), -EEXIST);
    ck_assert_int_eq(bus_register(&bus, 0xf0, 0x11, &b.dev), -EEXIST);
    ck_assert_int_eq(bus_register(&bus, 0x104, 2, &b.dev), -EEXIST);
    ck_assert_int_eq(bus_register(&bus, 0x0, 0x1000, &b.dev), -EEXIST);
}
END_TEST

START_TEST(adjacent_ranges_are_fine)
{
    uint8_t v;

    ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, &a.dev), 0);
    ck_assert_int_eq(bus_register(&bus, 0x110, 0x10, &b.dev), 0);
    ck_assert_int_eq(bus_register(&bus, 0xf0, 0x10, &b.dev), 0);
    ck_assert(bus_read(&bus, 0x10f, &v, 1));
    ck_assert(bus_read(&bus, 0x110, &v, 1));
    ck_assert(bus_read(&bus, 0xff, &v, 1));
    ck_assert_int_eq(a.reads, 1);
    ck_assert_int_eq(b.reads, 2);
    ck_assert_uint_eq(b.offset, 0xf);
}
END_TEST

START_TEST(many_ranges_keep_order)
{
    static struct probe devs[40];
    uint8_t v;

    /* Registered out of order, and more than the initial capacity. */
    for (int i = 39; i >= 0; i--) {
        devs[i] = (struct probe){.dev = {.id = "p", .ops = &probe_ops}};
        ck_assert_int_eq(bus_register(&bus, 0x1000 + i * 0x10, 0x10, &devs[i].dev), 0);
    }
    for (int i = 0; i < 40; i++) {
        ck_assert(bus_read(&bus, 0x1000 + i * 0x10 + 3, &v, 1));
        ck_assert_int_eq(devs[i].reads, 1);
        ck_assert_uint_eq(devs[i].offset, 3);
    }
}
END_TEST

START_TEST(unclaimed_read_is_all_ones)
{
    uint8_t v[4] = {0, 0, 0, 0};

    ck_assert(!bus_read(&bus, 0x80, v, 4));
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(v[i], 0xff);
}
END_TEST

START_TEST(unclaimed_write_returns_false)
{
    uint8_t v = 1;

    ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, &a.dev), 0);
    ck_assert(!bus_write(&bus, 0x80, &v, 1));
    ck_assert_int_eq(a.writes, 0);
}
END_TEST

START_TEST(straddling_access_is_unclaimed)
{
    uint8_t v[4] = {0, 0, 0, 0};

    ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, &a.dev), 0);
    ck_assert_int_eq(bus_register(&bus, 0x110, 0x10, &b.dev), 0);
    ck_assert(!bus_read(&bus, 0x10e, v, 4)); /* across two devices */
    ck_assert(!bus_read(&bus, 0x11e, v, 4)); /* past the end */
    ck_assert(!bus_read(&bus, 0xfe, v, 4));  /* before the start */
    ck_assert(!bus_write(&bus, 0x11f, v, 2));
    ck_assert_uint_eq(v[0], 0xff);
    ck_assert_int_eq(a.reads + b.reads + a.writes + b.writes, 0);
    ck_assert(bus_read(&bus, 0x11c, v, 4)); /* the last four bytes fit */
}
END_TEST

START_TEST(zero_size_is_einval)
{
    ck_assert_int_eq(bus_register(&bus, 0x100, 0, &a.dev), -EINVAL);
}
END_TEST

START_TEST(wrapping_range_is_einval)
{
    uint8_t v;

    ck_assert_int_eq(bus_register(&bus, UINT64_MAX, 2, &a.dev), -EINVAL);
    ck_assert_int_eq(bus_register(&bus, UINT64_MAX - 0xf, 0x20, &a.dev), -EINVAL);
    ck_assert(!bus_read(&bus, 0, &v, 1));
}
END_TEST

START_TEST(device_without_read_is_unclaimed)
{
    static const struct device_ops write_only = {.write = probe_write};
    struct probe w = {.dev = {.id = "w", .ops = &write_only}};
    uint8_t v = 0;

    ck_assert_int_eq(bus_register(&bus, 0x100, 1, &w.dev), 0);
    ck_assert(!bus_read(&bus, 0x100, &v, 1));
    ck_assert_uint_eq(v, 0xff);
    ck_assert(bus_write(&bus, 0x100, &v, 1));
    ck_assert_int_eq(w.writes, 1);
}
END_TEST

static Suite *bus_suite(void)
{
    Suite *s = suite_create("bus");
    TCase *tc = tcase_create("bus");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, registered_range_is_dispatched);
    tcase_add_test(tc, dispatch_passes_offset_from_base);
    tcase_add_test(tc, unregister_stops_dispatch);
    tcase_add_test(tc, unregister_needs_matching_device);
    tcase_add_test(tc, overlap_is_eexist);
    tcase_add_test(tc, adjacent_ranges_are_fine);
    tcase_add_test(tc, many_ranges_keep_order);
    tcase_add_test(tc, unclaimed_read_is_all_ones);
    tcase_add_test(tc, unclaimed_write_returns_false);
    tcase_add_test(tc, straddling_access_is_unclaimed);
    tcase_add_test(tc, zero_size_is_einval);
    tcase_add_test(tc, wrapping_range_is_einval);
    tcase_add_test(tc, device_without_read_is_unclaimed);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(bus_suite)
