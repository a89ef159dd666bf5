"""The admin HTTP JSON API on its unix socket (docs/api.md) and the `postern queue` command on
top of it: listing with filters, show, hold/release/requeue/delete/flush on real messages,
deferred mail from a peer that defers, qshape-like counts, and every endpoint's bad input."""
import http.client
import json
import os
import smtplib
import socket
import stat
import subprocess
import time

import harness
from harness import Daemon
from sink import Sink

DEFERRING = {
    "delivery_paused": "no", "queue_run_delay": "1h", "minimal_backoff_time": "1h",
    "maximal_backoff_time": "2h", "smtp_tls_security_level": "none", "shutdown_timeout": "2s",
}
MISSING_ID = "1K11W1J7K7M3KM2"  # well formed, never queued


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=20):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api_sock(d):
    return os.path.join(d.state, "api.sock")


def api(d, method, path, body=None, headers=None):
    """Returns (status, parsed JSON body, response headers)."""
    conn = UnixHTTPConnection(api_sock(d))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        assert resp.getheader("Content-Type") == "application/json", (method, path, resp.getheaders())
        return resp.status, json.loads(data), resp
    finally:
        conn.close()


def ok(d, method, path, status=200):
    code, body, _ = api(d, method, path)
    assert code == status, (method, path, code, body)
    return body


def error(d, method, path, status, code, body=None, headers=None):
    got, data, resp = api(d, method, path, body, headers)
    assert got == status, (method, path, got, data)
    assert set(data) == {"error"} and data["error"]["code"] == code, (method, path, data)
    assert isinstance(data["error"]["message"], str) and data["error"]["message"], data
    return data, resp


def send(d, sender, rcpts, subject="test", extra=""):
    msg = "From: <%s>\r\nSubject: %s\r\n%sMessage-ID: <%s@client.test>\r\n\r\nhello\r\n" % (
        sender or "x@client.test", subject, extra, subject)
    with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as c:
        c.sendmail(sender, rcpts, msg.encode())


def started(**extra):
    d = Daemon(extra=extra)
    d.start()
    deadline = time.time() + 10
    while not os.path.exists(api_sock(d)) and time.time() < deadline:
        time.sleep(0.05)
    return d


def cli(d, *args, config=True):
    cmd = [harness.BIN, "queue"] + list(args)
    env = d.env() if config else dict(os.environ, POSTERN_CONFIG=os.path.join(d.dir, "none.conf"))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def three_messages(d):
    send(d, "alice@client.test", ["r1@robots.test", "shared@robots.test"], subject="one",
         extra="X-Long: first\r\n second\r\n")
    send(d, "Bob@Other.test", ["r2@x.sub.test"], subject="two")
    send(d, "", ["r3@robots.test"], subject="three")
    d.wait_messages(3)
    return [m["id"] for m in ok(d, "GET", "/v1/queue")["messages"]]


def ids(body):
    return [m["id"] for m in body["messages"]]


def test_health_and_socket():
    with started() as d:
        body = ok(d, "GET", "/v1/health")
        assert body["status"] == "ok" and body["queue_active"] == 0 and body["version"]
        assert stat.S_IMODE(os.stat(api_sock(d)).st_mode) == 0o660
        assert stat.S_ISSOCK(os.stat(api_sock(d)).st_mode)
    assert not os.path.exists(api_sock(d)), "the socket file goes with the daemon"


def test_admin_socket_setting():
    """admin_socket moves the socket (the CLI follows the configuration); a path that holds
    anything but a socket is refused at startup and left alone."""
    d = Daemon()
    try:
        custom = os.path.join(d.dir, "admin.sock")
        d.settings["admin_socket"] = custom
        d.write_config()
        d.start()
        assert stat.S_ISSOCK(os.stat(custom).st_mode) and not os.path.exists(api_sock(d))
        rc, out, _ = cli(d, "list")
        assert rc == 0 and out == "Mail queue is empty\n"
        assert d.stop() == 0
        with open(custom, "w") as f:
            f.write("precious")
        d.start(wait=False)
        assert d.proc.wait(20) == 1
        assert "admin API socket: exists and is not a socket" in d.logtext()
        with open(custom) as f:
            assert f.read() == "precious"
    finally:
        d.cleanup()


