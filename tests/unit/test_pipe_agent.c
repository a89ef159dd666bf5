#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "deliver/pipe_agent.h"
#include "util/log.h"

/* The pipe agent with a real loop and real children: small Python and /bin/sh robots in a
   scratch directory record what they got (stdin, environment, open descriptors) or misbehave
   (fail, hang, flood) on purpose. */

#define PATH_LEN 512

static char workdir[PATH_LEN];
static struct event_base *base;

struct outcome {
	int calls;
	size_t n;
	struct delivery_result r[8];
};

/* ---- scratch files ---- */

static void path_of(char *out, const char *name)
{
	snprintf(out, PATH_LEN, "%s/%s", workdir, name);
}

static void write_file(const char *name, const char *data, size_t len, mode_t mode)
{
	char path[PATH_LEN];
	path_of(path, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Returns the file's contents (NUL-terminated, to free), or NULL when it does not exist. */
static char *read_file(const char *name, size_t *len_r)
{
	char path[PATH_LEN];
	path_of(path, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 20, len = 0;
	char *data = malloc(cap + 1);
	size_t n;
	while ((n = fread(data + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap)
			data = realloc(data, (cap *= 2) + 1);
	}
	fclose(f);
	data[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return data;
}

static bool file_exists(const char *name)
{
	char path[PATH_LEN];
	path_of(path, name);
	return access(path, F_OK) == 0;
}

static const char record_py[] =
	"#!/usr/bin/python3\n"
	"import os, sys\n"
	"out = sys.argv[1]\n"
	"data = sys.stdin.buffer.read()\n"
	"fds = ' '.join(sorted(os.listdir('/proc/self/fd'), key=int))\n"
	"open(out + '.in', 'wb').write(data)\n"
	"open(out + '.env', 'w').write(''.join('%s=%s\\n' % kv for kv in sorted(os.environ.items())))\n"
	"open(out + '.misc', 'w').write('fds=%s\\ncwd=%s\\nuid=%d\\nargc=%d\\n' % (fds, os.getcwd(), os.getuid(), len(sys.argv)))\n"
	"with open(out + '.log', 'a') as f:\n"
	"    f.write(os.environ.get('RECIPIENT', '') + '\\n')\n"
	"print('robot was here')\n";

/* Writes the robots used below into the scratch directory. */
static void write_robots(void)
{
	static const struct { const char *name, *text; } robots[] = {
		{ "tempfail.sh", "#!/bin/sh\necho 'mailbox is locked' >&2\nexit 75\n" },
		{ "nouser.sh", "#!/bin/sh\nprintf 'no such user:\\001 %s?  \\r\\n\\tsecond line\\n' \"$RECIPIENT\" >&2\nexit 67\n" },
		{ "hang.sh", "#!/bin/sh\nsleep 30 &\necho $! > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"\nwait\n" },
		{ "flood.sh", "#!/bin/sh\nexec /usr/bin/yes flood\n" },
		{ "noread.sh", "#!/bin/sh\nexit 0\n" },
		{ "byrcpt.sh", "#!/bin/sh\ncase \"$RECIPIENT\" in bad@*) echo \"unknown $RECIPIENT\" >&2; exit 67;; "
			       "slow@*) sleep 0.2;; esac\necho \"$RECIPIENT\" >> \"$1\"\n" },
		{ "record.py", record_py },
	};
	for (size_t i = 0; i < sizeof(robots) / sizeof(robots[0]); i++)
		write_file(robots[i].name, robots[i].text, strlen(robots[i].text), 0755);
}

/* A queue file: some bytes of envelope first, so that content_off matters. Returns its fd
   (deliberately not close-on-exec: the child must not see it anyway). */
static int queue_file(const char *content, size_t len, off_t *off_r)
{
	static const char prefix[] = "ENVELOPE junk that is not the message\n";
	char path[PATH_LEN];
	path_of(path, "queuefile");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, prefix, strlen(prefix)), (ssize_t)strlen(prefix));
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	*off_r = (off_t)strlen(prefix);
	return fd;
}

/* ---- the loop ---- */

static void on_done(void *arg, const struct delivery_result *results, size_t n)
{
	struct outcome *o = arg;
	o->calls++;
	o->n = n;
	memcpy(o->r, results, n * sizeof(*results));
	event_base_loopbreak(base);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until o has its callback, failing after 10 s. */
static void run_until_done(struct outcome *o)
{
	double deadline = now_s() + 10;
	struct timeval slice = { 0, 50000 };
	while (o->calls == 0) {
		assert_true(now_s() < deadline);
		event_base_loopexit(base, &slice);
		event_base_dispatch(base);
	}
	assert_int_equal(o->calls, 1);
}

static void run_for(double seconds)
{
	struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6) };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Delivers req through a new agent with opts and the robot name (argument arg1, may be
   NULL), and waits for the results. */
static void deliver(const struct pipe_agent_options *opts, const char *robot, const char *arg1,
		    const struct delivery_request *req, struct outcome *o)
{
	char prog[PATH_LEN], argpath[PATH_LEN];
	path_of(prog, robot);
	if (arg1 != NULL)
		path_of(argpath, arg1);
	char *argv[] = { prog, arg1 != NULL ? argpath : NULL, NULL };
	struct pipe_agent *a = pipe_agent_new(base, opts);
	memset(o, 0, sizeof(*o));
	pipe_agent_deliver(a, argv, req, on_done, o);
	assert_int_equal(o->calls, 0); /* never inside the call */
	run_until_done(o);
	pipe_agent_free(&a);
	assert_null(a);
	assert_int_equal(o->calls, 1);
}

static void request_init(struct delivery_request *req, const struct delivery_rcpt *rcpts, size_t n,
			 const char *content, size_t len)
{
	memset(req, 0, sizeof(*req));
	req->id = "4ABCDEF";
	req->sender = "sender@example.net";
	req->rcpts = rcpts;
	req->nrcpts = n;
	req->content_size = len;
	req->fd = queue_file(content, len, &req->content_off);
}

/* True when the process is gone (or a zombie waiting for a reaper that is not us). */
static bool process_dead(pid_t pid)
{
	char path[64], stat[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return true;
	bool dead = fgets(stat, sizeof(stat), f) == NULL || strstr(stat, ") Z") != NULL ||
		    strstr(stat, ") X") != NULL;
	fclose(f);
	return dead;
}

static pid_t wait_pid_file(const char *name)
{
	double deadline = now_s() + 5;
	char *s;
	while ((s = read_file(name, NULL)) == NULL) {
		assert_true(now_s() < deadline);
		run_for(0.05);
	}
	pid_t pid = (pid_t)atoi(s);
	free(s);
	assert_true(pid > 0);
	return pid;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	}
	return false;
}

/* ---- tests ---- */

static void test_stdin_and_environment(void **state)
{
	static const char content[] = "Subject: hi\r\n\r\nline1\r\nbare\rcr\r\n.dot\r\n";
	struct delivery_rcpt rc[] = { { .index = 3, .address = "user+ext+more@example.org",
					.orcpt = "rfc822;Orig+2Bx@Example.COM" } };
	struct pipe_agent_options opts = { .timeout = 10, .directory = workdir,
					   .env = (const char *const[]){ "ROBOT_MODE=test", NULL } };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, content, strlen(content));
	deliver(&opts, "record.py", "rec", &req, &o);
	close(req.fd);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.r[0].index, 3);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	assert_string_equal(o.r[0].dsn, "2.0.0");
	assert_non_null(strstr(o.r[0].text, "delivered to command: /"));

	char *in = read_file("rec.in", NULL), *env = read_file("rec.env", NULL), *misc = read_file("rec.misc", NULL);
	assert_string_equal(in, "Return-Path: <sender@example.net>\nDelivered-To: user+ext+more@example.org\n"
				"Subject: hi\n\nline1\nbare\rcr\n.dot\n");
	assert_true(has_line(env, "PATH=/usr/bin:/bin"));
	assert_true(has_line(env, "SENDER=sender@example.net"));
	assert_true(has_line(env, "RECIPIENT=user+ext+more@example.org"));
	assert_true(has_line(env, "ORIGINAL_RECIPIENT=Orig+x@Example.COM"));
	assert_true(has_line(env, "EXTENSION=ext+more"));
	assert_true(has_line(env, "DOMAIN=example.org"));
	assert_true(has_line(env, "QUEUE_ID=4ABCDEF"));
	assert_true(has_line(env, "SIZE=37"));
	assert_true(has_line(env, "ROBOT_MODE=test"));
	assert_null(strstr(env, "POSTERN_CANARY")); /* nothing of ours leaks in */
	/* 3 is the directory listing /proc/self/fd itself: the queue file is not inherited */
	assert_true(has_line(misc, "fds=0 1 2 3"));
	char cwd[PATH_LEN + 8];
	snprintf(cwd, sizeof(cwd), "cwd=%s", workdir);
	assert_true(has_line(misc, cwd));
	assert_true(has_line(misc, "argc=2"));
	free(in);
	free(env);
	free(misc);
}

static void test_defaults_without_orcpt_or_extension(void **state)
{
	static const char content[] = "\r\n";
	struct delivery_rcpt rc[] = { { .index = 0, .address = "plain@example.org" } };
	struct pipe_agent_options opts = { 0 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, content, strlen(content));
	req.sender = "";
	deliver(&opts, "record.py", "def", &req, &o);
	close(req.fd);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	char *in = read_file("def.in", NULL), *env = read_file("def.env", NULL), *misc = read_file("def.misc", NULL);
	assert_string_equal(in, "Return-Path: <>\nDelivered-To: plain@example.org\n\n");
	assert_true(has_line(env, "SENDER="));
	assert_true(has_line(env, "EXTENSION="));
	assert_true(has_line(env, "ORIGINAL_RECIPIENT=plain@example.org"));
	assert_true(has_line(misc, "cwd=/"));
	free(in);
	free(env);
	free(misc);
}

static void test_tempfail_defers(void **state)
{
	struct delivery_rcpt rc[] = { { .index = 1, .address = "a@example.org" } };
	struct pipe_agent_options opts = { .timeout = 10 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, "x\r\n", 3);
	deliver(&opts, "tempfail.sh", NULL, &req, &o);
	close(req.fd);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].dsn, "4.3.0");
	assert_string_equal(o.r[0].text, "command exited with status 75: mailbox is locked");
}

