#include "deliver/pipe_agent_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "smtp/command.h"
#include "util/xalloc.h"

/* Room for getpwnam_r/getgrnam_r records; large group entries fail to resolve rather than
   being truncated. */
#define PIPE_NSS_BUF 16384

static int ident_groups(const char *user, struct pipe_ident *id)
{
	int n = 16;
	for (int tries = 0; tries < 8; tries++) {
		int want = n;
		id->groups = xrealloc(id->groups, (size_t)n * sizeof(gid_t));
		if (getgrouplist(user, id->gid, id->groups, &want) >= 0) {
			id->ngroups = want;
			return 0;
		}
		n = want > n ? want : n * 2;
	}
	return -1;
}

int pipe_ident_resolve(const char *user, const char *group, struct pipe_ident *id, const char **error_r)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char *nss = NULL;
	int ret = -1;

	memset(id, 0, sizeof(*id));
	if (user == NULL || user[0] == '\0' || geteuid() != 0)
		return 0;
	nss = xmalloc(PIPE_NSS_BUF);
	if (getpwnam_r(user, &pw, nss, PIPE_NSS_BUF, &pwp) != 0 || pwp == NULL)
		*error_r = "unknown user for the command";
	else if (pw.pw_uid == 0)
		*error_r = "refusing to run the command as root";
	else
		ret = 0;
	if (ret == 0) {
		id->change = true;
		id->uid = pw.pw_uid;
		id->gid = pw.pw_gid;
		if (group != NULL && group[0] != '\0') {
			if (getgrnam_r(group, &gr, nss + PIPE_NSS_BUF / 2, PIPE_NSS_BUF / 2, &grp) != 0 ||
			    grp == NULL) {
				*error_r = "unknown group for the command";
				ret = -1;
			} else {
				id->gid = gr.gr_gid;
			}
		}
		if (ret == 0 && ident_groups(user, id) < 0) {
			*error_r = "cannot list the groups of the command's user";
			ret = -1;
		}
	}
	free(nss);
	if (ret < 0)
		pipe_ident_clear(id);
	return ret;
}

void pipe_ident_clear(struct pipe_ident *id)
{
	xfree(&id->groups);
	id->ngroups = 0;
	id->change = false;
}

/* ORCPT as the original address: "rfc822;xtext" or RFC 6533 "utf-8;..." decoded; without
   one (or with one we cannot read) the recipient itself is the best we know. */
static char *env_orcpt(const struct delivery_rcpt *rc)
{
	const char *semi = rc->orcpt != NULL ? strchr(rc->orcpt, ';') : NULL;
	if (semi == NULL)
		return xstrdup(rc->address);
	size_t typelen = (size_t)(semi - rc->orcpt), len = strlen(semi + 1);
	char *dec = xmalloc(len + 1);
	int n = -1;
	if (typelen == 6 && strncasecmp(rc->orcpt, "rfc822", 6) == 0)
		n = xtext_decode(semi + 1, len, dec, len + 1);
	else if (typelen == 5 && strncasecmp(rc->orcpt, "utf-8", 5) == 0)
		n = xtext_utf8addr_decode(semi + 1, len, true, dec, len + 1);
	if (n < 0) {
		free(dec);
		return xstrdup(rc->address);
	}
	return dec;
}

/* The part of the local part after the first '+', unquoted: the quotes and backslashes of a
   quoted local part are syntax, not part of the mailbox name. */
static char *env_extension(const char *address)
{
	const char *at = strrchr(address, '@');
	size_t len = at != NULL ? (size_t)(at - address) : strlen(address);
	char *local = xmalloc(len + 1);
	size_t n = 0;
	bool quoted = len >= 2 && address[0] == '"' && address[len - 1] == '"';
	for (size_t i = quoted ? 1 : 0; i < (quoted ? len - 1 : len); i++) {
		if (quoted && address[i] == '\\' && i + 1 < len - 1)
			i++;
		local[n++] = address[i];
	}
	local[n] = '\0';
	const char *plus = strchr(local, '+');
	char *ext = xstrdup(plus != NULL ? plus + 1 : "");
	free(local);
	return ext;
}

char **pipe_env_new(const struct delivery_request *req, const struct delivery_rcpt *rc,
		    const char *const *extra)
{
	size_t nextra = 0;
	while (extra != NULL && extra[nextra] != NULL)
		nextra++;
	char **env = xcalloc(8 + nextra + 1, sizeof(char *));
	const char *at = strrchr(rc->address, '@');
	char *orcpt = env_orcpt(rc), *ext = env_extension(rc->address);
	size_t i = 0;
	env[i++] = xstrdup("PATH=/usr/bin:/bin");
	env[i++] = xasprintf("SENDER=%s", req->sender);
	env[i++] = xasprintf("RECIPIENT=%s", rc->address);
	env[i++] = xasprintf("ORIGINAL_RECIPIENT=%s", orcpt);
	env[i++] = xasprintf("EXTENSION=%s", ext);
	env[i++] = xasprintf("DOMAIN=%s", at != NULL ? at + 1 : "");
	env[i++] = xasprintf("QUEUE_ID=%s", req->id);
	env[i++] = xasprintf("SIZE=%" PRIu64, req->content_size);
	for (size_t k = 0; k < nextra; k++)
		env[i++] = xstrdup(extra[k]);
	free(orcpt);
	free(ext);
	return env;
}

void pipe_env_free(char ***envp)
{
	if (*envp == NULL)
		return;
	for (char **e = *envp; *e != NULL; e++)
		free(*e);
	xfree(envp);
}

/* write(2) only: this runs between fork and execve. */
static void child_say(const char *what, const char *arg, int err)
{
	const char *name = strerrorname_np(err);
	const char *parts[] = { "pipe: ", what, " ", arg, ": ", name != NULL ? name : "error", "\n" };
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0)
			break;
	}
}

/* The pipe ends may themselves sit on 0..2 (a daemon started with those closed), so they go
   above 2 first; dup2 then also clears their close-on-exec flag. */
static int child_stdio(const int fds[3])
{
	int high[3];
	for (int k = 0; k < 3; k++) {
		high[k] = fcntl(fds[k], F_DUPFD, 3);
		if (high[k] < 0)
			return -1;
	}
	for (int k = 0; k < 3; k++) {
		if (dup2(high[k], k) < 0)
			return -1;
	}
	return close_range(3, ~0U, 0);
}

/* Handlers do not survive execve, but ignored signals (SIGPIPE in the daemon) and the signal
   mask would: the program gets the defaults it expects. */
static void child_signals(void)
{
	sigset_t none;
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

void pipe_child_exec(const int fds[3], const struct pipe_ident *id, const char *dir,
		     char *const argv[], char *const envp[])
{
	child_signals();
	if (child_stdio(fds) < 0)
		_exit(EX_OSERR);
	/* Its own process group, so a timeout kills whatever it started too. */
	setsid();
	if (id->change && (setgroups((size_t)id->ngroups, id->groups) < 0 || setgid(id->gid) < 0 ||
			   setuid(id->uid) < 0)) {
		child_say("cannot change to the user of", argv[0], errno);
		_exit(EX_OSERR);
	}
	if (chdir(dir) < 0) {
		child_say("cannot enter directory", dir, errno);
		_exit(EX_OSERR);
	}
	execve(argv[0], argv, envp);
	child_say("cannot execute", argv[0], errno);
	_exit(EX_OSERR);
}
