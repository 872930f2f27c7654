/*
 * Fuzz target: vmm's command line (options_parse in vmm/options.c, with getopt_long
 * behind it) and the --net argument alone (virtio_net_parse_options).
 *
 * Oracles: a refused command line says why in one non-empty line with no control
 * character (an argument quoted in it may hold any); an accepted one
 * holds only values vmm can run with: memory of at least 32 MiB in 2 MiB steps, 1 to
 * 254 vCPUs, a kernel or a migration or snapshot to start from (never two), at most 4
 * NICs each with a socket path that fits sun_path, 1 to 8 queue pairs, a unicast MAC,
 * an MTU of 68 or more when set, timeouts in their ranges, a control socket path of 1
 * to 107 bytes, a debug-exit port with room for its 4 ports.
 *
 * Input: a mode byte (bit 0: the --net argument alone, the rest of the input as one
 * string), then the arguments after argv[0], separated by NUL bytes.
 */
#include "../../vmm/memory.h"
#include "../../vmm/options.h"

#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

static FILE *devnull;

/* options_parse's reason is one line (main prints it); the --net parser's alone may
 * quote a control character, which options_parse then scrubs. */
static void check_err(const char *err, const char *what, bool one_line)
{
    for (const char *p = err; one_line && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            fuzz_fail("%s refused with a control character in '%s'", what, err);
    if (!err[0])
        fuzz_fail("%s refused without a reason", what);
}

static void check_net(const struct virtio_net_options *n)
{
    size_t path = strnlen(n->socket_path, sizeof(n->socket_path));

    if (!path || path == sizeof(n->socket_path))
        fuzz_fail("--net accepted with a socket path of %zu bytes", path);
    if (n->queue_pairs < 1 || n->queue_pairs > VIRTIO_NET_MAX_PAIRS || (n->mac[0] & 1) ||
        (n->mtu && n->mtu < 68) || n->reply_timeout_ms < 1 || n->reconnect_ms < 1 ||
        n->connect_timeout_ms > 3600000 || n->queue_size < 64 ||
        (n->queue_size & (n->queue_size - 1)))
        fuzz_fail("--net accepted with %u queue pairs, MAC %02x:..., MTU %u, timeouts %u/%u/%u",
                  n->queue_pairs, n->mac[0], n->mtu, n->connect_timeout_ms, n->reply_timeout_ms,
                  n->reconnect_ms);
}

static void check_options(const struct vmm_options *o)
{
    /* --kernel may go with either (QEMU's destination command line); those two exclude
     * each other, and one of the three is needed. */
    int received = !!o->incoming + !!o->restore;

    if (o->memory < GUEST_MEM_MIN_SIZE || o->memory % (2ULL << 20))
        fuzz_fail("accepted --memory of %llu bytes", (unsigned long long)o->memory);
    if (o->cpus < 1 || o->cpus > VMM_MAX_CPUS)
        fuzz_fail("accepted %u vCPUs", o->cpus);
    if (received > 1 || (!received && !o->kernel))
        fuzz_fail("accepted with %d of --incoming, --restore and %s --kernel", received,
                  o->kernel ? "a" : "no");
    if (o->incoming && strncmp(o->incoming, "unix:", 5) && strncmp(o->incoming, "tcp:", 4))
        fuzz_fail("accepted --incoming '%s'", o->incoming);
    if (o->nnets > VMM_MAX_NETS)
        fuzz_fail("accepted %u NICs", o->nnets);
    for (unsigned i = 0; i < o->nnets; i++)
        check_net(&o->nets[i]);
    if (o->api_socket && (!o->api_socket[0] || strlen(o->api_socket) > 107))
        fuzz_fail("accepted an --api-socket path of %zu bytes", strlen(o->api_socket));
    if (o->debug_exit && o->debug_exit_port > 0xfffc)
        fuzz_fail("accepted --debug-exit at port 0x%x", o->debug_exit_port);
    if (o->timeout > VMM_MAX_TIMEOUT || (o->vhost_trace && !o->vhost_trace[0]))
        fuzz_fail("accepted --timeout %u or an empty --vhost-trace", o->timeout);
    if (!o->cmdline || !o->kvm_device)
        fuzz_fail("accepted without a command line or KVM device");
}

/* argv from the NUL-separated input; getopt_long may permute it, so it is a copy. */
static void fuzz_command_line(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1), *argv[MAX_ARGS + 2], err[256] = "";
    struct vmm_options opts;
    enum options_result res;
    int argc = 1;

    if (!copy)
        fuzz_fail("out of memory");
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[0] = "vmm";
    for (char *p = copy; p <= copy + size && argc <= MAX_ARGS; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    res = options_parse(argc, argv, &opts, devnull, err, sizeof(err));
    if (res == OPTIONS_ERROR)
        check_err(err, "a command line", true);
    else if (res == OPTIONS_OK)
        check_options(&opts);
    else if (res != OPTIONS_EXIT_OK)
        fuzz_fail("options_parse returned %d", res);
    free(copy);
}

static void fuzz_net(const uint8_t *data, size_t size)
{
    char *arg = malloc(size + 1), err[256] = "";
    struct virtio_net_options n;

    if (!arg)
        fuzz_fail("out of memory");
    memcpy(arg, data, size);
    arg[size] = '\0';
    if (virtio_net_parse_options(arg, &n, err, sizeof(err)))
        check_err(err, "--net", false);
    else
        check_net(&n);
    free(arg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    fuzz_log_level();
    devnull = fopen("/dev/null", "we");
    if (!devnull)
        fuzz_fail("cannot open /dev/null");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_net(data + 1, size - 1);
    else
        fuzz_command_line(data + 1, size - 1);
    return 0;
}
