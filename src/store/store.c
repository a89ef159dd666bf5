#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"
#include "util/log.h"
#include "util/xalloc.h"

/* The backend choice and the migration runner; the alias operations are in store_alias.c. */

/* store_open has no handle to keep its error text in when the open itself fails. */
static _Thread_local char store_open_error[STORE_ERROR_MAX];

int store_fail(struct store *s, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	return status;
}

static bool store_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Only the scheme is echoed back: a mistyped URI may still carry a password. */
static int store_backend_open(const char *spec, const char *state_dir, struct store **s_r,
			      char *err, size_t errlen)
{
	if (*spec == '\0' || strcmp(spec, "sqlite") == 0) {
		char *path = xasprintf("%s/postern.db", state_dir);
		int rc = store_sqlite_open(path, s_r, err, errlen);
		free(path);
		return rc;
	}
	if (store_has_prefix(spec, "sqlite:") && spec[7] != '\0')
		return store_sqlite_open(spec + 7, s_r, err, errlen);
	if (store_has_prefix(spec, "postgresql://") || store_has_prefix(spec, "postgres://"))
		return store_pg_open(spec, s_r, err, errlen);
	snprintf(err, errlen, "unknown store \"%.*s\": expected sqlite, sqlite:PATH or "
		 "postgresql://...", (int)strcspn(spec, ":"), spec);
	return STORE_ERROR;
}

int store_open(const char *spec, const char *state_dir, struct store **store_r,
	       const char **error_r)
{
	struct store *s = NULL;
	const char *error = NULL;
	*store_r = NULL;
	*error_r = store_open_error;
	int rc = store_backend_open(spec, state_dir, &s, store_open_error,
				    sizeof(store_open_error));
	if (rc < 0)
		return rc;
	rc = store_migrate(s, &error);
	if (rc < 0) {
		snprintf(store_open_error, sizeof(store_open_error), "%s", error);
		store_free(&s);
		return rc;
	}
	*store_r = s;
	return 0;
}

void store_free(struct store **sp)
{
	if (*sp == NULL)
		return;
	(*sp)->ops->free(*sp);
	*sp = NULL;
}

const char *store_backend(const struct store *s)
{
	return s->ops->name;
}

int store_schema_latest(void)
{
	return store_migrations[store_migrations_count - 1].version;
}

int store_schema_version(struct store *s)
{
	return s->ops->schema_version(s);
}

static int store_migrate_locked(struct store *s)
{
	int version = s->ops->schema_version(s);
	if (version < 0)
		return version;
	if (version > store_schema_latest())
		log_warn("store: schema version %d is newer than this program's %d; continuing, "
			 "since migrations only add", version, store_schema_latest());
	for (size_t i = 0; i < store_migrations_count; i++) {
		const struct store_migration *m = &store_migrations[i];
		if (m->version <= version)
			continue;
		int rc = s->ops->exec_script(s, m->sql[s->ops->dialect]);
		if (rc == 0)
			rc = s->ops->migration_record(s, m->version, m->name);
		if (rc < 0)
			return rc;
		log_info("store: backend=%s, migration=%d, name=%s, status=applied", s->ops->name,
			 m->version, m->name);
	}
	return 0;
}

int store_migrate(struct store *s, const char **error_r)
{
	*error_r = s->error;
	int rc = s->ops->migrate_begin(s);
	if (rc < 0)
		return rc;
	rc = store_migrate_locked(s);
	/* A failed migration leaves its own error text: the rollback does not overwrite it. */
	int end = s->ops->migrate_end(s, rc == 0);
	return rc < 0 ? rc : end;
}

int store_set_lock_timeout(struct store *s, unsigned ms, const char **error_r)
{
	*error_r = s->error;
	return s->ops->set_lock_timeout(s, ms);
}
