"""A private Postfix instance for e2e tests: the Debian package unpacked by scripts/bootstrap into
.deps/postfix, with its own configuration, queue and log in a temporary directory, smtpd on a
loopback port, started with "postfix start-fg" and stopped at the end; no system service is
touched. Needs root (Postfix's master) and the postfix/postdrop accounts, which are created as
system accounts when missing (as bench/intake does). Use as a context manager."""
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import harness

ROOT = os.path.join(harness.POSTFIX, "..")
SBIN = os.path.join(harness.POSTFIX, "sbin")
LIB = os.path.join(harness.POSTFIX, "lib", "postfix")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LD_LIBRARY_PATH": LIB}
SERVICES = ["pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr", "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce", "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce", "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush", "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp", "relay unix - - n - - smtp", "showq unix n - n - - showq",
            "error unix - - n - - error", "retry unix - - n - - error",
            "discard unix - - n - - discard", "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil", "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd"]


def ensure_accounts():
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        subprocess.run(["groupadd", "--system", "postdrop"], check=True)
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                        "/nonexistent", "--shell", "/usr/sbin/nologin", "postfix"], check=True)


class Postfix:
    def __init__(self, settings):
        assert os.geteuid() == 0, "a private Postfix master needs root"
        ensure_accounts()
        self.dir = tempfile.mkdtemp(prefix="postern-postfix-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "etc")
        self.log = os.path.join(self.dir, "maillog")
        self.port = harness.free_port()
        os.makedirs(self.conf)
        os.makedirs(os.path.join(self.dir, "queue"), mode=0o755)
        main = {
            "compatibility_level": "3.6", "queue_directory": os.path.join(self.dir, "queue"),
            "data_directory": os.path.join(self.dir, "data"), "command_directory": SBIN,
            "daemon_directory": os.path.join(LIB, "sbin"), "shlib_directory": LIB,
            "meta_directory": os.path.join(ROOT, "etc", "postfix"),
            "mail_owner": "postfix", "setgid_group": "postdrop",
            "myhostname": "mx.postfix.test", "mydestination": "", "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4", "mynetworks": "127.0.0.0/8", "alias_maps": "",
            "alias_database": "", "local_recipient_maps": "", "biff": "no",
            "smtp_tls_security_level": "none", "lmtp_tls_security_level": "none",
            "import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH",
            "export_environment": "TZ MAIL_CONFIG LANG LD_LIBRARY_PATH",
            "maillog_file": self.log, "maillog_file_prefixes": self.dir,
            "queue_run_delay": "1s", "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
        }
        main.update(settings)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("".join("%s = %s\n" % kv for kv in main.items()))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd\n" % self.port)
            f.write("".join(s + "\n" for s in SERVICES))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([os.path.join(SBIN, "postfix"), "-c", self.conf, "start-fg"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=ENV, cwd=self.dir,
                                     start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                import socket
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("postfix exited: %s" % self.logtext())
            time.sleep(0.1)
        raise AssertionError("postfix did not greet")

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        subprocess.run([os.path.join(SBIN, "postfix"), "-c", self.conf, "stop"], env=ENV,
                       capture_output=True, timeout=30)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
