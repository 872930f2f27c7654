/* QEMU's isa-debug-exit: the guest writes V to the port and vmm exits with
 * status (V << 1) | 1, so a guest (a CI job) decides vmm's exit status. */
#ifndef VMM_DEVICES_DEBUG_EXIT_H
#define VMM_DEVICES_DEBUG_EXIT_H

#include "device.h"

#include <stdint.h>

#define DEBUG_EXIT_DEFAULT_PORT 0xf4
/* QEMU's iosize=4: our bus hands a device only accesses that fit its range,
 * so 4 ports make 1-, 2- and 4-byte writes at the base port all land here. */
#define DEBUG_EXIT_NR_PORTS 4

struct debug_exit {
    struct device dev;
    /* status is what the process exits with: the low 8 bits of (value << 1) | 1. */
    void (*request_exit)(void *opaque, uint32_t value, int status);
    void *opaque;
};

void debug_exit_init(struct debug_exit *d, void (*request_exit)(void *, uint32_t, int),
                     void *opaque);

/* QEMU's rule, truncated to 8 bits as exit() is: odd, and only bits 0-6 of value
 * matter (0 and 0x80 both give 1). */
int debug_exit_status(uint32_t value);

#endif