def test_list_and_filters():
    with started() as d:
        one, two, three = three_messages(d)
        body = ok(d, "GET", "/v1/queue")
        assert body["total"] == 3 and ids(body) == sorted(ids(body))
        m = body["messages"][0]
        assert m["queue"] == "incoming" and m["sender"] == "alice@client.test" and m["size"] > 0
        assert m["arrival"].endswith("Z") and 0 <= m["age"] < 60
        assert m["recipients"] == [
            {"address": "r1@robots.test", "state": "queued", "notify": [], "orcpt": None},
            {"address": "shared@robots.test", "state": "queued", "notify": [], "orcpt": None}]
        assert "last_errors" not in m
        assert ids(ok(d, "GET", "/v1/queue?sender=ALICE")) == [one]
        assert ids(ok(d, "GET", "/v1/queue?sender=other.test")) == [two]
        assert ids(ok(d, "GET", "/v1/queue?sender=%3C%3E")) == [three]
        assert ids(ok(d, "GET", "/v1/queue?recipient=sub.test")) == [two]
        assert ids(ok(d, "GET", "/v1/queue?recipient=robots.test")) == [one, three]
        assert ids(ok(d, "GET", "/v1/queue?recipient=robots.test&sender=alice")) == [one]
        assert ids(ok(d, "GET", "/v1/queue?recipient=nobody")) == []
        assert ids(ok(d, "GET", "/v1/queue?queue=incoming")) == [one, two, three]
        assert ok(d, "GET", "/v1/queue?queue=deferred") == {"messages": [], "total": 0}
        assert ok(d, "GET", "/v1/queue?queue=corrupt")["total"] == 0
        assert ok(d, "GET", "/v1/queue?min_age=3600")["total"] == 0
        assert ids(ok(d, "GET", "/v1/queue?max_age=3600&min_age=0")) == [one, two, three]
        time.sleep(1.1)
        assert ok(d, "GET", "/v1/queue?max_age=0")["total"] == 0
        page = ok(d, "GET", "/v1/queue?limit=1&offset=1")
        assert ids(page) == [two] and page["total"] == 3
        assert ok(d, "GET", "/v1/queue?limit=0") == {"messages": [], "total": 3}
        assert ids(ok(d, "GET", "/v1/queue?offset=5")) == []


def test_show():
    with started() as d:
        one, _, three = three_messages(d)
        m = ok(d, "GET", "/v1/queue/" + one)
        assert m["id"] == one and m["queue"] == "incoming" and len(m["recipients"]) == 2
        names = [h["name"] for h in m["headers"]]
        assert names[0] == "Received" and "Subject" in names and "Message-ID" in names
        values = {h["name"]: h["value"] for h in m["headers"]}
        assert values["Subject"] == "one" and values["X-Long"] == "first second"
        assert m["headers_truncated"] is False
        assert m["envelope"]["origin"] == "smtp" and m["envelope"]["client_addr"] == "127.0.0.1"
        assert ok(d, "GET", "/v1/queue/" + three)["sender"] == ""
        error(d, "GET", "/v1/queue/" + MISSING_ID, 404, "not_found")


def test_hold_release_requeue_delete_flush():
    with started() as d:
        one, two, three = three_messages(d)
        assert ok(d, "POST", "/v1/queue/%s/hold" % one) == {"id": one, "queue": "hold"}
        assert [q.id for q in d.messages("hold")] == [one]
        assert ids(ok(d, "GET", "/v1/queue?queue=hold")) == [one]
        assert ok(d, "GET", "/v1/queue")["total"] == 3, "held mail is listed by default"
        error(d, "POST", "/v1/queue/%s/hold" % one, 409, "conflict")
        error(d, "POST", "/v1/queue/%s/flush" % one, 409, "conflict")
        error(d, "POST", "/v1/queue/%s/release" % two, 409, "conflict")
        error(d, "POST", "/v1/queue/%s/requeue" % two, 409, "conflict")
        assert ok(d, "POST", "/v1/queue/%s/release" % one) == {"id": one, "queue": "incoming"}
        assert sorted(q.id for q in d.messages()) == sorted([one, two, three])
        ok(d, "POST", "/v1/queue/%s/hold" % two)
        assert ok(d, "POST", "/v1/queue/%s/requeue" % two) == {"id": two, "queue": "incoming"}
        (q,) = [q for q in d.messages() if q.id == two]
        assert [r["state"] for r in q.rcpts] == ["Q"]
        flushed = ok(d, "POST", "/v1/queue/%s/flush" % three)
        assert flushed["queue"] == "incoming" and flushed["delivery_paused"] is True
        assert ok(d, "POST", "/v1/queue/flush")["flushed"] is True
        assert ok(d, "DELETE", "/v1/queue/" + three)["deleted"] is True
        assert three not in [q.id for q in d.messages()]
        error(d, "GET", "/v1/queue/" + three, 404, "not_found")
        error(d, "DELETE", "/v1/queue/" + three, 404, "not_found")
        ok(d, "POST", "/v1/queue/%s/hold" % one)
        ok(d, "DELETE", "/v1/queue/" + one)
        assert d.messages("hold") == []
        log = d.logtext()
        assert "%s: moved from incoming/ to hold/ by the admin API" % one in log
        assert "%s: removed from hold/ by the admin API" % one in log


