#!/usr/bin/python3
"""Checks a report written by ndr_compose the way a mail reader sees it: Python's email
package parses the file, and the MIME shape and the delivery-status fields must be right.

usage: ndr_check.py FILE THIRD-PART-TYPE|none ACTION[,ACTION...] [TEXT]
  ACTION: one per recipient; TEXT: a phrase the decoded text part must contain (white space
  compared loosely, since the text is wrapped)

Exits 0 when everything matches, 1 (with the reasons on stderr) when not.
"""
import email
import email.policy
import re
import sys

STATUS = re.compile(r"^[245]\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$")


def check_top(msg, problems):
    if not msg.is_multipart():
        problems.append("not multipart")
    if msg.get_content_type() != "multipart/report":
        problems.append("top type is %s" % msg.get_content_type())
    if msg.get_param("report-type") != "delivery-status":
        problems.append("report-type is %r" % msg.get_param("report-type"))
    for name in ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"):
        if msg[name] is None:
            problems.append("no %s header" % name)
    if msg["Auto-Submitted"] != "auto-replied":
        problems.append("Auto-Submitted is %r" % msg["Auto-Submitted"])


def check_status(part, actions, problems):
    if part.get_content_type() != "message/delivery-status":
        problems.append("second part is %s" % part.get_content_type())
        return
    blocks = part.get_payload()
    if len(blocks) != 1 + len(actions):
        problems.append("%d field groups, want %d" % (len(blocks), 1 + len(actions)))
        return
    if not str(blocks[0]["Reporting-MTA"] or "").startswith("dns;"):
        problems.append("Reporting-MTA is %r" % blocks[0]["Reporting-MTA"])
    for i, rcpt in enumerate(blocks[1:]):
        final = str(rcpt["Final-Recipient"] or "")
        if not re.match(r"^(rfc822|utf-8); \S", final):
            problems.append("recipient %d: Final-Recipient is %r" % (i, final))
        if str(rcpt["Action"]) != actions[i]:
            problems.append("recipient %d: Action is %r" % (i, rcpt["Action"]))
        if not STATUS.match(str(rcpt["Status"] or "")):
            problems.append("recipient %d: Status is %r" % (i, rcpt["Status"]))


def check_text(part, text, problems):
    if part.get_content_type() != "text/plain":
        problems.append("first part is %s" % part.get_content_type())
        return
    body = " ".join(part.get_content().split())
    if not body or " ".join(text.split()) not in body:
        problems.append("text part lacks %r" % text)


def check_parts(msg, third, actions, text, problems):
    parts = msg.get_payload()
    want = 2 if third == "none" else 3
    if len(parts) != want:
        problems.append("%d parts, want %d" % (len(parts), want))
        return
    check_text(parts[0], text, problems)
    check_status(parts[1], actions, problems)
    if want == 3 and parts[2].get_content_type() != third:
        problems.append("third part is %s, want %s" % (parts[2].get_content_type(), third))
    elif want == 3 and third in ("message/rfc822", "message/global"):
        inner = parts[2].get_payload()
        if not isinstance(inner, list) or len(inner) != 1:
            problems.append("third part does not hold one message")
    for where in [msg] + parts[:2]:
        if where.defects:
            problems.append("defects: %r" % where.defects)


def main():
    path, third, actions = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    text = sys.argv[4] if len(sys.argv) > 4 else ""
    with open(path, "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    problems = []
    check_top(msg, problems)
    if msg.is_multipart():
        check_parts(msg, third, actions, text, problems)
    for p in problems:
        print("ndr_check: %s: %s" % (path, p), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
