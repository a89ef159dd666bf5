#include "conf/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/protolimits.h"
#include "util/xalloc.h"

#define CONFIG_LINE_MAX 65536              /* longest physical line, line ending excluded */
#define CONFIG_FILE_MAX (16 * 1024 * 1024) /* a config file is text; more is a mistake */
#define CONFIG_ERRORS_MAX 100              /* a binary file given by mistake must not flood */
#define CONFIG_PATH_MAX 4095               /* PATH_MAX less its NUL */
#define CONFIG_UNIX_PATH_MAX 107           /* sun_path less its NUL, on Linux */
#define CONFIG_DUMP_WIDTH 78               /* dump wraps long lists onto continuation lines */
#define CONFIG_BLANK " \t"
#define CONFIG_LIST_SEPARATORS ", \t"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)

enum config_type {
	CONFIG_TYPE_STRING,
	CONFIG_TYPE_PATH,
	CONFIG_TYPE_INT,
	CONFIG_TYPE_SIZE,
	CONFIG_TYPE_DURATION,
	CONFIG_TYPE_BOOL,
	CONFIG_TYPE_LIST,
	CONFIG_TYPE_CIDR_LIST,
	CONFIG_TYPE_DOMAIN_LIST,
	CONFIG_TYPE_LISTEN_LIST,
	CONFIG_TYPE_LOG_LEVEL,
	CONFIG_TYPE_TLS_LEVEL,
};

/* How a type's value is kept in struct config. */
enum config_storage {
	CONFIG_STORAGE_STRING, /* char * */
	CONFIG_STORAGE_LIST,   /* char **, NULL-terminated */
	CONFIG_STORAGE_NUMBER, /* int64_t */
	CONFIG_STORAGE_BOOL,   /* bool */
};

struct config_setting {
	const char *name;
	enum config_type type;
	size_t offset;            /* of the field in struct config */
	const char *default_text; /* parsed like a value from the file */
	int64_t min, max;         /* numbers: the range; strings and paths: the length range */
	const char *help;         /* one line for config_dump and docs/configuration.md */
};

union config_value {
	char *str;
	char **list;
	int64_t num;
	bool flag;
};

struct config_unit {
	char letter;
	int64_t factor;
};

/* The suffixes a number type accepts, largest first so that formatting picks the shortest
   exact form; a zero letter ends the list. */
struct config_units {
	struct config_unit unit[5];
	bool nocase;
	const char *bad_suffix; /* the error for anything else after the digits */
};

#define FIELD(f) offsetof(struct config, f)

