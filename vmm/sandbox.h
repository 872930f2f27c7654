/* The seccomp sandbox: once set-up is done, each thread may make only the system
 * calls its role needs. A forbidden call ends the whole process with one line
 * naming the call and the thread's role. */
#ifndef VMM_SANDBOX_H
#define VMM_SANDBOX_H

#include <stdbool.h>
#include <termios.h>

enum sandbox_role {
    SANDBOX_VCPU,   /* KVM_RUN and the device handlers the guest's exits reach */
    SANDBOX_MAIN,   /* the event loop: console, signals, control socket, teardown */
    SANDBOX_NET,    /* a NIC's loop: its vhost-user link and control queue */
    SANDBOX_WORKER, /* vCPU threads' creation, migration, snapshots, a reboot's new VM */
    SANDBOX_NR_ROLES,
};

struct sandbox_config {
    int exit_status; /* vmm's exit status after a forbidden call */
    int kick_signal; /* the main thread may send it to the vCPU threads */
    int tty_fd;      /* a terminal set back to `tty` after a forbidden call, or -1 */
    struct termios tty;
    /* The KVM VM's fd: the only one the interrupt ioctls (IRQ_LINE, IRQFD, IOEVENTFD,
     * SET_GSI_ROUTING, SIGNAL_MSI) may go to from the main loop, a vCPU or a NIC.
     * -1: any fd (tests without KVM). */
    int kvm_vm_fd;
};

/* Builds every role's filter and installs the SIGSYS handler that reports a
 * forbidden call. Call once, on the main thread, before the threads that will
 * install a filter start. Returns 0 or -errno. */
int sandbox_prepare(const struct sandbox_config *cfg);

/* Confines the calling thread (only it: no TSYNC) to its role's calls and sets
 * no_new_privs. Threads it creates afterwards inherit the filter. Returns 0 or
 * -errno. */
int sandbox_install(enum sandbox_role role);

const char *sandbox_role_name(enum sandbox_role role);

#endif
