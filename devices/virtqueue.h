/* Virtqueues processed inside vmm (the virtio-net control queue), split or packed
 * (VIRTIO_F_RING_PACKED). The data queues belong to the vhost-user backend; vmm never
 * touches their rings. Every index, length and address the guest wrote is checked
 * before it is used: a malformed ring is an error return, never a crash or a loop. */
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

/* Packed rings: a descriptor is available when its AVAIL bit equals the ring wrap counter
 * and its USED bit does not; used when both equal it. */
#define VIRTQ_DESC_F_AVAIL (1u << 7)
#define VIRTQ_DESC_F_USED (1u << 15)
/* Packed rings: the flags of an event suppression structure (struct pvirtq_event_suppress). */
#define VIRTQ_EVENT_F_ENABLE 0u
#define VIRTQ_EVENT_F_DISABLE 1u
#define VIRTQ_EVENT_F_DESC 2u /* only with VIRTIO_F_RING_EVENT_IDX: at off_wrap */

struct virtq {
    uint16_t size;
    /* The common configuration's queue_desc, queue_driver and queue_device. Split: the
     * descriptor table, available ring and used ring. Packed: the descriptor ring, the
     * driver area (Driver Event Suppression, which vmm reads) and the device area (Device
     * Event Suppression, which vmm writes). */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t last_avail; /* split: free-running index; packed: ring position, < size */
    uint16_t used_idx;   /* split: free-running index; packed: ring position, < size */
    bool event_idx;      /* VIRTIO_F_RING_EVENT_IDX negotiated */
    bool packed;         /* VIRTIO_F_RING_PACKED negotiated: chosen at set-up */
    /* Packed: the device's copies of the Driver and Device Ring Wrap Counters, 1 at
     * start (virtq_reset_position), flipped each time last_avail / used_idx wraps. */
    bool avail_wrap, used_wrap;
    /* Packed: ring entries marked used since virtq_needs_interrupt last looked. */
    uint32_t used_unsignalled;
    const struct guest_mem_access *mem;
};

struct virtq_buf {
    uint8_t *addr;
    uint32_t len;
    bool writable; /* device-writable */
};

struct virtq_chain {
    uint16_t head;   /* split: the head descriptor's index; packed: the buffer ID */
    uint16_t ndescs; /* ring entries its used element takes: split 1; packed the
                      * descriptors the chain occupied in the ring (an indirect one is 1) */
    unsigned count;
    const struct guest_mem_access *mem; /* the queue's, for virtq_chain_write */
    struct virtq_buf bufs[VIRTQ_CHAIN_MAX];
};

/* Where the device stands in its ring, for save/restore. Split: the free-running
 * indexes, wrap counters unused (false). Packed: ring positions below the size and the
 * device's two ring wrap counters, none of which the guest's memory holds. */
struct virtq_position {
    uint16_t last_avail;
    bool avail_wrap;
    uint16_t used_idx;
    bool used_wrap;
};

/* Checks the guest's ring set-up: size up to VIRTQ_MAX_SIZE (split: a power of two;
 * packed: any), each part aligned as the spec requires and wholly inside guest RAM.
 * 0 or -EINVAL. */
int virtq_check_layout(const struct virtq *q);

/* The position a new ring starts from: indexes 0, and for a packed ring both wrap
 * counters 1. Call it when setting up a packed ring (a zeroed struct is right for split
 * only). */
void virtq_reset_position(struct virtq *q);
void virtq_get_position(const struct virtq *q, struct virtq_position *pos);
/* -EINVAL, leaving q as it was, for a packed position not below the ring size. */
int virtq_set_position(struct virtq *q, const struct virtq_position *pos);
/* A packed position as one 32-bit value, the layout of vhost-user's packed vring base:
 * bits 0-14 last_avail, 15 avail_wrap, 16-30 used_idx, 31 used_wrap. */
uint32_t virtq_position_encode(const struct virtq_position *pos);
void virtq_position_decode(uint32_t value, struct virtq_position *pos);

/*
 * Where the device of a packed ring stood when it died without saying (a vhost-user
 * backend that crashed: no GET_VRING_BASE), read from the descriptor ring alone: the
 * position to restart it from, avail and used equal (in-flight buffers are used again).
 * A packed ring keeps no used index; the driver writes each descriptor with AVAIL = its
 * lap's wrap counter and USED the opposite, the device overwrites a used buffer's first
 * entry with AVAIL = USED = its lap's. For a device that uses buffers in order, one used
 * descriptor per buffer, and buffers of one descriptor each, the ring then reads, from
 * the driver's next entry backwards: the available buffers, then used entries for a
 * whole ring's length. That reading is taken only when the ring shows exactly it; -EINVAL
 * with *why saying what else it shows: a used entry before an available one (the backend
 * died publishing a batch, or used buffers out of order), a NEXT flag anywhere (the
 * driver chains descriptors: a used chain's later entries keep the driver's flags and
 * look available, so where the last used buffer ends is not in memory), or more than one
 * lap boundary. With VIRTIO_F_IN_ORDER a device may write one used descriptor for a
 * batch of buffers: the ring does not say where a batch ends, so the caller refuses.
 * Reads q->size entries at q->desc_gpa; q->packed must be set.
 */
int virtq_recover_packed(const struct virtq *q, struct virtq_position *pos, const char **why);

/* Takes the next available chain: 1 when one was taken, 0 when the queue is
 * empty, -EINVAL when the guest's ring or descriptors are bad (the caller should
 * flag the device as broken rather than crash). */
int virtq_pop(struct virtq *q, struct virtq_chain *chain);

/* Returns a chain to the guest with `written` bytes written into it: split rings only
 * (-EINVAL for a packed one, whose used element needs the chain's length in the ring). */
int virtq_push(struct virtq *q, uint16_t head, uint32_t written);
/* The same for either format, for a chain virtq_pop returned. */
int virtq_push_chain(struct virtq *q, const struct virtq_chain *chain, uint32_t written);

/* Whether the guest wants an interrupt for the used entries added since `old_used`
 * (split: used_idx before them). Packed: old_used is not used, as a position and a wrap
 * counter do not subtract; the queue counts the entries used since the previous call. */
bool virtq_needs_interrupt(struct virtq *q, uint16_t old_used);

/* Total bytes of the device-readable bufs copied to out (at most len). */
uint32_t virtq_chain_read(const struct virtq_chain *c, void *out, uint32_t len);
/* Copies data into the device-writable bufs; returns the bytes written. */
uint32_t virtq_chain_write(const struct virtq_chain *c, const void *data, uint32_t len);

#endif
