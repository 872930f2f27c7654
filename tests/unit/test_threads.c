/*
 * The thread model under load (README, "Threads"): no thread waits for another while
 * holding a device lock. The real bus, PCI function, MSI-X, virtio-pci transport and
 * virtio-net, on real threads as vmm runs them:
 *   - vCPU A rewrites the MSI-X table (masking and unmasking every vector: msix lock,
 *     then the transport's lock, which attaches the calls to irqfds or the main loop);
 *   - vCPU B brings the NIC up to DRIVER_OK and resets it, again and again (the
 *     transport's lock, posting the model's activate and reset to the NIC's loop);
 *   - the NIC's own loop thread runs those and flaps the link (the model's lock, then
 *     the transport's and the msix lock for the config interrupt);
 *   - the main loop thread polls masked vectors' call fds (msix lock), which a
 *     "backend" thread keeps signalling.
 * Before the fix, vCPU B held the transport's lock while waiting for the loop, vCPU A
 * held the msix lock waiting for the transport's, and the loop waited for the msix
 * lock: every thread stopped within a second. Here each must make progress and all
 * must end within a bound.
 */
#include "../../common/log.h"
#include "../../devices/bus.h"
#include "../../devices/net_priv.h"
#include "../../devices/virtio_pci.h"

#include "../support/fake_platform.h"
#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define RUN_MS 2000
#define END_MS 20000 /* a thread not done by then is deadlocked */
#define MEM_SIZE (1u << 20)
#define QSIZE 64
#define PAIRS 1
#define NQ (2 * PAIRS + 1)
#define NVEC (NQ + 1)
#define MEM32_BASE 0xc0000000ULL

#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_STATUS 0x14
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_DESCLO 0x20
#define COMMON_Q_AVAILLO 0x28
#define COMMON_Q_USEDLO 0x30

static struct bus pio, mmio;
static struct pci host;
static struct virtio_pci vp;
static struct virtio_net net;
static struct event_thread nic, main_loop;
static uint64_t bar4, bar1;
static unsigned msix_cap;
static atomic_bool stop;
/* A worker's failure (Check's asserts belong to the test's own thread). */
static char worker_error[256];
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

static void worker_fail(const char *what)
{
    pthread_mutex_lock(&error_lock);
    if (!worker_error[0])
        snprintf(worker_error, sizeof(worker_error), "%s", what);
    pthread_mutex_unlock(&error_lock);
}

/* The platform keeps KVM's view from every thread (tests/support); masked vectors'
 * call fds are polled on the main loop, as in vmm. */
static struct fake_platform fp;
static struct guest_mem ram;

/* ---- the guest's accesses ---- */

static void wr(uint64_t off, uint32_t len, uint32_t v)
{
    uint8_t b[4];

    memcpy(b, &v, 4);
    bus_write(&mmio, bar4 + off, b, len);
}

static uint8_t status(void)
{
    uint8_t b = 0;

    bus_read(&mmio, bar4 + COMMON_STATUS, &b, 1);
    return b;
}

static void mwr(uint64_t off, uint32_t v)
{
    bus_write(&mmio, bar1 + off, (uint8_t *)&v, 4);
}

static unsigned find_cap(uint8_t id)
{
    for (unsigned off = pci_config_read(&vp.pci, PCI_CAPABILITY_LIST, 1); off;
         off = pci_config_read(&vp.pci, off + 1, 1))
        if (pci_config_read(&vp.pci, off, 1) == id)
            return off;
    return 0;
}

/* ---- the threads ---- */

struct worker {
    const char *name;
    void *(*fn)(void *);
    pthread_t thread;
    atomic_uint rounds;
    atomic_bool done;
};

/* vCPU A: every vector masked, programmed and unmasked, over and over. */
static void *vcpu_msix(void *arg)
{
    struct worker *w = arg;

    while (!atomic_load(&stop)) {
        for (unsigned v = 0; v < NVEC; v++) {
            mwr(16ULL * v + 12, 1);
            mwr(16ULL * v, 0xfee00000u + (v << 12));
            mwr(16ULL * v + 8, 0x4020 + v);
            mwr(16ULL * v + 12, 0);
        }
        atomic_fetch_add(&w->rounds, 1);
    }
    atomic_store(&w->done, true);
    return NULL;
}

static void setup_queue(unsigned q)
{
    uint64_t base = 0x10000ULL * (q + 1);

    wr(COMMON_Q_SELECT, 2, q);
    wr(COMMON_Q_SIZE, 2, QSIZE);
    wr(COMMON_Q_MSIX, 2, q);
    wr(COMMON_Q_DESCLO, 4, (uint32_t)base);
    wr(COMMON_Q_AVAILLO, 4, (uint32_t)base + 0x1000);
    wr(COMMON_Q_USEDLO, 4, (uint32_t)base + 0x2000);
    wr(COMMON_Q_ENABLE, 2, 1);
}

