/* "postern alias ..." and "postern store ...": the aliases and the schema, straight in the store
   named by the configuration, so they work whether the daemon runs or not (SQLite in WAL mode
   and PostgreSQL both let the daemon and the command share the database). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>

#include "cli/cli.h"
#include "conf/config.h"
#include "route/aliasfile.h"
#include "store/store.h"
#include "util/fsutil.h"

struct alias_cmd {
	const char *config;
	const char *domain, *prefix, *after;
	unsigned limit;
	bool json;
	struct store *store;
	const struct config *conf;
};

static int alias_cmd_usage(FILE *out, int status)
{
	fputs("usage: postern alias COMMAND [-c FILE] [--json]\n"
	      "  add ADDRESS TARGET...   create ADDRESS (or @domain) or replace its targets\n"
	      "  rm ADDRESS              remove an alias\n"
	      "  show ADDRESS            one alias and its targets\n"
	      "  list [--domain D] [--prefix P] [--after KEY] [--limit N]\n"
	      "                          aliases in key order, one page\n"
	      "  import FILE [--domain D]  aliases from an /etc/aliases file (names without\n"
	      "                          a domain get D, by default the host name)\n"
	      "       postern store migrate|version [-c FILE]\n"
	      "Exit status: 0 done, 1 not found or refused, 64 usage, 69 store unavailable,\n"
	      "78 configuration.\n",
	      out);
	return status;
}

static int alias_cmd_status(int rc)
{
	return rc == STORE_UNAVAILABLE ? EX_UNAVAILABLE : 1;
}

static int alias_cmd_open(struct alias_cmd *cmd, struct config **conf_r)
{
	const char *path = cli_config_path(cmd->config);
	char *errors;
	if (config_load(path, conf_r, &errors) < 0) {
		config_print_errors(stderr, errors);
		free(errors);
		return EX_CONFIG;
	}
	const char *error;
	(void)fs_mkdir_p((*conf_r)->state_dir, 0750); /* as the daemon does, for SQLite's file */
	int rc = store_open((*conf_r)->store, (*conf_r)->state_dir, &cmd->store, &error);
	if (rc < 0) {
		fprintf(stderr, "postern: store %s: %s\n", (*conf_r)->store, error);
		config_free(conf_r);
		return alias_cmd_status(rc);
	}
	return 0;
}

static json_t *alias_cmd_json(const struct store_alias *a)
{
	json_t *targets = json_array();
	for (size_t i = 0; i < a->ntargets; i++)
		json_array_append_new(targets, json_string(a->targets[i]));
	return json_pack("{s:s, s:o, s:I, s:I}", "address", a->key, "targets", targets, "created",
			 (json_int_t)a->created, "updated", (json_int_t)a->updated);
}

static void alias_cmd_print(const struct alias_cmd *cmd, const struct store_alias *a)
{
	if (cmd->json) {
		json_t *j = alias_cmd_json(a);
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
		return;
	}
	printf("%s:", a->key);
	for (size_t i = 0; i < a->ntargets; i++)
		printf("%s %s", i ? "," : "", a->targets[i]);
	putchar('\n');
}

static int alias_cmd_add(struct alias_cmd *cmd, int argc, char **argv)
{
	if (argc < 2)
		return alias_cmd_usage(stderr, EX_USAGE);
	const char *error;
	int rc = store_alias_put(cmd->store, argv[0], (const char *const *)argv + 1, (size_t)argc - 1,
				 &error);
	if (rc < 0) {
		fprintf(stderr, "postern alias add: %s: %s\n", argv[0], error);
		return alias_cmd_status(rc);
	}
	return 0;
}

static int alias_cmd_rm(struct alias_cmd *cmd, int argc, char **argv)
{
	if (argc != 1)
		return alias_cmd_usage(stderr, EX_USAGE);
	const char *error;
	int rc = store_alias_delete(cmd->store, argv[0], &error);
	if (rc <= 0)
		fprintf(stderr, "postern alias rm: %s: %s\n", argv[0], rc == 0 ? "no such alias" : error);
	return rc < 0 ? alias_cmd_status(rc) : rc == 0 ? 1 : 0;
}

static int alias_cmd_show(struct alias_cmd *cmd, int argc, char **argv)
{
	if (argc != 1)
		return alias_cmd_usage(stderr, EX_USAGE);
	struct store_alias *a = NULL;
	const char *error;
	int rc = store_alias_get(cmd->store, argv[0], &a, &error);
	if (rc <= 0) {
		fprintf(stderr, "postern alias show: %s: %s\n", argv[0], rc == 0 ? "no such alias" : error);
		return rc < 0 ? alias_cmd_status(rc) : 1;
	}
	alias_cmd_print(cmd, a);
	store_alias_free(&a);
	return 0;
}

