#include "pci.h"

#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#define PCI_COMMAND_WMASK                                                                          \
    (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |               \
     PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
#define PCI_STATUS_W1C 0xf900 /* parity, target/master abort and system error bits */
#define PCI_BAR_END (PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS)
#define PCI_BAR_UPPER 0x80000000u        /* internal flag: the upper half of a 64-bit BAR */
#define PCI_CONFIG_ADDR_MASK 0x80fffffcu /* reserved bits read back as zero */

static struct pci *to_pci(struct device *dev)
{
    return (struct pci *)((char *)dev - offsetof(struct pci, cfg_dev));
}

static bool ranges_overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return a < b + blen && b < a + alen;
}

/* ---- BARs ---- */

static uint32_t pci_bar_reg(int bar)
{
    return PCI_BASE_ADDRESS_0 + 4 * (uint32_t)bar;
}

static uint64_t pci_bar_address_locked(const struct pci_device *dev, int bar)
{
    uint64_t addr = pci_get_long(dev->config + pci_bar_reg(bar)) & ~0xfu;

    if (dev->bars[bar].flags & PCI_BAR_MEM64)
        addr |= (uint64_t)pci_get_long(dev->config + pci_bar_reg(bar + 1)) << 32;
    return addr;
}

uint64_t pci_bar_address(struct pci_device *dev, int bar)
{
    uint64_t addr;

    if (bar < 0 || bar >= PCI_NUM_BARS || !dev->bars[bar].size)
        return 0;
    pthread_mutex_lock(&dev->lock);
    addr = pci_bar_address_locked(dev, bar);
    pthread_mutex_unlock(&dev->lock);
    return addr;
}

/* Where the BAR should be decoded, or unmapped. Like QEMU, an address that wraps
 * or ends at the top of its space (what sizing leaves behind) counts as invalid. */
static uint64_t pci_bar_target(const struct pci_device *dev, int bar)
{
    const struct pci_bar *b = &dev->bars[bar];
    uint64_t addr = pci_bar_address_locked(dev, bar);
    uint64_t last = addr + b->size - 1;

    if (!(pci_get_word(dev->config + PCI_COMMAND) & PCI_COMMAND_MEMORY))
        return PCI_BAR_UNMAPPED;
    if (addr == 0 || last < addr || last == UINT64_MAX)
        return PCI_BAR_UNMAPPED;
    if (!(b->flags & PCI_BAR_MEM64) && last >= UINT32_MAX)
        return PCI_BAR_UNMAPPED;
    return addr;
}

static uint64_t pci_bar_map(struct pci_device *dev, int bar, uint64_t addr)
{
    struct pci_bar *b = &dev->bars[bar];
    int ret;

    if (addr == PCI_BAR_UNMAPPED)
        return addr;
    ret = bus_register(dev->host->mmio, addr, b->size, b->mmio);
    if (ret) {
        /* The guest's choice collides with another range: decode nothing. */
        pr_debug("%s: BAR%d at 0x%llx (0x%llx bytes) not mapped: %s", dev->id, bar,
                 (unsigned long long)addr, (unsigned long long)b->size, strerror(-ret));
        return PCI_BAR_UNMAPPED;
    }
    return addr;
}

/* Brings every BAR's bus registration in line with the command and BAR registers. */
static void pci_update_mappings(struct pci_device *dev)
{
    if (!dev->host)
        return;
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        struct pci_bar *b = &dev->bars[i];
        uint64_t old = b->mapped, want;

        if (!b->size)
            continue;
        want = pci_bar_target(dev, i);
        if (want == old)
            continue;
        if (old != PCI_BAR_UNMAPPED)
            bus_unregister(dev->host->mmio, old, b->mmio);
        b->mapped = pci_bar_map(dev, i, want);
        if (b->mapped != old && dev->bar_moved)
            dev->bar_moved(dev, i, old, b->mapped);
    }
}

