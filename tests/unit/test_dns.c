#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "net/dns.h"

/* The resolver is tested against a real dnsmasq on a loopback port, started by the group setup
   with the records below; unknown names under .test get NXDOMAIN from dnsmasq itself, names
   elsewhere get REFUSED (it has no upstream). Servers that never answer are a bound UDP socket
   nobody reads (drop) and a closed UDP port (ICMP port unreachable). */

#define DNSMASQ "/usr/sbin/dnsmasq"
#define MANY_MX 40

static bool have_dnsmasq;
static pid_t dnsmasq_pid = -1;
static int dnsmasq_port;
static char dnsmasq_dir[] = "/tmp/postern-test-dns-XXXXXX";
static char live_servers[64];
static int drop_fd = -1;
static char drop_servers[64];
static char refused_servers[64];

/* ---- dnsmasq ---- */

static void write_dnsmasq_conf(const char *path, int port)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n"
		   "no-poll\nuser=root\nlocal=/test/\n", port);
	fprintf(f, "mx-host=multi.test,mx1.multi.test,10\nmx-host=multi.test,mx2.multi.test,10\n"
		   "mx-host=multi.test,MX3.Multi.Test,5\nmx-host=multi.test,mx4.multi.test,20\n");
	/* Raw RDATA for "MX 0 .": preference 0 and the root name; mx-host cannot say it. */
	fprintf(f, "dns-rr=nullmx.test,15,000000\n");
	fprintf(f, "dns-rr=mixed.test,15,000000\nmx-host=mixed.test,mx.mixed.test,10\n");
	/* "MX 10 MX.Upper.TEST" as raw RDATA: dnsmasq lower-cases mx-host targets itself. */
	fprintf(f, "dns-rr=upper.test,15,000a024d58055570706572045445535400\n");
	fprintf(f, "host-record=aonly.test,192.0.2.10\n");
	fprintf(f, "host-record=dual.test,192.0.2.1\nhost-record=dual.test,192.0.2.2\n"
		   "host-record=dual.test,2001:db8::1\nhost-record=v6only.test,2001:db8::5\n");
	/* More records than DNS_MAX_MX, in reverse preference order; the answer is over 512
	   bytes, so c-ares retries over TCP. */
	for (int i = 0; i < MANY_MX; i++)
		fprintf(f, "mx-host=many.test,mx%02d.many.test,%d\n", i, MANY_MX - i);
	assert_int_equal(fclose(f), 0);
}

static int udp_socket_port(int *fd_r)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*fd_r = fd;
	return ntohs(sin.sin_port);
}

