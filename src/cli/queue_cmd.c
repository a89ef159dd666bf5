/* "postern queue": the queue through the daemon's admin API (docs/api.md), over its unix
   socket (api_client.h). The command never reads the spool itself:
   the daemon owns it. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "util/buf.h"

#define EX_USAGE 64

struct queue_cmd {
	const char *config;
	const char *queue, *sender, *recipient, *min_age, *max_age;
	bool json;
	char socket[108];
};

static int queue_cmd_usage(FILE *out, int status)
{
	fprintf(out,
		"usage: postern queue COMMAND [-c FILE] [--json]\n"
		"  list [--queue Q] [--sender S] [--recipient R] [--min-age SECS] [--max-age SECS]\n"
		"                   messages like mailq; Q: incoming, active, deferred, hold,\n"
		"                   archive or corrupt (default: the first four)\n"
		"  show ID          one message: envelope, recipients, last errors, header\n"
		"  flush [ID]       deliver deferred mail (or one message) now\n"
		"  hold ID          put a message on hold (from incoming or deferred)\n"
		"  release ID       deliver a held message again\n"
		"  delete ID        remove a message (not while it is being delivered)\n"
		"  requeue ID       move a deferred or held message back to incoming\n"
		"  shape [--queue Q]  recipients by domain and age (default: deferred)\n"
		"Exit status: 0 done, 1 the daemon refused (its message is printed), 69 the daemon\n"
		"is not running, 64 usage, 78 configuration.\n");
	return status;
}

static void queue_cmd_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	putchar('\n');
}

/* Appends "&name=value", value URI-encoded, when value is set. */
static void queue_cmd_param(struct buf *b, const char *name, const char *value)
{
	if (value == NULL)
		return;
	char *enc = evhttp_uriencode(value, -1, 0);
	buf_printf(b, "%c%s=%s", strchr(buf_str(b), '?') ? '&' : '?', name, enc != NULL ? enc : "");
	free(enc);
}

static const char *queue_cmd_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "";
}

