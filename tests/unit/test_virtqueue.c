/* Virtqueues as vmm walks them for the control queue, split and packed: rings laid
 * out by hand in a fake guest memory, well-formed chains (plain, NEXT, indirect) and
 * every malformed shape a guest could write, which must give -EINVAL and never
 * touch memory outside guest RAM. The packed cases play the driver as the virtio
 * spec's example code does, wrap counters and all. */
#include "../../devices/virtqueue.h"

#include "../support/guest_mem.h"
#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MEM_BASE 0x100000ULL /* not 0, so a gpa used as an offset shows */
#define MEM_SIZE 0x10000ULL
#define QSIZE 8
#define DESC (MEM_BASE + 0x0000)
#define AVAIL (MEM_BASE + 0x1000)
#define USED (MEM_BASE + 0x2000)
#define TABLE (MEM_BASE + 0x3000) /* indirect tables */
#define DATA (MEM_BASE + 0x8000)  /* buffers */

static struct guest_mem ram; /* tests/support: bounds-checked like the real memory map */
static const struct split_ring ring = {&ram, DESC, AVAIL, USED, QSIZE};
static struct virtq q;

static uint8_t *host(uint64_t gpa)
{
    return guest_mem_host(&ram, gpa, 1);
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    split_desc_put(&ram, DESC, i, addr, len, flags, next);
}

static void setup(void)
{
    guest_mem_init(&ram, MEM_BASE, MEM_SIZE);
    q = (struct virtq){
        .size = QSIZE, .desc_gpa = DESC, .avail_gpa = AVAIL, .used_gpa = USED, .mem = &ram.access};
}

static void teardown(void)
{
    guest_mem_destroy(&ram);
}

/* ---- virtq_check_layout ---- */

START_TEST(layout_accepts_good_rings)
{
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    for (unsigned n = 1; n <= 256; n *= 2) {
        q.size = (uint16_t)n;
        ck_assert_int_eq(virtq_check_layout(&q), 0);
    }
}
END_TEST

START_TEST(layout_rejects_sizes_not_a_power_of_two)
{
    static const uint16_t bad[] = {0, 3, 6, 7, 100, 255, 0xffff};

    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        q.size = bad[i];
        ck_assert_msg(virtq_check_layout(&q) == -EINVAL, "size %u accepted", bad[i]);
    }
}
END_TEST

START_TEST(layout_rejects_misaligned_rings)
{
    q.desc_gpa = DESC + 8;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.desc_gpa = DESC + 16;
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    q.avail_gpa = AVAIL + 1;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.avail_gpa = AVAIL + 2;
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    q.used_gpa = USED + 2;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.used_gpa = USED + 4;
    ck_assert_int_eq(virtq_check_layout(&q), 0);
}
END_TEST

START_TEST(layout_rejects_rings_outside_memory)
{
    const uint64_t end = MEM_BASE + MEM_SIZE;

    /* Each ring just fits at the end of RAM, and one unit further does not. */
    q.desc_gpa = end - 16 * QSIZE;
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    q.desc_gpa = end - 16 * QSIZE + 16;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.desc_gpa = MEM_BASE - 16;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.desc_gpa = UINT64_MAX - 15; /* wraps */
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.desc_gpa = DESC;

    q.avail_gpa = end - (6 + 2 * QSIZE);
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    q.avail_gpa = end - (6 + 2 * QSIZE) + 2;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.avail_gpa = AVAIL;

    q.used_gpa = end - (6 + 8 * QSIZE) - 2; /* 4-aligned */
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    q.used_gpa = end - (6 + 8 * QSIZE) + 2;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.used_gpa = 0;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
}
END_TEST

/* ---- virtq_pop: well-formed chains ---- */

START_TEST(pop_empty_queue)
{
    struct virtq_chain c;

    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    ck_assert_uint_eq(q.last_avail, 0);
}
END_TEST

START_TEST(pop_single_descriptor)
{
    struct virtq_chain c;

    set_desc(0, DATA, 10, 0, 0);
    split_ring_offer(&ring, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 0);
    ck_assert_uint_eq(c.count, 1);
    ck_assert_ptr_eq(c.bufs[0].addr, host(DATA));
    ck_assert_uint_eq(c.bufs[0].len, 10);
    ck_assert(!c.bufs[0].writable);
    ck_assert_uint_eq(q.last_avail, 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
}
END_TEST

START_TEST(pop_chain_with_next)
{
    struct virtq_chain c;

    set_desc(2, DATA, 2, VIRTQ_DESC_F_NEXT, 5);
    set_desc(5, DATA + 0x100, 40, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, DATA + 0x200, 1, VIRTQ_DESC_F_WRITE, 7); /* next ignored without NEXT */
    split_ring_offer(&ring, 2);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 2);
    ck_assert_uint_eq(c.count, 3);
    ck_assert_ptr_eq(c.bufs[0].addr, host(DATA));
    ck_assert_uint_eq(c.bufs[0].len, 2);
    ck_assert(!c.bufs[0].writable);
    ck_assert_ptr_eq(c.bufs[1].addr, host(DATA + 0x100));
    ck_assert_uint_eq(c.bufs[1].len, 40);
    ck_assert(!c.bufs[1].writable);
    ck_assert_ptr_eq(c.bufs[2].addr, host(DATA + 0x200));
    ck_assert_uint_eq(c.bufs[2].len, 1);
    ck_assert(c.bufs[2].writable);
}
END_TEST

START_TEST(pop_indirect_table)
{
    struct virtq_chain c;

    set_desc(3, TABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    split_desc_put(&ram, TABLE, 0, DATA, 2, VIRTQ_DESC_F_NEXT, 2);
    split_desc_put(&ram, TABLE, 2, DATA + 0x10, 6, VIRTQ_DESC_F_NEXT, 1);
    split_desc_put(&ram, TABLE, 1, DATA + 0x20, 1, VIRTQ_DESC_F_WRITE, 0);
    split_ring_offer(&ring, 3);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 3);
    ck_assert_uint_eq(c.count, 3);
    ck_assert_ptr_eq(c.bufs[0].addr, host(DATA));
    ck_assert_uint_eq(c.bufs[0].len, 2);
    ck_assert_ptr_eq(c.bufs[1].addr, host(DATA + 0x10));
    ck_assert_uint_eq(c.bufs[1].len, 6);
    ck_assert(!c.bufs[1].writable);
    ck_assert_ptr_eq(c.bufs[2].addr, host(DATA + 0x20));
    ck_assert(c.bufs[2].writable);
    ck_assert_uint_eq(q.last_avail, 1);
}
END_TEST

START_TEST(pop_indirect_table_of_chain_max)
{
    struct virtq_chain c;

    for (unsigned i = 0; i < VIRTQ_CHAIN_MAX; i++)
        split_desc_put(&ram, TABLE, i, DATA + i, 1,
                       i + 1 < VIRTQ_CHAIN_MAX ? VIRTQ_DESC_F_NEXT : VIRTQ_DESC_F_WRITE,
                       (uint16_t)(i + 1));
    set_desc(0, TABLE, 16 * VIRTQ_CHAIN_MAX, VIRTQ_DESC_F_INDIRECT, 0);
    split_ring_offer(&ring, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.count, VIRTQ_CHAIN_MAX);
    ck_assert_ptr_eq(c.bufs[VIRTQ_CHAIN_MAX - 1].addr, host(DATA + VIRTQ_CHAIN_MAX - 1));
}
END_TEST

