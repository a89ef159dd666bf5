/* bench/route's engine: the routing decisions of the daemon, in one process, timed. For each
   address of a list it does what RCPT and the queue manager do: rewrite, expand aliases from
   the store (as a store worker does), and choose a next hop for each target by the transport
   policy. Prints one JSON line: decisions, seconds, decisions per second, CPU seconds.

   usage: route_bench CONFIG ADDRESSES-FILE [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "conf/config.h"
#include "route/alias_store.h"
#include "route/router.h"
#include "store/store.h"

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double bench_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static char **bench_addresses(const char *path, size_t *n_r)
{
	FILE *f = fopen(path, "r");
	char line[1024], **v = NULL;
	size_t n = 0, cap = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (n == cap)
			v = realloc(v, (cap = cap ? cap * 2 : 1024) * sizeof(*v));
		v[n++] = strdup(line);
	}
	if (f != NULL)
		fclose(f);
	*n_r = n;
	return v;
}

/* Returns the number of next-hop decisions made for address, -1 when the store failed. */
static long bench_one(struct router *router, struct store *store, const struct config *conf,
		      const char *address)
{
	char rewritten[REWRITE_ADDRESS_MAX + 1];
	router_rewrite(router, REWRITE_TO, address, rewritten, sizeof(rewritten));
	struct alias_opts opts = { .delimiters = router_delimiters(router),
				   .max_depth = (unsigned)conf->alias_max_depth };
	struct alias_result res = { 0 };
	alias_expand(rewritten, &opts, alias_store_lookup, store, &res);
	long n = res.status == ALIAS_TEMPFAIL ? -1 : 0;
	for (size_t i = 0; i < res.count; i++) {
		if (res.targets[i].local)
			continue;
		(void)router_match(router, res.targets[i].target); /* no match: relayhost or MX */
		n++;
	}
	alias_result_free(&res);
	return n;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: route_bench CONFIG ADDRESSES [ROUNDS]\n");
		return 64;
	}
	struct config *conf;
	struct router *router;
	struct store *store;
	char *errors;
	const char *error;
	if (config_load(argv[1], &conf, &errors) < 0 || router_load(conf, &router, &errors) < 0) {
		fprintf(stderr, "%s\n", errors);
		return 78;
	}
	if (store_open(conf->store, conf->state_dir, &store, &error) < 0) {
		fprintf(stderr, "store: %s\n", error);
		return 69;
	}
	size_t n;
	char **addresses = bench_addresses(argv[2], &n);
	int rounds = argc > 3 ? atoi(argv[3]) : 1;
	long decisions = 0, failures = 0;
	double t0 = bench_now(), c0 = bench_cpu();
	for (int r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++) {
			long d = bench_one(router, store, conf, addresses[i]);
			decisions += d > 0 ? d : 0;
			failures += d < 0;
		}
	}
	double secs = bench_now() - t0, cpu = bench_cpu() - c0;
	printf("{\"store\": \"%s\", \"addresses\": %zu, \"rounds\": %d, \"lookups\": %zu, \"decisions\": %ld, "
	       "\"failures\": %ld, \"seconds\": %.3f, \"cpu_s\": %.3f, \"lookups_per_s\": %.0f}\n",
	       store_backend(store), n, rounds, n * (size_t)rounds, decisions, failures, secs, cpu,
	       (double)n * rounds / secs);
	for (size_t i = 0; i < n; i++)
		free(addresses[i]);
	free(addresses);
	store_free(&store);
	router_free(&router);
	config_free(&conf);
	return failures > 0 ? 1 : 0;
}