static void pci_unmap_all(struct pci_device *dev)
{
    uint16_t cmd = pci_get_word(dev->config + PCI_COMMAND);

    pci_set_word(dev->config + PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
    pci_update_mappings(dev);
    pci_set_word(dev->config + PCI_COMMAND, cmd);
}

static bool pci_bar_args_ok(const struct pci_device *dev, int bar, uint64_t size, unsigned flags)
{
    bool is64 = flags & PCI_BAR_MEM64;

    if (bar < 0 || bar >= PCI_NUM_BARS || (is64 && bar == PCI_NUM_BARS - 1))
        return false;
    if (flags & ~(PCI_BAR_MEM64 | PCI_BAR_PREFETCH) || size < 16 || (size & (size - 1)))
        return false;
    if (!is64 && size > (1ULL << 31))
        return false;
    if (dev->bars[bar].size || dev->bars[bar].flags)
        return false;
    return !is64 || (!dev->bars[bar + 1].size && !dev->bars[bar + 1].flags);
}

int pci_set_bar(struct pci_device *dev, int bar, uint64_t size, unsigned flags, struct device *mmio)
{
    uint64_t mask = ~(size - 1);
    uint32_t type = 0;

    if (!mmio || dev->host || !pci_bar_args_ok(dev, bar, size, flags))
        return -EINVAL;
    if (flags & PCI_BAR_MEM64)
        type |= PCI_BASE_ADDRESS_MEM_TYPE_64;
    if (flags & PCI_BAR_PREFETCH)
        type |= PCI_BASE_ADDRESS_MEM_PREFETCH;
    pthread_mutex_lock(&dev->lock);
    dev->bars[bar] = (struct pci_bar){.size = size, .flags = flags, .mmio = mmio};
    pci_set_long(dev->config + pci_bar_reg(bar), type);
    pci_set_long(dev->wmask + pci_bar_reg(bar), (uint32_t)mask & ~0xfu);
    if (flags & PCI_BAR_MEM64) {
        dev->bars[bar + 1].flags = PCI_BAR_UPPER;
        pci_set_long(dev->wmask + pci_bar_reg(bar + 1), (uint32_t)(mask >> 32));
    }
    pthread_mutex_unlock(&dev->lock);
    return 0;
}

/* Naturally aligned bump allocation; space is not reclaimed on unregister. */
static int pci_window_alloc(struct pci_window *w, uint64_t size, uint64_t *addr)
{
    uint64_t a = ALIGN_UP(w->next, size);

    if (a < w->next || a > w->end || w->end - a < size)
        return -ENOSPC;
    *addr = a;
    w->next = a + size;
    return 0;
}

static int pci_place_bars(struct pci *pci, struct pci_device *dev)
{
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        const struct pci_bar *b = &dev->bars[i];
        bool is64 = b->flags & PCI_BAR_MEM64;
        struct pci_window *w = is64 && pci->mem64.end > pci->mem64.base ? &pci->mem64 : &pci->mem32;
        uint64_t addr;

        if (!b->size)
            continue;
        if (pci_window_alloc(w, b->size, &addr))
            return -ENOSPC;
        pci_set_long(dev->config + pci_bar_reg(i),
                     (pci_get_long(dev->config + pci_bar_reg(i)) & 0xf) | (uint32_t)addr);
        if (is64)
            pci_set_long(dev->config + pci_bar_reg(i + 1), (uint32_t)(addr >> 32));
        pr_debug("%s: BAR%d 0x%llx bytes at 0x%llx", dev->id, i, (unsigned long long)b->size,
                 (unsigned long long)addr);
    }
    return 0;
}

/* ---- config space ---- */

static void pci_run_hooks(struct pci_device *dev, uint32_t off, uint32_t len, bool write)
{
    for (unsigned i = 0; i < dev->nr_hooks; i++) {
        const struct pci_config_hook *h = &dev->hooks[i];
        pci_config_hook_fn fn = write ? h->write : h->read;
        uint32_t start, end;

        if (!fn || !ranges_overlap(off, len, h->start, h->len))
            continue;
        start = off > h->start ? off : h->start;
        end = off + len < (uint32_t)h->start + h->len ? off + len : (uint32_t)h->start + h->len;
        fn(dev, start, end - start, h->opaque);
    }
}

static bool pci_access_ok(uint32_t off, uint32_t len)
{
    return (len == 1 || len == 2 || len == 4) && off < PCI_CONFIG_SPACE_SIZE &&
           off + len <= PCI_CONFIG_SPACE_SIZE;
}

uint32_t pci_config_read(struct pci_device *dev, uint32_t off, uint32_t len)
{
    uint32_t val = 0;

    if (!pci_access_ok(off, len))
        return 0xffffffffu;
    pthread_mutex_lock(&dev->lock);
    pci_run_hooks(dev, off, len, false);
    for (uint32_t i = 0; i < len; i++)
        val |= (uint32_t)dev->config[off + i] << (8 * i);
    pthread_mutex_unlock(&dev->lock);
    return val;
}

