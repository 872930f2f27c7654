#include "options.h"

#include "memory.h"
#include "../common/util.h"

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
                 "            [,connect-timeout-ms=N][,reply-timeout-ms=N]\n"
                 "                         a virtio-net NIC whose data path is a vhost-user\n"
                 "                         backend; repeat for more NICs (at most 4)\n"
                 "      --kvm-device PATH  KVM device (default /dev/kvm)\n"
                 "      --seccomp on|off   confine each thread to the system calls its role\n"
                 "                         needs (default on; off only for debugging)\n"
                 "  -q, --quiet            only print errors\n"
                 "  -v, --verbose          print debug messages\n"
                 "  -h, --help             show this help and exit\n"
                 "      --version          show the version and exit\n"
                 "\n"
                 "Exit status: 0 when the guest reboots (reboot -f) or vmm is stopped by\n"
                 "SIGTERM/SIGINT/Ctrl-A x; 1 on bad input, a set-up failure or a system\n"
                 "call the seccomp sandbox forbids; 2 when the guest crashes the vCPU\n"
                 "(triple fault, KVM internal error).\n");
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

enum options_result options_parse(int argc, char **argv, struct vmm_options *opts, FILE *out,
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
    if (!opts->kernel)
        return opt_error(err, errlen, "--kernel is required (see --help)");
    return OPTIONS_OK;
}
