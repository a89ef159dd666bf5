#ifndef POSTERN_SMTP_CLIENT_INT_H
#define POSTERN_SMTP_CLIENT_INT_H
/* Private to src/deliver/smtp_client*.c: the agent, one delivery in progress (a "job") and one
   connection to a peer (a "conn"). A job owns its results and finds a connection; a connection
   serves one job at a time and outlives it in the cache. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "deliver/smtp_client.h"
#include "net/dns.h"

struct bufferevent;
struct event;
struct wflush;

/* Reply text kept for results and logs (the lines joined with spaces); more is cut. */
#define SMTP_CLIENT_TEXT_MAX 1024
/* A reply line longer than this without CRLF is a protocol error (RFC 5321 asks for 512). */
#define SMTP_CLIENT_LINE_MAX 65536
/* Message content is read and sent in pieces of this size, refilled when the output drains
   below SMTP_CLIENT_LOWAT, so that a large message never sits in memory whole. */
#define SMTP_CLIENT_CHUNK (64 * 1024)
#define SMTP_CLIENT_LOWAT (32 * 1024)

/* Where a connection is in its dialogue; smtp_client_session.c has one handler per state. */
enum smtp_client_state {
	SMTP_CLIENT_CONNECTING,
	SMTP_CLIENT_GREETING,
	SMTP_CLIENT_EHLO,      /* EHLO or LHLO sent */
	SMTP_CLIENT_HELO,      /* HELO sent after EHLO was refused (SMTP only) */
	SMTP_CLIENT_STARTTLS,
	SMTP_CLIENT_HANDSHAKE, /* TLS handshake in progress */
	SMTP_CLIENT_MAIL,      /* waiting for the MAIL reply (with PIPELINING: RCPTs and DATA sent) */
	SMTP_CLIENT_RCPT,
	SMTP_CLIENT_DATA,
	SMTP_CLIENT_CONTENT,   /* sending the message */
	SMTP_CLIENT_DOT,       /* waiting for the reply to the final dot (one per recipient: LMTP) */
	SMTP_CLIENT_RSET,
	SMTP_CLIENT_IDLE,      /* healthy and cached for the next delivery to the same hop */
	SMTP_CLIENT_QUIT,
	SMTP_CLIENT_DEAD,      /* closed; freed by the reaper */
};

/* The EHLO keywords this client acts on. */
struct smtp_client_ext {
	bool pipelining, size, eightbitmime, smtputf8, dsn, starttls;
	uint64_t size_max; /* SIZE parameter, 0 when none */
};

/* One reply, assembled line by line. */
struct smtp_client_reply {
	int code;      /* 0 until the first line */
	unsigned lines;
	bool done;     /* the last line has been seen */
	bool has_dsn;  /* the first line carried an enhanced status code of the code's class */
	char dsn[16];
	char text[SMTP_CLIENT_TEXT_MAX]; /* the lines, codes included, joined with spaces */
	size_t len;
	struct smtp_client_ext ext;      /* keywords found on the lines after the first */
};

/* Why an attempt or a transaction failed, in the shape of a result. */
struct smtp_client_error {
	int code;               /* the peer's reply code, 0 for our own reasons */
	char dsn[16];
	char text[512];
	char remote_mta[256];   /* "" when no peer was involved */
	const char *in_reply_to; /* the command a reply answered ("RCPT TO"), or NULL */
	bool dsn_passed;        /* the peer offered DSN, so NOTIFY went on with the message */
};

enum smtp_client_rcpt_state {
	SMTP_CLIENT_RCPT_PENDING,  /* no answer yet */
	SMTP_CLIENT_RCPT_ACCEPTED, /* RCPT got 2xx; waiting for the end of data */
	SMTP_CLIENT_RCPT_FINAL,    /* results[i] is decided */
};

/* A DNS lookup in flight. dns.h cannot cancel one, so a job that ends first only clears the
   back pointer and the callback frees the orphan. */
struct smtp_client_lookup {
	struct smtp_client_job *job;
};

struct smtp_client_job {
	struct smtp_client *client;
	struct smtp_client_job *prev, *next;
	struct smtp_nexthop hop;
	const struct delivery_request *req;
	delivery_done_cb *cb;
	void *arg;
	struct event *ev;        /* runs the start, and after the finish the callback */
	bool finished;
	int64_t start_us;
	struct delivery_result *results;
	enum smtp_client_rcpt_state *rstate;
	const char **in_reply_to; /* per recipient, for the log line */
	char relay[330];          /* "host[addr]:port" of the last peer, for logs */
	struct smtp_client_conn *conn;
	/* next hop resolution (smtp_client_hop.c) */
	struct smtp_client_lookup *lookup;
	struct dns_mx *hosts;
	size_t nhosts, host_i;
	struct sockaddr_storage *addrs;
	size_t naddrs, addr_i;
	bool attempted;           /* some address was connected to */
	bool dns_tempfail;        /* some address lookup failed temporarily */
	bool plaintext_retry;     /* the current address is being retried without STARTTLS */
	struct smtp_client_error last; /* the latest failed attempt */
};