void pci_config_write(struct pci_device *dev, uint32_t off, uint32_t len, uint32_t val)
{
    if (!pci_access_ok(off, len)) {
        pr_debug("%s: config write of %u bytes at 0x%x dropped", dev->id, len, off);
        return;
    }
    pthread_mutex_lock(&dev->lock);
    for (uint32_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)(val >> (8 * i)), *c = &dev->config[off + i];

        *c = (uint8_t)((*c & ~dev->wmask[off + i]) | (b & dev->wmask[off + i]));
        *c &= (uint8_t) ~(b & dev->w1cmask[off + i]);
    }
    if (ranges_overlap(off, len, PCI_COMMAND, 2) ||
        ranges_overlap(off, len, PCI_BASE_ADDRESS_0, PCI_BAR_END - PCI_BASE_ADDRESS_0))
        pci_update_mappings(dev);
    pci_run_hooks(dev, off, len, true);
    pthread_mutex_unlock(&dev->lock);
}

int pci_device_init(struct pci_device *dev, const char *id, const struct pci_ids *ids)
{
    int ret;

    memset(dev, 0, sizeof(*dev));
    ret = pthread_mutex_init(&dev->lock, NULL);
    if (ret)
        return -ret;
    dev->id = id;
    dev->slot = -1;
    dev->cap_end = PCI_CAP_START;
    pci_set_word(dev->config + PCI_VENDOR_ID, ids->vendor);
    pci_set_word(dev->config + PCI_DEVICE_ID, ids->device);
    dev->config[PCI_REVISION_ID] = ids->revision;
    dev->config[PCI_CLASS_PROG] = (uint8_t)ids->class_code;
    pci_set_word(dev->config + PCI_CLASS_DEVICE, (uint16_t)(ids->class_code >> 8));
    pci_set_word(dev->config + PCI_SUBSYSTEM_VENDOR_ID, ids->subsystem_vendor);
    pci_set_word(dev->config + PCI_SUBSYSTEM_ID, ids->subsystem);
    /* Header type 0, single function, no ROM, no INTx pin: MSI-X only. */
    pci_set_word(dev->wmask + PCI_COMMAND, PCI_COMMAND_WMASK);
    pci_set_word(dev->w1cmask + PCI_STATUS, PCI_STATUS_W1C);
    dev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    dev->wmask[PCI_LATENCY_TIMER] = 0xff;
    dev->wmask[PCI_INTERRUPT_LINE] = 0xff; /* a scratch byte for the OS */
    return 0;
}

void pci_device_destroy(struct pci_device *dev)
{
    pthread_mutex_destroy(&dev->lock);
}

int pci_add_capability(struct pci_device *dev, uint8_t id, uint8_t len)
{
    uint32_t off;

    if (len < 2)
        return -EINVAL;
    pthread_mutex_lock(&dev->lock);
    off = ALIGN_UP(dev->cap_end, 4);
    if (off + len > PCI_CONFIG_SPACE_SIZE) {
        pthread_mutex_unlock(&dev->lock);
        return -ENOSPC;
    }
    dev->config[off] = id;
    dev->config[off + 1] = 0;
    if (dev->cap_last)
        dev->config[dev->cap_last + 1] = (uint8_t)off;
    else
        dev->config[PCI_CAPABILITY_LIST] = (uint8_t)off;
    dev->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    dev->cap_last = (uint16_t)off;
    dev->cap_end = (uint16_t)(off + len);
    pthread_mutex_unlock(&dev->lock);
    return (int)off;
}

int pci_add_config_hook(struct pci_device *dev, uint16_t start, uint16_t len,
                        pci_config_hook_fn read, pci_config_hook_fn write, void *opaque)
{
    int ret = 0;

    if (start < PCI_CAP_START || !len || start + len > PCI_CONFIG_SPACE_SIZE)
        return -EINVAL;
    pthread_mutex_lock(&dev->lock);
    if (dev->nr_hooks == PCI_MAX_CONFIG_HOOKS)
        ret = -ENOSPC;
    else
        dev->hooks[dev->nr_hooks++] = (struct pci_config_hook){start, len, read, write, opaque};
    pthread_mutex_unlock(&dev->lock);
    return ret;
}

/* ---- migration ---- */

