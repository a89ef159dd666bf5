#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "deliver/smtp_client.h"
#include "deliver/smtp_client_int.h"
#include "net/dns.h"
#include "smtp/command.h"
#include "util/log.h"

/* The SMTP/LMTP client against real peers on loopback: Postfix's smtp-sink (from
   scripts/bootstrap) for the plain cases and the failures it can make, tests/e2e/peer.py (a
   scripted server) for mixed results, LMTP, slow or dropped connections, exact bytes and TLS,
   and a private dnsmasq for MX cases. The loop, sockets, TLS and DNS are all real. */

extern char **environ;

/* Buffer sizes for paths: this run's directories, what is under them, shell commands. */
#define DIR_MAX 256
#define SUB_MAX 512
#define FILE_MAX 768
#define CMD_MAX 2048

static char source[DIR_MAX];  /* the source tree, found from __FILE__ */
static char workdir[DIR_MAX]; /* this run's scratch directory */
static char cert_file[SUB_MAX], key_file[SUB_MAX];
static pid_t dnsmasq_pid = -1;
static char dns_servers[64] = "127.0.0.1:9"; /* never asked unless dnsmasq runs */

struct outcome {
	int calls;
	size_t n;
	struct delivery_result r[8];
};

/* ---- processes ---- */

static pid_t spawn(char *const argv[], char *const envp[], int out_fd)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, envp != NULL ? envp : environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static void reap(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	waitpid(*pid, NULL, 0);
	*pid = -1;
}

static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, len = 0;
	char *s = malloc(cap);
	size_t n;
	while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2)
			s = realloc(s, cap *= 2);
	}
	fclose(f);
	s[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return s;
}

static void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(data, f);
	assert_int_equal(fclose(f), 0);
}

static int free_port(const char *ip)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static bool can_connect(const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM, 0);
	int rc = connect(fd, sa, len);
	close(fd);
	return rc == 0;
}

/* ---- the scripted peer (tests/e2e/peer.py) ---- */

static void run_until(const struct outcome *o, int ms);

struct peer {
	pid_t pid;
	int port;
	char dir[SUB_MAX];
};

#define MAX_PEERS 3
static struct peer peers[MAX_PEERS];

/* Starts peer i with a JSON script; returns its port. */
static int peer_start(int i, const char *script)
{
	struct peer *p = &peers[i];
	char path[FILE_MAX], prog[FILE_MAX], line[64] = "";
	int fds[2];
	snprintf(p->dir, sizeof(p->dir), "%s/peerXXXXXX", workdir);
	assert_non_null(mkdtemp(p->dir));
	snprintf(path, sizeof(path), "%s/script.json", p->dir);
	write_file(path, script);
	snprintf(prog, sizeof(prog), "%s/tests/e2e/peer.py", source);
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	char *argv[] = { "/usr/bin/python3", prog, path, p->dir, NULL };
	p->pid = spawn(argv, NULL, fds[1]);
	close(fds[1]);
	struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
	size_t n = 0;
	while (n < sizeof(line) - 1 && poll(&pfd, 1, 10000) == 1 && read(fds[0], line + n, 1) == 1 &&
	       line[n] != '\n')
		n++;
	close(fds[0]);
	assert_int_equal(sscanf(line, "READY %d", &p->port), 1);
	return p->port;
}

static char *peer_log(int i)
{
	char path[FILE_MAX];
	snprintf(path, sizeof(path), "%s/log", peers[i].dir);
	char *s = read_file(path, NULL);
	return s != NULL ? s : strdup("");
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Waits until the peer's log holds needle; returns whether it did. */
static bool peer_wait(int i, const char *needle, int ms)
{
	for (int t = 0; t < ms; t += 20) {
		char *log = peer_log(i);
		bool found = strstr(log, needle) != NULL;
		free(log);
		if (found)
			return true;
		run_until(NULL, 20);
	}
	return false;
}

/* The receive batch of the first command line starting with prefix, -1 when absent. */
static int peer_batch(const char *log, const char *prefix)
{
	for (const char *l = log; *l != '\0'; l = strchr(l, '\n') + 1) {
		int conn, batch, off = 0;
		if (sscanf(l, "%d cmd %d %n", &conn, &batch, &off) == 2 && off > 0 &&
		    strncmp(l + off, prefix, strlen(prefix)) == 0)
			return batch;
		if (strchr(l, '\n') == NULL)
			break;
	}
	return -1;
}

static char *peer_message(int i, int n, size_t *len_r)
{
	char path[FILE_MAX];
	snprintf(path, sizeof(path), "%s/msg-%d.raw", peers[i].dir, n);
	return read_file(path, len_r);
}

/* ---- smtp-sink ---- */

static pid_t sink_pid = -1;
static char sink_dir[SUB_MAX];

/* Starts smtp-sink with extra options on endpoint ("127.0.0.1:PORT" or "unix:PATH"); each
   message is dumped under sink_dir. */
static void sink_start(const char *const *opts, const char *endpoint)
{
	char prog[FILE_MAX], env_lib[FILE_MAX], dump[FILE_MAX];
	char *argv[32];
	int n = 0;
	snprintf(prog, sizeof(prog), "%s/.deps/postfix/usr/sbin/smtp-sink", source);
	snprintf(env_lib, sizeof(env_lib), "LD_LIBRARY_PATH=%s/.deps/postfix/usr/lib/postfix", source);
	snprintf(sink_dir, sizeof(sink_dir), "%s/sinkXXXXXX", workdir);
	assert_non_null(mkdtemp(sink_dir));
	chmod(sink_dir, 0777); /* smtp-sink drops to nobody */
	snprintf(dump, sizeof(dump), "%s/%%H%%M%%S.", sink_dir);
	if (access(prog, X_OK) != 0)
		fail_msg("%s is missing: run scripts/bootstrap", prog);
	argv[n++] = prog;
	if (geteuid() == 0) { /* smtp-sink refuses to run as root */
		argv[n++] = "-u";
		argv[n++] = "nobody";
	}
	argv[n++] = "-d";
	argv[n++] = dump;
	for (; opts != NULL && *opts != NULL; opts++)
		argv[n++] = (char *)*opts;
	argv[n++] = (char *)endpoint;
	argv[n++] = "10";
	argv[n] = NULL;
	char *envp[] = { env_lib, "PATH=/usr/bin:/bin", NULL };
	sink_pid = spawn(argv, envp, -1);
}

static void sink_wait_tcp(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < 250 && !can_connect((struct sockaddr *)&sin, sizeof(sin)); i++)
		usleep(20000);
}

static void sink_wait_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	for (int i = 0; i < 250 && !can_connect((struct sockaddr *)&sun, sizeof(sun)); i++)
		usleep(20000);
}

/* The dumped messages, concatenated. */
static char *sink_dumps(void)
{
	char cmd[CMD_MAX], path[FILE_MAX];
	snprintf(path, sizeof(path), "%s/all", workdir);
	snprintf(cmd, sizeof(cmd), "cat %s/*.* > %s 2>/dev/null", sink_dir, path);
	if (system(cmd) < 0)
		return strdup("");
	char *s = read_file(path, NULL);
	return s != NULL ? s : strdup("");
}

/* ---- dnsmasq for MX cases ---- */

static void dnsmasq_conf(const char *path, int port)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n"
		   "local=/test/\n%s", port, geteuid() == 0 ? "user=root\n" : "");
	/* mx1 (preferred) on 127.0.0.2, mx2 on 127.0.0.1: a fallback goes from the one to the other. */
	fprintf(f, "mx-host=example.test,mx1.example.test,10\nmx-host=example.test,mx2.example.test,20\n"
		   "host-record=mx1.example.test,127.0.0.2\nhost-record=mx2.example.test,127.0.0.1\n");
	fprintf(f, "host-record=implicit.example.test,127.0.0.1\n");
	fprintf(f, "dns-rr=nomail.example.test,15,000000\n");
	fprintf(f, "mx-host=ghost.example.test,missing.example.test,10\n");
	fprintf(f, "mx-host=dead.example.test,dead1.example.test,10\nmx-host=dead.example.test,dead2.example.test,20\n"
		   "host-record=dead1.example.test,127.0.0.3\nhost-record=dead2.example.test,127.0.0.4\n");
	assert_int_equal(fclose(f), 0);
}

