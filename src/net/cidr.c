#include "net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static int cidr_parse_prefix(const char *s, int max)
{
	if (s == NULL)
		return max;
	if (*s < '0' || *s > '9' || strlen(s) > 3)
		return -1;
	char *end;
	long v = strtol(s, &end, 10);
	return *end == '\0' && v <= max ? (int)v : -1;
}

int cidr_parse(const char *s, struct cidr *net_r)
{
	char tmp[64];
	if (strlen(s) >= sizeof(tmp))
		return -1;
	strcpy(tmp, s);
	char *slash = strchr(tmp, '/');
	if (slash != NULL)
		*slash++ = '\0';
	char *host = tmp;
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		host++;
	}
	memset(net_r, 0, sizeof(*net_r));
	if (inet_pton(AF_INET, host, net_r->addr) == 1)
		net_r->family = AF_INET;
	else if (inet_pton(AF_INET6, host, net_r->addr) == 1)
		net_r->family = AF_INET6;
	else
		return -1;
	net_r->prefix = cidr_parse_prefix(slash, net_r->family == AF_INET ? 32 : 128);
	return net_r->prefix < 0 ? -1 : 0;
}

static bool cidr_bits_match(const unsigned char *a, const unsigned char *b, int prefix)
{
	int bytes = prefix / 8, bits = prefix % 8;
	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	unsigned char mask = (unsigned char)(0xFF << (8 - bits));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool cidr_match(const struct cidr *net, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		return net->family == AF_INET &&
		       cidr_bits_match(net->addr, (const unsigned char *)&sin->sin_addr, net->prefix);
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const unsigned char *a = sin6->sin6_addr.s6_addr;
	if (net->family == AF_INET6)
		return cidr_bits_match(net->addr, a, net->prefix);
	return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && cidr_bits_match(net->addr, a + 12, net->prefix);
}

bool cidr_match_any(const struct cidr *nets, int n, const struct sockaddr *sa)
{
	for (int i = 0; i < n; i++) {
		if (cidr_match(&nets[i], sa))
			return true;
	}
	return false;
}
