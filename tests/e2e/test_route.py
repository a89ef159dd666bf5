"""Routing (docs/routing.md): rewrite rules on the envelope and the address headers, the
transport policy sending recipients to an SMTP peer, an LMTP peer, discard, error and hold,
RCPT-time coverage by rules, reloads that keep the old rules when a file is bad, and the
postern route / alias commands against the same configuration."""
import email
import os
import signal
import smtplib
import subprocess
import time

import harness
from harness import Daemon, Raw
from pg import Postgres
from sink import Sink

MSG = (b"From: Alice <alice@old.test>\r\n"
       b"To: \"Team (old.test)\" <x@old.test>, other@elsewhere.test (keep@old.test)\r\n"
       b"Cc: group: g1@OLD.test, g2@sub.old.test;\r\n"
       b"Subject: routed\r\nMessage-ID: <r1@old.test>\r\n\r\nbody mentions x@old.test\r\n")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def routed_daemon(sink, lmtp):
    d = Daemon()
    rules = os.path.join(d.dir, "transport.rules")
    write(os.path.join(d.dir, "variables"), "sink [127.0.0.1]:%d\n" % sink.port)
    write(rules,
          "# the robots\n"
          "/^reject.*@robots\\.test$/   error:550 5.7.1 refused by policy\n"
          "robots.test        smtp:$sink\n"
          "lmtp.test          lmtp:inet:127.0.0.1:%d\n"
          "*.void.test        discard: not wanted\n"
          "held.test          hold: needs review\n" % lmtp.port)
    write(os.path.join(d.dir, "rewrite.rules"), "both  old.test  robots.test\nto  *.old.test  robots.test\n")
    d.settings.update({
        "delivery_paused": "no", "relay_domains": "", "rewrite_headers": "yes",
        "transport_rules": rules, "transport_variables": os.path.join(d.dir, "variables"),
        "rewrite_rules": os.path.join(d.dir, "rewrite.rules"),
        "minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s",
    })
    d.write_config()
    return d, rules


def send(d, sender, rcpts, msg=MSG):
    c = smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=20)
    try:
        return c.sendmail(sender, rcpts, msg)
    finally:
        c.quit()


def test_rules_route_each_recipient():
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, _ = routed_daemon(sink, lmtp)
        with d:
            d.start()
            refused = send(d, "alice@old.test", ["x@old.test", "y@lmtp.test", "z@a.void.test",
                                                  "reject-me@robots.test"])
            assert refused == {}, refused
            # x and the report about reject-me go to the SMTP peer, y over LMTP
            got = sink.wait(2)
            lm = lmtp.wait(1)
            assert lm[0]["accepted"] == ["y@lmtp.test"]
            normal = [m for m in got if "FROM:<>" not in m["mail"]]
            report = [m for m in got if "FROM:<>" in m["mail"]]
            assert len(normal) == 1 and len(report) == 1, got
            assert normal[0]["accepted"] == ["x@robots.test"]
            assert "FROM:<alice@robots.test>" in normal[0]["mail"]
            assert report[0]["accepted"] == ["alice@robots.test"]
            ndr = email.message_from_bytes(report[0]["data"])
            assert ndr.get_content_type() == "multipart/report"
            status = ndr.get_payload(1).get_payload()
            texts = "\n".join(str(p) for p in status)
            assert "reject-me@robots.test" in texts and "5.7.1" in texts, texts
            assert "refused by policy" in texts
            log = d.logtext()
            assert "to=<z@a.void.test>" in log and "discarded" in log
            d.check_log_clean()