static void test_nouser_bounces_with_stderr(void **state)
{
	struct delivery_rcpt rc[] = { { .index = 2, .address = "nobody-here@example.org" } };
	struct pipe_agent_options opts = { .timeout = 10 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, "x\r\n", 3);
	deliver(&opts, "nouser.sh", NULL, &req, &o);
	close(req.fd);
	assert_int_equal(o.r[0].index, 2);
	assert_int_equal(o.r[0].status, DELIVERY_BOUNCE);
	assert_string_equal(o.r[0].dsn, "5.1.1");
	assert_string_equal(o.r[0].text, "command exited with status 67: no such user:? nobody-here@example.org?");
}

static void test_hang_times_out(void **state)
{
	struct delivery_rcpt rc[] = { { .index = 0, .address = "a@example.org" } };
	struct pipe_agent_options opts = { .timeout = 1 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, "x\r\n", 3);
	double t0 = now_s();
	deliver(&opts, "hang.sh", "hang.pid", &req, &o);
	double took = now_s() - t0;
	close(req.fd);
	assert_true(took < 2.5);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].text, "command timed out after 1s");
	pid_t sleeper = wait_pid_file("hang.pid");
	for (int i = 0; i < 50 && !process_dead(sleeper); i++)
		usleep(20000);
	assert_true(process_dead(sleeper)); /* the whole process group went */
}

