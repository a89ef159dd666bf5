"""Crash safety of the queue (DESIGN.md 3): SIGKILL the daemon under load, again and again.

The daemon says "250 2.0.0 Ok: queued as ID" only after the queue file was written under tmp/,
fsynced, renamed into incoming/H/ID and the directory synced. So after a SIGKILL at any moment
and a restart on the same state directory:

  - every message that got a 250 is in the queue exactly once, under the ID the client was told,
    with its envelope, headers and body intact;
  - no queue file is torn (each parses and its trailer matches its size), before and after the
    startup recovery, so corrupt/ stays empty;
  - startup leaves nothing in tmp/;
  - a message that did not get a 250 may be present or absent, but never half-visible;
  - a file that was valid before a crash is still there, unchanged, after the restart.

Load: Postfix's smtp-source for background pressure plus Python client threads that send
messages with unique content (a unique Message-ID and a random body) and record what each one
was told. A SIGKILL can only show ordering bugs (a 250 before the rename, a file written in
place, a recovery that loses or quarantines good files); the page cache survives the kill, so
a missing fsync would take a power cut to show.

Environment: CRASH_SEED (reproduce a run), CRASH_KILLS (default 16, at least 12 are done).
"""
import hashlib
import os
import random
import re
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, QueueFile  # noqa: E402

QUEUES = ("incoming", "active", "deferred", "hold")  # where a committed message may live
MIN_KILLS = 12
KILLS = max(MIN_KILLS, int(os.environ.get("CRASH_KILLS", "16")))
LOOP_BUDGET = 65.0  # seconds for the kill loop; the whole test stays near 90 s
CLIENTS = 4
MSGID_DOMAIN = "crash.postern.test"
QUEUED_AS = re.compile(rb"queued as ([0-9A-Z]+)")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def split_message(data):
    """(header block, body) of a wire-form message: the body starts after the first blank line."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no header/body separator"
    return head + b"\r\n", body


def strip_received(head):
    """The header block without its first field when that is the Received the daemon prepends."""
    lines = head.split(b"\r\n")
    if not lines[0].lower().startswith(b"received:"):
        return None
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def torn_detail(path):
    """Why a queue file does not parse, in words (harness.QueueFile only asserts)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"POSTERN-QUEUE 1\n"):
        return "%d bytes, no POSTERN-QUEUE magic" % len(data)
    head, sep, rest = data.partition(b"\ncontent\n")
    if not sep:
        return "%d bytes, envelope without a content line" % len(data)
    trailer = rest[-30:]
    if not trailer.startswith(b"\nPOSTERN-END "):
        return "%d bytes, %d of content, no POSTERN-END trailer (torn)" % (len(data), len(rest))
    return "%d bytes, trailer %r does not match %d bytes of content (torn)" % (
        len(data), trailer.strip().decode("ascii", "replace"), len(rest) - 30)


def first_message_id(head):
    m = re.search(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)", head)
    return m.group(1).decode() if m else None


class Msg:
    """One message a client tried to send, and what it was told."""

    def __init__(self, client, n, rng, token):
        self.mid = "<%s.c%d.%d@%s>" % (token, client, n, MSGID_DOMAIN)
        self.sender = "c%d@client.test" % client
        self.rcpt = "r%d.%d@robots.test" % (client, rng.randrange(1000))
        # Mostly a few KB; sometimes larger than the daemon's 64 KB write buffer, so a message
        # spans several write() calls and a kill can land between them.
        nlines = rng.randrange(1, 120) if rng.random() < 0.85 else rng.randrange(1200, 3000)
        lines = []
        for i in range(nlines):
            r = rng.random()
            if r < 0.03:
                lines.append(b"")  # empty lines inside the body
            elif r < 0.08:
                lines.append(b"." + rng.randbytes(20).hex().encode())  # dot-stuffing on the wire
            else:
                lines.append(rng.randbytes(rng.randrange(1, 38)).hex().encode())
        body = b"\r\n".join(lines) + b"\r\n"
        head = ("From: <%s>\r\nTo: <%s>\r\nSubject: crash test %s\r\nMessage-ID: %s\r\n"
                "X-Crash-Body-SHA256: %s\r\n" % (self.sender, self.rcpt, n, self.mid, sha(body)))
        self.data = head.encode() + b"\r\n" + body
        self.head_sha = sha(head.encode())
        self.body_sha = sha(body)
        self.size = len(self.data)
        self.state = "sending"  # then: acked, refused, unknown
        self.qid = None
        self.reply = None


