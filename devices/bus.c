#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bus_init(struct bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    return -pthread_rwlock_init(&bus->lock, NULL);
}

void bus_destroy(struct bus *bus)
{
    free(bus->ranges);
    pthread_rwlock_destroy(&bus->lock);
    bus->ranges = NULL;
    bus->count = bus->cap = 0;
}

/* Index of the first range whose end lies above addr. */
static size_t bus_lower_bound(const struct bus *bus, uint64_t addr)
{
    size_t lo = 0, hi = bus->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];

        if (r->base + r->size <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int bus_grow(struct bus *bus)
{
    size_t cap = bus->cap ? bus->cap * 2 : 8;
    struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));

    if (!r)
        return -ENOMEM;
    bus->ranges = r;
    bus->cap = cap;
    return 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t size, struct device *dev)
{
    size_t i;
    int ret = 0;

    if (!size || base + size < base)
        return -EINVAL;
    pthread_rwlock_wrlock(&bus->lock);
    i = bus_lower_bound(bus, base);
    if (i < bus->count && bus->ranges[i].base < base + size) {
        ret = -EEXIST;
        goto out;
    }
    if (bus->count == bus->cap && (ret = bus_grow(bus)))
        goto out;
    memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->count - i) * sizeof(bus->ranges[0]));
    bus->ranges[i] = (struct bus_range){.base = base, .size = size, .dev = dev};
    bus->count++;
out:
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

int bus_unregister(struct bus *bus, uint64_t base, struct device *dev)
{
    size_t i;
    int ret = -ENOENT;

    pthread_rwlock_wrlock(&bus->lock);
    i = bus_lower_bound(bus, base);
    if (i < bus->count && bus->ranges[i].base == base && bus->ranges[i].dev == dev) {
        memmove(&bus->ranges[i], &bus->ranges[i + 1],
                (bus->count - i - 1) * sizeof(bus->ranges[0]));
        bus->count--;
        ret = 0;
    }
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

/* Finds the range holding all of [addr, addr+len); the caller holds the lock. */
static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
    size_t i = bus_lower_bound(bus, addr);
    const struct bus_range *r;

    if (i >= bus->count)
        return NULL;
    r = &bus->ranges[i];
    if (addr < r->base || addr + len > r->base + r->size)
        return NULL;
    return r;
}

bool bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len)
{
    const struct bus_range *r;
    bool claimed = false;

    pthread_rwlock_rdlock(&bus->lock);
    r = bus_find(bus, addr, len);
    if (r && r->dev->ops->read) {
        r->dev->ops->read(r->dev, addr - r->base, data, len);
        claimed = true;
    }
    pthread_rwlock_unlock(&bus->lock);
    if (!claimed)
        memset(data, 0xff, len);
    return claimed;
}

bool bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len)
{
    const struct bus_range *r;
    bool claimed = false;

    pthread_rwlock_rdlock(&bus->lock);
    r = bus_find(bus, addr, len);
    if (r && r->dev->ops->write) {
        r->dev->ops->write(r->dev, addr - r->base, data, len);
        claimed = true;
    }
    pthread_rwlock_unlock(&bus->lock);
    return claimed;
}
