/* Migration through its host interface, without KVM: a fake host
 * (migration_fake.c) migrates over a Unix socket to the real destination code,
 * on another thread, into a second fake host: every writer's pages arrive,
 * --verify, log start/stop, refusal, cancel, max-bandwidth, snapshots, and the
 * resolver's address forms. The destination's bounds: test_migration_dest.c. */
#include "migration_fake.h"

#include "../../vmm/migration_resolve.h"
#include "../../vmm/migration_stream.h"

#include "check_main.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- full migrations ---- */

/* src migrating to a new destination d ("mig.sock"), started as start() does. */
static struct migration *run_begin(struct fake_host *src, struct dest *d, bool verify,
                                   uint64_t max_bw)
{
    struct migration_host h = host_iface(src);
    struct migration *m = migration_create(&h);

    dest_start(d, "mig.sock", -1);
    start(m, d->uri, verify, max_bw);
    return m;
}

/* Both sides' hosts and the source's migration freed, once the destination joined. */
static void end_run(struct migration *m, struct dest *d, struct fake_host *src)
{
    migration_destroy(m);
    host_destroy(&d->host);
    host_destroy(src);
}

START_TEST(every_writers_pages_arrive)
{
    struct fake_host src;
    struct dest d;
    struct migration_info info;
    struct migration *m;

    host_init(&src);
    guest_wrote(&src, 8 << 20);
    src.at_harvest = writers_after_first_pass;
    src.at_pause = writers_at_pause;
    m = run_begin(&src, &d, true, 0);
    wait_done(m, &info, 30000);
    assert_completed(&info);
    dest_join(&d);
    ck_assert_int_eq(d.ret, 0);
    assert_same_ram(&src, &d.host);
    ck_assert(info.verify_done);
    ck_assert_uint_eq(info.verify_pages_compared, PAGES);
    ck_assert_uint_eq(info.verify_pages_differ, 0);
    /* The state, by id and by vCPU, arrived. */
    ck_assert_str_eq(d.host.vcpu_loaded[0], "vcpu0-regs");
    ck_assert_str_eq(d.host.vcpu_loaded[1], "vcpu1-regs");
    ck_assert_str_eq(d.host.vm_loaded, "irqchip-pit-clock");
    ck_assert_str_eq(d.host.dev[0].loaded, "fake0-state");
    ck_assert_str_eq(d.host.dev[1].loaded, "fake1-state");
    /* The source stays paused, devices stopped; all logging is off. */
    ck_assert_int_eq(src.pauses, 1);
    ck_assert_int_eq(src.resumes, 0);
    ck_assert_int_eq(src.dev[0].pause_calls, 1);
    ck_assert_int_eq(src.slot_on, 1);
    ck_assert_int_eq(src.slot_off, 1);
    ck_assert(src.clears > 0); /* manual protection re-armed each harvest */
    ck_assert_int_eq(src.own_on, 1);
    ck_assert_ptr_null(src.own);
    end_run(m, &d, &src);
}
END_TEST

/* The downtime's breakdown: each phase where the time went, summing to the downtime
 * (so no phase is counted twice). A NIC slow to stop shows in stop-devices, a
 * destination slow to start its devices in destination; verify is timed only when it
 * ran. Lower bounds only: a loaded machine makes every phase longer. */
