#include "i8042.h"

#include "../common/log.h"

#include <errno.h>
#include <string.h>

#define STATUS_OBF 0x01
#define STATUS_SYS 0x04
#define STATUS_CMD 0x08
#define STATUS_UNLOCKED 0x10 /* keyboard not inhibited by the keylock */

#define CTR_KBD_INT 0x01
#define CTR_SYS 0x04
#define CTR_KBD_DISABLE 0x10
#define CTR_AUX_DISABLE 0x20
#define CTR_XLATE 0x40

#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE 0xa8
#define CMD_AUX_TEST 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST 0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_READ_OUTPORT 0xd0
#define CMD_WRITE_OUTPORT 0xd1
#define CMD_PULSE_RESET 0xfe

#define OUTPORT_RESET_N 0x01 /* the CPU is held in reset while this bit is 0 */

#define KBD_ACK 0xfa
#define KBD_CMD_RESET 0xff
#define KBD_CMD_GET_ID 0xf2
#define KBD_CMD_ECHO 0xee
#define KBD_BAT_OK 0xaa

static struct i8042 *from_data(struct device *dev)
{
    return (struct i8042 *)((char *)dev - offsetof(struct i8042, data_dev));
}

static struct i8042 *from_cmd(struct device *dev)
{
    return (struct i8042 *)((char *)dev - offsetof(struct i8042, cmd_dev));
}

static void outq_push(struct i8042 *c, uint8_t byte)
{
    if (c->out_count < I8042_OUTQ_SIZE) {
        c->outq[(c->out_head + c->out_count) % I8042_OUTQ_SIZE] = byte;
        c->out_count++;
    }
}

/* A full output buffer raises IRQ 1 (an ISA edge) when the guest enabled it. */
static void kbd_pulse_irq(struct i8042 *c)
{
    if (c->out_count && (c->ctr & CTR_KBD_INT)) {
        irq_line_set(&c->kbd_irq, 1);
        irq_line_set(&c->kbd_irq, 0);
    }
}

static void kbd_reply(struct i8042 *c, const uint8_t *bytes, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        outq_push(c, bytes[i]);
    kbd_pulse_irq(c);
}

static void kbd_command(struct i8042 *c, uint8_t cmd)
{
    static const uint8_t reset_reply[] = {KBD_ACK, KBD_BAT_OK};
    static const uint8_t id_reply[] = {KBD_ACK, 0xab, 0x83};
    static const uint8_t ack = KBD_ACK, echo = KBD_CMD_ECHO;

    switch (cmd) {
    case KBD_CMD_RESET:
        kbd_reply(c, reset_reply, sizeof(reset_reply));
        break;
    case KBD_CMD_GET_ID:
        kbd_reply(c, id_reply, sizeof(id_reply));
        break;
    case KBD_CMD_ECHO:
        kbd_reply(c, &echo, 1);
        break;
    default: /* LEDs, rates, scan sets: acknowledged and ignored */
        kbd_reply(c, &ack, 1);
        break;
    }
}

/* Returns true when the guest asked for a CPU reset. */
static bool i8042_data_write(struct i8042 *c, uint8_t val)
{
    uint8_t cmd = c->pending_cmd;

    c->pending_cmd = 0;
    switch (cmd) {
    case CMD_WRITE_CTR:
        c->ctr = val;
        return false;
    case CMD_WRITE_OUTPORT:
        return !(val & OUTPORT_RESET_N);
    default:
        kbd_command(c, val);
        return false;
    }
}

static bool i8042_command(struct i8042 *c, uint8_t cmd)
{
    switch (cmd) {
    case CMD_READ_CTR:
        outq_push(c, c->ctr);
        break;
    case CMD_WRITE_CTR:
    case CMD_WRITE_OUTPORT:
        c->pending_cmd = cmd;
        break;
    case CMD_READ_OUTPORT:
        outq_push(c, OUTPORT_RESET_N);
        break;
    case CMD_SELF_TEST:
        outq_push(c, 0x55);
        break;
    case CMD_KBD_TEST:
        outq_push(c, 0x00);
        break;
    case CMD_AUX_TEST: /* no mouse: report a stuck clock line */
        outq_push(c, 0x01);
        break;
    case CMD_KBD_DISABLE:
        c->ctr |= CTR_KBD_DISABLE;
        break;
    case CMD_KBD_ENABLE:
        c->ctr &= ~CTR_KBD_DISABLE;
        break;
    case CMD_AUX_DISABLE:
    case CMD_AUX_ENABLE: /* the aux port stays disabled: there is none */
        c->ctr |= CTR_AUX_DISABLE;
        break;
    case CMD_PULSE_RESET:
        return true;
    default:
        break;
    }
    return false;
}

static void i8042_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len,
                       bool is_cmd_port)
{
    struct i8042 *c = is_cmd_port ? from_cmd(dev) : from_data(dev);

    (void)offset;
    memset(data, 0xff, len);
    pthread_mutex_lock(&c->lock);
    if (is_cmd_port) {
        data[0] = STATUS_SYS | STATUS_UNLOCKED | (c->pending_cmd ? STATUS_CMD : 0) |
                  (c->out_count ? STATUS_OBF : 0);
    } else if (c->out_count) {
        data[0] = c->outq[c->out_head];
        c->out_head = (c->out_head + 1) % I8042_OUTQ_SIZE;
        c->out_count--;
        /* Linux reads one byte per interrupt: the next queued byte needs its own. */
        kbd_pulse_irq(c);
    } else {
        data[0] = 0;
    }
    pthread_mutex_unlock(&c->lock);
}