static pid_t spawn_dnsmasq(const char *conf)
{
	char conf_arg[512], pid_arg[512];
	snprintf(conf_arg, sizeof(conf_arg), "--conf-file=%s", conf);
	snprintf(pid_arg, sizeof(pid_arg), "--pid-file=%s/dnsmasq.pid", dnsmasq_dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(DNSMASQ, DNSMASQ, "--keep-in-foreground", conf_arg, pid_arg, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* dnsmasq opens its TCP and UDP sockets together: once TCP accepts, UDP answers too. */
static bool dnsmasq_wait_ready(pid_t pid, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
		close(fd);
		if (rc == 0)
			return true;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return false;
}

/* A free port can be taken between our probe and dnsmasq's bind, hence the retries. */
static void dnsmasq_start(void)
{
	char conf[256];
	assert_non_null(mkdtemp(dnsmasq_dir));
	snprintf(conf, sizeof(conf), "%s/dnsmasq.conf", dnsmasq_dir);
	for (int attempt = 0; attempt < 5; attempt++) {
		int fd;
		dnsmasq_port = udp_socket_port(&fd);
		close(fd);
		write_dnsmasq_conf(conf, dnsmasq_port);
		pid_t pid = spawn_dnsmasq(conf);
		if (dnsmasq_wait_ready(pid, dnsmasq_port)) {
			dnsmasq_pid = pid;
			snprintf(live_servers, sizeof(live_servers), "127.0.0.1:%d", dnsmasq_port);
			return;
		}
	}
	fail_msg("dnsmasq did not start");
}

static void dnsmasq_stop(void)
{
	char path[256];
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
	}
	snprintf(path, sizeof(path), "%s/dnsmasq.conf", dnsmasq_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dnsmasq.pid", dnsmasq_dir);
	unlink(path);
	rmdir(dnsmasq_dir);
}

static int group_setup(void **state)
{
	int fd;
	snprintf(drop_servers, sizeof(drop_servers), "127.0.0.1:%d", udp_socket_port(&drop_fd));
	snprintf(refused_servers, sizeof(refused_servers), "127.0.0.1:%d", udp_socket_port(&fd));
	close(fd);
	have_dnsmasq = access(DNSMASQ, X_OK) == 0;
	if (have_dnsmasq)
		dnsmasq_start();
	return 0;
}

static int group_teardown(void **state)
{
	if (have_dnsmasq)
		dnsmasq_stop();
	close(drop_fd);
	return 0;
}

/* ---- the loop and the callbacks ---- */

struct result {
	int calls;
	enum dns_status status;
	size_t n;
	struct dns_mx mx[DNS_MAX_MX];
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	bool null_answer; /* the callback got NULL for the array */
	double at_ms;     /* when the callback ran */
};

struct fixture {
	struct event_base *base;
	struct dns *dns;
};

static int total_calls;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void mx_cb(void *arg, enum dns_status status, const struct dns_mx *mx, size_t n)
{
	struct result *r = arg;
	r->calls++;
	total_calls++;
	r->status = status;
	r->n = n;
	r->null_answer = mx == NULL;
	r->at_ms = now_ms();
	assert_true(n <= DNS_MAX_MX);
	if (n > 0)
		memcpy(r->mx, mx, n * sizeof(*mx));
}

static void addr_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs,
		    size_t n)
{
	struct result *r = arg;
	r->calls++;
	total_calls++;
	r->status = status;
	r->n = n;
	r->null_answer = addrs == NULL;
	r->at_ms = now_ms();
	assert_true(n <= DNS_MAX_ADDRS);
	if (n > 0)
		memcpy(r->addrs, addrs, n * sizeof(*addrs));
}

static void watchdog_fired(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Runs the loop until total_calls reaches want; fails after limit_ms instead of hanging. */
static void run_until(struct event_base *base, int want, int limit_ms)
{
	bool expired = false;
	struct timeval tv = { limit_ms / 1000, (limit_ms % 1000) * 1000 };
	struct event *watchdog = evtimer_new(base, watchdog_fired, &expired);
	evtimer_add(watchdog, &tv);
	while (total_calls < want && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(watchdog);
	assert_int_equal(total_calls, want);
}

/* Runs the loop for ms more, so a second callback would have had its chance. */
static void settle(struct event_base *base, int ms)
{
	struct timeval tv = { 0, ms * 1000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static struct fixture *fixture_new(const char *servers, int timeout_ms)
{
	const char *error = NULL;
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->dns = dns_new(fx->base, servers, timeout_ms, &error);
	if (fx->dns == NULL)
		fail_msg("dns_new: %s", error);
	total_calls = 0;
	return fx;
}

static int live_setup(void **state)
{
	if (!have_dnsmasq)
		return 0;
	*state = fixture_new(live_servers, 1000);
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *fx = *state;
	if (fx == NULL)
		return 0;
	dns_free(&fx->dns);
	assert_null(fx->dns);
	event_base_free(fx->base);
	free(fx);
	return 0;
}

static struct fixture *live_fixture(void **state)
{
	if (!have_dnsmasq)
		skip();
	return *state;
}

static void assert_sockaddr(const struct sockaddr_storage *ss, const char *ip, int port)
{
	char buf[INET6_ADDRSTRLEN];
	const void *addr;
	int p;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		addr = &sin6->sin6_addr;
		p = ntohs(sin6->sin6_port);
	} else {
		assert_int_equal(ss->ss_family, AF_INET);
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		addr = &sin->sin_addr;
		p = ntohs(sin->sin_port);
	}
	assert_non_null(inet_ntop(ss->ss_family, addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(p, port);
}

/* ---- MX ---- */

/* Sorted by preference, names lower-cased; the tie at 10 comes in both orders over many
   lookups (the chance of one order 40 times running is 2^-39). */
static void test_mx_sorted_ties_shuffled(void **state)
{
	struct fixture *fx = live_fixture(state);
	enum { N = 40 };
	static struct result r[N];
	memset(r, 0, sizeof(r));
	for (int i = 0; i < N; i++)
		dns_lookup_mx(fx->dns, i % 2 ? "multi.test" : "Multi.TEST.", mx_cb, &r[i]);
	assert_int_equal(total_calls, 0);
	run_until(fx->base, N, 5000);
	int mx1_first = 0;
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].status, DNS_OK);
		assert_int_equal(r[i].n, 4);
		assert_string_equal(r[i].mx[0].host, "mx3.multi.test");
		assert_int_equal(r[i].mx[0].preference, 5);
		assert_int_equal(r[i].mx[1].preference, 10);
		assert_int_equal(r[i].mx[2].preference, 10);
		bool one_two = strcmp(r[i].mx[1].host, "mx1.multi.test") == 0 &&
			       strcmp(r[i].mx[2].host, "mx2.multi.test") == 0;
		bool two_one = strcmp(r[i].mx[1].host, "mx2.multi.test") == 0 &&
			       strcmp(r[i].mx[2].host, "mx1.multi.test") == 0;
		assert_true(one_two || two_one);
		mx1_first += one_two;
		assert_string_equal(r[i].mx[3].host, "mx4.multi.test");
		assert_int_equal(r[i].mx[3].preference, 20);
	}
	assert_true(mx1_first > 0 && mx1_first < N);
}

/* A truncated UDP answer is retried over TCP (c-ares sockets with write interest); the 32
   lowest preferences are kept, in order. */
static void test_mx_many_over_tcp(void **state)
{
	struct fixture *fx = live_fixture(state);
	static struct result r;
	memset(&r, 0, sizeof(r));
	dns_lookup_mx(fx->dns, "many.test", mx_cb, &r);
	run_until(fx->base, 1, 5000);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, DNS_MAX_MX);
	for (size_t i = 0; i < DNS_MAX_MX; i++) {
		char want[64];
		snprintf(want, sizeof(want), "mx%02zu.many.test", MANY_MX - 1 - i);
		assert_int_equal(r.mx[i].preference, i + 1);
		assert_string_equal(r.mx[i].host, want);
	}
}

struct fallback {
	struct dns *dns;
	struct result mx, addr;
};

/* What MX delivery does: no MX records, so the domain itself is the host. */
static void fallback_mx_cb(void *arg, enum dns_status status, const struct dns_mx *mx, size_t n)
{
	struct fallback *fb = arg;
	mx_cb(&fb->mx, status, mx, n);
	if (status == DNS_NODATA)
		dns_lookup_addr(fb->dns, "aonly.test", 25, addr_cb, &fb->addr);
}

static void test_mx_nodata_then_address(void **state)
{
	struct fixture *fx = live_fixture(state);
	struct fallback fb = { .dns = fx->dns };
	dns_lookup_mx(fx->dns, "aonly.test", fallback_mx_cb, &fb);
	run_until(fx->base, 2, 5000);
	assert_int_equal(fb.mx.calls, 1);
	assert_int_equal(fb.mx.status, DNS_NODATA);
	assert_int_equal(fb.mx.n, 0);
	assert_true(fb.mx.null_answer);
	assert_int_equal(fb.addr.calls, 1);
	assert_int_equal(fb.addr.status, DNS_OK);
	assert_int_equal(fb.addr.n, 1);
	assert_sockaddr(&fb.addr.addrs[0], "192.0.2.10", 25);
}

static void test_mx_null(void **state)
{
	struct fixture *fx = live_fixture(state);
	struct result null = { 0 }, mixed = { 0 };
	dns_lookup_mx(fx->dns, "nullmx.test", mx_cb, &null);
	dns_lookup_mx(fx->dns, "mixed.test", mx_cb, &mixed);
	run_until(fx->base, 2, 5000);
	assert_int_equal(null.status, DNS_NULLMX);
	assert_int_equal(null.n, 0);
	assert_true(null.null_answer);
	/* A root target beside a real host is dropped, the real host kept. */
	assert_int_equal(mixed.status, DNS_OK);
	assert_int_equal(mixed.n, 1);
	assert_string_equal(mixed.mx[0].host, "mx.mixed.test");
}

static void test_mx_lower_case(void **state)
{
	struct fixture *fx = live_fixture(state);
	struct result r = { 0 };
	dns_lookup_mx(fx->dns, "UPPER.test.", mx_cb, &r);
	run_until(fx->base, 1, 5000);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.mx[0].host, "mx.upper.test");
	assert_int_equal(r.mx[0].preference, 10);
}

static void test_nxdomain(void **state)
{
	struct fixture *fx = live_fixture(state);
	struct result mx = { 0 }, addr = { 0 }, empty = { 0 }, dot = { 0 };
	dns_lookup_mx(fx->dns, "nope.test", mx_cb, &mx);
	dns_lookup_addr(fx->dns, "nope.test", 25, addr_cb, &addr);
	dns_lookup_mx(fx->dns, "", mx_cb, &empty);
	dns_lookup_addr(fx->dns, ".", 25, addr_cb, &dot);
	assert_int_equal(total_calls, 0);
	run_until(fx->base, 4, 5000);
	assert_int_equal(mx.status, DNS_NXDOMAIN);
	assert_int_equal(addr.status, DNS_NXDOMAIN);
	assert_int_equal(empty.status, DNS_NXDOMAIN);
	assert_int_equal(dot.status, DNS_NXDOMAIN);
	assert_true(mx.null_answer && addr.null_answer);
}

/* REFUSED (and SERVFAIL) answers are temporary: mail is deferred, never bounced. */
static void test_refused_is_tempfail(void **state)
{
	struct fixture *fx = live_fixture(state);
	struct result mx = { 0 }, addr = { 0 };
	dns_lookup_mx(fx->dns, "example.com", mx_cb, &mx);
	dns_lookup_addr(fx->dns, "example.com", 25, addr_cb, &addr);
	run_until(fx->base, 2, 5000);
	assert_int_equal(mx.status, DNS_TEMPFAIL);
	assert_int_equal(addr.status, DNS_TEMPFAIL);
}

/* ---- addresses ---- */

static void test_addr_both_families_ipv6_first(void **state)
{
	struct fixture *fx = live_fixture(state);
	struct result dual = { 0 }, v6 = { 0 }, v4 = { 0 }, none = { 0 }, bracketed = { 0 };
	dns_lookup_addr(fx->dns, "Dual.Test.", 2525, addr_cb, &dual);
	dns_lookup_addr(fx->dns, "v6only.test", 25, addr_cb, &v6);
	dns_lookup_addr(fx->dns, "aonly.test", 587, addr_cb, &v4);
	dns_lookup_addr(fx->dns, "multi.test", 25, addr_cb, &none); /* MX records only */
	dns_lookup_addr(fx->dns, "[aonly.test]", 25, addr_cb, &bracketed); /* relayhost style */
	run_until(fx->base, 5, 5000);
	assert_int_equal(dual.status, DNS_OK);
	assert_int_equal(dual.n, 3);
	assert_sockaddr(&dual.addrs[0], "2001:db8::1", 2525);
	const struct sockaddr_in *second = (const struct sockaddr_in *)&dual.addrs[1];
	bool in_order = second->sin_family == AF_INET &&
			second->sin_addr.s_addr == inet_addr("192.0.2.1");
	assert_sockaddr(&dual.addrs[in_order ? 1 : 2], "192.0.2.1", 2525);
	assert_sockaddr(&dual.addrs[in_order ? 2 : 1], "192.0.2.2", 2525);
	assert_int_equal(v6.status, DNS_OK);
	assert_int_equal(v6.n, 1);
	assert_sockaddr(&v6.addrs[0], "2001:db8::5", 25);
	assert_int_equal(v4.n, 1);
	assert_sockaddr(&v4.addrs[0], "192.0.2.10", 587);
	assert_int_equal(none.status, DNS_NODATA);
	assert_true(none.null_answer);
	assert_int_equal(bracketed.n, 1);
	assert_sockaddr(&bracketed.addrs[0], "192.0.2.10", 25);
}

/* Literals need no query: the resolver points at a server that never answers, with a long
   timeout, so a query would show as a late answer. They still call back from the loop. */
static void test_addr_literals(void **state)
{
	static const struct {
		const char *in, *ip;
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1" },	      { "[192.0.2.7]", "192.0.2.7" },
		{ "::1", "::1" },		      { "[::1]", "::1" },
		{ "[IPv6:2001:db8::7]", "2001:db8::7" }, { "2001:DB8::8", "2001:db8::8" },
	};
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	struct fixture *fx = fixture_new(drop_servers, 5000);
	*state = fx;
	struct result r[N];
	memset(r, 0, sizeof(r));
	double start = now_ms();
	for (int i = 0; i < N; i++)
		dns_lookup_addr(fx->dns, cases[i].in, 25 + i, addr_cb, &r[i]);
	assert_int_equal(total_calls, 0);
	run_until(fx->base, N, 1000);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].status, DNS_OK);
		assert_int_equal(r[i].n, 1);
		assert_sockaddr(&r[i].addrs[0], cases[i].ip, 25 + i);
		assert_true(r[i].at_ms - start < 500);
	}
	settle(fx->base, 50);
	assert_int_equal(total_calls, N);
}

