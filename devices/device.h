/* A device model: the address ranges it claims are registered on a bus, and the
 * bus calls it through this ops table. save/load/pause/resume serve migration. */
#ifndef VMM_DEVICES_DEVICE_H
#define VMM_DEVICES_DEVICE_H

#include "../common/state_buf.h"

#include <stddef.h>
#include <stdint.h>

struct device;

struct device_ops {
    /* offset is relative to the range's base; len is 1, 2, 4 or 8. */
    void (*read)(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len);
    void (*write)(struct device *dev, uint64_t offset, const uint8_t *data, uint32_t len);
    void (*reset)(struct device *dev);
    int (*save)(struct device *dev, struct state_buf *out);
    int (*load)(struct device *dev, const uint8_t *data, size_t len);
    int (*pause)(struct device *dev);
    int (*resume)(struct device *dev);
    /* Dirty logging, for a device that writes guest RAM behind vmm's back (a
     * vhost-user backend); NULL for the others. check: before start, whether the
     * device can log; after it, whether its log is still whole (a backend that came
     * back unable to log left a gap): 0, or -ENOTSUP with the reason in why. start: from its return
     * on, the device's writes land in log_fd (a shared memfd of log_size bytes, one bit per 4 KiB
     * guest-physical page). stop: logging off again. Called with no lock held, from the migration.
     */
    int (*log_check)(struct device *dev, char *why, size_t len);
    int (*log_start)(struct device *dev, int log_fd, uint64_t log_size);
    int (*log_stop)(struct device *dev);
};

struct device {
    const char *id; /* "serial0", "net0": the prefix of the device's log lines */
    const struct device_ops *ops;
};

/* An interrupt line as the platform wires it; devices never see KVM. */
struct irq_line {
    void (*set)(void *opaque, uint32_t irq, int level);
    void *opaque;
    uint32_t irq;
};

/* Guest memory as devices see it: a host pointer to [gpa, gpa+len) or NULL when
 * that range is not all RAM. Devices never see the memory map itself. */
struct guest_mem_access {
    void *(*ptr)(void *opaque, uint64_t gpa, uint64_t len);
    /* Optional: told of each write vmm itself makes into guest RAM (a host pointer
     * from ptr), which neither KVM's nor a backend's dirty log sees. */
    void (*written)(void *opaque, const void *hva, uint64_t len);
    void *opaque;
};

static inline void *guest_mem_ptr(const struct guest_mem_access *mem, uint64_t gpa, uint64_t len)
{
    return mem->ptr(mem->opaque, gpa, len);
}

static inline void guest_mem_written(const struct guest_mem_access *mem, const void *hva,
                                     uint64_t len)
{
    if (mem && mem->written)
        mem->written(mem->opaque, hva, len);
}

static inline void irq_line_set(const struct irq_line *line, int level)
{
    if (line->set)
        line->set(line->opaque, line->irq, level);
}

#endif
