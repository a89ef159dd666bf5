"""Test harness for postern e2e tests: starts the real daemon as a process on loopback ports
with its own state directory, and reads its spool. Standard library only."""
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SOURCE = os.environ.get("POSTERN_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.environ.get("POSTERN_BIN", os.path.join(SOURCE, "build/asan/postern"))
POSTFIX = os.path.join(SOURCE, ".deps/postfix/usr")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postfix_tool(name):
    """Path and environment for Postfix's smtp-source/smtp-sink unpacked by scripts/bootstrap."""
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(POSTFIX, "lib/postfix"))
    return os.path.join(POSTFIX, "sbin", name), env


def make_cert(directory, name="localhost"):
    """Self-signed certificate and key for STARTTLS tests."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + name, "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Daemon:
    """One postern daemon with its own directory. Use as a context manager."""

    def __init__(self, extra=None, tls=False, lmtp_unix=True):
        self.dir = tempfile.mkdtemp(prefix="postern-e2e-")
        self.state = os.path.join(self.dir, "var")
        self.smtp_port = free_port()
        self.lmtp_port = free_port()
        self.lmtp_sock = os.path.join(self.dir, "lmtp.sock")
        self.conf_path = os.path.join(self.dir, "postern.conf")
        self.log_path = os.path.join(self.dir, "postern.log")
        self.proc = None
        lmtp = "127.0.0.1:%d" % self.lmtp_port + (", unix:" + self.lmtp_sock if lmtp_unix else "")
        self.settings = {
            "state_dir": self.state,
            "hostname": "mx.postern.test",
            "smtp_listen": "127.0.0.1:%d" % self.smtp_port,
            "lmtp_listen": lmtp,
            "relay_domains": "robots.test, *.sub.test",
            "mynetworks": "10.255.255.0/24",  # loopback is NOT trusted unless a test says so
            "disk_reserve": "0",
            "pickup_interval": "1s",
            # intake tests read the spool: delivery stays off unless a test turns it on
            "delivery_paused": "yes",
        }
        if tls:
            self.cert, self.key = make_cert(self.dir)
            self.settings["tls_cert_file"] = self.cert
            self.settings["tls_key_file"] = self.key
        self.settings.update(extra or {})
        self.write_config()

    def write_config(self):
        with open(self.conf_path, "w") as f:
            for k, v in self.settings.items():
                f.write("%s = %s\n" % (k, v))

    def env(self):
        return dict(os.environ, POSTERN_CONFIG=self.conf_path)

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "serve", "-c", self.conf_path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_port(self.smtp_port)
        return self

    def wait_port(self, port, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postern exited with %s:\n%s" % (self.proc.returncode, self.logtext()))
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("postern did not listen on %d:\n%s" % (port, self.logtext()))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the daemon; returns its exit status. A sanitizer report fails the test."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("postern did not stop within %ss:\n%s" % (timeout, self.logtext()[-3000:]))
        self.log.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_log_clean(self):
        text = self.logtext()
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "panic"):
            assert bad not in text, "sanitizer/panic report in the daemon log:\n" + text[-4000:]

    def queue_files(self, queue="incoming"):
        root = os.path.join(self.state, "spool", queue)
        out = []
        if not os.path.isdir(root):
            return out
        for h in sorted(os.listdir(root)):
            for name in sorted(os.listdir(os.path.join(root, h))):
                out.append(os.path.join(root, h, name))
        return out

    def messages(self, queue="incoming"):
        return [QueueFile(p) for p in self.queue_files(queue)]

    def wait_messages(self, n, queue="incoming", timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            msgs = self.messages(queue)
            if len(msgs) >= n:
                return msgs
            time.sleep(0.05)
        raise AssertionError("expected %d messages in %s, have %d" % (n, queue, len(self.messages(queue))))

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None and self.proc is not None and self.proc.poll() is None:
                rc = self.stop()
                self.check_log_clean()
                assert rc == 0, "postern exited with %s:\n%s" % (rc, self.logtext()[-3000:])
            elif exc[0] is not None and self.proc is not None:
                sys.stderr.write("---- postern log ----\n" + self.logtext()[-6000:] + "\n")
        finally:
            self.cleanup()


class QueueFile:
    """A parsed queue file: envelope records, recipients and content bytes."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        head, sep, rest = data.partition(b"\ncontent\n")
        assert sep, "no content section in " + path
        lines = head.decode().split("\n")
        assert lines[0] == "POSTERN-QUEUE 1", path
        self.records = {}
        self.rcpts = []
        for line in lines[1:]:
            key, _, value = line.partition(" ")
            if key == "rcpt":
                state, notify, orcpt, addr = value.split(" ", 3)
                self.rcpts.append({"state": state, "notify": int(notify, 16),
                                   "orcpt": None if orcpt == "-" else orcpt, "address": addr})
            else:
                self.records[key] = value
        trailer = rest[-30:]
        assert trailer.startswith(b"\nPOSTERN-END "), path
        size = int(trailer[13:29], 16)
        self.content = rest[:-30]
        assert len(self.content) == size, path
        self.id = self.records["id"]
        self.sender = self.records.get("sender")

    @property
    def recipients(self):
        return [r["address"] for r in self.rcpts]

    def header(self, name):
        head = self.content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        out = []
        for line in head.split("\r\n"):
            if line[:1] in (" ", "\t") and out:
                out[-1] += line
            else:
                out.append(line)
        return [l.split(":", 1)[1].strip() for l in out if l.lower().startswith(name.lower() + ":")]

    def body(self):
        return self.content.split(b"\r\n\r\n", 1)[1]

    def digest(self):
        return hashlib.sha256(self.content).hexdigest()


class Raw:
    """A raw SMTP client over a socket, for sessions smtplib refuses to send."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def reply(self):
        """Reads one (possibly multi-line) reply; returns (code, [lines])."""
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                return int(l[:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self, timeout=10):
        """True when the server closes the connection (after any pending data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def run_tests(module_globals):
    """Runs every test_* function of the calling module, prints a summary line, exits 1 on failure."""
    tests = [(n, f) for n, f in sorted(module_globals.items()) if n.startswith("test_") and callable(f)]
    only = os.environ.get("ONLY")
    tests = [(n, f) for n, f in tests if not only or only in n]
    failed = 0
    for name, fn in tests:
        start = time.time()
        try:
            fn()
            print("ok   %-50s %.2fs" % (name, time.time() - start), flush=True)
        except Exception:
            failed += 1
            import traceback
            print("FAIL %s" % name, flush=True)
            traceback.print_exc()
    passed = len(tests) - failed
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
