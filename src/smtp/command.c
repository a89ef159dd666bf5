#include "smtp/command.h"

#include <string.h>

/* Command lines and the MAIL/RCPT arguments (RFC 5321 4.1.1-4.1.2) with the ESMTP
   parameters of SIZE (RFC 1870), 8BITMIME (RFC 6152), DSN (RFC 3461, 6533) and SMTPUTF8
   (RFC 6531). Everything points into or copies into caller memory; nothing allocates. */

static int fail(struct smtp_error *err_r, int code, const char *status, const char *text)
{
	err_r->code = code;
	err_r->status = status;
	err_r->text = text;
	return -1;
}

/* Case-insensitive match of s (len bytes) against the upper-case word, ASCII only. */
static bool word_is(const char *s, size_t len, const char *word)
{
	if (strlen(word) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
		if (c != word[i])
			return false;
	}
	return true;
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "HELO", SMTP_VERB_HELO }, { "EHLO", SMTP_VERB_EHLO }, { "LHLO", SMTP_VERB_LHLO },
	{ "MAIL", SMTP_VERB_MAIL }, { "RCPT", SMTP_VERB_RCPT }, { "DATA", SMTP_VERB_DATA },
	{ "BDAT", SMTP_VERB_BDAT }, { "RSET", SMTP_VERB_RSET }, { "NOOP", SMTP_VERB_NOOP },
	{ "QUIT", SMTP_VERB_QUIT }, { "VRFY", SMTP_VERB_VRFY }, { "EXPN", SMTP_VERB_EXPN },
	{ "HELP", SMTP_VERB_HELP }, { "STARTTLS", SMTP_VERB_STARTTLS }, { "AUTH", SMTP_VERB_AUTH },
};

static enum smtp_verb verb_lookup(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (word_is(s, len, verbs[i].name))
			return verbs[i].verb;
	return SMTP_VERB_UNKNOWN;
}

/* A NUL or bare CR/LF would let a client smuggle a second command or truncate what later
   code sees as a C string, so any control character but TAB fails the whole line. */
static bool line_clean(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 32 && c != '\t') || c == 127)
			return false;
	}
	return true;
}

int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd_r,
		       struct smtp_error *err_r)
{
	size_t verblen = 0, i;

	cmd_r->verb = SMTP_VERB_UNKNOWN;
	cmd_r->arg = "";
	if (len == 0)
		return fail(err_r, 500, "5.5.2", "Empty command");
	if (!line_clean(line, len))
		return fail(err_r, 500, "5.5.2", "Control character in command");
	while (verblen < len && line[verblen] != ' ')
		verblen++;
	cmd_r->verb = verb_lookup(line, verblen);
	for (i = verblen; i < len && line[i] == ' '; i++)
		;
	if (i < len)
		cmd_r->arg = line + i;
	return 0;
}

/* One "keyword[=value]" of the parameter list; val is NULL when there is no '='. */
struct param {
	const char *key, *val;
	size_t keylen, vallen;
};

/* esmtp-value is printable ASCII but '='; RFC 6531 3.3 adds UTF-8, which the parameters
   that can carry it (only ORCPT=utf-8) validate themselves. */
static bool is_value_char(unsigned char c)
{
	return (c >= 33 && c <= 126 && c != '=') || c >= 0x80;
}

/* Returns 1 with the next parameter in *prm, 0 at the end of the list, -1 on bad syntax. */
static int param_next(const char **pp, struct param *prm, struct smtp_error *err_r)
{
	const char *p = *pp;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	prm->key = p;
	while (is_alnum((unsigned char)*p) || (*p == '-' && p != prm->key))
		p++;
	prm->keylen = (size_t)(p - prm->key);
	prm->val = NULL;
	prm->vallen = 0;
	if (*p == '=') {
		prm->val = ++p;
		while (is_value_char((unsigned char)*p))
			p++;
		prm->vallen = (size_t)(p - prm->val);
	}
	if (prm->keylen == 0 || (prm->val != NULL && prm->vallen == 0) || (*p != ' ' && *p != '\0'))
		return fail(err_r, 501, "5.5.4", "Syntax error in parameters");
	*pp = p;
	return 1;
}