static void i8042_write(struct i8042 *c, uint8_t val, bool is_cmd_port)
{
    bool reset;

    pthread_mutex_lock(&c->lock);
    reset = is_cmd_port ? i8042_command(c, val) : i8042_data_write(c, val);
    pthread_mutex_unlock(&c->lock);
    if (reset && c->reset_cpu)
        c->reset_cpu(c->reset_opaque);
}

static void i8042_data_read(struct device *dev, uint64_t off, uint8_t *data, uint32_t len)
{
    i8042_read(dev, off, data, len, false);
}

static void i8042_cmd_read(struct device *dev, uint64_t off, uint8_t *data, uint32_t len)
{
    i8042_read(dev, off, data, len, true);
}

static void i8042_data_port_write(struct device *dev, uint64_t off, const uint8_t *data,
                                  uint32_t len)
{
    (void)off, (void)len;
    i8042_write(from_data(dev), data[0], false);
}

static void i8042_cmd_port_write(struct device *dev, uint64_t off, const uint8_t *data,
                                 uint32_t len)
{
    (void)off, (void)len;
    i8042_write(from_cmd(dev), data[0], true);
}

static void i8042_reset_state(struct i8042 *c)
{
    c->ctr = CTR_KBD_INT | CTR_SYS | CTR_AUX_DISABLE | CTR_XLATE;
    c->pending_cmd = 0;
    c->out_head = c->out_count = 0;
}

static void i8042_reset(struct device *dev)
{
    struct i8042 *c = from_cmd(dev);

    pthread_mutex_lock(&c->lock);
    i8042_reset_state(c);
    pthread_mutex_unlock(&c->lock);
}

/* The command byte, a command waiting for its data byte, then the output queue in
 * order. No interrupt is raised on load: an edge already sent is in the PIC's state. */
struct i8042_state {
    uint8_t ctr;
    uint8_t pending_cmd;
    uint8_t out_count;
} __attribute__((packed));

static int i8042_save(struct device *dev, struct state_buf *out)
{
    struct i8042 *c = from_cmd(dev);
    struct i8042_state st;
    int ret;

    pthread_mutex_lock(&c->lock);
    st = (struct i8042_state){c->ctr, c->pending_cmd, (uint8_t)c->out_count};
    ret = state_buf_put(out, &st, sizeof(st));
    for (unsigned i = 0; !ret && i < c->out_count; i++)
        ret = state_buf_put(out, &c->outq[(c->out_head + i) % I8042_OUTQ_SIZE], 1);
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static int i8042_load(struct device *dev, const uint8_t *data, size_t len)
{
    struct i8042 *c = from_cmd(dev);
    struct i8042_state st;

    if (len < sizeof(st)) {
        pr_err("i8042: saved state has %zu bytes, expected at least %zu", len, sizeof(st));
        return -EINVAL;
    }
    memcpy(&st, data, sizeof(st));
    if (st.out_count > I8042_OUTQ_SIZE || len != sizeof(st) + st.out_count) {
        pr_err("i8042: saved state has %zu bytes for %u queued byte(s)", len, st.out_count);
        return -EINVAL;
    }
    if (st.pending_cmd && st.pending_cmd != CMD_WRITE_CTR && st.pending_cmd != CMD_WRITE_OUTPORT) {
        pr_err("i8042: saved pending command 0x%02x takes no data byte", st.pending_cmd);
        return -EINVAL;
    }
    pthread_mutex_lock(&c->lock);
    c->ctr = st.ctr;
    c->pending_cmd = st.pending_cmd;
    c->out_head = 0;
    c->out_count = st.out_count;
    memcpy(c->outq, data + sizeof(st), st.out_count);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static const struct device_ops i8042_data_ops = {
    .read = i8042_data_read,
    .write = i8042_data_port_write,
};

static const struct device_ops i8042_cmd_ops = {
    .read = i8042_cmd_read,
    .write = i8042_cmd_port_write,
    .reset = i8042_reset,
    .save = i8042_save,
    .load = i8042_load,
};

int i8042_init(struct i8042 *c, const struct irq_line *kbd_irq, void (*reset_cpu)(void *),
               void *opaque)
{
    int ret;

    memset(c, 0, sizeof(*c));
    ret = pthread_mutex_init(&c->lock, NULL);
    if (ret)
        return -ret;
    c->data_dev = (struct device){.id = "i8042", .ops = &i8042_data_ops};
    c->cmd_dev = (struct device){.id = "i8042", .ops = &i8042_cmd_ops};
    c->kbd_irq = *kbd_irq;
    c->reset_cpu = reset_cpu;
    c->reset_opaque = opaque;
    i8042_reset_state(c);
    return 0;
}

void i8042_destroy(struct i8042 *c)
{
    pthread_mutex_destroy(&c->lock);
}
