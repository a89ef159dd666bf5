#include <fcntl.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"
#include "util/log.h"
#include "util/xalloc.h"

/* The embedded backend: one file in WAL mode, so lookups never wait for a writer, and
   synchronous=FULL, so an admin change acknowledged to its caller survives a power loss.
   Statements are prepared once per connection on first use. */

enum sq_stmt_id {
	SQ_HAS_MIGRATIONS,
	SQ_VERSION,
	SQ_RECORD,
	SQ_PUT,
	SQ_GET,
	SQ_DELETE,
	SQ_LIST,
	SQ_COUNT,
	SQ_STMTS
};

static const char *const sq_sql[SQ_STMTS] = {
	[SQ_HAS_MIGRATIONS] = "SELECT count(*) FROM sqlite_master"
			      " WHERE type = 'table' AND name = 'schema_migrations'",
	[SQ_VERSION] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
	[SQ_RECORD] = "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
	[SQ_PUT] = "INSERT INTO aliases (key, domain, targets, created, updated)"
		   " VALUES (?1, ?2, ?3, CAST(strftime('%s', 'now') AS INTEGER),"
		   " CAST(strftime('%s', 'now') AS INTEGER))"
		   " ON CONFLICT (key) DO UPDATE SET targets = excluded.targets,"
		   " updated = excluded.updated",
	[SQ_GET] = "SELECT key, targets, created, updated FROM aliases WHERE key = ?1",
	[SQ_DELETE] = "DELETE FROM aliases WHERE key = ?1",
	[SQ_LIST] = "SELECT key, targets, created, updated FROM aliases"
		    " WHERE (?1 IS NULL OR key > ?1)"
		    " AND (?2 IS NULL OR substr(key, 1, length(?2)) = ?2)"
		    " AND (?3 IS NULL OR domain = ?3) ORDER BY key LIMIT ?4",
	[SQ_COUNT] = "SELECT count(*) FROM aliases"
		     " WHERE (?1 IS NULL OR substr(key, 1, length(?1)) = ?1)"
		     " AND (?2 IS NULL OR domain = ?2)",
};

struct store_sqlite {
	struct store base; /* first: the handle is cast both ways */
	sqlite3 *db;
	sqlite3_stmt *stmt[SQ_STMTS];
};

static struct store_sqlite *sq(struct store *s)
{
	return (struct store_sqlite *)s;
}

/* Only a wrong request is STORE_ERROR; locks held past the busy timeout, I/O errors, a full
   disk or a damaged file are the database's state, and mail should wait for them (451). */
static int sq_status(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_ERROR:
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG:
	case SQLITE_MISUSE:
		return STORE_ERROR;
	default:
		return STORE_UNAVAILABLE;
	}
}

static int sq_fail(struct store_sqlite *q, int rc, const char *what)
{
	return store_fail(&q->base, sq_status(rc), "sqlite: %s: %s", what, sqlite3_errmsg(q->db));
}

/* Returns the statement, reset and unbound, or NULL with the error set. */
static sqlite3_stmt *sq_stmt(struct store_sqlite *q, enum sq_stmt_id id, int *status_r)
{
	if (q->stmt[id] == NULL) {
		int rc = sqlite3_prepare_v3(q->db, sq_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &q->stmt[id], NULL);
		if (rc != SQLITE_OK) {
			*status_r = sq_fail(q, rc, "prepare");
			return NULL;
		}
	}
	return q->stmt[id];
}

/* Ends a statement's use, so it holds no read snapshot or lock until its next use. */
static void sq_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a statement that returns nothing. */
static int sq_run(struct store_sqlite *q, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	int status = rc == SQLITE_DONE ? 0 : sq_fail(q, rc, what);
	sq_done(st);
	return status;
}