static void dnsmasq_start(void)
{
	char conf[FILE_MAX], conf_arg[FILE_MAX + 32];
	if (access("/usr/sbin/dnsmasq", X_OK) != 0)
		return;
	snprintf(conf, sizeof(conf), "%s/dnsmasq.conf", workdir);
	snprintf(conf_arg, sizeof(conf_arg), "--conf-file=%s", conf);
	for (int attempt = 0; attempt < 5; attempt++) {
		int port = free_port("127.0.0.1"); /* dnsmasq takes TCP and UDP of the same number */
		dnsmasq_conf(conf, port);
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		char *argv[] = { "/usr/sbin/dnsmasq", "--keep-in-foreground", conf_arg, "--pid-file=", NULL };
		pid_t pid = spawn(argv, NULL, null);
		close(null);
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		for (int i = 0; i < 250; i++) {
			if (waitpid(pid, NULL, WNOHANG) == pid)
				break;
			if (can_connect((struct sockaddr *)&sin, sizeof(sin))) {
				dnsmasq_pid = pid;
				snprintf(dns_servers, sizeof(dns_servers), "127.0.0.1:%d", port);
				return;
			}
			usleep(20000);
		}
		reap(&pid);
	}
}

/* ---- the loop, the agent and a request ---- */

static struct event_base *base;
static struct event *tick;
static struct dns *dns;
static struct smtp_client *client;
static struct smtp_client_options opts;
static SSL_CTX *tls_ctx;
static struct delivery_request req;
static struct delivery_rcpt rcpts[8];
static int msg_fd = -1;

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void outcome_cb(void *arg, const struct delivery_result *r, size_t n)
{
	struct outcome *o = arg;
	o->calls++;
	o->n = n;
	memcpy(o->r, r, (n < 8 ? n : 8) * sizeof(*r));
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until the outcome arrives or ms pass. */
static void run_until(const struct outcome *o, int ms)
{
	int64_t end = now_ms() + ms;
	while ((o == NULL || o->calls == 0) && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

static void client_start(void)
{
	client = smtp_client_new(base, dns, &opts);
}

static void deliver(const struct smtp_nexthop *hop, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	smtp_client_deliver(client, hop, &req, outcome_cb, o);
	assert_int_equal(o->calls, 0); /* never from inside the call */
	run_until(o, 20000);
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->n, req.nrcpts);
}

static struct smtp_nexthop hop_at(const char *fmt, int port, bool lmtp)
{
	char spec[FILE_MAX];
	struct smtp_nexthop hop;
	const char *error = NULL;
	snprintf(spec, sizeof(spec), fmt, port);
	assert_int_equal(smtp_nexthop_parse(spec, lmtp, &hop, &error), 0);
	return hop;
}

/* The message goes after some junk in the file, as the content of a queue file would. */
static void set_message(const char *content, size_t len)
{
	static const char junk[] = "QUEUE-FILE-ENVELOPE\n";
	char path[FILE_MAX];
	if (msg_fd >= 0)
		close(msg_fd);
	snprintf(path, sizeof(path), "%s/msgXXXXXX", workdir);
	msg_fd = mkstemp(path);
	assert_true(msg_fd >= 0);
	unlink(path);
	assert_int_equal(write(msg_fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	assert_int_equal(write(msg_fd, content, len), (ssize_t)len);
	req.fd = msg_fd;
	req.content_off = sizeof(junk) - 1;
	req.content_size = len;
}

static const char simple_message[] = "From: a@example.org\r\nSubject: test\r\n\r\nHello.\r\n";

static void set_rcpts(int n, ...)
{
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		rcpts[i] = (struct delivery_rcpt){ .index = (size_t)i + 10, .address = va_arg(ap, const char *) };
	va_end(ap);
	req.nrcpts = (size_t)n;
}

static void assert_result(const struct outcome *o, size_t i, enum delivery_status st, int code,
			  const char *dsn, const char *text_part)
{
	const struct delivery_result *r = &o->r[i];
	if (r->status != st || r->code != code || strcmp(r->dsn, dsn) != 0 ||
	    (text_part != NULL && strstr(r->text, text_part) == NULL))
		fail_msg("result %zu: status %d code %d dsn %s text \"%s\"; wanted %d %d %s \"%s\"", i,
			 r->status, r->code, r->dsn, r->text, st, code, dsn, text_part ? text_part : "");
	assert_int_equal(r->index, i + 10);
}

static int setup(void **state)
{
	const char *error = NULL;
	base = event_base_new();
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = { 0, 50000 };
	event_add(tick, &tv);
	dns = dns_new(base, dns_servers, 1000, &error);
	assert_non_null(dns);
	opts = (struct smtp_client_options){
		.helo_name = "client.test",
		.connect_timeout = 5,
		.helo_timeout = 5,
		.command_timeout = 5,
		.data_timeout = 5,
		.data_done_timeout = 5,
		.connection_reuse_time = 0,
	};
	memset(&req, 0, sizeof(req));
	req.id = "4TESTID";
	req.sender = "sender@example.org";
	req.rcpts = rcpts;
	set_rcpts(1, "rcpt@example.net");
	set_message(simple_message, sizeof(simple_message) - 1);
	return 0;
}

static int teardown(void **state)
{
	smtp_client_free(&client);
	for (int i = 0; i < MAX_PEERS; i++)
		reap(&peers[i].pid);
	reap(&sink_pid);
	dns_free(&dns);
	event_free(tick);
	event_base_free(base);
	if (msg_fd >= 0)
		close(msg_fd);
	msg_fd = -1;
	return 0;
}

static int group_setup(void **state)
{
	char cmd[CMD_MAX];
	snprintf(source, sizeof(source), "%s", __FILE__);
	for (int i = 0; i < 3; i++)
		*strrchr(source, '/') = '\0'; /* .../tests/unit/test_smtp_client.c -> ... */
	snprintf(workdir, sizeof(workdir), "/tmp/postern-test-smtp-client-XXXXXX");
	assert_non_null(mkdtemp(workdir));
	chmod(workdir, 0755);
	snprintf(cert_file, sizeof(cert_file), "%s/cert.pem", workdir);
	snprintf(key_file, sizeof(key_file), "%s/key.pem", workdir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=peer.test -keyout %s -out %s >/dev/null 2>&1",
		 key_file, cert_file);
	assert_int_equal(system(cmd), 0);
	tls_ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	log_init("test_smtp_client", getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	dnsmasq_start();
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[CMD_MAX];
	reap(&dnsmasq_pid);
	SSL_CTX_free(tls_ctx);
	if (getenv("TEST_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", workdir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}


/* ---- smtp_nexthop_parse ---- */

struct nexthop_case {
	const char *spec;
	bool lmtp;
	int rc;
	const char *host;
	int port;
	bool mx, unix_socket;
};

static const struct nexthop_case nexthop_cases[] = {
	{ "example.com", false, 0, "example.com", 25, true, false },
	{ "example.com.", false, 0, "example.com", 25, true, false },
	{ "example.com:587", false, 0, "example.com", 587, true, false },
	{ "[relay.example.com]", false, 0, "relay.example.com", 25, false, false },
	{ "[relay.example.com]:587", false, 0, "relay.example.com", 587, false, false },
	{ "[192.0.2.1]", false, 0, "192.0.2.1", 25, false, false },
	{ "[192.0.2.1]:2525", false, 0, "192.0.2.1", 2525, false, false },
	{ "192.0.2.1", false, 0, "192.0.2.1", 25, false, false },
	{ "192.0.2.1:26", false, 0, "192.0.2.1", 26, false, false },
	{ "[::1]", false, 0, "::1", 25, false, false },
	{ "[::1]:2525", false, 0, "::1", 2525, false, false },
	{ "[ipv6:2001:db8::1]", false, 0, "2001:db8::1", 25, false, false },
	{ "[IPv6:2001:db8::1]:65535", false, 0, "2001:db8::1", 65535, false, false },
	{ "inet:mail.example.com:24", true, 0, "mail.example.com", 24, false, false },
	{ "mail.example.com", true, 0, "mail.example.com", 24, false, false },
	{ "[127.0.0.1]:10024", true, 0, "127.0.0.1", 10024, false, false },
	{ "unix:/run/dovecot/lmtp", true, 0, "/run/dovecot/lmtp", 24, false, true },
	{ "a_b-c.example", false, 0, "a_b-c.example", 25, true, false },
	{ "", false, -1, NULL, 0, false, false },
	{ ":25", false, -1, NULL, 0, false, false },
	{ "example.com:", false, -1, NULL, 0, false, false },
	{ "example.com:0", false, -1, NULL, 0, false, false },
	{ "example.com:65536", false, -1, NULL, 0, false, false },
	{ "example.com:99999", false, -1, NULL, 0, false, false },
	{ "example.com:-1", false, -1, NULL, 0, false, false },
	{ "example.com:+25", false, -1, NULL, 0, false, false },
	{ "example.com:smtp", false, -1, NULL, 0, false, false },
	{ "example.com:25 ", false, -1, NULL, 0, false, false },
	{ "example.com:000025", false, -1, NULL, 0, false, false },
	{ "exa mple.com", false, -1, NULL, 0, false, false },
	{ "example..com", false, -1, NULL, 0, false, false },
	{ ".example.com", false, -1, NULL, 0, false, false },
	{ "-example.com", false, -1, NULL, 0, false, false },
	{ "exa\x01mple.com", false, -1, NULL, 0, false, false },
	{ "::1", false, -1, NULL, 0, false, false },
	{ "2001:db8::1:25", false, -1, NULL, 0, false, false },
	{ "[::1", false, -1, NULL, 0, false, false },
	{ "[]", false, -1, NULL, 0, false, false },
	{ "[]:25", false, -1, NULL, 0, false, false },
	{ "[::1]25", false, -1, NULL, 0, false, false },
	{ "[::1]:", false, -1, NULL, 0, false, false },
	{ "[ipv6:192.0.2.1]", false, -1, NULL, 0, false, false },
	{ "[2001:db8::zz]", false, -1, NULL, 0, false, false },
	{ "[bad host]", false, -1, NULL, 0, false, false },
	{ "unix:/run/lmtp", false, -1, NULL, 0, false, false },
	{ "unix:relative/lmtp", true, -1, NULL, 0, false, false },
	{ "unix:", true, -1, NULL, 0, false, false },
	{ "unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  true, -1, NULL, 0, false, false },
};

static void test_nexthop_parse(void **state)
{
	for (size_t i = 0; i < sizeof(nexthop_cases) / sizeof(nexthop_cases[0]); i++) {
		const struct nexthop_case *c = &nexthop_cases[i];
		struct smtp_nexthop hop;
		const char *error = NULL;
		int rc = smtp_nexthop_parse(c->spec, c->lmtp, &hop, &error);
		if (rc != c->rc)
			fail_msg("\"%s\": rc %d (%s), wanted %d", c->spec, rc, error ? error : "", c->rc);
		if (rc < 0) {
			assert_non_null(error);
			continue;
		}
		if (strcmp(hop.host, c->host) != 0 || hop.port != c->port || hop.mx != c->mx ||
		    hop.unix_socket != c->unix_socket || hop.lmtp != c->lmtp)
			fail_msg("\"%s\": host %s port %d mx %d unix %d", c->spec, hop.host, hop.port, hop.mx,
				 hop.unix_socket);
		assert_int_equal(hop.tls, c->lmtp ? SMTP_TLS_NONE : SMTP_TLS_MAY);
	}
}

/* ---- reply parsing ---- */

struct reply_case {
	const char *lines[4]; /* fed in order; the last one must complete the reply or fail */
	int rc;               /* of the last line */
	int code;
	const char *dsn;
	const char *text;
};

static const struct reply_case reply_cases[] = {
	{ { "250 2.1.0 Ok" }, 1, 250, "2.1.0", "250 2.1.0 Ok" },
	{ { "250 Ok" }, 1, 250, "2.0.0", "250 Ok" },
	{ { "250" }, 1, 250, "2.0.0", "250" },
	{ { "250 " }, 1, 250, "2.0.0", "250 " },
	{ { "450 4.2.0 Busy" }, 1, 450, "4.2.0", NULL },
	{ { "550 5.1.1 <x@y>: unknown" }, 1, 550, "5.1.1", NULL },
	{ { "550 5.123.456 odd" }, 1, 550, "5.123.456", NULL },
	{ { "550 4.1.1 class mismatch" }, 1, 550, "5.0.0", NULL },
	{ { "250 5.1.1 class mismatch" }, 1, 250, "2.0.0", NULL },
	{ { "421 4.3.2 closing" }, 1, 421, "4.3.2", NULL },
	{ { "354 3.0.0 go" }, 1, 354, "4.0.0", NULL },
	{ { "550 5.1 short" }, 1, 550, "5.0.0", NULL },
	{ { "550 5.1.1234 long" }, 1, 550, "5.0.0", NULL },
	{ { "550 55.1.1 two digits" }, 1, 550, "5.0.0", NULL },
	{ { "550 5.1.1x glued" }, 1, 550, "5.0.0", NULL },
	{ { "250-first", "250-second", "250 third" }, 1, 250, "2.0.0", "250-first 250-second 250 third" },
	{ { "550-5.7.1 one", "550 5.7.1 two" }, 1, 550, "5.7.1", "550-5.7.1 one 550 5.7.1 two" },
	{ { "250-first", "251 other code" }, -1, 0, NULL, NULL },
	{ { "25" }, -1, 0, NULL, NULL },
	{ { "" }, -1, 0, NULL, NULL },
	{ { "2500 x" }, -1, 0, NULL, NULL },
	{ { "250x" }, -1, 0, NULL, NULL },
	{ { "abc def" }, -1, 0, NULL, NULL },
	{ { "150 preliminary" }, -1, 0, NULL, NULL },
	{ { "650 nonsense" }, -1, 0, NULL, NULL },
	{ { "220 tab\there\x01" }, 1, 220, "2.0.0", "220 tab here " },
};

static void test_reply_parse(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct smtp_client_reply r;
		smtp_client_reply_reset(&r);
		int rc = 0;
		for (int l = 0; l < 4 && c->lines[l] != NULL; l++) {
			if (rc != 0)
				fail_msg("case %zu: reply complete before line %d", i, l);
			rc = smtp_client_reply_line(&r, c->lines[l], strlen(c->lines[l]));
		}
		if (rc != c->rc)
			fail_msg("case %zu (%s): rc %d, wanted %d", i, c->lines[0], rc, c->rc);
		if (rc < 0)
			continue;
		assert_int_equal(r.code, c->code);
		assert_string_equal(smtp_client_reply_dsn(&r), c->dsn);
		if (c->text != NULL)
			assert_string_equal(r.text, c->text);
	}
}

static void test_reply_ehlo_keywords(void **state)
{
	static const char *const lines[] = { "250-mx.example.com Hello", "250-pipelining", "250-SIZE 52428800",
					     "250-8BITMIME", "250-SMTPUTF8", "250-DSN", "250-STARTTLS",
					     "250-AUTH PLAIN", "250 ENHANCEDSTATUSCODES" };
	struct smtp_client_reply r;
	smtp_client_reply_reset(&r);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_int_equal(smtp_client_reply_line(&r, lines[i], strlen(lines[i])),
				 i + 1 == sizeof(lines) / sizeof(lines[0]) ? 1 : 0);
	assert_true(r.ext.pipelining && r.ext.size && r.ext.eightbitmime && r.ext.smtputf8 && r.ext.dsn &&
		    r.ext.starttls);
	assert_int_equal(r.ext.size_max, 52428800);
	/* keywords only count after the first line, and only as whole words */
	static const char *const lines2[] = { "250-PIPELINING", "250-SIZE", "250-DSNX", "250 STARTTLSX" };
	smtp_client_reply_reset(&r);
	for (size_t i = 0; i < 4; i++)
		smtp_client_reply_line(&r, lines2[i], strlen(lines2[i]));
	assert_false(r.ext.pipelining || r.ext.dsn || r.ext.starttls);
	assert_true(r.ext.size);
	assert_int_equal(r.ext.size_max, 0);
	/* a line kept long: the text is cut, the reply still parses */
	char longline[2000];
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "250 ", 4);
	smtp_client_reply_reset(&r);
	assert_int_equal(smtp_client_reply_line(&r, longline, sizeof(longline)), 1);
	assert_int_equal(strlen(r.text), SMTP_CLIENT_TEXT_MAX - 1);
	/* a complete reply is followed by a fresh one */
	assert_int_equal(smtp_client_reply_line(&r, "550 5.1.1 x", 11), 1);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.text, "550 5.1.1 x");
}

/* ---- against smtp-sink ---- */

static void test_sink_delivers(void **state)
{
	int port = free_port("127.0.0.1");
	char endpoint[64];
	snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", port);
	sink_start(NULL, endpoint);
	sink_wait_tcp(port);
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	rcpts[0].notify = SMTP_NOTIFY_NEVER;
	struct smtp_nexthop hop = hop_at("[127.0.0.1]:%d", port, false);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", "250 2.0.0 Ok");
	assert_result(&o, 1, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_string_equal(o.r[0].remote_mta, "[127.0.0.1]");
	/* smtp-sink dumps after the transaction: wait for its file */
	char *dump = NULL;
	for (int i = 0; i < 100 && (dump == NULL || strstr(dump, "Hello.") == NULL); i++) {
		free(dump);
		usleep(20000);
		dump = sink_dumps();
	}
	assert_non_null(strstr(dump, "X-Mail-Args: <sender@example.org>\n"));
	assert_non_null(strstr(dump, "X-Rcpt-Args: <one@example.net> NOTIFY=NEVER\n"));
	assert_non_null(strstr(dump, "X-Rcpt-Args: <two@example.net>\n"));
	assert_non_null(strstr(dump, "X-Helo-Args: client.test\n"));
	assert_non_null(strstr(dump, "Subject: test\n\nHello.\n"));
	free(dump);
}

static void test_sink_lmtp_unix(void **state)
{
	char endpoint[FILE_MAX], path[SUB_MAX];
	static const char *const sink_opts[] = { "-L", NULL };
	snprintf(path, sizeof(path), "%s/lmtp.sock", workdir);
	snprintf(endpoint, sizeof(endpoint), "unix:%s", path);
	sink_start(sink_opts, endpoint);
	sink_wait_unix(path);
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = hop_at(endpoint, 0, true);
	struct outcome o;
	deliver(&hop, &o);
	/* smtp-sink answers each LMTP recipient with "250 2.2.0 Ok" */
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.2.0", "250 2.2.0 Ok");
	assert_result(&o, 1, DELIVERY_DONE, 250, "2.2.0", NULL);
	assert_string_equal(o.r[0].remote_mta, path);
	unlink(path);
}

/* Runs smtp-sink with opts and delivers two recipients to it. */
static void sink_case(const char *const *sink_opts, struct outcome *o)
{
	int port = free_port("127.0.0.1");
	char endpoint[64];
	snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", port);
	sink_start(sink_opts, endpoint);
	sink_wait_tcp(port);
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = hop_at("[127.0.0.1]:%d", port, false);
	deliver(&hop, o);
}

static void test_sink_rcpt_hard_reject(void **state)
{
	static const char *const sink_opts[] = { "-f", "RCPT", NULL };
	struct outcome o;
	sink_case(sink_opts, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 500, "5.3.0", "500 5.3.0 Error: command failed");
	assert_result(&o, 1, DELIVERY_BOUNCE, 500, "5.3.0", NULL);
	assert_string_equal(o.r[1].remote_mta, "[127.0.0.1]");
}

static void test_sink_mail_soft_reject(void **state)
{
	static const char *const sink_opts[] = { "-r", "MAIL", NULL };
	struct outcome o;
	sink_case(sink_opts, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 450, "4.3.0", "450 4.3.0 Error: command failed");
	assert_result(&o, 1, DELIVERY_DEFER, 450, "4.3.0", NULL);
}

static void test_sink_dot_hard_reject(void **state)
{
	static const char *const sink_opts[] = { "-f", ".", NULL };
	struct outcome o;
	sink_case(sink_opts, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 500, "5.3.0", NULL);
	assert_result(&o, 1, DELIVERY_BOUNCE, 500, "5.3.0", NULL);
}

static void test_sink_disconnect_at_data(void **state)
{
	static const char *const sink_opts[] = { "-q", "DATA", NULL };
	struct outcome o;
	sink_case(sink_opts, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "lost connection with 127.0.0.1[127.0.0.1]:");
	assert_result(&o, 1, DELIVERY_DEFER, 0, "4.4.2", NULL);
}

static void test_sink_greeting_421(void **state)
{
	static const char *const sink_opts[] = { "-Q", "CONNECT", NULL };
	struct outcome o;
	sink_case(sink_opts, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 421, "4.4.1", "refused to talk to me: 421");
	assert_result(&o, 1, DELIVERY_DEFER, 421, "4.4.1", NULL);
}

static void test_sink_no_esmtp_helo(void **state)
{
	static const char *const sink_opts[] = { "-e", NULL };
	struct outcome o;
	sink_case(sink_opts, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_result(&o, 1, DELIVERY_DONE, 250, "2.0.0", NULL);
}

static void test_connect_refused(void **state)
{
	client_start();
	struct smtp_nexthop hop = hop_at("[127.0.0.1]:%d", free_port("127.0.0.1"), false);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.1", "connect to 127.0.0.1[127.0.0.1]:");
	assert_non_null(strstr(o.r[0].text, "Connection refused"));
}

static void test_connect_timeout(void **state)
{
	/* A listening socket whose backlog is full never completes further handshakes... on
	   Linux the SYN is dropped, which is what a filtered host looks like. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 0), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	opts.connect_timeout = 1;
	client_start();
	struct smtp_nexthop hop = hop_at("[127.0.0.1]:%d", ntohs(sin.sin_port), false);
	struct outcome o;
	deliver(&hop, &o);
	assert_int_equal(o.r[0].status, DELIVERY_DEFER);
	assert_string_equal(o.r[0].dsn, "4.4.1");
	/* either the connect timed out, or the greeting never came */
	assert_true(strstr(o.r[0].text, "Connection timed out") != NULL ||
		    strstr(o.r[0].text, "timed out while receiving the initial server greeting") != NULL);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(fd);
}

/* ---- against the scripted peer ---- */

static struct smtp_nexthop peer_hop(int port)
{
	return hop_at("[127.0.0.1]:%d", port, false);
}

static void test_mixed_rcpt_results_pipelined(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"RCPT\": [\"250 2.1.5 Ok\", \"450 4.2.0 <two>: busy\","
				 " \"550 5.1.1 <three>: no such user\"]}}");
	client_start();
	set_rcpts(3, "one@example.net", "two@example.net", "three@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", "250 2.0.0 Ok: queued");
	assert_result(&o, 1, DELIVERY_DEFER, 450, "4.2.0", "450 4.2.0 <two>: busy");
	assert_result(&o, 2, DELIVERY_BOUNCE, 550, "5.1.1", "550 5.1.1 <three>: no such user");
	assert_true(peer_wait(0, "data msg-1.raw", 2000));
	char *log = peer_log(0);
	/* RFC 2920: MAIL, the RCPTs and DATA go out in one write */
	int b = peer_batch(log, "MAIL FROM:<sender@example.org>");
	assert_true(b > 0);
	assert_int_equal(peer_batch(log, "RCPT TO:<one@example.net>"), b);
	assert_int_equal(peer_batch(log, "RCPT TO:<three@example.net>"), b);
	assert_int_equal(peer_batch(log, "DATA"), b);
	assert_true(strstr(log, "RCPT TO:<one@example.net>") < strstr(log, "RCPT TO:<two@example.net>"));
	assert_true(strstr(log, "RCPT TO:<two@example.net>") < strstr(log, "RCPT TO:<three@example.net>"));
	free(log);
}

static void test_no_pipelining_one_at_a_time(void **state)
{
	int port = peer_start(0, "{\"ehlo\": [\"8BITMIME\", \"SIZE 1000000\"],"
				 " \"replies\": {\"RCPT\": [\"550 5.1.1 no\", \"250 2.1.5 Ok\"]}}");
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 550, "5.1.1", NULL);
	assert_result(&o, 1, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_true(peer_wait(0, "data msg-1.raw", 2000));
	char *log = peer_log(0);
	int m = peer_batch(log, "MAIL FROM:"), r1 = peer_batch(log, "RCPT TO:<one@"),
	    r2 = peer_batch(log, "RCPT TO:<two@"), d = peer_batch(log, "DATA");
	assert_true(m > 0 && m < r1 && r1 < r2 && r2 < d);
	assert_non_null(strstr(log, "MAIL FROM:<sender@example.org> SIZE=46\n"));
	free(log);
}

static void test_all_rcpts_rejected_no_data(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"RCPT\": [\"550 5.1.1 no\", \"451 4.3.0 later\"],"
				 " \"DATA\": \"554 5.5.1 Error: no valid recipients\"}}");
	opts.connection_reuse_time = 10;
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 550, "5.1.1", NULL);
	assert_result(&o, 1, DELIVERY_DEFER, 451, "4.3.0", NULL);
	assert_true(peer_wait(0, " RSET\n", 2000));
	char *log = peer_log(0);
	assert_null(strstr(log, " data msg-"));
	free(log);
}

static void test_mail_rejected(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"MAIL\": \"553 5.7.1 sender refused\","
				 " \"RCPT\": \"503 5.5.1 need MAIL\", \"DATA\": \"503 5.5.1 need RCPT\"}}");
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 553, "5.7.1", "553 5.7.1 sender refused");
	assert_result(&o, 1, DELIVERY_BOUNCE, 553, "5.7.1", NULL);
}

static void test_lmtp_per_recipient_replies(void **state)
{
	int port = peer_start(0, "{\"lmtp\": true, \"replies\": {\"RCPT\": [\"250 2.1.5 a\", \"550 5.1.1 b\","
				 " \"250 2.1.5 c\", \"250 2.1.5 d\"], \"DOT\": [[\"250 2.0.0 <one> delivered\","
				 " \"452 4.2.2 <three> mailbox full\", \"552 5.2.2 <four> over quota\"]]}}");
	client_start();
	set_rcpts(4, "one@example.net", "two@example.net", "three@example.net", "four@example.net");
	struct smtp_nexthop hop = hop_at("[127.0.0.1]:%d", port, true);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", "<one> delivered");
	assert_result(&o, 1, DELIVERY_BOUNCE, 550, "5.1.1", NULL);
	assert_result(&o, 2, DELIVERY_DEFER, 452, "4.2.2", "<three> mailbox full");
	assert_result(&o, 3, DELIVERY_BOUNCE, 552, "5.2.2", "<four> over quota");
	char *log = peer_log(0);
	assert_non_null(strstr(log, "cmd 1 LHLO client.test"));
	free(log);
}

static void test_lmtp_lost_after_first_reply(void **state)
{
	int port = peer_start(0, "{\"lmtp\": true, \"replies\": {\"DOT\": [[\"250 2.0.0 first\", \"!close\"]]}}");
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = hop_at("[127.0.0.1]:%d", port, true);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", "first");
	assert_result(&o, 1, DELIVERY_DEFER, 0, "4.4.2", "while sending end of data");
}

static void test_disconnect_after_rcpt(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"RCPT\": [\"250 2.1.5 Ok\", \"550 5.1.1 no\"], \"DATA\": \"!close\"}}");
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "lost connection with 127.0.0.1[127.0.0.1]:");
	assert_non_null(strstr(o.r[0].text, "while sending"));
	assert_result(&o, 1, DELIVERY_BOUNCE, 550, "5.1.1", NULL);
}

