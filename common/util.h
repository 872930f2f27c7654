/* Small helpers with no dependency on KVM or devices. */
#ifndef VMM_COMMON_UTIL_H
#define VMM_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a)-1))
#define ALIGN_UP(x, a) ALIGN_DOWN((x) + (a)-1, (a))

/* Parses "512M", "1G", "4096" (bytes); returns 0 or -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *out);

/* Reads a whole file into a malloc'ed buffer; returns 0 or -errno. */
int read_file(const char *path, uint8_t **data, size_t *size);

#endif
