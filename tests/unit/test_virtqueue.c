/* Split virtqueues as vmm walks them for the control queue: rings laid out by
 * hand in a fake guest memory, well-formed chains (plain, NEXT, indirect) and
 * every malformed shape a guest could write, which must give -EINVAL and never
 * touch memory outside guest RAM. */
#include "../../devices/virtqueue.h"

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

struct fake_mem {
    uint8_t *buf;
    uint64_t base, size;
};

static struct fake_mem fm;
static struct guest_mem_access mem;
static struct virtq q;

/* Bounds-checked like the real memory map: NULL unless [gpa, gpa+len) is RAM. */
static void *mem_ptr(void *opaque, uint64_t gpa, uint64_t len)
{
    struct fake_mem *m = opaque;

    if (gpa < m->base || len > m->size || gpa - m->base > m->size - len)
        return NULL;
    return m->buf + (gpa - m->base);
}

static uint8_t *host(uint64_t gpa)
{
    ck_assert_uint_ge(gpa, MEM_BASE);
    ck_assert_uint_lt(gpa, MEM_BASE + MEM_SIZE);
    return fm.buf + (gpa - MEM_BASE);
}

static void put16(uint64_t gpa, uint16_t v)
{
    memcpy(host(gpa), &v, 2);
}

static uint16_t get16(uint64_t gpa)
{
    uint16_t v;

    memcpy(&v, host(gpa), 2);
    return v;
}

static uint32_t get32(uint64_t gpa)
{
    uint32_t v;

    memcpy(&v, host(gpa), 4);
    return v;
}

/* A descriptor in the table at table_gpa. */
static void set_desc_at(uint64_t table_gpa, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                        uint16_t next)
{
    uint8_t *d = host(table_gpa + 16ULL * i);

    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    set_desc_at(DESC, i, addr, len, flags, next);
}

static uint16_t avail_idx(void)
{
    return get16(AVAIL + 2);
}

/* The guest offers the chain starting at head. */
static void offer(uint16_t head)
{
    uint16_t idx = avail_idx();

    put16(AVAIL + 4 + 2 * (idx % QSIZE), head);
    put16(AVAIL + 2, (uint16_t)(idx + 1));
}

static void setup(void)
{
    fm.buf = calloc(1, MEM_SIZE);
    ck_assert_ptr_nonnull(fm.buf);
    fm.base = MEM_BASE;
    fm.size = MEM_SIZE;
    mem = (struct guest_mem_access){.ptr = mem_ptr, .opaque = &fm};
    q = (struct virtq){
        .size = QSIZE, .desc_gpa = DESC, .avail_gpa = AVAIL, .used_gpa = USED, .mem = &mem};
}

static void teardown(void)
{
    free(fm.buf);
    fm.buf = NULL;
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
    offer(0);
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
    offer(2);
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
    set_desc_at(TABLE, 0, DATA, 2, VIRTQ_DESC_F_NEXT, 2);
    set_desc_at(TABLE, 2, DATA + 0x10, 6, VIRTQ_DESC_F_NEXT, 1);
    set_desc_at(TABLE, 1, DATA + 0x20, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(3);
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
        set_desc_at(TABLE, i, DATA + i, 1,
                    i + 1 < VIRTQ_CHAIN_MAX ? VIRTQ_DESC_F_NEXT : VIRTQ_DESC_F_WRITE,
                    (uint16_t)(i + 1));
    set_desc(0, TABLE, 16 * VIRTQ_CHAIN_MAX, VIRTQ_DESC_F_INDIRECT, 0);
    offer(0);
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
    offer(0);
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
    put16(AVAIL + 2, 0xfffe);
    offer(4); /* slot 6 */
    offer(1); /* slot 7 */
    offer(6); /* slot 0, idx wraps to 1 */
    ck_assert_uint_eq(avail_idx(), 1);
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
        offer((uint16_t)(QSIZE - 1 - i));
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
    offer(QSIZE);
    expect_einval("head == size");
    put16(AVAIL + 4, 0xffff);
    expect_einval("head 0xffff");
}
END_TEST

START_TEST(pop_rejects_next_out_of_range)
{
    set_desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, QSIZE);
    offer(0);
    expect_einval("next == size");
}
END_TEST

