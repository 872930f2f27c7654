#include "virtqueue.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} __attribute__((packed));
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq descriptor is 16 bytes");

/* Ring fields are read through volatile pointers: the guest writes them concurrently. */
static volatile uint16_t *avail_field(struct virtq *q, uint64_t offset)
{
    return guest_mem_ptr(q->mem, q->avail_gpa + offset, 2);
}

static volatile uint16_t *used_field(struct virtq *q, uint64_t offset)
{
    return guest_mem_ptr(q->mem, q->used_gpa + offset, 2);
}

/* One buffer of a chain, its whole extent inside guest RAM (a zero-length one is never
 * dereferenced, so its address is not checked). */
static int chain_add(struct virtq *q, struct virtq_chain *c, uint64_t addr, uint32_t len,
                     bool writable)
{
    uint8_t *p;

    if (c->count >= VIRTQ_CHAIN_MAX)
        return -EINVAL;
    p = len ? guest_mem_ptr(q->mem, addr, len) : NULL;
    if (len && !p)
        return -EINVAL;
    c->bufs[c->count++] = (struct virtq_buf){.addr = p, .len = len, .writable = writable};
    return 0;
}

/* Walks a table of n descriptors starting at index i (the ring or an indirect table). */
static int walk_table(struct virtq *q, struct virtq_chain *c, uint64_t table_gpa, uint32_t n,
                      uint16_t i, bool indirect)
{
    const struct virtq_desc *table = guest_mem_ptr(q->mem, table_gpa, (uint64_t)n * 16);

    if (!table)
        return -EINVAL;
    for (uint32_t steps = 0;; steps++) {
        struct virtq_desc d;
        int ret;

        if (i >= n || steps >= n)
            return -EINVAL; /* out of the table, or a loop */
        memcpy(&d, &table[i], sizeof(d));
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            if (indirect || (d.flags & VIRTQ_DESC_F_NEXT) || d.len % 16 || !d.len ||
                d.len / 16 > VIRTQ_MAX_SIZE)
                return -EINVAL;
            return walk_table(q, c, d.addr, d.len / 16, 0, true);
        }
        ret = chain_add(q, c, d.addr, d.len, d.flags & VIRTQ_DESC_F_WRITE);
        if (ret)
            return ret;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        i = d.next;
    }
}

