#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

/* The postern command's subcommands; each returns the process exit status. */

/* Returns the configuration file to use: --config/-c, else $POSTERN_CONFIG, else the default. */
const char *cli_config_path(const char *given);
/* "postern config check|dump [-v]" */
int cli_config(int argc, char **argv);
/* "postern sendmail ..." and the "sendmail" name: sendmail-compatible submission. */
int cli_sendmail(int argc, char **argv);
/* "postern queue list|show|flush|hold|release|delete|requeue|shape ...": the queue through
   the daemon's admin API. */
int cli_queue(int argc, char **argv);

/* "postern status [--json]": the running daemon, its store's schema version, its rules. */
int cli_status(int argc, char **argv);
/* "postern reload": checks the configuration and rule files, then has the daemon reload. */
int cli_reload(int argc, char **argv);
/* "postern route ADDRESS [--sender S]": the routing decision for an address. */
int cli_route(int argc, char **argv);
/* "postern alias add|rm|show|list|import ...": aliases in the store. */
int cli_alias(int argc, char **argv);
/* "postern store migrate|version": the store's schema. */
int cli_store(int argc, char **argv);

#endif