/* The one table: parsing, validation, dump and docs/configuration.md all follow it. */
static const struct config_setting config_table[] = {
	{ "state_dir", CONFIG_TYPE_PATH, FIELD(state_dir), "/var/lib/postern", 1, CONFIG_PATH_MAX,
	  "Directory below which the spool (queue) and the state live." },
	{ "hostname", CONFIG_TYPE_STRING, FIELD(hostname), "", 0, PROTO_DOMAIN_MAX,
	  "Name in the SMTP banner and Received headers; empty means the system host name." },
	{ "smtp_listen", CONFIG_TYPE_LISTEN_LIST, FIELD(smtp_listen), "127.0.0.1:2525", 0, 0,
	  "SMTP listeners, host:port or [IPv6]:port; empty means none." },
	{ "lmtp_listen", CONFIG_TYPE_LISTEN_LIST, FIELD(lmtp_listen), "127.0.0.1:2424", 0, 0,
	  "LMTP listeners, host:port, [IPv6]:port or unix:/path; empty means none." },
	{ "relay_domains", CONFIG_TYPE_DOMAIN_LIST, FIELD(relay_domains), "", 0, 0,
	  "Domains accepted from any client: example.com or *.example.com." },
	{ "mynetworks", CONFIG_TYPE_CIDR_LIST, FIELD(mynetworks), "127.0.0.0/8, [::1]/128", 0, 0,
	  "Client networks (CIDR or address) that may relay to any domain." },
	{ "message_size_limit", CONFIG_TYPE_SIZE, FIELD(message_size_limit), "25M", KIB, 2 * GIB,
	  "Largest message accepted, in bytes." },
	{ "recipient_limit", CONFIG_TYPE_INT, FIELD(recipient_limit), "1000", 1, 100000,
	  "Most recipients accepted for one message." },
	{ "line_length_limit", CONFIG_TYPE_INT, FIELD(line_length_limit), "1000", 1000, 1048576,
	  "Longest text line accepted in DATA, CRLF included, in bytes." },
	{ "header_size_limit", CONFIG_TYPE_SIZE, FIELD(header_size_limit), "100k", KIB, 16 * MIB,
	  "Largest header section of a message, in bytes." },
	{ "smtp_max_connections", CONFIG_TYPE_INT, FIELD(smtp_max_connections), "500", 1, 100000,
	  "Most SMTP and LMTP sessions open at once." },
	{ "smtp_max_connections_per_ip", CONFIG_TYPE_INT, FIELD(smtp_max_connections_per_ip), "50",
	  1, 100000, "Most SMTP and LMTP sessions open at once from one client IP address." },
	{ "smtp_timeout", CONFIG_TYPE_DURATION, FIELD(smtp_timeout), "300s", 1, 3600,
	  "Idle time allowed between client commands and data." },
	{ "smtp_error_limit", CONFIG_TYPE_INT, FIELD(smtp_error_limit), "10", 1, 1000,
	  "Errors a session may make before it is disconnected." },
	{ "disk_reserve", CONFIG_TYPE_SIZE, FIELD(disk_reserve), "100M", 0, TIB,
	  "Free space kept in state_dir: below it new mail is refused with 452 4.3.1." },
	{ "tls_cert_file", CONFIG_TYPE_PATH, FIELD(tls_cert_file), "", 0, CONFIG_PATH_MAX,
	  "PEM certificate chain; STARTTLS is offered when it and tls_key_file are set." },
	{ "tls_key_file", CONFIG_TYPE_PATH, FIELD(tls_key_file), "", 0, CONFIG_PATH_MAX,
	  "PEM private key of tls_cert_file." },
	{ "log_level", CONFIG_TYPE_LOG_LEVEL, FIELD(log_level), "info", 0, 0,
	  "Lowest level logged: debug, info, warn or error." },
	{ "shutdown_timeout", CONFIG_TYPE_DURATION, FIELD(shutdown_timeout), "30s", 0, 3600,
	  "How long SIGTERM waits for sessions to finish." },
	{ "pickup_interval", CONFIG_TYPE_DURATION, FIELD(pickup_interval), "1s", 1, 3600,
	  "How often maildrop/ is scanned for sendmail submissions." },
	{ "admin_socket", CONFIG_TYPE_PATH, FIELD(admin_socket), "", 0, CONFIG_UNIX_PATH_MAX,
	  "Unix socket of the admin HTTP API, used by postern queue; empty means state_dir/api.sock." },
	{ "delivery_paused", CONFIG_TYPE_BOOL, FIELD(delivery_paused), "no", 0, 0,
	  "Accept mail but deliver none: it waits in incoming/ until this is turned off (and reloaded)." },
	{ "relayhost", CONFIG_TYPE_LIST, FIELD(relayhost), "", 0, 0,
	  "Next hops for all outgoing mail, used in turn: [host]:port (no MX lookup), host (its MX), or lmtp:[host]:port and lmtp:unix:/path; empty means MX delivery." },
	{ "dns_servers", CONFIG_TYPE_STRING, FIELD(dns_servers), "", 0, 1000,
	  "DNS servers for MX and address lookups, comma-separated ip or ip:port; empty means /etc/resolv.conf." },
	{ "dns_timeout", CONFIG_TYPE_DURATION, FIELD(dns_timeout), "5s", 1, 60,
	  "Time allowed for one DNS query attempt; a silent server costs about three times this." },
	{ "qmgr_message_active_limit", CONFIG_TYPE_INT, FIELD(qmgr_message_active_limit), "20000", 1, 1000000,
	  "Most messages the queue manager keeps in memory at once; the rest wait on disk." },
	{ "delivery_process_limit", CONFIG_TYPE_INT, FIELD(delivery_process_limit), "100", 1, 10000,
	  "Most deliveries in progress at once." },
	{ "default_destination_concurrency_limit", CONFIG_TYPE_INT, FIELD(default_destination_concurrency_limit), "20", 1, 1000,
	  "Most deliveries in progress at once to one next hop." },
	{ "initial_destination_concurrency", CONFIG_TYPE_INT, FIELD(initial_destination_concurrency), "5", 1, 1000,
	  "Deliveries at once to a next hop before it has proven itself (slow start)." },
	{ "destination_recipient_limit", CONFIG_TYPE_INT, FIELD(destination_recipient_limit), "50", 1, 100000,
	  "Most recipients of one message sent in one delivery." },
	{ "queue_run_delay", CONFIG_TYPE_DURATION, FIELD(queue_run_delay), "300s", 1, 86400,
	  "How often deferred/ is scanned for mail due for another attempt." },
	{ "minimal_backoff_time", CONFIG_TYPE_DURATION, FIELD(minimal_backoff_time), "300s", 1, 86400,
	  "Shortest wait before a deferred message is tried again." },
	{ "maximal_backoff_time", CONFIG_TYPE_DURATION, FIELD(maximal_backoff_time), "4000s", 1, 604800,
	  "Longest wait before a deferred message is tried again." },
	{ "maximal_queue_lifetime", CONFIG_TYPE_DURATION, FIELD(maximal_queue_lifetime), "5d", 1, 8640000,
	  "How long a message is retried before it is returned to its sender." },
	{ "bounce_queue_lifetime", CONFIG_TYPE_DURATION, FIELD(bounce_queue_lifetime), "5d", 1, 8640000,
	  "How long mail from the null sender (reports) is retried before it is dropped." },
	{ "delay_warning_time", CONFIG_TYPE_DURATION, FIELD(delay_warning_time), "0", 0, 8640000,
	  "After this long in the queue the sender is told once that delivery is delayed; 0 means never." },
	{ "archive_undeliverable", CONFIG_TYPE_BOOL, FIELD(archive_undeliverable), "no", 0, 0,
	  "Keep messages that failed for good in archive/ instead of removing them." },
	{ "smtp_tls_security_level", CONFIG_TYPE_TLS_LEVEL, FIELD(smtp_tls_security_level), "may", 0, 0,
	  "STARTTLS when sending: none, may (when offered) or encrypt (required)." },
	{ "smtp_connect_timeout", CONFIG_TYPE_DURATION, FIELD(smtp_connect_timeout), "30s", 1, 3600,
	  "Time allowed to connect to a next hop." },
	{ "smtp_helo_timeout", CONFIG_TYPE_DURATION, FIELD(smtp_helo_timeout), "300s", 1, 3600,
	  "Time allowed for a next hop's greeting and its reply to EHLO." },
	{ "smtp_command_timeout", CONFIG_TYPE_DURATION, FIELD(smtp_command_timeout), "300s", 1, 3600,
	  "Time allowed for a next hop's reply to MAIL, RCPT and other commands." },
	{ "smtp_data_timeout", CONFIG_TYPE_DURATION, FIELD(smtp_data_timeout), "180s", 1, 3600,
	  "Time allowed for a next hop to take more of the message while it is sent." },
	{ "smtp_data_done_timeout", CONFIG_TYPE_DURATION, FIELD(smtp_data_done_timeout), "600s", 1, 3600,
	  "Time allowed for a next hop's reply to the end of the message." },
	{ "smtp_connection_reuse_time", CONFIG_TYPE_DURATION, FIELD(smtp_connection_reuse_time), "300s", 0, 3600,
	  "How long an idle connection is kept for more mail to the same next hop." },
	{ "rewrite_rules", CONFIG_TYPE_PATH, FIELD(rewrite_rules), "", 0, CONFIG_PATH_MAX,
	  "Rewrite rules (direction, old domain, new domain) applied to envelope addresses first; empty means none. See routing.md." },
	{ "rewrite_headers", CONFIG_TYPE_BOOL, FIELD(rewrite_headers), "no", 0, 0,
	  "Rewrite the addresses in From, To, Cc, Reply-To and Sender headers as well as the envelope." },
	{ "transport_rules", CONFIG_TYPE_PATH, FIELD(transport_rules), "", 0, CONFIG_PATH_MAX,
	  "Transport policy: ordered pattern and next-hop rules, first match wins; empty means relayhost or MX for all. See routing.md." },
	{ "transport_variables", CONFIG_TYPE_PATH, FIELD(transport_variables), "", 0, CONFIG_PATH_MAX,
	  "Variables file (name value) whose $name may be used in the rule files; empty means none." },
	{ "recipient_delimiter", CONFIG_TYPE_STRING, FIELD(recipient_delimiter), "+", 0, 8,
	  "Characters that start an address extension (user+ext@domain); empty means none." },
	{ "alias_max_depth", CONFIG_TYPE_INT, FIELD(alias_max_depth), "10", 1, 100,
	  "Most levels of aliases expanded for one recipient before it bounces with 5.4.6." },
	{ "store", CONFIG_TYPE_STRING, FIELD(store), "sqlite", 1, 4096,
	  "Where aliases and robot state are kept: sqlite (state_dir/postern.db), sqlite:/path, or a postgresql:// URI shared by several nodes. See store.md." },
};

