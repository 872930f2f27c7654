/*
 * vhost-user wire format and the one send/recv/call path every request goes through.
 * Internal to vhost/: the public API is vhost_user.h.
 */
#ifndef VMM_VHOST_VHOST_USER_MSG_H
#define VMM_VHOST_VHOST_USER_MSG_H

#include "vhost_user.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VU_PACKED __attribute__((packed))

struct vu_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
} VU_PACKED;

struct vu_state {
    uint32_t index;
    uint32_t num;
} VU_PACKED;

struct vu_addr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc;
    uint64_t used;
    uint64_t avail;
    uint64_t log;
} VU_PACKED;

struct vu_region {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
} VU_PACKED;

struct vu_memory {
    uint32_t nregions;
    uint32_t padding;
    struct vu_region regions[VHOST_USER_MAX_REGIONS];
} VU_PACKED;

struct vu_mem_reg {
    uint64_t padding;
    struct vu_region region;
} VU_PACKED;

struct vu_log {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} VU_PACKED;

/* Same layout as the kernel's struct vhost_iotlb_msg, tail padding included. */
struct vu_iotlb {
    uint64_t iova;
    uint64_t size;
    uint64_t uaddr;
    uint8_t perm;
    uint8_t type;
    uint8_t padding[6];
} VU_PACKED;

struct vu_config {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
} VU_PACKED;

struct vu_area {
    uint64_t u64;
    uint64_t size;
    uint64_t offset;
} VU_PACKED;

union vu_payload {
    uint64_t u64;
    struct vu_state state;
    struct vu_addr addr;
    struct vu_memory memory;
    struct vu_mem_reg mem_reg;
    struct vu_log log;
    struct vu_iotlb iotlb;
    struct vu_config config;
    struct vu_area area;
} VU_PACKED;

struct vu_msg {
    struct vu_hdr hdr;
    union vu_payload payload;
} VU_PACKED;

_Static_assert(sizeof(struct vu_hdr) == 12, "vhost-user header is 12 bytes");
_Static_assert(sizeof(struct vu_state) == 8, "vring state is 8 bytes");
_Static_assert(sizeof(struct vu_addr) == 40, "vring address is 40 bytes");
_Static_assert(sizeof(struct vu_region) == 32, "memory region is 32 bytes");
_Static_assert(sizeof(struct vu_memory) == 8 + 8 * 32, "memory table is 264 bytes");
_Static_assert(sizeof(struct vu_mem_reg) == 40, "single region is 40 bytes");
_Static_assert(sizeof(struct vu_log) == 16, "log description is 16 bytes");
_Static_assert(sizeof(struct vu_iotlb) == 32, "IOTLB message is 32 bytes");
_Static_assert(sizeof(struct vu_config) == 12 + 256, "config space is 268 bytes");
_Static_assert(sizeof(struct vu_area) == 24, "vring area is 24 bytes");
_Static_assert(sizeof(union vu_payload) == 268, "largest payload is the config space");
_Static_assert(sizeof(struct vu_hdr) == VHOST_USER_HDR_SIZE, "public header size matches");
_Static_assert(sizeof(union vu_payload) == VHOST_USER_MAX_PAYLOAD, "public payload size matches");
_Static_assert(sizeof(struct vu_msg) == sizeof(((struct vhost_user_rx *)0)->buf),
               "the backend channel's receive buffer holds any message");

#define VU_MAX_PAYLOAD sizeof(union vu_payload)
#define VU_CONFIG_HDR_SIZE 12u

/* Payload layouts, for size checks and the trace decode. */
enum vu_layout {
    VU_L_NONE,
    VU_L_U64,
    VU_L_STATE,
    VU_L_ADDR,
    VU_L_MEMORY, /* 8 + n * 32 */
    VU_L_MEM_REG,
    VU_L_LOG,
    VU_L_IOTLB,
    VU_L_CONFIG, /* 12 + config size */
    VU_L_AREA,
};