START_TEST(pop_zero_length_buffer_is_not_dereferenced)
{
    struct virtq_chain c;

    set_desc(0, 0xdead0000ULL, 0, VIRTQ_DESC_F_NEXT, 1); /* address outside RAM, length 0 */
    set_desc(1, DATA, 4, VIRTQ_DESC_F_WRITE, 0);
    split_ring_offer(&ring, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.count, 2);
    ck_assert_uint_eq(c.bufs[0].len, 0);
    ck_assert_ptr_null(c.bufs[0].addr);
}
END_TEST

START_TEST(pop_takes_entries_in_order_across_the_index_wrap)
{
    struct virtq_chain c;

    for (unsigned i = 0; i < QSIZE; i++)
        set_desc(i, DATA + 16 * i, 16, 0, 0);
    q.last_avail = 0xfffe;
    guest_put16(&ram, AVAIL + 2, 0xfffe);
    split_ring_offer(&ring, 4); /* slot 6 */
    split_ring_offer(&ring, 1); /* slot 7 */
    split_ring_offer(&ring, 6); /* slot 0, idx wraps to 1 */
    ck_assert_uint_eq(split_ring_avail_idx(&ring), 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 4);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 6);
    ck_assert_ptr_eq(c.bufs[0].addr, host(DATA + 16 * 6));
    ck_assert_uint_eq(q.last_avail, 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
}
END_TEST

START_TEST(pop_accepts_a_full_ring)
{
    struct virtq_chain c;

    for (unsigned i = 0; i < QSIZE; i++) {
        set_desc(i, DATA + 16 * i, 16, 0, 0);
        split_ring_offer(&ring, (uint16_t)(QSIZE - 1 - i));
    }
    for (unsigned i = 0; i < QSIZE; i++) {
        ck_assert_int_eq(virtq_pop(&q, &c), 1);
        ck_assert_uint_eq(c.head, QSIZE - 1 - i);
    }
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
}
END_TEST

/* ---- virtq_pop: malformed input ---- */

/* One pop that must fail without consuming the entry. */
static void expect_einval(const char *what)
{
    struct virtq_chain c;

    ck_assert_msg(virtq_pop(&q, &c) == -EINVAL, "%s: accepted", what);
    ck_assert_msg(q.last_avail == 0, "%s: entry consumed", what);
}

START_TEST(pop_rejects_head_out_of_range)
{
    set_desc(0, DATA, 4, 0, 0);
    split_ring_offer(&ring, QSIZE);
    expect_einval("head == size");
    guest_put16(&ram, AVAIL + 4, 0xffff);
    expect_einval("head 0xffff");
}
END_TEST

START_TEST(pop_rejects_next_out_of_range)
{
    set_desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, QSIZE);
    split_ring_offer(&ring, 0);
    expect_einval("next == size");
}
END_TEST

START_TEST(pop_rejects_descriptor_loops)
{
    set_desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    split_ring_offer(&ring, 0);
    expect_einval("0 -> 1 -> 0");
    set_desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    expect_einval("0 -> 0");
}
END_TEST

START_TEST(pop_rejects_buffers_outside_memory)
{
    set_desc(0, MEM_BASE + MEM_SIZE - 4, 8, 0, 0);
    split_ring_offer(&ring, 0);
    expect_einval("buffer straddles the end of RAM");
    set_desc(0, MEM_BASE - 1, 1, 0, 0);
    expect_einval("buffer below RAM");
    set_desc(0, UINT64_MAX - 1, 16, 0, 0);
    expect_einval("buffer address wraps");
    set_desc(0, DATA, 0xffffffff, 0, 0);
    expect_einval("4 GiB buffer");
    /* The same buffer inside RAM is fine. */
    set_desc(0, MEM_BASE + MEM_SIZE - 8, 8, 0, 0);
    {
        struct virtq_chain c;

        ck_assert_int_eq(virtq_pop(&q, &c), 1);
    }
}
END_TEST

