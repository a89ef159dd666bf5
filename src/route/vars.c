#include "route/vars.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "route/rulefile.h"
#include "util/xalloc.h"

struct vars_entry {
	char *name;
	size_t len;
	char *value;
};

/* Sorted by name (bytes, then length) for binary search; files define few variables but rule
   files may use them on every one of many thousand lines. */
struct vars {
	struct vars_entry *v;
	size_t n, cap;
};

static bool vars_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool vars_name_char(char c)
{
	return vars_name_start(c) || (c >= '0' && c <= '9');
}

static bool vars_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > VARS_NAME_MAX || !vars_name_start(name[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!vars_name_char(name[i]))
			return false;
	return true;
}

static int vars_cmp(const struct vars_entry *e, const char *name, size_t len)
{
	int c = memcmp(e->name, name, e->len < len ? e->len : len);

	if (c != 0)
		return c;
	return e->len < len ? -1 : e->len > len;
}

/* Returns the index of name, or where it would be inserted with *found_r false. */
static size_t vars_search(const struct vars *vars, const char *name, size_t len, bool *found_r)
{
	size_t lo = 0, hi = vars->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = vars_cmp(&vars->v[mid], name, len);
		if (c == 0) {
			*found_r = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found_r = false;
	return lo;
}

struct vars *vars_new(void)
{
	return xcalloc(1, sizeof(struct vars));
}

int vars_set(struct vars *vars, const char *name, const char *value, const char **error_r)
{
	size_t len = strlen(name), at;
	bool found;

	if (!vars_name_valid(name, len)) {
		*error_r = "bad variable name (use letters, digits and '_', at most 64)";
		return -1;
	}
	at = vars_search(vars, name, len, &found);
	if (found) {
		*error_r = "variable already defined";
		return -1;
	}
	if (vars->n == VARS_MAX) {
		*error_r = "too many variables";
		return -1;
	}
	if (vars->n == vars->cap) {
		vars->cap = vars->cap ? vars->cap * 2 : 16;
		vars->v = xrealloc(vars->v, vars->cap * sizeof(*vars->v));
	}
	memmove(&vars->v[at + 1], &vars->v[at], (vars->n - at) * sizeof(*vars->v));
	vars->v[at] = (struct vars_entry){ xstrdup(name), len, xstrdup(value) };
	vars->n++;
	return 0;
}

const char *vars_get(const struct vars *vars, const char *name, size_t len)
{
	bool found;
	size_t at;

	if (vars == NULL)
		return NULL;
	at = vars_search(vars, name, len, &found);
	return found ? vars->v[at].value : NULL;
}

size_t vars_count(const struct vars *vars)
{
	return vars != NULL ? vars->n : 0;
}

/* Finds the name of the reference at in[i] == '$' followed by a name or "{". Returns 0 with
   the name and the index after the reference, or -1 for a malformed "${". */
static int vars_reference(const char *in, size_t len, size_t i, const char **name_r,
			  size_t *nlen_r, size_t *next_r)
{
	if (in[i + 1] == '{') {
		const char *close = memchr(in + i + 2, '}', len - i - 2);
		if (close == NULL || !vars_name_valid(in + i + 2, (size_t)(close - in) - i - 2))
			return -1;
		*name_r = in + i + 2;
		*nlen_r = (size_t)(close - *name_r);
		*next_r = (size_t)(close - in) + 1;
		return 0;
	}
	size_t n = 1;
	while (i + 1 + n < len && vars_name_char(in[i + 1 + n]))
		n++;
	*name_r = in + i + 1;
	*nlen_r = n;
	*next_r = i + 1 + n;
	return 0;
}

/* Substitutes the '$' at in[i]; returns the index after it, or 0 with *error_r set. */
static size_t vars_dollar(const struct vars *vars, const char *in, size_t len, size_t i,
			  struct buf *out, char **error_r)
{
	const char *name, *value;
	size_t nlen, next;

	if (i + 1 == len || (in[i + 1] != '{' && !vars_name_start(in[i + 1]))) {
		/* "$$" is one '$'; a lone '$' is kept for regexes and $1..$9. */
		buf_putc(out, '$');
		return i + 1 < len && in[i + 1] == '$' ? i + 2 : i + 1;
	}
	if (vars_reference(in, len, i, &name, &nlen, &next) < 0) {
		*error_r = xasprintf("bad variable reference '%.*s'", (int)(len - i < 70 ? len - i : 70),
				     in + i);
		return 0;
	}
	value = vars_get(vars, name, nlen);
	if (value == NULL) {
		*error_r = xasprintf("undefined variable '%.*s'", (int)(nlen < 70 ? nlen : 70), name);
		return 0;
	}
	buf_puts(out, value);
	return next;
}

int vars_expand(const struct vars *vars, const char *in, size_t len, size_t max, struct buf *out,
		char **error_r)
{
	for (size_t i = 0; i < len;) {
		const char *dollar = memchr(in + i, '$', len - i);
		size_t lit = dollar != NULL ? (size_t)(dollar - in) - i : len - i;
		buf_append(out, in + i, lit);
		i += lit;
		if (dollar != NULL && (i = vars_dollar(vars, in, len, i, out, error_r)) == 0)
			return -1;
		if (out->len > max) {
			*error_r = xasprintf("line too long after variable substitution (more than %zu "
					     "bytes)", max);
			return -1;
		}
	}
	return 0;
}

static void vars_rule(void *arg, const struct rulefile_rule *rule, struct rulefile_errors *errors)
{
	const char *error;

	if (vars_set(arg, rule->fields[0], rule->nfields > 1 ? rule->rest[1] : "", &error) < 0)
		rulefile_error(errors, rule, "%.70s: %s", rule->fields[0], error);
}

static int vars_finish(int ret, struct vars *vars, struct vars **vars_r)
{
	if (ret < 0)
		vars_free(&vars);
	*vars_r = vars;
	return ret;
}

int vars_parse(const char *name, const char *text, size_t len, struct vars **vars_r,
	       char **errors_r)
{
	struct vars *vars = vars_new();

	/* Passing the set being built lets a value use the variables defined above it. */
	return vars_finish(rulefile_parse(name, text, len, vars, vars_rule, vars, errors_r), vars,
			   vars_r);
}

int vars_load(const char *path, struct vars **vars_r, char **errors_r)
{
	struct vars *vars = vars_new();

	return vars_finish(rulefile_load(path, vars, vars_rule, vars, errors_r), vars, vars_r);
}

void vars_free(struct vars **vars)
{
	if (*vars == NULL)
		return;
	for (size_t i = 0; i < (*vars)->n; i++) {
		free((*vars)->v[i].name);
		free((*vars)->v[i].value);
	}
	free((*vars)->v);
	xfree(vars);
}
