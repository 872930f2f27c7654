/* The seccomp sandbox, in forked children: each role's allowed calls work, a
 * forbidden one ends the process with the configured status and one line naming
 * the call and the role, and a filter confines only the thread that loads it. */
#include "../../vmm/sandbox.h"

#include "check_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ptrace.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FORBIDDEN_STATUS 42

/* Exit statuses of a child whose own checks failed (none is FORBIDDEN_STATUS). */
enum { CHILD_PREPARE_FAILED = 10, CHILD_INSTALL_FAILED, CHILD_CALL_FAILED, CHILD_SURVIVED };

struct outcome {
    int status; /* from waitpid */
    char text[512];
};

static struct sandbox_config test_config(int tty_fd)
{
    return (struct sandbox_config){
        .exit_status = FORBIDDEN_STATUS, .kick_signal = SIGUSR1, .tty_fd = tty_fd, .kvm_vm_fd = -1};
}

static void read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;

    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* Runs body in a child confined to role (after sandbox_prepare(cfg) and pre, which
 * runs unconfined), with its stderr captured. body returns the child's exit status. */
static struct outcome run_confined_after(enum sandbox_role role, struct sandbox_config cfg,
                                         int (*pre)(void), int (*body)(void))
{
    struct outcome o = {0};
    int err[2];
    pid_t pid;

    ck_assert_int_eq(pipe(err), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        if (sandbox_prepare(&cfg) || (pre && pre()))
            _exit(CHILD_PREPARE_FAILED);
        if (sandbox_install(role))
            _exit(CHILD_INSTALL_FAILED);
        _exit(body());
    }
    close(err[1]);
    read_all(err[0], o.text, sizeof(o.text));
    close(err[0]);
    ck_assert_int_eq(waitpid(pid, &o.status, 0), pid);
    return o;
}

static struct outcome run_confined(enum sandbox_role role, struct sandbox_config cfg,
                                   int (*body)(void))
{
    return run_confined_after(role, cfg, NULL, body);
}

static void assert_exited(const struct outcome *o, int want)
{
    ck_assert_msg(WIFEXITED(o->status), "child did not exit normally (wait status 0x%x): %s",
                  o->status, o->text);
    ck_assert_msg(WEXITSTATUS(o->status) == want, "child exited %d, want %d; stderr: '%s'",
                  WEXITSTATUS(o->status), want, o->text);
}

static void assert_refused(const struct outcome *o, const char *line)
{
    assert_exited(o, FORBIDDEN_STATUS);
    ck_assert_msg(strcmp(o->text, line) == 0, "stderr '%s', want '%s'", o->text, line);
}

static int make_socket(int domain)
{
    int s = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);

    return s >= 0 ? 0 : CHILD_CALL_FAILED;
}

static int body_unix_socket(void)
{
    return make_socket(AF_UNIX) ? CHILD_CALL_FAILED : CHILD_SURVIVED;
}

static int body_inet_socket(void)
{
    make_socket(AF_INET);
    return CHILD_SURVIVED;
}

static int body_netlink_socket(void)
{
    make_socket(AF_NETLINK);
    return CHILD_SURVIVED;
}

static int vcpu_efd = -1;

/* What a vCPU thread does: eventfd kicks, memory, clocks, KVM ioctls (on a
 * non-KVM fd they fail with ENOTTY: the filter let them through). */
static int body_vcpu_calls(void)
{
    uint64_t v = 1;
    struct kvm_irq_level line = {0};
    struct timespec ts;
    char *big;

    if (write(vcpu_efd, &v, sizeof(v)) != sizeof(v) || read(vcpu_efd, &v, sizeof(v)) != sizeof(v))
        return CHILD_CALL_FAILED;
    if (ioctl(vcpu_efd, KVM_IRQ_LINE, &line) == 0 || errno != ENOTTY)
        return CHILD_CALL_FAILED;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return CHILD_CALL_FAILED;
    big = malloc(1 << 22); /* mmap and munmap */
    if (!big)
        return CHILD_CALL_FAILED;
    memset(big, 1, 1 << 22);
    free(big);
    return 0;
}

static int body_unlisted_ioctl(void)
{
    int n;

    ioctl(vcpu_efd, FIONREAD, &n);
    return CHILD_SURVIVED;
}