class Client(threading.Thread):
    """Sends messages over reused connections while the gate is open; parks while it is shut."""

    def __init__(self, idx, port, gate, stop, ledger, lock, seed, token):
        super().__init__(name="crash-client-%d" % idx, daemon=True)
        self.idx, self.port, self.gate, self.stop = idx, port, gate, stop
        self.ledger, self.lock = ledger, lock
        self.rng = random.Random(seed)
        self.token = token
        self.n = 0
        self.parked = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                if not self.gate.is_set():
                    self.parked.set()
                    self.gate.wait(0.2)
                    continue
                self.parked.clear()
                if self.gate.is_set():
                    self.session()
        except Exception as e:  # a bug in the client itself, not a daemon failure
            self.error = repr(e)
        finally:
            self.parked.set()

    def session(self):
        try:
            smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        except (OSError, smtplib.SMTPException):
            time.sleep(0.01)  # the daemon is down or restarting
            return
        try:
            smtp.ehlo("client%d.test" % self.idx)
            for _ in range(self.rng.randrange(1, 8)):
                if not self.gate.is_set() or self.stop.is_set():
                    break
                if not self.send_one(smtp):
                    return
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            smtp.close()

    def send_one(self, smtp):
        """Sends one fresh message; returns False when the connection is no longer usable."""
        self.n += 1
        m = Msg(self.idx, self.n, self.rng, self.token)
        with self.lock:
            self.ledger.append(m)
        try:
            code, resp = smtp.mail(m.sender)
            if code != 250:
                m.state, m.reply = "refused", (code, resp)
                return False
            code, resp = smtp.rcpt(m.rcpt)
            if code not in (250, 251):
                m.state, m.reply = "refused", (code, resp)
                smtp.rset()
                return True
            code, resp = smtp.data(m.data)
        except (OSError, smtplib.SMTPException) as e:
            m.state, m.reply = "unknown", repr(e)
            return False
        m.reply = (code, resp)
        if code == 250:
            found = QUEUED_AS.search(resp)
            m.qid = found.group(1).decode() if found else None
            m.state = "acked"
        else:
            m.state = "refused"
        return True


