/*
 * vhost-user frontend: the control protocol spoken to an external backend (DPDK testpmd, ...)
 * over a Unix socket. Protocol only: plain data in, no KVM or device types.
 *
 * Every function returns 0 or a negative errno. A protocol error (malformed reply, timeout,
 * closed socket) marks the connection broken; every later call returns -EPIPE without
 * touching the socket, and the owner is expected to close and reconnect.
 * A connection is not thread-safe: one caller (the event loop) at a time.
 */
#ifndef VMM_VHOST_VHOST_USER_H
#define VMM_VHOST_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

enum vhost_user_level { VHOST_USER_ERR, VHOST_USER_WARN };

/* Request numbers (front-end to back-end), from the vhost-user specification. */
enum vhost_user_request {
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_SEND_RARP = 19,
    VHOST_USER_NET_SET_MTU = 20,
    VHOST_USER_SET_BACKEND_REQ_FD = 21,
    VHOST_USER_IOTLB_MSG = 22,
    VHOST_USER_SET_VRING_ENDIAN = 23,
    VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38,
    VHOST_USER_SET_STATUS = 39,
    VHOST_USER_GET_STATUS = 40,
};

/* Requests the back-end sends on the backend-request channel. */
enum vhost_user_backend_request {
    VHOST_USER_BACKEND_IOTLB_MSG = 1,
    VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
    VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
};

/* Header flags. */
#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_FLAG_REPLY (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)

/* Virtio feature bits the protocol itself looks at. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VHOST_USER_F_LOG_ALL 26
#define VHOST_USER_F_IOMMU_PLATFORM 33
#define VHOST_USER_F_RING_PACKED 34 /* VIRTIO_F_RING_PACKED: the vring base carries two indices */

/* Protocol feature bits (VHOST_USER_GET_PROTOCOL_FEATURES). */
enum vhost_user_protocol_feature {
    VHOST_USER_PROTOCOL_F_MQ = 0,
    VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1,
    VHOST_USER_PROTOCOL_F_RARP = 2,
    VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,
    VHOST_USER_PROTOCOL_F_MTU = 4,
    VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5,
    VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6,
    VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7,
    VHOST_USER_PROTOCOL_F_PAGEFAULT = 8,
    VHOST_USER_PROTOCOL_F_CONFIG = 9,
    VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10,
    VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11,
    VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12,
    VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
    VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
    VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
    VHOST_USER_PROTOCOL_F_STATUS = 16,
};

/* Protocol features this library can drive; negotiation never asks for others. */
#define VHOST_USER_PROTOCOL_SUPPORTED                                                              \
    ((1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_LOG_SHMFD) |              \
     (1ULL << VHOST_USER_PROTOCOL_F_RARP) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) |            \
     (1ULL << VHOST_USER_PROTOCOL_F_MTU) | (1ULL << VHOST_USER_PROTOCOL_F_BACKEND_REQ) |           \
     (1ULL << VHOST_USER_PROTOCOL_F_CROSS_ENDIAN) | (1ULL << VHOST_USER_PROTOCOL_F_CONFIG) |       \
     (1ULL << VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD) |                                             \
     (1ULL << VHOST_USER_PROTOCOL_F_HOST_NOTIFIER) |                                               \
     (1ULL << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                                                \
     (1ULL << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | (1ULL << VHOST_USER_PROTOCOL_F_STATUS))

#define VHOST_USER_MAX_REGIONS 8
#define VHOST_USER_MAX_FDS 8
#define VHOST_USER_MAX_CONFIG_SIZE 256
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD (1u << 8)
#define VHOST_USER_VRING_F_LOG (1u << 0) /* vring address flag: log used-ring writes */
#define VHOST_USER_DEFAULT_TIMEOUT_MS 10000
#define VHOST_USER_HDR_SIZE 12
#define VHOST_USER_MAX_PAYLOAD 268 /* the largest payload accepted: a config space message */

/* Plain-data descriptions of what the requests carry. */
struct vhost_user_mem_region {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
    int fd; /* borrowed: sent, never closed */
};

/*
 * A message arriving on the backend-request channel, gathered across calls so that a
 * back-end that stops mid-message never blocks its reader.
 */
struct vhost_user_rx {
    uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD]; /* header, then payload */
    uint32_t got;                                              /* bytes of buf received */
    int fds[VHOST_USER_MAX_FDS];                               /* received with them, owned */
    unsigned nfds;
    int64_t first_ms; /* CLOCK_MONOTONIC ms of the first byte, when got > 0 */
};

