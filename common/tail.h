/* The last few KiB of a text stream (the guest's console output), to show the
 * last lines of a guest that had to be stopped. */
#ifndef VMM_COMMON_TAIL_H
#define VMM_COMMON_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAIL_SIZE 4096

struct tail {
    uint8_t buf[TAIL_SIZE];
    size_t head;  /* the oldest byte kept */
    size_t len;   /* bytes kept, at most TAIL_SIZE */
    bool dropped; /* older bytes were overwritten: the first kept line is partial */
};

void tail_init(struct tail *t);
void tail_append(struct tail *t, const void *data, size_t len);

/* Writes the last max_lines lines kept into out, each ending with '\n', and
 * NUL-terminates it; a last line without its newline yet counts. Carriage
 * returns are dropped and other control characters shown as '?'. When out is
 * too small the oldest lines are left out. Returns the number of lines written. */
unsigned tail_last_lines(const struct tail *t, unsigned max_lines, char *out, size_t outlen);

#endif
