#include "boot.h"

#include "layout.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../kvm/vcpu.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

/* Setup header offsets inside the bzImage and the zero page. */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_END_MAX BOOT_HDR_SIZE

#define ZP_EXT_RAMDISK_IMAGE 0x0c0
#define ZP_EXT_RAMDISK_SIZE 0x0c4
#define ZP_E820_ENTRIES 0x1e8
#define ZP_E820_TABLE 0x2d0

#define BOOT_FLAG_MAGIC 0xaa55
#define HDRS_MAGIC 0x53726448 /* "HdrS" */
#define LOADFLAG_LOADED_HIGH 0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x01
#define LOADER_TYPE_UNDEFINED 0xff
#define ENTRY_64_OFFSET 0x200

static uint16_t get16(const uint8_t *p, size_t off)
{
    return (uint16_t)(p[off] | p[off + 1] << 8);
}

static uint32_t get32(const uint8_t *p, size_t off)
{
    return get16(p, off) | (uint32_t)get16(p, off + 2) << 16;
}

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

int bzimage_parse(const uint8_t *data, size_t size, struct bzimage *bz, const char **why)
{
    unsigned setup_sects;

    memset(bz, 0, sizeof(*bz));
    if (size < HDR_END_MAX || get16(data, HDR_BOOT_FLAG) != BOOT_FLAG_MAGIC ||
        get32(data, HDR_MAGIC) != HDRS_MAGIC) {
        *why = "not a bzImage (no Linux boot header) nor an ELF vmlinux";
        return -ENOEXEC;
    }
    bz->version = get16(data, HDR_VERSION);
    if (bz->version < BOOT_MIN_PROTOCOL) {
        *why = "boot protocol too old (2.12 or later is needed for a 64-bit entry)";
        return -ENOTSUP;
    }
    if (!(data[HDR_LOADFLAGS] & LOADFLAG_LOADED_HIGH)) {
        *why = "not a bzImage (a zImage loads low)";
        return -ENOEXEC;
    }
    if (!(get16(data, HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
        *why = "kernel has no 64-bit entry point";
        return -ENOTSUP;
    }
    setup_sects = data[HDR_SETUP_SECTS] ? data[HDR_SETUP_SECTS] : 4;
    bz->setup_size = (size_t)(setup_sects + 1) * 512;
    if (bz->setup_size >= size) {
        *why = "truncated bzImage (no protected-mode payload)";
        return -ENOEXEC;
    }
    bz->data = data;
    bz->size = size;
    bz->kernel_offset = bz->setup_size;
    bz->kernel_size = size - bz->setup_size;
    bz->initrd_addr_max = get32(data, HDR_INITRD_ADDR_MAX);
    bz->cmdline_size = get32(data, HDR_CMDLINE_SIZE);
    bz->init_size = get32(data, HDR_INIT_SIZE);
    bz->pref_address = get32(data, HDR_PREF_ADDRESS) | (uint64_t)get32(data, HDR_PREF_ADDRESS + 4)
                                                           << 32;
    bz->kernel_alignment = data[HDR_RELOCATABLE] ? get32(data, HDR_KERNEL_ALIGNMENT) : 0;
    if (bz->kernel_alignment & (bz->kernel_alignment - 1)) {
        *why = "relocatable kernel's kernel_alignment is not a power of two";
        return -ENOEXEC;
    }
    return 0;
}

static int e820_add(struct boot_e820_entry *out, int n, int max, uint64_t addr, uint64_t end,
                    uint32_t type)
{
    if (end <= addr || n >= max)
        return n;
    out[n] = (struct boot_e820_entry){.addr = addr, .size = end - addr, .type = type};
    return n + 1;
}

int boot_build_e820(const struct guest_memory *mem, struct boot_e820_entry *out, int max)
{
    uint64_t low_end = guest_memory_low_end(mem);
    int n = 0;

    n = e820_add(out, n, max, 0, LAYOUT_EBDA_START, E820_RAM);
    n = e820_add(out, n, max, LAYOUT_EBDA_START, 0xa0000, E820_RESERVED);
    n = e820_add(out, n, max, 0xf0000, LAYOUT_HIMEM_START, E820_RESERVED);
    n = e820_add(out, n, max, LAYOUT_HIMEM_START, low_end, E820_RAM);
    /* KVM's identity-map and TSS pages sit in the hole: keep them from BARs. */
    n = e820_add(out, n, max, LAYOUT_KVM_IDENTITY_MAP_ADDR, LAYOUT_KVM_TSS_ADDR + 3 * 4096,
                 E820_RESERVED);
    for (int i = 1; i < mem->nregions; i++)
        n = e820_add(out, n, max, mem->regions[i].gpa, mem->regions[i].gpa + mem->regions[i].size,
                     E820_RAM);
    return n;
}

/* ---- an uncompressed ELF vmlinux ---- */

static const Elf64_Phdr *elf_phdr(const uint8_t *data, const Elf64_Ehdr *eh, unsigned i)
{
    return (const Elf64_Phdr *)(const void *)(data + eh->e_phoff +
                                              (uint64_t)i * sizeof(Elf64_Phdr));
}

static int elf_check_header(size_t size, const Elf64_Ehdr *eh, const char **why)
{
    if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
        eh->e_machine != EM_X86_64) {
        *why = "ELF kernel is not x86-64 (64-bit, little-endian)";
        return -ENOEXEC;
    }
    if (eh->e_type != ET_EXEC) {
        *why = "ELF kernel is not an executable (ET_EXEC)";
        return -ENOEXEC;
    }
    if (eh->e_phentsize != sizeof(Elf64_Phdr) || !eh->e_phnum ||
        eh->e_phnum > BOOT_ELF_MAX_SEGMENTS || eh->e_phoff % 8 || eh->e_phoff > size ||
        (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) {
        *why = "ELF kernel's program headers are missing or outside the file";
        return -ENOEXEC;
    }
    return 0;
}

static int elf_check_segment(size_t size, const Elf64_Phdr *ph, const char **why)
{
    if (ph->p_filesz > ph->p_memsz || ph->p_offset > size || size - ph->p_offset < ph->p_filesz) {
        *why = "ELF kernel has a segment outside the file";
        return -ENOEXEC;
    }
    if (ph->p_paddr < LAYOUT_HIMEM_START || ph->p_paddr > LAYOUT_MMIO_HOLE_START ||
        ph->p_memsz > LAYOUT_MMIO_HOLE_START - ph->p_paddr) {
        *why = "ELF kernel has a segment outside 1 MiB..3 GiB (physical)";
        return -ENOEXEC;
    }
    return 0;
}

/* The setup header a bzImage would carry; the kernel reads the command line, initrd
 * and loader fields from it in the zero page. */
static void elf_setup_header(uint8_t hdr[BOOT_HDR_SIZE])
{
    memset(hdr, 0, BOOT_HDR_SIZE);
    put16(hdr, HDR_BOOT_FLAG, BOOT_FLAG_MAGIC);
    hdr[HDR_JUMP + 1] = BOOT_HDR_SIZE - HDR_MAGIC;
    put32(hdr, HDR_MAGIC, HDRS_MAGIC);
    put16(hdr, HDR_VERSION, 0x020f);
    hdr[HDR_LOADFLAGS] = LOADFLAG_LOADED_HIGH;
    put32(hdr, HDR_INITRD_ADDR_MAX, 0x7fffffff);
    put32(hdr, HDR_KERNEL_ALIGNMENT, 0x200000);
    put32(hdr, HDR_CMDLINE_SIZE, 2047); /* COMMAND_LINE_SIZE on x86 */
}

/* The entry lies in what a segment loads from the file: not in a gap between segments
 * (where nothing is loaded) nor in a segment's zeroed tail. */
static bool elf_entry_loaded(const uint8_t *data, const Elf64_Ehdr *eh)
{
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = elf_phdr(data, eh, i);

        if (ph->p_type == PT_LOAD && eh->e_entry >= ph->p_paddr &&
            eh->e_entry - ph->p_paddr < ph->p_filesz)
            return true;
    }
    return false;
}

static int elf_kernel_parse(const uint8_t *data, size_t size, struct boot_kernel *k,
                            const char **why)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)data;
    uint64_t start = UINT64_MAX, end = 0;
    int ret = elf_check_header(size, eh, why);

    for (unsigned i = 0; !ret && i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = elf_phdr(data, eh, i);

        if (ph->p_type != PT_LOAD)
            continue;
        ret = elf_check_segment(size, ph, why);
        if (ret)
            break;
        start = ph->p_paddr < start ? ph->p_paddr : start;
        end = ph->p_paddr + ph->p_memsz > end ? ph->p_paddr + ph->p_memsz : end;
    }
    if (ret)
        return ret;
    if (end <= start) {
        *why = "ELF kernel has nothing to load (no PT_LOAD segment)";
        return -ENOEXEC;
    }
    if (!elf_entry_loaded(data, eh)) {
        *why = "ELF kernel's entry point is outside its segments' contents";
        return -ENOEXEC;
    }
    k->elf = 1;
    k->elf_data = data;
    k->elf_size = size;
    k->entry = eh->e_entry;
    elf_setup_header(k->hdr);
    k->bz = (struct bzimage){
        .data = k->hdr,
        .size = BOOT_HDR_SIZE,
        .version = 0x020f,
        .initrd_addr_max = 0x7fffffff,
        .cmdline_size = 2047,
        .init_size = (uint32_t)(end - start),
        .pref_address = start,
    };
    return 0;
}

