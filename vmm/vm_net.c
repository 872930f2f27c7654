/* The PCI bus and the vhost-user NICs, and the platform services virtio devices
 * use: KVM doorbells and interrupts, the event loop, the guest memory map. */
#include "vm_net.h"

#include "layout.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int plat_ioeventfd(void *opaque, uint64_t addr, uint32_t len, int fd, bool assign)
{
    struct vm *vm = opaque;
    struct kvm_ioeventfd_spec spec = {.addr = addr, .len = len};

    return kvm_ioeventfd(&vm->kvm, &spec, fd, assign);
}

static int plat_irqfd(void *opaque, int gsi, int fd, bool assign)
{
    struct vm *vm = opaque;

    return kvm_irqfd(&vm->kvm, fd, (uint32_t)gsi, assign);
}

static int plat_msi_route_alloc(void *opaque)
{
    struct vm *vm = opaque;

    return kvm_msi_route_alloc(&vm->routing);
}

static void plat_msi_route_free(void *opaque, int gsi)
{
    struct vm *vm = opaque;

    kvm_msi_route_free(&vm->routing, gsi);
}

static int plat_msi_route_set(void *opaque, int gsi, uint64_t addr, uint32_t data)
{
    struct vm *vm = opaque;

    return kvm_msi_route_set(&vm->routing, gsi, addr, data);
}

static int plat_signal_msi(void *opaque, uint64_t addr, uint32_t data)
{
    struct vm *vm = opaque;

    return kvm_signal_msi(&vm->kvm, addr, data);
}

static int plat_watch_fd(void *opaque, int fd, void (*cb)(void *, uint32_t), void *arg, bool on)
{
    struct vm *vm = opaque;

    return on ? event_loop_add(&vm->loop, fd, EPOLLIN, cb, arg) : event_loop_del(&vm->loop, fd);
}

static int plat_mem_regions(void *opaque, struct vhost_user_mem_region *regions, int max)
{
    struct vm *vm = opaque;

    if (vm->mem.nregions > max)
        return -E2BIG;
    for (int i = 0; i < vm->mem.nregions; i++) {
        const struct guest_region *r = &vm->mem.regions[i];

        regions[i] = (struct vhost_user_mem_region){
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uint64_t)(uintptr_t)r->hva,
            .mmap_offset = r->fd_offset,
            .fd = vm->mem.fd,
        };
    }
    return vm->mem.nregions;
}

static void *mem_ptr(void *opaque, uint64_t gpa, uint64_t len)
{
    struct vm *vm = opaque;

    return guest_memory_ptr(&vm->mem, gpa, len);
}

static void plat_vhost_trace(void *opaque, const char *id, int64_t time_us, const char *line)
{
    struct vm *vm = opaque;

    trace_file_write(vm->vhost_trace, id, time_us, line);
}

/* vmm's own writes (the control queue) go into a log of their own while migrating. */
static void mem_written(void *opaque, const void *hva, uint64_t len)
{
    struct vm *vm = opaque;

    dirty_own_log_mark(atomic_load(&vm->own_log), &vm->mem, hva, len);
}

static void vm_platform_init(struct vm *vm)
{
    vm->platform = (struct virtio_platform){
        .ioeventfd = plat_ioeventfd,
        .irqfd = plat_irqfd,
        .msi_route_alloc = plat_msi_route_alloc,
        .msi_route_free = plat_msi_route_free,
        .msi_route_set = plat_msi_route_set,
        .signal_msi = plat_signal_msi,
        .watch_fd = plat_watch_fd,
        .mem_regions = plat_mem_regions,
        .vhost_trace = vm->vhost_trace ? plat_vhost_trace : NULL,
        .opaque = vm,
    };
    vm->mem_access =
        (struct guest_mem_access){.ptr = mem_ptr, .written = mem_written, .opaque = vm};
}

static int vm_setup_pci(struct vm *vm)
{
    uint64_t mem64 = ALIGN_UP(dirty_ram_end(&vm->mem), LAYOUT_PCI_MEM64_ALIGN);
    struct pci_layout layout = {
        .mem32_base = LAYOUT_PCI_MEM32_START,
        .mem32_size = LAYOUT_PCI_MEM32_SIZE,
        .mem64_base = mem64 < LAYOUT_MMIO_HOLE_END ? LAYOUT_MMIO_HOLE_END : mem64,
        .mem64_size = LAYOUT_PCI_MEM64_SIZE,
    };
    int ret = pci_init(&vm->pci, &vm->pio, &vm->mmio, &layout);

    if (ret) {
        pr_err("cannot create the PCI bus: %s", strerror(-ret));
        return ret;
    }
    vm->pci_ready = true;
    return 0;
}

