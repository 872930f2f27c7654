/* A 16550A UART: interrupt-driven transmit and receive, FIFOs, loopback. */
#ifndef VMM_DEVICES_SERIAL_H
#define VMM_DEVICES_SERIAL_H

#include "device.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_NR_PORTS 8
#define SERIAL_RX_FIFO_SIZE 1024

struct tail;

struct serial {
    struct device dev;
    pthread_mutex_t lock;
    struct irq_line irq;
    int out_fd; /* transmitted bytes go here; -1 drops them */
    /* Asked when a blocked write to out_fd is interrupted: true gives the byte up,
     * so a stalled stdout cannot keep a vCPU from stopping. NULL: keep trying. */
    bool (*tx_abort)(void *opaque);
    void *tx_abort_opaque;
    /* When set, transmitted bytes are also kept here (under the lock). */
    struct tail *tx_tail;
    /* Called (without the lock) when the guest drained the receive FIFO. */
    void (*rx_space)(void *opaque);
    void *rx_space_opaque;

    uint8_t dll, dlm, ier, iir, fcr, lcr, mcr, lsr, msr, scr;
    bool thr_ipending;
    int irq_level;
    uint8_t rx_fifo[SERIAL_RX_FIFO_SIZE];
    size_t rx_head, rx_count;
};

int serial_init(struct serial *s, const char *id, const struct irq_line *irq, int out_fd);
void serial_destroy(struct serial *s);

/* Queues input for the guest; returns how many bytes fitted. */
size_t serial_receive(struct serial *s, const uint8_t *data, size_t len);
size_t serial_rx_space(struct serial *s);

#endif
