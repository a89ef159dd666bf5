#ifndef POSTERN_QUEUE_ID_H
#define POSTERN_QUEUE_ID_H

/* Queue IDs: 15 characters from an ascending alphabet (Crockford base32), the first eleven the
   arrival time in microseconds, the last four a per-process sequence mixed with the pid.
   Unique, sortable by arrival time, safe in file names. */
#define QUEUE_ID_LEN 15

/* Writes a new ID into id (QUEUE_ID_LEN + 1 bytes). Thread-safe. */
void queue_id_new(char *id);
/* Returns 1 when s is a well-formed queue ID, 0 otherwise. */
int queue_id_valid(const char *s);
/* Returns the character of id that names its hash directory. */
char queue_id_hash(const char *id);

#endif
