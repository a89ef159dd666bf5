#ifndef POSTERN_CLEANUP_H
#define POSTERN_CLEANUP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qfile;
struct router;

/* cleanup (DESIGN.md 1): the one place a message is normalised on its way into the queue.
   It streams content lines into a queue file, prepends the Received trace header, drops any
   Return-Path from the input (only delivery may write one), enforces the header size limit,
   and for local submissions adds Message-ID, Date and From when they are missing. With
   rewrite rules it rewrites the domains in From, To, Cc, Reply-To, Sender (and their Resent-
   forms), keeping everything else of those fields as it was. */

struct cleanup_params {
	const char *id;          /* queue ID */
	const char *hostname;    /* our name */
	const char *client_addr; /* NULL for local submissions */
	const char *client_name; /* reverse name or NULL */
	const char *helo;        /* NULL when none */
	const char *proto;       /* "ESMTP", "ESMTPS", "LMTP", ... */
	const char *tls;         /* "TLSv1.3 with cipher X" or NULL */
	const char *sender;      /* envelope sender, "" for the null sender */
	const char *for_rcpt;    /* the one recipient for "for <...>", or NULL */
	const char *full_name;   /* local submissions: display name for an added From, or NULL */
	bool local;              /* a local submission (postern sendmail) */
	bool raw;                /* write the content unaltered (maildrop: cleanup runs at pickup) */
	struct router *router;   /* its header rules, when set (router_header_rules); NULL: none */
	int64_t header_size_limit;
};

enum cleanup_status {
	CLEANUP_OK = 0,
	CLEANUP_HEADER_TOO_BIG, /* 552 5.3.4 */
	CLEANUP_WRITE_ERROR,    /* 451 4.3.0, or 452 4.3.1 when errno was ENOSPC */
};

struct cleanup;

/* Starts a message: writes the Received header into qf. Never fails (write errors stick in
   qf and show at cleanup_finish). */
struct cleanup *cleanup_new(const struct cleanup_params *params, struct qfile *qf);
/* Feeds one content line, dot-unstuffed, without its CRLF. Returns the sticky status. */
enum cleanup_status cleanup_line(struct cleanup *c, const char *line, size_t len);
/* Ends the content and writes the queue file's trailer. Returns the final status. */
enum cleanup_status cleanup_finish(struct cleanup *c);
/* Frees *c (NULL allowed). The qfile is not touched. */
void cleanup_free(struct cleanup **c);

#endif
