#include "state_buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int state_buf_put(struct state_buf *buf, const void *data, size_t len)
{
    if (buf->len + len > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        uint8_t *p;

        while (cap < buf->len + len)
            cap *= 2;
        p = realloc(buf->data, cap);
        if (!p)
            return -ENOMEM;
        buf->data = p;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return 0;
}

void state_buf_free(struct state_buf *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof(*buf));
}

int state_get(struct state_reader *r, void *out, size_t len)
{
    if (len > r->len - r->off)
        return -EINVAL;
    memcpy(out, r->data + r->off, len);
    r->off += len;
    return 0;
}

int state_take(struct state_reader *r, size_t len, const uint8_t **p)
{
    if (len > r->len - r->off)
        return -EINVAL;
    *p = r->data + r->off;
    r->off += len;
    return 0;
}
