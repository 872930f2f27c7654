/* Guest RAM layout around the 32-bit hole, and gpa -> host pointer translation. */
#include "../../common/util.h"
#include "../../vmm/layout.h"
#include "../../vmm/memory.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

static void assert_region(const struct guest_region *r, uint64_t gpa, uint64_t size,
                          uint64_t fd_offset)
{
    ck_assert_uint_eq(r->gpa, gpa);
    ck_assert_uint_eq(r->size, size);
    ck_assert_uint_eq(r->fd_offset, fd_offset);
}

START_TEST(layout_512m_is_one_region)
{
    struct guest_region r[GUEST_MEM_MAX_REGIONS];

    ck_assert_int_eq(guest_memory_layout(512 * MiB, r), 1);
    assert_region(&r[0], 0, 512 * MiB, 0);
}
END_TEST

START_TEST(layout_exactly_3g_is_one_region)
{
    struct guest_region r[GUEST_MEM_MAX_REGIONS];

    ck_assert_int_eq(guest_memory_layout(3 * GiB, r), 1);
    assert_region(&r[0], 0, 3 * GiB, 0);
}
END_TEST

START_TEST(layout_6g_splits_around_hole)
{
    struct guest_region r[GUEST_MEM_MAX_REGIONS];

    ck_assert_int_eq(guest_memory_layout(6 * GiB, r), 2);
    assert_region(&r[0], 0, 3 * GiB, 0);
    assert_region(&r[1], 4 * GiB, 3 * GiB, 3 * GiB);
}
END_TEST

START_TEST(layout_16g_puts_13g_above_4g)
{
    struct guest_region r[GUEST_MEM_MAX_REGIONS];

    ck_assert_int_eq(guest_memory_layout(16 * GiB, r), 2);
    assert_region(&r[0], 0, 3 * GiB, 0);
    assert_region(&r[1], 4 * GiB, 13 * GiB, 3 * GiB);
}
END_TEST

START_TEST(layout_3g_plus_2m_spills_above_4g)
{
    struct guest_region r[GUEST_MEM_MAX_REGIONS];

    ck_assert_int_eq(guest_memory_layout(3 * GiB + 2 * MiB, r), 2);
    assert_region(&r[0], 0, LAYOUT_MMIO_HOLE_START, 0);
    assert_region(&r[1], LAYOUT_MMIO_HOLE_END, 2 * MiB, 3 * GiB);
}
END_TEST

/* ---- guest_memory_ptr on a hand-built table over a small buffer ---- */

#define REGION_SIZE 0x1000ULL

static uint8_t *buf;
static struct guest_memory mem;

/* Region 0 at gpa 0, region 1 at 4 GiB: the same shape as a real split. */
static void split_setup(void)
{
    buf = malloc(2 * REGION_SIZE);
    ck_assert_ptr_nonnull(buf);
    memset(&mem, 0, sizeof(mem));
    mem.fd = -1;
    mem.base = buf;
    mem.size = 2 * REGION_SIZE;
    mem.nregions = 2;
    mem.regions[0] = (struct guest_region){.gpa = 0, .size = REGION_SIZE, .hva = buf};
    mem.regions[1] = (struct guest_region){
        .gpa = 4 * GiB, .size = REGION_SIZE, .fd_offset = REGION_SIZE, .hva = buf + REGION_SIZE};
}

static void split_teardown(void)
{
    free(buf);
    buf = NULL;
}

START_TEST(ptr_inside_first_region)
{
    ck_assert_ptr_eq(guest_memory_ptr(&mem, 0, 16), buf);
    ck_assert_ptr_eq(guest_memory_ptr(&mem, 0x100, 0x10), buf + 0x100);
}
END_TEST

START_TEST(ptr_up_to_region_end)
{
    ck_assert_ptr_eq(guest_memory_ptr(&mem, REGION_SIZE - 16, 16), buf + REGION_SIZE - 16);
    ck_assert_ptr_eq(guest_memory_ptr(&mem, 0, REGION_SIZE), buf);
}
END_TEST

START_TEST(ptr_across_region_end_is_null)
{
    ck_assert_ptr_null(guest_memory_ptr(&mem, REGION_SIZE - 16, 17));
    ck_assert_ptr_null(guest_memory_ptr(&mem, 0, REGION_SIZE + 1));
    ck_assert_ptr_null(guest_memory_ptr(&mem, 4 * GiB + REGION_SIZE - 1, 2));
}
END_TEST

START_TEST(ptr_inside_second_region)
{
    ck_assert_ptr_eq(guest_memory_ptr(&mem, 4 * GiB, 8), buf + REGION_SIZE);
    ck_assert_ptr_eq(guest_memory_ptr(&mem, 4 * GiB + REGION_SIZE - 1, 1),
                     buf + 2 * REGION_SIZE - 1);
}
END_TEST

START_TEST(ptr_in_hole_is_null)
{
    ck_assert_ptr_null(guest_memory_ptr(&mem, REGION_SIZE, 1));
    ck_assert_ptr_null(guest_memory_ptr(&mem, LAYOUT_MMIO_HOLE_START, 4));
    ck_assert_ptr_null(guest_memory_ptr(&mem, 4 * GiB - 1, 1));
    ck_assert_ptr_null(guest_memory_ptr(&mem, 4 * GiB - 1, 2));
}
END_TEST

