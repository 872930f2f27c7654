/* The migration's dirty page set: KVM log merge, the backends' shared log harvest
 * (atomic, while a writer keeps setting bits), page hashes, precopy decisions. */
#include "../../common/util.h"
#include "../../vmm/dirty.h"

#include "check_main.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 6 GiB of RAM: 3 GiB below the hole, 3 GiB from 4 GiB. */
static struct guest_memory mem6g(void)
{
    struct guest_memory m = {.fd = -1, .size = 6 * GiB};

    m.nregions = guest_memory_layout(m.size, m.regions);
    return m;
}

static bool page_dirty(const struct dirty_map *map, uint64_t gpa)
{
    for (int i = 0; i < map->nregions; i++) {
        const struct dirty_region *r = &map->r[i];
        uint64_t p = gpa >> DIRTY_PAGE_SHIFT, start = r->gpa >> DIRTY_PAGE_SHIFT;

        if (p >= start && p < start + r->npages)
            return r->bits[(p - start) / 64] & (1ULL << ((p - start) % 64));
    }
    ck_abort_msg("gpa 0x%llx is not RAM", (unsigned long long)gpa);
    return false;
}

START_TEST(map_covers_each_region)
{
    struct guest_memory m = mem6g();
    struct dirty_map map;

    ck_assert_int_eq(m.nregions, 2);
    ck_assert_int_eq(dirty_map_init(&map, &m), 0);
    ck_assert_uint_eq(map.r[0].npages, 3 * GiB / 4096);
    ck_assert_uint_eq(map.r[1].gpa, 4 * GiB);
    ck_assert_uint_eq(dirty_map_count(&map), 0);
    dirty_map_set_all(&map);
    ck_assert_uint_eq(dirty_map_count(&map), 6 * GiB / 4096);
    dirty_map_clear(&map);
    ck_assert_uint_eq(dirty_map_count(&map), 0);
    dirty_map_free(&map);
}
END_TEST

START_TEST(set_all_stops_at_a_partial_word)
{
    struct guest_memory m = {.nregions = 1, .regions = {{.gpa = 0, .size = 100 * 4096}}};
    struct dirty_map map;

    ck_assert_int_eq(dirty_map_init(&map, &m), 0);
    dirty_map_set_all(&map);
    ck_assert_uint_eq(dirty_map_count(&map), 100);
    dirty_map_free(&map);
}
END_TEST

START_TEST(kvm_log_merges_per_region)
{
    struct guest_memory m = mem6g();
    struct dirty_map map;
    uint64_t *bits;

    ck_assert_int_eq(dirty_map_init(&map, &m), 0);
    bits = calloc(dirty_words(map.r[1].npages), 8);
    bits[0] = 0x5; /* pages 0 and 2 of the region above 4 GiB */
    dirty_map_merge(&map, 1, bits);
    dirty_map_merge(&map, 1, bits);
    ck_assert_uint_eq(dirty_map_count(&map), 2);
    ck_assert(page_dirty(&map, 4 * GiB));
    ck_assert(page_dirty(&map, 4 * GiB + 2 * 4096));
    ck_assert(!page_dirty(&map, 4 * GiB + 4096));
    free(bits);
    dirty_map_free(&map);
}
END_TEST

/* The backends log by guest-physical page: a bit in the hole is nobody's. */
START_TEST(vhost_log_bits_land_by_gpa)
{
    struct guest_memory m = mem6g();
    struct dirty_map map;
    struct vhost_log log;
    uint64_t hole_page = (3 * GiB + 64 * MiB) >> 12, high_page = (5 * GiB) >> 12;

    ck_assert_int_eq(dirty_map_init(&map, &m), 0);
    ck_assert_int_eq(vhost_log_create(&log, 7 * GiB), 0);
    ck_assert_uint_eq(log.nwords, 7 * GiB / 4096 / 64);
    log.words[0] |= 1ULL << 3;
    log.words[hole_page / 64] |= 1ULL << (hole_page % 64);
    log.words[high_page / 64] |= 1ULL << (high_page % 64);
    ck_assert_uint_eq(vhost_log_harvest(&log, &map), 2);
    ck_assert(page_dirty(&map, 3 * 4096));
    ck_assert(page_dirty(&map, 5 * GiB));
    ck_assert_uint_eq(dirty_map_count(&map), 2);
    /* Harvesting emptied the log; a page already in the map is not counted again. */
    ck_assert_uint_eq(vhost_log_harvest(&log, &map), 0);
    log.words[0] |= 1ULL << 3;
    ck_assert_uint_eq(vhost_log_harvest(&log, &map), 0);
    ck_assert_uint_eq(log.words[0], 0);
    vhost_log_destroy(&log);
    dirty_map_free(&map);
}
END_TEST

