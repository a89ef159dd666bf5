#include "core/daemon.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "admin/admin.h"
#include "conf/config.h"
#include "net/cidr.h"
#include "net/listener.h"
#include "net/tls.h"
#include "queue/commit.h"
#include "deliver/smtp_client.h"
#include "net/dns.h"
#include "queue/pickup.h"
#include "queue/qmgr.h"
#include "queue/spool.h"
#include "route/router.h"
#include "smtp/server.h"
#include "store/store_async.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

struct daemon_listen {
	struct daemon *d;
	bool lmtp;
};

struct daemon {
	char *config_path;
	struct config *conf;
	char hostname[256];
	struct smtp_context ctx;
	struct smtp_server *server;
	struct pickup *pickup;
	struct admin_server *admin;
	struct dns *dns;
	SSL_CTX *client_tls;
	struct smtp_client_options client_opts;
	struct smtp_client *client;
	struct listener **listeners;
	size_t nlisteners;
	struct daemon_listen smtp_arg, lmtp_arg;
	struct event *signals[3];
	struct event *drain_timer;
	int64_t drain_deadline_us;
	bool stopping;
};

#define DAEMON_STORE_WORKERS 2

/* The store's workers connect by themselves: a database that cannot be reached now gets
   451 4.3.0 for the mail that needs it until it can. Only a wrong store setting stops the
   start. A new store setting takes a restart. */
static void daemon_store_open(struct daemon *d)
{
	const char *error;
	if (store_async_new(d->ctx.base, d->conf->store, d->conf->state_dir, DAEMON_STORE_WORKERS, 0,
			    &d->ctx.store, &error) < 0)
		log_fatal("store %s: %s", d->conf->store, error);
}

static void daemon_apply_log_level(const struct config *conf)
{
	enum log_level level = LOG_LEVEL_INFO;
	log_level_parse(conf->log_level, &level);
	log_init("postern", level);
}

/* Returns the parsed mynetworks; the config loader has validated every item already. */
static struct cidr *daemon_mynetworks(const struct config *conf, int *n_r)
{
	int n = 0;
	while (conf->mynetworks[n] != NULL)
		n++;
	struct cidr *nets = xcalloc((size_t)n + 1, sizeof(*nets));
	for (int i = 0; i < n; i++) {
		if (cidr_parse(conf->mynetworks[i], &nets[i]) < 0)
			log_fatal("mynetworks: bad network %s", conf->mynetworks[i]);
	}
	*n_r = n;
	return nets;
}

/* Returns a TLS context when certificate and key are configured, NULL when they are not.
   With fatal unset (reload), a broken one is logged and old_ctx kept. */
static SSL_CTX *daemon_tls(const struct config *conf, SSL_CTX *old_ctx, bool fatal)
{
	if (conf->tls_cert_file[0] == '\0')
		return NULL;
	const char *error;
	SSL_CTX *ctx = tls_server_ctx_new(conf->tls_cert_file, conf->tls_key_file, &error);
	if (ctx != NULL)
		return ctx;
	if (fatal)
		log_fatal("TLS: %s", error);
	log_error("TLS: %s; keeping the previous certificate", error);
	if (old_ctx != NULL)
		SSL_CTX_up_ref(old_ctx);
	return old_ctx;
}

static void daemon_accept(void *arg, int fd, const struct sockaddr *sa, int salen)
{
	struct daemon_listen *l = arg;
	smtp_server_accept(l->d->server, fd, sa, salen, l->lmtp);
}

static void daemon_close_listeners(struct daemon *d)
{
	for (size_t i = 0; i < d->nlisteners; i++)
		listener_free(&d->listeners[i]);
	free(d->listeners);
	d->listeners = NULL;
	d->nlisteners = 0;
}

static int daemon_listen_list(struct daemon *d, char **specs, struct daemon_listen *arg)
{
	int failures = 0;
	for (char **spec = specs; *spec != NULL; spec++) {
		const char *error;
		struct listener *l = listener_new(d->ctx.base, *spec, daemon_accept, arg, &error);
		if (l == NULL) {
			log_error("cannot listen on %s: %s", *spec, error);
			failures++;
			continue;
		}
		d->listeners = xrealloc(d->listeners, (d->nlisteners + 1) * sizeof(*d->listeners));
		d->listeners[d->nlisteners++] = l;
		log_info("%s listening on %s", arg->lmtp ? "LMTP" : "SMTP", *spec);
	}
	return failures;
}

static int daemon_open_listeners(struct daemon *d)
{
	d->smtp_arg = (struct daemon_listen){ d, false };
	d->lmtp_arg = (struct daemon_listen){ d, true };
	return daemon_listen_list(d, d->conf->smtp_listen, &d->smtp_arg) +
	       daemon_listen_list(d, d->conf->lmtp_listen, &d->lmtp_arg);
}