START_TEST(the_downtime_is_broken_down_by_phase)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    uint64_t sum = 0;

    host_init(&src);
    src.dev[0].pause_ms = 150;
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start_slow(&d, "mig.sock", -1, MIGRATION_HEADER_TIMEOUT_MS, MIGRATION_IDLE_TIMEOUT_MS,
                    250);
    start(m, d.uri, _i, 0);
    wait_done(m, &info, 30000);
    assert_completed(&info);
    dest_join(&d);
    ck_assert(info.downtime_known);
    ck_assert_uint_ge(info.phase_ms[MIGRATION_PHASE_STOP_DEVICES], 150);
    /* The load begins as its record arrives: the source may still be sending the
     * rest (its state phase) for a moment. */
    ck_assert_uint_ge(info.phase_ms[MIGRATION_PHASE_DESTINATION], 200);
    if (!_i)
        ck_assert_uint_eq(info.phase_ms[MIGRATION_PHASE_VERIFY], 0);
    for (int p = 0; p < MIGRATION_PHASES; p++)
        sum += info.phase_ms[p];
    /* Each phase is rounded to the ms on its own. */
    ck_assert_uint_le(sum, info.downtime_ms + MIGRATION_PHASES);
    ck_assert_uint_ge(sum + MIGRATION_PHASES, info.downtime_ms);
    end_run(m, &d, &src);
}
END_TEST

START_TEST(log_start_gets_a_log_and_log_stop_always_runs)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;

    host_init(&src);
    src.at_harvest = writers_after_first_pass;
    m = run_begin(&src, &d, false, 0);
    wait_done(m, &info, 30000);
    assert_completed(&info);
    dest_join(&d);
    ck_assert_int_eq(src.dev[0].log_start_calls, 1);
    ck_assert_int_ge(src.dev[0].log_fd, 0);
    ck_assert_msg(src.dev[0].log_fd_ok, "log_start's fd is not a log of %llu bytes covering RAM",
                  (unsigned long long)src.dev[0].log_size);
    ck_assert_int_eq(src.dev[0].log_stop_calls, 1);
    ck_assert_int_eq(src.dev[1].log_start_calls, 0);
    host_destroy(&d.host);
    migration_destroy(m);

    /* A destination that goes away after the header: logging had started. */
    {
        struct closing_peer peer;
        char path[128], uri[140];

        snprintf(path, sizeof(path), "%s/closing.sock", tmpdir);
        snprintf(uri, sizeof(uri), "unix:%s", path);
        peer.lfd = listen_unix(path);
        pthread_create(&peer.thread, NULL, closing_thread, &peer);
        src.at_harvest = NULL;
        guest_wrote(&src, 8 << 20);
        h = host_iface(&src);
        m = migration_create(&h);
        start(m, uri, false, 0);
        wait_done(m, &info, 10000);
        pthread_join(peer.thread, NULL);
        close(peer.lfd);
    }
    ck_assert_msg(!strcmp(info.status, "failed"), "%s", info.status);
    ck_assert_int_eq(src.dev[0].log_start_calls, 2);
    ck_assert_int_eq(src.dev[0].log_stop_calls, 2);
    ck_assert(!src.slot_logging);
    migration_destroy(m);
    host_destroy(&src);
}
END_TEST

START_TEST(verify_counts_every_page_and_names_a_corrupted_one)
{
    struct fake_host src;
    struct dest d;
    struct migration_info info;
    struct migration *m;

    host_init(&src);
    guest_wrote(&src, 16 << 20);
    src.at_harvest = writers_after_first_pass;
    src.at_pause = unlogged_write_at_pause;
    m = run_begin(&src, &d, true, 0);
    wait_done(m, &info, 30000);
    assert_completed(&info);
    dest_join(&d);
    ck_assert(info.verify_done);
    ck_assert_uint_eq(info.verify_pages_compared, PAGES);
    ck_assert_uint_eq(info.verify_pages_differ, 1);
    ck_assert_uint_eq(info.verify_nfirst, 1);
    ck_assert_msg(info.verify_first_differ[0] == corrupted_gpa, "verify named 0x%llx",
                  (unsigned long long)info.verify_first_differ[0]);
    end_run(m, &d, &src);
}
END_TEST

