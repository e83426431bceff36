#!/usr/bin/env python3
"""A real SMTP server for Tend's tests (aiosmtpd).

Every accepted message is stored in FOLDER as NNNN.eml (the raw bytes) and NNNN.json
(what Python's own email parser makes of it: envelope, headers, decoded parts), so the
Rust tests check the message as an independent implementation reads it.

Chosen recipients or message contents can be refused with a chosen reply, to exercise
the sender's error classification:

    smtp_sink.py --port 0 --folder /tmp/mail \
        --rcpt 'bounce@example.com=550 5.1.1 User unknown' \
        --data 'REJECT-ME=554 5.7.1 Message content rejected' \
        --auth user:password

TLS, with a certificate and key in PEM files: `--tls implicit` speaks TLS from the
first byte (smtps), `--tls starttls` offers STARTTLS and refuses mail and AUTH without it:

    smtp_sink.py ... --tls starttls --tls-cert server.pem --tls-key server.key

The first line on stdout is `port N`, the port it is bound to (`--port 0` lets the
system choose one nobody holds). With `--listen-on-stdin`, it holds the port bound but
refuses connections until a line arrives on stdin, then prints `listening` (an SMTP
outage that ends on cue, on a port nobody else can take meanwhile).

A slow server, for crash and shutdown tests: `--delay-ms 40` holds the reply to each
message for 40 ms after the message is stored, so a client killed meanwhile has had its
message delivered without knowing it (the case that makes at-least-once duplicates).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import socket
import ssl
import sys
import warnings

# AUTH without TLS is deliberate here (a loopback test server); keep the output quiet.
warnings.simplefilter("ignore")

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    sys.exit("aiosmtpd is missing: pip install aiosmtpd standardwebhooks")


def pairs(values):
    result = {}
    for value in values or []:
        key, sep, reply = value.partition("=")
        if not sep:
            sys.exit(f"expected KEY=REPLY, got {value!r}")
        result[key.lower()] = reply
    return result


class Handler:
    def __init__(self, folder, rcpt_replies, data_replies, delay):
        self.folder = folder
        self.rcpt_replies = rcpt_replies
        self.data_replies = data_replies
        self.delay = delay
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        for needle, reply in self.data_replies.items():
            if needle.encode().lower() in content.lower():
                return reply
        # One asyncio loop: no two handlers run this block at once.
        number = self.count
        self.count += 1
        message = email.message_from_bytes(content, policy=email.policy.default)
        headers = {}
        for name, value in message.items():
            headers.setdefault(name.lower(), []).append(str(value))
        parts = [
            {"content_type": part.get_content_type(), "content": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content_type": message.get_content_type(),
            "headers": headers,
            "parts": parts,
        }
        base = os.path.join(self.folder, f"{number:04}")
        write_atomically(base + ".eml", content)
        write_atomically(base + ".json", json.dumps(summary, indent=2).encode())
        if self.delay:
            # Other connections are served meanwhile: slow, not serial.
            await asyncio.sleep(self.delay)
        return "250 2.0.0 Message accepted"


def write_atomically(path, data):
    # The test may be polling the folder: it must never see half a file.
    temp = path + ".tmp"
    with open(temp, "wb") as file:
        file.write(data)
    os.replace(temp, path)


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        # handled=False makes aiosmtpd answer the failure (535) itself.
        return AuthResult(success=ok, handled=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--rcpt", action="append", help="ADDRESS=REPLY")
    parser.add_argument("--data", action="append", help="NEEDLE=REPLY")
    parser.add_argument("--auth", help="USER:PASSWORD required before MAIL")
    parser.add_argument(
        "--delay-ms",
        type=int,
        default=0,
        help="hold each 250 reply to DATA this long after storing the message",
    )
    parser.add_argument(
        "--listen-on-stdin",
        action="store_true",
        help="refuse connections until a line arrives on stdin",
    )
    parser.add_argument("--tls", choices=["implicit", "starttls"])
    parser.add_argument("--tls-cert", help="PEM certificate chain for --tls")
    parser.add_argument("--tls-key", help="PEM private key for --tls")
    args = parser.parse_args()
    if args.delay_ms < 0:
        sys.exit("--delay-ms must not be negative")
    if args.tls and not (args.tls_cert and args.tls_key):
        sys.exit("--tls needs --tls-cert and --tls-key")
    os.makedirs(args.folder, exist_ok=True)

    handler = Handler(
        args.folder, pairs(args.rcpt), pairs(args.data), args.delay_ms / 1000
    )
    options = {"enable_SMTPUTF8": True, "hostname": "sink.test"}
    if args.auth:
        user, _, password = args.auth.partition(":")
        options.update(
            authenticator=Authenticator(user, password),
            auth_required=True,
            # Over STARTTLS, prove that AUTH waits for the upgrade. aiosmtpd does not
            # count implicit TLS as TLS here, so that mode must not ask.
            auth_require_tls=args.tls == "starttls",
        )
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)

    # Bound, not yet listening: connections are refused until create_server listens.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", args.port))
    print(f"port {sock.getsockname()[1]}", flush=True)
    if args.listen_on_stdin:
        sys.stdin.readline()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, **options),
            sock=sock,
            ssl=context if args.tls == "implicit" else None,
        )
    )
    print("listening", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
