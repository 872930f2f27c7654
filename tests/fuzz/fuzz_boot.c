/*
 * Fuzz target: the kernel image vmm boots (--kernel) and the initrd placement
 * (vmm/boot.c): boot_kernel_parse on a bzImage or an ELF vmlinux, then boot_load into a
 * fake guest memory (low RAM of 2 to 32 MiB and a region above 4 GiB) with a command
 * line and an initrd, as vmm loads them; and boot_place_initrd on its own with any
 * sizes.
 *
 * Oracles: a kernel that loads fits: where it runs (max of 1 MiB and pref_address,
 * aligned to kernel_alignment, for init_size bytes) and its image lie in low RAM, with
 * 64-bit arithmetic that cannot wrap (checked here in 128 bits); the initrd lies in
 * low RAM above all of that and under initrd_addr_max; an ELF kernel's entry is
 * inside what a segment loads from the file; the zero page points at the command line
 * and initrd.
 *
 * Input: a byte (bits 0-2: low RAM of 2, 3, 4, 6, 8, 12, 16 or 32 MiB; bit 3: an
 * initrd), the initrd's size in 64 KiB units, the command line's length, the command
 * line (its first 8 bytes are also the size boot_place_initrd gets alone), then the
 * kernel image.
 */
#include "../../vmm/boot.h"
#include "../../vmm/layout.h"

#include "fuzz_util.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#define RAM_MAX (32u << 20)
#define HIGH_SIZE (2u << 20)
#define INITRD_UNIT (64u << 10)

static uint8_t ram[RAM_MAX + HIGH_SIZE];
static uint8_t initrd[255 * INITRD_UNIT];

typedef unsigned __int128 u128;

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fake_memory(struct guest_memory *mem, uint64_t low)
{
    *mem = (struct guest_memory){.fd = -1, .base = ram, .size = low + HIGH_SIZE, .nregions = 2};
    mem->regions[0] = (struct guest_region){.gpa = 0, .size = low, .hva = ram};
    mem->regions[1] = (struct guest_region){
        .gpa = LAYOUT_MMIO_HOLE_END, .size = HIGH_SIZE, .fd_offset = low, .hva = ram + low};
}

/* Where the kernel runs and how far it reaches, as the boot protocol says, in 128 bits. */
static u128 kernel_end(const struct bzimage *bz)
{
    u128 run_at = bz->pref_address > LAYOUT_HIMEM_START ? bz->pref_address : LAYOUT_HIMEM_START;
    u128 image_end = LAYOUT_HIMEM_START + (u128)bz->kernel_size;

    if (bz->kernel_alignment > 1) {
        if (bz->kernel_alignment & (bz->kernel_alignment - 1))
            fuzz_fail("a kernel with alignment 0x%x (not a power of two) loads",
                      bz->kernel_alignment);
        run_at = (run_at + bz->kernel_alignment - 1) & ~(u128)(bz->kernel_alignment - 1);
    }
    return run_at + bz->init_size > image_end ? run_at + bz->init_size : image_end;
}

/* The end of where an initrd may lie: initrd_addr_max, or the protocol's default for
 * a header that leaves it 0. */
static u128 initrd_limit(const struct bzimage *bz)
{
    return (u128)(bz->initrd_addr_max ? bz->initrd_addr_max : 0x37ffffff) + 1;
}

static void check_elf_entry(const struct boot_kernel *k)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)k->elf_data;

    for (unsigned i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph =
            (const Elf64_Phdr *)(const void *)(k->elf_data + eh->e_phoff + i * sizeof(*ph));

        if (ph->p_type == PT_LOAD && k->entry >= ph->p_paddr &&
            k->entry - ph->p_paddr < ph->p_filesz)
            return;
    }
    fuzz_fail("ELF kernel entry 0x%llx is in no segment's contents", (unsigned long long)k->entry);
}