def test_headers_rewritten_byte_for_byte_outside_domains():
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, _ = routed_daemon(sink, lmtp)
        with d:
            d.start()
            send(d, "alice@old.test", ["x@old.test"])
            (m,) = sink.wait(1)
            head = m["data"].split(b"\r\n\r\n", 1)[0].decode()
            assert "From: Alice <alice@robots.test>\r\n" in head, head
            # display names and comments are kept, even where they mention the old domain
            assert "To: \"Team (old.test)\" <x@robots.test>, other@elsewhere.test (keep@old.test)" in head, head
            assert "Cc: group: g1@robots.test, g2@robots.test;" in head, head
            assert b"body mentions x@old.test" in m["data"]  # bodies are not rewritten
            # the original recipient survives as the ORCPT the next hop is given
            assert any("ORCPT=rfc822;x@old.test" in r for r in m["rcpts"]), m["rcpts"]


def test_rcpt_coverage_and_hold():
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, _ = routed_daemon(sink, lmtp)
        with d:
            d.start()
            r = Raw(d.smtp_port)
            assert r.reply()[0] == 220
            assert r.cmd("EHLO client.test")[0] == 250
            assert r.cmd("MAIL FROM:<s@client.test>")[0] == 250
            # no rule names elsewhere.test and loopback is not trusted here: relay denied
            code, lines = r.cmd("RCPT TO:<u@elsewhere.test>")
            assert code == 554 and "5.7.1" in lines[0], lines
            assert r.cmd("RCPT TO:<h@held.test>")[0] == 250
            assert r.cmd("DATA")[0] == 354
            r.send(b"Subject: hold me\r\n\r\nx\r\n.\r\n")
            assert r.reply()[0] == 250
            r.cmd("QUIT")
            (held,) = d.wait_messages(1, queue="hold")
            assert held.recipients == ["h@held.test"]
            assert "hold by" in d.logtext() and "needs review" in d.logtext()
            assert d.queue_files("incoming") == [] and d.queue_files("active") == []


def test_reload_keeps_old_rules_when_a_file_is_bad():
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, rules = routed_daemon(sink, lmtp)
        with d:
            d.start()
            with open(rules) as f:
                good = f.read()
            write(rules, good + "broken.test   nosuchkind:x\n")
            d.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while "rule files rejected" not in d.logtext() and time.time() < deadline:
                time.sleep(0.05)
            assert "rule files rejected" in d.logtext()
            assert "transport.rules:7: unknown next hop kind" in d.logtext(), d.logtext()
            send(d, "alice@old.test", ["x1@robots.test"])
            assert sink.wait(1)[0]["accepted"] == ["x1@robots.test"]
            # a good file replaces the rules: robots.test now goes to discard
            write(rules, "robots.test   discard:\n")
            d.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while d.logtext().count("configuration reloaded") < 2 and time.time() < deadline:
                time.sleep(0.05)
            send(d, "alice@old.test", ["x2@robots.test"])
            deadline = time.time() + 10
            while "to=<x2@robots.test>" not in d.logtext() and time.time() < deadline:
                time.sleep(0.05)
            assert "discarded" in d.logtext().split("to=<x2@robots.test>", 1)[1]
            assert len(sink.messages) == 1


def cli(d, *args):
    return subprocess.run([harness.BIN, *args, "-c", d.conf_path], capture_output=True, text=True,
                          timeout=30, env=d.env())