/* A driver's probe up to DRIVER_OK (Linux's order). */
static void bring_up(void)
{
    wr(COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(COMMON_GFSELECT, 4, 1);
    wr(COMMON_GF, 4, 1); /* VERSION_1 */
    wr(COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    wr(COMMON_MSIX, 2, NQ);
    for (unsigned q = 0; q < NQ; q++)
        setup_queue(q);
    wr(COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
}

/* vCPU B: up, then a reset whose end it waits for as a driver does (reading the
 * status until 0, bounded: a vCPU never waits for ever either). */
static void *vcpu_status(void *arg)
{
    struct worker *w = arg;

    while (!atomic_load(&stop)) {
        int64_t deadline;

        bring_up();
        wr(COMMON_STATUS, 1, 0);
        deadline = support_now_ms() + END_MS;
        while (status() && !atomic_load(&stop) && support_now_ms() < deadline)
            usleep(100);
        if (support_now_ms() >= deadline)
            worker_fail("a device reset did not complete in time");
        atomic_fetch_add(&w->rounds, 1);
    }
    atomic_store(&w->done, true);
    return NULL;
}

static bool link_up;

/* On the NIC's loop, as a backend's loss or return does it. */
static int flap_link(void *arg)
{
    (void)arg;
    link_up = !link_up;
    net_set_link(&net, link_up);
    return 0;
}

static void *link_flapper(void *arg)
{
    struct worker *w = arg;

    while (!atomic_load(&stop)) {
        if (event_loop_call(&nic.loop, flap_link, NULL))
            worker_fail("the NIC's loop refused a call");
        atomic_fetch_add(&w->rounds, 1);
    }
    atomic_store(&w->done, true);
    return NULL;
}

/* The backend's side of the queues' interrupts: every call fd signalled. */
static void *backend_calls(void *arg)
{
    struct worker *w = arg;
    uint64_t one = 1;

    while (!atomic_load(&stop)) {
        for (unsigned q = 0; q < NQ; q++)
            if (write(net.vdev.queues[q].call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                worker_fail("a call eventfd refused a write");
        usleep(50);
        atomic_fetch_add(&w->rounds, 1);
    }
    atomic_store(&w->done, true);
    return NULL;
}

/* ---- the fixture ---- */

static void setup(void)
{
    const struct pci_layout layout = {MEM32_BASE, 0x3e000000ULL, 0x200000000ULL, 0x400000000ULL};
    struct virtio_net_options opts = {.queue_pairs = PAIRS, .socket_path = "/nowhere"};

    log_set_level(LOG_WARN); /* thousands of starts: their info lines say nothing here */
    guest_mem_init(&ram, 0, MEM_SIZE);
    fake_platform_init(&fp);
    fp.loop = &main_loop.loop;
    atomic_store(&stop, false);
    worker_error[0] = '\0';
    ck_assert_int_eq(event_thread_start(&main_loop, "test-main"), 0);
    ck_assert_int_eq(event_thread_start(&nic, "test-net0"), 0);
    ck_assert_int_eq(bus_init(&pio, "pio"), 0);
    ck_assert_int_eq(bus_init(&mmio, "mmio"), 0);
    ck_assert_int_eq(pci_init(&host, &pio, &mmio, &layout), 0);
    virtio_net_setup(&net, "net0", &opts, &fp.ops, &ram.access, &nic.loop);
    net.backend_features = 1ULL << VIRTIO_F_VERSION_1;
    ck_assert_int_eq(virtio_pci_init(&vp, &net.vdev, &fp.ops), 0);
    ck_assert_int_eq(pci_register(&host, &vp.pci, -1), 0);
    pci_config_write(&vp.pci, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    bar4 = pci_bar_address(&vp.pci, VIRTIO_PCI_CAPS_BAR);
    bar1 = pci_bar_address(&vp.pci, VIRTIO_PCI_MSIX_BAR);
    msix_cap = find_cap(PCI_CAP_ID_MSIX);
    ck_assert_uint_ne(msix_cap, 0);
    pci_config_write(&vp.pci, msix_cap + 2, 2, MSIX_CTRL_ENABLE);
}

static void teardown(void)
{
    event_thread_stop(&nic);
    event_thread_stop(&main_loop);
    pci_destroy(&host);
    virtio_net_destroy(&net);
    virtio_pci_destroy(&vp);
    event_thread_destroy(&nic);
    event_thread_destroy(&main_loop);
    bus_destroy(&mmio);
    bus_destroy(&pio);
    fake_platform_destroy(&fp);
    guest_mem_destroy(&ram);
}

START_TEST(msix_writes_resets_and_link_changes_never_deadlock)
{
    struct worker workers[] = {
        {.name = "vCPU A (MSI-X table)", .fn = vcpu_msix},
        {.name = "vCPU B (DRIVER_OK and reset)", .fn = vcpu_status},
        {.name = "link changes on the NIC's loop", .fn = link_flapper},
        {.name = "backend interrupts (masked vectors polled on the main loop)",
         .fn = backend_calls},
    };
    const size_t n = sizeof(workers) / sizeof(workers[0]);
    int64_t deadline;

    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(pthread_create(&workers[i].thread, NULL, workers[i].fn, &workers[i]), 0);
    usleep(RUN_MS * 1000);
    atomic_store(&stop, true);
    deadline = support_now_ms() + END_MS;
    for (size_t i = 0; i < n; i++) {
        while (!atomic_load(&workers[i].done) && support_now_ms() < deadline)
            usleep(1000);
        /* A deadlocked thread cannot be joined or cancelled cleanly: fail loudly. */
        ck_assert_msg(atomic_load(&workers[i].done), "%s is stuck: deadlock", workers[i].name);
        pthread_join(workers[i].thread, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        printf("%s: %u rounds\n", workers[i].name, atomic_load(&workers[i].rounds));
        ck_assert_msg(atomic_load(&workers[i].rounds) > 0, "%s made no progress", workers[i].name);
    }
    printf("MSIs delivered: %d\n", fp.nmsis);
    ck_assert_msg(!worker_error[0], "%s", worker_error);
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("no_waits_under_locks");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, msix_writes_resets_and_link_changes_never_deadlock);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(threads_suite)