def wait_files(d, queue, n, timeout=20):
    deadline = time.time() + timeout
    while len(d.queue_files(queue)) != n and time.time() < deadline:
        time.sleep(0.05)
    assert len(d.queue_files(queue)) == n, (queue, d.queue_files(queue), d.logtext()[-2000:])


def test_deferred_errors_shape_and_flush():
    with Sink() as sink:
        sink.tempfail = True
        with started(relayhost="[127.0.0.1]:%d" % sink.port, **DEFERRING) as d:
            send(d, "s@client.test", ["d1@robots.test", "d2@x.sub.test"], subject="d1")
            send(d, "s@client.test", ["d3@robots.test"], subject="d2")
            wait_files(d, "deferred", 2)
            body = ok(d, "GET", "/v1/queue?queue=deferred")
            assert body["total"] == 2
            first, second = ids(body)
            errors = body["messages"][0]["last_errors"]
            assert [e["recipient"] for e in errors] == ["d1@robots.test", "d2@x.sub.test"]
            e = errors[0]
            assert e["code"] == 451 and e["dsn"] == "4.3.0" and "try again later" in e["text"]
            assert e["index"] == 0 and e["time"].endswith("Z") and e["remote"]
            assert ok(d, "GET", "/v1/queue/" + first)["last_errors"] == errors
            shape = ok(d, "GET", "/v1/queue/shape")
            assert shape["queue"] == "deferred" and shape["total"] == 3
            assert shape["buckets"] == ["0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", "160m+"]
            assert shape["counts"] == [3, 0, 0, 0, 0, 0, 0]
            assert shape["domains"] == [
                {"domain": "robots.test", "total": 2, "counts": [2, 0, 0, 0, 0, 0, 0]},
                {"domain": "x.sub.test", "total": 1, "counts": [1, 0, 0, 0, 0, 0, 0]}]
            assert ok(d, "GET", "/v1/queue/shape?queue=incoming")["domains"] == []
            # hold and requeue a deferred message: it is tried again and deferred again
            ok(d, "POST", "/v1/queue/%s/hold" % first)
            assert ok(d, "GET", "/v1/queue/" + first)["last_errors"] == errors
            assert ok(d, "POST", "/v1/queue/%s/requeue" % first)["queue"] == "incoming"
            wait_files(d, "deferred", 2)
            assert d.logtext().count(first + ": deferred, next attempt") == 2
            # the peer recovers: one message flushed by ID, the other by the whole-queue flush
            sink.tempfail = False
            ok(d, "POST", "/v1/queue/%s/flush" % second)
            sink.wait(1)
            wait_files(d, "deferred", 1)
            assert ids(ok(d, "GET", "/v1/queue")) == [first]
            ok(d, "POST", "/v1/queue/flush")
            sink.wait(2)
            wait_files(d, "deferred", 0)
            assert ok(d, "GET", "/v1/queue")["total"] == 0
            assert os.listdir(os.path.join(d.state, "spool", "defer", second[-1])) == []


