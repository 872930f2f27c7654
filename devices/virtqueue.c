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

static int chain_add(struct virtq *q, struct virtq_chain *c, const struct virtq_desc *d)
{
    uint8_t *p;

    if (c->count >= VIRTQ_CHAIN_MAX)
        return -EINVAL;
    p = d->len ? guest_mem_ptr(q->mem, d->addr, d->len) : NULL;
    if (d->len && !p)
        return -EINVAL;
    c->bufs[c->count++] =
        (struct virtq_buf){.addr = p, .len = d->len, .writable = d->flags & VIRTQ_DESC_F_WRITE};
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
        ret = chain_add(q, c, &d);
        if (ret)
            return ret;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        i = d.next;
    }
}

int virtq_check_layout(const struct virtq *q)
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

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
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
    chain->count = 0;
    chain->mem = q->mem;
    if (head >= q->size || walk_table(q, chain, q->desc_gpa, q->size, head, false))
        return -EINVAL;
    q->last_avail++;
    return 1;
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t written)
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

bool virtq_needs_interrupt(struct virtq *q, uint16_t old_used)
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
