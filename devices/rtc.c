#include "rtc.h"

#include "../common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

enum {
    RTC_SECONDS = 0x00,
    RTC_MINUTES = 0x02,
    RTC_HOURS = 0x04,
    RTC_WEEKDAY = 0x06,
    RTC_DAY = 0x07,
    RTC_MONTH = 0x08,
    RTC_YEAR = 0x09,
    RTC_REG_A = 0x0a,
    RTC_REG_B = 0x0b,
    RTC_REG_C = 0x0c,
    RTC_REG_D = 0x0d,
    RTC_CENTURY = 0x32,
};

#define REG_A_DIVIDER_32K 0x20 /* UIP (bit 7) stays clear: an update is never in progress */
#define REG_A_RATE_1024HZ 0x06
#define REG_B_24H 0x02
#define REG_B_BINARY 0x04
#define REG_D_VALID_RAM 0x80

static struct rtc *to_rtc(struct device *dev)
{
    return (struct rtc *)((char *)dev - offsetof(struct rtc, dev));
}

static uint8_t rtc_encode(const struct rtc *rtc, int v)
{
    if (rtc->cmos[RTC_REG_B] & REG_B_BINARY)
        return (uint8_t)v;
    return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t rtc_clock_field(const struct rtc *rtc, uint8_t index)
{
    time_t t = rtc->now();
    struct tm tm;

    gmtime_r(&t, &tm);
    switch (index) {
    case RTC_SECONDS:
        return rtc_encode(rtc, tm.tm_sec);
    case RTC_MINUTES:
        return rtc_encode(rtc, tm.tm_min);
    case RTC_HOURS:
        return rtc_encode(rtc, tm.tm_hour); /* 24-hour mode only */
    case RTC_WEEKDAY:
        return rtc_encode(rtc, tm.tm_wday + 1);
    case RTC_DAY:
        return rtc_encode(rtc, tm.tm_mday);
    case RTC_MONTH:
        return rtc_encode(rtc, tm.tm_mon + 1);
    case RTC_YEAR:
        return rtc_encode(rtc, tm.tm_year % 100);
    default:
        return rtc_encode(rtc, (tm.tm_year + 1900) / 100); /* RTC_CENTURY */
    }
}

static bool rtc_is_clock_field(uint8_t index)
{
    return index == RTC_SECONDS || index == RTC_MINUTES || index == RTC_HOURS ||
           index == RTC_WEEKDAY || index == RTC_DAY || index == RTC_MONTH || index == RTC_YEAR ||
           index == RTC_CENTURY;
}

static uint8_t rtc_read_reg(struct rtc *rtc, uint8_t index)
{
    if (rtc_is_clock_field(index))
        return rtc_clock_field(rtc, index);
    if (index == RTC_REG_C) /* no interrupt sources, so no flags */
        return 0;
    return rtc->cmos[index];
}

static void rtc_write_reg(struct rtc *rtc, uint8_t index, uint8_t val)
{
    if (rtc_is_clock_field(index))
        return; /* the guest cannot set the host's clock */
    switch (index) {
    case RTC_REG_A:
        rtc->cmos[index] = val & 0x7f; /* UIP is read-only */
        break;
    case RTC_REG_B:
        rtc->cmos[index] = (val & (REG_B_BINARY | REG_B_24H)) | REG_B_24H;
        break;
    case RTC_REG_C:
    case RTC_REG_D: /* read-only */
        break;
    default:
        rtc->cmos[index] = val;
        break;
    }
}

static void rtc_read(struct device *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
    struct rtc *rtc = to_rtc(dev);

    memset(data, 0xff, len);
    pthread_mutex_lock(&rtc->lock);
    data[0] = offset == 0 ? rtc->index : rtc_read_reg(rtc, rtc->index);
    pthread_mutex_unlock(&rtc->lock);
}

static void rtc_write(struct device *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
    struct rtc *rtc = to_rtc(dev);

    (void)len;
    pthread_mutex_lock(&rtc->lock);
    if (offset == 0)
        rtc->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
    else
        rtc_write_reg(rtc, rtc->index, data[0]);
    pthread_mutex_unlock(&rtc->lock);
}

static void rtc_reset_state(struct rtc *rtc)
{
    memset(rtc->cmos, 0, sizeof(rtc->cmos));
    rtc->index = 0;
    rtc->cmos[RTC_REG_A] = REG_A_DIVIDER_32K | REG_A_RATE_1024HZ;
    rtc->cmos[RTC_REG_B] = REG_B_24H;
    rtc->cmos[RTC_REG_D] = REG_D_VALID_RAM;
}

static void rtc_reset(struct device *dev)
{
    struct rtc *rtc = to_rtc(dev);

    pthread_mutex_lock(&rtc->lock);
    rtc_reset_state(rtc);
    pthread_mutex_unlock(&rtc->lock);
}

static int rtc_save(struct device *dev, struct state_buf *out)
{
    struct rtc *rtc = to_rtc(dev);
    int ret;

    pthread_mutex_lock(&rtc->lock);
    ret = state_buf_put(out, &rtc->index, 1);
    if (!ret)
        ret = state_buf_put(out, rtc->cmos, sizeof(rtc->cmos));
    pthread_mutex_unlock(&rtc->lock);
    return ret;
}

/* The registers as guest writes leave them (rtc_write_reg): UIP clear in A, B with 24H
 * and nothing but 24H and BINARY, C and D as reset made them (read-only), an index
 * without the NMI bit. A guest would spin on UIP, or read 12-hour times as 24-hour. */
static bool rtc_state_reachable(const uint8_t *data)
{
    const uint8_t *cmos = data + 1;

    return data[0] < 0x80 && !(cmos[RTC_REG_A] & 0x80) &&
           cmos[RTC_REG_B] == ((cmos[RTC_REG_B] & REG_B_BINARY) | REG_B_24H) && !cmos[RTC_REG_C] &&
           cmos[RTC_REG_D] == REG_D_VALID_RAM;
}

static int rtc_load(struct device *dev, const uint8_t *data, size_t len)
{
    struct rtc *rtc = to_rtc(dev);

    if (len != 1 + RTC_CMOS_SIZE) {
        pr_err("rtc: saved state has %zu bytes, expected %d", len, 1 + RTC_CMOS_SIZE);
        return -EINVAL;
    }
    if (!rtc_state_reachable(data)) {
        pr_err("rtc: saved state is corrupt (index 0x%02x, registers A-D 0x%02x 0x%02x 0x%02x "
               "0x%02x)",
               data[0], data[1 + RTC_REG_A], data[1 + RTC_REG_B], data[1 + RTC_REG_C],
               data[1 + RTC_REG_D]);
        return -EINVAL;
    }
    pthread_mutex_lock(&rtc->lock);
    rtc->index = data[0];
    memcpy(rtc->cmos, data + 1, RTC_CMOS_SIZE);
    pthread_mutex_unlock(&rtc->lock);
    return 0;
}

static const struct device_ops rtc_ops = {
    .read = rtc_read,
    .write = rtc_write,
    .reset = rtc_reset,
    .save = rtc_save,
    .load = rtc_load,
};

int rtc_init(struct rtc *rtc, time_t (*now)(void))
{
    int ret;

    memset(rtc, 0, sizeof(*rtc));
    ret = pthread_mutex_init(&rtc->lock, NULL);
    if (ret)
        return -ret;
    rtc->dev = (struct device){.id = "rtc", .ops = &rtc_ops};
    rtc->now = now;
    rtc_reset_state(rtc);
    return 0;
}

void rtc_destroy(struct rtc *rtc)
{
    pthread_mutex_destroy(&rtc->lock);
}
