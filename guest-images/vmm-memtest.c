/* vmm-memtest MIB: the migration tests' guest workload. Fills MIB of memory with a
 * pattern derived from each page's number and generation, keeps rewriting pages
 * (bumping their generation), and checks 1/16 of the buffer each second, so the
 * whole buffer is checked every 16 s. Every second it prints
 *   MEMTEST-HEARTBEAT n=<counter> rewrites=<total> checked=<pages> errors=<total>
 * and on a mismatch MEMTEST-ERROR page=<p> word=<w>. A migration that lost a page
 * shows as errors; a heartbeat that continues on the destination shows the guest
 * went on where it was. Static, no libc beyond what the static glibc links. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t pattern(uint64_t page, uint64_t word, uint32_t gen)
{
    uint64_t x = page * 0x9e3779b97f4a7c15ULL ^ word * 0xbf58476d1ce4e5b9ULL ^ gen;

    return x ^ (x >> 29);
}

static void fill(uint64_t *buf, uint64_t page, uint32_t gen)
{
    for (uint64_t w = 0; w < WORDS; w++)
        buf[page * WORDS + w] = pattern(page, w, gen);
}

static unsigned check(const uint64_t *buf, const uint32_t *gen, uint64_t page)
{
    for (uint64_t w = 0; w < WORDS; w++) {
        if (buf[page * WORDS + w] != pattern(page, w, gen[page])) {
            printf("MEMTEST-ERROR page=%llu word=%llu\n", (unsigned long long)page,
                   (unsigned long long)w);
            return 1;
        }
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t pages = (argc > 1 ? strtoull(argv[1], NULL, 10) : 64) * 256, next = 0,
             rng = 88172645463325252ULL;
    uint64_t rewrites = 0, checked = 0, errors = 0, beat = 0;
    uint64_t *buf = malloc(pages * PAGE);
    uint32_t *gen = calloc(pages, sizeof(*gen));
    double last = now();

    if (!buf || !gen || !pages) {
        printf("MEMTEST-ERROR cannot allocate %llu pages\n", (unsigned long long)pages);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (uint64_t p = 0; p < pages; p++)
        fill(buf, p, 0);
    printf("MEMTEST-READY pages=%llu\n", (unsigned long long)pages);
    for (;;) {
        /* A few rewrites, then the time check: the guest keeps dirtying memory. */
        for (int i = 0; i < 64; i++) {
            uint64_t p;

            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            p = rng % pages;
            fill(buf, p, ++gen[p]);
            rewrites++;
        }
        if (now() - last < 1.0) {
            struct timespec ts = {0, 2000000};

            nanosleep(&ts, NULL);
            continue;
        }
        last = now();
        for (uint64_t i = 0; i < (pages + 15) / 16; i++, next = (next + 1) % pages, checked++)
            errors += check(buf, gen, next);
        printf("MEMTEST-HEARTBEAT n=%llu rewrites=%llu checked=%llu errors=%llu\n",
               (unsigned long long)++beat, (unsigned long long)rewrites,
               (unsigned long long)checked, (unsigned long long)errors);
    }
}
