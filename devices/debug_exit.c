#include "debug_exit.h"

#include <string.h>

int debug_exit_status(uint32_t value)
{
    return (int)((((uint64_t)value << 1) | 1) & 0xff);
}

static struct debug_exit *to_debug_exit(struct device *dev)
{
    return (struct debug_exit *)((char *)dev - offsetof(struct debug_exit, dev));
}

/* QEMU reads 0: the only way a guest can tell the device is there. */
static void debug_exit_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
    (void)dev, (void)offset;
    memset(data, 0, len);
}

/* Any offset in the range counts, as in QEMU; the value is little-endian. */
static void debug_exit_write(struct device *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct debug_exit *d = to_debug_exit(dev);
    uint32_t value = 0;

    (void)offset;
    for (uint32_t i = 0; i < len && i < sizeof(value); i++)
        value |= (uint32_t)data[i] << (8 * i);
    if (d->request_exit)
        d->request_exit(d->opaque, value, debug_exit_status(value));
}

static const struct device_ops debug_exit_ops = {
    .read = debug_exit_read,
    .write = debug_exit_write,
};

void debug_exit_init(struct debug_exit *d, void (*request_exit)(void *, uint32_t, int),
                     void *opaque)
{
    memset(d, 0, sizeof(*d));
    d->dev = (struct device){.id = "debug-exit", .ops = &debug_exit_ops};
    d->request_exit = request_exit;
    d->opaque = opaque;
}
