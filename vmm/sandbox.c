/* Seccomp allow-lists per thread role, built with libseccomp once before the
 * threads start and loaded by each thread itself.
 *
 * A forbidden call traps (SIGSYS) instead of killing outright, so that the user
 * gets one line saying which call and which thread, as Cloud Hypervisor's log
 * mode does; the handler then ends the whole process. Neither role may call
 * rt_sigaction (outside sanitized builds), so the handler cannot be replaced,
 * and a thread that blocks SIGSYS is killed by the kernel instead. */
#include "sandbox.h"

#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NAMES_MAX_NR 512
#define NAME_LEN 32

/* The kernel reads int arguments (and ioctl requests) as 32 bits. */
#define ARG32_EQ(n, v) SCMP_CMP64(n, SCMP_CMP_MASKED_EQ, 0xffffffffULL, (uint32_t)(v))

static struct sandbox_config config;
static struct sock_fprog programs[SANDBOX_NR_ROLES];
/* Filled before any filter exists: the SIGSYS handler may not allocate. */
static char syscall_names[NAMES_MAX_NR][NAME_LEN];
static uint32_t native_arch; /* an AUDIT_ARCH_* value, as in siginfo's si_arch */
static __thread int thread_role = -1;

/* Every sandboxed thread: malloc, locks, clocks (the vDSO may fall back to the
 * system call), logging (glibc's fatal messages use writev), exits, abort. */
static const int common_calls[] = {
    SCMP_SYS(read),          SCMP_SYS(write),           SCMP_SYS(writev),
    SCMP_SYS(futex),         SCMP_SYS(epoll_ctl),       SCMP_SYS(munmap),
    SCMP_SYS(mremap),        SCMP_SYS(madvise),         SCMP_SYS(brk),
    SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),    SCMP_SYS(time),
    SCMP_SYS(getpid),        SCMP_SYS(gettid),          SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),  SCMP_SYS(restart_syscall), SCMP_SYS(exit),
    SCMP_SYS(exit_group),
};

/* The main thread runs the event loop and nothing else: signals (signalfd), the
 * console, the control socket's clients (accepted on a socket made before the
 * filter), eventfds and timers, masked vectors' interrupts, kicking and joining the
 * other threads, tearing down. It opens no file, creates no socket and no thread
 * (the worker does), and reaches KVM only for interrupts (the common ioctls). */
static const int main_calls[] = {
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(poll),        SCMP_SYS(ppoll),
    SCMP_SYS(close),      SCMP_SYS(accept4),     SCMP_SYS(sendto),      SCMP_SYS(recvfrom),
    SCMP_SYS(shutdown),   SCMP_SYS(getrandom),   SCMP_SYS(sched_yield),
};

/* The worker and the threads it starts (vCPUs, whose own filter narrows theirs
 * again; a migration's or snapshot's thread): a reboot's new KVM VM and vCPUs, guest
 * memory resets (hole punching), the migration streams (Unix or TCP, the name
 * resolved by glibc: nscd's socket, /etc files, DNS over UDP with sendmmsg and
 * FIONREAD), the dirty logs' memfds, snapshot files, every KVM state ioctl. */
static const int worker_calls[] = {
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_create1),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(close),
    SCMP_SYS(eventfd2),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmmsg),
    SCMP_SYS(connect),
    SCMP_SYS(accept4),
    SCMP_SYS(shutdown),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(fallocate),
    SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt),
    SCMP_SYS(bind),
    SCMP_SYS(listen),
    SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(memfd_create),
    SCMP_SYS(ftruncate),
    SCMP_SYS(lseek),
    SCMP_SYS(openat),
    SCMP_SYS(mkdir),
    SCMP_SYS(mkdirat),
    SCMP_SYS(fsync),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(getrandom),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(sched_yield),
    SCMP_SYS(uname),
    SCMP_SYS(dup3), /* a reboot's new VM takes the old one's fd number */
};

#ifdef VMM_SANITIZE
/* The sanitizer runtime's own calls: thread exit (alternate signal stacks), error
 * reports (isatty, symbolizing from the binaries: open, fcntl, newfstatat,
 * readlink...) and LeakSanitizer at exit, which lists the threads from a clone()d
 * tracer (getdents) and stops them with ptrace. The tracer blocks SIGSYS: a call
 * missing here kills it silently and vmm then waits for it forever. */