/* Runs a statement returning one integer. */
static int sq_scalar(struct store_sqlite *q, sqlite3_stmt *st, int64_t *value_r,
		     const char *what)
{
	int rc = sqlite3_step(st);
	int status = rc == SQLITE_ROW ? 0 : sq_fail(q, rc, what);
	if (status == 0)
		*value_r = sqlite3_column_int64(st, 0);
	sq_done(st);
	return status;
}

static void sq_bind(sqlite3_stmt *st, int i, const char *text)
{
	/* SQLITE_TRANSIENT: copied, so the caller's strings need not outlive the call. */
	sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
}

static int sq_exec_script(struct store *s, const char *sql)
{
	int rc = sqlite3_exec(sq(s)->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(sq(s), rc, "migration");
}

/* BEGIN IMMEDIATE takes the write lock at once (waiting up to the busy timeout), so two
   processes migrating the same file run one after the other. */
static int sq_migrate_begin(struct store *s)
{
	int rc = sqlite3_exec(sq(s)->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(sq(s), rc, "begin migration");
}

static int sq_migrate_end(struct store *s, bool ok)
{
	int status = 0;
	if (ok) {
		int rc = sqlite3_exec(sq(s)->db, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		status = sq_fail(sq(s), rc, "commit migration");
	}
	/* A failed COMMIT can leave the transaction open; the next call must not run in it. */
	if (!sqlite3_get_autocommit(sq(s)->db))
		sqlite3_exec(sq(s)->db, "ROLLBACK", NULL, NULL, NULL);
	return status;
}

static int sq_migration_record(struct store *s, int version, const char *name)
{
	int status = 0;
	sqlite3_stmt *st = sq_stmt(sq(s), SQ_RECORD, &status);
	if (st == NULL)
		return status;
	sqlite3_bind_int(st, 1, version);
	sq_bind(st, 2, name);
	return sq_run(sq(s), st, "record migration");
}

static int sq_schema_version(struct store *s)
{
	int status = 0;
	int64_t n = 0;
	sqlite3_stmt *st = sq_stmt(sq(s), SQ_HAS_MIGRATIONS, &status);
	if (st == NULL || (status = sq_scalar(sq(s), st, &n, "schema version")) < 0)
		return status;
	if (n == 0)
		return 0;
	st = sq_stmt(sq(s), SQ_VERSION, &status);
	if (st == NULL || (status = sq_scalar(sq(s), st, &n, "schema version")) < 0)
		return status;
	return (int)n;
}

static int sq_set_lock_timeout(struct store *s, unsigned ms)
{
	int rc = sqlite3_busy_timeout(sq(s)->db, ms > INT32_MAX ? INT32_MAX : (int)ms);
	return rc == SQLITE_OK ? 0 : sq_fail(sq(s), rc, "busy timeout");
}

static int sq_alias_put(struct store *s, const char *key, const char *domain,
			const char *targets_json)
{
	int status = 0;
	sqlite3_stmt *st = sq_stmt(sq(s), SQ_PUT, &status);
	if (st == NULL)
		return status;
	sq_bind(st, 1, key);
	sq_bind(st, 2, domain);
	sq_bind(st, 3, targets_json);
	return sq_run(sq(s), st, "put alias");
}

static int sq_row_alias(struct store *s, sqlite3_stmt *st, struct store_alias *a)
{
	return store_alias_from_row(s, a, (const char *)sqlite3_column_text(st, 0),
				    (const char *)sqlite3_column_text(st, 1),
				    sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3));
}

static int sq_alias_get(struct store *s, const char *key, struct store_alias **alias_r)
{
	int status = 0;
	sqlite3_stmt *st = sq_stmt(sq(s), SQ_GET, &status);
	if (st == NULL)
		return status;
	sq_bind(st, 1, key);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		struct store_alias *a = xcalloc(1, sizeof(*a));
		status = sq_row_alias(s, st, a);
		if (status < 0)
			store_alias_free(&a);
		*alias_r = a;
	} else if (rc != SQLITE_DONE) {
		status = sq_fail(sq(s), rc, "get alias");
	}
	sq_done(st);
	return status < 0 ? status : rc == SQLITE_ROW;
}

static int sq_alias_delete(struct store *s, const char *key)
{
	int status = 0;
	sqlite3_stmt *st = sq_stmt(sq(s), SQ_DELETE, &status);
	if (st == NULL)
		return status;
	sq_bind(st, 1, key);
	status = sq_run(sq(s), st, "delete alias");
	return status < 0 ? status : sqlite3_changes(sq(s)->db) > 0;
}

static int sq_alias_list(struct store *s, const struct store_query *q,
			 struct store_alias_list *list)
{
	int status = 0, rc;
	sqlite3_stmt *st = sq_stmt(sq(s), SQ_LIST, &status);
	if (st == NULL)
		return status;
	sq_bind(st, 1, q->after);
	sq_bind(st, 2, q->prefix);
	sq_bind(st, 3, q->domain);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)q->limit + 1);
	while (status == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		status = sq_row_alias(s, st, store_alias_list_add(list));
	if (status == 0 && rc != SQLITE_DONE)
		status = sq_fail(sq(s), rc, "list aliases");
	sq_done(st);
	return status;
}