static void test_disconnect_non_pipelined_rcpt(void **state)
{
	int port = peer_start(0, "{\"ehlo\": [], \"replies\": {\"RCPT\": [\"250 2.1.5 Ok\", \"!close\"]}}");
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "while sending RCPT TO");
	assert_result(&o, 1, DELIVERY_DEFER, 0, "4.4.2", "while sending RCPT TO");
}

static void test_data_done_timeout(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"DOT\": [[\"!sleep 4\", \"250 2.0.0 late\"]]}}");
	opts.data_done_timeout = 1;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	int64_t start = now_ms();
	deliver(&hop, &o);
	assert_true(now_ms() - start < 3500);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "timed out while sending end of data");
}

static void test_command_timeout(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"MAIL\": [[\"!sleep 4\", \"250 2.1.0 late\"]]}}");
	opts.command_timeout = 1;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "timed out while sending MAIL FROM");
}

static void test_early_reply_during_content(void **state)
{
	/* a peer answering 552 after 354 without reading the message, then hanging up */
	int port = peer_start(0, "{\"replies\": {\"DATA\": [[\"354 go\", \"552 5.3.4 too big\", \"!close\"]]}}");
	client_start();
	static char big[512 * 1024];
	memset(big, 'a', sizeof(big));
	for (size_t i = 78; i < sizeof(big); i += 80)
		big[i] = '\r', big[i + 1] = '\n';
	set_message(big, sizeof(big));
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_int_equal(o.r[0].status, o.r[0].code == 552 ? DELIVERY_BOUNCE : DELIVERY_DEFER);
}