static int split_check_layout(const struct virtq *q)
{
    uint64_t n = q->size;

    if (!n || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
        return -EINVAL;
    if (q->desc_gpa % 16 || q->avail_gpa % 2 || q->used_gpa % 4)
        return -EINVAL;
    if (!guest_mem_ptr(q->mem, q->desc_gpa, 16 * n) ||
        !guest_mem_ptr(q->mem, q->avail_gpa, 6 + 2 * n) ||
        !guest_mem_ptr(q->mem, q->used_gpa, 6 + 8 * n))
        return -EINVAL;
    return 0;
}

/* With EVENT_IDX the guest kicks only past the index the device published in
 * the used ring's avail_event: publish how far vmm has read, before looking. */
static void publish_avail_event(struct virtq *q)
{
    volatile uint16_t *avail_event;

    if (!q->event_idx)
        return;
    avail_event = used_field(q, 4 + 8ULL * q->size);
    if (avail_event) {
        *avail_event = q->last_avail;
        guest_mem_written(q->mem, (const void *)avail_event, 2);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static int split_pop(struct virtq *q, struct virtq_chain *chain)
{
    volatile uint16_t *idx = avail_field(q, 2);
    volatile uint16_t *slot;
    uint16_t avail_idx, head;

    if (!idx || !q->size)
        return -EINVAL;
    publish_avail_event(q);
    avail_idx = *idx;
    if (avail_idx == q->last_avail)
        return 0;
    if ((uint16_t)(avail_idx - q->last_avail) > q->size)
        return -EINVAL;
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* read the entry after the index */
    slot = avail_field(q, 4 + 2ULL * (q->last_avail % q->size));
    if (!slot)
        return -EINVAL;
    head = *slot;
    chain->head = head;
    chain->ndescs = 1;
    chain->count = 0;
    chain->mem = q->mem;
    if (head >= q->size || walk_table(q, chain, q->desc_gpa, q->size, head, false))
        return -EINVAL;
    q->last_avail++;
    return 1;
}

static int split_push(struct virtq *q, uint16_t head, uint32_t written)
{
    uint64_t off = 4 + 8ULL * (q->used_idx % q->size);
    uint8_t *elem = guest_mem_ptr(q->mem, q->used_gpa + off, 8);
    volatile uint16_t *idx = used_field(q, 2);
    uint32_t id = head;

    if (!elem || !idx)
        return -EINVAL;
    memcpy(elem, &id, 4);
    memcpy(elem + 4, &written, 4);
    q->used_idx++;
    __atomic_thread_fence(__ATOMIC_RELEASE); /* the entry before the index */
    *idx = q->used_idx;
    guest_mem_written(q->mem, elem, 8);
    guest_mem_written(q->mem, (const void *)idx, 2);
    return 0;
}

static bool split_needs_interrupt(struct virtq *q, uint16_t old_used)
{
    volatile uint16_t *flags = avail_field(q, 0);
    volatile uint16_t *used_event;
    uint16_t event;

    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!q->event_idx)
        return !flags || !(*flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
    used_event = avail_field(q, 4 + 2ULL * q->size);
    if (!used_event)
        return true;
    event = *used_event;
    /* vring_need_event(): did used_idx step over the guest's event index? */
    return (uint16_t)(q->used_idx - event - 1) < (uint16_t)(q->used_idx - old_used);
}

/* ---- packed rings ---- */

struct pvirtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct pvirtq_desc) == 16, "packed descriptor is 16 bytes");

#define PACKED_IDX_MASK 0x7fffu
#define PACKED_WRAP_BIT 15
#define EVENT_FLAGS_MASK 3u

/* Both event suppression structures: off_wrap (bits 0-14 offset, bit 15 wrap), flags. */
static volatile uint16_t *event_field(struct virtq *q, uint64_t area_gpa)
{
    return guest_mem_ptr(q->mem, area_gpa, 4);
}

static uint16_t ring_next(const struct virtq *q, uint16_t pos, uint16_t n, bool *wrap)
{
    uint32_t next = (uint32_t)pos + n;

    if (next >= q->size) {
        next -= q->size;
        *wrap = !*wrap;
    }
    return (uint16_t)next;
}

static bool packed_desc_avail(uint16_t flags, bool wrap)
{
    return !!(flags & VIRTQ_DESC_F_AVAIL) == wrap && !!(flags & VIRTQ_DESC_F_USED) != wrap;
}

static int packed_check_layout(const struct virtq *q)
{
    uint64_t n = q->size;

    if (!n || n > VIRTQ_MAX_SIZE)
        return -EINVAL;
    if (q->desc_gpa % 16 || q->avail_gpa % 4 || q->used_gpa % 4)
        return -EINVAL;
    if (!guest_mem_ptr(q->mem, q->desc_gpa, 16 * n) || !guest_mem_ptr(q->mem, q->avail_gpa, 4) ||
        !guest_mem_ptr(q->mem, q->used_gpa, 4))
        return -EINVAL;
    return 0;
}

/* With EVENT_IDX the driver kicks only when it makes available the descriptor the
 * device names in its event suppression structure: name the next one vmm will read,
 * before looking at it (the packed form of the split ring's avail_event). */
static void publish_packed_event(struct virtq *q)
{
    volatile uint16_t *ev;

    if (!q->event_idx)
        return;
    ev = event_field(q, q->used_gpa);
    if (ev) {
        ev[0] = (uint16_t)(q->last_avail | (unsigned)q->avail_wrap << PACKED_WRAP_BIT);
        __atomic_thread_fence(__ATOMIC_RELEASE); /* the offset before the flags */
        ev[1] = VIRTQ_EVENT_F_DESC;
        guest_mem_written(q->mem, (const void *)ev, 4);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static int packed_read_desc(struct virtq *q, uint16_t pos, struct pvirtq_desc *d)
{
    const void *p = guest_mem_ptr(q->mem, q->desc_gpa + 16ULL * pos, 16);

    if (!p)
        return -EINVAL;
    memcpy(d, p, sizeof(*d));
    return 0;
}

/* An indirect table is read whole, in order: in it only WRITE counts, the other flags
 * and the buffer IDs are reserved and ignored (NEXT too). */
static int packed_walk_indirect(struct virtq *q, struct virtq_chain *c,
                                const struct pvirtq_desc *ind)
{
    uint32_t n = ind->len / 16;
    const struct pvirtq_desc *table;

    if (!n || ind->len % 16 || n > VIRTQ_MAX_SIZE)
        return -EINVAL;
    table = guest_mem_ptr(q->mem, ind->addr, ind->len);
    if (!table)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        struct pvirtq_desc d;
        int ret;

        memcpy(&d, &table[i], sizeof(d));
        ret = chain_add(q, c, d.addr, d.len, d.flags & VIRTQ_DESC_F_WRITE);
        if (ret)
            return ret;
    }
    return 0;
}

/* The chain starting at last_avail: consecutive ring entries linked by NEXT, at most
 * the ring's size of them, or one INDIRECT entry alone. The buffer ID is the last
 * entry's. */
static int packed_walk(struct virtq *q, struct virtq_chain *c)
{
    uint16_t pos = q->last_avail;
    bool wrap = q->avail_wrap;

    for (uint32_t n = 1; n <= q->size; n++) {
        struct pvirtq_desc d;
        int ret = packed_read_desc(q, pos, &d);

        if (!ret && (d.flags & VIRTQ_DESC_F_INDIRECT))
            ret =
                n == 1 && !(d.flags & VIRTQ_DESC_F_NEXT) ? packed_walk_indirect(q, c, &d) : -EINVAL;
        else if (!ret)
            ret = chain_add(q, c, d.addr, d.len, d.flags & VIRTQ_DESC_F_WRITE);
        if (ret)
            return ret;
        if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
            c->head = d.id;
            c->ndescs = (uint16_t)n;
            return d.id < q->size ? 0 : -EINVAL;
        }
        pos = ring_next(q, pos, 1, &wrap);
    }
    return -EINVAL; /* longer than the ring: the driver may not, and it would loop */
}

static int packed_pop(struct virtq *q, struct virtq_chain *chain)
{
    volatile uint16_t *flags;
    int ret;

    if (!q->size || q->last_avail >= q->size)
        return -EINVAL;
    publish_packed_event(q);
    flags = guest_mem_ptr(q->mem, q->desc_gpa + 16ULL * q->last_avail + 14, 2);
    if (!flags)
        return -EINVAL;
    if (!packed_desc_avail(*flags, q->avail_wrap))
        return 0;
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the descriptors after their flags */
    chain->count = 0;
    chain->mem = q->mem;
    ret = packed_walk(q, chain);
    if (ret)
        return ret;
    q->last_avail = ring_next(q, q->last_avail, chain->ndescs, &q->avail_wrap);
    return 1;
}

/* One used descriptor for the whole chain, at used_idx, its flags last: then the
 * position skips the chain's ring entries, as the driver expects. */
static int packed_push(struct virtq *q, const struct virtq_chain *chain, uint32_t written)
{
    uint8_t *d;
    uint16_t id = chain->head;
    uint16_t flags = (q->used_wrap ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0) |
                     (written ? VIRTQ_DESC_F_WRITE : 0);

    if (!chain->ndescs || chain->ndescs > q->size || id >= q->size || q->used_idx >= q->size)
        return -EINVAL;
    d = guest_mem_ptr(q->mem, q->desc_gpa + 16ULL * q->used_idx, 16);
    if (!d)
        return -EINVAL;
    memcpy(d + offsetof(struct pvirtq_desc, len), &written, 4);
    memcpy(d + offsetof(struct pvirtq_desc, id), &id, 2);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* the element before its flags */
    *(volatile uint16_t *)(d + offsetof(struct pvirtq_desc, flags)) = flags;
    guest_mem_written(q->mem, d, 16);
    q->used_idx = ring_next(q, q->used_idx, chain->ndescs, &q->used_wrap);
    if (q->used_unsignalled < UINT32_MAX - chain->ndescs)
        q->used_unsignalled += chain->ndescs;
    return 0;
}

/* RING_EVENT_FLAGS_DESC: did the entries used since the last look cover the one the
 * driver named? Positions counted as the driver does (vring_need_event on the packed
 * ring): this lap from 0, an event in the other lap one ring size lower. */
static bool packed_event_crossed(const struct virtq *q, uint16_t off_wrap, uint32_t used)
{
    int32_t off = off_wrap & PACKED_IDX_MASK;
    bool wrap = off_wrap >> PACKED_WRAP_BIT;
    int32_t now = q->used_idx, before = now - (int32_t)used;
    int32_t event = off - (wrap == q->used_wrap ? 0 : q->size);

    if (!used)
        return false;
    if (used >= q->size || off >= q->size)
        return true; /* a whole lap, or an offset no entry has: better a spare interrupt */
    return event >= before && event < now;
}

static bool packed_needs_interrupt(struct virtq *q)
{
    uint32_t used = q->used_unsignalled;
    volatile uint16_t *ev;
    uint16_t off_wrap, flags;

    q->used_unsignalled = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the used flags before the driver's event */
    ev = event_field(q, q->avail_gpa);
    if (!ev)
        return true;
    off_wrap = ev[0];
    flags = ev[1] & EVENT_FLAGS_MASK;
    if (flags == VIRTQ_EVENT_F_DISABLE)
        return false;
    if (flags == VIRTQ_EVENT_F_DESC && q->event_idx)
        return packed_event_crossed(q, off_wrap, used);
    return true; /* ENABLE; DESC without EVENT_IDX or the reserved value: not to be trusted */
}

/* ---- a dead device's packed ring position ---- */

static int recover_flags(const struct virtq *q, uint16_t i, uint16_t *flags)
{
    const volatile uint16_t *f = guest_mem_ptr(q->mem, q->desc_gpa + 16ULL * i + 14, 2);

    if (!f)
        return -EINVAL;
    *flags = *f;
    return 0;
}

static bool flag_set(uint16_t flags, uint16_t bit)
{
    return (flags & bit) != 0;
}

/* The driver's next entry: slots it wrote in this lap carry AVAIL = its wrap counter,
 * the rest the previous lap's, so AVAIL changes at most once along the ring. */
static int recover_driver_position(const struct virtq *q, uint16_t *idx, bool *wrap,
                                   const char **why)
{
    uint16_t f0, f, a = 0;
    bool changed = false;

    if (recover_flags(q, 0, &f0))
        return -EINVAL;
    for (uint32_t i = 1; i < q->size; i++) {
        if (recover_flags(q, (uint16_t)i, &f))
            return -EINVAL;
        if (flag_set(f, VIRTQ_DESC_F_AVAIL) != flag_set(f0, VIRTQ_DESC_F_AVAIL) && !changed) {
            changed = true;
            a = (uint16_t)i;
        } else if (flag_set(f, VIRTQ_DESC_F_AVAIL) == flag_set(f0, VIRTQ_DESC_F_AVAIL) && changed) {
            *why = "the AVAIL flags change lap more than once along the ring";
            return -EINVAL;
        }
    }
    *idx = a;
    /* Without a change the driver just finished a lap: it goes on at 0 in the next. */
    *wrap = changed ? flag_set(f0, VIRTQ_DESC_F_AVAIL) : !flag_set(f0, VIRTQ_DESC_F_AVAIL);
    return 0;
}

static void ring_back(const struct virtq *q, uint16_t *idx, bool *wrap)
{
    if (*idx == 0) {
        *idx = q->size;
        *wrap = !*wrap;
    }
    (*idx)--;
}

int virtq_recover_packed(const struct virtq *q, struct virtq_position *pos, const char **why)
{
    uint16_t idx, flags;
    bool wrap, used, seen_used = false;
    int ret;

    *why = "the ring is outside guest memory";
    if (!q->packed || !q->size || q->size > VIRTQ_MAX_SIZE)
        return -EINVAL;
    ret = recover_driver_position(q, &idx, &wrap, why);
    if (ret)
        return ret;
    *pos = (struct virtq_position){.last_avail = idx, .avail_wrap = wrap};
    /* Backwards from the driver's next entry, one ring's length: available, then used. */
    for (uint32_t n = 0; n < q->size; n++) {
        ring_back(q, &idx, &wrap);
        if (recover_flags(q, idx, &flags))
            return -EINVAL;
        if (flag_set(flags, VIRTQ_DESC_F_NEXT)) {
            *why = "the driver chains descriptors (NEXT): a used chain's end is not in memory";
            return -EINVAL;
        }
        used = flag_set(flags, VIRTQ_DESC_F_AVAIL) == flag_set(flags, VIRTQ_DESC_F_USED);
        if (!used && seen_used) {
            *why = "an available entry lies before a used one (a batch half published, or "
                   "buffers used out of order)";
            return -EINVAL;
        }
        if (!used)
            *pos = (struct virtq_position){.last_avail = idx, .avail_wrap = wrap};
        seen_used |= used;
    }
    pos->used_idx = pos->last_avail;
    pos->used_wrap = pos->avail_wrap;
    *why = NULL;
    return 0;
}

/* ---- both formats ---- */

int virtq_check_layout(const struct virtq *q)
{
    return q->packed ? packed_check_layout(q) : split_check_layout(q);
}

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
    return q->packed ? packed_pop(q, chain) : split_pop(q, chain);
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
    return q->packed ? -EINVAL : split_push(q, head, written);
}