static int body_exec_mapping(void)
{
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return CHILD_SURVIVED;
}

static int body_execve(void)
{
    char *argv[] = {"/bin/true", NULL};

    execve(argv[0], argv, environ);
    return CHILD_SURVIVED;
}

/* int 0x80: the 32-bit ABI's getpid, which the native filter does not know. */
static int body_int80(void)
{
    long ret = 20;

    __asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
    return CHILD_SURVIVED;
}

static void setup(void)
{
    vcpu_efd = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_ge(vcpu_efd, 0);
}

static void teardown(void)
{
    close(vcpu_efd);
}

START_TEST(vcpu_role_allows_its_calls)
{
    struct outcome o = run_confined(SANDBOX_VCPU, test_config(-1), body_vcpu_calls);

    assert_exited(&o, 0);
    ck_assert_str_eq(o.text, "");
}
END_TEST

START_TEST(vcpu_role_refuses_socket)
{
    struct outcome o = run_confined(SANDBOX_VCPU, test_config(-1), body_unix_socket);
    char line[128];

    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (socket) in vCPU thread\n", SYS_socket);
    assert_refused(&o, line);
}
END_TEST

START_TEST(vcpu_role_refuses_execve)
{
    struct outcome o = run_confined(SANDBOX_VCPU, test_config(-1), body_execve);
    char line[128];

    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (execve) in vCPU thread\n", SYS_execve);
    assert_refused(&o, line);
}
END_TEST

START_TEST(executable_mapping_is_refused)
{
    struct outcome o = run_confined(SANDBOX_MAIN, test_config(-1), body_exec_mapping);
    char line[128];

    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (mmap) in main (event loop) thread\n",
             SYS_mmap);
    assert_refused(&o, line);
}
END_TEST

START_TEST(ioctl_outside_the_request_list_is_refused)
{
    struct outcome o = run_confined(SANDBOX_VCPU, test_config(-1), body_unlisted_ioctl);
    char line[128];

    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (ioctl) in vCPU thread\n", SYS_ioctl);
    assert_refused(&o, line);
}
END_TEST

/* The handler's terminal restore is itself an ioctl the vCPU filter must allow
 * (a pipe is no terminal: it fails with ENOTTY, past the filter); refused, it
 * would trap again inside the handler and the kernel would kill with SIGSYS. */
START_TEST(terminal_restore_passes_the_vcpu_filter)
{
    struct outcome o = run_confined(SANDBOX_VCPU, test_config(vcpu_efd), body_unix_socket);

    assert_exited(&o, FORBIDDEN_STATUS);
    ck_assert_ptr_nonnull(strstr(o.text, "(socket) in vCPU thread"));
}
END_TEST

START_TEST(non_native_abi_is_refused)
{
    struct outcome o = run_confined(SANDBOX_VCPU, test_config(-1), body_int80);

    assert_refused(&o, "vmm: error: seccomp: forbidden system call 20 (non-native or unknown) "
                       "in vCPU thread\n");
}
END_TEST

/* The worker: Unix sockets and TCP/IP (migration), nothing else. */
START_TEST(worker_role_allows_unix_and_ip_sockets_only)
{
    struct outcome o = run_confined(SANDBOX_WORKER, test_config(-1), body_unix_socket);
    char line[128];

    ck_assert_int_eq(WEXITSTATUS(o.status), CHILD_SURVIVED);
    o = run_confined(SANDBOX_WORKER, test_config(-1), body_inet_socket);
    ck_assert_int_eq(WEXITSTATUS(o.status), CHILD_SURVIVED);
    o = run_confined(SANDBOX_WORKER, test_config(-1), body_netlink_socket);
    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (socket) in worker thread\n",
             SYS_socket);
    assert_refused(&o, line);
}
END_TEST

/* The main loop makes no socket at all: the control socket listens from before. */
START_TEST(main_role_makes_no_socket)
{
    struct outcome o = run_confined(SANDBOX_MAIN, test_config(-1), body_unix_socket);
    char line[128];

    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (socket) in main (event loop) thread\n",
             SYS_socket);
    assert_refused(&o, line);
}
END_TEST

/* ---- each role does its real work ---- */

