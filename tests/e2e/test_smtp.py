"""SMTP intake with real clients: swaks, Python smtplib, Postfix's smtp-source."""
import smtplib
import ssl
import subprocess

import harness
from harness import Daemon, Raw

MSG = (b"From: robot <robot@client.test>\r\nTo: a@robots.test\r\nSubject: hello\r\n"
       b"Message-ID: <m1@client.test>\r\n\r\nline one\r\n.leading dot\r\nline three\r\n")


def test_swaks_delivers():
    with Daemon() as d:
        d.start()
        out = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % d.smtp_port, "--from", "s@client.test",
                              "--to", "a@robots.test", "--header", "Subject: via swaks"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "250 2.0.0 Ok: queued as" in out.stdout
        qid = out.stdout.split("queued as ")[1].split()[0]
        (m,) = d.wait_messages(1)
        assert m.id == qid and m.sender == "s@client.test" and m.recipients == ["a@robots.test"]
        assert m.header("Subject") == ["via swaks"]
        received = m.header("Received")[0]
        assert "by mx.postern.test (postern)" in received and "id " + qid in received
        assert "[127.0.0.1]" in received and "for <a@robots.test>" in received


def test_smtplib_multi_recipient_and_dot_stuffing():
    with Daemon() as d:
        d.start()
        with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as c:
            c.ehlo("client.test")
            assert c.has_extn("pipelining") and c.has_extn("8bitmime") and c.has_extn("dsn")
            assert c.has_extn("enhancedstatuscodes") and c.has_extn("smtputf8")
            assert int(c.esmtp_features["size"]) == 25 * 1024 * 1024
            assert not c.has_extn("starttls")
            refused = c.sendmail("s@client.test", ["a@robots.test", "b@x.sub.test"], MSG)
            assert refused == {}
        (m,) = d.wait_messages(1)
        assert m.recipients == ["a@robots.test", "b@x.sub.test"]
        assert m.body() == b"line one\r\n.leading dot\r\nline three\r\n"
        assert m.header("Return-Path") == []


def test_return_path_from_input_is_dropped():
    with Daemon() as d:
        d.start()
        msg = b"Return-Path: <forged@evil.test>\r\n\tcontinued\r\nSubject: x\r\n\r\nbody\r\n"
        with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as c:
            c.sendmail("s@client.test", ["a@robots.test"], msg)
        (m,) = d.wait_messages(1)
        assert b"forged" not in m.content and b"continued" not in m.content
        assert m.header("Subject") == ["x"]


def test_relay_denied_unless_trusted():
    with Daemon() as d:
        d.start()
        r = Raw(d.smtp_port)
        assert r.reply()[0] == 220
        r.cmd("EHLO client.test")
        assert r.cmd("MAIL FROM:<s@client.test>")[0] == 250
        code, lines = r.cmd("RCPT TO:<x@elsewhere.test>")
        assert code == 554 and lines[0].startswith("554 5.7.1 <x@elsewhere.test>: Relay access denied")
        assert r.cmd("RCPT TO:<x@sub.test>")[0] == 554  # *.sub.test matches subdomains only
        assert r.cmd("RCPT TO:<postmaster>")[0] == 250
        assert r.cmd("RCPT TO:<a@ROBOTS.test>")[0] == 250
        r.close()
    with Daemon(extra={"mynetworks": "127.0.0.0/8"}) as d:
        d.start()
        with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as c:
            assert c.sendmail("s@client.test", ["x@elsewhere.test"], MSG) == {}


def test_dsn_parameters_are_kept():
    with Daemon() as d:
        d.start()
        r = Raw(d.smtp_port)
        r.reply()
        r.cmd("EHLO client.test")
        assert r.cmd("MAIL FROM:<s@client.test> RET=HDRS ENVID=QQ+2B314 BODY=8BITMIME SIZE=100")[0] == 250
        assert r.cmd("RCPT TO:<a@robots.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+2Bx@robots.test")[0] == 250
        assert r.cmd("RCPT TO:<b@robots.test> NOTIFY=NEVER")[0] == 250
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
        assert r.reply()[0] == 250
        r.cmd("QUIT")
        (m,) = d.wait_messages(1)
        assert m.records["ret"] == "HDRS" and m.records["envid"] == "QQ+2B314" and m.records["body"] == "8BITMIME"
        assert m.rcpts[0]["notify"] == 4 | 8 and m.rcpts[0]["orcpt"] == "rfc822;a+2Bx@robots.test"
        assert m.rcpts[1]["notify"] == 1 and m.rcpts[1]["orcpt"] is None


