/* /v1/aliases: the aliases in the store (docs/api.md). Input is checked here, on the loop;
   the store call runs on a store worker (store_async.h) and the reply follows when it is back.
   The connection's close callback tells when libevent frees the request first (it does at
   shutdown, in evhttp_free), so the late answer is dropped instead of written to freed memory.
   libevent 2.1 stops reading a connection while its request is pending, so a client that
   hangs up meanwhile is only noticed when the reply is written; should a later libevent detach
   the request on EOF instead, the request would leak here (not be used after free). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "admin/admin_int.h"
#include "smtp/server.h"
#include "store/store_async.h"
#include "util/xalloc.h"

static const char *const admin_no_params[] = { NULL };

enum alias_op { ALIAS_OP_LIST, ALIAS_OP_GET, ALIAS_OP_PUT, ALIAS_OP_DELETE };

struct alias_job {
	struct evhttp_request *r; /* NULL once the client has gone */
	const struct smtp_context *ctx;
	const char *method;
	enum alias_op op;
	char key[STORE_ALIAS_KEY_MAX];
	char **targets;
	size_t ntargets;
	char *after, *prefix, *domain;
	unsigned limit;
	struct store_alias *alias;
	struct store_alias_list *list;
	uint64_t count;
	char error[512];
};

static void alias_job_free(struct alias_job *j)
{
	for (size_t i = 0; i < j->ntargets; i++)
		free(j->targets[i]);
	free(j->targets);
	free(j->after);
	free(j->prefix);
	free(j->domain);
	store_alias_free(&j->alias);
	store_alias_list_free(&j->list);
	free(j);
}

static json_t *alias_json(const struct store_alias *a)
{
	json_t *targets = json_array();
	for (size_t i = 0; i < a->ntargets; i++)
		json_array_append_new(targets, json_string(a->targets[i]));
	return json_pack("{s:s, s:o, s:I, s:I}", "address", a->key, "targets", targets, "created",
			 (json_int_t)a->created, "updated", (json_int_t)a->updated);
}

/* On a store worker. */
static int alias_job_run(struct store *s, void *arg)
{
	struct alias_job *j = arg;
	const char *error = "";
	int rc = 0;
	struct store_alias_query q = { .after = j->after, .prefix = j->prefix, .domain = j->domain,
				       .limit = j->limit };
	switch (j->op) {
	case ALIAS_OP_LIST:
		rc = store_alias_list(s, &q, &j->list, &error);
		if (rc >= 0)
			rc = store_alias_count(s, &q, &j->count, &error);
		break;
	case ALIAS_OP_GET: rc = store_alias_get(s, j->key, &j->alias, &error); break;
	case ALIAS_OP_PUT:
		rc = store_alias_put(s, j->key, (const char *const *)j->targets, j->ntargets, &error);
		if (rc >= 0)
			rc = store_alias_get(s, j->key, &j->alias, &error);
		break;
	case ALIAS_OP_DELETE: rc = store_alias_delete(s, j->key, &error); break;
	}
	if (rc < 0)
		snprintf(j->error, sizeof(j->error), "%s", error);
	return rc;
}

static json_t *alias_list_json(const struct alias_job *j)
{
	json_t *items = json_array();
	for (size_t i = 0; i < j->list->n; i++)
		json_array_append_new(items, alias_json(&j->list->items[i]));
	json_t *out = json_pack("{s:o, s:I, s:b}", "aliases", items, "total", (json_int_t)j->count, "more",
				j->list->more);
	if (j->list->more && j->list->n > 0)
		json_object_set_new(out, "next", json_string(j->list->items[j->list->n - 1].key));
	return out;
}

static void alias_job_reply(struct alias_job *j, int result)
{
	struct admin_req req = { .ctx = j->ctx, .r = j->r, .method = j->method };
	if (result == STORE_UNAVAILABLE || result == STORE_CANCELLED)
		admin_error(&req, 503, "store_unavailable", "the store cannot answer now: %s",
			    result == STORE_CANCELLED ? "shutting down" : j->error);
	else if (result < 0)
		admin_error(&req, 400, "bad_request", "%s", j->error);
	else if ((j->op == ALIAS_OP_GET || j->op == ALIAS_OP_DELETE) && result == 0)
		admin_error(&req, 404, "not_found", "no alias %s", j->key);
	else if (j->op == ALIAS_OP_PUT && j->alias == NULL) /* deleted between the put and the read */
		admin_error(&req, 409, "conflict", "alias %s was removed meanwhile", j->key);
	else if (j->op == ALIAS_OP_LIST)
		admin_reply(&req, 200, alias_list_json(j));
	else if (j->op == ALIAS_OP_DELETE)
		admin_reply(&req, 200, json_pack("{s:s, s:b}", "address", j->key, "deleted", 1));
	else
		admin_reply(&req, 200, alias_json(j->alias));
}