/* Made before the filter, as vmm makes its loops' fds: an epoll set, an eventfd, a
 * timerfd, a listening Unix socket, a memfd (guest RAM) and a connected pair. */
static int loop_ep = -1, loop_tfd = -1, loop_listen = -1, loop_memfd = -1, loop_pair[2] = {-1, -1};
static pthread_mutex_t contended_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t contended_cond = PTHREAD_COND_INITIALIZER;
static int contended_turn;
static pthread_t contender;

/* The other side of a condvar the confined thread waits on, hard. */
static void *contend(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&contended_lock);
        while (contended_turn != 1)
            pthread_cond_wait(&contended_cond, &contended_lock);
        contended_turn = 0;
        pthread_cond_broadcast(&contended_cond);
        pthread_mutex_unlock(&contended_lock);
    }
    return NULL;
}

static int play_condvar(void)
{
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&contended_lock);
        contended_turn = 1;
        pthread_cond_broadcast(&contended_cond);
        while (contended_turn != 0)
            pthread_cond_wait(&contended_cond, &contended_lock);
        pthread_mutex_unlock(&contended_lock);
    }
    return pthread_join(contender, NULL) ? CHILD_CALL_FAILED : 0;
}

static int epoll_round(void)
{
    struct epoll_event ev = {.events = EPOLLIN}, got;
    uint64_t v = 1;

    if (epoll_ctl(loop_ep, EPOLL_CTL_ADD, vcpu_efd, &ev) ||
        write(vcpu_efd, &v, sizeof(v)) != sizeof(v) || epoll_wait(loop_ep, &got, 1, 1000) != 1 ||
        read(vcpu_efd, &v, sizeof(v)) != sizeof(v) ||
        epoll_ctl(loop_ep, EPOLL_CTL_DEL, vcpu_efd, NULL))
        return CHILD_CALL_FAILED;
    return 0;
}

/* What the main loop does: epoll over eventfds, a client accepted, condvars. */
static int body_main_loop_work(void)
{
    int c = accept4(loop_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (c >= 0 || errno != EAGAIN)
        return CHILD_CALL_FAILED;
    if (epoll_round())
        return CHILD_CALL_FAILED;
    return play_condvar();
}

/* What a NIC's loop does: the backend's socket (SCM_RIGHTS with guest RAM's memfd, a
 * new request channel, a reconnect), epoll, its timers. */
static int body_nic_loop_work(void)
{
    char buf[CMSG_SPACE(sizeof(int))] = {0}, byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    struct itimerspec its = {.it_value = {.tv_sec = 10}};
    struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = "/nonexistent/vmm.sock"};
    int chan[2], s, kept;

    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &loop_memfd, sizeof(int));
    if (sendmsg(loop_pair[0], &mh, 0) != 1 || recvmsg(loop_pair[1], &mh, MSG_CMSG_CLOEXEC) != 1)
        return CHILD_CALL_FAILED;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan))
        return CHILD_CALL_FAILED;
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != ENOENT)
        return CHILD_CALL_FAILED;
    if (timerfd_settime(loop_tfd, 0, &its, NULL) || epoll_round())
        return CHILD_CALL_FAILED;
    /* Migration's dirty log, kept for a backend that comes back. */
    kept = fcntl(loop_memfd, F_DUPFD_CLOEXEC, 0);
    if (kept < 0)
        return CHILD_CALL_FAILED;
    close(kept);
    close(s);
    close(chan[0]);
    close(chan[1]);
    return 0;
}

/* What the worker does beyond a NIC: threads (a vCPU's, a migration's), files. */
static void *nothing(void *arg)
{
    return arg;
}

static int body_worker_work(void)
{
    char path[] = "/tmp/vmm-seccomp-XXXXXX";
    pthread_t t;
    int fd;

    if (pthread_create(&t, NULL, nothing, NULL) || pthread_join(t, NULL))
        return CHILD_CALL_FAILED;
    fd = mkstemp(path);
    if (fd < 0)
        return CHILD_CALL_FAILED;
    /* A reboot's new VM replaces the old one's fd number. */
    if (dup3(fd, loop_memfd, O_CLOEXEC) != loop_memfd)
        return CHILD_CALL_FAILED;
    close(fd);
    unlink(path);
    return 0;
}

