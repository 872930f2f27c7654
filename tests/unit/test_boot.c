/* The Linux boot protocol on a synthetic bzImage and a synthetic ELF vmlinux: parsing,
 * e820, zero page, initrd, loading. */
#include "../../common/util.h"
#include "../../vmm/boot.h"
#include "../../vmm/layout.h"

#include "check_main.h"

#include <check.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define IMG_SIZE (64 * 1024)
#define IMG_SETUP_SECTS 4
#define IMG_SETUP_SIZE ((IMG_SETUP_SECTS + 1) * 512)
#define IMG_VERSION 0x020f
#define IMG_INITRD_ADDR_MAX 0x7fffffffU
#define IMG_CMDLINE_SIZE 2047U
#define IMG_INIT_SIZE (16U << 20)
#define IMG_HDR_END 0x268 /* 0x202 + the jump byte 0x66 */

static uint8_t img[IMG_SIZE];

static void put16(uint8_t *p, size_t off, uint16_t v)
{
    p[off] = v & 0xff;
    p[off + 1] = v >> 8;
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
    put16(p, off, v & 0xffff);
    put16(p, off + 2, v >> 16);
}

static uint32_t get32(const uint8_t *p, size_t off)
{
    return p[off] | p[off + 1] << 8 | p[off + 2] << 16 | (uint32_t)p[off + 3] << 24;
}

static uint64_t get64(const uint8_t *p, size_t off)
{
    return get32(p, off) | (uint64_t)get32(p, off + 4) << 32;
}

static void make_image(void)
{
    memset(img, 0, sizeof(img));
    img[0x1f1] = IMG_SETUP_SECTS;
    put16(img, 0x1fe, 0xaa55);
    img[0x200] = 0xeb;
    img[0x201] = IMG_HDR_END - 0x202;
    memcpy(img + 0x202, "HdrS", 4);
    put16(img, 0x206, IMG_VERSION);
    img[0x211] = 0x01; /* LOADED_HIGH */
    put32(img, 0x22c, IMG_INITRD_ADDR_MAX);
    put16(img, 0x236, 0x0001); /* XLF_KERNEL_64 */
    put32(img, 0x238, IMG_CMDLINE_SIZE);
    put32(img, 0x260, IMG_INIT_SIZE);
    put32(img, 0x258, 0x100000); /* pref_address: not relocatable, runs where it is loaded */
    img[IMG_HDR_END + 4] = 0xab; /* past the header: must not be copied */
    img[IMG_SETUP_SIZE] = 0x5a;  /* first byte of the protected-mode payload */
}

static void parse_ok(struct bzimage *bz)
{
    const char *why = NULL;

    ck_assert_int_eq(bzimage_parse(img, sizeof(img), bz, &why), 0);
}

/* ---- bzimage_parse ---- */

START_TEST(parse_fills_fields)
{
    struct bzimage bz;

    parse_ok(&bz);
    ck_assert_ptr_eq(bz.data, img);
    ck_assert_uint_eq(bz.size, IMG_SIZE);
    ck_assert_uint_eq(bz.version, IMG_VERSION);
    ck_assert_uint_eq(bz.setup_size, IMG_SETUP_SIZE);
    ck_assert_uint_eq(bz.kernel_offset, IMG_SETUP_SIZE);
    ck_assert_uint_eq(bz.kernel_size, IMG_SIZE - IMG_SETUP_SIZE);
    ck_assert_uint_eq(bz.data[bz.kernel_offset], 0x5a);
    ck_assert_uint_eq(bz.initrd_addr_max, IMG_INITRD_ADDR_MAX);
    ck_assert_uint_eq(bz.cmdline_size, IMG_CMDLINE_SIZE);
    ck_assert_uint_eq(bz.init_size, IMG_INIT_SIZE);
}
END_TEST

START_TEST(parse_zero_setup_sects_means_four)
{
    struct bzimage bz;

    img[0x1f1] = 0;
    parse_ok(&bz);
    ck_assert_uint_eq(bz.setup_size, 5 * 512);
}
END_TEST

START_TEST(parse_counts_setup_sects)
{
    struct bzimage bz;

    img[0x1f1] = 30;
    parse_ok(&bz);
    ck_assert_uint_eq(bz.setup_size, 31 * 512);
    ck_assert_uint_eq(bz.kernel_size, IMG_SIZE - 31 * 512);
}
END_TEST