#define CONFIG_NSETTINGS (sizeof(config_table) / sizeof(config_table[0]))

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == CONFIG_UNIX_PATH_MAX + 1,
	       "unix socket paths are checked against the Linux sun_path size");

static const struct config_units config_size_units = {
	{ { 'T', TIB }, { 'G', GIB }, { 'M', MIB }, { 'k', KIB } },
	true, "bad size suffix, use k, M, G or T",
};
static const struct config_units config_duration_units = {
	{ { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } },
	false, "bad time suffix, use s, m, h or d",
};
static const struct config_units config_no_units = { { { '\0', 0 } }, false, "not a number" };

/* Indexed by enum log_level; stored lower-cased whatever the file says. */
static const char *const config_log_levels[] = { "debug", "info", "warn", "error" };

/* One parse: where we are, what has been seen, and the problems found so far. */
struct config_parser {
	struct config *conf;
	const char *file;
	unsigned line;                       /* of the setting being applied; 0 for none */
	struct buf errors;
	unsigned nerrors;
	unsigned first_line[CONFIG_NSETTINGS]; /* where each setting was set; 0 for not yet */
	struct buf logical;                  /* a setting gathered from its continuation lines */
	unsigned logical_line;               /* its first line; 0 when none is open */
	bool logical_bad;                    /* already reported: skip it and its continuations */
};

static void config_error(struct config_parser *p, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void config_error(struct config_parser *p, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (++p->nerrors > CONFIG_ERRORS_MAX)
		return;
	if (p->errors.len > 0)
		buf_putc(&p->errors, '\n');
	buf_puts(&p->errors, p->file);
	if (p->line > 0)
		buf_printf(&p->errors, ":%u", p->line);
	if (key != NULL)
		buf_printf(&p->errors, ": %.100s", key);
	buf_puts(&p->errors, ": ");
	va_start(ap, fmt);
	buf_vprintf(&p->errors, fmt, ap);
	va_end(ap);
}

static enum config_storage config_storage_of(enum config_type type)
{
	switch (type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_PATH:
	case CONFIG_TYPE_LOG_LEVEL:
	case CONFIG_TYPE_TLS_LEVEL:
		return CONFIG_STORAGE_STRING;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_SIZE:
	case CONFIG_TYPE_DURATION:
		return CONFIG_STORAGE_NUMBER;
	case CONFIG_TYPE_BOOL:
		return CONFIG_STORAGE_BOOL;
	case CONFIG_TYPE_LIST:
	case CONFIG_TYPE_CIDR_LIST:
	case CONFIG_TYPE_DOMAIN_LIST:
	case CONFIG_TYPE_LISTEN_LIST:
		return CONFIG_STORAGE_LIST;
	}
	log_panic("config: unknown setting type %d", (int)type);
}

static const struct config_units *config_units_of(enum config_type type)
{
	if (type == CONFIG_TYPE_SIZE)
		return &config_size_units;
	if (type == CONFIG_TYPE_DURATION)
		return &config_duration_units;
	return &config_no_units;
}

static const struct config_setting *config_setting_find(const char *name)
{
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		if (strcmp(config_table[i].name, name) == 0)
			return &config_table[i];
	}
	return NULL;
}