static void test_greeting_and_long_replies(void **state)
{
	char script[4096], longtext[700];
	memset(longtext, 'L', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	snprintf(script, sizeof(script),
		 "{\"replies\": {\"CONNECT\": \"220-peer.test first\\n220-%s\\n220 peer.test ready\","
		 " \"MAIL\": \"250-2.1.0 one\\n250-%s\\n250 2.1.0 Ok\","
		 " \"RCPT\": \"550-5.1.1 The account does not exist.\\n550 5.1.1 Try again.\"}}",
		 longtext, longtext);
	int port = peer_start(0, script);
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 550, "5.1.1",
		      "550-5.1.1 The account does not exist. 550 5.1.1 Try again.");
}

static void test_malformed_reply(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"MAIL\": \"hello there\"}}");
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "malformed reply from 127.0.0.1[127.0.0.1]:");
}

static void test_ehlo_refused_helo_fallback(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"EHLO\": \"502 5.5.2 Error: command not recognized\"}}");
	client_start();
	req.envid = "ENV1";
	rcpts[0].notify = SMTP_NOTIFY_SUCCESS;
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_true(peer_wait(0, "data msg-1.raw", 2000));
	char *log = peer_log(0);
	assert_non_null(strstr(log, "cmd 2 HELO client.test\n"));
	/* no extensions after HELO: plain commands */
	assert_non_null(strstr(log, "MAIL FROM:<sender@example.org>\n"));
	assert_non_null(strstr(log, "RCPT TO:<rcpt@example.net>\n"));
	free(log);
}