static const int sanitizer_calls[] = {
    SCMP_SYS(sigaltstack), SCMP_SYS(sched_yield), SCMP_SYS(prctl),    SCMP_SYS(open),
    SCMP_SYS(openat),      SCMP_SYS(close),       SCMP_SYS(fcntl),    SCMP_SYS(newfstatat),
    SCMP_SYS(lseek),       SCMP_SYS(readlink),    SCMP_SYS(getdents), SCMP_SYS(clone),
    SCMP_SYS(ptrace),      SCMP_SYS(wait4),       SCMP_SYS(getppid),  SCMP_SYS(rt_sigaction),
};
#endif

/* Ioctls of both roles: interrupt lines, and the virtio-pci wiring the guest
 * triggers from a vCPU (doorbells, irqfds, MSI routes) or the loop redoes on a
 * reset. */
static const unsigned long common_ioctls[] = {
    KVM_IRQ_LINE, KVM_IOEVENTFD, KVM_IRQFD, KVM_SET_GSI_ROUTING, KVM_SIGNAL_MSI,
};

/* KVM_GET_REGS: the crash report's RIP. */
static const unsigned long vcpu_ioctls[] = {KVM_RUN, KVM_GET_REGS};

static const unsigned long tty_restore_ioctls[] = {TCGETS, TCSETS};

/* The console's terminal (raw mode and back) and non-blocking sockets. */
static const unsigned long main_ioctls[] = {TCGETS, TCSETS, TCSETSW, TCSETSF, FIONBIO};

static const unsigned long main_fcntls[] = {F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_ADD_SEALS};

/* A NIC's loop: its vhost-user socket (reconnecting to a client-mode backend,
 * accepting a server-mode one, the backend-request channel's socketpair), timers,
 * and the transport's wiring it undoes on a reset (the common ioctls). */
static const int net_calls[] = {
    SCMP_SYS(epoll_wait),      SCMP_SYS(epoll_pwait), SCMP_SYS(poll),
    SCMP_SYS(ppoll),           SCMP_SYS(close),       SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),         SCMP_SYS(sendto),      SCMP_SYS(recvfrom),
    SCMP_SYS(connect),         SCMP_SYS(accept4),     SCMP_SYS(shutdown),
    SCMP_SYS(timerfd_settime), SCMP_SYS(getsockopt),  SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep),
};

/* F_DUPFD_CLOEXEC: a NIC keeps migration's dirty log for a backend that comes back. */
static const unsigned long net_fcntls[] = {F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD_CLOEXEC};

static const char *const role_names[SANDBOX_NR_ROLES] = {
    [SANDBOX_VCPU] = "vCPU",
    [SANDBOX_MAIN] = "main (event loop)",
    [SANDBOX_NET] = "NIC",
    [SANDBOX_WORKER] = "worker",
};

const char *sandbox_role_name(enum sandbox_role role)
{
    return (unsigned)role < SANDBOX_NR_ROLES ? role_names[role] : "unknown";
}

static int allow_calls(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);

        if (ret)
            return ret;
    }
    return 0;
}

/* Allows `nr` when its argument `arg` is one of the values. */
static int allow_arg_values(scmp_filter_ctx ctx, int nr, unsigned arg, const unsigned long *values,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, ARG32_EQ(arg, values[i]));

        if (ret)
            return ret;
    }
    return 0;
}

/* KVM ioctls on vmm's VM only: with the fd number fixed (a reboot's new VM takes
 * the old one's number), a thread cannot reach another VM or /dev/kvm itself. */
static int allow_kvm_ioctls(scmp_filter_ctx ctx, const struct sandbox_config *cfg,
                            const unsigned long *requests, size_t n)
{
    if (cfg->kvm_vm_fd < 0)
        return allow_arg_values(ctx, SCMP_SYS(ioctl), 1, requests, n);
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
                                   ARG32_EQ(0, cfg->kvm_vm_fd), ARG32_EQ(1, requests[i]));

        if (ret)
            return ret;
    }
    return 0;
}

/* Memory for malloc, never executable. */
static int allow_mappings(scmp_filter_ctx ctx)
{
    struct scmp_arg_cmp no_exec = SCMP_A2_64(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
    int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, no_exec);

    return ret ? ret : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, no_exec);
}

static int add_common(scmp_filter_ctx ctx, const struct sandbox_config *cfg)
{
    const unsigned long abort_sig[] = {SIGABRT};
    int ret = allow_calls(ctx, common_calls, ARRAY_SIZE(common_calls));

    if (!ret)
        ret = allow_mappings(ctx);
    if (!ret)
        ret = allow_kvm_ioctls(ctx, cfg, common_ioctls, ARRAY_SIZE(common_ioctls));
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(tgkill), 2, abort_sig, 1);
#ifdef VMM_SANITIZE
    if (!ret)
        ret = allow_calls(ctx, sanitizer_calls, ARRAY_SIZE(sanitizer_calls));
    if (!ret) /* a report asks whether stderr is a terminal, for colours */
        ret = allow_arg_values(ctx, SCMP_SYS(ioctl), 1, (const unsigned long[]){TCGETS}, 1);
