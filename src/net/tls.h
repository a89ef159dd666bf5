#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <openssl/ssl.h>

/* Server-side TLS for STARTTLS (OpenSSL). */

/* Builds a server context from PEM certificate chain and key files. Returns it, or NULL with
   an OpenSSL or file error in *error_r (static storage). */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char **error_r);
/* Writes "TLSv1.3 with cipher NAME (BITS/BITS bits)" for the Received header. */
void tls_describe(SSL *ssl, char *out, size_t len);

#endif