/* ---- servers that fail ---- */

/* Two tries, the second with a doubled timeout: about 3 * 200 ms, and at least the first. */
static void test_silent_server_tempfail(void **state)
{
	struct fixture *fx = fixture_new(drop_servers, 200);
	*state = fx;
	struct result mx = { 0 }, addr = { 0 };
	double start = now_ms();
	dns_lookup_mx(fx->dns, "multi.test", mx_cb, &mx);
	dns_lookup_addr(fx->dns, "dual.test", 25, addr_cb, &addr);
	run_until(fx->base, 2, 5000);
	assert_int_equal(mx.status, DNS_TEMPFAIL);
	assert_int_equal(addr.status, DNS_TEMPFAIL);
	assert_true(mx.at_ms - start >= 200);
	assert_true(mx.at_ms - start < 1600);
	assert_true(addr.at_ms - start < 1600);
	settle(fx->base, 50);
	assert_int_equal(mx.calls + addr.calls, 2);
}

/* ICMP port unreachable fails each try at once, well before the 5 s timeout. */
static void test_refused_port_tempfail(void **state)
{
	struct fixture *fx = fixture_new(refused_servers, 5000);
	*state = fx;
	struct result mx = { 0 }, addr = { 0 };
	double start = now_ms();
	dns_lookup_mx(fx->dns, "multi.test", mx_cb, &mx);
	dns_lookup_addr(fx->dns, "dual.test", 25, addr_cb, &addr);
	run_until(fx->base, 2, 4000);
	assert_int_equal(mx.status, DNS_TEMPFAIL);
	assert_int_equal(addr.status, DNS_TEMPFAIL);
	assert_true(mx.at_ms - start < 2000 && addr.at_ms - start < 2000);
}

