#ifndef POSTERN_DELIVERY_H
#define POSTERN_DELIVERY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What the queue manager hands a delivery agent, and what comes back: one result per
   recipient (DESIGN.md 1). Plain value structs so that an agent could live in another process. */

enum delivery_status {
	DELIVERY_DONE,   /* accepted by the next hop (or delivered) */
	DELIVERY_DEFER,  /* temporary failure: retry later */
	DELIVERY_BOUNCE, /* permanent failure: report to the sender */
};

struct delivery_rcpt {
	size_t index;        /* the recipient's position in the queue file */
	const char *address; /* mailbox */
	unsigned notify;     /* smtp_notify bits, 0 when not given */
	const char *orcpt;   /* "type;xtext" as received, or NULL */
};

struct delivery_request {
	const char *id;        /* queue ID, for logs */
	const char *sender;    /* "" for the null sender */
	const char *envid;     /* xtext or NULL */
	const char *ret;       /* "FULL", "HDRS" or NULL */
	bool smtputf8;         /* the message needs SMTPUTF8 (UTF-8 addresses or headers) */
	bool eightbit;         /* BODY=8BITMIME was declared */
	int fd;                /* the queue file, open for reading */
	off_t content_off;     /* where the message starts in fd (wire form, CRLF lines) */
	uint64_t content_size;
	const struct delivery_rcpt *rcpts;
	size_t nrcpts;
};

struct delivery_result {
	size_t index;               /* as in delivery_rcpt */
	enum delivery_status status;
	int code;                   /* SMTP reply code, or 0 when there was none */
	char dsn[16];               /* RFC 3463 status, e.g. "5.1.1"; always set */
	char text[512];             /* one line: the peer's reply or our reason */
	char remote_mta[256];       /* host name or [address] of the peer, "" when none */
	bool dsn_passed;            /* the next hop took DSN: success notices are now its job */
};

/* Called on the loop thread once for a request, with one result per recipient, in request
   order. The arrays are only valid during the call. */
typedef void delivery_done_cb(void *arg, const struct delivery_result *results, size_t n);

/* Fills r as a result for rcpt with status, code, dsn and formatted text. */
void delivery_result_set(struct delivery_result *r, size_t index, enum delivery_status status, int code,
			 const char *dsn, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
