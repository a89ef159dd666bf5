#ifndef POSTERN_NDR_H
#define POSTERN_NDR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Delivery status notifications (RFC 3464 with RFC 3461's rules, RFC 6522 multipart/report):
   the non-delivery report sent when recipients bounce or expire, delay warnings, and success
   notices for NOTIFY=SUCCESS. */

enum ndr_kind { NDR_FAILURE, NDR_DELAY, NDR_SUCCESS };

struct ndr_rcpt {
	const char *address;     /* Final-Recipient: rfc822;address */
	const char *orcpt;       /* "type;xtext" as received (Original-Recipient), or NULL */
	const char *action;      /* "failed", "delayed", "delivered", "relayed", "expanded" */
	const char *status;      /* RFC 3463 code, e.g. "5.1.1" */
	int code;                /* SMTP code of the remote reply, 0 when none */
	const char *diagnostic;  /* the remote reply or our reason (one line); Diagnostic-Code
				    "smtp" with a code, "X-Postern" (ours) without */
	const char *remote_mta;  /* host name or NULL */
	int64_t last_attempt_us; /* 0 when never attempted */
	int64_t will_retry_until_us; /* for "delayed": the expiry time; 0 otherwise */
};

struct ndr_params {
	enum ndr_kind kind;
	const char *reporting_mta; /* our host name */
	const char *queue_id;      /* the original message's queue ID */
	const char *envid;         /* ENVID xtext as received, or NULL */
	int64_t arrival_us;        /* the original message's arrival */
	const char *to;            /* the original envelope sender: the report's recipient */
	const char *ret;           /* "FULL", "HDRS" or NULL; see ndr_compose for what is returned */
	int64_t now_us;            /* Date of the report */
	const char *message_id;    /* Message-ID to give the report, without <> */
};

/* A failure report for a message sent without RET returns the whole message up to this size,
   only its header above it (RFC 3461 4.3 leaves the choice to the MTA). */
#define NDR_RETURN_FULL_MAX (64 * 1024)

/* Where the report's bytes go; returns 0 or -1. */
typedef int ndr_write_fn(void *arg, const void *data, size_t n);

/* Writes the whole report message (CRLF lines of at most 998 octets): headers (From:
   MAILER-DAEMON@reporting_mta, To, Subject, Date, Message-ID, Auto-Submitted: auto-replied,
   MIME), a human-readable part, the message/delivery-status part and the original message or
   its headers, read from fd at content_off (content_size bytes, wire form) and streamed in
   chunks. ENVID and ORCPT are reported xtext-decoded (RFC 3461 6.3).
   What is returned: a failure report returns the whole message for RET=FULL, its header for
   RET=HDRS, and without RET the whole message up to NDR_RETURN_FULL_MAX; delay and success
   reports return the header only (RFC 3461 6.2). Content that cannot be carried unchanged (a
   NUL or a line over 998 octets) falls back to the header, a header like that to nothing;
   an empty message is not returned. 8-bit content goes as "8bit" (message/rfc822, or
   message/global and message/global-headers when the header itself is 8-bit, RFC 6533), so
   the report then needs 8BITMIME/SMTPUTF8 like the original did; otherwise it is 7-bit (the
   text part goes quoted-printable when an address or reply in it is UTF-8).
   Returns 0, or -1 when an argument is missing (to, reporting_mta, an address, n == 0), or
   writing or reading failed. */
int ndr_compose(const struct ndr_params *p, const struct ndr_rcpt *rcpts, size_t n, int fd,
		off_t content_off, uint64_t content_size, ndr_write_fn *write, void *arg);

#endif
