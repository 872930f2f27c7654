/* The migration's state and its control: create/destroy, start/cancel/query and
 * the tunables (see migration.h). The source's work is in migration_source.c. */
#include "migration_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void *migration_source_thread(void *arg); /* migration_source.c */

const char *const migration_phase_names[MIGRATION_PHASES] = {
    [MIGRATION_PHASE_PAUSE] = "pause",
    [MIGRATION_PHASE_STOP_DEVICES] = "stop-devices",
    [MIGRATION_PHASE_FINAL_PAGES] = "final-pages",
    [MIGRATION_PHASE_VERIFY] = "verify",
    [MIGRATION_PHASE_STATE] = "state",
    [MIGRATION_PHASE_DESTINATION] = "destination",
};

uint64_t mig_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t mig_now_ms(void)
{
    return mig_now_us() / 1000;
}

struct migration *migration_create(const struct migration_host *host)
{
    struct migration *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->host = *host;
    pthread_mutex_init(&m->lock, NULL);
    m->info.status = "none";
    m->fd = -1;
    m->own_log.log.fd = -1;
    m->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->stop_efd < 0) {
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
    }
    m->tune.downtime_limit_ms = MIGRATION_DEFAULT_DOWNTIME_MS;
    m->max_rounds = MIG_DEFAULT_MAX_ROUNDS;
    m->ignore_backend_log = getenv("VMM_TEST_MIGRATION_IGNORE_BACKEND_LOG") != NULL;
    return m;
}

/* Wakes a thread blocked on the destination. */
static void shut_stream(struct migration *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->fd >= 0)
        shutdown(m->fd, SHUT_RDWR);
    pthread_mutex_unlock(&m->lock);
}

static void cancel_source(struct migration *m)
{
    atomic_store(&m->cancel, true);
    shut_stream(m);
}

void migration_interrupt(struct migration *m)
{
    uint64_t one = 1;

    if (!m)
        return;
    cancel_source(m);
    if (write(m->stop_efd, &one, sizeof(one)) < 0)
        pr_debug("migration: stop eventfd: %s", strerror(errno));
}

int migration_stop_fd(struct migration *m)
{
    return m->stop_efd;
}

