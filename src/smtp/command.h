#ifndef POSTERN_SMTP_COMMAND_H
#define POSTERN_SMTP_COMMAND_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg/address.h"
#include "util/protolimits.h"

/* The SMTP/LMTP command-line parser: verbs and the MAIL/RCPT arguments with their ESMTP
   parameters (RFC 5321, 1870, 3461, 6152, 6531). Pure functions, no I/O. */

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_LHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
};

/* A reply to send for a failed parse: code, enhanced status code and text. */
struct smtp_error {
	int code;           /* e.g. 501 */
	const char *status; /* e.g. "5.5.4" */
	const char *text;   /* e.g. "Syntax error in parameters" */
};

struct smtp_command {
	enum smtp_verb verb;
	const char *arg; /* points into the line after the verb and its spaces; "" when none */
};

/* Splits a command line (without CRLF, len bytes, may contain NUL) into verb and argument.
   The verb is the text up to the first space, case-insensitive; anything that is not a known
   verb (including one with non-letters) gives SMTP_VERB_UNKNOWN and returns 0. The argument
   is a C string only when line[len] is '\0' (struct buf guarantees it).
   Returns -1 with *err_r (500 5.5.2) for an empty line, a NUL, DEL or other control character
   (TAB excepted) or a bare CR/LF inside the line. */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd_r,
		       struct smtp_error *err_r);

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

enum smtp_notify {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

struct smtp_mail_args {
	struct address from;
	uint64_t size;  /* SIZE=, 0 when absent */
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[PROTO_ENVID_MAX + 1]; /* ENVID= xtext-decoded, "" when absent */
};

struct smtp_rcpt_args {
	struct address to;
	unsigned notify; /* smtp_notify bits; 0 when absent */
	char orcpt_type[16];                /* "rfc822" or "utf-8", lower-cased; "" when absent */
	char orcpt[PROTO_ORCPT_MAX + 1];    /* ORCPT address, decoded; "" when absent */
};

/* Which extensions the server offered in this session; parameters of extensions not offered
   are refused with 555 5.5.4. */
struct smtp_offer {
	bool size, eightbitmime, smtputf8, dsn;
};

/* Parses the argument of MAIL ("FROM:<path> params"). "FROM:" is case-insensitive; spaces
   between ':' and '<' are tolerated. Returns 0, or -1 with *err_r:
   501 5.5.4 syntax, 501 5.1.7 bad sender address, 555 5.5.4 unknown/unoffered parameter,
   501 5.5.4 duplicate or malformed parameter value, 553 5.6.7 UTF-8 address without SMTPUTF8.
   For a bad address err_r->text is the address parser's reason (e.g. "missing '>'"). */
int smtp_mail_parse(const char *arg, const struct smtp_offer *offer, struct smtp_mail_args *args_r,
		    struct smtp_error *err_r);

/* Parses the argument of RCPT ("TO:<path> params"), bare <postmaster> allowed. smtputf8 says
   whether the transaction's MAIL had SMTPUTF8. Returns 0, or -1 with *err_r like
   smtp_mail_parse (501 5.1.3 for a bad recipient address). ORCPT=rfc822;xtext is stored
   xtext-decoded and must be printable ASCII; ORCPT=utf-8;... (RFC 6533) is stored with its
   \x{..} escapes decoded to UTF-8 (raw UTF-8 accepted only with smtputf8) and must then be a
   valid Mailbox. */
int smtp_rcpt_parse(const char *arg, const struct smtp_offer *offer, bool smtputf8,
		    struct smtp_rcpt_args *args_r, struct smtp_error *err_r);

/* RFC 3461 xtext: decodes src into dst (size dstlen, NUL-terminated). Returns the decoded
   length, or -1 on malformed xtext (bad "+XX", chars outside 33..126, '=') or overflow. */
int xtext_decode(const char *src, size_t srclen, char *dst, size_t dstlen);
/* Encodes src as xtext into dst (size dstlen). Returns the length, or -1 on overflow. */
int xtext_encode(const char *src, char *dst, size_t dstlen);
/* RFC 6533 utf-8-addr-xtext / -unitext: decodes src (srclen bytes) into dst (size dstlen,
   NUL-terminated), turning each \x{HEX} into UTF-8; raw UTF-8 is accepted only when
   allow_utf8. Returns the decoded length, or -1 on malformed input or overflow. */
int xtext_utf8addr_decode(const char *src, size_t srclen, bool allow_utf8, char *dst,
			  size_t dstlen);
/* Encodes the UTF-8 string src as 7-bit utf-8-addr-xtext (\x{HEX} for non-ASCII, controls,
   space, '+', '=', '\\' and DEL). Returns the length, or -1 on invalid UTF-8 or overflow. */
int xtext_utf8addr_encode(const char *src, char *dst, size_t dstlen);

#endif
