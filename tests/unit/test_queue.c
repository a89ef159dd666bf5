#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "queue/commit.h"
#include "queue/qfile.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "util/buf.h"
#include "util/log.h"

/* Queue IDs, queue files and the spool (DESIGN.md 3). Every test that touches the disk gets a
   fresh state directory from mkdtemp. */

#define ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define TRAILER_FMT "\nPOSTERN-END %016" PRIx64 "\n"

/* ---- helpers ---- */

struct fx {
	char dir[64];
	struct spool *spool;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *error = NULL;
	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/postern-test-queue-XXXXXX");
	if (mkdtemp(fx->dir) == NULL || spool_open(fx->dir, &fx->spool, &error) < 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

/* As on a file system without O_TMPFILE: every new file is a named tmp/ID. */
static int fx_setup_named(void **state)
{
	if (fx_setup(state) < 0)
		return -1;
	spool_no_tmpfile(((struct fx *)*state)->spool);
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	spool_free(&fx->spool);
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

static bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void spew(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n <= 0)
			fail_msg("cannot write %s: %s", path, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	close(fd);
}

/* Returns the whole file (NUL-terminated for convenience), or NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct buf b = { 0 };
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	*len_r = b.len;
	return b.data != NULL ? b.data : calloc(1, 1);
}

/* Counts the non-dot entries of every hash directory of queue. */
static size_t count_queue(const struct spool *spool, const char *queue)
{
	size_t total = 0;
	for (const char *h = ALPHABET; *h != '\0'; h++) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/%s/%c", spool_root(spool), queue, *h);
		DIR *d = opendir(dir);
		if (d == NULL)
			fail_msg("cannot open %s", dir);
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			total += de->d_name[0] != '.';
		closedir(d);
	}
	return total;
}

static void expect_field(const char *what, const char *got, const char *want)
{
	if (got == NULL && want == NULL)
		return;
	if (got == NULL || want == NULL || strcmp(got, want) != 0)
		fail_msg("%s is \"%.200s\", expected \"%.200s\"", what, got ? got : "(null)",
			 want ? want : "(null)");
}

static void expect_env(const struct queue_envelope *got, const struct queue_envelope *want)
{
	expect_field("id", got->id, want->id);
	assert_int_equal(got->arrival_us, want->arrival_us);
	expect_field("origin", got->origin, want->origin);
	expect_field("client_addr", got->client_addr, want->client_addr);
	expect_field("helo", got->helo, want->helo);
	expect_field("proto", got->proto, want->proto);
	expect_field("sender", got->sender, want->sender != NULL ? want->sender : "");
	expect_field("envid", got->envid, want->envid);
	expect_field("ret", got->ret, want->ret);
	expect_field("body", got->body, want->body);
	expect_field("full_name", got->full_name, want->full_name);
	assert_int_equal(got->smtputf8, want->smtputf8);
	assert_int_equal(got->nrcpts, want->nrcpts);
	for (size_t i = 0; i < want->nrcpts; i++) {
		char what[64];
		snprintf(what, sizeof(what), "rcpt %zu address", i);
		expect_field(what, got->rcpts[i].address, want->rcpts[i].address);
		snprintf(what, sizeof(what), "rcpt %zu orcpt", i);
		expect_field(what, got->rcpts[i].orcpt, want->rcpts[i].orcpt);
		expect_field(what, got->rcpts[i].refusal, want->rcpts[i].refusal);
		if (got->rcpts[i].notify != want->rcpts[i].notify)
			fail_msg("rcpt %zu notify is %x, expected %x", i, got->rcpts[i].notify,
				 want->rcpts[i].notify);
		if (got->rcpts[i].state != want->rcpts[i].state)
			fail_msg("rcpt %zu state is '%c', expected '%c'", i, got->rcpts[i].state,
				 want->rcpts[i].state);
	}
}

/* An envelope using every field, with values that stress the record format. */
static void env_full(struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
	queue_id_new(env->id);
	env->arrival_us = INT64_C(1700000000123456);
	queue_envelope_set(&env->origin, "smtp");
	queue_envelope_set(&env->client_addr, "2001:db8::1");
	queue_envelope_set(&env->helo, "[192.0.2.1]");
	queue_envelope_set(&env->proto, "ESMTPSA");
	queue_envelope_set(&env->sender, "sender+tag@example.org");
	queue_envelope_set(&env->envid, "ENV+2Bid=x");
	queue_envelope_set(&env->ret, "HDRS");
	queue_envelope_set(&env->body, "8BITMIME");
	queue_envelope_set(&env->full_name, "J\xc3\xb6hn \"Q\" Doe, Jr. (x) content");
	env->smtputf8 = true;
	queue_envelope_add_rcpt(env, "a@example.net", 0, NULL);
	queue_envelope_add_rcpt(env, "b@example.net", 1 << 0, "rfc822;b+2Bx@example.net");
	queue_envelope_refuse_last(env, "550 5.4.6 alias loop: b@example.net -> c@example.net -> b@example.net");
	queue_envelope_add_rcpt(env, "\"quoted local part\"@example.net", (1 << 1) | (1 << 2),
				"utf-8;x@y");
	queue_envelope_add_rcpt(env, "m\xc3\xbcnchen@\xe4\xbe\x8b\xe3\x81\x88.jp", 0xF, NULL);
	queue_envelope_add_rcpt(env, "content", 1 << 3, NULL);
	queue_envelope_add_rcpt(env, "POSTERN-END 0000000000000000@x", 0, "");
}

/* The minimal envelope: null sender, one recipient, every optional field absent. */
static void env_min(struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
	queue_id_new(env->id);
	queue_envelope_set(&env->sender, "");
	queue_envelope_add_rcpt(env, "r@example.net", 0, NULL);
}

/* Content bytes for a size: pseudo-random, with trailer lookalikes at the start, the middle
   and the very end (the last one describing the bytes before it, as a real trailer would). */
static unsigned char *make_content(size_t len, uint32_t seed)
{
	unsigned char *d = malloc(len + 1);
	char t[QFILE_TRAILER_LEN + 1];
	uint32_t x = seed | 1;
	assert_non_null(d);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		d[i] = (unsigned char)x;
	}
	if (len >= 13)
		memcpy(d, "\nPOSTERN-END ", 13);
	if (len >= 2 * QFILE_TRAILER_LEN) {
		snprintf(t, sizeof(t), TRAILER_FMT, (uint64_t)(len / 2));
		memcpy(d + len / 2, t, QFILE_TRAILER_LEN);
	}
	if (len >= QFILE_TRAILER_LEN) {
		snprintf(t, sizeof(t), TRAILER_FMT, (uint64_t)(len - QFILE_TRAILER_LEN));
		memcpy(d + len - QFILE_TRAILER_LEN, t, QFILE_TRAILER_LEN);
	}
	return d;
}

#define ALL SIZE_MAX

/* Writes a queue file for env whose content is data, in writes of the sizes in chunks (cycled;
   ALL writes everything at once), and commits it to queue. Writes its path into path. */
static void write_qfile(const struct fx *fx, const struct queue_envelope *env, const void *data,
			size_t len, const size_t *chunks, size_t nchunks, const char *queue,
			char *path, size_t pathlen)
{
	struct qfile *qf = NULL;
	char tmp[4096];
	assert_int_equal(qfile_create(fx->spool, env, &qf), 0);
	assert_non_null(qf);
	assert_string_equal(qfile_id(qf), env->id);
	assert_int_equal(spool_path(fx->spool, SPOOL_TMP, env->id, tmp, sizeof(tmp)), 0);
	if (!qfile_anonymous(qf))
		assert_string_equal(qfile_path(qf), tmp);
	assert_true(path_exists(qfile_path(qf)));
	assert_true(qfile_fd(qf) >= 0);
	size_t done = 0;
	for (size_t i = 0; done < len || (len == 0 && i == 0); i++) {
		size_t n = chunks[i % nchunks];
		if (n > len - done)
			n = len - done;
		assert_int_equal(qfile_write(qf, (const char *)data + done, n), 0);
		done += n;
		assert_int_equal(qfile_content_size(qf), done);
	}
	assert_int_equal(qfile_error(qf), 0);
	assert_int_equal(qfile_finish(qf), 0);
	assert_int_equal(qfile_content_size(qf), len);
	assert_int_equal(spool_path(fx->spool, queue, env->id, path, pathlen), 0);
	assert_int_equal(qfile_commit_sync(fx->spool, &qf, queue), 0);
	assert_null(qf);
	assert_false(path_exists(tmp));
	assert_true(path_exists(path));
}

/* Loads path and compares the envelope, the content and the trailer with what was written. */
static void expect_loaded(const char *path, const struct queue_envelope *want, const void *data,
			  size_t len)
{
	struct queue_envelope env;
	off_t off = -1;
	uint64_t size = UINT64_MAX;
	const char *why = NULL;
	if (qfile_load(path, &env, &off, &size, &why) != 0)
		fail_msg("qfile_load of %s failed: %s", path, why ? why : "(no reason)");
	expect_env(&env, want);
	queue_envelope_clear(&env);

	size_t flen;
	char *file = slurp(path, &flen);
	assert_non_null(file);
	assert_int_equal(size, len);
	assert_true(off > 0);
	assert_int_equal(flen, (size_t)off + len + QFILE_TRAILER_LEN);
	assert_memory_equal(file + off - 8, "content\n", 8);
	if (len > 0)
		assert_memory_equal(file + off, data, len);
	char t[QFILE_TRAILER_LEN + 1];
	snprintf(t, sizeof(t), TRAILER_FMT, (uint64_t)len);
	assert_memory_equal(file + off + len, t, QFILE_TRAILER_LEN);
	free(file);

	why = NULL;
	assert_int_equal(qfile_check(path, want->id, &why), 0);
	char other[QUEUE_ID_LEN + 1];
	memcpy(other, want->id, sizeof(other));
	other[0] = other[0] == 'Z' ? 'Y' : 'Z';
	why = NULL;
	assert_int_equal(qfile_check(path, other, &why), -1);
	assert_string_equal(why, "queue ID inside does not match the file name");
	why = NULL;
	assert_int_equal(qfile_check(path, "not-an-id", &why), -1);
	assert_non_null(why);
}

/* ---- queue IDs ---- */

static uint64_t id_time_part(const char *id)
{
	uint64_t v = 0;
	for (int i = 0; i < 11; i++)
		v = v << 5 | (uint64_t)(strchr(ALPHABET, id[i]) - ALPHABET);
	return v;
}

static uint64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void test_queue_id_sequence(void **state)
{
	enum { N = 100000 };
	char prev[QUEUE_ID_LEN + 1] = "", id[QUEUE_ID_LEN + 2];
	uint64_t before = now_us(), first = 0;
	for (int i = 0; i < N; i++) {
		memset(id, 'x', sizeof(id));
		queue_id_new(id);
		if (strlen(id) != QUEUE_ID_LEN)
			fail_msg("ID %d \"%s\" has length %zu", i, id, strlen(id));
		if (!queue_id_valid(id))
			fail_msg("ID %d \"%s\" is not valid", i, id);
		if (strspn(id, ALPHABET) != QUEUE_ID_LEN)
			fail_msg("ID %d \"%s\" leaves the alphabet", i, id);
		if (i > 0 && strcmp(prev, id) >= 0)
			fail_msg("ID %d \"%s\" does not sort after \"%s\"", i, id, prev);
		if (queue_id_hash(id) != id[QUEUE_ID_LEN - 1])
			fail_msg("hash of \"%s\" is '%c'", id, queue_id_hash(id));
		if (i == 0)
			first = id_time_part(id);
		memcpy(prev, id, sizeof(prev));
	}
	uint64_t after = now_us();
	/* the first eleven characters are the arrival time in microseconds */
	if (first < before || first > after)
		fail_msg("time part %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", first, before,
			 after);
	assert_true(id_time_part(prev) > first);
	assert_true(id_time_part(prev) <= after + N);
}

enum { ID_THREADS = 4, ID_PER_THREAD = 25000 };
static char thread_ids[ID_THREADS][ID_PER_THREAD][QUEUE_ID_LEN + 1];

static void *id_thread(void *arg)
{
	char (*ids)[QUEUE_ID_LEN + 1] = arg;
	for (int i = 0; i < ID_PER_THREAD; i++)
		queue_id_new(ids[i]);
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_queue_id_threads(void **state)
{
	pthread_t t[ID_THREADS];
	for (int i = 0; i < ID_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, id_thread, thread_ids[i]), 0);
	for (int i = 0; i < ID_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < ID_THREADS; i++) {
		for (int j = 1; j < ID_PER_THREAD; j++) {
			if (strcmp(thread_ids[i][j - 1], thread_ids[i][j]) >= 0)
				fail_msg("thread %d: \"%s\" then \"%s\"", i, thread_ids[i][j - 1],
					 thread_ids[i][j]);
		}
	}
	qsort(thread_ids, ID_THREADS * ID_PER_THREAD, QUEUE_ID_LEN + 1, cmp_id);
	char(*all)[QUEUE_ID_LEN + 1] = thread_ids[0];
	for (int i = 1; i < ID_THREADS * ID_PER_THREAD; i++) {
		if (strcmp(all[i - 1], all[i]) == 0)
			fail_msg("duplicate ID %s across threads", all[i]);
		assert_true(queue_id_valid(all[i]));
	}
}

struct id_case {
	const char *s;
	int valid;
};

static const struct id_case id_cases[] = {
	{ "000000000000000", 1 },
	{ "ZZZZZZZZZZZZZZZ", 1 },
	{ "0123456789ABCDE", 1 },
	{ "FGHJKMNPQRSTVWX", 1 },
	{ "YZ0123456789ABC", 1 },
	{ "", 0 },
	{ "0", 0 },
	{ "0123456789ABCD", 0 },     /* 14 */
	{ "0123456789ABCDEF", 0 },   /* 16 */
	{ "0123456789ABCDE0123456789ABCDE", 0 },
	{ "0123456789abcde", 0 },    /* lower case */
	{ "0123456789ABCDe", 0 },
	{ "a123456789ABCDE", 0 },
	{ "z123456789ABCDE", 0 },
	{ "I123456789ABCDE", 0 },
	{ "0123456L89ABCDE", 0 },
	{ "0123456789ABCDO", 0 },
	{ "U123456789ABCDE", 0 },
	{ "0123456789ABCDI", 0 },
	{ "0123456\0" "89ABCDE", 0 }, /* NUL inside */
	{ "0123456 89ABCDE", 0 },
	{ "0123456789ABCD ", 0 },
	{ " 123456789ABCDE", 0 },
	{ "0123456789ABCD\n", 0 },
	{ "0123456789ABCD\t", 0 },
	{ "0123456/89ABCDE", 0 },
	{ "../../../etc/pw", 0 },
	{ "0123456.89ABCDE", 0 },
	{ "0123456-89ABCDE", 0 },
	{ "0123456_89ABCDE", 0 },
	{ "0123456789ABC\xc3\x84", 0 }, /* 15 bytes, UTF-8 */
	{ "0123456789ABCD\xff", 0 },
	{ "0123456789ABCD\x80", 0 },
};

static void test_queue_id_valid(void **state)
{
	for (size_t i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
		if (queue_id_valid(id_cases[i].s) != id_cases[i].valid)
			fail_msg("case %zu: queue_id_valid(\"%s\") is %d, expected %d", i, id_cases[i].s,
				 queue_id_valid(id_cases[i].s), id_cases[i].valid);
	}
	/* every byte value at every position: valid exactly when it is in the alphabet */
	for (int pos = 0; pos < QUEUE_ID_LEN; pos++) {
		for (int c = 1; c < 256; c++) {
			char id[QUEUE_ID_LEN + 1] = "0123456789ABCDE";
			id[pos] = (char)c;
			int want = strchr(ALPHABET, c) != NULL;
			if (queue_id_valid(id) != want)
				fail_msg("byte 0x%02x at %d: queue_id_valid is %d", c, pos, !want);
		}
	}
}

static void test_queue_id_hash(void **state)
{
	assert_int_equal(queue_id_hash("0123456789ABCDE"), 'E');
	assert_int_equal(queue_id_hash("ZZZZZZZZZZZZZZ0"), '0');
	assert_int_equal(queue_id_hash("000000000000000"), '0');
	assert_int_equal(queue_id_hash("00000000000000Z"), 'Z');
	for (int i = 0; i < 1000; i++) {
		char id[QUEUE_ID_LEN + 1];
		queue_id_new(id);
		assert_int_equal(queue_id_hash(id), id[14]);
		assert_non_null(strchr(ALPHABET, queue_id_hash(id)));
	}
}

/* ---- spool ---- */

static void test_spool_open(void **state)
{
	struct fx *fx = *state;
	char path[4096];
	snprintf(path, sizeof(path), "%s/spool", fx->dir);
	assert_string_equal(spool_root(fx->spool), path);
	size_t nqueues = 0;
	for (const char *const *q = spool_queues; *q != NULL; q++, nqueues++) {
		for (const char *h = ALPHABET; *h != '\0'; h++) {
			snprintf(path, sizeof(path), "%s/spool/%s/%c", fx->dir, *q, *h);
			if (!is_dir(path))
				fail_msg("%s is not a directory", path);
		}
		assert_int_equal(count_queue(fx->spool, *q), 0);
	}
	assert_int_equal(nqueues, 9);
	const char *want[] = { "tmp", "maildrop", "incoming", "active", "deferred", "hold",
			       "archive", "corrupt", "defer" };
	for (size_t i = 0; i < 9; i++)
		assert_string_equal(spool_queues[i], want[i]);
	assert_true(spool_free_bytes(fx->spool) > 0);

	/* opening again is harmless; a missing state directory is created */
	struct spool *s = NULL;
	const char *error = NULL;
	assert_int_equal(spool_open(fx->dir, &s, &error), 0);
	spool_free(&s);
	assert_null(s);
	spool_free(&s);
	snprintf(path, sizeof(path), "%s/new/state", fx->dir);
	assert_int_equal(spool_open(path, &s, &error), 0);
	snprintf(path, sizeof(path), "%s/new/state/spool/corrupt/Z", fx->dir);
	assert_true(is_dir(path));
	spool_free(&s);

	/* a regular file in the way */
	snprintf(path, sizeof(path), "%s/file", fx->dir);
	spew(path, "x", 1);
	error = NULL;
	assert_int_equal(spool_open(path, &s, &error), -1);
	assert_null(s);
	assert_non_null(error);
	assert_non_null(strstr(error, "cannot create spool directory"));
}

static void test_spool_path(void **state)
{
	struct fx *fx = *state;
	const char *root = spool_root(fx->spool);
	char want[4096], path[4096];
	snprintf(want, sizeof(want), "%s/incoming/E/0123456789ABCDE", root);
	assert_int_equal(spool_path(fx->spool, SPOOL_INCOMING, "0123456789ABCDE", path, sizeof(path)), 0);
	assert_string_equal(path, want);
	size_t n = strlen(want);
	assert_int_equal(spool_path(fx->spool, SPOOL_INCOMING, "0123456789ABCDE", path, n + 1), 0);
	assert_string_equal(path, want);
	assert_int_equal(spool_path(fx->spool, SPOOL_INCOMING, "0123456789ABCDE", path, n), -1);
	assert_int_equal(spool_path(fx->spool, SPOOL_INCOMING, "0123456789ABCDE", path, 1), -1);

	snprintf(want, sizeof(want), "%s/corrupt/Z", root);
	assert_int_equal(spool_dir(fx->spool, SPOOL_CORRUPT, "00000000000000Z", path, sizeof(path)), 0);
	assert_string_equal(path, want);
	n = strlen(want);
	assert_int_equal(spool_dir(fx->spool, SPOOL_CORRUPT, "00000000000000Z", path, n + 1), 0);
	assert_int_equal(spool_dir(fx->spool, SPOOL_CORRUPT, "00000000000000Z", path, n), -1);
}

/* ---- queue files: round trips ---- */

static void test_qfile_round_trip_sizes(void **state)
{
	struct fx *fx = *state;
	static const size_t sizes[] = { 0, 1, 2, 12, 13, 29, 30, 31, 59, 60, 4095,
					65535, 65536, 65537, 131075, 1048576, 1048577 };
	static const size_t plan_all[] = { ALL };
	static const size_t plan_small[] = { 1, 7, 65535 };
	static const size_t plan_buf[] = { 65536 };
	static const size_t plan_mixed[] = { 4093, 0, 70001, 0 };
	static const struct { const size_t *c; size_t n; } plans[] = {
		{ plan_all, 1 }, { plan_small, 3 }, { plan_buf, 1 }, { plan_mixed, 4 },
	};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (size_t p = 0; p < sizeof(plans) / sizeof(plans[0]); p++) {
			struct queue_envelope env;
			char path[4096];
			unsigned char *data = make_content(sizes[s], (uint32_t)(s * 31 + p));
			if (p % 2 == 0)
				env_full(&env);
			else
				env_min(&env);
			write_qfile(fx, &env, data, sizes[s], plans[p].c, plans[p].n, SPOOL_INCOMING,
				    path, sizeof(path));
			expect_loaded(path, &env, data, sizes[s]);
			unlink(path);
			queue_envelope_clear(&env);
			free(data);
		}
	}
}

