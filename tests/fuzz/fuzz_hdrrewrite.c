/* libFuzzer target for header rewriting (src/route/rewrite_header.c): the input is a header
   value from outside (its first byte picks the header name). Besides memory errors it checks
   that rules mapping every domain to itself leave the value byte for byte (a lower-cased
   value, since rules yield lower-cased domains), and that with real rules a value reported
   unchanged is output as it came and a changed one differs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route/rewrite.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char identity_rules[] = "both  example.com            example.com\n"
				     "to    /^(.+)\\.example\\.net$/  $1.example.net\n"
				     "both  /^(.*)$/               $1\n";

static const char real_rules[] = "from  old.example            new.example\n"
				 "to    old.example            in.example\n"
				 "both  *.sub.example          sub.example\n"
				 "both  /^([a-z]+)\\.re$/      $1$1.rx\n"
				 "both  /^(x+)$/               $1.grown.example\n";

static const char *const names[] = { "From", "To", "Cc", "Bcc", "Sender", "Reply-To",
				     "Resent-From", "Resent-To", "resent-cc", "X-Other" };

static struct rewrite *identity, *real;

static void require(int cond)
{
	if (!cond)
		abort();
}

static struct rewrite *load(const char *text)
{
	struct rewrite *rw = NULL;
	char *errors = NULL;

	require(rewrite_parse("fuzz", text, strlen(text), NULL, &rw, &errors) == 0);
	return rw;
}

static void check_identity(const char *name, char *value)
{
	struct buf out = { 0 };

	for (char *s = value; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + ('a' - 'A'));
	require(rewrite_header(identity, name, value, &out) == 0);
	require(out.len == strlen(value) && memcmp(buf_str(&out), value, out.len) == 0);
	buf_free(&out);
}

static void check_real(const char *name, const char *value)
{
	struct buf out = { 0 };
	int rc = rewrite_header(real, name, value, &out);

	require(rc == 0 || rc == 1);
	require(strlen(buf_str(&out)) == out.len);
	if (rc == 0)
		require(strcmp(buf_str(&out), value) == 0);
	else
		require(strcmp(buf_str(&out), value) != 0);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *name = names[size > 0 ? data[0] % (sizeof(names) / sizeof(names[0])) : 0];
	char *value;

	if (identity == NULL) {
		identity = load(identity_rules);
		real = load(real_rules);
	}
	if (size == 0)
		return 0;
	/* A header value is a C string: it ends at the first NUL. */
	value = strndup((const char *)data + 1, size - 1);
	if (value == NULL)
		return 0;
	check_real(name, value);
	check_identity(name, value);
	free(value);
	return 0;
}