static void test_flood_is_killed(void **state)
{
	struct delivery_rcpt rc[] = { { .index = 0, .address = "a@example.org" } };
	struct pipe_agent_options opts = { .timeout = 10, .output_limit = 10000 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, "x\r\n", 3);
	deliver(&opts, "flood.sh", NULL, &req, &o);
	close(req.fd);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].text, "command output exceeded 10000 bytes");
}

static void test_shell_metacharacters_stay_data(void **state)
{
	static const char evil[] = "\"a;touch pwned;x$(touch pwned2)`touch pwned3`\"@example.org";
	struct delivery_rcpt rc[] = { { .index = 0, .address = evil } };
	struct pipe_agent_options opts = { .timeout = 10, .directory = workdir };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, "x\r\n", 3);
	deliver(&opts, "record.py", "evil", &req, &o);
	close(req.fd);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	char *env = read_file("evil.env", NULL), *misc = read_file("evil.misc", NULL);
	char line[256];
	snprintf(line, sizeof(line), "RECIPIENT=%s", evil);
	assert_true(has_line(env, line));
	assert_true(has_line(misc, "argc=2"));
	assert_false(file_exists("pwned"));
	assert_false(file_exists("pwned2"));
	assert_false(file_exists("pwned3"));
	free(env);
	free(misc);
}

