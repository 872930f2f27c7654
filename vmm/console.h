/* vmm's stdin/stdout as the guest's serial console. */
#ifndef VMM_CONSOLE_H
#define VMM_CONSOLE_H

#include "../common/event_loop.h"
#include "../devices/serial.h"

#include <stdbool.h>
#include <termios.h>

struct console {
    int in_fd;
    bool is_tty;
    bool raw_set;
    struct termios saved;
    bool watching;
    bool eof;
    bool saw_escape; /* Ctrl-A seen: the next 'x' quits */
    int space_efd;   /* the guest freed receive FIFO space */
    struct serial *serial;
    struct event_loop *loop;
    void (*quit)(void *opaque); /* Ctrl-A x */
    void *quit_opaque;
};

int console_init(struct console *con, int in_fd, struct serial *serial, struct event_loop *loop,
                 void (*quit)(void *), void *opaque);
/* Restores the terminal; safe to call more than once and from any exit path. */
void console_restore(struct console *con);
void console_destroy(struct console *con);

#endif
