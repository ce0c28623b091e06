#!/usr/bin/env python3
"""Sign a Clerk webhook payload exactly as Svix does, then print or send it.

Standard library only.  The signature is what Clerk's webhook provider puts
in the svix-signature header:

    v1,base64(HMAC-SHA256(key, "<svix-id>.<svix-timestamp>.<body>"))

where key is the base64-decoded part of the endpoint's signing secret after
"whsec_".  Use it to try clerk_handle_webhook() by hand, in tests, or
against your own HTTP endpoint.

Examples:

    export CLERK_WEBHOOK_SECRET=whsec_...          # the endpoint's secret
    # a user object wrapped in a user.updated event, as a psql statement
    test/send_webhook.py --type user.updated --sql user.json | psql -d app
    # an event body as is, POSTed to an endpoint that forwards to Postgres
    test/send_webhook.py --url http://localhost:3000/clerk-webhook event.json
    # only the three headers and the body, as JSON
    test/send_webhook.py --body '{"type":"session.created","data":{}}'

The secret comes from --secret-file or $CLERK_WEBHOOK_SECRET (not from the
command line, where other users could see it in a process listing).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request


def secret_key(secret):
    """The HMAC key of a Svix secret: 'whsec_' (optional) and standard base64."""
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    key = base64.b64decode(secret, validate=True)
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(secret, msg_id, timestamp, body):
    """The svix-signature header value for one delivery (body: str or bytes)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    content = b"%s.%d.%s" % (msg_id.encode("utf-8"), int(timestamp), body)
    mac = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def new_msg_id():
    """A message id shaped like Svix's (msg_ and 27 characters)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "msg_" + "".join(secrets.choice(alphabet) for _ in range(27))


def envelope(event_type, data, timestamp_ms=None):
    """A Clerk event around `data`, as Clerk sends it."""
    return {
        "data": data,
        "instance_id": "ins_test_fake_instance",
        "object": "event",
        "timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        "type": event_type,
    }


def delivery(secret, body, msg_id=None, timestamp=None):
    """The headers of one delivery of `body`, as a dict."""
    msg_id = msg_id or new_msg_id()
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(timestamp),
        "svix-signature": sign(secret, msg_id, timestamp, body),
    }


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def sql_call(headers, body):
    """A psql statement applying the delivery with clerk_handle_webhook()."""
    return "SELECT clerk_handle_webhook(%s, %s, %s, %s);" % (
        sql_literal(body), sql_literal(headers["svix-id"]),
        sql_literal(headers["svix-timestamp"]), sql_literal(headers["svix-signature"]))


def post(url, headers, body, timeout):
    req = urllib.request.Request(url, data=body.encode("utf-8"), method="POST",
                                 headers=dict(headers, **{"Content-Type": "application/json"}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Sign a Clerk webhook payload as Svix does, then print or send it.")
    ap.add_argument("payload", nargs="?", help="file with the JSON body ('-' for standard input)")
    ap.add_argument("--body", help="the body itself, instead of a file")
    ap.add_argument("--type", help="wrap the payload (one object) in a Clerk event of this type")
    ap.add_argument("--event-timestamp", type=int, help="the event's timestamp in Unix ms (with --type; default now)")
    ap.add_argument("--secret-file", help="file holding the signing secret (default: $CLERK_WEBHOOK_SECRET)")
    ap.add_argument("--id", help="svix-id (default: a new msg_ id)")
    ap.add_argument("--timestamp", type=int, help="svix-timestamp in Unix seconds (default: now)")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--sql", action="store_true", help="print a SELECT clerk_handle_webhook(...) statement")
    out.add_argument("--url", help="POST the delivery to this URL and print the answer")
    out.add_argument("--signature-only", action="store_true", help="print only the svix-signature value")
    ap.add_argument("--http-timeout", type=float, default=30, help="seconds, with --url")
    args = ap.parse_args(argv)

    if args.secret_file:
        with open(args.secret_file, encoding="utf-8") as f:
            secret = f.read().strip()
    else:
        secret = os.environ.get("CLERK_WEBHOOK_SECRET", "")
    if not secret:
        ap.error("no secret: set CLERK_WEBHOOK_SECRET or pass --secret-file")

    if args.body is not None:
        body = args.body
    elif args.payload in (None, "-"):
        body = sys.stdin.read()
    else:
        with open(args.payload, encoding="utf-8") as f:
            body = f.read()
    if args.type:
        body = json.dumps(envelope(args.type, json.loads(body), args.event_timestamp),
                          ensure_ascii=False, separators=(",", ":"))

    try:
        headers = delivery(secret, body, args.id, args.timestamp)
    except ValueError as e:
        ap.error("the secret is not a Svix signing secret (whsec_ and base64): %s" % e.__class__.__name__)

    if args.signature_only:
        print(headers["svix-signature"])
    elif args.sql:
        print(sql_call(headers, body))
    elif args.url:
        status, answer = post(args.url, headers, body, args.http_timeout)
        print(status, answer)
        return 0 if 200 <= status < 300 else 1
    else:
        print(json.dumps(dict(headers, body=body), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