static void test_qfile_envelope_fields(void **state)
{
	struct fx *fx = *state;
	static const size_t all[] = { ALL };
	const char *body = "Subject: x\r\n\r\nhello\r\n";
	char path[4096];
	struct queue_envelope env;

	/* every field, and a sender / recipient set that changes per round */
	env_full(&env);
	write_qfile(fx, &env, body, strlen(body), all, 1, SPOOL_INCOMING, path, sizeof(path));
	expect_loaded(path, &env, body, strlen(body));
	queue_envelope_clear(&env);

	env_min(&env);
	write_qfile(fx, &env, body, strlen(body), all, 1, "deferred", path, sizeof(path));
	expect_loaded(path, &env, body, strlen(body));
	queue_envelope_clear(&env);

	/* a NULL sender is written as the null sender */
	memset(&env, 0, sizeof(env));
	queue_id_new(env.id);
	queue_envelope_add_rcpt(&env, "r@example.net", 0, NULL);
	write_qfile(fx, &env, "", 0, all, 1, SPOOL_INCOMING, path, sizeof(path));
	expect_loaded(path, &env, "", 0);
	queue_envelope_clear(&env);

	/* many recipients with every notify combination, orcpt on every other one */
	memset(&env, 0, sizeof(env));
	queue_id_new(env.id);
	env.arrival_us = -1;
	queue_envelope_set(&env.sender, "s@example.org");
	for (unsigned i = 0; i < 200; i++) {
		char addr[64], orcpt[64];
		snprintf(addr, sizeof(addr), "user%u@host%u.example", i, i % 7);
		snprintf(orcpt, sizeof(orcpt), "rfc822;orig%u+2B@example", i);
		queue_envelope_add_rcpt(&env, addr, i & 0xF, i % 2 ? orcpt : NULL);
	}
	env.rcpts[5].state = 'D';
	write_qfile(fx, &env, body, strlen(body), all, 1, SPOOL_INCOMING, path, sizeof(path));
	expect_loaded(path, &env, body, strlen(body));
	queue_envelope_clear(&env);
}