static long long queue_cmd_int(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* "2024-05-01T12:00:00Z" as "2024-05-01 12:00:00" (UTC, as the API gives it). */
static const char *queue_cmd_time(const char *iso, char *out, size_t len)
{
	snprintf(out, len, "%.10s %.8s", iso, strlen(iso) > 11 ? iso + 11 : "");
	return out;
}

/* The last error of recipient index, or NULL. */
static const json_t *queue_cmd_last_error(const json_t *m, size_t index)
{
	size_t i;
	const json_t *e;
	json_array_foreach(json_object_get(m, "last_errors"), i, e) {
		if ((size_t)queue_cmd_int(e, "index") == index)
			return e;
	}
	return NULL;
}

#define QUEUE_CMD_INDENT 47 /* where sender and recipients start in a listing */

static void queue_cmd_print_entry(const json_t *m)
{
	const char *queue = queue_cmd_str(m, "queue");
	char mark = strcmp(queue, "active") == 0 ? '*' : strcmp(queue, "hold") == 0 ? '!' : ' ';
	char when[32];
	if (json_object_get(m, "error") != NULL) {
		printf("%-15s%c %8lld %-19s  (unreadable: %s)\n\n", queue_cmd_str(m, "id"), mark,
		       queue_cmd_int(m, "size"), "", queue_cmd_str(m, "error"));
		return;
	}
	const char *sender = queue_cmd_str(m, "sender");
	printf("%-15s%c %8lld %-19s  %s\n", queue_cmd_str(m, "id"), mark, queue_cmd_int(m, "size"),
	       queue_cmd_time(queue_cmd_str(m, "arrival"), when, sizeof(when)), sender[0] ? sender : "<>");
	size_t i;
	const json_t *r;
	json_array_foreach(json_object_get(m, "recipients"), i, r) {
		if (strcmp(queue_cmd_str(r, "state"), "queued") != 0)
			continue; /* as mailq: only what is still to deliver */
		const json_t *e = queue_cmd_last_error(m, i);
		if (e != NULL)
			printf("%*s(%s %s)\n", QUEUE_CMD_INDENT, "", queue_cmd_str(e, "dsn"),
			       queue_cmd_str(e, "text"));
		printf("%*s%s\n", QUEUE_CMD_INDENT, "", queue_cmd_str(r, "address"));
	}
	putchar('\n');
}

static void queue_cmd_print_list(const json_t *body)
{
	const json_t *msgs = json_object_get(body, "messages");
	long long total = queue_cmd_int(body, "total"), bytes = 0;
	if (total == 0) {
		printf("Mail queue is empty\n");
		return;
	}
	printf("%-16s %8s %-19s  %s\n", "-Queue ID-", "--Size--", "----Arrival Time---",
	       "-Sender/Recipient-------");
	size_t i;
	const json_t *m;
	json_array_foreach(msgs, i, m) {
		queue_cmd_print_entry(m);
		bytes += queue_cmd_int(m, "size");
	}
	printf("-- %lld Kbytes in %zu message%s", (bytes + 1023) / 1024, json_array_size(msgs),
	       json_array_size(msgs) == 1 ? "" : "s");
	if ((long long)json_array_size(msgs) < total)
		printf(" (of %lld)", total);
	printf(".\n");
}

static void queue_cmd_print_show(const json_t *m)
{
	char when[32];
	const json_t *env = json_object_get(m, "envelope");
	printf("id:        %s\nqueue:     %s\n", queue_cmd_str(m, "id"), queue_cmd_str(m, "queue"));
	if (json_object_get(m, "error") != NULL) {
		printf("error:     %s\nsize:      %lld\n", queue_cmd_str(m, "error"), queue_cmd_int(m, "size"));
		return;
	}
	printf("arrival:   %s UTC (%llds ago)\n", queue_cmd_time(queue_cmd_str(m, "arrival"), when, sizeof(when)),
	       queue_cmd_int(m, "age"));
	printf("sender:    <%s>\nsize:      %lld\n", queue_cmd_str(m, "sender"), queue_cmd_int(m, "size"));
	printf("origin:    %s %s client=%s helo=%s\n", queue_cmd_str(env, "origin"), queue_cmd_str(env, "proto"),
	       queue_cmd_str(env, "client_addr"), queue_cmd_str(env, "helo"));
	printf("recipients:\n");
	size_t i;
	const json_t *r, *h;
	json_array_foreach(json_object_get(m, "recipients"), i, r) {
		printf("  %-7s <%s>\n", queue_cmd_str(r, "state"), queue_cmd_str(r, "address"));
		const json_t *e = queue_cmd_last_error(m, i);
		if (e != NULL)
			printf("          last error %s: %lld %s %s (%s)\n",
			       queue_cmd_time(queue_cmd_str(e, "time"), when, sizeof(when)), queue_cmd_int(e, "code"),
			       queue_cmd_str(e, "dsn"), queue_cmd_str(e, "text"), queue_cmd_str(e, "remote"));
	}
	printf("headers:\n");
	json_array_foreach(json_object_get(m, "headers"), i, h)
		printf("  %s: %s\n", queue_cmd_str(h, "name"), queue_cmd_str(h, "value"));
	if (json_is_true(json_object_get(m, "headers_truncated")))
		printf("  ... (longer than 64 KiB)\n");
}

static void queue_cmd_print_row(const char *name, long long total, const json_t *counts)
{
	size_t i;
	const json_t *c;
	printf("%30s %6lld", name, total);
	json_array_foreach(counts, i, c)
		printf(" %7lld", (long long)json_integer_value(c));
	putchar('\n');
}

static void queue_cmd_print_shape(const json_t *body)
{
	size_t i;
	const json_t *b, *d;
	printf("%30s %6s", "", "T");
	json_array_foreach(json_object_get(body, "buckets"), i, b)
		printf(" %7s", json_string_value(b));
	putchar('\n');
	queue_cmd_print_row("TOTAL", queue_cmd_int(body, "total"), json_object_get(body, "counts"));
	json_array_foreach(json_object_get(body, "domains"), i, d)
		queue_cmd_print_row(queue_cmd_str(d, "domain"), queue_cmd_int(d, "total"),
				    json_object_get(d, "counts"));
}

/* Each subcommand: how many IDs it takes, its request, and what it prints when done. */
struct queue_cmd_verb {
	const char *name;
	int min_ids, max_ids;
	const char *method;
	const char *suffix; /* after /v1/queue/ID, or after /v1/queue without an ID */
	const char *done;   /* printed after "ID: " for actions; NULL for reports */
};

static const struct queue_cmd_verb queue_cmd_verbs[] = {
	{ "list", 0, 0, "GET", "", NULL },
	{ "show", 1, 1, "GET", "", NULL },
	{ "shape", 0, 0, "GET", "/shape", NULL },
	{ "flush", 0, 1, "POST", "/flush", "flushed" },
	{ "hold", 1, 1, "POST", "/hold", "placed on hold" },
	{ "release", 1, 1, "POST", "/release", "released" },
	{ "requeue", 1, 1, "POST", "/requeue", "requeued" },
	{ "delete", 1, 1, "DELETE", "", "deleted" },
};

static int queue_cmd_options(int argc, char **argv, struct queue_cmd *cmd)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "queue", required_argument, NULL, 'q' },
		{ "sender", required_argument, NULL, 's' }, { "recipient", required_argument, NULL, 'r' },
		{ "min-age", required_argument, NULL, 'm' }, { "max-age", required_argument, NULL, 'M' },
		{ "json", no_argument, NULL, 'j' },	     { NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:q:s:r:j", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cmd->config = optarg; break;
		case 'q': cmd->queue = optarg; break;
		case 's': cmd->sender = optarg; break;
		case 'r': cmd->recipient = optarg; break;
		case 'm': cmd->min_age = optarg; break;
		case 'M': cmd->max_age = optarg; break;
		case 'j': cmd->json = true; break;
		default: return -1;
		}
	}
	return 0;
}