def test_route_and_alias_commands():
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, rules = routed_daemon(sink, lmtp)
        with d:
            r = cli(d, "config", "check")
            assert r.returncode == 0, r.stderr
            r = cli(d, "alias", "add", "Info@Robots.test", "team@lmtp.test", "pipe:/usr/bin/robot --in")
            assert r.returncode == 0, r.stderr
            # rewriting comes first, then the alias (via the extension-less key), then the rules
            r = cli(d, "route", "info+tag@old.test")
            assert r.returncode == 0, r.stderr
            out = r.stdout
            assert "rewritten: info+tag@robots.test" in out, out
            assert "team+tag@lmtp.test" in out, out
            assert "lmtp:inet:127.0.0.1:%d" % lmtp.port in out and "transport.rules:4" in out, out
            assert "pipe:/usr/bin/robot --in" in out
            r = cli(d, "route", "--json", "nobody@robots.test")
            assert '"rule_line":3' in r.stdout, r.stdout
            aliases = os.path.join(d.dir, "aliases")
            write(aliases, "postmaster: root\nroot: admin@robots.test\nbad: /var/mail/bad\n")
            r = cli(d, "alias", "import", "--domain", "old.test", aliases)
            assert r.returncode == 1 and "aliases:3:" in r.stderr, (r.stdout, r.stderr)
            r = cli(d, "alias", "list", "--domain", "old.test")
            assert r.stdout.splitlines() == [
                "postmaster@old.test: root@old.test",
                "root@old.test: admin@robots.test"], r.stdout
            assert cli(d, "alias", "rm", "root@old.test").returncode == 0
            assert cli(d, "alias", "rm", "root@old.test").returncode == 1
            r = cli(d, "store", "version")
            assert r.returncode == 0 and "schema version 1" in r.stdout, r.stdout
            r = cli(d, "status")
            assert r.returncode == 69, (r.stdout, r.stderr)  # not started yet
            d.start()
            r = cli(d, "status")
            assert r.returncode == 0, r.stderr
            assert "store: sqlite, schema version 1 (this program: 1)" in r.stdout, r.stdout
            assert "rules: 5 transport, 2 rewrite" in r.stdout, r.stdout
            with open(rules) as f:
                good = f.read()
            write(rules, good + "bad.test  nosuchkind:\n")
            r = cli(d, "reload")
            assert r.returncode == 78 and "transport.rules:7:" in r.stderr, r.stderr
            write(rules, good + "more.test  discard:\n")
            r = cli(d, "reload")
            assert r.returncode == 0, r.stderr
            deadline = time.time() + 10
            while "rules: 6 transport" not in cli(d, "status").stdout and time.time() < deadline:
                time.sleep(0.1)
            assert "rules: 6 transport" in cli(d, "status").stdout
            write(rules, "x   webhook:https://hook.test/\n")
            r = cli(d, "config", "check")
            assert r.returncode == 78 and "transport.rules:1: agent 'webhook' is not available yet" in r.stderr, r.stderr


def alias(d, *args):
    r = cli(d, "alias", "add", *args)
    assert r.returncode == 0, r.stderr


def test_aliases_expand_at_rcpt():
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, _ = routed_daemon(sink, lmtp)
        with d:
            alias(d, "info@robots.test", "a@lmtp.test", "b@robots.test")
            alias(d, "@alias.test", "team@robots.test")
            alias(d, "known@only.test", "k@robots.test")
            alias(d, "gone@robots.test", "error:550 5.1.6 moved away, write to new@example.org")
            alias(d, "loop1@robots.test", "loop2@robots.test")
            alias(d, "loop2@robots.test", "loop1@robots.test")
            alias(d, "robot@robots.test", "pipe:/usr/bin/robot")
            d.start()
            r = Raw(d.smtp_port)
            assert r.reply()[0] == 220 and r.cmd("EHLO client.test")[0] == 250
            assert r.cmd("MAIL FROM:<s@client.test>")[0] == 250
            assert r.cmd("RCPT TO:<Info@Robots.test>")[0] == 250
            # a domain with aliases: the catch-all covers it, and the extension carries over
            assert r.cmd("RCPT TO:<x+tag@alias.test>")[0] == 250
            code, lines = r.cmd("RCPT TO:<unknown@only.test>")
            assert code == 550 and lines[0].startswith("550 5.1.1"), lines
            code, lines = r.cmd("RCPT TO:<gone@robots.test>")
            assert code == 550 and "5.1.6 <gone@robots.test>: moved away" in lines[0], lines
            code, lines = r.cmd("RCPT TO:<loop1@robots.test>")
            assert code == 550 and "5.4.6" in lines[0], lines
            code, lines = r.cmd("RCPT TO:<robot@robots.test>")
            assert code == 451 and "4.3.5" in lines[0], lines
            assert r.cmd("DATA")[0] == 354
            r.send(b"Subject: aliases\r\n\r\nhello\r\n.\r\n")
            assert r.reply()[0] == 250
            r.cmd("QUIT")
            got = sink.wait(1)
            lm = lmtp.wait(1)
            assert lm[0]["accepted"] == ["a@lmtp.test"]
            assert sorted(got[0]["accepted"]) == ["b@robots.test", "team+tag@robots.test"], got
            assert any("ORCPT=rfc822;x+2Btag@alias.test" in c or "ORCPT=rfc822;x+tag@alias.test" in c
                       for c in got[0]["rcpts"]), got[0]["rcpts"]