START_TEST(pop_rejects_indirect_inside_indirect)
{
    set_desc(0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
    split_desc_put(&ram, TABLE, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    split_desc_put(&ram, TABLE, 1, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
    split_desc_put(&ram, TABLE + 0x100, 0, DATA, 4, 0, 0);
    split_ring_offer(&ring, 0);
    expect_einval("nested indirect table");
}
END_TEST

START_TEST(pop_rejects_bad_indirect_lengths)
{
    split_desc_put(&ram, TABLE, 0, DATA, 4, 0, 0);
    split_desc_put(&ram, TABLE, 1, DATA, 4, 0, 0);
    set_desc(0, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
    split_ring_offer(&ring, 0);
    expect_einval("indirect length 24");
    set_desc(0, TABLE, 0, VIRTQ_DESC_F_INDIRECT, 0);
    expect_einval("indirect length 0");
    set_desc(0, TABLE, 17, VIRTQ_DESC_F_INDIRECT, 0);
    expect_einval("indirect length 17");
    set_desc(0, MEM_BASE + MEM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
    expect_einval("indirect table past RAM");
    set_desc(0, TABLE, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    expect_einval("indirect with NEXT");
    set_desc(0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
    {
        struct virtq_chain c;

        ck_assert_int_eq(virtq_pop(&q, &c), 1);
        ck_assert_uint_eq(c.count, 1);
    }
}
END_TEST

START_TEST(pop_rejects_loops_and_overruns_inside_indirect)
{
    set_desc(0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
    split_desc_put(&ram, TABLE, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    split_desc_put(&ram, TABLE, 1, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    split_ring_offer(&ring, 0);
    expect_einval("loop in an indirect table");
    split_desc_put(&ram, TABLE, 1, DATA, 4, VIRTQ_DESC_F_NEXT, 2);
    expect_einval("next past the indirect table");
}
END_TEST

START_TEST(pop_rejects_chains_longer_than_chain_max)
{
    for (unsigned i = 0; i <= VIRTQ_CHAIN_MAX; i++)
        split_desc_put(&ram, TABLE, i, DATA + i, 1, i < VIRTQ_CHAIN_MAX ? VIRTQ_DESC_F_NEXT : 0,
                       (uint16_t)(i + 1));
    set_desc(0, TABLE, 16 * (VIRTQ_CHAIN_MAX + 1), VIRTQ_DESC_F_INDIRECT, 0);
    split_ring_offer(&ring, 0);
    expect_einval("65 buffers");
}
END_TEST

START_TEST(pop_rejects_avail_idx_too_far_ahead)
{
    struct virtq_chain c;

    for (unsigned i = 0; i < QSIZE; i++)
        set_desc(i, DATA, 4, 0, 0);
    guest_put16(&ram, AVAIL + 2, QSIZE + 1);
    expect_einval("avail idx size+1 ahead");
    guest_put16(&ram, AVAIL + 2, 0x8000);
    expect_einval("avail idx 0x8000 ahead");
    guest_put16(&ram, AVAIL + 2, 0xffff); /* behind by one reads as 0xffff ahead */
    expect_einval("avail idx behind");
    guest_put16(&ram, AVAIL + 2, QSIZE);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
}
END_TEST

START_TEST(pop_rejects_rings_outside_memory)
{
    struct virtq_chain c;

    set_desc(0, DATA, 4, 0, 0);
    split_ring_offer(&ring, 0);
    q.size = 0;
    ck_assert_int_eq(virtq_pop(&q, &c), -EINVAL);
    q.size = QSIZE;
    q.desc_gpa = MEM_BASE + MEM_SIZE - 64; /* table of 8 needs 128 bytes */
    expect_einval("descriptor table past RAM");
    q.desc_gpa = DESC;
    q.avail_gpa = MEM_BASE + MEM_SIZE;
    ck_assert_int_eq(virtq_pop(&q, &c), -EINVAL);
    q.avail_gpa = AVAIL;
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
}
END_TEST

/* ---- virtq_push and interrupts ---- */

START_TEST(push_writes_used_elements_and_index)
{
    ck_assert_int_eq(virtq_push(&q, 5, 77), 0);
    ck_assert_uint_eq(guest_get32(&ram, USED + 4), 5);
    ck_assert_uint_eq(guest_get32(&ram, USED + 8), 77);
    ck_assert_uint_eq(guest_get16(&ram, USED + 2), 1);
    ck_assert_uint_eq(q.used_idx, 1);
    ck_assert_int_eq(virtq_push(&q, 2, 0x12345678), 0);
    ck_assert_uint_eq(guest_get32(&ram, USED + 12), 2);
    ck_assert_uint_eq(guest_get32(&ram, USED + 16), 0x12345678);
    ck_assert_uint_eq(guest_get16(&ram, USED + 2), 2);
    ck_assert_uint_eq(guest_get16(&ram, USED + 0), 0); /* flags untouched */
}
END_TEST

START_TEST(push_wraps_the_ring_and_the_index)
{
    q.used_idx = 0xffff; /* slot 7 */
    ck_assert_int_eq(virtq_push(&q, 3, 9), 0);
    ck_assert_uint_eq(guest_get32(&ram, USED + 4 + 8 * 7), 3);
    ck_assert_uint_eq(guest_get32(&ram, USED + 4 + 8 * 7 + 4), 9);
    ck_assert_uint_eq(guest_get16(&ram, USED + 2), 0);
    ck_assert_int_eq(virtq_push(&q, 4, 10), 0);
    ck_assert_uint_eq(guest_get32(&ram, USED + 4), 4);
    ck_assert_uint_eq(guest_get16(&ram, USED + 2), 1);
}
END_TEST

START_TEST(push_outside_memory_fails_cleanly)
{
    q.used_gpa = MEM_BASE + MEM_SIZE - 4;
    ck_assert_int_eq(virtq_push(&q, 1, 1), -EINVAL);
    ck_assert_uint_eq(q.used_idx, 0);
}
END_TEST

START_TEST(interrupt_without_event_idx_follows_no_interrupt_flag)
{
    q.used_idx = 1;
    guest_put16(&ram, AVAIL, 0);
    ck_assert(virtq_needs_interrupt(&q, 0));
    guest_put16(&ram, AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
    ck_assert(!virtq_needs_interrupt(&q, 0));
    guest_put16(&ram, AVAIL + 4 + 2 * QSIZE, 0); /* used_event means nothing without EVENT_IDX */
    ck_assert(!virtq_needs_interrupt(&q, 0));
}
END_TEST

START_TEST(interrupt_with_event_idx_follows_used_event)
{
    const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;

    q.event_idx = true;
    guest_put16(&ram, AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT); /* ignored with EVENT_IDX */
    q.used_idx = 1;
    guest_put16(&ram, used_event, 0);
    ck_assert(virtq_needs_interrupt(&q, 0));
    guest_put16(&ram, used_event, 1);
    ck_assert(!virtq_needs_interrupt(&q, 0));
    q.used_idx = 3;
    guest_put16(&ram, used_event, 1);
    ck_assert(virtq_needs_interrupt(&q, 0)); /* stepped over 1 */
    ck_assert(!virtq_needs_interrupt(&q, 2));
    guest_put16(&ram, used_event, 2);
    ck_assert(virtq_needs_interrupt(&q, 2));
    /* Across the 16-bit wrap. */
    q.used_idx = 1;
    guest_put16(&ram, used_event, 0xffff);
    ck_assert(virtq_needs_interrupt(&q, 0xfffe));
    guest_put16(&ram, used_event, 2);
    ck_assert(!virtq_needs_interrupt(&q, 0xfffe));
}
END_TEST

START_TEST(pop_publishes_avail_event_with_event_idx)
{
    const uint64_t avail_event = USED + 4 + 8 * QSIZE;
    struct virtq_chain c;

    q.event_idx = true;
    guest_put16(&ram, avail_event, 0xbeef);
    set_desc(0, DATA, 4, 0, 0);
    set_desc(1, DATA, 4, 0, 0);
    split_ring_offer(&ring, 0);
    split_ring_offer(&ring, 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(guest_get16(&ram, avail_event), 0); /* published before looking */
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(guest_get16(&ram, avail_event), 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    /* The empty pop that ends a run leaves the guest told how far vmm read. */
    ck_assert_uint_eq(guest_get16(&ram, avail_event), 2);
    ck_assert_uint_eq(guest_get16(&ram, avail_event), q.last_avail);
}
END_TEST

START_TEST(pop_leaves_avail_event_alone_without_event_idx)
{
    const uint64_t avail_event = USED + 4 + 8 * QSIZE;
    struct virtq_chain c;

    guest_put16(&ram, avail_event, 0xbeef);
    set_desc(0, DATA, 4, 0, 0);
    split_ring_offer(&ring, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    ck_assert_uint_eq(guest_get16(&ram, avail_event), 0xbeef);
}
END_TEST

/* ---- copying through chains ---- */

/* readable "abc", writable 2, readable "defg", writable 8 */
static void mixed_chain(struct virtq_chain *c)
{
    memcpy(host(DATA), "abc", 3);
    memcpy(host(DATA + 0x100), "defg", 4);
    memset(host(DATA + 0x200), '.', 2);
    memset(host(DATA + 0x300), '.', 8);
    set_desc(0, DATA, 3, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, DATA + 0x200, 2, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    set_desc(2, DATA + 0x100, 4, VIRTQ_DESC_F_NEXT, 3);
    set_desc(3, DATA + 0x300, 8, VIRTQ_DESC_F_WRITE, 0);
    split_ring_offer(&ring, 0);
    ck_assert_int_eq(virtq_pop(&q, c), 1);
    ck_assert_uint_eq(c->count, 4);
}

START_TEST(chain_read_gathers_readable_buffers)
{
    struct virtq_chain c;
    char out[16];

    mixed_chain(&c);
    memset(out, 0, sizeof(out));
    ck_assert_uint_eq(virtq_chain_read(&c, out, sizeof(out)), 7);
    ck_assert_str_eq(out, "abcdefg");
    memset(out, 0, sizeof(out));
    ck_assert_uint_eq(virtq_chain_read(&c, out, 5), 5);
    ck_assert_str_eq(out, "abcde");
    ck_assert_uint_eq(virtq_chain_read(&c, out, 0), 0);
}
END_TEST

START_TEST(chain_write_scatters_into_writable_buffers)
{
    struct virtq_chain c;

    mixed_chain(&c);
    ck_assert_uint_eq(virtq_chain_write(&c, "0123456789XYZ", 13), 10);
    ck_assert_mem_eq(host(DATA + 0x200), "01", 2);
    ck_assert_mem_eq(host(DATA + 0x300), "23456789", 8);
    ck_assert_mem_eq(host(DATA), "abc", 3); /* readable buffers untouched */
    ck_assert_mem_eq(host(DATA + 0x100), "defg", 4);
    ck_assert_uint_eq(*host(DATA + 0x308), 0); /* nothing past the last buffer */

    memset(host(DATA + 0x200), '.', 2);
    memset(host(DATA + 0x300), '.', 8);
    ck_assert_uint_eq(virtq_chain_write(&c, "ABC", 3), 3);
    ck_assert_mem_eq(host(DATA + 0x200), "AB", 2);
    ck_assert_mem_eq(host(DATA + 0x300), "C.......", 8);
}
END_TEST

START_TEST(chain_copies_with_no_buffers_of_a_direction)
{
    struct virtq_chain c;
    uint8_t out[4] = {0};

    set_desc(0, DATA, 4, VIRTQ_DESC_F_WRITE, 0);
    split_ring_offer(&ring, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(virtq_chain_read(&c, out, sizeof(out)), 0);
    set_desc(1, DATA, 4, 0, 0);
    split_ring_offer(&ring, 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(virtq_chain_write(&c, "abcd", 4), 0);
    ck_assert_uint_eq(*host(DATA), 0);
}
END_TEST

/* ---- packed rings ---- */

#define DRIVER_AREA AVAIL /* Driver Event Suppression: the guest writes, vmm reads */
#define DEVICE_AREA USED  /* Device Event Suppression: vmm writes */
#define F_AVAIL VIRTQ_DESC_F_AVAIL
#define F_USED VIRTQ_DESC_F_USED

/* The guest driver's side of a packed ring, as in the spec's example: its next entry to
 * make available and to read used, each with its ring wrap counter (1 at start). */
static struct {
    uint16_t next_avail, next_used;
    bool avail_wrap, used_wrap;
    uint16_t sgs[QSIZE]; /* ring entries of each buffer ID in flight */
} drv;

static void packed_setup(void)
{
    setup();
    q.packed = true;
    q.avail_gpa = DRIVER_AREA;
    q.used_gpa = DEVICE_AREA;
    virtq_reset_position(&q);
    drv.next_avail = drv.next_used = 0;
    drv.avail_wrap = drv.used_wrap = true;
}

static void pdesc_at(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t id,
                     uint16_t flags)
{
    uint8_t *d = host(table + 16ULL * i);

    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &id, 2);
    memcpy(d + 14, &flags, 2);
}

static uint16_t pflags(unsigned i)
{
    return guest_get16(&ram, DESC + 16ULL * i + 14);
}

static uint16_t pid(unsigned i)
{
    return guest_get16(&ram, DESC + 16ULL * i + 12);
}

static uint32_t plen(unsigned i)
{
    return guest_get32(&ram, DESC + 16ULL * i + 8);
}

struct elem {
    uint64_t addr;
    uint32_t len;
    uint16_t flags; /* WRITE, INDIRECT */
};

/* The driver makes a buffer of n elements available under buffer ID id: NEXT on all but
 * the last, the ID in the last (the others get a bogus one that must not be taken), and
 * the first entry's flags written last. */
static void offer_packed(const struct elem *e, unsigned n, uint16_t id)
{
    uint16_t first = drv.next_avail, first_flags = 0;

    for (unsigned i = 0; i < n; i++) {
        uint16_t f = e[i].flags | (drv.avail_wrap ? F_AVAIL : F_USED);

        if (i + 1 < n)
            f |= VIRTQ_DESC_F_NEXT;
        pdesc_at(DESC, drv.next_avail, e[i].addr, e[i].len, i + 1 < n ? 0xbad : id, 0);
        if (i == 0)
            first_flags = f;
        else
            guest_put16(&ram, DESC + 16ULL * drv.next_avail + 14, f);
        if (++drv.next_avail == QSIZE) {
            drv.next_avail = 0;
            drv.avail_wrap = !drv.avail_wrap;
        }
    }
    drv.sgs[id] = (uint16_t)n;
    guest_put16(&ram, DESC + 16ULL * first + 14, first_flags);
}

/* The driver reads the next used entry: its ID, or -1 when none is used yet. */
static int take_used(uint32_t *len)
{
    uint16_t f = pflags(drv.next_used);
    int id;

    if (!!(f & F_USED) != drv.used_wrap || !!(f & F_AVAIL) != drv.used_wrap)
        return -1;
    id = pid(drv.next_used);
    *len = plen(drv.next_used);
    drv.next_used += drv.sgs[id];
    if (drv.next_used >= QSIZE) {
        drv.next_used -= QSIZE;
        drv.used_wrap = !drv.used_wrap;
    }
    return id;
}

static void set_driver_event(uint16_t off, bool wrap, uint16_t flags)
{
    guest_put16(&ram, DRIVER_AREA, (uint16_t)(off | wrap << 15));
    guest_put16(&ram, DRIVER_AREA + 2, flags);
}

START_TEST(packed_layout_takes_any_size_and_checks_each_part)
{
    static const uint16_t good[] = {1, 3, 7, 8, 100, 255};
    const uint64_t end = MEM_BASE + MEM_SIZE;

    for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        q.size = good[i]; /* not a power of two: fine for a packed ring */
        ck_assert_msg(virtq_check_layout(&q) == 0, "size %u refused", good[i]);
    }
    q.size = 0;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.size = QSIZE;
    q.desc_gpa = DESC + 8;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.desc_gpa = end - 16 * QSIZE;
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    q.desc_gpa = end - 16 * QSIZE + 16;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.desc_gpa = DESC;
    q.avail_gpa = DRIVER_AREA + 2; /* event structures are 4-aligned */
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.avail_gpa = end - 4;
    ck_assert_int_eq(virtq_check_layout(&q), 0);
    q.avail_gpa = end;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.avail_gpa = DRIVER_AREA;
    q.used_gpa = DEVICE_AREA + 2;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
    q.used_gpa = 0;
    ck_assert_int_eq(virtq_check_layout(&q), -EINVAL);
}
END_TEST

START_TEST(packed_pop_and_push_one_buffer)
{
    struct virtq_chain c;
    uint32_t len;

    ck_assert(q.avail_wrap && q.used_wrap); /* both counters start at 1 */
    ck_assert_int_eq(virtq_pop(&q, &c), 0); /* a zeroed ring holds nothing */
    offer_packed(&(struct elem){DATA, 10, 0}, 1, 5);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 5);
    ck_assert_uint_eq(c.ndescs, 1);
    ck_assert_uint_eq(c.count, 1);
    ck_assert_ptr_eq(c.bufs[0].addr, host(DATA));
    ck_assert_uint_eq(c.bufs[0].len, 10);
    ck_assert(!c.bufs[0].writable);
    ck_assert_uint_eq(q.last_avail, 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    ck_assert_int_eq(take_used(&len), -1);
    /* The split call cannot know how many entries the buffer took. */
    ck_assert_int_eq(virtq_push(&q, 5, 0), -EINVAL);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    /* Used: AVAIL and USED both equal the device's counter; no WRITE, nothing written. */
    ck_assert_uint_eq(pflags(0), F_AVAIL | F_USED);
    ck_assert_int_eq(take_used(&len), 5);
    ck_assert_uint_eq(q.used_idx, 1);
    offer_packed(&(struct elem){DATA, 4, VIRTQ_DESC_F_WRITE}, 1, 2);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 3), 0);
    ck_assert_uint_eq(pflags(1), F_AVAIL | F_USED | VIRTQ_DESC_F_WRITE); /* data was written */
    ck_assert_int_eq(take_used(&len), 2);
    ck_assert_uint_eq(len, 3);
}
END_TEST

START_TEST(packed_chain_with_next_takes_the_last_id)
{
    const struct elem e[3] = {
        {DATA, 2, 0}, {DATA + 0x100, 40, 0}, {DATA + 0x200, 1, VIRTQ_DESC_F_WRITE}};
    struct virtq_chain c;
    uint32_t len;

    offer_packed(e, 3, 6);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 6); /* the last descriptor's, not the first's 0xbad */
    ck_assert_uint_eq(c.ndescs, 3);
    ck_assert_uint_eq(c.count, 3);
    ck_assert_ptr_eq(c.bufs[1].addr, host(DATA + 0x100));
    ck_assert_uint_eq(c.bufs[1].len, 40);
    ck_assert(!c.bufs[1].writable);
    ck_assert(c.bufs[2].writable);
    ck_assert_uint_eq(q.last_avail, 3);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 1), 0);
    /* One used entry for the three, then the position skips them all. */
    ck_assert_uint_eq(q.used_idx, 3);
    ck_assert_int_eq(take_used(&len), 6);
    ck_assert_uint_eq(drv.next_used, 3);
}
END_TEST

/* Commands of three entries (header, data, ack) popped and pushed for 10 rounds on an
 * 8-entry ring: the chains straddle the end, both wrap counters flip, stale entries of
 * the previous lap are never taken again. */
START_TEST(packed_commands_across_the_ring_wrap)
{
    struct virtq_chain c;

    for (unsigned round = 0; round < 10; round++) {
        const struct elem e[3] = {{DATA + round, 2, 0},
                                  {DATA + 0x100, 6, 0},
                                  {DATA + 0x200 + round, 1, VIRTQ_DESC_F_WRITE}};
        uint16_t at = q.used_idx, id = (uint16_t)(round % QSIZE);
        bool wrap = q.used_wrap;
        uint32_t len;
        uint8_t ack = 0;

        offer_packed(e, 3, id);
        ck_assert_int_eq(virtq_pop(&q, &c), 1);
        ck_assert_uint_eq(c.head, id);
        ck_assert_ptr_eq(c.bufs[0].addr, host(DATA + round));
        ck_assert_ptr_eq(c.bufs[2].addr, host(DATA + 0x200 + round));
        ck_assert_int_eq(virtq_pop(&q, &c) == 0, 1);
        ck_assert_uint_eq(virtq_chain_write(&c, &ack, 1), 1);
        ck_assert_int_eq(virtq_push_chain(&q, &c, 1), 0);
        /* The used entry sits where the chain began, flagged with the counter of then. */
        ck_assert_uint_eq(pflags(at), (wrap ? F_AVAIL | F_USED : 0) | VIRTQ_DESC_F_WRITE);
        ck_assert_int_eq(take_used(&len), id);
        ck_assert_uint_eq(len, 1);
        ck_assert_uint_eq(q.used_idx, drv.next_used);
        ck_assert(q.used_wrap == drv.used_wrap);
        ck_assert_uint_eq(q.last_avail, drv.next_avail);
        ck_assert(q.avail_wrap == drv.avail_wrap);
    }
    /* 30 entries: three laps and 6, so both counters flipped three times. */
    ck_assert_uint_eq(q.last_avail, 6);
    ck_assert_uint_eq(q.used_idx, 6);
    ck_assert(!q.avail_wrap);
    ck_assert(!q.used_wrap);
}
END_TEST

START_TEST(packed_indirect_table)
{
    struct virtq_chain c;
    uint32_t len;

    /* In the table only WRITE counts: NEXT, INDIRECT and the IDs are reserved, ignored. */
    pdesc_at(TABLE, 0, DATA, 2, 0x1234, VIRTQ_DESC_F_NEXT);
    pdesc_at(TABLE, 1, DATA + 0x10, 6, 0, VIRTQ_DESC_F_INDIRECT);
    pdesc_at(TABLE, 2, DATA + 0x20, 1, 0, VIRTQ_DESC_F_WRITE);
    offer_packed(&(struct elem){TABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT}, 1, 4);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.head, 4);
    ck_assert_uint_eq(c.ndescs, 1); /* one ring entry */
    ck_assert_uint_eq(c.count, 3);
    ck_assert_ptr_eq(c.bufs[0].addr, host(DATA));
    ck_assert_ptr_eq(c.bufs[1].addr, host(DATA + 0x10));
    ck_assert_uint_eq(c.bufs[1].len, 6);
    ck_assert(!c.bufs[1].writable);
    ck_assert(c.bufs[2].writable);
    ck_assert_uint_eq(q.last_avail, 1);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 1), 0);
    ck_assert_int_eq(take_used(&len), 4);
    ck_assert_uint_eq(q.used_idx, 1);
}
END_TEST

static void expect_packed_einval(const char *what)
{
    struct virtq_chain c;
    uint16_t before = q.last_avail;
    bool wrap = q.avail_wrap;

    ck_assert_msg(virtq_pop(&q, &c) == -EINVAL, "%s accepted", what);
    ck_assert_msg(q.last_avail == before && q.avail_wrap == wrap, "%s moved the ring", what);
}

START_TEST(packed_chain_as_long_as_the_ring_is_taken_and_longer_refused)
{
    struct elem e[QSIZE];
    struct virtq_chain c;

    for (unsigned i = 0; i < QSIZE; i++)
        e[i] = (struct elem){DATA + i, 1, 0};
    offer_packed(e, QSIZE, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.ndescs, QSIZE);
    ck_assert_uint_eq(q.last_avail, 0);
    ck_assert(!q.avail_wrap); /* a whole lap */
    /* Every entry of this lap says NEXT: the chain would go round and round. */
    for (unsigned i = 0; i < QSIZE; i++)
        pdesc_at(DESC, i, DATA, 1, 0, VIRTQ_DESC_F_NEXT | F_USED);
    expect_packed_einval("a chain longer than the ring");
}
END_TEST

START_TEST(packed_pop_rejects_malformed_buffers)
{
    struct elem e[2] = {{TABLE, 16, VIRTQ_DESC_F_INDIRECT}, {DATA, 1, 0}};

    /* An ID the ring cannot have. */
    pdesc_at(DESC, 0, DATA, 1, QSIZE, F_AVAIL);
    expect_packed_einval("buffer ID == size");
    /* A buffer past the end of RAM, and one wrapping the address space. */
    pdesc_at(DESC, 0, MEM_BASE + MEM_SIZE - 4, 8, 0, F_AVAIL);
    expect_packed_einval("a buffer past RAM");
    pdesc_at(DESC, 0, UINT64_MAX - 3, 8, 0, F_AVAIL);
    expect_packed_einval("a buffer wrapping the address space");
    /* Indirect tables: empty, not whole descriptors, outside RAM, with NEXT, in a chain. */
    pdesc_at(DESC, 0, TABLE, 0, 0, F_AVAIL | VIRTQ_DESC_F_INDIRECT);
    expect_packed_einval("an empty indirect table");
    pdesc_at(DESC, 0, TABLE, 24, 0, F_AVAIL | VIRTQ_DESC_F_INDIRECT);
    expect_packed_einval("an indirect table of 1.5 descriptors");
    pdesc_at(DESC, 0, MEM_BASE + MEM_SIZE - 16, 32, 0, F_AVAIL | VIRTQ_DESC_F_INDIRECT);
    expect_packed_einval("an indirect table past RAM");
    pdesc_at(DESC, 0, TABLE, 16, 0, F_AVAIL | VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT);
    pdesc_at(DESC, 1, DATA, 1, 0, F_AVAIL);
    expect_packed_einval("an indirect entry with NEXT");
    memset(host(DESC), 0, 16 * QSIZE);
    e[0] = (struct elem){DATA, 1, 0};
    e[1] = (struct elem){TABLE, 16, VIRTQ_DESC_F_INDIRECT};
    offer_packed(e, 2, 1);
    expect_packed_einval("an indirect entry inside a chain");
    /* More buffers in a table than a chain holds. */
    memset(host(DESC), 0, 16 * QSIZE);
    for (unsigned i = 0; i <= VIRTQ_CHAIN_MAX; i++)
        pdesc_at(TABLE, i, DATA, 1, 0, 0);
    pdesc_at(DESC, 0, TABLE, 16 * (VIRTQ_CHAIN_MAX + 1), 0, F_AVAIL | VIRTQ_DESC_F_INDIRECT);
    expect_packed_einval("an indirect table longer than VIRTQ_CHAIN_MAX");
    /* The ring itself outside RAM, or a position past its end (a bad restore). */
    q.desc_gpa = MEM_BASE + MEM_SIZE;
    expect_packed_einval("a descriptor ring past RAM");
    q.desc_gpa = DESC;
    q.last_avail = QSIZE;
    expect_packed_einval("a position past the ring");
}
END_TEST

START_TEST(packed_push_rejects_what_no_pop_returned)
{
    struct virtq_chain c = {.head = 1, .ndescs = 1};

    c.head = QSIZE;
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), -EINVAL);
    c.head = 1;
    c.ndescs = 0;
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), -EINVAL);
    c.ndescs = QSIZE + 1;
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), -EINVAL);
    c.ndescs = 1;
    q.desc_gpa = MEM_BASE + MEM_SIZE;
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), -EINVAL);
    ck_assert_uint_eq(q.used_idx, 0);
    ck_assert(q.used_wrap);
}
END_TEST

