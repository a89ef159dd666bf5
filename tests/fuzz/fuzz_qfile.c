/* libFuzzer target for the queue file reader (src/queue/qfile.c). The input is written to one
   file per process and loaded. Besides memory errors it checks the promises of qfile.h: a
   loaded envelope is complete, the content offset and size describe the file exactly (with the
   trailer in its one fixed form), and writing the envelope back with qfile_create gives a file
   that loads to the same envelope. */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "util/log.h"

#include "fuzz_spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char input_path[128];

static void setup(void)
{
	if (fuzz_spool_setup("fuzz-qfile"))
		snprintf(input_path, sizeof(input_path), "%s/input", state_dir);
}

static void write_input(const uint8_t *data, size_t size)
{
	int fd = open(input_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	require(fd >= 0);
	while (size > 0) {
		ssize_t n = write(fd, data, size);
		require(n > 0);
		data += n;
		size -= (size_t)n;
	}
	close(fd);
}

/* What the writer makes of a value: control characters become '?'. */
static int same_written(const char *got, const char *loaded)
{
	if (got == NULL || loaded == NULL)
		return got == loaded;
	for (; *loaded != '\0'; loaded++, got++) {
		char want = (unsigned char)*loaded < 32 ? '?' : *loaded;
		if (*got != want)
			return 0;
	}
	return *got == '\0';
}

static int is_lower_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_envelope(const struct queue_envelope *env)
{
	require(queue_id_valid(env->id));
	require(env->sender != NULL);
	require(env->nrcpts > 0 && env->nrcpts <= env->rcpts_cap);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		require(r->address != NULL && r->address[0] != '\0');
		require(strchr(r->address, '\n') == NULL);
		require(r->orcpt == NULL || (r->orcpt[0] != '\0' && strchr(r->orcpt, ' ') == NULL));
		/* a one-letter state: something visible */
		require(r->state > ' ' && r->state < 127);
	}
}

/* The file's bytes agree with what qfile_load reported. */
static void check_layout(const uint8_t *data, size_t size, off_t off, uint64_t csize)
{
	require(off >= 8 && (uint64_t)off <= size);
	require(csize == size - (uint64_t)off - QFILE_TRAILER_LEN);
	require(memcmp(data + off - 8, "content\n", 8) == 0);
	/* no NUL byte anywhere in the envelope */
	require(memchr(data, '\0', (size_t)off) == NULL);
	const uint8_t *t = data + size - QFILE_TRAILER_LEN;
	require(memcmp(t, "\nPOSTERN-END ", 13) == 0 && t[QFILE_TRAILER_LEN - 1] == '\n');
	uint64_t v = 0;
	for (int i = 13; i < 29; i++) {
		require(is_lower_hex(t[i]));
		v = v << 4 | (uint64_t)(t[i] <= '9' ? t[i] - '0' : t[i] - 'a' + 10);
	}
	require(v == csize);
}

/* Writes env and the content back through qfile_create and loads the copy. */
static void check_round_trip(const struct queue_envelope *env, const uint8_t *content, uint64_t csize)
{
	struct qfile *qf;
	struct queue_envelope back;
	off_t off;
	uint64_t size;
	const char *why;
	require(qfile_create(spool, env, &qf) == 0);
	require(qfile_write(qf, content, (size_t)csize) == 0);
	require(qfile_finish(qf) == 0);
	require(qfile_load(qfile_path(qf), &back, &off, &size, &why) == 0);
	require(size == csize);
	require(strcmp(back.id, env->id) == 0);
	require(back.arrival_us == env->arrival_us);
	require(same_written(back.origin, env->origin));
	require(same_written(back.client_addr, env->client_addr));
	require(same_written(back.helo, env->helo));
	require(same_written(back.proto, env->proto));
	require(same_written(back.sender, env->sender));
	require(same_written(back.envid, env->envid));
	require(same_written(back.ret, env->ret));
	require(same_written(back.body, env->body));
	require(same_written(back.full_name, env->full_name));
	require(back.smtputf8 == env->smtputf8);
	require(back.nrcpts == env->nrcpts);
	for (size_t i = 0; i < env->nrcpts; i++) {
		require(same_written(back.rcpts[i].address, env->rcpts[i].address));
		require(back.rcpts[i].notify == env->rcpts[i].notify);
		require(back.rcpts[i].state == env->rcpts[i].state);
		if (env->rcpts[i].orcpt == NULL)
			require(back.rcpts[i].orcpt == NULL);
		else
			require(back.rcpts[i].orcpt != NULL &&
				strcmp(back.rcpts[i].orcpt, env->rcpts[i].orcpt) == 0);
	}
	queue_envelope_clear(&back);
	qfile_abort(&qf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_envelope env;
	off_t off = -1;
	uint64_t csize = UINT64_MAX;
	const char *why = NULL;

	setup();
	write_input(data, size);
	if (qfile_load(input_path, &env, &off, &csize, &why) < 0) {
		require(why != NULL && why[0] != '\0');
		require(env.sender == NULL && env.rcpts == NULL && env.nrcpts == 0);
		why = NULL;
		require(qfile_check(input_path, "0123456789ABCDE", &why) < 0 && why != NULL);
		return 0;
	}
	check_envelope(&env);
	check_layout(data, size, off, csize);
	why = NULL;
	require(qfile_check(input_path, env.id, &why) == 0);
	check_round_trip(&env, data + off, csize);
	queue_envelope_clear(&env);
	return 0;
}
