/* vcpu_handle_exit() on made-up kvm_run pages: I/O dispatch and every way a run ends. */
#include "../../vmm/vcpu_exit.h"

#include "check_main.h"

#include <check.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define IO_DATA_OFFSET 3072 /* where KVM puts PIO data: inside the run page, past the struct */

_Static_assert(sizeof(struct kvm_run) <= IO_DATA_OFFSET, "PIO data must not overlap kvm_run");

struct probe {
    struct device dev;
    int reads, writes;
    uint64_t offset;
    uint32_t len;
    uint8_t written[8];
    uint8_t next; /* each read returns next, next+1, ... */
};

static void probe_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
    struct probe *p = (struct probe *)dev;

    p->reads++;
    p->offset = offset;
    p->len = len;
    for (uint32_t i = 0; i < len; i++)
        data[i] = p->next++;
}

static void probe_write(struct device *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct probe *p = (struct probe *)dev;

    p->writes++;
    p->offset = offset;
    p->len = len;
    memcpy(p->written, data, len);
}

static const struct device_ops probe_ops = {.read = probe_read, .write = probe_write};

static alignas(4096) uint8_t page[4096];
static struct kvm_run *run = (struct kvm_run *)page;
static struct bus pio, mmio;
static struct probe uart, mdev;
static char why[128];

static void setup(void)
{
    memset(page, 0, sizeof(page));
    memset(why, 0, sizeof(why));
    uart = (struct probe){.dev = {.id = "uart", .ops = &probe_ops}, .next = 0x10};
    mdev = (struct probe){.dev = {.id = "mmio", .ops = &probe_ops}, .next = 0x80};
    ck_assert_int_eq(bus_init(&pio, "pio"), 0);
    ck_assert_int_eq(bus_init(&mmio, "mmio"), 0);
    ck_assert_int_eq(bus_register(&pio, 0x3f8, 8, &uart.dev), 0);
    ck_assert_int_eq(bus_register(&mmio, 0xd0000000, 0x1000, &mdev.dev), 0);
}