def rcpt_code(d, rcpt):
    r = Raw(d.smtp_port)
    try:
        assert r.reply()[0] == 220 and r.cmd("EHLO client.test")[0] == 250
        assert r.cmd("MAIL FROM:<s@client.test>")[0] == 250
        code, lines = r.cmd("RCPT TO:<%s>" % rcpt)
        r.cmd("QUIT")
        return code, lines
    finally:
        r.close()


def test_postgresql_store_outage_and_two_nodes():
    with Postgres() as pg, Sink() as sink, Sink(lmtp=True) as lmtp:
        a, _ = routed_daemon(sink, lmtp)
        b, _ = routed_daemon(sink, lmtp)
        for d in (a, b):
            d.settings["store"] = pg.spec()
            d.write_config()
        with a, b:
            a.start()
            b.start()
            # an alias added through one node routes mail on the other at once
            assert rcpt_code(b, "team@shared.test")[0] == 554
            alias(a, "team@shared.test", "t@robots.test")
            assert rcpt_code(b, "team@shared.test")[0] == 250
            assert rcpt_code(b, "other@shared.test")[0] == 550  # shared.test has aliases now
            # the database dies: 451 4.3.0, and the daemon keeps serving what needs no store
            pg.stop()
            code, lines = rcpt_code(a, "team@shared.test")
            assert code == 451 and lines[0].startswith("451 4.3.0"), lines
            r = Raw(a.smtp_port)
            assert r.reply()[0] == 220 and r.cmd("EHLO client.test")[0] == 250
            r.cmd("QUIT")
            # a node that starts while the database is down starts all the same
            c, _ = routed_daemon(sink, lmtp)
            c.settings["store"] = pg.spec()
            c.write_config()
            c.start()
            assert rcpt_code(c, "team@shared.test")[0] == 451
            assert "cannot open" in c.logtext()
            # it comes back: the same daemons answer again without a restart (each store worker
            # reconnects on its next call, at most once a second, so a few 451s may come first)
            pg.start()
            for d in (a, b, c):
                deadline, ok = time.time() + 15, 0
                while time.time() < deadline and ok < 4:
                    ok = ok + 1 if rcpt_code(d, "team@shared.test")[0] == 250 else 0
                    time.sleep(0.2)
                assert ok == 4, d.logtext()[-2000:]
            assert "the store cannot answer" in a.logtext()
            c.stop()
            c.cleanup()


