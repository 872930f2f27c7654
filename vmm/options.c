#include "options.h"

#include "memory.h"
#include "../devices/debug_exit.h"
#include "../common/util.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define VMM_VERSION "0.1.0"

enum {
    OPT_KERNEL = 'k',
    OPT_INITRD = 'i',
    OPT_CMDLINE = 'c',
    OPT_MEMORY = 'm',
    OPT_CPUS = 'n',
    OPT_HELP = 'h',
    OPT_QUIET = 'q',
    OPT_VERBOSE = 'v',
    OPT_HUGEPAGES = 256,
    OPT_USER,
    OPT_GROUP,
    OPT_KVM_DEVICE,
    OPT_VERSION,
    OPT_NET,
    OPT_ON_REBOOT,
    OPT_VHOST_TRACE,
    OPT_DEBUG_EXIT,
    OPT_TIMEOUT,
    OPT_INCOMING,
    OPT_RESTORE,
    OPT_API_SOCKET,
    OPT_SECCOMP,
};

static const struct option long_options[] = {
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"initrd", required_argument, NULL, OPT_INITRD},
    {"cmdline", required_argument, NULL, OPT_CMDLINE},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"hugepages", no_argument, NULL, OPT_HUGEPAGES},
    {"user", required_argument, NULL, OPT_USER},
    {"group", required_argument, NULL, OPT_GROUP},
    {"kvm-device", required_argument, NULL, OPT_KVM_DEVICE},
    {"net", required_argument, NULL, OPT_NET},
    {"on-reboot", required_argument, NULL, OPT_ON_REBOOT},
    {"vhost-trace", required_argument, NULL, OPT_VHOST_TRACE},
    {"debug-exit", optional_argument, NULL, OPT_DEBUG_EXIT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"incoming", required_argument, NULL, OPT_INCOMING},
    {"restore", required_argument, NULL, OPT_RESTORE},
    {"api-socket", required_argument, NULL, OPT_API_SOCKET},
    {"seccomp", required_argument, NULL, OPT_SECCOMP},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