static void teardown(void)
{
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

static enum vcpu_action handle(void)
{
    return vcpu_handle_exit(run, &pio, &mmio, why, sizeof(why));
}

static void set_io(uint8_t direction, uint16_t port, uint8_t size, uint32_t count)
{
    run->exit_reason = KVM_EXIT_IO;
    run->io.direction = direction;
    run->io.port = port;
    run->io.size = size;
    run->io.count = count;
    run->io.data_offset = IO_DATA_OFFSET;
}

START_TEST(io_out_reaches_device_with_offset)
{
    set_io(KVM_EXIT_IO_OUT, 0x3f8, 1, 1);
    page[IO_DATA_OFFSET] = 'A';
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_int_eq(uart.writes, 1);
    ck_assert_uint_eq(uart.offset, 0);
    ck_assert_uint_eq(uart.len, 1);
    ck_assert_uint_eq(uart.written[0], 'A');
}
END_TEST

START_TEST(io_out_offset_is_relative_to_base)
{
    set_io(KVM_EXIT_IO_OUT, 0x3fd, 1, 1);
    page[IO_DATA_OFFSET] = 0x42;
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_uint_eq(uart.offset, 5);
    ck_assert_uint_eq(uart.written[0], 0x42);
}
END_TEST

START_TEST(io_in_string_fills_every_element)
{
    set_io(KVM_EXIT_IO_IN, 0x3f8, 1, 2);
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_int_eq(uart.reads, 2);
    ck_assert_uint_eq(page[IO_DATA_OFFSET], 0x10);
    ck_assert_uint_eq(page[IO_DATA_OFFSET + 1], 0x11);
    ck_assert_uint_eq(page[IO_DATA_OFFSET + 2], 0);
}
END_TEST

START_TEST(io_in_word_string_strides_by_size)
{
    set_io(KVM_EXIT_IO_IN, 0x3f8, 2, 2);
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_int_eq(uart.reads, 2);
    ck_assert_uint_eq(uart.len, 2);
    ck_assert_mem_eq(page + IO_DATA_OFFSET, "\x10\x11\x12\x13", 4);
}
END_TEST

START_TEST(io_out_string_sends_every_element)
{
    set_io(KVM_EXIT_IO_OUT, 0x3f8, 1, 3);
    memcpy(page + IO_DATA_OFFSET, "xyz", 3);
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_int_eq(uart.writes, 3);
    ck_assert_uint_eq(uart.written[0], 'z');
}
END_TEST

START_TEST(io_in_unclaimed_port_reads_ones)
{
    set_io(KVM_EXIT_IO_IN, 0x80, 4, 1);
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_mem_eq(page + IO_DATA_OFFSET, "\xff\xff\xff\xff", 4);
    ck_assert_int_eq(uart.reads, 0);
}
END_TEST

START_TEST(io_out_unclaimed_port_continues)
{
    set_io(KVM_EXIT_IO_OUT, 0x80, 1, 1);
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_int_eq(uart.writes, 0);
}
END_TEST

START_TEST(mmio_write_reaches_device)
{
    run->exit_reason = KVM_EXIT_MMIO;
    run->mmio.phys_addr = 0xd0000010;
    run->mmio.len = 4;
    run->mmio.is_write = 1;
    memcpy(run->mmio.data, "\x01\x02\x03\x04", 4);
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_int_eq(mdev.writes, 1);
    ck_assert_uint_eq(mdev.offset, 0x10);
    ck_assert_uint_eq(mdev.len, 4);
    ck_assert_mem_eq(mdev.written, "\x01\x02\x03\x04", 4);
}
END_TEST

START_TEST(mmio_read_fills_data)
{
    run->exit_reason = KVM_EXIT_MMIO;
    run->mmio.phys_addr = 0xd0000ff8;
    run->mmio.len = 8;
    run->mmio.is_write = 0;
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_int_eq(mdev.reads, 1);
    ck_assert_uint_eq(mdev.offset, 0xff8);
    ck_assert_mem_eq(run->mmio.data, "\x80\x81\x82\x83\x84\x85\x86\x87", 8);
}
END_TEST

START_TEST(mmio_read_unclaimed_is_ones)
{
    run->exit_reason = KVM_EXIT_MMIO;
    run->mmio.phys_addr = 0xe0000000;
    run->mmio.len = 2;
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    ck_assert_mem_eq(run->mmio.data, "\xff\xff", 2);
    ck_assert_uint_eq(run->mmio.data[2], 0);
}
END_TEST

START_TEST(hlt_and_intr_continue)
{
    run->exit_reason = KVM_EXIT_HLT;
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
    run->exit_reason = KVM_EXIT_INTR;
    ck_assert_int_eq(handle(), VCPU_CONTINUE);
}
END_TEST

START_TEST(shutdown_is_triple_fault)
{
    run->exit_reason = KVM_EXIT_SHUTDOWN;
    ck_assert_int_eq(handle(), VCPU_GUEST_CRASH);
    ck_assert_msg(strstr(why, "triple fault"), "why: '%s'", why);
}
END_TEST

START_TEST(internal_error_names_suberror)
{
    run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run->internal.suberror = 3;
    ck_assert_int_eq(handle(), VCPU_INTERNAL_ERROR);
    ck_assert_msg(strstr(why, "suberror 3"), "why: '%s'", why);
}
END_TEST

START_TEST(internal_emulation_error_says_so)
{
    run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run->internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
    ck_assert_int_eq(handle(), VCPU_INTERNAL_ERROR);
    ck_assert_msg(strstr(why, "emulation"), "why: '%s'", why);
}
END_TEST

START_TEST(fail_entry_names_reason)
{
    run->exit_reason = KVM_EXIT_FAIL_ENTRY;
    run->fail_entry.hardware_entry_failure_reason = 0x21;
    ck_assert_int_eq(handle(), VCPU_INTERNAL_ERROR);
    ck_assert_msg(strstr(why, "0x21"), "why: '%s'", why);
}
END_TEST

START_TEST(system_event_reset_is_guest_reset)
{
    run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
    run->system_event.type = KVM_SYSTEM_EVENT_RESET;
    ck_assert_int_eq(handle(), VCPU_GUEST_RESET);
}
END_TEST

START_TEST(system_event_shutdown_is_guest_reset)
{
    run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
    run->system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
    ck_assert_int_eq(handle(), VCPU_GUEST_RESET);
}
END_TEST

START_TEST(system_event_crash_is_guest_crash)
{
    run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
    run->system_event.type = KVM_SYSTEM_EVENT_CRASH;
    ck_assert_int_eq(handle(), VCPU_GUEST_CRASH);
    ck_assert_msg(strstr(why, "crash"), "why: '%s'", why);
}
END_TEST

START_TEST(unknown_exit_reason_is_named)
{
    run->exit_reason = 9999;
    ck_assert_int_eq(handle(), VCPU_INTERNAL_ERROR);
    ck_assert_msg(strstr(why, "9999"), "why: '%s'", why);
}
END_TEST

static Suite *vcpu_exit_suite(void)
{
    Suite *s = suite_create("vcpu_exit");
    TCase *io = tcase_create("io");
    TCase *end = tcase_create("end");

    tcase_add_checked_fixture(io, setup, teardown);
    tcase_add_test(io, io_out_reaches_device_with_offset);
    tcase_add_test(io, io_out_offset_is_relative_to_base);
    tcase_add_test(io, io_in_string_fills_every_element);
    tcase_add_test(io, io_in_word_string_strides_by_size);
    tcase_add_test(io, io_out_string_sends_every_element);
    tcase_add_test(io, io_in_unclaimed_port_reads_ones);
    tcase_add_test(io, io_out_unclaimed_port_continues);
    tcase_add_test(io, mmio_write_reaches_device);
    tcase_add_test(io, mmio_read_fills_data);
    tcase_add_test(io, mmio_read_unclaimed_is_ones);
    suite_add_tcase(s, io);

    tcase_add_checked_fixture(end, setup, teardown);
    tcase_add_test(end, hlt_and_intr_continue);
    tcase_add_test(end, shutdown_is_triple_fault);
    tcase_add_test(end, internal_error_names_suberror);
    tcase_add_test(end, internal_emulation_error_says_so);
    tcase_add_test(end, fail_entry_names_reason);
    tcase_add_test(end, system_event_reset_is_guest_reset);
    tcase_add_test(end, system_event_shutdown_is_guest_reset);
    tcase_add_test(end, system_event_crash_is_guest_crash);
    tcase_add_test(end, unknown_exit_reason_is_named);
    suite_add_tcase(s, end);
    return s;
}

CHECK_MAIN(vcpu_exit_suite)