class SpoolChecker:
    """Reads the whole spool and checks it against the clients' ledger. Parsed files are cached by
    (path, inode, size, mtime): queue files are immutable once committed."""

    def __init__(self, d, ledger, lock):
        self.d, self.ledger, self.lock = d, ledger, lock
        self.cache = {}
        self.known = {}  # queue ID -> sha256 of the content, for every valid file seen so far
        self.stats = {}

    def listdir(self, queue):
        root = os.path.join(self.d.state, "spool", queue)
        out = []
        if os.path.isdir(root):
            for h in sorted(os.listdir(root)):
                hdir = os.path.join(root, h)
                if os.path.isdir(hdir):
                    out.extend(os.path.join(hdir, name) for name in sorted(os.listdir(hdir)))
                else:
                    out.append(hdir)  # a stray file at the wrong level
        return out

    def parse(self, path):
        """Returns (info dict, None) or (None, why)."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None, "vanished while reading"
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        if key in self.cache:
            return self.cache[key]
        try:
            qf = QueueFile(path)
            head, body = split_message(qf.content)
            info = {"id": qf.id, "sender": qf.sender, "rcpts": qf.recipients,
                    "content_sha": qf.digest(), "body_sha": sha(body),
                    "head_sha": None, "mid": first_message_id(head)}
            rest = strip_received(head)
            if rest is not None:
                info["head_sha"] = sha(rest)
            result = (info, None)
        except Exception as e:  # torn, foreign or unparseable
            result = (None, "%s (%s)" % (torn_detail(path), type(e).__name__))
        self.cache[key] = result
        return result

    def check(self, phase, tmp_must_be_empty=True):
        """Returns a list of problems (empty when the spool is consistent with the ledger)."""
        problems = []
        tmp = self.listdir("tmp")
        corrupt = self.listdir("corrupt")
        if tmp_must_be_empty and tmp:
            problems.append("%d file(s) left in tmp/ after startup: %s" % (len(tmp), tmp[:5]))
        if corrupt:
            problems.append("%d file(s) in corrupt/ (torn or foreign): %s"
                            % (len(corrupt), [os.path.basename(p) for p in corrupt[:5]]))
        by_id, by_mid = {}, {}
        nfiles = 0
        for q in QUEUES:
            for path in self.listdir(q):
                nfiles += 1
                info, why = self.parse(path)
                name = os.path.basename(path)
                if info is None:
                    problems.append("torn/unparseable file %s/%s: %s" % (q, name, why))
                    continue
                if info["id"] != name or os.path.basename(os.path.dirname(path)) != name[-1:]:
                    problems.append("%s/%s carries id %s (wrong name or hash directory)"
                                    % (q, name, info["id"]))
                if info["id"] in by_id:
                    problems.append("queue ID %s is in the queue twice" % info["id"])
                by_id[info["id"]] = (q, path, info)
                if info["mid"] is not None and info["mid"].endswith("@%s>" % MSGID_DOMAIN):
                    by_mid.setdefault(info["mid"], []).append((q, path, info))
        # Nothing valid may be lost or changed by a crash and the recovery after it.
        for qid, digest in self.known.items():
            if qid not in by_id:
                problems.append("queue file %s, valid before, is gone" % qid)
            elif by_id[qid][2]["content_sha"] != digest:
                problems.append("queue file %s changed its content" % qid)
        for qid, (q, path, info) in by_id.items():
            self.known.setdefault(qid, info["content_sha"])
        tmp_ids = {os.path.basename(p) for p in tmp}

        with self.lock:
            ledger = list(self.ledger)
        acked = present_unacked = 0
        for m in ledger:
            hits = by_mid.pop(m.mid, [])
            if m.state == "acked":
                acked += 1
                if m.qid is None:
                    problems.append("%s: 250 without a queue ID: %r" % (m.mid, m.reply))
                    continue
                if not hits:
                    where = " (its file is still in tmp/: acknowledged before the rename?)" \
                        if m.qid in tmp_ids else ""
                    problems.append("acked message %s (queued as %s) is missing%s" % (m.mid, m.qid, where))
                    continue
                if len(hits) > 1:
                    problems.append("acked message %s is in the queue %d times: %s"
                                    % (m.mid, len(hits), [h[2]["id"] for h in hits]))
                if hits[0][2]["id"] != m.qid:
                    problems.append("acked message %s: client was told %s, queue has %s"
                                    % (m.mid, m.qid, [h[2]["id"] for h in hits]))
            elif hits:
                present_unacked += 1
                if len(hits) > 1:
                    problems.append("unacked message %s is in the queue %d times" % (m.mid, len(hits)))
            for q, path, info in hits:
                # Acked or not: a file that exists holds the whole message.
                if info["body_sha"] != m.body_sha:
                    problems.append("%s in %s/%s: body differs from what was sent (%s message)"
                                    % (m.mid, q, info["id"], m.state))
                if info["head_sha"] != m.head_sha:
                    problems.append("%s in %s/%s: header differs from what was sent"
                                    % (m.mid, q, info["id"]))
                if info["sender"] != m.sender or info["rcpts"] != [m.rcpt]:
                    problems.append("%s in %s/%s: envelope %r %r, sent %r %r"
                                    % (m.mid, q, info["id"], info["sender"], info["rcpts"],
                                       m.sender, [m.rcpt]))
        for mid, hits in by_mid.items():
            problems.append("queue holds %s, which no client sent" % mid)
        self.stats = {"phase": phase, "files": nfiles, "tmp": len(tmp), "acked": acked,
                      "present_unacked": present_unacked, "ledger": len(ledger)}
        return problems


def fail_if(problems, d, what):
    if problems:
        more = "" if len(problems) <= 25 else "\n  ... and %d more" % (len(problems) - 25)
        raise AssertionError("%s: %d problem(s):\n  %s%s\n---- daemon log (tail) ----\n%s"
                             % (what, len(problems), "\n  ".join(problems[:25]), more,
                                d.logtext()[-3000:]))


def start_load(d, cycle, log):
    """smtp-source as background pressure. It exits ("fatal: connect: Connection refused") once
    the daemon is gone, so it is started anew for every cycle and killed with the daemon."""
    tool, env = harness.postfix_tool("smtp-source")
    args = [tool, "-s", "10", "-m", "100000", "-l", "4096", "-f", "load@client.test",
            "-t", "load@robots.test"]
    if cycle % 2:
        args.append("-d")  # many messages per connection on odd cycles, one on even ones
    return subprocess.Popen(args + ["127.0.0.1:%d" % d.smtp_port], env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)


def stop_proc(p):
    if p is not None and p.poll() is None:
        p.kill()
    if p is not None:
        p.wait()


def park(clients, timeout=20):
    deadline = time.time() + timeout
    for c in clients:
        if not c.parked.wait(max(0.0, deadline - time.time())):
            raise AssertionError("client %s did not finish its session within %ss" % (c.name, timeout))


def test_sigkill_under_load_loses_no_acked_message():
    seed = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    token = "%x" % rng.randrange(1 << 40)
    print("crash test seed %d (CRASH_SEED=%d reproduces the schedule)" % (seed, seed), flush=True)
    start = time.time()
    ledger, lock = [], threading.Lock()
    gate, stop = threading.Event(), threading.Event()
    clients, load = [], None
    kills = tmp_removed = 0
    delays = []
    with Daemon(extra={"mynetworks": "127.0.0.0/8", "shutdown_timeout": "10s"}) as d:
        load_log = open(os.path.join(d.dir, "smtp-source.log"), "ab")
        checker = SpoolChecker(d, ledger, lock)
        try:
            d.start()
            for i in range(CLIENTS):
                c = Client(i, d.smtp_port, gate, stop, ledger, lock, rng.randrange(1 << 30), token)
                c.start()
                clients.append(c)
            for cycle in range(KILLS):
                if cycle >= MIN_KILLS and time.time() - start > LOOP_BUDGET:
                    break
                load = start_load(d, cycle, load_log)
                gate.set()
                delay = rng.uniform(0.2, 1.5)
                delays.append(delay)
                time.sleep(delay)
                if d.proc.poll() is not None:
                    raise AssertionError("postern died on its own (status %s) in cycle %d:\n%s"
                                         % (d.proc.returncode, cycle, d.logtext()[-4000:]))
                d.kill()  # SIGKILL: no cleanup, no drain
                kills += 1
                gate.clear()
                stop_proc(load)
                load = None
                park(clients)
                # Before the recovery: leftovers in tmp/ are expected, torn files in the queue
                # are not, and every acked message must already be in place.
                fail_if(checker.check("after kill %d" % kills, tmp_must_be_empty=False), d,
                        "after SIGKILL %d, before restart" % kills)
                leftovers = checker.stats["tmp"]
                tmp_removed += leftovers
                d.start()
                # The recovery runs before the listeners open, and nobody sends now.
                fail_if(checker.check("restart %d" % kills), d, "after restart %d" % kills)
                s = checker.stats
                print("  kill %2d after %.2fs: %5d queue files, %4d acked so far, %2d tmp/ leftovers "
                      "removed at startup" % (kills, delay, s["files"], s["acked"], leftovers), flush=True)
            # At the end: a graceful stop under load, then one more startup on the same state.
            load = start_load(d, 0, load_log)
            gate.set()
            time.sleep(0.5)
            rc = d.stop()
            gate.clear()
            stop_proc(load)
            load = None
            park(clients)
            assert rc == 0, "postern exited with %s on SIGTERM:\n%s" % (rc, d.logtext()[-3000:])
            fail_if(checker.check("after SIGTERM", tmp_must_be_empty=False), d, "after graceful stop")
            tmp_after_stop = checker.stats["tmp"]
            d.start()
            fail_if(checker.check("final"), d, "after the final restart")
            d.check_log_clean()
        finally:
            stop.set()
            gate.set()
            stop_proc(load)
            for c in clients:
                c.join(15)
            load_log.close()
        errors = [(c.name, c.error) for c in clients if c.error]
        assert not errors, "client threads failed: %r" % errors
        assert not [c for c in clients if c.is_alive()], "client threads did not stop"
        with lock:
            states, refusals = {}, {}
            for m in ledger:
                states[m.state] = states.get(m.state, 0) + 1
                if m.state == "refused":
                    refusals[m.reply[0]] = refusals.get(m.reply[0], 0) + 1
        s = checker.stats
        assert states.get("acked", 0) > 100, "too little load to mean anything: %r" % states
        print("crash test: %d kills (delays %.2f-%.2fs), %d messages sent by clients: %d acked, "
              "%d refused %r, %d interrupted (%d of the unacked found complete in the queue); "
              "%d queue files at the end (%d from smtp-source); %d tmp/ leftovers removed by "
              "recovery, %d left by the graceful stop; corrupt/ empty; %.1fs"
              % (kills, min(delays), max(delays), len(ledger), states.get("acked", 0),
                 states.get("refused", 0), refusals, states.get("unknown", 0), s["present_unacked"],
                 s["files"], s["files"] - s["acked"] - s["present_unacked"], tmp_removed,
                 tmp_after_stop, time.time() - start), flush=True)


harness.run_tests(globals())
