#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/config.h"
#include "route/router.h"

#define CLI_DEFAULT_CONFIG "/etc/postern/postern.conf"

const char *cli_config_path(const char *given)
{
	if (given != NULL)
		return given;
	const char *env = getenv("POSTERN_CONFIG");
	return env != NULL && env[0] != '\0' ? env : CLI_DEFAULT_CONFIG;
}

static int cli_config_usage(void)
{
	fprintf(stderr, "usage: postern config check|dump [-v] [-c FILE]\n");
	return 64;
}

int cli_config(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool verbose = false;
	int c;
	while ((c = getopt_long(argc, argv, "c:v", opts, NULL)) != -1) {
		if (c == 'c')
			path = optarg;
		else if (c == 'v')
			verbose = true;
		else
			return cli_config_usage();
	}
	if (optind + 1 != argc || (strcmp(argv[optind], "check") && strcmp(argv[optind], "dump")))
		return cli_config_usage();
	path = cli_config_path(path);
	struct config *conf;
	char *errors;
	if (config_load(path, &conf, &errors) < 0) {
		config_print_errors(stderr, errors);
		free(errors);
		return 78; /* EX_CONFIG */
	}
	int rc = 0;
	struct router *router = NULL;
	if (strcmp(argv[optind], "dump") == 0) {
		config_dump(conf, stdout, verbose);
	} else if (router_load(conf, &router, &errors) < 0) {
		/* the rule files it names are part of the configuration */
		config_print_errors(stderr, errors);
		free(errors);
		rc = 78;
	} else {
		printf("%s: ok\n", path);
	}
	router_free(&router);
	config_free(&conf);
	return rc;
}