int pci_device_save(struct pci_device *dev, struct state_buf *out)
{
    int ret;

    pthread_mutex_lock(&dev->lock);
    ret = state_buf_put(out, dev->config, sizeof(dev->config));
    pthread_mutex_unlock(&dev->lock);
    return ret;
}

int pci_device_load(struct pci_device *dev, const uint8_t *data, size_t len)
{
    int ret = 0;

    if (len != PCI_CONFIG_SPACE_SIZE)
        return -EINVAL;
    pthread_mutex_lock(&dev->lock);
    for (size_t i = 0; i < len; i++) {
        uint8_t fixed = (uint8_t) ~(dev->wmask[i] | dev->w1cmask[i]);

        if ((data[i] ^ dev->config[i]) & fixed) {
            pr_err("%s: saved config byte 0x%zx is 0x%02x, this device has 0x%02x", dev->id, i,
                   data[i], dev->config[i]);
            ret = -EINVAL;
            goto out;
        }
    }
    memcpy(dev->config, data, len);
    pci_update_mappings(dev);
out:
    pthread_mutex_unlock(&dev->lock);
    return ret;
}

/* ---- the registry and configuration mechanism #1 ---- */

static int pci_free_slot(const struct pci *pci)
{
    for (int slot = 1; slot < PCI_MAX_SLOTS; slot++)
        if (!pci->slots[slot])
            return slot;
    return -ENOSPC;
}

int pci_register(struct pci *pci, struct pci_device *dev, int slot)
{
    struct pci_window mem32, mem64;
    int ret = 0;

    if (slot == 0 || slot >= PCI_MAX_SLOTS)
        return -EINVAL;
    pthread_mutex_lock(&pci->lock);
    if (slot < 0)
        slot = pci_free_slot(pci);
    if (slot < 0 || pci->slots[slot] || dev->host) {
        ret = slot < 0 ? slot : -EBUSY;
        goto out;
    }
    mem32 = pci->mem32, mem64 = pci->mem64;
    pthread_mutex_lock(&dev->lock);
    ret = pci_place_bars(pci, dev);
    if (ret) {
        pci->mem32 = mem32, pci->mem64 = mem64;
        pr_err("%s: no room for its BARs in the PCI windows", dev->id);
    } else {
        dev->host = pci;
        dev->slot = slot;
        pci->slots[slot] = dev;
        memcpy(dev->config_reset, dev->config, sizeof(dev->config));
    }
    pthread_mutex_unlock(&dev->lock);
out:
    pthread_mutex_unlock(&pci->lock);
    return ret;
}

void pci_unregister(struct pci *pci, struct pci_device *dev)
{
    pthread_mutex_lock(&pci->lock);
    if (dev->host == pci && dev->slot >= 0 && pci->slots[dev->slot] == dev) {
        pthread_mutex_lock(&dev->lock);
        pci_unmap_all(dev);
        pci->slots[dev->slot] = NULL;
        dev->host = NULL;
        dev->slot = -1;
        pthread_mutex_unlock(&dev->lock);
    }
    pthread_mutex_unlock(&pci->lock);
}

void pci_device_reset(struct pci_device *dev)
{
    pthread_mutex_lock(&dev->lock);
    memcpy(dev->config, dev->config_reset, sizeof(dev->config));
    pci_update_mappings(dev);
    pthread_mutex_unlock(&dev->lock);
}

void pci_reset(struct pci *pci)
{
    pthread_mutex_lock(&pci->lock);
    pci->config_addr = 0;
    pthread_mutex_unlock(&pci->lock);
    pci_device_reset(&pci->host_bridge);
}

/* The function the latch addresses: bus 0, function 0 only. */
static struct pci_device *pci_addressed(const struct pci *pci)
{
    uint32_t a = pci->config_addr;

    if (!(a & PCI_CONFIG_ENABLE) || ((a >> 16) & 0xff) || ((a >> 8) & 0x7))
        return NULL;
    return pci->slots[(a >> 11) & 0x1f];
}

static void put_le(uint8_t *data, uint32_t len, uint32_t val)
{
    for (uint32_t i = 0; i < len && i < 4; i++)
        data[i] = (uint8_t)(val >> (8 * i));
}

static uint32_t get_le(const uint8_t *data, uint32_t len)
{
    uint32_t val = 0;

    for (uint32_t i = 0; i < len && i < 4; i++)
        val |= (uint32_t)data[i] << (8 * i);
    return val;
}

