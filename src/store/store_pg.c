#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_int.h"
#include "util/log.h"
#include "util/xalloc.h"

/* The shared backend: one libpq connection per handle, statements sent with PQexecParams so
   that values never become SQL text. A call that finds the connection broken reconnects once
   and, outside a transaction, sends its statement again (every alias statement is idempotent);
   after a failed reconnect the next second of calls fails fast with STORE_UNAVAILABLE instead
   of each waiting for connect_timeout. */

#define PG_RECONNECT_INTERVAL_MS 1000
/* Any constant: nodes sharing a database must only agree on it. */
#define PG_MIGRATION_LOCK "7306981263482451"

struct store_pg {
	struct store base; /* first: the handle is cast both ways */
	PGconn *conn;
	unsigned lock_timeout_ms;
	bool in_tx;          /* a migration transaction is open: never resend after a reconnect */
	bool lost;           /* the loss has been logged */
	int64_t failed_at;   /* monotonic ms of the last failed reconnect, 0 for none */
	char last_error[256];
};

static struct store_pg *pg(struct store *s)
{
	return (struct store_pg *)s;
}

static int64_t pg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq's messages end in newlines and may span lines; the log wants one line. */
static void pg_copy_message(char *out, size_t len, const char *msg)
{
	snprintf(out, len, "%s", msg != NULL && *msg != '\0' ? msg : "unknown error");
	for (char *p = out; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	}
	for (size_t n = strlen(out); n > 0 && out[n - 1] == ' '; n--)
		out[n - 1] = '\0';
}

/* Connection loss, shutdown, resource shortage, lock and statement timeouts, serialization
   failures, server-side I/O errors and a server that became a read-only standby (failover)
   are transient: the request may succeed later. */
