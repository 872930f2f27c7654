/*
 * The vhost-user message trace: one decoded line per message on either channel, handed to
 * the connection's trace callback. Internal to vhost/; the line format is in README.md.
 */
#ifndef VMM_VHOST_VHOST_USER_TRACE_H
#define VMM_VHOST_VHOST_USER_TRACE_H

#include "vhost_user_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vu_trace_msg {
    bool outgoing;        /* "->" front-end to back-end, else "<-" */
    bool backend_channel; /* names come from the back-end request table */
    const struct vu_msg *msg;
    unsigned nfds;
    const struct vu_msg *req; /* a reply: the request it answers; else NULL */
    bool ack;                 /* a REPLY_ACK u64, not the request's own reply */
    int64_t latency_us;       /* a reply: since the request was sent or received */
    bool packed;              /* VIRTIO_F_RING_PACKED acked: vring bases carry two indices */
};

/* Writes the line (no time, no id, no newline) into buf; truncates to fit. */
void vu_trace_format(char *buf, size_t cap, const struct vu_trace_msg *t);
/* Formats and hands the line to c->trace, if set, stamped with time_us; packed is taken
 * from the connection's acked features. */
void vu_trace(const struct vhost_user_conn *c, const struct vu_trace_msg *t, int64_t time_us);

#endif