/* Driver Event Suppression decides used-buffer interrupts: ENABLE always, DISABLE never,
 * DESC (with EVENT_IDX) when the entry at off_wrap was among those just used. */
START_TEST(packed_interrupts_follow_the_driver_event_suppression)
{
    struct virtq_chain c = {.head = 0, .ndescs = 1};

    set_driver_event(0, true, VIRTQ_EVENT_F_ENABLE);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    ck_assert(virtq_needs_interrupt(&q, 0));
    set_driver_event(0, true, VIRTQ_EVENT_F_DISABLE);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    ck_assert(!virtq_needs_interrupt(&q, 0));
    /* DESC means nothing without EVENT_IDX, and 3 is reserved: interrupt, to be safe. */
    set_driver_event(7, true, VIRTQ_EVENT_F_DESC);
    ck_assert(virtq_needs_interrupt(&q, 0));
    set_driver_event(7, true, 3);
    ck_assert(virtq_needs_interrupt(&q, 0));

    q.event_idx = true;
    ck_assert_uint_eq(q.used_idx, 2);
    set_driver_event(2, true, VIRTQ_EVENT_F_DESC);
    ck_assert(!virtq_needs_interrupt(&q, 0));         /* nothing used since the last look */
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0); /* entry 2 */
    ck_assert(virtq_needs_interrupt(&q, 0));
    c.ndescs = 3; /* entries 3-5 */
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    set_driver_event(6, true, VIRTQ_EVENT_F_DESC);
    ck_assert(!virtq_needs_interrupt(&q, 0)); /* not reached yet */
    c.ndescs = 1;
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0); /* entry 6 */
    ck_assert(virtq_needs_interrupt(&q, 0));
    /* Entries 7 and 0: across the wrap; the device's counter is 0 afterwards. */
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    ck_assert(!q.used_wrap);
    ck_assert_uint_eq(q.used_idx, 1);
    set_driver_event(7, true, VIRTQ_EVENT_F_DESC); /* 7 of the lap before */
    ck_assert(virtq_needs_interrupt(&q, 0));
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0); /* entries 1 and 2 */
    set_driver_event(0, false, VIRTQ_EVENT_F_DESC);   /* 0 of this lap, used before these */
    ck_assert(!virtq_needs_interrupt(&q, 0));
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0); /* entry 3 */
    set_driver_event(3, false, VIRTQ_EVENT_F_DESC);
    ck_assert(virtq_needs_interrupt(&q, 0));
    set_driver_event(3, true, VIRTQ_EVENT_F_DESC);    /* 3 of the lap before: long gone */
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0); /* entry 4 */
    ck_assert(!virtq_needs_interrupt(&q, 0));
    /* An offset no entry has: interrupt rather than never. */
    set_driver_event(QSIZE, false, VIRTQ_EVENT_F_DESC);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    ck_assert(virtq_needs_interrupt(&q, 0));
    /* A whole lap since the last look covers any entry. */
    set_driver_event(1, true, VIRTQ_EVENT_F_DESC);
    for (unsigned i = 0; i < QSIZE; i++)
        ck_assert_int_eq(virtq_push_chain(&q, &c, 0), 0);
    ck_assert(virtq_needs_interrupt(&q, 0));
}
END_TEST

