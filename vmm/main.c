/* vmm: boot a Linux guest on KVM. Fatal exits live here and nowhere else. */
#include "api.h"
#include "boot.h"
#include "options.h"
#include "privs.h"
#include "vm.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_file(const char *what, const char *path, uint8_t **data, size_t *size)
{
    int ret = read_file(path, data, size);

    if (ret)
        pr_err("cannot read %s '%s': %s", what, path, strerror(-ret));
    return ret;
}

/* Checks the kernel before touching KVM, so a wrong file is reported as such. */
static int check_kernel(const char *path, const uint8_t *data, size_t size)
{
    struct boot_kernel k;
    const char *why = NULL;

    if (boot_kernel_parse(data, size, &k, &why) == 0)
        return 0;
    pr_err("kernel '%s': %s", path, why);
    return -ENOEXEC;
}

static void set_log_level(int verbosity)
{
    if (verbosity < 0)
        log_set_level(LOG_ERR);
    else if (verbosity > 0)
        log_set_level(LOG_DEBUG);
}

int main(int argc, char **argv)
{
    int64_t start_us = trace_file_now_us(); /* time 0 of the --vhost-trace lines */
    struct trace_file trace = {.fd = -1};
    struct vmm_options opts;
    struct privs_target privs;
    uint8_t *kernel = NULL, *initrd = NULL;
    size_t kernel_size = 0, initrd_size = 0;
    char err[256];
    struct api api = {.listen_fd = -1};
    struct vm vm;
    int status = VMM_EXIT_ERROR;

    switch (options_parse(argc, argv, &opts, stdout, err, sizeof(err))) {
    case OPTIONS_EXIT_OK:
        return 0;
    case OPTIONS_ERROR:
        pr_err("%s", err);
        return VMM_EXIT_ERROR;
    case OPTIONS_OK:
        break;
    }
    set_log_level(opts.verbosity);
    if (kvm_host_is_pvm())
        pr_warn("this host's KVM is PVM (kvm_pvm): guest kernel code is emulated, so a Linux "
                "guest will not boot at usable speed here; use the nested rig (tests/rig)");
    if ((opts.kernel && (load_file("kernel", opts.kernel, &kernel, &kernel_size) ||
                         check_kernel(opts.kernel, kernel, kernel_size))) ||
        (opts.initrd && load_file("initrd", opts.initrd, &initrd, &initrd_size)) ||
        privs_resolve(opts.user, opts.group, &privs) ||
        (opts.vhost_trace && trace_file_open(&trace, opts.vhost_trace, start_us)))
        goto out;
    if (vm_create(&vm, &opts, trace_file_on(&trace) ? &trace : NULL, kernel, kernel_size, initrd,
                  initrd_size))
        goto out;
    /* The guest image is in guest memory now; free it before the guest runs. */
    free(kernel);
    free(initrd);
    kernel = initrd = NULL;
    /* Bound before the privileges go, like a vhost-user server socket. */
    if ((!opts.api_socket || api_init(&api, opts.api_socket, &vm, &vm.loop) == 0) &&
        privs_drop(&privs) == 0)
        status = vm_run(&vm);
    if (atomic_load(&vm.socket_files_removed))
        api_file_removed(&api);
    api_destroy(&api);
    vm_destroy(&vm);
out:
    trace_file_close(&trace);
    free(kernel);
    free(initrd);
    return status;
}
