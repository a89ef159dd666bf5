#ifndef POSTERN_ALIASFILE_H
#define POSTERN_ALIASFILE_H
#include <stddef.h>

#include "route/alias.h"
#include "util/strmap.h"

/* The /etc/aliases format, read by "postern alias import" (postern itself keeps aliases in
   its store). The parser never reads other files and never runs anything.

   - "name: target, target, ..."; a line starting with white space continues the entry
     above; lines whose first non-blank is '#' and blank lines are skipped anywhere, also
     between continuation lines. There are no comments after text on a line.
   - name: a local name (qualified with the default domain), "local@domain", the catch-all
     "@domain", or a quoted local name ("a b": ...). Names are case-insensitive, as in
     sendmail and Postfix: keys are stored with ASCII letters lower-cased.
   - Targets are split at commas outside double quotes; empty ones are skipped. Quotes must
     close on the line where they open. A target is one of:
       an address "local@domain" (canonical form kept, case of the local part kept);
       a local name, qualified with the default domain ("\name" is read as "name": a name
       listing itself is delivered to itself anyway, see alias.h);
       "|command args" or |command  -> "pipe:command args", the text kept as it is (inside
         quotes \" and \\ stand for " and \, other backslashes stay);
       a postern local target (error:..., pipe:, maildir:, webhook:, ...; see
         alias_target_is_local), kept verbatim, so sendmail's "error:nouser text" too;
       "/path" (file delivery) and ":include:/path" are reported as unsupported: postern has
         no file target, and reading included files would make the import depend on files
         the operator did not name (list the addresses instead).
   - An entry with any bad target, or none, is not imported at all, so that an import never
     delivers to a part of what the file says. A name defined twice keeps its first entry;
     the later one is reported ("first defined on line N") and dropped, as Postfix does.
   - Hostile input: lines over ALIASFILE_LINE_MAX bytes, control characters and invalid
     UTF-8 outside comments are reported; at most ALIASFILE_TARGETS_MAX targets per entry.
   Every problem is reported as "file:line: message" and parsing goes on with the next line;
   after ALIASFILE_ERRORS_MAX reports one more says how many were not shown. */

#define ALIASFILE_LINE_MAX 8192           /* bytes of a physical line, without the newline */
#define ALIASFILE_TARGETS_MAX 1000        /* targets of one entry */
#define ALIASFILE_ERRORS_MAX 100          /* problems reported one by one */
#define ALIASFILE_SIZE_MAX (64L << 20)    /* bytes aliasfile_load reads */

struct aliasfile_entry {
	char *key;                    /* valid for alias_key_check, ASCII lower-cased */
	struct alias_targets targets; /* at least one, each valid for alias_target_check */
	unsigned line;                /* where the entry starts */
};

struct aliasfile {
	struct aliasfile_entry *entries; /* in file order */
	size_t count;
	char **errors;                   /* "file:line: message", in line order */
	size_t nerrors;
	size_t cap, errors_cap;
	struct strmap index;             /* key -> entry, for duplicates and lookups */
};

/* Parses text, named name in messages; unqualified names are qualified with domain (NULL or
   "" makes them errors). Returns 0 when every line was good, -1 when problems were reported;
   either way *file_r holds the good entries and the problems, freed with aliasfile_free. */
int aliasfile_parse(const char *name, const char *text, size_t len, const char *domain,
		    struct aliasfile **file_r);

/* Reads path and parses it as aliasfile_parse. Returns 0 or -1 likewise; a file that cannot
   be read gives -1 with one problem "path: reason" and no entries. */
int aliasfile_load(const char *path, const char *domain, struct aliasfile **file_r);

/* An alias_lookup_fn over ctx, a struct aliasfile: returns 1 with the entry's targets when
   key (compared without ASCII case) is in the file, else 0; never -1. */
int aliasfile_lookup(void *ctx, const char *key, struct alias_targets *targets_r,
		     const char **error_r);

/* Frees *file (NULL allowed) and sets it to NULL. */
void aliasfile_free(struct aliasfile **file);

#endif
