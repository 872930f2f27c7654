/* PCI bus 0 behind a host bridge, reached through configuration mechanism #1
 * (ports 0xCF8-0xCFF), enough for Linux to enumerate it without ACPI.
 *
 * A device fills a struct pci_device (header, BARs, capabilities, hooks) and
 * registers it; the registry gives it a slot and places its BARs in the memory
 * windows. Each BAR names its own struct device, which is registered on the MMIO
 * bus at the BAR's address while the guest enables memory decode, so the bus
 * hands that device offsets relative to the BAR start.
 *
 * Locking: the host lock covers the address latch and the slots; each device's
 * lock covers its config space and BAR mappings (order: host, device, MMIO bus).
 * Config hooks and bar_moved run with the device lock held: they must not call
 * pci_config_read/write. BAR handlers must not either (they run under the MMIO
 * bus lock, which a BAR move takes for writing). */
#ifndef VMM_DEVICES_PCI_H
#define VMM_DEVICES_PCI_H

#include "bus.h"
#include "device.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PCI_CONFIG_ADDR_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT 0xcfc
#define PCI_CONFIG_NR_PORTS 8
#define PCI_CONFIG_ENABLE 0x80000000u

#define PCI_CONFIG_SPACE_SIZE 256
#define PCI_NUM_BARS 6
#define PCI_MAX_SLOTS 32
#define PCI_MAX_CONFIG_HOOKS 8
#define PCI_CAP_START 0x40 /* capabilities and hooks live above the header */

/* Type 0 header offsets and bits (the values of <linux/pci_regs.h>). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_PARITY 0x40
#define PCI_COMMAND_SERR 0x100
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CLASS_DEVICE 0x0a
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_BASE_ADDRESS_MEM_TYPE_64 0x04
#define PCI_BASE_ADDRESS_MEM_PREFETCH 0x08
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* The host bridge at 00:00.0: the id Cloud Hypervisor and crosvm use, which no
 * Linux chipset driver (agp, edac) binds to. */
#define PCI_HOST_BRIDGE_VENDOR 0x8086
#define PCI_HOST_BRIDGE_DEVICE 0x0d57
#define PCI_CLASS_BRIDGE_HOST 0x060000

/* pci_set_bar() flags. */
#define PCI_BAR_MEM64 0x1    /* takes this BAR slot and the next */
#define PCI_BAR_PREFETCH 0x2 /* sets the prefetchable bit */

#define PCI_BAR_UNMAPPED 0 /* bar_moved() address of a BAR not on the bus */

struct pci;
struct pci_device;

struct pci_ids {
    uint16_t vendor, device;
    uint16_t subsystem_vendor, subsystem;
    uint32_t class_code; /* base class, subclass, programming interface */
    uint8_t revision;
};

struct pci_bar {
    uint64_t size;       /* a power of two; 0 for an unused slot or a 64-bit upper half */
    unsigned flags;      /* PCI_BAR_* */
    struct device *mmio; /* gets the BAR's accesses, at offsets relative to the BAR */
    uint64_t mapped;     /* where it is on the MMIO bus, or PCI_BAR_UNMAPPED */
};

/* An owner's view of a config range above the header (a capability it emulates).
 * read runs before a guest read so it can refresh dev->config; write runs after a
 * guest write landed in dev->config through the write masks. off and len are
 * clipped to the hook's range. Either may be NULL. */
typedef void (*pci_config_hook_fn)(struct pci_device *dev, uint32_t off, uint32_t len,
                                   void *opaque);

struct pci_config_hook {
    uint16_t start, len;
    pci_config_hook_fn read, write;
    void *opaque;
};

struct pci_device {
    const char *id; /* "net0": the prefix of its log lines */
    pthread_mutex_t lock;
    struct pci *host; /* set by pci_register */
    int slot;         /* -1 until registered */

    uint8_t config[PCI_CONFIG_SPACE_SIZE];
    uint8_t config_reset[PCI_CONFIG_SPACE_SIZE]; /* as registered: what a reset restores */
    uint8_t wmask[PCI_CONFIG_SPACE_SIZE];        /* bits the guest may write */
    uint8_t w1cmask[PCI_CONFIG_SPACE_SIZE];      /* bits a guest 1 clears (status errors) */
    struct pci_bar bars[PCI_NUM_BARS];
    uint16_t cap_last, cap_end; /* last capability in the list; first free byte */
    struct pci_config_hook hooks[PCI_MAX_CONFIG_HOOKS];
    unsigned nr_hooks;

