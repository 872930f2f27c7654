/* A fake guest RAM for device tests and fuzzers: one buffer at a guest-physical base,
 * seen by devices through a guest_mem_access bounds-checked like vmm's memory map, and
 * written by the test playing the driver: little-endian values and split rings
 * (descriptors, the avail ring, the used ring). Shared (a memfd) when a vhost-user
 * backend must map it. */
#ifndef VMM_TESTS_GUEST_MEM_H
#define VMM_TESTS_GUEST_MEM_H

#include "../../devices/device.h"

#include <stdbool.h>
#include <stdint.h>

struct vhost_user_mem_region;

struct guest_mem {
    uint8_t *buf; /* the host view of [base, base + size) */
    uint64_t base, size;
    int fd; /* the memfd, or -1; a test may put any fd here for SET_MEM_TABLE */
    bool mmapped;
    struct guest_mem_access access; /* what the device under test gets */
};

/* Zeroed RAM from calloc (fd -1), or a shared memfd mapping. */
void guest_mem_init(struct guest_mem *m, uint64_t base, uint64_t size);
void guest_mem_init_shared(struct guest_mem *m, uint64_t base, uint64_t size);
void guest_mem_destroy(struct guest_mem *m);
void guest_mem_clear(struct guest_mem *m);

/* The host address of [gpa, gpa + len), which must be RAM (else the test fails). */
uint8_t *guest_mem_host(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* The one region a backend gets in SET_MEM_TABLE. */
void guest_mem_region(const struct guest_mem *m, struct vhost_user_mem_region *r);

void guest_put8(const struct guest_mem *m, uint64_t gpa, uint8_t v);
void guest_put16(const struct guest_mem *m, uint64_t gpa, uint16_t v);
void guest_put32(const struct guest_mem *m, uint64_t gpa, uint32_t v);
void guest_put64(const struct guest_mem *m, uint64_t gpa, uint64_t v);
uint8_t guest_get8(const struct guest_mem *m, uint64_t gpa);
uint16_t guest_get16(const struct guest_mem *m, uint64_t gpa);
uint32_t guest_get32(const struct guest_mem *m, uint64_t gpa);
uint64_t guest_get64(const struct guest_mem *m, uint64_t gpa);
void guest_write(const struct guest_mem *m, uint64_t gpa, const void *data, uint64_t len);

/* ---- split virtqueues as a driver writes them (virtio 1.2, 2.7) ---- */

struct split_ring {
    const struct guest_mem *mem;
    uint64_t desc, avail, used; /* guest-physical */
    uint16_t size;
};

/* Descriptor i of the table at table_gpa (a ring's, or an indirect table). */
void split_desc_put(const struct guest_mem *m, uint64_t table_gpa, unsigned i, uint64_t addr,
                    uint32_t len, uint16_t flags, uint16_t next);
/* The driver makes head available: the next avail entry, then the index. */
void split_ring_offer(const struct split_ring *r, uint16_t head);
uint16_t split_ring_avail_idx(const struct split_ring *r);
uint16_t split_ring_used_idx(const struct split_ring *r);
/* The used element at position pos (modulo the size). */
void split_ring_used_elem(const struct split_ring *r, uint16_t pos, uint32_t *id, uint32_t *len);
/* used_event (after the avail ring) and avail_event (after the used ring). */
uint64_t split_ring_used_event(const struct split_ring *r);
uint64_t split_ring_avail_event(const struct split_ring *r);

#endif