/* With EVENT_IDX vmm names the next entry it will read in the Device Event Suppression
 * structure, so the driver kicks for it; without, that structure is left alone. */
START_TEST(packed_pop_publishes_its_position_with_event_idx)
{
    struct virtq_chain c;
    struct elem e = {DATA, 1, 0};

    guest_put16(&ram, DEVICE_AREA, 0xbeef);
    guest_put16(&ram, DEVICE_AREA + 2, 0xbeef);
    offer_packed(&e, 1, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(guest_get16(&ram, DEVICE_AREA), 0xbeef);
    ck_assert_uint_eq(guest_get16(&ram, DEVICE_AREA + 2), 0xbeef);
    q.event_idx = true;
    for (unsigned i = 1; i < QSIZE; i++) {
        offer_packed(&e, 1, 0);
        ck_assert_int_eq(virtq_pop(&q, &c), 1);
    }
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    /* Position 0 of the next lap: the wrap counter (bit 15) is now 0. */
    ck_assert_uint_eq(guest_get16(&ram, DEVICE_AREA), 0);
    ck_assert_uint_eq(guest_get16(&ram, DEVICE_AREA + 2), VIRTQ_EVENT_F_DESC);
    offer_packed(&e, 1, 0);
    offer_packed(&e, 1, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    ck_assert_uint_eq(guest_get16(&ram, DEVICE_AREA), 2);
}
END_TEST

/* The position saved on one queue and restored on another (a migration) continues the
 * ring exactly: the next buffer popped, its used entry where and how the driver expects. */
START_TEST(packed_position_save_and_restore_round_trip)
{
    struct virtq_position pos, back;
    struct virtq_chain c;
    struct virtq dst;
    uint32_t len, saved;
    const struct elem e[3] = {{DATA, 1, 0}, {DATA, 1, 0}, {DATA, 1, VIRTQ_DESC_F_WRITE}};

    for (unsigned round = 0; round < 3; round++) { /* 9 entries: one lap and 1 */
        offer_packed(e, 3, (uint16_t)round);
        ck_assert_int_eq(virtq_pop(&q, &c), 1);
        ck_assert_int_eq(virtq_push_chain(&q, &c, 1), 0);
        ck_assert_int_eq(take_used(&len), (int)round);
    }
    offer_packed(e, 2, 7); /* popped, not yet used: in flight across the migration */
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    virtq_get_position(&q, &pos);
    ck_assert_uint_eq(pos.last_avail, 3);
    ck_assert(!pos.avail_wrap);
    ck_assert_uint_eq(pos.used_idx, 1);
    ck_assert(!pos.used_wrap);
    /* As vhost-user carries a packed base: bits 0-14, 15, 16-30, 31. */
    saved = virtq_position_encode(&pos);
    ck_assert_uint_eq(saved, 3u | 1u << 16);
    virtq_position_decode(saved, &back);
    ck_assert_uint_eq(back.last_avail, pos.last_avail);
    ck_assert(back.avail_wrap == pos.avail_wrap);
    ck_assert_uint_eq(back.used_idx, pos.used_idx);
    ck_assert(back.used_wrap == pos.used_wrap);
    virtq_position_decode(0x80058002u, &back);
    ck_assert_uint_eq(back.last_avail, 2);
    ck_assert(back.avail_wrap);
    ck_assert_uint_eq(back.used_idx, 5);
    ck_assert(back.used_wrap);
    ck_assert_uint_eq(virtq_position_encode(&back), 0x80058002u);

    dst = (struct virtq){.size = QSIZE,
                         .packed = true,
                         .desc_gpa = DESC,
                         .avail_gpa = DRIVER_AREA,
                         .used_gpa = DEVICE_AREA,
                         .mem = &ram.access};
    virtq_reset_position(&dst);
    virtq_position_decode(saved, &back);
    ck_assert_int_eq(virtq_set_position(&dst, &back), 0);
    ck_assert_int_eq(virtq_pop(&dst, &c) == 0, 1); /* nothing new */
    c.head = 7;
    c.ndescs = 2;
    ck_assert_int_eq(virtq_push_chain(&dst, &c, 0), 0); /* the one in flight */
    ck_assert_int_eq(take_used(&len), 7);
    offer_packed(e, 3, 4);
    ck_assert_int_eq(virtq_pop(&dst, &c), 1);
    ck_assert_uint_eq(c.head, 4);
    ck_assert_int_eq(virtq_push_chain(&dst, &c, 1), 0);
    ck_assert_int_eq(take_used(&len), 4);
    ck_assert_uint_eq(dst.used_idx, drv.next_used);
    ck_assert(dst.used_wrap == drv.used_wrap);
    /* A position the ring cannot have is refused and changes nothing. */
    back = (struct virtq_position){.last_avail = QSIZE, .avail_wrap = true};
    ck_assert_int_eq(virtq_set_position(&dst, &back), -EINVAL);
    back = (struct virtq_position){.used_idx = QSIZE};
    ck_assert_int_eq(virtq_set_position(&dst, &back), -EINVAL);
    ck_assert_uint_eq(dst.last_avail, drv.next_avail);
    ck_assert(dst.avail_wrap == drv.avail_wrap);
}
END_TEST

/* The split API and behaviour are unchanged; the new calls work on split rings too. */
START_TEST(split_ring_position_and_push_chain)
{
    struct virtq_position pos;
    struct virtq_chain c;

    virtq_reset_position(&q);
    ck_assert(!q.avail_wrap && !q.used_wrap);
    set_desc(0, DATA, 4, VIRTQ_DESC_F_WRITE, 0);
    split_ring_offer(&ring, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(c.ndescs, 1);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 4), 0);
    ck_assert_uint_eq(guest_get16(&ram, USED + 2), 1);
    ck_assert_uint_eq(guest_get32(&ram, USED + 8), 4);
    q.last_avail = 0xfff0;
    q.used_idx = 0xffee;
    virtq_get_position(&q, &pos);
    ck_assert_uint_eq(pos.last_avail, 0xfff0);
    ck_assert_uint_eq(pos.used_idx, 0xffee);
    ck_assert(!pos.avail_wrap && !pos.used_wrap);
    pos.last_avail = 0x1234;
    ck_assert_int_eq(virtq_set_position(&q, &pos), 0); /* split indexes are free-running */
    ck_assert_uint_eq(q.last_avail, 0x1234);
}
END_TEST

/* ---- a dead device's packed ring position, read back from the ring ---- */

/* The driver makes n one-entry buffers available, IDs from its free list (LIFO, as
 * Linux's), and the device (q, in order) takes `take` of them and marks `use` used. */
static uint16_t free_ids[QSIZE];
static unsigned nfree;

static void recover_setup(void)
{
    packed_setup();
    nfree = 0;
    for (int id = QSIZE - 1; id >= 0; id--)
        free_ids[nfree++] = (uint16_t)id;
}

static void drv_offer(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct elem e = {DATA + 0x100ULL * i, 64, VIRTQ_DESC_F_WRITE};

        ck_assert_uint_gt(nfree, 0);
        offer_packed(&e, 1, free_ids[--nfree]);
    }
}