START_TEST(a_device_that_cannot_log_refuses_at_once)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_info info;
    struct migration_params p = {.uri = "unix:/nonexistent/never.sock"};
    struct migration *m;
    char err[256] = "";

    host_init(&src);
    src.dev[0].check_err = "fake0: the backend lacks LOG_SHMFD";
    h = host_iface(&src);
    m = migration_create(&h);
    ck_assert_int_eq(migration_start(m, &p, err, sizeof(err)), -ENOTSUP);
    ck_assert_str_eq(err, "fake0: the backend lacks LOG_SHMFD");
    migration_query(m, &info);
    ck_assert_str_eq(info.status, "none");
    ck_assert_int_eq(src.pauses + src.slot_on + src.dev[0].log_start_calls, 0);
    migration_destroy(m);
    host_destroy(&src);
}
END_TEST

static void assert_source_running(struct fake_host *src)
{
    ck_assert_int_eq(src->pauses, src->resumes);
    ck_assert(!src->paused);
    ck_assert(!src->slot_logging);
    ck_assert_int_eq(src->slot_off, 1);
    ck_assert_int_eq(src->dev[0].log_stop_calls, src->dev[0].log_start_calls);
    ck_assert_ptr_null(src->own);
}

START_TEST(cancel_mid_precopy_leaves_the_source_running)
{
    struct fake_host src;
    struct dest d;
    struct migration_info info;
    struct migration *m;
    char err[128];
    uint64_t t0;

    host_init(&src);
    guest_wrote(&src, RAM); /* 64 MiB at 8 MiB/s: 8 s of precopy */
    m = run_begin(&src, &d, false, 8 << 20);
    /* Bounded, not a fixed sleep: a loaded machine may take longer to get going. */
    for (int i = 0; i < 2000; i++) {
        migration_query(m, &info);
        if (!strcmp(info.status, "active"))
            break;
        usleep(5000);
    }
    ck_assert_str_eq(info.status, "active");
    t0 = now_ms();
    ck_assert_int_eq(migration_cancel(m, err, sizeof(err)), 0);
    wait_done(m, &info, 2000);
    ck_assert_str_eq(info.status, "cancelled");
    ck_assert_msg(now_ms() - t0 < 1000, "the cancel took %llu ms",
                  (unsigned long long)(now_ms() - t0));
    dest_join(&d);
    ck_assert_int_ne(d.ret, 0);
    ck_assert_int_eq(src.pauses, 0);
    assert_source_running(&src);
    end_run(m, &d, &src);
}
END_TEST

/* A backend that came back unable to log while logging: its writes since then are in
 * no log, and the destination would differ where no one looks. */
static const char *const gap_reason = "fake0: a backend that came back could not log";

static void gap_after_first_pass(struct fake_host *h, int n)
{
    writers_after_first_pass(h, n);
    if (n == 1)
        h->dev[0].check_err = gap_reason;
}

static void gap_at_pause(struct fake_host *h)
{
    writers_at_pause(h);
    h->dev[0].check_err = gap_reason;
}

START_TEST(a_gap_in_a_devices_log_fails_the_migration)
{
    for (int at_pause = 0; at_pause < 2; at_pause++) {
        struct fake_host src;
        struct dest d;
        struct migration_info info;
        struct migration *m;
        char want[160];

        host_init(&src);
        guest_wrote(&src, 8 << 20);
        if (at_pause)
            src.at_pause = gap_at_pause;
        else
            src.at_harvest = gap_after_first_pass;
        m = run_begin(&src, &d, false, 0);
        wait_done(m, &info, 30000);
        dest_join(&d);
        ck_assert_msg(!strcmp(info.status, "failed"), "gap %s: %s",
                      at_pause ? "at the pause" : "in the precopy", info.status);
        snprintf(want, sizeof(want), "the dirty log is incomplete: %s", gap_reason);
        ck_assert_str_eq(info.error, want);
        ck_assert_int_ne(d.ret, 0); /* the destination did not start */
        if (!at_pause)              /* found at once, not at the final stop */
            ck_assert_int_eq(src.pauses, 0);
        assert_source_running(&src);
        end_run(m, &d, &src);
    }
}
END_TEST

