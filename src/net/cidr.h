#ifndef POSTERN_CIDR_H
#define POSTERN_CIDR_H
#include <stdbool.h>
#include <sys/socket.h>

/* IPv4/IPv6 networks ("127.0.0.0/8", "::1/128", "[::1]/128", or a bare address). */

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

/* Parses s. Returns 0, or -1 when it is not an address or network. */
int cidr_parse(const char *s, struct cidr *net_r);
/* Returns true when the address sa is inside net (IPv4-mapped IPv6 matches IPv4 nets). */
bool cidr_match(const struct cidr *net, const struct sockaddr *sa);
/* Returns true when sa is inside any of the n networks. */
bool cidr_match_any(const struct cidr *nets, int n, const struct sockaddr *sa);

#endif
