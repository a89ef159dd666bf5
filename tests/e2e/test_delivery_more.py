"""Delivery against real peers, part two: MX delivery through a real DNS server (a private
dnsmasq), LMTP delivery to aiosmtpd's LMTP server over TCP and a unix socket, crash safety while
delivery runs, and a restart with a large deferred queue.

MX delivery always connects to port 25, so the MX peers listen on 127.0.0.2:25 and 127.0.0.3:25
(Linux routes all of 127.0.0.0/8 to lo); a test skips, saying why, only when it cannot bind
there (not root, or the port taken).

Environment: BIG_QUEUE (messages in the large-queue test, default 20000), BIG_QUEUE_RSS_MB (the
RSS bound in that test, default 100), BIG_QUEUE_NAGLE=1 (leave the sink's Nagle delay in, to
see it), CRASH_MESSAGES (default 300), CRASH_SEED (reproduce a crash run).
"""
import email
import email.policy
import os
import random
import re
import smtplib
import socket
import socketserver
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from dnsmasq import Dnsmasq, available as dnsmasq_available  # noqa: E402
from harness import Daemon  # noqa: E402
from sink import Sink  # noqa: E402

FAST = {
    "delivery_paused": "no",
    "queue_run_delay": "1s", "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
    "smtp_connect_timeout": "5s", "smtp_helo_timeout": "5s", "smtp_command_timeout": "5s",
    "smtp_data_timeout": "5s", "smtp_data_done_timeout": "5s", "smtp_tls_security_level": "none",
    # the test clients relay to any domain from loopback
    "mynetworks": "127.0.0.0/8",
}
GOOD_IP, BAD_IP = "127.0.0.3", "127.0.0.2"
QUEUES = ("incoming", "active", "deferred")


class Skip(Exception):
    pass


def skip(why):
    """Ends a test early with a clear message; harness.run_tests has no skip state, so the test
    prints SKIP and returns."""
    print("SKIP %s" % why, flush=True)
    raise Skip(why)


def skippable(fn):
    def run():
        try:
            fn()
        except Skip:
            pass
    run.__name__ = fn.__name__
    return run


# ---- peers -------------------------------------------------------------------------------------

def sink_at(host, port, lmtp=False):
    """A sink.py peer on a chosen address."""
    return Sink(lmtp=lmtp, host=host, port=port)


class _RefuseHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.peer.connections += 1
        self.request.sendall(b"421 4.3.2 mx1 is shutting down, try another\r\n")


def Refuser(host, port):
    """A peer that greets every connection with 421 and hangs up."""
    return Sink(host=host, port=port, handler=_RefuseHandler)


def need_port25(*hosts):
    if not dnsmasq_available():
        skip("dnsmasq is not installed (/usr/sbin/dnsmasq)")
    for h in hosts:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((h, 25))
            except OSError as e:
                skip("MX delivery needs a peer on %s:25 and binding it failed: %s" % (h, e))


class SilentUDP:
    """A UDP socket that reads queries and never answers: a dead DNS server."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stopped = False
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopped:
            try:
                self.sock.recv(4096)
                self.queries += 1
            except socket.timeout:
                pass
            except OSError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped = True
        self.thread.join()
        self.sock.close()


# ---- helpers -----------------------------------------------------------------------------------

def mx_daemon(dns, **extra):
    settings = dict(FAST, dns_servers=dns.servers, relayhost="")
    settings.update(extra)
    return Daemon(extra=settings)


def send(port, sender, rcpts, msgid, subject="test", body="hello\r\n"):
    msg = "From: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\n%s" % (sender, subject, msgid, body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        return c.sendmail(sender, rcpts, msg.encode())


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def wait_empty(d, timeout=20):
    wait_for(lambda: not any(d.queue_files(q) for q in QUEUES), timeout,
             "an empty queue (have %r)" % {q: len(d.queue_files(q)) for q in QUEUES})


def reports(messages):
    return [m for m in messages if "MAIL FROM:<>" in m["mail"]]


def report_fields(data):
    """[(Final-Recipient, Status, Action, Diagnostic-Code)] of an RFC 3464 report."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report", parsed.get_content_type()
    status = parsed.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    return [(str(f["Final-Recipient"]), str(f["Status"]), str(f["Action"]), str(f["Diagnostic-Code"]))
            for f in status.get_payload()[1:]]


