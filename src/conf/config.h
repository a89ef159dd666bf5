#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* postern.conf: "key = value" lines, '#' comments, a line starting with white space continues
   the previous value. One defaults table (config.c) drives parsing, validation, dump and docs. */

struct config {
	char *config_file;      /* the file loaded, "" for built-in defaults */
	char *state_dir;        /* spool and state live below it */
	char *hostname;         /* SMTP banner, Received; "" in the file means gethostname() */
	char **smtp_listen;     /* NULL-terminated: "host:port", "[v6]:port", "unix:/path"; the host
				   is an IPv4 literal or a name to resolve, the port 1..65535 */
	char **lmtp_listen;     /* same forms */
	char **relay_domains;   /* NULL-terminated, lower-cased; "*.example.com" wildcards allowed */
	char **mynetworks;      /* NULL-terminated CIDRs, each validated at load and normalised to
				   "address/prefix" in inet_ntop form ("127.0.0.0/8", "::1/128") */
	int64_t message_size_limit;
	int64_t recipient_limit;
	int64_t line_length_limit;
	int64_t header_size_limit;
	int64_t smtp_max_connections;
	int64_t smtp_max_connections_per_ip;
	int64_t smtp_timeout;          /* seconds */
	int64_t smtp_error_limit;
	int64_t disk_reserve;          /* bytes */
	char *tls_cert_file;
	char *tls_key_file;
	char *log_level;        /* "debug", "info", "warn" or "error", for log_level_parse() */
	int64_t shutdown_timeout;      /* seconds */
	int64_t pickup_interval;       /* seconds */
	char *admin_socket;     /* the admin API's unix socket; "" means state_dir/api.sock */
	/* delivery */
	bool delivery_paused;
	char **relayhost;
	char *dns_servers;
	int64_t dns_timeout;
	int64_t qmgr_message_active_limit;
	int64_t delivery_process_limit;
	int64_t default_destination_concurrency_limit;
	int64_t initial_destination_concurrency;
	int64_t destination_recipient_limit;
	int64_t queue_run_delay;
	int64_t minimal_backoff_time;
	int64_t maximal_backoff_time;
	int64_t maximal_queue_lifetime;
	int64_t bounce_queue_lifetime;
	int64_t delay_warning_time;
	bool archive_undeliverable;
	char *smtp_tls_security_level;
	int64_t smtp_connect_timeout;
	int64_t smtp_helo_timeout;
	int64_t smtp_command_timeout;
	int64_t smtp_data_timeout;
	int64_t smtp_data_done_timeout;
	int64_t smtp_connection_reuse_time;
	/* routing and the store */
	char *rewrite_rules;       /* rule files (docs/routing.md); "" means none */
	bool rewrite_headers;
	char *transport_rules;
	char *transport_variables;
	char *recipient_delimiter; /* characters that start an address extension; "" for none */
	int64_t alias_max_depth;
	char *store;               /* "sqlite", "sqlite:/path" or a postgresql:// URI */
};

/* Returns a configuration holding every default. */
struct config *config_defaults(void);

/* Loads path over the defaults. Returns 0 with *conf_r set, or -1 with *errors_r set to a
   newly allocated text of one line per problem ("file:line: key: message"), caller frees;
   lines are separated by '\n', with none after the last.
   Every problem in the file is reported, not just the first. */
int config_load(const char *path, struct config **conf_r, char **errors_r);

/* Parses text (as if read from file name) over the defaults; same contract as config_load. */
int config_parse(const char *name, const char *text, size_t len, struct config **conf_r,
		 char **errors_r);

/* Writes every setting with its effective value ("key = value"), in table order; sizes and
   durations as plain numbers, lists joined by ", " and wrapped onto continuation lines.
   With verbose, each is preceded by "# help" and "# default: X; range: MIN..MAX" lines.
   The output parses back to the same configuration. */
void config_dump(const struct config *conf, FILE *out, bool verbose);

/* Writes the host name to use (the hostname setting, else the system's) into out. */
void config_hostname(const struct config *conf, char *out, size_t len);

/* Writes the error text of config_load to out, one problem per line. */
void config_print_errors(FILE *out, const char *errors);
/* Logs the error text of config_load, one log line per problem. */
void config_log_errors(const char *errors);

/* Frees *conf (NULL allowed) and sets it to NULL. */
void config_free(struct config **conf);

/* Parses yes/no, true/false, on/off or 1/0 (any case). Returns 0, or -1 when s is none. */
int config_parse_bool(const char *s, bool *value_r);

/* Parses a byte count with an optional k, M, G or T suffix (1024 multiples, any case).
   Returns 0, or -1 with *error_r set to a static message. */
int config_parse_size(const char *s, int64_t *value_r, const char **error_r);

/* Parses seconds with an optional s, m, h or d suffix. Returns 0, or -1 with *error_r set to
   a static message. */
int config_parse_duration(const char *s, int64_t *value_r, const char **error_r);

#endif
