#include "smtp/command.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* RFC 3461 4 xtext (ENVID, ORCPT=rfc822) and RFC 6533 3 utf-8-addr-xtext/-unitext
   (ORCPT=utf-8). Output always goes into a caller's fixed buffer: the limits on both
   parameters are small, so nothing here allocates. */

static const char hex_upper[] = "0123456789ABCDEF";

/* xtext requires upper-case hex ("+2B"); a lower-case digit is malformed. */
static int xtext_hex_digit(char c)
{
	const char *p = c != '\0' ? strchr(hex_upper, c) : NULL;

	return p != NULL ? (int)(p - hex_upper) : -1;
}

/* The int return value caps how much a caller may ask to decode. */
static size_t cap_dstlen(size_t dstlen)
{
	return dstlen > INT_MAX ? INT_MAX : dstlen;
}

int xtext_decode(const char *src, size_t srclen, char *dst, size_t dstlen)
{
	size_t n = 0;

	dstlen = cap_dstlen(dstlen);
	if (dstlen == 0)
		return -1;
	for (size_t i = 0; i < srclen; n++) {
		unsigned char c = (unsigned char)src[i];
		if (n + 1 >= dstlen)
			return -1;
		if (c == '+') {
			int hi = i + 2 < srclen ? xtext_hex_digit(src[i + 1]) : -1;
			int lo = hi >= 0 ? xtext_hex_digit(src[i + 2]) : -1;
			if (lo < 0)
				return -1;
			dst[n] = (char)(hi << 4 | lo);
			i += 3;
		} else if (c >= 33 && c <= 126 && c != '=') {
			dst[n] = (char)c;
			i++;
		} else {
			return -1;
		}
	}
	dst[n] = '\0';
	return (int)n;
}

int xtext_encode(const char *src, char *dst, size_t dstlen)
{
	size_t n = 0;

	dstlen = cap_dstlen(dstlen);
	for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
		bool plain = *p >= 33 && *p <= 126 && *p != '+' && *p != '=';
		if (n + (plain ? 1 : 3) + 1 > dstlen) {
			if (dstlen > 0)
				dst[0] = '\0';
			return -1;
		}
		if (plain) {
			dst[n++] = (char)*p;
		} else {
			dst[n++] = '+';
			dst[n++] = hex_upper[*p >> 4];
			dst[n++] = hex_upper[*p & 15];
		}
	}
	if (dstlen == 0)
		return -1;
	dst[n] = '\0';
	return (int)n;
}

/* QCHAR of RFC 6533: printable ASCII except '\\', '+' and '='. */
static bool is_qchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7E && c != '\\' && c != '+' && c != '=';
}

/* Writes code point cp as UTF-8 at out (room for 4 bytes); returns the length. */
static size_t utf8_put(unsigned long cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Parses "\x{HEX}" at s (at most len bytes): 1 to 6 hex digits of either case naming a
   Unicode scalar value other than NUL. Returns the bytes consumed, or 0. */
static size_t embedded_char(const char *s, size_t len, unsigned long *cp_r)
{
	unsigned long cp = 0;
	size_t i = 3;

	if (len < 5 || s[1] != 'x' || s[2] != '{')
		return 0;
	for (; i < len && i < 9 && s[i] != '}'; i++) {
		char c = s[i];
		int d = c >= 'a' && c <= 'f' ? c - 'a' + 10 : xtext_hex_digit(c);
		if (d < 0)
			return 0;
		cp = cp << 4 | (unsigned long)d;
	}
	if (i == 3 || i >= len || s[i] != '}')
		return 0;
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	*cp_r = cp;
	return i + 1;
}

/* Length of the raw UTF-8 character at s if well-formed, else 0. */
static size_t raw_utf8_len(const char *s, size_t len)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

	return n <= len && address_utf8_valid(s, n) ? n : 0;
}

int xtext_utf8addr_decode(const char *src, size_t srclen, bool allow_utf8, char *dst,
			  size_t dstlen)
{
	size_t n = 0, i = 0;

	dstlen = cap_dstlen(dstlen);
	while (i < srclen) {
		unsigned char c = (unsigned char)src[i];
		unsigned long cp;
		size_t used = 0;
		char one[4];
		size_t outlen = 0;
		if (is_qchar(c)) {
			one[0] = (char)c;
			used = outlen = 1;
		} else if (c == '\\' && (used = embedded_char(src + i, srclen - i, &cp)) > 0) {
			outlen = utf8_put(cp, one);
		} else if (c >= 0x80 && allow_utf8 && (used = raw_utf8_len(src + i, srclen - i)) > 0) {
			memcpy(one, src + i, used);
			outlen = used;
		}
		if (used == 0 || n + outlen + 1 > dstlen)
			return -1;
		memcpy(dst + n, one, outlen);
		n += outlen;
		i += used;
	}
	if (dstlen == 0)
		return -1;
	dst[n] = '\0';
	return (int)n;
}

/* Decodes the character at a string already checked to be valid UTF-8. */
static size_t utf8_get(const unsigned char *s, unsigned long *cp_r)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
	unsigned long cp = n == 1 ? s[0] : s[0] & (0x7F >> n);

	for (size_t i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3F);
	*cp_r = cp;
	return n;
}

int xtext_utf8addr_encode(const char *src, char *dst, size_t dstlen)
{
	size_t n = 0, len = strlen(src);

	dstlen = cap_dstlen(dstlen);
	if (dstlen == 0 || !address_utf8_valid(src, len)) {
		if (dstlen > 0)
			dst[0] = '\0';
		return -1;
	}
	for (size_t i = 0; i < len;) {
		unsigned long cp;
		char piece[12];
		int plen;
		i += utf8_get((const unsigned char *)src + i, &cp);
		if (cp < 0x80 && is_qchar((unsigned char)cp))
			plen = snprintf(piece, sizeof(piece), "%c", (char)cp);
		else
			plen = snprintf(piece, sizeof(piece), "\\x{%02lX}", cp);
		if (n + (size_t)plen + 1 > dstlen) {
			dst[0] = '\0';
			return -1;
		}
		memcpy(dst + n, piece, (size_t)plen);
		n += (size_t)plen;
	}
	dst[n] = '\0';
	return (int)n;
}
