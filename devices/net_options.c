/* --net vhost-user,socket=PATH[,...]: the NIC's options. */
#include "virtio_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Exactly six pairs of hex digits separated by colons. */
static int parse_mac(const char *s, uint8_t mac[6])
{
    if (strlen(s) != 17)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        int hi = hex_digit(s[3 * i]), lo = hex_digit(s[3 * i + 1]);

        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            return -EINVAL;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return (mac[0] & 1) ? -EINVAL : 0; /* a multicast address cannot be a NIC's */
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return (errno || *end || *out < min || *out > max) ? -EINVAL : 0;
}

static void net_option_defaults(struct virtio_net_options *o)
{
    static const uint8_t default_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    memset(o, 0, sizeof(*o));
    o->queue_pairs = 1;
    memcpy(o->mac, default_mac, 6);
    o->connect_timeout_ms = 30000;
    o->reply_timeout_ms = 30000; /* DPDK maps and walks all of guest RAM in SET_MEM_TABLE */
    o->reconnect_ms = 1000;
    o->queue_size = VIRTIO_NET_QUEUE_SIZE_DEFAULT;
}

/* QEMU's spelling: on or off. */
static int parse_on_off(const char *s, bool *out)
{
    if (!strcmp(s, "on") || !strcmp(s, "off")) {
        *out = !strcmp(s, "on");
        return 0;
    }
    return -EINVAL;
}

/* A power of two (the guest may negotiate split rings, which need one) from 64 to the
 * spec's 32768; Linux's virtio_net takes the device's maximum as it is. */
static int parse_queue_size(const char *s, uint16_t *out)
{
    unsigned long n;

    if (parse_uint(s, 64, VIRTIO_QUEUE_SIZE_MAX, &n) || (n & (n - 1)))
        return -EINVAL;
    *out = (uint16_t)n;
    return 0;
}

static int net_parse_kv(struct virtio_net_options *o, const char *key, const char *val, char *err,
                        size_t errlen)
{
    unsigned long n;

    if (!strcmp(key, "socket") && val && *val && strlen(val) < sizeof(o->socket_path)) {
        strcpy(o->socket_path, val);
    } else if (!strcmp(key, "server") && !val) {
        o->server = true;
    } else if (!strcmp(key, "queues") && val && !parse_uint(val, 1, VIRTIO_NET_MAX_PAIRS, &n)) {
        o->queue_pairs = (unsigned)n;
    } else if (!strcmp(key, "mac") && val && !parse_mac(val, o->mac)) {
    } else if (!strcmp(key, "mtu") && val && !parse_uint(val, 68, 65535, &n)) {
        o->mtu = (uint16_t)n;
    } else if (!strcmp(key, "connect-timeout-ms") && val && !parse_uint(val, 0, 3600000, &n)) {
        o->connect_timeout_ms = (unsigned)n;
    } else if (!strcmp(key, "reply-timeout-ms") && val && !parse_uint(val, 1, 600000, &n)) {
        o->reply_timeout_ms = (unsigned)n;
    } else if (!strcmp(key, "reconnect-ms") && val && !parse_uint(val, 1, 3600000, &n)) {
        o->reconnect_ms = (unsigned)n;
    } else if (!strcmp(key, "packed") && val && !parse_on_off(val, &o->packed)) {
    } else if (!strcmp(key, "queue-size") && val && !parse_queue_size(val, &o->queue_size)) {
    } else {
        snprintf(err, errlen, "--net: bad or unknown setting '%s%s%s'", key, val ? "=" : "",
                 val ? val : "");
        return -EINVAL;
    }
    return 0;
}

int virtio_net_parse_options(const char *arg, struct virtio_net_options *opts, char *err,
                             size_t errlen)
{
    char buf[512], *save = NULL, *tok;
    int ret = 0;

    net_option_defaults(opts);
    if (strlen(arg) >= sizeof(buf)) {
        snprintf(err, errlen, "--net: argument too long (at most %zu bytes)", sizeof(buf) - 1);
        return -EINVAL;
    }
    if (strncmp(arg, "vhost-user", 10) || (arg[10] && arg[10] != ',')) {
        snprintf(err, errlen, "--net '%s': only vhost-user,socket=PATH[,...] is supported", arg);
        return -EINVAL;
    }
    strcpy(buf, arg + (arg[10] ? 11 : 10));
    for (tok = strtok_r(buf, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');

        if (eq)
            *eq++ = '\0';
        ret = net_parse_kv(opts, tok, eq, err, errlen);
    }
    if (!ret && !opts->socket_path[0]) {
        snprintf(err, errlen, "--net '%s': socket=PATH is required", arg);
        ret = -EINVAL;
    }
    return ret;
}