START_TEST(cancel_after_the_pause_resumes_the_source)
{
    struct fake_host src;
    struct mute_peer peer;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    char path[128], uri[140], err[128];

    host_init(&src);
    guest_wrote(&src, 4 << 20);
    snprintf(path, sizeof(path), "%s/mute.sock", tmpdir);
    snprintf(uri, sizeof(uri), "unix:%s", path);
    peer.lfd = listen_unix(path);
    pthread_create(&peer.thread, NULL, mute_thread, &peer);
    h = host_iface(&src);
    m = migration_create(&h);
    start(m, uri, false, 0);
    for (int i = 0; i < 1000 && !src.paused; i++)
        usleep(5000);
    ck_assert_msg(src.paused, "the source never paused");
    usleep(100000); /* it waits for the verdict now */
    ck_assert_int_eq(migration_cancel(m, err, sizeof(err)), 0);
    wait_done(m, &info, 2000);
    ck_assert_str_eq(info.status, "cancelled");
    ck_assert_int_eq(src.pauses, 1);
    ck_assert_int_eq(src.dev[0].resume_calls, 1); /* devices restarted */
    assert_source_running(&src);
    migration_destroy(m);
    pthread_join(peer.thread, NULL);
    close(peer.lfd);
    host_destroy(&src);
}
END_TEST

/* ---- max-bandwidth ---- */

START_TEST(max_bandwidth_throttles_the_precopy)
{
    struct fake_host src;
    struct dest d;
    struct migration_host h;
    struct migration_info info;
    struct migration *m;
    uint64_t t0, took;

    host_init(&src);
    guest_wrote(&src, RAM);
    h = host_iface(&src);
    m = migration_create(&h);
    dest_start(&d, "mig.sock", -1);
    t0 = now_ms();
    start(m, d.uri, false, 32 << 20);
    wait_done(m, &info, 30000);
    took = now_ms() - t0;
    assert_completed(&info);
    dest_join(&d);
    ck_assert_msg(took >= 1900, "64 MiB at 32 MiB/s took %llu ms", (unsigned long long)took);
    ck_assert_msg(info.mbps <= 32 * 1.05, "mbps %.1f over the limit", info.mbps);
    ck_assert_uint_eq(info.max_bandwidth, 32 << 20);
    ck_assert_uint_eq(info.downtime_limit_ms, MIGRATION_DEFAULT_DOWNTIME_MS);
    assert_same_ram(&src, &d.host);
    printf("64 MiB at max-bandwidth 32 MiB/s: %llu ms, %.1f MiB/s\n", (unsigned long long)took,
           info.mbps);
    end_run(m, &d, &src);
}
END_TEST

START_TEST(throttle_bucket_arithmetic)
{
    struct mig_throttle t = {0};
    uint64_t ns = 1000000000ULL;

    ck_assert_uint_eq(mig_throttle_take(&t, 0, ns, 1 << 20), 0); /* unlimited */
    /* 1 MiB at 1 MiB/s, nothing saved up: a second's wait. */
    ck_assert_uint_eq(mig_throttle_take(&t, 1 << 20, ns, 1 << 20), ns);
    /* A second later the debt is paid: the next MiB waits a second again. */
    ck_assert_uint_eq(mig_throttle_take(&t, 1 << 20, 2 * ns, 1 << 20), ns);
    /* Idle for an hour: at most a tenth of a second is saved up. */
    ck_assert_uint_eq(mig_throttle_take(&t, 1 << 20, 3600 * ns, (1 << 20) / 10), 0);
    ck_assert_uint_gt(mig_throttle_take(&t, 1 << 20, 3600 * ns, 4096), 0);
}
END_TEST

