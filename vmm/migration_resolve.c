#include "migration_resolve.h"

#include "../common/log.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

int migration_resolve(const char *host, const char *port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int err = getaddrinfo(host, port, &hints, &res);

    if (err || !res) {
        pr_err("migration: cannot resolve %s port %s: %s", host, port,
               err ? gai_strerror(err) : "no address");
        return -EHOSTUNREACH;
    }
    if (res->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        return -EINVAL;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int unix_uri_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *sa = (struct sockaddr_un *)ss;

    if (!*path || strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    memset(ss, 0, sizeof(*ss));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    *len = (socklen_t)sizeof(*sa);
    return 0;
}

/* "HOST:PORT" -> host and port strings; "[v6]:PORT" loses its brackets. */
static int split_tcp(const char *rest, char *host, size_t hlen, const char **port)
{
    const char *colon = strrchr(rest, ':');
    size_t n;

    if (!colon || colon == rest || !colon[1] || (size_t)(colon - rest) >= hlen)
        return -EINVAL;
    n = (size_t)(colon - rest);
    memcpy(host, rest, n);
    host[n] = '\0';
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    *port = colon + 1;
    return 0;
}

int migration_uri_addr(const char *uri, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *port;
    char host[256];

    if (!strncmp(uri, "unix:", 5))
        return unix_uri_addr(uri + 5, ss, len);
    if (strncmp(uri, "tcp:", 4) || split_tcp(uri + 4, host, sizeof(host), &port))
        return -EINVAL;
    return migration_resolve(host, port, ss, len);
}
