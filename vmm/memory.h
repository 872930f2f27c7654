/* Guest RAM: one memfd mapped MAP_SHARED (so a vhost-user backend can map it too),
 * cut into at most two regions around the 32-bit MMIO hole. This one table feeds
 * the KVM slots, the e820 map and, later, SET_MEM_TABLE and dirty logging. */
#ifndef VMM_MEMORY_H
#define VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2
#define GUEST_MEM_MIN_SIZE (32ULL << 20)

struct guest_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t fd_offset; /* offset of this region in the memfd */
    uint8_t *hva;
};

struct guest_memory {
    int fd;
    uint8_t *base; /* the whole memfd, mapped once */
    uint64_t size;
    bool hugepages;
    int nregions;
    struct guest_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Splits `size` bytes of RAM around the hole. Pure: unit-tested. Returns the count. */
int guest_memory_layout(uint64_t size, struct guest_region regions[GUEST_MEM_MAX_REGIONS]);

/* Creates and maps the memfd; logs and returns -errno on failure. */
int guest_memory_create(struct guest_memory *mem, uint64_t size, bool hugepages);
void guest_memory_destroy(struct guest_memory *mem);

/* Gives every page back to the host (a reboot starts from zeroed RAM); every
 * mapping of the memfd, the backend's included, then reads zeros. */
int guest_memory_clear(struct guest_memory *mem);

/* Host pointer to [gpa, gpa+len), or NULL when it is not all inside one region. */
void *guest_memory_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len);

/* End of the RAM region that starts at 0 (the top of "low memory"). */
uint64_t guest_memory_low_end(const struct guest_memory *mem);

#endif
