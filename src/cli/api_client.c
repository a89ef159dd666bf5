/* The admin API's client side, shared by the commands that need the daemon. */
#include "cli/api_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "conf/config.h"
#include "util/buf.h"

#define API_TIMEOUT 120                   /* seconds for the daemon to answer */
#define API_REPLY_MAX (512 * 1024 * 1024) /* a listing of a huge queue, not more */
#define EX_UNAVAILABLE 69
#define EX_NOPERM 77
#define EX_CONFIG 78

/* Connects to the API. Returns the socket, or -1 with the exit status in *status_r. */
static int api_connect(const char *path, const char *who, int *status_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		struct timeval tv = { API_TIMEOUT, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		return fd;
	}
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (err == EACCES || err == EPERM) {
		fprintf(stderr, "%s: %s: permission denied (run as the daemon's user or group)\n", who, path);
		*status_r = EX_NOPERM;
	} else {
		fprintf(stderr, "%s: the daemon is not running (%s: %s)\n", who, path, strerror(err));
		*status_r = EX_UNAVAILABLE;
	}
	return -1;
}

static int api_send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads until the daemon closes (the request said Connection: close). */
static int api_read_all(int fd, struct buf *b)
{
	char chunk[65536];
	for (;;) {
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || b->len + (size_t)n > API_REPLY_MAX)
			return -1;
		if (n == 0)
			return 0;
		buf_append(b, chunk, (size_t)n);
	}
}

static int api_parse_reply(const struct buf *b, const char *who, struct api_reply *reply)
{
	const char *text = buf_str(b);
	const char *end = strstr(text, "\r\n\r\n");
	int status;
	if (end == NULL || sscanf(text, "HTTP/1.%*1[01] %3d ", &status) != 1) {
		fprintf(stderr, "%s: malformed reply from the daemon\n", who);
		return 1;
	}
	json_error_t err;
	const char *body = end + 4;
	reply->body = json_loadb(body, b->len - (size_t)(body - text), 0, &err);
	if (reply->body == NULL) {
		fprintf(stderr, "%s: the daemon's reply is not JSON (HTTP %d): %s\n", who, status, err.text);
		return 1;
	}
	reply->status = status;
	return 0;
}

int api_call(const char *socket, const char *who, const char *method, const char *target,
	     const char *body, struct api_reply *reply)
{
	int status = 1;
	int fd = api_connect(socket, who, &status);
	if (fd < 0)
		return status;
	struct buf b = { 0 };
	buf_printf(&b, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		       "Accept: application/json\r\n%sContent-Length: %zu\r\n\r\n%s", method, target,
		   body != NULL ? "Content-Type: application/json\r\n" : "", body != NULL ? strlen(body) : 0,
		   body != NULL ? body : "");
	int rc = api_send_all(fd, b.data, b.len);
	buf_reset(&b);
	if (rc == 0)
		rc = api_read_all(fd, &b);
	close(fd);
	if (rc < 0)
		fprintf(stderr, "%s: no complete reply from the daemon: %s\n", who, errno ? strerror(errno) : "too large");
	else
		status = api_parse_reply(&b, who, reply);
	buf_free(&b);
	return rc < 0 ? 1 : status;
}

int api_error(const char *who, const struct api_reply *reply)
{
	const char *message = json_string_value(json_object_get(json_object_get(reply->body, "error"), "message"));
	fprintf(stderr, "%s: %s\n", who, message != NULL ? message : "request failed");
	return 1;
}

int api_socket(const char *config, const char *who, char *out, size_t len)
{
	const char *path = cli_config_path(config);
	struct config *conf;
	char *errors;
	if (config_load(path, &conf, &errors) < 0) {
		config_print_errors(stderr, errors);
		free(errors);
		return EX_CONFIG;
	}
	int rc = admin_socket_path(conf, out, len);
	config_free(&conf);
	if (rc < 0) {
		fprintf(stderr, "%s: %s: the admin socket path is too long\n", who, path);
		return EX_CONFIG;
	}
	return 0;
}

