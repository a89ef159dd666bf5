/* postern: the daemon and its command-line interface. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/daemon.h"

static int main_usage(FILE *out, int status)
{
	fprintf(out,
		"usage: postern COMMAND [options]\n"
		"  serve [-c FILE]            run the daemon in the foreground\n"
		"  config check|dump [-v]     validate or print the configuration\n"
		"  sendmail [options] [rcpt]  sendmail-compatible submission (also as 'sendmail')\n"
		"  queue list|show|flush|hold|release|delete|requeue|shape ...\n"
		"                             inspect and act on the queue (postern queue help)\n"
		"  status [--json]            the running daemon: queue, store schema, rules\n"
		"  reload                     check the configuration and rules, then reload them\n"
		"  route ADDRESS [--sender S] where mail for ADDRESS goes, and which rule says so\n"
		"  alias add|rm|show|list|import ...  aliases in the store (postern alias help)\n"
		"  store migrate|version      the store's schema\n"
		"  version                    print the version\n"
		"The configuration file is -c FILE, else $POSTERN_CONFIG, else /etc/postern/postern.conf.\n");
	return status;
}

static int main_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (c != 'c')
			return main_usage(stderr, 64);
		path = optarg;
	}
	if (optind != argc)
		return main_usage(stderr, 64);
	return daemon_run(cli_config_path(path));
}

int main(int argc, char **argv)
{
	char *name = basename(argv[0]);
	if (strcmp(name, "sendmail") == 0)
		return cli_sendmail(argc, argv);
	if (argc < 2)
		return main_usage(stderr, 64);
	const char *cmd = argv[1];
	if (strcmp(cmd, "serve") == 0)
		return main_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "config") == 0)
		return cli_config(argc - 1, argv + 1);
	if (strcmp(cmd, "sendmail") == 0)
		return cli_sendmail(argc - 1, argv + 1);
	if (strcmp(cmd, "queue") == 0)
		return cli_queue(argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0)
		return cli_status(argc - 1, argv + 1);
	if (strcmp(cmd, "reload") == 0)
		return cli_reload(argc - 1, argv + 1);
	if (strcmp(cmd, "route") == 0)
		return cli_route(argc - 1, argv + 1);
	if (strcmp(cmd, "alias") == 0)
		return cli_alias(argc - 1, argv + 1);
	if (strcmp(cmd, "store") == 0)
		return cli_store(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
		return main_usage(stdout, 0);
	fprintf(stderr, "postern: unknown command '%s'\n", cmd);
	return main_usage(stderr, 64);
}