struct smtp_client_conn {
	struct smtp_client *client;
	struct smtp_client_conn *prev, *next;
	struct smtp_client_job *job; /* NULL while idle */
	struct smtp_nexthop hop;     /* the cache key */
	enum smtp_client_state state;
	struct bufferevent *bev;
	struct wflush *wf; /* on the socket bufferevent, under any TLS filter */
	struct event *timer;
	char host[256];              /* the name connected to (MX host, hop host or socket path) */
	char addr[64];               /* the address as text, "" for a unix socket */
	char relay[330];             /* "host[addr]:port", or the socket path */
	char remote_mta[256];        /* host name, or "[addr]" when the host is an address */
	bool tls, no_starttls, reused, got_reply, broken;
	struct smtp_client_ext ext;
	struct smtp_client_reply reply;
	/* the transaction */
	bool mail_ok, dot_queued;
	size_t cursor;               /* the recipient whose RCPT (or LMTP final) reply is next */
	size_t naccepted;
	uint64_t sent;               /* content bytes read from the queue file */
	char tail[2];                /* the last two content bytes sent, for dot-stuffing */
	char *chunk;
};

struct smtp_client {
	struct event_base *base;
	struct dns *dns;
	struct smtp_client_options opts;
	char *helo_name;
	struct event *reaper;        /* frees dead connections outside their callbacks */
	struct smtp_client_job *jobs;
	struct smtp_client_conn *conns;
	bool freeing;
};

/* smtp_client.c: jobs and results */
/* Decides recipient i with e's code, dsn and text. */
void smtp_client_job_set(struct smtp_client_job *job, size_t i, enum delivery_status status,
			 const struct smtp_client_error *e);
/* Decides every recipient not yet final (accepted_only: only those whose RCPT was accepted). */
void smtp_client_job_set_open(struct smtp_client_job *job, bool accepted_only,
			      enum delivery_status status, const struct smtp_client_error *e);
/* Detaches the job from its connection and lookup; the callback runs from the loop. */
void smtp_client_job_finish(struct smtp_client_job *job);
/* Ends the job with one outcome for every recipient not yet final. */
void smtp_client_job_fail(struct smtp_client_job *job, enum delivery_status status, const char *dsn,
			  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* smtp_client_hop.c: next hop resolution and the walk over hosts and addresses */
void smtp_client_hop_start(struct smtp_client_job *job);
/* An attempt failed before a transaction started: tries the next address (or, with
   plaintext_retry, the same address once more without STARTTLS). */
void smtp_client_hop_failed(struct smtp_client_job *job, const struct smtp_client_error *e,
			    bool plaintext_retry);

/* smtp_client_conn.c: sockets, buffers, timers, TLS and the cache */
/* Starts a connection to sa for job. Returns 0, or -1 with *e_r when it failed at once. */
int smtp_client_conn_open(struct smtp_client_job *job, const char *host,
			  const struct sockaddr_storage *sa, bool no_starttls, struct smtp_client_error *e_r);
/* Queues one command line (CRLF added). */
void smtp_client_conn_send(struct smtp_client_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* (Re)starts the stage timer. */
void smtp_client_conn_arm(struct smtp_client_conn *conn, int seconds);
/* Replaces the socket buffer by a TLS client filter. Returns 0 or -1. */
int smtp_client_conn_start_tls(struct smtp_client_conn *conn);
/* Sends QUIT and closes once it is answered. */
void smtp_client_conn_quit(struct smtp_client_conn *conn);
/* Closes at once: detaches the job, frees the socket; the struct is reaped later. */
void smtp_client_conn_dispose(struct smtp_client_conn *conn);
/* Frees a connection for good, trying a last QUIT when it is healthy (smtp_client_free). */
void smtp_client_conn_destroy(struct smtp_client_conn *conn);
/* Returns an idle (or resetting) cached connection for hop, or NULL. */
struct smtp_client_conn *smtp_client_conn_take(struct smtp_client *c, const struct smtp_nexthop *hop);
/* Fills e from the current reply. */
void smtp_client_conn_reply_error(const struct smtp_client_conn *conn, const char *in_reply_to,
				  struct smtp_client_error *e);
/* Fills e with our own reason concerning this peer. */
void smtp_client_conn_error(const struct smtp_client_conn *conn, const char *dsn,
			    struct smtp_client_error *e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* smtp_client_session.c: the dialogue */
void smtp_client_session_connected(struct smtp_client_conn *conn);
void smtp_client_session_reply(struct smtp_client_conn *conn);
/* The peer went away, timed out or broke the protocol; what this means depends on the state. */
void smtp_client_session_fail(struct smtp_client_conn *conn, const struct smtp_client_error *e);
/* Starts the job's transaction on a ready connection. */
void smtp_client_session_tx_start(struct smtp_client_conn *conn);
/* Ends the transaction: the job's callback is scheduled, the connection reset or closed. */
void smtp_client_session_tx_end(struct smtp_client_conn *conn);
/* "while sending RCPT TO" and the like, for error texts. */
const char *smtp_client_session_doing(const struct smtp_client_conn *conn);

/* smtp_client_data.c: the message content */
void smtp_client_data_start(struct smtp_client_conn *conn);
/* Refills the output as it drains; queues the final dot at the end. */
void smtp_client_data_write(struct smtp_client_conn *conn);

/* smtp_client_reply.c: reply parsing (pure functions) */
void smtp_client_reply_reset(struct smtp_client_reply *r);
/* Adds one line (without CRLF). Returns 1 when the reply is complete, 0 when more lines
   follow, -1 when the line is malformed. */
int smtp_client_reply_line(struct smtp_client_reply *r, const char *line, size_t len);
/* Returns the enhanced status code of r, or one derived from the code ("4.0.0"). */
const char *smtp_client_reply_dsn(const struct smtp_client_reply *r);
/* Maps a reply code to a result: 2xx done, 5xx bounce, anything else defer. */
enum delivery_status smtp_client_reply_status(int code);

#endif
