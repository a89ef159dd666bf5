"""A scripted SMTP/LMTP server for testing postern's SMTP/LMTP client: it answers each command
from a JSON script, including the failures a real server seldom produces on demand (mixed
per-recipient results, LMTP per-recipient final replies, slow replies, dropped connections,
broken TLS), and records exactly what it received. Standard library only.

    python3 peer.py SCRIPT.json LOGDIR

It prints "READY <port>" (0 for a unix socket) once it listens, then serves until killed.

Script keys, all optional:
  listen    "127.0.0.1:0" (default) or "[::1]:0"; port 0 picks a free one
  unix      a socket path to listen on instead
  lmtp      true: LMTP replies to the final dot, one per accepted recipient by default
  name      the host name in the greeting and EHLO reply ("peer.test")
  ehlo      the EHLO keywords after the first line (default: PIPELINING, SIZE 10240000,
            8BITMIME, SMTPUTF8, DSN, ENHANCEDSTATUSCODES); STARTTLS is added while `tls` is
            set and the session is not yet encrypted
  tls       {"cert": PATH, "key": PATH} to offer STARTTLS
  replies   {COMMAND: REPLY-OR-SEQUENCE}; COMMAND is CONNECT (the greeting), EHLO, LHLO, HELO,
            STARTTLS, MAIL, RCPT, DATA, DOT (the end of the content), RSET, NOOP or QUIT.

A REPLY is a string ("250 2.1.0 Ok"; "\\n" separates the lines of a multi-line reply, sent as
written) or a list of actions done in order: reply strings, "!close" (drop the connection),
"!sleep SECONDS", "!tls-garbage" (after a 220 to STARTTLS: junk instead of a handshake). A
SEQUENCE is a list of REPLYs, one per occurrence of the command counted over all connections;
the last one repeats. So "RCPT": ["250 2.1.5 Ok", "450 4.2.0 Busy", "550 5.1.1 No"] answers three
recipients differently, and for LMTP "DOT": [["250 2.1.5 a", "452 4.2.2 b"]] gives the per-recipient
replies of one message.

LOGDIR/log gets one line per event, flushed at once, before the reply is sent:
  N connect ADDR        N tls          N close
  N cmd BATCH LINE      (BATCH counts the recv() calls of connection N; commands sent in one
                         write, as PIPELINING does, share a batch)
  N reply LINE          (the first line of each reply sent)
  N data FILE           (FILE in LOGDIR holds the raw bytes after 354, final ".\\r\\n" included)
"""
import json
import os
import socket
import ssl
import sys
import threading
import time

DEFAULT_EHLO = ["PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES"]


class Closed(Exception):
    """The connection ends (by the script or the client)."""


class Peer:
    def __init__(self, conf, logdir):
        self.conf = conf
        self.logdir = logdir
        self.replies = conf.get("replies", {})
        self.counts = {}
        self.messages = 0
        self.lock = threading.Lock()
        self.logf = open(os.path.join(logdir, "log"), "a", encoding="utf-8", errors="surrogateescape")

    def log(self, line):
        with self.lock:
            self.logf.write(line + "\n")
            self.logf.flush()

    def reply_for(self, key, default):
        """The REPLY for this occurrence of the command."""
        value = self.replies.get(key, default)
        with self.lock:
            n = self.counts.get(key, 0)
            self.counts[key] = n + 1
        if isinstance(value, list) and value:
            value = value[min(n, len(value) - 1)]
        return value

    def save_message(self, raw):
        with self.lock:
            self.messages += 1
            name = "msg-%d.raw" % self.messages
        with open(os.path.join(self.logdir, name), "wb") as f:
            f.write(raw)
        return name


