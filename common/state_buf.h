/* A growable byte buffer that device and vCPU state is saved into (migration,
 * snapshots), and a reader that takes it apart with bounds checks. */
#ifndef VMM_COMMON_STATE_BUF_H
#define VMM_COMMON_STATE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

int state_buf_put(struct state_buf *buf, const void *data, size_t len);
void state_buf_free(struct state_buf *buf);

/* Reads saved state back: each get copies len bytes or fails (-EINVAL) once the
 * data runs out; nothing is read past the end. */
struct state_reader {
    const uint8_t *data;
    size_t len;
    size_t off;
};

static inline struct state_reader state_reader_init(const uint8_t *data, size_t len)
{
    return (struct state_reader){.data = data, .len = len};
}

int state_get(struct state_reader *r, void *out, size_t len);
/* Points *p at the next len bytes, without copying (a section read whole later). */
int state_take(struct state_reader *r, size_t len, const uint8_t **p);
/* True when every byte was consumed: trailing bytes mean a format mismatch. */
static inline bool state_reader_done(const struct state_reader *r)
{
    return r->off == r->len;
}

#endif
