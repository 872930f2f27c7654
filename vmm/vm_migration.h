/* The machine as migration sees it (vm_migration.c): the struct vm side of
 * migration_host.h. */
#ifndef VMM_VM_MIGRATION_H
#define VMM_VM_MIGRATION_H

#include "migration.h"

struct vm;

/* The ops over vm, for migration_create, migration_incoming, snapshot_restore. */
struct migration_host vm_migration_host(struct vm *vm);
/* vm->mig for the control socket's commands; logs and returns -ENOMEM. */
int vm_migration_init(struct vm *vm);
void vm_migration_destroy(struct vm *vm);

#endif