/* What follows a request. */
enum vu_reply {
    VU_R_NONE,       /* nothing; with REPLY_ACK, a u64 ack */
    VU_R_NONE_NOACK, /* nothing, and never NEED_REPLY */
    VU_R_ACK,        /* always NEED_REPLY and a u64 ack */
    VU_R_U64,        /* a u64 */
    VU_R_STATE,      /* a vring state */
    VU_R_LOG,        /* 0, 8 or 16 bytes, by back-end */
    VU_R_CONFIG,     /* the request's size, or 0 for failure */
};

/* Which fds travel with a message. */
enum vu_fds {
    VU_FD_NONE,
    VU_FD_ONE,
    VU_FD_VRING,   /* one, or none with VHOST_USER_VRING_NOFD in the u64 */
    VU_FD_REGIONS, /* one per memory region */
};

/* What must be negotiated before a request may be sent. */
enum vu_gate {
    VU_G_NONE,
    VU_G_F_PROTOCOL, /* back-end offered VHOST_USER_F_PROTOCOL_FEATURES */
    VU_G_PROTO,      /* protocol feature proto_bit negotiated */
    VU_G_IOMMU,      /* VIRTIO_F_IOMMU_PLATFORM acked */
};

/* When the caller must know the back-end applied a request before going on (QEMU's
 * wait_for_reply): the REPLY_ACK ack, or without it a GET_FEATURES round trip, since the
 * back-end handles messages in order (QEMU's enforce_reply). */
enum vu_sync {
    VU_S_NONE,
    VU_S_ALWAYS,    /* SET_VRING_ENABLE: the guest's first request must not race it */
    VU_S_LOG_ALL,   /* SET_FEATURES with VHOST_F_LOG_ALL: the back-end logs from now on */
    VU_S_VRING_LOG, /* SET_VRING_ADDR with VHOST_VRING_F_LOG: likewise for its used ring */
};

struct vu_req_info {
    const char *name;
    uint8_t layout; /* enum vu_layout */
    uint8_t fds;    /* enum vu_fds */
    uint8_t reply;  /* enum vu_reply */
    uint8_t gate;   /* enum vu_gate */
    uint8_t proto_bit;
    uint8_t sync; /* enum vu_sync */
};

const struct vu_req_info *vu_req_info(uint32_t request);
const struct vu_req_info *vu_backend_req_info(uint32_t request);
const char *vu_proto_name(unsigned bit);
/* 0, or -ENOTSUP (logged) when what the request needs was not negotiated. */
int vu_check_gate(const struct vhost_user_conn *c, const struct vu_req_info *ri);

int64_t vu_now_ms(void);
int64_t vu_now_us(void);
/* Payload size a layout implies for this message; false if the message cannot be valid. */
bool vu_layout_size(enum vu_layout l, const struct vu_msg *m, uint32_t *size);
/* poll() for events until the CLOCK_MONOTONIC deadline: 0, -ETIMEDOUT or -errno. */
int vu_wait_fd(int fd, short events, int64_t deadline);

/* Sends the request and, when one is due, receives and validates the reply into *reply
 * (may be NULL). Marks the connection broken on any protocol error. */
int vu_call(struct vhost_user_conn *c, struct vu_msg *msg, const int *fds, unsigned nfds,
            struct vu_msg *reply);
/* The backend-request channel, read without waiting: -EAGAIN while the message in
 * c->backend_rx is incomplete; once complete, the message validated, its fds handed to the
 * caller, and when it was complete (CLOCK_MONOTONIC us), which vu_backend_ack takes for the
 * trace's latency. An error sets backend_broken and closes the fds received. */
int vu_backend_recv(struct vhost_user_conn *c, struct vu_msg *msg, int *fds, unsigned *nfds,
                    int64_t *recv_us);
/* Sends the ack without waiting: a back-end that does not read its channel breaks it. */
int vu_backend_ack(struct vhost_user_conn *c, const struct vu_msg *req, uint64_t result,
                   int64_t recv_us);
/* Forgets a partly read back-end message, closing its fds. */
void vu_backend_rx_drop(struct vhost_user_conn *c);
void vu_break(struct vhost_user_conn *c);
void vu_close_fds(int *fds, unsigned nfds);

#define vu_err(c, ...) vhost_user_say((c), VHOST_USER_ERR, __VA_ARGS__)
#define vu_warn(c, ...) vhost_user_say((c), VHOST_USER_WARN, __VA_ARGS__)

#endif