static int vm_setup_net(struct vm *vm, unsigned i)
{
    struct vm_net *n = &vm->nets[i];
    char name[16];
    int ret;

    n->vm = vm;
    snprintf(n->id, sizeof(n->id), "net%u", i);
    snprintf(name, sizeof(name), "vmm-net%u", i);
    ret = event_thread_init(&n->thread, name);
    if (ret) {
        pr_err("%s: cannot create its loop: %s", n->id, strerror(-ret));
        return ret;
    }
    n->thread_ready = true;
    ret = virtio_net_init(&n->net, n->id, &vm->opts->nets[i], &vm->platform, &vm->mem_access,
                          &n->thread.loop);
    if (ret)
        return ret;
    n->net_ready = true;
    ret = virtio_pci_init(&n->vp, &n->net.vdev, &vm->platform);
    if (ret)
        return ret;
    n->pci_ready = true;
    ret = pci_register(&vm->pci, &n->vp.pci, -1);
    if (ret) {
        pr_err("%s: cannot put it on the PCI bus: %s", n->id, strerror(-ret));
        return ret;
    }
    n->registered = true;
    return 0;
}

int vm_setup_pci_devices(struct vm *vm)
{
    int ret;

    vm_platform_init(vm);
    vm->nets_stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->nets_ready_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->nets_stop_efd < 0 || vm->nets_ready_efd < 0)
        return -errno;
    ret = kvm_irq_routing_init(&vm->routing, &vm->kvm);
    if (!ret)
        ret = vm_setup_pci(vm);
    for (unsigned i = 0; !ret && i < vm->opts->nnets; i++)
        ret = vm_setup_net(vm, i);
    return ret;
}

/* On a NIC's thread: its first backend is there (ret 0) or will not be. */
static void vm_net_link_started(void *arg, int ret)
{
    struct vm_net *n = arg;
    uint64_t one = 1;

    n->start_ret = ret;
    atomic_store(&n->started, true);
    if (write(n->vm->nets_ready_efd, &one, sizeof(one)) < 0)
        pr_debug("%s: ready eventfd: %s", n->id, strerror(errno));
}

int vm_start_nets(struct vm *vm, int (*init)(void *arg), void *arg)
{
    for (unsigned i = 0; i < vm->opts->nnets; i++) {
        int ret = event_thread_run(&vm->nets[i].thread, init, arg);

        if (ret) {
            pr_err("%s: cannot start its thread: %s", vm->nets[i].id, strerror(-ret));
            return ret;
        }
        ret = virtio_net_start_link(&vm->nets[i].net, vm_net_link_started, &vm->nets[i]);
        if (ret) {
            pr_err("%s: cannot start its link: %s", vm->nets[i].id, strerror(-ret));
            return ret;
        }
    }
    return 0;
}

int vm_nets_started(struct vm *vm)
{
    for (unsigned i = 0; i < vm->opts->nnets; i++) {
        if (!atomic_load(&vm->nets[i].started))
            return -EINPROGRESS;
        if (vm->nets[i].start_ret)
            return vm->nets[i].start_ret;
    }
    return 0;
}

/* On a NIC's thread: its platform reset is over; the last one tells the vm. */
static void vm_net_reset_done(void *arg)
{
    struct vm_net *n = arg;
    struct vm *vm = n->vm;
    uint64_t one = 1;

    atomic_store(&n->reset_done, true);
    if (atomic_fetch_sub(&vm->nets_resetting, 1) != 1)
        return;
    if (vm->nets_reset_done)
        vm->nets_reset_done(vm);
    else if (write(vm->nets_stop_efd, &one, sizeof(one)) < 0)
        pr_debug("NIC stop eventfd: %s", strerror(errno));
}

/* Starts every NIC's platform reset; returns how many are under way. */
static unsigned vm_start_net_resets(struct vm *vm, void (*done)(struct vm *vm))
{
    unsigned started = 0;

    vm->nets_reset_done = done;
    atomic_store(&vm->nets_resetting, 1); /* held until every reset is posted */
    for (unsigned i = 0; i < VMM_MAX_NETS; i++) {
        struct vm_net *n = &vm->nets[i];

        atomic_store(&n->reset_done, !n->pci_ready);
        if (!n->pci_ready)
            continue;
        atomic_fetch_add(&vm->nets_resetting, 1);
        if (virtio_pci_reset_async(&n->vp, vm_net_reset_done, n)) {
            atomic_fetch_sub(&vm->nets_resetting, 1);
            atomic_store(&n->reset_done, true);
        } else {
            started++;
        }
    }
    return started;
}

