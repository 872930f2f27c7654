/* One fake struct virtio_platform: KVM's view as it would be (live ioeventfds, irqfds,
 * MSI routes, watched fds), with counts, the calls KVM would refuse ("bad": an assign
 * of what is live, a deassign of what is not) and failures a test injects. Safe to
 * call from any thread (vCPU threads, a NIC's loop), as vmm's platform is.
 *
 * Per test: forbid names calls that fail the test when made (virtio-net alone makes
 * no KVM call: the transport does); fail_on_bad makes a refused call fail at once (the
 * fuzzers) instead of being counted (the unit tests count, then check); loop makes
 * watch_fd add to that event loop, as vmm's main loop does; mem gives mem_regions its
 * one region (else none). */
#ifndef VMM_TESTS_FAKE_PLATFORM_H
#define VMM_TESTS_FAKE_PLATFORM_H

#include "../../devices/virtio.h"
#include "guest_mem.h"

#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define FAKE_MAX_LIVE 64
#define FAKE_MAX_ROUTES 32
#define FAKE_MAX_MSIS 64

enum fake_call {
    FAKE_IOEVENTFD = 1u << 0,
    FAKE_IRQFD = 1u << 1,
    FAKE_MSI_ROUTE_ALLOC = 1u << 2,
    FAKE_MSI_ROUTE_FREE = 1u << 3,
    FAKE_MSI_ROUTE_SET = 1u << 4,
    FAKE_SIGNAL_MSI = 1u << 5,
    FAKE_WATCH_FD = 1u << 6,
    FAKE_MEM_REGIONS = 1u << 7,
};
/* What only the transport asks KVM for; a device model alone makes none of these. */
#define FAKE_KVM_CALLS                                                                             \
    (FAKE_IOEVENTFD | FAKE_IRQFD | FAKE_MSI_ROUTE_ALLOC | FAKE_MSI_ROUTE_FREE |                    \
     FAKE_MSI_ROUTE_SET | FAKE_SIGNAL_MSI)
#define FAKE_ALL_CALLS (FAKE_KVM_CALLS | FAKE_WATCH_FD | FAKE_MEM_REGIONS)

struct fake_watch {
    int fd;
    void (*cb)(void *arg, uint32_t events);
    void *arg;
};

struct fake_platform {
    /* ---- set by the test (fake_platform_init gives the defaults) ---- */
    unsigned forbid;             /* enum fake_call bits whose call fails the test */
    const char *who;             /* names the caller in that failure: "virtio-net" */
    bool fail_on_bad;            /* a call KVM refuses fails the test at once */
    struct event_loop *loop;     /* watch_fd on this loop (vmm's main loop) */
    const struct guest_mem *mem; /* mem_regions' region; NULL: none */
    int gsi_base;                /* the first MSI route allocated (24) */
    int alloc_fail_at;           /* the route allocation (counting from 0) that fails; -1 */
    uint64_t ioev_fail_addr;     /* an assign there fails, as when KVM runs out of slots */

    /* ---- KVM's view ---- */
    struct {
        uint64_t addr;
        uint32_t len;
        int fd;
    } ioev[FAKE_MAX_LIVE];
    int nioev, ioev_assigns, ioev_bad;
    struct {
        int gsi, fd;
    } irqfd[FAKE_MAX_LIVE];
    int nirqfd, irqfd_assigns, irqfd_bad;
    struct fake_watch watch[FAKE_MAX_LIVE];
    int nwatch, watch_bad;
    int next_gsi, allocs;
    int freed[FAKE_MAX_ROUTES], nfreed;
    uint64_t route_addr[FAKE_MAX_ROUTES]; /* by gsi - gsi_base */
    uint32_t route_data[FAKE_MAX_ROUTES];
    int route_sets, route_bad;
    struct {
        uint64_t addr;
        uint32_t data;
    } msis[FAKE_MAX_MSIS];
    int nmsis;

    pthread_mutex_t lock;       /* the view, against calls from several threads */
    struct virtio_platform ops; /* what the device gets (opaque: this) */
};

void fake_platform_init(struct fake_platform *p);
void fake_platform_destroy(struct fake_platform *p);
/* Forgets the view and the counts; the settings stay. */
void fake_platform_reset(struct fake_platform *p);

/* Queries, for checks of the wiring against the transport's state. */
int fake_ioeventfd_at(struct fake_platform *p, uint64_t addr, int fd); /* its len, or -1 */
int fake_irqfd_gsi(struct fake_platform *p, int fd);                   /* or -1 */
int fake_watch_index(struct fake_platform *p, int fd);                 /* or -1 */
int fake_bad_calls(struct fake_platform *p);
struct virtio_pci;
/* KVM's view against the transport's state: a wired function has every doorbell where
 * its BAR is and each queue's interrupt on its vector's route (unmasked) or polled
 * (masked); an idle one has nothing. false with the first difference in why. */
bool fake_platform_matches(struct fake_platform *p, const struct virtio_pci *vp, char *why,
                           size_t len);
/* Every watched fd that is readable gets its callback once, as a loop would run them
 * (the table's watches: without a loop). */
void fake_platform_run_watched(struct fake_platform *p);

#endif
