#include "deliver/pipe_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "deliver/pipe_agent_int.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xalloc.h"

#define PIPE_DEFAULT_TIMEOUT 1000
#define PIPE_DEFAULT_OUTPUT_LIMIT 65536
#define PIPE_CHUNK 65536     /* bytes of the queue file read per refill of the child's stdin */
#define PIPE_ERRLINE_MAX 400 /* bytes of the command's first stderr line kept for the result */

/* The command for the current recipient of a job. */
struct pipe_run {
	pid_t pid;             /* 0 when none is running */
	int fd[3];             /* our ends of its stdin, stdout, stderr; -1 once closed */
	struct event *ev[3];
	struct event *timer;
	char *chunk;           /* stdin data: the header lines, then the message converted */
	size_t chunk_cap, chunk_len, chunk_pos;
	uint64_t fed;          /* bytes of the message read from the queue file so far */
	bool cr;               /* the last byte read was a CR not yet known to end a line */
	size_t output;         /* bytes of stdout plus stderr */
	char errline[PIPE_ERRLINE_MAX + 1];
	size_t errlen;
	bool errline_done;
	char reason[128];      /* why we killed it, "" when we did not */
};

struct pipe_job {
	struct pipe_agent *agent;
	struct pipe_job *prev, *next;
	char **argv;
	const struct delivery_request *req;
	delivery_done_cb *cb;
	void *arg;
	struct delivery_result *results;
	size_t current;        /* the recipient being (or next to be) delivered */
	struct pipe_ident ident;
	const char *ident_error; /* set when the user cannot be used: every recipient defers */
	struct event *step;    /* starts the next command, or reports when none is left */
	struct pipe_run run;
};

struct pipe_agent {
	struct event_base *base;
	int timeout;
	size_t output_limit;
	char *user, *group, *directory;
	char **env;
	struct event *sigchld; /* added only while some command runs */
	int running;
	struct pipe_job *jobs;
};

static char **strv_dup(const char *const *v)
{
	size_t n = 0;
	while (v != NULL && v[n] != NULL)
		n++;
	char **copy = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		copy[i] = xstrdup(v[i]);
	return copy;
}

static void strv_free(char ***v)
{
	if (*v == NULL)
		return;
	for (char **p = *v; *p != NULL; p++)
		free(*p);
	xfree(v);
}

static const char *pipe_status_name(enum delivery_status s)
{
	return s == DELIVERY_DONE ? "sent" : s == DELIVERY_DEFER ? "deferred" : "bounced";
}

/* ---- the command's stderr line ---- */

/* Keeps the first line of stderr as written; pipe_errline_clean makes it fit a result. */
static void pipe_errline(struct pipe_run *run, const char *p, size_t n)
{
	for (size_t i = 0; i < n && !run->errline_done; i++) {
		if (p[i] == '\n' || run->errlen == PIPE_ERRLINE_MAX)
			run->errline_done = true;
		else
			run->errline[run->errlen++] = p[i];
	}
	run->errline[run->errlen] = '\0';
}

/* One line of printable text: a CRLF's CR and trailing blanks go, other controls become '?'. */
static void pipe_errline_clean(struct pipe_run *run)
{
	while (run->errlen > 0 && (run->errline[run->errlen - 1] == '\r' || run->errline[run->errlen - 1] == ' ' ||
				   run->errline[run->errlen - 1] == '\t'))
		run->errlen--;
	run->errline[run->errlen] = '\0';
	for (size_t i = 0; i < run->errlen; i++) {
		unsigned char c = (unsigned char)run->errline[i];
		if (c < 0x20 || c == 0x7f)
			run->errline[i] = '?';
	}
}

/* ---- results ---- */

