#include "util/timeutil.h"

#include <stdio.h>
#include <sys/time.h>

int64_t time_now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Day and month names are spelled out by hand: strftime's %a/%b follow the locale, and
   RFC 5322 wants the English ones. */
char *time_rfc5322(time_t t, char *out, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	char zone[8];
	localtime_r(&t, &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(out, len, "%s, %d %s %04d %02d:%02d:%02d %s", days[tm.tm_wday], tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
	return out;
}
