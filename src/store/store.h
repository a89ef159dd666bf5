#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/protolimits.h"

/* The store (DESIGN.md 5): aliases, robot state, tokens and statistics, in SQLite (one file in
   the state directory) or PostgreSQL (shared by several nodes). A handle is one connection and
   must be used by one thread at a time; store_async.h runs calls off the event loop.

   Every call returns a negative status on failure and sets *error_r to a text that stays valid
   until the next call on the same handle. The two failure kinds matter to mail: */
enum store_status {
	STORE_OK = 0,
	STORE_ERROR = -1,       /* the request is wrong (validation, constraint) or a bug */
	STORE_UNAVAILABLE = -2, /* cannot reach the database now: answer 451 4.3.0, retry later */
	STORE_CANCELLED = -3,   /* store_async only: the job never ran (shutdown) */
};

/* "local@domain" with room for a quoted local part in canonical form. */
#define STORE_ALIAS_KEY_MAX (PROTO_LOCAL_PART_MAX * 2 + 3 + 1 + PROTO_DOMAIN_MAX + 1)
#define STORE_ALIAS_TARGETS_MAX 1000 /* targets of one alias */
#define STORE_ALIAS_TARGET_MAX 4096  /* octets of one target */
#define STORE_LIST_DEFAULT 100       /* page size when the query gives none */
#define STORE_LIST_MAX 1000          /* largest page */
#define STORE_LOCK_TIMEOUT_MS 5000   /* default wait for another writer's lock */

struct store;

/* One alias: an address ("local@domain", lower-cased) or a catch-all ("@domain"). */
struct store_alias {
	char *key;
	char **targets; /* ntargets strings in the order given to store_alias_put */
	size_t ntargets;
	int64_t created; /* seconds since the epoch */
	int64_t updated;
};

/* Which aliases store_alias_list and store_alias_count look at; NULL or "" means no filter. */
struct store_alias_query {
	const char *after;  /* list only: keys strictly after this one (byte order) */
	const char *prefix; /* keys starting with this text (no wildcards) */
	const char *domain; /* keys of this domain, catch-all included */
	unsigned limit;     /* list only: 0 is STORE_LIST_DEFAULT, at most STORE_LIST_MAX */
};

struct store_alias_list {
	struct store_alias *items; /* in key order */
	size_t n;
	bool more; /* further keys match after the last one */
};

/* Opens the store named by spec: "" or "sqlite" (state_dir/postern.db), "sqlite:PATH", or a
   "postgresql://" / "postgres://" URI (libpq syntax), and applies pending migrations. Returns 0, STORE_ERROR or STORE_UNAVAILABLE with *error_r
   (static or thread-local text, valid until the next store_open on this thread). */
int store_open(const char *spec, const char *state_dir, struct store **store_r,
	       const char **error_r);
/* Closes the connection and frees *s (NULL allowed), setting it to NULL. */
void store_free(struct store **s);
/* Returns "sqlite" or "postgresql". */
const char *store_backend(const struct store *s);
/* Applies the migrations the database lacks, under a lock so that nodes starting together
   apply each once. Returns 0 or a negative store_status. */
int store_migrate(struct store *s, const char **error_r);
/* Returns the schema version of the database (highest migration applied), or a negative
   store_status. */
int store_schema_version(struct store *s);
/* Returns the highest migration this program knows. */
int store_schema_latest(void);
/* Sets how long a write waits for a lock held by another writer before STORE_UNAVAILABLE
   (SQLite busy timeout, PostgreSQL lock_timeout). Returns 0 or a negative store_status. */
int store_set_lock_timeout(struct store *s, unsigned ms, const char **error_r);

/* Writes the normalised form of key (canonical, ASCII lower-cased: aliases match addresses
   whatever their case, as mail systems' tables do) into key_r. Returns 0, or -1 with
   the reason in err. */
int store_alias_key_normalise(const char *key, char key_r[STORE_ALIAS_KEY_MAX], char *err,
			      size_t errlen);
/* Checks a target list as store_alias_put does. Returns 0, or -1 with the reason in err. */
int store_alias_targets_check(const char *const *targets, size_t n, char *err, size_t errlen);
/* Creates the alias key or replaces all its targets. Returns 0 or a negative store_status. */
int store_alias_put(struct store *s, const char *key, const char *const *targets, size_t n,
		    const char **error_r);
/* Looks key up (normalised first). Returns 1 and *alias_r, 0 when there is no such alias, or
   a negative store_status. */
int store_alias_get(struct store *s, const char *key, struct store_alias **alias_r,
		    const char **error_r);
/* Removes key. Returns 1 when it existed, 0 when not, or a negative store_status. */
int store_alias_delete(struct store *s, const char *key, const char **error_r);
/* Returns 0 and one page of aliases in *list_r, or a negative store_status. */
int store_alias_list(struct store *s, const struct store_alias_query *q,
		     struct store_alias_list **list_r, const char **error_r);
/* Counts the aliases q matches (after and limit ignored). Returns 0 and *count_r, or a
   negative store_status. */
int store_alias_count(struct store *s, const struct store_alias_query *q, uint64_t *count_r,
		      const char **error_r);
/* Frees *a (NULL allowed) and sets it to NULL. */
void store_alias_free(struct store_alias **a);
/* Frees *l (NULL allowed) and its aliases, and sets it to NULL. */
void store_alias_list_free(struct store_alias_list **l);

#endif
