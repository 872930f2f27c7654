/* What virtio-net's files share: the model (virtio_net.c), the control queue
 * (net_ctrl.c), the backend's rings, features and dirty log (net_backend.c), the
 * migration state (net_state.c), the vhost-user link (net_link.c) and the
 * options (net_options.c). Everything here runs on the NIC's loop. */
#ifndef VMM_DEVICES_NET_PRIV_H
#define VMM_DEVICES_NET_PRIV_H

#include "virtio_net.h"

#include <stddef.h>
#include <stdint.h>

#define BIT(n) (1ULL << (n))
#define PF(bit) (1ULL << VHOST_USER_PROTOCOL_F_##bit)

static inline unsigned net_ctrl_index(const struct virtio_net *net)
{
    return 2 * net->opts.queue_pairs;
}

static inline struct virtio_net *to_net(struct virtio_device *vdev)
{
    return (struct virtio_net *)((char *)vdev - offsetof(struct virtio_net, vdev));
}

static inline bool net_has(const struct virtio_net *net, uint64_t pf)
{
    return net->conn.protocol_features & pf;
}

/* The guest started it, and it is not halted for a migration: rings should run. */
static inline bool net_running(const struct virtio_net *net)
{
    return net->phase == NET_RUNNING;
}

/* The guest negotiated packed rings: every ring of the NIC is packed. */
static inline bool net_packed(const struct virtio_net *net)
{
    return virtio_has_feature(&net->vdev, VIRTIO_F_RING_PACKED);
}

/* virtio_net.c */
const char *net_feature_name(int bit);
uint64_t net_offered_features(const struct virtio_net *net);

/* net_ctrl.c */
int net_ctrl_start(struct virtio_net *net);
int net_ctrl_watch(struct virtio_net *net, bool on);
/* The control queue's position in 32 bits for the state blob: split, last_avail and
 * used_idx (16 bits each); packed, vhost-user's encoding with the wrap counters. Decode
 * applies it to the started queue: -EINVAL for a packed position outside the ring. */
uint32_t net_ctrl_position_encode(const struct virtq *q);
int net_ctrl_position_decode(struct virtio_net *net, uint32_t value);

/* net_backend.c: each returns 0 or -errno; a backend that broke is left to net_failed. */
int net_start_backend(struct virtio_net *net);
/* A destination's backend (a new one too) gets the memory table before the start. */
void net_send_memory_ahead(struct virtio_net *net);
void net_stop_rings(struct virtio_net *net);
void net_reset_status(struct virtio_net *net);
int net_enable_pairs(struct virtio_net *net, unsigned pairs);
int net_vring_addr(struct virtio_net *net, unsigned q, struct vhost_user_vring_addr *addr);
uint32_t net_ring_start_base(const struct virtio_net *net);
bool net_ring_base_valid(const struct virtio_net *net, unsigned q, uint32_t base);
int net_get_ring_base(struct virtio_net *net, unsigned q, uint32_t *base);
int net_log_check(struct virtio_device *vdev, char *why, size_t len);
int net_log_start(struct virtio_device *vdev, int log_fd, uint64_t log_size);
int net_log_stop(struct virtio_device *vdev);
/* A (re)connected backend while migrating: the shared log again, or the log is lost. */
int net_log_resume(struct virtio_net *net);

/* net_state.c: the virtio ops of migration. */
int net_save(struct virtio_device *vdev, struct state_buf *out);
int net_load(struct virtio_device *vdev, const uint8_t *data, size_t len);
int net_stop(struct virtio_device *vdev);
int net_restart(struct virtio_device *vdev);
int net_start_loaded(struct virtio_device *vdev);
void net_kick_rings(struct virtio_net *net);

/* net_link.c */
/* ret from a request to the backend: a broken connection is a lost backend (the
 * rings start again when one is back), logged once, and 0 is returned; any other
 * error is logged as `what` failing and returned. */
int net_failed(struct virtio_net *net, int ret, const char *what);
void net_lost_backend(struct virtio_net *net, const char *why);
void net_set_link(struct virtio_net *net, bool up);
void net_set_connected(struct virtio_net *net, bool connected);
int net_link_init(struct virtio_net *net);
void net_close_conn(struct virtio_net *net);
void net_link_destroy(struct virtio_net *net);
/* Registers fd on the NIC's loop (on) or removes it, keeping *watched in step. */
int net_watch(struct virtio_net *net, int fd, void (*cb)(void *, uint32_t), bool *watched, bool on);

#endif