static int sq_alias_count(struct store *s, const struct store_query *q, uint64_t *count_r)
{
	int status = 0;
	int64_t n = 0;
	sqlite3_stmt *st = sq_stmt(sq(s), SQ_COUNT, &status);
	if (st == NULL)
		return status;
	sq_bind(st, 1, q->prefix);
	sq_bind(st, 2, q->domain);
	status = sq_scalar(sq(s), st, &n, "count aliases");
	*count_r = status == 0 ? (uint64_t)n : 0;
	return status;
}

static void sq_free(struct store *s)
{
	struct store_sqlite *q = sq(s);
	for (int i = 0; i < SQ_STMTS; i++)
		sqlite3_finalize(q->stmt[i]);
	sqlite3_close(q->db);
	free(q);
}

static const struct store_ops sq_ops = {
	.name = "sqlite",
	.dialect = STORE_DIALECT_SQLITE,
	.migrate_begin = sq_migrate_begin,
	.migrate_end = sq_migrate_end,
	.exec_script = sq_exec_script,
	.migration_record = sq_migration_record,
	.schema_version = sq_schema_version,
	.set_lock_timeout = sq_set_lock_timeout,
	.alias_put = sq_alias_put,
	.alias_get = sq_alias_get,
	.alias_delete = sq_alias_delete,
	.alias_list = sq_alias_list,
	.alias_count = sq_alias_count,
	.free = sq_free,
};

/* WAL cannot be had on some file systems (no shared memory for the index); the store still
   works in rollback-journal mode, only readers then wait for writers. */
static int sq_configure(struct store_sqlite *q)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(st, 0);
		if (mode == NULL || strcmp(mode, "wal") != 0)
			log_warn("store: %s: journal_mode=%s, not wal", sqlite3_db_filename(q->db, NULL),
				 mode ? mode : "?");
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
				  NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(q, rc, "configure");
}

/* The file is created 0600 before SQLite sees it: SQLite would use 0644, and its -wal and
   -shm files copy the database file's mode. */
int store_sqlite_open(const char *path, struct store **store_r, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "sqlite: cannot open %s: %s", path, strerror(errno));
		return STORE_UNAVAILABLE;
	}
	close(fd);
	struct store_sqlite *q = xcalloc(1, sizeof(*q));
	q->base.ops = &sq_ops;
	int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE, NULL);
	int status = rc == SQLITE_OK ? 0 : sq_fail(q, rc, path);
	if (status == 0) {
		sqlite3_extended_result_codes(q->db, 1);
		sqlite3_busy_timeout(q->db, STORE_LOCK_TIMEOUT_MS);
		status = sq_configure(q);
	}
	if (status < 0) {
		snprintf(err, errlen, "%s", q->base.error);
		sq_free(&q->base);
		return status;
	}
	*store_r = &q->base;
	return 0;
}
