#include "serial.h"

#include "../common/log.h"
#include "../common/tail.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

enum {
    UART_RBR_THR = 0,
    UART_IER = 1,
    UART_IIR_FCR = 2,
    UART_LCR = 3,
    UART_MCR = 4,
    UART_LSR = 5,
    UART_MSR = 6,
    UART_SCR = 7,
};

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_CTI 0x0c
#define IIR_FIFO_ENABLED 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RCVR 0x02
#define FCR_TRIGGER_MASK 0xc0

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR 0x01
#define LSR_ERRORS 0x1e
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define MSR_DELTAS 0x0f

static struct serial *to_serial(struct device *dev)
{
    return (struct serial *)((char *)dev - offsetof(struct serial, dev));
}

static size_t rx_trigger_level(const struct serial *s)
{
    static const size_t levels[] = {1, 4, 8, 14};

    return levels[(s->fcr & FCR_TRIGGER_MASK) >> 6];
}

/* Interrupt identification in 16550 priority order. */
static uint8_t serial_pending_iir(const struct serial *s)
{
    if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRORS))
        return IIR_RLSI;
    if ((s->ier & IER_RDI) && s->rx_count) {
        /* Below the FIFO trigger level a real UART raises a character timeout
         * later; we raise it at once. */
        if ((s->fcr & FCR_ENABLE) && s->rx_count < rx_trigger_level(s))
            return IIR_CTI;
        return IIR_RDI;
    }
    if ((s->ier & IER_THRI) && s->thr_ipending)
        return IIR_THRI;
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NO_INT;
}

/* The line follows the pending state: each 0->1 change is an ISA edge. OUT2
 * gates the line on a PC, but Linux sets it, so we do not model the gate. */
static void serial_update_irq(struct serial *s)
{
    int level;

    s->iir = serial_pending_iir(s);
    level = s->iir != IIR_NO_INT;
    if (s->rx_count)
        s->lsr |= LSR_DR;
    else
        s->lsr &= ~LSR_DR;
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_line_set(&s->irq, level);
    }
}

/* MSR as MCR sets it: the lines looped back, or all up; never a delta bit. */
static uint8_t serial_modem_status(uint8_t mcr)
{
    uint8_t msr = 0;

    if (!(mcr & MCR_LOOP))
        return MSR_DCD | MSR_DSR | MSR_CTS;
    if (mcr & MCR_DTR)
        msr |= MSR_DSR;
    if (mcr & MCR_RTS)
        msr |= MSR_CTS;
    if (mcr & MCR_OUT1)
        msr |= MSR_RI;
    if (mcr & MCR_OUT2)
        msr |= MSR_DCD;
    return msr;
}

static size_t rx_push(struct serial *s, const uint8_t *data, size_t len)
{
    size_t n = 0;

    while (n < len && s->rx_count < SERIAL_RX_FIFO_SIZE) {
        s->rx_fifo[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO_SIZE] = data[n++];
        s->rx_count++;
    }
    return n;
}

static uint8_t rx_pop(struct serial *s)
{
    uint8_t c;

    if (!s->rx_count)
        return 0;
    c = s->rx_fifo[s->rx_head];
    s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO_SIZE;
    s->rx_count--;
    return c;
}

static void serial_output(struct serial *s, uint8_t c)
{
    while (write(s->out_fd, &c, 1) < 0) {
        if (errno != EINTR || (s->tx_abort && s->tx_abort(s->tx_abort_opaque)))
            return; /* a console that is gone or stalled loses the byte */
    }
}

static void serial_transmit(struct serial *s, uint8_t c)
{
    if (s->mcr & MCR_LOOP) {
        rx_push(s, &c, 1);
    } else {
        if (s->tx_tail)
            tail_append(s->tx_tail, &c, 1);
        if (s->out_fd >= 0)
            serial_output(s, c);
    }
    s->thr_ipending = true;
    s->lsr |= LSR_THRE | LSR_TEMT;
}

static void serial_write_fcr(struct serial *s, uint8_t val)
{
    if ((val ^ s->fcr) & FCR_ENABLE || (val & FCR_CLEAR_RCVR))
        s->rx_head = s->rx_count = 0;
    s->fcr = val & (FCR_ENABLE | FCR_TRIGGER_MASK);
}

