#!/usr/bin/python3
"""Scripted webhook receiver for test_webhook_agent: python3 webhook_server.py SECRET OUTDIR.
Listens on 127.0.0.1 (a free port), prints "READY <port>" and serves POSTs by path:
  /ok     verifies X-Postern-Signature itself, records the body to OUTDIR/ok-<n>.json and the
          verdict to OUTDIR/sig-<n>; 200 when the signature holds, 401 otherwise
  /fail   500          /bad   400 with a body holding a control character
  /slow   sleeps 3 s   /limit 429
  /conc   sleeps 0.3 s, 200; OUTDIR/conc-max holds the most requests seen at once
"""
import hashlib
import hmac
import http.server
import os
import sys
import threading
import time

SECRET = sys.argv[1].encode()
OUTDIR = sys.argv[2]
lock = threading.Lock()
state = {"ok": 0, "active": 0, "max": 0}


def verify(headers, body):
    ts = headers.get("X-Postern-Timestamp", "")
    sig = headers.get("X-Postern-Signature", "")
    want = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return ts.isdigit() and abs(time.time() - int(ts)) < 300 and hmac.compare_digest(sig, want)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body=b"ok"):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_ok(self, body):
        good = verify(self.headers, body) and self.headers.get("Content-Type") == "application/json"
        with lock:
            state["ok"] += 1
            n = state["ok"]
        with open(os.path.join(OUTDIR, "ok-%d.json" % n), "wb") as f:
            f.write(body)
        with open(os.path.join(OUTDIR, "sig-%d" % n), "w") as f:
            f.write("good\n" if good else "bad\n")
        self.reply(200 if good else 401)

    def do_conc(self):
        with lock:
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
            with open(os.path.join(OUTDIR, "conc-max"), "w") as f:
                f.write("%d\n" % state["max"])
        time.sleep(0.3)
        with lock:
            state["active"] -= 1
        self.reply(200)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            if self.path == "/ok":
                self.do_ok(body)
            elif self.path == "/fail":
                self.reply(500, b"oops")
            elif self.path == "/bad":
                self.reply(400, b"missing field\x01 \"to\"\r\nsecond line")
            elif self.path == "/slow":
                time.sleep(3)
                self.reply(200)
            elif self.path == "/limit":
                self.reply(429, b"slow down")
            elif self.path == "/conc":
                self.do_conc()
            else:
                self.reply(404, b"no such hook")
        except (BrokenPipeError, ConnectionResetError):
            pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("READY %d" % server.server_address[1], flush=True)
server.serve_forever()