/* What a parameter handler may touch: the MAIL or the RCPT results, and for RCPT whether
   the transaction is SMTPUTF8. */
struct param_ctx {
	struct smtp_mail_args *mail;
	struct smtp_rcpt_args *rcpt;
	bool smtputf8;
};

enum param_ext { EXT_SIZE, EXT_8BITMIME, EXT_SMTPUTF8, EXT_DSN };

struct param_def {
	const char *name;
	enum param_ext ext;
	int (*parse)(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r);
};

static bool offered(const struct smtp_offer *offer, enum param_ext ext)
{
	switch (ext) {
	case EXT_SIZE:
		return offer->size;
	case EXT_8BITMIME:
		return offer->eightbitmime;
	case EXT_SMTPUTF8:
		return offer->smtputf8;
	case EXT_DSN:
		return offer->dsn;
	}
	return false;
}

static int bad_value(struct smtp_error *err_r, const char *text)
{
	return fail(err_r, 501, "5.5.4", text);
}

/* size-value = 1*20DIGIT (RFC 1870); a value that does not fit 64 bits is refused rather
   than wrapped, so that a huge declared size can never look small. */
static int param_size(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r)
{
	uint64_t size = 0;

	if (prm->val == NULL || prm->vallen > 20)
		return bad_value(err_r, "Bad SIZE value");
	for (size_t i = 0; i < prm->vallen; i++) {
		unsigned d = (unsigned)(prm->val[i] - '0');
		if (d > 9 || size > (UINT64_MAX - d) / 10)
			return bad_value(err_r, "Bad SIZE value");
		size = size * 10 + d;
	}
	ctx->mail->size = size;
	return 0;
}

static int param_body(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r)
{
	if (prm->val != NULL && word_is(prm->val, prm->vallen, "7BIT"))
		ctx->mail->body = SMTP_BODY_7BIT;
	else if (prm->val != NULL && word_is(prm->val, prm->vallen, "8BITMIME"))
		ctx->mail->body = SMTP_BODY_8BITMIME;
	else if (prm->val != NULL && word_is(prm->val, prm->vallen, "BINARYMIME"))
		return fail(err_r, 555, "5.5.4", "BODY=BINARYMIME not supported");
	else
		return bad_value(err_r, "Bad BODY value");
	return 0;
}

static int param_smtputf8(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r)
{
	if (prm->val != NULL)
		return bad_value(err_r, "SMTPUTF8 takes no value");
	ctx->mail->smtputf8 = true;
	return 0;
}

static int param_ret(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r)
{
	if (prm->val != NULL && word_is(prm->val, prm->vallen, "FULL"))
		ctx->mail->ret = SMTP_RET_FULL;
	else if (prm->val != NULL && word_is(prm->val, prm->vallen, "HDRS"))
		ctx->mail->ret = SMTP_RET_HDRS;
	else
		return bad_value(err_r, "Bad RET value");
	return 0;
}

/* RFC 3461 4.2 and 4.4 require the decoded ORCPT (rfc822) and ENVID to be printable
   US-ASCII; refusing the controls that xtext can encode also keeps DSNs and queue files
   intact. Non-ASCII original recipients use the utf-8 address type instead. */
static bool decoded_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 32 || c > 126)
			return false;
	}
	return true;
}

static int param_envid(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r)
{
	char *envid = ctx->mail->envid;
	int n = prm->val != NULL ? xtext_decode(prm->val, prm->vallen, envid, PROTO_ENVID_MAX + 1) : -1;

	if (n <= 0 || !decoded_printable(envid, (size_t)n)) {
		envid[0] = '\0';
		return bad_value(err_r, "Bad ENVID value");
	}
	return 0;
}