static void assert_rejected(const uint8_t *data, size_t size, int expected, const char *part)
{
    struct bzimage bz;
    const char *why = NULL;

    ck_assert_int_eq(bzimage_parse(data, size, &bz, &why), expected);
    ck_assert_ptr_nonnull(why);
    if (part)
        ck_assert_msg(strstr(why, part), "reason '%s' does not mention '%s'", why, part);
}

START_TEST(parse_rejects_missing_magic)
{
    memcpy(img + 0x202, "HdrX", 4);
    assert_rejected(img, sizeof(img), -ENOEXEC, NULL);
}
END_TEST

START_TEST(parse_rejects_bad_boot_flag)
{
    put16(img, 0x1fe, 0x55aa);
    assert_rejected(img, sizeof(img), -ENOEXEC, NULL);
}
END_TEST

START_TEST(parse_rejects_protocol_2_11)
{
    put16(img, 0x206, 0x020b);
    assert_rejected(img, sizeof(img), -ENOTSUP, "too old");
}
END_TEST

START_TEST(parse_accepts_protocol_2_12)
{
    struct bzimage bz;

    put16(img, 0x206, 0x020c);
    parse_ok(&bz);
    ck_assert_uint_eq(bz.version, 0x020c);
}
END_TEST

START_TEST(parse_rejects_no_loaded_high)
{
    img[0x211] = 0x80;
    assert_rejected(img, sizeof(img), -ENOEXEC, NULL);
}
END_TEST

START_TEST(parse_rejects_no_64bit_entry)
{
    put16(img, 0x236, 0x0002);
    assert_rejected(img, sizeof(img), -ENOTSUP, "64-bit");
}
END_TEST

static uint8_t *short_copy;

static void short_copy_free(void)
{
    free(short_copy);
    short_copy = NULL;
}

/* An exact-size heap copy, so ASan catches any read past the end. */
static void assert_short_rejected(size_t size)
{
    short_copy_free();
    short_copy = malloc(size);
    ck_assert_ptr_nonnull(short_copy);
    memcpy(short_copy, img, size);
    assert_rejected(short_copy, size, -ENOEXEC, NULL);
}

START_TEST(parse_rejects_too_short)
{
    assert_short_rejected(0x100);
    assert_short_rejected(0x28f);
    assert_short_rejected(1);
}
END_TEST

START_TEST(parse_rejects_no_payload)
{
    assert_short_rejected(IMG_SETUP_SIZE);
}
END_TEST

/* ---- boot_build_e820 ---- */

static void mem_of_size(struct guest_memory *mem, uint64_t size)
{
    memset(mem, 0, sizeof(*mem));
    mem->fd = -1;
    mem->size = size;
    mem->nregions = guest_memory_layout(size, mem->regions);
}

static void assert_e820(const struct boot_e820_entry *e, uint64_t addr, uint64_t end, uint32_t type)
{
    ck_assert_uint_eq(e->addr, addr);
    ck_assert_uint_eq(e->size, end - addr);
    ck_assert_uint_eq(e->type, type);
}

/* The map for a RAM size: the low RAM up to the EBDA, the EBDA, the BIOS area, RAM from
 * 1 MiB up to the hole, KVM's identity map and TSS, then RAM above 4 GiB. */
#define IDENTITY_MAP_AND_TSS LAYOUT_KVM_IDENTITY_MAP_ADDR, LAYOUT_KVM_TSS_ADDR + 3 * 4096

static const struct {
    const char *what;
    uint64_t ram;
    int n;
    struct {
        uint64_t addr, end;
        uint32_t type;
    } want[6];
} e820_maps[] = {
    {"e820_for_512m",
     512 * MiB,
     5,
     {{0, 0x9fc00, E820_RAM},
      {0x9fc00, 0xa0000, E820_RESERVED},
      {0xf0000, 0x100000, E820_RESERVED},
      {MiB, 512 * MiB, E820_RAM},
      {IDENTITY_MAP_AND_TSS, E820_RESERVED}}},
    {"e820_for_6g",
     6 * GiB,
     6,
     {{0, 0x9fc00, E820_RAM},
      {0x9fc00, 0xa0000, E820_RESERVED},
      {0xf0000, 0x100000, E820_RESERVED},
      {MiB, 3 * GiB, E820_RAM},
      {IDENTITY_MAP_AND_TSS, E820_RESERVED},
      {4 * GiB, 7 * GiB, E820_RAM}}},
};

