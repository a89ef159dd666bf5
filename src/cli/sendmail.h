#ifndef POSTERN_CLI_SENDMAIL_H
#define POSTERN_CLI_SENDMAIL_H
/* Private to src/cli: state of one sendmail invocation. */
#include <stdbool.h>

#include "queue/qfile.h"
#include "util/buf.h"

struct config;
struct spool;

struct sendmail {
	bool extract, ignore_dots, smtp_stdio, eof;
	const char *sender, *full_name, *config, *ret, *envid;
	unsigned notify;
	char **rcpt_args;
	int nrcpt_args;
	int status; /* first sysexits failure while collecting recipients */
	struct config *conf;
	struct spool *spool;
	struct queue_envelope env;
	struct buf headers; /* the header block, CRLF lines */
	struct buf first_body_line;
	bool has_body_line;
	unsigned long long size;
};

/* "-bs": one SMTP session over standard input and output into maildrop/. Returns the exit
   status. */
int sendmail_smtp_stdio(struct sendmail *sm);

#endif