def msgid_of(data):
    m = re.search(rb"(?im)^Message-ID:\s*<([^>]+)>", data)
    return m.group(1).decode() if m else None


# ---- 1. MX delivery through dnsmasq ------------------------------------------------------------

MX_ZONE = dict(
    mx={"pref.test": [(10, "mx1.pref.test"), (20, "mx2.pref.test")],
        "sender.test": [(10, "mx2.pref.test")],
        "good.test": [(10, "mx2.pref.test"), (20, "mx1.pref.test")]},
    hosts={"mx1.pref.test": [BAD_IP], "mx2.pref.test": [GOOD_IP]},
    null_mx=["nomail.test"])


@skippable
def test_mx_preference_and_fallback_past_421():
    need_port25(GOOD_IP, BAD_IP)
    with Dnsmasq(**MX_ZONE) as dns, Refuser(BAD_IP, 25) as bad, sink_at(GOOD_IP, 25) as good, \
            mx_daemon(dns) as d:
        d.start()
        # the lower preference is tried first: good.test's MX 10 is the good host, mx1 is never used
        send(d.smtp_port, "s@sender.test", ["u@good.test"], "first@client.test", subject="first")
        (m,) = good.wait(1)
        assert m["accepted"] == ["u@good.test"] and bad.connections == 0, bad.connections
        # pref.test: MX 10 answers 421, so the same attempt falls back to MX 20
        send(d.smtp_port, "s@sender.test", ["u@pref.test"], "second@client.test", subject="second")
        msgs = good.wait(2)
        assert msgs[1]["accepted"] == ["u@pref.test"] and msgid_of(msgs[1]["data"]) == "second@client.test"
        assert bad.connections >= 1, "MX 10 was never tried"
        wait_empty(d)
        log = d.logtext()
        assert "to=<u@pref.test>" in log and "status=sent" in log
        assert reports(good.messages) == [], "no report: the message was delivered"


@skippable
def test_mx_null_mx_and_nxdomain_bounce_to_senders_mx():
    need_port25(GOOD_IP)
    with Dnsmasq(**MX_ZONE) as dns, sink_at(GOOD_IP, 25) as good, mx_daemon(dns) as d:
        d.start()
        send(d.smtp_port, "s@sender.test", ["u@nomail.test"], "null@client.test", subject="nullmx")
        send(d.smtp_port, "s@sender.test", ["u@nosuch.test"], "nx@client.test", subject="nxdomain")
        wait_for(lambda: len(reports(good.messages)) >= 2, 20, "two reports at the sender's MX")
        got = {}
        for r in reports(good.messages):
            assert r["accepted"] == ["s@sender.test"], r["accepted"]
            (fields,) = report_fields(r["data"])
            got[fields[0]] = fields
        null = got["rfc822; u@nomail.test"]
        assert null[1] == "5.1.10" and null[2] == "failed", null
        nx = got["rfc822; u@nosuch.test"]
        assert nx[1] == "5.1.2" and nx[2] == "failed", nx
        wait_empty(d)
        # a null MX bounces at once: no connection to anything but the sender's MX
        assert len(good.messages) == 2, [m["mail"] for m in good.messages]
        log = d.logtext()
        assert "deferred" not in log, "null MX and NXDOMAIN are permanent:\n" + log[-2000:]


@skippable
def test_mx_dns_not_answering_defers_never_bounces():
    need_port25(GOOD_IP)
    with SilentUDP() as dead, \
            Dnsmasq(extra=["server=/silent.test/127.0.0.1#%d" % dead.port], **MX_ZONE) as dns, \
            sink_at(GOOD_IP, 25) as good, mx_daemon(dns, maximal_queue_lifetime="1h", shutdown_timeout="3s", dns_timeout="1s") as d:
        d.start()
        # silent.test: dnsmasq forwards to a server that never answers; refused.example: outside
        # dnsmasq's zones, so it answers REFUSED
        send(d.smtp_port, "s@sender.test", ["u@host.silent.test"], "silent@client.test", subject="silent")
        send(d.smtp_port, "s@sender.test", ["u@refused.example"], "refused@client.test", subject="refused")
        start = time.time()
        wait_for(lambda: len(d.queue_files("deferred")) == 2, 40, "both messages deferred")
        took = time.time() - start
        for q in d.messages("deferred"):
            assert [r["state"] for r in q.rcpts] == ["Q"], q.rcpts
        # more attempts: still deferred, never bounced, no report
        wait_for(lambda: len(re.findall(r"to=<u@refused.example>.*status=deferred", d.logtext())) >= 3, 15,
                 "three attempts at refused.example")
        log = d.logtext()
        assert "status=bounced" not in log and reports(good.messages) == [], log[-3000:]
        assert "4.4.3" in log or "try again" in log, log[-3000:]
        assert dead.queries >= 1, "the silent server was never asked"
        t = time.time()
        rc = d.stop()
        stop_took = time.time() - t
        d.check_log_clean()
        assert rc == 0, rc
        print("     dns: the silent server's domain was deferred after %.1fs (%d queries); stop took %.1fs"
              % (took, dead.queries, stop_took))


