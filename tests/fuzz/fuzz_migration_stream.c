/*
 * Fuzz target: the migration stream (and the snapshot file, the same format) as the
 * destination reads it. The record loop of vmm/migration.c (in_stream, in_record)
 * needs a whole struct vm with KVM behind it, so this harness runs the same loop over
 * the same parts: mig_reader over the input (in a memfd), mig_header_check against a
 * machine of its own (two RAM regions, 2 vCPUs, one NIC of 2 queue pairs),
 * mig_rec_check on every record, then what in_record does with each record that
 * passed: RAM and zero runs into guest memory, the VM and vCPU blobs through
 * kvm_vm_state_parse and kvm_vcpu_state_parse, device state by id into a UART, an
 * i8042 and an RTC (fuzz_device_state covers the virtio function's), and the verify
 * hashes compared page by page.
 *
 * Oracles: a record mig_rec_check passes is one in_record can apply safely: its
 * pages lie inside one RAM region (in_record writes through guest_memory_ptr without
 * a NULL check), its blob and id sizes are bounded, a vCPU index is checked before
 * use, the verify record has one hash per page; a refused stream always says why, in
 * one line (a device id from the stream is quoted in it).
 *
 * Input: a byte choosing the reader's buffer size (small buffers take the path where
 * large reads bypass it), then the stream.
 */
#include "../../devices/i8042.h"
#include "../../devices/rtc.h"
#include "../../devices/serial.h"
#include "../../kvm/vcpu_state.h"
#include "../../kvm/vm_state.h"
#include "../../vmm/dirty.h"
#include "../../vmm/migration_stream.h"

#include "fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NCPUS 2
#define LOW_SIZE (1u << 20)   /* region 0: [0, 1 MiB) */
#define HIGH_GPA (1ULL << 32) /* region 1: [4 GiB, 4 GiB + 256 KiB), as above the hole */
#define HIGH_SIZE (256u << 10)

static struct guest_memory mem;
static struct mig_header mine;
static int stream_fd = -1;
static struct serial uart;
static struct i8042 kbd;
static struct rtc rtc;

static time_t fixed_time(void)
{
    return 1700000000;
}

static void reset_cpu(void *opaque)
{
    (void)opaque;
}

/* A machine like vmm's with little RAM: two regions around a hole. */
static void machine_init(void)
{
    static uint8_t low[LOW_SIZE], high[HIGH_SIZE];
    const unsigned pairs[MIG_MAX_NETS] = {2};
    const struct irq_line none = {0};

    mem = (struct guest_memory){.fd = -1, .size = LOW_SIZE + HIGH_SIZE, .nregions = 2};
    mem.regions[0] = (struct guest_region){.gpa = 0, .size = LOW_SIZE, .hva = low};
    mem.regions[1] = (struct guest_region){
        .gpa = HIGH_GPA, .size = HIGH_SIZE, .fd_offset = LOW_SIZE, .hva = high};
    mig_header_fill(&mine, &mem, NCPUS, 1, pairs, 0);
    if (serial_init(&uart, "serial0", &none, -1) || i8042_init(&kbd, &none, reset_cpu, NULL) ||
        rtc_init(&rtc, fixed_time))
        fuzz_fail("cannot build the legacy devices");
    stream_fd = memfd_create("fuzz-stream", MFD_CLOEXEC);
    if (stream_fd < 0)
        fuzz_fail("memfd_create: %s", strerror(errno));
}

/* ---- what in_record does with each record ---- */

struct in {
    struct mig_reader rd;
    struct state_buf blob;
    uint64_t differ; /* pages whose hash differs, as the destination reports them */
    char why[200];
};

static int fail(struct in *in, int ret, const char *what)
{
    if (!in->why[0])
        snprintf(in->why, sizeof(in->why), "%s", what);
    return ret ? ret : -EINVAL;
}

static int read_blob(struct in *in, uint64_t len)
{
    if (len > MIG_MAX_BLOB)
        fuzz_fail("mig_rec_check passed a blob of %llu bytes", (unsigned long long)len);
    in->blob.len = 0;
    if (len > in->blob.cap) {
        uint8_t *p = realloc(in->blob.data, len);

        if (!p)
            fuzz_fail("out of memory");
        in->blob.data = p;
        in->blob.cap = len;
    }
    in->blob.len = len;
    return mig_reader_read(&in->rd, in->blob.data, len);
}

static struct device *find_device(const char *id)
{
    struct device *devs[] = {&uart.dev, &kbd.cmd_dev, &rtc.dev};

    for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
        if (!strcmp(devs[i]->id, id))
            return devs[i];
    return NULL;
}

static int in_device(struct in *in, const struct mig_rec *rec)
{
    char id[MIG_MAX_ID + 1] = {0};
    struct device *d;
    int ret;

    if (rec->a == 0 || rec->a > MIG_MAX_ID)
        fuzz_fail("mig_rec_check passed a device id of %llu bytes", (unsigned long long)rec->a);
    ret = mig_reader_read(&in->rd, id, rec->a);
    if (!ret)
        ret = read_blob(in, rec->b);
    if (ret)
        return fail(in, ret, "the stream ended inside a device's state");
    ret = mig_device_id_check(id, rec->a, in->why, sizeof(in->why));
    if (ret)
        return ret;
    d = find_device(id);
    if (!d) { /* in_device's words: the id goes into the destination's error line */
        snprintf(in->why, sizeof(in->why), "the source has a device '%s' this VM lacks", id);
        return -EINVAL;
    }
    ret = d->ops->load(d, in->blob.data, in->blob.len);
    if (ret)
        snprintf(in->why, sizeof(in->why), "device '%s' refused its state: %s", id, strerror(-ret));
    return ret;
}