START_TEST(tunables_are_checked_and_kept)
{
    struct fake_host src;
    struct migration_host h;
    struct migration_tunables t = {.has_downtime_limit = true, .downtime_limit_ms = 2000001};
    struct migration *m;
    char err[200] = "";

    host_init(&src);
    h = host_iface(&src);
    m = migration_create(&h);
    ck_assert_int_eq(migration_set_tunables(m, &t, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "downtime-limit"), "%s", err);
    t = (struct migration_tunables){.has_max_bandwidth = true, .max_bandwidth = 1 << 20};
    ck_assert_int_eq(migration_set_tunables(m, &t, err, sizeof(err)), 0);
    migration_get_tunables(m, &t);
    ck_assert_uint_eq(t.downtime_limit_ms, 300);
    ck_assert_uint_eq(t.max_bandwidth, 1 << 20);
    migration_destroy(m);
    host_destroy(&src);
}
END_TEST

/* ---- snapshots and addresses ---- */

START_TEST(snapshot_round_trip)
{
    struct fake_host src, dst;
    struct migration_host h, hd;
    struct migration *m;
    char err[256] = "", dir[128];

    host_init(&src);
    host_init(&dst);
    guest_wrote(&src, 4 << 20);
    fill_page(&src, 0x1000000, 77);
    h = host_iface(&src);
    hd = host_iface(&dst);
    m = migration_create(&h);
    snprintf(dir, sizeof(dir), "%s/snap", tmpdir);
    ck_assert_msg(!snapshot_save(m, dir, err, sizeof(err)), "%s", err);
    ck_assert_int_eq(src.pauses, 1);
    ck_assert_int_eq(src.resumes, 1); /* it was running: it runs again */
    ck_assert_int_eq(snapshot_restore(&hd, dir, -1), 0);
    assert_same_ram(&src, &dst);
    ck_assert_str_eq(dst.dev[0].loaded, "fake0-state");
    ck_assert_str_eq(dst.vcpu_loaded[1], "vcpu1-regs");
    migration_destroy(m);
    host_destroy(&dst);
    host_destroy(&src);
}
END_TEST

START_TEST(uri_addresses)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[64];

    ck_assert_int_eq(migration_uri_addr("tcp:127.0.0.1:4444", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 4444);
    ck_assert_int_eq(migration_uri_addr("tcp:[::1]:5", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, sizeof(buf));
    ck_assert_str_eq(buf, "::1");
    ck_assert_int_eq(migration_uri_addr("unix:/tmp/x.sock", &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_UNIX);
    ck_assert_int_eq(migration_uri_addr("tcp:nohost", &ss, &len), -EINVAL);
    ck_assert_int_eq(migration_uri_addr("tcp::80", &ss, &len), -EINVAL);
    ck_assert_int_eq(migration_uri_addr("file:/x", &ss, &len), -EINVAL);
    ck_assert_int_eq(migration_uri_addr("unix:", &ss, &len), -ENAMETOOLONG);
}
END_TEST

static Suite *migration_suite(void)
{
    Suite *s = suite_create("migration");
    TCase *full = tcase_create("full"), *pure = tcase_create("pure");

    tcase_add_checked_fixture(full, tmpdir_setup, tmpdir_teardown);
    tcase_set_timeout(full, 120);
    tcase_add_test(full, every_writers_pages_arrive);
    tcase_add_test(full, log_start_gets_a_log_and_log_stop_always_runs);
    tcase_add_test(full, verify_counts_every_page_and_names_a_corrupted_one);
    tcase_add_test(full, a_device_that_cannot_log_refuses_at_once);
    tcase_add_test(full, a_gap_in_a_devices_log_fails_the_migration);
    tcase_add_test(full, cancel_mid_precopy_leaves_the_source_running);
    tcase_add_test(full, cancel_after_the_pause_resumes_the_source);
    tcase_add_loop_test(full, the_downtime_is_broken_down_by_phase, 0, 2);
    tcase_add_test(full, max_bandwidth_throttles_the_precopy);
    tcase_add_test(full, tunables_are_checked_and_kept);
    tcase_add_test(full, snapshot_round_trip);
    suite_add_tcase(s, full);
    tcase_add_test(pure, throttle_bucket_arithmetic);
    tcase_add_test(pure, uri_addresses);
    suite_add_tcase(s, pure);
    return s;
}

CHECK_MAIN(migration_suite)
