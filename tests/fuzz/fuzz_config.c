/* libFuzzer target for the configuration parser: any text must parse or be refused without
   a crash or leak, and whatever parses must dump to text that parses back to the same dump,
   in both the plain and the verbose form. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *fuzz_config_dump(const struct config *conf, bool verbose)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		abort();
	config_dump(conf, f, verbose);
	if (fclose(f) != 0)
		abort();
	return text;
}

/* Parses a dump, which must succeed, and returns the dump of the result. */
static char *fuzz_config_reparse(const char *text)
{
	struct config *conf = NULL;
	char *errors = NULL;

	if (config_parse("dump", text, strlen(text), &conf, &errors) < 0) {
		fprintf(stderr, "dump does not parse:\n%s\n---\n%s\n", text, errors);
		abort();
	}
	char *again = fuzz_config_dump(conf, false);
	config_free(&conf);
	return again;
}

static void fuzz_config_check(const char *want, const char *got)
{
	if (strcmp(want, got) != 0) {
		fprintf(stderr, "dump changed on re-parse:\n%s\n---\n%s\n", want, got);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *conf = NULL;
	char *errors = NULL;

	if (config_parse("fuzz", (const char *)data, size, &conf, &errors) < 0) {
		if (conf != NULL || errors == NULL || errors[0] == '\0')
			abort();
		free(errors);
		return 0;
	}
	char *plain = fuzz_config_dump(conf, false);
	char *verbose = fuzz_config_dump(conf, true);
	char *again = fuzz_config_reparse(plain);
	char *from_verbose = fuzz_config_reparse(verbose);
	fuzz_config_check(plain, again);
	fuzz_config_check(plain, from_verbose);
	free(plain);
	free(verbose);
	free(again);
	free(from_verbose);
	config_free(&conf);
	return 0;
}
