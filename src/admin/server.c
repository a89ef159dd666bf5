/* The admin API's HTTP side: the unix socket, routing, JSON replies and errors, logging. */
#include "admin/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin/admin_int.h"
#include "conf/config.h"
#include "smtp/server.h"
#include "util/log.h"
#include "util/xalloc.h"

#define ADMIN_BODY_MAX (64 * 1024)
#define ADMIN_HEADERS_SIZE_MAX (16 * 1024)
#define ADMIN_TIMEOUT 60 /* seconds a client may idle */
#define ADMIN_LOG_URI_MAX 200

struct admin_server {
	const struct smtp_context *ctx;
	struct evhttp *http;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

typedef void admin_handler(struct admin_req *req);

/* A path pattern ("*" matches one segment) and its handler per method. */
struct admin_route {
	const char *pattern[ADMIN_MAX_SEGMENTS + 1];
	admin_handler *get, *post, *del, *put;
};

/* Literal segments come before "*", so that /v1/queue/shape is never taken for an ID. */
static const struct admin_route admin_routes[] = {
	{ { "v1", "health", NULL }, admin_health, NULL, NULL, NULL },
	{ { "v1", "status", NULL }, admin_status, NULL, NULL, NULL },
	{ { "v1", "reload", NULL }, NULL, admin_reload, NULL, NULL },
	{ { "v1", "queue", NULL }, admin_queue_list, NULL, NULL, NULL },
	{ { "v1", "queue", "shape", NULL }, admin_queue_shape, NULL, NULL, NULL },
	{ { "v1", "queue", "flush", NULL }, NULL, admin_queue_flush_all, NULL, NULL },
	{ { "v1", "queue", "*", NULL }, admin_queue_show, NULL, admin_queue_delete, NULL },
	{ { "v1", "queue", "*", "flush", NULL }, NULL, admin_queue_flush, NULL, NULL },
	{ { "v1", "queue", "*", "hold", NULL }, NULL, admin_queue_hold, NULL, NULL },
	{ { "v1", "queue", "*", "release", NULL }, NULL, admin_queue_release, NULL, NULL },
	{ { "v1", "queue", "*", "requeue", NULL }, NULL, admin_queue_requeue, NULL, NULL },
	{ { "v1", "aliases", NULL }, admin_alias_list, NULL, NULL, NULL },
	{ { "v1", "aliases", "*", NULL }, admin_alias_show, NULL, admin_alias_delete, admin_alias_put },
};

int admin_socket_path(const struct config *conf, char *out, size_t len)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	int n = conf->admin_socket[0] != '\0' ? snprintf(out, len, "%s", conf->admin_socket)
					      : snprintf(out, len, "%s/api.sock", conf->state_dir);
	return n < 0 || (size_t)n >= len || (size_t)n >= max ? -1 : 0;
}

/* Client text (the request line, names from the query) made safe for a log line. */
static void admin_log_safe(const char *s, char *out, size_t len)
{
	size_t i = 0;
	for (; s[i] != '\0' && i + 1 < len; i++)
		out[i] = s[i] >= ' ' && s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
}

static void admin_send(struct admin_req *req, int status, json_t *body, const char *error)
{
	char uri[ADMIN_LOG_URI_MAX + 1], why[512];
	admin_log_safe(evhttp_request_get_uri(req->r), uri, sizeof(uri));
	if (error != NULL) {
		admin_log_safe(error, why, sizeof(why));
		log_info("admin: client=unix, request=\"%s %s\", status=%d (%s)", req->method, uri, status, why);
	} else {
		log_debug("admin: client=unix, request=\"%s %s\", status=%d", req->method, uri, status);
	}
	struct evbuffer *buf = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);
	evbuffer_add_printf(buf, "%s\n", text != NULL ? text : "{}");
	free(text);
	json_decref(body);
	evhttp_add_header(evhttp_request_get_output_headers(req->r), "Content-Type", "application/json");
	evhttp_send_reply(req->r, status, NULL, buf);
	evbuffer_free(buf);
}

void admin_reply(struct admin_req *req, int status, json_t *body)
{
	admin_send(req, status, body, NULL);
}