/* Control characters in a value cannot start a record of their own: they come back as '?'. */
static void test_qfile_control_chars(void **state)
{
	struct fx *fx = *state;
	static const size_t all[] = { ALL };
	char path[4096];
	struct queue_envelope env, want;
	memset(&env, 0, sizeof(env));
	memset(&want, 0, sizeof(want));
	queue_id_new(env.id);
	memcpy(want.id, env.id, sizeof(env.id));
	queue_envelope_set(&env.helo, "evil\r\nrcpt Q 0 - injected@evil.example");
	queue_envelope_set(&want.helo, "evil??rcpt Q 0 - injected@evil.example");
	queue_envelope_set(&env.full_name, "a\tb\x01" "c\x1f");
	queue_envelope_set(&want.full_name, "a?b?c?");
	queue_envelope_set(&env.sender, "s\n@x");
	queue_envelope_set(&want.sender, "s?@x");
	queue_envelope_set(&env.client_addr, "\ncontent\n");
	queue_envelope_set(&want.client_addr, "?content?");
	queue_envelope_add_rcpt(&env, "r\n@x\x7f", 0, NULL);
	queue_envelope_add_rcpt(&want, "r?@x\x7f", 0, NULL);
	write_qfile(fx, &env, "x", 1, all, 1, SPOOL_INCOMING, path, sizeof(path));
	expect_loaded(path, &want, "x", 1);
	queue_envelope_clear(&env);
	queue_envelope_clear(&want);
}