def test_smtputf8_address():
    with Daemon() as d:
        d.start()
        with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as c:
            c.ehlo("client.test")
            c.sendmail("jürgen@client.test", ["ü@robots.test"], "Subject: ü\r\n\r\nü\r\n".encode(),
                       mail_options=["SMTPUTF8"])
        (m,) = d.wait_messages(1)
        assert m.sender == "jürgen@client.test" and m.recipients == ["ü@robots.test"]
        assert m.records.get("smtputf8") == "1"


def test_pipelining_whole_transactions():
    with Daemon() as d:
        d.start()
        r = Raw(d.smtp_port)
        r.reply()
        r.cmd("EHLO client.test")
        batch = ""
        for i in range(5):
            batch += ("MAIL FROM:<s@client.test>\r\nRCPT TO:<a@robots.test>\r\nRCPT TO:<bad@nowhere.test>\r\n"
                      "DATA\r\nSubject: %d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
        batch += "QUIT\r\n"
        r.send(batch)
        codes = [r.reply()[0] for _ in range(5 * 5 + 1)]
        assert codes == [250, 250, 554, 354, 250] * 5 + [221], codes
        assert r.closed()
        msgs = d.wait_messages(5)
        assert sorted(m.header("Subject")[0] for m in msgs) == ["0", "1", "2", "3", "4"]


def test_starttls():
    with Daemon(tls=True) as d:
        d.start()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as c:
            c.ehlo("client.test")
            assert c.has_extn("starttls")
            code, _ = c.starttls(context=ctx)
            assert code == 220
            c.ehlo("client.test")
            assert not c.has_extn("starttls")
            c.sendmail("s@client.test", ["a@robots.test"], MSG)
        (m,) = d.wait_messages(1)
        received = m.header("Received")[0]
        assert "with ESMTPS" in received and "TLSv1." in received, received
        out = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % d.smtp_port, "--tls", "--from",
                              "s@client.test", "--to", "a@robots.test"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "250 2.0.0 Ok: queued as" in out.stdout, out.stdout
        d.wait_messages(2)


def test_mail_requires_tls_restart_hello():
    with Daemon(tls=True) as d:
        d.start()
        r = Raw(d.smtp_port)
        r.reply()
        r.cmd("EHLO client.test")
        assert r.cmd("STARTTLS")[0] == 220
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        r.sock = ctx.wrap_socket(r.sock)
        code, lines = r.cmd("MAIL FROM:<s@client.test>")
        assert code == 503 and lines[0].startswith("503 5.5.1"), lines
        assert r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("STARTTLS")[0] == 503
        r.close()


def test_smtp_source_load():
    with Daemon(extra={"mynetworks": "127.0.0.0/8"}) as d:
        d.start()
        tool, env = harness.postfix_tool("smtp-source")
        for extra in ([], ["-d"]):
            subprocess.run([tool, "-s", "5", "-m", "100", "-l", "2000", "-f", "s@client.test", "-t",
                            "a@robots.test"] + extra + ["127.0.0.1:%d" % d.smtp_port],
                           env=env, check=True, timeout=60)
        msgs = d.wait_messages(200)
        assert len(msgs) == 200
        assert all(m.recipients == ["a@robots.test"] for m in msgs)


def test_size_extension_and_limit():
    with Daemon(extra={"message_size_limit": "2k"}) as d:
        d.start()
        r = Raw(d.smtp_port)
        r.reply()
        code, lines = r.cmd("EHLO client.test")
        assert "250-SIZE 2048" in lines
        code, lines = r.cmd("MAIL FROM:<s@client.test> SIZE=4096")
        assert code == 552 and lines[0].startswith("552 5.3.4")
        assert r.cmd("MAIL FROM:<s@client.test> SIZE=100")[0] == 250
        r.cmd("RCPT TO:<a@robots.test>")
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40 + b".\r\n")
        code, lines = r.reply()
        assert code == 552 and lines[0].startswith("552 5.3.4"), lines
        assert r.cmd("NOOP")[0] == 250
        r.close()
        assert d.messages() == []


def test_disk_reserve_refuses_with_452():
    with Daemon(extra={"disk_reserve": "1T"}) as d:
        d.start()
        r = Raw(d.smtp_port)
        r.reply()
        r.cmd("EHLO client.test")
        code, lines = r.cmd("MAIL FROM:<s@client.test>")
        assert code == 452 and lines[0].startswith("452 4.3.1"), lines
        r.close()


if __name__ == "__main__":
    harness.run_tests(globals())
