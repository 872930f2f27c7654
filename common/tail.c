#include "tail.h"

#include <string.h>

void tail_init(struct tail *t)
{
    memset(t, 0, sizeof(*t));
}

void tail_append(struct tail *t, const void *data, size_t len)
{
    const uint8_t *p = data;

    for (size_t i = 0; i < len; i++) {
        t->buf[(t->head + t->len) % TAIL_SIZE] = p[i];
        if (t->len < TAIL_SIZE) {
            t->len++;
        } else {
            t->head = (t->head + 1) % TAIL_SIZE;
            t->dropped = true;
        }
    }
}

/* The kept bytes in order, without '\r' and with control characters made
 * harmless for a log; returns their count. */
static size_t tail_linearize(const struct tail *t, char *text)
{
    size_t n = 0;

    for (size_t i = 0; i < t->len; i++) {
        uint8_t c = t->buf[(t->head + i) % TAIL_SIZE];

        if (c == '\r')
            continue;
        text[n++] = (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    return n;
}

/* Start of the line after the one at text[from]; end when there is none. */
static size_t next_line(const char *text, size_t from, size_t end)
{
    const char *nl = memchr(text + from, '\n', end - from);

    return nl ? (size_t)(nl - text) + 1 : end;
}

unsigned tail_last_lines(const struct tail *t, unsigned max_lines, char *out, size_t outlen)
{
    char text[TAIL_SIZE];
    size_t start = 0, end = tail_linearize(t, text), from;
    unsigned lines = 0;

    if (!outlen)
        return 0;
    out[0] = '\0';
    if (outlen < 2) /* no room for a character and its newline */
        return 0;
    if (t->dropped && memchr(text, '\n', end))
        start = next_line(text, 0, end);
    if (end > start && text[end - 1] == '\n')
        end--; /* the final newline ends the last line; it does not start another */
    if (end == start || !max_lines)
        return 0;
    /* Walk back over max_lines lines: from ends at the first one's start. */
    for (from = end, lines = 1; from > start; from--) {
        if (text[from - 1] == '\n' && lines++ == max_lines)
            break;
    }
    if (from > start)
        lines--;
    while (end - from + 2 > outlen && lines > 1) {
        from = next_line(text, from, end);
        lines--;
    }
    if (end - from + 2 > outlen) /* one line longer than out: keep its end */
        from = end - (outlen - 2);
    memcpy(out, text + from, end - from);
    out[end - from] = '\n';
    out[end - from + 1] = '\0';
    return lines;
}