/* The longest ORCPT the SMTP server stores (session_add_rcpt: "rfc822;" and 500 decoded
   characters, each xtext-encoded as "+XX") must come back unchanged, and so must the
   recipient address behind it. */
static void test_qfile_long_orcpt(void **state)
{
	struct fx *fx = *state;
	static const size_t all[] = { ALL };
	static const size_t lens[] = { 1000, 1016, 1023, 1024, 1025, 1500 };
	int failures = 0;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char orcpt[1600], path[4096];
		struct queue_envelope env, got;
		off_t off;
		uint64_t size;
		const char *why = NULL;
		strcpy(orcpt, "rfc822;");
		for (size_t n = strlen(orcpt); n < lens[i]; n++)
			orcpt[n] = n % 3 == 1 ? '+' : n % 3 == 2 ? '2' : 'B';
		orcpt[lens[i]] = '\0';
		env_min(&env);
		queue_envelope_add_rcpt(&env, "second@example.net", 6, orcpt);
		write_qfile(fx, &env, "x", 1, all, 1, SPOOL_INCOMING, path, sizeof(path));
		if (qfile_load(path, &got, &off, &size, &why) != 0) {
			print_error("ORCPT of %zu: load failed: %s\n", lens[i], why);
			failures++;
		} else {
			if (got.nrcpts != 2 || strcmp(got.rcpts[1].address, "second@example.net") != 0 ||
			    got.rcpts[1].orcpt == NULL || strcmp(got.rcpts[1].orcpt, orcpt) != 0 ||
			    got.rcpts[1].notify != 6) {
				print_error("ORCPT of %zu: recipient \"%.60s\", orcpt of %zu bytes\n", lens[i],
					    got.nrcpts == 2 ? got.rcpts[1].address : "?",
					    got.nrcpts == 2 && got.rcpts[1].orcpt ? strlen(got.rcpts[1].orcpt) : 0);
				failures++;
			}
			queue_envelope_clear(&got);
		}
		queue_envelope_clear(&env);
	}
	if (failures > 0)
		fail_msg("%d long ORCPTs did not survive the queue file", failures);
}

/* ---- queue files: creation, errors, abort ---- */