/* A connection's error and warning lines while its owner holds them (a handshake
 * it reports in one line of its own): the first is kept, none is printed (with -v
 * they show as debug lines). */
struct vhost_user_held {
    bool on;
    char first[256];
    unsigned count;
};

struct vhost_user_conn {
    const char *id;               /* who owns it ("net0"): every line vhost/ says starts so */
    struct vhost_user_held *held; /* optional: where lines go while held */
    int fd;                       /* the vhost-user socket, owned */
    int backend_fd;               /* our end of the backend-request channel, owned, or -1 */
    bool broken;
    bool backend_broken;                /* the channel failed: close it, the connection goes on */
    struct vhost_user_rx backend_rx;    /* the request being read from backend_fd */
    uint64_t features;                  /* offered by GET_FEATURES */
    uint64_t acked_features;            /* last SET_FEATURES sent */
    uint64_t backend_protocol_features; /* offered by GET_PROTOCOL_FEATURES */
    uint64_t protocol_features;         /* negotiated by SET_PROTOCOL_FEATURES */
    uint64_t max_queues;                /* GET_QUEUE_NUM, 1 without MQ */
    uint64_t max_mem_slots;             /* GET_MAX_MEM_SLOTS, with CONFIGURE_MEM_SLOTS */
    /* The regions the back-end holds (ADD_MEM_REG'd, or the last SET_MEM_TABLE acked;
     * fd -1): vhost_user_update_mem sends only what differs. 0 after a reset. */
    struct vhost_user_mem_region mem_held[VHOST_USER_MAX_REGIONS];
    unsigned nmem_held;
    unsigned timeout_ms; /* bound on every wait for the peer */
    /* Optional: called with one decoded line per message, both directions and both
     * channels (format in README.md), and the message's CLOCK_MONOTONIC time in us. */
    void (*trace)(void *opaque, int64_t time_us, const char *line);
    void *trace_opaque;
};

struct vhost_user_vring_addr {
    uint32_t index;
    uint32_t flags; /* VHOST_USER_VRING_F_LOG */
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
};

/*
 * Where a packed ring stands (VIRTIO_F_RING_PACKED acked): the spec's "vring descriptor
 * indices for packed virtqueues", carried in the num of SET_VRING_BASE and of the
 * GET_VRING_BASE reply as bits 0-14 avail_idx, bit 15 avail_wrap, bits 16-30 used_idx,
 * bit 31 used_wrap (QEMU's virtio_queue_packed_get_last_avail_idx does the same).
 */
struct vhost_user_vring_pos {
    uint16_t avail_idx; /* the next available descriptor the back-end will process, < 2^15 */
    bool avail_wrap;    /* the Driver (Available) Ring Wrap Counter the back-end tracks */
    uint16_t used_idx;  /* the entry where it will place the next used descriptor, < 2^15 */
    bool used_wrap;     /* its Device (Used) Ring Wrap Counter */
};

struct vhost_user_iotlb {
    uint64_t iova;
    uint64_t size;
    uint64_t uaddr;
    uint8_t perm; /* 0 none, 1 read, 2 write, 3 read/write */
    uint8_t type; /* 1 miss, 2 update, 3 invalidate, 4 access fail */
};

/*
 * Callbacks for back-end initiated requests. Each returns 0 or -errno; a NULL callback
 * refuses the request. fds handed to a callback are closed after it returns: dup() to keep.
 */
struct vhost_user_backend_ops {
    int (*config_change)(void *opaque);
    /* fd is -1 when the back-end removes the notifier (NOFD flag). */
    int (*vring_host_notifier)(void *opaque, unsigned index, uint64_t size, uint64_t offset,
                               int fd);
    int (*iotlb_msg)(void *opaque, const struct vhost_user_iotlb *msg);
};

/* Sockets. All fds are CLOEXEC; *fd is set only on success. */
int vhost_user_connect(const char *path, unsigned timeout_ms, int *fd);
int vhost_user_listen(const char *path, int *listen_fd);
int vhost_user_accept(int listen_fd, unsigned timeout_ms, int *fd);
/* One attempt each, without waiting or logging (reconnects): -errno on failure,
 * -EAGAIN from try_connect when the back-end's listen queue is full (it is not
 * accepting) and from try_accept when nobody is connecting. */
int vhost_user_try_connect(const char *path, int *fd);
int vhost_user_try_accept(int listen_fd, int *fd);

