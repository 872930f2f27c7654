#include "memory.h"

#include "layout.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int guest_memory_layout(uint64_t size, struct guest_region regions[GUEST_MEM_MAX_REGIONS])
{
    uint64_t low = size < LAYOUT_MMIO_HOLE_START ? size : LAYOUT_MMIO_HOLE_START;

    regions[0] = (struct guest_region){.gpa = 0, .size = low, .fd_offset = 0};
    if (size == low)
        return 1;
    regions[1] =
        (struct guest_region){.gpa = LAYOUT_MMIO_HOLE_END, .size = size - low, .fd_offset = low};
    return 2;
}

/* Reads one "Key: value kB" line of /proc/meminfo; returns bytes or 0. */
static uint64_t meminfo_bytes(const char *key)
{
    char line[256];
    uint64_t value = 0;
    size_t klen = strlen(key);
    FILE *f = fopen("/proc/meminfo", "re");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;

        if (strncmp(line, key, klen) == 0 && line[klen] == ':' &&
            sscanf(line + klen + 1, "%llu", &v) == 1) {
            value = strstr(line, "kB") ? v * 1024 : v;
            break;
        }
    }
    fclose(f);
    return value;
}

static int check_host_memory(uint64_t size, bool hugepages)
{
    uint64_t host = meminfo_bytes("MemTotal") + meminfo_bytes("SwapTotal");

    if (host && size > host) {
        pr_err("--memory %llu MiB is more than this host has (%llu MiB of RAM and swap)",
               (unsigned long long)(size >> 20), (unsigned long long)(host >> 20));
        return -ENOMEM;
    }
    if (hugepages) {
        uint64_t page = meminfo_bytes("Hugepagesize");
        uint64_t free_pages = meminfo_bytes("HugePages_Free");

        if (!page || size % page) {
            pr_err("--hugepages: memory size must be a multiple of the huge page size (%llu KiB)",
                   (unsigned long long)(page >> 10));
            return -EINVAL;
        }
        if (free_pages * page < size) {
            pr_err("--hugepages: %llu huge pages of %llu KiB needed, %llu free "
                   "(reserve them in /proc/sys/vm/nr_hugepages)",
                   (unsigned long long)(size / page), (unsigned long long)(page >> 10),
                   (unsigned long long)free_pages);
            return -ENOMEM;
        }
    }
    return 0;
}

int guest_memory_create(struct guest_memory *mem, uint64_t size, bool hugepages)
{
    unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugepages ? MFD_HUGETLB : 0);
    int ret;

    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
    ret = check_host_memory(size, hugepages);
    if (ret)
        return ret;
    mem->fd = memfd_create("vmm-guest-ram", flags);
    if (mem->fd < 0) {
        ret = -errno;
        pr_err("memfd_create for guest RAM failed: %s", strerror(errno));
        return ret;
    }
    if (ftruncate(mem->fd, (off_t)size) < 0) {
        ret = -errno;
        pr_err("cannot size guest RAM to %llu MiB: %s", (unsigned long long)(size >> 20),
               strerror(errno));
        goto err_close;
    }
    /* Every backend gets this fd: one that shrank it would make vmm's next access to
     * guest RAM a SIGBUS, and one that sealed writes would stop punch-hole resets.
     * Sealed as QEMU's memfd backend does by default (and no seal can be added). */
    if (fcntl(mem->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        ret = -errno;
        pr_err("cannot seal guest RAM's memfd: %s", strerror(errno));
        goto err_close;
    }
    mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mem->fd, 0);
    if (mem->base == MAP_FAILED) {
        ret = -errno;
        pr_err("cannot map %llu MiB of guest RAM: %s", (unsigned long long)(size >> 20),
               strerror(errno));
        goto err_close;
    }
    mem->size = size;
    mem->hugepages = hugepages;
    mem->nregions = guest_memory_layout(size, mem->regions);
    for (int i = 0; i < mem->nregions; i++)
        mem->regions[i].hva = mem->base + mem->regions[i].fd_offset;
    return 0;

err_close:
    close(mem->fd);
    mem->fd = -1;
    mem->base = NULL;
    return ret;
}

int guest_memory_clear(struct guest_memory *mem)
{
    if (fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)mem->size) == 0)
        return 0;
    pr_warn("guest memory: cannot free its pages (%s); zeroing them instead", strerror(errno));
    memset(mem->base, 0, mem->size);
    return 0;
}

void guest_memory_destroy(struct guest_memory *mem)
{
    if (mem->base && mem->base != MAP_FAILED)
        munmap(mem->base, mem->size);
    if (mem->fd >= 0)
        close(mem->fd);
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
}

void *guest_memory_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
    for (int i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];

        if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len)
            return r->hva + (gpa - r->gpa);
    }
    return NULL;
}

uint64_t guest_memory_low_end(const struct guest_memory *mem)
{
    return mem->nregions ? mem->regions[0].size : 0;
}
