#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>

#include "deliver/webhook_agent.h"

/* The agent against a real HTTP receiver (tests/unit/webhook_server.py) on 127.0.0.1, on a real
   libevent loop. The receiver checks the signature itself, so a wrong one shows as a 401. */

extern char **environ;

#define SECRET "s3cret-key"
#define PATH_MAX_T 512

static char workdir[PATH_MAX_T];
static pid_t server_pid = -1;
static int server_port;
static struct event_base *base;
static int msg_fd = -1;

/* Prefixed by junk so that content_off is exercised. */
static const char prefix[] = "QUEUEHDR\n";
static const char message[] = "Subject: hello\r\n =?utf-8?q?w=C3=B6rld?=\r\n"
			      "From: Alice <alice@example.org>\r\n"
			      "X-Folded: one\r\n\ttwo\r\n"
			      "X-Empty:\r\n"
			      "\r\n"
			      "Body line: not a header\r\n";

struct outcome {
	int calls;
	size_t n;
	struct delivery_result r[8];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void outcome_cb(void *arg, const struct delivery_result *r, size_t n)
{
	struct outcome *o = arg;
	o->calls++;
	o->n = n;
	memcpy(o->r, r, (n < 8 ? n : 8) * sizeof(*r));
}

/* Runs the loop until all n outcomes arrived or ms passed. */
static void run_until(struct outcome *o, size_t n, int ms)
{
	int64_t end = now_ms() + ms;
	for (;;) {
		size_t done = 0;
		for (size_t i = 0; i < n; i++)
			done += o[i].calls > 0;
		if (done == n || now_ms() >= end)
			return;
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *s = calloc(1, 1 << 20);
	size_t n = fread(s, 1, (1 << 20) - 1, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

static int free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void server_start(const char *source)
{
	char prog[PATH_MAX_T + 64], line[64] = "";
	int fds[2];
	snprintf(prog, sizeof(prog), "%s/tests/unit/webhook_server.py", source);
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	char *argv[] = { "/usr/bin/python3", prog, SECRET, workdir, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	assert_int_equal(posix_spawn(&server_pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
	size_t n = 0;
	while (n < sizeof(line) - 1 && poll(&pfd, 1, 10000) == 1 && read(fds[0], line + n, 1) == 1 &&
	       line[n] != '\n')
		n++;
	close(fds[0]);
	assert_int_equal(sscanf(line, "READY %d", &server_port), 1);
}

static int group_setup(void **state)
{
	char source[PATH_MAX_T], path[PATH_MAX_T + 16];
	snprintf(source, sizeof(source), "%s", __FILE__);
	for (int i = 0; i < 3; i++)
		*strrchr(source, '/') = '\0'; /* .../tests/unit/test_webhook_agent.c -> ... */
	snprintf(workdir, sizeof(workdir), "/tmp/postern-test-webhook-XXXXXX");
	assert_non_null(mkdtemp(workdir));
	snprintf(path, sizeof(path), "%s/msg", workdir);
	msg_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(msg_fd >= 0);
	assert_int_equal(write(msg_fd, prefix, strlen(prefix)), (ssize_t)strlen(prefix));
	assert_int_equal(write(msg_fd, message, strlen(message)), (ssize_t)strlen(message));
	server_start(source);
	base = event_base_new();
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[PATH_MAX_T + 16];
	kill(server_pid, SIGTERM);
	waitpid(server_pid, NULL, 0);
	close(msg_fd);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", workdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const struct delivery_rcpt rcpts[] = {
	{ .index = 3, .address = "bot@robots.example", .orcpt = "rfc822;a+2Bb@example.org" },
	{ .index = 7, .address = "other@robots.example", .orcpt = NULL },
};

static struct delivery_request request(void)
{
	return (struct delivery_request){ .id = "4XyZ01", .sender = "alice@example.org", .envid = "env+3D1",
					  .fd = msg_fd, .content_off = (off_t)strlen(prefix),
					  .content_size = strlen(message), .rcpts = rcpts, .nrcpts = 2 };
}

static struct webhook_agent *agent(unsigned max)
{
	struct webhook_options opts = { .secret = SECRET, .timeout_s = 1, .connect_timeout_s = 1,
					.max_concurrent = max };
	return webhook_agent_new(base, &opts);
}

/* Posts the standard request to path on the receiver (or port) and waits for the outcome. */
static void post(const char *path, int port, struct outcome *o)
{
	char url[128];
	struct delivery_request req = request();
	struct webhook_agent *a = agent(4);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	memset(o, 0, sizeof(*o));
	webhook_agent_deliver(a, url, &req, outcome_cb, o);
	assert_int_equal(o->calls, 0); /* never from inside deliver */
	run_until(o, 1, 5000);
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->n, 2);
	assert_int_equal(o->r[0].index, 3);
	assert_int_equal(o->r[1].index, 7);
	assert_int_equal(o->r[1].status, o->r[0].status);
	webhook_agent_free(&a);
	assert_null(a);
}

static const char *header_value(json_t *headers, const char *name)
{
	size_t i;
	json_t *h;
	json_array_foreach(headers, i, h) {
		if (strcmp(json_string_value(json_object_get(h, "name")), name) == 0)
			return json_string_value(json_object_get(h, "value"));
	}
	return NULL;
}

static void check_document(json_t *doc)
{
	assert_string_equal(json_string_value(json_object_get(doc, "queue_id")), "4XyZ01");
	assert_string_equal(json_string_value(json_object_get(doc, "sender")), "alice@example.org");
	assert_string_equal(json_string_value(json_object_get(doc, "envid")), "env=1");
	assert_int_equal(json_integer_value(json_object_get(doc, "size")), strlen(message));
	json_t *rc = json_object_get(doc, "recipients");
	assert_int_equal(json_array_size(rc), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(rc, 0), "address")), "bot@robots.example");
	assert_string_equal(json_string_value(json_object_get(json_array_get(rc, 0), "original_recipient")),
			    "a+b@example.org");
	assert_true(json_is_null(json_object_get(json_array_get(rc, 1), "original_recipient")));
	json_t *hs = json_object_get(doc, "headers");
	assert_int_equal(json_array_size(hs), 4);
	assert_string_equal(header_value(hs, "X-Empty"), "");
	assert_string_equal(header_value(hs, "Subject"), "hello w\xc3\xb6rld");
	assert_string_equal(header_value(hs, "From"), "Alice <alice@example.org>");
	assert_string_equal(header_value(hs, "X-Folded"), "one\ttwo");
}

static void check_message(json_t *doc)
{
	const char *b64 = json_string_value(json_object_get(doc, "message"));
	size_t len = strlen(b64), pad = 0;
	unsigned char *raw = calloc(1, len + 1);
	int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	assert_true(n >= 0);
	while (pad < len && b64[len - 1 - pad] == '=')
		pad++;
	assert_int_equal((size_t)n - pad, strlen(message));
	assert_memory_equal(raw, message, strlen(message));
	free(raw);
}

static void test_ok(void **state)
{
	struct outcome o;
	char path[PATH_MAX_T + 16];
	post("/ok", server_port, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	assert_int_equal(o.r[0].code, 250);
	assert_string_equal(o.r[0].dsn, "2.0.0");
	assert_string_equal(o.r[0].text, "webhook accepted: HTTP 200");
	assert_string_equal(o.r[0].remote_mta, "[127.0.0.1]");
	snprintf(path, sizeof(path), "%s/sig-1", workdir);
	char *sig = slurp(path);
	assert_non_null(sig);
	assert_string_equal(sig, "good\n");
	free(sig);
	snprintf(path, sizeof(path), "%s/ok-1.json", workdir);
	json_error_t err;
	json_t *doc = json_load_file(path, 0, &err);
	assert_non_null(doc);
	check_document(doc);
	check_message(doc);
	json_decref(doc);
}

/* A receiver with another secret refuses the signature: 401, a bounce. */
static void test_wrong_secret_refused(void **state)
{
	struct outcome o = { 0 };
	char url[128];
	struct delivery_request req = request();
	struct webhook_options opts = { .secret = "not-the-secret", .timeout_s = 1 };
	struct webhook_agent *a = webhook_agent_new(base, &opts);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", server_port);
	webhook_agent_deliver(a, url, &req, outcome_cb, &o);
	run_until(&o, 1, 5000);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.r[0].status, DELIVERY_BOUNCE);
	assert_non_null(strstr(o.r[0].text, "401"));
	webhook_agent_free(&a);
}

static void test_fail_defers(void **state)
{
	struct outcome o;
	post("/fail", server_port, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_int_equal(o.r[0].code / 100, 4);
	assert_string_equal(o.r[0].dsn, "4.3.0");
	assert_non_null(strstr(o.r[0].text, "500"));
}

static void test_limit_defers(void **state)
{
	struct outcome o;
	post("/limit", server_port, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_non_null(strstr(o.r[0].text, "429"));
	assert_non_null(strstr(o.r[0].text, "slow down"));
}

static void test_bad_bounces(void **state)
{
	struct outcome o;
	post("/bad", server_port, &o);
	assert_int_equal(o.r[0].status, DELIVERY_BOUNCE);
	assert_int_equal(o.r[0].code / 100, 5);
	assert_string_equal(o.r[0].dsn, "5.3.0");
	assert_non_null(strstr(o.r[0].text, "400 Bad Request"));
	/* \x01 and CRLF each became spaces */
	assert_non_null(strstr(o.r[0].text, "missing field  \"to\"  second line"));
}

static void test_slow_times_out(void **state)
{
	struct outcome o;
	int64_t start = now_ms();
	post("/slow", server_port, &o);
	int64_t took = now_ms() - start;
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].dsn, "4.4.2");
	assert_true(took >= 900 && took < 2000);
}

static void test_refused_defers(void **state)
{
	struct outcome o;
	post("/ok", free_port(), &o);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].dsn, "4.4.1");
	assert_non_null(strstr(o.r[0].text, "webhook failed:"));
}

static void test_concurrency_limit(void **state)
{
	enum { N = 6 };
	struct outcome o[N];
	char url[128], path[PATH_MAX_T + 16];
	struct delivery_request req = request();
	struct webhook_agent *a = agent(2);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/conc", server_port);
	memset(o, 0, sizeof(o));
	for (int i = 0; i < N; i++)
		webhook_agent_deliver(a, url, &req, outcome_cb, &o[i]);
	assert_int_equal(webhook_agent_pending(a), N);
	run_until(o, N, 8000);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].calls, 1);
		assert_int_equal(o[i].r[0].status, DELIVERY_DONE);
	}
	assert_int_equal(webhook_agent_pending(a), 0);
	snprintf(path, sizeof(path), "%s/conc-max", workdir);
	char *max = slurp(path);
	assert_non_null(max);
	assert_true(atoi(max) >= 1 && atoi(max) <= 2);
	free(max);
	webhook_agent_free(&a);
}

