/* A temporary spool for fuzz targets that need real queue files: made on the first input,
   removed at exit. Included by one target each (static functions). */
#ifndef POSTERN_FUZZ_SPOOL_H
#define POSTERN_FUZZ_SPOOL_H
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/spool.h"
#include "util/log.h"

static char state_dir[64];
static struct spool *spool;

static void require(int cond)
{
	if (!cond)
		abort();
}

static int fuzz_spool_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static void fuzz_spool_teardown(void)
{
	spool_free(&spool);
	nftw(state_dir, fuzz_spool_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Returns 1 when the spool was just made, 0 when it existed already. */
static int fuzz_spool_setup(const char *name)
{
	const char *error;
	if (spool != NULL)
		return 0;
	log_init(name, LOG_LEVEL_ERROR);
	snprintf(state_dir, sizeof(state_dir), "/tmp/postern-%s-XXXXXX", name);
	require(mkdtemp(state_dir) != NULL);
	require(spool_open(state_dir, &spool, &error) == 0);
	atexit(fuzz_spool_teardown);
	return 1;
}

#endif