static void test_lmtp_lhlo_refused(void **state)
{
	int port = peer_start(0, "{\"lmtp\": true, \"replies\": {\"LHLO\": \"550 5.5.1 go away\"}}");
	client_start();
	struct smtp_nexthop hop = hop_at("[127.0.0.1]:%d", port, true);
	struct outcome o;
	deliver(&hop, &o);
	/* no HELO fallback for LMTP, and a 5xx before the transaction only defers */
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.1", "said: 550 5.5.1 go away (in reply to LHLO command)");
	char *log = peer_log(0);
	assert_null(strstr(log, "HELO"));
	free(log);
}

/* ---- parameters and content ---- */

static void test_esmtp_parameters(void **state)
{
	int port = peer_start(0, "{}");
	client_start();
	req.eightbit = true;
	req.smtputf8 = true;
	req.ret = "HDRS";
	req.envid = "QQ+2Bid";
	set_rcpts(3, "one@example.net", "two@example.net", "three@example.net");
	rcpts[0].notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY;
	rcpts[0].orcpt = "rfc822;one+2Bx@example.net";
	rcpts[1].notify = SMTP_NOTIFY_NEVER;
	rcpts[2].notify = SMTP_NOTIFY_DELAY;
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_non_null(strstr(log, "MAIL FROM:<sender@example.org> SIZE=46 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2Bid\n"));
	assert_non_null(strstr(log, "RCPT TO:<one@example.net> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;one+2Bx@example.net\n"));
	assert_non_null(strstr(log, "RCPT TO:<two@example.net> NOTIFY=NEVER\n"));
	assert_non_null(strstr(log, "RCPT TO:<three@example.net> NOTIFY=DELAY\n"));
	free(log);
}

