/* virtio-net whose data queues live in a vhost-user backend. vmm keeps the
 * configuration space and the control queue; packets never pass through vmm. */
#ifndef VMM_DEVICES_VIRTIO_NET_H
#define VMM_DEVICES_VIRTIO_NET_H

#include "virtio.h"
#include "virtqueue.h"
#include "../vhost/vhost_user.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17
#define VIRTIO_NET_F_CTRL_RX 18
#define VIRTIO_NET_F_CTRL_VLAN 19
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR 23

#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_S_ANNOUNCE 2
#define VIRTIO_NET_MAX_PAIRS 8
#define VIRTIO_ID_NET 1

struct virtio_net_config {
    uint8_t mac[6];
    uint16_t status;
    uint16_t max_virtqueue_pairs;
    uint16_t mtu;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_net_config) == 12, "virtio-net config is 12 bytes");

struct virtio_net_options {
    char socket_path[108];
    bool server;
    unsigned queue_pairs;
    uint8_t mac[6];
    uint16_t mtu; /* 0: not offered */
    unsigned connect_timeout_ms;
    unsigned reply_timeout_ms;
    unsigned reconnect_ms; /* client: the pace of reconnect attempts */
    bool packed;           /* packed=on: offer VIRTIO_F_RING_PACKED when the backend does */
    uint16_t queue_size;   /* queue-size=N: each data queue's maximum size (the guest's) */
};

#define VIRTIO_NET_QUEUE_SIZE_DEFAULT 256
#define VIRTIO_NET_CTRL_QUEUE_SIZE 256

/* Where the NIC is in its life (the guest's side; the link is the backend's). */
enum virtio_net_phase {
    NET_IDLE,    /* the guest has not started it, or reset it */
    NET_RUNNING, /* the guest's DRIVER_OK: the rings run whenever a backend is there */
    NET_STOPPED, /* migration source: rings halted at ring_base, control queue unwatched */
    NET_LOADED,  /* migration destination: a started NIC's state loaded; start_loaded runs it */
};

/* Everything but `lock`'s fields belongs to the NIC's loop (vdev.loop): its ops,
 * fd handlers and posted jobs run there, one at a time. vmm gives each NIC a
 * thread of its own for that loop, so a backend that stalls holds up its own NIC
 * only, never vmm's main loop, a vCPU or another NIC. */
struct virtio_net {
    struct virtio_device vdev;
    struct virtio_net_options opts;
    /* The config space (read by vCPUs), `connected` and what the attached backend
     * offers (read by the control socket's status and migration's checks). Taken
     * last: nothing is taken under it. */
    pthread_mutex_t lock;
    struct virtio_net_config config;
    bool connected;         /* a backend is attached: requests go to conn */
    uint64_t link_features; /* conn.features while connected */
    uint64_t link_protocol; /* conn.protocol_features while connected */
    /* conn's sockets, closed on the loop and shut down by virtio_net_abort from
     * another thread: the number must not be reused in between. */
    pthread_mutex_t fd_lock;
    struct vhost_user_conn conn;
    struct vhost_user_held held; /* conn's lines while the NIC reports them as one */
    uint64_t backend_features;   /* what the first backend offered: the guest saw these */
    uint64_t backend_protocol;   /* the protocol features the first backend negotiated */
    enum virtio_net_phase phase;
    unsigned active_pairs;
    bool logging;  /* migrating: the backend logs its writes (LOG_ALL, ring log addresses) */
    bool log_lost; /* ... but a backend that came back meanwhile could not: say so */
    int log_fd;    /* the shared log, kept for a backend that comes back while migrating */
    uint64_t log_size;
    /* A migration's destination before its start: each backend that attaches gets the
     * memory table at once (virtio_net_prepare_memory), not after the source stopped. */
    bool memory_ahead;
    int listen_fd;     /* server: kept for the next backend */
    int retry_fd;      /* client: timerfd pacing reconnects */
    int chan_timer_fd; /* a backend request left half-sent: when to give up on it */
    /* Where each data ring (re)starts, as SET_VRING_BASE carries it: split, the next
     * available index; packed, both positions and wrap counters (vhost-user's encoding). */
    uint32_t ring_base[VIRTIO_MAX_QUEUES];
    /* Packed rings whose position a dead backend took with it and guest memory does not
     * tell for sure (net_recover_packed): they cannot start until the guest resets the NIC. */
    uint32_t rings_unknown;
    unsigned reconnects;
    uint32_t rings_started; /* data queues handed to the current backend, one bit each */
    struct virtq ctrl_vq;
    uint32_t ctrl_loaded; /* destination: the control queue's saved position, until it starts */
    bool ctrl_pending;    /* a bounded batch left commands: the rest is posted */
    /* What is registered on the loop (each removed before its fd closes). */
    bool conn_watched, backend_watched, listen_watched, ctrl_watched, retry_watched;
    bool chan_timer_watched;
    /* The first connection, waited for on the loop (virtio_net_start_link). */
    bool first_pending;
    int64_t first_deadline_ms;
    int first_error; /* the last retryable connect error, for the timeout's line */
    void (*first_done)(void *arg, int ret);
    void *first_done_arg;
};