/* ---- freeing ---- */

/* Queries in flight hear DNS_CANCELLED once, during dns_free, and nothing after. */
static void test_free_cancels_pending(void **state)
{
	struct fixture *fx = fixture_new(drop_servers, 5000);
	*state = fx;
	struct result mx = { 0 }, addr = { 0 };
	dns_lookup_mx(fx->dns, "multi.test", mx_cb, &mx);
	dns_lookup_addr(fx->dns, "dual.test", 25, addr_cb, &addr);
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	assert_int_equal(total_calls, 0);
	dns_free(&fx->dns);
	assert_null(fx->dns);
	assert_int_equal(mx.calls, 1);
	assert_int_equal(mx.status, DNS_CANCELLED);
	assert_true(mx.null_answer);
	assert_int_equal(addr.calls, 1);
	assert_int_equal(addr.status, DNS_CANCELLED);
	assert_true(addr.null_answer);
	settle(fx->base, 100);
	assert_int_equal(total_calls, 2);
}

/* Same, with nothing run on the loop: a literal answered but not yet delivered is cancelled. */
static void test_free_before_loop(void **state)
{
	struct fixture *fx = fixture_new(drop_servers, 5000);
	*state = fx;
	struct result mx = { 0 }, literal = { 0 };
	dns_lookup_addr(fx->dns, "[::1]", 25, addr_cb, &literal);
	dns_lookup_mx(fx->dns, "multi.test", mx_cb, &mx);
	dns_free(&fx->dns);
	assert_int_equal(literal.calls, 1);
	assert_int_equal(literal.status, DNS_CANCELLED);
	assert_int_equal(mx.calls, 1);
	assert_int_equal(mx.status, DNS_CANCELLED);
	settle(fx->base, 50);
	assert_int_equal(literal.calls + mx.calls, 2);
}

