#ifndef POSTERN_STORE_INT_H
#define POSTERN_STORE_INT_H
#include "store/store.h"

/* Between store.c and its backends: a vtable of small primitives. Backends embed struct store
   as their first member; store.c keeps validation, normalisation and the migration runner, so
   both backends see the same checked, normalised values. */

#define STORE_ERROR_MAX 1024

enum store_dialect { STORE_DIALECT_SQLITE, STORE_DIALECT_PG, STORE_DIALECTS };

/* A query after normalisation: NULL where the caller gave no filter, limit within range. */
struct store_query {
	const char *after;
	const char *prefix;
	const char *domain;
	unsigned limit;
};

struct store_ops {
	const char *name;
	enum store_dialect dialect;
	/* Starts the migration transaction holding the lock that serialises migrating nodes. */
	int (*migrate_begin)(struct store *s);
	/* Commits (ok) or rolls back the migration transaction. */
	int (*migrate_end)(struct store *s, bool ok);
	/* Runs constant SQL text (one or more statements, no values). */
	int (*exec_script)(struct store *s, const char *sql);
	/* Records that migration version was applied. */
	int (*migration_record)(struct store *s, int version, const char *name);
	/* Returns the highest migration applied, 0 for an empty database, or a negative status. */
	int (*schema_version)(struct store *s);
	int (*set_lock_timeout)(struct store *s, unsigned ms);
	/* targets_json is a JSON array of the checked targets. */
	int (*alias_put)(struct store *s, const char *key, const char *domain,
			 const char *targets_json);
	int (*alias_get)(struct store *s, const char *key, struct store_alias **alias_r);
	int (*alias_delete)(struct store *s, const char *key);
	/* Fills list with up to q->limit + 1 rows; the caller trims and sets more. */
	int (*alias_list)(struct store *s, const struct store_query *q, struct store_alias_list *list);
	/* Counts what prefix and domain match; after and limit do not apply. */
	int (*alias_count)(struct store *s, const struct store_query *q, uint64_t *count_r);
	void (*free)(struct store *s);
};

struct store {
	const struct store_ops *ops;
	char error[STORE_ERROR_MAX];
};

struct store_migration {
	int version;
	const char *name;
	const char *sql[STORE_DIALECTS];
};

/* The numbered migrations, in order (migrations.c). */
extern const struct store_migration store_migrations[];
extern const size_t store_migrations_count;

/* Formats the handle's error text. Returns status, so backends can `return store_fail(...)`. */
int store_fail(struct store *s, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Fills a from a row's columns (targets as a JSON array). Returns 0 or STORE_ERROR. */
int store_alias_from_row(struct store *s, struct store_alias *a, const char *key,
			 const char *targets_json, int64_t created, int64_t updated);
/* Appends a zeroed item to list and returns it. */
struct store_alias *store_alias_list_add(struct store_alias_list *list);
/* Frees the fields of a (not a itself). */
void store_alias_clear(struct store_alias *a);

/* Backend constructors: return 0 and *store_r, or a negative status with text in err. */
int store_sqlite_open(const char *path, struct store **store_r, char *err, size_t errlen);
int store_pg_open(const char *conninfo, struct store **store_r, char *err, size_t errlen);

#endif
