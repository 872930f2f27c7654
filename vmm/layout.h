/* Every guest-physical address vmm chooses, in one place. */
#ifndef VMM_LAYOUT_H
#define VMM_LAYOUT_H

#define LAYOUT_GDT_ADDR 0x500ULL
#define LAYOUT_IDT_ADDR 0x520ULL
#define LAYOUT_ZERO_PAGE_ADDR 0x7000ULL
#define LAYOUT_BOOT_STACK_ADDR 0x8ff0ULL
#define LAYOUT_PML4_ADDR 0x9000ULL
#define LAYOUT_PDPT_ADDR 0xa000ULL
#define LAYOUT_PD_ADDR 0xb000ULL /* four pages: 2 MiB pages for the first 4 GiB */
#define LAYOUT_CMDLINE_ADDR 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL
#define LAYOUT_EBDA_START 0x9fc00ULL /* end of usable base memory */
#define LAYOUT_MPTABLE_ADDR LAYOUT_EBDA_START
#define LAYOUT_HIMEM_START 0x100000ULL /* 1 MiB: where the kernel is loaded */

/* The 32-bit hole: no RAM between 3 GiB and 4 GiB, room for device MMIO. */
#define LAYOUT_MMIO_HOLE_START 0xc0000000ULL
#define LAYOUT_MMIO_HOLE_END 0x100000000ULL
#define LAYOUT_IOAPIC_ADDR 0xfec00000ULL
#define LAYOUT_LAPIC_ADDR 0xfee00000ULL
/* PCI BARs: a window below 4 GiB in the hole (clear of the IOAPIC, LAPIC and KVM
 * pages), and one for 64-bit BARs from the first 1 GiB boundary above RAM. */
#define LAYOUT_PCI_MEM32_START 0xc0000000ULL
#define LAYOUT_PCI_MEM32_SIZE 0x3e000000ULL
#define LAYOUT_PCI_MEM64_ALIGN 0x40000000ULL
#define LAYOUT_PCI_MEM64_SIZE 0x1000000000ULL /* 64 GiB */
/* Three pages KVM needs for the real-mode TSS on Intel, and its identity map page. */
#define LAYOUT_KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define LAYOUT_KVM_TSS_ADDR 0xfeffd000ULL

#endif