# ---- 2. LMTP delivery to aiosmtpd ---------------------------------------------------------------

class LmtpRobot:
    """aiosmtpd handler. RCPT: "nouser*" 550 5.1.1, else accepted. DATA: aiosmtpd's LMTP class
    sends handle_DATA's return as the one reply, so the handler returns one line per accepted
    recipient itself (RFC 2033 4.2): "full*" 452 4.2.2, "quota*" 552 5.2.2, else 250."""

    def __init__(self):
        self.delivered = []  # (mail_from, rcpt, content)
        self.transactions = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].startswith("nouser"):
            return "550 5.1.1 <%s> unknown user" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server, session, envelope):
        lines = []
        sender = "" if envelope.mail_from in ("", "<>") else envelope.mail_from  # aiosmtpd keeps "<>"
        with self.lock:
            self.transactions.append((sender, list(envelope.rcpt_tos)))
            for rcpt in envelope.rcpt_tos:
                local = rcpt.split("@")[0]
                if local.startswith("full"):
                    lines.append("452 4.2.2 <%s> mailbox full" % rcpt)
                elif local.startswith("quota"):
                    lines.append("552 5.2.2 <%s> over quota for good" % rcpt)
                else:
                    self.delivered.append((sender, rcpt, envelope.content))
                    lines.append("250 2.0.0 <%s> delivered" % rcpt)
        return "\r\n".join(lines)


def lmtp_controller(handler, unix_path=None):
    from aiosmtpd.controller import Controller, UnixSocketController
    from aiosmtpd.lmtp import LMTP

    base = UnixSocketController if unix_path else Controller

    class C(base):
        def factory(self):
            return LMTP(self.handler, **self.SMTP_kwargs)

    if unix_path:
        return C(handler, unix_socket=unix_path)
    return C(handler, hostname="127.0.0.1", port=harness.free_port())


def lmtp_daemon(relayhost, **extra):
    settings = dict(FAST, relayhost=relayhost, maximal_queue_lifetime="1h")
    settings.update(extra)
    return Daemon(extra=settings)


def test_lmtp_aiosmtpd_tcp_per_recipient_results():
    robot = LmtpRobot()
    ctl = lmtp_controller(robot)
    ctl.start()
    try:
        with lmtp_daemon("lmtp:[127.0.0.1]:%d" % ctl.port) as d:
            d.start()
            rcpts = ["a@robots.test", "b@robots.test", "nouser1@robots.test", "full1@robots.test",
                     "quota1@robots.test"]
            send(d.smtp_port, "s@client.test", rcpts, "lmtp1@client.test", subject="lmtp-mixed")
            # the report to s@client.test goes through the same LMTP relay host
            wait_for(lambda: any(f == "" for f, _, _ in robot.delivered), 20, "the report")
            wait_for(lambda: d.queue_files("deferred"), 10, "the deferred remainder")
            (q,) = d.messages("deferred")
            states = {r["address"]: r["state"] for r in q.rcpts}
            assert states == {"a@robots.test": "D", "b@robots.test": "D", "nouser1@robots.test": "B",
                              "full1@robots.test": "Q", "quota1@robots.test": "B"}, states
            normal = [(f, r) for f, r, _ in robot.delivered if f == "s@client.test"]
            assert sorted(normal) == [("s@client.test", "a@robots.test"), ("s@client.test", "b@robots.test")], normal
            ((_, _, ndr),) = [x for x in robot.delivered if x[0] == ""]
            fields = {f[0]: f for f in report_fields(ndr)}
            assert set(fields) == {"rfc822; nouser1@robots.test", "rfc822; quota1@robots.test"}, fields
            assert fields["rfc822; nouser1@robots.test"][1] == "5.1.1"
            assert fields["rfc822; quota1@robots.test"][1] == "5.2.2"
            assert "over quota" in fields["rfc822; quota1@robots.test"][3]
            # the first transaction carried the four recipients that passed RCPT
            assert robot.transactions[0] == ("s@client.test", ["a@robots.test", "b@robots.test",
                                                               "full1@robots.test", "quota1@robots.test"])
            # retries carry only the deferred one
            wait_for(lambda: len([t for t in robot.transactions if t[0] == "s@client.test"]) >= 2, 10,
                     "a retry")
            retry = [t for t in robot.transactions if t[0] == "s@client.test"][1]
            assert retry[1] == ["full1@robots.test"], retry
            log = d.logtext()
            for addr, st in (("a", "sent"), ("b", "sent"), ("nouser1", "bounced"), ("quota1", "bounced")):
                assert re.search(r"to=<%s@robots.test>.*status=%s" % (addr, st), log), (addr, st, log[-3000:])
            assert re.search(r"to=<full1@robots.test>.*status=deferred", log) or "deferred, next attempt" in log
    finally:
        ctl.stop()


