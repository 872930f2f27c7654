/* What the machine's files share: vm.c (building and tearing down), vm_vcpu.c (the
 * vCPU threads) and vm_run.c (its life on the main loop). */
#ifndef VMM_VM_PRIV_H
#define VMM_VM_PRIV_H

#include "vm.h"

#include <signal.h>

#define VCPU_KICK_SIGNAL SIGUSR1
#define VM_PAUSE_REKICK_MS 100
#define VM_TIMEOUT_LINES 20 /* the guest's console lines shown when --timeout expires */

/* vm.c */
void vm_request_reset(struct vm *vm);
int vm_map_memory(struct vm *vm);
int vm_load_guest(struct vm *vm, const struct boot_files *files);
int vm_create_vcpus(struct vm *vm);
void vm_destroy_vcpus(struct vm *vm);

/* vm_vcpu.c */
int64_t vm_now_ms(void);
void vm_kick_vcpus(struct vm *vm);
/* No vCPU ever waits for another thread: kicked out of KVM_RUN or its park, each ends
 * within a device access. */
void vm_stop_vcpus(struct vm *vm);
int vm_start_vcpus(struct vm *vm);

/* vm_run.c */
void vm_stop_worker(struct vm *vm);
void vm_print_console_tail(struct vm *vm);
bool vm_exit_is_error(int code);

#endif