/* Outgoing connections verify nothing (opportunistic TLS, as for MX delivery in general);
   what it buys is privacy against passive listeners. */
static SSL_CTX *daemon_client_tls(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		log_fatal("cannot create the TLS client context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static void daemon_client_options(struct daemon *d)
{
	const struct config *c = d->conf;
	d->client_opts = (struct smtp_client_options){
		.helo_name = d->hostname,
		.connect_timeout = (int)c->smtp_connect_timeout,
		.helo_timeout = (int)c->smtp_helo_timeout,
		.command_timeout = (int)c->smtp_command_timeout,
		.data_timeout = (int)c->smtp_data_timeout,
		.data_done_timeout = (int)c->smtp_data_done_timeout,
		.connection_reuse_time = (int)c->smtp_connection_reuse_time,
		.tls = d->client_tls,
	};
}

static void daemon_start_delivery(struct daemon *d)
{
	const char *error;
	d->dns = dns_new(d->ctx.base, d->conf->dns_servers, (int)d->conf->dns_timeout * 1000, &error);
	if (d->dns == NULL)
		log_fatal("DNS: %s", error);
	d->client_tls = daemon_client_tls();
	daemon_client_options(d);
	d->client = smtp_client_new(d->ctx.base, d->dns, &d->client_opts);
	d->ctx.qmgr = qmgr_new(&d->ctx, d->client);
}

/* Deliveries in flight are interrupted (and deferred) by freeing the agent; the queue manager
   records that before it goes. */
static void daemon_stop_delivery(struct daemon *d)
{
	if (d->ctx.qmgr != NULL)
		qmgr_stop(d->ctx.qmgr);
	smtp_client_free(&d->client);
}

static bool daemon_lists_equal(char **a, char **b)
{
	for (; *a != NULL && *b != NULL; a++, b++) {
		if (strcmp(*a, *b) != 0)
			return false;
	}
	return *a == NULL && *b == NULL;
}

/* Settings take effect for the next command of every session; listeners are re-bound only
   when their lists changed, so established sessions never notice a reload. */
/* The rule files go with a reload, all of them or none: a bad file leaves the rules in force
   (the other settings still change). */
static void daemon_reload_router(struct daemon *d)
{
	struct router *r;
	char *errors;
	if (router_load(d->conf, &r, &errors) < 0) {
		log_error("reload: rule files rejected, the old rules stay in force:");
		config_log_errors(errors);
		free(errors);
		return;
	}
	router_free(&d->ctx.router);
	d->ctx.router = r;
}

static void daemon_reload(struct daemon *d)
{
	struct config *conf;
	char *errors;
	if (config_load(d->config_path, &conf, &errors) < 0) {
		log_error("reload failed, keeping the running configuration:");
		config_log_errors(errors);
		free(errors);
		return;
	}
	if (strcmp(conf->state_dir, d->conf->state_dir) != 0)
		log_warn("reload: state_dir changes only with a restart");
	bool was_paused = d->conf->delivery_paused;
	bool relisten = !daemon_lists_equal(conf->smtp_listen, d->conf->smtp_listen) ||
			!daemon_lists_equal(conf->lmtp_listen, d->conf->lmtp_listen);
	SSL_CTX *tls = daemon_tls(conf, d->ctx.tls, false);
	SSL_CTX_free(d->ctx.tls);
	d->ctx.tls = tls;
	free(d->ctx.mynetworks);
	d->ctx.mynetworks = daemon_mynetworks(conf, &d->ctx.nmynetworks);
	config_free(&d->conf);
	d->conf = conf;
	d->ctx.conf = conf;
	config_hostname(d->conf, d->hostname, sizeof(d->hostname));
	daemon_client_options(d);
	smtp_client_set_options(d->client, &d->client_opts);
	daemon_reload_router(d);
	qmgr_reload(d->ctx.qmgr, was_paused);
	daemon_apply_log_level(conf);
	if (relisten) {
		daemon_close_listeners(d);
		daemon_open_listeners(d);
	}
	log_info("configuration reloaded from %s", d->config_path);
}

static void daemon_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	unsigned sessions = smtp_server_sessions(d->server);
	unsigned pending = committer_pending(d->ctx.committer);
	unsigned deliveries = qmgr_inflight(d->ctx.qmgr);
	if ((sessions == 0 && pending == 0 && deliveries == 0) || time_now_us() >= d->drain_deadline_us) {
		if (sessions > 0 || deliveries > 0)
			log_warn("shutdown timeout: closing %u sessions, interrupting %u deliveries",
				 sessions, deliveries);
		event_base_loopexit(d->ctx.base, NULL);
	}
}

static void daemon_stop(struct daemon *d)
{
	if (d->stopping) {
		log_info("second stop signal: exiting now");
		event_base_loopexit(d->ctx.base, NULL);
		return;
	}
	d->stopping = true;
	log_info("stopping: draining %u sessions", smtp_server_sessions(d->server));
	daemon_close_listeners(d);
	pickup_free(&d->pickup);
	qmgr_stop(d->ctx.qmgr);
	smtp_client_stop_waiting(d->client);
	smtp_server_drain(d->server);
	d->drain_deadline_us = time_now_us() + d->conf->shutdown_timeout * 1000000;
	d->drain_timer = event_new(d->ctx.base, -1, EV_PERSIST, daemon_drain_check, d);
	struct timeval tv = { 0, 100000 };
	event_add(d->drain_timer, &tv);
	daemon_drain_check(-1, 0, d);
}

static void daemon_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	if (sig == SIGHUP)
		daemon_reload(d);
	else
		daemon_stop(d);
}

