"""Delivery: the queue manager and the SMTP client against a real peer: relay, per-recipient
results, deferral and retry, expiry, non-delivery reports (RFC 3464)."""
import email
import email.policy
import os
import smtplib
import socket
import time

import harness
from harness import Daemon
from sink import Sink

FAST = {
    "delivery_paused": "no",
    "queue_run_delay": "1s", "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
    "smtp_connect_timeout": "5s", "smtp_helo_timeout": "5s", "smtp_command_timeout": "5s",
    "smtp_data_timeout": "5s", "smtp_data_done_timeout": "5s", "smtp_tls_security_level": "none",
}


def daemon(sink, **extra):
    settings = dict(FAST, relayhost="[127.0.0.1]:%d" % sink.port)
    settings.update(extra)
    return Daemon(extra=settings)


def send(d, sender, rcpts, subject="test", body="hello\r\n", **kw):
    msg = "From: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s" % (sender, subject, subject, body)
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as c:
        return c.sendmail(sender, rcpts, msg.encode(), **kw)


def wait_empty(d, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(d.queue_files(q) for q in ("incoming", "active", "deferred")):
            return
        time.sleep(0.05)
    raise AssertionError("queue not empty: %r" % {q: d.queue_files(q) for q in ("incoming", "active", "deferred")})


def reports(sink):
    return [m for m in sink.messages if "MAIL FROM:<>" in m["mail"]]


def test_relay_delivers_and_empties_queue():
    with Sink() as sink, daemon(sink) as d:
        d.start()
        send(d, "s@client.test", ["a@robots.test", "b@robots.test"], subject="relay")
        (m,) = sink.wait(1)
        assert m["accepted"] == ["a@robots.test", "b@robots.test"]
        assert "MAIL FROM:<s@client.test>" in m["mail"]
        assert b"Subject: relay" in m["data"] and b"Received: from" in m["data"]
        wait_empty(d)
        log = d.logtext()
        assert "to=<a@robots.test>" in log and "status=sent" in log and "removed" in log


def test_mixed_results_per_recipient():
    with Sink() as sink, daemon(sink, maximal_queue_lifetime="1h") as d:
        d.start()
        send(d, "s@client.test", ["ok@robots.test", "defer1@robots.test", "bounce1@robots.test"], subject="mixed")
        delivered = sink.wait(2)
        normal = [m for m in delivered if "MAIL FROM:<s@client.test>" in m["mail"]]
        assert normal[0]["accepted"] == ["ok@robots.test"]
        (ndr,) = sink.wait(2) and reports(sink)
        parsed = email.message_from_bytes(ndr["data"], policy=email.policy.default)
        assert parsed.get_content_type() == "multipart/report"
        status = parsed.get_payload()[1].get_payload()
        rcpt_fields = [str(x.get("Final-Recipient")) for x in status[1:]]
        assert rcpt_fields == ["rfc822; bounce1@robots.test"], rcpt_fields
        # the deferred one stays, alone, and is retried; the others are recorded as done
        deadline = time.time() + 10
        while not d.queue_files("deferred") and time.time() < deadline:
            time.sleep(0.05)
        (q,) = d.messages("deferred")
        states = {r["address"]: r["state"] for r in q.rcpts}
        assert states == {"ok@robots.test": "D", "defer1@robots.test": "Q", "bounce1@robots.test": "B"}
        time.sleep(2.5)
        retried = [m for m in sink.messages if "MAIL FROM:<s@client.test>" in m["mail"]]
        assert len(retried) == 1, "only the deferred recipient is retried; the others never again"


def test_defer_then_retry_succeeds():
    with Sink() as sink, daemon(sink) as d:
        sink.tempfail = True
        d.start()
        send(d, "s@client.test", ["later@robots.test"], subject="retry")
        deadline = time.time() + 10
        while not d.queue_files("deferred") and time.time() < deadline:
            time.sleep(0.05)
        assert d.queue_files("deferred"), d.logtext()[-2000:]
        assert "deferred, next attempt in" in d.logtext()
        sink.tempfail = False
        (m,) = sink.wait(1, timeout=15)
        assert m["accepted"] == ["later@robots.test"]
        wait_empty(d)


def test_expiry_sends_report_with_original_headers():
    with Sink() as sink, daemon(sink, maximal_queue_lifetime="2s") as d:
        d.start()
        send(d, "s@client.test", ["deferx@robots.test"], subject="expire",
             rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;deferx@robots.test"], mail_options=["ENVID=E1", "RET=HDRS"])
        deadline = time.time() + 20
        while not reports(sink) and time.time() < deadline:
            time.sleep(0.1)
        (ndr,) = reports(sink)
        assert ndr["accepted"] == ["s@client.test"]
        parsed = email.message_from_bytes(ndr["data"], policy=email.policy.default)
        assert parsed["Auto-Submitted"] == "auto-replied"
        parts = parsed.get_payload()
        assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
        fields = parts[1].get_payload()
        assert str(fields[0]["Original-Envelope-Id"]) == "E1"
        r = fields[1]
        assert str(r["Final-Recipient"]) == "rfc822; deferx@robots.test"
        assert str(r["Original-Recipient"]).replace(" ", "") == "rfc822;deferx@robots.test"
        assert str(r["Action"]) == "failed" and str(r["Status"]).startswith("4.2.1"), str(r["Status"])
        assert "expired" in str(r["Diagnostic-Code"]) or "busy" in str(r["Diagnostic-Code"])
        assert b"Subject: expire" in parts[2].as_bytes()
        wait_empty(d)


def test_null_sender_failure_gets_no_report():
    with Sink() as sink, daemon(sink) as d:
        d.start()
        send(d, "", ["bounce9@robots.test"], subject="nullsender")
        deadline = time.time() + 5
        while "status=bounced" not in d.logtext() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        wait_empty(d)
        assert reports(sink) == [] and sink.messages == []


def test_notify_never_suppresses_report():
    with Sink() as sink, daemon(sink) as d:
        d.start()
        send(d, "s@client.test", ["bounce2@robots.test"], subject="never", rcpt_options=["NOTIFY=NEVER"])
        deadline = time.time() + 5
        while "status=bounced" not in d.logtext() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        wait_empty(d)
        assert reports(sink) == []


def test_archive_undeliverable():
    with Sink() as sink, daemon(sink, archive_undeliverable="yes") as d:
        d.start()
        send(d, "s@client.test", ["bounce3@robots.test"], subject="archive")
        sink.wait(1)
        deadline = time.time() + 5
        while not d.queue_files("archive") and time.time() < deadline:
            time.sleep(0.05)
        (a,) = d.messages("archive")
        assert a.recipients == ["bounce3@robots.test"] and a.rcpts[0]["state"] == "B"


def test_restart_resumes_deferred_and_active():
    with Sink() as sink, daemon(sink) as d:
        sink.tempfail = True
        d.start()
        for i in range(5):
            send(d, "s@client.test", ["r%d@robots.test" % i], subject="restart%d" % i)
        deadline = time.time() + 10
        while len(d.queue_files("deferred")) < 5 and time.time() < deadline:
            time.sleep(0.05)
        d.kill()
        sink.tempfail = False
        d.start()
        sink.wait(5, timeout=20)
        wait_empty(d)


def test_notify_success_relayed_notice_only_without_peer_dsn():
    with Sink(dsn=False) as sink, daemon(sink) as d:
        d.start()
        send(d, "s@client.test", ["ok1@robots.test"], subject="success", rcpt_options=["NOTIFY=SUCCESS"])
        deadline = time.time() + 10
        while not reports(sink) and time.time() < deadline:
            time.sleep(0.05)
        (rep,) = reports(sink)
        parsed = email.message_from_bytes(rep["data"], policy=email.policy.default)
        fields = parsed.get_payload()[1].get_payload()
        assert str(fields[1]["Action"]) == "relayed" and str(fields[1]["Status"]).startswith("2.")
        (orig,) = [m for m in sink.messages if "MAIL FROM:<s@client.test>" in m["mail"]]
        assert "NOTIFY" not in orig["rcpts"][0]
    with Sink() as sink, daemon(sink) as d:
        d.start()
        send(d, "s@client.test", ["ok2@robots.test"], subject="success2", rcpt_options=["NOTIFY=SUCCESS"])
        (orig,) = sink.wait(1)
        assert "NOTIFY=SUCCESS" in orig["rcpts"][0]
        time.sleep(1)
        wait_empty(d)
        assert reports(sink) == []


def test_delay_warning_once():
    with Sink() as sink, daemon(sink, delay_warning_time="1s", maximal_queue_lifetime="1h") as d:
        d.start()
        send(d, "s@client.test", ["deferw@robots.test", "deferq@robots.test"], subject="slow",
             rcpt_options=["NOTIFY=DELAY,FAILURE"])
        deadline = time.time() + 15
        while not reports(sink) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # more retries happen: still one warning
        (rep,) = reports(sink)
        parsed = email.message_from_bytes(rep["data"], policy=email.policy.default)
        assert "Delayed" in str(parsed["Subject"])
        parts = parsed.get_payload()
        assert parts[2].get_content_type() == "text/rfc822-headers"
        groups = parts[1].get_payload()[1:]
        assert [str(g["Action"]) for g in groups] == ["delayed", "delayed"]
        assert all(g["Will-Retry-Until"] is not None for g in groups)
        assert d.queue_files("deferred") or d.queue_files("active")


def test_sigterm_does_not_wait_for_dns():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a DNS server that never answers
    silent.bind(("127.0.0.1", 0))
    try:
        extra = dict(FAST, relayhost="", relay_domains="*.robots.test", dns_servers="127.0.0.1:%d" % silent.getsockname()[1],
                     dns_timeout="10s", shutdown_timeout="60s")
        with Daemon(extra=extra) as d:
            d.start()
            send(d, "s@client.test", ["x@dns.robots.test"], subject="dns")
            deadline = time.time() + 5
            while not d.queue_files("active") and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            start = time.time()
            assert d.stop() == 0
            assert time.time() - start < 5, "shutdown waited for a DNS lookup"
            (m,) = d.messages("deferred") or d.messages("active")
            assert m.rcpts[0]["state"] == "Q"
    finally:
        silent.close()


def test_paused_delivery_resumes_on_reload():
    with Sink() as sink, daemon(sink, delivery_paused="yes") as d:
        d.start()
        for i in range(3):
            send(d, "s@client.test", ["p%d@robots.test" % i], subject="paused%d" % i)
        time.sleep(1.5)
        assert len(d.queue_files("incoming")) == 3 and sink.messages == []
        d.settings["delivery_paused"] = "no"
        d.write_config()
        d.proc.send_signal(__import__("signal").SIGHUP)
        sink.wait(3)
        wait_empty(d)
        assert "delivery resumed" in d.logtext()


if __name__ == "__main__":
    harness.run_tests(globals())