static void config_list_free(char ***list)
{
	if (*list == NULL)
		return;
	for (char **item = *list; *item != NULL; item++)
		free(*item);
	xfree(list);
}

static void config_value_free(enum config_type type, union config_value *v)
{
	switch (config_storage_of(type)) {
	case CONFIG_STORAGE_STRING:
		xfree(&v->str);
		break;
	case CONFIG_STORAGE_LIST:
		config_list_free(&v->list);
		break;
	case CONFIG_STORAGE_NUMBER:
	case CONFIG_STORAGE_BOOL:
		break;
	}
}

static void config_field_free(struct config *conf, const struct config_setting *s)
{
	void *field = (char *)conf + s->offset;

	switch (config_storage_of(s->type)) {
	case CONFIG_STORAGE_STRING:
		xfree((char **)field);
		break;
	case CONFIG_STORAGE_LIST:
		config_list_free((char ***)field);
		break;
	case CONFIG_STORAGE_NUMBER:
	case CONFIG_STORAGE_BOOL:
		break;
	}
}

/* Moves v into conf's field, freeing what the field held. */
static void config_value_store(struct config *conf, const struct config_setting *s,
			       union config_value *v)
{
	void *field = (char *)conf + s->offset;

	config_field_free(conf, s);
	switch (config_storage_of(s->type)) {
	case CONFIG_STORAGE_STRING:
		*(char **)field = v->str;
		break;
	case CONFIG_STORAGE_LIST:
		*(char ***)field = v->list;
		break;
	case CONFIG_STORAGE_NUMBER:
		*(int64_t *)field = v->num;
		break;
	case CONFIG_STORAGE_BOOL:
		*(bool *)field = v->flag;
		break;
	}
}

/* ---- numbers ---- */

static int64_t config_unit_factor(const struct config_units *units, char c)
{
	for (const struct config_unit *u = units->unit; u->letter != '\0'; u++) {
		if (u->letter == c || (units->nocase && (u->letter | 0x20) == (c | 0x20)))
			return u->factor;
	}
	return 0;
}

/* Digits and an optional one-letter unit; no sign, no space, no overflow of int64_t. */
static int config_number_parse(const char *s, const struct config_units *units, int64_t *value_r,
			       const char **error_r)
{
	int64_t n = 0, factor = 1;

	if (*s < '0' || *s > '9') {
		*error_r = *s == '\0' ? "empty value, a number is needed" : "not a number";
		return -1;
	}
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (INT64_MAX - (*s - '0')) / 10) {
			*error_r = "number too large";
			return -1;
		}
		n = n * 10 + (*s - '0');
	}
	if (*s != '\0') {
		factor = s[1] == '\0' ? config_unit_factor(units, *s) : 0;
		if (factor == 0) {
			*error_r = units->bad_suffix;
			return -1;
		}
	}
	if (n > INT64_MAX / factor) {
		*error_r = "number too large";
		return -1;
	}
	*value_r = n * factor;
	return 0;
}

int config_parse_size(const char *s, int64_t *value_r, const char **error_r)
{
	return config_number_parse(s, &config_size_units, value_r, error_r);
}

int config_parse_duration(const char *s, int64_t *value_r, const char **error_r)
{
	return config_number_parse(s, &config_duration_units, value_r, error_r);
}

/* The shortest exact form, so that ranges read as they are written in the table. */
static void config_number_format(struct buf *b, enum config_type type, int64_t n)
{
	for (const struct config_unit *u = config_units_of(type)->unit; u->letter != '\0'; u++) {
		if (n != 0 && n % u->factor == 0) {
			buf_printf(b, "%" PRId64 "%c", n / u->factor, u->letter);
			return;
		}
	}
	buf_printf(b, "%" PRId64, n);
}

static void config_range_format(struct buf *b, const struct config_setting *s)
{
	config_number_format(b, s->type, s->min);
	buf_puts(b, "..");
	config_number_format(b, s->type, s->max);
}

static int config_number_value_parse(struct config_parser *p, const struct config_setting *s,
				     const char *text, union config_value *v_r)
{
	const char *error = NULL;

	if (config_number_parse(text, config_units_of(s->type), &v_r->num, &error) < 0) {
		config_error(p, s->name, "\"%.100s\": %s", text, error);
		return -1;
	}
	if (v_r->num < s->min || v_r->num > s->max) {
		struct buf range = { 0 };
		config_range_format(&range, s);
		config_error(p, s->name, "%.100s is out of range %s", text, buf_str(&range));
		buf_free(&range);
		return -1;
	}
	return 0;
}

/* ---- strings, booleans, log levels ---- */

int config_parse_bool(const char *s, bool *value_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*value_r = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return -1;
}

