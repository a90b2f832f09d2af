#!/usr/bin/env python3
# Stand-in Converse endpoint that records what the facade sends, so the load
# script can replay the exact same request directly against the emulator.
#
#   python3 bench/capture_converse.py PORT OUTDIR
#
# Every POST /model/{modelId}/converse is saved as OUTDIR/N.path (the raw
# request path, model id still URL-encoded as the SDK sent it) and
# OUTDIR/N.json (the body), N counting from 1, and answered with a minimal
# Converse response. Used by bench/load.sh only; stops when killed.
import http.server
import os
import sys

PORT = int(sys.argv[1])
OUTDIR = sys.argv[2]
ANSWER = (b'{"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},'
          b'"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,'
          b'"totalTokens":2},"metrics":{"latencyMs":1}}')


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Handler.count += 1
        base = os.path.join(OUTDIR, str(Handler.count))
        with open(base + ".path", "w") as f:
            f.write(self.path)
        with open(base + ".json", "wb") as f:
            f.write(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
