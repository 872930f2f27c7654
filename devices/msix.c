#include "msix.h"

#include "../common/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { ENTRY_ADDR_LO, ENTRY_ADDR_HI, ENTRY_DATA, ENTRY_CTRL, ENTRY_WORDS };

/* Writable bits per entry dword: the address is dword aligned and vector
 * control has only the mask bit; reserved bits read as zero. */
static const uint32_t entry_wmask[ENTRY_WORDS] = {0xfffffffc, 0xffffffff, 0xffffffff,
                                                  MSIX_ENTRY_CTRL_MASKBIT};

static struct msix *bar_dev_to_msix(struct device *dev)
{
    return (struct msix *)((char *)dev - offsetof(struct msix, bar_dev));
}

static uint32_t msix_table_bytes(const struct msix *m)
{
    return m->nvectors * MSIX_ENTRY_SIZE;
}

static uint32_t msix_pba_bytes(const struct msix *m)
{
    return (m->nvectors + 63) / 64 * 8;
}

static bool pba_test(const struct msix *m, unsigned v)
{
    return m->pba[v / 64] & (1ULL << (v % 64));
}

static void pba_set(struct msix *m, unsigned v, bool on)
{
    if (on)
        m->pba[v / 64] |= 1ULL << (v % 64);
    else
        m->pba[v / 64] &= ~(1ULL << (v % 64));
}

static struct msix_vector msix_vector_now(const struct msix *m, unsigned v)
{
    const uint32_t *e = &m->table[v * ENTRY_WORDS];

    return (struct msix_vector){
        .addr = (uint64_t)e[ENTRY_ADDR_HI] << 32 | e[ENTRY_ADDR_LO],
        .data = e[ENTRY_DATA],
        .masked = (e[ENTRY_CTRL] & MSIX_ENTRY_CTRL_MASKBIT) || m->fmask || !m->enabled,
    };
}

/* Reports a change of v to the owner, then delivers it if it became unmasked
 * with its pending bit set: nothing raised while masked is lost. */
static void msix_update_vector(struct msix *m, unsigned v, bool force)
{
    struct msix_vector now = msix_vector_now(m, v);
    struct msix_vector *last = &m->vectors[v];

    if (force || now.addr != last->addr || now.data != last->data || now.masked != last->masked) {
        *last = now;
        if (m->ops->vector_changed)
            m->ops->vector_changed(m->opaque, v, now.addr, now.data, now.masked);
    }
    if (!now.masked && pba_test(m, v)) {
        pba_set(m, v, false);
        m->ops->deliver(m->opaque, now.addr, now.data);
    }
}

static void msix_update_all(struct msix *m, bool force)
{
    for (unsigned v = 0; v < m->nvectors; v++)
        msix_update_vector(m, v, force);
}

