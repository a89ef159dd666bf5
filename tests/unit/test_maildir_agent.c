#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "deliver/maildir_agent.h"

/* The maildir: agent against real files in a mkdtemp directory: content and names of the
   copies, error mapping, crash safety (a writer killed at random moments) and the worker pool
   on a real libevent loop. */

#define QUEUE_PREFIX "queue-file-envelope-junk\n"
#define MAX_FILES 4096

struct fx {
	char dir[64];
	char box[128];
	int qfd;
	char *wire;          /* the message as queued: CRLF lines */
	size_t wire_len;
	struct delivery_rcpt rcpt;
	struct delivery_request req;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* CRLF to LF, done the obvious way, for the expected copies. */
static char *to_lf(const char *s, size_t n, size_t *len_r)
{
	char *out = malloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (!(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))
			out[o++] = s[i];
	}
	*len_r = o;
	return out;
}

/* Replaces the queued message with wire (a copy is kept for the expected content). */
static void fx_set_message(struct fx *fx, const char *wire, size_t n)
{
	free(fx->wire);
	fx->wire = malloc(n + 1);
	memcpy(fx->wire, wire, n);
	fx->wire_len = n;
	assert_int_equal(ftruncate(fx->qfd, 0), 0);
	assert_int_equal(pwrite(fx->qfd, QUEUE_PREFIX, strlen(QUEUE_PREFIX), 0),
			 (ssize_t)strlen(QUEUE_PREFIX));
	assert_int_equal(pwrite(fx->qfd, wire, n, (off_t)strlen(QUEUE_PREFIX)), (ssize_t)n);
	fx->req.content_size = n;
}

static const char SMALL_MSG[] = "Subject: hello\r\nFrom: <a@example.org>\r\n\r\nline one\r\n"
				"bare\rcr and bare\nlf\r\n\r\n\r\nno newline at the end\r";

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/maildir_test.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->box, sizeof(fx->box), "%s/home/user/Maildir", fx->dir);
	char q[128];
	snprintf(q, sizeof(q), "%s/queuefile", fx->dir);
	fx->qfd = open(q, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fx->qfd >= 0);
	fx->rcpt = (struct delivery_rcpt){ .index = 7, .address = "user@example.com" };
	fx->req = (struct delivery_request){ .id = "Q1", .sender = "sender@example.org",
					     .fd = fx->qfd,
					     .content_off = (off_t)strlen(QUEUE_PREFIX),
					     .rcpts = &fx->rcpt, .nrcpts = 1 };
	fx_set_message(fx, SMALL_MSG, sizeof(SMALL_MSG) - 1);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	close(fx->qfd);
	chmod(fx->dir, 0700);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx->wire);
	free(fx);
	return 0;
}