class Session:
    def __init__(self, peer, sock, num, addr):
        self.peer = peer
        self.sock = sock
        self.num = num
        self.addr = addr
        self.buf = b""
        self.base = 0        # absolute offset of buf[0] in the connection's input
        self.marks = []      # (absolute end offset of a recv, its batch number)
        self.batch = 0
        self.tls = False
        self.accepted = 0

    def log(self, what):
        self.peer.log("%d %s" % (self.num, what))

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed("client closed")
        self.batch += 1
        self.buf += data
        self.marks.append((self.base + len(self.buf), self.batch))

    def consume(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        self.base += n
        self.marks = [m for m in self.marks if m[0] > self.base]
        return out

    def readline(self):
        while b"\n" not in self.buf:
            self.fill()
        end = self.base + self.buf.index(b"\n") + 1
        batch = next(b for e, b in self.marks if e >= end)
        line = self.consume(end - self.base)
        return line.rstrip(b"\r\n").decode("utf-8", "surrogateescape"), batch

    def read_content(self):
        while True:
            if self.buf.startswith(b".\r\n"):
                return self.consume(3)
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                return self.consume(i + 5)
            self.fill()

    def send_reply(self, text):
        lines = text.split("\n")
        self.log("reply " + lines[0])
        self.sock.sendall("".join(l + "\r\n" for l in lines).encode("utf-8", "surrogateescape"))
        return int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0

    def act(self, key, default):
        """Performs the script's REPLY for key; returns the code of the last reply sent."""
        actions = self.peer.reply_for(key, default)
        if isinstance(actions, str):
            actions = [actions]
        code = 0
        for a in actions:
            if a == "!close":
                raise Closed("closed by script")
            elif a.startswith("!sleep "):
                time.sleep(float(a.split()[1]))
            elif a == "!tls-garbage":
                self.sock.sendall(b"HTTP/1.0 400 this is not TLS\r\n\r\n")
                raise Closed("tls garbage")
            else:
                code = self.send_reply(a)
        return code

    def ehlo_lines(self):
        keywords = list(self.peer.conf.get("ehlo", DEFAULT_EHLO))
        if self.peer.conf.get("tls") and not self.tls:
            keywords.append("STARTTLS")
        name = self.peer.conf.get("name", "peer.test")
        lines = [name] + keywords
        return "\n".join("250%s%s" % ("-" if i < len(lines) - 1 else " ", l) for i, l in enumerate(lines))

    def start_tls(self):
        tls = self.peer.conf["tls"]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls["cert"], tls["key"])
        self.consume(len(self.buf))  # plaintext pipelined after STARTTLS is not to be trusted
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.tls = True
        self.log("tls")

    def cmd_ehlo(self, verb):
        self.act(verb, self.ehlo_lines())

    def cmd_starttls(self):
        if not self.peer.conf.get("tls") or self.tls:
            self.act("STARTTLS", "502 5.5.1 Error: command not implemented")
        elif self.act("STARTTLS", "220 2.0.0 Ready to start TLS") == 220:
            self.start_tls()

    def cmd_rcpt(self):
        if self.act("RCPT", "250 2.1.5 Ok") // 100 == 2:
            self.accepted += 1

    def cmd_data(self):
        if self.act("DATA", "354 End data with <CR><LF>.<CR><LF>") != 354:
            return
        self.log("data " + self.peer.save_message(self.read_content()))
        if self.peer.conf.get("lmtp"):
            default = ["250 2.1.5 Ok"] * max(self.accepted, 1)
        else:
            default = "250 2.0.0 Ok: queued"
        self.act("DOT", [default])
        self.accepted = 0

    def command(self, line):
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "LHLO"):
            self.cmd_ehlo(verb)
        elif verb == "HELO":
            self.act("HELO", "250 " + self.peer.conf.get("name", "peer.test"))
        elif verb == "STARTTLS":
            self.cmd_starttls()
        elif verb == "MAIL":
            self.accepted = 0
            self.act("MAIL", "250 2.1.0 Ok")
        elif verb == "RCPT":
            self.cmd_rcpt()
        elif verb == "DATA":
            self.cmd_data()
        elif verb == "RSET":
            self.accepted = 0
            self.act("RSET", "250 2.0.0 Ok")
        elif verb == "NOOP":
            self.act("NOOP", "250 2.0.0 Ok")
        elif verb == "QUIT":
            self.act("QUIT", "221 2.0.0 Bye")
            raise Closed("quit")
        else:
            self.send_reply("502 5.5.2 Error: command not recognized")

    def run(self):
        self.log("connect " + self.addr)
        try:
            self.act("CONNECT", "220 %s ESMTP peer" % self.peer.conf.get("name", "peer.test"))
            while True:
                line, batch = self.readline()
                self.log("cmd %d %s" % (batch, line))
                self.command(line)
        except (Closed, OSError, ssl.SSLError):
            pass
        finally:
            self.log("close")
            try:
                self.sock.close()
            except OSError:
                pass


def listen(conf):
    if conf.get("unix"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(conf["unix"]):
            os.unlink(conf["unix"])
        s.bind(conf["unix"])
        s.listen(64)
        return s, 0
    host, port = conf.get("listen", "127.0.0.1:0").rsplit(":", 1)
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host.strip("[]"), int(port)))
    s.listen(64)
    return s, s.getsockname()[1]


def main():
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    peer = Peer(conf, sys.argv[2])
    server, port = listen(conf)
    print("READY %d" % port, flush=True)
    num = 0
    while True:
        sock, addr = server.accept()
        num += 1
        name = addr[0] if isinstance(addr, tuple) else "unix"
        threading.Thread(target=Session(peer, sock, num, name).run, daemon=True).start()


if __name__ == "__main__":
    main()
