/* The PS/2 controller at 0x60/0x64: enough of it for Linux's i8042 driver to
 * probe quickly, and its CPU reset line, which is how a PC guest reboots. */
#ifndef VMM_DEVICES_I8042_H
#define VMM_DEVICES_I8042_H

#include "device.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64
#define I8042_KBD_IRQ 1
#define I8042_OUTQ_SIZE 16

struct i8042 {
    struct device data_dev; /* port 0x60 */
    struct device cmd_dev;  /* port 0x64 */
    pthread_mutex_t lock;
    struct irq_line kbd_irq;
    void (*reset_cpu)(void *opaque); /* the guest pulled the reset line */
    void *reset_opaque;

    uint8_t ctr;         /* controller configuration byte */
    uint8_t pending_cmd; /* a command waiting for its data byte, or 0 */
    uint8_t outq[I8042_OUTQ_SIZE];
    unsigned out_head, out_count;
};

int i8042_init(struct i8042 *c, const struct irq_line *kbd_irq, void (*reset_cpu)(void *),
               void *opaque);
void i8042_destroy(struct i8042 *c);

#endif