static void serial_write_ier(struct serial *s, uint8_t val)
{
    uint8_t changed = (val ^ s->ier) & 0x0f;

    s->ier = val & 0x0f;
    /* Enabling THRI with an empty holding register interrupts at once. */
    if ((changed & IER_THRI) && (s->ier & IER_THRI) && (s->lsr & LSR_THRE))
        s->thr_ipending = true;
}

static void serial_write_reg(struct serial *s, unsigned reg, uint8_t val)
{
    bool dlab = s->lcr & LCR_DLAB;

    switch (reg) {
    case UART_RBR_THR:
        if (dlab)
            s->dll = val;
        else
            serial_transmit(s, val);
        break;
    case UART_IER:
        if (dlab)
            s->dlm = val;
        else
            serial_write_ier(s, val);
        break;
    case UART_IIR_FCR:
        serial_write_fcr(s, val);
        break;
    case UART_LCR:
        s->lcr = val;
        break;
    case UART_MCR:
        s->mcr = val & 0x1f;
        s->msr = serial_modem_status(s->mcr);
        break;
    case UART_SCR:
        s->scr = val;
        break;
    default: /* LSR and MSR are read-only */
        break;
    }
    serial_update_irq(s);
}

static uint8_t serial_read_iir(struct serial *s)
{
    uint8_t val = s->iir | ((s->fcr & FCR_ENABLE) ? IIR_FIFO_ENABLED : 0);

    /* Reading IIR acknowledges a transmitter-empty interrupt. */
    if (s->iir == IIR_THRI)
        s->thr_ipending = false;
    return val;
}

static uint8_t serial_read_reg(struct serial *s, unsigned reg, bool *drained)
{
    bool dlab = s->lcr & LCR_DLAB;
    uint8_t val = 0;

    switch (reg) {
    case UART_RBR_THR:
        if (dlab) {
            val = s->dll;
        } else {
            val = rx_pop(s);
            *drained = s->rx_count == 0;
        }
        break;
    case UART_IER:
        val = dlab ? s->dlm : s->ier;
        break;
    case UART_IIR_FCR:
        val = serial_read_iir(s);
        break;
    case UART_LCR:
        val = s->lcr;
        break;
    case UART_MCR:
        val = s->mcr;
        break;
    case UART_LSR:
        val = s->lsr;
        s->lsr &= ~LSR_ERRORS;
        break;
    case UART_MSR:
        val = s->msr;
        s->msr &= ~MSR_DELTAS;
        break;
    case UART_SCR:
        val = s->scr;
        break;
    }
    serial_update_irq(s);
    return val;
}

static void serial_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
    struct serial *s = to_serial(dev);
    bool drained = false;

    memset(data, 0xff, len);
    pthread_mutex_lock(&s->lock);
    data[0] = serial_read_reg(s, offset & 7, &drained);
    pthread_mutex_unlock(&s->lock);
    if (drained && s->rx_space)
        s->rx_space(s->rx_space_opaque);
}

static void serial_write(struct device *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct serial *s = to_serial(dev);

    (void)len;
    pthread_mutex_lock(&s->lock);
    serial_write_reg(s, offset & 7, data[0]);
    pthread_mutex_unlock(&s->lock);
}

static void serial_reset_locked(struct serial *s)
{
    s->dll = 0x0c; /* 9600 baud */
    s->dlm = s->ier = s->fcr = s->lcr = s->mcr = s->scr = 0;
    s->lsr = LSR_THRE | LSR_TEMT;
    s->msr = serial_modem_status(s->mcr);
    s->thr_ipending = false;
    s->rx_head = s->rx_count = 0;
    serial_update_irq(s);
}

static void serial_reset(struct device *dev)
{
    struct serial *s = to_serial(dev);
    bool dropped_input;

    pthread_mutex_lock(&s->lock);
    dropped_input = s->rx_count > 0;
    serial_reset_locked(s);
    pthread_mutex_unlock(&s->lock);
    /* The console stops reading while the FIFO is full: let it go on. */
    if (dropped_input && s->rx_space)
        s->rx_space(s->rx_space_opaque);
}

/* The register file, then the pending receive bytes in order. */
struct serial_state {
    uint8_t dll, dlm, ier, fcr, lcr, mcr, lsr, msr, scr, thr_ipending;
    uint32_t rx_count;
} __attribute__((packed));

