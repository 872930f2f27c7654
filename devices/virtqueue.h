/* Split virtqueues processed inside vmm (the virtio-net control queue). The data
 * queues belong to the vhost-user backend; vmm never touches their rings. Every
 * index and address the guest wrote is checked before it is used. */
#ifndef VMM_DEVICES_VIRTQUEUE_H
#define VMM_DEVICES_VIRTQUEUE_H

#include "device.h"

#include <stdbool.h>
#include <stdint.h>

#define VIRTQ_MAX_SIZE 32768
#define VIRTQ_CHAIN_MAX 64

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq {
    uint16_t size;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t last_avail; /* the next available entry vmm will take */
    uint16_t used_idx;   /* the next used entry vmm will write */
    bool event_idx;      /* VIRTIO_F_EVENT_IDX negotiated */
    const struct guest_mem_access *mem;
};

struct virtq_buf {
    uint8_t *addr;
    uint32_t len;
    bool writable; /* device-writable */
};

struct virtq_chain {
    uint16_t head;
    unsigned count;
    const struct guest_mem_access *mem; /* the queue's, for virtq_chain_write */
    struct virtq_buf bufs[VIRTQ_CHAIN_MAX];
};

/* Checks the guest's ring set-up: size a power of two up to VIRTQ_MAX_SIZE, each
 * ring aligned as the spec requires and wholly inside guest RAM. 0 or -EINVAL. */
int virtq_check_layout(const struct virtq *q);

/* Takes the next available chain: 1 when one was taken, 0 when the queue is
 * empty, -EINVAL when the guest's ring or descriptors are bad (the caller should
 * flag the device as broken rather than crash). */
int virtq_pop(struct virtq *q, struct virtq_chain *chain);

/* Returns a chain to the guest with `written` bytes written into it. */
int virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/* Whether the guest wants an interrupt for the used entries added since `old_used`. */
bool virtq_needs_interrupt(struct virtq *q, uint16_t old_used);

/* Total bytes of the device-readable bufs copied to out (at most len). */
uint32_t virtq_chain_read(const struct virtq_chain *c, void *out, uint32_t len);
/* Copies data into the device-writable bufs; returns the bytes written. */
uint32_t virtq_chain_write(const struct virtq_chain *c, const void *data, uint32_t len);

#endif