int msix_notify(struct msix *m, unsigned vector)
{
    struct msix_vector now;

    if (vector >= m->nvectors)
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    now = msix_vector_now(m, vector);
    if (now.masked)
        pba_set(m, vector, true);
    else
        m->ops->deliver(m->opaque, now.addr, now.data);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void msix_reset(struct msix *m)
{
    pthread_mutex_lock(&m->lock);
    m->enabled = m->fmask = false;
    memset(m->table, 0, msix_table_bytes(m));
    memset(m->pba, 0, msix_pba_bytes(m));
    for (unsigned v = 0; v < m->nvectors; v++)
        m->table[v * ENTRY_WORDS + ENTRY_CTRL] = MSIX_ENTRY_CTRL_MASKBIT;
    msix_update_all(m, false);
    pthread_mutex_unlock(&m->lock);
}

bool msix_enabled(struct msix *m)
{
    bool on;

    pthread_mutex_lock(&m->lock);
    on = m->enabled;
    pthread_mutex_unlock(&m->lock);
    return on;
}

bool msix_vector_masked(struct msix *m, unsigned vector)
{
    bool masked = true;

    pthread_mutex_lock(&m->lock);
    if (vector < m->nvectors)
        masked = msix_vector_now(m, vector).masked;
    pthread_mutex_unlock(&m->lock);
    return masked;
}

/* ---- the table and PBA in the BAR ---- */

static bool within(uint64_t off, uint32_t len, uint32_t start, uint32_t size)
{
    return off >= start && len <= size && off - start <= size - len;
}

static uint8_t table_byte(const struct msix *m, uint32_t o)
{
    return (uint8_t)(m->table[o / 4] >> (8 * (o % 4)));
}

static void table_write_byte(struct msix *m, uint32_t o, uint8_t b)
{
    uint32_t shift = 8 * (o % 4);
    uint32_t mask = entry_wmask[(o / 4) % ENTRY_WORDS] & (0xffu << shift);
    uint32_t *w = &m->table[o / 4];

    *w = (*w & ~mask) | (((uint32_t)b << shift) & mask);
}

static uint8_t pba_byte(const struct msix *m, uint32_t o)
{
    return (uint8_t)(m->pba[o / 8] >> (8 * (o % 8)));
}

bool msix_bar_read(struct msix *m, uint64_t offset, uint8_t *data, uint32_t len)
{
    bool in_table = within(offset, len, m->table_offset, msix_table_bytes(m));
    bool in_pba = within(offset, len, m->pba_offset, msix_pba_bytes(m));

    if (!len || (!in_table && !in_pba))
        return false;
    pthread_mutex_lock(&m->lock);
    for (uint32_t i = 0; i < len; i++)
        data[i] = in_table ? table_byte(m, (uint32_t)(offset - m->table_offset) + i)
                           : pba_byte(m, (uint32_t)(offset - m->pba_offset) + i);
    pthread_mutex_unlock(&m->lock);
    return true;
}

/* Any size is accepted (the spec only defines aligned dwords and qwords); the
 * PBA is read-only, so writes there are claimed and dropped. */
bool msix_bar_write(struct msix *m, uint64_t offset, const uint8_t *data, uint32_t len)
{
    uint32_t o;

    if (len && within(offset, len, m->pba_offset, msix_pba_bytes(m)))
        return true;
    if (!len || !within(offset, len, m->table_offset, msix_table_bytes(m)))
        return false;
    o = (uint32_t)(offset - m->table_offset);
    pthread_mutex_lock(&m->lock);
    for (uint32_t i = 0; i < len; i++)
        table_write_byte(m, o + i, data[i]);
    for (uint32_t v = o / MSIX_ENTRY_SIZE; v <= (o + len - 1) / MSIX_ENTRY_SIZE; v++)
        msix_update_vector(m, v, false);
    pthread_mutex_unlock(&m->lock);
    return true;
}

static void msix_bar_dev_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
    if (!msix_bar_read(bar_dev_to_msix(dev), offset, data, len))
        memset(data, 0, len); /* a hole in the BAR */
}

static void msix_bar_dev_write(struct device *dev, uint64_t offset, const uint8_t *data,
                               uint32_t len)
{
    msix_bar_write(bar_dev_to_msix(dev), offset, data, len);
}

static const struct device_ops msix_bar_ops = {
    .read = msix_bar_dev_read,
    .write = msix_bar_dev_write,
};

/* ---- the capability ---- */

/* Keeps the control word in config space in step with our state (a load may
 * have changed either). */
static void msix_control_read(struct pci_device *dev, uint32_t off, uint32_t len, void *opaque)
{
    struct msix *m = opaque;
    uint16_t ctrl = (uint16_t)(m->nvectors - 1);

    (void)off, (void)len;
    pthread_mutex_lock(&m->lock);
    if (m->enabled)
        ctrl |= MSIX_CTRL_ENABLE;
    if (m->fmask)
        ctrl |= MSIX_CTRL_MASKALL;
    pthread_mutex_unlock(&m->lock);
    pci_set_word(dev->config + m->cap + 2, ctrl);
}

static void msix_control_written(struct pci_device *dev, uint32_t off, uint32_t len, void *opaque)
{
    struct msix *m = opaque;
    uint16_t ctrl = pci_get_word(dev->config + m->cap + 2);

    (void)off, (void)len;
    pthread_mutex_lock(&m->lock);
    m->enabled = ctrl & MSIX_CTRL_ENABLE;
    m->fmask = ctrl & MSIX_CTRL_MASKALL;
    msix_update_all(m, false);
    pthread_mutex_unlock(&m->lock);
}

static bool msix_args_ok(const struct pci_device *dev, unsigned n, int bar, uint32_t table,
                         uint32_t pba, const struct msix_ops *ops)
{
    uint64_t table_end = (uint64_t)table + (uint64_t)n * MSIX_ENTRY_SIZE;
    uint64_t pba_end = (uint64_t)pba + (n + 63) / 64 * 8;

    if (!ops || !ops->deliver || !n || n > MSIX_MAX_VECTORS || bar < 0 || bar >= PCI_NUM_BARS)
        return false;
    if (!dev->bars[bar].size || (table & 7) || (pba & 7))
        return false;
    if (table_end > dev->bars[bar].size || pba_end > dev->bars[bar].size)
        return false;
    return table_end <= pba || pba_end <= table; /* apart */
}

