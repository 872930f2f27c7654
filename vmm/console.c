#include "console.h"

#include "../common/log.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A, as in QEMU */

static void console_watch(struct console *con, bool on);

/* Copies input to out, handling Ctrl-A x (quit) and Ctrl-A Ctrl-A (a literal
 * Ctrl-A); an escape pending from the previous read may add one byte, so out
 * must hold n + 1 bytes. Returns the bytes for the guest. */
static size_t console_filter(struct console *con, const uint8_t *in, size_t n, uint8_t *out)
{
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];

        if (con->saw_escape) {
            con->saw_escape = false;
            if (c == 'x') {
                con->quit(con->quit_opaque);
                return len;
            }
            if (c != CONSOLE_ESCAPE)
                out[len++] = CONSOLE_ESCAPE;
        } else if (c == CONSOLE_ESCAPE && con->is_tty) {
            con->saw_escape = true;
            continue;
        }
        out[len++] = c;
    }
    return len;
}

static void console_on_input(void *opaque, uint32_t events)
{
    struct console *con = opaque;
    uint8_t buf[256], out[sizeof(buf) + 1];
    size_t space = serial_rx_space(con->serial);
    ssize_t n;

    (void)events;
    /* Keep room for an escape byte still pending from the last read. */
    if (space <= (con->saw_escape ? 1u : 0u)) { /* resumes when the guest drains the FIFO */
        console_watch(con, false);
        return;
    }
    space -= con->saw_escape ? 1 : 0;
    n = read(con->in_fd, buf, space < sizeof(buf) ? space : sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) { /* end of input: the guest keeps running */
        con->eof = true;
        console_watch(con, false);
        return;
    }
    serial_receive(con->serial, out, console_filter(con, buf, (size_t)n, out));
}

static void console_on_space(void *opaque, uint32_t events)
{
    struct console *con = opaque;
    uint64_t v;

    (void)events;
    if (read(con->space_efd, &v, sizeof(v)) < 0)
        return;
    console_watch(con, true);
}

/* Called on a vCPU thread: only an eventfd write, the loop does the rest. */
static void console_rx_space(void *opaque)
{
    struct console *con = opaque;
    uint64_t one = 1;

    /* Always signal: the main thread may be about to stop watching stdin, and
     * reading its flags from here would race with it. Writes coalesce. */
    if (write(con->space_efd, &one, sizeof(one)) < 0)
        return;
}

static void console_watch(struct console *con, bool on)
{
    if (on == con->watching || (on && con->eof))
        return;
    if (on && event_loop_add(con->loop, con->in_fd, EPOLLIN, console_on_input, con) == 0)
        con->watching = true;
    else if (on) /* epoll refuses regular files such as </dev/null: no input then */
        con->eof = true;
    else if (!on && event_loop_del(con->loop, con->in_fd) == 0)
        con->watching = false;
}

static void console_set_raw(struct console *con)
{
    struct termios raw;

    if (tcgetattr(con->in_fd, &con->saved) < 0)
        return;
    raw = con->saved;
    cfmakeraw(&raw);
    raw.c_oflag |= OPOST | ONLCR; /* keep our own messages readable */
    if (tcsetattr(con->in_fd, TCSANOW, &raw) == 0)
        con->raw_set = true;
}

int console_init(struct console *con, int in_fd, struct serial *serial, struct event_loop *loop,
                 void (*quit)(void *), void *opaque)
{
    memset(con, 0, sizeof(*con));
    con->in_fd = in_fd;
    con->serial = serial;
    con->loop = loop;
    con->quit = quit;
    con->quit_opaque = opaque;
    con->space_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (con->space_efd < 0) {
        int err = errno;

        pr_err("console: eventfd: %s", strerror(err));
        return -err;
    }
    if (event_loop_add(loop, con->space_efd, EPOLLIN, console_on_space, con) < 0) {
        pr_err("console: cannot watch its eventfd");
        close(con->space_efd);
        con->space_efd = -1;
        return -EIO;
    }
    serial->rx_space = console_rx_space;
    serial->rx_space_opaque = con;
    con->is_tty = isatty(in_fd);
    if (con->is_tty)
        console_set_raw(con);
    console_watch(con, true);
    return 0;
}

void console_restore(struct console *con)
{
    if (con->raw_set) {
        tcsetattr(con->in_fd, TCSANOW, &con->saved);
        con->raw_set = false;
    }
}

void console_destroy(struct console *con)
{
    console_restore(con);
    if (con->space_efd >= 0)
        close(con->space_efd);
    con->space_efd = -1;
}
