#!/usr/bin/env python3
"""Verifies the DKIM signature of the message on stdin with dkimpy, an independent
implementation, answering DNS from the command line instead of the network.

Usage: dkim_verify.py NAME TXT   (NAME: <selector>._domainkey.<domain>, TXT: its record)

Prints `pass` or `fail: <dkimpy's reason>`; exits 0 either way, 2 on bad usage.
"""

import logging
import sys

import dkim


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    name, record = sys.argv[1], sys.argv[2]

    def dnsfunc(query, timeout=5):
        # dkimpy asks with a trailing dot on some versions.
        if query.decode().rstrip(".") == name:
            return record.encode()
        return None

    message = sys.stdin.buffer.read()
    log = logging.getLogger("dkim")
    reasons = []

    class Collect(logging.Handler):
        def emit(self, record):
            reasons.append(record.getMessage())

    log.addHandler(Collect())
    log.setLevel(logging.DEBUG)
    try:
        ok = dkim.verify(message, logger=log, dnsfunc=dnsfunc)
    except dkim.DKIMException as error:
        ok = False
        reasons.append(str(error))
    print("pass" if ok else "fail: " + "; ".join(reasons[-3:]))


if __name__ == "__main__":
    main()
