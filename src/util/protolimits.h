#ifndef POSTERN_PROTOLIMITS_H
#define POSTERN_PROTOLIMITS_H

/* Fixed protocol limits (RFC 5321 4.5.3.1 and the extension RFCs), enforced by the parsers.
   Limits an operator may tune live in the configuration instead. */

#define PROTO_LOCAL_PART_MAX 64     /* octets of a local part (4.5.3.1.1) */
#define PROTO_DOMAIN_MAX 255        /* octets of a domain (4.5.3.1.2) */
#define PROTO_PATH_MAX 256          /* octets of a path including the angle brackets (4.5.3.1.3) */
#define PROTO_COMMAND_LINE_MAX 2048 /* a command line with ESMTP parameters, without CRLF */
#define PROTO_REPLY_LINE_MAX 512    /* a reply line including CRLF (4.5.3.1.5) */
#define PROTO_ENVID_MAX 100         /* decoded ENVID (RFC 3461 4.4) */
#define PROTO_ORCPT_MAX 500         /* decoded ORCPT address (RFC 3461 4.2) */
#define PROTO_HELO_MAX 255          /* the HELO/EHLO argument */

#endif