static unsigned notify_word(const char *s, size_t len)
{
	if (word_is(s, len, "NEVER"))
		return SMTP_NOTIFY_NEVER;
	if (word_is(s, len, "SUCCESS"))
		return SMTP_NOTIFY_SUCCESS;
	if (word_is(s, len, "FAILURE"))
		return SMTP_NOTIFY_FAILURE;
	if (word_is(s, len, "DELAY"))
		return SMTP_NOTIFY_DELAY;
	return 0;
}

/* NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE and DELAY, each at most once. */
static int param_notify(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r)
{
	const char *p = prm->val, *end;
	unsigned bits = 0;

	if (p == NULL)
		return bad_value(err_r, "Bad NOTIFY value");
	for (end = p + prm->vallen;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *word_end = comma != NULL ? comma : end;
		unsigned bit = notify_word(p, (size_t)(word_end - p));
		if (bit == 0 || (bits & bit) != 0)
			return bad_value(err_r, "Bad NOTIFY value");
		bits |= bit;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return bad_value(err_r, "Bad NOTIFY value");
	ctx->rcpt->notify = bits;
	return 0;
}

/* ORCPT=utf-8;... must name a valid Mailbox once decoded (RFC 6533 3). */
static bool orcpt_utf8_valid(const char *s)
{
	struct address addr;
	const char *error;

	return address_parse_mailbox(s, ADDRESS_ALLOW_UTF8, &addr, &error) == 0;
}

/* Decodes the part after "type;" into args->orcpt by the rules of its address type. */
static int orcpt_decode(const char *s, size_t len, struct param_ctx *ctx)
{
	struct smtp_rcpt_args *args = ctx->rcpt;
	int n;

	if (strcmp(args->orcpt_type, "rfc822") == 0) {
		n = xtext_decode(s, len, args->orcpt, sizeof(args->orcpt));
		return n > 0 && decoded_printable(args->orcpt, (size_t)n) ? 0 : -1;
	}
	n = xtext_utf8addr_decode(s, len, ctx->smtputf8, args->orcpt, sizeof(args->orcpt));
	return n > 0 && orcpt_utf8_valid(args->orcpt) ? 0 : -1;
}

/* ORCPT=addr-type;xtext (RFC 3461 4.2) with addr-type "rfc822" or "utf-8" (RFC 6533). */
static int param_orcpt(const struct param *prm, struct param_ctx *ctx, struct smtp_error *err_r)
{
	struct smtp_rcpt_args *args = ctx->rcpt;
	const char *semi = prm->val != NULL ? memchr(prm->val, ';', prm->vallen) : NULL;
	size_t typelen = semi != NULL ? (size_t)(semi - prm->val) : 0;

	if (semi == NULL)
		return bad_value(err_r, "Bad ORCPT value");
	if (word_is(prm->val, typelen, "RFC822"))
		strcpy(args->orcpt_type, "rfc822");
	else if (word_is(prm->val, typelen, "UTF-8"))
		strcpy(args->orcpt_type, "utf-8");
	else
		return bad_value(err_r, "Unsupported ORCPT address type");
	if (orcpt_decode(semi + 1, prm->vallen - typelen - 1, ctx) < 0) {
		args->orcpt_type[0] = '\0';
		args->orcpt[0] = '\0';
		return bad_value(err_r, "Bad ORCPT value");
	}
	return 0;
}

static const struct param_def mail_params[] = {
	{ "SIZE", EXT_SIZE, param_size },
	{ "BODY", EXT_8BITMIME, param_body },
	{ "SMTPUTF8", EXT_SMTPUTF8, param_smtputf8 },
	{ "RET", EXT_DSN, param_ret },
	{ "ENVID", EXT_DSN, param_envid },
};

static const struct param_def rcpt_params[] = {
	{ "NOTIFY", EXT_DSN, param_notify },
	{ "ORCPT", EXT_DSN, param_orcpt },
};

/* Runs each parameter of the list p through its definition in defs (ndefs < 32). */
static int params_parse(const char *p, const struct param_def *defs, size_t ndefs,
			const struct smtp_offer *offer, struct param_ctx *ctx,
			struct smtp_error *err_r)
{
	struct param prm;
	unsigned seen = 0;
	int rc;

	while ((rc = param_next(&p, &prm, err_r)) > 0) {
		size_t i = 0;
		while (i < ndefs && !word_is(prm.key, prm.keylen, defs[i].name))
			i++;
		if (i == ndefs || !offered(offer, defs[i].ext))
			return fail(err_r, 555, "5.5.4", "Unsupported parameter");
		if (seen & (1u << i))
			return fail(err_r, 501, "5.5.4", "Duplicate parameter");
		seen |= 1u << i;
		if (defs[i].parse(&prm, ctx, err_r) < 0)
			return -1;
	}
	return rc;
}

/* Skips "FROM:" or "TO:" (any case) and the spaces some clients put after the colon. */
static const char *skip_keyword(const char *arg, const char *keyword)
{
	size_t len = strlen(keyword);

	if (strnlen(arg, len) < len || !word_is(arg, len, keyword))
		return NULL;
	arg += len;
	while (*arg == ' ')
		arg++;
	return arg;
}

/* What may follow the closing '>': the end, or spaces and parameters. */
static bool path_end_ok(const char *p)
{
	return *p == '\0' || *p == ' ';
}

static const struct smtp_offer no_offer;

int smtp_mail_parse(const char *arg, const struct smtp_offer *offer, struct smtp_mail_args *args_r,
		    struct smtp_error *err_r)
{
	struct param_ctx ctx = { .mail = args_r };
	const char *p = skip_keyword(arg, "FROM:"), *error;

	memset(args_r, 0, sizeof(*args_r));
	if (p == NULL)
		return fail(err_r, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
	if (address_parse_path(p, ADDRESS_ALLOW_NULL | ADDRESS_ALLOW_UTF8, &args_r->from, &p,
			       &error) < 0)
		return fail(err_r, 501, "5.1.7", error);
	if (!path_end_ok(p))
		return fail(err_r, 501, "5.5.4", "Junk after address");
	if (params_parse(p, mail_params, sizeof(mail_params) / sizeof(mail_params[0]),
			 offer != NULL ? offer : &no_offer, &ctx, err_r) < 0)
		return -1;
	if ((args_r->from.flags & ADDRESS_UTF8) && !args_r->smtputf8)
		return fail(err_r, 553, "5.6.7", "UTF-8 address needs SMTPUTF8");
	return 0;
}

int smtp_rcpt_parse(const char *arg, const struct smtp_offer *offer, bool smtputf8,
		    struct smtp_rcpt_args *args_r, struct smtp_error *err_r)
{
	struct param_ctx ctx = { .rcpt = args_r, .smtputf8 = smtputf8 };
	const char *p = skip_keyword(arg, "TO:"), *error;

	memset(args_r, 0, sizeof(*args_r));
	if (p == NULL)
		return fail(err_r, 501, "5.5.4", "Syntax: RCPT TO:<address>");
	if (address_parse_path(p, ADDRESS_ALLOW_POSTMASTER | ADDRESS_ALLOW_UTF8, &args_r->to, &p,
			       &error) < 0)
		return fail(err_r, 501, "5.1.3", error);
	if (!path_end_ok(p))
		return fail(err_r, 501, "5.5.4", "Junk after address");
	if (params_parse(p, rcpt_params, sizeof(rcpt_params) / sizeof(rcpt_params[0]),
			 offer != NULL ? offer : &no_offer, &ctx, err_r) < 0)
		return -1;
	if ((args_r->to.flags & ADDRESS_UTF8) && !smtputf8)
		return fail(err_r, 553, "5.6.7", "UTF-8 address needs SMTPUTF8");
	return 0;
}
