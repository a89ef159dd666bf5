/* libFuzzer target for the RFC 5321 path and mailbox parsers (src/msg/address.c). Besides
   memory errors it checks the promises of address.h: limits, flags and that the canonical
   mailbox parses back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "msg/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

/* Invariants every successfully parsed address must satisfy under opts. */
static void check_address(const struct address *a, unsigned opts)
{
	require(strlen(a->local) <= PROTO_LOCAL_PART_MAX);
	require(strlen(a->domain) <= PROTO_DOMAIN_MAX);
	require(!(a->flags & ADDRESS_NULL) || (opts & ADDRESS_ALLOW_NULL));
	require(!(a->flags & ADDRESS_POSTMASTER) || (opts & ADDRESS_ALLOW_POSTMASTER));
	require(!(a->flags & ADDRESS_UTF8) || (opts & ADDRESS_ALLOW_UTF8));
	require(address_utf8_valid(a->mailbox, strlen(a->mailbox)));
	if (a->flags & (ADDRESS_NULL | ADDRESS_POSTMASTER))
		return;
	char expect[sizeof(a->mailbox)];
	snprintf(expect, sizeof(expect), "%s@%s", a->local, a->domain);
	require(strcmp(expect, a->mailbox) == 0);
	for (const char *p = a->domain; *p != '\0' && !(a->flags & ADDRESS_LITERAL); p++)
		require(!(*p >= 'A' && *p <= 'Z'));
}

static int has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* The canonical form must be a fixed point: parsing "<mailbox>" gives the same address. */
static void check_reparse(const struct address *a, unsigned opts)
{
	char path[sizeof(a->mailbox) + 2];
	struct address b;
	const char *end, *error;

	if (a->flags & (ADDRESS_NULL | ADDRESS_POSTMASTER))
		return;
	snprintf(path, sizeof(path), "<%s>", a->mailbox);
	require(address_parse_path(path, opts, &b, &end, &error) == 0);
	require(*end == '\0');
	require(strcmp(a->mailbox, b.mailbox) == 0 && strcmp(a->local, b.local) == 0);
	/* The route is dropped, and with it any UTF-8 that was only in the route. */
	require((b.flags & ~ADDRESS_UTF8) == (a->flags & ~(ADDRESS_ROUTE | ADDRESS_UTF8)));
	require(((b.flags & ADDRESS_UTF8) != 0) == has_8bit(a->mailbox));
	require((a->flags & ADDRESS_ROUTE) || b.flags == a->flags);
}

static void check_path(const char *s, unsigned opts)
{
	struct address a;
	const char *end = NULL, *error = NULL;

	if (address_parse_path(s, opts, &a, &end, &error) < 0) {
		require(error != NULL && *error != '\0');
		return;
	}
	require(end > s && end <= s + strlen(s) && end[-1] == '>');
	require(end - s <= PROTO_PATH_MAX);
	check_address(&a, opts);
	check_reparse(&a, opts);
}

static void check_mailbox(const char *s, unsigned opts)
{
	struct address a;
	const char *error = NULL;

	if (address_parse_mailbox(s, opts, &a, &error) < 0) {
		require(error != NULL && *error != '\0');
		return;
	}
	require(!(a.flags & ADDRESS_ROUTE));
	check_address(&a, opts);
	check_reparse(&a, opts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	for (unsigned opts = 0; opts < 8; opts++) {
		check_path(s, opts);
		check_mailbox(s, opts);
	}
	(void)address_utf8_valid((const char *)data, size);
	free(s);
	return 0;
}
