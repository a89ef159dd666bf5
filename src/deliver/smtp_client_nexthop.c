/* Next hop syntax, as in Postfix's transport maps: "[host]:port" means that host without MX
   lookup, a bare "domain" or "host:port" is looked up by MX (SMTP only), "unix:/path" is an
   LMTP socket. An unbracketed IPv4 address is used as it is, since an MX lookup of it can
   only fail; an IPv6 address needs brackets because of its colons. */
#include "deliver/smtp_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

static int nexthop_port(const char *s, int *port_r, const char **error_r)
{
	int v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 5) {
		*error_r = "bad port";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i])) {
			*error_r = "bad port";
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535) {
		*error_r = "port out of range";
		return -1;
	}
	*port_r = v;
	return 0;
}

/* Letters, digits, '-', '_' and dots between non-empty labels; one trailing dot is dropped. */
static bool nexthop_hostname(char *h)
{
	size_t n = strlen(h);
	if (n > 0 && h[n - 1] == '.')
		h[--n] = '\0';
	if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-' || strstr(h, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)h[i];
		if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_')
			return false;
	}
	return true;
}

static bool nexthop_is_ipv4(const char *s)
{
	struct in_addr a;
	return inet_pton(AF_INET, s, &a) == 1;
}

static bool nexthop_is_ipv6(const char *s)
{
	struct in6_addr a;
	return inet_pton(AF_INET6, s, &a) == 1;
}

static int nexthop_unix(const char *path, bool lmtp, struct smtp_nexthop *hop, const char **error_r)
{
	struct sockaddr_un sun;
	if (!lmtp) {
		*error_r = "unix sockets are for LMTP only";
		return -1;
	}
	if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = "socket path must be absolute and shorter than 108 bytes";
		return -1;
	}
	for (const char *p = path; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "control character in socket path";
			return -1;
		}
	}
	snprintf(hop->host, sizeof(hop->host), "%s", path);
	hop->unix_socket = true;
	return 0;
}

/* "[host]" or "[host]:port"; inside the brackets a name, an IPv4 address, or an IPv6 address
   with or without the "ipv6:" tag of RFC 5321 address literals. */
static int nexthop_bracketed(const char *spec, struct smtp_nexthop *hop, const char **error_r)
{
	const char *close = strchr(spec, ']');
	size_t n = close != NULL ? (size_t)(close - spec - 1) : 0;
	if (close == NULL || n == 0 || n >= sizeof(hop->host)) {
		*error_r = "bad [host]";
		return -1;
	}
	char inner[sizeof(hop->host)];
	memcpy(inner, spec + 1, n);
	inner[n] = '\0';
	const char *h = strncasecmp(inner, "ipv6:", 5) == 0 ? inner + 5 : inner;
	bool v6 = h != inner || strchr(h, ':') != NULL;
	if (v6 ? !nexthop_is_ipv6(h) : !nexthop_is_ipv4(h) && !nexthop_hostname(inner)) {
		*error_r = v6 ? "bad IPv6 address" : "bad host name";
		return -1;
	}
	snprintf(hop->host, sizeof(hop->host), "%s", h);
	hop->mx = false;
	if (close[1] == '\0')
		return 0;
	if (close[1] != ':') {
		*error_r = "junk after ']'";
		return -1;
	}
	return nexthop_port(close + 2, &hop->port, error_r);
}

static int nexthop_plain(const char *spec, bool lmtp, struct smtp_nexthop *hop, const char **error_r)
{
	const char *colon = strchr(spec, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		*error_r = "an IPv6 address must be in brackets";
		return -1;
	}
	size_t n = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	if (n == 0 || n >= sizeof(hop->host)) {
		*error_r = "bad host name";
		return -1;
	}
	memcpy(hop->host, spec, n);
	hop->host[n] = '\0';
	bool ip = nexthop_is_ipv4(hop->host);
	if (!ip && !nexthop_hostname(hop->host)) {
		*error_r = "bad host name";
		return -1;
	}
	hop->mx = !lmtp && !ip;
	return colon != NULL ? nexthop_port(colon + 1, &hop->port, error_r) : 0;
}

int smtp_nexthop_parse(const char *spec, bool lmtp, struct smtp_nexthop *hop_r, const char **error_r)
{
	memset(hop_r, 0, sizeof(*hop_r));
	hop_r->lmtp = lmtp;
	hop_r->port = lmtp ? 24 : 25;
	hop_r->tls = lmtp ? SMTP_TLS_NONE : SMTP_TLS_MAY;
	if (strncmp(spec, "unix:", 5) == 0)
		return nexthop_unix(spec + 5, lmtp, hop_r, error_r);
	if (strncmp(spec, "inet:", 5) == 0)
		spec += 5;
	if (spec[0] == '[')
		return nexthop_bracketed(spec, hop_r, error_r);
	return nexthop_plain(spec, lmtp, hop_r, error_r);
}