void options_usage(FILE *out)
{
    fprintf(out, "Usage: vmm --kernel BZIMAGE [OPTIONS]\n"
                 "Boot a Linux guest on KVM. The guest's serial console (ttyS0) is vmm's\n"
                 "stdout and stdin (raw mode on a terminal; Ctrl-A x quits).\n"
                 "\n"
                 "  -k, --kernel FILE      Linux bzImage to boot (boot protocol 2.12 or later)\n"
                 "  -i, --initrd FILE      initramfs loaded at the top of low memory\n"
                 "  -c, --cmdline STRING   kernel command line\n"
                 "                         (default: \"" VMM_DEFAULT_CMDLINE "\")\n"
                 "  -m, --memory SIZE      guest RAM, e.g. 512M, 1G, 16G (default 512M);\n"
                 "                         RAM above 3G is placed above 4G\n"
                 "  -n, --cpus N           number of vCPUs (default 1)\n"
                 "      --hugepages        back guest RAM with huge pages (reserved in\n"
                 "                         /proc/sys/vm/nr_hugepages beforehand)\n"
                 "      --user NAME|UID    run as this user once /dev/kvm is open\n"
                 "      --group NAME|GID   run as this group once /dev/kvm is open\n"
                 "      --net vhost-user,socket=PATH[,server][,queues=N][,mac=MAC][,mtu=N]\n"
                 "            [,connect-timeout-ms=N][,reply-timeout-ms=N][,reconnect-ms=N]\n"
                 "            [,packed=on|off][,queue-size=N]\n"
                 "                         a virtio-net NIC whose data path is a vhost-user\n"
                 "                         backend; repeat for more NICs (at most 4)\n"
                 "      --on-reboot exit|restart\n"
                 "                         what a guest reboot does: vmm exits 0 (default),\n"
                 "                         or the guest boots again from zeroed RAM with its\n"
                 "                         devices reset (NICs stay connected)\n"
                 "      --vhost-trace FILE|-\n"
                 "                         write one line per vhost-user message of every NIC\n"
                 "                         to FILE (created or truncated; - is stderr)\n"
                 "      --debug-exit[=PORT]\n"
                 "                         QEMU's isa-debug-exit on ports PORT to PORT+3\n"
                 "                         (default 0xf4): the guest writing V there ends vmm\n"
                 "                         with status (V << 1) | 1, truncated to 8 bits\n"
                 "      --timeout SECONDS  stop a guest still running after SECONDS, print\n"
                 "                         its last console lines on stderr, exit 124\n"
                 "      --incoming unix:PATH|tcp:HOST:PORT\n"
                 "                         receive a migrating guest there instead of booting\n"
                 "                         a kernel (same --memory, --cpus, --net as the source;\n"
                 "                         the source's --kernel, --initrd, --cmdline may stay:\n"
                 "                         checked and kept for a reboot, not loaded)\n"
                 "      --restore DIR      start from a snapshot written by vmmctl snapshot DIR\n"
                 "      --api-socket PATH  a control socket at PATH (JSON lines: status, pause,\n"
                 "                         resume, shutdown, migrate, ...; see vmmctl)\n"
                 "      --kvm-device PATH  KVM device (default /dev/kvm)\n"
                 "      --seccomp on|off   confine each thread to the system calls its role\n"
                 "                         needs (default on; off only for debugging)\n"
                 "  -q, --quiet            only print errors\n"
                 "  -v, --verbose          print debug messages\n"
                 "  -h, --help             show this help and exit\n"
                 "      --version          show the version and exit\n"
                 "\n"
                 "Exit status: 0 when the guest reboots (reboot -f; unless --on-reboot\n"
                 "restart) or vmm is stopped by SIGTERM/SIGINT/Ctrl-A x; 1 on bad input, a\n"
                 "set-up failure or a system call the seccomp sandbox forbids; 2 when the\n"
                 "guest crashes the vCPU (triple fault, KVM internal error); 124 when\n"
                 "--timeout expires; with --debug-exit, the odd status the guest chose.\n");
}

static enum options_result opt_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum options_result opt_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return OPTIONS_ERROR;
}

static enum options_result parse_memory(const char *arg, struct vmm_options *opts, char *err,
                                        size_t errlen)
{
    uint64_t size;

    if (parse_size(arg, &size))
        return opt_error(err, errlen, "--memory '%s': not a size (use e.g. 512M or 2G)", arg);
    if (size < GUEST_MEM_MIN_SIZE)
        return opt_error(err, errlen, "--memory '%s': at least %llu MiB is needed", arg,
                         GUEST_MEM_MIN_SIZE >> 20);
    if (size % (2ULL << 20))
        return opt_error(err, errlen, "--memory '%s': must be a multiple of 2 MiB", arg);
    opts->memory = size;
    return OPTIONS_OK;
}

static enum options_result parse_cpus(const char *arg, struct vmm_options *opts, char *err,
                                      size_t errlen)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(arg, &end, 10);
    if (errno || end == arg || *end || n < 1 || n > VMM_MAX_CPUS)
        return opt_error(err, errlen, "--cpus '%s': must be a number from 1 to %d", arg,
                         VMM_MAX_CPUS);
    opts->cpus = (unsigned)n;
    return OPTIONS_OK;
}

static enum options_result parse_net(const char *arg, struct vmm_options *opts, char *err,
                                     size_t errlen)
{
    if (opts->nnets == VMM_MAX_NETS)
        return opt_error(err, errlen, "--net: at most %d NICs", VMM_MAX_NETS);
    if (virtio_net_parse_options(arg, &opts->nets[opts->nnets], err, errlen))
        return OPTIONS_ERROR;
    opts->nnets++;
    return OPTIONS_OK;
}

