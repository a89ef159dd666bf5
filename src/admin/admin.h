#ifndef POSTERN_ADMIN_H
#define POSTERN_ADMIN_H
#include <stddef.h>

/* The admin HTTP JSON API (DESIGN.md 6, docs/api.md), served by the daemon on a unix socket
   in its own event loop. */

struct config;
struct smtp_context;
struct admin_server;

/* Writes the API socket's path (admin_socket, else state_dir/api.sock) into out. Returns 0,
   or -1 when it does not fit (or exceeds a unix socket path's limit). */
int admin_socket_path(const struct config *conf, char *out, size_t len);

/* Binds the socket (mode 0660) and serves requests from ctx's loop. Returns the server, or
   NULL with *error_r (static or valid until the next call) when the socket cannot be made. */
struct admin_server *admin_server_new(const struct smtp_context *ctx, const char **error_r);
/* Closes the socket, removes its file and frees *srv (NULL allowed). */
void admin_server_free(struct admin_server **srv);

#endif
