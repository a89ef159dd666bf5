#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_async.h"

/* The store (DESIGN.md 5). One list of cases runs twice: against SQLite in a fresh mkdtemp
   directory per case, and against a real PostgreSQL cluster that the group setup creates
   (initdb) and starts in a mkdtemp directory, on a unix socket only, as "nobody" when we run
   as root; each case gets a database of its own. The outage case stops and restarts that
   server under an open handle. */

#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif

enum backend { BACKEND_SQLITE, BACKEND_PG };

static enum backend backend;

static struct {
	char dir[64];     /* socket directory; the cluster is in dir/data */
	char log[96];     /* initdb's and the server's output */
	char admin[160];  /* conninfo of the maintenance database */
	pid_t pid;        /* the postmaster, -1 when stopped */
	bool have_dir;
	const char *broken; /* why there is no cluster, NULL when there is one */
	int next_db;
} pg = { .pid = -1 };

struct fx {
	char dir[64];     /* state directory (SQLite's default file lives here) */
	char spec[256];   /* this case's store */
	char dbs[4][32];  /* PostgreSQL databases to drop afterwards */
	int ndbs;
	struct store *s;
};

/* ---- small helpers ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void put_ok(struct store *s, const char *key, const char *const *targets, size_t n)
{
	const char *error = NULL;
	int rc = store_alias_put(s, key, targets, n, &error);
	if (rc != 0)
		fail_msg("put %s: %d %s", key, rc, error);
}

/* Gets key, fails unless it exists with exactly want (n targets). */
static void expect_targets(struct store *s, const char *key, const char *const *want, size_t n)
{
	struct store_alias *a = NULL;
	const char *error = NULL;
	int rc = store_alias_get(s, key, &a, &error);
	if (rc != 1)
		fail_msg("get %s: %d %s", key, rc, rc < 0 ? error : "not found");
	assert_int_equal(a->ntargets, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(a->targets[i], want[i]);
	store_alias_free(&a);
	assert_null(a);
}

static void expect_missing(struct store *s, const char *key)
{
	struct store_alias *a = NULL;
	const char *error = NULL;
	int rc = store_alias_get(s, key, &a, &error);
	if (rc != 0)
		fail_msg("get %s: %d %s", key, rc, rc < 0 ? error : "found");
	assert_null(a);
}

static uint64_t count_of(struct store *s, const char *prefix, const char *domain)
{
	const struct store_alias_query q = { .prefix = prefix, .domain = domain };
	const char *error = NULL;
	uint64_t n = 0;
	if (store_alias_count(s, &q, &n, &error) != 0)
		fail_msg("count: %s", error);
	return n;
}

/* ---- PostgreSQL: a cluster of our own ---- */

/* In the child: the server refuses to run as root, so it runs as nobody; it is also told to
   quit if we die, so that a crashed test leaves no server behind. */
static void child_exec(const char *const argv[], const struct passwd *pw, bool die_with_parent)
{
	int out = open(pg.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (out < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 ||
	    chdir(pg.dir) < 0)
		_exit(126);
	if (pw != NULL && (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0))
		_exit(126);
	if (die_with_parent)
		prctl(PR_SET_PDEATHSIG, SIGQUIT);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static pid_t pg_spawn(const char *const argv[], bool die_with_parent)
{
	struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : NULL;
	if (geteuid() == 0 && pw == NULL)
		fail_msg("no user \"nobody\" to run PostgreSQL as");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_exec(argv, pw, die_with_parent);
	return pid;
}

static void pg_show_log(void)
{
	char line[512];
	FILE *f = fopen(pg.log, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		print_error("  | %s", line);
	if (f != NULL)
		fclose(f);
}

static bool pg_initdb(void)
{
	char data[96];
	int status = 0;
	snprintf(data, sizeof(data), "%s/data", pg.dir);
	const char *argv[] = { PG_BIN "/initdb", "-D", data, "-U", "postern", "-A", "trust",
			       "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions", NULL };
	pid_t pid = pg_spawn(argv, true);
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Started directly rather than through pg_ctl, so it is our child: stopping it is one
   SIGQUIT (an immediate shutdown) and a waitpid. fsync=off is safe here, the cluster only has
   to survive the server's death, not the machine's; synchronous_commit stays on, or commits
   still in the WAL buffers would be lost to the outage case's immediate shutdown. */
static bool pg_start(void)
{
	char data[96];
	snprintf(data, sizeof(data), "%s/data", pg.dir);
	const char *argv[] = { PG_BIN "/postgres", "-D", data, "-k", pg.dir,
			       "-c", "listen_addresses=", "-c", "fsync=off", "-c", "full_page_writes=off",
			       "-c", "max_connections=50", NULL };
	pg.pid = pg_spawn(argv, true);
	for (int i = 0; i < 400; i++) {
		if (waitpid(pg.pid, NULL, WNOHANG) == pg.pid) {
			pg.pid = -1;
			return false;
		}
		if (PQping(pg.admin) == PQPING_OK)
			return true;
		usleep(25000);
	}
	return false;
}

static void pg_stop(void)
{
	if (pg.pid <= 0)
		return;
	kill(pg.pid, SIGQUIT);
	waitpid(pg.pid, NULL, 0);
	pg.pid = -1;
}

/* Runs one statement on a connection of our own; returns its first value (0 if none). */
static long long pg_admin(const char *dbname, const char *sql)
{
	char conninfo[256];
	snprintf(conninfo, sizeof(conninfo), "host=%s user=postern dbname=%s connect_timeout=5",
		 pg.dir, dbname);
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", dbname, PQerrorMessage(c));
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	long long v = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	PQfinish(c);
	return v;
}

static int pg_group_setup(void **state)
{
	backend = BACKEND_PG;
	if (access(PG_BIN "/initdb", X_OK) < 0 || access(PG_BIN "/postgres", X_OK) < 0) {
		pg.broken = "PostgreSQL 15 server binaries missing in " PG_BIN
			    " (scripts/bootstrap installs postgresql-15)";
		return 0;
	}
	strcpy(pg.dir, "/tmp/postern-test-store-XXXXXX");
	if (mkdtemp(pg.dir) == NULL)
		return -1;
	pg.have_dir = true;
	snprintf(pg.log, sizeof(pg.log), "%s/server.log", pg.dir);
	snprintf(pg.admin, sizeof(pg.admin), "host=%s user=postern dbname=postgres connect_timeout=5",
		 pg.dir);
	struct passwd *pw = getpwnam("nobody");
	if (geteuid() == 0 && (pw == NULL || chown(pg.dir, pw->pw_uid, pw->pw_gid) < 0))
		pg.broken = "cannot hand the cluster directory to user nobody";
	else if (!pg_initdb())
		pg.broken = "initdb failed";
	else if (!pg_start())
		pg.broken = "the PostgreSQL server did not start";
	if (pg.broken != NULL)
		pg_show_log();
	return 0;
}

static int pg_group_teardown(void **state)
{
	pg_stop();
	if (pg.have_dir)
		rm_rf(pg.dir);
	return 0;
}

static int sqlite_group_setup(void **state)
{
	backend = BACKEND_SQLITE;
	return 0;
}

/* ---- per-case fixture ---- */

/* Writes into spec_r a store spec naming a database nobody has used yet. */
static void fresh_spec(struct fx *fx, char *spec_r, size_t len)
{
	if (backend == BACKEND_SQLITE) {
		static int n;
		snprintf(spec_r, len, "sqlite:%s/extra%d.db", fx->dir, n++);
		return;
	}
	assert_true(fx->ndbs < 4);
	char *db = fx->dbs[fx->ndbs++];
	snprintf(db, sizeof(fx->dbs[0]), "t%d", pg.next_db++);
	char sql[64];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	pg_admin("postgres", sql);
	snprintf(spec_r, len, "postgresql://postern@/%s?host=%s", db, pg.dir);
}

static int fx_setup(void **state)
{
	if (backend == BACKEND_PG && pg.broken != NULL) {
		print_error("PostgreSQL half cannot run: %s\n", pg.broken);
		return -1;
	}
	/* A case that failed with the server stopped must not take the others with it. */
	if (backend == BACKEND_PG && pg.pid <= 0 && !pg_start()) {
		print_error("the PostgreSQL server did not restart\n");
		return -1;
	}
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *error = NULL;
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/postern-test-store-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	if (backend == BACKEND_PG)
		fresh_spec(fx, fx->spec, sizeof(fx->spec));
	if (store_open(fx->spec, fx->dir, &fx->s, &error) != 0) {
		print_error("store_open %s: %s\n", fx->spec, error);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	if (fx == NULL)
		return 0;
	store_free(&fx->s);
	for (int i = 0; i < fx->ndbs && pg.pid > 0; i++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", fx->dbs[i]);
		pg_admin("postgres", sql);
	}
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

/* A second connection of the test's own, for looking behind the store's back. */
struct raw {
	sqlite3 *db;
	PGconn *conn;
};

static void raw_open(struct fx *fx, struct raw *r)
{
	memset(r, 0, sizeof(*r));
	if (backend == BACKEND_SQLITE) {
		char path[128];
		snprintf(path, sizeof(path), "%s/postern.db", fx->dir);
		assert_int_equal(sqlite3_open(path, &r->db), SQLITE_OK);
		return;
	}
	char conninfo[256];
	snprintf(conninfo, sizeof(conninfo), "host=%s user=postern dbname=%s", pg.dir, fx->dbs[0]);
	r->conn = PQconnectdb(conninfo);
	assert_int_equal(PQstatus(r->conn), CONNECTION_OK);
}

/* Runs constant SQL; returns the first value of the last row (0 if none). */
static long long raw_exec(struct raw *r, const char *sql)
{
	long long v = 0;
	if (r->db != NULL) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
			fail_msg("%s: %s", sql, sqlite3_errmsg(r->db));
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			fail_msg("%s: %s", sql, sqlite3_errmsg(r->db));
		return v;
	}
	PGresult *res = PQexec(r->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(r->conn));
	if (PQntuples(res) > 0)
		v = strtoll(PQgetvalue(res, PQntuples(res) - 1, 0), NULL, 10);
	PQclear(res);
	return v;
}

static void raw_close(struct raw *r)
{
	sqlite3_close(r->db);
	PQfinish(r->conn);
	memset(r, 0, sizeof(*r));
}

/* ---- migrations ---- */

static void test_migrations(void **state)
{
	struct fx *fx = *state;
	const char *error = NULL;
	const char *t[] = { "someone@example.net" };
	struct raw r;

	assert_int_equal(store_schema_latest(), 1);
	assert_int_equal(store_schema_version(fx->s), store_schema_latest());
	assert_string_equal(store_backend(fx->s), backend == BACKEND_PG ? "postgresql" : "sqlite");
	put_ok(fx->s, "kept@example.org", t, 1);
	/* Again on the same handle, and by re-opening: nothing to do, nothing lost. */
	assert_int_equal(store_migrate(fx->s, &error), 0);
	store_free(&fx->s);
	assert_null(fx->s);
	store_free(&fx->s);
	assert_int_equal(store_open(fx->spec, fx->dir, &fx->s, &error), 0);
	assert_int_equal(store_schema_version(fx->s), 1);
	expect_targets(fx->s, "kept@example.org", t, 1);
	if (backend == BACKEND_SQLITE) {
		char path[128];
		struct stat st;
		snprintf(path, sizeof(path), "%s/postern.db", fx->dir);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	raw_open(fx, &r);
	assert_int_equal(raw_exec(&r, "SELECT count(*) FROM schema_migrations"), 1);
	assert_int_equal(raw_exec(&r, "SELECT max(version) FROM schema_migrations"), 1);
	raw_close(&r);
}

struct opener {
	const char *spec, *dir;
	struct store *s;
	int rc;
	char error[256];
};

static void *opener_main(void *arg)
{
	struct opener *o = arg;
	const char *error = NULL;
	o->rc = store_open(o->spec, o->dir, &o->s, &error);
	if (o->rc != 0)
		snprintf(o->error, sizeof(o->error), "%s", error);
	return NULL;
}

/* Nodes starting together against an empty database: each migration is applied once. */
static void test_migrations_concurrent(void **state)
{
	struct fx *fx = *state;
	char spec[256];
	pthread_t th[3];
	struct opener o[3];
	fresh_spec(fx, spec, sizeof(spec));
	for (int i = 0; i < 3; i++) {
		o[i] = (struct opener){ .spec = spec, .dir = fx->dir };
		assert_int_equal(pthread_create(&th[i], NULL, opener_main, &o[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 3; i++) {
		if (o[i].rc != 0)
			fail_msg("opener %d: %d %s", i, o[i].rc, o[i].error);
		assert_int_equal(store_schema_version(o[i].s), 1);
	}
	const char *t[] = { "x@example.com" };
	put_ok(o[0].s, "a@example.com", t, 1);
	expect_targets(o[2].s, "a@example.com", t, 1);
	for (int i = 0; i < 3; i++)
		store_free(&o[i].s);
}

static void test_open_errors(void **state)
{
	struct fx *fx = *state;
	struct store *s = NULL;
	const char *error = NULL;
	assert_int_equal(store_open("mysql://user:secret@host/db", fx->dir, &s, &error), STORE_ERROR);
	assert_null(s);
	assert_non_null(strstr(error, "unknown store \"mysql\""));
	assert_null(strstr(error, "secret"));
	assert_int_equal(store_open("sqlite:", fx->dir, &s, &error), STORE_ERROR);
	double t0 = now_ms();
	assert_int_equal(store_open("postgresql:///x?host=/nonexistent/postern&connect_timeout=2",
				    fx->dir, &s, &error), STORE_UNAVAILABLE);
	assert_non_null(strstr(error, "postgresql"));
	assert_true(now_ms() - t0 < 3000);
	assert_int_equal(store_open("sqlite:/nonexistent/postern/x.db", fx->dir, &s, &error),
			 STORE_UNAVAILABLE);
	assert_null(s);
}

/* ---- aliases ---- */

static void test_put_get_replace_delete(void **state)
{
	struct fx *fx = *state;
	const char *error = NULL;
	const char *one[] = { "robot@example.net", "pipe:/usr/local/bin/robot --fast",
			      "maildir:/var/mail/robot/" };
	const char *two[] = { "vacation:", "a@example.com" };
	struct store_alias *a = NULL;

	assert_int_equal(count_of(fx->s, NULL, NULL), 0);
	assert_int_equal(store_alias_get(fx->s, "robot@example.org", &a, &error), 0);
	assert_null(a);
	put_ok(fx->s, "robot@example.org", one, 3);
	expect_targets(fx->s, "robot@example.org", one, 3);
	assert_int_equal(count_of(fx->s, NULL, NULL), 1);

	/* Replacing keeps one row, the new targets in their order, and the creation time. */
	assert_int_equal(store_alias_get(fx->s, "robot@example.org", &a, &error), 1);
	int64_t created = a->created;
	assert_true(created > 1700000000 && a->updated >= created);
	store_alias_free(&a);
	put_ok(fx->s, "robot@example.org", two, 2);
	expect_targets(fx->s, "robot@example.org", two, 2);
	assert_int_equal(count_of(fx->s, NULL, NULL), 1);
	assert_int_equal(store_alias_get(fx->s, "robot@example.org", &a, &error), 1);
	assert_int_equal(a->created, created);
	assert_string_equal(a->key, "robot@example.org");
	store_alias_free(&a);

	assert_int_equal(store_alias_delete(fx->s, "robot@example.org", &error), 1);
	assert_int_equal(store_alias_delete(fx->s, "robot@example.org", &error), 0);
	assert_int_equal(store_alias_get(fx->s, "robot@example.org", &a, &error), 0);
	assert_int_equal(count_of(fx->s, NULL, NULL), 0);
	store_alias_free(&a);
}

static void test_catch_all_and_case(void **state)
{
	struct fx *fx = *state;
	const char *error = NULL;
	const char *t1[] = { "bounce:" };
	const char *t2[] = { "discard:" };
	const char *t3[] = { "error:550 5.1.1 no such user" };
	struct store_alias *a = NULL;

	put_ok(fx->s, "@Robots.EXAMPLE.org", t1, 1);
	put_ok(fx->s, "Info@ROBOTS.example.ORG", t2, 1);
	put_ok(fx->s, "info@robots.example.org", t3, 1);
	assert_int_equal(store_alias_get(fx->s, "@robots.example.org", &a, &error), 1);
	assert_string_equal(a->key, "@robots.example.org");
	store_alias_free(&a);
	/* Keys are case-blind, local part too, as mail systems' tables are: the second put
	   replaced the first. */
	(void)t2;
	expect_targets(fx->s, "Info@robots.example.org", t3, 1);
	expect_targets(fx->s, "info@Robots.Example.Org", t3, 1);
	expect_targets(fx->s, "INFO@robots.example.org", t3, 1);
	/* A catch-all is an alias like any other: finding it for an address is the router's. */
	expect_missing(fx->s, "other@robots.example.org");
	expect_missing(fx->s, "@example.org");
	assert_int_equal(count_of(fx->s, NULL, NULL), 2);
	assert_int_equal(count_of(fx->s, NULL, "ROBOTS.example.org"), 2);
	assert_int_equal(count_of(fx->s, NULL, "@robots.example.org"), 2);
	assert_int_equal(count_of(fx->s, "@", NULL), 1);
	assert_int_equal(count_of(fx->s, NULL, "example.org"), 0);
	assert_int_equal(store_alias_delete(fx->s, "@ROBOTS.example.org", &error), 1);
	assert_int_equal(count_of(fx->s, "@", NULL), 0);
}

static void test_key_normalise(void **state)
{
	static const struct {
		const char *in, *out;
	} table[] = {
		{ "User@EXAMPLE.Org", "user@example.org" },
		{ "@EXAMPLE.Org", "@example.org" },
		{ "\"plain\"@Example.org", "plain@example.org" },
		{ "\"a b\"@example.org", "\"a b\"@example.org" },
		{ "x@[192.0.2.1]", "x@[192.0.2.1]" },
		{ "\xc3\xbc@EX\xc3\x84mple.org", "\xc3\xbc@ex\xc3\x84mple.org" },
	};
	char key[STORE_ALIAS_KEY_MAX], err[256];
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (store_alias_key_normalise(table[i].in, key, err, sizeof(err)) != 0)
			fail_msg("%s: %s", table[i].in, err);
		assert_string_equal(key, table[i].out);
	}
}

static void test_validation(void **state)
{
	static const struct {
		const char *key;
		const char *targets[3];
		size_t n;
		const char *error; /* a part of the expected error text */
	} table[] = {
		{ "", { "a@example.org" }, 1, "is not local@domain or @domain" },
		{ "plain", { "a@example.org" }, 1, "is not local@domain or @domain" },
		{ "a@", { "a@example.org" }, 1, "missing domain" },
		{ "@", { "a@example.org" }, 1, "catch-all alias" },
		{ "a@@example.org", { "a@example.org" }, 1, "is not local@domain" },
		{ "a b@example.org", { "a@example.org" }, 1, "is not local@domain" },
		{ "@exa..mple.org", { "a@example.org" }, 1, "catch-all alias" },
		{ "@-x.example.org", { "a@example.org" }, 1, "hyphen" },
		{ "a@example.org", { NULL }, 0, "at least one target" },
		{ "a@example.org", { "" }, 1, "target 1 is empty" },
		{ "a@example.org", { "b@example.org", "smtp:[relay]" }, 2,
		  "target 2 \"smtp:[relay]\" is neither an address" },
		{ "a@example.org", { "just some text" }, 1, "nor a local target (pipe:" },
		{ "a@example.org", { "pipe:" }, 1, "needs an argument" },
		{ "a@example.org", { "webhook:" }, 1, "needs an argument" },
		{ "a@example.org", { "maildir:" }, 1, "needs an argument" },
		{ "a@example.org", { "b@example.org\r\nRCPT TO:<x@y>" }, 1, "control character" },
		{ "a@example.org", { "\xff@example.org" }, 1, "not valid UTF-8" },
		{ "a@example.org", { "b@example.org", "c@example.org", "b@example.org" }, 3,
		  "target 3 repeats target 1" },
	};
	struct fx *fx = *state;
	const char *error = NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		int rc = store_alias_put(fx->s, table[i].key, table[i].targets, table[i].n, &error);
		if (rc != STORE_ERROR || strstr(error, table[i].error) == NULL)
			fail_msg("case %zu: rc %d, error \"%s\", expected \"%s\"", i, rc,
				 rc < 0 ? error : "", table[i].error);
	}
	assert_int_equal(count_of(fx->s, NULL, NULL), 0);
	/* Lookups with a bad key are refused, not "not found". */
	struct store_alias *a = NULL;
	assert_int_equal(store_alias_get(fx->s, "no domain", &a, &error), STORE_ERROR);
	assert_null(a);
	assert_int_equal(store_alias_delete(fx->s, "@", &error), STORE_ERROR);
}

/* Limits: number of targets and length of one; and the unusual targets that are fine. */
static void test_validation_limits(void **state)
{
	struct fx *fx = *state;
	const char *error = NULL;
	static const char *many[STORE_ALIAS_TARGETS_MAX + 1];
	for (size_t i = 0; i <= STORE_ALIAS_TARGETS_MAX; i++)
		many[i] = "discard:";
	assert_int_equal(store_alias_put(fx->s, "a@example.org", many, STORE_ALIAS_TARGETS_MAX + 1,
					 &error), STORE_ERROR);
	assert_non_null(strstr(error, "too many targets"));
	char *longest = malloc(STORE_ALIAS_TARGET_MAX + 2);
	memset(longest, 'x', STORE_ALIAS_TARGET_MAX + 1);
	memcpy(longest, "pipe:", 5);
	longest[STORE_ALIAS_TARGET_MAX + 1] = '\0';
	const char *too_long[] = { longest };
	assert_int_equal(store_alias_put(fx->s, "a@example.org", too_long, 1, &error), STORE_ERROR);
	assert_non_null(strstr(error, "too long"));
	longest[STORE_ALIAS_TARGET_MAX] = '\0';
	put_ok(fx->s, "a@example.org", too_long, 1);
	free(longest);
	assert_int_equal(count_of(fx->s, NULL, NULL), 1);
	const char *fine[] = { "mda:", "discard:", "mask:", "error:", "bounce:x", "vacation:y",
			       "\"quoted local\"@example.org", "\xc3\xbc@ex\xc3\xa4mple.org" };
	put_ok(fx->s, "b@example.org", fine, 8);
	expect_targets(fx->s, "b@example.org", fine, 8);
}

/* ---- paging ---- */

#define PAGING_N 2500

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pages through the aliases q matches, pages of page_size; checks each page's order and the
   "more" flag, and returns the keys seen, in order. */
static char **page_all(struct store *s, struct store_alias_query q, size_t *n_r)
{
	char **keys = NULL;
	size_t n = 0;
	char last[STORE_ALIAS_KEY_MAX] = "";
	for (;;) {
		struct store_alias_list *l = NULL;
		const char *error = NULL;
		q.after = last;
		if (store_alias_list(s, &q, &l, &error) != 0)
			fail_msg("list after %s: %s", last, error);
		assert_true(l->n <= q.limit);
		keys = realloc(keys, (n + l->n) * sizeof(*keys) + 1);
		for (size_t i = 0; i < l->n; i++) {
			assert_true(n == 0 || strcmp(keys[n - 1], l->items[i].key) < 0);
			keys[n++] = strdup(l->items[i].key);
		}
		bool more = l->more;
		assert_true(!more || l->n == q.limit);
		if (l->n > 0)
			snprintf(last, sizeof(last), "%s", l->items[l->n - 1].key);
		store_alias_list_free(&l);
		assert_null(l);
		if (!more)
			break;
	}
	*n_r = n;
	return keys;
}

static void free_keys(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

static void test_paging(void **state)
{
	struct fx *fx = *state;
	char *want[PAGING_N];
	for (int i = 0; i < PAGING_N; i++) {
		char key[64], target[64];
		snprintf(key, sizeof(key), "u%04d@d%d.example", (i * 7919) % PAGING_N, i % 2);
		snprintf(target, sizeof(target), "t%d@example.net", i);
		const char *t[] = { target };
		put_ok(fx->s, key, t, 1);
		want[i] = strdup(key);
	}
	qsort(want, PAGING_N, sizeof(want[0]), cmp_str);
	assert_int_equal(count_of(fx->s, NULL, NULL), PAGING_N);

	size_t n = 0;
	char **got = page_all(fx->s, (struct store_alias_query){ .limit = 100 }, &n);
	assert_int_equal(n, PAGING_N);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(got[i], want[i]);
	free_keys(got, n);

	/* Filters: a domain (any case), a prefix; each page still full but the last. */
	got = page_all(fx->s, (struct store_alias_query){ .domain = "D1.Example", .limit = 100 }, &n);
	assert_int_equal(n, PAGING_N / 2);
	for (size_t i = 0; i < n; i++)
		assert_non_null(strstr(got[i], "@d1.example"));
	free_keys(got, n);
	got = page_all(fx->s, (struct store_alias_query){ .prefix = "u00", .limit = 30 }, &n);
	assert_int_equal(n, 100);
	free_keys(got, n);
	assert_int_equal(count_of(fx->s, "u00", NULL), 100);
	assert_int_equal(count_of(fx->s, "u00", "d0.example"), 50);
	assert_int_equal(count_of(fx->s, "u0001@D1.EXAMPLE", NULL), 1);
	for (int i = 0; i < PAGING_N; i++)
		free(want[i]);
}

/* Page sizes: 0 is the default, too large is capped; nothing after the last key. */
static void test_page_sizes(void **state)
{
	struct fx *fx = *state;
	const char *t[] = { "discard:" };
	for (int i = 0; i < STORE_LIST_MAX + 10; i++) {
		char key[64];
		snprintf(key, sizeof(key), "p%04d@example.org", i);
		put_ok(fx->s, key, t, 1);
	}
	struct store_alias_list *l = NULL;
	const char *error = NULL;
	assert_int_equal(store_alias_list(fx->s, NULL, &l, &error), 0);
	assert_int_equal(l->n, STORE_LIST_DEFAULT);
	assert_true(l->more);
	store_alias_list_free(&l);
	struct store_alias_query big = { .limit = 100000 };
	assert_int_equal(store_alias_list(fx->s, &big, &l, &error), 0);
	assert_int_equal(l->n, STORE_LIST_MAX);
	store_alias_list_free(&l);
	big.after = "p1009@example.org";
	assert_int_equal(store_alias_list(fx->s, &big, &l, &error), 0);
	assert_int_equal(l->n, 0);
	assert_false(l->more);
	store_alias_list_free(&l);
	big.after = "p1008@example.org";
	assert_int_equal(store_alias_list(fx->s, &big, &l, &error), 0);
	assert_int_equal(l->n, 1);
	assert_false(l->more);
	store_alias_list_free(&l);
}

/* ---- values that would break pasted SQL ---- */

static void test_parameter_safety(void **state)
{
	static const char *const keys[] = {
		"\"o'brien\\\\x\"@example.org",
		"\"'; DROP TABLE aliases; --\"@example.org",
		"100%_off@example.org",
		"_x_@example.org",
		"\xc3\xbcser@ex\xc3\xa4mple.org",
		"1000off@example.org",
		"100xoff@example.org",
	};
	static const char *const targets[] = {
		"pipe:/usr/bin/robot --name 'it''s' \"q\" \\ 100% _ $1 ?",
		"webhook:https://hook.example/in?a=%27&b=\\x&c=\"",
		"error:550 5.1.1 it's \"gone\" \\o/",
		"\xc3\xbcnic\303\266de@ex\xc3\xa4mple.org",
		"\"quoted \\\" local\"@example.org",
		"mask:%s%n%x",
	};
	struct fx *fx = *state;
	size_t nkeys = sizeof(keys) / sizeof(keys[0]), nt = sizeof(targets) / sizeof(targets[0]);
	for (size_t i = 0; i < nkeys; i++)
		put_ok(fx->s, keys[i], (const char *const *)targets, nt - i % 3);
	for (size_t i = 0; i < nkeys; i++)
		expect_targets(fx->s, keys[i], (const char *const *)targets, nt - i % 3);
	assert_int_equal(count_of(fx->s, NULL, NULL), nkeys);
	/* A prefix is text, not a LIKE pattern: '%' and '_' match themselves only. */
	assert_int_equal(count_of(fx->s, "100%", NULL), 1);
	assert_int_equal(count_of(fx->s, "_", NULL), 1);
	assert_int_equal(count_of(fx->s, "\"'", NULL), 1);
	assert_int_equal(count_of(fx->s, "\xc3\xbc", NULL), 1);
	assert_int_equal(count_of(fx->s, NULL, "ex\xc3\xa4mple.org"), 1);
	struct store_alias_list *l = NULL;
	const char *error = NULL;
	struct store_alias_query q = { .after = "\"'; DROP TABLE aliases; --\"@example.org" };
	assert_int_equal(store_alias_list(fx->s, &q, &l, &error), 0);
	assert_int_equal(l->n, nkeys - 1); /* '"' sorts first, then '\'' before 'o' */
	store_alias_list_free(&l);
	assert_int_equal(store_alias_delete(fx->s, keys[0], &error), 1);
	assert_int_equal(count_of(fx->s, NULL, NULL), nkeys - 1);
}

/* ---- two writers ---- */

#define RACE_ROUNDS 40

struct writer {
	struct store *s;
	int id;
	int failures;
	char error[256];
};

static const char *race_targets[2][2] = {
	{ "first@example.net", "pipe:/bin/first" },
	{ "second@example.net", "pipe:/bin/second" },
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; i < RACE_ROUNDS; i++) {
		const char *error = NULL;
		/* Each writer puts its own list, of one or two targets by turns. */
		if (store_alias_put(w->s, "race@example.org", race_targets[w->id], 1 + i % 2,
				    &error) != 0) {
			w->failures++;
			snprintf(w->error, sizeof(w->error), "%s", error);
		}
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct fx *fx = *state;
	struct writer w[2] = { { .s = fx->s, .id = 0 }, { .id = 1 } };
	const char *error = NULL;
	pthread_t th[2];
	assert_int_equal(store_open(fx->spec, fx->dir, &w[1].s, &error), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++) {
		if (w[i].failures != 0)
			fail_msg("writer %d: %d failures, last: %s", i, w[i].failures, w[i].error);
	}
	/* The final state is the last write of one of them (both end with two targets). */
	struct store_alias *a = NULL;
	assert_int_equal(store_alias_get(w[1].s, "race@example.org", &a, &error), 1);
	assert_int_equal(a->ntargets, 2);
	bool first = strcmp(a->targets[0], race_targets[0][0]) == 0;
	assert_string_equal(a->targets[1], race_targets[first ? 0 : 1][1]);
	store_alias_free(&a);
	store_free(&w[1].s);
	struct raw r;
	raw_open(fx, &r);
	assert_int_equal(raw_exec(&r, "SELECT count(*) FROM aliases"), 1);
	raw_close(&r);
}

/* ---- unavailability ---- */

/* Another connection holds the row's write lock: a writer gives up after the lock timeout
   with STORE_UNAVAILABLE, while readers are not held up at all. */
static void test_lock_timeout(void **state)
{
	struct fx *fx = *state;
	const char *error = NULL;
	const char *t[] = { "old@example.net" }, *t2[] = { "new@example.net" };
	struct raw r;
	put_ok(fx->s, "locked@example.org", t, 1);
	raw_open(fx, &r);
	if (backend == BACKEND_SQLITE) {
		raw_exec(&r, "BEGIN IMMEDIATE");
		raw_exec(&r, "UPDATE aliases SET updated = updated WHERE key = 'locked@example.org'");
	} else {
		raw_exec(&r, "BEGIN");
		raw_exec(&r, "SELECT 1 FROM aliases WHERE key = 'locked@example.org' FOR UPDATE");
	}
	assert_int_equal(store_set_lock_timeout(fx->s, 300, &error), 0);
	double t0 = now_ms();
	assert_int_equal(store_alias_put(fx->s, "locked@example.org", t2, 1, &error),
			 STORE_UNAVAILABLE);
	double waited = now_ms() - t0;
	assert_true(waited >= 250 && waited < 3000);
	expect_targets(fx->s, "locked@example.org", t, 1);
	raw_exec(&r, "ROLLBACK");
	raw_close(&r);
	put_ok(fx->s, "locked@example.org", t2, 1);
	expect_targets(fx->s, "locked@example.org", t2, 1);
}

/* Every call made while the server is down fails as STORE_UNAVAILABLE within a few seconds. */
static void expect_unavailable(struct store *s)
{
	const char *t[] = { "x@example.net" };
	const char *error = NULL;
	struct store_alias *a = NULL;
	uint64_t n;
	for (int i = 0; i < 3; i++) {
		double t0 = now_ms();
		assert_int_equal(store_alias_get(s, "up@example.org", &a, &error), STORE_UNAVAILABLE);
		assert_int_equal(store_alias_put(s, "up@example.org", t, 1, &error), STORE_UNAVAILABLE);
		assert_int_equal(store_alias_count(s, NULL, &n, &error), STORE_UNAVAILABLE);
		assert_true(store_schema_version(s) == STORE_UNAVAILABLE);
		assert_non_null(strstr(error, "postgresql"));
		assert_true(now_ms() - t0 < 3000);
	}
	assert_null(a);
}

/* The same handle finds key again once the server is back. Reconnects are tried at most once
   a second, so that may take a second. */
static void expect_recovery(struct store *s, const char *key)
{
	struct store_alias *a = NULL;
	const char *error = NULL;
	int rc = STORE_UNAVAILABLE;
	double t0 = now_ms();
	while (rc == STORE_UNAVAILABLE && now_ms() - t0 < 5000) {
		rc = store_alias_get(s, key, &a, &error);
		if (rc == STORE_UNAVAILABLE)
			usleep(100000);
	}
	if (rc != 1)
		fail_msg("after restart: %d %s", rc, error);
	store_alias_free(&a);
}

/* PostgreSQL: the server goes away under an open handle and comes back; the handle recovers
   by itself. SQLite has no server: a file that cannot be opened is its outage. */
static void test_outage(void **state)
{
	struct fx *fx = *state;
	const char *error = NULL;
	const char *t[] = { "up@example.net" };
	if (backend == BACKEND_SQLITE) {
		struct store *s = NULL;
		char spec[128];
		snprintf(spec, sizeof(spec), "sqlite:%s/missing/postern.db", fx->dir);
		assert_int_equal(store_open(spec, fx->dir, &s, &error), STORE_UNAVAILABLE);
		return;
	}
	put_ok(fx->s, "up@example.org", t, 1);
	assert_int_equal(store_set_lock_timeout(fx->s, 200, &error), 0);
	pg_stop();
	expect_unavailable(fx->s);
	assert_true(pg_start());
	expect_recovery(fx->s, "up@example.org");
	const char *t2[] = { "again@example.net" };
	put_ok(fx->s, "up@example.org", t2, 1);
	expect_targets(fx->s, "up@example.org", t2, 1);
	/* The lock timeout is a session setting: the new session must have it too. */
	struct raw r;
	raw_open(fx, &r);
	raw_exec(&r, "BEGIN");
	raw_exec(&r, "SELECT 1 FROM aliases WHERE key = 'up@example.org' FOR UPDATE");
	double t0 = now_ms();
	assert_int_equal(store_alias_put(fx->s, "up@example.org", t, 1, &error), STORE_UNAVAILABLE);
	assert_true(now_ms() - t0 < 2000);
	raw_close(&r);
}

/* ---- store_async ---- */

static pthread_t loop_thread;
static int async_done; /* done callbacks run so far */

/* Holds a job on its worker until opened; bounded, so a broken test cannot hang. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, open;
};

struct job {
	struct gate *gate; /* for the blocking job, else NULL */
	char key[64];
	int result;
	int calls;
	bool on_loop;   /* done ran on the loop thread */
	bool on_worker; /* fn ran elsewhere */
};

static void gate_init(struct gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void gate_wait_entered(struct gate *g)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&g->lock);
		bool entered = g->entered;
		pthread_mutex_unlock(&g->lock);
		if (entered)
			return;
		usleep(10000);
	}
	fail_msg("the blocking job never started");
}

static int job_put(struct store *s, void *arg)
{
	struct job *j = arg;
	const char *error = NULL;
	const char *t[] = { "async@example.net" };
	j->on_worker = !pthread_equal(pthread_self(), loop_thread);
	if (j->gate != NULL) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		pthread_mutex_lock(&j->gate->lock);
		j->gate->entered = true;
		while (!j->gate->open &&
		       pthread_cond_timedwait(&j->gate->cond, &j->gate->lock, &until) == 0)
			;
		pthread_mutex_unlock(&j->gate->lock);
	}
	return store_alias_put(s, j->key, t, 1, &error);
}

static void job_done(void *arg, int result)
{
	struct job *j = arg;
	j->result = result;
	j->calls++;
	j->on_loop = pthread_equal(pthread_self(), loop_thread);
	async_done++;
}

/* Cancelled jobs open the gate: shutdown cancels before it waits for the running job. */
static void job_done_open(void *arg, int result)
{
	job_done(arg, result);
	gate_open(((struct job *)arg)->gate);
}

static void watchdog_fired(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Runs the loop until async_done reaches want; fails after limit_ms instead of hanging. */
static void run_until(struct event_base *base, int want, int limit_ms)
{
	bool expired = false;
	struct timeval tv = { limit_ms / 1000, (limit_ms % 1000) * 1000 };
	struct event *watchdog = evtimer_new(base, watchdog_fired, &expired);
	evtimer_add(watchdog, &tv);
	while (async_done < want && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(watchdog);
	assert_int_equal(async_done, want);
}

static struct store_async *async_new(struct fx *fx, struct event_base *base, unsigned workers,
				     unsigned queue_max)
{
	struct store_async *a = NULL;
	const char *error = NULL;
	if (store_async_new(base, fx->spec, fx->dir, workers, queue_max, &a, &error) != 0)
		fail_msg("store_async_new: %s", error);
	loop_thread = pthread_self();
	async_done = 0;
	return a;
}

static void test_async_jobs(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct store_async *a = async_new(fx, base, 2, 64);
	struct job jobs[40];
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 40; i++) {
		snprintf(jobs[i].key, sizeof(jobs[i].key), "j%d@async.example", i);
		assert_int_equal(store_async_submit(a, job_put, &jobs[i], job_done), 0);
	}
	assert_int_equal(store_async_pending(a), 40);
	run_until(base, 40, 10000);
	assert_int_equal(store_async_pending(a), 0);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(jobs[i].calls, 1);
		assert_int_equal(jobs[i].result, 0);
		assert_true(jobs[i].on_loop);
		assert_true(jobs[i].on_worker);
	}
	assert_int_equal(count_of(fx->s, NULL, "async.example"), 40);
	/* A failing job's status reaches done as it is. */
	struct job bad = { .key = "not an address" };
	assert_int_equal(store_async_submit(a, job_put, &bad, job_done), 0);
	run_until(base, 41, 10000);
	assert_int_equal(bad.result, STORE_ERROR);
	store_async_free(&a);
	assert_null(a);
	store_async_free(&a);
	event_base_free(base);
}

static void test_async_bounded(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct store_async *a = async_new(fx, base, 1, 2);
	struct gate gate;
	struct job jobs[4];
	gate_init(&gate);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 4; i++)
		snprintf(jobs[i].key, sizeof(jobs[i].key), "b%d@bounded.example", i);
	jobs[0].gate = &gate;
	assert_int_equal(store_async_submit(a, job_put, &jobs[0], job_done), 0);
	gate_wait_entered(&gate);
	/* One running, two waiting: the queue is full and the fourth is refused at once. */
	assert_int_equal(store_async_submit(a, job_put, &jobs[1], job_done), 0);
	assert_int_equal(store_async_submit(a, job_put, &jobs[2], job_done), 0);
	assert_int_equal(store_async_submit(a, job_put, &jobs[3], job_done), STORE_UNAVAILABLE);
	assert_int_equal(store_async_pending(a), 3);
	gate_open(&gate);
	run_until(base, 3, 10000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(jobs[i].result, 0);
	assert_int_equal(jobs[3].calls, 0);
	/* Room again once the queue has drained. */
	assert_int_equal(store_async_submit(a, job_put, &jobs[3], job_done), 0);
	run_until(base, 4, 10000);
	assert_int_equal(jobs[3].result, 0);
	store_async_free(&a);
	event_base_free(base);
	assert_int_equal(count_of(fx->s, NULL, "bounded.example"), 4);
}

static void test_async_shutdown(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct store_async *a = async_new(fx, base, 1, 8);
	struct gate gate;
	struct job jobs[4];
	gate_init(&gate);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 4; i++) {
		snprintf(jobs[i].key, sizeof(jobs[i].key), "s%d@shutdown.example", i);
		jobs[i].gate = &gate;
	}
	assert_int_equal(store_async_submit(a, job_put, &jobs[0], job_done), 0);
	gate_wait_entered(&gate);
	assert_int_equal(store_async_submit(a, job_put, &jobs[1], job_done_open), 0);
	assert_int_equal(store_async_submit(a, job_put, &jobs[2], job_done), 0);
	assert_int_equal(store_async_submit(a, job_put, &jobs[3], job_done), 0);
	/* Without running the loop: shutdown itself reports every job, on this thread. */
	store_async_free(&a);
	assert_null(a);
	assert_int_equal(async_done, 4);
	assert_int_equal(jobs[0].result, 0);
	for (int i = 1; i < 4; i++)
		assert_int_equal(jobs[i].result, STORE_CANCELLED);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(jobs[i].calls, 1);
		assert_true(jobs[i].on_loop);
	}
	event_base_free(base);
	assert_int_equal(count_of(fx->s, NULL, "shutdown.example"), 1);
}

static int async_version(struct store *s, void *arg)
{
	return store_schema_version(s);
}

static void async_version_done(void *arg, int result)
{
	*(int *)arg = result;
}

/* A bad spec fails at once; a database that cannot be reached does not: the pool starts, its
   jobs are unavailable meanwhile (without waiting), and it connects once it can. */
static void test_async_open_error(void **state)
{
	struct event_base *base = event_base_new();
	struct store_async *a = NULL;
	const char *error = NULL;
	assert_int_equal(store_async_new(base, "mysql://x", "/tmp", 2, 0, &a, &error), STORE_ERROR);
	assert_null(a);
	assert_int_equal(store_async_new(base, "postgresql:///x?host=/nonexistent/postern", "/tmp", 2,
					 0, &a, &error), 0);
	int result = 1;
	assert_int_equal(store_async_submit(a, async_version, &result, async_version_done), 0);
	for (int spins = 0; store_async_pending(a) > 0 && spins < 5000; spins++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(result, STORE_UNAVAILABLE);
	store_async_free(&a);
	event_base_free(base);
}

#define CASE(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest cases[] = {
		CASE(test_migrations),
		CASE(test_migrations_concurrent),
		CASE(test_open_errors),
		CASE(test_put_get_replace_delete),
		CASE(test_catch_all_and_case),
		CASE(test_key_normalise),
		CASE(test_validation),
		CASE(test_validation_limits),
		CASE(test_paging),
		CASE(test_page_sizes),
		CASE(test_parameter_safety),
		CASE(test_concurrent_writers),
		CASE(test_lock_timeout),
		CASE(test_async_jobs),
		CASE(test_async_bounded),
		CASE(test_async_shutdown),
		CASE(test_async_open_error),
		CASE(test_outage),
	};
	evthread_use_pthreads();
	int failed = cmocka_run_group_tests_name("sqlite", cases, sqlite_group_setup, NULL);
	failed += cmocka_run_group_tests_name("postgresql", cases, pg_group_setup,
					      pg_group_teardown);
	return failed != 0;
}