static int config_string_value_parse(struct config_parser *p, const struct config_setting *s,
				     const char *text, union config_value *v_r)
{
	size_t len = strlen(text);

	if (len < (size_t)s->min) {
		config_error(p, s->name, "must not be empty");
		return -1;
	}
	if (len > (size_t)s->max) {
		config_error(p, s->name, "longer than %" PRId64 " bytes", s->max);
		return -1;
	}
	v_r->str = xstrdup(text);
	return 0;
}

static int config_bool_value_parse(struct config_parser *p, const struct config_setting *s,
				   const char *text, union config_value *v_r)
{
	if (config_parse_bool(text, &v_r->flag) < 0) {
		config_error(p, s->name, "\"%.100s\": not a boolean, use yes or no", text);
		return -1;
	}
	return 0;
}

static int config_log_level_value_parse(struct config_parser *p, const struct config_setting *s,
					const char *text, union config_value *v_r)
{
	enum log_level level;

	if (log_level_parse(text, &level) < 0) {
		config_error(p, s->name, "\"%.100s\": not a log level, use debug, info, warn or error",
			     text);
		return -1;
	}
	v_r->str = xstrdup(config_log_levels[level]);
	return 0;
}

static int config_tls_level_value_parse(struct config_parser *p, const struct config_setting *s,
					const char *text, union config_value *v_r)
{
	static const char *const levels[] = { "none", "may", "encrypt" };
	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(text, levels[i]) == 0) {
			v_r->str = xstrdup(levels[i]);
			return 0;
		}
	}
	config_error(p, s->name, "\"%.100s\": not a TLS level, use none, may or encrypt", text);
	return -1;
}

/* ---- list items ---- */

/* Whether the len bytes of s are all in set. */
static bool config_only(const char *s, size_t len, const char *set)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0' || strchr(set, s[i]) == NULL)
			return false;
	}
	return true;
}

/* Letters, digits and inner hyphens, 1..63 bytes (RFC 1035 2.3.1). */
static bool config_label_valid(const char *s, size_t len)
{
	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char lower = (char)(s[i] | 0x20);
		if (!(lower >= 'a' && lower <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
			return false;
	}
	return true;
}

/* At most 253 bytes, and a top-level label that is not all digits so that an IPv4 address
   is never taken for a domain. d need not be NUL-terminated. */
static bool config_domain_valid(const char *d, size_t len)
{
	const char *end = d + len;

	if (len == 0 || len > 253)
		return false;
	for (const char *label = d;;) {
		const char *dot = memchr(label, '.', (size_t)(end - label));
		size_t n = (size_t)((dot != NULL ? dot : end) - label);
		if (!config_label_valid(label, n))
			return false;
		if (dot == NULL)
			return !config_only(label, n, "0123456789");
		label = dot + 1;
	}
}

static int config_domain_item_check(char *item, const char **error_r)
{
	const char *d = item;

	for (char *c = item; *c != '\0'; c++) {
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c | 0x20);
	}
	if (strncmp(d, "*.", 2) == 0)
		d += 2;
	if (!config_domain_valid(d, strlen(d))) {
		*error_r = "not a domain or *.domain";
		return -1;
	}
	return 0;
}

/* Zero bits past the prefix; returns whether any were set. */
static bool config_host_bits_clear(unsigned char *addr, unsigned bits, unsigned prefix)
{
	bool had = false;

	for (unsigned i = prefix; i < bits; i++) {
		unsigned char mask = (unsigned char)(0x80u >> (i % 8));
		had = had || (addr[i / 8] & mask) != 0;
		addr[i / 8] &= (unsigned char)~mask;
	}
	return had;
}

/* Accepts "a.b.c.d", "a.b.c.d/n", "v6", "v6/n", "[v6]" and "[v6]/n". */
static int config_cidr_addr_parse(const char *item, unsigned char *addr, int *family_r)
{
	char text[INET6_ADDRSTRLEN + 1];
	size_t len = strcspn(item, "/");
	bool bracket = len >= 2 && item[0] == '[' && item[len - 1] == ']';

	if (bracket) {
		item++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, item, len);
	text[len] = '\0';
	*family_r = !bracket && inet_pton(AF_INET, text, addr) == 1 ? AF_INET : AF_INET6;
	if (*family_r == AF_INET6 && inet_pton(AF_INET6, text, addr) != 1)
		return -1;
	return 0;
}

static int config_prefix_parse(const char *s, unsigned bits, unsigned *prefix_r)
{
	unsigned n = 0;

	if (*s == '\0' || strlen(s) > 3)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (unsigned)(*s - '0');
	}
	*prefix_r = n;
	return n <= bits ? 0 : -1;
}

/* Rewrites the item to "address/prefix" in inet_ntop form, so users of the list parse one
   shape only. */
static int config_cidr_item_check(char **item, const char **error_r)
{
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	int family;
	unsigned prefix;
	const char *slash = strchr(*item, '/');

	if (config_cidr_addr_parse(*item, addr, &family) < 0) {
		*error_r = "not an IPv4 or IPv6 address or network";
		return -1;
	}
	unsigned bits = family == AF_INET ? 32 : 128;
	prefix = bits;
	if (slash != NULL && config_prefix_parse(slash + 1, bits, &prefix) < 0) {
		*error_r = family == AF_INET ? "prefix length must be 0..32"
					     : "prefix length must be 0..128";
		return -1;
	}
	if (config_host_bits_clear(addr, bits, prefix)) {
		*error_r = "address bits set past the prefix length";
		return -1;
	}
	inet_ntop(family, addr, text, sizeof(text));
	free(*item);
	*item = xasprintf("%s/%u", text, prefix);
	return 0;
}

