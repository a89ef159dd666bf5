#!/usr/bin/python3
"""Hostile-input end-to-end tests: the real daemon as a process, driven over loopback by scripted
bad sessions. Each session asserts the exact reply code and enhanced status code (or a clean
disconnect), and after each one the daemon must still queue a normal message and must never
have logged a sanitizer report.

Run: POSTERN_BIN=build/asan/postern /usr/bin/python3 tests/e2e/test_hostile.py  (ONLY=name)
Standard library only."""
import functools
import os
import random
import re
import select
import signal
import contextlib
import socket
import ssl
import struct
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Daemon, QueueFile, Raw, run_tests  # noqa: E402

IO_TIMEOUT = 5       # seconds for any single socket operation
CASE_TIME = 20       # time bound of one test unless it says otherwise
MSG_LIMIT = 204800   # message_size_limit of the shared daemon
HDR_LIMIT = 8192     # header_size_limit of the shared daemon
HOSTNAME = "mx.postern.test"
CLOSED = "<closed>"  # an expectation: the server closes the connection, nothing more is sent

# ---------------------------------------------------------------------------------------------
# Time bounds, daemons, replies


class TestTimeout(Exception):
    """A test ran past its time bound."""


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time bound")


def bounded(seconds):
    """Runs the test under a SIGALRM deadline so that no hang can stall the suite."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper():
            old = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                return fn()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        return wrapper
    return deco


_daemons = {}   # kind -> running Daemon, shared by the tests of that kind
_crashes = []   # (kind, log tail) of shared daemons found dead


def _daemon(kind, **kwargs):
    d = _daemons.get(kind)
    if d is not None and d.proc.poll() is not None:
        # A crash fails the test that caused it (its health check); later tests get a fresh one.
        _crashes.append((kind, d.proc.returncode, d.logtext()[-4000:]))
        d.cleanup()
        d = None
    if d is None:
        d = Daemon(**kwargs).start()
        _daemons[kind] = d
    return d


def shared():
    """The daemon most tests use: small size limits so that the limit tests stay fast."""
    return _daemon("shared", extra={"message_size_limit": str(MSG_LIMIT),
                                    "header_size_limit": str(HDR_LIMIT)})


def timeout_daemon():
    return _daemon("timeout", extra={"smtp_timeout": "2s"})


def tls_daemon():
    return _daemon("tls", tls=True)


def short(data, n=80):
    if data is None:
        return None
    return data[:n] + (b"..." if isinstance(data, bytes) else "...") if len(data) > n else data


def expect(c, want, sent=None):
    """Reads one reply and checks it against want: "CODE", "CODE STATUS" or "CODE STATUS text"
    (text must occur in the last line). Returns (code, lines)."""
    try:
        code, lines = c.reply()
    except (EOFError, OSError) as e:
        raise AssertionError("no reply to %r (expected %r): %s" % (short(sent), want, e))
    parts = want.split(" ", 2)
    last = lines[-1]
    assert str(code) == parts[0], "to %r: expected %r, got %r" % (short(sent), want, lines)
    if len(parts) > 1:
        for line in lines:
            status = line[4:].split(" ", 1)[0]
            assert status == parts[1], "to %r: expected %r, got %r" % (short(sent), want, lines)
    if len(parts) > 2:
        assert parts[2] in last, "to %r: expected %r, got %r" % (short(sent), want, lines)
    return code, lines


def expect_closed(c, sent=None, timeout=IO_TIMEOUT):
    assert c.closed(timeout), "connection still open after %r" % (short(sent),)
    assert c.buf == b"", "data after the last reply to %r: %r" % (short(sent), c.buf[:200])


def run_script(c, script):
    """script: (send, want) steps. send is a str (CRLF appended), bytes (sent as is) or None;
    want is None, one expectation or a list of them (CLOSED included)."""
    for send, want in script:
        if isinstance(send, str):
            c.send(send.encode() + b"\r\n")
        elif send is not None:
            c.send(send)
        wants = [] if want is None else [want] if isinstance(want, str) else list(want)
        for w in wants:
            if w == CLOSED:
                expect_closed(c, send)
            else:
                expect(c, w, send)


def sync_probe(c, quit=True):
    """HELP has a reply no other command has: a stray reply (to a smuggled or swallowed command)
    would show up here instead of the 214. Then QUIT must close cleanly."""
    run_script(c, [("HELP", "214 2.0.0")])
    assert c.buf == b"", "stray data after the sync probe: %r" % c.buf[:200]
    if quit:
        run_script(c, [("QUIT", ["221 2.0.0", CLOSED])])


def connect(d, timeout=IO_TIMEOUT):
    c = Raw(d.smtp_port, timeout=timeout)
    code, lines = expect(c, "220", "(connect)")
    assert lines == ["220 %s ESMTP postern" % HOSTNAME], lines
    assert c.buf == b"", "data after the greeting: %r" % c.buf[:200]
    return c


# ---------------------------------------------------------------------------------------------
# The spool


def _walk(root):
    out = set()
    for dirpath, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(dirpath, f), root))
    return out


def spool_root(d):
    return os.path.join(d.state, "spool")


def spool_files(d):
    """Every file of every queue but tmp/."""
    root = spool_root(d)
    out = set()
    for q in os.listdir(root):
        if q != "tmp":
            out |= {os.path.join(q, f) for f in _walk(os.path.join(root, q))}
    return out


def tmp_files(d):
    return _walk(os.path.join(spool_root(d), "tmp"))


def assert_spool_unchanged(d, before, wait=3.0):
    """Nothing was queued and tmp/ is empty (waiting a moment for the daemon to clean up)."""
    deadline = time.time() + wait
    while tmp_files(d) and time.time() < deadline:
        time.sleep(0.05)
    assert not tmp_files(d), "files left in tmp/: %s" % sorted(tmp_files(d))
    after = spool_files(d)
    assert after == before, "spool changed: new %s, gone %s" % (sorted(after - before), sorted(before - after))


def find_queued(d, qid, timeout=5.0):
    """The QueueFile of queue ID qid, in whichever queue it is now."""
    deadline = time.time() + timeout
    while True:
        for rel in spool_files(d):
            if os.path.basename(rel) == qid:
                return QueueFile(os.path.join(spool_root(d), rel))
        if time.time() > deadline:
            raise AssertionError("queue ID %s not found in the spool" % qid)
        time.sleep(0.05)


QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)$")


def expect_queued(c, sent="(end of data)"):
    code, lines = expect(c, "250 2.0.0", sent)
    m = QUEUED.match(lines[-1])
    assert m, "not a queued reply: %r" % lines
    return m.group(1)


def message(subject, body=b"hello\r\n", to=b"user@robots.test"):
    return (b"From: <sender@client.test>\r\nTo: <" + to + b">\r\nSubject: " + subject.encode() +
            b"\r\nMessage-ID: <" + uuid.uuid4().hex.encode() + b"@client.test>\r\n\r\n" + body)


def assert_healthy(d):
    """A normal transaction still works and lands in the spool; no sanitizer report logged."""
    assert d.proc.poll() is None, "postern died (%s):\n%s" % (d.proc.returncode, d.logtext()[-4000:])
    token = uuid.uuid4().hex
    c = connect(d)
    try:
        run_script(c, [("EHLO health.client.test", "250"),
                       ("MAIL FROM:<health@client.test>", "250 2.1.0"),
                       ("RCPT TO:<health@robots.test>", "250 2.1.5"),
                       ("DATA", "354")])
        c.send(message("health " + token, b"health check " + token.encode() + b"\r\n") + b".\r\n")
        qid = expect_queued(c)
        run_script(c, [("QUIT", ["221 2.0.0", CLOSED])])
    finally:
        c.close()
    qf = find_queued(d, qid)
    assert token.encode() in qf.content, "health message content wrong in " + qf.path
    assert qf.recipients == ["health@robots.test"], qf.recipients
    assert qf.sender == "health@client.test", qf.sender
    d.check_log_clean()


# ---------------------------------------------------------------------------------------------
# Table-driven hostile sessions on the shared daemon. Every session starts after the greeting,
# ends with the sync probe (HELP/QUIT) unless it expects the server to close, must leave the
# spool unchanged, and is followed by a health check. Sessions keep below smtp_error_limit
# (10) errors unless the test is about that limit.

E = ("EHLO client.test", "250")
M = ("MAIL FROM:<sender@client.test>", "250 2.1.0")
R = ("RCPT TO:<user@robots.test>", "250 2.1.5")
D = ("DATA", "354")
TX = [E, M, R, D]
HDR = b"From: <sender@client.test>\r\nTo: <user@robots.test>\r\nSubject: hostile\r\n\r\n"
SMUGGLED = (b"MAIL FROM:<attacker@evil.test>\r\nRCPT TO:<victim@robots.test>\r\nDATA\r\n"
            b"From: <ceo@robots.test>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")


def mail(params):
    return "MAIL FROM:<sender@client.test> " + params


def rcpt(params):
    return "RCPT TO:<user@robots.test> " + params


CASES = [
    # --- the command line
    ("unknown_verb", [E, ("XYZZY plugh", "500 5.5.1"), ("NOOP", "250 2.0.0"),
                      ("GET / HTTP/1.1", "500 5.5.1"), ("MAILFROM:<a@client.test>", "500 5.5.1")]),
    ("unknown_verb_and_empty_line_before_ehlo", [("FOO", "500 5.5.1"), ("", "500 5.5.2")]),
    ("command_line_too_long", [E, ("NOOP " + "x" * 3000, "500 5.5.2"), ("NOOP", "250 2.0.0")]),
    ("command_line_limit_boundary", [E, ("VRFY " + "a" * 2043, "252 2.5.0"),    # 2048 octets
                                     ("VRFY " + "a" * 2044, "500 5.5.2"),       # 2049 octets
                                     M]),
    ("command_line_huge_without_crlf", [E, (b"VRFY " + b"A" * 200000, None), (b"\r\n", "500 5.5.2"),
                                        ("NOOP", "250 2.0.0")]),
    ("command_line_long_then_pipelined", [E, (b"NOOP " + b"B" * 5000 + b"\r\nRSET\r\nVRFY x\r\n",
                                              ["500 5.5.2", "250 2.0.0", "252 2.5.0"])]),
    ("nul_in_command", [E, (b"NOOP\x00RSET\r\n", "500 5.5.2"), (b"MAIL FROM:<a\x00@client.test>\r\n", "500 5.5.2"),
                        ("MAIL FROM:<sender@client.test>", "250 2.1.0")]),
    ("control_chars_in_command", [E, (b"MAIL FROM:<a\x01b@client.test>\r\n", "500 5.5.2"),
                                  (b"NOOP \x1b[2J\r\n", "500 5.5.2"), (b"NOOP \x7f\r\n", "500 5.5.2"),
                                  (b"\x04\r\n", "500 5.5.2")]),
    ("bare_lf_in_command", [E, (b"NOOP\nRSET\r\n", "500 5.5.2"), (b"NOOP\n", None),
                            (b"QUIT\r\n", "500 5.5.2")]),
    ("bare_cr_in_command", [E, (b"NOOP\rRSET\r\n", "500 5.5.2"), (b"NOOP\r\r\n", "500 5.5.2"),
                            (b"QUIT\r", None), (b"X\r\n", "500 5.5.2")]),
    # --- HELO/EHLO
    ("helo_without_argument", [("HELO", "501 5.5.4"), ("EHLO", "501 5.5.4"), ("EHLO    ", "501 5.5.4"),
                               ("MAIL FROM:<sender@client.test>", "503 5.5.1")]),
    ("helo_argument_overlong", [("EHLO " + "a" * 256, "501 5.5.4"), ("HELO " + "b" * 3000, "500 5.5.2"),
                                ("HELO " + "c" * 1000, "501 5.5.4"),
                                ("MAIL FROM:<sender@client.test>", "503 5.5.1"),
                                ("EHLO " + "d" * 255, "250")]),
    # --- sequence errors
    ("mail_before_ehlo", [("MAIL FROM:<sender@client.test>", "503 5.5.1"), ("RCPT TO:<user@robots.test>", "503 5.5.1"),
                          ("DATA", "503 5.5.1")]),
    ("nested_mail", [E, M, ("MAIL FROM:<other@client.test>", "503 5.5.1"), R]),
    ("rcpt_before_mail", [E, ("RCPT TO:<user@robots.test>", "503 5.5.1")]),
    ("data_before_mail", [E, ("DATA", "503 5.5.1")]),
    ("data_before_rcpt", [E, M, ("DATA", "503 5.5.1")]),
    ("data_without_valid_recipient", [E, M, ("RCPT TO:<victim@example.com>", "554 5.7.1"),
                                      ("RCPT TO:<bad@>", "501 5.1.3"), ("DATA", "554 5.5.1")]),
    ("data_with_argument", [E, M, R, ("DATA now", "501 5.5.4"), ("RSET", "250 2.0.0"), ("DATA", "503 5.5.1")]),
    ("rset_forgets_transaction", [E, M, R, ("RSET", "250 2.0.0"), ("DATA", "503 5.5.1"),
                                  ("RCPT TO:<user@robots.test>", "503 5.5.1")]),
    ("ehlo_resets_transaction", [E, M, R, E, ("DATA", "503 5.5.1")]),
    # --- MAIL/RCPT arguments
    ("bad_sender_syntax", [E] + [("MAIL FROM:" + a, "501 5.1.7") for a in [
        "<no-at-sign>", "<a@@client.test>", "<a b@client.test>", "<@client.test>", "<a@client.test",
        "a@client.test", "<" + "l" * 65 + "@client.test>", "<a@" + "d" * 256 + ">"]]),
    ("bad_recipient_syntax", [E, M] + [("RCPT TO:" + a, "501 5.1.3") for a in [
        "<>", "<user@>", "<user>", "<user@robots.test", "<us er@robots.test>",
        "<user@robots.test@evil.test>", "<user@[999.1.1.1]>"]] + [("DATA", "554 5.5.1")]),
    ("missing_from_or_to", [E, ("MAIL <sender@client.test>", "501 5.5.4"), ("MAIL FROM", "501 5.5.4"),
                            ("MAIL TO:<sender@client.test>", "501 5.5.4"), ("MAIL", "501 5.5.4"), M,
                            ("RCPT <user@robots.test>", "501 5.5.4"), ("RCPT FROM:<user@robots.test>", "501 5.5.4"),
                            ("RCPT", "501 5.5.4")]),
    ("junk_after_address", [E, ("MAIL FROM:<sender@client.test>junk", "501 5.5.4"), M,
                            ("RCPT TO:<user@robots.test>junk", "501 5.5.4")]),
    ("unknown_esmtp_parameter", [E, (mail("XFOO=bar"), "555 5.5.4"), (mail("NOTIFY=NEVER"), "555 5.5.4"), M,
                                 (rcpt("SIZE=100"), "555 5.5.4"), (rcpt("XBAR"), "555 5.5.4")]),
    ("esmtp_parameter_after_helo", [("HELO client.test", "250"), (mail("SIZE=100"), "555 5.5.4"),
                                    (mail("BODY=8BITMIME"), "555 5.5.4"), (mail("SMTPUTF8"), "555 5.5.4"), M,
                                    (rcpt("NOTIFY=NEVER"), "555 5.5.4")]),
    ("duplicate_esmtp_parameter", [E, (mail("SIZE=10 SIZE=10"), "501 5.5.4"),
                                   (mail("BODY=7BIT body=8BITMIME"), "501 5.5.4"), M,
                                   (rcpt("NOTIFY=NEVER NOTIFY=NEVER"), "501 5.5.4"),
                                   (rcpt("ORCPT=rfc822;a@b.test ORCPT=rfc822;c@d.test"), "501 5.5.4")]),
    ("bad_mail_parameter_values", [E] + [(mail(p), "501 5.5.4") for p in [
        "SIZE=", "SIZE=12x", "SIZE=-1", "SIZE=123456789012345678901", "BODY=9BIT", "SMTPUTF8=yes",
        "RET=ALL", "ENVID=a+ZZ"]]),
    ("bad_rcpt_parameter_values", [E, M] + [(rcpt(p), "501 5.5.4") for p in [
        "NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "NOTIFY=", "ORCPT=rfc822", "ORCPT=x400;foo",
        "ORCPT=rfc822;+ZZ", "ORCPT=rfc822;a+00b@client.test"]]),
    ("address_length_limits", [E, ("MAIL FROM:<" + "l" * 64 + "@client.test>", "250 2.1.0"),
                               ("RCPT TO:<" + "l" * 65 + "@robots.test>", "501 5.1.3"),
                               ("RCPT TO:<u@" + ("a" * 63 + ".") * 4 + "robots.test>", "501 5.1.3"),
                               ("RCPT TO:<" + "l" * 64 + "@robots.test>", "250 2.1.5")]),
    ("quoted_local_parts", [E, M, ('RCPT TO:<"unterminated@robots.test>', "501 5.1.3"),
                            ('RCPT TO:<"a"b"@robots.test>', "501 5.1.3"),
                            ('RCPT TO:<"a\\"b c"@robots.test>', "250 2.1.5"),
                            ('RCPT TO:<"x@example.com"@robots.test>', "250 2.1.5")]),
    ("oversized_parameter_values", [E, (mail("ENVID=" + "e" * 101), "501 5.5.4"),
                                    (mail("SIZE=" + "1" * 5000), "500 5.5.2"), M,
                                    (rcpt("ORCPT=rfc822;" + "o" * 501), "501 5.5.4")]),
    ("utf8_address_without_smtputf8", [E, ("MAIL FROM:<jösé@client.test>", "553 5.6.7"), M,
                                       ("RCPT TO:<jösé@robots.test>", "553 5.6.7"), ("RSET", "250 2.0.0"),
                                       (mail("SMTPUTF8").replace("sender", "jösé"), "250 2.1.0"),
                                       ("RCPT TO:<jösé@robots.test>", "250 2.1.5")]),
    ("invalid_utf8_address", [E, (b"MAIL FROM:<\xff@client.test> SMTPUTF8\r\n", "501 5.1.7"),
                              (mail("SMTPUTF8"), "250 2.1.0"),
                              (b"RCPT TO:<\xc3\x28@robots.test>\r\n", "501 5.1.3"),       # truncated sequence
                              (b"RCPT TO:<\xed\xa0\x80@robots.test>\r\n", "501 5.1.3"),   # surrogate
                              (b"RCPT TO:<\xc0\xaf@robots.test>\r\n", "501 5.1.3"),       # overlong '/'
                              (b"RCPT TO:<user@robots\xf8.test>\r\n", "501 5.1.3")]),
    ("size_over_limit", [E, (mail("SIZE=%d" % (MSG_LIMIT + 1)), "552 5.3.4"),
                         (mail("SIZE=9999999999999999999"), "552 5.3.4"),
                         (mail("SIZE=%d" % MSG_LIMIT), "250 2.1.0")]),
    ("relay_denied", [E, M] + [("RCPT TO:<%s>" % a, "554 5.7.1") for a in [
        "victim@example.com", "victim@robots.test.evil.test", "victim@evilrobots.test", "victim@sub.test",
        "victim@xsub.test", "victim@[127.0.0.1]", "@robots.test:victim@example.com"]] + [
        ("RCPT TO:<ok@a.b.sub.test>", "250 2.1.5"), ("RCPT TO:<ok@ROBOTS.TEST>", "250 2.1.5"),
        ("RCPT TO:<postmaster>", "250 2.1.5")]),
    ("unimplemented_commands", [E, ("BDAT 10 LAST", "502 5.5.1"), ("EXPN staff", "502 5.5.1"),
                                ("AUTH PLAIN AGVsAGU=", "502 5.5.1"), ("AUTH LOGIN", "502 5.5.1"),
                                ("LHLO client.test", "500 5.5.1")]),
    ("starttls_not_configured", [E, ("STARTTLS", "502 5.5.1"), ("NOOP", "250 2.0.0")]),
    ("vrfy", [E, ("VRFY user", "252 2.5.0"), ("VRFY <user@robots.test>", "252 2.5.0"), ("VRFY", "501 5.5.4")]),
    # --- ending a session
    ("quit_closes", [E, M, R, ("QUIT", ["221 2.0.0", CLOSED])]),
    ("quit_ignores_pipelined_rest", [(b"QUIT\r\nNOOP\r\nMAIL FROM:<a@client.test>\r\n", ["221 2.0.0", CLOSED])]),
    ("error_limit_disconnects", [E] + [("XYZ%d" % i, "500 5.5.1") for i in range(9)] + [
        ("XYZ9", ["500 5.5.1", "421 4.7.0 too many errors", CLOSED])]),
    ("error_limit_counts_every_error", [E, M] + [("RCPT TO:<v%d@example.com>" % i, "554 5.7.1") for i in range(5)] +
     [("MAIL FROM:<x@client.test>", "503 5.5.1")] * 3 + [("RCPT TO:<bad@>", "501 5.1.3"),
                                                        ("DATA", ["554 5.5.1", "421 4.7.0", CLOSED])]),
    ("error_limit_pipelined", [(b"EHLO client.test\r\n" + b"".join(b"BAD%d\r\n" % i for i in range(14)),
                                ["250"] + ["500 5.5.1"] * 10 + ["421 4.7.0 too many errors", CLOSED])]),
    # --- message content (replies come after the final dot)
    ("data_line_too_long", TX + [(HDR + b"x" * 999 + b"\r\nafter\r\n.\r\n", "554 5.6.0")]),
    ("data_line_huge_without_crlf", TX + [(HDR + b"y" * 150000, None), (b"\r\nafter\r\n.\r\n", "554 5.6.0")]),
    ("data_bare_lf", TX + [(HDR + b"line one\nline two\r\n.\r\n", "554 5.6.0")]),
    ("data_bare_cr", TX + [(HDR + b"line one\rline two\r\n.\r\n", "554 5.6.0")]),
    ("data_bare_lf_in_header", TX + [(b"Subject: a\nBcc: victim@example.com\r\n\r\nbody\r\n.\r\n", "554 5.6.0")]),
    ("data_nul_byte", TX + [(HDR + b"nul\x00byte\r\n.\r\n", "554 5.6.0")]),
    ("data_over_size_limit", TX + [(HDR + (b"z" * 98 + b"\r\n") * (MSG_LIMIT // 100 + 100) + b".\r\n",
                                    "552 5.3.4")]),
    ("data_header_over_limit", TX + [(b"".join(b"X-Pad-%04d: %s\r\n" % (i, b"p" * 60) for i in range(200)) +
                                      b"\r\nbody\r\n.\r\n", "552 5.3.4")]),
    ("data_folded_header_over_limit", TX + [(b"Subject: start\r\n" + b"\tcontinued folded text\r\n" * 500 +
                                             b"\r\nbody\r\n.\r\n", "552 5.3.4")]),
    ("data_error_then_new_transaction_clean", TX + [(HDR + b"bad\nline\r\n.\r\n", "554 5.6.0"),
                                                    ("DATA", "503 5.5.1"), M, R]),
]

# SMTP smuggling: only <CRLF>.<CRLF> ends DATA. Each lookalike terminator below is followed by a
# smuggled transaction; the whole message must be refused once (bare CR/LF) and the smuggled
# commands never answered (the sync probe sees 214 next, not 250/354).
for _tag, _fake in [("lf_dot_lf", b"\n.\n"), ("lf_dot_crlf", b"\n.\r\n"), ("crlf_dot_lf", b"\r\n.\n"),
                    ("cr_dot_cr", b"\r.\r"), ("cr_dot_crlf", b"\r.\r\n"), ("crlf_dot_cr", b"\r\n.\r"),
                    ("crlf_lf_dot_crlf", b"\r\n\n.\r\n"), ("crlf_dot_nul_crlf", b"\r\n.\x00\r\n")]:
    CASES.append(("smuggling_" + _tag, TX + [(HDR + b"innocent body" + _fake + SMUGGLED + b".\r\n", "554 5.6.0")]))


def run_case(d, script):
    before = spool_files(d)
    c = connect(d)
    try:
        run_script(c, script)
        if not any(w == CLOSED or (isinstance(w, list) and CLOSED in w) for _, w in script[-1:]):
            sync_probe(c)
    finally:
        c.close()
    assert_spool_unchanged(d, before)
    assert_healthy(d)


def _make_case(name, script):
    @bounded(CASE_TIME)
    def test():
        run_case(shared(), script)
    test.__name__ = test.__qualname__ = "test_" + name
    return test


for _name, _script in CASES:
    assert "test_" + _name not in globals(), _name
    globals()["test_" + _name] = _make_case(_name, _script)


# ---------------------------------------------------------------------------------------------
# Sessions that need more than a script


@bounded(CASE_TIME)
def test_command_line_limit_crlf_split():
    """A 2048-octet line whose CR arrives before its LF is still a 2048-octet line."""
    d = shared()
    c = connect(d)
    try:
        run_script(c, [E])
        c.send(b"VRFY " + b"a" * 2043 + b"\r")
        time.sleep(0.3)
        c.send(b"\n")
        expect(c, "252 2.5.0", "VRFY (2048 octets, CR and LF in separate segments)")
        sync_probe(c)
    finally:
        c.close()
    assert_healthy(d)


@bounded(CASE_TIME)
def test_pipelined_transactions_in_one_write():
    """RFC 2920: two transactions, content included, in a single write; all replies in order."""
    d = shared()
    t1, t2 = uuid.uuid4().hex, uuid.uuid4().hex
    blob = (b"EHLO client.test\r\nMAIL FROM:<p1@client.test>\r\nRCPT TO:<a@robots.test>\r\n"
            b"RCPT TO:<b@x.sub.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n" +
            message(t1, b"first\r\n..dot-stuffed line\r\n") + b".\r\n"
            b"RSET\r\nMAIL FROM:<p2@client.test>\r\nRCPT TO:<c@robots.test>\r\nDATA\r\n" +
            message(t2, b"second\r\n") + b".\r\nQUIT\r\n")
    c = connect(d)
    try:
        c.send(blob)
        code, lines = expect(c, "250", "EHLO")
        assert "PIPELINING" in [l[4:] for l in lines], lines
        run_script(c, [(None, ["250 2.1.0", "250 2.1.5", "250 2.1.5", "554 5.7.1", "354"])])
        q1 = expect_queued(c)
        run_script(c, [(None, ["250 2.0.0", "250 2.1.0", "250 2.1.5", "354"])])
        q2 = expect_queued(c)
        run_script(c, [(None, ["221 2.0.0", CLOSED])])
    finally:
        c.close()
    m1, m2 = find_queued(d, q1), find_queued(d, q2)
    assert m1.recipients == ["a@robots.test", "b@x.sub.test"] and m1.sender == "p1@client.test", m1.records
    assert m2.recipients == ["c@robots.test"] and m2.sender == "p2@client.test", m2.records
    assert t1.encode() in m1.content and m1.body() == b"first\r\n.dot-stuffed line\r\n", m1.body()
    assert t2.encode() in m2.content and m2.body() == b"second\r\n", m2.body()
    assert_healthy(d)


@bounded(CASE_TIME)
def test_data_lookalike_terminators_are_content():
    """Lines that merely start with a dot are content (dot-unstuffed, RFC 5321 4.5.2); a
    command after them is content too."""
    d = shared()
    body = b"..leading dot\r\n. \r\n.x\r\n.\t\r\nMAIL FROM:<attacker@evil.test>\r\n..\r\nend\r\n"
    c = connect(d)
    try:
        run_script(c, TX)
        c.send(message("lookalike", body) + b".\r\n")
        qid = expect_queued(c)
        sync_probe(c)
    finally:
        c.close()
    qf = find_queued(d, qid)
    assert qf.body() == b".leading dot\r\n \r\nx\r\n\t\r\nMAIL FROM:<attacker@evil.test>\r\n.\r\nend\r\n", qf.body()
    assert_healthy(d)


@bounded(CASE_TIME)
def test_format_string_injection():
    """printf directives in every field the daemon echoes, logs or writes into a header."""
    d = shared()
    c = connect(d)
    try:
        run_script(c, [("EHLO %n%n%s%s%x.client.test", "250"), ("%n%n%n%n %s%s%s", "500 5.5.1"),
                       ("MAIL FROM:<%s%n%p@client.test> ENVID=%25n%25s", "250 2.1.0"),
                       ("RCPT TO:<%n%n%n%n@example.com>", "554 5.7.1"),
                       ("RCPT TO:<%s%s%s%s@robots.test> ORCPT=rfc822;%25n%25s@robots.test", "250 2.1.5"),
                       ("VRFY %n%s", "252 2.5.0"), D])
        c.send(message("%n%s%n%s", b"%n%n%n%n%s%s%s%s\r\n") + b".\r\n")
        qid = expect_queued(c)
        sync_probe(c)
    finally:
        c.close()
    qf = find_queued(d, qid)
    assert qf.sender == "%s%n%p@client.test" and qf.recipients == ["%s%s%s%s@robots.test"], qf.records
    assert qf.body() == b"%n%n%n%n%s%s%s%s\r\n", qf.body()
    assert_healthy(d)


@bounded(CASE_TIME)
def test_empty_and_headerless_messages():
    """An empty message, a body without headers and a header without a body are all content."""
    d = shared()
    c = connect(d)
    ids = []
    try:
        run_script(c, [E])
        for content in (b"", b"just a body line, no header\r\n", b"Subject: no body\r\n",
                        b"\r\n\r\n\r\n", b": no field name\r\n\r\nbody\r\n"):
            run_script(c, [M, R, D])
            c.send(content + b".\r\n")
            ids.append(expect_queued(c, content))
        sync_probe(c)
    finally:
        c.close()
    for qid in ids:
        find_queued(d, qid)
    assert_healthy(d)


@bounded(CASE_TIME)
def test_data_line_length_boundary():
    """998 octets + CRLF = 1000 is accepted; 999 + CRLF is refused after the dot."""
    d = shared()
    c = connect(d)
    try:
        run_script(c, TX)
        c.send(message("boundary", b"a" * 998 + b"\r\n") + b".\r\n")
        qid = expect_queued(c)
        before = spool_files(d)
        run_script(c, [M, R, D, (message("boundary2", b"b" * 999 + b"\r\n") + b".\r\n", "554 5.6.0")])
        sync_probe(c)
    finally:
        c.close()
    assert_spool_unchanged(d, before)
    assert find_queued(d, qid).body() == b"a" * 998 + b"\r\n"
    assert_healthy(d)


@bounded(40)
def test_recipient_flood_10k():
    """10000 pipelined RCPTs: 1000 x 250, then 452 4.5.3 (not counted as errors), DATA works,
    and the message has exactly 1000 recipients."""
    d = shared()
    n, limit = 10000, 1000
    c = connect(d, timeout=20)
    replies, errors = [], []

    def reader():
        try:
            for _ in range(n):
                replies.append(c.reply())
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    try:
        run_script(c, [E, M])
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        c.send(b"".join(b"RCPT TO:<r%05d@robots.test>\r\n" % i for i in range(n)))
        t.join(30)
        assert not t.is_alive(), "reader still waiting after %d replies" % len(replies)
        assert not errors, "after %d replies: %r" % (len(replies), errors)
        for i, (code, lines) in enumerate(replies):
            want = "250 2.1.5" if i < limit else "452 4.5.3"
            assert lines[-1].startswith(want + " "), "RCPT #%d: expected %s, got %r" % (i, want, lines)
        run_script(c, [D])
        c.send(message("flood") + b".\r\n")
        qid = expect_queued(c)
        sync_probe(c)
    finally:
        c.close()
    qf = find_queued(d, qid)
    assert qf.recipients == ["r%05d@robots.test" % i for i in range(limit)], len(qf.recipients)
    assert_healthy(d)


@bounded(40)
def test_pipelined_flood_without_reading():
    """150000 pipelined NOOPs from a client that does not read its replies for a while (2 MB of
    replies pile up): the daemon must apply back-pressure, then answer every one in order."""
    d = shared()
    n = 150000
    c = connect(d, timeout=20)
    done = []

    def writer():
        c.send(b"NOOP\r\n" * n)
        done.append(True)

    try:
        run_script(c, [E])
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(1.0)  # not reading: the daemon's output backs up
        for i in range(n):
            code, lines = c.reply()
            assert lines == ["250 2.0.0 Ok"], "NOOP #%d: %r" % (i, lines)
        t.join(IO_TIMEOUT)
        assert done, "the writer did not finish"
        sync_probe(c)
    finally:
        c.close()
    assert_healthy(d)


GARBAGE = bytes(b for b in range(256) if b not in (10, 13))


@bounded(CASE_TIME)
def test_garbage_lines_hit_error_limit():
    """Ten lines of random binary: ten 500s, then 421 4.7.0 and a clean close."""
    d = shared()
    rng = random.Random(5321)
    lines = [bytes(rng.choice(GARBAGE) for _ in range(rng.randint(1, 300))) for _ in range(10)]
    before = spool_files(d)
    c = connect(d)
    try:
        c.send(b"".join(l + b"\r\n" for l in lines))
        for i, l in enumerate(lines):
            code, reply = c.reply()
            assert code == 500 and reply[0][4:9] in ("5.5.1", "5.5.2"), "line %d %r: %r" % (i, l[:40], reply)
        expect(c, "421 4.7.0 too many errors")
        expect_closed(c)
    finally:
        c.close()
    assert_spool_unchanged(d, before)
    assert_healthy(d)


@bounded(CASE_TIME)
def test_garbage_blob_stream():
    """256 KiB of random bytes with CRLFs, written while reading: only 5xx errors, then 421."""
    d = shared()
    rng = random.Random(2920)
    chunks = []
    for _ in range(4096):
        chunks.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 120))) + b"\r\n")
    blob = b"".join(chunks)
    before = spool_files(d)
    c = connect(d)

    def writer():
        try:
            c.send(blob)
        except OSError:
            pass  # the server hung up, as it should

    t = threading.Thread(target=writer, daemon=True)
    try:
        t.start()
        replies = []
        while True:
            code, lines = c.reply()
            replies.append(lines)
            if code == 421:
                break
            assert 500 <= code < 600, "reply to garbage: %r" % lines
        assert replies[-1][-1].startswith("421 4.7.0 "), replies[-1]
        assert len(replies) <= 11, "%d replies before 421" % len(replies)
        assert c.closed(IO_TIMEOUT)
    finally:
        c.close()
        t.join(IO_TIMEOUT)
    assert_spool_unchanged(d, before)
    assert_healthy(d)


def _set_rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@bounded(CASE_TIME)
def test_disconnect_in_data():
    """A client that goes away inside DATA (FIN or RST, mid-line, after "\\r\\n." or "\\r\\n.\\r")
    gets nothing queued and leaves nothing in tmp/."""
    d = shared()
    for tail, rst in [(b"partial line", False), (b"partial line", True), (b"\r\n.", False),
                      (b"\r\n.\r", False), (b"\r\n.\r", True), (b"", False)]:
        before = spool_files(d)
        c = connect(d)
        try:
            run_script(c, TX)
            c.send(HDR + b"body line\r\n" * 50 + tail)
            time.sleep(0.05)
            if rst:
                _set_rst(c.sock)
        finally:
            c.close()
        assert_spool_unchanged(d, before)
    assert_healthy(d)


@bounded(CASE_TIME)
def test_disconnect_right_after_final_dot():
    """The client leaves as soon as its final dot is sent (the commit is in flight): the daemon
    must not touch the freed session. The message may or may not be queued."""
    d = shared()
    for rst in (False, True):
        c = connect(d)
        try:
            run_script(c, TX)
            c.send(message("gone") + b".\r\nQUIT\r\n")
            if rst:
                _set_rst(c.sock)
        finally:
            c.close()
    time.sleep(0.3)
    assert_healthy(d)


@bounded(CASE_TIME)
def test_disconnect_mid_command_and_connect_flood():
    """100 connections that reset at once, send half a command, or half-close after a
    pipelined group: the daemon keeps serving."""
    d = shared()
    before = spool_files(d)
    for batch in range(5):
        conns = []
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", d.smtp_port), IO_TIMEOUT)
            conns.append(s)
            # Connections over the per-IP limit are refused with 421 and closed at once, so
            # the daemon may be gone before the client writes.
            with contextlib.suppress(OSError):
                if i % 3 == 0:
                    _set_rst(s)
                elif i % 3 == 1:
                    s.sendall(b"EHLO half-a-comm")
                else:
                    s.sendall(b"EHLO x\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@robots.test>\r\n")
                    s.shutdown(socket.SHUT_WR)
        for s in conns:
            s.close()
    deadline = time.time() + 5
    while True:  # wait for the daemon to notice every close (smtp_max_connections_per_ip = 50)
        c = Raw(d.smtp_port, timeout=IO_TIMEOUT)
        code, lines = c.reply()
        c.close()
        if code == 220 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert code == 220, lines
    assert_spool_unchanged(d, before)
    assert_healthy(d)


# ---------------------------------------------------------------------------------------------
# Timeouts (smtp_timeout = 2s)


def _dribble_until_reply(c, data, interval=0.25, limit=8.0):
    """Sends data one byte at a time until the server says something; returns the seconds it
    took."""
    start = time.time()
    i = 0
    while time.time() - start < limit:
        r, _, _ = select.select([c.sock], [], [], interval)
        if r:
            return time.time() - start
        try:
            c.send(data[i % len(data):i % len(data) + 1])
        except OSError:
            return time.time() - start
        i += 1
    raise AssertionError("no reply while dribbling for %.1fs" % limit)


@bounded(CASE_TIME)
def test_timeout_idle_connection():
    d = timeout_daemon()
    c = connect(d, timeout=8)
    try:
        start = time.time()
        expect(c, "421 4.4.2 timeout exceeded", "(idle)")
        took = time.time() - start
        assert 1.5 <= took <= 5, "timed out after %.2fs with smtp_timeout = 2s" % took
        expect_closed(c)
    finally:
        c.close()
    assert_healthy(d)


@bounded(CASE_TIME)
def test_timeout_slowloris_command():
    """A command dribbled a byte at a time never completes: 421 4.4.2 after smtp_timeout."""
    d = timeout_daemon()
    c = connect(d, timeout=8)
    try:
        run_script(c, [E])
        took = _dribble_until_reply(c, b"NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
        assert 1.5 <= took <= 4.5, "reply after %.2fs of dribbling with smtp_timeout = 2s" % took
        expect(c, "421 4.4.2 timeout exceeded", "(dribbled command)")
        expect_closed(c)
    finally:
        c.close()
    assert_healthy(d)


@bounded(CASE_TIME)
def test_timeout_slowloris_data():
    """A content line dribbled inside DATA: 421 4.4.2, nothing queued, tmp/ clean."""
    d = timeout_daemon()
    before = spool_files(d)
    c = connect(d, timeout=8)
    try:
        run_script(c, TX)
        c.send(HDR)
        took = _dribble_until_reply(c, b"slow body text ")
        assert 1.5 <= took <= 4.5, "reply after %.2fs of dribbling with smtp_timeout = 2s" % took
        expect(c, "421 4.4.2 timeout exceeded", "(dribbled content)")
        expect_closed(c)
    finally:
        c.close()
    assert_spool_unchanged(d, before)
    assert_healthy(d)


# ---------------------------------------------------------------------------------------------
# Connection limit


@bounded(CASE_TIME)
def test_connections_per_ip_limit():
    with Daemon(extra={"smtp_max_connections_per_ip": "3"}) as d:
        d.start()
        conns = [connect(d) for _ in range(3)]
        try:
            extra = Raw(d.smtp_port, timeout=IO_TIMEOUT)
            expect(extra, "421 4.7.0", "(4th connection)")
            expect_closed(extra)
            extra.close()
            run_script(conns[0], [("QUIT", ["221 2.0.0", CLOSED])])
            conns[0].close()
            conns[0] = connect(d)  # a slot is free again
            for c in conns:
                run_script(c, [("QUIT", ["221 2.0.0", CLOSED])])
        finally:
            for c in conns:
                c.close()
        assert_healthy(d)


# ---------------------------------------------------------------------------------------------
# STARTTLS


def _tls_wrap(c):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    assert c.buf == b"", "plaintext after the 220 to STARTTLS: %r" % c.buf
    c.sock = ctx.wrap_socket(c.sock, server_hostname=HOSTNAME)


def _nothing_pending(c, wait=0.5):
    c.sock.settimeout(wait)
    try:
        data = c.sock.recv(4096)
    except (socket.timeout, ssl.SSLWantReadError):
        data = None
    finally:
        c.sock.settimeout(IO_TIMEOUT)
    assert data is None, "server sent %r after the TLS handshake, unasked" % (data,)


@bounded(CASE_TIME)
def test_starttls_plaintext_injection():
    """CVE-2011-0411 class: commands pipelined behind STARTTLS in plaintext are discarded."""
    d = tls_daemon()
    for injected in (b"RSET\r\n", b"EHLO evil.test\r\nMAIL FROM:<attacker@evil.test>\r\n"):
        c = connect(d)
        try:
            c.send(b"EHLO client.test\r\n")
            code, lines = expect(c, "250", "EHLO")
            assert "STARTTLS" in [l[4:] for l in lines], lines
            c.send(b"STARTTLS\r\n" + injected)
            expect(c, "220 2.0.0", "STARTTLS")
            _tls_wrap(c)
            _nothing_pending(c)
            # The injected EHLO/MAIL must not count: no MAIL (and no EHLO) is in effect.
            run_script(c, [("RCPT TO:<user@robots.test>", "503 5.5.1"), ("MAIL FROM:<s@client.test>", "503 5.5.1")])
            c.send(b"EHLO client.test\r\n")
            code, lines = expect(c, "250", "EHLO after TLS")
            assert lines[0] == "250-" + HOSTNAME, lines
            assert "STARTTLS" not in [l[4:] for l in lines], lines
            run_script(c, [M, R, D])
            c.send(message("over tls") + b".\r\n")
            qid = expect_queued(c)
            sync_probe(c, quit=False)  # QUIT over TLS has its own test
        finally:
            c.close()
        qf = find_queued(d, qid)
        assert qf.records.get("proto") == "ESMTPS", qf.records
        assert qf.sender == "sender@client.test", qf.sender
    assert_healthy(d)


@bounded(CASE_TIME)
def test_starttls_misuse():
    d = tls_daemon()
    c = connect(d)
    try:
        run_script(c, [E, ("STARTTLS now", "501 5.5.4"), M, ("STARTTLS", "503 5.5.1"), ("RSET", "250 2.0.0"),
                       ("STARTTLS", "220 2.0.0")])
        _tls_wrap(c)
        run_script(c, [E, ("STARTTLS", "503 5.5.1")])
        sync_probe(c, quit=False)  # QUIT over TLS has its own test
    finally:
        c.close()
    assert_healthy(d)


def _tls_session(d):
    c = connect(d)
    run_script(c, [E, ("STARTTLS", "220 2.0.0")])
    _tls_wrap(c)
    run_script(c, [E])
    return c


@bounded(CASE_TIME)
def test_starttls_last_replies_not_lost():
    """The last reply before the server closes (221 to QUIT, 421 at the error limit) must reach
    a TLS client too (RFC 5321 4.1.1.10: the server MUST send 221)."""
    d = tls_daemon()
    failures = []
    for what, script in [
            ("QUIT", [("QUIT", ["221 2.0.0", CLOSED])]),
            ("error limit", [("BAD%d" % i, "500 5.5.1") for i in range(9)] +
             [("BAD9", ["500 5.5.1", "421 4.7.0 too many errors", CLOSED])])]:
        c = _tls_session(d)
        try:
            run_script(c, script)
        except AssertionError as e:
            failures.append("%s over TLS: %s" % (what, e))
        finally:
            c.close()
    assert not failures, "; ".join(failures)
    assert_healthy(d)


@bounded(CASE_TIME)
def test_starttls_handshake_garbage():
    """Garbage instead of a ClientHello, or no handshake at all: the connection is closed
    (or just dropped) and the daemon keeps serving."""
    d = tls_daemon()
    c = connect(d)
    try:
        run_script(c, [E, ("STARTTLS", "220 2.0.0")])
        c.send(bytes(random.Random(3207).randrange(256) for _ in range(2048)))
        assert c.closed(IO_TIMEOUT), "connection still open after a garbage TLS handshake"
    finally:
        c.close()
    c = connect(d)
    try:
        run_script(c, [E, ("STARTTLS", "220 2.0.0")])
        c.send(b"\x16\x03\x01\x00\x05\x01\x00")  # a truncated ClientHello, then gone
    finally:
        c.close()
    time.sleep(0.2)
    assert_healthy(d)


# ---------------------------------------------------------------------------------------------


def finish():
    """At the end: every shared daemon still serves, stops cleanly, and logged no report."""
    failed = 0
    for kind, d in sorted(_daemons.items()):
        try:
            assert_healthy(d)
            rc = d.stop()
            d.check_log_clean()
            assert rc == 0, "postern (%s) exited with %s:\n%s" % (kind, rc, d.logtext()[-3000:])
            print("ok   %-50s" % ("final check of the %s daemon" % kind), flush=True)
        except Exception:  # noqa: BLE001
            failed += 1
            import traceback
            print("FAIL final check of the %s daemon" % kind, flush=True)
            traceback.print_exc()
            sys.stderr.write("---- postern log ----\n" + d.logtext()[-6000:] + "\n")
        finally:
            d.cleanup()
    for kind, rc, tail in _crashes:
        failed += 1
        print("FAIL the %s daemon died during the run (status %s):\n%s" % (kind, rc, tail), flush=True)
    return failed


if __name__ == "__main__":
    status = 0
    try:
        run_tests(globals())
    except SystemExit as e:
        status = e.code or 0
    sys.exit(1 if finish() or status else 0)
