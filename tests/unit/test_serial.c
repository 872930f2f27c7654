/* The 16550A model driven through its register interface, as the Linux 8250 driver does. */
#include "../../common/tail.h"
#include "../../devices/serial.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    RBR = 0,
    THR = 0,
    DLL = 0,
    IER = 1,
    DLM = 1,
    IIR = 2,
    FCR = 2,
    LCR = 3,
    MCR = 4,
    LSR = 5,
    MSR = 6,
    SCR = 7
};

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

/* Every level change the device drives on its interrupt line. */
struct irq_log {
    int levels[64];
    int count;
    uint32_t irq;
};

static struct irq_log irqs;
static struct serial s;
static int pipe_fds[2];
static int rx_space_calls;

static void record_irq(void *opaque, uint32_t irq, int level)
{
    struct irq_log *log = opaque;

    ck_assert_int_lt(log->count, 64);
    log->irq = irq;
    log->levels[log->count++] = level;
}

static int irq_level(void)
{
    return irqs.count ? irqs.levels[irqs.count - 1] : 0;
}

static void on_rx_space(void *opaque)
{
    ck_assert_ptr_eq(opaque, &s);
    rx_space_calls++;
}

static void setup(void)
{
    struct irq_line line = {.set = record_irq, .opaque = &irqs, .irq = 4};

    memset(&irqs, 0, sizeof(irqs));
    rx_space_calls = 0;
    ck_assert_int_eq(pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC), 0);
    ck_assert_int_eq(serial_init(&s, "serial0", &line, pipe_fds[1]), 0);
    s.rx_space = on_rx_space;
    s.rx_space_opaque = &s;
}

static struct serial s2;
static bool s2_live;
static struct state_buf st;