static int config_port_check(const char *s)
{
	long port = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		port = port * 10 + (*s - '0');
	}
	return port >= 1 && port <= 65535 ? 0 : -1;
}

static int config_ip_check(int family, const char *s, size_t len, const char **error_r)
{
	char text[INET6_ADDRSTRLEN];
	unsigned char addr[16];

	if (len > 0 && len < sizeof(text)) {
		memcpy(text, s, len);
		text[len] = '\0';
		if (inet_pton(family, text, addr) == 1)
			return 0;
	}
	*error_r = "not an IP address";
	return -1;
}

/* len bytes of host: "[v6]", an IPv4 literal, or a name. */
static int config_listen_host_check(const char *host, size_t len, const char **error_r)
{
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
		return config_ip_check(AF_INET6, host + 1, len - 2, error_r);
	if (memchr(host, ':', len) != NULL) {
		*error_r = "write an IPv6 address in brackets, as in [::1]:2525";
		return -1;
	}
	/* Digits and dots are meant as an address, never as a name to look up. */
	if (config_only(host, len, "0123456789."))
		return config_ip_check(AF_INET, host, len, error_r);
	if (!config_domain_valid(host, len)) {
		*error_r = "not a host name or address";
		return -1;
	}
	return 0;
}

/* "host:port", "[v6]:port" or "unix:path"; a host name is resolved by the listener. */
static int config_listen_item_check(const char *item, const char **error_r)
{
	if (strncmp(item, "unix:", 5) == 0) {
		size_t len = strlen(item + 5);
		if (len == 0 || len > CONFIG_UNIX_PATH_MAX) {
			*error_r = len == 0 ? "missing socket path after unix:"
					    : "socket path longer than 107 bytes";
			return -1;
		}
		return 0;
	}
	const char *colon = strrchr(item, ':');
	if (colon == NULL || colon == item) {
		*error_r = colon == NULL ? "missing :port" : "missing host before :port";
		return -1;
	}
	if (config_port_check(colon + 1) < 0) {
		*error_r = "port must be a number 1..65535";
		return -1;
	}
	return config_listen_host_check(item, (size_t)(colon - item), error_r);
}

/* ---- lists ---- */

/* Checks (and for some types rewrites) one item; the error names it. */
static int config_item_check(struct config_parser *p, const struct config_setting *s,
			     char **item)
{
	const char *error = NULL;
	int ret = 0;

	switch (s->type) {
	case CONFIG_TYPE_DOMAIN_LIST:
		ret = config_domain_item_check(*item, &error);
		break;
	case CONFIG_TYPE_CIDR_LIST:
		ret = config_cidr_item_check(item, &error);
		break;
	case CONFIG_TYPE_LISTEN_LIST:
		ret = config_listen_item_check(*item, &error);
		break;
	default:
		break;
	}
	if (ret < 0)
		config_error(p, s->name, "\"%.100s\": %s", *item, error);
	return ret;
}

/* Every bad item is reported, not just the first. */
static int config_list_value_parse(struct config_parser *p, const struct config_setting *s,
				   const char *text, union config_value *v_r)
{
	size_t n = 0, cap = 4;
	char **items = xmalloc(cap * sizeof(*items));
	int ret = 0;

	for (;;) {
		text += strspn(text, CONFIG_LIST_SEPARATORS);
		if (*text == '\0')
			break;
		size_t len = strcspn(text, CONFIG_LIST_SEPARATORS);
		char *item = xstrndup(text, len);
		text += len;
		if (config_item_check(p, s, &item) < 0) {
			free(item);
			ret = -1;
			continue;
		}
		if (n + 1 == cap)
			items = xrealloc(items, (cap *= 2) * sizeof(*items));
		items[n++] = item;
	}
	items[n] = NULL;
	v_r->list = items;
	if (ret < 0)
		config_list_free(&v_r->list);
	return ret;
}

static int config_value_parse(struct config_parser *p, const struct config_setting *s,
			      const char *text, union config_value *v_r)
{
	switch (s->type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_PATH:
		return config_string_value_parse(p, s, text, v_r);
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_SIZE:
	case CONFIG_TYPE_DURATION:
		return config_number_value_parse(p, s, text, v_r);
	case CONFIG_TYPE_BOOL:
		return config_bool_value_parse(p, s, text, v_r);
	case CONFIG_TYPE_LOG_LEVEL:
		return config_log_level_value_parse(p, s, text, v_r);
	case CONFIG_TYPE_TLS_LEVEL:
		return config_tls_level_value_parse(p, s, text, v_r);
	case CONFIG_TYPE_LIST:
	case CONFIG_TYPE_CIDR_LIST:
	case CONFIG_TYPE_DOMAIN_LIST:
	case CONFIG_TYPE_LISTEN_LIST:
		return config_list_value_parse(p, s, text, v_r);
	}
	log_panic("config: unknown setting type %d", (int)s->type);
}

/* ---- lines ---- */

static size_t config_trim_right(const char *s, size_t len)
{
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return len;
}