static void alias_job_gone(struct evhttp_connection *conn, void *arg)
{
	struct alias_job *j = arg;
	j->r = NULL;
}

static void alias_job_done(void *arg, int result)
{
	struct alias_job *j = arg;
	if (j->r != NULL) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(j->r), NULL, NULL);
		alias_job_reply(j, result);
	}
	alias_job_free(j);
}

static void alias_job_submit(struct admin_req *req, struct alias_job *j)
{
	j->r = req->r;
	j->ctx = req->ctx;
	j->method = req->method;
	if (req->ctx->store == NULL ||
	    store_async_submit(req->ctx->store, alias_job_run, j, alias_job_done) < 0) {
		admin_error(req, 503, "store_unavailable", "the store cannot answer now");
		alias_job_free(j);
		return;
	}
	evhttp_connection_set_closecb(evhttp_request_get_connection(req->r), alias_job_gone, j);
}

/* The key of /v1/aliases/KEY, normalised; answers 400 and returns NULL when it is not one. */
static struct alias_job *alias_job_for_key(struct admin_req *req, enum alias_op op)
{
	struct alias_job *j = xcalloc(1, sizeof(*j));
	j->op = op;
	char err[512];
	if (store_alias_key_normalise(req->seg[2], j->key, err, sizeof(err)) < 0) {
		admin_error(req, 400, "bad_address", "%s", err);
		free(j);
		return NULL;
	}
	return j;
}

void admin_alias_list(struct admin_req *req)
{
	static const char *const allowed[] = { "after", "prefix", "domain", "limit", NULL };
	if (admin_params_check(req, allowed) < 0)
		return;
	const char *limit = admin_param(req, "limit");
	char *end = NULL;
	long n = limit != NULL ? strtol(limit, &end, 10) : 0;
	if (limit != NULL && (*limit == '\0' || *end != '\0' || n < 1 || n > STORE_LIST_MAX)) {
		admin_error(req, 400, "bad_request", "limit must be a number from 1 to %d", STORE_LIST_MAX);
		return;
	}
	struct alias_job *j = xcalloc(1, sizeof(*j));
	j->op = ALIAS_OP_LIST;
	j->limit = (unsigned)n;
	const char *v;
	if ((v = admin_param(req, "after")) != NULL)
		j->after = xstrdup(v);
	if ((v = admin_param(req, "prefix")) != NULL)
		j->prefix = xstrdup(v);
	if ((v = admin_param(req, "domain")) != NULL)
		j->domain = xstrdup(v);
	alias_job_submit(req, j);
}

void admin_alias_show(struct admin_req *req)
{
	struct alias_job *j = admin_params_check(req, admin_no_params) < 0 ? NULL : alias_job_for_key(req, ALIAS_OP_GET);
	if (j != NULL)
		alias_job_submit(req, j);
}

void admin_alias_delete(struct admin_req *req)
{
	struct alias_job *j = admin_params_check(req, admin_no_params) < 0 ? NULL : alias_job_for_key(req, ALIAS_OP_DELETE);
	if (j != NULL)
		alias_job_submit(req, j);
}

/* The body of PUT: {"targets": ["address" or "local:target", ...]} and nothing else. */
static int alias_targets_from_body(struct admin_req *req, struct alias_job *j)
{
	json_t *body = admin_json_body(req);
	if (body == NULL)
		return -1;
	json_t *targets = json_object_get(body, "targets");
	size_t i;
	json_t *t;
	int rc = -1;
	if (json_object_size(body) != 1 || !json_is_array(targets) || json_array_size(targets) == 0) {
		admin_error(req, 400, "bad_request", "the body must be {\"targets\": [one or more strings]}");
	} else {
		j->targets = xcalloc(json_array_size(targets), sizeof(*j->targets));
		rc = 0;
		json_array_foreach(targets, i, t) {
			if (!json_is_string(t)) {
				admin_error(req, 400, "bad_request", "targets[%zu] is not a string", i);
				rc = -1;
				break;
			}
			j->targets[j->ntargets++] = xstrdup(json_string_value(t));
		}
	}
	json_decref(body);
	return rc;
}

void admin_alias_put(struct admin_req *req)
{
	struct alias_job *j = admin_params_check(req, admin_no_params) < 0 ? NULL : alias_job_for_key(req, ALIAS_OP_PUT);
	if (j == NULL)
		return;
	char err[512];
	if (alias_targets_from_body(req, j) < 0) {
		alias_job_free(j);
		return;
	}
	if (store_alias_targets_check((const char *const *)j->targets, j->ntargets, err, sizeof(err)) < 0) {
		admin_error(req, 400, "bad_target", "%s", err);
		alias_job_free(j);
		return;
	}
	alias_job_submit(req, j);
}