static enum options_result parse_on_reboot(const char *arg, struct vmm_options *opts, char *err,
                                           size_t errlen)
{
    if (!strcmp(arg, "exit"))
        opts->on_reboot = VMM_ON_REBOOT_EXIT;
    else if (!strcmp(arg, "restart"))
        opts->on_reboot = VMM_ON_REBOOT_RESTART;
    else
        return opt_error(err, errlen, "--on-reboot '%s': must be exit or restart", arg);
    return OPTIONS_OK;
}

/* "0xNN" hex or decimal; the 4 ports from there must exist. */
static enum options_result parse_debug_exit(const char *arg, struct vmm_options *opts, char *err,
                                            size_t errlen)
{
    const char *digits = arg;
    int base = 10;
    unsigned long port;
    char *end;

    opts->debug_exit = true;
    opts->debug_exit_port = DEBUG_EXIT_DEFAULT_PORT;
    if (!arg)
        return OPTIONS_OK;
    if (arg[0] == '0' && (arg[1] == 'x' || arg[1] == 'X')) {
        digits = arg + 2;
        base = 16;
    }
    errno = 0;
    port = strtoul(digits, &end, base);
    if (!isxdigit((unsigned char)digits[0]) || errno || *end ||
        port > 0x10000 - DEBUG_EXIT_NR_PORTS)
        return opt_error(err, errlen,
                         "--debug-exit '%s': must be a port from 0 to 0x%x (0xNN or decimal)", arg,
                         0x10000 - DEBUG_EXIT_NR_PORTS);
    opts->debug_exit_port = (uint16_t)port;
    return OPTIONS_OK;
}

static enum options_result parse_timeout(const char *arg, struct vmm_options *opts, char *err,
                                         size_t errlen)
{
    unsigned long n;
    char *end;

    errno = 0;
    n = strtoul(arg, &end, 10);
    if (!isdigit((unsigned char)arg[0]) || errno || *end || n < 1 || n > VMM_MAX_TIMEOUT)
        return opt_error(err, errlen,
                         "--timeout '%s': must be a whole number of seconds from 1 to %u", arg,
                         VMM_MAX_TIMEOUT);
    opts->timeout = (unsigned)n;
    return OPTIONS_OK;
}

/* sun_path holds 108 bytes with the terminating NUL. */
#define OPTIONS_MAX_SOCKET_PATH 107

static enum options_result parse_api_socket(const char *arg, struct vmm_options *opts, char *err,
                                            size_t errlen)
{
    size_t len = strlen(arg);

    if (len == 0 || len > OPTIONS_MAX_SOCKET_PATH)
        return opt_error(err, errlen, "--api-socket '%s': the path must be 1 to %d bytes long", arg,
                         OPTIONS_MAX_SOCKET_PATH);
    opts->api_socket = arg;
    return OPTIONS_OK;
}

static enum options_result parse_seccomp(const char *arg, struct vmm_options *opts, char *err,
                                         size_t errlen)
{
    if (strcmp(arg, "on") == 0)
        opts->seccomp = true;
    else if (strcmp(arg, "off") == 0)
        opts->seccomp = false;
    else
        return opt_error(err, errlen, "--seccomp '%s': must be on or off", arg);
    return OPTIONS_OK;
}

static void options_defaults(struct vmm_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->cmdline = VMM_DEFAULT_CMDLINE;
    opts->memory = VMM_DEFAULT_MEMORY;
    opts->cpus = 1;
    opts->kvm_device = "/dev/kvm";
    opts->seccomp = true;
}

