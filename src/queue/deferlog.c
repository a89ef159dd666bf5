#include "queue/deferlog.h"

#include <string.h>

void deferlog_write(FILE *f, const struct deferlog_entry *e)
{
	fprintf(f, "%zu %s %d %lld %s %s\n", e->index, e->dsn, e->code, (long long)e->when_us,
		e->remote[0] ? e->remote : "-", e->text);
}

int deferlog_parse(const char *line, struct deferlog_entry *e)
{
	int off = 0;
	long long when;
	memset(e, 0, sizeof(*e));
	if (sscanf(line, "%zu %15s %d %lld %255s %n", &e->index, e->dsn, &e->code, &when, e->remote, &off) < 5 ||
	    off == 0)
		return -1;
	e->when_us = when;
	if (strcmp(e->remote, "-") == 0)
		e->remote[0] = '\0';
	snprintf(e->text, sizeof(e->text), "%.*s", (int)strcspn(line + off, "\r\n"), line + off);
	return 0;
}
