#ifndef POSTERN_DAEMON_H
#define POSTERN_DAEMON_H

/* "postern serve": runs the daemon in the foreground until SIGTERM/SIGINT; SIGHUP reloads
   the configuration. Returns the process exit status. */
int daemon_run(const char *config_path);

#endif
