#include "fake_platform.h"
#include "support.h"

#include "../../devices/virtio_pci.h"
#include "../../vhost/vhost_user.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

/* Each call: the view changes under the lock, and a refused call leaves its reason in
 * `why`; the failure (which may not return) comes after the unlock. */
#define WHY_SIZE 160

static void forbidden(const struct fake_platform *p, unsigned call, const char *name)
{
    if (p->forbid & call)
        support_fail("%s called platform->%s", p->who, name);
}

/* A call KVM refuses: counted, and its return value. */
static int refused(int *counter, int ret)
{
    (*counter)++;
    return ret;
}

static void after_call(const struct fake_platform *p, const char *why)
{
    if (why[0] && p->fail_on_bad)
        support_fail("%s", why);
}

static int ioeventfd_locked(struct fake_platform *p, uint64_t addr, uint32_t len, int fd,
                            bool assign, char *why)
{
    if (assign && addr == p->ioev_fail_addr)
        return -ENOSPC;
    for (int i = 0; i < p->nioev; i++) {
        if (p->ioev[i].addr != addr)
            continue;
        if (assign) {
            snprintf(why, WHY_SIZE, "ioeventfd at 0x%llx assigned twice", (unsigned long long)addr);
            return refused(&p->ioev_bad, -EEXIST);
        }
        if (p->ioev[i].len != len || p->ioev[i].fd != fd) {
            snprintf(why, WHY_SIZE, "ioeventfd at 0x%llx deassigned with another fd or length",
                     (unsigned long long)addr);
            return refused(&p->ioev_bad, -ENOENT); /* KVM matches all three */
        }
        p->ioev[i] = p->ioev[--p->nioev];
        return 0;
    }
    if (!assign) {
        snprintf(why, WHY_SIZE, "deassign of an unknown ioeventfd at 0x%llx",
                 (unsigned long long)addr);
        return refused(&p->ioev_bad, -ENOENT);
    }
    if (p->nioev == FAKE_MAX_LIVE)
        return -ENOSPC;
    p->ioev[p->nioev].addr = addr;
    p->ioev[p->nioev].len = len;
    p->ioev[p->nioev++].fd = fd;
    p->ioev_assigns++;
    return 0;
}

static int fake_ioeventfd(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign)
{
    struct fake_platform *p = opaque;
    char why[WHY_SIZE] = "";
    int ret;

    forbidden(p, FAKE_IOEVENTFD, "ioeventfd");
    pthread_mutex_lock(&p->lock);
    ret = ioeventfd_locked(p, addr, len, fd, assign, why);
    pthread_mutex_unlock(&p->lock);
    after_call(p, why);
    return ret;
}

/* KVM: one eventfd drives one irqfd (-EBUSY). */
static int irqfd_locked(struct fake_platform *p, int gsi, int fd, bool assign, char *why)
{
    for (int i = 0; i < p->nirqfd; i++) {
        if (p->irqfd[i].fd != fd)
            continue;
        if (assign) {
            snprintf(why, WHY_SIZE, "irqfd %d assigned twice", fd);
            return refused(&p->irqfd_bad, -EBUSY);
        }
        if (p->irqfd[i].gsi != gsi) {
            snprintf(why, WHY_SIZE, "irqfd %d deassigned from gsi %d, assigned to %d", fd, gsi,
                     p->irqfd[i].gsi);
            return refused(&p->irqfd_bad, -EBUSY);
        }
        p->irqfd[i] = p->irqfd[--p->nirqfd];
        return 0;
    }
    if (!assign) {
        snprintf(why, WHY_SIZE, "deassign of an unknown irqfd %d", fd);
        return refused(&p->irqfd_bad, -ENOENT);
    }
    if (p->nirqfd == FAKE_MAX_LIVE)
        return -ENOSPC;
    p->irqfd[p->nirqfd].gsi = gsi;
    p->irqfd[p->nirqfd++].fd = fd;
    p->irqfd_assigns++;
    return 0;
}

static int fake_irqfd(void *opaque, int gsi, int fd, bool assign)
{
    struct fake_platform *p = opaque;
    char why[WHY_SIZE] = "";
    int ret;

    forbidden(p, FAKE_IRQFD, "irqfd");
    pthread_mutex_lock(&p->lock);
    ret = irqfd_locked(p, gsi, fd, assign, why);
    pthread_mutex_unlock(&p->lock);
    after_call(p, why);
    return ret;
}

static int fake_msi_route_alloc(void *opaque)
{
    struct fake_platform *p = opaque;
    int gsi;

    forbidden(p, FAKE_MSI_ROUTE_ALLOC, "msi_route_alloc");
    pthread_mutex_lock(&p->lock);
    gsi = p->allocs++ == p->alloc_fail_at ? -ENOSPC : p->next_gsi++;
    pthread_mutex_unlock(&p->lock);
    return gsi;
}

