#!/usr/bin/env python3
"""A webhook receiver for Tend's tests that verifies Standard Webhooks signatures
with the `standardwebhooks` reference library.

Routes (POST):
    /verify          204 if the signature verifies, 400 if not
    /status/CODE     answers CODE without verifying
    /slow/MS         waits MS milliseconds, then 204
    /big/CODE        answers CODE with a 1 MiB body
    /redirect        302 to /verify

Each request is appended to RECORD as a JSON line: path, verified (or null), headers,
body, status.

The first line on stdout is `port N`, the port it listens on (`--port 0` lets the
system choose one nobody holds).

    webhook_receiver.py --port 0 --secret whsec_... --record /tmp/requests.jsonl [--tls-cert C --tls-key K]
"""

import argparse
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
except ImportError:
    sys.exit("standardwebhooks is missing: pip install aiosmtpd standardwebhooks")

LOCK = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        verified = None
        extra = b""
        location = None
        path = self.path
        if path == "/verify":
            try:
                Webhook(self.server.secret).verify(body, headers)
                verified, status = True, 204
            except WebhookVerificationError:
                verified, status = False, 400
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        elif path.startswith("/slow/"):
            time.sleep(int(path.rsplit("/", 1)[1]) / 1000)
            status = 204
        elif path.startswith("/big/"):
            status = int(path.rsplit("/", 1)[1])
            extra = b"x" * (1024 * 1024)
        elif path == "/redirect":
            status, location = 302, "/verify"
        else:
            status = 404
        self.record(path, verified, headers, body, status)
        try:
            self.send_response(status)
            if location:
                self.send_header("location", location)
            self.send_header("content-length", str(len(extra)))
            self.end_headers()
            self.wfile.write(extra)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as a timeout test expects

    def record(self, path, verified, headers, body, status):
        line = json.dumps(
            {
                "path": path,
                "verified": verified,
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
                "status": status,
            }
        )
        with LOCK, open(self.server.record, "a") as file:
            file.write(line + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    server.daemon_threads = True
    server.secret = args.secret
    server.record = args.record
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