void migration_destroy(struct migration *m)
{
    if (!m)
        return;
    if (m->thread_started) {
        cancel_source(m);
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
    if (m->host.ops->own_log)
        m->host.ops->own_log(m->host.opaque, NULL);
    dirty_own_log_destroy(&m->own_log);
    close(m->stop_efd);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void migration_query(struct migration *m, struct migration_info *info)
{
    pthread_mutex_lock(&m->lock);
    *info = m->info;
    info->downtime_limit_ms = m->tune.downtime_limit_ms;
    info->max_bandwidth = m->tune.max_bandwidth;
    pthread_mutex_unlock(&m->lock);
}

int migration_check_tunables(const struct migration_tunables *t, char *why, size_t len)
{
    if (t->has_downtime_limit && t->downtime_limit_ms > MIGRATION_MAX_DOWNTIME_MS) {
        snprintf(why, len, "downtime-limit %llu ms is over the maximum of %u ms",
                 (unsigned long long)t->downtime_limit_ms, MIGRATION_MAX_DOWNTIME_MS);
        return -EINVAL;
    }
    return 0;
}

int migration_set_tunables(struct migration *m, const struct migration_tunables *t, char *err,
                           size_t errlen)
{
    int ret = migration_check_tunables(t, err, errlen);

    if (ret)
        return ret;
    pthread_mutex_lock(&m->lock);
    if (t->has_downtime_limit)
        m->tune.downtime_limit_ms = t->downtime_limit_ms;
    if (t->has_max_bandwidth)
        m->tune.max_bandwidth = t->max_bandwidth;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void migration_get_tunables(struct migration *m, struct migration_tunables *t)
{
    pthread_mutex_lock(&m->lock);
    *t = m->tune;
    pthread_mutex_unlock(&m->lock);
    t->has_downtime_limit = t->has_max_bandwidth = true;
}

/* Every device that writes guest RAM behind vmm's back must be able to log it;
 * the first that cannot refuses the migration with its reason. */
static int check_devices(struct migration *m, char *err, size_t len)
{
    struct device *const *devs;
    unsigned n = m->host.ops->devices(m->host.opaque, &devs);

    for (unsigned i = 0; i < n; i++) {
        int ret = devs[i]->ops->log_check ? devs[i]->ops->log_check(devs[i], err, len) : 0;

        if (ret)
            return ret;
    }
    return 0;
}

static int check_can_start(struct migration *m, char *err, size_t errlen)
{
    const char *st;

    pthread_mutex_lock(&m->lock);
    st = m->info.status;
    pthread_mutex_unlock(&m->lock);
    if (!strcmp(st, "setup") || !strcmp(st, "active")) {
        snprintf(err, errlen, "a migration is already running");
        return -EBUSY;
    }
    if (!strcmp(st, "completed")) {
        snprintf(err, errlen, "this VM has migrated already");
        return -EINVAL;
    }
    return check_devices(m, err, errlen) ? -ENOTSUP : 0;
}

/* The job's thread: created where the sandbox allows it (the host's spawn). */
static int start_thread(struct migration *m, void *(*fn)(void *), char *err, size_t errlen)
{
    int ret = m->host.ops->spawn ? m->host.ops->spawn(m->host.opaque, &m->thread, fn, m)
                                 : -pthread_create(&m->thread, NULL, fn, m);

    if (ret) {
        pthread_mutex_lock(&m->lock);
        m->info.status = "failed";
        pthread_mutex_unlock(&m->lock);
        snprintf(err, errlen, "cannot start the migration thread: %s", strerror(-ret));
        return ret;
    }
    m->thread_started = true;
    return 0;
}

int migration_start(struct migration *m, const struct migration_params *p, char *err, size_t errlen)
{
    int ret = check_can_start(m, err, errlen);

    if (!ret)
        ret = migration_check_tunables(&p->tune, err, errlen);
    if (ret)
        return ret;
    if (m->thread_started)
        pthread_join(m->thread, NULL);
    m->thread_started = false;
    migration_set_tunables(m, &p->tune, err, errlen);
    pthread_mutex_lock(&m->lock);
    memset(&m->info, 0, sizeof(m->info));
    m->info.status = "setup";
    m->info.total_pages = m->host.ops->memory(m->host.opaque)->size / 4096;
    m->params = *p;
    pthread_mutex_unlock(&m->lock);
    atomic_store(&m->cancel, false);
    return start_thread(m, migration_source_thread, err, errlen);
}

int snapshot_start(struct migration *m, const char *dir, char *err, size_t errlen)
{
    int ret = check_can_start(m, err, errlen);

    if (ret)
        return ret;
    if (strlen(dir) >= sizeof(m->snapshot_dir)) {
        snprintf(err, errlen, "the snapshot directory's name is too long");
        return -ENAMETOOLONG;
    }
    if (m->thread_started)
        pthread_join(m->thread, NULL);
    m->thread_started = false;
    pthread_mutex_lock(&m->lock);
    memset(&m->info, 0, sizeof(m->info));
    m->info.status = "setup";
    m->info.snapshot = true;
    m->info.total_pages = m->host.ops->memory(m->host.opaque)->size / 4096;
    snprintf(m->snapshot_dir, sizeof(m->snapshot_dir), "%s", dir);
    pthread_mutex_unlock(&m->lock);
    atomic_store(&m->cancel, false);
    return start_thread(m, snapshot_thread, err, errlen);
}

int migration_cancel(struct migration *m, char *err, size_t errlen)
{
    struct migration_info info;

    migration_query(m, &info);
    if (strcmp(info.status, "setup") && strcmp(info.status, "active")) {
        snprintf(err, errlen, "no migration is running (status %s)", info.status);
        return -EINVAL;
    }
    cancel_source(m);
    return 0;
}
