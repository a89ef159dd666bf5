#ifndef POSTERN_PIPE_AGENT_INT_H
#define POSTERN_PIPE_AGENT_INT_H
#include <stdbool.h>
#include <sys/types.h>

#include "deliver/delivery.h"

/* Internals shared by pipe_agent.c (the loop side) and pipe_agent_child.c (what runs between
   fork and execve, and what it needs prepared beforehand). */

/* Who the child becomes. Resolved in the parent: after fork in a threaded daemon only
   async-signal-safe calls are allowed, and NSS lookups are not. */
struct pipe_ident {
	bool change;   /* false: keep our own identity */
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups */
	int ngroups;
};

/* Resolves user and group (NULL or "" for none) into id. Only root changes identity; uid 0
   as a target is refused. Returns 0, or -1 with *error_r (static text). */
int pipe_ident_resolve(const char *user, const char *group, struct pipe_ident *id, const char **error_r);
/* Frees the group list of id. */
void pipe_ident_clear(struct pipe_ident *id);
/* Returns the NULL-terminated environment for one recipient of req, followed by extra. */
char **pipe_env_new(const struct delivery_request *req, const struct delivery_rcpt *rc,
		    const char *const *extra);
/* Frees an environment from pipe_env_new and sets *envp to NULL. */
void pipe_env_free(char ***envp);
/* In the child after fork: makes fds[0..2] its stdin, stdout and stderr, closes everything
   else, resets signals, starts a session, takes id, enters dir and executes argv. Never
   returns; a failure is written to stderr and ends the child with EX_OSERR (a retry). */
void pipe_child_exec(const int fds[3], const struct pipe_ident *id, const char *dir,
		     char *const argv[], char *const envp[]) __attribute__((noreturn));

#endif
