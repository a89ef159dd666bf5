#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H
#include <stddef.h>
#include <sys/socket.h>

struct event_base;

/* Asynchronous DNS on the event loop (c-ares): MX lookups for MX delivery and address lookups
   (A and AAAA) for next hops. */

enum dns_status {
	DNS_OK,        /* answers are given */
	DNS_NXDOMAIN,  /* the name does not exist: permanent */
	DNS_NODATA,    /* the name exists without records of the type asked: permanent */
	DNS_NULLMX,    /* RFC 7505 null MX ("0 ."): the domain accepts no mail: permanent */
	DNS_TEMPFAIL,  /* timeout, SERVFAIL, refused, no servers: try again later, never bounce */
	DNS_CANCELLED, /* the resolver is being freed */
};

#define DNS_MAX_MX 32
#define DNS_MAX_ADDRS 32

struct dns_mx {
	char host[256]; /* lower-case, no trailing dot */
	unsigned short preference;
};

/* MX records sorted by preference (ties in random order, RFC 5321 5.1), at most DNS_MAX_MX.
   mx is NULL and n 0 unless status is DNS_OK; the array lives only during the call. */
typedef void dns_mx_cb(void *arg, enum dns_status status, const struct dns_mx *mx, size_t n);
/* Addresses with the port set to port; IPv6 and IPv4 both, IPv6 first when present, at most
   DNS_MAX_ADDRS. addrs is NULL and n 0 unless status is DNS_OK; valid only during the call. */
typedef void dns_addr_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs,
			 size_t n);

struct dns;

/* Creates a resolver. servers: NULL or "" for /etc/resolv.conf, else a comma-separated list of
   "ip", "ip:port" or "[ipv6]:port" (tests point it at a dnsmasq on loopback). timeout_ms is the
   first try's timeout; there are two tries and c-ares doubles it for the second, so a silent
   server gives DNS_TEMPFAIL after about 3 * timeout_ms. Returns NULL with *error_r on failure. */
struct dns *dns_new(struct event_base *base, const char *servers, int timeout_ms, const char **error_r);
/* Looks up the MX records of domain (absolute: no search list); cb runs later on the loop, exactly
   once, never from inside this call. A callback may start lookups or dns_free the resolver. */
void dns_lookup_mx(struct dns *dns, const char *domain, dns_mx_cb *cb, void *arg);
/* Looks up A and AAAA records of host (or parses an IP literal at once, "[...]" and
   "[IPv6:...]" allowed, still calling back from the loop); cb runs exactly once. */
void dns_lookup_addr(struct dns *dns, const char *host, int port, dns_addr_cb *cb, void *arg);
/* Cancels pending lookups (their callbacks run with DNS_CANCELLED before it returns, and must not
   start lookups on this resolver), frees *dns and sets it to NULL; NULL is allowed. */
void dns_free(struct dns **dns);

#endif
