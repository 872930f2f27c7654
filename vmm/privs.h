/* Least privilege: once set-up is done, vmm holds no capability at all. */
#ifndef VMM_PRIVS_H
#define VMM_PRIVS_H

#include <sys/types.h>

struct privs_target {
    uid_t uid;
    gid_t gid;
    int change_id; /* switch uid/gid as well */
};

/* Resolves --user/--group (names or numbers) before anything is dropped. */
int privs_resolve(const char *user, const char *group, struct privs_target *t);

/* Clears every capability (effective, permitted, inheritable, bounding), switches
 * uid/gid when asked and sets no_new_privs. Call before any thread is created:
 * capabilities are per thread and new threads inherit them. */
int privs_drop(const struct privs_target *t);

#endif
