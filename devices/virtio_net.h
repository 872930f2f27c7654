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
};

struct virtio_net {
    struct virtio_device vdev;
    struct virtio_net_options opts;
    pthread_mutex_t lock; /* config space: read by vCPUs, changed by the loop */
    struct virtio_net_config config;
    struct vhost_user_conn conn;
    uint64_t backend_features; /* what the first backend offered: the guest saw these */
    unsigned active_pairs;
    bool started;   /* the guest's DRIVER_OK: the rings run whenever a backend is there */
    bool connected; /* a backend is attached: requests go to conn */
    bool conn_watched;
    bool backend_watched; /* conn.backend_fd (the backend-request channel) is on the loop */
    bool logging;         /* migrating: the backend logs its writes (LOG_ALL, ring log addresses) */
    int listen_fd;        /* server: kept for the next backend */
    bool listen_watched;  /* listen_fd is on the event loop */
    int retry_fd;         /* client: timerfd pacing reconnects */
    int link_efd;         /* link changes, announced from the event loop */
    uint16_t ring_base[VIRTIO_MAX_QUEUES]; /* where each ring (re)starts */
    unsigned reconnects;
    uint32_t rings_started; /* data queues handed to the current backend, one bit each */
    bool ctrl_watched;      /* the control queue's kick fd is on the event loop */
    struct virtq ctrl_vq;
    bool stopped;        /* migration: rings halted at ring_base, control queue unwatched */
    bool loaded_started; /* migration: the loaded NIC was started; start_loaded runs it */
};

/* Connects to (or waits for) the backend and reads what it offers. Blocking,
 * bounded by the options' timeouts; runs before the guest starts. Afterwards a
 * lost backend is a handled event: the link goes down, the rings' positions are
 * kept, and vmm reconnects (client) or accepts the next backend (server), then
 * restarts the rings where the guest left them and brings the link up. */
int virtio_net_init(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                    const struct virtio_platform *platform, const struct guest_mem_access *mem);
void virtio_net_destroy(struct virtio_net *net);

/* The device without its backend (virtio_net_init's first half; for tests). */
void virtio_net_setup(struct virtio_net *net, const char *id, const struct virtio_net_options *opts,
                      const struct virtio_platform *platform, const struct guest_mem_access *mem);
/* Handles every command waiting on the control queue (on its kick). */
void virtio_net_ctrl_process(struct virtio_net *net);

/* Migration's dirty logging (on the loop thread). check: 0, or -ENOTSUP with the
 * reason (no backend, no LOG_SHMFD, no VHOST_F_LOG_ALL). start: SET_LOG_BASE with
 * the shared log, SET_FEATURES with LOG_ALL, each started ring's address with its
 * used-ring log address, confirmed (REPLY_ACK or a GET_FEATURES round trip).
 * stop: SET_FEATURES without LOG_ALL and the rings' addresses without logging. */
int virtio_net_log_check(const struct virtio_net *net, char *why, size_t len);
int virtio_net_log_start(struct virtio_net *net, int log_fd, uint64_t log_size);
int virtio_net_log_stop(struct virtio_net *net);

/* Parses "vhost-user,socket=PATH[,server][,queues=N][,mac=..][,mtu=N]
 * [,connect-timeout-ms=N]"; on error returns -EINVAL with the reason in err. */
int virtio_net_parse_options(const char *arg, struct virtio_net_options *opts, char *err,
                             size_t errlen);

/* Pure helpers, unit-tested. */
uint64_t virtio_net_offered_features(uint64_t backend, const struct virtio_net_options *opts);
uint64_t virtio_net_backend_features(uint64_t acked, uint64_t backend);
/* The lowest data-path feature bit in_use has and offered lacks, or -1. */
int virtio_net_missing_feature(uint64_t in_use, uint64_t offered);

#endif