static int serial_save(struct device *dev, struct state_buf *out)
{
    struct serial *s = to_serial(dev);
    struct serial_state st;
    int ret;

    pthread_mutex_lock(&s->lock);
    st = (struct serial_state){s->dll,
                               s->dlm,
                               s->ier,
                               s->fcr,
                               s->lcr,
                               s->mcr,
                               s->lsr,
                               s->msr,
                               s->scr,
                               s->thr_ipending,
                               (uint32_t)s->rx_count};
    ret = state_buf_put(out, &st, sizeof(st));
    for (size_t i = 0; !ret && i < s->rx_count; i++)
        ret = state_buf_put(out, &s->rx_fifo[(s->rx_head + i) % SERIAL_RX_FIFO_SIZE], 1);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* A state this UART can be in: IER, MCR and FCR as their write masks leave them, THRE
 * and TEMT set (a byte goes out at once), no line error and no MSR delta (neither is
 * ever raised), MSR following MCR. Anything else would strand a driver waiting for
 * THRE, or replay errors that never happened. */
static bool serial_state_reachable(const struct serial_state *st)
{
    return !(st->ier & ~0x0f) && !(st->mcr & ~0x1f) &&
           !(st->fcr & ~(FCR_ENABLE | FCR_TRIGGER_MASK)) &&
           (st->lsr & ~LSR_DR) == (LSR_THRE | LSR_TEMT) &&
           st->msr == serial_modem_status(st->mcr) && st->thr_ipending <= 1;
}

static int serial_load(struct device *dev, const uint8_t *data, size_t len)
{
    struct serial *s = to_serial(dev);
    struct serial_state st;

    if (len < sizeof(st)) {
        pr_err("%s: saved state has %zu bytes, expected at least %zu", dev->id, len, sizeof(st));
        return -EINVAL;
    }
    memcpy(&st, data, sizeof(st));
    if (st.rx_count > SERIAL_RX_FIFO_SIZE || len != sizeof(st) + st.rx_count) {
        pr_err("%s: saved state has %zu bytes for %u received byte(s)", dev->id, len, st.rx_count);
        return -EINVAL;
    }
    if (!serial_state_reachable(&st)) {
        pr_err("%s: saved state is corrupt (ier 0x%02x fcr 0x%02x mcr 0x%02x lsr 0x%02x msr "
               "0x%02x thr_ipending %u)",
               dev->id, st.ier, st.fcr, st.mcr, st.lsr, st.msr, st.thr_ipending);
        return -EINVAL;
    }
    pthread_mutex_lock(&s->lock);
    s->dll = st.dll, s->dlm = st.dlm, s->ier = st.ier, s->fcr = st.fcr;
    s->lcr = st.lcr, s->mcr = st.mcr, s->lsr = st.lsr, s->msr = st.msr, s->scr = st.scr;
    s->thr_ipending = st.thr_ipending;
    s->rx_head = s->rx_count = 0;
    rx_push(s, data + sizeof(st), st.rx_count);
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static const struct device_ops serial_ops = {
    .read = serial_read,
    .write = serial_write,
    .reset = serial_reset,
    .save = serial_save,
    .load = serial_load,
};

int serial_init(struct serial *s, const char *id, const struct irq_line *irq, int out_fd)
{
    int ret;

    memset(s, 0, sizeof(*s));
    ret = pthread_mutex_init(&s->lock, NULL);
    if (ret)
        return -ret;
    s->dev.id = id;
    s->dev.ops = &serial_ops;
    s->irq = *irq;
    s->out_fd = out_fd;
    serial_reset_locked(s);
    return 0;
}

void serial_destroy(struct serial *s)
{
    pthread_mutex_destroy(&s->lock);
}

size_t serial_receive(struct serial *s, const uint8_t *data, size_t len)
{
    size_t n;

    pthread_mutex_lock(&s->lock);
    n = rx_push(s, data, len);
    serial_update_irq(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t serial_rx_space(struct serial *s)
{
    size_t n;

    pthread_mutex_lock(&s->lock);
    n = SERIAL_RX_FIFO_SIZE - s->rx_count;
    pthread_mutex_unlock(&s->lock);
    return n;
}
