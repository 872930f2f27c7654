/* The Intel MultiProcessor table: how Linux finds the vCPUs and the IOAPIC
 * without ACPI. Built into a buffer by a pure function (unit-tested). */
#ifndef VMM_MPTABLE_H
#define VMM_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define MPTABLE_MAX_CPUS 254 /* APIC ids are 8 bits and the IOAPIC takes the next one */

/* Size of the table for ncpus, to check it fits before building it. */
size_t mptable_size(unsigned ncpus);

/* Writes the floating pointer and the configuration table at buf, which the
 * guest sees at guest physical address `gpa`. Returns the bytes written. */
size_t mptable_build(uint8_t *buf, uint64_t gpa, unsigned ncpus);

#endif