/* Offset 0 is the address latch (dword accesses only, like the chipsets: byte
 * accesses to 0xCF8-0xCFB are other registers, such as 0xCF9 reset control);
 * offsets 4-7 are the data window onto the addressed dword. */
static void pci_cfg_port_read(struct device *d, uint64_t off, uint8_t *data, uint32_t len)
{
    struct pci *pci = to_pci(d);
    struct pci_device *dev;

    memset(data, 0xff, len);
    pthread_mutex_lock(&pci->lock);
    if (off == 0 && len == 4) {
        put_le(data, len, pci->config_addr);
    } else if (off >= 4 && off - 4 + len <= 4 && (dev = pci_addressed(pci))) {
        uint32_t reg = (pci->config_addr & 0xfc) + (uint32_t)(off - 4);

        put_le(data, len, pci_config_read(dev, reg, len));
    }
    pthread_mutex_unlock(&pci->lock);
}

static void pci_cfg_port_write(struct device *d, uint64_t off, const uint8_t *data, uint32_t len)
{
    struct pci *pci = to_pci(d);
    struct pci_device *dev;

    pthread_mutex_lock(&pci->lock);
    if (off == 0 && len == 4) {
        pci->config_addr = get_le(data, len) & PCI_CONFIG_ADDR_MASK;
    } else if (off >= 4 && off - 4 + len <= 4 && (dev = pci_addressed(pci))) {
        uint32_t reg = (pci->config_addr & 0xfc) + (uint32_t)(off - 4);

        pci_config_write(dev, reg, len, get_le(data, len));
    }
    pthread_mutex_unlock(&pci->lock);
}

static const struct device_ops pci_cfg_ops = {
    .read = pci_cfg_port_read,
    .write = pci_cfg_port_write,
};

static int pci_window_init(struct pci_window *w, uint64_t base, uint64_t size, uint64_t limit)
{
    if (base + size < base || base + size > limit)
        return -EINVAL;
    *w = (struct pci_window){.base = base, .end = base + size, .next = base};
    return 0;
}

static int pci_init_host_bridge(struct pci *pci)
{
    const struct pci_ids ids = {
        .vendor = PCI_HOST_BRIDGE_VENDOR,
        .device = PCI_HOST_BRIDGE_DEVICE,
        .class_code = PCI_CLASS_BRIDGE_HOST,
    };
    int ret = pci_device_init(&pci->host_bridge, "pci-host", &ids);

    if (ret)
        return ret;
    pci->host_bridge.host = pci;
    pci->host_bridge.slot = 0;
    pci->slots[0] = &pci->host_bridge;
    memcpy(pci->host_bridge.config_reset, pci->host_bridge.config, PCI_CONFIG_SPACE_SIZE);
    return 0;
}

int pci_init(struct pci *pci, struct bus *pio, struct bus *mmio, const struct pci_layout *layout)
{
    int ret;

    memset(pci, 0, sizeof(*pci));
    if (!layout->mem32_size ||
        pci_window_init(&pci->mem32, layout->mem32_base, layout->mem32_size, 1ULL << 32) ||
        pci_window_init(&pci->mem64, layout->mem64_base, layout->mem64_size, UINT64_MAX))
        return -EINVAL;
    pci->pio = pio;
    pci->mmio = mmio;
    pci->cfg_dev.id = "pci";
    pci->cfg_dev.ops = &pci_cfg_ops;
    ret = pthread_mutex_init(&pci->lock, NULL);
    if (ret)
        return -ret;
    ret = pci_init_host_bridge(pci);
    if (ret)
        goto err_lock;
    ret = bus_register(pio, PCI_CONFIG_ADDR_PORT, PCI_CONFIG_NR_PORTS, &pci->cfg_dev);
    if (ret)
        goto err_bridge;
    return 0;

err_bridge:
    pci_device_destroy(&pci->host_bridge);
err_lock:
    pthread_mutex_destroy(&pci->lock);
    return ret;
}

void pci_destroy(struct pci *pci)
{
    bus_unregister(pci->pio, PCI_CONFIG_ADDR_PORT, &pci->cfg_dev);
    for (int i = 1; i < PCI_MAX_SLOTS; i++)
        if (pci->slots[i])
            pci_unregister(pci, pci->slots[i]);
    pci_device_destroy(&pci->host_bridge);
    pthread_mutex_destroy(&pci->lock);
}
