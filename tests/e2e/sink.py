"""A scriptable SMTP/LMTP peer for delivery tests (standard library only). Replies depend on
the recipient's local part: "defer..." gets 450 4.2.1 at RCPT, "bounce..." 550 5.1.1, and
everything else 250; `tempfail` set to True answers every RCPT 451 4.3.0 (a peer in trouble).
Every transaction is recorded with its envelope, parameters and content."""
import socket
import socketserver
import threading


class _Handler(socketserver.StreamRequestHandler):
    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        # Replies to pipelined commands go out one by one: without this each would wait for
        # the client's delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.server.peer
        peer.connections += 1
        self.send("220 sink.test ESMTP test peer")
        tx = None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                self.send("250-sink.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250-8BITMIME\r\n"
                          + ("250-SMTPUTF8\r\n250 DSN" if peer.dsn else "250 SMTPUTF8"))
            elif verb == "HELO":
                self.send("250 sink.test")
            elif verb == "MAIL":
                tx = {"mail": cmd, "rcpts": [], "accepted": [], "data": None}
                self.send("250 2.1.0 ok")
            elif verb == "RCPT":
                tx["rcpts"].append(cmd)
                addr = cmd.split("<", 1)[1].split(">", 1)[0]
                local = addr.split("@")[0]
                if peer.tempfail:
                    self.send("451 4.3.0 <%s> try again later" % addr)
                elif local.startswith("defer"):
                    self.send("450 4.2.1 <%s> mailbox busy" % addr)
                elif local.startswith("bounce"):
                    self.send("550 5.1.1 <%s> no such user here" % addr)
                else:
                    tx["accepted"].append(addr)
                    self.send("250 2.1.5 ok")
            elif verb == "DATA":
                if not tx or not tx["accepted"]:
                    self.send("554 5.5.1 no valid recipients")
                    continue
                self.send("354 go ahead")
                data = b""
                while True:
                    l = self.rfile.readline()
                    if not l:
                        return  # cut off before the final dot: nothing was delivered
                    if l == b".\r\n":
                        break
                    data += l[1:] if l.startswith(b".") else l
                tx["data"] = data
                with peer.lock:
                    peer.messages.append(tx)
                n = len(tx["accepted"]) if peer.lmtp else 1
                for _ in range(n):
                    self.send("250 2.0.0 ok: stored")
                tx = None
            elif verb == "RSET":
                tx = None
                self.send("250 2.0.0 ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 bye")
                return
            else:
                self.send("502 5.5.1 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Sink:
    def __init__(self, lmtp=False, dsn=True, host="127.0.0.1", port=0, handler=_Handler):
        self.lmtp = lmtp
        self.dsn = dsn
        self.tempfail = False
        self.messages = []
        self.connections = 0
        self.lock = threading.Lock()
        self.server = _Server((host, port), handler)
        self.server.peer = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, n, timeout=20):
        import time
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError("sink: expected %d messages, got %d" % (n, len(self.messages)))
