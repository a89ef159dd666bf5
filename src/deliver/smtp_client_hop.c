/* Next hop resolution: MX records (RFC 5321 5.1, RFC 7505 null MX), then the addresses of each
   host in preference order, one connection attempt at a time. A failed attempt moves on to
   the next address; when none is left the job is deferred with the last error, or bounced
   when no host had any address at all. */
#include "deliver/smtp_client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util/xalloc.h"

static void hop_next_host(struct smtp_client_job *job);

static struct smtp_client_lookup *hop_lookup_new(struct smtp_client_job *job)
{
	struct smtp_client_lookup *l = xcalloc(1, sizeof(*l));
	l->job = job;
	job->lookup = l;
	return l;
}

/* Returns the job the lookup was for, or NULL when it ended meanwhile. */
static struct smtp_client_job *hop_lookup_done(void *arg)
{
	struct smtp_client_lookup *l = arg;
	struct smtp_client_job *job = l->job;
	free(l);
	if (job != NULL)
		job->lookup = NULL;
	return job;
}

static void hop_record(struct smtp_client_job *job, const struct smtp_client_error *e)
{
	job->last = *e;
}

static void hop_set_hosts(struct smtp_client_job *job, const struct dns_mx *mx, size_t n)
{
	free(job->hosts);
	job->hosts = xcalloc(n, sizeof(*job->hosts));
	memcpy(job->hosts, mx, n * sizeof(*mx));
	job->nhosts = n;
	job->host_i = 0;
}

static void hop_set_addrs(struct smtp_client_job *job, const struct sockaddr_storage *a, size_t n)
{
	free(job->addrs);
	job->addrs = xcalloc(n, sizeof(*job->addrs));
	memcpy(job->addrs, a, n * sizeof(*a));
	job->naddrs = n;
	job->addr_i = 0;
}

/* Bounce only when no host had an address and no lookup failed temporarily: a typo in a
   domain's MX target is as permanent as a missing domain (Postfix does the same). */
static void hop_give_up(struct smtp_client_job *job)
{
	struct smtp_client_error e = job->last;
	enum delivery_status status = DELIVERY_DEFER;
	if (!job->attempted && !job->dns_tempfail && job->nhosts > 0) {
		status = DELIVERY_BOUNCE;
		snprintf(e.dsn, sizeof(e.dsn), "5.4.4");
	}
	smtp_client_job_set_open(job, false, status, &e);
	smtp_client_job_finish(job);
}

static void hop_next_addr(struct smtp_client_job *job)
{
	while (job->addr_i < job->naddrs) {
		struct smtp_client_error e;
		job->attempted = true;
		if (smtp_client_conn_open(job, job->hosts[job->host_i].host, &job->addrs[job->addr_i],
					  job->plaintext_retry, &e) == 0)
			return;
		hop_record(job, &e);
		job->plaintext_retry = false;
		job->addr_i++;
	}
	job->host_i++;
	hop_next_host(job);
}

static void hop_addr_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs, size_t n)
{
	struct smtp_client_job *job = hop_lookup_done(arg);
	if (job == NULL)
		return;
	if (status == DNS_OK && n > 0) {
		hop_set_addrs(job, addrs, n);
		hop_next_addr(job);
		return;
	}
	bool temp = status == DNS_TEMPFAIL || status == DNS_CANCELLED;
	struct smtp_client_error e = { .code = 0 };
	snprintf(e.dsn, sizeof(e.dsn), "%s", temp ? "4.4.3" : "4.4.4");
	snprintf(e.text, sizeof(e.text), "Host or domain name not found. Name service error for name=%s type=A: %s",
		 job->hosts[job->host_i].host, temp ? "Host not found, try again" : "Host not found");
	job->dns_tempfail |= temp;
	hop_record(job, &e);
	job->host_i++;
	hop_next_host(job);
}

static void hop_next_host(struct smtp_client_job *job)
{
	if (job->host_i >= job->nhosts) {
		hop_give_up(job);
		return;
	}
	dns_lookup_addr(job->client->dns, job->hosts[job->host_i].host, job->hop.port, hop_addr_cb,
			hop_lookup_new(job));
}

static void hop_mx_failed(struct smtp_client_job *job, enum dns_status status)
{
	const char *d = job->hop.host;
	switch (status) {
	case DNS_NULLMX:
		smtp_client_job_fail(job, DELIVERY_BOUNCE, "5.1.10",
				     "domain %s does not accept mail (null MX)", d);
		break;
	case DNS_NXDOMAIN:
		smtp_client_job_fail(job, DELIVERY_BOUNCE, "5.1.2",
				     "Host or domain name not found. Name service error for name=%s type=MX: Host not found", d);
		break;
	default:
		smtp_client_job_fail(job, DELIVERY_DEFER, "4.4.3",
				     "Host or domain name not found. Name service error for name=%s type=MX: Host not found, try again", d);
		break;
	}
}

static void hop_mx_cb(void *arg, enum dns_status status, const struct dns_mx *mx, size_t n)
{
	struct smtp_client_job *job = hop_lookup_done(arg);
	if (job == NULL)
		return;
	if (status == DNS_OK && n > 0) {
		hop_set_hosts(job, mx, n);
		hop_next_host(job);
	} else if (status == DNS_OK || status == DNS_NODATA) {
		/* No MX: the domain itself is the implicit MX (RFC 5321 5.1). */
		struct dns_mx self = { .preference = 0 };
		snprintf(self.host, sizeof(self.host), "%s", job->hop.host);
		hop_set_hosts(job, &self, 1);
		hop_next_host(job);
	} else {
		hop_mx_failed(job, status);
	}
}

/* A unix socket needs no lookup: its path is the one "address". */
static void hop_start_unix(struct smtp_client_job *job)
{
	struct dns_mx self = { .preference = 0 };
	struct sockaddr_storage ss;
	struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
	size_t n = strlen(job->hop.host);
	if (n >= sizeof(sun->sun_path)) {
		smtp_client_job_fail(job, DELIVERY_DEFER, "4.3.5", "socket path too long: %s", job->hop.host);
		return;
	}
	memset(&ss, 0, sizeof(ss));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, job->hop.host, n + 1);
	snprintf(self.host, sizeof(self.host), "%s", job->hop.host);
	hop_set_hosts(job, &self, 1);
	hop_set_addrs(job, &ss, 1);
	hop_next_addr(job);
}

void smtp_client_hop_start(struct smtp_client_job *job)
{
	job->attempted = false;
	job->dns_tempfail = false;
	job->plaintext_retry = false;
	job->last = (struct smtp_client_error){ .code = 0, .dsn = "4.4.1", .text = "no address to try" };
	if (job->hop.unix_socket) {
		hop_start_unix(job);
	} else if (job->hop.mx) {
		dns_lookup_mx(job->client->dns, job->hop.host, hop_mx_cb, hop_lookup_new(job));
	} else {
		struct dns_mx self = { .preference = 0 };
		snprintf(self.host, sizeof(self.host), "%s", job->hop.host);
		hop_set_hosts(job, &self, 1);
		hop_next_host(job);
	}
}

void smtp_client_hop_failed(struct smtp_client_job *job, const struct smtp_client_error *e,
			    bool plaintext_retry)
{
	hop_record(job, e);
	if (plaintext_retry && !job->plaintext_retry) {
		job->plaintext_retry = true;
	} else {
		job->plaintext_retry = false;
		job->addr_i++;
	}
	hop_next_addr(job);
}
