#ifndef POSTERN_ADMIN_INT_H
#define POSTERN_ADMIN_INT_H
/* Private to the admin API: server.c (socket, routing, replies), queue_api.c (the /v1/queue
   handlers), queue_view.c (reading messages from the spool into JSON), alias_api.c (the
   /v1/aliases handlers). */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "queue/qfile.h"

struct evhttp_request;
struct smtp_context;
struct spool;

#define ADMIN_MAX_SEGMENTS 6
#define ADMIN_HEADERS_MAX (64 * 1024) /* show reads at most this much of a message's header */

/* One request being answered. */
struct admin_req {
	const struct smtp_context *ctx;
	struct evhttp_request *r;
	const char *method; /* "GET", ... for logs and errors */
	char *seg[ADMIN_MAX_SEGMENTS];
	int nseg;
	struct evkeyvalq params;
};

/* server.c */
/* Sends status with body (taken over) as JSON. */
void admin_reply(struct admin_req *req, int status, json_t *body);
/* Sends a JSON error {"error": {"code", "message"}} with status. */
void admin_error(struct admin_req *req, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Returns 0 when every query parameter is in allowed (NULL-terminated) and none is repeated;
   otherwise answers 400 and returns -1. */
int admin_params_check(struct admin_req *req, const char *const *allowed);
/* Returns the request's body, a JSON object (application/json), or NULL after answering 4xx
   (415 for another type, 400 for bad JSON or not an object). */
json_t *admin_json_body(struct admin_req *req);
/* Returns the value of query parameter name, or NULL. */
const char *admin_param(struct admin_req *req, const char *name);

/* queue_view.c */
/* Queue directories the API reads, ordered so that "active" comes last. */
extern const char *const admin_queues[];
/* A message found in the spool. */
struct admin_msg {
	char id[QUEUE_ID_LEN + 1];
	const char *queue;
	char path[4096];
	bool loaded; /* env, content_off and content_size are valid */
	const char *why; /* why it could not be loaded */
	bool gone;       /* not there (any more) */
	struct queue_envelope env;
	off_t content_off;
	uint64_t content_size;
	off_t file_size;
};
/* Returns the queue name in admin_queues equal to name, or NULL. */
const char *admin_queue_name(const char *name);
/* Looks id up in every queue; fills m (without loading it). Returns 1 found, 0 not found. */
int admin_msg_find(const struct spool *spool, const char *id, struct admin_msg *m);
/* Sets m to queue/id without looking; returns 0, or -1 when the path does not fit. */
int admin_msg_at(const struct spool *spool, const char *queue, const char *id, struct admin_msg *m);
/* Reads m's envelope; on failure m->why says why. Returns 0 or -1. */
int admin_msg_load(struct admin_msg *m);
/* Frees the envelope. */
void admin_msg_clear(struct admin_msg *m);
/* Returns the JSON summary of a loaded (or unloadable) message; now_us gives its age. */
json_t *admin_msg_json(const struct spool *spool, const struct admin_msg *m, int64_t now_us);
/* Returns the header fields of m's content as [{"name", "value"}] (unfolded), reading at
   most ADMIN_HEADERS_MAX bytes; *truncated_r tells whether the header went on past them. */
json_t *admin_msg_headers(const struct admin_msg *m, bool *truncated_r);
/* Returns a JSON string of the len bytes at s: valid UTF-8 as is; otherwise every non-ASCII
   byte becomes U+FFFD (JSON text must be UTF-8, mail need not be). */
json_t *admin_json_text(const char *s, size_t len);
/* Returns admin_json_text of the string s, or JSON null for NULL. */
json_t *admin_json_str(const char *s);

/* queue_api.c: the handlers */
void admin_queue_list(struct admin_req *req);
void admin_queue_shape(struct admin_req *req);
void admin_queue_flush_all(struct admin_req *req);
void admin_queue_show(struct admin_req *req);
void admin_queue_delete(struct admin_req *req);
void admin_queue_flush(struct admin_req *req);
void admin_queue_hold(struct admin_req *req);
void admin_queue_release(struct admin_req *req);
void admin_queue_requeue(struct admin_req *req);
void admin_health(struct admin_req *req);

/* status_api.c: /v1/status (with the store's schema version) and /v1/reload */
void admin_status_init(void);
void admin_status(struct admin_req *req);
void admin_reload(struct admin_req *req);

/* alias_api.c: /v1/aliases, answered once the store has (asynchronously) */
void admin_alias_list(struct admin_req *req);
void admin_alias_show(struct admin_req *req);
void admin_alias_put(struct admin_req *req);
void admin_alias_delete(struct admin_req *req);

#endif