static void fake_msi_route_free(void *opaque, int gsi)
{
    struct fake_platform *p = opaque;

    forbidden(p, FAKE_MSI_ROUTE_FREE, "msi_route_free");
    pthread_mutex_lock(&p->lock);
    if (p->nfreed < FAKE_MAX_ROUTES)
        p->freed[p->nfreed++] = gsi;
    pthread_mutex_unlock(&p->lock);
}

static int fake_msi_route_set(void *opaque, int gsi, uint64_t addr, uint32_t data)
{
    struct fake_platform *p = opaque;
    char why[WHY_SIZE] = "";

    forbidden(p, FAKE_MSI_ROUTE_SET, "msi_route_set");
    pthread_mutex_lock(&p->lock);
    if (gsi < p->gsi_base || gsi >= p->next_gsi) {
        snprintf(why, WHY_SIZE, "MSI route %d was never allocated", gsi);
        refused(&p->route_bad, 0);
    } else if (gsi - p->gsi_base < FAKE_MAX_ROUTES) {
        p->route_addr[gsi - p->gsi_base] = addr;
        p->route_data[gsi - p->gsi_base] = data;
    }
    p->route_sets++;
    pthread_mutex_unlock(&p->lock);
    after_call(p, why);
    return 0;
}

static int fake_signal_msi(void *opaque, uint64_t addr, uint32_t data)
{
    struct fake_platform *p = opaque;

    forbidden(p, FAKE_SIGNAL_MSI, "signal_msi");
    pthread_mutex_lock(&p->lock);
    if (p->nmsis < FAKE_MAX_MSIS) {
        p->msis[p->nmsis].addr = addr;
        p->msis[p->nmsis].data = data;
    }
    p->nmsis++;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static int watch_locked(struct fake_platform *p, int fd, void (*cb)(void *arg, uint32_t events),
                        void *arg, bool on, char *why)
{
    for (int i = 0; i < p->nwatch; i++) {
        if (p->watch[i].fd != fd)
            continue;
        if (on) {
            snprintf(why, WHY_SIZE, "fd %d watched twice", fd);
            return refused(&p->watch_bad, -EEXIST);
        }
        p->watch[i] = p->watch[--p->nwatch];
        return 0;
    }
    if (!on) {
        snprintf(why, WHY_SIZE, "unwatch of an unknown fd %d", fd);
        return refused(&p->watch_bad, -ENOENT);
    }
    if (p->nwatch == FAKE_MAX_LIVE)
        return -ENOSPC;
    p->watch[p->nwatch++] = (struct fake_watch){fd, cb, arg};
    return 0;
}

static int fake_watch_fd(void *opaque, int fd, void (*cb)(void *arg, uint32_t events), void *arg,
                         bool on)
{
    struct fake_platform *p = opaque;
    char why[WHY_SIZE] = "";
    int ret;

    forbidden(p, FAKE_WATCH_FD, "watch_fd");
    if (p->loop)
        return on ? event_loop_add(p->loop, fd, EPOLLIN, cb, arg) : event_loop_del(p->loop, fd);
    pthread_mutex_lock(&p->lock);
    ret = watch_locked(p, fd, cb, arg, on, why);
    pthread_mutex_unlock(&p->lock);
    after_call(p, why);
    return ret;
}

static int fake_mem_regions(void *opaque, struct vhost_user_mem_region *regions, int max)
{
    struct fake_platform *p = opaque;

    forbidden(p, FAKE_MEM_REGIONS, "mem_regions");
    if (!p->mem)
        return 0;
    if (max < 1)
        return -ENOSPC;
    guest_mem_region(p->mem, &regions[0]);
    return 1;
}

/* The view: every member from ioev up to the lock. */
static void fake_platform_clear(struct fake_platform *p)
{
    memset(p->ioev, 0, offsetof(struct fake_platform, lock) - offsetof(struct fake_platform, ioev));
    p->next_gsi = p->gsi_base;
}

void fake_platform_init(struct fake_platform *p)
{
    memset(p, 0, sizeof(*p));
    p->who = "the device";
    p->gsi_base = 24;
    p->alloc_fail_at = -1;
    p->ioev_fail_addr = UINT64_MAX;
    fake_platform_clear(p);
    pthread_mutex_init(&p->lock, NULL);
    p->ops = (struct virtio_platform){.ioeventfd = fake_ioeventfd,
                                      .irqfd = fake_irqfd,
                                      .msi_route_alloc = fake_msi_route_alloc,
                                      .msi_route_free = fake_msi_route_free,
                                      .msi_route_set = fake_msi_route_set,
                                      .signal_msi = fake_signal_msi,
                                      .watch_fd = fake_watch_fd,
                                      .mem_regions = fake_mem_regions,
                                      .opaque = p};
}

void fake_platform_destroy(struct fake_platform *p)
{
    pthread_mutex_destroy(&p->lock);
}

void fake_platform_reset(struct fake_platform *p)
{
    pthread_mutex_lock(&p->lock);
    fake_platform_clear(p);
    pthread_mutex_unlock(&p->lock);
}

int fake_ioeventfd_at(struct fake_platform *p, uint64_t addr, int fd)
{
    int len = -1;

    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nioev; i++)
        if (p->ioev[i].addr == addr && p->ioev[i].fd == fd)
            len = (int)p->ioev[i].len;
    pthread_mutex_unlock(&p->lock);
    return len;
}