static void test_no_dsn_no_size_no_parameters(void **state)
{
	int port = peer_start(0, "{\"ehlo\": [\"PIPELINING\", \"8BITMIME\"]}");
	client_start();
	req.eightbit = true;
	req.ret = "FULL";
	req.envid = "X";
	rcpts[0].notify = SMTP_NOTIFY_NEVER;
	rcpts[0].orcpt = "rfc822;x@example.net";
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_non_null(strstr(log, "MAIL FROM:<sender@example.org> BODY=8BITMIME\n"));
	assert_non_null(strstr(log, "RCPT TO:<rcpt@example.net>\n"));
	free(log);
}

static void test_null_sender(void **state)
{
	int port = peer_start(0, "{}");
	client_start();
	req.sender = "";
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_non_null(strstr(log, "MAIL FROM:<> SIZE=46"));
	free(log);
}

static void test_smtputf8_not_offered(void **state)
{
	int port = peer_start(0, "{\"ehlo\": [\"PIPELINING\", \"8BITMIME\", \"DSN\"]}");
	client_start();
	req.smtputf8 = true;
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 0, "5.6.7", "SMTPUTF8");
	assert_result(&o, 1, DELIVERY_BOUNCE, 0, "5.6.7", NULL);
	char *log = peer_log(0);
	assert_null(strstr(log, "MAIL FROM"));
	free(log);
}

static void test_8bit_not_offered(void **state)
{
	int port = peer_start(0, "{\"ehlo\": [\"PIPELINING\", \"SMTPUTF8\"]}");
	client_start();
	req.eightbit = true;
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 0, "5.6.3", "8-bit content refused by the next hop");
	char *log = peer_log(0);
	assert_null(strstr(log, "MAIL FROM"));
	free(log);
}

static void test_size_limit(void **state)
{
	int port = peer_start(0, "{\"ehlo\": [\"PIPELINING\", \"SIZE 40\"]}");
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 0, "5.3.4", "message size 46 exceeds size limit 40");
}

/* What RFC 5321 4.5.2 puts on the wire for content (wire form, CRLF lines). */
static char *stuffed(const char *in, size_t len, size_t *len_r)
{
	char *out = malloc(len * 2 + 8);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '.' && (i == 0 || (i >= 2 && in[i - 1] == '\n' && in[i - 2] == '\r')))
			out[n++] = '.';
		out[n++] = in[i];
	}
	if (len < 2 || in[len - 2] != '\r' || in[len - 1] != '\n') {
		if (len > 0) {
			out[n++] = '\r';
			out[n++] = '\n';
		}
	}
	memcpy(out + n, ".\r\n", 3);
	*len_r = n + 3;
	return out;
}

static void check_content(const char *content, size_t len)
{
	int port = peer_start(0, "{}");
	client_start();
	set_message(content, len);
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	size_t got_len = 0, want_len = 0;
	char *got = peer_message(0, 1, &got_len);
	char *want = stuffed(content, len, &want_len);
	assert_non_null(got);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	free(got);
	free(want);
}

static void test_dot_stuffing(void **state)
{
	static const char msg[] = ".starts with a dot\r\nSubject: x\r\n\r\n.\r\n..\r\n...x\r\n"
				  "a.b\r\n .space\r\nbare\rcr.\r\n.\r\nlast line without CRLF .";
	check_content(msg, sizeof(msg) - 1);
}

static void test_content_ends_with_crlf_dot(void **state)
{
	static const char msg[] = "Subject: x\r\n\r\nbody\r\n.";
	check_content(msg, sizeof(msg) - 1);
}

static void test_empty_content(void **state)
{
	check_content("", 0);
}

/* Dots around the 64 KiB chunk boundaries, where the bytes deciding whether a dot starts a
   line are in the previous chunk; and several chunks, so the output is refilled as it drains. */
static void test_large_message_chunk_boundaries(void **state)
{
	const size_t C = SMTP_CLIENT_CHUNK;
	size_t len = 5 * C + 1234;
	char *msg = malloc(len);
	for (size_t i = 0; i < len; i++)
		msg[i] = (char)('a' + i % 26);
	for (size_t i = 70; i + 2 < len; i += 72)
		msg[i] = '\r', msg[i + 1] = '\n';
	memcpy(msg + 1 * C - 2, "\r\n.", 3);  /* CRLF ends a chunk, the dot starts the next: stuffed */
	memcpy(msg + 2 * C - 1, "\r\n.", 3);  /* CR | LF dot: stuffed */
	memcpy(msg + 3 * C - 2, "\rx.", 3);    /* CR x | dot: not a line start */
	memcpy(msg + 4 * C - 1, "x\n.", 3);    /* x | LF dot: not a line start (bare LF) */
	memcpy(msg + 4 * C + 100, "\r.", 2);   /* bare CR dot: not a line start */
	check_content(msg, len);
	free(msg);
}

static void test_queue_file_too_short(void **state)
{
	int port = peer_start(0, "{}");
	client_start();
	req.content_size += 100000; /* the file ends before the message does */
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.3.0", "error reading the queue file");
	assert_string_equal(o.r[0].remote_mta, "");
	/* the peer never saw the end of the message */
	assert_true(peer_wait(0, "1 close", 2000));
	char *log = peer_log(0);
	assert_null(strstr(log, " data msg-"));
	free(log);
}

/* ---- STARTTLS ---- */

static int tls_peer(const char *replies)
{
	char script[CMD_MAX];
	snprintf(script, sizeof(script), "{\"tls\": {\"cert\": \"%s\", \"key\": \"%s\"}, \"replies\": {%s}}",
		 cert_file, key_file, replies);
	return peer_start(0, script);
}

static void test_starttls_may(void **state)
{
	int port = tls_peer("");
	opts.tls = tls_ctx;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	const char *tls = strstr(log, "1 tls\n");
	assert_non_null(tls);
	assert_true(strstr(log, "STARTTLS") < tls);
	/* EHLO again over TLS (RFC 3207 4.2), and everything else after it */
	assert_non_null(strstr(tls, "EHLO client.test"));
	assert_non_null(strstr(tls, "MAIL FROM:"));
	assert_int_equal(count(log, "connect "), 1);
	free(log);
	size_t got_len = 0;
	char *got = peer_message(0, 1, &got_len);
	assert_non_null(got);
	assert_int_equal(got_len, sizeof(simple_message) - 1 + 3);
	assert_memory_equal(got, simple_message, sizeof(simple_message) - 1);
	free(got);
}

