/* The vhost-user wire as a backend speaks it, for every fake backend in the tests: one
 * reader (header, payload, the SCM_RIGHTS fds that came with them, closed on any error)
 * and the writers (a message, raw bytes in pieces, the replies). Layouts are written at
 * literal offsets, never through vhost/'s own structs, so a test checks them. (vhost/ has a
 * struct vu_msg of its own: this module's names all start vu_wire_.) */
#ifndef VMM_TESTS_VU_WIRE_H
#define VMM_TESTS_VU_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define VU_WIRE_HDR_SIZE 12
#define VU_WIRE_MAX_PAYLOAD 512
#define VU_WIRE_MAX_FDS 8
#define VU_WIRE_SEND_MAX_FDS 16 /* more than a message may carry: frontends must refuse them */

/* Header flags as a backend sees them. */
#define VU_WIRE_FL_REQ 0x1u   /* version 1 */
#define VU_WIRE_FL_REPLY 0x5u /* version 1 + REPLY */
#define VU_WIRE_FL_NEED_REPLY 0x8u

struct vu_wire_msg {
    uint32_t request, flags, size;
    uint8_t payload[VU_WIRE_MAX_PAYLOAD];
    int fds[VU_WIRE_MAX_FDS]; /* received with the message, owned: vu_wire_close_fds */
    int nfds;                 /* how many came (kept when they are closed) */
};

/* One whole message, waiting up to timeout_ms for each part (-1: forever, 0: only what
 * is already there). 0; -ETIMEDOUT when nothing came in time, -ECONNRESET on end of
 * file, -EPROTO for a size over VU_WIRE_MAX_PAYLOAD: on errors no fd is left open. Fds
 * past VU_WIRE_MAX_FDS are closed. */
int vu_wire_recv(int fd, struct vu_wire_msg *m, int timeout_ms);
/* Closes the fds that came (each becomes -1; nfds still says how many came). */
void vu_wire_close_fds(struct vu_wire_msg *m);
/* Reads and drops whatever is waiting, closing the fds that came with it. */
void vu_wire_drain(int fd);

/* A payload's value at a literal offset (of a message, or of any copy of its bytes). */
uint32_t vu_wire_u32(const struct vu_wire_msg *m, size_t off);
uint64_t vu_wire_u64(const struct vu_wire_msg *m, size_t off);
uint32_t vu_wire_load32(const uint8_t *payload, size_t off);
uint64_t vu_wire_load64(const uint8_t *payload, size_t off);

/* Writers return 0, or -1 when the message did not go out whole at once (never a wait:
 * a peer that does not read fails the test instead of hanging it).
 * vu_wire_send: size goes in the header; len payload bytes follow (a test may make them
 * differ). */
int vu_wire_send(int fd, uint32_t request, uint32_t flags, uint32_t size, const void *payload,
                 size_t len, const int *fds, int nfds);
/* Bytes as given, with the fds on the first: a message cut in pieces. */
int vu_wire_send_bytes(int fd, const void *buf, size_t len, const int *fds, int nfds);
/* A message as it goes on the wire, into buf; returns its length. */
size_t vu_wire_encode(uint8_t *buf, uint32_t request, uint32_t flags, const void *payload,
                      uint32_t size);
int vu_wire_reply(int fd, uint32_t request, const void *payload, uint32_t size);
int vu_wire_reply_u64(int fd, uint32_t request, uint64_t value);
/* {index, num}: GET_VRING_BASE's reply. */
int vu_wire_reply_state(int fd, uint32_t request, uint32_t index, uint32_t num);

#endif
