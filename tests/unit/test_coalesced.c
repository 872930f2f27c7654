/* kvm_coalesced_drain() on a synthetic ring page: KVM's buffered writes are handed
 * over oldest first, across the wrap-around, each slot freed after its use. */
#include "../../kvm/vcpu.h"

#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

static union {
    struct kvm_coalesced_mmio_ring ring;
    uint8_t page[4096];
} r;

static uint64_t seen[2 * KVM_COALESCED_RING_ENTRIES];
static unsigned nseen;

static void record(void *opaque, const struct kvm_coalesced_mmio *w)
{
    (void)opaque;
    ck_assert_uint_eq(w->pio, 1);
    ck_assert_uint_eq(w->len, 4);
    seen[nseen++] = w->phys_addr;
}

/* KVM's side: one write at the producer index. */
static void produce(uint64_t port)
{
    struct kvm_coalesced_mmio *w = &r.ring.coalesced_mmio[r.ring.last];

    *w = (struct kvm_coalesced_mmio){.phys_addr = port, .len = 4, .pio = 1};
    r.ring.last = (r.ring.last + 1) % KVM_COALESCED_RING_ENTRIES;
}

START_TEST(empty_ring_hands_nothing)
{
    memset(&r, 0, sizeof(r));
    nseen = 0;
    ck_assert_uint_eq(kvm_coalesced_drain(&r.ring, record, NULL), 0);
    ck_assert_uint_eq(nseen, 0);
}
END_TEST

START_TEST(writes_come_out_in_order_across_the_wrap)
{
    const unsigned start = KVM_COALESCED_RING_ENTRIES - 3;

    memset(&r, 0, sizeof(r));
    nseen = 0;
    r.ring.first = r.ring.last = start; /* three slots before the end, then wrap */
    for (unsigned i = 0; i < 7; i++)
        produce(0xcf8 + i);
    ck_assert_uint_eq(kvm_coalesced_drain(&r.ring, record, NULL), 7);
    for (unsigned i = 0; i < 7; i++)
        ck_assert_uint_eq(seen[i], 0xcf8 + i);
    ck_assert_uint_eq(r.ring.first, r.ring.last);
    ck_assert_uint_eq(r.ring.first, 4);
    produce(0x1234);
    ck_assert_uint_eq(kvm_coalesced_drain(&r.ring, record, NULL), 1);
    ck_assert_uint_eq(seen[7], 0x1234);
}
END_TEST

START_TEST(a_corrupt_index_stops_the_drain)
{
    memset(&r, 0, sizeof(r));
    nseen = 0;
    r.ring.first = KVM_COALESCED_RING_ENTRIES + 5; /* never from KVM: nothing is read */
    r.ring.last = 2;
    ck_assert_uint_eq(kvm_coalesced_drain(&r.ring, record, NULL), 0);
}
END_TEST

static Suite *coalesced_suite(void)
{
    Suite *s = suite_create("coalesced");
    TCase *tc = tcase_create("ring");

    tcase_add_test(tc, empty_ring_hands_nothing);
    tcase_add_test(tc, writes_come_out_in_order_across_the_wrap);
    tcase_add_test(tc, a_corrupt_index_stops_the_drain);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(coalesced_suite)