static enum options_result parse_one(int c, struct vmm_options *opts, FILE *out, char *err,
                                     size_t errlen)
{
    switch (c) {
    case OPT_KERNEL:
        opts->kernel = optarg;
        break;
    case OPT_INITRD:
        opts->initrd = optarg;
        break;
    case OPT_CMDLINE:
        opts->cmdline = optarg;
        break;
    case OPT_MEMORY:
        return parse_memory(optarg, opts, err, errlen);
    case OPT_CPUS:
        return parse_cpus(optarg, opts, err, errlen);
    case OPT_HUGEPAGES:
        opts->hugepages = true;
        break;
    case OPT_USER:
        opts->user = optarg;
        break;
    case OPT_GROUP:
        opts->group = optarg;
        break;
    case OPT_NET:
        return parse_net(optarg, opts, err, errlen);
    case OPT_ON_REBOOT:
        return parse_on_reboot(optarg, opts, err, errlen);
    case OPT_VHOST_TRACE:
        if (!*optarg)
            return opt_error(err, errlen, "--vhost-trace: needs a file name, or - for stderr");
        opts->vhost_trace = optarg;
        break;
    case OPT_DEBUG_EXIT:
        return parse_debug_exit(optarg, opts, err, errlen);
    case OPT_INCOMING:
        if (strncmp(optarg, "unix:", 5) && strncmp(optarg, "tcp:", 4))
            return opt_error(err, errlen, "--incoming '%s': use unix:PATH or tcp:HOST:PORT",
                             optarg);
        opts->incoming = optarg;
        break;
    case OPT_RESTORE:
        opts->restore = optarg;
        break;
    case OPT_TIMEOUT:
        return parse_timeout(optarg, opts, err, errlen);
    case OPT_API_SOCKET:
        return parse_api_socket(optarg, opts, err, errlen);
    case OPT_SECCOMP:
        return parse_seccomp(optarg, opts, err, errlen);
    case OPT_KVM_DEVICE:
        opts->kvm_device = optarg;
        break;
    case OPT_QUIET:
        opts->verbosity = -1;
        break;
    case OPT_VERBOSE:
        opts->verbosity++;
        break;
    case OPT_HELP:
        options_usage(out);
        return OPTIONS_EXIT_OK;
    case OPT_VERSION:
        fprintf(out, "vmm " VMM_VERSION "\n");
        return OPTIONS_EXIT_OK;
    default:
        return opt_error(err, errlen, "unknown or incomplete option (see --help)");
    }
    return OPTIONS_OK;
}

static enum options_result parse_args(int argc, char **argv, struct vmm_options *opts, FILE *out,
                                      char *err, size_t errlen)
{
    enum options_result res;
    int c, idx;

    options_defaults(opts);
    optind = 0; /* a full re-scan, so the parser can run more than once */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:i:c:m:n:hqv", long_options, &idx)) != -1) {
        if (c == '?' && optopt) /* a short option, maybe inside a cluster like -xq */
            return opt_error(err, errlen, "unknown option '-%c' (see --help)", optopt);
        if (c == '?')
            return opt_error(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
        if (c == ':')
            return opt_error(err, errlen, "option '%s' needs a value", argv[optind - 1]);
        res = parse_one(c, opts, out, err, errlen);
        if (res != OPTIONS_OK)
            return res;
    }
    if (optind < argc)
        return opt_error(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
    if (opts->incoming && opts->restore)
        return opt_error(err, errlen, "--incoming and --restore exclude each other");
    if (!opts->kernel && !opts->incoming && !opts->restore)
        return opt_error(err, errlen, "--kernel is required (see --help)");
    /* QEMU's habit: the destination runs the source's command line plus --incoming. The
     * boot options are accepted there (vm_create checks the kernel and keeps it for a
     * reboot, but loads nothing: the guest's RAM comes from the stream). */
    return OPTIONS_OK;
}

/* The reason quotes what was given: a control character in it (a newline in an
 * argument) becomes '?', so the reason stays one line on a terminal. */
static void scrub(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

enum options_result options_parse(int argc, char **argv, struct vmm_options *opts, FILE *out,
                                  char *err, size_t errlen)
{
    enum options_result res = parse_args(argc, argv, opts, out, err, errlen);

    if (res == OPTIONS_ERROR && errlen)
        scrub(err);
    return res;
}
