/* The PS/2 controller: the reset line, the command byte and keyboard replies. */
#include "../../devices/i8042.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_OBF 0x01
#define CTR_DEFAULT 0x65 /* KBD_INT | SYS | AUX_DISABLE | XLATE */

struct irq_log {
    int levels[64];
    int count;
    uint32_t irq;
};

static struct i8042 c;
static struct irq_log irqs;
static int resets;

static void record_irq(void *opaque, uint32_t irq, int level)
{
    struct irq_log *log = opaque;

    ck_assert_int_lt(log->count, 64);
    log->irq = irq;
    log->levels[log->count++] = level;
}

static void on_reset(void *opaque)
{
    ck_assert_ptr_eq(opaque, &c);
    resets++;
}

static void setup(void)
{
    struct irq_line line = {.set = record_irq, .opaque = &irqs, .irq = I8042_KBD_IRQ};

    memset(&irqs, 0, sizeof(irqs));
    resets = 0;
    ck_assert_int_eq(i8042_init(&c, &line, on_reset, &c), 0);
}

static void teardown(void)
{
    i8042_destroy(&c);
}

static void cmd(uint8_t v)
{
    c.cmd_dev.ops->write(&c.cmd_dev, 0, &v, 1);
}

static void data_out(uint8_t v)
{
    c.data_dev.ops->write(&c.data_dev, 0, &v, 1);
}

static uint8_t status(void)
{
    uint8_t v = 0;

    c.cmd_dev.ops->read(&c.cmd_dev, 0, &v, 1);
    return v;
}

static uint8_t data_in(void)
{
    uint8_t v = 0xee;

    c.data_dev.ops->read(&c.data_dev, 0, &v, 1);
    return v;
}

START_TEST(pulse_reset_command_resets_once)
{
    cmd(0xfe);
    ck_assert_int_eq(resets, 1);
}
END_TEST

START_TEST(output_port_write_with_bit0_clear_resets)
{
    cmd(0xd1);
    ck_assert_int_eq(resets, 0);
    data_out(0xfe);
    ck_assert_int_eq(resets, 1);
}
END_TEST

START_TEST(output_port_write_with_bit0_set_does_not_reset)
{
    cmd(0xd1);
    data_out(0xdf);
    ck_assert_int_eq(resets, 0);
    ck_assert_uint_eq(status() & STATUS_OBF, 0); /* consumed, not a keyboard byte */
}
END_TEST

START_TEST(read_ctr_through_data_port)
{
    cmd(0x20);
    ck_assert_uint_eq(status() & STATUS_OBF, STATUS_OBF);
    ck_assert_uint_eq(data_in(), CTR_DEFAULT);
    ck_assert_uint_eq(status() & STATUS_OBF, 0);
}
END_TEST

START_TEST(write_ctr_then_read_back)
{
    cmd(0x60);
    data_out(0x47);
    ck_assert_uint_eq(status() & STATUS_OBF, 0);
    cmd(0x20);
    ck_assert_uint_eq(data_in(), 0x47);
}
END_TEST

START_TEST(self_test_answers_0x55)
{
    cmd(0xaa);
    ck_assert_uint_eq(status() & STATUS_OBF, STATUS_OBF);
    ck_assert_uint_eq(data_in(), 0x55);
}
END_TEST

START_TEST(keyboard_get_id_replies_ack_and_id)
{
    data_out(0xf2);
    ck_assert_uint_eq(data_in(), 0xfa);
    ck_assert_uint_eq(data_in(), 0xab);
    ck_assert_uint_eq(data_in(), 0x83);
    ck_assert_uint_eq(status() & STATUS_OBF, 0);
}
END_TEST

START_TEST(keyboard_reply_pulses_irq)
{
    data_out(0xf2);
    ck_assert_int_ge(irqs.count, 2);
    ck_assert_int_eq(irqs.levels[0], 1);
    ck_assert_int_eq(irqs.levels[1], 0);
    ck_assert_int_eq(irqs.levels[irqs.count - 1], 0);
    ck_assert_uint_eq(irqs.irq, I8042_KBD_IRQ);
}
END_TEST

/* Linux's i8042_interrupt() reads one byte per interrupt: a byte left queued behind
 * the one just read must raise IRQ 1 again, as on a real 8042 (and QEMU's pckbd). */
START_TEST(each_queued_keyboard_byte_interrupts)
{
    int before;

    data_out(0xf2);
    ck_assert_uint_eq(data_in(), 0xfa);
    before = irqs.count;
    ck_assert_uint_eq(data_in(), 0xab);
    ck_assert_int_ge(irqs.count, before + 2);
    ck_assert_int_eq(irqs.levels[before], 1);
    ck_assert_int_eq(irqs.levels[irqs.count - 1], 0);
}
END_TEST

START_TEST(keyboard_reply_without_kbd_int_is_silent)
{
    cmd(0x60);
    data_out(CTR_DEFAULT & ~0x01);
    data_out(0xf2);
    ck_assert_int_eq(irqs.count, 0);
    ck_assert_uint_eq(data_in(), 0xfa);
}
END_TEST

START_TEST(keyboard_reset_replies_bat_ok)
{
    data_out(0xff);
    ck_assert_uint_eq(data_in(), 0xfa);
    ck_assert_uint_eq(data_in(), 0xaa);
}
END_TEST

START_TEST(empty_read_leaves_obf_clear)
{
    ck_assert_uint_eq(status() & STATUS_OBF, 0);
    ck_assert_uint_eq(data_in(), 0);
    ck_assert_uint_eq(status() & STATUS_OBF, 0);
}
END_TEST

