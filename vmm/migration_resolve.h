/* The migration peer's address: the one place that resolves a name, so that the
 * system calls glibc's resolver makes (files, a UDP socket, sendmmsg) are made
 * once, at migrate time, on the migration thread, whose seccomp role allows them. */
#ifndef VMM_MIGRATION_RESOLVE_H
#define VMM_MIGRATION_RESOLVE_H

#include <sys/socket.h>

/* host (a name or an IPv4/IPv6 literal) and port (a number or a service) to the
 * first stream address getaddrinfo gives; 0, -EINVAL (no port, too long) or
 * -EHOSTUNREACH with the resolver's reason logged. */
int migration_resolve(const char *host, const char *port, struct sockaddr_storage *ss,
                      socklen_t *len);

/* unix:PATH (no lookup) or tcp:HOST:PORT (HOST may be [v6]; the last colon splits)
 * to an address. */
int migration_uri_addr(const char *uri, struct sockaddr_storage *ss, socklen_t *len);

#endif