static void teardown(void)
{
    if (s2_live)
        serial_destroy(&s2);
    s2_live = false;
    state_buf_free(&st);
    serial_destroy(&s);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

static uint8_t rd(unsigned reg)
{
    uint8_t v = 0;

    s.dev.ops->read(&s.dev, reg, &v, 1);
    return v;
}

static void wr(unsigned reg, uint8_t v)
{
    s.dev.ops->write(&s.dev, reg, &v, 1);
}

/* Bytes the UART transmitted so far; -1 when none. */
static ssize_t drain_pipe(uint8_t *out, size_t len)
{
    return read(pipe_fds[0], out, len);
}

START_TEST(reset_state)
{
    ck_assert_uint_eq(rd(LSR), LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(IIR), IIR_NO_INT);
    ck_assert_uint_eq(rd(IER), 0);
    ck_assert_int_eq(irqs.count, 0);
}
END_TEST

START_TEST(thr_write_reaches_out_fd)
{
    uint8_t got[8];

    wr(THR, 'h');
    wr(THR, 'i');
    ck_assert_int_eq(drain_pipe(got, sizeof(got)), 2);
    ck_assert_mem_eq(got, "hi", 2);
    ck_assert_uint_eq(rd(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
}
END_TEST

START_TEST(thri_enable_raises_line)
{
    wr(IER, IER_THRI);
    ck_assert_int_eq(irqs.count, 1);
    ck_assert_int_eq(irqs.levels[0], 1);
    ck_assert_uint_eq(irqs.irq, 4);
    ck_assert_uint_eq(rd(IIR), IIR_THRI);
}
END_TEST

START_TEST(iir_read_acks_thri)
{
    wr(IER, IER_THRI);
    ck_assert_uint_eq(rd(IIR), IIR_THRI);
    ck_assert_int_eq(irq_level(), 0);
    ck_assert_uint_eq(rd(IIR), IIR_NO_INT);
}
END_TEST

START_TEST(thri_iir_shows_fifo_bits)
{
    wr(FCR, 0x01);
    wr(IER, IER_THRI);
    ck_assert_uint_eq(rd(IIR), IIR_FIFO | IIR_THRI);
    ck_assert_uint_eq(rd(IIR), IIR_FIFO | IIR_NO_INT);
}
END_TEST

START_TEST(thr_write_with_thri_interrupts_again)
{
    wr(IER, IER_THRI);
    rd(IIR);
    ck_assert_int_eq(irq_level(), 0);
    wr(THR, 'x');
    ck_assert_int_eq(irq_level(), 1);
    ck_assert_uint_eq(rd(IIR), IIR_THRI);
}
END_TEST

/* serial8250_startup's UART_BUG_THRE probe: a working UART interrupts both times. */
START_TEST(linux_thre_probe_sees_interrupt_twice)
{
    uint8_t iir1, iir2;

    wr(IER, IER_THRI);
    rd(LSR);
    iir1 = rd(IIR);
    wr(IER, 0);
    wr(IER, IER_THRI);
    iir2 = rd(IIR);
    wr(IER, 0);
    ck_assert_uint_eq(iir1 & IIR_NO_INT, 0);
    ck_assert_uint_eq(iir2 & IIR_NO_INT, 0);
    ck_assert_uint_eq(iir1 & 0x0f, IIR_THRI);
    ck_assert_uint_eq(iir2 & 0x0f, IIR_THRI);
}
END_TEST

START_TEST(receive_sets_data_ready)
{
    ck_assert_uint_eq(serial_receive(&s, (const uint8_t *)"ab", 2), 2);
    ck_assert_uint_eq(rd(LSR) & LSR_DR, LSR_DR);
    ck_assert_int_eq(irqs.count, 0); /* RDI not enabled */
}
END_TEST

START_TEST(receive_with_rdi_raises_line)
{
    wr(IER, IER_RDI);
    ck_assert_int_eq(irqs.count, 0);
    serial_receive(&s, (const uint8_t *)"a", 1);
    ck_assert_int_eq(irq_level(), 1);
    ck_assert_uint_eq(rd(IIR), IIR_RDI);
}
END_TEST

START_TEST(rbr_returns_bytes_in_order_then_drops_line)
{
    wr(IER, IER_RDI);
    serial_receive(&s, (const uint8_t *)"xyz", 3);
    ck_assert_uint_eq(rd(RBR), 'x');
    ck_assert_uint_eq(rd(RBR), 'y');
    ck_assert_int_eq(irq_level(), 1);
    ck_assert_int_eq(rx_space_calls, 0);
    ck_assert_uint_eq(rd(RBR), 'z');
    ck_assert_int_eq(irq_level(), 0);
    ck_assert_uint_eq(rd(LSR) & LSR_DR, 0);
    ck_assert_uint_eq(rd(IIR), IIR_NO_INT);
    ck_assert_int_eq(rx_space_calls, 1);
}
END_TEST

START_TEST(receive_stops_at_fifo_capacity)
{
    static uint8_t data[SERIAL_RX_FIFO_SIZE + 10];

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    ck_assert_uint_eq(serial_receive(&s, data, 10), 10);
    ck_assert_uint_eq(serial_rx_space(&s), SERIAL_RX_FIFO_SIZE - 10);
    ck_assert_uint_eq(serial_receive(&s, data + 10, sizeof(data) - 10), SERIAL_RX_FIFO_SIZE - 10);
    ck_assert_uint_eq(serial_rx_space(&s), 0);
    ck_assert_uint_eq(serial_receive(&s, data, 1), 0);
    for (size_t i = 0; i < SERIAL_RX_FIFO_SIZE; i++)
        ck_assert_uint_eq(rd(RBR), (uint8_t)i);
    ck_assert_uint_eq(serial_rx_space(&s), SERIAL_RX_FIFO_SIZE);
}
END_TEST

START_TEST(dlab_reaches_divisor_not_thr)
{
    uint8_t got[4];

    wr(LCR, 0x83);
    wr(DLL, 0x01);
    wr(DLM, 0x02);
    ck_assert_uint_eq(rd(DLL), 0x01);
    ck_assert_uint_eq(rd(DLM), 0x02);
    wr(LCR, 0x03);
    ck_assert_int_eq(drain_pipe(got, sizeof(got)), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_uint_eq(rd(IER), 0);
    ck_assert_uint_eq(rd(LCR), 0x03);
}
END_TEST

START_TEST(scratch_round_trips)
{
    wr(SCR, 0xa5);
    ck_assert_uint_eq(rd(SCR), 0xa5);
    wr(SCR, 0x5a);
    ck_assert_uint_eq(rd(SCR), 0x5a);
}
END_TEST

START_TEST(loopback_reflects_modem_lines)
{
    wr(MCR, 0x10 | 0x0a); /* LOOP, RTS, OUT2 */
    ck_assert_uint_eq(rd(MSR) & 0xf0, 0x90);
    wr(MCR, 0x10);
    ck_assert_uint_eq(rd(MSR) & 0xf0, 0x00);
    wr(MCR, 0x00);
    ck_assert_uint_eq(rd(MSR) & 0xf0, 0xb0); /* DCD, DSR, CTS of a connected line */
}
END_TEST

START_TEST(loopback_thr_comes_back_on_rbr)
{
    uint8_t got[4];

    wr(MCR, 0x10 | 0x0a);
    wr(THR, 'L');
    ck_assert_uint_eq(rd(LSR) & LSR_DR, LSR_DR);
    ck_assert_uint_eq(rd(RBR), 'L');
    ck_assert_int_eq(drain_pipe(got, sizeof(got)), -1);
}
END_TEST

/* What the guest transmits is kept for --timeout's report; loopback bytes are not. */
START_TEST(tx_tail_keeps_transmitted_bytes_only)
{
    static struct tail tail;
    char lines[64];

    tail_init(&tail);
    s.tx_tail = &tail;
    for (const char *p = "up\r\n"; *p; p++)
        wr(THR, (uint8_t)*p);
    wr(MCR, 0x10);
    wr(THR, 'L');
    wr(MCR, 0x00);
    wr(THR, 'z');
    ck_assert_uint_eq(tail_last_lines(&tail, 5, lines, sizeof(lines)), 2);
    ck_assert_str_eq(lines, "up\nz\n");
}
END_TEST

START_TEST(fcr_enable_shows_in_iir)
{
    wr(FCR, 0x01);
    ck_assert_uint_eq(rd(IIR), 0xc1);
    wr(FCR, 0x00);
    ck_assert_uint_eq(rd(IIR), 0x01);
}
END_TEST

START_TEST(fcr_clear_rcvr_empties_fifo)
{
    wr(FCR, 0x01);
    serial_receive(&s, (const uint8_t *)"abc", 3);
    wr(FCR, 0x03);
    ck_assert_uint_eq(rd(LSR) & LSR_DR, 0);
    ck_assert_uint_eq(serial_rx_space(&s), SERIAL_RX_FIFO_SIZE);
}
END_TEST

START_TEST(wide_read_returns_register_in_low_byte)
{
    uint8_t v[2] = {0, 0};

    wr(SCR, 0x42);
    s.dev.ops->read(&s.dev, SCR, v, 2);
    ck_assert_uint_eq(v[0], 0x42);
    ck_assert_uint_eq(v[1], 0xff);
}
END_TEST

/* ---- save / load ---- */

static struct irq_log irqs2;

static void save_state(void)
{
    ck_assert_int_eq(s.dev.ops->save(&s.dev, &st), 0);
    ck_assert_uint_gt(st.len, 0);
}

static void init_second(void)
{
    struct irq_line line = {.set = record_irq, .opaque = &irqs2, .irq = 4};

    memset(&irqs2, 0, sizeof(irqs2));
    ck_assert_int_eq(serial_init(&s2, "serial1", &line, -1), 0);
    s2_live = true;
}

static uint8_t rd2(unsigned reg)
{
    uint8_t v = 0;

    s2.dev.ops->read(&s2.dev, reg, &v, 1);
    return v;
}

START_TEST(save_load_round_trips)
{
    wr(LCR, 0x80);
    wr(DLL, 0x01);
    wr(DLM, 0x00);
    wr(LCR, 0x03);
    wr(SCR, 0x77);
    wr(MCR, 0x0b);
    wr(IER, IER_RDI);
    serial_receive(&s, (const uint8_t *)"qrs", 3);
    save_state();

    init_second();
    ck_assert_int_eq(s2.dev.ops->load(&s2.dev, st.data, st.len), 0);
    ck_assert_int_eq(irqs2.count, 1); /* pending receive data re-raises the line */
    ck_assert_int_eq(irqs2.levels[0], 1);
    ck_assert_uint_eq(rd2(LCR), 0x03);
    ck_assert_uint_eq(rd2(SCR), 0x77);
    ck_assert_uint_eq(rd2(MCR), 0x0b);
    ck_assert_uint_eq(rd2(IER), IER_RDI);
    ck_assert_uint_eq(rd2(LSR) & LSR_DR, LSR_DR);
    ck_assert_uint_eq(rd2(RBR), 'q');
    ck_assert_uint_eq(rd2(RBR), 'r');
    ck_assert_uint_eq(rd2(RBR), 's');
    ck_assert_uint_eq(rd2(LSR) & LSR_DR, 0);
    s2.dev.ops->write(&s2.dev, LCR, (const uint8_t[]){0x80}, 1);
    ck_assert_uint_eq(rd2(DLL), 0x01);
    ck_assert_uint_eq(rd2(DLM), 0x00);
}
END_TEST

START_TEST(load_rejects_short_buffer)
{
    serial_receive(&s, (const uint8_t *)"qrs", 3);
    save_state();
    init_second();
    ck_assert_int_eq(s2.dev.ops->load(&s2.dev, st.data, 4), -EINVAL);
    ck_assert_int_eq(s2.dev.ops->load(&s2.dev, st.data, st.len - 1), -EINVAL);
    ck_assert_int_eq(s2.dev.ops->load(&s2.dev, st.data, 0), -EINVAL);
    ck_assert_uint_eq(serial_rx_space(&s2), SERIAL_RX_FIFO_SIZE);
}
END_TEST

START_TEST(load_rejects_garbled_buffer)
{
    uint8_t junk[64];

    save_state();
    init_second();
    ck_assert_uint_le(st.len, sizeof(junk));
    memset(junk, 0xff, sizeof(junk)); /* a receive count far past the FIFO size */
    ck_assert_int_eq(s2.dev.ops->load(&s2.dev, junk, st.len), -EINVAL);
    ck_assert_int_eq(state_buf_put(&st, "x", 1), 0); /* a trailing byte nobody counted */
    ck_assert_int_eq(s2.dev.ops->load(&s2.dev, st.data, st.len), -EINVAL);
    ck_assert_uint_eq(serial_rx_space(&s2), SERIAL_RX_FIFO_SIZE);
}
END_TEST

/* Found by fuzz_device_state: a state no guest can reach (FCR bits its write mask drops,
 * LSR without THRE, which would strand a driver waiting to transmit) was loaded. */
START_TEST(load_rejects_states_no_guest_reaches)
{
    static const struct {
        unsigned offset;
        uint8_t value;
    } bad[] = {{3, 0x3e}, {6, 0x01}, {6, 0x7e}, {7, 0xb1}, {9, 2}};

    save_state();
    init_second();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t copy[64];

        ck_assert_uint_le(st.len, sizeof(copy));
        memcpy(copy, st.data, st.len);
        copy[bad[i].offset] = bad[i].value; /* fcr, lsr, lsr, msr, thr_ipending */
        ck_assert_int_eq(s2.dev.ops->load(&s2.dev, copy, st.len), -EINVAL);
    }
    ck_assert_int_eq(s2.dev.ops->load(&s2.dev, st.data, st.len), 0);
}
END_TEST

static Suite *serial_suite(void)
{
    Suite *su = suite_create("serial");
    TCase *regs = tcase_create("registers");
    TCase *rx = tcase_create("receive");
    TCase *state = tcase_create("state");

    tcase_add_checked_fixture(regs, setup, teardown);
    tcase_add_test(regs, reset_state);
    tcase_add_test(regs, thr_write_reaches_out_fd);
    tcase_add_test(regs, thri_enable_raises_line);
    tcase_add_test(regs, iir_read_acks_thri);
    tcase_add_test(regs, thri_iir_shows_fifo_bits);
    tcase_add_test(regs, thr_write_with_thri_interrupts_again);
    tcase_add_test(regs, linux_thre_probe_sees_interrupt_twice);
    tcase_add_test(regs, dlab_reaches_divisor_not_thr);
    tcase_add_test(regs, scratch_round_trips);
    tcase_add_test(regs, loopback_reflects_modem_lines);
    tcase_add_test(regs, loopback_thr_comes_back_on_rbr);
    tcase_add_test(regs, tx_tail_keeps_transmitted_bytes_only);
    tcase_add_test(regs, fcr_enable_shows_in_iir);
    tcase_add_test(regs, fcr_clear_rcvr_empties_fifo);
    tcase_add_test(regs, wide_read_returns_register_in_low_byte);
    suite_add_tcase(su, regs);

    tcase_add_checked_fixture(rx, setup, teardown);
    tcase_add_test(rx, receive_sets_data_ready);
    tcase_add_test(rx, receive_with_rdi_raises_line);
    tcase_add_test(rx, rbr_returns_bytes_in_order_then_drops_line);
    tcase_add_test(rx, receive_stops_at_fifo_capacity);
    suite_add_tcase(su, rx);

    tcase_add_checked_fixture(state, setup, teardown);
    tcase_add_test(state, save_load_round_trips);
    tcase_add_test(state, load_rejects_short_buffer);
    tcase_add_test(state, load_rejects_garbled_buffer);
    tcase_add_test(state, load_rejects_states_no_guest_reaches);
    suite_add_tcase(su, state);
    return su;
}

CHECK_MAIN(serial_suite)
