#ifndef POSTERN_SMTP_CLIENT_H
#define POSTERN_SMTP_CLIENT_H
#include <stdbool.h>

#include <openssl/ssl.h>

#include "deliver/delivery.h"

struct event_base;
struct dns;

/* The SMTP and LMTP client delivery agent: delivers one request to one next hop, trying its
   MX hosts and addresses in order, with PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN pass-through
   and opportunistic or mandatory STARTTLS, and reports one result per recipient. */

/* NONE: never STARTTLS. MAY: STARTTLS when offered and a context is set; a refused STARTTLS
   goes on in plaintext, a failed handshake reconnects to the same address once without TLS
   (as Postfix does). ENCRYPT: no TLS, no mail (DEFER 4.7.4; a failed handshake 4.7.5, after
   trying the other addresses). Neither checks the peer's name: that is the context's job. */
enum smtp_tls_policy { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT };

struct smtp_nexthop {
	bool lmtp;                 /* LMTP instead of SMTP */
	bool mx;                   /* look up MX records of host (else host is used directly) */
	char host[256];            /* domain, host name, IP address, or unix socket path (lmtp) */
	bool unix_socket;          /* host is a unix socket path (LMTP only) */
	int port;                  /* 25 by default, 24 for LMTP */
	enum smtp_tls_policy tls;
};

struct smtp_client_options {
	const char *helo_name;     /* our host name for EHLO/LHLO */
	int connect_timeout;       /* seconds */
	int helo_timeout;          /* greeting and EHLO replies */
	int command_timeout;       /* MAIL, RCPT and other replies */
	int data_timeout;          /* while sending content, per write progress */
	int data_done_timeout;     /* the reply to the final dot */
	int connection_reuse_time; /* seconds a connection is kept idle after a transaction (and
				      an RSET) for the next delivery to the same next hop (same
				      lmtp, mx, host, port and tls); 0: QUIT after each one */
	SSL_CTX *tls;              /* client context for STARTTLS, NULL: no TLS; it decides on
				      certificate verification */
};

struct smtp_client;

/* Returns an agent using dns for MX and address lookups. Timeouts of 0 take Postfix's
   defaults (30, 300, 300, 180, 600 seconds); helo_name NULL means "localhost". */
struct smtp_client *smtp_client_new(struct event_base *base, struct dns *dns,
				    const struct smtp_client_options *opts);
/* Replaces the options (a reload): connections and deliveries started afterwards use them. */
void smtp_client_set_options(struct smtp_client *c, const struct smtp_client_options *opts);
/* Delivers req to hop; cb runs exactly once on the loop (never inside this call) with
   per-recipient results. The request and its strings must stay valid until then. A transport
   failure before any transaction (connect, greeting, EHLO, TLS) moves on to the next address
   or MX host and defers when none is left; only replies to MAIL, RCPT and DATA bounce. */
void smtp_client_deliver(struct smtp_client *c, const struct smtp_nexthop *hop,
			 const struct delivery_request *req, delivery_done_cb *cb, void *arg);
/* Parses a next hop: "[host]:port" (brackets: no MX lookup), "host:port", "host", "domain"
   for MX (SMTP; LMTP never looks up MX), "[ipv6addr]:port" or "[ipv6:addr]", an unbracketed
   IPv4 address (no MX), "unix:/path" (LMTP), an optional "inet:" prefix. The port defaults to
   25 (24 for LMTP); tls to SMTP_TLS_MAY for SMTP and SMTP_TLS_NONE for LMTP, for the caller to
   change. Returns 0, or -1 with *error_r (static text). */
int smtp_nexthop_parse(const char *spec, bool lmtp, struct smtp_nexthop *hop_r, const char **error_r);
/* Ends (deferred) every delivery that has no connection yet: still resolving or about to
   connect. A shutdown then waits only for transactions in progress. */
void smtp_client_stop_waiting(struct smtp_client *c);
/* Closes cached connections (with a best-effort QUIT) and frees *c; requests in progress get
   DEFER 4.4.2 results first, their callbacks running inside this call. */
void smtp_client_free(struct smtp_client **c);

#endif