/* Filters belong to list, --queue to list and shape; elsewhere they would be ignored. */
static bool queue_cmd_options_fit(const struct queue_cmd *cmd, const struct queue_cmd_verb *v)
{
	bool list = strcmp(v->name, "list") == 0;
	if (!list && (cmd->sender || cmd->recipient || cmd->min_age || cmd->max_age))
		return false;
	return cmd->queue == NULL || list || strcmp(v->name, "shape") == 0;
}

static void queue_cmd_target(const struct queue_cmd *cmd, const struct queue_cmd_verb *v, const char *id,
			     struct buf *b)
{
	buf_puts(b, "/v1/queue");
	if (id != NULL) {
		char *enc = evhttp_uriencode(id, -1, 0);
		buf_printf(b, "/%s", enc != NULL ? enc : "");
		free(enc);
	}
	buf_puts(b, v->suffix);
	queue_cmd_param(b, "queue", cmd->queue);
	queue_cmd_param(b, "sender", cmd->sender);
	queue_cmd_param(b, "recipient", cmd->recipient);
	queue_cmd_param(b, "min_age", cmd->min_age);
	queue_cmd_param(b, "max_age", cmd->max_age);
}

static void queue_cmd_output(const struct queue_cmd *cmd, const struct queue_cmd_verb *v, const char *id,
			     const json_t *body)
{
	if (cmd->json)
		queue_cmd_print_json(body);
	else if (strcmp(v->name, "list") == 0)
		queue_cmd_print_list(body);
	else if (strcmp(v->name, "show") == 0)
		queue_cmd_print_show(body);
	else if (strcmp(v->name, "shape") == 0)
		queue_cmd_print_shape(body);
	else
		printf("%s: %s%s\n", id != NULL ? id : "deferred mail", v->done,
		       json_is_true(json_object_get(body, "delivery_paused")) && strcmp(v->name, "flush") == 0
			       ? " (delivery is paused: it waits until delivery resumes)"
			       : "");
}

static int queue_cmd_run(struct queue_cmd *cmd, const struct queue_cmd_verb *v, const char *id)
{
	int rc = api_socket(cmd->config, "postern queue", cmd->socket, sizeof(cmd->socket));
	if (rc != 0)
		return rc;
	struct buf target = { 0 };
	queue_cmd_target(cmd, v, id, &target);
	struct api_reply reply = { 0 };
	rc = api_call(cmd->socket, "postern queue", v->method, buf_str(&target), NULL, &reply);
	buf_free(&target);
	if (rc != 0)
		return rc;
	if (reply.status >= 300)
		rc = api_error("postern queue", &reply);
	else
		queue_cmd_output(cmd, v, id, reply.body);
	json_decref(reply.body);
	return rc;
}

int cli_queue(int argc, char **argv)
{
	struct queue_cmd cmd = { 0 };
	if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0))
		return queue_cmd_usage(stdout, 0);
	if (queue_cmd_options(argc, argv, &cmd) < 0 || optind >= argc)
		return queue_cmd_usage(stderr, EX_USAGE);
	const char *name = argv[optind];
	int nids = argc - optind - 1;
	for (size_t i = 0; i < sizeof(queue_cmd_verbs) / sizeof(queue_cmd_verbs[0]); i++) {
		const struct queue_cmd_verb *v = &queue_cmd_verbs[i];
		if (strcmp(v->name, name) != 0)
			continue;
		if (nids < v->min_ids || nids > v->max_ids || !queue_cmd_options_fit(&cmd, v))
			return queue_cmd_usage(stderr, EX_USAGE);
		return queue_cmd_run(&cmd, v, nids > 0 ? argv[optind + 1] : NULL);
	}
	fprintf(stderr, "postern queue: unknown command '%s'\n", name);
	return queue_cmd_usage(stderr, EX_USAGE);
}