/* sysexits(3) as Postfix's pipe(8) reads them; anything unlisted is a permanent failure. */
static void pipe_exit_class(int code, enum delivery_status *status_r, const char **dsn_r)
{
	static const struct { int code; enum delivery_status status; const char *dsn; } map[] = {
		{ EX_NOUSER, DELIVERY_BOUNCE, "5.1.1" },      { EX_NOHOST, DELIVERY_BOUNCE, "5.1.2" },
		{ EX_UNAVAILABLE, DELIVERY_BOUNCE, "5.3.0" }, { EX_NOPERM, DELIVERY_BOUNCE, "5.7.1" },
		{ EX_OSERR, DELIVERY_DEFER, "4.3.0" },        { EX_IOERR, DELIVERY_DEFER, "4.3.0" },
		{ EX_TEMPFAIL, DELIVERY_DEFER, "4.3.0" },
	};
	*status_r = DELIVERY_BOUNCE;
	*dsn_r = "5.3.0";
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].code == code) {
			*status_r = map[i].status;
			*dsn_r = map[i].dsn;
		}
	}
}

/* The command's own words, when it said any, follow ours. */
static void pipe_judge(struct pipe_job *job, int wstatus)
{
	struct pipe_run *run = &job->run;
	struct delivery_result *r = &job->results[job->current];
	size_t index = job->req->rcpts[job->current].index;
	enum delivery_status status;
	const char *dsn;

	pipe_errline_clean(run);
	const char *sep = run->errlen > 0 ? ": " : "";
	if (run->reason[0] != '\0') {
		delivery_result_set(r, index, DELIVERY_DEFER, 0, "4.3.0", "%s", run->reason);
	} else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
		delivery_result_set(r, index, DELIVERY_DONE, 0, "2.0.0", "delivered to command: %s", job->argv[0]);
	} else if (WIFEXITED(wstatus)) {
		pipe_exit_class(WEXITSTATUS(wstatus), &status, &dsn);
		delivery_result_set(r, index, status, 0, dsn, "command exited with status %d%s%s",
				    WEXITSTATUS(wstatus), sep, run->errline);
	} else {
		delivery_result_set(r, index, DELIVERY_DEFER, 0, "4.3.0", "command killed by signal %d%s%s",
				    WTERMSIG(wstatus), sep, run->errline);
	}
}

static void pipe_fail(struct pipe_job *job, const char *text)
{
	delivery_result_set(&job->results[job->current], job->req->rcpts[job->current].index,
			    DELIVERY_DEFER, 0, "4.3.0", "%s", text);
}

static void pipe_log(const struct pipe_job *job, size_t i)
{
	const struct delivery_result *r = &job->results[i];
	log_info("%s: to=<%s>, relay=pipe, dsn=%s, status=%s (%s)", job->req->id, job->req->rcpts[i].address,
		 r->dsn, pipe_status_name(r->status), r->text);
}

/* ---- the child's output ---- */

static void pipe_close_fd(struct pipe_run *run, int k)
{
	if (run->ev[k] != NULL)
		event_free(run->ev[k]);
	run->ev[k] = NULL;
	if (run->fd[k] >= 0)
		close(run->fd[k]);
	run->fd[k] = -1;
}

/* Stops a command we gave up on; the SIGCHLD that follows finishes the recipient. */
static void pipe_kill(struct pipe_job *job, const char *reason)
{
	struct pipe_run *run = &job->run;
	if (run->reason[0] == '\0')
		snprintf(run->reason, sizeof(run->reason), "%s", reason);
	if (run->pid > 0)
		kill(-run->pid, SIGKILL);
	for (int k = 0; k < 3; k++)
		pipe_close_fd(run, k);
}

/* Reads what is there; called by events and once more after the command exited. */
static void pipe_read(evutil_socket_t fd, short what, void *arg)
{
	struct pipe_job *job = arg;
	struct pipe_run *run = &job->run;
	int k = fd == run->fd[1] ? 1 : 2;
	char buf[4096];
	for (;;) {
		ssize_t n = read(run->fd[k], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			pipe_close_fd(run, k);
			return;
		}
		run->output += (size_t)n;
		if (k == 2)
			pipe_errline(run, buf, (size_t)n);
		if (run->output > job->agent->output_limit) {
			char why[96];
			snprintf(why, sizeof(why), "command output exceeded %zu bytes", job->agent->output_limit);
			pipe_kill(job, why);
			return;
		}
	}
}

