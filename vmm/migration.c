/* PLACEHOLDER (api branch), replaced by the main branch's vmm/migration.c on
 * merge: every migration command fails with -ENOSYS and "migration is not built
 * yet", and query-migrate reports "none". It exists so the control socket's
 * migration commands build and their error path can be tested. */
#include "migration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int not_built(char *err, size_t errlen)
{
    snprintf(err, errlen, "migration is not built yet");
    return -ENOSYS;
}

int migration_start(struct vm *vm, const struct migration_params *p, char *err, size_t errlen)
{
    (void)vm;
    (void)p;
    return not_built(err, errlen);
}

int migration_cancel(struct vm *vm, char *err, size_t errlen)
{
    (void)vm;
    return not_built(err, errlen);
}

int snapshot_save(struct vm *vm, const char *dir, char *err, size_t errlen)
{
    (void)vm;
    (void)dir;
    return not_built(err, errlen);
}

void migration_query(struct vm *vm, struct migration_info *info)
{
    (void)vm;
    memset(info, 0, sizeof(*info));
    info->status = "none";
}