static struct virtq_chain inflight[QSIZE * 4];
static unsigned ninflight;

static void dev_take(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ck_assert_int_eq(virtq_pop(&q, &inflight[ninflight++]), 1);
}

static void dev_use(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ck_assert_int_eq(virtq_push_chain(&q, &inflight[i], 10), 0);
    memmove(inflight, inflight + n, (ninflight - n) * sizeof(inflight[0]));
    ninflight -= n;
}

/* The driver reads what is used and frees those IDs. */
static void drv_reclaim(void)
{
    uint32_t len;
    int id;

    while ((id = take_used(&len)) >= 0)
        free_ids[nfree++] = (uint16_t)id;
}

/* The position read back is the device's used position, avail and used alike. */
static void expect_recovered_at_used(void)
{
    struct virtq_position pos;
    const char *why = "";

    ck_assert_msg(virtq_recover_packed(&q, &pos, &why) == 0, "refused: %s", why);
    ck_assert_uint_eq(pos.last_avail, q.used_idx);
    ck_assert_uint_eq(pos.avail_wrap, q.used_wrap);
    ck_assert_uint_eq(pos.used_idx, q.used_idx);
    ck_assert_uint_eq(pos.used_wrap, q.used_wrap);
}

START_TEST(recover_fresh_ring_is_the_start)
{
    struct virtq_position pos;
    const char *why;

    ck_assert_int_eq(virtq_recover_packed(&q, &pos, &why), 0);
    ck_assert_uint_eq(pos.last_avail, 0);
    ck_assert(pos.avail_wrap && pos.used_wrap);
}
END_TEST