/* ---- the child's input ---- */

/* Local delivery agents expect LF lines: each CRLF of the queue file becomes LF, also when
   a chunk boundary falls between the two. */
static size_t pipe_unix_lines(struct pipe_run *run, char *out, const char *in, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (run->cr) {
			run->cr = false;
			if (in[i] != '\n')
				out[o++] = '\r';
		}
		if (in[i] == '\r')
			run->cr = true;
		else
			out[o++] = in[i];
	}
	return o;
}

/* Refills run->chunk from the queue file. Returns 0 (chunk_len 0 at the end), or -1. The
   data is read one byte in so that the conversion can work in place: it never writes past
   what it has read, even with a CR carried over. */
static int pipe_refill(struct pipe_job *job)
{
	struct pipe_run *run = &job->run;
	uint64_t left = job->req->content_size - run->fed;
	size_t n = left < PIPE_CHUNK ? (size_t)left : PIPE_CHUNK;

	if (run->chunk_cap < PIPE_CHUNK + 1) {
		run->chunk = xrealloc(run->chunk, PIPE_CHUNK + 1);
		run->chunk_cap = PIPE_CHUNK + 1;
	}
	run->chunk_pos = run->chunk_len = 0;
	if (n == 0) {
		if (run->cr)
			run->chunk[run->chunk_len++] = '\r';
		run->cr = false;
		return 0;
	}
	if (fs_pread_all(job->req->fd, run->chunk + 1, n, job->req->content_off + (off_t)run->fed) != (ssize_t)n)
		return -1;
	run->fed += n;
	run->chunk_len = pipe_unix_lines(run, run->chunk, run->chunk + 1, n);
	return 0;
}

/* Writes as much as the pipe takes. A command may exit without reading all of its input:
   EPIPE only ends the feeding, the exit status decides. */
static void pipe_feed(evutil_socket_t fd, short what, void *arg)
{
	struct pipe_job *job = arg;
	struct pipe_run *run = &job->run;
	for (;;) {
		if (run->chunk_pos == run->chunk_len) {
			if (pipe_refill(job) < 0) {
				log_error("%s: cannot read the queue file: %s", job->req->id, strerror(errno));
				pipe_kill(job, "cannot read the queue file");
				return;
			}
			if (run->chunk_len == 0) {
				pipe_close_fd(run, 0);
				return;
			}
		}
		ssize_t n = write(run->fd[0], run->chunk + run->chunk_pos, run->chunk_len - run->chunk_pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			pipe_close_fd(run, 0);
			return;
		}
		run->chunk_pos += (size_t)n;
	}
}

static void pipe_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pipe_job *job = arg;
	char why[64];
	snprintf(why, sizeof(why), "command timed out after %ds", job->agent->timeout);
	pipe_kill(job, why);
}

/* ---- running a command ---- */

static void pipe_run_close(struct pipe_job *job)
{
	struct pipe_run *run = &job->run;
	for (int k = 0; k < 3; k++)
		pipe_close_fd(run, k);
	if (run->timer != NULL)
		event_free(run->timer);
	free(run->chunk);
	memset(run, 0, sizeof(*run));
	run->fd[0] = run->fd[1] = run->fd[2] = -1;
}

/* The SIGCHLD event is only pending while a command runs, so that an idle agent does not
   keep the loop alive. It is added before fork: an early exit cannot slip past it. */
static void pipe_running(struct pipe_agent *a, int delta)
{
	if (a->running == 0 && delta > 0)
		event_add(a->sigchld, NULL);
	a->running += delta;
	if (a->running == 0)
		event_del(a->sigchld);
}

/* Pipes: ours non-blocking and close-on-exec, the child's blocking (the description's flags
   are shared, and programs expect blocking stdio). */