void admin_error(struct admin_req *req, int status, const char *code, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	json_t *body = json_pack("{s:{s:s,s:o}}", "error", "code", code, "message",
				 admin_json_text(message, strlen(message)));
	admin_send(req, status, body, message);
}

const char *admin_param(struct admin_req *req, const char *name)
{
	return evhttp_find_header(&req->params, name);
}

int admin_params_check(struct admin_req *req, const char *const *allowed)
{
	for (struct evkeyval *kv = req->params.tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		const char *const *a = allowed;
		while (*a != NULL && strcmp(*a, kv->key) != 0)
			a++;
		if (*a == NULL) {
			admin_error(req, 400, "bad_request", "unknown parameter '%.100s'", kv->key);
			return -1;
		}
		for (struct evkeyval *k2 = kv->next.tqe_next; k2 != NULL; k2 = k2->next.tqe_next) {
			if (strcmp(k2->key, kv->key) == 0) {
				admin_error(req, 400, "bad_request", "parameter '%s' given twice", kv->key);
				return -1;
			}
		}
	}
	return 0;
}

/* Splits the path into req->seg (in place, in path). Returns 0, or -1 for an empty segment
   or too many of them. */
static int admin_split(struct admin_req *req, char *path)
{
	if (path[0] != '/')
		return -1;
	for (char *p = path + 1;; p++) {
		if (req->nseg == ADMIN_MAX_SEGMENTS || *p == '/' || *p == '\0')
			return -1;
		req->seg[req->nseg++] = p;
		p += strcspn(p, "/");
		if (*p == '\0')
			return 0;
		*p = '\0';
	}
}

static const struct admin_route *admin_route_find(const struct admin_req *req)
{
	for (size_t i = 0; i < sizeof(admin_routes) / sizeof(admin_routes[0]); i++) {
		const char *const *pat = admin_routes[i].pattern;
		int n = 0;
		while (n < req->nseg && pat[n] != NULL && (strcmp(pat[n], "*") == 0 || strcmp(pat[n], req->seg[n]) == 0))
			n++;
		if (n == req->nseg && pat[n] == NULL)
			return &admin_routes[i];
	}
	return NULL;
}

static admin_handler *admin_route_method(struct admin_req *req, const struct admin_route *route)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req->r);
	admin_handler *h = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD ? route->get
			   : cmd == EVHTTP_REQ_POST			      ? route->post
			   : cmd == EVHTTP_REQ_DELETE			      ? route->del
			   : cmd == EVHTTP_REQ_PUT				      ? route->put
									      : NULL;
	if (h != NULL)
		return h;
	char allow[32] = "";
	if (route->get != NULL)
		strcat(allow, "GET, HEAD");
	if (route->post != NULL)
		strcat(strcat(allow, allow[0] ? ", " : ""), "POST");
	if (route->del != NULL)
		strcat(strcat(allow, allow[0] ? ", " : ""), "DELETE");
	if (route->put != NULL)
		strcat(strcat(allow, allow[0] ? ", " : ""), "PUT");
	evhttp_add_header(evhttp_request_get_output_headers(req->r), "Allow", allow);
	admin_error(req, 405, "method_not_allowed", "%s is not allowed here; use %s", req->method, allow);
	return NULL;
}

json_t *admin_json_body(struct admin_req *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req->r);
	size_t len = evbuffer_get_length(in);
	const char *type = evhttp_find_header(evhttp_request_get_input_headers(req->r), "Content-Type");
	if (type == NULL || strncasecmp(type, "application/json", 16) != 0 ||
	    (type[16] != '\0' && type[16] != ';')) {
		admin_error(req, 415, "unsupported_media_type", "the body must be application/json");
		return NULL;
	}
	json_error_t err;
	json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &err);
	if (body == NULL) {
		admin_error(req, 400, "bad_request", "invalid JSON body: %s", err.text);
	} else if (!json_is_object(body)) {
		admin_error(req, 400, "bad_request", "the body must be a JSON object");
		json_decref(body);
		body = NULL;
	}
	return body;
}

/* Endpoints other than PUT take no options in their body; a body, when sent, must be an empty
   JSON object, so that a client relying on a future option fails loudly instead of silently. */
