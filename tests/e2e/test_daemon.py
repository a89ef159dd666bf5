"""The daemon's life: config check/dump, startup recovery, SIGHUP reload, SIGTERM drain."""
import os
import signal
import subprocess
import time

import harness
from harness import Daemon, Raw


def run(d, *args):
    return subprocess.run([harness.BIN] + list(args), capture_output=True, text=True, timeout=30)


def test_config_check_and_dump():
    with Daemon() as d:
        p = run(d, "config", "check", "-c", d.conf_path)
        assert p.returncode == 0 and p.stdout.strip() == d.conf_path + ": ok"
        p = run(d, "config", "dump", "-c", d.conf_path)
        assert "relay_domains = robots.test, *.sub.test" in p.stdout and "recipient_limit = 1000" in p.stdout
        with open(d.conf_path, "a") as f:
            f.write("smtp_timeout = 5 years\nbogus = 1\nrecipient_limit = 0\n")
        p = run(d, "config", "check", "-c", d.conf_path)
        assert p.returncode == 78
        lines = p.stderr.strip().split("\n")
        n = len(d.settings)
        assert lines[0].startswith("%s:%d: smtp_timeout:" % (d.conf_path, n + 1)), lines
        assert lines[1].startswith("%s:%d: bogus:" % (d.conf_path, n + 2)), lines
        assert lines[2].startswith("%s:%d: recipient_limit:" % (d.conf_path, n + 3)), lines
        # the daemon refuses to start on the same file, naming the problems
        d.start(wait=False)
        assert d.proc.wait(20) == 1
        assert "bogus" in d.logtext()


def write_qfile(path, qid, content=b"Subject: x\r\n\r\nbody\r\n", torn=False):
    head = ("POSTERN-QUEUE 1\nid %s\narrival 1\norigin smtp\nsender s@x.test\nrcpt Q 0 - a@robots.test\ncontent\n" % qid).encode()
    trailer = b"\nPOSTERN-END %016x\n" % len(content)
    data = head + content + (b"" if torn else trailer)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_startup_recovery_quarantines_broken_files():
    with Daemon() as d:
        d.start()
        d.stop()
        spool = os.path.join(d.state, "spool")
        good, torn, wrong = "1K11ZZZZZZZ0001", "1K11ZZZZZZZ0002", "1K11ZZZZZZZ0003"
        write_qfile(os.path.join(spool, "incoming", good[-1], good), good)
        write_qfile(os.path.join(spool, "deferred", torn[-1], torn), torn, torn=True)
        write_qfile(os.path.join(spool, "incoming", wrong[-1], wrong), good)  # ID inside differs
        with open(os.path.join(spool, "incoming", "0", "not-a-queue-file"), "w") as f:
            f.write("hello")
        with open(os.path.join(spool, "tmp", "4", "1K11ZZZZZZZ0004"), "w") as f:
            f.write("half written")
        d.start()
        assert [m.id for m in d.messages()] == [good]
        assert d.queue_files("deferred") == [] and d.queue_files("tmp") == []
        assert len(d.queue_files("corrupt")) == 3
        log = d.logtext()
        assert "%s: moved deferred/ file to corrupt/: truncated file" % torn in log
        assert "moved foreign file" in log and "removed unacknowledged" in log


def test_sighup_reload():
    with Daemon() as d:
        d.start()
        r = Raw(d.smtp_port)
        r.reply()
        r.cmd("EHLO client.test")
        r.cmd("MAIL FROM:<s@client.test>")
        assert r.cmd("RCPT TO:<a@new.test>")[0] == 554
        d.settings["relay_domains"] = "robots.test, new.test"
        d.write_config()
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "configuration reloaded" not in d.logtext() and time.time() < deadline:
            time.sleep(0.05)
        # the session survives the reload and sees the new setting
        assert r.cmd("RCPT TO:<a@new.test>")[0] == 250
        # a broken file on reload keeps the running configuration
        with open(d.conf_path, "a") as f:
            f.write("relay_domains = again\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "reload failed" not in d.logtext() and time.time() < deadline:
            time.sleep(0.05)
        assert "set twice" in d.logtext() or "relay_domains" in d.logtext().split("reload failed")[1]
        assert r.cmd("RCPT TO:<b@new.test>")[0] == 250
        assert r.cmd("QUIT")[0] == 221


def test_sigterm_drains_open_transaction():
    with Daemon() as d:
        d.start()
        idle = Raw(d.smtp_port)
        idle.reply()
        busy = Raw(d.smtp_port)
        busy.reply()
        busy.cmd("EHLO client.test")
        busy.cmd("MAIL FROM:<s@client.test>")
        busy.cmd("RCPT TO:<a@robots.test>")
        assert busy.cmd("DATA")[0] == 354
        busy.send(b"Subject: drain\r\n\r\nhalf")
        d.proc.send_signal(signal.SIGTERM)
        code, lines = idle.reply()
        assert code == 421 and lines[0].startswith("421 4.3.2"), lines
        assert idle.closed()
        time.sleep(0.3)
        assert d.proc.poll() is None  # still waiting for the transaction in progress
        busy.send(b" done\r\n.\r\n")
        code, lines = busy.reply()
        assert code == 250 and "queued as" in lines[0]
        code, lines = busy.reply()
        assert code == 421 and lines[0].startswith("421 4.3.2")
        assert d.proc.wait(10) == 0
        (m,) = d.messages()
        assert m.body() == b"half done\r\n"
        d.check_log_clean()


def test_sigterm_timeout_closes_stuck_sessions():
    with Daemon(extra={"shutdown_timeout": "1s"}) as d:
        d.start()
        r = Raw(d.smtp_port)
        r.reply()
        r.cmd("EHLO client.test")
        r.cmd("MAIL FROM:<s@client.test>")
        start = time.time()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(10) == 0
        assert 0.9 < time.time() - start < 5
        assert r.closed()
        assert "shutdown timeout: closing 1 sessions" in d.logtext()
        d.check_log_clean()


if __name__ == "__main__":
    harness.run_tests(globals())