int virtq_push_chain(struct virtq *q, const struct virtq_chain *chain, uint32_t written)
{
    return q->packed ? packed_push(q, chain, written) : split_push(q, chain->head, written);
}

bool virtq_needs_interrupt(struct virtq *q, uint16_t old_used)
{
    return q->packed ? packed_needs_interrupt(q) : split_needs_interrupt(q, old_used);
}

void virtq_reset_position(struct virtq *q)
{
    q->last_avail = q->used_idx = 0;
    q->avail_wrap = q->used_wrap = q->packed;
    q->used_unsignalled = 0;
}

void virtq_get_position(const struct virtq *q, struct virtq_position *pos)
{
    *pos = (struct virtq_position){
        .last_avail = q->last_avail,
        .avail_wrap = q->packed && q->avail_wrap,
        .used_idx = q->used_idx,
        .used_wrap = q->packed && q->used_wrap,
    };
}

int virtq_set_position(struct virtq *q, const struct virtq_position *pos)
{
    if (q->packed && (pos->last_avail >= q->size || pos->used_idx >= q->size))
        return -EINVAL;
    q->last_avail = pos->last_avail;
    q->used_idx = pos->used_idx;
    q->avail_wrap = q->packed && pos->avail_wrap;
    q->used_wrap = q->packed && pos->used_wrap;
    q->used_unsignalled = 0;
    return 0;
}