/* Contiguous in gpa and in the host, still two regions: no pointer spans both. */
START_TEST(ptr_across_adjacent_regions_is_null)
{
    mem.regions[1].gpa = REGION_SIZE;
    ck_assert_ptr_eq(guest_memory_ptr(&mem, REGION_SIZE, 4), buf + REGION_SIZE);
    ck_assert_ptr_null(guest_memory_ptr(&mem, REGION_SIZE - 2, 4));
}
END_TEST

START_TEST(ptr_overflowing_gpa_is_null)
{
    ck_assert_ptr_null(guest_memory_ptr(&mem, UINT64_MAX, 1));
    ck_assert_ptr_null(guest_memory_ptr(&mem, UINT64_MAX - 4, 16));
    ck_assert_ptr_null(guest_memory_ptr(&mem, 16, UINT64_MAX));
    ck_assert_ptr_null(guest_memory_ptr(&mem, 4 * GiB + 16, UINT64_MAX - 8));
}
END_TEST

START_TEST(low_end_is_first_region_size)
{
    ck_assert_uint_eq(guest_memory_low_end(&mem), REGION_SIZE);
    mem.nregions = 0;
    ck_assert_uint_eq(guest_memory_low_end(&mem), 0);
}
END_TEST

/* ---- the real memfd ---- */

START_TEST(create_maps_writable_memory)
{
    struct guest_memory m;
    uint8_t *p;

    ck_assert_int_eq(guest_memory_create(&m, GUEST_MEM_MIN_SIZE, false), 0);
    ck_assert_int_ge(m.fd, 0);
    ck_assert_int_eq(m.nregions, 1);
    ck_assert_uint_eq(m.size, GUEST_MEM_MIN_SIZE);
    ck_assert_ptr_eq(m.regions[0].hva, m.base);
    p = guest_memory_ptr(&m, GUEST_MEM_MIN_SIZE - 1, 1);
    ck_assert_ptr_eq(p, m.base + GUEST_MEM_MIN_SIZE - 1);
    *p = 0x5a;
    ck_assert_uint_eq(m.base[GUEST_MEM_MIN_SIZE - 1], 0x5a);
    guest_memory_destroy(&m);
    ck_assert_int_eq(m.fd, -1);
    ck_assert_ptr_null(m.base);
}
END_TEST

/* What a backend holding the fd could do to it: shrink or grow it (vmm's next access
 * would be a SIGBUS), or add a seal of its own (F_SEAL_WRITE would stop resets). */
START_TEST(memfd_is_sealed_against_resizing)
{
    struct guest_memory m;
    int seals;

    ck_assert_int_eq(guest_memory_create(&m, GUEST_MEM_MIN_SIZE, false), 0);
    seals = fcntl(m.fd, F_GET_SEALS);
    ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    ck_assert_int_eq(ftruncate(m.fd, 0), -1);
    ck_assert_int_eq(errno, EPERM);
    ck_assert_int_eq(ftruncate(m.fd, (off_t)GUEST_MEM_MIN_SIZE * 2), -1);
    ck_assert_int_eq(errno, EPERM);
    ck_assert_int_eq(fcntl(m.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    ck_assert_int_eq(errno, EPERM);
    /* A reboot's reset (punching holes) still works on the sealed memfd. */
    m.base[4096] = 0x5a;
    ck_assert_int_eq(guest_memory_clear(&m), 0);
    ck_assert_uint_eq(m.base[4096], 0);
    ck_assert_int_eq(fallocate(m.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
    guest_memory_destroy(&m);
}
END_TEST

static Suite *memory_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *layout = tcase_create("layout");
    TCase *ptr = tcase_create("ptr");
    TCase *create = tcase_create("create");

    tcase_add_test(layout, layout_512m_is_one_region);
    tcase_add_test(layout, layout_exactly_3g_is_one_region);
    tcase_add_test(layout, layout_6g_splits_around_hole);
    tcase_add_test(layout, layout_16g_puts_13g_above_4g);
    tcase_add_test(layout, layout_3g_plus_2m_spills_above_4g);
    suite_add_tcase(s, layout);

    tcase_add_checked_fixture(ptr, split_setup, split_teardown);
    tcase_add_test(ptr, ptr_inside_first_region);
    tcase_add_test(ptr, ptr_up_to_region_end);
    tcase_add_test(ptr, ptr_across_region_end_is_null);
    tcase_add_test(ptr, ptr_inside_second_region);
    tcase_add_test(ptr, ptr_in_hole_is_null);
    tcase_add_test(ptr, ptr_across_adjacent_regions_is_null);
    tcase_add_test(ptr, ptr_overflowing_gpa_is_null);
    tcase_add_test(ptr, low_end_is_first_region_size);
    suite_add_tcase(s, ptr);

    tcase_add_test(create, create_maps_writable_memory);
    tcase_add_test(create, memfd_is_sealed_against_resizing);
    suite_add_tcase(s, create);
    return s;
}

CHECK_MAIN(memory_suite)