static char *read_whole(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = NULL;
	size_t cap = 0, len = 0, got;
	do {
		if (len + 65536 > cap)
			buf = realloc(buf, cap = cap * 2 + 65536);
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	fclose(f);
	*len_r = len;
	return buf;
}

/* Lists the names in box/sub (none when it does not exist); returns how many. */
static size_t list_dir(const char *box, const char *sub, char **names, size_t max)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", box, sub);
	DIR *d = opendir(path);
	if (d == NULL && errno == ENOENT)
		return 0;
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		assert_true(n < max);
		if (names != NULL)
			names[n] = strdup(e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* Whether the file new/name is exactly the copy for rcpt, and its name ends in ",S=size". */
static bool copy_is_complete(const struct fx *fx, const char *name, const char *rcpt)
{
	char path[512], *head;
	snprintf(path, sizeof(path), "%s/new/%s", fx->box, name);
	size_t len, body_len;
	char *got = read_whole(path, &len);
	char *body = to_lf(fx->wire, fx->wire_len, &body_len);
	int hl = asprintf(&head, "Return-Path: <%s>\nDelivered-To: %s\n", fx->req.sender, rcpt);
	char size[32];
	snprintf(size, sizeof(size), ",S=%zu", len);
	const char *s = strstr(name, ",S=");
	bool ok = len == (size_t)hl + body_len && memcmp(got, head, (size_t)hl) == 0 &&
		  memcmp(got + hl, body, body_len) == 0 && s != NULL && strcmp(s, size) == 0;
	free(got);
	free(body);
	free(head);
	return ok;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

static void test_deliver_creates_and_copies(void **state)
{
	struct fx *fx = *state;
	struct delivery_result r;
	assert_int_equal(maildir_deliver_one(fx->box, &fx->req, &fx->rcpt, "mx.example", &r), 0);
	assert_int_equal(r.status, DELIVERY_DONE);
	assert_int_equal(r.index, 7);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.dsn, "2.0.0");
	assert_string_equal(r.text, "delivered to maildir");
	const char *subs[] = { "", "/tmp", "/new", "/cur" };
	for (int i = 0; i < 4; i++) {
		char path[256];
		struct stat st;
		snprintf(path, sizeof(path), "%s%s", fx->box, subs[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0700);
	}
	char *names[2];
	assert_int_equal(list_dir(fx->box, "new", names, 2), 1);
	assert_true(copy_is_complete(fx, names[0], "user@example.com"));
	assert_non_null(strstr(names[0], ".mx.example,S="));
	assert_int_equal(list_dir(fx->box, "tmp", NULL, 1), 0);
	assert_int_equal(list_dir(fx->box, "cur", NULL, 1), 0);
	free_names(names, 1);
}

/* The null sender, and CRLFs split across the agent's 64 KiB reads. */
static void test_deliver_large_and_null_sender(void **state)
{
	struct fx *fx = *state;
	size_t n = 3 * 65536 + 17;
	char *wire = malloc(n);
	for (size_t i = 0; i < n; i++)
		wire[i] = (char)('a' + i % 26);
	for (size_t i = 70; i + 1 < n; i += 71) {
		wire[i] = '\r';
		wire[i + 1] = '\n';
	}
	wire[65535] = '\r'; /* a CRLF across the first boundary, a bare CR at the second */
	wire[65536] = '\n';
	wire[2 * 65536 - 1] = '\r';
	wire[2 * 65536] = 'x';
	wire[n - 1] = '\r';
	fx_set_message(fx, wire, n);
	free(wire);
	fx->req.sender = "";
	struct delivery_result r;
	assert_int_equal(maildir_deliver_one(fx->box, &fx->req, &fx->rcpt, NULL, &r), 0);
	assert_int_equal(r.status, DELIVERY_DONE);
	char *names[2];
	assert_int_equal(list_dir(fx->box, "new", names, 2), 1);
	assert_true(copy_is_complete(fx, names[0], "user@example.com"));
	free_names(names, 1);
}

static void test_unique_names(void **state)
{
	struct fx *fx = *state;
	struct delivery_result r;
	for (int i = 0; i < 200; i++)
		assert_int_equal(maildir_deliver_one(fx->box, &fx->req, &fx->rcpt, "h/o:st", &r), 0);
	static char *names[MAX_FILES];
	size_t n = list_dir(fx->box, "new", names, MAX_FILES);
	assert_int_equal(n, 200); /* distinct names, or link() would have failed */
	for (size_t i = 0; i < n; i++) {
		assert_true(copy_is_complete(fx, names[i], "user@example.com"));
		assert_non_null(strstr(names[i], ".h\\057o\\072st,S="));
		assert_null(strchr(names[i], ':'));
	}
	assert_int_equal(list_dir(fx->box, "tmp", NULL, 1), 0);
	free_names(names, n);
}

static void test_bad_input_bounces(void **state)
{
	struct fx *fx = *state;
	struct delivery_result r;
	assert_int_equal(maildir_deliver_one("home/Maildir", &fx->req, &fx->rcpt, "h", &r), -1);
	assert_int_equal(r.status, DELIVERY_BOUNCE);
	assert_int_equal(r.index, 7);
	assert_string_equal(r.dsn, "5.3.5");
	struct delivery_rcpt bad = { .index = 3, .address = "x@y\nBcc: z@w" };
	assert_int_equal(maildir_deliver_one(fx->box, &fx->req, &bad, "h", &r), -1);
	assert_int_equal(r.status, DELIVERY_BOUNCE);
	assert_int_equal(r.index, 3);
	assert_string_equal(r.dsn, "5.1.3");
}

/* The queue file is shorter than the request says: nothing is left behind. */
static void test_short_queue_file_defers(void **state)
{
	struct fx *fx = *state;
	fx->req.content_size += 100;
	struct delivery_result r;
	assert_int_equal(maildir_deliver_one(fx->box, &fx->req, &fx->rcpt, "h", &r), -1);
	assert_int_equal(r.status, DELIVERY_DEFER);
	assert_string_equal(r.dsn, "4.3.0");
	assert_non_null(strstr(r.text, "cannot read queue file Q1"));
	assert_int_equal(list_dir(fx->box, "tmp", NULL, 1), 0);
	assert_int_equal(list_dir(fx->box, "new", NULL, 1), 0);
}

static void test_errno_mapping(void **state)
{
	static const struct {
		int err;
		const char *dsn;
	} cases[] = { { ENOSPC, "4.2.2" }, { EDQUOT, "4.2.2" }, { EFBIG, "4.2.2" },
		      { EACCES, "4.3.0" }, { ENOENT, "4.3.0" }, { EIO, "4.3.0" },
		      { EROFS, "4.3.0" } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct delivery_result r;
		maildir_result_errno(&r, i, cases[i].err, "cannot write", "/m/tmp/x");
		assert_int_equal(r.status, DELIVERY_DEFER);
		assert_int_equal(r.index, i);
		assert_string_equal(r.dsn, cases[i].dsn);
		assert_non_null(strstr(r.text, strerror(cases[i].err)));
		assert_non_null(strstr(r.text, "/m/tmp/x"));
		if (strcmp(cases[i].dsn, "4.2.2") == 0)
			assert_non_null(strstr(r.text, "mailbox full"));
	}
}

enum child_setup { CHILD_UNPRIVILEGED, CHILD_FILE_LIMIT };

/* Runs maildir_deliver_one in a child changed by how (privileges and limits must not leak
   into the other tests) and returns its result. */
static struct delivery_result deliver_in_child(struct fx *fx, enum child_setup how)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct delivery_result r;
		if (how == CHILD_UNPRIVILEGED && geteuid() == 0 &&
		    (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		struct rlimit rl = { 1000, 1000 };
		signal(SIGXFSZ, SIG_IGN); /* so that write() fails with EFBIG instead */
		if (how == CHILD_FILE_LIMIT && setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(2);
		maildir_deliver_one(fx->box, &fx->req, &fx->rcpt, "h", &r);
		_exit(write(p[1], &r, sizeof(r)) == sizeof(r) ? 0 : 3);
	}
	close(p[1]);
	struct delivery_result r;
	assert_int_equal(read(p[0], &r, sizeof(r)), sizeof(r));
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return r;
}

static void test_readonly_parent_defers(void **state)
{
	struct fx *fx = *state;
	char parent[128];
	snprintf(parent, sizeof(parent), "%s/ro", fx->dir);
	assert_int_equal(mkdir(parent, 0555), 0);
	assert_int_equal(chmod(fx->dir, 0755), 0); /* the unprivileged child must get in */
	snprintf(fx->box, sizeof(fx->box), "%s/Maildir", parent);
	struct delivery_result r = deliver_in_child(fx, CHILD_UNPRIVILEGED);
	assert_int_equal(r.status, DELIVERY_DEFER);
	assert_int_equal(r.index, 7);
	assert_string_equal(r.dsn, "4.3.0");
	assert_non_null(strstr(r.text, strerror(EACCES)));
	assert_non_null(strstr(r.text, fx->box));
	assert_int_equal(access(fx->box, F_OK), -1);
}

/* A file size limit is the quota the test can set up without privileges or a mount. */
static void test_file_limit_defers_mailbox_full(void **state)
{
	struct fx *fx = *state;
	char big[8192];
	memset(big, 'z', sizeof(big));
	fx_set_message(fx, big, sizeof(big));
	struct delivery_result r = deliver_in_child(fx, CHILD_FILE_LIMIT);
	assert_int_equal(r.status, DELIVERY_DEFER);
	assert_string_equal(r.dsn, "4.2.2");
	assert_non_null(strstr(r.text, "mailbox full"));
	assert_int_equal(list_dir(fx->box, "tmp", NULL, 1), 0);
	assert_int_equal(list_dir(fx->box, "new", NULL, 1), 0);
}

/* A writer killed at random moments never leaves a partial copy in new/. */
static void test_crash_safety(void **state)
{
	struct fx *fx = *state;
	size_t n = 300000;
	char *wire = malloc(n);
	for (size_t i = 0; i < n; i++)
		wire[i] = i % 64 == 63 ? '\n' : i % 64 == 62 ? '\r' : (char)('A' + i % 26);
	fx_set_message(fx, wire, n);
	free(wire);
	srand((unsigned)time(NULL));
	for (int round = 0; round < 40; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct delivery_result r;
			for (;;) {
				if (maildir_deliver_one(fx->box, &fx->req, &fx->rcpt, "h", &r) < 0)
					_exit(1);
			}
		}
		usleep((useconds_t)(1000 + rand() % 50000));
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
	}
	static char *names[MAX_FILES];
	size_t count = list_dir(fx->box, "new", names, MAX_FILES);
	assert_true(count > 0);
	for (size_t i = 0; i < count; i++)
		assert_true(copy_is_complete(fx, names[i], "user@example.com"));
	print_message("crash safety: %zu complete copies in new/, %zu left in tmp/\n", count,
		      list_dir(fx->box, "tmp", NULL, MAX_FILES));
	free_names(names, count);
}

/* What the async tests' callbacks saw. */
struct calls {
	int n;
	bool off_loop; /* a callback ran on another thread */
	pthread_t loop;
	struct delivery_result results[64][3];
	size_t nresults[64];
};

static void calls_done(void *arg, const struct delivery_result *results, size_t n)
{
	struct calls *c = arg;
	if (!pthread_equal(pthread_self(), c->loop))
		c->off_loop = true;
	assert_true(c->n < 64 && n <= 3);
	memcpy(c->results[c->n], results, n * sizeof(*results));
	c->nresults[c->n++] = n;
}

static void run_until(struct event_base *base, struct calls *c, int n)
{
	for (int i = 0; i < 10000 && c->n < n; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(c->n, n);
}

/* Three recipients a request; the caller's arrays are scribbled over after each call. */
static void submit(struct maildir_agent *a, struct fx *fx, struct calls *c)
{
	struct delivery_rcpt rcpts[3];
	char addr[3][32];
	for (int i = 0; i < 3; i++) {
		snprintf(addr[i], sizeof(addr[i]), "r%d@example.com", i);
		rcpts[i] = (struct delivery_rcpt){ .index = (size_t)(10 + i), .address = addr[i] };
	}
	struct delivery_request req = fx->req;
	req.rcpts = rcpts;
	req.nrcpts = 3;
	maildir_agent_deliver(a, fx->box, &req, calls_done, c);
	memset(rcpts, 0, sizeof(rcpts));
	memset(addr, 'X', sizeof(addr));
}

static void test_async_delivers_in_order(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct maildir_agent *a = maildir_agent_new(base, "async.example", 2);
	struct calls *c = calloc(1, sizeof(*c));
	c->loop = pthread_self();
	for (int i = 0; i < 10; i++)
		submit(a, fx, c);
	assert_int_equal(c->n, 0); /* never from inside the call */
	assert_int_equal(maildir_agent_pending(a), 10);
	run_until(base, c, 10);
	assert_int_equal(maildir_agent_pending(a), 0);
	assert_false(c->off_loop);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(c->nresults[i], 3);
		for (size_t j = 0; j < 3; j++) {
			assert_int_equal(c->results[i][j].index, 10 + j);
			assert_int_equal(c->results[i][j].status, DELIVERY_DONE);
		}
	}
	static char *names[MAX_FILES];
	size_t n = list_dir(fx->box, "new", names, MAX_FILES);
	assert_int_equal(n, 30);
	int per_rcpt[3] = { 0 };
	for (size_t i = 0; i < n; i++) {
		for (int j = 0; j < 3; j++) {
			char addr[32];
			snprintf(addr, sizeof(addr), "r%d@example.com", j);
			per_rcpt[j] += copy_is_complete(fx, names[i], addr);
		}
	}
	assert_true(per_rcpt[0] == 10 && per_rcpt[1] == 10 && per_rcpt[2] == 10);
	free_names(names, n);
	maildir_agent_free(&a);
	assert_null(a);
	maildir_agent_free(&a);
	event_base_free(base);
	free(c);
}

/* Freeing with work queued: every callback has run, undelivered recipients are deferred. */
static void test_async_free_cancels(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct maildir_agent *a = maildir_agent_new(base, "async.example", 1);
	struct calls *c = calloc(1, sizeof(*c));
	c->loop = pthread_self();
	for (int i = 0; i < 20; i++)
		submit(a, fx, c);
	maildir_agent_free(&a);
	assert_int_equal(c->n, 20);
	int done = 0, deferred = 0;
	for (int i = 0; i < 20; i++) {
		for (size_t j = 0; j < 3; j++) {
			const struct delivery_result *r = &c->results[i][j];
			assert_int_equal(r->index, 10 + j);
			if (r->status == DELIVERY_DONE) {
				done++;
				continue;
			}
			assert_int_equal(r->status, DELIVERY_DEFER);
			assert_string_equal(r->dsn, "4.3.0");
			assert_string_equal(r->text, "maildir agent stopped");
			deferred++;
		}
	}
	assert_int_equal(done + deferred, 60);
	assert_true(deferred > 0);
	assert_int_equal(list_dir(fx->box, "new", NULL, MAX_FILES), (size_t)done);
	event_base_free(base);
	free(c);
}

/* What a request of one recipient came back with. */
struct tally {
	int calls, done, busy, stopped;
};

static void tally_done(void *arg, const struct delivery_result *results, size_t n)
{
	struct tally *t = arg;
	assert_int_equal(n, 1);
	t->calls++;
	t->done += results[0].status == DELIVERY_DONE;
	t->busy += strcmp(results[0].text, "maildir agent busy") == 0;
	t->stopped += strcmp(results[0].text, "maildir agent stopped") == 0;
}

/* Submitting takes microseconds and a delivery milliseconds, so the queue overflows; the
   overflow is deferred through the callback, not inside the call. */
static void test_async_queue_full_defers(void **state)
{
	struct fx *fx = *state;
	struct event_base *base = event_base_new();
	struct maildir_agent *a = maildir_agent_new(base, "async.example", 1);
	struct tally t = { 0 };
	int extra = 20;
	for (int i = 0; i < MAILDIR_AGENT_QUEUE_MAX + extra; i++)
		maildir_agent_deliver(a, fx->box, &fx->req, tally_done, &t);
	assert_int_equal(t.calls, 0);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_true(t.busy > 0 && t.busy <= extra);
	maildir_agent_free(&a);
	assert_int_equal(t.calls, MAILDIR_AGENT_QUEUE_MAX + extra);
	assert_int_equal(t.done + t.busy + t.stopped, t.calls);
	event_base_free(base);
}

#define CASE(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest cases[] = {
		CASE(test_deliver_creates_and_copies),
		CASE(test_deliver_large_and_null_sender),
		CASE(test_unique_names),
		CASE(test_bad_input_bounces),
		CASE(test_short_queue_file_defers),
		CASE(test_errno_mapping),
		CASE(test_readonly_parent_defers),
		CASE(test_file_limit_defers_mailbox_full),
		CASE(test_crash_safety),
		CASE(test_async_delivers_in_order),
		CASE(test_async_free_cancels),
		CASE(test_async_queue_full_defers),
	};
	evthread_use_pthreads();
	return cmocka_run_group_tests(cases, NULL, NULL);
}