START_TEST(device_reset_restores_ctr)
{
    cmd(0x60);
    data_out(0x00);
    cmd(0xaa);
    c.cmd_dev.ops->reset(&c.cmd_dev);
    ck_assert_uint_eq(status() & STATUS_OBF, 0);
    cmd(0x20);
    ck_assert_uint_eq(data_in(), CTR_DEFAULT);
}
END_TEST

/* ---- migration ---- */

static struct state_buf saved;

/* Saves the controller, then replaces it with a fresh one holding the saved state. */
static void move_to_fresh_controller(void)
{
    struct irq_line line = {.set = record_irq, .opaque = &irqs, .irq = I8042_KBD_IRQ};

    state_buf_free(&saved);
    ck_assert_int_eq(c.cmd_dev.ops->save(&c.cmd_dev, &saved), 0);
    i8042_destroy(&c);
    ck_assert_int_eq(i8042_init(&c, &line, on_reset, &c), 0);
    irqs.count = 0;
    ck_assert_int_eq(c.cmd_dev.ops->load(&c.cmd_dev, saved.data, saved.len), 0);
    ck_assert_int_eq(irqs.count, 0); /* an edge already sent lives in the PIC's state */
}

START_TEST(save_load_keeps_ctr_and_queued_bytes_in_order)
{
    cmd(0x60);
    data_out(0x44); /* KBD_INT off: reads raise no edges */
    /* Fill the queue past its end so its head is not at 0. */
    for (int i = 0; i < 10; i++)
        cmd(0xaa);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(data_in(), 0x55);
    data_out(0xf2); /* ACK, 0xab, 0x83 */
    cmd(0xab);      /* 0x00 */
    move_to_fresh_controller();
    ck_assert_uint_eq(status() & STATUS_OBF, STATUS_OBF);
    ck_assert_uint_eq(data_in(), 0x55);
    ck_assert_uint_eq(data_in(), 0x55);
    ck_assert_uint_eq(data_in(), 0xfa);
    ck_assert_uint_eq(data_in(), 0xab);
    ck_assert_uint_eq(data_in(), 0x83);
    ck_assert_uint_eq(data_in(), 0x00);
    ck_assert_uint_eq(status() & STATUS_OBF, 0);
    cmd(0x20);
    ck_assert_uint_eq(data_in(), 0x44);
    state_buf_free(&saved);
}
END_TEST

START_TEST(save_load_keeps_a_command_waiting_for_its_data)
{
    cmd(0x60);
    move_to_fresh_controller();
    ck_assert_uint_eq(status() & 0x08, 0x08); /* STATUS_CMD: the data byte is awaited */
    data_out(0x61);
    cmd(0x20);
    ck_assert_uint_eq(data_in(), 0x61);
    /* And a pending output-port write still pulls the reset line. */
    cmd(0xd1);
    move_to_fresh_controller();
    data_out(0x00);
    ck_assert_int_eq(resets, 1);
    state_buf_free(&saved);
}
END_TEST

START_TEST(load_refuses_bad_blobs)
{
    uint8_t blob[3 + I8042_OUTQ_SIZE + 1] = {CTR_DEFAULT, 0, 2, 0x11, 0x22};

    /* Every truncation of a good blob, and a trailing byte. */
    for (size_t len = 0; len < 5; len++)
        ck_assert_int_eq(c.cmd_dev.ops->load(&c.cmd_dev, blob, len), -EINVAL);
    ck_assert_int_eq(c.cmd_dev.ops->load(&c.cmd_dev, blob, 6), -EINVAL);
    /* More queued bytes than the queue holds. */
    blob[2] = I8042_OUTQ_SIZE + 1;
    ck_assert_int_eq(c.cmd_dev.ops->load(&c.cmd_dev, blob, sizeof(blob)), -EINVAL);
    /* A pending command that takes no data byte. */
    blob[1] = 0xaa;
    blob[2] = 0;
    ck_assert_int_eq(c.cmd_dev.ops->load(&c.cmd_dev, blob, 3), -EINVAL);
    /* Nothing was changed by the refusals. */
    ck_assert_uint_eq(status() & (STATUS_OBF | 0x08), 0);
    blob[1] = 0;
    blob[2] = 2;
    ck_assert_int_eq(c.cmd_dev.ops->load(&c.cmd_dev, blob, 5), 0);
    ck_assert_uint_eq(data_in(), 0x11);
    ck_assert_uint_eq(data_in(), 0x22);
}
END_TEST

static Suite *i8042_suite(void)
{
    Suite *s = suite_create("i8042");
    TCase *tc = tcase_create("i8042");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, pulse_reset_command_resets_once);
    tcase_add_test(tc, output_port_write_with_bit0_clear_resets);
    tcase_add_test(tc, output_port_write_with_bit0_set_does_not_reset);
    tcase_add_test(tc, read_ctr_through_data_port);
    tcase_add_test(tc, write_ctr_then_read_back);
    tcase_add_test(tc, self_test_answers_0x55);
    tcase_add_test(tc, keyboard_get_id_replies_ack_and_id);
    tcase_add_test(tc, keyboard_reply_pulses_irq);
    tcase_add_test(tc, each_queued_keyboard_byte_interrupts);
    tcase_add_test(tc, keyboard_reply_without_kbd_int_is_silent);
    tcase_add_test(tc, keyboard_reset_replies_bat_ok);
    tcase_add_test(tc, empty_read_leaves_obf_clear);
    tcase_add_test(tc, device_reset_restores_ctr);
    tcase_add_test(tc, save_load_keeps_ctr_and_queued_bytes_in_order);
    tcase_add_test(tc, save_load_keeps_a_command_waiting_for_its_data);
    tcase_add_test(tc, load_refuses_bad_blobs);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(i8042_suite)
