/* Unix stream sockets shared by the vhost-user server and the control socket:
 * the address check and a listen that replaces a stale socket file safely. */
#ifndef VMM_COMMON_UNIX_SOCK_H
#define VMM_COMMON_UNIX_SOCK_H

#include <stdbool.h>
#include <sys/un.h>

/* Fills sa for path; -ENAMETOOLONG (logged, prefixed by who) for an empty or
 * too long path. */
int unix_sock_addr(const char *who, const char *path, struct sockaddr_un *sa);

/* Binds and listens on path. A socket file nobody accepts on is removed first;
 * a live socket or a file that is not a socket is refused (-EADDRINUSE,
 * -EEXIST). flags are extra socket() type flags (SOCK_NONBLOCK). Errors are
 * logged, prefixed by who. */
int unix_sock_listen(const char *who, const char *path, int backlog, int flags, int *fd);

#endif
