/* The CMOS real-time clock at 0x70/0x71 (MC146818): the guest reads the host's
 * UTC time from it. Without it Linux's rtc_cmos driver spins for seconds on a
 * port that reads all ones. No alarms or periodic interrupts. */
#ifndef VMM_DEVICES_RTC_H
#define VMM_DEVICES_RTC_H

#include "device.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define RTC_INDEX_PORT 0x70
#define RTC_NR_PORTS 2
#define RTC_CMOS_SIZE 128

struct rtc {
    struct device dev;
    pthread_mutex_t lock;
    uint8_t index;
    uint8_t cmos[RTC_CMOS_SIZE];
    time_t (*now)(void); /* the clock, replaceable in tests */
};

int rtc_init(struct rtc *rtc, time_t (*now)(void));
void rtc_destroy(struct rtc *rtc);

#endif
