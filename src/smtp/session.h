#ifndef POSTERN_SMTP_SESSION_H
#define POSTERN_SMTP_SESSION_H
/* Private to src/smtp: one SMTP or LMTP session. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "queue/qfile.h"
#include "smtp/command.h"
#include "smtp/server.h"
#include "util/buf.h"

struct bufferevent;
struct wflush;
struct cleanup;

enum session_state {
	SESSION_COMMAND, /* reading command lines */
	SESSION_DATA,    /* reading message content after 354 */
	SESSION_COMMIT,  /* content complete, waiting for the queue file to be durable */
	SESSION_LOOKUP,  /* RCPT waiting for the store's answer (aliases) */
	SESSION_CLOSING, /* flushing the last replies, then freed */
};

/* Why a message's content is refused at the end of DATA; the first problem wins. */
enum session_content_error {
	CONTENT_OK,
	CONTENT_TOO_BIG,      /* 552 5.3.4 */
	CONTENT_LINE_TOO_LONG,/* 554 5.6.0 */
	CONTENT_BARE_NEWLINE, /* 554 5.6.0: bare CR or LF (RFC 5321 2.3.8) */
	CONTENT_NUL,          /* 554 5.6.0 */
	CONTENT_HEADER_TOO_BIG, /* 552 5.3.4 */
	CONTENT_WRITE_ERROR,  /* 451 4.3.0 / 452 4.3.1 */
};

struct session_counts {
	unsigned helo, ehlo, mail, rcpt, data, rset, quit, starttls, other, errors_total;
};

struct session {
	struct smtp_server *srv;
	const struct smtp_context *ctx;
	struct session *prev, *next;
	struct bufferevent *bev;
	struct wflush *wf; /* on the socket bufferevent, under any TLS filter */
	bool held; /* the message in commit goes to hold/ (a hold: rule) */
	char **accepted; /* each accepted RCPT as the client wrote it: LMTP answers these after
			    DATA, one line each, however many recipients an alias made of one */
	size_t naccepted;
	struct event *timer;
	enum session_state state;
	bool lmtp, local_client, esmtp, tls, greeted, skip_line, draining, free_after_commit;
	struct sockaddr_storage sa;
	char addr[64];
	char helo[PROTO_HELO_MAX + 1];
	char tls_info[160];
	unsigned errors;
	unsigned linger_ticks; /* 10 ms ticks spent flushing the last reply before closing */
	struct session_counts counts;
	struct smtp_offer offer;
	/* the mail transaction */
	bool in_tx, tx_smtputf8;
	char id[QUEUE_ID_LEN + 1];
	struct queue_envelope env;
	unsigned rcpt_rejected;
	/* the DATA phase */
	struct qfile *qf;
	struct cleanup *cleanup;
	uint64_t data_size;
	enum session_content_error content_error;
	struct buf line;
};

/* session.c: I/O plumbing */
void session_setup_io(struct session *s, int fd);
void session_reply(struct session *s, int code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A reply for an error the client made; counts toward smtp_error_limit. */
void session_reply_error(struct session *s, int code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void session_reply_parse_error(struct session *s, const struct smtp_error *err);
void session_close(struct session *s);
void session_touch(struct session *s);
void session_start_tls(struct session *s);
void session_resume(struct session *s);
bool session_client_trusted(const struct session *s);

/* session_cmd.c */
void session_greet(struct session *s);
void session_command(struct session *s, const char *line, size_t len);
void session_reset_tx(struct session *s);

/* session_rcpt.c */
void session_rcpt(struct session *s, const char *arg);
/* Forgets the accepted RCPTs (at the end of a transaction). */
void session_rcpt_clear(struct session *s);

/* session_data.c */
void session_data_start(struct session *s);
/* Consumes DATA input; returns true when it made progress and should be called again. */
bool session_data_read(struct session *s);

/* server.c */
void smtp_server_unlink(struct smtp_server *srv, struct session *s);
bool smtp_server_draining(const struct smtp_server *srv);

#endif