def test_active_message_conflicts():
    """A peer that never greets keeps the message active: no action may touch it."""
    stall = socket.socket()
    stall.bind(("127.0.0.1", 0))
    stall.listen(8)
    try:
        with started(relayhost="[127.0.0.1]:%d" % stall.getsockname()[1], smtp_helo_timeout="60s",
                     **DEFERRING) as d:
            send(d, "s@client.test", ["a@robots.test"], subject="stalled")
            wait_files(d, "active", 1)
            (mid,) = ids(ok(d, "GET", "/v1/queue?queue=active"))
            assert ok(d, "GET", "/v1/health")["queue_active"] == 1
            for method, path in (("POST", "/v1/queue/%s/hold"), ("DELETE", "/v1/queue/%s"),
                                 ("POST", "/v1/queue/%s/flush"), ("POST", "/v1/queue/%s/requeue"),
                                 ("POST", "/v1/queue/%s/release")):
                data, _ = error(d, method, path % mid, 409, "conflict")
                assert data["error"]["message"] == "message is being delivered; try again"
            rc, out, _ = cli(d, "list")
            assert rc == 0 and mid + "*" in out
    finally:
        stall.close()


BAD_REQUESTS = [
    # unknown and malformed IDs, on every endpoint that takes one
    *[(m, p % i, 404, "not_found") for i in (MISSING_ID, "1K11W1J7K7M3KM2X", "1k11w1j7k7m3km2", "A" * 300,
                                                "..%2F..%2Fetc%2Fpasswd", "%00")
      for m, p in (("GET", "/v1/queue/%s"), ("DELETE", "/v1/queue/%s"), ("POST", "/v1/queue/%s/hold"),
                   ("POST", "/v1/queue/%s/release"), ("POST", "/v1/queue/%s/requeue"),
                   ("POST", "/v1/queue/%s/flush"))],
    ("GET", "/v1/queue/../../etc/passwd", 404, "not_found"),
    ("GET", "/v1/queue/./" + MISSING_ID, 404, "not_found"),
    # unknown paths
    *[("GET", p, 404, "not_found") for p in ("/", "/v1", "/v2/queue", "/v1/queue/", "/v1/queue//x",
                                             "/v1/queue/%s/bogus" % MISSING_ID, "/v1/health/x", "/metrics",
                                             "/v1/queue/a/b/c/d/e/f/g")],
    # bad filters and parameters
    *[("GET", "/v1/queue?" + q, 400, "bad_request") for q in (
        "queue=bogus", "queue=", "queue=maildrop", "queue=../etc", "min_age=abc", "min_age=-1", "min_age=1e3",
        "max_age=", "max_age=99999999999999999999", "limit=abc", "limit=100001", "offset=-1", "bogus=1",
        "sender=a&sender=b", "queue=hold&queue=deferred")],
    ("GET", "/v1/queue/shape?queue=bogus", 400, "bad_request"),
    ("GET", "/v1/queue/shape?sender=x", 400, "bad_request"),
    ("GET", "/v1/health?verbose=1", 400, "bad_request"),
    ("GET", "/v1/queue/%s?x=1" % MISSING_ID, 400, "bad_request"),
    ("POST", "/v1/queue/flush?now=1", 400, "bad_request"),
    # wrong methods
    *[(m, p, 405, "method_not_allowed") for m, p in (
        ("PUT", "/v1/queue"), ("POST", "/v1/queue"), ("DELETE", "/v1/queue"), ("POST", "/v1/health"),
        ("GET", "/v1/queue/flush"), ("DELETE", "/v1/queue/flush"), ("POST", "/v1/queue/shape"),
        ("GET", "/v1/queue/%s/hold" % MISSING_ID), ("DELETE", "/v1/queue/%s/release" % MISSING_ID),
        ("PATCH", "/v1/queue/%s" % MISSING_ID), ("POST", "/v1/queue/%s" % MISSING_ID),
        ("OPTIONS", "/v1/health"))],
]

BAD_BODIES = [
    ("{", "application/json", 400, "bad_request"),
    ("[]", "application/json", 400, "bad_request"),
    ('"x"', "application/json", 400, "bad_request"),
    ('{"now": true}', "application/json", 400, "bad_request"),
    ("{}", "text/plain", 415, "unsupported_media_type"),
    ("{}", None, 415, "unsupported_media_type"),
]