static void loop_fds_open(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    loop_ep = epoll_create1(EPOLL_CLOEXEC);
    loop_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    loop_memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    loop_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(loop_ep, 0);
    ck_assert_int_ge(loop_tfd, 0);
    ck_assert_int_ge(loop_memfd, 0);
    ck_assert_int_ge(loop_listen, 0);
    /* An abstract address: nothing on disk. */
    snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "vmm-seccomp-%d", getpid());
    ck_assert_int_eq(bind(loop_listen, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(loop_listen, 1), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, loop_pair), 0);
    contended_turn = 0;
}

static void loop_fds_close(void)
{
    int *fds[] = {&loop_ep, &loop_tfd, &loop_listen, &loop_memfd, &loop_pair[0], &loop_pair[1]};

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        close(*fds[i]);
        *fds[i] = -1;
    }
}

/* The contender starts before the filter (unconfined: only the thread under test
 * is), as vmm's threads exist before the main loop confines itself. */
static int start_contender(void)
{
    return pthread_create(&contender, NULL, contend, NULL) ? CHILD_CALL_FAILED : 0;
}

/* The contender runs unconfined in the child: only the thread under test is. */
static int body_main_loop_with_contender(void)
{
    return body_main_loop_work();
}

START_TEST(main_role_runs_the_loops_work)
{
    struct outcome o;

    loop_fds_open();
    o = run_confined_after(SANDBOX_MAIN, test_config(-1), start_contender,
                           body_main_loop_with_contender);
    loop_fds_close();
    assert_exited(&o, 0);
    ck_assert_str_eq(o.text, "");
}
END_TEST

START_TEST(net_role_runs_a_nics_work)
{
    struct outcome o;

    loop_fds_open();
    o = run_confined(SANDBOX_NET, test_config(-1), body_nic_loop_work);
    loop_fds_close();
    assert_exited(&o, 0);
    ck_assert_str_eq(o.text, "");
}
END_TEST

/* glibc's first pthread_create in a process sets a signal handler up: vmm's main
 * thread starts its threads before any filter, so the worker's are never its first. */
static int first_thread(void)
{
    pthread_t t;

    return pthread_create(&t, NULL, nothing, NULL) || pthread_join(t, NULL) ? CHILD_CALL_FAILED : 0;
}

START_TEST(worker_role_starts_threads_and_writes_files)
{
    struct outcome o;

    loop_fds_open();
    o = run_confined_after(SANDBOX_WORKER, test_config(-1), first_thread, body_worker_work);
    loop_fds_close();

    assert_exited(&o, 0);
    ck_assert_str_eq(o.text, "");
}
END_TEST

/* The interrupt ioctls go to vmm's VM fd only: on it the filter lets them through (an
 * eventfd stands in: ENOTTY), on any other fd they are refused. */
static int body_irq_line_on_the_vm_fd(void)
{
    struct kvm_irq_level line = {0};

    return ioctl(vcpu_efd, KVM_IRQ_LINE, &line) == 0 || errno != ENOTTY ? CHILD_CALL_FAILED : 0;
}

static int body_irq_line_elsewhere(void)
{
    struct kvm_irq_level line = {0};

    ioctl(loop_ep, KVM_IRQ_LINE, &line);
    return CHILD_SURVIVED;
}

START_TEST(kvm_ioctls_only_on_the_vms_fd)
{
    struct sandbox_config cfg = test_config(-1);
    struct outcome o;
    char line[160];

    loop_fds_open();
    cfg.kvm_vm_fd = vcpu_efd;
    for (int r = 0; r < SANDBOX_NR_ROLES; r++) {
        if (r == SANDBOX_WORKER)
            continue; /* it builds VMs: every KVM ioctl, any fd */
        o = run_confined((enum sandbox_role)r, cfg, body_irq_line_on_the_vm_fd);
        assert_exited(&o, 0);
        o = run_confined((enum sandbox_role)r, cfg, body_irq_line_elsewhere);
        snprintf(line, sizeof(line),
                 "vmm: error: seccomp: forbidden system call %d (ioctl) in %s "
                 "thread\n",
                 SYS_ioctl,
                 r == SANDBOX_VCPU  ? "vCPU"
                 : r == SANDBOX_NET ? "NIC"
                                    : "main (event loop)");
        assert_refused(&o, line);
    }
    loop_fds_close();
}
END_TEST