int boot_kernel_parse(const uint8_t *data, size_t size, struct boot_kernel *k, const char **why)
{
    memset(k, 0, sizeof(*k));
    if (size >= sizeof(Elf64_Ehdr) && !memcmp(data, ELFMAG, SELFMAG))
        return elf_kernel_parse(data, size, k, why);
    k->entry = LAYOUT_HIMEM_START + ENTRY_64_OFFSET;
    return bzimage_parse(data, size, &k->bz, why);
}

/* Each PT_LOAD segment at its physical address, the rest of its memory zeroed. */
static void elf_load_segments(struct guest_memory *mem, const struct boot_kernel *k)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)k->elf_data;

    for (unsigned i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = elf_phdr(k->elf_data, eh, i);
        uint8_t *dst;

        if (ph->p_type != PT_LOAD)
            continue;
        dst = guest_memory_ptr(mem, ph->p_paddr, ph->p_memsz);
        memcpy(dst, k->elf_data + ph->p_offset, ph->p_filesz);
        memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
    }
}

/* The kernel decompresses itself to max(load address, pref_address), aligned up
 * to kernel_alignment when relocatable, and needs init_size bytes from there.
 * UINT64_MAX for a header whose sums wrap (pref_address near 2^64): it fits nowhere. */
static uint64_t boot_kernel_end(const struct bzimage *bz)
{
    uint64_t run_at = bz->pref_address > LAYOUT_HIMEM_START ? bz->pref_address : LAYOUT_HIMEM_START;
    uint64_t image_end = LAYOUT_HIMEM_START + bz->kernel_size;

    if (bz->kernel_alignment > 1) {
        if (run_at > UINT64_MAX - (bz->kernel_alignment - 1))
            return UINT64_MAX;
        run_at = ALIGN_UP(run_at, bz->kernel_alignment);
    }
    if (run_at > UINT64_MAX - bz->init_size)
        return UINT64_MAX;
    return run_at + bz->init_size > image_end ? run_at + bz->init_size : image_end;
}