def test_bad_input():
    with started() as d:
        mid = three_messages(d)[0]
        for method, path, status, code in BAD_REQUESTS:
            _, resp = error(d, method, path, status, code)
            if status == 405:
                assert resp.getheader("Allow"), (method, path)
        for target in ("/v1/queue/flush", "/v1/queue/%s/hold" % mid, "/v1/queue/%s/flush" % mid):
            for body, ctype, status, code in BAD_BODIES:
                error(d, "POST", target, status, code, body, {"Content-Type": ctype} if ctype else {})
        error(d, "DELETE", "/v1/queue/" + mid, 400, "bad_request", "{", {"Content-Type": "application/json"})
        # nothing happened to the message, and an empty object body is accepted
        assert ok(d, "GET", "/v1/queue/" + mid)["queue"] == "incoming"
        code, body, _ = api(d, "POST", "/v1/queue/%s/hold" % mid, "{}", {"Content-Type": "application/json"})
        assert code == 200 and body["queue"] == "hold"
        assert ok(d, "GET", "/v1/health")["status"] == "ok", "the daemon survived all of it"
        assert 'admin: client=unix, request="GET /v1/queue?queue=bogus", status=400' in d.logtext()


def test_cli():
    with started() as d:
        one, two, three = three_messages(d)
        rc, out, err = cli(d, "list")
        assert rc == 0 and err == "", err
        lines = out.splitlines()
        assert lines[0].startswith("-Queue ID-") and "Sender/Recipient" in lines[0]
        assert any(l.startswith(one + " ") and l.endswith("alice@client.test") for l in lines)
        assert any(l.strip() == "shared@robots.test" for l in lines)
        assert any(l.startswith(three) and l.endswith("<>") for l in lines)
        assert lines[-1].startswith("-- ") and "3 messages" in lines[-1]
        rc, out, _ = cli(d, "list", "--sender", "bob", "--json")
        assert rc == 0 and [m["id"] for m in json.loads(out)["messages"]] == [two]
        rc, out, _ = cli(d, "list", "--recipient", "r3@", "--queue", "incoming", "--min-age", "0",
                         "--max-age", "600")
        assert rc == 0 and three in out and one not in out
        rc, out, _ = cli(d, "show", one)
        assert rc == 0 and "sender:    <alice@client.test>" in out and "  Subject: one" in out
        assert json.loads(cli(d, "show", one, "--json")[1])["id"] == one
        assert cli(d, "hold", one) == (0, "%s: placed on hold\n" % one, "")
        rc, out, _ = cli(d, "list", "--queue", "hold")
        assert rc == 0 and one + "!" in out
        assert cli(d, "release", one)[0:2] == (0, "%s: released\n" % one)
        assert cli(d, "hold", two)[0] == 0 and cli(d, "requeue", two)[0:2] == (0, "%s: requeued\n" % two)
        rc, out, _ = cli(d, "flush")
        assert rc == 0 and out.startswith("deferred mail: flushed") and "paused" in out
        assert cli(d, "flush", one)[0] == 0
        assert cli(d, "delete", three) == (0, "%s: deleted\n" % three, "")
        rc, out, _ = cli(d, "shape", "--queue", "incoming")
        assert rc == 0 and "TOTAL" in out and "robots.test" in out and "0-5m" in out
        assert json.loads(cli(d, "shape", "--json")[1])["total"] == 0
        # API errors: their message, exit 1
        rc, out, err = cli(d, "show", MISSING_ID)
        assert rc == 1 and out == "" and "no such message" in err
        rc, _, err = cli(d, "release", one)
        assert rc == 1 and "only hold mail can be released" in err
        rc, _, err = cli(d, "list", "--min-age", "soon")
        assert rc == 1 and "min_age" in err
        rc, _, err = cli(d, "list", "--queue", "nowhere")
        assert rc == 1 and "queue" in err
        # usage errors
        for args in ((), ("bogus",), ("show",), ("hold", one, two), ("list", "extra"), ("shape", "--sender", "x"),
                     ("hold", one, "--queue", "hold"), ("list", "--nope")):
            assert cli(d, *args)[0] == 64, args
        assert cli(d, "help")[0] == 0
        # -c FILE is used over $POSTERN_CONFIG
        assert cli(d, "-c", d.conf_path, "list", config=False)[0] == 0
        assert cli(d, "list", config=False)[0] == 78
        d.stop()
        rc, out, err = cli(d, "list")
        assert rc == 69 and out == "" and "not running" in err