START_TEST(e820_for_the_ram_size)
{
    struct boot_e820_entry e[BOOT_E820_MAX];
    struct guest_memory mem;

    mem_of_size(&mem, e820_maps[_i].ram);
    ck_assert_int_eq(boot_build_e820(&mem, e, BOOT_E820_MAX), e820_maps[_i].n);
    for (int i = 0; i < e820_maps[_i].n; i++)
        assert_e820(&e[i], e820_maps[_i].want[i].addr, e820_maps[_i].want[i].end,
                    e820_maps[_i].want[i].type);
}
END_TEST

START_TEST(e820_has_no_ram_in_hole)
{
    struct boot_e820_entry e[BOOT_E820_MAX];
    struct guest_memory mem;
    uint64_t ram = 0;
    int n;

    mem_of_size(&mem, 16 * GiB);
    n = boot_build_e820(&mem, e, BOOT_E820_MAX);
    for (int i = 0; i < n; i++) {
        if (e[i].type != E820_RAM)
            continue;
        ck_assert_msg(e[i].addr + e[i].size <= LAYOUT_MMIO_HOLE_START ||
                          e[i].addr >= LAYOUT_MMIO_HOLE_END,
                      "RAM entry %d [%#llx, +%#llx) touches the hole", i,
                      (unsigned long long)e[i].addr, (unsigned long long)e[i].size);
        ram += e[i].size;
    }
    /* All RAM but the 1 KiB EBDA and the 0x9fc00-1 MiB legacy area is reported. */
    ck_assert_uint_eq(ram, 16 * GiB - (MiB - 0x9fc00));
}
END_TEST

START_TEST(e820_respects_max)
{
    struct boot_e820_entry e[3];
    struct guest_memory mem;

    mem_of_size(&mem, 6 * GiB);
    ck_assert_int_eq(boot_build_e820(&mem, e, 3), 3);
    assert_e820(&e[2], 0xf0000, 0x100000, E820_RESERVED);
}
END_TEST

/* ---- boot_fill_zero_page ---- */

static uint8_t zp[BOOT_ZERO_PAGE_SIZE];

static void fill_zero_page(struct boot_e820_entry *e, uint64_t initrd_addr, uint64_t initrd_size,
                           int *count)
{
    struct guest_memory mem;
    struct bzimage bz;
    struct boot_zero_page_args args = {
        .cmdline_addr = LAYOUT_CMDLINE_ADDR,
        .initrd_addr = initrd_addr,
        .initrd_size = initrd_size,
        .e820 = e,
    };

    mem_of_size(&mem, 6 * GiB);
    args.e820_count = *count = boot_build_e820(&mem, e, BOOT_E820_MAX);
    parse_ok(&bz);
    memset(zp, 0xcc, sizeof(zp));
    boot_fill_zero_page(zp, &bz, &args);
}

START_TEST(zero_page_copies_setup_header)
{
    struct boot_e820_entry e[BOOT_E820_MAX];
    int count;

    fill_zero_page(e, 0, 0, &count);
    ck_assert_uint_eq(zp[0x1f1], IMG_SETUP_SECTS);
    ck_assert_uint_eq(get32(zp, 0x1fe) & 0xffff, 0xaa55);
    ck_assert_mem_eq(zp + 0x202, "HdrS", 4);
    ck_assert_uint_eq(get32(zp, 0x206) & 0xffff, IMG_VERSION);
    ck_assert_uint_eq(get32(zp, 0x22c), IMG_INITRD_ADDR_MAX);
    ck_assert_uint_eq(get32(zp, 0x238), IMG_CMDLINE_SIZE);
    ck_assert_uint_eq(get32(zp, 0x260), IMG_INIT_SIZE);
}
END_TEST

START_TEST(zero_page_stops_at_header_end)
{
    struct boot_e820_entry e[BOOT_E820_MAX];
    int count;

    fill_zero_page(e, 0, 0, &count);
    ck_assert_uint_eq(zp[IMG_HDR_END + 4], 0);
    ck_assert_uint_eq(zp[0x1f0], 0); /* before the header: cleared */
    ck_assert_uint_eq(zp[0], 0);
    ck_assert_uint_eq(zp[BOOT_ZERO_PAGE_SIZE - 1], 0);
}
END_TEST

START_TEST(zero_page_sets_loader_fields)
{
    struct boot_e820_entry e[BOOT_E820_MAX];
    int count;

    fill_zero_page(e, 0x1f000000, 0x123456, &count);
    ck_assert_uint_eq(zp[0x210], 0xff);
    ck_assert_uint_eq(zp[0x211] & 0x01, 0x01); /* LOADED_HIGH kept */
    ck_assert_uint_eq(zp[0x211] & 0x80, 0x80); /* CAN_USE_HEAP */
    ck_assert_uint_eq(get32(zp, 0x224) & 0xffff, 0xfe00);
    ck_assert_uint_eq(get32(zp, 0x228), LAYOUT_CMDLINE_ADDR);
    ck_assert_uint_eq(get32(zp, 0x218), 0x1f000000);
    ck_assert_uint_eq(get32(zp, 0x21c), 0x123456);
    ck_assert_uint_eq(get32(zp, 0x0c0), 0);
    ck_assert_uint_eq(get32(zp, 0x0c4), 0);
}
END_TEST