static void test_several_recipients_in_order(void **state)
{
	struct delivery_rcpt rc[] = {
		{ .index = 7, .address = "slow@example.org" },
		{ .index = 2, .address = "bad@example.org" },
		{ .index = 5, .address = "third@example.org" },
	};
	struct pipe_agent_options opts = { .timeout = 10 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 3, "x\r\n", 3);
	deliver(&opts, "byrcpt.sh", "byrcpt.log", &req, &o);
	close(req.fd);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.r[0].index, 7);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	assert_int_equal(o.r[1].index, 2);
	assert_int_equal(o.r[1].status, DELIVERY_BOUNCE);
	assert_string_equal(o.r[1].text, "command exited with status 67: unknown bad@example.org");
	assert_int_equal(o.r[2].index, 5);
	assert_int_equal(o.r[2].status, DELIVERY_DONE);
	char *log = read_file("byrcpt.log", NULL);
	assert_string_equal(log, "slow@example.org\nthird@example.org\n");
	free(log);
}

/* A CR at the very end of a 64 KiB chunk with its LF in the next, and a program that never
   reads its stdin (EPIPE is not a failure). */
static void test_large_message(void **state)
{
	size_t len = 65535 + 2 + 3000 * 3;
	char *content = malloc(len + 1);
	memset(content, 'x', 65535);
	memcpy(content + 65535, "\r\n", 2);
	for (size_t i = 0; i < 3000; i++)
		memcpy(content + 65537 + i * 3, "y\r\n", 3);
	struct delivery_rcpt rc[] = { { .index = 0, .address = "big@example.org" } };
	struct pipe_agent_options opts = { .timeout = 10 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, content, len);
	deliver(&opts, "record.py", "big", &req, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	size_t got;
	char *in = read_file("big.in", &got);
	const char *hdr = "Return-Path: <sender@example.net>\nDelivered-To: big@example.org\n";
	assert_int_equal(got, strlen(hdr) + 65535 + 1 + 3000 * 2);
	assert_null(memchr(in, '\r', got));
	assert_memory_equal(in + strlen(hdr) + 65535, "\ny\ny\n", 5);
	free(in);

	deliver(&opts, "noread.sh", NULL, &req, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	close(req.fd);
	free(content);
}

static void test_bad_command(void **state)
{
	struct delivery_rcpt rc[] = { { .index = 0, .address = "a@example.org" } };
	struct pipe_agent_options opts = { .timeout = 10 };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, "x\r\n", 3);
	deliver(&opts, "no-such-robot", NULL, &req, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_non_null(strstr(o.r[0].text, "cannot execute"));
	assert_non_null(strstr(o.r[0].text, "ENOENT"));

	/* a relative command is refused outright */
	struct pipe_agent *a = pipe_agent_new(base, &opts);
	char *argv[] = { "record.py", NULL };
	memset(&o, 0, sizeof(o));
	pipe_agent_deliver(a, argv, &req, on_done, &o);
	run_until_done(&o);
	pipe_agent_free(&a);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].text, "the command is not an absolute path");
	close(req.fd);
}