/* Takes ownership of fd; timeout VHOST_USER_DEFAULT_TIMEOUT_MS until changed. */
void vhost_user_conn_init(struct vhost_user_conn *c, int fd);
/* One line about the connection, as vhost/ says its own: "ID: ..." (the id, when
 * set), kept instead of printed while c->held is on. For an owner whose checks
 * belong with the protocol's (a backend with too few memory slots). */
void vhost_user_say(const struct vhost_user_conn *c, enum vhost_user_level level, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));
/* Starts holding c's lines (clearing what was kept), or stops. */
void vhost_user_hold(struct vhost_user_conn *c, bool on);
/* Closes both sockets (and the fds of a partly read back-end message); the struct can be
 * initialised again for a reconnect. */
void vhost_user_conn_close(struct vhost_user_conn *c);
/* Closes only the backend-request channel (after it failed) and drops what was partly
 * read from it; the connection goes on. */
void vhost_user_close_backend_channel(struct vhost_user_conn *c);
/* "GET_FEATURES", or "UNKNOWN" for a number the table does not know. */
const char *vhost_user_request_name(uint32_t request);

/*
 * GET_FEATURES, then, if the back-end offers VHOST_USER_F_PROTOCOL_FEATURES:
 * GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES(offered & wanted & SUPPORTED),
 * GET_QUEUE_NUM when MQ was negotiated and GET_MAX_MEM_SLOTS when CONFIGURE_MEM_SLOTS
 * was. Results land in c.
 */
int vhost_user_negotiate(struct vhost_user_conn *c, uint64_t wanted_protocol_features);

/*
 * One function per request. With REPLY_ACK negotiated, requests without a reply of their
 * own carry NEED_REPLY and wait for the ack; a non-zero ack returns -EIO. A request whose
 * protocol feature was not negotiated returns -ENOTSUP without sending.
 * Three requests return only once the back-end has applied them, as QEMU's do
 * (wait_for_reply): SET_VRING_ENABLE always, SET_FEATURES with VHOST_F_LOG_ALL set and
 * SET_VRING_ADDR with VHOST_USER_VRING_F_LOG set. Without REPLY_ACK they are followed by a
 * GET_FEATURES round trip (its reply is discarded: c->features is unchanged).
 */
int vhost_user_get_features(struct vhost_user_conn *c, uint64_t *features);
/* Adds VHOST_USER_F_PROTOCOL_FEATURES itself when the back-end offered it. */
int vhost_user_set_features(struct vhost_user_conn *c, uint64_t features);
int vhost_user_get_protocol_features(struct vhost_user_conn *c, uint64_t *features);
/* Never carries NEED_REPLY: REPLY_ACK takes effect from the next request. */
int vhost_user_set_protocol_features(struct vhost_user_conn *c, uint64_t features);
int vhost_user_set_owner(struct vhost_user_conn *c);
int vhost_user_reset_owner(struct vhost_user_conn *c);
int vhost_user_set_mem_table(struct vhost_user_conn *c, const struct vhost_user_mem_region *regions,
                             unsigned nregions);
/* Needs LOG_SHMFD. The reply body may be 0, 8 or 16 bytes; all are accepted. */
int vhost_user_set_log_base(struct vhost_user_conn *c, int fd, uint64_t mmap_size,
                            uint64_t mmap_offset);
int vhost_user_set_log_fd(struct vhost_user_conn *c, int fd);
int vhost_user_set_vring_num(struct vhost_user_conn *c, unsigned index, unsigned num);
int vhost_user_set_vring_addr(struct vhost_user_conn *c, const struct vhost_user_vring_addr *addr);
/* The raw num: for a split ring the next available index (bits 0-15). */
int vhost_user_set_vring_base(struct vhost_user_conn *c, unsigned index, unsigned base);
int vhost_user_get_vring_base(struct vhost_user_conn *c, unsigned index, unsigned *base);
/*
 * A packed ring's position, encoded as the spec says; -EINVAL without sending when
 * VIRTIO_F_RING_PACKED was not acked (SET_FEATURES) or an index does not fit 15 bits.
 * DPDK's lib/vhost reads and writes only bits 0-15: its GET_VRING_BASE reply has used_idx 0
 * and used_wrap 0, and on SET_VRING_BASE it takes the used position to be the avail one
 * (both are equal once a ring is stopped, as GET_VRING_BASE does). Decoded as sent.
 */
int vhost_user_set_vring_base_packed(struct vhost_user_conn *c, unsigned index,
                                     const struct vhost_user_vring_pos *pos);
int vhost_user_get_vring_base_packed(struct vhost_user_conn *c, unsigned index,
                                     struct vhost_user_vring_pos *pos);