/* Laps of traffic: at every stop the device's used position comes back, whatever the
 * driver had queued, reclaimed or re-offered; in-flight buffers are taken again. */
START_TEST(recover_follows_the_device_over_laps)
{
    static const unsigned steps[][3] = {
        /* offered, taken, used */
        {3, 2, 1}, {4, 3, 4}, {2, 2, 1}, {1, 1, 2}, {5, 5, 3}, {3, 1, 3}, {2, 0, 0}, {0, 2, 2},
    };

    ninflight = 0;
    for (unsigned round = 0; round < 6; round++) {
        for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
            unsigned offer = steps[i][0] < nfree ? steps[i][0] : nfree;

            drv_offer(offer);
            for (unsigned t = 0; t < steps[i][1]; t++) {
                if (virtq_pop(&q, &inflight[ninflight]) != 1)
                    break;
                ninflight++;
            }
            dev_use(steps[i][2] < ninflight ? steps[i][2] : ninflight);
            expect_recovered_at_used();
            if (i % 2)
                drv_reclaim();
            expect_recovered_at_used();
        }
    }
}
END_TEST

START_TEST(recover_full_ring_of_available_buffers)
{
    drv_offer(QSIZE);
    dev_take(QSIZE);
    dev_use(QSIZE);
    drv_reclaim();
    drv_offer(QSIZE); /* every entry available again, a lap later */
    expect_recovered_at_used();
    dev_take(3);
    expect_recovered_at_used(); /* taken, not used: taken again after the restart */
}
END_TEST

/* A chain's later entries keep the driver's flags once the device overwrote its first:
 * where the last used buffer ends is not in memory. Its middle entries say NEXT. */