static void test_qfile_create_abort(void **state)
{
	struct fx *fx = *state;
	struct queue_envelope env;
	struct qfile *qf = NULL, *qf2 = NULL;
	char tmp[4096];
	env_min(&env);
	assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
	snprintf(tmp, sizeof(tmp), "%s", qfile_path(qf));
	assert_true(path_exists(tmp));
	/* the same ID twice: O_EXCL */
	errno = 0;
	assert_int_equal(qfile_create(fx->spool, &env, &qf2), -1);
	assert_int_equal(errno, EEXIST);
	assert_null(qf2);
	assert_int_equal(qfile_write(qf, "abc", 3), 0);
	assert_int_equal(qfile_write(qf, NULL, 0), 0);
	assert_int_equal(qfile_content_size(qf), 3);
	qfile_abort(&qf);
	assert_null(qf);
	assert_false(path_exists(tmp));
	qfile_abort(&qf);
	qfile_close(&qf);
	assert_int_equal(count_queue(fx->spool, SPOOL_TMP), 0);

	/* close keeps the unfinished file, which is then not a valid queue file: with a little
	   content (perhaps still in the buffer), and with more than the buffer holds */
	assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
	assert_int_equal(qfile_write(qf, "abc", 3), 0);
	qfile_close(&qf);
	assert_null(qf);
	assert_true(path_exists(tmp));
	const char *why = NULL;
	assert_int_equal(qfile_check(tmp, env.id, &why), -1);
	assert_non_null(why);
	unlink(tmp);
	static char big[70000];
	memset(big, 'x', sizeof(big));
	assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
	assert_int_equal(qfile_write(qf, big, sizeof(big)), 0);
	qfile_close(&qf);
	why = NULL;
	assert_int_equal(qfile_check(tmp, env.id, &why), -1);
	assert_string_equal(why, "torn file: trailer does not match its size");
	unlink(tmp);

	/* a finished but uncommitted file is valid where it lies */
	assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
	assert_int_equal(qfile_write(qf, "abc", 3), 0);
	assert_int_equal(qfile_finish(qf), 0);
	why = NULL;
	assert_int_equal(qfile_check(tmp, env.id, &why), 0);
	qfile_abort(&qf);
	assert_false(path_exists(tmp));

	/* the hash directory is missing */
	char dir[4096];
	assert_int_equal(spool_dir(fx->spool, SPOOL_TMP, env.id, dir, sizeof(dir)), 0);
	assert_int_equal(rmdir(dir), 0);
	errno = 0;
	assert_int_equal(qfile_create(fx->spool, &env, &qf), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(qf);
	assert_int_equal(mkdir(dir, 0750), 0);

	/* commit into a queue that does not exist: fails and removes the tmp file */
	assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
	assert_int_equal(qfile_finish(qf), 0);
	errno = 0;
	assert_int_equal(qfile_commit_sync(fx->spool, &qf, "nosuchqueue"), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(qf);
	assert_false(path_exists(tmp));
	queue_envelope_clear(&env);
}

/* An anonymous file has no name until it is placed; placing never replaces a file, and an
   abandoned one leaves nothing behind. */
static void test_qfile_anonymous(void **state)
{
	struct fx *fx = *state;
	struct queue_envelope env;
	struct qfile *qf = NULL, *qf2 = NULL;
	char dest[4096];
	env_min(&env);
	assert_int_equal(spool_path(fx->spool, SPOOL_INCOMING, env.id, dest, sizeof(dest)), 0);
	assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
	if (!qfile_anonymous(qf))
		skip(); /* the test directory's file system has no O_TMPFILE */
	assert_int_equal(count_queue(fx->spool, SPOOL_TMP), 0);
	assert_int_equal(qfile_write(qf, "abc\r\n", 5), 0);
	assert_int_equal(qfile_finish(qf), 0);
	assert_int_equal(qfile_place(qf, dest), 0);
	qfile_close(&qf);
	const char *why = NULL;
	assert_int_equal(qfile_check(dest, env.id, &why), 0);

	/* the same ID again: the link fails, the first file stays */
	assert_int_equal(qfile_create(fx->spool, &env, &qf2), 0);
	assert_int_equal(qfile_finish(qf2), 0);
	errno = 0;
	assert_int_equal(qfile_place(qf2, dest), -1);
	assert_int_equal(errno, EEXIST);
	qfile_abort(&qf2);
	assert_null(qf2);
	assert_int_equal(qfile_check(dest, env.id, &why), 0);
	assert_int_equal(count_queue(fx->spool, SPOOL_TMP), 0);
	assert_int_equal(count_queue(fx->spool, SPOOL_INCOMING), 1);
	queue_envelope_clear(&env);
}

/* The committer over a loop: every file submitted is reported durable in its queue, each
   callback once, and nothing is left in tmp/ (both with anonymous and with named files). */
#define COMMIT_FILES 50

static void commit_probe_cb(void *arg, int result)
{
	int *slot = arg;
	*slot = result == 0 ? 1 : -result;
}

static void test_committer(void **state)
{
	struct fx *fx = *state;
	int results[COMMIT_FILES] = { 0 };
	evthread_use_pthreads();
	struct event_base *base = event_base_new();
	struct committer *c = committer_new(base, fx->spool);
	char ids[COMMIT_FILES][QUEUE_ID_LEN + 1];
	for (int i = 0; i < COMMIT_FILES; i++) {
		struct queue_envelope env;
		struct qfile *qf = NULL;
		env_min(&env);
		memcpy(ids[i], env.id, sizeof(ids[i]));
		assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
		assert_int_equal(qfile_write(qf, "Subject: x\r\n\r\nbody\r\n", 19), 0);
		assert_int_equal(qfile_finish(qf), 0);
		committer_submit(c, qf, SPOOL_INCOMING, commit_probe_cb, &results[i]);
		queue_envelope_clear(&env);
	}
	/* the loop has no events of its own, so it is polled until the reports are in */
	for (int spins = 0; committer_pending(c) > 0 && spins < 10000; spins++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(committer_pending(c), 0);
	committer_free(&c);
	event_base_free(base);
	for (int i = 0; i < COMMIT_FILES; i++) {
		char path[4096];
		const char *why = NULL;
		assert_int_equal(results[i], 1);
		assert_int_equal(spool_path(fx->spool, SPOOL_INCOMING, ids[i], path, sizeof(path)), 0);
		assert_int_equal(qfile_check(path, ids[i], &why), 0);
	}
	assert_int_equal(count_queue(fx->spool, SPOOL_INCOMING), COMMIT_FILES);
	assert_int_equal(count_queue(fx->spool, SPOOL_TMP), 0);
}

/* A write error (here ENOSPC from /dev/full) sticks: every later call fails with it. */
static void test_qfile_write_error(void **state)
{
	struct fx *fx = *state;
	struct queue_envelope env;
	struct qfile *qf = NULL;
	static char big[200000];
	env_min(&env);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
		int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
		assert_true(full >= 0);
		assert_int_equal(dup2(full, qfile_fd(qf)), qfile_fd(qf));
		close(full);
		if (round == 0) {
			/* buffered: the error shows at the flush in qfile_finish */
			assert_int_equal(qfile_write(qf, "abc", 3), 0);
			assert_int_equal(qfile_error(qf), 0);
		} else {
			errno = 0;
			assert_int_equal(qfile_write(qf, big, sizeof(big)), -1);
			assert_int_equal(errno, ENOSPC);
			assert_int_equal(qfile_error(qf), ENOSPC);
			errno = 0;
			assert_int_equal(qfile_write(qf, "abc", 3), -1);
			assert_int_equal(errno, ENOSPC);
			assert_int_equal(qfile_write(qf, "", 0), -1);
		}
		errno = 0;
		assert_int_equal(qfile_finish(qf), -1);
		assert_int_equal(errno, ENOSPC);
		assert_int_equal(qfile_error(qf), ENOSPC);
		assert_int_equal(qfile_write(qf, "x", 1), -1);
		qfile_abort(&qf);
		assert_int_equal(count_queue(fx->spool, SPOOL_TMP), 0);
	}
	queue_envelope_clear(&env);
}

/* ---- queue files: hostile input ---- */

enum trailer { T_NONE, T_GOOD, T_PLUS1, T_MINUS1, T_ZERO, T_MAX, T_CUSTOM };

struct hostile {
	const char *name;
	const char *env;
	size_t envlen;
	const char *content;
	size_t contentlen;
	enum trailer trailer;
	const char *custom;
	size_t customlen;
	size_t cut; /* bytes removed from the end */
	int rc;
	const char *why; /* the exact reason; NULL: any reason */
};

#define S(lit) lit, sizeof(lit) - 1
#define BAD(name, env, content, trailer, why) { name, S(env), S(content), trailer, "", 0, 0, -1, why }
#define BADT(name, env, content, custom, why) { name, S(env), S(content), T_CUSTOM, S(custom), 0, -1, why }
#define GOOD(name, env, content) { name, S(env), S(content), T_GOOD, "", 0, 0, 0, NULL }

#define MAGIC "POSTERN-QUEUE 1\n"
#define QID "0123456789ABCDE"
#define HEAD MAGIC "id " QID "\narrival 1700000000000000\norigin smtp\n"
#define SENDER "sender a@example.org\n"
#define RCPT "rcpt Q 0 - r@example.net\n"
#define ENV HEAD SENDER RCPT "content\n"
#define MSG "Subject: x\r\n\r\nbody\r\n"
#define MSG40 "Subject: forty bytes\r\n\r\n0123456789abcd\r\n"

#define W_NOCONTENT "no content section"
#define W_TRUNCENV "truncated envelope"
#define W_MAGIC "not a postern queue file"
#define W_MALFORMED "malformed envelope record"
#define W_LACKS "envelope lacks id, sender or recipients"
#define W_TRUNC "truncated file"
#define W_TORN "torn file: trailer does not match its size"

static const struct hostile hostile_cases[] = {
	/* controls: the builder makes valid files */
	GOOD("valid", ENV, MSG),
	GOOD("valid, empty content", ENV, ""),
	GOOD("null sender", HEAD "sender \n" RCPT "content\n", MSG),
	GOOD("records in another order", MAGIC RCPT SENDER "id " QID "\ncontent\n", MSG),
	GOOD("every record", HEAD "client_addr 192.0.2.1\nhelo h\nproto ESMTP\n" SENDER
	     "envid x\nret FULL\nbody 8BITMIME\nfull_name A B\nsmtputf8 1\n"
	     "rcpt Q f rfc822;x r2@example.net\n" RCPT "content\n", MSG),
	GOOD("content lookalike in content", ENV, "content\n" MAGIC),

	/* magic */
	BAD("empty", "", "", T_NONE, W_NOCONTENT),
	BAD("magic only", MAGIC, "", T_NONE, W_NOCONTENT),
	BAD("magic without newline", "POSTERN-QUEUE 1", "", T_NONE, W_TRUNCENV),
	BAD("wrong version", "POSTERN-QUEUE 2\nid " QID "\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MAGIC),
	BAD("lower-case magic", "postern-queue 1\nid " QID "\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MAGIC),
	BAD("magic with CRLF", "POSTERN-QUEUE 1\r\nid " QID "\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MAGIC),
	BAD("space before magic", " " ENV, MSG, T_GOOD, W_MAGIC),
	BAD("NUL before magic", "\0" ENV, MSG, T_GOOD, W_MAGIC),
	BAD("magic with trailing NUL", "POSTERN-QUEUE 1\0\nid " QID "\n" SENDER RCPT "content\n", MSG, T_GOOD, NULL),
	BAD("mbox", "From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n", "", T_NONE, W_MAGIC),
	BAD("ELF", "\x7f" "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", "", T_NONE, NULL),
	BAD("blank first line", "\n" ENV, MSG, T_GOOD, W_MAGIC),

	/* the content line */
	BAD("no content line", HEAD SENDER RCPT, MSG, T_GOOD, W_MALFORMED),
	BAD("no content line, empty content", HEAD SENDER RCPT, "", T_GOOD, W_MALFORMED),
	BAD("no content line, no trailer", HEAD SENDER RCPT, "", T_NONE, W_NOCONTENT),
	BAD("content with a space", HEAD SENDER RCPT "content \n", MSG, T_GOOD, W_MALFORMED),
	BAD("Content", HEAD SENDER RCPT "Content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("content CRLF", HEAD SENDER RCPT "content\r\n", MSG, T_GOOD, W_MALFORMED),
	BAD("content at EOF without newline", HEAD SENDER RCPT "content", "", T_NONE, W_TRUNCENV),

	/* the trailer */
	BAD("no trailer", ENV, MSG40, T_NONE, W_TORN),
	BAD("no trailer, short content", ENV, MSG, T_NONE, W_TRUNC),
	BAD("no trailer, no content", ENV, "", T_NONE, W_TRUNC),
	BAD("trailer size too big", ENV, MSG, T_PLUS1, W_TORN),
	BAD("trailer size too small", ENV, MSG, T_MINUS1, W_TORN),
	BAD("trailer size zero", ENV, MSG, T_ZERO, W_TORN),
	BAD("trailer size 2^64-1", ENV, MSG, T_MAX, W_TORN),
	BADT("trailer all garbage", ENV, "", "\nPOSTERN-END zzzzzzzzzzzzzzzz\n", W_TORN),
	BADT("trailer wrong word", ENV, "", "\nPOSTERN-end 0000000000000000\n", W_TORN),
	BADT("trailer without final newline", ENV, "", "\nPOSTERN-END 0000000000000000 ", W_TORN),
	BADT("trailer with CR", ENV, "", "\nPOSTERN-END 0000000000000000\r", W_TORN),
	BADT("trailer hex garbage after the digits", ENV, "", "\nPOSTERN-END 00000000000000zz\n", NULL),
	BADT("trailer with 0x", ENV, "0123456789", "\nPOSTERN-END 0x0000000000000a\n", NULL),
	BADT("trailer with a sign", ENV, "", "\nPOSTERN-END -000000000000000\n", NULL),
	BADT("trailer starting with a space", ENV, "", " POSTERN-END 0000000000000000\n", NULL),
	BADT("trailer with two spaces", ENV, "", "\nPOSTERN-END  000000000000000\n", NULL),
	BADT("short trailer", ENV, "", "\nPOSTERN-END 0\n", W_TRUNC),
	{ "cut 1 byte into the trailer", S(ENV), S(MSG40), T_GOOD, "", 0, 1, -1, W_TORN },
	{ "cut 15 bytes into the trailer", S(ENV), S(MSG40), T_GOOD, "", 0, 15, -1, W_TORN },
	{ "cut 29 bytes into the trailer", S(ENV), S(MSG40), T_GOOD, "", 0, 29, -1, W_TORN },
	{ "cut 30 bytes", S(ENV), S(MSG40), T_GOOD, "", 0, 30, -1, W_TORN },
	{ "trailer twice", S(ENV), S(MSG), T_GOOD, S("\nPOSTERN-END 0000000000000000\n"), 0, -1, W_TORN },

	/* envelope records */
	BAD("record without newline", MAGIC "id " QID "\nsender a", "", T_NONE, W_TRUNCENV),
	BAD("unknown record", HEAD "x-unknown 1\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("record without value", HEAD "sender\n" RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("empty line", HEAD "\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("smtputf8 without value", HEAD "smtputf8\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("tab-separated record", HEAD "sender\ta@b\n" RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("no id", MAGIC SENDER RCPT "content\n", MSG, T_GOOD, W_LACKS),
	BAD("lower-case id", MAGIC "id 0123456789abcde\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("id too long", MAGIC "id " QID "F\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("id too short", MAGIC "id 0123456789ABCD\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("id empty", MAGIC "id \n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("id with path", MAGIC "id ../../../etc/pw\n" SENDER RCPT "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("no sender", HEAD RCPT "content\n", MSG, T_GOOD, W_LACKS),
	BAD("no recipients", HEAD SENDER "content\n", MSG, T_GOOD, W_LACKS),
	BAD("nothing but magic and content", MAGIC "content\n", MSG, T_GOOD, W_LACKS),
	BAD("rcpt", HEAD SENDER "rcpt\n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt space", HEAD SENDER "rcpt \n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt state only", HEAD SENDER "rcpt Q\n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt no orcpt", HEAD SENDER "rcpt Q 0\n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt no address", HEAD SENDER "rcpt Q 0 -\n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt empty address", HEAD SENDER "rcpt Q 0 - \n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt blank address", HEAD SENDER "rcpt Q 0 -    \n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt bad notify", HEAD SENDER "rcpt Q zz - r@x\n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt two-letter state", HEAD SENDER "rcpt QQ 0 - r@x\n" "content\n", MSG, T_GOOD, W_MALFORMED),
	BAD("rcpt fields swapped", HEAD SENDER "rcpt 0 Q - r@x\n" "content\n", MSG, T_GOOD, NULL),
	BAD("rcpt with a blank state", HEAD SENDER "rcpt  0 - r@x\n" "content\n", MSG, T_GOOD, NULL),
	BAD("rcpt without state", HEAD SENDER "rcpt 0 - r@x\n" "content\n", MSG, T_GOOD, NULL),

	/* NUL bytes inside envelope lines */
	BAD("NUL in sender", HEAD "sender a\0b@example.org\n" RCPT "content\n", MSG, T_GOOD, NULL),
	BAD("NUL in rcpt", HEAD SENDER "rcpt Q 0 - r@example.net\0evil\n" "content\n", MSG, T_GOOD, NULL),
	BAD("NUL after id", MAGIC "id " QID "\0junk\n" SENDER RCPT "content\n", MSG, T_GOOD, NULL),
	BAD("NUL after content", HEAD SENDER RCPT "content\0junk\n", MSG, T_GOOD, NULL),
	BAD("NUL line", HEAD SENDER RCPT "\0\n" "content\n", MSG, T_GOOD, NULL),
};

/* Builds the bytes of a case into b. */
static void hostile_build(const struct hostile *h, struct buf *b)
{
	char t[QFILE_TRAILER_LEN + 1];
	uint64_t size = h->contentlen;
	buf_reset(b);
	buf_append(b, h->env, h->envlen);
	buf_append(b, h->content, h->contentlen);
	switch (h->trailer) {
	case T_NONE: break;
	case T_GOOD: break;
	case T_PLUS1: size++; break;
	case T_MINUS1: size--; break;
	case T_ZERO: size = 0; break;
	case T_MAX: size = UINT64_MAX; break;
	case T_CUSTOM: buf_append(b, h->custom, h->customlen); break;
	}
	if (h->trailer != T_NONE && h->trailer != T_CUSTOM) {
		snprintf(t, sizeof(t), TRAILER_FMT, size);
		buf_append(b, t, QFILE_TRAILER_LEN);
		if (h->customlen > 0)
			buf_append(b, h->custom, h->customlen);
	}
	assert_true(h->cut <= b->len);
	b->len -= h->cut;
}

/* Loads path and checks the outcome; returns 0 when it is as expected, else prints why. */
static int expect_load_result(const char *name, const char *path, int want_rc, const char *want_why)
{
	struct queue_envelope env;
	off_t off = -7;
	uint64_t size = 7;
	const char *why = NULL;
	int rc = qfile_load(path, &env, &off, &size, &why);
	int bad = 0;
	if (rc != want_rc) {
		print_error("\"%s\": qfile_load returned %d (%s), expected %d\n", name, rc,
			    why ? why : "no reason", want_rc);
		bad = 1;
	} else if (rc < 0) {
		if (why == NULL || why[0] == '\0' || (want_why != NULL && strcmp(why, want_why) != 0)) {
			print_error("\"%s\": reason \"%s\", expected \"%s\"\n", name,
				    why ? why : "(null)", want_why ? want_why : "any");
			bad = 1;
		}
		/* nothing is left behind for the caller to free */
		if (env.sender != NULL || env.rcpts != NULL || env.nrcpts != 0 || env.origin != NULL) {
			print_error("\"%s\": envelope not cleared after failure\n", name);
			bad = 1;
		}
	}
	if (rc == 0)
		queue_envelope_clear(&env);
	why = NULL;
	int crc = qfile_check(path, QID, &why);
	if (crc != want_rc || (crc < 0 && why == NULL)) {
		print_error("\"%s\": qfile_check returned %d, expected %d\n", name, crc, want_rc);
		bad = 1;
	}
	return bad;
}

static void test_qfile_hostile(void **state)
{
	struct fx *fx = *state;
	char path[4096];
	struct buf b = { 0 };
	int failures = 0;
	size_t n = sizeof(hostile_cases) / sizeof(hostile_cases[0]);
	snprintf(path, sizeof(path), "%s/hostile", fx->dir);
	for (size_t i = 0; i < n; i++) {
		const struct hostile *h = &hostile_cases[i];
		hostile_build(h, &b);
		spew(path, b.data, b.len);
		failures += expect_load_result(h->name, path, h->rc, h->why);
	}
	buf_free(&b);
	if (failures > 0)
		fail_msg("%d of %zu hostile queue files handled wrongly", failures, n);
}

/* Generated inputs: 1 MiB lines. */
static void test_qfile_hostile_huge(void **state)
{
	struct fx *fx = *state;
	enum { MIB = 1 << 20 };
	char path[4096], t[QFILE_TRAILER_LEN + 1];
	struct buf b = { 0 };
	char *big = malloc(MIB + 1);
	int failures = 0;
	assert_non_null(big);
	snprintf(path, sizeof(path), "%s/huge", fx->dir);
	snprintf(t, sizeof(t), TRAILER_FMT, (uint64_t)0);

	memset(big, 'k', MIB);
	big[MIB] = '\0';
	buf_reset(&b);
	buf_printf(&b, MAGIC "%s\n" "id " QID "\n" SENDER RCPT "content\n%s", big, t);
	spew(path, b.data, b.len);
	failures += expect_load_result("1 MiB record name", path, -1, W_MALFORMED);

	buf_reset(&b);
	buf_printf(&b, HEAD SENDER RCPT "helo %s", big);
	spew(path, b.data, b.len);
	failures += expect_load_result("1 MiB line at EOF", path, -1, W_TRUNCENV);

	memset(big, '\n', MIB);
	buf_reset(&b);
	buf_printf(&b, MAGIC "%s" "content\n%s", big, t);
	spew(path, b.data, b.len);
	failures += expect_load_result("1 MiB of empty lines", path, -1, W_MALFORMED);

	for (size_t i = 0; i < MIB; i++)
		big[i] = (char)(1 + i % 255) == '\n' ? 'x' : (char)(1 + i % 255);
	buf_reset(&b);
	buf_puts(&b, MAGIC);
	buf_append(&b, big, MIB);
	buf_printf(&b, "\ncontent\n%s", t);
	spew(path, b.data, b.len);
	failures += expect_load_result("1 MiB of binary", path, -1, NULL);

	/* A 1 MiB ORCPT may be refused, but if the file is accepted the recipient must be the one
	   written after it. */
	memset(big, 'o', MIB);
	buf_reset(&b);
	buf_printf(&b, HEAD SENDER "rcpt Q 0 %s r@example.net\ncontent\n%s", big, t);
	spew(path, b.data, b.len);
	struct queue_envelope env;
	off_t off;
	uint64_t size;
	const char *why = NULL;
	if (qfile_load(path, &env, &off, &size, &why) == 0) {
		if (env.nrcpts != 1 || strcmp(env.rcpts[0].address, "r@example.net") != 0 ||
		    env.rcpts[0].orcpt == NULL || strlen(env.rcpts[0].orcpt) != MIB) {
			print_error("1 MiB ORCPT: accepted with recipient \"%.40s...\" (%zu bytes), "
				    "orcpt of %zu bytes\n", env.rcpts[0].address,
				    strlen(env.rcpts[0].address),
				    env.rcpts[0].orcpt ? strlen(env.rcpts[0].orcpt) : 0);
			failures++;
		}
		queue_envelope_clear(&env);
	} else {
		assert_non_null(why);
	}
	free(big);
	buf_free(&b);
	if (failures > 0)
		fail_msg("%d huge queue files handled wrongly", failures);
}

/* Every proper prefix of a valid file is torn. */
static void test_qfile_every_truncation(void **state)
{
	struct fx *fx = *state;
	static const size_t all[] = { ALL };
	const char *body = "Subject: truncation\r\n\r\nline one\r\nline two\r\n";
	char path[4096], cut[4096];
	struct queue_envelope env;
	env_full(&env);
	write_qfile(fx, &env, body, strlen(body), all, 1, SPOOL_INCOMING, path, sizeof(path));
	size_t len;
	char *file = slurp(path, &len);
	assert_non_null(file);
	snprintf(cut, sizeof(cut), "%s/cut", fx->dir);
	for (size_t n = 0; n < len; n++) {
		struct queue_envelope got;
		off_t off;
		uint64_t size;
		const char *why = NULL;
		spew(cut, file, n);
		if (qfile_load(cut, &got, &off, &size, &why) != -1 || why == NULL)
			fail_msg("prefix of %zu of %zu bytes accepted", n, len);
		assert_null(got.sender);
		assert_int_equal(got.nrcpts, 0);
	}
	/* and one byte more is torn too */
	file[len] = 'x';
	spew(cut, file, len + 1);
	const char *why = NULL;
	assert_int_equal(qfile_check(cut, env.id, &why), -1);
	assert_string_equal(why, W_TORN);
	free(file);
	queue_envelope_clear(&env);
}

static void test_qfile_unreadable(void **state)
{
	struct fx *fx = *state;
	struct queue_envelope env;
	off_t off;
	uint64_t size;
	char path[4096];
	const char *why = NULL;
	snprintf(path, sizeof(path), "%s/does-not-exist", fx->dir);
	assert_int_equal(qfile_load(path, &env, &off, &size, &why), -1);
	assert_string_equal(why, "cannot open");
	why = NULL;
	assert_int_equal(qfile_check(path, QID, &why), -1);
	assert_string_equal(why, "cannot open");
	why = NULL;
	assert_int_equal(qfile_load(fx->dir, &env, &off, &size, &why), -1);
	assert_non_null(why);
}

/* ---- recovery and quarantine ---- */

/* Writes a valid queue file for a new ID into queue; the ID goes to id. */
static void make_valid(const struct fx *fx, const char *queue, char *id, char *path, size_t len)
{
	static const size_t all[] = { ALL };
	struct queue_envelope env;
	env_full(&env);
	write_qfile(fx, &env, MSG, strlen(MSG), all, 1, queue, path, len);
	memcpy(id, env.id, QUEUE_ID_LEN + 1);
	queue_envelope_clear(&env);
}

static void test_spool_recover(void **state)
{
	struct fx *fx = *state;
	const struct spool *sp = fx->spool;
	const char *root = spool_root(sp);
	char a[16], b[16], c[16], d[16], e[16], f[16], g[16];
	char pa[4096], pb[4096], pc[4096], pd[4096], pe[4096], pf[4096], pg[4096], p[4096];

	make_valid(fx, SPOOL_INCOMING, a, pa, sizeof(pa));
	make_valid(fx, "deferred", b, pb, sizeof(pb));
	make_valid(fx, SPOOL_MAILDROP, c, pc, sizeof(pc));

	/* an unacknowledged file in tmp/, and a stranger there */
	struct queue_envelope env;
	struct qfile *qf;
	env_min(&env);
	memcpy(d, env.id, sizeof(d));
	assert_int_equal(qfile_create(sp, &env, &qf), 0);
	assert_int_equal(qfile_write(qf, "partial", 7), 0);
	snprintf(pd, sizeof(pd), "%s", qfile_path(qf));
	qfile_close(&qf);
	queue_envelope_clear(&env);
	snprintf(p, sizeof(p), "%s/tmp/0/stranger", root);
	spew(p, "x", 1);

	/* a torn file in hold/ */
	make_valid(fx, "hold", e, pe, sizeof(pe));
	assert_int_equal(truncate(pe, 60), 0);

	/* foreign names in active/: not an ID, and an ID in the wrong hash directory */
	snprintf(p, sizeof(p), "%s/active/0/not-an-id", root);
	spew(p, "junk", 4);
	make_valid(fx, "active", f, pf, sizeof(pf));
	char wrong[4096];
	snprintf(wrong, sizeof(wrong), "%s/active/%c/%s", root, f[14] == '0' ? '1' : '0', f);
	assert_int_equal(rename(pf, wrong), 0);

	/* a valid file under another ID's name in archive/ */
	char other[16];
	queue_id_new(other);
	make_valid(fx, "archive", g, pg, sizeof(pg));
	char misnamed[4096];
	assert_int_equal(spool_path(sp, "archive", other, misnamed, sizeof(misnamed)), 0);
	assert_int_equal(rename(pg, misnamed), 0);

	/* left alone: dot files, and whatever is already in corrupt/ */
	char dot[4096], old[4096];
	snprintf(dot, sizeof(dot), "%s/incoming/0/.hidden", root);
	spew(dot, "x", 1);
	snprintf(old, sizeof(old), "%s/corrupt/7/whatever", root);
	spew(old, "x", 1);

	assert_int_equal(spool_recover(sp), 3);
	assert_true(path_exists(pa));
	assert_true(path_exists(pb));
	assert_true(path_exists(pc));
	assert_int_equal(count_queue(sp, SPOOL_TMP), 0);
	assert_false(path_exists(pd));
	assert_false(path_exists(pe));
	assert_int_equal(spool_path(sp, SPOOL_CORRUPT, e, p, sizeof(p)), 0);
	assert_true(path_exists(p));
	assert_int_equal(count_queue(sp, "active"), 0);
	assert_false(path_exists(wrong));
	assert_false(path_exists(misnamed));
	assert_int_equal(spool_path(sp, SPOOL_CORRUPT, other, p, sizeof(p)), 0);
	assert_true(path_exists(p));
	assert_true(path_exists(dot));
	assert_true(path_exists(old));
	/* old + torn + two foreign + misnamed */
	assert_int_equal(count_queue(sp, SPOOL_CORRUPT), 5);
	assert_int_equal(count_queue(sp, SPOOL_INCOMING), 1);

	/* a second run finds the same and moves nothing */
	assert_int_equal(spool_recover(sp), 3);
	assert_int_equal(count_queue(sp, SPOOL_CORRUPT), 5);

	/* a hash directory that cannot be read is an I/O error */
	snprintf(p, sizeof(p), "%s/deferred/%c", root, b[14] == 'Z' ? 'Y' : 'Z');
	assert_int_equal(rmdir(p), 0);
	assert_int_equal(spool_recover(sp), -1);
}

static void test_spool_quarantine(void **state)
{
	struct fx *fx = *state;
	char id[16], path[4096], to[4096];
	make_valid(fx, SPOOL_INCOMING, id, path, sizeof(path));
	assert_int_equal(spool_quarantine(fx->spool, SPOOL_INCOMING, id, "test"), 0);
	assert_false(path_exists(path));
	assert_int_equal(spool_path(fx->spool, SPOOL_CORRUPT, id, to, sizeof(to)), 0);
	assert_true(path_exists(to));
	/* the file is moved, not rewritten */
	const char *why = NULL;
	assert_int_equal(qfile_check(to, id, &why), 0);
	/* gone already */
	assert_int_equal(spool_quarantine(fx->spool, SPOOL_INCOMING, id, "again"), -1);
	assert_true(path_exists(to));
	assert_int_equal(count_queue(fx->spool, SPOOL_CORRUPT), 1);
}

int main(void)
{
	log_init("test_queue", LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_id_sequence),
		cmocka_unit_test(test_queue_id_threads),
		cmocka_unit_test(test_queue_id_valid),
		cmocka_unit_test(test_queue_id_hash),
		cmocka_unit_test_setup_teardown(test_spool_open, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_spool_path, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_round_trip_sizes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_envelope_fields, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_control_chars, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_long_orcpt, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_round_trip_sizes, fx_setup_named, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_create_abort, fx_setup_named, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_anonymous, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_committer, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_committer, fx_setup_named, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_write_error, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_hostile, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_hostile_huge, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_every_truncation, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qfile_unreadable, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_spool_recover, fx_setup_named, fx_teardown),
		cmocka_unit_test_setup_teardown(test_spool_quarantine, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
