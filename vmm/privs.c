#include "privs.h"

#include "../common/log.h"

#include <cap-ng.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A numeric id; -1 (which means "unchanged" to the kernel) and overflow are refused. */
static int parse_id(const char *s, unsigned long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return (errno || *end || *out >= UINT32_MAX) ? -EINVAL : 0;
}

static int resolve_user(const char *user, struct privs_target *t)
{
    struct passwd *pw = getpwnam(user);
    unsigned long id;

    if (pw) {
        t->uid = pw->pw_uid;
        t->gid = pw->pw_gid;
        return 0;
    }
    if (parse_id(user, &id) == 0) {
        t->uid = (uid_t)id;
        pw = getpwuid(t->uid);
        t->gid = pw ? pw->pw_gid : (gid_t)id;
        return 0;
    }
    pr_err("--user '%s': no such user", user);
    return -EINVAL;
}

static int resolve_group(const char *group, struct privs_target *t)
{
    struct group *gr = getgrnam(group);
    unsigned long id;

    if (gr) {
        t->gid = gr->gr_gid;
        return 0;
    }
    if (parse_id(group, &id) == 0) {
        t->gid = (gid_t)id;
        return 0;
    }
    pr_err("--group '%s': no such group", group);
    return -EINVAL;
}

int privs_resolve(const char *user, const char *group, struct privs_target *t)
{
    int ret = 0;

    t->uid = getuid();
    t->gid = getgid();
    t->change_id = user || group;
    if (user)
        ret = resolve_user(user, t);
    if (!ret && group)
        ret = resolve_group(group, t);
    return ret;
}

/* Reads the thread's capability sets back from the kernel: all must be empty. */
static bool privs_all_clear(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];

    if (syscall(SYS_capget, &hdr, data) < 0)
        return false;
    for (int i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return false;
    return true;
}

int privs_drop(const struct privs_target *t)
{
    bool have_setpcap;
    int ret;

    capng_get_caps_process();
    have_setpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
    capng_clear(CAPNG_SELECT_BOTH);
    if (t->change_id)
        ret = capng_change_id((int)t->uid, (int)t->gid, CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING);
    else /* lowering caps always works; the bounding set needs CAP_SETPCAP */
        ret = capng_apply(have_setpcap ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS);
    if (ret) {
        pr_err("cannot drop privileges%s (libcap-ng error %d: not permitted)",
               t->change_id ? " and switch user/group" : "", ret);
        return -EPERM;
    }
    if (!privs_all_clear()) {
        pr_err("capabilities are still held after dropping them");
        return -EPERM;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        ret = -errno;
        pr_err("cannot set no_new_privs: %s", strerror(-ret));
        return ret;
    }
    return 0;
}
