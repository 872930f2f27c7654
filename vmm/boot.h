/* The Linux x86 boot protocol for a bzImage, or an uncompressed ELF vmlinux (as
 * Firecracker boots it: no decompression in the guest), entered directly in 64-bit mode.
 * The parsing and zero-page building are pure functions over buffers so they can
 * be unit-tested on a synthetic header. */
#ifndef VMM_BOOT_H
#define VMM_BOOT_H

#include "memory.h"

#include <stddef.h>
#include <stdint.h>

#define BOOT_ZERO_PAGE_SIZE 4096
#define BOOT_E820_MAX 128
#define BOOT_MIN_PROTOCOL 0x020c /* 2.12: the first with a 64-bit entry (XLF_KERNEL_64) */

enum { E820_RAM = 1, E820_RESERVED = 2 };

struct boot_e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));
_Static_assert(sizeof(struct boot_e820_entry) == 20, "e820 entry is 20 bytes on the wire");

struct bzimage {
    const uint8_t *data;
    size_t size;
    uint16_t version;
    size_t setup_size;    /* real-mode part, skipped: we enter at the 64-bit entry */
    size_t kernel_offset; /* protected-mode payload in the file */
    size_t kernel_size;
    uint32_t initrd_addr_max;
    uint32_t cmdline_size;
    uint32_t init_size;        /* memory the kernel needs from where it runs on */
    uint64_t pref_address;     /* where it decompresses itself to */
    uint32_t kernel_alignment; /* 0 when not relocatable */
};

/* Validates the setup header; on failure returns -errno and sets *why. */
int bzimage_parse(const uint8_t *data, size_t size, struct bzimage *bz, const char **why);

#define BOOT_HDR_SIZE 0x290 /* the setup header, up to and including init_size */
#define BOOT_ELF_MAX_SEGMENTS 64

/* A kernel to load: a bzImage, or an ELF vmlinux whose PT_LOAD segments go to their
 * physical addresses. For an ELF kernel, bz describes it as a bzImage would (the
 * setup header synthesized in hdr, the image's extent as pref_address/init_size)
 * so that initrd placement and the zero page are the same code. */
struct boot_kernel {
    struct bzimage bz;
    uint64_t entry; /* guest-physical 64-bit entry point */
    int elf;
    const uint8_t *elf_data;
    size_t elf_size;
    uint8_t hdr[BOOT_HDR_SIZE];
};

/* Parses a bzImage or an x86-64 ELF executable; on failure -errno and *why. */
int boot_kernel_parse(const uint8_t *data, size_t size, struct boot_kernel *k, const char **why);

/* The e820 map for the memory's regions; returns the entry count. */
int boot_build_e820(const struct guest_memory *mem, struct boot_e820_entry *out, int max);

/* Where the initrd goes: the top of low memory under initrd_addr_max, above the
 * kernel. Returns 0 and the address, or -ENOSPC. */
int boot_place_initrd(const struct bzimage *bz, uint64_t low_end, uint64_t initrd_size,
                      uint64_t *addr);

struct boot_zero_page_args {
    uint64_t cmdline_addr;
    uint64_t initrd_addr;
    uint64_t initrd_size;
    const struct boot_e820_entry *e820;
    int e820_count;
};

void boot_fill_zero_page(uint8_t zp[BOOT_ZERO_PAGE_SIZE], const struct bzimage *bz,
                         const struct boot_zero_page_args *args);

struct boot_files {
    const uint8_t *kernel;
    size_t kernel_size;
    const uint8_t *initrd; /* may be NULL */
    size_t initrd_size;
    const char *cmdline;
};

/* Writes kernel, initrd, command line, zero page, page tables and GDT into guest
 * memory; *entry is where the boot CPU starts. Logs a one-line reason and returns
 * -errno on failure. */
int boot_load(struct guest_memory *mem, const struct boot_files *files, uint64_t *entry);

struct kvm_vcpu;
/* Registers of the boot CPU at the 64-bit entry point. */
int boot_setup_bsp(struct kvm_vcpu *vcpu, uint64_t entry);

#endif