static int pipe_make_pipes(struct pipe_run *run, int child_fds[3])
{
	for (int k = 0; k < 3; k++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		run->fd[k] = k == 0 ? p[1] : p[0];
		child_fds[k] = k == 0 ? p[0] : p[1];
		if (fcntl(run->fd[k], F_SETFL, O_NONBLOCK) < 0)
			return -1;
	}
	return 0;
}

static void pipe_watch(struct pipe_job *job)
{
	struct pipe_run *run = &job->run;
	struct event_base *base = job->agent->base;
	struct timeval tv = { .tv_sec = job->agent->timeout };
	run->ev[0] = event_new(base, run->fd[0], EV_WRITE | EV_PERSIST, pipe_feed, job);
	run->ev[1] = event_new(base, run->fd[1], EV_READ | EV_PERSIST, pipe_read, job);
	run->ev[2] = event_new(base, run->fd[2], EV_READ | EV_PERSIST, pipe_read, job);
	run->timer = evtimer_new(base, pipe_timeout, job);
	for (int k = 0; k < 3; k++)
		event_add(run->ev[k], NULL);
	evtimer_add(run->timer, &tv);
}

static void pipe_close_child_fds(int child_fds[3])
{
	for (int k = 0; k < 3; k++) {
		if (child_fds[k] >= 0)
			close(child_fds[k]);
		child_fds[k] = -1;
	}
}

/* Everything the child needs is prepared before fork: after it, only async-signal-safe calls. */
static pid_t pipe_fork(struct pipe_job *job, int child_fds[3])
{
	const struct delivery_rcpt *rc = &job->req->rcpts[job->current];
	char **envp = pipe_env_new(job->req, rc, (const char *const *)job->agent->env);
	pipe_running(job->agent, 1);
	pid_t pid = fork();
	if (pid == 0)
		pipe_child_exec(child_fds, &job->ident, job->agent->directory, job->argv, envp);
	int saved = errno;
	pipe_env_free(&envp);
	pipe_close_child_fds(child_fds);
	if (pid < 0) {
		log_error("%s: fork: %s", job->req->id, strerror(saved));
		pipe_running(job->agent, -1);
	}
	return pid;
}

/* Starts the command for the current recipient. Returns 0, or -1 with its result set. */
static int pipe_run_start(struct pipe_job *job)
{
	const struct delivery_request *req = job->req;
	struct pipe_run *run = &job->run;
	int child_fds[3] = { -1, -1, -1 };

	if (job->ident_error != NULL) {
		pipe_fail(job, job->ident_error);
		return -1;
	}
	if (pipe_make_pipes(run, child_fds) < 0) {
		log_error("%s: pipe: %s", req->id, strerror(errno));
		pipe_close_child_fds(child_fds);
	} else {
		run->pid = pipe_fork(job, child_fds);
	}
	if (run->pid <= 0) {
		pipe_run_close(job);
		pipe_fail(job, "cannot start the command");
		return -1;
	}
	run->chunk = xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", req->sender,
			       req->rcpts[job->current].address);
	run->chunk_len = strlen(run->chunk);
	run->chunk_cap = run->chunk_len + 1;
	pipe_watch(job);
	return 0;
}

/* The command has exited: what it wrote before is still in the pipes, read it for the
   result (not waiting for EOF: something it left running may hold them open). */
static void pipe_reaped(struct pipe_job *job, int wstatus)
{
	struct pipe_run *run = &job->run;
	run->pid = 0;
	pipe_running(job->agent, -1);
	for (int k = 1; k < 3; k++) {
		if (run->fd[k] >= 0)
			pipe_read(run->fd[k], EV_READ, job);
	}
	pipe_judge(job, wstatus);
	pipe_log(job, job->current);
	pipe_run_close(job);
	job->current++;
	event_active(job->step, 0, 0);
}

/* Only our own children: the daemon may have others, reaped by whoever started them. */
static void pipe_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct pipe_agent *a = arg;
	for (struct pipe_job *job = a->jobs; job != NULL; job = job->next) {
		int wstatus;
		if (job->run.pid > 0 && waitpid(job->run.pid, &wstatus, WNOHANG) == job->run.pid)
			pipe_reaped(job, wstatus);
	}
}

