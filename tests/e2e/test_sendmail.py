"""postern sendmail: sendmail-compatible submission into maildrop/, with and without the daemon."""
import os
import subprocess
import time

import harness
from harness import Daemon


def sendmail(d, args, data, argv0=None):
    cmd = [harness.BIN, "sendmail"] + args
    if argv0 is not None:
        cmd = [argv0] + args
    return subprocess.run(cmd, input=data, capture_output=True, env=d.env(), timeout=30)


def test_daemon_down_then_picked_up():
    with Daemon() as d:
        p = sendmail(d, ["-f", "app@host.test", "ops@robots.test"], b"Subject: cron\n\nreport\n")
        assert p.returncode == 0, p.stderr
        assert len(d.queue_files("maildrop")) == 1 and d.messages() == []
        (dropped,) = d.messages("maildrop")
        d.start()
        (m,) = d.wait_messages(1)
        assert m.id == dropped.id and m.sender == "app@host.test" and m.recipients == ["ops@robots.test"]
        assert m.records["origin"] == "sendmail"
        # local submissions get Date, Message-ID and From when they lack them
        assert m.header("Message-ID") == ["<%s.postern@mx.postern.test>" % m.id]
        assert len(m.header("Date")) == 1 and m.header("From") == ["<app@host.test>"]
        assert "with local id " + m.id in m.header("Received")[0]
        assert m.body() == b"report\r\n"
        deadline = time.time() + 5
        while d.queue_files("maildrop") and time.time() < deadline:
            time.sleep(0.05)
        assert d.queue_files("maildrop") == []


def test_extract_recipients_drops_bcc_and_keeps_headers():
    with Daemon() as d:
        d.start()
        msg = (b"From: App <app@host.test>\nTo: One <one@robots.test>, two@robots.test\n"
               b"Cc: undisclosed:;\nBcc: hidden@robots.test,\n\tother@robots.test\nSubject: t\n"
               b"Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <keep@host.test>\n\nbody\n.\nafter dot\n")
        p = sendmail(d, ["-t", "-F", "Ignored Name", "-f", "app@host.test"], msg)
        assert p.returncode == 0, p.stderr
        (m,) = d.wait_messages(1)
        assert m.recipients == ["one@robots.test", "two@robots.test", "hidden@robots.test", "other@robots.test"]
        assert m.header("Bcc") == [] and b"hidden@" not in m.content
        assert m.header("From") == ["App <app@host.test>"] and m.header("Message-ID") == ["<keep@host.test>"]
        assert m.header("Date") == ["Mon, 23 Nov 2026 10:00:00 +0000"]
        assert m.body() == b"body\r\n"  # a lone dot ends the message without -i


def test_dash_i_keeps_dots_and_full_name():
    with Daemon() as d:
        d.start()
        p = sendmail(d, ["-i", "-F", "Cron Daemon", "-f", "root", "a@robots.test"], b"Subject: x\n\n.\n..\nend")
        assert p.returncode == 0, p.stderr
        (m,) = d.wait_messages(1)
        assert m.sender == "root@mx.postern.test"
        assert m.header("From") == ["Cron Daemon <root@mx.postern.test>"]
        assert m.body() == b".\r\n..\r\nend\r\n"


def test_invoked_as_sendmail_symlink_with_dsn_options():
    with Daemon() as d:
        link = os.path.join(d.dir, "sendmail")
        os.symlink(harness.BIN, link)
        p = sendmail(d, ["-oi", "-N", "failure,delay", "-R", "hdrs", "-V", "env+1", "-f", "<>", "a@robots.test"],
                     b"Subject: link\n\nx\n", argv0=link)
        assert p.returncode == 0, p.stderr
        (m,) = d.messages("maildrop")
        assert m.sender == "" and m.records["ret"] == "HDRS" and m.records["envid"] == "env+2B1"
        assert m.rcpts[0]["notify"] == 4 | 8


def test_exit_codes():
    with Daemon() as d:
        cases = [
            (["-t"], b"Subject: none\n\nx\n", 64, "no recipients"),
            ([], b"x\n", 64, "no recipients"),
            (["a@@robots.test"], b"x\n", 64, "bad recipient"),
            (["-f", "bad@@x", "a@robots.test"], b"x\n", 64, "bad sender"),
            (["-q"], b"", 64, "not supported"),
            (["-bp"], b"", 64, "not supported"),
            (["-N", "never,success", "a@robots.test"], b"x\n", 64, "cannot be combined"),
            (["-t"], b"To: " + b"a" * 70 + b"@robots.test\n\nx\n", 65, "bad recipient"),
            (["a@robots.test"], b"Subject: nul\n\nx\x00y\n", 65, "NUL"),
        ]
        for args, data, code, text in cases:
            p = sendmail(d, args, data)
            assert p.returncode == code, (args, p.returncode, p.stderr)
            assert text.encode() in p.stderr and p.stderr.startswith(b"sendmail: "), (args, p.stderr)
            assert p.stderr.count(b"\n") == 1, p.stderr
        assert d.queue_files("maildrop") == [] and d.queue_files("tmp") == []


def test_size_limit_and_config_errors():
    with Daemon(extra={"message_size_limit": "1k"}) as d:
        p = sendmail(d, ["a@robots.test"], b"Subject: big\n\n" + b"y" * 2000 + b"\n")
        assert p.returncode == 65 and b"message_size_limit" in p.stderr
        with open(d.conf_path, "a") as f:
            f.write("no_such_setting = 1\n")
        p = sendmail(d, ["a@robots.test"], b"x\n")
        assert p.returncode == 78
        assert (d.conf_path + ":").encode() in p.stderr and b"no_such_setting" in p.stderr
        assert d.queue_files("maildrop") == []


def test_bs_smtp_on_stdio():
    with Daemon() as d:
        session = (b"EHLO cron.test\r\nMAIL FROM:<cron@host.test>\r\nRCPT TO:<a@anywhere.test>\r\nDATA\r\n"
                   b"Subject: bs\r\n\r\nover stdio\r\n.\r\nQUIT\r\n")
        p = sendmail(d, ["-bs"], session)
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode()
        assert out.startswith("220 ") and "250 2.0.0 Ok: queued as" in out and "221 2.0.0" in out, out
        (dropped,) = d.messages("maildrop")
        assert dropped.recipients == ["a@anywhere.test"] and b"Received:" not in dropped.content
        d.start()
        (m,) = d.wait_messages(1)
        assert m.header("Subject") == ["bs"] and len(m.header("Received")) == 1


def test_daemon_up_many_submissions():
    with Daemon() as d:
        d.start()
        for i in range(20):
            p = sendmail(d, ["u%d@robots.test" % i], b"Subject: n%d\n\nx\n" % i)
            assert p.returncode == 0, p.stderr
        msgs = d.wait_messages(20)
        assert sorted(m.header("Subject")[0] for m in msgs) == sorted("n%d" % i for i in range(20))


def test_maildrop_backlog_is_drained_quickly():
    with Daemon(extra={"pickup_interval": "1h"}) as d:
        for i in range(250):
            p = sendmail(d, ["b%d@robots.test" % i], b"Subject: b%d\n\nx\n" % i)
            assert p.returncode == 0, p.stderr
        start = time.time()
        d.start()
        # one scan at startup takes 100; the rest follow as each batch commits, not an hour later
        msgs = d.wait_messages(250, timeout=30)
        assert len(msgs) == 250 and time.time() - start < 30


if __name__ == "__main__":
    harness.run_tests(globals())
