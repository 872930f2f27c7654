/* The dirty page set of a migration: one bit per 4 KiB guest page of each RAM
 * region, merged from KVM's per-slot logs (vCPU writes) and the vhost-user
 * backends' shared log (device writes). Pure code: unit-tested without KVM. */
#ifndef VMM_DIRTY_H
#define VMM_DIRTY_H

#include "memory.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIRTY_PAGE_SHIFT 12
#define DIRTY_PAGE_SIZE (1ULL << DIRTY_PAGE_SHIFT)

struct dirty_region {
    uint64_t gpa;
    uint64_t npages;
    uint64_t *bits; /* npages bits in 64-bit words */
};

struct dirty_map {
    int nregions;
    struct dirty_region r[GUEST_MEM_MAX_REGIONS];
};

int dirty_map_init(struct dirty_map *map, const struct guest_memory *mem);
void dirty_map_free(struct dirty_map *map);
static inline size_t dirty_words(uint64_t npages)
{
    return (size_t)((npages + 63) / 64);
}
void dirty_map_set_all(struct dirty_map *map);
void dirty_map_clear(struct dirty_map *map);
uint64_t dirty_map_count(const struct dirty_map *map);
/* ORs a region's KVM log (same layout as the region's bits) into the map. */
void dirty_map_merge(struct dirty_map *map, int region, const uint64_t *bits);

/* The backends' log: one bit per guest-physical page from 0 up to the end of RAM,
 * in a sealed memfd the backends map (VHOST_USER_SET_LOG_BASE). */
struct vhost_log {
    int fd;
    uint64_t *words;
    size_t nwords;
    size_t mmap_size;
};

int vhost_log_create(struct vhost_log *log, uint64_t ram_end);
void vhost_log_destroy(struct vhost_log *log);
/* Moves the log into the map: each word is exchanged with zero atomically, since
 * the backends keep setting bits while vmm reads. Returns the pages it set. */
uint64_t vhost_log_harvest(struct vhost_log *log, struct dirty_map *map);

/* vmm's own writes into guest RAM (the NICs' control queue), which neither KVM's
 * log nor a backend's sees: a log of the same layout, kept by the migration and
 * handed to the machine while one runs (migration_host_ops.own_log). */
struct dirty_own_log {
    struct vhost_log log;
};

/* Creates the log on first use (NULL-safe to destroy: fd -1 first), zeroes it. */
int dirty_own_log_reset(struct dirty_own_log *l, uint64_t ram_end);
void dirty_own_log_destroy(struct dirty_own_log *l);
/* From any thread: [hva, hva + len), a host pointer into mem's RAM, was written.
 * NULL l (no migration): nothing to do. */
void dirty_own_log_mark(struct dirty_own_log *l, const struct guest_memory *mem, const void *hva,
                        uint64_t len);

/* The end of the highest RAM region: the logs' extent. */
uint64_t dirty_ram_end(const struct guest_memory *mem);

/* A 64-bit hash of one page, for --verify. */
uint64_t dirty_page_hash(const void *page);

/* Precopy: the downtime the remaining pages would cost at the measured rate, and
 * whether to stop now (the remainder fits the budget, or the rounds ran out). */
uint64_t precopy_expected_downtime_ms(uint64_t dirty_pages, double bytes_per_ms);
bool precopy_should_stop(uint64_t dirty_pages, double bytes_per_ms, uint64_t budget_ms,
                         unsigned round, unsigned max_rounds);

#endif
