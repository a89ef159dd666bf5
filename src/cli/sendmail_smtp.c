/* "sendmail -bs": an SMTP session on standard input and output. The daemon's own session code
   serves it over a socketpair; two threads copy stdin and stdout to and from the pair, so that
   any kind of file (pipe, tty, regular file) works. Accepted mail goes to maildrop/ as is;
   cleanup runs when the daemon picks it up. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cli/sendmail.h"
#include "conf/config.h"
#include "queue/commit.h"
#include "queue/spool.h"
#include "smtp/server.h"
#include "util/fsutil.h"
#include "util/log.h"

struct sendmail_pump {
	int from, to;
};

static void *sendmail_pump_run(void *arg)
{
	struct sendmail_pump *p = arg;
	char buf[16384];
	ssize_t n;
	while ((n = read(p->from, buf, sizeof(buf))) > 0) {
		if (fs_write_all(p->to, buf, (size_t)n) < 0)
			break;
	}
	shutdown(p->to, SHUT_WR); /* no effect on a non-socket; ends the session's input */
	return NULL;
}

struct sendmail_loop {
	struct event_base *base;
	struct smtp_server *server;
};

static void sendmail_check_done(evutil_socket_t fd, short what, void *arg)
{
	struct sendmail_loop *l = arg;
	if (smtp_server_sessions(l->server) == 0)
		event_base_loopexit(l->base, NULL);
}

int sendmail_smtp_stdio(struct sendmail *sm)
{
	int sv[2];
	char hostname[256];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		fprintf(stderr, "sendmail: socketpair: %s\n", strerror(errno));
		return EX_OSERR;
	}
	log_init("sendmail", LOG_LEVEL_WARN);
	config_hostname(sm->conf, hostname, sizeof(hostname));
	evthread_use_pthreads();
	struct smtp_context ctx = {
		.base = event_base_new(), .conf = sm->conf, .hostname = hostname, .spool = sm->spool,
		.queue = SPOOL_MAILDROP, .raw = true,
	};
	ctx.committer = committer_new(ctx.base, sm->spool);
	struct sendmail_loop loop = { ctx.base, smtp_server_new(&ctx) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	smtp_server_accept(loop.server, sv[0], (struct sockaddr *)&sun, sizeof(sun), false);
	struct sendmail_pump in = { STDIN_FILENO, sv[1] }, out = { sv[1], STDOUT_FILENO };
	pthread_t tin, tout;
	pthread_create(&tin, NULL, sendmail_pump_run, &in);
	pthread_create(&tout, NULL, sendmail_pump_run, &out);
	struct event *check = event_new(ctx.base, -1, EV_PERSIST, sendmail_check_done, &loop);
	struct timeval tv = { 0, 20000 };
	event_add(check, &tv);
	event_base_dispatch(ctx.base);
	event_free(check);
	committer_free(&ctx.committer);
	smtp_server_free(&loop.server);
	event_base_free(ctx.base);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(tout, NULL);
	/* The stdin thread may be blocked reading a terminal; the process exit ends it. */
	pthread_detach(tin);
	return 0;
}