/* A duplicate's value is still checked so that all of its problems show at once. */
static void config_setting_set(struct config_parser *p, const struct config_setting *s,
			       const char *text)
{
	unsigned *first = &p->first_line[s - config_table];
	bool duplicate = *first != 0;
	union config_value v;

	if (duplicate)
		config_error(p, s->name, "set twice, first at line %u", *first);
	else
		*first = p->line;
	if (config_value_parse(p, s, text, &v) < 0)
		return;
	if (duplicate)
		config_value_free(s->type, &v);
	else
		config_value_store(p->conf, s, &v);
}

/* Applies one logical line, "key = value", starting with a non-blank byte. */
static void config_setting_apply(struct config_parser *p, const char *text, size_t len)
{
	const char *eq = memchr(text, '=', len);

	if (eq == NULL) {
		config_error(p, NULL, "missing '=' in \"%.100s\"", text);
		return;
	}
	size_t keylen = config_trim_right(text, (size_t)(eq - text));
	if (keylen == 0) {
		config_error(p, NULL, "missing setting name before '='");
		return;
	}
	char *key = xstrndup(text, keylen);
	const struct config_setting *s = config_setting_find(key);
	if (s == NULL) {
		config_error(p, key, "unknown setting");
	} else {
		const char *value = eq + 1 + strspn(eq + 1, CONFIG_BLANK);
		config_setting_set(p, s, value);
	}
	free(key);
}

static void config_logical_flush(struct config_parser *p)
{
	if (p->logical_line == 0)
		return;
	if (!p->logical_bad) {
		p->line = p->logical_line;
		config_setting_apply(p, p->logical.data, p->logical.len);
	}
	p->logical_line = 0;
}

static void config_logical_start(struct config_parser *p, unsigned line, const char *s,
				 size_t len, bool bad)
{
	config_logical_flush(p);
	buf_reset(&p->logical);
	buf_append(&p->logical, s, config_trim_right(s, len));
	p->logical_line = line;
	p->logical_bad = bad;
}

static void config_logical_continue(struct config_parser *p, unsigned line, const char *s,
				    size_t len)
{
	if (p->logical_line == 0) {
		p->line = line;
		config_error(p, NULL, "continuation line with no setting before it");
		config_logical_start(p, line, "", 0, true);
		return;
	}
	if (p->logical_bad)
		return;
	buf_putc(&p->logical, ' ');
	buf_append(&p->logical, s, config_trim_right(s, len));
}

/* Reports a line the parser must not look into; comments get only the NUL and length
   checks, since their text is never used. */
static int config_line_check(struct config_parser *p, unsigned line, const char *s, size_t len,
			     bool comment)
{
	p->line = line;
	if (len > CONFIG_LINE_MAX) {
		config_error(p, NULL, "line longer than %d bytes", CONFIG_LINE_MAX);
		return -1;
	}
	if (memchr(s, '\0', len) != NULL) {
		config_error(p, NULL, "NUL byte in line");
		return -1;
	}
	for (size_t i = 0; i < len && !comment; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			config_error(p, NULL, "control character 0x%02x in line", c);
			return -1;
		}
	}
	return 0;
}

static void config_line_handle(struct config_parser *p, unsigned line, const char *s, size_t len)
{
	bool indented = len > 0 && (s[0] == ' ' || s[0] == '\t');
	size_t skip = 0;

	while (skip < len && (s[skip] == ' ' || s[skip] == '\t'))
		skip++;
	bool ignored = skip == len || s[skip] == '#';
	if (config_line_check(p, line, s, len, ignored) < 0) {
		/* Its setting is void; later continuation lines must not raise more errors. */
		if (indented && p->logical_line != 0)
			p->logical_bad = true;
		else
			config_logical_start(p, line, "", 0, true);
		return;
	}
	if (ignored)
		return;
	if (indented)
		config_logical_continue(p, line, s + skip, len - skip);
	else
		config_logical_start(p, line, s, len, false);
}

static void config_lines_parse(struct config_parser *p, const char *text, size_t len)
{
	size_t pos = 0;
	unsigned line = 0;

	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;
		pos += n + (nl != NULL);
		if (n > 0 && start[n - 1] == '\r')
			n--;
		config_line_handle(p, ++line, start, n);
	}
	config_logical_flush(p);
}

/* A certificate without its key (or the reverse) is surely a mistake, not "no TLS". */
static void config_tls_check(struct config_parser *p)
{
	static const char *const pair[2] = { "tls_cert_file", "tls_key_file" };
	const char *value[2] = { p->conf->tls_cert_file, p->conf->tls_key_file };

	for (int i = 0; i < 2; i++) {
		if (value[i][0] != '\0' && value[1 - i][0] == '\0') {
			p->line = p->first_line[config_setting_find(pair[i]) - config_table];
			config_error(p, pair[i], "set without %s", pair[1 - i]);
		}
	}
}

/* ---- public ---- */

struct config *config_defaults(void)
{
	struct config *conf = xcalloc(1, sizeof(*conf));
	struct config_parser p = { .conf = conf, .file = "built-in default" };

	conf->config_file = xstrdup("");
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		p.line = 0;
		config_setting_set(&p, &config_table[i], config_table[i].default_text);
	}
	if (p.nerrors > 0)
		log_panic("config: %s", buf_str(&p.errors));
	return conf;
}