static int admin_body_check(struct admin_req *req)
{
	if (evbuffer_get_length(evhttp_request_get_input_buffer(req->r)) == 0)
		return 0;
	json_t *body = admin_json_body(req);
	if (body == NULL)
		return -1;
	int rc = 0;
	if (json_object_size(body) > 0) {
		admin_error(req, 400, "bad_request", "unknown member '%.100s' in the body",
			    json_object_iter_key(json_object_iter(body)));
		rc = -1;
	}
	json_decref(body);
	return rc;
}

static const char *admin_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

static void admin_dispatch(struct admin_req *req, char *path, const char *query)
{
	if (query != NULL && evhttp_parse_query_str(query, &req->params) < 0) {
		admin_error(req, 400, "bad_request", "malformed query string");
		return;
	}
	const struct admin_route *route = admin_split(req, path) == 0 ? admin_route_find(req) : NULL;
	if (route == NULL) {
		admin_error(req, 404, "not_found", "no such resource");
		return;
	}
	admin_handler *h = admin_route_method(req, route);
	if (h != NULL && (evhttp_request_get_command(req->r) == EVHTTP_REQ_PUT || admin_body_check(req) == 0))
		h(req);
}

static void admin_request(struct evhttp_request *r, void *arg)
{
	struct admin_server *srv = arg;
	struct admin_req req = { .ctx = srv->ctx, .r = r };
	req.method = admin_method_name(evhttp_request_get_command(r));
	req.params.tqh_first = NULL; /* what TAILQ_INIT does; libevent's header lacks it */
	req.params.tqh_last = &req.params.tqh_first;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	char *copy = xstrdup(path != NULL ? path : "");
	admin_dispatch(&req, copy, uri != NULL ? evhttp_uri_get_query(uri) : NULL);
	evhttp_clear_headers(&req.params);
	free(copy);
}

/* A daemon that still answers on the socket must keep it; only a stale file is removed. */
static bool admin_socket_in_use(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	bool in_use = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	return in_use;
}

/* The mask keeps the socket from ever being open to others, even between bind and chmod. */
static int admin_bind(const char *path, const char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		*error_r = "exists and is not a socket"; /* a typo must not remove a file */
		return -1;
	}
	if (admin_socket_in_use(&sun)) {
		*error_r = "another daemon is answering on it";
		return -1;
	}
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	mode_t mask = umask(0007);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(mask);
	if (rc < 0 || listen(fd, 64) < 0 || chmod(path, 0660) < 0) {
		*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	return fd;
}

static void admin_http_setup(struct admin_server *srv)
{
	evhttp_set_gencb(srv->http, admin_request, srv);
	/* Every method reaches the router, so that a wrong one gets a JSON 405, not libevent's. */
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
						      EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(srv->http, ADMIN_BODY_MAX);
	evhttp_set_max_headers_size(srv->http, ADMIN_HEADERS_SIZE_MAX);
	evhttp_set_timeout(srv->http, ADMIN_TIMEOUT);
}

struct admin_server *admin_server_new(const struct smtp_context *ctx, const char **error_r)
{
	struct admin_server *srv = xcalloc(1, sizeof(*srv));
	srv->ctx = ctx;
	admin_status_init();
	if (admin_socket_path(ctx->conf, srv->path, sizeof(srv->path)) < 0) {
		*error_r = "socket path too long";
		free(srv);
		return NULL;
	}
	int fd = admin_bind(srv->path, error_r);
	if (fd < 0) {
		free(srv);
		return NULL;
	}
	srv->http = evhttp_new(ctx->base);
	admin_http_setup(srv);
	if (evhttp_accept_socket_with_handle(srv->http, fd) == NULL) {
		*error_r = "cannot accept on the socket";
		close(fd);
		admin_server_free(&srv);
		return NULL;
	}
	log_info("admin API listening on unix:%s", srv->path);
	return srv;
}

void admin_server_free(struct admin_server **srvp)
{
	struct admin_server *srv = *srvp;
	if (srv == NULL)
		return;
	if (srv->http != NULL)
		evhttp_free(srv->http);
	unlink(srv->path);
	xfree(srvp);
}