#endif
    return ret;
}

static int add_vcpu(scmp_filter_ctx ctx, const struct sandbox_config *cfg)
{
    int ret = allow_arg_values(ctx, SCMP_SYS(ioctl), 1, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));

    /* The SIGSYS handler puts the terminal back, from whichever thread it runs on
     * (glibc's tcsetattr reads the settings too). */
    for (size_t i = 0; !ret && cfg->tty_fd >= 0 && i < ARRAY_SIZE(tty_restore_ioctls); i++)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2, ARG32_EQ(0, cfg->tty_fd),
                               ARG32_EQ(1, tty_restore_ioctls[i]));
    return ret;
}

/* Thread creation, and only that: CLONE_THREAD set (no fork). glibc tries clone3
 * first, whose flags a filter cannot read: told it is missing, glibc uses clone. */
static int allow_threads(scmp_filter_ctx ctx)
{
    int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                               SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));

    return ret ? ret : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

static int add_main(scmp_filter_ctx ctx, const struct sandbox_config *cfg)
{
    const unsigned long kick[] = {(unsigned long)cfg->kick_signal};
    const unsigned long nonblock[] = {F_GETFL, F_SETFL};
    int ret = allow_calls(ctx, main_calls, ARRAY_SIZE(main_calls));

    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(ioctl), 1, main_ioctls, ARRAY_SIZE(main_ioctls));
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(fcntl), 1, nonblock, ARRAY_SIZE(nonblock));
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(tgkill), 2, kick, 1);
    /* The socket files vmm made are removed by the worker as vmm exits; teardown's
     * own unlink (shared with runs without a sandbox) just fails here. */
    if (!ret)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unlink), 0);
    if (!ret)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unlinkat), 0);
    return ret;
}

static int add_worker(scmp_filter_ctx ctx, const struct sandbox_config *cfg)
{
    const unsigned long stream_families[] = {AF_UNIX, AF_INET, AF_INET6}; /* tcp: migration */
    const unsigned long unix_only[] = {AF_UNIX};
    const unsigned long kick[] = {(unsigned long)cfg->kick_signal};
    const unsigned long fionread[] = {FIONREAD}; /* the resolver's */
    int ret = allow_calls(ctx, worker_calls, ARRAY_SIZE(worker_calls));

    if (!ret)
        ret = allow_threads(ctx);
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(ioctl), 1, main_ioctls, ARRAY_SIZE(main_ioctls));
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(ioctl), 1, fionread, 1);
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(socket), 0, stream_families,
                               ARRAY_SIZE(stream_families));
    /* vCPU threads it starts load their own filter under this one, after naming
     * themselves: adding a filter only ever narrows what a thread may do. */
    if (!ret)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                               SCMP_A0(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS, 0));
    if (!ret)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                               SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME, 0));
    if (!ret)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 1,
                               SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER, 0));
    /* Every KVM ioctl (type 0xAE): a reboot builds a new VM and its vCPUs, and
     * migration reads and writes all their state. */
    if (!ret)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, 0xae00));
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(socketpair), 0, unix_only, 1);
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(fcntl), 1, main_fcntls, ARRAY_SIZE(main_fcntls));
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(tgkill), 2, kick, 1);
    return ret;
}

static int add_net(scmp_filter_ctx ctx)
{
    const unsigned long unix_only[] = {AF_UNIX};
    int ret = allow_calls(ctx, net_calls, ARRAY_SIZE(net_calls));

    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(socket), 0, unix_only, 1);
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(socketpair), 0, unix_only, 1);
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(fcntl), 1, net_fcntls, ARRAY_SIZE(net_fcntls));
    if (!ret)
        ret = allow_arg_values(ctx, SCMP_SYS(ioctl), 1, (const unsigned long[]){FIONBIO}, 1);
    return ret;
}

static int add_role(scmp_filter_ctx ctx, enum sandbox_role role, const struct sandbox_config *cfg)
{
    switch (role) {
    case SANDBOX_VCPU:
        return add_vcpu(ctx, cfg);
    case SANDBOX_NET:
        return add_net(ctx);
    case SANDBOX_WORKER:
        return add_worker(ctx, cfg);
    case SANDBOX_MAIN:
    default:
        return add_main(ctx, cfg);
    }
}