/* Several chunks through the TLS filter: the output is refilled as the filter drains. */
static void test_starttls_large_message(void **state)
{
	int port = tls_peer("");
	opts.tls = tls_ctx;
	client_start();
	size_t len = 3 * SMTP_CLIENT_CHUNK + 77;
	char *msg = malloc(len);
	for (size_t i = 0; i < len; i++)
		msg[i] = i % 64 == 62 ? '\r' : i % 64 == 63 ? '\n' : i % 64 == 0 ? '.' : (char)('A' + i % 23);
	set_message(msg, len);
	struct smtp_nexthop hop = peer_hop(port);
	hop.tls = SMTP_TLS_ENCRYPT;
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	size_t got_len = 0, want_len = 0;
	char *got = peer_message(0, 1, &got_len);
	char *want = stuffed(msg, len, &want_len);
	assert_non_null(got);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	free(got);
	free(want);
	free(msg);
}

static void test_ipv6_literal(void **state)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool have_v6 = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	if (fd >= 0)
		close(fd);
	if (!have_v6)
		skip();
	int port = peer_start(0, "{\"listen\": \"[::1]:0\"}");
	client_start();
	struct smtp_nexthop hop = hop_at("[ipv6:::1]:%d", port, false);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_string_equal(o.r[0].remote_mta, "[::1]");
}

static void test_starttls_none_policy(void **state)
{
	int port = tls_peer("");
	opts.tls = tls_ctx;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	hop.tls = SMTP_TLS_NONE;
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_null(strstr(log, "STARTTLS"));
	free(log);
}

static void test_starttls_encrypt(void **state)
{
	int port = tls_peer("");
	opts.tls = tls_ctx;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	hop.tls = SMTP_TLS_ENCRYPT;
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_non_null(strstr(log, "1 tls\n"));
	free(log);
}

static void test_encrypt_not_offered(void **state)
{
	int port = peer_start(0, "{}");
	opts.tls = tls_ctx;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	hop.tls = SMTP_TLS_ENCRYPT;
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.7.4", "TLS is required, but was not offered by host");
	char *log = peer_log(0);
	assert_null(strstr(log, "MAIL FROM"));
	free(log);
}

static void test_encrypt_without_context(void **state)
{
	client_start();
	struct smtp_nexthop hop = peer_hop(free_port("127.0.0.1"));
	hop.tls = SMTP_TLS_ENCRYPT;
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.7.4", "no TLS client context");
}

static void test_may_refused_starttls_goes_plain(void **state)
{
	int port = tls_peer("\"STARTTLS\": \"454 4.7.0 TLS not available\"");
	opts.tls = tls_ctx;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_null(strstr(log, " tls\n"));
	assert_int_equal(count(log, "connect "), 1);
	free(log);
}

/* Decision: under "may", a failed handshake reconnects to the same address without STARTTLS. */
static void test_may_handshake_failure_retries_plain(void **state)
{
	int port = tls_peer("\"STARTTLS\": [[\"220 2.0.0 go ahead\", \"!tls-garbage\"]]");
	opts.tls = tls_ctx;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_int_equal(count(log, "connect "), 2);
	assert_int_equal(count(log, "STARTTLS"), 1);
	assert_non_null(strstr(log, "2 cmd 2 MAIL FROM:"));
	free(log);
}

static void test_encrypt_handshake_failure(void **state)
{
	int port = tls_peer("\"STARTTLS\": [[\"220 2.0.0 go ahead\", \"!tls-garbage\"]]");
	opts.tls = tls_ctx;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	hop.tls = SMTP_TLS_ENCRYPT;
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.7.5", "Cannot start TLS with 127.0.0.1[127.0.0.1]:");
	char *log = peer_log(0);
	assert_int_equal(count(log, "connect "), 1);
	assert_null(strstr(log, "MAIL FROM"));
	free(log);
}

/* ---- connection reuse ---- */

