#include "guest_mem.h"
#include "support.h"

#include "../../vhost/vhost_user.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Bounds-checked like the real memory map: NULL unless [gpa, gpa+len) is RAM. */
static void *guest_ram_ptr(void *opaque, uint64_t gpa, uint64_t len)
{
    struct guest_mem *m = opaque;

    if (gpa < m->base || len > m->size || gpa - m->base > m->size - len)
        return NULL;
    return m->buf + (gpa - m->base);
}

static void guest_mem_set(struct guest_mem *m, uint64_t base, uint64_t size)
{
    m->base = base;
    m->size = size;
    m->access = (struct guest_mem_access){.ptr = guest_ram_ptr, .opaque = m};
}

void guest_mem_init(struct guest_mem *m, uint64_t base, uint64_t size)
{
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    m->buf = calloc(1, size);
    if (!m->buf)
        support_fail("guest memory: cannot allocate %llu bytes", (unsigned long long)size);
    guest_mem_set(m, base, size);
}

void guest_mem_init_shared(struct guest_mem *m, uint64_t base, uint64_t size)
{
    memset(m, 0, sizeof(*m));
    m->fd = memfd_create("guest-ram", MFD_CLOEXEC);
    if (m->fd < 0 || ftruncate(m->fd, (off_t)size))
        support_fail("guest memory: memfd of %llu bytes: %s", (unsigned long long)size,
                     strerror(errno));
    m->buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    if (m->buf == MAP_FAILED)
        support_fail("guest memory: mmap: %s", strerror(errno));
    m->mmapped = true;
    guest_mem_set(m, base, size);
}

void guest_mem_destroy(struct guest_mem *m)
{
    if (m->mmapped) {
        munmap(m->buf, m->size);
        close(m->fd);
    } else {
        free(m->buf);
    }
    m->buf = NULL;
    m->fd = -1;
    m->mmapped = false;
}

void guest_mem_clear(struct guest_mem *m)
{
    memset(m->buf, 0, m->size);
}

uint8_t *guest_mem_host(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
    uint8_t *p = guest_ram_ptr((void *)m, gpa, len);

    if (!p)
        support_fail("guest memory: [0x%llx, +%llu) is not RAM [0x%llx, +0x%llx)",
                     (unsigned long long)gpa, (unsigned long long)len, (unsigned long long)m->base,
                     (unsigned long long)m->size);
    return p;
}

void guest_mem_region(const struct guest_mem *m, struct vhost_user_mem_region *r)
{
    *r = (struct vhost_user_mem_region){.guest_phys_addr = m->base,
                                        .memory_size = m->size,
                                        .userspace_addr = (uint64_t)(uintptr_t)m->buf,
                                        .mmap_offset = 0,
                                        .fd = m->fd};
}

void guest_write(const struct guest_mem *m, uint64_t gpa, const void *data, uint64_t len)
{
    if (len)
        memcpy(guest_mem_host(m, gpa, len), data, len);
}

#define GUEST_ACCESSORS(bits)                                                                      \
    void guest_put##bits(const struct guest_mem *m, uint64_t gpa, uint##bits##_t v)                \
    {                                                                                              \
        memcpy(guest_mem_host(m, gpa, sizeof(v)), &v, sizeof(v));                                  \
    }                                                                                              \
    uint##bits##_t guest_get##bits(const struct guest_mem *m, uint64_t gpa)                        \
    {                                                                                              \
        uint##bits##_t v;                                                                          \
                                                                                                   \
        memcpy(&v, guest_mem_host(m, gpa, sizeof(v)), sizeof(v));                                  \
        return v;                                                                                  \
    }

GUEST_ACCESSORS(8)
GUEST_ACCESSORS(16)
GUEST_ACCESSORS(32)
GUEST_ACCESSORS(64)

/* ---- split rings ---- */

void split_desc_put(const struct guest_mem *m, uint64_t table_gpa, unsigned i, uint64_t addr,
                    uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *d = guest_mem_host(m, table_gpa + 16ULL * i, 16);

    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

uint16_t split_ring_avail_idx(const struct split_ring *r)
{
    return guest_get16(r->mem, r->avail + 2);
}

void split_ring_offer(const struct split_ring *r, uint16_t head)
{
    uint16_t idx = split_ring_avail_idx(r);

    guest_put16(r->mem, r->avail + 4 + 2ULL * (idx % r->size), head);
    guest_put16(r->mem, r->avail + 2, (uint16_t)(idx + 1));
}

uint16_t split_ring_used_idx(const struct split_ring *r)
{
    return guest_get16(r->mem, r->used + 2);
}

void split_ring_used_elem(const struct split_ring *r, uint16_t pos, uint32_t *id, uint32_t *len)
{
    uint64_t elem = r->used + 4 + 8ULL * (pos % r->size);

    *id = guest_get32(r->mem, elem);
    *len = guest_get32(r->mem, elem + 4);
}

uint64_t split_ring_used_event(const struct split_ring *r)
{
    return r->avail + 4 + 2ULL * r->size;
}

uint64_t split_ring_avail_event(const struct split_ring *r)
{
    return r->used + 4 + 8ULL * r->size;
}