START_TEST(pop_rejects_descriptor_loops)
{
    set_desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    set_desc(1, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    offer(0);
    expect_einval("0 -> 1 -> 0");
    set_desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    expect_einval("0 -> 0");
}
END_TEST

START_TEST(pop_rejects_buffers_outside_memory)
{
    set_desc(0, MEM_BASE + MEM_SIZE - 4, 8, 0, 0);
    offer(0);
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
    set_desc_at(TABLE, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    set_desc_at(TABLE, 1, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
    set_desc_at(TABLE + 0x100, 0, DATA, 4, 0, 0);
    offer(0);
    expect_einval("nested indirect table");
}
END_TEST

START_TEST(pop_rejects_bad_indirect_lengths)
{
    set_desc_at(TABLE, 0, DATA, 4, 0, 0);
    set_desc_at(TABLE, 1, DATA, 4, 0, 0);
    set_desc(0, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
    offer(0);
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
    set_desc_at(TABLE, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    set_desc_at(TABLE, 1, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    offer(0);
    expect_einval("loop in an indirect table");
    set_desc_at(TABLE, 1, DATA, 4, VIRTQ_DESC_F_NEXT, 2);
    expect_einval("next past the indirect table");
}
END_TEST

START_TEST(pop_rejects_chains_longer_than_chain_max)
{
    for (unsigned i = 0; i <= VIRTQ_CHAIN_MAX; i++)
        set_desc_at(TABLE, i, DATA + i, 1, i < VIRTQ_CHAIN_MAX ? VIRTQ_DESC_F_NEXT : 0,
                    (uint16_t)(i + 1));
    set_desc(0, TABLE, 16 * (VIRTQ_CHAIN_MAX + 1), VIRTQ_DESC_F_INDIRECT, 0);
    offer(0);
    expect_einval("65 buffers");
}
END_TEST

START_TEST(pop_rejects_avail_idx_too_far_ahead)
{
    struct virtq_chain c;

    for (unsigned i = 0; i < QSIZE; i++)
        set_desc(i, DATA, 4, 0, 0);
    put16(AVAIL + 2, QSIZE + 1);
    expect_einval("avail idx size+1 ahead");
    put16(AVAIL + 2, 0x8000);
    expect_einval("avail idx 0x8000 ahead");
    put16(AVAIL + 2, 0xffff); /* behind by one reads as 0xffff ahead */
    expect_einval("avail idx behind");
    put16(AVAIL + 2, QSIZE);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
}
END_TEST

START_TEST(pop_rejects_rings_outside_memory)
{
    struct virtq_chain c;

    set_desc(0, DATA, 4, 0, 0);
    offer(0);
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
    ck_assert_uint_eq(get32(USED + 4), 5);
    ck_assert_uint_eq(get32(USED + 8), 77);
    ck_assert_uint_eq(get16(USED + 2), 1);
    ck_assert_uint_eq(q.used_idx, 1);
    ck_assert_int_eq(virtq_push(&q, 2, 0x12345678), 0);
    ck_assert_uint_eq(get32(USED + 12), 2);
    ck_assert_uint_eq(get32(USED + 16), 0x12345678);
    ck_assert_uint_eq(get16(USED + 2), 2);
    ck_assert_uint_eq(get16(USED + 0), 0); /* flags untouched */
}
END_TEST

START_TEST(push_wraps_the_ring_and_the_index)
{
    q.used_idx = 0xffff; /* slot 7 */
    ck_assert_int_eq(virtq_push(&q, 3, 9), 0);
    ck_assert_uint_eq(get32(USED + 4 + 8 * 7), 3);
    ck_assert_uint_eq(get32(USED + 4 + 8 * 7 + 4), 9);
    ck_assert_uint_eq(get16(USED + 2), 0);
    ck_assert_int_eq(virtq_push(&q, 4, 10), 0);
    ck_assert_uint_eq(get32(USED + 4), 4);
    ck_assert_uint_eq(get16(USED + 2), 1);
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
    put16(AVAIL, 0);
    ck_assert(virtq_needs_interrupt(&q, 0));
    put16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
    ck_assert(!virtq_needs_interrupt(&q, 0));
    put16(AVAIL + 4 + 2 * QSIZE, 0); /* used_event means nothing without EVENT_IDX */
    ck_assert(!virtq_needs_interrupt(&q, 0));
}
END_TEST

START_TEST(interrupt_with_event_idx_follows_used_event)
{
    const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;

    q.event_idx = true;
    put16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT); /* ignored with EVENT_IDX */
    q.used_idx = 1;
    put16(used_event, 0);
    ck_assert(virtq_needs_interrupt(&q, 0));
    put16(used_event, 1);
    ck_assert(!virtq_needs_interrupt(&q, 0));
    q.used_idx = 3;
    put16(used_event, 1);
    ck_assert(virtq_needs_interrupt(&q, 0)); /* stepped over 1 */
    ck_assert(!virtq_needs_interrupt(&q, 2));
    put16(used_event, 2);
    ck_assert(virtq_needs_interrupt(&q, 2));
    /* Across the 16-bit wrap. */
    q.used_idx = 1;
    put16(used_event, 0xffff);
    ck_assert(virtq_needs_interrupt(&q, 0xfffe));
    put16(used_event, 2);
    ck_assert(!virtq_needs_interrupt(&q, 0xfffe));
}
END_TEST

START_TEST(pop_publishes_avail_event_with_event_idx)
{
    const uint64_t avail_event = USED + 4 + 8 * QSIZE;
    struct virtq_chain c;

    q.event_idx = true;
    put16(avail_event, 0xbeef);
    set_desc(0, DATA, 4, 0, 0);
    set_desc(1, DATA, 4, 0, 0);
    offer(0);
    offer(1);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(get16(avail_event), 0); /* published before looking */
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(get16(avail_event), 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    /* The empty pop that ends a run leaves the guest told how far vmm read. */
    ck_assert_uint_eq(get16(avail_event), 2);
    ck_assert_uint_eq(get16(avail_event), q.last_avail);
}
END_TEST

START_TEST(pop_leaves_avail_event_alone_without_event_idx)
{
    const uint64_t avail_event = USED + 4 + 8 * QSIZE;
    struct virtq_chain c;

    put16(avail_event, 0xbeef);
    set_desc(0, DATA, 4, 0, 0);
    offer(0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_int_eq(virtq_pop(&q, &c), 0);
    ck_assert_uint_eq(get16(avail_event), 0xbeef);
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
    offer(0);
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
    offer(0);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(virtq_chain_read(&c, out, sizeof(out)), 0);
    set_desc(1, DATA, 4, 0, 0);
    offer(1);
    ck_assert_int_eq(virtq_pop(&q, &c), 1);
    ck_assert_uint_eq(virtq_chain_write(&c, "abcd", 4), 0);
    ck_assert_uint_eq(*host(DATA), 0);
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
    suite_add_tcase(s, copy);
    return s;
}

CHECK_MAIN(virtqueue_suite)
