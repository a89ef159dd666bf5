#ifndef POSTERN_SMTP_SERVER_H
#define POSTERN_SMTP_SERVER_H
#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "net/cidr.h"

struct event_base;
struct config;
struct spool;
struct committer;
struct qmgr;

/* What the SMTP/LMTP server needs from the daemon. The daemon owns it and may swap conf, tls
   and mynetworks on reload; sessions read them at the moment of use. */
struct router;
struct store_async;

struct smtp_context {
	struct event_base *base;
	const struct config *conf;
	const char *hostname;
	struct spool *spool;
	struct committer *committer;
	SSL_CTX *tls; /* NULL: STARTTLS not offered */
	struct cidr *mynetworks;
	int nmynetworks;
	/* Where accepted mail goes: SPOOL_INCOMING for the daemon; SPOOL_MAILDROP, unaltered
	   (cleanup runs at pickup), for "postern sendmail -bs". */
	const char *queue;
	bool raw;
	struct qmgr *qmgr; /* told about each message queued; NULL in sendmail -bs */
	struct router *router; /* rewrite rules and transport policy; NULL for none */
	struct store_async *store; /* aliases; NULL in sendmail -bs (no aliases there) */
};

struct smtp_server;

/* Returns a server with no sessions. */
struct smtp_server *smtp_server_new(const struct smtp_context *ctx);
/* Takes over an accepted connection and greets it (or refuses it with 421 over the limits). */
void smtp_server_accept(struct smtp_server *srv, int fd, const struct sockaddr *sa, int salen,
			bool lmtp);
/* Starts a graceful stop: idle sessions get 421 now, busy ones when their transaction ends. */
void smtp_server_drain(struct smtp_server *srv);
/* Returns the number of open sessions. */
unsigned smtp_server_sessions(const struct smtp_server *srv);
/* Closes every session at once and frees *srv (NULL allowed). Unacknowledged messages are
   discarded; the committer must be idle (committer_free first). */
void smtp_server_free(struct smtp_server **srv);

#endif