def test_reload_under_load_loses_nothing():
    """smtp-source sends 300 messages over 10 sessions while the rules are reloaded again and
    again, alternating two good files (and one bad one, refused): every message reaches the
    peer, none is lost or refused."""
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, rules = routed_daemon(sink, lmtp)
        with d:
            d.start()
            with open(rules) as f:
                good = f.read()
            variants = [good, good.replace("robots.test        smtp:$sink", "robots.test   smtp:$sink,$sink"),
                        good + "bad.test   nosuchkind:\n"]
            tool, env = harness.postfix_tool("smtp-source")
            src = subprocess.Popen([tool, "-s", "10", "-m", "300", "-l", "2000", "-f", "load@client.test",
                                    "-t", "load@robots.test", "127.0.0.1:%d" % d.smtp_port],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            reloads = 0
            while src.poll() is None and reloads < 200:
                write(rules, variants[reloads % 3])
                d.proc.send_signal(signal.SIGHUP)
                reloads += 1
                time.sleep(0.02)
            out = src.communicate(timeout=120)[0]
            assert src.returncode == 0, out
            assert reloads >= 3
            got = sink.wait(300, timeout=60)
            assert len(got) == 300 and all(m["accepted"] == ["load@robots.test"] for m in got)
            assert "rule files rejected" in d.logtext()
            assert d.queue_files("deferred") == [] and d.queue_files("incoming") == []


def test_sendmail_recipients_expanded_at_pickup():
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, _ = routed_daemon(sink, lmtp)
        with d:
            alias(d, "cron@robots.test", "b@robots.test")
            alias(d, "gone2@robots.test", "error:550 5.1.6 gone away")
            d.start()
            r = subprocess.run([harness.BIN, "sendmail", "-f", "alice@robots.test", "cron@robots.test",
                                "gone2@robots.test"], input=b"Subject: from cron\r\n\r\nreport\r\n",
                               capture_output=True, timeout=30, env=d.env())
            assert r.returncode == 0, r.stderr
            got = sink.wait(2)
            normal = [m for m in got if "FROM:<>" not in m["mail"]]
            report = [m for m in got if "FROM:<>" in m["mail"]]
            assert normal[0]["accepted"] == ["b@robots.test"], got
            assert any("ORCPT=rfc822;cron@robots.test" in c for c in normal[0]["rcpts"]), normal[0]["rcpts"]
            assert report[0]["accepted"] == ["alice@robots.test"]
            text = report[0]["data"].decode("utf-8", "replace")
            assert "gone2@robots.test" in text and "5.1.6" in text and "gone away" in text, text


def test_lmtp_replies_per_rcpt_and_discard_only_alias():
    """LMTP answers once per accepted RCPT after DATA, however many recipients an alias made of
    it (RFC 2033 4.2); an alias that only discards is accepted and delivered nowhere."""
    with Sink() as sink, Sink(lmtp=True) as lmtp:
        d, _ = routed_daemon(sink, lmtp)
        with d:
            alias(d, "multi@robots.test", "m1@robots.test", "m2@robots.test", "m3@lmtp.test")
            alias(d, "void@robots.test", "discard:")
            d.start()
            r = Raw(d.lmtp_port)
            assert r.reply()[0] == 220 and r.cmd("LHLO client.test")[0] == 250
            assert r.cmd("MAIL FROM:<s@client.test>")[0] == 250
            assert r.cmd("RCPT TO:<multi@robots.test>")[0] == 250
            assert r.cmd("RCPT TO:<void@robots.test>")[0] == 250
            assert r.cmd("DATA")[0] == 354
            r.send(b"Subject: lmtp\r\n\r\nx\r\n.\r\n")
            first, second = r.reply(), r.reply()
            assert first[1][0].startswith("250 2.1.5 <multi@robots.test>"), first
            assert second[1][0].startswith("250 2.1.5 <void@robots.test>"), second
            code, lines = r.cmd("NOOP")  # in step: the next reply is NOOP's
            assert code == 250 and "Ok" in lines[0] and "<" not in lines[0], lines
            r.cmd("QUIT")
            got = sink.wait(1)
            assert sorted(got[0]["accepted"]) == ["m1@robots.test", "m2@robots.test"], got
            assert lmtp.wait(1)[0]["accepted"] == ["m3@lmtp.test"]
            deadline = time.time() + 10
            while "to=<void@robots.test>" not in d.logtext() and time.time() < deadline:
                time.sleep(0.05)
            assert "discarded by its alias" in d.logtext()
            time.sleep(0.5)
            assert len(sink.messages) == 1 and len(lmtp.messages) == 1


if __name__ == "__main__":
    harness.run_tests(globals())
