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
#include <sys/eventfd.h>
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
        .exit_status = FORBIDDEN_STATUS, .kick_signal = SIGUSR1, .tty_fd = tty_fd};
}

static void read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;

    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* Runs body in a child confined to role (after sandbox_prepare(cfg)), with its
 * stderr captured. body returns the child's exit status. */
static struct outcome run_confined(enum sandbox_role role, struct sandbox_config cfg,
                                   int (*body)(void))
{
    struct outcome o = {0};
    int err[2];
    pid_t pid;

    ck_assert_int_eq(pipe(err), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        if (sandbox_prepare(&cfg))
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

/* Unix sockets (vhost-user, the control socket) and TCP/IP (migration), nothing else. */
START_TEST(main_role_allows_unix_and_ip_sockets_only)
{
    struct outcome o = run_confined(SANDBOX_MAIN, test_config(-1), body_unix_socket);
    char line[128];

    ck_assert_int_eq(WEXITSTATUS(o.status), CHILD_SURVIVED);
    o = run_confined(SANDBOX_MAIN, test_config(-1), body_inet_socket);
    ck_assert_int_eq(WEXITSTATUS(o.status), CHILD_SURVIVED);
    o = run_confined(SANDBOX_MAIN, test_config(-1), body_netlink_socket);
    snprintf(line, sizeof(line),
             "vmm: error: seccomp: forbidden system call %d (socket) in main (event loop) thread\n",
             SYS_socket);
    assert_refused(&o, line);
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
    tcase_add_test(tc, main_role_allows_unix_and_ip_sockets_only);
    tcase_add_test(tc, filter_confines_only_its_thread);
    tcase_add_test(tc, install_needs_prepare);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(seccomp_suite)