def test_cli_daemon_never_started():
    d = Daemon()
    try:
        rc, _, err = cli(d, "list")
        assert rc == 69 and "not running" in err
    finally:
        d.cleanup()


def test_aliases_api():
    with Daemon() as d:
        d.start()
        j = {"Content-Type": "application/json"}
        st, body, _ = api(d, "PUT", "/v1/aliases/Info@Robots.test",
                          json.dumps({"targets": ["a@example.org", "pipe:/usr/bin/robot --in"]}), j)
        assert st == 200 and body["address"] == "info@robots.test", body
        assert body["targets"] == ["a@example.org", "pipe:/usr/bin/robot --in"]
        for i in range(5):
            st, _, _ = api(d, "PUT", "/v1/aliases/u%d@robots.test" % i, json.dumps({"targets": ["x@y.test"]}), j)
            assert st == 200
        st, body, _ = api(d, "GET", "/v1/aliases/info@robots.test")
        assert st == 200 and body["targets"][1] == "pipe:/usr/bin/robot --in"
        # paging: 6 aliases, pages of 4
        st, body, _ = api(d, "GET", "/v1/aliases?domain=robots.test&limit=4")
        assert st == 200 and body["total"] == 6 and body["more"] and len(body["aliases"]) == 4, body
        st, body2, _ = api(d, "GET", "/v1/aliases?domain=robots.test&limit=4&after=" + body["next"])
        assert not body2["more"] and len(body2["aliases"]) == 2
        keys = [a["address"] for a in body["aliases"] + body2["aliases"]]
        assert keys == sorted(keys) and len(set(keys)) == 6
        # the daemon routes by them at once (a pipe: target has no agent yet: 451, not a bounce)
        c = smtplib.SMTP("127.0.0.1", d.smtp_port)
        try:
            refused = c.sendmail("s@client.test", ["u0@robots.test", "info@robots.test"],
                                 b"Subject: a\r\n\r\nx\r\n")
            assert list(refused) == ["info@robots.test"] and refused["info@robots.test"][0] == 451
        finally:
            c.quit()
        (m,) = d.wait_messages(1)
        assert m.recipients == ["x@y.test"]
        st, body, _ = api(d, "DELETE", "/v1/aliases/info@robots.test")
        assert st == 200 and body["deleted"] is True
        # bad input: 4xx with a JSON error each
        bad = [
            ("GET", "/v1/aliases/info@robots.test", None, None, 404, "not_found"),
            ("DELETE", "/v1/aliases/info@robots.test", None, None, 404, "not_found"),
            ("GET", "/v1/aliases/not-an-address", None, None, 400, "bad_address"),
            ("PUT", "/v1/aliases/a@robots.test", "{", j, 400, "bad_request"),
            ("PUT", "/v1/aliases/a@robots.test", json.dumps({"targets": []}), j, 400, "bad_request"),
            ("PUT", "/v1/aliases/a@robots.test", json.dumps({"targets": [1]}), j, 400, "bad_request"),
            ("PUT", "/v1/aliases/a@robots.test", json.dumps({"targets": ["x"], "more": 1}), j, 400, "bad_request"),
            ("PUT", "/v1/aliases/a@robots.test", json.dumps({"targets": ["no at sign"]}), j, 400, "bad_target"),
            ("PUT", "/v1/aliases/a@robots.test", json.dumps({"targets": ["x@y.test"]}), {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            ("GET", "/v1/aliases?limit=0", None, None, 400, "bad_request"),
            ("GET", "/v1/aliases?limit=x", None, None, 400, "bad_request"),
            ("GET", "/v1/aliases?colour=red", None, None, 400, "bad_request"),
            ("POST", "/v1/aliases/a@robots.test", None, None, 405, "method_not_allowed"),
        ]
        for method, path, body, headers, want, code in bad:
            st, out, _ = api(d, method, path, body, headers)
            assert st == want and out["error"]["code"] == code, (method, path, st, out)
        d.check_log_clean()


if __name__ == "__main__":
    harness.run_tests(globals())