START_TEST(vhost_log_is_sealed)
{
    struct vhost_log log;

    ck_assert_int_eq(vhost_log_create(&log, 1 * GiB), 0);
    ck_assert_uint_eq(log.mmap_size % 4096, 0);
    ck_assert_int_ne(ftruncate(log.fd, (off_t)log.mmap_size * 2), 0);
    ck_assert_int_ne(ftruncate(log.fd, 0), 0);
    vhost_log_destroy(&log);
}
END_TEST

struct writer {
    struct vhost_log *log;
    atomic_bool stop;
    uint64_t written; /* distinct pages the writer dirtied */
};

/* A backend writing while vmm harvests: each page is logged once, from the
 * writer's own sequence, so the harvested total must equal what it wrote. */
static void *log_writer(void *arg)
{
    struct writer *w = arg;
    uint64_t npages = w->log->nwords * 64;

    for (uint64_t p = 0; p < npages && !atomic_load(&w->stop); p++) {
        __atomic_fetch_or(&w->log->words[p / 64], 1ULL << (p % 64), __ATOMIC_SEQ_CST);
        w->written++;
    }
    return NULL;
}

START_TEST(harvest_loses_nothing_under_a_concurrent_writer)
{
    struct guest_memory m = {.nregions = 1, .regions = {{.gpa = 0, .size = 512 * MiB}}};
    struct dirty_map map;
    struct vhost_log log;
    struct writer w = {.log = &log};
    pthread_t t;
    uint64_t got = 0;

    ck_assert_int_eq(dirty_map_init(&map, &m), 0);
    ck_assert_int_eq(vhost_log_create(&log, m.regions[0].size), 0);
    w.log = &log;
    ck_assert_int_eq(pthread_create(&t, NULL, log_writer, &w), 0);
    for (int i = 0; i < 200; i++)
        got += vhost_log_harvest(&log, &map);
    pthread_join(t, NULL);
    got += vhost_log_harvest(&log, &map);
    ck_assert_uint_eq(got, w.written);
    ck_assert_uint_eq(dirty_map_count(&map), w.written);
    vhost_log_destroy(&log);
    dirty_map_free(&map);
}
END_TEST

START_TEST(page_hash_sees_one_bit)
{
    static uint8_t a[4096], b[4096];

    ck_assert_uint_eq(dirty_page_hash(a), dirty_page_hash(b));
    b[4095] = 1;
    ck_assert_uint_ne(dirty_page_hash(a), dirty_page_hash(b));
    b[4095] = 0;
    b[0] = 0x80;
    ck_assert_uint_ne(dirty_page_hash(a), dirty_page_hash(b));
}
END_TEST

START_TEST(precopy_decisions)
{
    double rate = 100.0 * 1024 * 1024 / 1000; /* 100 MiB/s in bytes per ms */

    /* 7680 pages = 30 MiB: 300 ms at 100 MiB/s. */
    ck_assert_uint_eq(precopy_expected_downtime_ms(7680, rate), 300);
    ck_assert(precopy_should_stop(7680, rate, 300, 1, 30));
    ck_assert(!precopy_should_stop(7681 * 2, rate, 300, 1, 30));
    ck_assert(precopy_should_stop(1 << 20, rate, 300, 30, 30)); /* the round limit */
    ck_assert(!precopy_should_stop(1, 0, 300, 1, 30));          /* no rate measured yet */
    ck_assert_uint_eq(precopy_expected_downtime_ms(0, rate), 0);
}
END_TEST

static Suite *dirty_suite(void)
{
    Suite *s = suite_create("dirty");
    TCase *tc = tcase_create("dirty");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, map_covers_each_region);
    tcase_add_test(tc, set_all_stops_at_a_partial_word);
    tcase_add_test(tc, kvm_log_merges_per_region);
    tcase_add_test(tc, vhost_log_bits_land_by_gpa);
    tcase_add_test(tc, vhost_log_is_sealed);
    tcase_add_test(tc, harvest_loses_nothing_under_a_concurrent_writer);
    tcase_add_test(tc, page_hash_sees_one_bit);
    tcase_add_test(tc, precopy_decisions);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(dirty_suite)
