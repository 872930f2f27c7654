#include "dirty.h"

#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int dirty_map_init(struct dirty_map *map, const struct guest_memory *mem)
{
    memset(map, 0, sizeof(*map));
    for (int i = 0; i < mem->nregions; i++) {
        struct dirty_region *r = &map->r[i];

        r->gpa = mem->regions[i].gpa;
        r->npages = mem->regions[i].size >> DIRTY_PAGE_SHIFT;
        r->bits = calloc(dirty_words(r->npages), sizeof(uint64_t));
        map->nregions = i + 1;
        if (!r->bits) {
            dirty_map_free(map);
            return -ENOMEM;
        }
    }
    return 0;
}

void dirty_map_free(struct dirty_map *map)
{
    for (int i = 0; i < map->nregions; i++)
        free(map->r[i].bits);
    memset(map, 0, sizeof(*map));
}

void dirty_map_set_all(struct dirty_map *map)
{
    for (int i = 0; i < map->nregions; i++) {
        struct dirty_region *r = &map->r[i];

        memset(r->bits, 0xff, dirty_words(r->npages) * sizeof(uint64_t));
        if (r->npages % 64) /* no bits past the region's end */
            r->bits[r->npages / 64] = (1ULL << (r->npages % 64)) - 1;
    }
}

void dirty_map_clear(struct dirty_map *map)
{
    for (int i = 0; i < map->nregions; i++)
        memset(map->r[i].bits, 0, dirty_words(map->r[i].npages) * sizeof(uint64_t));
}

uint64_t dirty_map_count(const struct dirty_map *map)
{
    uint64_t n = 0;

    for (int i = 0; i < map->nregions; i++)
        for (size_t w = 0; w < dirty_words(map->r[i].npages); w++)
            n += (uint64_t)__builtin_popcountll(map->r[i].bits[w]);
    return n;
}

void dirty_map_merge(struct dirty_map *map, int region, const uint64_t *bits)
{
    struct dirty_region *r = &map->r[region];

    for (size_t w = 0; w < dirty_words(r->npages); w++)
        r->bits[w] |= bits[w];
}

int vhost_log_create(struct vhost_log *log, uint64_t ram_end)
{
    uint64_t pages = (ram_end + DIRTY_PAGE_SIZE - 1) >> DIRTY_PAGE_SHIFT;
    long host_page = sysconf(_SC_PAGESIZE);
    int err;

    memset(log, 0, sizeof(*log));
    log->nwords = dirty_words(pages);
    log->mmap_size = (log->nwords * 8 + (size_t)host_page - 1) & ~((size_t)host_page - 1);
    log->fd = memfd_create("vmm-dirty-log", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (log->fd < 0 || ftruncate(log->fd, (off_t)log->mmap_size) < 0 ||
        fcntl(log->fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
        goto err;
    log->words = mmap(NULL, log->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, log->fd, 0);
    if (log->words == MAP_FAILED) {
        log->words = NULL;
        goto err;
    }
    return 0;
err:
    err = errno;
    pr_err("migration: cannot create the backends' dirty log (%zu bytes): %s", log->mmap_size,
           strerror(err));
    vhost_log_destroy(log);
    return -err;
}

void vhost_log_destroy(struct vhost_log *log)
{
    if (log->words)
        munmap(log->words, log->mmap_size);
    if (log->fd >= 0)
        close(log->fd);
    log->words = NULL;
    log->fd = -1;
}

/* Sets the map bits of the log word covering pages [first, first + 64). */
static uint64_t map_set_from_word(struct dirty_map *map, uint64_t first, uint64_t word)
{
    uint64_t n = 0;

    for (int i = 0; word && i < map->nregions; i++) {
        struct dirty_region *r = &map->r[i];
        uint64_t start = r->gpa >> DIRTY_PAGE_SHIFT;

        for (uint64_t w = word; w; w &= w - 1) {
            uint64_t page = first + (uint64_t)__builtin_ctzll(w);

            if (page >= start && page < start + r->npages) {
                uint64_t bit = page - start;

                if (!(r->bits[bit / 64] & (1ULL << (bit % 64))))
                    n++;
                r->bits[bit / 64] |= 1ULL << (bit % 64);
            }
        }
    }
    return n;
}

uint64_t vhost_log_harvest(struct vhost_log *log, struct dirty_map *map)
{
    uint64_t n = 0;

    for (size_t i = 0; i < log->nwords; i++) {
        uint64_t word;

        if (!__atomic_load_n(&log->words[i], __ATOMIC_RELAXED))
            continue;
        word = __atomic_exchange_n(&log->words[i], 0, __ATOMIC_SEQ_CST);
        n += map_set_from_word(map, (uint64_t)i * 64, word);
    }
    return n;
}

int dirty_own_log_reset(struct dirty_own_log *l, uint64_t ram_end)
{
    int ret = l->log.words ? 0 : vhost_log_create(&l->log, ram_end);

    if (!ret)
        memset(l->log.words, 0, l->log.nwords * sizeof(uint64_t));
    return ret;
}

void dirty_own_log_destroy(struct dirty_own_log *l)
{
    vhost_log_destroy(&l->log);
}

void dirty_own_log_mark(struct dirty_own_log *l, const struct guest_memory *mem, const void *hva,
                        uint64_t len)
{
    const uint8_t *p = hva;

    if (!l || !l->log.words || !len)
        return;
    for (int i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];
        uint64_t gpa, pg, end;

        if (p < r->hva || p >= r->hva + r->size)
            continue;
        gpa = r->gpa + (uint64_t)(p - r->hva);
        end = (gpa + len - 1) >> DIRTY_PAGE_SHIFT;
        for (pg = gpa >> DIRTY_PAGE_SHIFT; pg <= end && pg / 64 < l->log.nwords; pg++)
            __atomic_fetch_or(&l->log.words[pg / 64], 1ULL << (pg % 64), __ATOMIC_SEQ_CST);
        return;
    }
}

uint64_t dirty_ram_end(const struct guest_memory *mem)
{
    const struct guest_region *last;

    if (!mem->nregions)
        return 0;
    last = &mem->regions[mem->nregions - 1];
    return last->gpa + last->size;
}

uint64_t dirty_page_hash(const void *page)
{
    const uint64_t *w = page;
    uint64_t h = 0x9e3779b97f4a7c15ULL;

    for (size_t i = 0; i < DIRTY_PAGE_SIZE / 8; i++) {
        h ^= w[i] + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h *= 0xff51afd7ed558ccdULL;
    }
    return h ^ (h >> 33);
}

uint64_t precopy_expected_downtime_ms(uint64_t dirty_pages, double bytes_per_ms)
{
    if (bytes_per_ms <= 0)
        return UINT64_MAX;
    return (uint64_t)((double)(dirty_pages * DIRTY_PAGE_SIZE) / bytes_per_ms);
}

bool precopy_should_stop(uint64_t dirty_pages, double bytes_per_ms, uint64_t budget_ms,
                         unsigned round, unsigned max_rounds)
{
    return round >= max_rounds ||
           precopy_expected_downtime_ms(dirty_pages, bytes_per_ms) <= budget_ms;
}