int boot_place_initrd(const struct bzimage *bz, uint64_t low_end, uint64_t initrd_size,
                      uint64_t *addr)
{
    uint64_t top = low_end;
    uint64_t max = bz->initrd_addr_max ? (uint64_t)bz->initrd_addr_max + 1 : 0x38000000ULL;

    if (top > max)
        top = max;
    if (initrd_size > top)
        return -ENOSPC;
    *addr = ALIGN_DOWN(top - initrd_size, 4096);
    if (*addr < boot_kernel_end(bz))
        return -ENOSPC;
    return 0;
}

void boot_fill_zero_page(uint8_t zp[BOOT_ZERO_PAGE_SIZE], const struct bzimage *bz,
                         const struct boot_zero_page_args *args)
{
    size_t hdr_end = HDR_MAGIC + bz->data[HDR_JUMP + 1];

    if (hdr_end > HDR_END_MAX)
        hdr_end = HDR_END_MAX;
    memset(zp, 0, BOOT_ZERO_PAGE_SIZE);
    memcpy(zp + HDR_SETUP_SECTS, bz->data + HDR_SETUP_SECTS, hdr_end - HDR_SETUP_SECTS);
    zp[HDR_TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
    zp[HDR_LOADFLAGS] |= LOADFLAG_CAN_USE_HEAP;
    put16(zp, HDR_HEAP_END_PTR, 0xfe00);
    put32(zp, HDR_CMD_LINE_PTR, (uint32_t)args->cmdline_addr);
    put32(zp, HDR_RAMDISK_IMAGE, (uint32_t)args->initrd_addr);
    put32(zp, HDR_RAMDISK_SIZE, (uint32_t)args->initrd_size);
    put32(zp, ZP_EXT_RAMDISK_IMAGE, (uint32_t)(args->initrd_addr >> 32));
    put32(zp, ZP_EXT_RAMDISK_SIZE, (uint32_t)(args->initrd_size >> 32));
    zp[ZP_E820_ENTRIES] = (uint8_t)args->e820_count;
    memcpy(zp + ZP_E820_TABLE, args->e820, (size_t)args->e820_count * sizeof(args->e820[0]));
}

/* Identity map of the first 4 GiB with 2 MiB pages: covers the kernel, the
 * initrd, the zero page and the command line, as the 64-bit protocol requires. */
static void boot_write_page_tables(struct guest_memory *mem)
{
    uint64_t *pml4 = guest_memory_ptr(mem, LAYOUT_PML4_ADDR, 4096);
    uint64_t *pdpt = guest_memory_ptr(mem, LAYOUT_PDPT_ADDR, 4096);
    uint64_t *pd = guest_memory_ptr(mem, LAYOUT_PD_ADDR, 4 * 4096);
    const uint64_t present_rw = 0x3, page_2m = 0x80;

    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = LAYOUT_PDPT_ADDR | present_rw;
    for (int i = 0; i < 4; i++)
        pdpt[i] = (LAYOUT_PD_ADDR + i * 4096ULL) | present_rw;
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | present_rw | page_2m;
}

/* Flat descriptors at the selectors the protocol names: __BOOT_CS 0x10, __BOOT_DS 0x18,
 * plus a TSS at 0x20 because VM entry checks TR. */
static const uint64_t boot_gdt[] = {
    0,
    0,
    0x00af9b000000ffffULL, /* 0x10: 64-bit code */
    0x00cf93000000ffffULL, /* 0x18: data */
    0x00808b000000ffffULL, /* 0x20: 32-bit busy TSS */
};

static int boot_check_fits(const struct bzimage *bz, uint64_t low_end, size_t cmdline_len)
{
    /* cmdline_size counts the characters without the terminating NUL. */
    size_t cmdline_max = bz->cmdline_size ? bz->cmdline_size : 255;

    if (cmdline_max > LAYOUT_CMDLINE_MAX - 1)
        cmdline_max = LAYOUT_CMDLINE_MAX - 1;
    if (cmdline_len > cmdline_max) {
        pr_err("kernel command line is %zu bytes, the kernel accepts at most %zu", cmdline_len,
               cmdline_max);
        return -E2BIG;
    }
    if (boot_kernel_end(bz) == UINT64_MAX) {
        pr_err("kernel's pref_address 0x%llx and init_size 0x%x reach past the end of memory",
               (unsigned long long)bz->pref_address, bz->init_size);
        return -ENOEXEC;
    }
    if (boot_kernel_end(bz) > low_end) {
        pr_err("kernel needs %llu MiB from 1 MiB on, guest has %llu MiB of low memory",
               (unsigned long long)((boot_kernel_end(bz) - LAYOUT_HIMEM_START) >> 20),
               (unsigned long long)(low_end >> 20));
        return -ENOSPC;
    }
    return 0;
}

int boot_load(struct guest_memory *mem, const struct boot_files *files, uint64_t *entry)
{
    struct boot_e820_entry e820[BOOT_E820_MAX];
    struct boot_zero_page_args zpa = {.cmdline_addr = LAYOUT_CMDLINE_ADDR};
    size_t cmdline_len = strlen(files->cmdline);
    struct boot_kernel k;
    const struct bzimage *bz = &k.bz;
    const char *why = NULL;
    int ret;

    ret = boot_kernel_parse(files->kernel, files->kernel_size, &k, &why);
    if (ret) {
        pr_err("kernel: %s", why);
        return ret;
    }
    ret = boot_check_fits(bz, guest_memory_low_end(mem), cmdline_len);
    if (ret)
        return ret;
    if (k.elf)
        elf_load_segments(mem, &k);
    else
        memcpy(guest_memory_ptr(mem, LAYOUT_HIMEM_START, bz->kernel_size),
               bz->data + bz->kernel_offset, bz->kernel_size);
    memcpy(guest_memory_ptr(mem, LAYOUT_CMDLINE_ADDR, cmdline_len + 1), files->cmdline,
           cmdline_len + 1);
    if (files->initrd) {
        ret =
            boot_place_initrd(bz, guest_memory_low_end(mem), files->initrd_size, &zpa.initrd_addr);
        if (ret) {
            pr_err("initrd of %zu MiB does not fit in low memory above the kernel "
                   "(%llu MiB of low memory; give the guest more --memory)",
                   files->initrd_size >> 20, (unsigned long long)(guest_memory_low_end(mem) >> 20));
            return ret;
        }
        zpa.initrd_size = files->initrd_size;
        memcpy(guest_memory_ptr(mem, zpa.initrd_addr, zpa.initrd_size), files->initrd,
               zpa.initrd_size);
    }
    zpa.e820 = e820;
    zpa.e820_count = boot_build_e820(mem, e820, BOOT_E820_MAX);
    boot_fill_zero_page(guest_memory_ptr(mem, LAYOUT_ZERO_PAGE_ADDR, BOOT_ZERO_PAGE_SIZE), bz,
                        &zpa);
    boot_write_page_tables(mem);
    memcpy(guest_memory_ptr(mem, LAYOUT_GDT_ADDR, sizeof(boot_gdt)), boot_gdt, sizeof(boot_gdt));
    *entry = k.entry;
    return 0;
}

static struct kvm_segment boot_segment(uint16_t selector, uint8_t type, uint8_t l, uint8_t db)
{
    return (struct kvm_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = selector,
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = db,
        .s = 1,
        .l = l,
        .g = 1,
    };
}

#define X86_CR0_PE 0x1ULL
#define X86_CR0_ET 0x10ULL
#define X86_CR0_PG 0x80000000ULL
#define X86_CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

static void boot_long_mode_sregs(struct kvm_sregs *sregs)
{
    struct kvm_segment data = boot_segment(0x18, 0x3, 0, 1);

    sregs->cs = boot_segment(0x10, 0xb, 1, 0);
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    sregs->tr = (struct kvm_segment){
        .base = 0, .limit = 0xffff, .selector = 0x20, .type = 0xb, .present = 1, .g = 0};
    sregs->ldt = (struct kvm_segment){.selector = 0, .type = 0x2, .present = 1, .limit = 0xffff};
    sregs->gdt.base = LAYOUT_GDT_ADDR;
    sregs->gdt.limit = sizeof(boot_gdt) - 1;
    sregs->idt.base = LAYOUT_IDT_ADDR;
    sregs->idt.limit = 0;
    sregs->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    sregs->cr3 = LAYOUT_PML4_ADDR;
    sregs->cr4 = X86_CR4_PAE;
    sregs->efer = EFER_LME | EFER_LMA;
}

int boot_setup_bsp(struct kvm_vcpu *vcpu, uint64_t entry)
{
    struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
    struct kvm_regs regs = {
        .rflags = 0x2,
        .rip = entry,
        .rsp = LAYOUT_BOOT_STACK_ADDR,
        .rbp = LAYOUT_BOOT_STACK_ADDR,
        .rsi = LAYOUT_ZERO_PAGE_ADDR,
    };
    struct kvm_sregs sregs;
    int ret;

    ret = kvm_vcpu_get_sregs(vcpu, &sregs);
    if (ret)
        return ret;
    boot_long_mode_sregs(&sregs);
    ret = kvm_vcpu_set_sregs(vcpu, &sregs);
    if (!ret)
        ret = kvm_vcpu_set_fpu(vcpu, &fpu);
    if (!ret)
        ret = kvm_vcpu_set_regs(vcpu, &regs);
    return ret;
}
