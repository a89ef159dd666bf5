#include "deliver/delivery.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void delivery_result_set(struct delivery_result *r, size_t index, enum delivery_status status, int code,
			 const char *dsn, const char *fmt, ...)
{
	va_list ap;
	memset(r, 0, sizeof(*r));
	r->index = index;
	r->status = status;
	r->code = code;
	snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	/* A reply is one line in logs, queue files and reports. */
	for (char *p = r->text; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	}
}
