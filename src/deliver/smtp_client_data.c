/* Sending the message after 354: read from the queue file a chunk at a time as the output
   drains, dot-stuffed (RFC 5321 4.5.2), then the final dot. The queue file holds the message in
   wire form (CRLF lines), so nothing else is converted. */
#include "deliver/smtp_client_int.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "util/fsutil.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Whether p[i] starts a line: it follows CRLF, which may lie in the previous chunk. */
static bool data_at_line_start(const struct smtp_client_conn *conn, const char *p, size_t i)
{
	char a = i >= 2 ? p[i - 2] : i == 1 ? conn->tail[1] : conn->tail[0];
	char b = i >= 1 ? p[i - 1] : conn->tail[1];
	return a == '\r' && b == '\n';
}

static void data_stuff(struct smtp_client_conn *conn, struct evbuffer *out, const char *p, size_t n)
{
	size_t start = 0, pos = 0;
	const char *dot;
	while (pos < n && (dot = memchr(p + pos, '.', n - pos)) != NULL) {
		size_t i = (size_t)(dot - p);
		pos = i + 1;
		if (!data_at_line_start(conn, p, i))
			continue;
		evbuffer_add(out, p + start, pos - start);
		evbuffer_add(out, ".", 1);
		start = pos;
	}
	evbuffer_add(out, p + start, n - start);
	if (n >= 2) {
		conn->tail[0] = p[n - 2];
		conn->tail[1] = p[n - 1];
	} else if (n == 1) {
		conn->tail[0] = conn->tail[1];
		conn->tail[1] = p[0];
	}
}

/* Without the final dot the peer discards what it got; closing is the only safe way out. */
static void data_read_failed(struct smtp_client_conn *conn, const char *why)
{
	struct smtp_client_job *job = conn->job;
	struct smtp_client_error e = { .code = 0, .dsn = "4.3.0" };
	log_error("%s: cannot read the queue file: %s", job->req->id, why);
	snprintf(e.text, sizeof(e.text), "error reading the queue file: %s", why);
	smtp_client_job_set_open(job, true, DELIVERY_DEFER, &e);
	conn->broken = true;
	smtp_client_session_tx_end(conn);
}

static void data_finish(struct smtp_client_conn *conn, struct evbuffer *out)
{
	if (conn->tail[0] != '\r' || conn->tail[1] != '\n')
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	conn->dot_queued = true;
	xfree(&conn->chunk);
	/* The write callback now fires when everything is out; the reply timer starts then. */
	bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
}

/* Called once output is empty after the dot. */
static void data_sent(struct smtp_client_conn *conn)
{
	conn->state = SMTP_CLIENT_DOT;
	conn->cursor = 0;
	smtp_client_conn_arm(conn, conn->client->opts.data_done_timeout);
}

void smtp_client_data_write(struct smtp_client_conn *conn)
{
	const struct delivery_request *req = conn->job->req;
	struct evbuffer *out = bufferevent_get_output(conn->bev);
	if (conn->dot_queued) {
		if (evbuffer_get_length(out) == 0)
			data_sent(conn);
		return;
	}
	if (evbuffer_get_length(out) > SMTP_CLIENT_LOWAT)
		return;
	uint64_t left = req->content_size - conn->sent;
	size_t n = left < SMTP_CLIENT_CHUNK ? (size_t)left : SMTP_CLIENT_CHUNK;
	if (n > 0) {
		ssize_t r = fs_pread_all(req->fd, conn->chunk, n, req->content_off + (off_t)conn->sent);
		if (r != (ssize_t)n) {
			data_read_failed(conn, r < 0 ? strerror(errno) : "file shorter than the message");
			return;
		}
		data_stuff(conn, out, conn->chunk, n);
		conn->sent += n;
	}
	if (conn->sent == req->content_size)
		data_finish(conn, out);
	smtp_client_conn_arm(conn, conn->client->opts.data_timeout);
}

void smtp_client_data_start(struct smtp_client_conn *conn)
{
	conn->state = SMTP_CLIENT_CONTENT;
	conn->sent = 0;
	conn->dot_queued = false;
	/* The message starts a line, as if CRLF had come before it. */
	conn->tail[0] = '\r';
	conn->tail[1] = '\n';
	conn->chunk = xmalloc(SMTP_CLIENT_CHUNK);
	bufferevent_setwatermark(conn->bev, EV_WRITE, SMTP_CLIENT_LOWAT, 0);
	smtp_client_data_write(conn);
}
