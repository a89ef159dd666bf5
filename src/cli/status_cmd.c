/* "postern status" and "postern reload": the running daemon, through its admin API. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "conf/config.h"
#include "route/router.h"

static int status_cmd_options(int argc, char **argv, const char **config_r, bool *json_r)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:j", opts, NULL)) != -1) {
		if (c == 'c')
			*config_r = optarg;
		else if (c == 'j' && json_r != NULL)
			*json_r = true;
		else
			return -1;
	}
	return optind == argc ? 0 : -1;
}

static void status_cmd_print(const json_t *b)
{
	const json_t *store = json_object_get(b, "store"), *rules = json_object_get(b, "rules");
	printf("postern %s running, pid %lld, up %llds\n", json_string_value(json_object_get(b, "version")),
	       (long long)json_integer_value(json_object_get(b, "pid")),
	       (long long)json_integer_value(json_object_get(b, "uptime_s")));
	printf("queue: %lld active%s\n", (long long)json_integer_value(json_object_get(b, "queue_active")),
	       json_is_true(json_object_get(b, "delivery_paused")) ? ", delivery paused" : "");
	if (json_object_get(store, "error") != NULL)
		printf("store: %s: %s\n", json_string_value(json_object_get(store, "spec")),
		       json_string_value(json_object_get(store, "error")));
	else
		printf("store: %s, schema version %lld (this program: %lld)\n",
		       json_string_value(json_object_get(store, "backend")),
		       (long long)json_integer_value(json_object_get(store, "schema_version")),
		       (long long)json_integer_value(json_object_get(store, "schema_latest")));
	printf("rules: %lld transport, %lld rewrite\n", (long long)json_integer_value(json_object_get(rules, "transport")),
	       (long long)json_integer_value(json_object_get(rules, "rewrite")));
}

int cli_status(int argc, char **argv)
{
	const char *config = NULL;
	bool json = false;
	char socket[108];
	if (status_cmd_options(argc, argv, &config, &json) < 0) {
		fprintf(stderr, "usage: postern status [-c FILE] [--json]\n");
		return EX_USAGE;
	}
	int rc = api_socket(config, "postern status", socket, sizeof(socket));
	struct api_reply reply = { 0 };
	if (rc == 0)
		rc = api_call(socket, "postern status", "GET", "/v1/status", NULL, &reply);
	if (rc == 0 && reply.status != 200) {
		rc = api_error("postern status", &reply);
	} else if (rc == 0 && json) {
		json_dumpf(reply.body, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (rc == 0) {
		status_cmd_print(reply.body);
	}
	json_decref(reply.body);
	return rc;
}

/* The files are checked here first, so that a mistake is shown with its file:line at once
   instead of only in the daemon's log (which would keep the old rules). */
int cli_reload(int argc, char **argv)
{
	const char *config = NULL;
	char socket[108], *errors;
	if (status_cmd_options(argc, argv, &config, NULL) < 0) {
		fprintf(stderr, "usage: postern reload [-c FILE]\n");
		return EX_USAGE;
	}
	struct config *conf = NULL;
	struct router *router = NULL;
	int checked = config_load(cli_config_path(config), &conf, &errors);
	if (checked == 0)
		checked = router_load(conf, &router, &errors);
	router_free(&router);
	config_free(&conf);
	if (checked < 0) {
		config_print_errors(stderr, errors);
		free(errors);
		return EX_CONFIG;
	}
	int rc = api_socket(config, "postern reload", socket, sizeof(socket));
	struct api_reply reply = { 0 };
	if (rc == 0)
		rc = api_call(socket, "postern reload", "POST", "/v1/reload", NULL, &reply);
	if (rc == 0 && reply.status != 202)
		rc = api_error("postern reload", &reply);
	else if (rc == 0)
		printf("reload requested; the daemon's log says how it went\n");
	json_decref(reply.body);
	return rc;
}
