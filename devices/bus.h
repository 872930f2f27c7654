/* An address space (port I/O or MMIO) that devices register ranges on. The vCPU
 * loop dispatches every exit here and knows nothing of the devices. */
#ifndef VMM_DEVICES_BUS_H
#define VMM_DEVICES_BUS_H

#include "device.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct bus_range {
    uint64_t base;
    uint64_t size;
    struct device *dev;
};

struct bus {
    const char *name;
    pthread_rwlock_t lock;
    struct bus_range *ranges; /* sorted by base, never overlapping */
    size_t count;
    size_t cap;
};

int bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* Returns -EEXIST when the range overlaps one already registered. */
int bus_register(struct bus *bus, uint64_t base, uint64_t size, struct device *dev);
int bus_unregister(struct bus *bus, uint64_t base, struct device *dev);

/* An unclaimed read returns all ones and an unclaimed write is dropped; both
 * return false so the caller may trace them. Never fatal. */
bool bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len);
bool bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len);

#endif