/* The BPF program libseccomp generates, read back through a memfd. */
static int export_program(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
    int fd = memfd_create("vmm-seccomp", MFD_CLOEXEC);
    struct sock_filter *insns = NULL;
    off_t size;
    int ret;

    if (fd < 0)
        return -errno;
    ret = seccomp_export_bpf(ctx, fd);
    size = ret ? 0 : lseek(fd, 0, SEEK_END);
    if (!ret && (size <= 0 || size % sizeof(*insns) || size / sizeof(*insns) > BPF_MAXINSNS))
        ret = -EINVAL;
    if (!ret && !(insns = malloc((size_t)size)))
        ret = -ENOMEM;
    if (!ret && pread(fd, insns, (size_t)size, 0) != size)
        ret = -EIO;
    close(fd);
    if (ret) {
        free(insns);
        return ret;
    }
    *prog = (struct sock_fprog){.len = (unsigned short)(size / sizeof(*insns)), .filter = insns};
    return 0;
}

static int build_program(enum sandbox_role role, const struct sandbox_config *cfg,
                         struct sock_fprog *prog)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    int ret;

    if (!ctx)
        return -ENOMEM;
    /* A 32-bit (int 0x80) or x32 call is forbidden too, and reported the same way. */
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP);
    if (!ret)
        ret = add_common(ctx, cfg);
    if (!ret)
        ret = add_role(ctx, role, cfg);
    if (!ret)
        ret = export_program(ctx, prog);
    seccomp_release(ctx);
    return ret;
}

static void fill_syscall_names(void)
{
    native_arch = seccomp_arch_native();
    for (int nr = 0; nr < NAMES_MAX_NR; nr++) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

        if (name)
            strncpy(syscall_names[nr], name, NAME_LEN - 1);
        free(name);
    }
}

static size_t append(char *buf, size_t len, size_t cap, const char *s)
{
    while (*s && len + 1 < cap)
        buf[len++] = *s++;
    buf[len] = '\0';
    return len;
}

static size_t append_num(char *buf, size_t len, size_t cap, long v)
{
    char digits[24];
    int i = (int)sizeof(digits) - 1;
    unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--i] = '-';
    return append(buf, len, cap, digits + i);
}

/* Async-signal-safe: a terminal back to cooked mode, one line, and exit. */
static void on_forbidden_call(int sig, siginfo_t *si, void *uc)
{
    char line[160];
    size_t n = 0;
    int nr = si->si_syscall;
    bool native = si->si_arch == native_arch && nr >= 0 && nr < NAMES_MAX_NR;

    (void)sig;
    (void)uc;
    if (config.tty_fd >= 0)
        tcsetattr(config.tty_fd, TCSANOW, &config.tty);
    n = append(line, n, sizeof(line), "vmm: error: seccomp: forbidden system call ");
    n = append_num(line, n, sizeof(line), nr);
    n = append(line, n, sizeof(line), " (");
    n = append(line, n, sizeof(line),
               native && syscall_names[nr][0] ? syscall_names[nr] : "non-native or unknown");
    n = append(line, n, sizeof(line), ") in ");
    n = append(line, n, sizeof(line), sandbox_role_name((enum sandbox_role)thread_role));
    n = append(line, n, sizeof(line), " thread\n");
    if (write(STDERR_FILENO, line, n) < 0)
        n = 0; /* nothing more to try: exiting anyway */
    syscall(SYS_exit_group, config.exit_status);
}

static void free_programs(void)
{
    for (int r = 0; r < SANDBOX_NR_ROLES; r++) {
        free(programs[r].filter);
        programs[r] = (struct sock_fprog){0};
    }
}

int sandbox_prepare(const struct sandbox_config *cfg)
{
    struct sigaction sa = {.sa_sigaction = on_forbidden_call, .sa_flags = SA_SIGINFO};
    int ret = 0;

    free_programs();
    config = *cfg;
    /* glibc reads the time zone file on the first time conversion (the RTC's
     * gmtime_r on a vCPU): read it now, while opening files is allowed. */
    tzset();
    for (int r = 0; !ret && r < SANDBOX_NR_ROLES; r++)
        ret = build_program((enum sandbox_role)r, cfg, &programs[r]);
    if (ret) {
        free_programs();
        return ret;
    }
    fill_syscall_names();
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0)
        return -errno;
    return 0;
}

int sandbox_install(enum sandbox_role role)
{
    if ((unsigned)role >= SANDBOX_NR_ROLES || !programs[role].filter)
        return -EINVAL;
    /* Without CAP_SYS_ADMIN the kernel takes a filter only under no_new_privs. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    thread_role = (int)role;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &programs[role]) < 0) {
        thread_role = -1;
        return -errno;
    }
    return 0;
}