/* ---- what no role may do ---- */

#ifndef VMM_SANITIZE
static int body_ptrace(void)
{
    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    return CHILD_SURVIVED;
}

static int body_fork(void)
{
    pid_t pid = fork();

    if (pid == 0)
        _exit(0);
    return CHILD_SURVIVED;
}

static int body_open_new_file(void)
{
    char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/vmm-seccomp-new-%d", getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    return CHILD_SURVIVED;
}
#endif

static const char *const role_words[SANDBOX_NR_ROLES] = {
    [SANDBOX_VCPU] = "vCPU",
    [SANDBOX_MAIN] = "main (event loop)",
    [SANDBOX_NET] = "NIC",
    [SANDBOX_WORKER] = "worker",
};

static void expect_refused(enum sandbox_role role, int (*body)(void), int nr, const char *name)
{
    struct outcome o = run_confined(role, test_config(-1), body);
    char line[160];

    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (%s) in %s thread\n", nr, name,
             role_words[role]);
    assert_refused(&o, line);
}

/* execve, ptrace and fork for every role; opening a new file for all but the worker
 * (snapshots). The sanitized build's runtime needs ptrace, clone and open for its
 * own reports (README, Sandbox): those refusals are checked in the plain build. */
START_TEST(every_role_refuses_exec_ptrace_fork_and_new_files)
{
    for (int r = 0; r < SANDBOX_NR_ROLES; r++) {
        expect_refused((enum sandbox_role)r, body_execve, SYS_execve, "execve");
#ifndef VMM_SANITIZE
        expect_refused((enum sandbox_role)r, body_ptrace, SYS_ptrace, "ptrace");
        expect_refused((enum sandbox_role)r, body_fork, SYS_clone, "clone");
        if (r != SANDBOX_WORKER)
            expect_refused((enum sandbox_role)r, body_open_new_file, SYS_openat, "openat");
#endif
    }
}
END_TEST

/* No TSYNC: a filter loaded by one thread leaves the others as they were. */
static void *confine_self(void *arg)
{
    (void)arg;
    return (void *)(long)sandbox_install(SANDBOX_VCPU);
}

static int body_other_thread_confined(void)
{
    pthread_t t;
    void *ret;

    if (pthread_create(&t, NULL, confine_self, NULL) || pthread_join(t, &ret) || ret)
        return CHILD_INSTALL_FAILED;
    return make_socket(AF_INET) ? CHILD_CALL_FAILED : 0;
}

START_TEST(filter_confines_only_its_thread)
{
    pid_t pid;
    int status;
    struct sandbox_config cfg = test_config(-1);

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(sandbox_prepare(&cfg) ? CHILD_PREPARE_FAILED : body_other_thread_confined());
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(install_needs_prepare)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(sandbox_install(SANDBOX_VCPU) == -EINVAL ? 0 : 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

static Suite *seccomp_suite(void)
{
    Suite *s = suite_create("seccomp");
    TCase *tc = tcase_create("roles");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, vcpu_role_allows_its_calls);
    tcase_add_test(tc, vcpu_role_refuses_socket);
    tcase_add_test(tc, vcpu_role_refuses_execve);
    tcase_add_test(tc, executable_mapping_is_refused);
    tcase_add_test(tc, ioctl_outside_the_request_list_is_refused);
    tcase_add_test(tc, terminal_restore_passes_the_vcpu_filter);
    tcase_add_test(tc, non_native_abi_is_refused);
    tcase_add_test(tc, worker_role_allows_unix_and_ip_sockets_only);
    tcase_add_test(tc, main_role_makes_no_socket);
    tcase_add_test(tc, main_role_runs_the_loops_work);
    tcase_add_test(tc, net_role_runs_a_nics_work);
    tcase_add_test(tc, worker_role_starts_threads_and_writes_files);
    tcase_add_test(tc, every_role_refuses_exec_ptrace_fork_and_new_files);
    tcase_add_test(tc, kvm_ioctls_only_on_the_vms_fd);
    tcase_add_test(tc, filter_confines_only_its_thread);
    tcase_add_test(tc, install_needs_prepare);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(seccomp_suite)
