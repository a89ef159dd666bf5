#include "queue/queue_id.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static const char queue_id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void queue_id_encode(uint64_t v, char *out, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		out[i] = queue_id_alphabet[v & 31];
		v >>= 5;
	}
}

/* The time part never goes backwards within a process even if the clock does, and the
   sequence part keeps IDs from one microsecond distinct; the pid bits keep the daemon and
   sendmail commands apart. */
void queue_id_new(char *id)
{
	static _Atomic uint64_t last_us;
	static _Atomic uint32_t seq;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	uint64_t prev = atomic_load(&last_us), next;
	do {
		next = us > prev ? us : prev + 1;
	} while (!atomic_compare_exchange_weak(&last_us, &prev, next));
	queue_id_encode(next, id, 11);
	uint32_t tail = (atomic_fetch_add(&seq, 1) + (uint32_t)getpid() * 40503u) & 0xFFFFF;
	queue_id_encode(tail, id + 11, 4);
	id[QUEUE_ID_LEN] = '\0';
}

int queue_id_valid(const char *s)
{
	if (strlen(s) != QUEUE_ID_LEN)
		return 0;
	for (int i = 0; i < QUEUE_ID_LEN; i++) {
		if (s[i] == '\0' || strchr(queue_id_alphabet, s[i]) == NULL)
			return 0;
	}
	return 1;
}

char queue_id_hash(const char *id)
{
	return id[QUEUE_ID_LEN - 1];
}
