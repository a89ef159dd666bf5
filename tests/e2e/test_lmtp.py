"""LMTP intake (RFC 2033) over TCP and a unix socket: one reply per recipient after DATA."""
import smtplib
import socket

import harness
from harness import Daemon, Raw

MSG = b"Subject: lmtp\r\nMessage-ID: <l1@mta.test>\r\n\r\nbody\r\n"


def test_lmtp_tcp_multi_recipient_replies():
    with Daemon() as d:
        d.start()
        r = Raw(d.lmtp_port)
        code, lines = r.reply()
        assert code == 220 and "LMTP" in lines[0]
        code, lines = r.cmd("EHLO mta.test")
        assert code == 500 and lines[0].startswith("500 5.5.1"), lines
        code, lines = r.cmd("LHLO mta.test")
        assert code == 250 and "250-PIPELINING" in lines and "250 DSN" in lines
        assert r.cmd("MAIL FROM:<s@mta.test>")[0] == 250
        assert r.cmd("RCPT TO:<a@robots.test>")[0] == 250
        assert r.cmd("RCPT TO:<b@elsewhere.test>")[0] == 554
        assert r.cmd("RCPT TO:<c@robots.test>")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(MSG + b".\r\n")
        first, second = r.reply(), r.reply()
        assert first[0] == 250 and first[1][0].startswith("250 2.1.5 <a@robots.test> Ok: queued as ")
        assert second[0] == 250 and second[1][0].startswith("250 2.1.5 <c@robots.test> Ok: queued as ")
        assert r.cmd("QUIT")[0] == 221
        (m,) = d.wait_messages(1)
        assert m.recipients == ["a@robots.test", "c@robots.test"]
        assert m.records["origin"] == "lmtp" and m.records["proto"] == "LMTP"
        assert "with LMTP id " + m.id in m.header("Received")[0]


def test_lmtp_smtplib_client():
    with Daemon() as d:
        d.start()
        c = smtplib.LMTP("127.0.0.1", d.lmtp_port)
        try:
            refused = c.sendmail("s@mta.test", ["a@robots.test", "b@robots.test", "x@nowhere.test"], MSG)
            assert list(refused) == ["x@nowhere.test"] and refused["x@nowhere.test"][0] == 554
        finally:
            c.quit()
        (m,) = d.wait_messages(1)
        assert m.recipients == ["a@robots.test", "b@robots.test"]


def test_lmtp_unix_socket_is_trusted_and_replies_per_recipient():
    with Daemon() as d:
        d.start()
        d.wait_port(d.lmtp_port)
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(d.lmtp_sock)
        r = Raw.__new__(Raw)
        r.sock, r.buf = s, b""
        assert r.reply()[0] == 220
        assert r.cmd("LHLO mta.test")[0] == 250
        batch = "MAIL FROM:<>\r\n" + "".join("RCPT TO:<u%d@anywhere.test>\r\n" % i for i in range(3)) + "DATA\r\n"
        r.send(batch)
        assert [r.reply()[0] for _ in range(5)] == [250, 250, 250, 250, 354]
        r.send(MSG + b".\r\n")
        replies = [r.reply()[1][0] for _ in range(3)]
        for i, line in enumerate(replies):
            assert line.startswith("250 2.1.5 <u%d@anywhere.test> Ok: queued as" % i), replies
        r.cmd("QUIT")
        (m,) = d.wait_messages(1)
        assert m.sender == "" and len(m.recipients) == 3


def test_lmtp_content_error_gets_one_reply_per_recipient():
    with Daemon() as d:
        d.start()
        r = Raw(d.lmtp_port)
        r.reply()
        r.cmd("LHLO mta.test")
        r.cmd("MAIL FROM:<s@mta.test>")
        r.cmd("RCPT TO:<a@robots.test>")
        r.cmd("RCPT TO:<b@robots.test>")
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: bad\r\n\r\nbare\nlf\r\n.\r\n")
        for rcpt in ("a", "b"):
            code, lines = r.reply()
            assert code == 554 and lines[0].startswith("554 5.6.0 <%s@robots.test>" % rcpt), lines
        assert r.cmd("NOOP")[0] == 250
        r.close()
        assert d.messages() == []


if __name__ == "__main__":
    harness.run_tests(globals())