/* One half of the encoding: a 15-bit position and its wrap counter above it. */
static uint32_t position_half(uint16_t idx, bool wrap)
{
    return (idx & PACKED_IDX_MASK) | (uint32_t)wrap << PACKED_WRAP_BIT;
}

uint32_t virtq_position_encode(const struct virtq_position *pos)
{
    return position_half(pos->last_avail, pos->avail_wrap) |
           position_half(pos->used_idx, pos->used_wrap) << 16;
}

void virtq_position_decode(uint32_t value, struct virtq_position *pos)
{
    *pos = (struct virtq_position){
        .last_avail = value & PACKED_IDX_MASK,
        .avail_wrap = (value >> PACKED_WRAP_BIT) & 1,
        .used_idx = (value >> 16) & PACKED_IDX_MASK,
        .used_wrap = (value >> (16 + PACKED_WRAP_BIT)) & 1,
    };
}

uint32_t virtq_chain_read(const struct virtq_chain *c, void *out, uint32_t len)
{
    uint32_t done = 0;

    for (unsigned i = 0; i < c->count && done < len; i++) {
        uint32_t n = c->bufs[i].len;

        if (c->bufs[i].writable || !n)
            continue;
        if (n > len - done)
            n = len - done;
        memcpy((uint8_t *)out + done, c->bufs[i].addr, n);
        done += n;
    }
    return done;
}

uint32_t virtq_chain_write(const struct virtq_chain *c, const void *data, uint32_t len)
{
    uint32_t done = 0;

    for (unsigned i = 0; i < c->count && done < len; i++) {
        uint32_t n = c->bufs[i].len;

        if (!c->bufs[i].writable || !n)
            continue;
        if (n > len - done)
            n = len - done;
        memcpy(c->bufs[i].addr, (const uint8_t *)data + done, n);
        guest_mem_written(c->mem, c->bufs[i].addr, n);
        done += n;
    }
    return done;
}
