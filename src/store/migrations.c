#include "store/store_int.h"

/* Schema changes, numbered, one SQL text per dialect; store_migrate applies each at most once
   and records it in schema_migrations (created by v1 itself: an empty database is version 0).
   Migrations are only ever appended, and only add things, so a node still running the previous
   release keeps working against a database a newer node has migrated.

   Aliases are one row per key with the targets as an ordered JSON array rather than one row
   per target: the primary key then guarantees one alias per address, a put is a single-row
   upsert that needs no multi-statement transaction (two writers of the same key cannot mix
   their targets), and the RCPT-time lookup reads one row. Keys sort byte-wise in both
   dialects (SQLite BINARY, PostgreSQL COLLATE "C"), so paging by key means the same thing
   everywhere. */

static const char v1_sqlite[] =
	"CREATE TABLE schema_migrations ("
	" version INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" applied INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)));"
	"CREATE TABLE aliases ("
	" key TEXT NOT NULL PRIMARY KEY,"
	" domain TEXT NOT NULL,"
	" targets TEXT NOT NULL"
	"  CHECK (json_type(targets) = 'array' AND json_array_length(targets) > 0),"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX aliases_domain ON aliases (domain, key);";

static const char v1_pg[] =
	"CREATE TABLE schema_migrations ("
	" version integer PRIMARY KEY,"
	" name text NOT NULL,"
	" applied timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE aliases ("
	" key text COLLATE \"C\" PRIMARY KEY,"
	" domain text COLLATE \"C\" NOT NULL,"
	" targets jsonb NOT NULL CHECK (CASE WHEN jsonb_typeof(targets) = 'array'"
	"  THEN jsonb_array_length(targets) > 0 ELSE false END),"
	" created timestamptz NOT NULL DEFAULT now(),"
	" updated timestamptz NOT NULL DEFAULT now());"
	"CREATE INDEX aliases_domain ON aliases (domain, key);";

const struct store_migration store_migrations[] = {
	{ 1, "schema_migrations and aliases", { v1_sqlite, v1_pg } },
};

const size_t store_migrations_count = sizeof(store_migrations) / sizeof(store_migrations[0]);