START_TEST(zero_page_splits_64bit_initrd)
{
    struct boot_e820_entry e[BOOT_E820_MAX];
    int count;

    fill_zero_page(e, 0x123456000ULL, 0x100001000ULL, &count);
    ck_assert_uint_eq(get32(zp, 0x218), 0x23456000);
    ck_assert_uint_eq(get32(zp, 0x0c0), 1);
    ck_assert_uint_eq(get32(zp, 0x21c), 0x00001000);
    ck_assert_uint_eq(get32(zp, 0x0c4), 1);
}
END_TEST

START_TEST(zero_page_holds_e820)
{
    struct boot_e820_entry e[BOOT_E820_MAX];
    int count;

    fill_zero_page(e, 0, 0, &count);
    ck_assert_int_eq(count, 6);
    ck_assert_uint_eq(zp[0x1e8], 6);
    ck_assert_mem_eq(zp + 0x2d0, e, 6 * 20);
    /* 20-byte entries on the wire: addr, size, type */
    ck_assert_uint_eq(get64(zp, 0x2d0 + 20), 0x9fc00);
    ck_assert_uint_eq(get64(zp, 0x2d0 + 20 + 8), 0x400);
    ck_assert_uint_eq(get32(zp, 0x2d0 + 20 + 16), E820_RESERVED);
    ck_assert_uint_eq(get64(zp, 0x2d0 + 5 * 20), 4 * GiB);
    ck_assert_uint_eq(get64(zp, 0x2d0 + 5 * 20 + 8), 3 * GiB);
    ck_assert_uint_eq(get32(zp, 0x2d0 + 5 * 20 + 16), E820_RAM);
    ck_assert_uint_eq(zp[0x2d0 + 6 * 20], 0);
}
END_TEST

/* ---- boot_place_initrd ---- */

/* A relocatable kernel first moves itself up to its runtime start, align_up(max(load
 * address, pref_address), kernel_alignment), and needs init_size from there (boot.rst,
 * init_size; kernel commit be4ca6c53e66). */
static void make_relocatable(uint32_t pref_address, uint32_t init_size)
{
    put32(img, 0x230, 2 << 20); /* kernel_alignment */
    img[0x234] = 1;             /* relocatable_kernel */
    put32(img, 0x258, pref_address);
    put32(img, 0x260, init_size);
}

START_TEST(initrd_at_top_of_low_memory_page_aligned)
{
    struct bzimage bz;
    uint64_t addr = 0;

    parse_ok(&bz);
    ck_assert_int_eq(boot_place_initrd(&bz, 512 * MiB, 0x1234, &addr), 0);
    ck_assert_uint_eq(addr, 512 * MiB - 0x2000);
}
END_TEST

START_TEST(initrd_clamped_by_initrd_addr_max)
{
    struct bzimage bz;
    uint64_t addr = 0;

    parse_ok(&bz);
    bz.initrd_addr_max = 0x0fffffff;
    ck_assert_int_eq(boot_place_initrd(&bz, 512 * MiB, 0x1000, &addr), 0);
    ck_assert_uint_eq(addr, 256 * MiB - 0x1000);
}
END_TEST

START_TEST(initrd_may_end_exactly_at_kernel_end)
{
    struct bzimage bz;
    uint64_t addr = 0;

    parse_ok(&bz); /* kernel occupies [1 MiB, 17 MiB) */
    ck_assert_int_eq(boot_place_initrd(&bz, 32 * MiB, 15 * MiB, &addr), 0);
    ck_assert_uint_eq(addr, MiB + IMG_INIT_SIZE);
}
END_TEST

START_TEST(initrd_overlapping_kernel_is_enospc)
{
    struct bzimage bz;
    uint64_t addr = 0;

    parse_ok(&bz);
    ck_assert_int_eq(boot_place_initrd(&bz, 32 * MiB, 15 * MiB + 1, &addr), -ENOSPC);
}
END_TEST

