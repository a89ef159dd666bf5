/* "postern route ADDRESS [--sender S]": what postern would do with mail for ADDRESS, from the
   configuration's rule files and the store, without the daemon: the rewritten address, the
   alias expansion, and for each final target the next hop and the rule that chose it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>

#include "cli/cli.h"
#include "conf/config.h"
#include "route/alias_store.h"
#include "route/router.h"
#include "store/store.h"
#include "util/buf.h"

struct route_cmd {
	const char *config, *sender, *address;
	bool json;
	struct config *conf;
	struct router *router;
	struct store *store;
};

static int route_cmd_usage(FILE *out, int status)
{
	fputs("usage: postern route ADDRESS [--sender S] [-c FILE] [--json]\n"
	      "Prints the rewritten address, its alias expansion, and for each target the next hop\n"
	      "and the rule (file:line) that chose it. Exit status: 0, 1 when the address would be\n"
	      "refused, 64 usage, 69 store unavailable, 78 configuration.\n",
	      out);
	return status;
}

/* The decision for one final address: a rule's next hop, else relayhost, else MX. */
static json_t *route_cmd_hop(const struct route_cmd *cmd, const char *address)
{
	const struct policy_rule *rule = router_match(cmd->router, address);
	if (rule != NULL) {
		struct buf b = { 0 };
		nexthop_format(&rule->nexthop, &b);
		json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "target", address, "nexthop", buf_str(&b),
				      "rule_file", rule->file, "rule_line", (int)rule->line);
		buf_free(&b);
		return j;
	}
	const char *at = strrchr(address, '@');
	if (cmd->conf->relayhost[0] != NULL)
		return json_pack("{s:s, s:s, s:s}", "target", address, "nexthop", cmd->conf->relayhost[0],
				 "by", "relayhost");
	char mx[300];
	snprintf(mx, sizeof(mx), "mx:%s", at != NULL ? at + 1 : "");
	return json_pack("{s:s, s:s, s:s}", "target", address, "nexthop", mx, "by", "MX lookup");
}

static json_t *route_cmd_target(const struct route_cmd *cmd, const struct alias_target *t)
{
	json_t *j = t->local ? json_pack("{s:s, s:s}", "target", t->target, "nexthop", t->target)
			     : route_cmd_hop(cmd, t->target);
	if (t->key[0] != '\0')
		json_object_set_new(j, "alias", json_string(t->key));
	return j;
}

static json_t *route_cmd_decide(struct route_cmd *cmd, int *status_r)
{
	char rewritten[REWRITE_ADDRESS_MAX + 1], sender[REWRITE_ADDRESS_MAX + 1];
	router_rewrite(cmd->router, REWRITE_TO, cmd->address, rewritten, sizeof(rewritten));
	json_t *out = json_pack("{s:s, s:s}", "address", cmd->address, "rewritten", rewritten);
	if (cmd->sender != NULL) {
		router_rewrite(cmd->router, REWRITE_FROM, cmd->sender, sender, sizeof(sender));
		json_object_set_new(out, "sender", json_string(sender));
	}
	struct alias_opts opts = { .delimiters = router_delimiters(cmd->router),
				   .max_depth = (unsigned)cmd->conf->alias_max_depth };
	struct alias_result res = { 0 };
	alias_expand(rewritten, &opts, alias_store_lookup, cmd->store, &res);
	if (res.status != ALIAS_OK) {
		json_object_set_new(out, "refused", json_sprintf("%d %s %s", res.code, res.enhanced, res.text));
		*status_r = res.status == ALIAS_TEMPFAIL ? EX_UNAVAILABLE : 1;
	} else {
		json_t *targets = json_array();
		for (size_t i = 0; i < res.count; i++)
			json_array_append_new(targets, route_cmd_target(cmd, &res.targets[i]));
		json_object_set_new(out, "targets", targets);
	}
	alias_result_free(&res);
	return out;
}

static void route_cmd_print(const json_t *out)
{
	printf("address:   %s\n", json_string_value(json_object_get(out, "address")));
	printf("rewritten: %s\n", json_string_value(json_object_get(out, "rewritten")));
	if (json_object_get(out, "sender") != NULL)
		printf("sender:    %s\n", json_string_value(json_object_get(out, "sender")));
	if (json_object_get(out, "refused") != NULL) {
		printf("refused:   %s\n", json_string_value(json_object_get(out, "refused")));
		return;
	}
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(out, "targets"), i, t) {
		const json_t *alias = json_object_get(t, "alias"), *file = json_object_get(t, "rule_file");
		printf("target:    %s", json_string_value(json_object_get(t, "target")));
		if (alias != NULL)
			printf(" (alias %s)", json_string_value(alias));
		printf("\n  next hop: %s", json_string_value(json_object_get(t, "nexthop")));
		if (file != NULL)
			printf(" (rule %s:%lld)", json_string_value(file),
			       (long long)json_integer_value(json_object_get(t, "rule_line")));
		else if (json_object_get(t, "by") != NULL)
			printf(" (no rule: %s)", json_string_value(json_object_get(t, "by")));
		putchar('\n');
	}
}

static int route_cmd_options(int argc, char **argv, struct route_cmd *cmd)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "sender", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:s:j", opts, NULL)) != -1) {
		if (c == 'c')
			cmd->config = optarg;
		else if (c == 's')
			cmd->sender = optarg;
		else if (c == 'j')
			cmd->json = true;
		else
			return -1;
	}
	if (optind + 1 != argc)
		return -1;
	cmd->address = argv[optind];
	return 0;
}

static int route_cmd_load(struct route_cmd *cmd)
{
	char *errors;
	if (config_load(cli_config_path(cmd->config), &cmd->conf, &errors) < 0 ||
	    router_load(cmd->conf, &cmd->router, &errors) < 0) {
		config_print_errors(stderr, errors);
		free(errors);
		return EX_CONFIG;
	}
	const char *error;
	int rc = store_open(cmd->conf->store, cmd->conf->state_dir, &cmd->store, &error);
	if (rc < 0) {
		fprintf(stderr, "postern route: store %s: %s\n", cmd->conf->store, error);
		return rc == STORE_UNAVAILABLE ? EX_UNAVAILABLE : 1;
	}
	return 0;
}

int cli_route(int argc, char **argv)
{
	struct route_cmd cmd = { 0 };
	optind = 1;
	if (route_cmd_options(argc, argv, &cmd) < 0)
		return route_cmd_usage(stderr, EX_USAGE);
	int status = route_cmd_load(&cmd);
	if (status == 0) {
		json_t *out = route_cmd_decide(&cmd, &status);
		if (cmd.json) {
			json_dumpf(out, stdout, JSON_COMPACT);
			putchar('\n');
		} else {
			route_cmd_print(out);
		}
		json_decref(out);
	}
	store_free(&cmd.store);
	router_free(&cmd.router);
	config_free(&cmd.conf);
	return status;
}