/* ---- jobs ---- */

static void pipe_job_unlink(struct pipe_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		job->agent->jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	job->prev = job->next = NULL;
}

/* Unlinked first: the callback may free the agent or start other deliveries. */
static void pipe_job_finish(struct pipe_job *job)
{
	pipe_job_unlink(job);
	job->cb(job->arg, job->results, job->req->nrcpts);
	pipe_run_close(job);
	event_free(job->step);
	pipe_ident_clear(&job->ident);
	strv_free(&job->argv);
	free(job->results);
	free(job);
}

/* Starts the next command; recipients that cannot get one are judged on the spot. */
static void pipe_step(evutil_socket_t fd, short what, void *arg)
{
	struct pipe_job *job = arg;
	while (job->current < job->req->nrcpts) {
		if (pipe_run_start(job) == 0)
			return;
		pipe_log(job, job->current);
		job->current++;
	}
	pipe_job_finish(job);
}

void pipe_agent_deliver(struct pipe_agent *a, char *const argv[], const struct delivery_request *req,
			delivery_done_cb *cb, void *arg)
{
	struct pipe_job *job = xcalloc(1, sizeof(*job));
	job->agent = a;
	job->argv = strv_dup((const char *const *)argv);
	job->req = req;
	job->cb = cb;
	job->arg = arg;
	job->results = xcalloc(req->nrcpts > 0 ? req->nrcpts : 1, sizeof(*job->results));
	job->run.fd[0] = job->run.fd[1] = job->run.fd[2] = -1;
	if (job->argv[0] == NULL || job->argv[0][0] != '/')
		job->ident_error = "the command is not an absolute path";
	else if (pipe_ident_resolve(a->user, a->group, &job->ident, &job->ident_error) < 0)
		log_warn("%s: pipe: %s (user %s)", req->id, job->ident_error, a->user);
	job->step = event_new(a->base, -1, 0, pipe_step, job);
	job->next = a->jobs;
	if (a->jobs != NULL)
		a->jobs->prev = job;
	a->jobs = job;
	event_active(job->step, 0, 0);
}

/* ---- the agent ---- */

static char *opt_dup(const char *s, const char *dflt)
{
	return xstrdup(s != NULL && s[0] != '\0' ? s : dflt);
}

struct pipe_agent *pipe_agent_new(struct event_base *base, const struct pipe_agent_options *opts)
{
	struct pipe_agent *a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->timeout = opts->timeout > 0 ? opts->timeout : PIPE_DEFAULT_TIMEOUT;
	a->output_limit = opts->output_limit > 0 ? opts->output_limit : PIPE_DEFAULT_OUTPUT_LIMIT;
	a->user = opt_dup(opts->user, "");
	a->group = opt_dup(opts->group, "");
	a->directory = opt_dup(opts->directory, "/");
	a->env = strv_dup(opts->env);
	a->sigchld = event_new(base, SIGCHLD, EV_SIGNAL | EV_PERSIST, pipe_sigchld, a);
	return a;
}

/* A killed command is reaped here and now (SIGKILL cannot be refused, so the wait is short):
   no zombie is left for a loop that may never run again. */
static void pipe_job_abort(struct pipe_job *job)
{
	struct pipe_run *run = &job->run;
	if (run->pid > 0) {
		kill(-run->pid, SIGKILL);
		while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
			;
		run->pid = 0;
		pipe_running(job->agent, -1);
	}
	for (; job->current < job->req->nrcpts; job->current++) {
		pipe_fail(job, "delivery interrupted by shutdown");
		pipe_log(job, job->current);
	}
	pipe_job_finish(job);
}

void pipe_agent_free(struct pipe_agent **ap)
{
	struct pipe_agent *a = *ap;
	if (a == NULL)
		return;
	while (a->jobs != NULL)
		pipe_job_abort(a->jobs);
	event_free(a->sigchld);
	free(a->user);
	free(a->group);
	free(a->directory);
	strv_free(&a->env);
	free(a);
	*ap = NULL;
}