START_TEST(recover_refuses_chained_descriptors)
{
    struct elem three[3] = {{DATA, 10, 0}, {DATA + 0x100, 10, 0}, {DATA + 0x200, 64, 0}};
    struct virtq_chain c;
    struct virtq_position pos;
    const char *why;

    offer_packed(three, 3, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 1), 0);
    ck_assert_int_eq(virtq_recover_packed(&q, &pos, &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "chains"));
    drv_offer(1); /* and an available chain too */
    ck_assert_int_eq(virtq_recover_packed(&q, &pos, &why), -EINVAL);
}
END_TEST

/* The blind spot, stated in README ("Backend restarts"): a two-entry chain used last
 * leaves its first entry used (NEXT overwritten) and its last one as the driver wrote
 * it, no NEXT: memory reads like a one-entry buffer used and a new one available (which
 * a driver reusing the freed ID could write identically). The reading is one entry off.
 * Linux chains only when it cannot allocate an indirect table; vmm reads no packed ring
 * without VIRTIO_F_RING_INDIRECT_DESC (net_recover_packed). */
START_TEST(recover_blind_spot_two_entry_chain)
{
    struct elem two[2] = {{DATA, 10, 0}, {DATA + 0x100, 64, 0}};
    struct virtq_chain c;
    struct virtq_position pos;
    const char *why;

    offer_packed(two, 2, 0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_int_eq(virtq_push_chain(&q, &c, 1), 0);
    ck_assert_int_eq(virtq_recover_packed(&q, &pos, &why), 0);
    ck_assert_uint_eq(q.used_idx, 2);
    ck_assert_uint_eq(pos.last_avail, 1);
}
END_TEST

/* A device that died publishing a batch (DPDK writes the batch's first used flags last):
 * a used entry after an available one. */
START_TEST(recover_refuses_a_half_published_batch)
{
    struct virtq_position pos;
    const char *why;

    drv_offer(4);
    dev_take(3);
    dev_use(3);
    guest_put16(&ram, DESC + 14, F_AVAIL); /* entry 0 back to available (lap 1) */
    ck_assert_int_eq(virtq_recover_packed(&q, &pos, &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "before a used one"));
}
END_TEST

START_TEST(recover_refuses_a_ring_outside_memory)
{
    struct virtq_position pos;
    const char *why;

    q.desc_gpa = MEM_BASE + MEM_SIZE - 16;
    ck_assert_int_eq(virtq_recover_packed(&q, &pos, &why), -EINVAL);
    q.desc_gpa = DESC;
    q.packed = false;
    ck_assert_int_eq(virtq_recover_packed(&q, &pos, &why), -EINVAL);
}
END_TEST

static Suite *virtqueue_suite(void)
{
    Suite *s = suite_create("virtqueue");
    TCase *layout = tcase_create("layout");
    TCase *pop = tcase_create("pop");
    TCase *bad = tcase_create("malformed");
    TCase *used = tcase_create("used");
    TCase *copy = tcase_create("copy");
    TCase *packed = tcase_create("packed");
    TCase *recover = tcase_create("recover");

    tcase_add_checked_fixture(layout, setup, teardown);
    tcase_add_test(layout, layout_accepts_good_rings);
    tcase_add_test(layout, layout_rejects_sizes_not_a_power_of_two);
    tcase_add_test(layout, layout_rejects_misaligned_rings);
    tcase_add_test(layout, layout_rejects_rings_outside_memory);
    suite_add_tcase(s, layout);

    tcase_add_checked_fixture(pop, setup, teardown);
    tcase_add_test(pop, pop_empty_queue);
    tcase_add_test(pop, pop_single_descriptor);
    tcase_add_test(pop, pop_chain_with_next);
    tcase_add_test(pop, pop_indirect_table);
    tcase_add_test(pop, pop_indirect_table_of_chain_max);
    tcase_add_test(pop, pop_zero_length_buffer_is_not_dereferenced);
    tcase_add_test(pop, pop_takes_entries_in_order_across_the_index_wrap);
    tcase_add_test(pop, pop_accepts_a_full_ring);
    suite_add_tcase(s, pop);

    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, pop_rejects_head_out_of_range);
    tcase_add_test(bad, pop_rejects_next_out_of_range);
    tcase_add_test(bad, pop_rejects_descriptor_loops);
    tcase_add_test(bad, pop_rejects_buffers_outside_memory);
    tcase_add_test(bad, pop_rejects_indirect_inside_indirect);
    tcase_add_test(bad, pop_rejects_bad_indirect_lengths);
    tcase_add_test(bad, pop_rejects_loops_and_overruns_inside_indirect);
    tcase_add_test(bad, pop_rejects_chains_longer_than_chain_max);
    tcase_add_test(bad, pop_rejects_avail_idx_too_far_ahead);
    tcase_add_test(bad, pop_rejects_rings_outside_memory);
    suite_add_tcase(s, bad);

    tcase_add_checked_fixture(used, setup, teardown);
    tcase_add_test(used, push_writes_used_elements_and_index);
    tcase_add_test(used, push_wraps_the_ring_and_the_index);
    tcase_add_test(used, push_outside_memory_fails_cleanly);
    tcase_add_test(used, interrupt_without_event_idx_follows_no_interrupt_flag);
    tcase_add_test(used, interrupt_with_event_idx_follows_used_event);
    tcase_add_test(used, pop_publishes_avail_event_with_event_idx);
    tcase_add_test(used, pop_leaves_avail_event_alone_without_event_idx);
    suite_add_tcase(s, used);

    tcase_add_checked_fixture(copy, setup, teardown);
    tcase_add_test(copy, chain_read_gathers_readable_buffers);
    tcase_add_test(copy, chain_write_scatters_into_writable_buffers);
    tcase_add_test(copy, chain_copies_with_no_buffers_of_a_direction);
    tcase_add_test(copy, split_ring_position_and_push_chain);
    suite_add_tcase(s, copy);

    tcase_add_checked_fixture(packed, packed_setup, teardown);
    tcase_add_test(packed, packed_layout_takes_any_size_and_checks_each_part);
    tcase_add_test(packed, packed_pop_and_push_one_buffer);
    tcase_add_test(packed, packed_chain_with_next_takes_the_last_id);
    tcase_add_test(packed, packed_commands_across_the_ring_wrap);
    tcase_add_test(packed, packed_indirect_table);
    tcase_add_test(packed, packed_chain_as_long_as_the_ring_is_taken_and_longer_refused);
    tcase_add_test(packed, packed_pop_rejects_malformed_buffers);
    tcase_add_test(packed, packed_push_rejects_what_no_pop_returned);
    tcase_add_test(packed, packed_interrupts_follow_the_driver_event_suppression);
    tcase_add_test(packed, packed_pop_publishes_its_position_with_event_idx);
    tcase_add_test(packed, packed_position_save_and_restore_round_trip);
    suite_add_tcase(s, packed);
    tcase_add_checked_fixture(recover, recover_setup, teardown);
    tcase_add_test(recover, recover_fresh_ring_is_the_start);
    tcase_add_test(recover, recover_follows_the_device_over_laps);
    tcase_add_test(recover, recover_full_ring_of_available_buffers);
    tcase_add_test(recover, recover_refuses_chained_descriptors);
    tcase_add_test(recover, recover_blind_spot_two_entry_chain);
    tcase_add_test(recover, recover_refuses_a_half_published_batch);
    tcase_add_test(recover, recover_refuses_a_ring_outside_memory);
    suite_add_tcase(s, recover);
    return s;
}

CHECK_MAIN(virtqueue_suite)