START_TEST(initrd_bigger_than_memory_is_enospc)
{
    struct bzimage bz;
    uint64_t addr = 0;

    parse_ok(&bz);
    ck_assert_int_eq(boot_place_initrd(&bz, 512 * MiB, GiB, &addr), -ENOSPC);
    ck_assert_int_eq(boot_place_initrd(&bz, 512 * MiB, UINT64_MAX, &addr), -ENOSPC);
}
END_TEST

/* Found by fuzz_boot: pref_address near 2^64 wrapped max(pref, 1 MiB) + init_size to a
 * small end, so the initrd went where the kernel would decompress itself. */
START_TEST(initrd_with_wrapping_pref_address_is_enospc)
{
    struct bzimage bz;
    uint64_t addr = 0;

    make_relocatable(0, 4 * MiB);
    put32(img, 0x258, 0xffe00000);
    put32(img, 0x25c, 0xffffffff); /* pref_address 0xffffffffffe00000 */
    parse_ok(&bz);
    ck_assert_int_eq(boot_place_initrd(&bz, 512 * MiB, 0x1000, &addr), -ENOSPC);
}
END_TEST

START_TEST(parse_rejects_alignment_not_a_power_of_two)
{
    make_relocatable(0x1000000, 4 * MiB);
    put32(img, 0x230, 0x3c01);
    assert_rejected(img, sizeof(img), -ENOEXEC, "not a power of two");
}
END_TEST

/* ---- boot_load into real guest memory ---- */

static struct guest_memory lmem;
static uint64_t entry;

static void load_setup(void)
{
    make_image();
    ck_assert_int_eq(guest_memory_create(&lmem, GUEST_MEM_MIN_SIZE, false), 0);
}

static void load_teardown(void)
{
    guest_memory_destroy(&lmem);
}

