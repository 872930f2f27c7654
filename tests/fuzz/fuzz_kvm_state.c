/*
 * Fuzz target: the vCPU and VM state blobs a migration stream or a snapshot carries
 * (kvm/vcpu_state.c, kvm/vm_state.c), through kvm_vcpu_state_parse and
 * kvm_vm_state_parse: every check the loaders make before their first ioctl, with no
 * /dev/kvm. A blob that parses must be one the writer would produce: written back with
 * kvm_*_state_put it gives the same bytes, and it holds nothing the host lacks.
 *
 * Input: a kind byte (bit 7: the VM blob, else a vCPU blob), a host byte (the
 * capabilities of the KVM that loads it), then the blob.
 *   vCPU host: bit 0 XSAVE (bit 5: an 11008-byte XSAVE2 area, else 4096), bits 1-4 the
 *   other optional parts (KVM_VCPU_HAS_XCRS...); VM host: bits 0-1 (PIT, clock).
 */
#include "../../kvm/vcpu_state.h"
#include "../../kvm/vm_state.h"

#include "fuzz_util.h"

#include <string.h>

/* The sizes tests/fuzz/make_seeds.py writes its seeds with. */
_Static_assert(sizeof(struct kvm_regs) == 144 && sizeof(struct kvm_sregs) == 312 &&
                   sizeof(struct kvm_fpu) == 416 && sizeof(struct kvm_xsave) == 4096 &&
                   sizeof(struct kvm_xcrs) == 392 && sizeof(struct kvm_msr_entry) == 16 &&
                   sizeof(struct kvm_lapic_state) == 1024 && sizeof(struct kvm_vcpu_events) == 64 &&
                   sizeof(struct kvm_mp_state) == 4 && sizeof(struct kvm_debugregs) == 128,
               "vCPU state part sizes differ from make_seeds.py's");
_Static_assert(sizeof(struct kvm_irqchip) == 520 && sizeof(struct kvm_pit_state2) == 112 &&
                   sizeof(struct kvm_clock_data) == 48,
               "VM state part sizes differ from make_seeds.py's");

#define KIND_VM 0x80
#define HOST_XSAVE 0x01
#define HOST_XSAVE2_BIG 0x20
#define XSAVE2_BIG_SIZE 11008 /* AMX: what KVM_CAP_XSAVE2 reports with tile data */

/* Parsed back into bytes, a blob that loads is exactly the blob. */
static void check_round_trip(const struct state_buf *b, const uint8_t *data, size_t len,
                             const char *what)
{
    if (b->len != len || memcmp(b->data, data, len))
        fuzz_fail("%s blob of %zu bytes parses, but writes back as %zu different bytes", what, len,
                  b->len);
}

static void fuzz_vcpu(uint8_t host_byte, const uint8_t *data, size_t len)
{
    struct kvm_vcpu_state_host host = {.parts =
                                           host_byte & (KVM_VCPU_HAS_ALL & ~KVM_VCPU_HAS_XSAVE)};
    struct kvm_vcpu_state_parts p;
    struct state_buf b = {0};

    if (host_byte & HOST_XSAVE) {
        host.parts |= KVM_VCPU_HAS_XSAVE;
        host.xsave_size = host_byte & HOST_XSAVE2_BIG ? XSAVE2_BIG_SIZE : sizeof(struct kvm_xsave);
    }
    if (kvm_vcpu_state_parse(data, len, &host, 0, &p) == 0) {
        if (p.hdr.parts & ~host.parts)
            fuzz_fail("vCPU blob with parts 0x%x loads on a host with 0x%x", p.hdr.parts,
                      host.parts);
        if (p.msrs->nmsrs != p.hdr.nmsrs || p.msrs->nmsrs > KVM_VCPU_STATE_MAX_MSRS ||
            p.xcrs.nr_xcrs > KVM_MAX_XCRS)
            fuzz_fail("vCPU blob loads with %u MSRs (header %u), %u XCRs", p.msrs->nmsrs,
                      p.hdr.nmsrs, p.xcrs.nr_xcrs);
        if (kvm_vcpu_state_put(&p, &b))
            fuzz_fail("cannot write a parsed vCPU blob back");
        check_round_trip(&b, data, len, "vCPU");
    }
    state_buf_free(&b);
    kvm_vcpu_state_parts_free(&p);
}

static void fuzz_vm(uint8_t host_byte, const uint8_t *data, size_t len)
{
    uint32_t host = host_byte & KVM_VM_HAS_ALL;
    struct kvm_vm_state_parts p;
    struct state_buf b = {0};

    if (kvm_vm_state_parse(data, len, host, &p))
        return;
    if (p.hdr.parts & ~host)
        fuzz_fail("VM blob with parts 0x%x loads on a host with 0x%x", p.hdr.parts, host);
    for (uint32_t i = 0; i < KVM_VM_STATE_NCHIPS; i++)
        if (p.chips[i].chip_id != i)
            fuzz_fail("VM blob loads chip %u in slot %u", p.chips[i].chip_id, i);
    if (kvm_vm_state_put(&p, &b))
        fuzz_fail("cannot write a parsed VM blob back");
    check_round_trip(&b, data, len, "VM");
    state_buf_free(&b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    fuzz_log_level();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (data[0] & KIND_VM)
        fuzz_vm(data[1], data + 2, size - 2);
    else
        fuzz_vcpu(data[1], data + 2, size - 2);
    return 0;
}