/* Drops the hold vm_start_net_resets took: done runs here if the NICs are through. */
static void vm_release_net_resets(struct vm *vm)
{
    uint64_t one = 1;

    if (atomic_fetch_sub(&vm->nets_resetting, 1) != 1)
        return;
    if (vm->nets_reset_done)
        vm->nets_reset_done(vm);
    else if (write(vm->nets_stop_efd, &one, sizeof(one)) < 0)
        pr_debug("NIC stop eventfd: %s", strerror(errno));
}

void vm_reset_pci_devices(struct vm *vm, void (*done)(struct vm *vm))
{
    vm_start_net_resets(vm, done);
    vm_release_net_resets(vm);
}

static bool vm_wait_nets_stopped(struct vm *vm, int timeout_ms)
{
    struct pollfd p = {.fd = vm->nets_stop_efd, .events = POLLIN};

    return poll(&p, 1, timeout_ms) > 0;
}

/* A NIC with no backend attached has no rings to stop: its thread may be waiting
 * in a handshake (for a backend that stalls), which only the sockets' shutdown ends. */
static void vm_abort_unattached_nets(struct vm *vm)
{
    bool connected, link_up;

    for (unsigned i = 0; i < VMM_MAX_NETS; i++) {
        if (!vm->nets[i].net_ready)
            continue;
        virtio_net_link_status(&vm->nets[i].net, &connected, &link_up);
        if (!connected)
            virtio_net_abort(&vm->nets[i].net);
    }
}

/* Each NIC stops its rings on its own thread; one whose backend does not answer
 * within the grace period has its sockets shut down, which ends every wait there. */
void vm_stop_pci_devices(struct vm *vm)
{
    uint64_t v;

    if (vm->nets_stop_efd < 0)
        return;
    if (read(vm->nets_stop_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        pr_debug("NIC stop eventfd: %s", strerror(errno));
    vm_abort_unattached_nets(vm);
    vm_start_net_resets(vm, NULL);
    vm_release_net_resets(vm);
    if (!vm_wait_nets_stopped(vm, VM_NET_STOP_GRACE_MS)) {
        for (unsigned i = 0; i < VMM_MAX_NETS; i++) {
            if (vm->nets[i].net_ready && !atomic_load(&vm->nets[i].reset_done)) {
                pr_warn("%s: its backend did not stop its rings within %d ms; dropping it",
                        vm->nets[i].id, VM_NET_STOP_GRACE_MS);
                virtio_net_abort(&vm->nets[i].net);
            }
        }
    }
    for (unsigned i = 0; i < VMM_MAX_NETS; i++)
        if (vm->nets[i].thread_ready)
            event_thread_stop(&vm->nets[i].thread);
}

void vm_destroy_pci_devices(struct vm *vm)
{
    for (unsigned i = 0; i < VMM_MAX_NETS; i++) {
        struct vm_net *n = &vm->nets[i];

        /* Its thread first: nothing may run on the NIC while it goes. */
        if (n->net_ready)
            virtio_net_abort(&n->net);
        if (n->thread_ready)
            event_thread_stop(&n->thread);
        if (n->registered)
            pci_unregister(&vm->pci, &n->vp.pci);
        if (n->net_ready)
            virtio_net_destroy(&n->net);
        if (n->pci_ready)
            virtio_pci_destroy(&n->vp);
        if (n->thread_ready)
            event_thread_destroy(&n->thread);
        n->registered = n->pci_ready = n->net_ready = n->thread_ready = false;
    }
    if (vm->pci_ready)
        pci_destroy(&vm->pci);
    vm->pci_ready = false;
    if (vm->nets_stop_efd >= 0)
        close(vm->nets_stop_efd);
    if (vm->nets_ready_efd >= 0)
        close(vm->nets_ready_efd);
    vm->nets_stop_efd = vm->nets_ready_efd = -1;
}

void vm_net_status(struct vm *vm, unsigned i, struct vm_net_status *st)
{
    struct vm_net *n = &vm->nets[i];

    *st = (struct vm_net_status){
        .id = n->id,
        .socket = vm->opts->nets[i].socket_path,
        .queue_pairs = vm->opts->nets[i].queue_pairs,
    };
    if (n->net_ready)
        virtio_net_link_status(&n->net, &st->connected, &st->link_up);
}