static uint8_t *gpa(uint64_t addr, uint64_t len)
{
    uint8_t *p = guest_memory_ptr(&lmem, addr, len);

    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(load_places_kernel_cmdline_and_zero_page)
{
    static const uint8_t initrd[4096] = {0x77};
    struct boot_files f = {.kernel = img,
                           .kernel_size = sizeof(img),
                           .initrd = initrd,
                           .initrd_size = sizeof(initrd),
                           .cmdline = "console=ttyS0"};
    uint8_t *zpage;

    ck_assert_int_eq(boot_load(&lmem, &f, &entry), 0);
    ck_assert_uint_eq(entry, LAYOUT_HIMEM_START + 0x200); /* the bzImage's 64-bit entry */
    ck_assert_mem_eq(gpa(LAYOUT_HIMEM_START, IMG_SIZE - IMG_SETUP_SIZE), img + IMG_SETUP_SIZE,
                     IMG_SIZE - IMG_SETUP_SIZE);
    ck_assert_str_eq((char *)gpa(LAYOUT_CMDLINE_ADDR, 14), "console=ttyS0");
    ck_assert_uint_eq(*gpa(GUEST_MEM_MIN_SIZE - 4096, 1), 0x77);
    zpage = gpa(LAYOUT_ZERO_PAGE_ADDR, BOOT_ZERO_PAGE_SIZE);
    ck_assert_uint_eq(get32(zpage, 0x228), LAYOUT_CMDLINE_ADDR);
    ck_assert_uint_eq(get32(zpage, 0x218), GUEST_MEM_MIN_SIZE - 4096);
    ck_assert_uint_eq(get32(zpage, 0x21c), 4096);
    ck_assert_uint_eq(zpage[0x1e8], 5);
    ck_assert_uint_eq(get64(gpa(LAYOUT_PML4_ADDR, 8), 0), LAYOUT_PDPT_ADDR | 0x3);
}
END_TEST

/* cmdline_size counts the characters without the terminating NUL (boot.rst). */
START_TEST(load_accepts_cmdline_of_cmdline_size_chars)
{
    static char cmdline[IMG_CMDLINE_SIZE + 1];
    struct boot_files f = {.kernel = img, .kernel_size = sizeof(img), .cmdline = cmdline};

    memset(cmdline, 'a', IMG_CMDLINE_SIZE);
    cmdline[IMG_CMDLINE_SIZE] = '\0';
    ck_assert_int_eq(boot_load(&lmem, &f, &entry), 0);
    cmdline[IMG_CMDLINE_SIZE - 1] = '\0';
    ck_assert_int_eq(boot_load(&lmem, &f, &entry), 0);
}
END_TEST

START_TEST(load_rejects_cmdline_longer_than_cmdline_size)
{
    static char cmdline[IMG_CMDLINE_SIZE + 2];
    struct boot_files f = {.kernel = img, .kernel_size = sizeof(img), .cmdline = cmdline};

    memset(cmdline, 'a', IMG_CMDLINE_SIZE + 1);
    cmdline[IMG_CMDLINE_SIZE + 1] = '\0';
    ck_assert_int_eq(boot_load(&lmem, &f, &entry), -E2BIG);
}
END_TEST

START_TEST(load_rejects_relocated_kernel_beyond_low_memory)
{
    struct boot_files f = {.kernel = img, .kernel_size = sizeof(img), .cmdline = ""};

    make_relocatable(16 << 20, 18 << 20); /* needs [16 MiB, 34 MiB); the guest has 32 */
    ck_assert_int_eq(boot_load(&lmem, &f, &entry), -ENOSPC);
}
END_TEST

START_TEST(load_rejects_kernel_bigger_than_low_memory)
{
    struct boot_files f = {.kernel = img, .kernel_size = sizeof(img), .cmdline = ""};

    put32(img, 0x260, GUEST_MEM_MIN_SIZE);
    ck_assert_int_eq(boot_load(&lmem, &f, &entry), -ENOSPC);
}
END_TEST

START_TEST(initrd_avoids_relocated_kernel)
{
    const uint64_t start = 16 * MiB, end = 32 * MiB;
    struct bzimage bz;
    uint64_t addr = 0;
    int ret;

    make_relocatable(start, end - start);
    parse_ok(&bz);
    ret = boot_place_initrd(&bz, 80 * MiB, 56 * MiB, &addr);
    if (ret == 0)
        ck_assert_msg(addr >= end || addr + 56 * MiB <= start,
                      "initrd [%#llx, +56 MiB) overlaps the kernel at [16 MiB, 32 MiB)",
                      (unsigned long long)addr);
    else
        ck_assert_int_eq(ret, -ENOSPC);
}
END_TEST

/* ---- an ELF vmlinux ---- */

/* Ehdr, three program headers (text, a NOTE, data+bss), then the segments' bytes:
 * text 8 KiB at 2 MiB, data 4 KiB of file and 12 KiB of memory at 4 MiB. */
#define ELF_SIZE (3 * 4096)
#define ELF_TEXT_PA (2 * MiB)
#define ELF_DATA_PA (4 * MiB)
static uint8_t elf[ELF_SIZE];

static Elf64_Ehdr *elf_eh(void)
{
    return (Elf64_Ehdr *)(void *)elf;
}
static Elf64_Phdr *elf_ph(unsigned i)
{
    return (Elf64_Phdr *)(void *)(elf + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

static void make_elf(void)
{
    Elf64_Ehdr *eh = elf_eh();

    memset(elf, 0, sizeof(elf));
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_type = ET_EXEC;
    eh->e_machine = EM_X86_64;
    eh->e_entry = ELF_TEXT_PA + 0x40;
    eh->e_phoff = sizeof(Elf64_Ehdr);
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 3;
    *elf_ph(0) = (Elf64_Phdr){.p_type = PT_LOAD,
                              .p_offset = 4096,
                              .p_paddr = ELF_TEXT_PA,
                              .p_filesz = 4096,
                              .p_memsz = 8192};
    *elf_ph(1) = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = 100, .p_paddr = 0, .p_filesz = 8};
    *elf_ph(2) = (Elf64_Phdr){.p_type = PT_LOAD,
                              .p_offset = 8192,
                              .p_paddr = ELF_DATA_PA,
                              .p_filesz = 4096,
                              .p_memsz = 12288};
    memset(elf + 4096, 0xc3, 4096);
    memset(elf + 8192, 0xd4, 4096);
}

START_TEST(elf_loads_segments_at_their_physical_addresses)
{
    static const uint8_t initrd[4096] = {0x77};
    struct boot_files f = {.kernel = elf,
                           .kernel_size = sizeof(elf),
                           .initrd = initrd,
                           .initrd_size = sizeof(initrd),
                           .cmdline = "console=ttyS0"};
    uint8_t *zpage, *text, *data;

    make_elf();
    text = gpa(ELF_TEXT_PA, 8192);
    data = gpa(ELF_DATA_PA, 12288);
    memset(text, 0xee, 8192); /* a rebooted guest's old RAM: the bss must come back zero */
    memset(data, 0xee, 12288);
    ck_assert_int_eq(boot_load(&lmem, &f, &entry), 0);
    ck_assert_uint_eq(entry, ELF_TEXT_PA + 0x40);
    ck_assert_mem_eq(text, elf + 4096, 4096);
    ck_assert_mem_eq(data, elf + 8192, 4096);
    for (unsigned i = 4096; i < 8192; i++)
        ck_assert_uint_eq(text[i], 0);
    for (unsigned i = 4096; i < 12288; i++)
        ck_assert_uint_eq(data[i], 0);
    zpage = gpa(LAYOUT_ZERO_PAGE_ADDR, BOOT_ZERO_PAGE_SIZE);
    ck_assert_uint_eq(get32(zpage, 0x1fe) & 0xffff, 0xaa55); /* a setup header, synthesized */
    ck_assert_uint_eq(get32(zpage, 0x202), 0x53726448);
    ck_assert_uint_eq(zpage[0x210], 0xff);
    ck_assert_uint_eq(get32(zpage, 0x228), LAYOUT_CMDLINE_ADDR);
    ck_assert_uint_eq(get32(zpage, 0x218), GUEST_MEM_MIN_SIZE - 4096);
    ck_assert_uint_eq(get32(zpage, 0x21c), 4096);
    ck_assert_str_eq((char *)gpa(LAYOUT_CMDLINE_ADDR, 14), "console=ttyS0");
}
END_TEST

START_TEST(elf_initrd_stays_above_the_kernel)
{
    struct boot_kernel k;
    const char *why = NULL;
    uint64_t addr = 0;

    make_elf();
    ck_assert_int_eq(boot_kernel_parse(elf, sizeof(elf), &k, &why), 0);
    ck_assert_int_eq(boot_place_initrd(&k.bz, 8 * MiB, 3 * MiB, &addr), 0);
    ck_assert_uint_ge(addr, ELF_DATA_PA + 12288);
    /* 4 MiB under 8 MiB would start at 4 MiB, inside the data segment's bss. */
    ck_assert_int_eq(boot_place_initrd(&k.bz, 8 * MiB, 4 * MiB, &addr), -ENOSPC);
}
END_TEST

/* Each bad ELF: refused by boot_kernel_parse with -ENOEXEC and a reason. */
static void elf_refused(const char *what)
{
    struct boot_kernel k;
    const char *why = NULL;

    ck_assert_msg(boot_kernel_parse(elf, sizeof(elf), &k, &why) == -ENOEXEC, "%s was accepted",
                  what);
    ck_assert_ptr_nonnull(why);
}

START_TEST(elf_malformed_kernels_are_refused)
{
    make_elf(), elf_eh()->e_ident[EI_CLASS] = ELFCLASS32, elf_refused("a 32-bit ELF");
    make_elf(), elf_eh()->e_ident[EI_DATA] = ELFDATA2MSB, elf_refused("a big-endian ELF");
    make_elf(), elf_eh()->e_machine = EM_AARCH64, elf_refused("an arm64 ELF");
    make_elf(), elf_eh()->e_type = ET_DYN, elf_refused("a shared object");
    make_elf(), elf_eh()->e_phentsize = 32, elf_refused("a wrong program header size");
    make_elf(), elf_eh()->e_phnum = 0, elf_refused("no program headers");
    make_elf(), elf_eh()->e_phnum = 1000, elf_refused("1000 program headers");
    make_elf(), elf_eh()->e_phoff = ELF_SIZE - 16, elf_refused("program headers past the end");
    make_elf(), elf_eh()->e_phoff = sizeof(Elf64_Ehdr) + 1,
                elf_refused("misaligned program headers");
    make_elf(), elf_eh()->e_phoff = UINT64_MAX - 15,
                elf_refused("a program header offset that wraps");
    make_elf(), elf_ph(0)->p_offset = ELF_SIZE - 100, elf_refused("a segment past the end");
    make_elf(), elf_ph(0)->p_offset = UINT64_MAX - 100, elf_refused("a segment offset that wraps");
    make_elf(), elf_ph(0)->p_filesz = 16384, elf_refused("filesz above memsz");
    make_elf(), elf_ph(0)->p_paddr = 0x1000, elf_refused("a segment below 1 MiB");
    make_elf(), elf_ph(2)->p_memsz = UINT64_MAX - 4096, elf_refused("a segment that wraps");
    make_elf(), elf_ph(2)->p_paddr = 0xbfffff000ULL, elf_refused("a segment in the PCI hole");
    make_elf(), elf_eh()->e_entry = ELF_DATA_PA + 12288, elf_refused("an entry past the segments");
    make_elf(), elf_eh()->e_entry = 0x1000, elf_refused("an entry below the segments");
    /* Found by fuzz_boot: the entry was checked against the segments' span only. */
    make_elf(), elf_eh()->e_entry = ELF_TEXT_PA + 8192, elf_refused("an entry between segments");
    make_elf(), elf_eh()->e_entry = ELF_TEXT_PA + 4096, elf_refused("an entry in a zeroed tail");
    make_elf(), elf_ph(0)->p_type = PT_NULL, elf_ph(2)->p_type = PT_NULL, elf_refused("no PT_LOAD");
}
END_TEST

START_TEST(elf_segment_beyond_low_memory_is_enospc)
{
    struct boot_files f = {.kernel = elf, .kernel_size = sizeof(elf), .cmdline = ""};

    make_elf();
    elf_ph(2)->p_paddr = GUEST_MEM_MIN_SIZE - 4096; /* its 12 KiB run past the guest's RAM */
    ck_assert_int_eq(boot_load(&lmem, &f, &entry), -ENOSPC);
}
END_TEST

static Suite *boot_suite(void)
{
    Suite *s = suite_create("boot");
    TCase *parse = tcase_create("bzimage_parse");
    TCase *e820 = tcase_create("e820");
    TCase *zpage = tcase_create("zero_page");
    TCase *initrd = tcase_create("initrd");
    TCase *load = tcase_create("boot_load");

    tcase_add_checked_fixture(parse, make_image, short_copy_free);
    tcase_add_test(parse, parse_fills_fields);
    tcase_add_test(parse, parse_zero_setup_sects_means_four);
    tcase_add_test(parse, parse_counts_setup_sects);
    tcase_add_test(parse, parse_rejects_missing_magic);
    tcase_add_test(parse, parse_rejects_bad_boot_flag);
    tcase_add_test(parse, parse_rejects_protocol_2_11);
    tcase_add_test(parse, parse_accepts_protocol_2_12);
    tcase_add_test(parse, parse_rejects_no_loaded_high);
    tcase_add_test(parse, parse_rejects_no_64bit_entry);
    tcase_add_test(parse, parse_rejects_too_short);
    tcase_add_test(parse, parse_rejects_no_payload);
    suite_add_tcase(s, parse);

    tcase_add_loop_test(e820, e820_for_the_ram_size, 0, sizeof(e820_maps) / sizeof(e820_maps[0]));
    tcase_add_test(e820, e820_has_no_ram_in_hole);
    tcase_add_test(e820, e820_respects_max);
    suite_add_tcase(s, e820);

    tcase_add_checked_fixture(zpage, make_image, NULL);
    tcase_add_test(zpage, zero_page_copies_setup_header);
    tcase_add_test(zpage, zero_page_stops_at_header_end);
    tcase_add_test(zpage, zero_page_sets_loader_fields);
    tcase_add_test(zpage, zero_page_splits_64bit_initrd);
    tcase_add_test(zpage, zero_page_holds_e820);
    suite_add_tcase(s, zpage);

    tcase_add_checked_fixture(initrd, make_image, NULL);
    tcase_add_test(initrd, initrd_at_top_of_low_memory_page_aligned);
    tcase_add_test(initrd, initrd_clamped_by_initrd_addr_max);
    tcase_add_test(initrd, initrd_may_end_exactly_at_kernel_end);
    tcase_add_test(initrd, initrd_overlapping_kernel_is_enospc);
    tcase_add_test(initrd, initrd_bigger_than_memory_is_enospc);
    tcase_add_test(initrd, initrd_avoids_relocated_kernel);
    tcase_add_test(initrd, initrd_with_wrapping_pref_address_is_enospc);
    tcase_add_test(initrd, parse_rejects_alignment_not_a_power_of_two);
    suite_add_tcase(s, initrd);

    tcase_add_checked_fixture(load, load_setup, load_teardown);
    tcase_add_test(load, load_places_kernel_cmdline_and_zero_page);
    tcase_add_test(load, load_accepts_cmdline_of_cmdline_size_chars);
    tcase_add_test(load, load_rejects_cmdline_longer_than_cmdline_size);
    tcase_add_test(load, load_rejects_kernel_bigger_than_low_memory);
    tcase_add_test(load, load_rejects_relocated_kernel_beyond_low_memory);
    tcase_add_test(load, elf_loads_segments_at_their_physical_addresses);
    tcase_add_test(load, elf_initrd_stays_above_the_kernel);
    tcase_add_test(load, elf_malformed_kernels_are_refused);
    tcase_add_test(load, elf_segment_beyond_low_memory_is_enospc);
    suite_add_tcase(s, load);
    return s;
}

CHECK_MAIN(boot_suite)
