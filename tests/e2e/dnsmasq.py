"""A private dnsmasq for tests: answers only the records it is given, on 127.0.0.1 and a port of its
own, so MX delivery can be tested without touching the machine's resolver. Standard library only.

    with Dnsmasq(mx={"robots.test": [(10, "mx1.robots.test")]},
                 hosts={"mx1.robots.test": ["127.0.0.1", "::1"]},
                 null_mx=["nomail.test"]) as dns:
        daemon settings: dns_servers = dns.servers   # "127.0.0.1:<port>"

Every name under a `local` domain (default "test") that has no record gets NXDOMAIN from dnsmasq
itself; names outside them get REFUSED (dnsmasq has no upstream), which resolvers treat as a
temporary failure.
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time

DNSMASQ = "/usr/sbin/dnsmasq"
QTYPES = {"A": 1, "MX": 15, "AAAA": 28}


def available():
    return os.access(DNSMASQ, os.X_OK)


def _free_udp_port():
    """A port free for both UDP and TCP on 127.0.0.1: dnsmasq listens on both, and the TCP
    side is where the other tests' connections take ports."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for dnsmasq")


def _encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def query(port, name, qtype="A", timeout=1.0):
    """Sends one UDP query to 127.0.0.1:port; returns (rcode, answer count), or None on timeout."""
    qid = random.randrange(65536)
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    packet += _encode_name(name) + struct.pack("!HH", QTYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            reply = s.recv(4096)
        except socket.timeout:
            return None
    rid, flags, _, ancount = struct.unpack("!HHHH", reply[:8])
    if rid != qid:
        return None
    return flags & 0xF, ancount


class Dnsmasq:
    """One dnsmasq process. mx: {domain: [(preference, host), ...]}; hosts: {name: [address, ...]}
    (IPv4 and IPv6 mixed); null_mx: domains with the RFC 7505 record "MX 0 ."; local: domains
    dnsmasq answers for alone; extra: further dnsmasq.conf lines. Use as a context manager."""

    def __init__(self, mx=None, hosts=None, null_mx=(), local=("test",), extra=()):
        self.mx = dict(mx or {})
        self.hosts = dict(hosts or {})
        self.null_mx = list(null_mx)
        self.local = list(local)
        self.extra = list(extra)
        self.port = None
        self.proc = None
        self.dir = None

    @property
    def servers(self):
        """The value for a resolver's server list: "127.0.0.1:<port>"."""
        return "127.0.0.1:%d" % self.port

    def config_lines(self):
        lines = ["port=%d" % self.port, "listen-address=127.0.0.1", "bind-interfaces",
                 "no-resolv", "no-hosts", "no-poll", "user=root", "log-facility=-"]
        lines += ["local=/%s/" % d for d in self.local]
        for domain, records in self.mx.items():
            lines += ["mx-host=%s,%s,%d" % (domain, host, pref) for pref, host in records]
        # dnsmasq's mx-host cannot name the root as target, so the null MX is written as raw
        # RDATA: preference 0 (two zero bytes) and the root name (one zero byte).
        lines += ["dns-rr=%s,15,000000" % d for d in self.null_mx]
        for name, addrs in self.hosts.items():
            lines += ["host-record=%s,%s" % (name, a) for a in addrs]
        return lines + self.extra

    def start(self, timeout=5.0, attempts=3):
        """Starts dnsmasq; a port taken between choosing it and dnsmasq's bind (a parallel
        test's connection) means another try on another port."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == attempts - 1:
                    raise
                self.stop()

    def _start(self, timeout):
        if not available():
            raise RuntimeError(DNSMASQ + " is missing (scripts/bootstrap installs dnsmasq-base)")
        self.dir = tempfile.mkdtemp(prefix="postern-dnsmasq-")
        self.port = _free_udp_port()
        conf = os.path.join(self.dir, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write("\n".join(self.config_lines()) + "\n")
        self.log = open(os.path.join(self.dir, "dnsmasq.log"), "wb")
        self.proc = subprocess.Popen([DNSMASQ, "--keep-in-foreground", "--conf-file=" + conf,
                                      "--pid-file=" + os.path.join(self.dir, "dnsmasq.pid")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited with %d: %s"
                                   % (self.proc.returncode, self.log_text()))
            if query(self.port, "ready.invalid", timeout=0.2) is not None:
                return
        self.stop()
        raise RuntimeError("dnsmasq did not answer within %.1fs" % timeout)

    def log_text(self):
        with open(os.path.join(self.dir, "dnsmasq.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # Self-check: python3 tests/e2e/dnsmasq.py
    with Dnsmasq(mx={"robots.test": [(10, "mx1.robots.test")]},
                 hosts={"mx1.robots.test": ["127.0.0.1", "::1"]}, null_mx=["nomail.test"]) as d:
        checks = [("robots.test", "MX", (0, 1)), ("nomail.test", "MX", (0, 1)),
                  ("mx1.robots.test", "A", (0, 1)), ("mx1.robots.test", "AAAA", (0, 1)),
                  ("mx1.robots.test", "MX", (0, 0)), ("nope.test", "A", (3, 0))]
        for name, qtype, want in checks:
            got = query(d.port, name, qtype)
            assert got == want, (name, qtype, got, want)
        print("dnsmasq on %s: ok" % d.servers)