static int alias_cmd_list(struct alias_cmd *cmd, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return alias_cmd_usage(stderr, EX_USAGE);
	struct store_alias_query q = { .after = cmd->after, .prefix = cmd->prefix,
				       .domain = cmd->domain, .limit = cmd->limit };
	struct store_alias_list *list = NULL;
	const char *error;
	int rc = store_alias_list(cmd->store, &q, &list, &error);
	if (rc < 0) {
		fprintf(stderr, "postern alias list: %s\n", error);
		return alias_cmd_status(rc);
	}
	for (size_t i = 0; i < list->n; i++)
		alias_cmd_print(cmd, &list->items[i]);
	if (list->more && !cmd->json)
		fprintf(stderr, "(more after %s: --after %s)\n", list->items[list->n - 1].key,
			list->items[list->n - 1].key);
	store_alias_list_free(&list);
	return 0;
}

static int alias_cmd_options(int argc, char **argv, struct alias_cmd *cmd)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "domain", required_argument, NULL, 'd' },
		{ "prefix", required_argument, NULL, 'p' }, { "after", required_argument, NULL, 'a' },
		{ "limit", required_argument, NULL, 'n' },  { "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:d:p:a:n:j", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cmd->config = optarg; break;
		case 'd': cmd->domain = optarg; break;
		case 'p': cmd->prefix = optarg; break;
		case 'a': cmd->after = optarg; break;
		case 'n': cmd->limit = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'j': cmd->json = true; break;
		default: return -1;
		}
	}
	return 0;
}

/* Problems are listed and their entries skipped; the good entries are imported (an entry
   is all or nothing). The exit status is 1 when anything was skipped. */
static int alias_cmd_import(struct alias_cmd *cmd, int argc, char **argv)
{
	if (argc != 1)
		return alias_cmd_usage(stderr, EX_USAGE);
	char host[256];
	config_hostname(cmd->conf, host, sizeof(host));
	struct aliasfile *f = NULL;
	int bad = aliasfile_load(argv[0], cmd->domain != NULL ? cmd->domain : host, &f);
	for (size_t i = 0; i < f->nerrors; i++)
		fprintf(stderr, "%s\n", f->errors[i]);
	size_t done = 0;
	int rc = 0;
	for (size_t i = 0; i < f->count && rc != STORE_UNAVAILABLE; i++) {
		const struct aliasfile_entry *e = &f->entries[i];
		const char *error;
		rc = store_alias_put(cmd->store, e->key, (const char *const *)e->targets.items,
				     e->targets.count, &error);
		if (rc < 0)
			fprintf(stderr, "%s:%u: %s: %s\n", argv[0], e->line, e->key, error);
		else
			done++;
		bad |= rc < 0;
	}
	printf("%zu aliases imported, %zu problems\n", done, f->nerrors + (f->count - done));
	aliasfile_free(&f);
	return rc == STORE_UNAVAILABLE ? EX_UNAVAILABLE : bad ? 1 : 0;
}

typedef int alias_verb_fn(struct alias_cmd *cmd, int argc, char **argv);

static alias_verb_fn *alias_cmd_verb(const char *name)
{
	static const struct {
		const char *name;
		alias_verb_fn *fn;
	} verbs[] = {
		{ "add", alias_cmd_add },   { "rm", alias_cmd_rm },	     { "show", alias_cmd_show },
		{ "list", alias_cmd_list }, { "import", alias_cmd_import },
	};
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(verbs[i].name, name) == 0)
			return verbs[i].fn;
	}
	return NULL;
}

int cli_alias(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "help") == 0)
		return alias_cmd_usage(argc < 2 ? stderr : stdout, argc < 2 ? EX_USAGE : 0);
	alias_verb_fn *fn = alias_cmd_verb(argv[1]);
	struct alias_cmd cmd = { 0 };
	optind = 1;
	if (fn == NULL || alias_cmd_options(argc - 1, argv + 1, &cmd) < 0)
		return alias_cmd_usage(stderr, EX_USAGE);
	struct config *conf;
	int rc = alias_cmd_open(&cmd, &conf);
	if (rc != 0)
		return rc;
	cmd.conf = conf;
	rc = fn(&cmd, argc - 1 - optind, argv + 1 + optind);
	store_free(&cmd.store);
	config_free(&conf);
	return rc;
}

/* "postern store migrate": applies what the schema lacks (store_open already does; this says
   so). "postern store version": the schema version of the database and of this program. */
int cli_store(int argc, char **argv)
{
	struct alias_cmd cmd = { 0 };
	optind = 1;
	if (argc < 2 || alias_cmd_options(argc - 1, argv + 1, &cmd) < 0 || optind != argc - 1 ||
	    (strcmp(argv[1], "migrate") != 0 && strcmp(argv[1], "version") != 0))
		return alias_cmd_usage(stderr, EX_USAGE);
	struct config *conf;
	int rc = alias_cmd_open(&cmd, &conf);
	if (rc != 0)
		return rc;
	const char *error = "";
	rc = strcmp(argv[1], "migrate") == 0 ? store_migrate(cmd.store, &error) : 0;
	int version = store_schema_version(cmd.store);
	if (rc < 0 || version < 0) {
		fprintf(stderr, "postern store %s: %s\n", argv[1], rc < 0 ? error : "cannot read the version");
		rc = alias_cmd_status(rc < 0 ? rc : version);
	} else {
		printf("store %s: schema version %d (this program: %d)\n", store_backend(cmd.store), version,
		       store_schema_latest());
	}
	store_free(&cmd.store);
	config_free(&conf);
	return rc;
}