struct freeing {
	struct dns **dns;
	struct result first;
};

static void free_in_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs,
		       size_t n)
{
	struct freeing *fr = arg;
	addr_cb(&fr->first, status, addrs, n);
	dns_free(fr->dns);
}

/* A callback may free the resolver; the other lookup is cancelled, nothing is touched after. */
static void test_free_inside_callback(void **state)
{
	struct fixture *fx = fixture_new(drop_servers, 5000);
	*state = fx;
	struct freeing fr = { .dns = &fx->dns };
	struct result other = { 0 };
	dns_lookup_addr(fx->dns, "127.0.0.1", 25, free_in_cb, &fr);
	dns_lookup_mx(fx->dns, "multi.test", mx_cb, &other);
	run_until(fx->base, 2, 1000);
	assert_null(fx->dns);
	assert_int_equal(fr.first.status, DNS_OK);
	assert_int_equal(other.calls, 1);
	assert_int_equal(other.status, DNS_CANCELLED);
	settle(fx->base, 50);
	assert_int_equal(fr.first.calls + other.calls, 2);
}

/* ---- dns_new ---- */

static void test_new_arguments(void **state)
{
	struct event_base *base = event_base_new();
	const char *error = NULL;
	assert_null(dns_new(base, "not-an-address", 1000, &error));
	assert_non_null(error);
	error = NULL;
	assert_null(dns_new(base, "127.0.0.1:53", 0, &error));
	assert_non_null(error);
	static const char *const good[] = { NULL, "", "127.0.0.1", "127.0.0.1:5353, [::1]:53",
					    "::1" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct dns *dns = dns_new(base, good[i], 1000, &error);
		assert_non_null(dns);
		dns_free(&dns);
		assert_null(dns);
	}
	struct dns *none = NULL;
	dns_free(&none);
	event_base_free(base);
}

/* LIVE: against dnsmasq, skipped without it; OWN: the test makes its own resolver. */
#define LIVE(t) cmocka_unit_test_setup_teardown(t, live_setup, fixture_teardown)
#define OWN(t) cmocka_unit_test_teardown(t, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		LIVE(test_mx_sorted_ties_shuffled),
		LIVE(test_mx_many_over_tcp),
		LIVE(test_mx_nodata_then_address),
		LIVE(test_mx_null),
		LIVE(test_mx_lower_case),
		LIVE(test_nxdomain),
		LIVE(test_refused_is_tempfail),
		LIVE(test_addr_both_families_ipv6_first),
		OWN(test_addr_literals),
		OWN(test_silent_server_tempfail),
		OWN(test_refused_port_tempfail),
		OWN(test_free_cancels_pending),
		OWN(test_free_before_loop),
		OWN(test_free_inside_callback),
		cmocka_unit_test(test_new_arguments),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
