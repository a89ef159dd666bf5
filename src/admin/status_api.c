/* /v1/status and /v1/reload. The status asks the store for its schema version on a store
   worker, like every store call of the daemon; a reload is the daemon's SIGHUP. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>

#include "admin/admin_int.h"
#include "conf/config.h"
#include "queue/qmgr.h"
#include "route/router.h"
#include "smtp/server.h"
#include "store/store_async.h"
#include "util/xalloc.h"

static const char *const status_no_params[] = { NULL };
static time_t status_started;

struct status_job {
	struct evhttp_request *r; /* NULL once the client has gone */
	const struct smtp_context *ctx;
	const char *method;
	int version;
	char backend[16];
	char error[512];
};

void admin_status_init(void)
{
	status_started = time(NULL);
}

static int status_job_run(struct store *s, void *arg)
{
	struct status_job *j = arg;
	snprintf(j->backend, sizeof(j->backend), "%s", store_backend(s));
	j->version = store_schema_version(s);
	return j->version < 0 ? j->version : 0;
}

/* The store setting without a password ("postgresql://user:secret@host/db"): the API's clients
   may read the status, not the database's credentials. */
static json_t *status_spec(const char *spec)
{
	const char *scheme = strstr(spec, "://"), *at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
	const char *colon = scheme != NULL ? strchr(scheme + 3, ':') : NULL;
	if (at == NULL || colon == NULL || colon > at)
		return json_string(spec);
	return json_sprintf("%.*s:***%s", (int)(colon - spec), spec, at);
}

static json_t *status_json(const struct smtp_context *ctx, json_t *store)
{
	return json_pack("{s:s, s:s, s:i, s:I, s:i, s:b, s:o, s:{s:i, s:i}}", "status", "ok", "version",
			 POSTERN_VERSION, "pid", (int)getpid(), "uptime_s", (json_int_t)(time(NULL) - status_started),
			 "queue_active", ctx->qmgr != NULL ? (int)qmgr_active(ctx->qmgr) : 0, "delivery_paused",
			 ctx->conf->delivery_paused, "store", store, "rules", "transport",
			 (int)router_transport_count(ctx->router), "rewrite", (int)router_rewrite_count(ctx->router));
}

static void status_job_gone(struct evhttp_connection *conn, void *arg)
{
	((struct status_job *)arg)->r = NULL;
}

static void status_job_done(void *arg, int result)
{
	struct status_job *j = arg;
	if (j->r != NULL) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(j->r), NULL, NULL);
		struct admin_req req = { .ctx = j->ctx, .r = j->r, .method = j->method };
		json_t *store = result < 0 ? json_pack("{s:o, s:s}", "spec", status_spec(j->ctx->conf->store), "error",
						       result == STORE_CANCELLED ? "shutting down" : "unavailable")
					   : json_pack("{s:o, s:s, s:i, s:i}", "spec", status_spec(j->ctx->conf->store), "backend",
						       j->backend, "schema_version", j->version, "schema_latest",
						       store_schema_latest());
		admin_reply(&req, 200, status_json(j->ctx, store));
	}
	free(j);
}

void admin_status(struct admin_req *req)
{
	if (admin_params_check(req, status_no_params) < 0)
		return;
	struct status_job *j = xcalloc(1, sizeof(*j));
	*j = (struct status_job){ .r = req->r, .ctx = req->ctx, .method = req->method };
	if (req->ctx->store == NULL || store_async_submit(req->ctx->store, status_job_run, j, status_job_done) < 0) {
		free(j);
		admin_reply(req, 200, status_json(req->ctx, json_pack("{s:o, s:s}", "spec", status_spec(req->ctx->conf->store),
								       "error", "unavailable")));
		return;
	}
	evhttp_connection_set_closecb(evhttp_request_get_connection(req->r), status_job_gone, j);
}

/* The daemon's own SIGHUP handler does the reload (daemon.c), so that the API and the signal
   reload the same way; the outcome is in the log, and postern reload checks the files first. */
void admin_reload(struct admin_req *req)
{
	if (admin_params_check(req, status_no_params) < 0)
		return;
	raise(SIGHUP);
	admin_reply(req, 202, json_pack("{s:s}", "reload", "requested"));
}
