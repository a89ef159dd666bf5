#include "net/tls.h"

#include <stdio.h>

#include <openssl/err.h>

static const char *tls_error(const char *what, const char *file)
{
	static char buf[512];
	unsigned long e = ERR_get_error();
	char reason[256];
	ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(buf, sizeof(buf), "%s %s: %s", what, file, e ? reason : "unknown error");
	ERR_clear_error();
	return buf;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = tls_error("cannot create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Mail clients rarely resume; a cache would only hold memory. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		*error_r = tls_error("cannot load certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		*error_r = tls_error("cannot load key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = tls_error("key does not match certificate", cert_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_describe(SSL *ssl, char *out, size_t len)
{
	int alg = 0;
	int bits = SSL_get_cipher_bits(ssl, &alg);
	snprintf(out, len, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
		 SSL_get_cipher_name(ssl), bits, alg);
}