/* The NIC without a backend yet; with `server`, its socket is bound and listening
 * (before vmm gives up its privileges). Everything else runs on loop. */
int virtio_net_init(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                    const struct virtio_platform *platform, const struct guest_mem_access *mem,
                    struct event_loop *loop);
/* The first backend, on the NIC's loop and without blocking it: connect attempts
 * every 50 ms (client) or the listening socket (server), up to connect-timeout-ms,
 * then the handshake, each reply bounded by reply-timeout-ms. done(arg, 0 or
 * -errno, the reason logged) runs on the NIC's loop. Afterwards a lost backend is a
 * handled event: the link goes down, the rings' positions are kept, and vmm
 * reconnects (client) or accepts the next backend (server), then restarts the
 * rings where the guest left them and brings the link up. */
int virtio_net_start_link(struct virtio_net *net, void (*done)(void *arg, int ret), void *arg);
/* On the NIC's loop, or once it has stopped. */
void virtio_net_destroy(struct virtio_net *net);
/* A migration's destination, from any thread: the backend gets guest RAM's table
 * now, while the stream is still arriving, so the start from the migrated state
 * (after the source stopped) need not wait for it to map the memory. */
int virtio_net_prepare_memory(struct virtio_net *net);
/* From any thread: shuts the backend's sockets down, so that whatever waits on them
 * on the NIC's loop returns at once (vmm exiting while a backend stalls). */
void virtio_net_abort(struct virtio_net *net);
/* From any thread: a backend attached, and the link the guest sees. */
void virtio_net_link_status(struct virtio_net *net, bool *connected, bool *link_up);

/* The device without its backend (virtio_net_init's first half; for tests). */
void virtio_net_setup(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                      const struct virtio_platform *platform, const struct guest_mem_access *mem,
                      struct event_loop *loop);
/* Handles the commands waiting on the control queue, a bounded batch at a time
 * (on its kick; the rest is posted to the loop). */
void virtio_net_ctrl_process(struct virtio_net *net);

/* Parses "vhost-user,socket=PATH[,server][,queues=N][,mac=..][,mtu=N]
 * [,connect-timeout-ms=N][,packed=on|off][,queue-size=N]..."; on error returns -EINVAL
 * with the reason in err. */
int virtio_net_parse_options(const char *arg, struct virtio_net_options *opts, char *err,
                             size_t errlen);

/* Pure helpers, unit-tested. */
uint64_t virtio_net_offered_features(uint64_t backend, const struct virtio_net_options *opts);
uint64_t virtio_net_backend_features(uint64_t acked, uint64_t backend);
/* The lowest data-path feature bit in_use has and offered lacks, or -1. */
int virtio_net_missing_feature(uint64_t in_use, uint64_t offered);

#endif