static int msix_alloc(struct msix *m)
{
    m->table = calloc(m->nvectors, MSIX_ENTRY_SIZE);
    m->pba = calloc((m->nvectors + 63) / 64, sizeof(*m->pba));
    m->vectors = calloc(m->nvectors, sizeof(*m->vectors));
    if (!m->table || !m->pba || !m->vectors)
        return -ENOMEM;
    for (unsigned v = 0; v < m->nvectors; v++) {
        m->table[v * ENTRY_WORDS + ENTRY_CTRL] = MSIX_ENTRY_CTRL_MASKBIT;
        m->vectors[v].masked = true;
    }
    return 0;
}

static void msix_fill_capability(struct msix *m, struct pci_device *dev)
{
    uint8_t *cap = dev->config + m->cap;

    pci_set_word(cap + 2, (uint16_t)(m->nvectors - 1));
    pci_set_long(cap + 4, m->table_offset | (uint32_t)m->bar);
    pci_set_long(cap + 8, m->pba_offset | (uint32_t)m->bar);
    pci_set_word(dev->wmask + m->cap + 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
}

int msix_init(struct msix *m, struct pci_device *dev, unsigned nvectors, int bar,
              uint32_t table_offset, uint32_t pba_offset, const struct msix_ops *ops, void *opaque)
{
    int ret;

    memset(m, 0, sizeof(*m));
    if (!msix_args_ok(dev, nvectors, bar, table_offset, pba_offset, ops))
        return -EINVAL;
    *m = (struct msix){.bar_dev = {.id = dev->id, .ops = &msix_bar_ops},
                       .pci = dev,
                       .ops = ops,
                       .opaque = opaque,
                       .nvectors = nvectors,
                       .bar = bar,
                       .table_offset = table_offset,
                       .pba_offset = pba_offset};
    ret = -pthread_mutex_init(&m->lock, NULL);
    if (ret)
        return ret;
    ret = msix_alloc(m);
    if (ret)
        goto err;
    ret = pci_add_capability(dev, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
    if (ret < 0)
        goto err;
    m->cap = (uint8_t)ret;
    msix_fill_capability(m, dev);
    ret = pci_add_config_hook(dev, (uint16_t)(m->cap + 2), 2, msix_control_read,
                              msix_control_written, m);
    if (ret)
        goto err;
    return 0;

err:
    msix_destroy(m);
    return ret;
}

void msix_destroy(struct msix *m)
{
    free(m->table);
    free(m->pba);
    free(m->vectors);
    m->table = NULL;
    m->pba = NULL;
    m->vectors = NULL;
    pthread_mutex_destroy(&m->lock);
}

/* ---- migration ---- */

struct msix_state {
    uint32_t nvectors;
    uint16_t control; /* MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL */
    uint16_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct msix_state) == 8, "msix_state is 8 bytes");

int msix_save(struct msix *m, struct state_buf *out)
{
    struct msix_state st = {.nvectors = m->nvectors};
    int ret;

    pthread_mutex_lock(&m->lock);
    st.control =
        (uint16_t)((m->enabled ? MSIX_CTRL_ENABLE : 0) | (m->fmask ? MSIX_CTRL_MASKALL : 0));
    ret = state_buf_put(out, &st, sizeof(st));
    if (!ret)
        ret = state_buf_put(out, m->table, msix_table_bytes(m));
    if (!ret)
        ret = state_buf_put(out, m->pba, msix_pba_bytes(m));
    pthread_mutex_unlock(&m->lock);
    return ret;
}

int msix_load(struct msix *m, const uint8_t *data, size_t len)
{
    struct msix_state st;

    if (len != sizeof(st) + msix_table_bytes(m) + msix_pba_bytes(m))
        return -EINVAL;
    memcpy(&st, data, sizeof(st));
    if (st.nvectors != m->nvectors) {
        pr_err("%s: saved MSI-X table has %u vectors, this device %u", m->pci->id, st.nvectors,
               m->nvectors);
        return -EINVAL;
    }
    pthread_mutex_lock(&m->lock);
    m->enabled = st.control & MSIX_CTRL_ENABLE;
    m->fmask = st.control & MSIX_CTRL_MASKALL;
    memcpy(m->table, data + sizeof(st), msix_table_bytes(m));
    memcpy(m->pba, data + sizeof(st) + msix_table_bytes(m), msix_pba_bytes(m));
    for (unsigned i = 0; i < m->nvectors * ENTRY_WORDS; i++)
        m->table[i] &= entry_wmask[i % ENTRY_WORDS];
    if (m->nvectors % 64) /* bits past the last vector stay clear */
        m->pba[m->nvectors / 64] &= (1ULL << (m->nvectors % 64)) - 1;
    msix_update_all(m, true);
    pthread_mutex_unlock(&m->lock);
    return 0;
}