static void test_connection_reuse(void **state)
{
	int port = peer_start(0, "{}");
	opts.connection_reuse_time = 10;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o1, o2, o3;
	deliver(&hop, &o1);
	/* at once: the connection is still waiting for its RSET reply */
	deliver(&hop, &o2);
	/* later: the connection is idle in the cache */
	run_until(NULL, 200);
	deliver(&hop, &o3);
	assert_result(&o1, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_result(&o2, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_result(&o3, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	/* another hop does not take it */
	struct smtp_nexthop other = hop;
	other.tls = SMTP_TLS_NONE;
	struct outcome o4;
	deliver(&other, &o4);
	assert_result(&o4, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	smtp_client_free(&client); /* QUIT for the idle connections */
	char *log = NULL;
	for (int i = 0; i < 100 && (log == NULL || count(log, " QUIT\n") < 2); i++) {
		free(log);
		usleep(20000);
		log = peer_log(0);
	}
	assert_int_equal(count(log, "connect "), 2);
	assert_int_equal(count(log, " QUIT\n"), 2);
	assert_int_equal(count(log, "1 cmd"), 1 + 3 * 4 + 1); /* EHLO, 3 x (MAIL RCPT DATA RSET), QUIT */
	/* every transaction but the first starts after an RSET */
	const char *p = strstr(log, "1 cmd 2 MAIL FROM");
	assert_non_null(p);
	for (int i = 0; i < 2; i++) {
		const char *rset = strstr(p, " RSET\n");
		assert_non_null(rset);
		p = strstr(rset, "MAIL FROM");
		assert_non_null(p);
	}
	free(log);
}

static void test_reused_connection_dead(void **state)
{
	/* The second MAIL finds the cached connection dead (closed without a reply): the
	   delivery quietly goes over a fresh connection. */
	int port = peer_start(0, "{\"replies\": {\"MAIL\": [\"250 2.1.0 Ok\", \"!close\", \"250 2.1.0 Ok\"]}}");
	opts.connection_reuse_time = 10;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o1, o2;
	deliver(&hop, &o1);
	run_until(NULL, 200);
	deliver(&hop, &o2);
	assert_result(&o1, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_result(&o2, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	char *log = peer_log(0);
	assert_int_equal(count(log, "connect "), 2);
	assert_int_equal(count(log, "MAIL FROM"), 3);
	free(log);
}

static void test_idle_connection_expires(void **state)
{
	int port = peer_start(0, "{}");
	opts.connection_reuse_time = 1;
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_false(peer_wait(0, " QUIT\n", 300));
	run_until(NULL, 2000);
	assert_true(peer_wait(0, " QUIT\n", 1000));
	assert_true(peer_wait(0, "1 close", 1000));
}

static void test_no_reuse_quits(void **state)
{
	int port = peer_start(0, "{}");
	client_start();
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o;
	deliver(&hop, &o);
	run_until(NULL, 300);
	char *log = peer_log(0);
	assert_null(strstr(log, "RSET"));
	assert_non_null(strstr(log, " QUIT\n"));
	free(log);
}

static void test_free_interrupts_delivery(void **state)
{
	int port = peer_start(0, "{\"replies\": {\"DOT\": [[\"!sleep 5\", \"250 2.0.0 late\"]]}}");
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = peer_hop(port);
	struct outcome o = { 0 };
	smtp_client_deliver(client, &hop, &req, outcome_cb, &o);
	for (int i = 0; i < 100 && !peer_wait(0, " data msg-", 20); i++)
		run_until(NULL, 50);
	assert_int_equal(o.calls, 0);
	smtp_client_free(&client);
	assert_int_equal(o.calls, 1);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "delivery interrupted");
	assert_result(&o, 1, DELIVERY_DEFER, 0, "4.4.2", "delivery interrupted");
}

static void test_free_before_start(void **state)
{
	client_start();
	struct smtp_nexthop hop = peer_hop(free_port("127.0.0.1"));
	struct outcome o = { 0 };
	smtp_client_deliver(client, &hop, &req, outcome_cb, &o);
	smtp_client_free(&client);
	assert_int_equal(o.calls, 1);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "delivery interrupted");
}

/* ---- MX delivery (dnsmasq) ---- */

#define NEED_DNSMASQ()                              \
	do {                                        \
		if (dnsmasq_pid <= 0)               \
			skip();                     \
	} while (0)

static struct smtp_nexthop mx_hop(const char *domain, int port)
{
	char spec[300];
	struct smtp_nexthop hop;
	const char *error = NULL;
	snprintf(spec, sizeof(spec), "%s:%d", domain, port);
	assert_int_equal(smtp_nexthop_parse(spec, false, &hop, &error), 0);
	assert_true(hop.mx);
	return hop;
}

static void test_mx_delivery_with_fallback(void **state)
{
	NEED_DNSMASQ();
	/* mx1 (127.0.0.2) greets with 421; mx2 (127.0.0.1, same port) takes the mail. The port is
	   chosen on the busy 127.0.0.1 first, where other tests' connections take ports too; the
	   quiet 127.0.0.2 then has it free. */
	int port = peer_start(1, "{\"listen\": \"127.0.0.1:0\"}");
	char script[160];
	snprintf(script, sizeof(script),
		 "{\"listen\": \"127.0.0.2:%d\", \"replies\": {\"CONNECT\": \"421 4.3.2 mx1 busy\"}}", port);
	peer_start(0, script);
	client_start();
	struct smtp_nexthop hop = mx_hop("example.test", port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_string_equal(o.r[0].remote_mta, "mx2.example.test");
	assert_true(peer_wait(0, "1 connect 127.0.0.1", 1000) || peer_wait(0, "1 connect", 1000));
	assert_true(peer_wait(1, "data msg-1.raw", 1000));
}

static void test_mx_all_hosts_fail(void **state)
{
	NEED_DNSMASQ();
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = mx_hop("dead.example.test", free_port("127.0.0.1"));
	struct outcome o;
	deliver(&hop, &o);
	/* the last error is the one reported: mx2's */
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.1", "connect to dead2.example.test[127.0.0.4]:");
	assert_result(&o, 1, DELIVERY_DEFER, 0, "4.4.1", NULL);
}

static void test_mx_greeting_5xx_everywhere_defers(void **state)
{
	NEED_DNSMASQ();
	int port = peer_start(0, "{\"listen\": \"127.0.0.2:0\", \"replies\": {\"CONNECT\": \"554 5.7.1 no\"}}");
	char script[128];
	snprintf(script, sizeof(script), "{\"listen\": \"127.0.0.1:%d\", \"replies\": {\"CONNECT\": \"554 5.7.1 go away\"}}",
		 port);
	peer_start(1, script);
	client_start();
	struct smtp_nexthop hop = mx_hop("example.test", port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.1", "host mx2.example.test[127.0.0.1]");
	assert_non_null(strstr(o.r[0].text, "refused to talk to me: 554 5.7.1 go away"));
}

static void test_mx_implicit(void **state)
{
	NEED_DNSMASQ();
	int port = peer_start(0, "{}");
	client_start();
	struct smtp_nexthop hop = mx_hop("implicit.example.test", port);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_DONE, 250, "2.0.0", NULL);
	assert_string_equal(o.r[0].remote_mta, "implicit.example.test");
}

static void test_mx_null(void **state)
{
	NEED_DNSMASQ();
	client_start();
	set_rcpts(2, "one@example.net", "two@example.net");
	struct smtp_nexthop hop = mx_hop("nomail.example.test", 25);
	struct outcome o;
	deliver(&hop, &o);
	assert_result(&o, 0, DELIVERY_BOUNCE, 0, "5.1.10", "does not accept mail (null MX)");
	assert_result(&o, 1, DELIVERY_BOUNCE, 0, "5.1.10", NULL);
}

/* Name service answers that end a delivery without any connection. */
static void test_dns_failures(void **state)
{
	static const struct {
		const char *hop;
		enum delivery_status status;
		const char *dsn, *text;
	} cases[] = {
		{ "nope.example.test", DELIVERY_BOUNCE, "5.1.2", "name=nope.example.test type=MX" },
		{ "ghost.example.test", DELIVERY_BOUNCE, "5.4.4", "name=missing.example.test" },
		/* outside the local zone dnsmasq answers REFUSED: a temporary failure */
		{ "example.invalid", DELIVERY_DEFER, "4.4.3", "try again" },
		/* brackets: no MX lookup, and the name has no address */
		{ "[nope.example.test]", DELIVERY_BOUNCE, "5.4.4", "name=nope.example.test" },
	};
	NEED_DNSMASQ();
	client_start();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char spec[64];
		snprintf(spec, sizeof(spec), "%s:%%d", cases[i].hop);
		struct smtp_nexthop hop = cases[i].hop[0] == '[' ? hop_at(spec, 2525, false)
								 : mx_hop(cases[i].hop, 25);
		struct outcome o;
		deliver(&hop, &o);
		assert_result(&o, 0, cases[i].status, 0, cases[i].dsn, cases[i].text);
	}
}

/* A lookup still in flight when the agent goes: its late callback (here, cancelled by
   dns_free) must find nothing of the freed delivery. The resolver asks a socket nobody reads. */
static void test_free_during_lookup(void **state)
{
	const char *error = NULL;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	char servers[64];
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(sin.sin_port));
	dns_free(&dns);
	dns = dns_new(base, servers, 5000, &error);
	assert_non_null(dns);
	client_start();
	struct smtp_nexthop hop = mx_hop("example.test", 25);
	struct outcome o = { 0 };
	smtp_client_deliver(client, &hop, &req, outcome_cb, &o);
	run_until(NULL, 200);
	assert_int_equal(o.calls, 0);
	smtp_client_free(&client);
	assert_int_equal(o.calls, 1);
	assert_result(&o, 0, DELIVERY_DEFER, 0, "4.4.2", "delivery interrupted");
	dns_free(&dns);
	close(fd);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_nexthop_parse),
		T(test_reply_parse),
		T(test_reply_ehlo_keywords),
		T(test_sink_delivers),
		T(test_sink_lmtp_unix),
		T(test_sink_rcpt_hard_reject),
		T(test_sink_mail_soft_reject),
		T(test_sink_dot_hard_reject),
		T(test_sink_disconnect_at_data),
		T(test_sink_greeting_421),
		T(test_sink_no_esmtp_helo),
		T(test_connect_refused),
		T(test_connect_timeout),
		T(test_mixed_rcpt_results_pipelined),
		T(test_no_pipelining_one_at_a_time),
		T(test_all_rcpts_rejected_no_data),
		T(test_mail_rejected),
		T(test_lmtp_per_recipient_replies),
		T(test_lmtp_lost_after_first_reply),
		T(test_disconnect_after_rcpt),
		T(test_disconnect_non_pipelined_rcpt),
		T(test_data_done_timeout),
		T(test_command_timeout),
		T(test_early_reply_during_content),
		T(test_greeting_and_long_replies),
		T(test_malformed_reply),
		T(test_ehlo_refused_helo_fallback),
		T(test_lmtp_lhlo_refused),
		T(test_esmtp_parameters),
		T(test_no_dsn_no_size_no_parameters),
		T(test_null_sender),
		T(test_smtputf8_not_offered),
		T(test_8bit_not_offered),
		T(test_size_limit),
		T(test_dot_stuffing),
		T(test_content_ends_with_crlf_dot),
		T(test_empty_content),
		T(test_large_message_chunk_boundaries),
		T(test_queue_file_too_short),
		T(test_starttls_may),
		T(test_starttls_large_message),
		T(test_ipv6_literal),
		T(test_starttls_none_policy),
		T(test_starttls_encrypt),
		T(test_encrypt_not_offered),
		T(test_encrypt_without_context),
		T(test_may_refused_starttls_goes_plain),
		T(test_may_handshake_failure_retries_plain),
		T(test_encrypt_handshake_failure),
		T(test_connection_reuse),
		T(test_reused_connection_dead),
		T(test_idle_connection_expires),
		T(test_no_reuse_quits),
		T(test_free_interrupts_delivery),
		T(test_free_before_start),
		T(test_mx_delivery_with_fallback),
		T(test_mx_all_hosts_fail),
		T(test_mx_greeting_5xx_everywhere_defers),
		T(test_mx_implicit),
		T(test_mx_null),
		T(test_dns_failures),
		T(test_free_during_lookup),
	};
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
