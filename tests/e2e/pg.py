"""A private PostgreSQL cluster for e2e tests: initdb and postgres from the Debian package
(installed by scripts/bootstrap), a unix socket in a temporary directory, no TCP port, run as
"nobody" when the tests run as root (the server refuses root). Use as a context manager."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


class Postgres:
    def __init__(self):
        if not os.access(os.path.join(PG_BIN, "postgres"), os.X_OK):
            raise AssertionError("PostgreSQL 15 server missing in %s (scripts/bootstrap installs postgresql-15)" % PG_BIN)
        self.dir = tempfile.mkdtemp(prefix="postern-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.proc = None
        self.user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)

    def _demote(self):
        if self.user is not None:
            os.setgroups([])
            os.setgid(self.user.pw_gid)
            os.setuid(self.user.pw_uid)

    def _run(self, argv):
        return subprocess.run(argv, preexec_fn=self._demote, capture_output=True, text=True,
                              timeout=60, cwd=self.dir)

    def spec(self, db="postern"):
        return "postgresql://postern@/%s?host=%s&connect_timeout=2" % (db, self.dir)

    def start(self):
        if not os.path.isdir(self.data):
            r = self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postern", "-A", "trust",
                           "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"])
            assert r.returncode == 0, r.stdout + r.stderr
        log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-k", self.dir, "-c", "listen_addresses=",
             "-c", "fsync=off", "-c", "full_page_writes=off"],
            preexec_fn=self._demote, stdout=log, stderr=log, cwd=self.dir)
        log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("postgres exited: %s" % open(os.path.join(self.dir, "server.log")).read())
            if self._run([os.path.join(PG_BIN, "pg_isready"), "-h", self.dir, "-U", "postern"]).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("postgres did not start")
        r = self._run([os.path.join(PG_BIN, "psql"), "-h", self.dir, "-U", "postern", "-d", "postgres", "-Atc",
                       "SELECT 1 FROM pg_database WHERE datname='postern'"])
        if r.stdout.strip() != "1":
            r = self._run([os.path.join(PG_BIN, "createdb"), "-h", self.dir, "-U", "postern", "postern"])
            assert r.returncode == 0, r.stderr

    def stop(self):
        """An immediate shutdown, as when the database server dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