static void test_free_kills_running(void **state)
{
	struct delivery_rcpt rc[] = { { .index = 4, .address = "a@example.org" },
				      { .index = 6, .address = "b@example.org" } };
	struct pipe_agent_options opts = { .timeout = 30 };
	struct delivery_request req;
	struct outcome o = { 0 };
	char prog[PATH_LEN], pidfile[PATH_LEN];

	request_init(&req, rc, 2, "x\r\n", 3);
	path_of(prog, "hang.sh");
	path_of(pidfile, "free.pid");
	char *argv[] = { prog, pidfile, NULL };
	struct pipe_agent *a = pipe_agent_new(base, &opts);
	pipe_agent_deliver(a, argv, &req, on_done, &o);
	pid_t sleeper = wait_pid_file("free.pid");
	assert_int_equal(o.calls, 0);
	pipe_agent_free(&a);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.r[0].index, 4);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_int_equal(o.r[1].index, 6);
	assert_int_equal(o.r[1].status, DELIVERY_DEFER);
	for (int i = 0; i < 50 && !process_dead(sleeper); i++)
		usleep(20000);
	assert_true(process_dead(sleeper));
	close(req.fd);
}

/* As root the command runs as the configured user, and never as root by configuration. */
static void test_user(void **state)
{
	if (geteuid() != 0)
		skip();
	struct delivery_rcpt rc[] = { { .index = 0, .address = "a@example.org" } };
	struct pipe_agent_options opts = { .timeout = 10, .user = "nobody" };
	struct delivery_request req;
	struct outcome o;

	request_init(&req, rc, 1, "x\r\n", 3);
	assert_int_equal(chmod(workdir, 0777), 0);
	deliver(&opts, "record.py", "user", &req, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DONE);
	char *misc = read_file("user.misc", NULL);
	assert_non_null(misc);
	assert_null(strstr(misc, "uid=0\n"));
	free(misc);

	opts.user = "root";
	deliver(&opts, "record.py", "root", &req, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].text, "refusing to run the command as root");
	opts.user = "no-such-user-here";
	deliver(&opts, "record.py", "root", &req, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_false(file_exists("root.misc"));
	assert_int_equal(chmod(workdir, 0700), 0);
	close(req.fd);
}

static int setup(void **state)
{
	snprintf(workdir, sizeof(workdir), "/tmp/postern-pipe-XXXXXX");
	if (mkdtemp(workdir) == NULL || chmod(workdir, 0755) < 0)
		return -1;
	write_robots();
	base = event_base_new();
	return base != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_LEN + 16];
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stdin_and_environment),
		cmocka_unit_test(test_defaults_without_orcpt_or_extension),
		cmocka_unit_test(test_tempfail_defers),
		cmocka_unit_test(test_nouser_bounces_with_stderr),
		cmocka_unit_test(test_hang_times_out),
		cmocka_unit_test(test_flood_is_killed),
		cmocka_unit_test(test_shell_metacharacters_stay_data),
		cmocka_unit_test(test_several_recipients_in_order),
		cmocka_unit_test(test_large_message),
		cmocka_unit_test(test_bad_command),
		cmocka_unit_test(test_free_kills_running),
		cmocka_unit_test(test_user),
	};
	/* As in the daemon: a command that stops reading must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	setenv("POSTERN_CANARY", "1", 1);
	log_init("test_pipe_agent", LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