def test_lmtp_aiosmtpd_unix_socket_multi_recipient():
    robot = LmtpRobot()
    tmp = tempfile.mkdtemp(prefix="pl-")
    path = os.path.join(tmp, "lmtp.sock")
    ctl = lmtp_controller(robot, unix_path=path)
    ctl.start()
    try:
        with lmtp_daemon("lmtp:unix:" + path) as d:
            d.start()
            rcpts = ["u%d@robots.test" % i for i in range(5)]
            send(d.smtp_port, "s@client.test", rcpts, "lmtp2@client.test", subject="lmtp-unix")
            wait_for(lambda: len(robot.delivered) >= 5, 20, "five deliveries")
            wait_empty(d)
            assert sorted(r for _, r, _ in robot.delivered) == rcpts
            assert robot.transactions == [("s@client.test", rcpts)], robot.transactions
            assert all(b"Subject: lmtp-unix" in c for _, _, c in robot.delivered)
            log = d.logtext()
            assert all("to=<%s>" % r in log for r in rcpts) and log.count("status=sent") >= 5
    finally:
        ctl.stop()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


# ---- 3. SIGKILL while delivering ----------------------------------------------------------------

def complete(messages):
    """The sink's transactions whose content arrived whole. sink.py records a transaction even
    when the connection drops in the middle of DATA (as a SIGKILL of the sender does), so a
    message counts only when its last line, "end of MSGID", is there."""
    out = []
    for m in list(messages):
        mid = msgid_of(m["data"] or b"")
        if mid and m["data"].endswith(b"\r\nend of %s\r\n" % mid.encode()):
            out.append(m)
    return out