/* After boot_load succeeded: everything it placed fits where the guest can use it. */
static void check_loaded(const struct guest_memory *mem, const struct boot_kernel *k,
                         const struct boot_files *files, const char *cmdline, uint64_t entry)
{
    const uint8_t *zp = ram + LAYOUT_ZERO_PAGE_ADDR;
    uint64_t low = mem->regions[0].size;
    u128 end = kernel_end(&k->bz);
    uint64_t initrd_addr = get32(zp + 0x218) | (uint64_t)get32(zp + 0xc0) << 32;
    uint64_t initrd_size = get32(zp + 0x21c) | (uint64_t)get32(zp + 0xc4) << 32;

    if (end > low)
        fuzz_fail("kernel reaches 0x%llx%016llx, low RAM ends at 0x%llx",
                  (unsigned long long)(end >> 64), (unsigned long long)end,
                  (unsigned long long)low);
    if (entry != k->entry)
        fuzz_fail("boot_load entry differs from the parsed one");
    if (k->elf)
        check_elf_entry(k);
    if (get32(zp + 0x228) != LAYOUT_CMDLINE_ADDR ||
        strcmp((char *)ram + LAYOUT_CMDLINE_ADDR, cmdline))
        fuzz_fail("the zero page's command line is not the one given");
    if (initrd_size != (files->initrd ? files->initrd_size : 0))
        fuzz_fail("the zero page's initrd size is not the initrd's");
    if (files->initrd &&
        (initrd_addr < end || initrd_addr % 4096 || initrd_addr > low ||
         initrd_size > low - initrd_addr || (u128)initrd_addr + initrd_size > initrd_limit(&k->bz)))
        fuzz_fail("initrd of 0x%llx bytes at 0x%llx: kernel up to 0x%llx, low RAM 0x%llx, max "
                  "0x%x",
                  (unsigned long long)initrd_size, (unsigned long long)initrd_addr,
                  (unsigned long long)end, (unsigned long long)low, k->bz.initrd_addr_max);
}

/* boot_place_initrd alone, with sizes no file has. */
static void fuzz_place(const struct bzimage *bz, uint64_t low, const uint8_t *p, size_t n)
{
    uint64_t size = 0, addr;

    memcpy(&size, p, n < 8 ? n : 8);
    if (boot_place_initrd(bz, low, size, &addr))
        return;
    if (addr % 4096 || addr < kernel_end(bz) || addr > low || size > low - addr ||
        (u128)addr + size > initrd_limit(bz))
        fuzz_fail("boot_place_initrd put 0x%llx bytes at 0x%llx (low RAM 0x%llx)",
                  (unsigned long long)size, (unsigned long long)addr, (unsigned long long)low);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    fuzz_log_level();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned low_mib[] = {2, 3, 4, 6, 8, 12, 16, 32};
    struct boot_files files = {0};
    struct guest_memory mem;
    struct boot_kernel k;
    const char *why;
    char cmdline[256];
    size_t cmd_len;
    uint64_t entry;
    uint8_t *kernel;

    if (size < 3 || size < 3 + (size_t)data[2])
        return 0;
    fake_memory(&mem, (uint64_t)low_mib[data[0] & 7] << 20);
    cmd_len = data[2];
    memcpy(cmdline, data + 3, cmd_len);
    cmdline[cmd_len] = '\0';
    /* Aligned, as read_file's buffer is: the ELF headers are read in place. */
    kernel = malloc(size - 3 - cmd_len + 1);
    if (!kernel)
        fuzz_fail("out of memory");
    memcpy(kernel, data + 3 + cmd_len, size - 3 - cmd_len);
    files = (struct boot_files){
        .kernel = kernel, .kernel_size = size - 3 - cmd_len, .cmdline = cmdline};
    if (data[0] & 8) {
        files.initrd = initrd;
        files.initrd_size = (size_t)data[1] * INITRD_UNIT;
    }
    if (boot_kernel_parse(files.kernel, files.kernel_size, &k, &why) == 0) {
        fuzz_place(&k.bz, mem.regions[0].size, data + 3, cmd_len);
        if (boot_load(&mem, &files, &entry) == 0)
            check_loaded(&mem, &k, &files, cmdline, entry);
    }
    free(kernel);
    return 0;
}