/* Free reports what is in flight and what waits, all deferred. */
static void test_free_defers(void **state)
{
	struct outcome o[3];
	char url[128];
	struct delivery_request req = request();
	struct webhook_agent *a = agent(1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", server_port);
	memset(o, 0, sizeof(o));
	for (int i = 0; i < 3; i++)
		webhook_agent_deliver(a, url, &req, outcome_cb, &o[i]);
	run_until(o, 3, 200);
	webhook_agent_free(&a);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(o[i].calls, 1);
		assert_int_equal(o[i].r[0].status, DELIVERY_DEFER);
		assert_non_null(strstr(o[i].r[0].text, "agent stopped"));
	}
	webhook_agent_free(&a); /* NULL is fine */
}

/* An unreadable queue file defers, reported from the loop. */
static void test_read_error_defers(void **state)
{
	struct outcome o = { 0 };
	struct delivery_request req = request();
	struct webhook_agent *a = agent(1);
	req.content_size = 1 << 20; /* beyond the end of the file */
	webhook_agent_deliver(a, "http://127.0.0.1:9/ok", &req, outcome_cb, &o);
	assert_int_equal(o.calls, 0);
	run_until(&o, 1, 2000);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_non_null(strstr(o.r[0].text, "queue file"));
	webhook_agent_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_wrong_secret_refused),
		cmocka_unit_test(test_fail_defers),
		cmocka_unit_test(test_limit_defers),
		cmocka_unit_test(test_bad_bounces),
		cmocka_unit_test(test_slow_times_out),
		cmocka_unit_test(test_refused_defers),
		cmocka_unit_test(test_concurrency_limit),
		cmocka_unit_test(test_free_defers),
		cmocka_unit_test(test_read_error_defers),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