uint32_t vhost_user_vring_pos_encode(const struct vhost_user_vring_pos *pos);
void vhost_user_vring_pos_decode(uint32_t num, struct vhost_user_vring_pos *pos);
/* fd < 0 sends the NOFD flag instead of a descriptor. */
int vhost_user_set_vring_kick(struct vhost_user_conn *c, unsigned index, int fd);
int vhost_user_set_vring_call(struct vhost_user_conn *c, unsigned index, int fd);
int vhost_user_set_vring_err(struct vhost_user_conn *c, unsigned index, int fd);
int vhost_user_get_queue_num(struct vhost_user_conn *c, uint64_t *num);
int vhost_user_set_vring_enable(struct vhost_user_conn *c, unsigned index, bool enable);
int vhost_user_send_rarp(struct vhost_user_conn *c, const uint8_t mac[6]);
int vhost_user_net_set_mtu(struct vhost_user_conn *c, uint16_t mtu);
int vhost_user_set_backend_req_fd(struct vhost_user_conn *c, int fd);
/* socketpair + SET_BACKEND_REQ_FD; our end lands in c->backend_fd. */
int vhost_user_open_backend_channel(struct vhost_user_conn *c);
/* Needs VIRTIO_F_IOMMU_PLATFORM acked; always waits for the ack. */
int vhost_user_iotlb_msg(struct vhost_user_conn *c, const struct vhost_user_iotlb *msg);
int vhost_user_set_vring_endian(struct vhost_user_conn *c, unsigned index, bool big_endian);
int vhost_user_get_config(struct vhost_user_conn *c, uint32_t offset, void *buf, uint32_t size,
                          uint32_t flags);
int vhost_user_set_config(struct vhost_user_conn *c, uint32_t offset, const void *buf,
                          uint32_t size, uint32_t flags);
int vhost_user_get_status(struct vhost_user_conn *c, uint8_t *status);
int vhost_user_set_status(struct vhost_user_conn *c, uint8_t status);
/* GET_STATUS, then SET_STATUS with bits or'ed in unless they were all set (QEMU's
 * vhost_user_add_status). Needs STATUS. */
int vhost_user_add_status(struct vhost_user_conn *c, uint8_t bits);
int vhost_user_reset_device(struct vhost_user_conn *c);
int vhost_user_get_max_mem_slots(struct vhost_user_conn *c, uint64_t *slots);
int vhost_user_add_mem_reg(struct vhost_user_conn *c, const struct vhost_user_mem_region *region);
/* region->fd is ignored: the spec says no fd is sent. */
int vhost_user_rem_mem_reg(struct vhost_user_conn *c, const struct vhost_user_mem_region *region);
/*
 * Gives the back-end the guest's memory: SET_MEM_TABLE (none when it holds this very
 * table already on this connection), or with CONFIGURE_MEM_SLOTS REM_MEM_REG for each
 * region it holds that is not in regions, then ADD_MEM_REG for each one it does not
 * hold yet (regions match by guest address, user address and size, as in QEMU).
 * -ENOSPC when the back-end has fewer slots than regions.
 */
int vhost_user_update_mem(struct vhost_user_conn *c, const struct vhost_user_mem_region *regions,
                          unsigned nregions);

/*
 * Reads what c->backend_fd holds now, never waiting, and handles one message once it is
 * complete, answering NEED_REPLY with 0 on success and 1 on failure. Call it when the
 * channel is readable, and when the deadline below passes. Returns -EAGAIN while the
 * message is incomplete (the part read is kept in c->backend_rx), then 0, the callback's
 * error, or -ENOTSUP for a refused request (channel still usable). An end of file, a
 * malformed message, a message still incomplete timeout_ms after its first byte
 * (-ETIMEDOUT), or a reply the back-end does not read (-ENOBUFS: the reply is never waited
 * for) sets c->backend_broken, closes the fds received and returns the error: the caller
 * closes the channel (vhost_user_close_backend_channel); the connection is unaffected.
 */
int vhost_user_backend_req_handle(struct vhost_user_conn *c,
                                  const struct vhost_user_backend_ops *ops, void *opaque);
/* When the message partly read from the backend channel goes stale: an absolute
 * CLOCK_MONOTONIC time in ms (tv_sec * 1000 + tv_nsec / 1000000), or -1 when no message is
 * partly read. An event loop arms a timer for it (again after each call, as it changes) and
 * calls vhost_user_backend_req_handle() when it fires, without polling meanwhile. */
int64_t vhost_user_backend_req_deadline_ms(const struct vhost_user_conn *c);

#endif