static void daemon_signals(struct daemon *d)
{
	static const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < 3; i++) {
		d->signals[i] = evsignal_new(d->ctx.base, sigs[i], daemon_signal, d);
		event_add(d->signals[i], NULL);
	}
}

/* Sessions, deliveries and their files all take descriptors: use all the system allows. */
static void daemon_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open-file limit: %s", strerror(errno));
	}
}

static void daemon_setup(struct daemon *d)
{
	daemon_raise_nofile();
	const char *error;
	config_hostname(d->conf, d->hostname, sizeof(d->hostname));
	daemon_apply_log_level(d->conf);
	if (spool_open(d->conf->state_dir, &d->ctx.spool, &error) < 0)
		log_fatal("%s", error);
	long n = spool_recover(d->ctx.spool);
	if (n < 0)
		log_fatal("cannot read the spool under %s", d->conf->state_dir);
	log_info("spool %s: %ld messages queued", spool_root(d->ctx.spool), n);
	spool_start_pool(d->ctx.spool);
	evthread_use_pthreads();
	d->ctx.base = event_base_new();
	if (d->ctx.base == NULL)
		log_fatal("cannot create the event loop");
	d->ctx.conf = d->conf;
	d->ctx.hostname = d->hostname;
	d->ctx.queue = SPOOL_INCOMING;
	d->ctx.tls = daemon_tls(d->conf, NULL, true);
	d->ctx.mynetworks = daemon_mynetworks(d->conf, &d->ctx.nmynetworks);
	char *errors;
	if (router_load(d->conf, &d->ctx.router, &errors) < 0) {
		config_log_errors(errors);
		log_fatal("the rule files have errors; see above");
	}
	d->ctx.committer = committer_new(d->ctx.base, d->ctx.spool);
	daemon_store_open(d);
	d->server = smtp_server_new(&d->ctx);
	daemon_start_delivery(d);
	d->pickup = pickup_new(&d->ctx);
	daemon_signals(d);
	if (daemon_open_listeners(d) > 0)
		log_fatal("cannot open every listener; see above");
	d->admin = admin_server_new(&d->ctx, &error);
	if (d->admin == NULL)
		log_fatal("admin API socket: %s", error);
}

static void daemon_teardown(struct daemon *d)
{
	admin_server_free(&d->admin);
	daemon_close_listeners(d);
	pickup_free(&d->pickup);
	/* while the sessions and the committer live: lookups still queued are answered (cancelled,
	   the session closes) before anything they could reach is gone */
	store_async_free(&d->ctx.store);
	daemon_stop_delivery(d);
	committer_free(&d->ctx.committer);
	qmgr_free(&d->ctx.qmgr);
	router_free(&d->ctx.router);
	smtp_server_free(&d->server);
	dns_free(&d->dns);
	SSL_CTX_free(d->client_tls);
	for (int i = 0; i < 3; i++)
		event_free(d->signals[i]);
	if (d->drain_timer != NULL)
		event_free(d->drain_timer);
	SSL_CTX_free(d->ctx.tls);
	free(d->ctx.mynetworks);
	spool_free(&d->ctx.spool);
	event_base_free(d->ctx.base);
	config_free(&d->conf);
	free(d->config_path);
}

int daemon_run(const char *config_path)
{
	struct daemon d = { 0 };
	char *errors;
	if (config_load(config_path, &d.conf, &errors) < 0) {
		config_log_errors(errors);
		free(errors);
		log_fatal("configuration errors in %s; not starting", config_path);
	}
	d.config_path = xstrdup(config_path);
	daemon_setup(&d);
	log_info("postern %s started (pid %d), hostname %s", POSTERN_VERSION, (int)getpid(), d.hostname);
	event_base_dispatch(d.ctx.base);
	daemon_teardown(&d);
	log_info("stopped");
	return 0;
}