static int config_parse_finish(struct config_parser *p, struct config **conf_r, char **errors_r)
{
	if (p->nerrors == 0) {
		buf_free(&p->errors);
		*conf_r = p->conf;
		if (errors_r != NULL)
			*errors_r = NULL;
		return 0;
	}
	if (p->nerrors > CONFIG_ERRORS_MAX)
		buf_printf(&p->errors, "\n%s: %u more errors not shown", p->file,
			   p->nerrors - CONFIG_ERRORS_MAX);
	config_free(&p->conf);
	*conf_r = NULL;
	if (errors_r != NULL)
		*errors_r = xstrdup(buf_str(&p->errors));
	buf_free(&p->errors);
	return -1;
}

int config_parse(const char *name, const char *text, size_t len, struct config **conf_r,
		 char **errors_r)
{
	struct config_parser p = { .file = name };

	/* Some editors start a UTF-8 file with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3;
		len -= 3;
	}
	p.conf = config_defaults();
	free(p.conf->config_file);
	p.conf->config_file = xstrdup(name);
	config_lines_parse(&p, text, len);
	buf_free(&p.logical);
	p.line = 0;
	config_tls_check(&p);
	return config_parse_finish(&p, conf_r, errors_r);
}


int config_load(const char *path, struct config **conf_r, char **errors_r)
{
	struct buf text = { 0 };
	int ret;

	if (fs_read_file(path, CONFIG_FILE_MAX, &text) < 0) {
		if (errors_r != NULL)
			*errors_r = xasprintf("%s: cannot read: %s", path, strerror(errno));
		*conf_r = NULL;
		ret = -1;
	} else {
		ret = config_parse(path, buf_str(&text), text.len, conf_r, errors_r);
	}
	buf_free(&text);
	return ret;
}

/* Long lists go onto continuation lines, which parse back to the same list. */
static void config_list_format(struct buf *b, char *const *list, size_t column)
{
	for (size_t i = 0; list[i] != NULL; i++) {
		size_t len = strlen(list[i]);
		if (i > 0 && column + len + 2 > CONFIG_DUMP_WIDTH) {
			buf_puts(b, ",\n\t");
			column = 8;
		} else {
			buf_puts(b, i > 0 ? ", " : " ");
			column += i > 0 ? 2 : 1;
		}
		buf_puts(b, list[i]);
		column += len;
	}
}

static void config_setting_format(struct buf *b, const struct config *conf,
				  const struct config_setting *s)
{
	const void *field = (const char *)conf + s->offset;

	buf_printf(b, "%s =", s->name);
	switch (config_storage_of(s->type)) {
	case CONFIG_STORAGE_STRING:
		if (**(char *const *)field != '\0')
			buf_printf(b, " %s", *(char *const *)field);
		break;
	case CONFIG_STORAGE_LIST:
		config_list_format(b, *(char **const *)field, strlen(s->name) + 2);
		break;
	case CONFIG_STORAGE_NUMBER:
		buf_printf(b, " %" PRId64, *(const int64_t *)field);
		break;
	case CONFIG_STORAGE_BOOL:
		buf_puts(b, *(const bool *)field ? " yes" : " no");
		break;
	}
	buf_putc(b, '\n');
}

static void config_help_format(struct buf *b, const struct config_setting *s)
{
	const char *def = s->default_text;

	buf_printf(b, "# %s\n# default: %s", s->help, def[0] != '\0' ? def : "(empty)");
	if (config_storage_of(s->type) == CONFIG_STORAGE_NUMBER) {
		buf_puts(b, "; range: ");
		config_range_format(b, s);
	}
	buf_putc(b, '\n');
}

/* The file name is shown with control characters replaced, so that it stays one comment. */
static void config_dump_header(struct buf *b, const char *file)
{
	buf_puts(b, "# postern configuration, from ");
	if (file[0] == '\0')
		buf_puts(b, "built-in defaults");
	for (; *file != '\0'; file++)
		buf_putc(b, (unsigned char)*file < 0x20 || *file == 0x7f ? '?' : *file);
	buf_puts(b, "\n\n");
}

void config_dump(const struct config *conf, FILE *out, bool verbose)
{
	struct buf b = { 0 };

	if (verbose)
		config_dump_header(&b, conf->config_file);
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		if (verbose)
			config_help_format(&b, &config_table[i]);
		config_setting_format(&b, conf, &config_table[i]);
		if (verbose && i + 1 < CONFIG_NSETTINGS)
			buf_putc(&b, '\n');
	}
	fputs(buf_str(&b), out);
	buf_free(&b);
}

void config_free(struct config **conf)
{
	if (*conf == NULL)
		return;
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++)
		config_field_free(*conf, &config_table[i]);
	free((*conf)->config_file);
	xfree(conf);
}

void config_print_errors(FILE *out, const char *errors)
{
	fputs(errors, out);
	if (errors[0] != '\0' && errors[strlen(errors) - 1] != '\n')
		fputc('\n', out);
}

void config_log_errors(const char *errors)
{
	const char *p = errors;
	while (*p != '\0') {
		size_t n = strcspn(p, "\n");
		log_error("%.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

void config_hostname(const struct config *conf, char *out, size_t len)
{
	if (conf->hostname[0] != '\0')
		snprintf(out, len, "%s", conf->hostname);
	else if (gethostname(out, len - 1) < 0)
		snprintf(out, len, "localhost");
	out[len - 1] = '\0';
}