    /* Set by the owner: a BAR's mapping changed, either address may be
     * PCI_BAR_UNMAPPED (memory decode off, or the guest wrote an invalid address). */
    void (*bar_moved)(struct pci_device *dev, int bar, uint64_t old_addr, uint64_t new_addr);
    void *opaque; /* the owner's, for its callbacks */
};

/* Where the registry places BARs: a window below 4 GiB inside the MMIO hole, and
 * one above RAM for 64-bit BARs (size 0: none, 64-bit BARs then go below 4 GiB). */
struct pci_layout {
    uint64_t mem32_base, mem32_size;
    uint64_t mem64_base, mem64_size;
};

struct pci_window {
    uint64_t base, end, next; /* next: the first free address */
};

struct pci {
    struct device cfg_dev; /* ports 0xCF8-0xCFF */
    pthread_mutex_t lock;
    struct bus *pio, *mmio;
    uint32_t config_addr; /* the 0xCF8 latch */
    struct pci_window mem32, mem64;
    struct pci_device host_bridge;
    struct pci_device *slots[PCI_MAX_SLOTS];
};

/* Little-endian accessors for config (or mask) bytes. */
static inline uint16_t pci_get_word(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t pci_get_long(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void pci_set_word(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void pci_set_long(uint8_t *p, uint32_t v)
{
    pci_set_word(p, (uint16_t)v);
    pci_set_word(p + 2, (uint16_t)(v >> 16));
}

/* Creates the host bridge at slot 0 and claims ports 0xCF8-0xCFF on pio. BARs
 * are mapped on mmio. */
int pci_init(struct pci *pci, struct bus *pio, struct bus *mmio, const struct pci_layout *layout);
/* Unregisters every device still on the bus, then the ports. */
void pci_destroy(struct pci *pci);

/* Fills a type 0 header with its write masks; no BARs, no capabilities. */
int pci_device_init(struct pci_device *dev, const char *id, const struct pci_ids *ids);
void pci_device_destroy(struct pci_device *dev);

/* Declares a memory BAR before pci_register. size: a power of two >= 16. */
int pci_set_bar(struct pci_device *dev, int bar, uint64_t size, unsigned flags,
                struct device *mmio);

/* Appends a capability of len bytes (id and next pointer included, read-only
 * unless the owner sets dev->wmask), links it and sets the status bit. Returns
 * its config offset or -ENOSPC / -EINVAL. */
int pci_add_capability(struct pci_device *dev, uint8_t id, uint8_t len);

/* Routes guest accesses to [start, start+len) (at or above 0x40) to the owner. */
int pci_add_config_hook(struct pci_device *dev, uint16_t start, uint16_t len,
                        pci_config_hook_fn read, pci_config_hook_fn write, void *opaque);

/* Puts dev on bus 0 at slot (1-31, or -1 for the first free one) and places its
 * BARs. Memory decode starts off, so nothing is mapped yet. -EBUSY, -ENOSPC. */
int pci_register(struct pci *pci, struct pci_device *dev, int slot);
void pci_unregister(struct pci *pci, struct pci_device *dev);

/* A platform reset: config space back to what pci_register left (BARs at their
 * placed addresses, decode off, so nothing mapped). Capability owners reset their
 * own state (msix_reset). */
void pci_device_reset(struct pci_device *dev);
/* The host bridge and the 0xCF8 latch; each device is reset by its owner. */
void pci_reset(struct pci *pci);

/* The guest's view of config space: len 1, 2 or 4 within the 256 bytes (else
 * reads all ones and writes are dropped); writes honour the masks, remap BARs
 * and run hooks. */
uint32_t pci_config_read(struct pci_device *dev, uint32_t off, uint32_t len);
void pci_config_write(struct pci_device *dev, uint32_t off, uint32_t len, uint32_t val);

/* The address the BAR registers hold now (mapped or not); 0 for a bad index. */
uint64_t pci_bar_address(struct pci_device *dev, int bar);

/* Migration: the 256 config bytes. load refuses bytes the guest could not have
 * written (another device) and remaps the BARs. Owners load their capability
 * state (msix_load) after this. */
int pci_device_save(struct pci_device *dev, struct state_buf *out);
int pci_device_load(struct pci_device *dev, const uint8_t *data, size_t len);

#endif
