/* libFuzzer target for the SMTP command-line, MAIL/RCPT argument and xtext parsers
   (src/smtp/command.c, src/smtp/xtext.c), under every combination of offered extensions.
   Besides memory errors it checks the documented error codes, the limits of the parsed
   values and that both xtext flavours round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

static void check_error(const struct smtp_error *err)
{
	require(err->code == 501 || err->code == 553 || err->code == 555);
	require(err->status != NULL && err->text != NULL && *err->text != '\0');
}

static void check_mail(const char *arg, const struct smtp_offer *offer)
{
	struct smtp_mail_args args;
	struct smtp_error err;

	if (smtp_mail_parse(arg, offer, &args, &err) < 0) {
		check_error(&err);
		return;
	}
	require(strlen(args.envid) <= PROTO_ENVID_MAX);
	require(!args.smtputf8 || offer->smtputf8);
	require(args.body == SMTP_BODY_NONE || offer->eightbitmime);
	require(args.size == 0 || offer->size);
	require((args.ret == SMTP_RET_NONE && args.envid[0] == '\0') || offer->dsn);
	require(!(args.from.flags & ADDRESS_UTF8) || args.smtputf8);
	require(!(args.from.flags & ADDRESS_POSTMASTER));
}

static void check_rcpt(const char *arg, const struct smtp_offer *offer, bool smtputf8)
{
	struct smtp_rcpt_args args;
	struct smtp_error err;

	if (smtp_rcpt_parse(arg, offer, smtputf8, &args, &err) < 0) {
		check_error(&err);
		return;
	}
	require(strlen(args.orcpt) <= PROTO_ORCPT_MAX);
	require((args.notify == 0 && args.orcpt_type[0] == '\0') || offer->dsn);
	require((args.orcpt_type[0] == '\0') == (args.orcpt[0] == '\0'));
	require(!(args.notify & SMTP_NOTIFY_NEVER) || args.notify == SMTP_NOTIFY_NEVER);
	require(!(args.to.flags & ADDRESS_UTF8) || smtputf8);
	require(!(args.to.flags & ADDRESS_NULL));
}

static void check_line(const char *s, size_t size)
{
	struct smtp_command cmd;
	struct smtp_error err;

	if (smtp_command_parse(s, size, &cmd, &err) < 0) {
		require(err.code == 500 && strcmp(err.status, "5.5.2") == 0);
		return;
	}
	require(cmd.arg[0] == '\0' || (cmd.arg > s && cmd.arg < s + size));
	require(strlen(cmd.arg) == (cmd.arg[0] == '\0' ? 0 : (size_t)(s + size - cmd.arg)));
}

static void check_xtext(const char *data, size_t size)
{
	/* Decoding never grows the text; encoding grows it at most sixfold ("\x{20}"). */
	size_t enclen = size * 6 + 1;
	char *dec = malloc(size + 1), *enc = malloc(enclen), *again = malloc(size + 1);
	int n = xtext_decode(data, size, dec, size + 1);

	/* A decoded NUL would end the C string that encode reads, so skip those. */
	if (n >= 0 && strlen(dec) == (size_t)n) {
		int m = xtext_encode(dec, enc, enclen);
		require(m >= 0);
		require(xtext_decode(enc, (size_t)m, again, size + 1) == n);
		require(memcmp(dec, again, (size_t)n) == 0);
	}
	for (int allow = 0; allow < 2; allow++) {
		n = xtext_utf8addr_decode(data, size, allow, dec, size + 1);
		if (n < 0 || strlen(dec) != (size_t)n)
			continue;
		require(address_utf8_valid(dec, (size_t)n));
		int m = xtext_utf8addr_encode(dec, enc, enclen);
		require(m >= 0);
		require(xtext_utf8addr_decode(enc, (size_t)m, false, again, size + 1) == n);
		require(memcmp(dec, again, (size_t)n) == 0);
	}
	free(dec);
	free(enc);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_line(s, size);
	for (unsigned bits = 0; bits < 16; bits++) {
		struct smtp_offer offer = {
			.size = bits & 1, .eightbitmime = bits & 2, .smtputf8 = bits & 4, .dsn = bits & 8,
		};
		check_mail(s, &offer);
		check_rcpt(s, &offer, false);
		check_rcpt(s, &offer, offer.smtputf8);
	}
	check_xtext(s, size);
	free(s);
	return 0;
}
