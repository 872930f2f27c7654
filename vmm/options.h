/* The command line. Parsing is pure (no I/O besides the message buffer). */
#ifndef VMM_OPTIONS_H
#define VMM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../devices/virtio_net.h"

#define VMM_DEFAULT_CMDLINE "console=ttyS0 reboot=k i8042.noaux i8042.nomux i8042.dumbkbd"
#define VMM_DEFAULT_MEMORY (512ULL << 20)
#define VMM_MAX_CPUS 254
#define VMM_MAX_NETS 4
#define VMM_MAX_TIMEOUT 2147483647U /* seconds: INT_MAX, what every time_t holds */

/* What a guest reboot (i8042 reset, KVM reset event) does. */
enum vmm_on_reboot { VMM_ON_REBOOT_EXIT = 0, VMM_ON_REBOOT_RESTART };

struct vmm_options {
    const char *kernel;
    const char *initrd;
    const char *cmdline;
    uint64_t memory;
    unsigned cpus;
    bool hugepages;
    const char *user;
    const char *group;
    const char *kvm_device;
    bool seccomp;  /* confine each thread with its seccomp allow-list (default on) */
    int verbosity; /* -1 quiet, 0 normal, 1+ debug */
    enum vmm_on_reboot on_reboot;
    const char *vhost_trace; /* --vhost-trace FILE, "-" for stderr, or NULL */
    unsigned nnets;
    struct virtio_net_options nets[VMM_MAX_NETS];
    bool debug_exit;          /* --debug-exit: the guest may set vmm's exit status */
    uint16_t debug_exit_port; /* its first port */
    unsigned timeout;         /* --timeout in seconds; 0: none */
    const char *incoming;     /* --incoming URI: a migration brings the guest */
    const char *restore;      /* --restore DIR: a snapshot brings the guest */
    const char *api_socket;   /* --api-socket PATH: the control socket, or NULL */
};

enum options_result { OPTIONS_OK = 0, OPTIONS_EXIT_OK = 1, OPTIONS_ERROR = -1 };

/* On OPTIONS_ERROR, err holds the one-line reason. OPTIONS_EXIT_OK: --help or
 * --version was printed to `out`. */
enum options_result options_parse(int argc, char **argv, struct vmm_options *opts, FILE *out,
                                  char *err, size_t errlen);
void options_usage(FILE *out);

#endif