static int in_verify(struct in *in, uint64_t pages)
{
    uint64_t *h, n = 0;
    int ret;

    if (pages != mem.size / 4096)
        fuzz_fail("mig_rec_check passed a verify record of %llu pages", (unsigned long long)pages);
    h = malloc(pages * sizeof(uint64_t));
    if (!h)
        fuzz_fail("out of memory");
    ret = mig_reader_read(&in->rd, h, pages * sizeof(uint64_t));
    for (int i = 0; !ret && i < mem.nregions; i++)
        for (uint64_t off = 0; off < mem.regions[i].size; off += 4096, n++)
            in->differ += dirty_page_hash(mem.regions[i].hva + off) != h[n];
    if (!ret && n != pages)
        fuzz_fail("verify compared %llu pages of %llu", (unsigned long long)n,
                  (unsigned long long)pages);
    free(h);
    return ret ? fail(in, ret, "the stream ended inside the verify hashes") : 0;
}

static int in_ram(struct in *in, const struct mig_rec *rec)
{
    uint8_t *p = guest_memory_ptr(&mem, rec->a, rec->b * 4096);

    if (!p)
        fuzz_fail("mig_rec_check passed %llu pages at 0x%llx, not inside one RAM region",
                  (unsigned long long)rec->b, (unsigned long long)rec->a);
    if (rec->type == MIG_REC_ZERO) {
        memset(p, 0, rec->b * 4096);
        return 0;
    }
    return mig_reader_read(&in->rd, p, rec->b * 4096);
}

static int in_record(struct in *in, const struct mig_rec *rec)
{
    const struct kvm_vcpu_state_host host = {KVM_VCPU_HAS_ALL, sizeof(struct kvm_xsave)};
    struct kvm_vcpu_state_parts vcpu;
    struct kvm_vm_state_parts vm;
    int ret;

    switch (rec->type) {
    case MIG_REC_RAM:
    case MIG_REC_ZERO:
        return in_ram(in, rec);
    case MIG_REC_VM:
        ret = read_blob(in, rec->b);
        if (!ret && (ret = kvm_vm_state_parse(in->blob.data, in->blob.len, KVM_VM_HAS_ALL, &vm)))
            return fail(in, ret, "the VM's KVM state was refused");
        return ret;
    case MIG_REC_VCPU:
        if (rec->a >= NCPUS)
            return fail(in, -EINVAL, "a vCPU index beyond this VM's vCPUs");
        ret = read_blob(in, rec->b);
        if (ret)
            return ret;
        ret = kvm_vcpu_state_parse(in->blob.data, in->blob.len, &host, (int)rec->a, &vcpu);
        kvm_vcpu_state_parts_free(&vcpu);
        return ret ? fail(in, ret, "a vCPU's state was refused") : 0;
    case MIG_REC_DEVICE:
        return in_device(in, rec);
    case MIG_REC_VERIFY:
        return in_verify(in, rec->a);
    default:
        fuzz_fail("mig_rec_check passed record type %u", rec->type);
    }
}

/* in_stream's loop. */
static int in_stream(struct in *in, size_t cap)
{
    struct mig_header got, want = mine;
    struct mig_rec rec;
    int ret = mig_reader_init(&in->rd, stream_fd, cap);

    if (ret)
        fuzz_fail("out of memory");
    ret = mig_reader_read(&in->rd, &got, sizeof(got));
    if (ret) {
        mig_reader_free(&in->rd);
        return fail(in, ret, "the stream ended inside its header");
    }
    want.flags = got.flags;
    ret = mig_header_check(&got, &want, in->why, sizeof(in->why));
    while (!ret) {
        ret = mig_reader_read(&in->rd, &rec, sizeof(rec));
        if (ret) {
            fail(in, ret, "the stream ended before its END record (truncated)");
            break;
        }
        ret = mig_rec_check(&rec, &mem, in->why, sizeof(in->why));
        if (!ret && rec.type == MIG_REC_END)
            break;
        if (!ret)
            ret = in_record(in, &rec);
        if (ret)
            fail(in, ret, "the stream ended inside a record (truncated)");
    }
    mig_reader_free(&in->rd);
    return ret;
}

static void load_stream(const uint8_t *data, size_t size)
{
    if (ftruncate(stream_fd, 0) || pwrite(stream_fd, data, size, 0) != (ssize_t)size ||
        lseek(stream_fd, 0, SEEK_SET))
        fuzz_fail("cannot fill the stream's memfd: %s", strerror(errno));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_keep_stderr();
    fuzz_log_level();
    machine_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {256 << 10, 4096, 64, 24};
    struct in in = {0};
    int ret;

    if (size < 1)
        return 0;
    load_stream(data + 1, size - 1);
    ret = in_stream(&in, caps[data[0] % 4]);
    if (ret && !in.why[0])
        fuzz_fail("a refused stream (%d) gives no reason", ret);
    for (const char *p = in.why; *p; p++)
        if ((unsigned char)*p < 0x20)
            fuzz_fail("the reason '%s' holds control byte 0x%02x", in.why, (unsigned char)*p);
    state_buf_free(&in.blob);
    return 0;
}
