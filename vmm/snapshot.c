/* Snapshots: the migration stream written to DIR/vmm-state with the VM paused, and
 * read back by a new vmm (--restore DIR) through the destination's code. */
#include "migration_priv.h"

#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int snapshot_write(struct mig_run *r)
{
    struct mig_header h;
    int ret;

    mig_run_header(r, &h, 0);
    ret = dirty_map_init(&r->dirty, r->mem);
    if (!ret)
        ret = mig_write(r->fd, &h, sizeof(h));
    if (!ret) {
        dirty_map_set_all(&r->dirty);
        ret = mig_send_dirty(r, true);
    }
    if (!ret)
        ret = mig_send_machine_state(r);
    if (!ret)
        ret = mig_send_rec(r, MIG_REC_END, 0, 0, NULL, 0);
    dirty_map_free(&r->dirty);
    return ret;
}

/* vCPUs, then devices; both resumed afterwards unless the VM was paused before. */
static int snapshot_pause(struct mig_run *r)
{
    int ret = r->ops->pause(r->opaque);

    return ret ? ret : mig_pause_devices(r);
}

static int open_snapshot_file(const char *dir, char *path, size_t plen, char *err, size_t errlen)
{
    int fd, ret;

    snprintf(path, plen, "%s/" SNAPSHOT_FILE, dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        ret = -errno;
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-ret));
        return ret;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-ret));
        return ret;
    }
    return fd;
}

int snapshot_save(struct migration *m, const char *dir, char *err, size_t errlen)
{
    struct mig_run r;
    bool was_paused;
    char path[4096];
    int fd = open_snapshot_file(dir, path, sizeof(path), err, errlen), ret;

    if (fd < 0)
        return fd;
    mig_run_init(&r, m, fd);
    was_paused = r.ops->paused(r.opaque);
    ret = snapshot_pause(&r);
    if (!ret)
        ret = snapshot_write(&r);
    if (!ret && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    if (ret)
        snprintf(err, errlen, "writing %s failed: %s", path, strerror(-ret));
    else
        pr_info("snapshot written to %s (%llu pages)", path, (unsigned long long)r.pages_sent);
    if (!was_paused) {
        mig_resume_devices(&r);
        r.ops->resume(r.opaque);
    }
    return ret;
}

void *snapshot_thread(void *arg)
{
    struct migration *m = arg;
    char err[256] = "";
    struct timespec t0, t1;
    int ret;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&m->lock);
    m->info.status = "active";
    pthread_mutex_unlock(&m->lock);
    ret = snapshot_save(m, m->snapshot_dir, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_mutex_lock(&m->lock);
    m->info.status = ret ? "failed" : "completed";
    m->info.total_time_ms =
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    snprintf(m->info.error, sizeof(m->info.error), "%s", err);
    pthread_mutex_unlock(&m->lock);
    if (ret)
        pr_err("snapshot failed: %s", err);
    return NULL;
}

int snapshot_restore(const struct migration_host *host, const char *dir, int stop_fd)
{
    char path[4096], why[200];
    int fd, ret;

    snprintf(path, sizeof(path), "%s/" SNAPSHOT_FILE, dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = -errno;
        pr_err("--restore: cannot read %s: %s", path, strerror(-ret));
        return ret;
    }
    ret = mig_receive_file(host, fd, stop_fd, why, sizeof(why));
    close(fd);
    if (ret)
        pr_err("--restore %s: %s", path, why);
    return ret;
}