def test_sigkill_during_delivery_every_acked_message_arrives():
    total = int(os.environ.get("CRASH_MESSAGES", "300"))
    seed = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
    rnd = random.Random(seed)
    clients = 4
    acked, failed_attempts = set(), [0]
    lock = threading.Lock()
    with Sink() as sk, Daemon(extra=dict(FAST, relayhost="[127.0.0.1]:%d" % sk.port)) as d:
        sk.server.handle_error = lambda request, address: None  # a killed sender is expected here
        d.start()
        port = d.smtp_port

        def client(k):
            for i in range(k, total, clients):
                mid = "crash-%d-%d@client.test" % (seed, i)
                body = "\r\n".join("%d-%s" % (i, "x" * 70) for _ in range(rnd.randrange(3, 60)))
                for attempt in range(400):
                    # the attempt number tells a client's resubmission (its 250 was lost in the
                    # kill) from the daemon delivering one submission twice
                    try:
                        send(port, "s@client.test", ["r%d@robots.test" % i], mid, subject="crash %d" % i,
                             body="attempt %d\r\n%s\r\nend of %s\r\n" % (attempt, body, mid))
                        with lock:
                            acked.add(mid)
                        break
                    except (OSError, smtplib.SMTPException) as e:
                        if getattr(e, "smtp_code", 0) >= 500:
                            raise
                        with lock:
                            failed_attempts[0] += 1
                        time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        start = time.time()
        for t in threads:
            t.start()
        # kill when the run passes random points of its progress (messages accepted plus messages
        # at the sink, out of twice the total), plus a random delay, so that kills land while
        # clients submit and while the queue manager delivers
        kills = 0
        marks = sorted(rnd.sample(range(total // 4, total * 7 // 4), rnd.randint(2, 3)))

        def progress():
            return len(acked) + len(complete(sk.messages))

        for mark in marks:
            wait_for(lambda: progress() >= mark, 60, "progress %d of %d" % (mark, 2 * total))
            time.sleep(rnd.uniform(0, 0.3))
            delivered_before = len(sk.messages)
            d.kill()
            kills += 1
            down = time.time()
            d.start()
            print("     kill %d at %.1fs: %d acked, %d at the sink; back in %.2fs"
                  % (kills, down - start, len(acked), delivered_before, time.time() - down), flush=True)
        for t in threads:
            t.join(120)
        assert len(acked) == total, "only %d of %d messages were accepted" % (len(acked), total)
        wait_for(lambda: acked <= {msgid_of(m["data"]) for m in complete(sk.messages)}, 60,
                 "every acked message at the sink")
        wait_empty(d, 30)
        msgs = list(sk.messages)
        torn = len(msgs) - len(complete(msgs))
        msgs = complete(msgs)
        ids = [msgid_of(m["data"]) for m in msgs]
        strays = [m for m in msgs if not re.search(rb"\r\nattempt \d+\r\n", m["data"])]
        assert not strays, "the sink got mail the clients never sent: %r" % [
            (m["mail"], m["accepted"], m["data"][:600]) for m in strays]
        subs = [(msgid_of(m["data"]), re.search(rb"\r\nattempt (\d+)\r\n", m["data"]).group(1)) for m in msgs]
        redelivered = len(subs) - len(set(subs))  # one submission delivered more than once
        resubmitted = len(set(subs)) - len(set(ids))  # the client sent again after a lost 250
        unacked = set(ids) - acked
        assert not unacked, "delivered but never submitted: %r" % unacked
        assert not d.queue_files("corrupt"), d.queue_files("corrupt")
        print("     seed %d: %d messages, %d kills, %d failed client attempts, %d deliveries at the sink: "
              "%d distinct, %d redelivered by postern, %d resubmitted by clients, %d torn by a kill; %.1fs"
              % (seed, total, kills, failed_attempts[0], len(ids), len(set(ids)), redelivered, resubmitted, torn,
                 time.time() - start), flush=True)
        assert kills >= 2


# ---- 4. restart with a large deferred queue ----------------------------------------------------

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def encode(v, n):
    out = []
    for _ in range(n):
        out.append(ALPHABET[v & 31])
        v >>= 5
    return "".join(reversed(out))


def queue_ids(n, base_us):
    """IDs as src/queue/queue_id.c makes them: 11 chars of microseconds, 4 of sequence."""
    return [encode(base_us + i, 11) + encode(i & 0xFFFFF, 4) for i in range(n)]


def write_queue_file(path, qid, arrival_us, rcpt, content):
    env = ("POSTERN-QUEUE 1\nid %s\narrival %d\norigin smtp\nclient_addr 127.0.0.1\nhelo client.test\n"
           "proto ESMTP\nsender s@client.test\nbody 7BIT\nrcpt Q 0 - %s\ncontent\n" % (qid, arrival_us, rcpt))
    with open(path, "wb") as f:
        f.write(env.encode() + content + b"\nPOSTERN-END %016x\n" % len(content))


def nodelay(peer):
    """Sets TCP_NODELAY on the peer's accepted sockets: sink.py writes each pipelined reply on its
    own, and with Nagle's algorithm the second waits for the client's delayed ACK (~40 ms), which
    would cap a queue drain at a few hundred messages a second whatever postern does."""
    accept = peer.server.get_request

    def get_request():
        conn, addr = accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr
    peer.server.get_request = get_request
    return peer


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_restart_with_large_deferred_queue():
    """Under AddressSanitizer freed memory sits in ASan's quarantine (256 MB by default), which
    would be counted as the daemon's RSS; the daemon runs with quarantine_size_mb=16 so that
    RSS measures what postern itself keeps (unless ASAN_OPTIONS already sets a quarantine)."""
    saved = os.environ.get("ASAN_OPTIONS")
    if "quarantine_size_mb" not in (saved or ""):
        os.environ["ASAN_OPTIONS"] = ((saved + ":") if saved else "") + "quarantine_size_mb=16"
    try:
        big_queue()
    finally:
        if saved is None:
            os.environ.pop("ASAN_OPTIONS", None)
        else:
            os.environ["ASAN_OPTIONS"] = saved


def big_queue():
    n = int(os.environ.get("BIG_QUEUE", "20000"))
    rss_limit = int(os.environ.get("BIG_QUEUE_RSS_MB", "100"))
    t0 = time.time()
    with Sink() as sk, Daemon(extra=dict(FAST, relayhost="[127.0.0.1]:%d" % sk.port,
                                         qmgr_message_active_limit="1000",
                                         default_destination_concurrency_limit="20",
                                         maximal_queue_lifetime="1h")) as d:
        if os.environ.get("BIG_QUEUE_NAGLE") != "1":
            nodelay(sk)
        spool = os.path.join(d.state, "spool", "deferred")
        now = time.time()
        base_us = int(now * 1e6) - n - 1000
        future = now + 3600
        paths = []
        for i, qid in enumerate(queue_ids(n, base_us)):
            h = os.path.join(spool, qid[-1])
            if not os.path.isdir(h):
                os.makedirs(h)
            content = ("Received: from client.test\r\nFrom: <s@client.test>\r\nSubject: big %d\r\n"
                       "Message-ID: <big-%d@client.test>\r\n\r\nbody %d\r\n" % (i, i, i)).encode()
            p = os.path.join(h, qid)
            write_queue_file(p, qid, base_us + i, "r%d@robots.test" % i, content)
            os.utime(p, (future, future))
            paths.append(p)
        t_written = time.time() - t0

        t1 = time.time()
        d.start()
        wait_for(lambda: "queue manager:" in d.logtext(), 20, "the queue manager's start line")
        t_start = time.time() - t1
        time.sleep(1.5)  # a scan or two of deferred/, nothing due
        idle = proc_status(d.proc.pid)
        assert sk.messages == [], "nothing is due yet"
        assert len(d.queue_files("deferred")) == n
        assert t_start < 10, "start-up took %.1fs with %d deferred messages" % (t_start, n)

        # make all of them due; the next deferred scan (queue_run_delay = 1s) picks them up
        past = time.time() - 10
        for p in paths:
            os.utime(p, (past, past))
        t2 = time.time()
        cpu0, mycpu0 = cpu_seconds(d.proc.pid), time.process_time()
        peak = dict(idle)
        deadline = t2 + max(60.0, n / 200.0)
        while len(sk.messages) < n and time.time() < deadline:
            time.sleep(0.5)
            st = proc_status(d.proc.pid)
            peak = {k: max(peak[k], st[k]) for k in st}
            if d.proc.poll() is not None:
                raise AssertionError("postern died:\n" + d.logtext()[-3000:])
        drained = time.time() - t2
        cpu, mycpu = cpu_seconds(d.proc.pid) - cpu0, time.process_time() - mycpu0
        got = len(sk.messages)
        print("     %d messages: written %.1fs, start-up %.2fs, idle RSS %d MB (HWM %d), drained %d in %.1fs "
              "= %.0f msg/s (CPU: postern %.1fs, test+sink %.1fs), peak RSS %d MB (HWM %d)"
              % (n, t_written, t_start, idle["VmRSS"], idle["VmHWM"], got, drained, got / max(drained, 0.001),
                 cpu, mycpu, peak["VmRSS"], peak["VmHWM"]), flush=True)
        assert got >= n, "only %d of %d drained in %.0fs" % (got, n, drained)
        ids = {msgid_of(m["data"]) for m in sk.messages}
        assert len(ids) == n, "%d distinct of %d delivered" % (len(ids), got)
        wait_empty(d, 30)
        assert idle["VmRSS"] < rss_limit, "idle RSS %d MB with %d deferred" % (idle["VmRSS"], n)
        assert peak["VmHWM"] < rss_limit, "peak RSS %d MB while draining %d" % (peak["VmHWM"], n)


if __name__ == "__main__":
    harness.run_tests(globals())
