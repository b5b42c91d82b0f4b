#!/usr/bin/python3
"""Test webhook receiver: appends each POSTed body, with the request path as "_path", as one JSON
line to /var/lib/webhook-sink/received.jsonl (readable by root only: a path may be a secret)."""
import http.server
import json


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open("/var/lib/webhook-sink/received.jsonl", "a") as out:
            out.write(json.dumps(dict(body, _path=self.path)) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", 5001), Sink).serve_forever()