static bool pg_sqlstate_transient(const char *state)
{
	static const char *const prefixes[] = { "08", "25006", "40", "53", "55P03", "57", "58",
						 "XX" };
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (strncmp(state, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	}
	return false;
}

static int pg_fail_result(struct store_pg *p, const PGresult *res, const char *what)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char text[512];
	pg_copy_message(text, sizeof(text), msg != NULL ? msg : PQerrorMessage(p->conn));
	int status = PQstatus(p->conn) == CONNECTION_BAD || state == NULL ||
				     pg_sqlstate_transient(state)
			     ? STORE_UNAVAILABLE
			     : STORE_ERROR;
	return store_fail(&p->base, status, "postgresql: %s: %s%s%s%s", what, text,
			  state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
}

static void pg_notice(void *arg, const char *message)
{
	char text[512];
	pg_copy_message(text, sizeof(text), message);
	log_debug("store: postgresql: %s", text);
}

/* Per-session settings, applied after every (re)connect. */
static int pg_session(struct store_pg *p)
{
	char value[32];
	snprintf(value, sizeof(value), "%ums", p->lock_timeout_ms);
	const char *params[] = { value };
	PGresult *res = PQexecParams(p->conn, "SELECT set_config('lock_timeout', $1, false)", 1,
				     NULL, params, NULL, NULL, 0);
	int status = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : pg_fail_result(p, res, "session");
	PQclear(res);
	return status;
}

static int pg_reconnect(struct store_pg *p)
{
	int64_t now = pg_now_ms();
	if (p->failed_at != 0 && now - p->failed_at < PG_RECONNECT_INTERVAL_MS)
		return store_fail(&p->base, STORE_UNAVAILABLE, "postgresql: not connected: %s",
				  p->last_error);
	if (!p->lost)
		log_warn("store: postgresql: connection lost, reconnecting");
	p->lost = true;
	p->in_tx = false;
	PQreset(p->conn);
	if (PQstatus(p->conn) != CONNECTION_OK || pg_session(p) < 0) {
		p->failed_at = now;
		pg_copy_message(p->last_error, sizeof(p->last_error), PQerrorMessage(p->conn));
		return store_fail(&p->base, STORE_UNAVAILABLE, "postgresql: cannot reconnect: %s",
				  p->last_error);
	}
	log_info("store: postgresql: reconnected");
	p->lost = false;
	p->failed_at = 0;
	return 0;
}

static bool pg_result_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Runs one statement (params NULL: a constant script). Returns its result, to PQclear, or
   NULL with the status in *status_r. */
static PGresult *pg_exec(struct store_pg *p, const char *sql, int n, const char *const *params,
			 const char *what, int *status_r)
{
	if (PQstatus(p->conn) != CONNECTION_OK) {
		/* Inside a transaction a new connection would run the rest outside it. */
		*status_r = p->in_tx ? pg_fail_result(p, NULL, what) : pg_reconnect(p);
		if (*status_r < 0)
			return NULL;
	}
	for (int attempt = 0;; attempt++) {
		bool resend = !p->in_tx;
		PGresult *res = params != NULL
					? PQexecParams(p->conn, sql, n, NULL, params, NULL, NULL, 0)
					: PQexec(p->conn, sql);
		if (pg_result_ok(res))
			return res;
		*status_r = pg_fail_result(p, res, what);
		PQclear(res);
		/* A connection the server dropped may still read as OK until libpq notices (the
		   first statement after a server restart fails with "server closed the connection"):
		   any failure of the unavailable kind gets one reconnect. */
		if (attempt > 0 || !resend ||
		    (PQstatus(p->conn) != CONNECTION_BAD && *status_r != STORE_UNAVAILABLE))
			return NULL;
		if ((*status_r = pg_reconnect(p)) < 0)
			return NULL;
	}
}

/* Runs a statement and keeps only its status. */
static int pg_run(struct store_pg *p, const char *sql, int n, const char *const *params,
		  const char *what)
{
	int status = 0;
	PQclear(pg_exec(p, sql, n, params, what, &status));
	return status;
}

static int pg_exec_script(struct store *s, const char *sql)
{
	return pg_run(pg(s), sql, 0, NULL, "migration");
}

static int pg_migrate_end(struct store *s, bool ok)
{
	struct store_pg *p = pg(s);
	int status = 0;
	if (ok)
		status = pg_run(p, "COMMIT", 0, NULL, "commit migration");
	else if (PQstatus(p->conn) == CONNECTION_OK)
		PQclear(PQexec(p->conn, "ROLLBACK")); /* keeps the error that caused it */
	p->in_tx = false;
	return status;
}

/* The advisory lock, held until the transaction ends, serialises nodes migrating at once;
   the others then find the migrations recorded. A long migration elsewhere is waited for. */
static int pg_migrate_begin(struct store *s)
{
	int status = pg_run(pg(s), "BEGIN", 0, NULL, "begin migration");
	if (status < 0)
		return status;
	pg(s)->in_tx = true;
	status = pg_run(pg(s), "SET LOCAL lock_timeout = '60s'; SELECT pg_advisory_xact_lock("
			PG_MIGRATION_LOCK ")", 0, NULL, "migration lock");
	if (status < 0)
		pg_migrate_end(s, false);
	return status;
}

static int pg_migration_record(struct store *s, int version, const char *name)
{
	char v[16];
	snprintf(v, sizeof(v), "%d", version);
	const char *params[] = { v, name };
	return pg_run(pg(s), "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
		      params, "record migration");
}

/* Returns the first column of the first row as an integer, or a negative status. */
static int pg_scalar(struct store_pg *p, const char *sql, int n, const char *const *params,
		     const char *what, int64_t *value_r)
{
	int status = 0;
	PGresult *res = pg_exec(p, sql, n, params, what, &status);
	if (res == NULL)
		return status;
	const char *v = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "0";
	*value_r = strcmp(v, "t") == 0 ? 1 : strcmp(v, "f") == 0 ? 0 : strtoll(v, NULL, 10);
	PQclear(res);
	return 0;
}

static int pg_schema_version(struct store *s)
{
	int64_t n = 0;
	int status = pg_scalar(pg(s), "SELECT to_regclass('schema_migrations') IS NOT NULL", 0,
			       NULL, "schema version", &n);
	if (status < 0 || n == 0)
		return status;
	status = pg_scalar(pg(s), "SELECT coalesce(max(version), 0) FROM schema_migrations", 0,
			   NULL, "schema version", &n);
	return status < 0 ? status : (int)n;
}

static int pg_set_lock_timeout(struct store *s, unsigned ms)
{
	pg(s)->lock_timeout_ms = ms;
	if (PQstatus(pg(s)->conn) != CONNECTION_OK)
		return 0; /* applied by the next reconnect */
	return pg_session(pg(s));
}

static int pg_alias_put(struct store *s, const char *key, const char *domain,
			const char *targets_json)
{
	const char *params[] = { key, domain, targets_json };
	return pg_run(pg(s),
		      "INSERT INTO aliases (key, domain, targets) VALUES ($1, $2, $3::jsonb)"
		      " ON CONFLICT (key) DO UPDATE SET targets = excluded.targets, updated = now()",
		      3, params, "put alias");
}

#define PG_ALIAS_COLUMNS "key, targets::text, extract(epoch FROM created)::bigint," \
			 " extract(epoch FROM updated)::bigint"

static int pg_row_alias(struct store *s, const PGresult *res, int row, struct store_alias *a)
{
	return store_alias_from_row(s, a, PQgetvalue(res, row, 0), PQgetvalue(res, row, 1),
				    strtoll(PQgetvalue(res, row, 2), NULL, 10),
				    strtoll(PQgetvalue(res, row, 3), NULL, 10));
}

static int pg_alias_get(struct store *s, const char *key, struct store_alias **alias_r)
{
	int status = 0;
	const char *params[] = { key };
	PGresult *res = pg_exec(pg(s), "SELECT " PG_ALIAS_COLUMNS " FROM aliases WHERE key = $1",
				1, params, "get alias", &status);
	if (res == NULL)
		return status;
	int found = PQntuples(res) > 0;
	if (found) {
		struct store_alias *a = xcalloc(1, sizeof(*a));
		status = pg_row_alias(s, res, 0, a);
		if (status < 0)
			store_alias_free(&a);
		*alias_r = a;
	}
	PQclear(res);
	return status < 0 ? status : found;
}

static int pg_alias_delete(struct store *s, const char *key)
{
	int status = 0;
	const char *params[] = { key };
	PGresult *res = pg_exec(pg(s), "DELETE FROM aliases WHERE key = $1", 1, params,
				"delete alias", &status);
	if (res == NULL)
		return status;
	int found = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	return found;
}

static int pg_alias_list(struct store *s, const struct store_query *q,
			 struct store_alias_list *list)
{
	int status = 0;
	char limit[16];
	snprintf(limit, sizeof(limit), "%u", q->limit + 1);
	const char *params[] = { q->after, q->prefix, q->domain, limit };
	PGresult *res = pg_exec(pg(s), "SELECT " PG_ALIAS_COLUMNS " FROM aliases"
				" WHERE ($1::text IS NULL OR key > $1)"
				" AND ($2::text IS NULL OR starts_with(key, $2))"
				" AND ($3::text IS NULL OR domain = $3) ORDER BY key LIMIT $4",
				4, params, "list aliases", &status);
	if (res == NULL)
		return status;
	for (int i = 0; i < PQntuples(res) && status == 0; i++)
		status = pg_row_alias(s, res, i, store_alias_list_add(list));
	PQclear(res);
	return status;
}

static int pg_alias_count(struct store *s, const struct store_query *q, uint64_t *count_r)
{
	int64_t n = 0;
	const char *params[] = { q->prefix, q->domain };
	int status = pg_scalar(pg(s), "SELECT count(*) FROM aliases"
			       " WHERE ($1::text IS NULL OR starts_with(key, $1))"
			       " AND ($2::text IS NULL OR domain = $2)",
			       2, params, "count aliases", &n);
	*count_r = status == 0 ? (uint64_t)n : 0;
	return status;
}

static void pg_free(struct store *s)
{
	PQfinish(pg(s)->conn);
	free(s);
}

static const struct store_ops pg_ops = {
	.name = "postgresql",
	.dialect = STORE_DIALECT_PG,
	.migrate_begin = pg_migrate_begin,
	.migrate_end = pg_migrate_end,
	.exec_script = pg_exec_script,
	.migration_record = pg_migration_record,
	.schema_version = pg_schema_version,
	.set_lock_timeout = pg_set_lock_timeout,
	.alias_put = pg_alias_put,
	.alias_get = pg_alias_get,
	.alias_delete = pg_alias_delete,
	.alias_list = pg_alias_list,
	.alias_count = pg_alias_count,
	.free = pg_free,
};

/* Defaults come before the URI, which may override them; the client encoding comes after:
   keys and targets are UTF-8 whatever the URI says. Keepalives notice a dead server under a
   query within about 25 s instead of the kernel's two hours. */
static PGconn *pg_connect(const char *uri)
{
	static const char *const keys[] = { "connect_timeout", "keepalives_idle",
					    "keepalives_interval", "keepalives_count",
					    "application_name", "dbname", "client_encoding", NULL };
	const char *const values[] = { "5", "10", "5", "3", "postern", uri, "UTF8", NULL };
	return PQconnectdbParams(keys, values, 1);
}

int store_pg_open(const char *conninfo, struct store **store_r, char *err, size_t errlen)
{
	struct store_pg *p = xcalloc(1, sizeof(*p));
	p->base.ops = &pg_ops;
	p->lock_timeout_ms = STORE_LOCK_TIMEOUT_MS;
	p->conn = pg_connect(conninfo);
	if (p->conn == NULL)
		abort(); /* libpq returns NULL only when out of memory */
	PQsetNoticeProcessor(p->conn, pg_notice, NULL);
	int status = PQstatus(p->conn) == CONNECTION_OK ? pg_session(p) : STORE_UNAVAILABLE;
	if (status < 0) {
		char text[512];
		pg_copy_message(text, sizeof(text), PQerrorMessage(p->conn));
		snprintf(err, errlen, "postgresql: cannot connect: %s", text);
		pg_free(&p->base);
		return status;
	}
	*store_r = &p->base;
	return 0;
}