int fake_irqfd_gsi(struct fake_platform *p, int fd)
{
    int gsi = -1;

    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nirqfd; i++)
        if (p->irqfd[i].fd == fd)
            gsi = p->irqfd[i].gsi;
    pthread_mutex_unlock(&p->lock);
    return gsi;
}

int fake_watch_index(struct fake_platform *p, int fd)
{
    int index = -1;

    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nwatch; i++)
        if (p->watch[i].fd == fd)
            index = i;
    pthread_mutex_unlock(&p->lock);
    return index;
}

int fake_bad_calls(struct fake_platform *p)
{
    int n;

    pthread_mutex_lock(&p->lock);
    n = p->ioev_bad + p->irqfd_bad + p->watch_bad + p->route_bad;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static bool still_watched(struct fake_platform *p, const struct fake_watch *w)
{
    bool found = false;

    pthread_mutex_lock(&p->lock);
    for (int j = 0; j < p->nwatch && !found; j++)
        found = p->watch[j].fd == w->fd && p->watch[j].cb == w->cb;
    pthread_mutex_unlock(&p->lock);
    return found;
}

void fake_platform_run_watched(struct fake_platform *p)
{
    struct fake_watch ready[FAKE_MAX_LIVE];
    int n = 0;

    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nwatch; i++) {
        struct pollfd pfd = {.fd = p->watch[i].fd, .events = POLLIN};

        if (poll(&pfd, 1, 0) == 1)
            ready[n++] = p->watch[i];
    }
    pthread_mutex_unlock(&p->lock);
    /* A callback may unwatch others: run only those still watched. */
    for (int i = 0; i < n; i++)
        if (still_watched(p, &ready[i]))
            ready[i].cb(ready[i].arg, EPOLLIN);
}

static bool queue_matches(struct fake_platform *p, const struct virtio_pci *vp, unsigned q,
                          bool mapped, char *why, size_t len)
{
    const struct virtio_queue *vq = &vp->vdev->queues[q];
    bool has_vector = vq->msix_vector < vp->nvectors;
    bool masked = has_vector && vp->vectors[vq->msix_vector].masked;
    int gsi = fake_irqfd_gsi(p, vq->call_fd);
    bool watched = fake_watch_index(p, vq->call_fd) >= 0;

    if (mapped && fake_ioeventfd_at(p, vp->notify_base + 4 * q, vq->kick_fd) < 0) {
        snprintf(why, len, "queue %u has no doorbell at 0x%llx", q,
                 (unsigned long long)(vp->notify_base + 4 * q));
        return false;
    }
    if (!vp->wired || !has_vector) {
        if (gsi < 0 && !watched)
            return true;
        snprintf(why, len, "queue %u interrupt wired without a live vector", q);
        return false;
    }
    if (masked ? gsi < 0 && watched : gsi == vp->vectors[vq->msix_vector].gsi && !watched)
        return true;
    snprintf(why, len, "queue %u vector %u (%s): irqfd gsi %d, %s", q, vq->msix_vector,
             masked ? "masked" : "unmasked", gsi, watched ? "watched" : "not watched");
    return false;
}

bool fake_platform_matches(struct fake_platform *p, const struct virtio_pci *vp, char *why,
                           size_t len)
{
    unsigned nq = vp->vdev->num_queues;
    bool mapped = vp->wired && vp->notify_base != PCI_BAR_UNMAPPED;
    int nioev;

    pthread_mutex_lock(&p->lock);
    nioev = p->nioev;
    pthread_mutex_unlock(&p->lock);
    if (nioev != (mapped ? (int)nq : 0)) {
        snprintf(why, len, "%d ioeventfds with the device %s", nioev, vp->wired ? "wired" : "idle");
        return false;
    }
    for (unsigned q = 0; q < nq; q++)
        if (!queue_matches(p, vp, q, mapped, why, len))
            return false;
    return true;
}
