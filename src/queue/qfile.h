#ifndef POSTERN_QFILE_H
#define POSTERN_QFILE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/queue_id.h"

struct spool;

/* A queue file (DESIGN.md 3) is self-describing: a text envelope of "key value" records, one
   "rcpt" record per recipient with a one-letter state that delivery updates in place, the
   line "content", the message in wire form (CRLF lines, dot-unstuffed), and a fixed-length
   trailer "\nPOSTERN-END <16 hex digits of the content size>\n". A file whose trailer does not
   match its size is torn or foreign. */

#define QFILE_MAGIC "POSTERN-QUEUE 1"
#define QFILE_TRAILER_LEN 30

/* A recipient's state, updated in place: queued (still to deliver), done (delivered), bounced
   (failed for good and reported, or nothing to report). */
enum qfile_rcpt_state { QFILE_RCPT_QUEUED = 'Q', QFILE_RCPT_DONE = 'D', QFILE_RCPT_BOUNCED = 'B' };

struct queue_rcpt {
	char *address;   /* mailbox, never empty */
	unsigned notify; /* smtp_notify bits */
	char *orcpt;     /* "type;xtext" as received, or NULL */
	char state;      /* enum qfile_rcpt_state */
	off_t state_off; /* where the state letter is in the file (set by qfile_load) */
	char *refusal;   /* "CODE D.D.D text": refused at intake (an alias loop, an error: target),
			    reported by the queue manager like a delivery failure (2xx: done,
			    QUEUE_DISCARDED); or NULL */
};

struct queue_envelope {
	char id[QUEUE_ID_LEN + 1];
	int64_t arrival_us;
	char *origin;      /* "smtp", "lmtp" or "sendmail" */
	char *client_addr; /* may be NULL */
	char *helo;        /* may be NULL */
	char *proto;       /* "SMTP", "ESMTPS", "LMTP", "local", ... */
	char *sender;      /* "" for the null sender */
	char *envid;       /* xtext as received, or NULL */
	char *ret;         /* "FULL", "HDRS" or NULL */
	char *body;        /* "7BIT", "8BITMIME" or NULL */
	char *full_name;   /* sendmail -F: display name for an added From header, or NULL */
	bool smtputf8;
	struct queue_rcpt *rcpts;
	size_t nrcpts;
	size_t rcpts_cap;
};

/* The refusal of a recipient whose alias only discards: reported delivered, sent nowhere. */
#define QUEUE_DISCARDED "250 2.0.0 discarded by its alias"
/* Sets the refusal of env's last recipient ("550 5.4.6 text", copied). */
void queue_envelope_refuse_last(struct queue_envelope *env, const char *refusal);
/* Appends a recipient (strings copied; orcpt may be NULL). */
void queue_envelope_add_rcpt(struct queue_envelope *env, const char *address, unsigned notify,
			     const char *orcpt);
/* Sets *field to a copy of value (NULL allowed), freeing the old value. */
void queue_envelope_set(char **field, const char *value);
/* Frees every string and recipient; the struct is zeroed. */
void queue_envelope_clear(struct queue_envelope *env);

struct qfile;

/* Creates the file for env->id in tmp/ (anonymous, or tmp/ID with O_EXCL) and writes the
   envelope. Returns 0, or -1 with errno. */
int qfile_create(const struct spool *spool, const struct queue_envelope *env, struct qfile **qf_r);
/* Appends content bytes (buffered). Returns 0, or -1 with errno after a write error (which
   sticks: every later call fails too). */
int qfile_write(struct qfile *qf, const void *data, size_t n);
/* Returns the errno of the first failed write, or 0. */
int qfile_error(const struct qfile *qf);
/* Returns the content bytes written so far. */
uint64_t qfile_content_size(const struct qfile *qf);
/* Writes the trailer and flushes. Returns 0, or -1 with errno (e.g. ENOSPC). */
int qfile_finish(struct qfile *qf);
/* Returns the file descriptor (for fsync by the committer). */
int qfile_fd(const struct qfile *qf);
/* Returns the queue ID. */
const char *qfile_id(const struct qfile *qf);
/* Returns a path that opens the file before it is placed: tmp/ID, or /proc/self/fd/N. */
const char *qfile_path(const struct qfile *qf);
/* Whether the file has no name yet (O_TMPFILE): then qfile_place links it instead of renaming. */
bool qfile_anonymous(const struct qfile *qf);
/* Gives the finished file its queue name dest: links an anonymous file, renames a tmp/ one.
   Returns 0, or -1 with errno. Durability is the caller's (a sync of the filesystem or of
   the file and dest's directory). */
int qfile_place(struct qfile *qf, const char *dest);
/* Closes the file and frees qf; the file stays on disk. (*qf NULL allowed.) */
void qfile_close(struct qfile **qf);
/* Closes, unlinks a tmp/ file (an anonymous one vanishes by itself) and frees qf. (*qf NULL
   allowed.) A file already placed is the caller's to unlink. */
void qfile_abort(struct qfile **qf);
/* Makes a finished file durable and moves it to queue/: fsync, rename, fsync of the
   directory. For single submissions (the sendmail command); the daemon uses commit.h.
   Returns 0, or -1 with errno; on failure nothing is left in queue/ or tmp/. Frees *qf either way. */
int qfile_commit_sync(const struct spool *spool, struct qfile **qf, const char *queue);

/* Reads and validates the envelope of the file at path. On success returns 0, fills env and
   sets the content's offset and size. Returns -1 with *why_r when torn, foreign or unreadable. */
int qfile_load(const char *path, struct queue_envelope *env, off_t *content_off_r,
	       uint64_t *content_size_r, const char **why_r);
/* Writes a recipient's new state into the file at rcpt->state_off (the one-byte write is
   atomic). Returns 0, or -1 with errno. */
int qfile_set_rcpt_state(int fd, struct queue_rcpt *rcpt, char state);
/* Validates the file at path, which must carry queue ID id. Returns 0, or -1 with *why_r. */
int qfile_check(const char *path, const char *id, const char **why_r);

#endif
