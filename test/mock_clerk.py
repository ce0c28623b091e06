#!/usr/bin/env python3
"""Mock of the Clerk Backend API for tests: users, organizations, memberships,
organization invitations and domains, instance invitations, organization
roles and permissions, sessions, billing (plans, prices, subscription items,
statements and their payment attempts) and waitlist entries.

Standard library only.  Serves the read endpoints a sync client needs under
/v1, with Clerk's response shapes, pagination rules, error bodies, bearer
authentication and rate limiting, and the write endpoints of users,
organizations, memberships and invitations (with their validation, per-object
rate limits and webhook events), plus a control API under /__mock/ that tests
use to mutate data, inject faults (also answers lost after a write was
applied) and see which writes were applied.  See test/README.md.

Data is generated lazily and deterministically from (seed, index): nothing is
materialised at start-up, and only objects created, changed or deleted
through the control API are stored.  That keeps start-up instant and page
serving fast with hundreds of thousands of objects.
"""

import argparse
import base64
import bisect
import copy
import datetime
import functools
import gc
import hashlib
import heapq
import hmac
import json
import math
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import unicodedata
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MAX_LIMIT = 500
DEFAULT_LIMIT = 10
MAX_FILTER_VALUES = 100
EVENT_LOG_MAX = 20_000
INSTANCE_ID = "ins_2mockinstance"
REQUEST_LOG_MAX = 200_000
HANG_MAX_SECONDS = 600

# Generated timestamps lie in [BASE_TS, BASE_TS + SPAN_MS): 2022-01-01 + ~2 years.
BASE_TS = 1_640_995_200_000
SPAN_MS = 2 * 365 * 24 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000
# Objects that belong to users or organizations (invitations, domains,
# sessions, custom roles and permissions) are generated in the year after
# that: [CHILD_TS, CHILD_TS + CHILD_SPAN_MS), so each comes after its parent.
CHILD_TS = BASE_TS + SPAN_MS
CHILD_SPAN_MS = 365 * DAY_MS


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------
# Deterministic hashing and identifiers
# ---------------------------------------------------------------------------

M64 = (1 << 64) - 1


def mix64(x):
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def h(*parts):
    x = 0x2545F4914F6CDD1D
    for p in parts:
        x = mix64(x ^ (p & M64))
    return x


B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
B62_INDEX = {c: i for i, c in enumerate(B62)}


def b62(n, width):
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(B62[r])
    return "".join(reversed(out))


def unb62(s):
    n = 0
    for c in s:
        v = B62_INDEX.get(c)
        if v is None:
            return None
        n = n * 62 + v
    return n


# Hash tags, one per kind of generated value.
T_USER, T_UCORE, T_ORG, T_MEM, T_IDN, T_EAC, T_LAYOUT, T_IDCODEC, T_BANNED, T_TIME = range(1, 11)
# Tags of the kinds added later (own values, so that the streams above are unchanged).
T_ORGINV, T_INV, T_DOM, T_ROLE, T_PERM, T_SESS, T_CLIENT = range(40, 47)
# Time streams: _times(tag) reads tag_seed[T_TIME + tag]; users/orgs/memberships use 1..3.
TT_ORGINV, TT_INV, TT_DOM, TT_ROLE, TT_PERM, TT_SESS = range(4, 10)
# Billing and the waitlist (own tags again: nothing above changes).
T_BITEM, T_STMT, T_PAY, T_WAIT, T_PLAN, T_PRICE = range(47, 53)
TT_WAIT = 10


class IdCodec:
    """Clerk-looking ids (prefix + 27 base62 chars) that encode an index.

    The last 9 characters hold a seed-scrambled, invertible image of the
    index; the rest is hash noise.  decode() re-encodes to verify, so random
    strings never map to an object.
    """

    BITS = 48
    MASK = (1 << BITS) - 1
    MULT = 0x5DEECE66D  # odd, hence invertible modulo 2**48
    INV = pow(MULT, -1, 1 << BITS)

    def __init__(self, prefix, seed, tag):
        self.prefix = prefix
        self.seed = seed
        self.tag = tag
        self.xor = h(seed, T_IDCODEC, tag) & self.MASK

    def encode(self, idx):
        x = ((idx * self.MULT) & self.MASK) ^ self.xor
        return self.prefix + "2" + noise62(17, self.seed, self.tag, idx) + b62(x, 9)

    def decode(self, s):
        if not isinstance(s, str) or not s.startswith(self.prefix) or len(s) != len(self.prefix) + 27:
            return None
        x = unb62(s[-9:])
        if x is None or x > self.MASK:
            return None
        idx = ((x ^ self.xor) * self.INV) & self.MASK
        return idx if self.encode(idx) == s else None


B62_BYTES = bytes(ord(B62[i % 62]) for i in range(256))


def noise62(width, *parts):
    """`width` deterministic base62-looking characters derived from parts."""
    key = ":".join(map(str, parts)).encode()
    return hashlib.blake2b(key, digest_size=width).digest().translate(B62_BYTES).decode("ascii")


def side_id(prefix, seed, *parts):
    """Deterministic id for nested objects (emails, phones, accounts)."""
    return prefix + "2" + noise62(26, seed, *parts)


# ---------------------------------------------------------------------------
# Vocabulary for generated data
# ---------------------------------------------------------------------------

FIRST_ASCII = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra",
    "Priya", "Wei", "Aisha", "Omar", "Hiroshi", "Ingrid", "Lars", "Fatima", "Kwame", "Mei",
]
FIRST_INTL = [
    "Zoë", "José", "Łukasz", "Søren", "François", "Björk", "Chloé", "Mikołaj", "Ünal", "Ñuño",
    "Renée", "Jürgen", "Olga", "Олег", "Αλέξανδρος", "太郎", "東京", "Nguyễn", "Siobhán", "Ærø",
    "Sam 🚀", "🦄", "O'Neil", "Zoë-Ann",
]
LAST_ASCII = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Walker", "Patel", "Kim", "Chen", "Singh", "Okafor", "Larsen", "Smith-Jones",
    "van der Berg", "McDonald",
]
LAST_INTL = [
    "Müller", "García", "Kowalski", "O'Connor", "Núñez", "Dvořák", "Størmer", "Çelik", "Łęcki",
    "山田", "東京", "Иванов", "Παπαδόπουλος", "Ó Briain", "Weiß", "da Silva 🎉",
]
EMAIL_DOMAINS = ["example.com", "example.org", "mail.example.net", "acme.test", "corp.example"]
ORG_WORDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne",
    "Soylent", "Vandelay", "Wonka", "Aperture", "Massive", "Oceanic", "Pied Piper", "Monarch",
]
ORG_SUFFIX = ["Corp", "Inc", "Labs", "GmbH", "Ltd", "Group", "Studio", "Partners", "Co", "LLC"]
ORG_INTL = [
    "Café Zürich", "Łódź Software", "東京 Labs", "Zoë's Bakery", "🚀 Rocket Club", "Ñandú S.A.",
    "Ørsted & Søn", "Crème Brûlée Ltd", "Москва Tech", "Αθήνα Design", "\"Quoted\" Co",
]
ROLES = {
    "org:admin": ("Admin", [
        "org:sys_profile:manage", "org:sys_profile:delete", "org:sys_memberships:read",
        "org:sys_memberships:manage", "org:sys_domains:read", "org:sys_domains:manage",
    ]),
    "org:member": ("Member", ["org:sys_memberships:read"]),
    "org:billing_manager": ("Billing Manager", ["org:sys_memberships:read", "org:billing:manage"]),
}
# Permissions every instance has (type "system"), then the custom one the
# billing manager role above uses; generated custom permissions follow.
BASE_PERMISSIONS = [
    ("org:sys_profile:manage", "Manage organization", "Permission to manage an organization.", "system"),
    ("org:sys_profile:delete", "Delete organization", "Permission to delete an organization.", "system"),
    ("org:sys_memberships:read", "Read members", "Permission to read the members of an organization.", "system"),
    ("org:sys_memberships:manage", "Manage members", "Permission to manage the members of an organization.",
     "system"),
    ("org:sys_domains:read", "Read domains", "Permission to read the domains of an organization.", "system"),
    ("org:sys_domains:manage", "Manage domains", "Permission to manage the domains of an organization.", "system"),
    ("org:billing:manage", "Manage billing", "Can manage the organization's subscription and invoices.", "user"),
]
PERM_FEATURES = ["posts", "reports", "projects", "invoices", "teams", "settings", "audit_logs"]
PERM_ACTIONS = ["read", "create", "manage", "delete"]
# The roles of ROLES, in this order, are the instance's first roles.
BASE_ROLES = [
    ("org:admin", "Offers full access to organization resources", True),
    ("org:member", "Offers read access to organization resources", False),
    ("org:billing_manager", "Can manage the organization's billing", False),
]
CUSTOM_ROLE_NAMES = ["Editor", "Viewer", "Support Agent", "Auditor", "Content Manager", "Développeur", "Gérant",
                     "東京 Team Lead", "Guest 🚀"]
ORGINV_STATUSES = ("pending", "accepted", "revoked", "expired")
INVITATION_STATUSES = ("pending", "accepted", "revoked", "expired")
# GET /sessions?status= takes every status but "pending" (the spec's enum)
SESSION_STATUS_FILTER = ("abandoned", "active", "ended", "expired", "removed", "replaced", "revoked")
ENROLLMENT_MODES = ("manual_invitation", "automatic_invitation", "automatic_suggestion", "enterprise_sso")
BROWSERS = [("desktop", False, "Chrome", "128.0.0.0"), ("desktop", False, "Firefox", "131.0"),
            ("desktop", False, "Safari", "17.6"), ("iPhone", True, "Safari", "17.5"),
            ("Android", True, "Chrome Mobile", "127.0.6533.103"), ("desktop", False, "Edge", "128.0.2739.42")]
PLACES = [("San Francisco", "US"), ("Berlin", "DE"), ("São Paulo", "BR"), ("東京", "JP"), ("Zürich", "CH"),
          ("Lagos", "NG"), ("Kraków", "PL")]
OAUTH_PROVIDERS = ["google", "github", "microsoft"]
SCOPES = {
    "google": "email https://www.googleapis.com/auth/userinfo.email "
              "https://www.googleapis.com/auth/userinfo.profile openid profile",
    "github": "read:user user:email",
    "microsoft": "email offline_access openid profile User.Read",
}


# Billing.  The generated plans, in creation order (GET /billing/plans lists
# the last one first): slug, name, payer type, default?, monthly fee and
# monthly fee when billed annually (cents), features, free trial days, description.
PLAN_SPECS = [
    ("free_user", "Free", "user", True, 0, 0, ["basic"], None, "Everything a person needs to get started."),
    ("pro_user", "Pro", "user", False, 2000, 1800, ["basic", "reports", "sso"], None,
     'For power users: "reports", SSO & more \u2014 Z\u00fcrich/\u6771\u4eac ready \U0001F680'),
    ("free_org", "Free (Teams)", "org", True, 0, 0, ["basic"], None, None),
    ("pro", "Pro Teams \u2014 \u00c9quipe \U0001F680", "org", False, 9900, 8250, ["basic", "reports", "sso"], 30,
     "For teams.\nBilled per organization; <b>not</b> per seat."),
]
# Features: slug -> (name, description, has an avatar)
FEATURES = {
    "basic": ("Basic", "Core features", False),
    "reports": ("Reports & exports", "Monthly reports, exportable to CSV \u2014 \"as is\"", True),
    "sso": ("Single sign-on (SAML/OIDC)", None, True),
}
# Generated subscription items, in blocks of 12: (payer type, paid plan?,
# status, same payer (and subscription) as the item before, plan period, what else)
ITEM_PATTERN = [
    ("user", False, "active", False, "month", ""),
    ("user", True, "active", False, "month", ""),
    ("org", False, "active", False, "month", ""),
    ("org", True, "active", False, "month", "custom_price"),
    ("user", True, "canceled", False, "month", ""),
    ("user", False, "upcoming", True, "month", ""),       # the free plan once the canceled one ends
    ("org", True, "past_due", False, "month", ""),
    ("user", True, "ended", False, "month", ""),
    ("user", False, "active", True, "month", "after_ended"),
    ("org", True, "active", False, "month", "trial"),
    ("user", True, "abandoned", False, "month", ""),      # superseded before it started by ...
    ("user", True, "active", True, "annual", ""),         # ... the annual one
]
# Items that statements (and their payment attempts) are about
BILLED_STATUSES = ("active", "canceled", "past_due", "ended")
ITEM_STATUSES = ("active", "canceled", "expired", "ended", "past_due", "upcoming", "incomplete", "abandoned")
# GET /billing/subscription_items?status= (free_trial: is_free_trial items)
ITEM_STATUS_FILTER = ("active", "ended", "past_due", "upcoming", "free_trial")
# The subscriptionItem.<x> event a new status sends (anything else: subscriptionItem.updated)
ITEM_STATUS_EVENT = {"active": "active", "canceled": "canceled", "ended": "ended", "past_due": "pastDue",
                     "upcoming": "upcoming", "abandoned": "abandoned", "incomplete": "incomplete"}
# Timestamps a status change fills in when the change does not give them
ITEM_STATUS_TIME = {"canceled": "canceled_at", "past_due": "past_due_at", "ended": "ended_at"}
PAYMENT_STATUS_TIME = {"paid": "paid_at", "failed": "failed_at"}
PAYMENT_STATUSES = ("pending", "paid", "failed")
SUBSCRIPTION_EVENTS = ("subscription.created", "subscription.updated", "subscription.active", "subscription.pastDue")
CARDS = [("visa", "4242"), ("mastercard", "4444"), ("amex", "0005"), ("discover", "1117")]
PAYER_TYPES = ("user", "org")
# What a control API create body names its payer by (billing subscription items and statements)
PAYER_FIELDS = ("payer_user_id", "payer_organization_id", "payer_id", "payer")
WAITLIST_STATUSES = ("pending", "invited", "completed", "rejected")
# Status of generated waitlist entry i: WAITLIST_PATTERN[i % 6]
WAITLIST_PATTERN = ("pending", "invited", "completed", "rejected", "pending", "invited")
# Money fields given as a bare integer (cents) through the control API become money objects.
MONEY_FIELDS = {"plans": ("fee", "annual_monthly_fee", "annual_fee"), "prices": ("fee", "annual_monthly_fee"),
                "bitems": ("lifetime_paid",), "payatts": ("amount",)}


def money(amount, currency="USD", symbol="$"):
    """A CommerceMoneyResponse for an amount in cents."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return {"amount": amount, "amount_formatted": str(amount), "currency": currency, "currency_symbol": symbol}
    sign = "-" if amount < 0 else ""
    return {"amount": amount, "amount_formatted": f"{sign}{symbol}{abs(amount) // 100}.{abs(amount) % 100:02d}",
            "currency": currency, "currency_symbol": symbol}


def money_amount(m, default=None):
    """The amount (cents) of a money object, or default."""
    if isinstance(m, dict):
        return int_or(m.get("amount"), default)
    return int_or(m, default)


def month_start(ms):
    dt = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return int(datetime.datetime(dt.year, dt.month, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000)


def add_months(ms, k):
    """ms shifted by k calendar months (the day clamped to 28)."""
    dt = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    y, m = divmod(dt.month - 1 + k, 12)
    out = dt.replace(year=dt.year + y, month=m + 1, day=min(dt.day, 28))
    return int(out.timestamp() * 1000)


@functools.lru_cache(maxsize=4096)
def ascii_fold(s):
    """Lower-case ASCII letters/digits of s ('Zoë' -> 'zoe'), '' if none."""
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s.lower() if c.isascii() and c.isalnum())


def ascii_fold_keep(s):
    """s lower-cased with accents stripped, other non-ASCII dropped, spaces kept."""
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s.lower() if c.isascii())


def slugify(s):
    s = unicodedata.normalize("NFKD", s).lower()
    out, dash = [], False
    for c in s:
        if unicodedata.combining(c):
            continue  # accents stripped by NFKD: 'ü' -> 'u' + U+0308
        if c.isascii() and c.isalnum():
            out.append(c)
            dash = False
        elif not dash and out:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


def image_url_for(kind, obj_id, has_image, seed, idx):
    if has_image:
        return "https://img.clerk.com/" + noise62(22, seed, kind, idx)
    blob = json.dumps({"type": "default", "iid": "ins_2mockinstance", "rid": obj_id}, separators=(",", ":"))
    return "https://img.clerk.com/" + base64.urlsafe_b64encode(blob.encode()).decode().rstrip("=")


def role_info(role):
    """Name and permission keys guessed from a role key alone: the fallback for
    a role key that matches no role of the instance (Store.role_view is what
    memberships and invitations show)."""
    if isinstance(role, str) and role in ROLES:
        return ROLES[role]
    name = role.split(":", 1)[-1].replace("_", " ").title() if isinstance(role, str) else str(role)
    return name, ["org:sys_memberships:read"]


def deep_merge(base, patch):
    """Return base updated with patch: dicts merge recursively, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def pick_count(r, cum_weights):
    """Index drawn from cumulative weights (a cheaper random.choices)."""
    x = r.random() * cum_weights[-1]
    for n, c in enumerate(cum_weights):
        if x < c:
            return n
    return len(cum_weights) - 1


def int_or(v, default):
    return v if isinstance(v, int) and not isinstance(v, bool) else default


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class ApiError(Exception):
    """A Clerk-style error response."""

    def __init__(self, status, code, message, long_message, meta=None, headers=None, more=()):
        super().__init__(long_message)
        self.status = status
        self.code = code
        self.message = message
        self.long_message = long_message
        self.meta = meta
        self.headers = headers or {}
        self.more = list(more)  # further errors of the same answer: (code, message, long_message, meta)


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def clerk_error_body(code, message, long_message, meta=None, more=()):
    errs = []
    for c, m, lm, mt in [(code, message, long_message, meta)] + list(more):
        err = {"message": m, "long_message": lm, "code": c}
        if mt:
            err["meta"] = mt
        errs.append(err)
    return {"errors": errs, "clerk_trace_id": uuid.uuid4().hex}


def not_found(long_message):
    return ApiError(404, "resource_not_found", "not found", long_message)


def param_invalid(name, long_message):
    return ApiError(422, "form_param_value_invalid", "is invalid", long_message, {"param_name": name})


# config endpoint_errors: which family a route belongs to, and what a 403 says
# for it (Clerk's error catalogue: organizations disabled, domains disabled,
# custom roles and permissions not in the plan).
ROUTE_FAMILY = {
    "users/count": "users", "users/{id}": "users", "users/{id}/organization_memberships": "users",
    "organizations/{id}": "organizations", "organizations/{id}/memberships": "organizations",
    "organizations/{id}/invitations": "organization_invitations",
    "organizations/{id}/domains": "organization_domains",
    "organization_roles/{id}": "organization_roles", "organization_permissions/{id}": "organization_permissions",
    "sessions/{id}": "sessions",
    "billing/plans": "billing", "billing/prices": "billing", "billing/subscription_items": "billing",
    "billing/statements": "billing", "billing/statements/{id}": "billing",
    "billing/statements/{id}/payment_attempts": "billing",
    # the write endpoints' routes (POST /organizations and /invitations are their own families)
    "users/{id}/metadata": "users", "users/{id}/ban": "users", "users/{id}/unban": "users",
    "users/{id}/lock": "users", "users/{id}/unlock": "users", "organizations/{id}/metadata": "organizations",
    "organizations/{id}/memberships/{user_id}": "organizations",
    "organizations/{id}/memberships/{user_id}/metadata": "organizations",
    "organizations/{id}/invitations/{invitation_id}": "organization_invitations",
    "organizations/{id}/invitations/{invitation_id}/revoke": "organization_invitations",
    "invitations/{id}/revoke": "invitations",
}
_ORGS_OFF = ("organization_not_enabled_in_instance", "access denied",
             "The organizations feature is not enabled for this instance. You can enable it at https://dashboard.clerk.com.")
FEATURE_ERRORS = {
    "organizations": _ORGS_OFF,
    "organization_memberships": _ORGS_OFF,
    "organization_invitations": _ORGS_OFF,
    "organization_domains": ("organization_domains_not_enabled", "organization domains not enabled",
                             "This instance does not have domains enabled for organizations."),
    "organization_roles": ("feature_not_enabled", "not enabled", "This feature is not enabled on this instance"),
    "organization_permissions": ("feature_not_enabled", "not enabled", "This feature is not enabled on this instance"),
    "billing": ("billing_not_enabled", "access denied",
                "The billing feature is not enabled for this instance. "
                "You can enable it at https://dashboard.clerk.com."),
}

# Default error identity per HTTP status, for injected "status" faults.
STATUS_ERRORS = {
    400: ("request_invalid", "Invalid request", "The request was invalid."),
    401: ("authentication_invalid", "Invalid authentication",
          "Unable to authenticate the request, you need to supply an active session"),
    403: ("authorization_invalid", "Unauthorized request", "You are not authorized to perform this request"),
    404: ("resource_not_found", "not found", "Resource not found"),
    422: ("form_param_value_invalid", "is invalid", "The request parameters are invalid."),
    429: ("too_many_requests", "Too many requests", "Too many requests, retry later"),
    500: ("internal_clerk_error", "Oops, an unexpected error occurred",
          "There was an internal error on our servers. We've been notified and are working on fixing it."),
}


# ---------------------------------------------------------------------------
# The data store
# ---------------------------------------------------------------------------

# Generated sizes of the kinds beyond users/organizations/memberships
# (CLI --organization-invitations etc., POST /__mock/reset keys).
DEFAULT_SIZES = {
    "organization_invitations": 10,  # spread over the organizations
    "organization_domains": 3,       # spread over the organizations
    "invitations": 8,                # instance invitations
    "sessions": 50,                  # spread over the users
    "custom_roles": 1,               # besides org:admin, org:member, org:billing_manager
    "custom_permissions": 2,         # besides the 6 system ones and org:billing:manage
    # Billing and the waitlist: fixed small numbers, not proportional to the users.
    "billing_plans": 4,              # free_user, pro_user, free_org, pro (then more paid plans)
    "billing_custom_prices": 1,      # besides one default price per plan
    "billing_subscription_items": 12,  # payers: some generated users and organizations
    "billing_statements": 6,         # each with 1 to 3 payment attempts
    "waitlist_entries": 6,
}

class Kind:
    """Per-collection override state: created, patched and deleted objects."""

    def __init__(self, n_base, codec):
        self.n_base = n_base
        self.next_index = n_base
        self.codec = codec
        self.over = {}          # index -> stored object (patched base or created)
        self.deleted = set()    # indices
        self.custom_ids = {}    # id -> index, for objects created with a chosen id
        self.custom_by_idx = {}  # index -> id

    def key(self, idx):
        return self.custom_by_idx.get(idx) or self.codec.encode(idx)

    def index_of(self, obj_id):
        idx = self.custom_ids.get(obj_id)
        if idx is None:
            idx = self.codec.decode(obj_id)
            if idx is not None and (idx >= self.next_index or idx in self.custom_by_idx):
                idx = None
        return idx

    def live(self, idx):
        return idx is not None and 0 <= idx < self.next_index and idx not in self.deleted

    def live_count(self):
        return self.next_index - len(self.deleted)


class Spread:
    """Deterministic assignment of N generated children to P generated
    parents: how many each parent has, and a bijection between child index
    and (parent, k-th child) slot, so index order (creation order) is not
    parent order.  Built on first use: nothing is computed at start-up."""

    def __init__(self, seed, tag, P, N):
        r = random.Random(h(seed, T_LAYOUT, tag))
        self.N = N
        counts = [0] * P
        if N and P:
            weights = [0.2 + r.random() for _ in range(P)]
            total = sum(weights)
            counts = [int(N * w / total) for w in weights]
            for _ in range(N - sum(counts)):
                counts[r.randrange(P)] += 1
        self.counts = counts
        self.starts = []
        acc = 0
        for c in counts:
            self.starts.append(acc)
            acc += c
        self.a, self.b, self.inv = 1, 0, 1
        if N > 1:
            a = r.randrange(1, N)
            while math.gcd(a, N) != 1:
                a = r.randrange(1, N)
            self.a, self.b, self.inv = a, r.randrange(N), pow(a, -1, N)

    def parent(self, i):
        slot = (self.a * i + self.b) % self.N
        return bisect.bisect_right(self.starts, slot) - 1

    def children(self, p):
        if p >= len(self.counts):
            return []
        st = self.starts[p]
        return sorted(((st + k - self.b) * self.inv) % self.N for k in range(self.counts[p]))


class Children:
    """Links between a Kind and its parent Kind (organization or user):
    generated children through a Spread, created ones through a map."""

    def __init__(self, kind, parent, seed, tag):
        self.kind, self.parent_kind, self.seed, self.tag = kind, parent, seed, tag
        self._spread = None
        self.links = {}      # created child index -> parent index
        self.by_parent = {}  # parent index -> [created child indices]

    def spread(self):
        if self._spread is None:
            self._spread = Spread(self.seed, self.tag, self.parent_kind.n_base, self.kind.n_base)
        return self._spread

    def parent(self, i):
        if i >= self.kind.n_base:
            return self.links[i]
        return self.spread().parent(i)

    def add(self, i, p):
        self.links[i] = p
        self.by_parent.setdefault(p, []).append(i)

    def of_parent(self, p):
        """Live children of parent p, in creation order."""
        out = self.spread().children(p) if (p < self.parent_kind.n_base and self.kind.n_base) else []
        out += self.by_parent.get(p, [])
        d = self.kind.deleted
        return sorted(i for i in out if i not in d)


class Store:
    """All mock data.  Guarded by self.lock; stored objects are never mutated
    in place (patches replace them), so they can be serialised outside it."""

    def __init__(self, n_users, n_orgs, n_mems, seed, sizes=None, billing_anchor=None):
        self.seed = seed
        self.lock = threading.RLock()
        self.version = 0
        self._cache = {}
        self._org_cache = {}  # generated organizations (immutable, shared)
        self._base_org_mems_cache = {}  # org index -> generated membership indices
        self._prep = {}  # listing view -> {index: (key, JSON bytes, stored objects)} (config prepared_pages)
        self._prep_raw = RAW_IN_USE[0]
        # Per-purpose hash seeds; T_TIME + n covers the timestamp streams.
        self.tag_seed = {t: h(seed, t) for t in range(1, T_TIME + 4)}
        self.tag_seed.update({t: h(seed, t) for t in range(T_TIME + 4, T_TIME + 10)})
        self.tag_seed.update({t: h(seed, t) for t in range(T_ORGINV, T_CLIENT + 1)})
        self.tag_seed.update({t: h(seed, t) for t in range(T_BITEM, T_WAIT + 1)})
        self.tag_seed[T_TIME + TT_WAIT] = h(seed, T_TIME + TT_WAIT)
        n_users, n_orgs = max(0, n_users), max(0, n_orgs)
        n_mems = max(0, min(n_mems, n_users * n_orgs))
        self.users = Kind(n_users, IdCodec("user_", seed, 11))
        self.orgs = Kind(n_orgs, IdCodec("org_", seed, 12))
        self.mems = Kind(n_mems, IdCodec("orgmem_", seed, 13))
        self.u_step = max(1000, SPAN_MS // max(n_users, 1))
        self.o_step = max(1000, SPAN_MS // max(n_orgs, 1))
        self.m_step = max(1000, SPAN_MS // max(n_mems, 1))
        self.last_created = {"users": 0, "orgs": 0, "mems": 0}
        self.mem_links = {}      # created membership index -> (org idx, user idx)
        self.mem_pairs = {}      # (org idx, user idx) -> created membership index
        self.org_created_mems = {}  # org idx -> [created membership indices]
        self.member_delta = {}   # org idx -> change of live member count vs. generated
        self._layout(n_users, n_orgs, n_mems)
        sz = dict(DEFAULT_SIZES, **(sizes or {}))
        self._init_more(n_users, n_orgs, sz)
        self._init_billing(n_users, n_orgs, sz, billing_anchor)

    def _init_more(self, n_users, n_orgs, sz):
        """Organization invitations and domains (children of organizations),
        instance invitations, roles and permissions, sessions (children of users)."""
        seed = self.seed
        n_oi = max(0, sz["organization_invitations"]) if n_orgs else 0
        n_dom = max(0, sz["organization_domains"]) if n_orgs else 0
        n_inv = max(0, sz["invitations"])
        n_sess = max(0, sz["sessions"]) if n_users else 0
        self.orginvs = Kind(n_oi, IdCodec("orginv_", seed, 14))
        self.invs = Kind(n_inv, IdCodec("inv_", seed, 15))
        self.doms = Kind(n_dom, IdCodec("orgdmn_", seed, 16))
        self.roles = Kind(len(BASE_ROLES) + max(0, sz["custom_roles"]), IdCodec("role_", seed, 17))
        self.perms = Kind(len(BASE_PERMISSIONS) + max(0, sz["custom_permissions"]), IdCodec("perm_", seed, 18))
        self.sessions = Kind(n_sess, IdCodec("sess_", seed, 19))
        self.client_codec = IdCodec("client_", seed, 20)
        self.orginv_links = Children(self.orginvs, self.orgs, seed, T_ORGINV)
        self.dom_links = Children(self.doms, self.orgs, seed, T_DOM)
        self.sess_links = Children(self.sessions, self.users, seed, T_SESS)
        self.oi_step = max(1000, CHILD_SPAN_MS // max(n_oi, 1))
        self.inv_step = max(1000, CHILD_SPAN_MS // max(n_inv, 1))
        self.dom_step = max(1000, CHILD_SPAN_MS // max(n_dom, 1))
        self.role_step = max(1000, CHILD_SPAN_MS // max(self.roles.n_base, 1))
        self.perm_step = max(1000, CHILD_SPAN_MS // max(self.perms.n_base, 1))
        self.sess_step = max(1000, CHILD_SPAN_MS // max(n_sess, 1))
        for k in ("orginvs", "invs", "doms", "roles", "perms", "sessions"):
            self.last_created[k] = 0
        self.orginv_accepted_by = {}  # org invitation index -> id of the user who accepted it
        self._gen_child_cache = {}    # (kind tag, index) -> generated own object (immutable, shared)
        self._user_orgs_cache = {}    # user index -> generated organizations of the user
        self.cascade_log = []  # (kind name, index) removed along with a deleted user or organization
        self.role_rev = 0      # bumped whenever a role or a permission is created, changed or deleted
        self._role_table_cache = None  # (role_rev, {role key: (name, [permission keys])})

    # -- membership layout --------------------------------------------------
    def _layout(self, U, O, M):
        """Decide how many generated memberships each org has, and a bijection
        between membership index and (org, k-th member) slot."""
        r = random.Random(h(self.seed, T_LAYOUT))
        self.m_counts = [0] * O
        if M:
            weights = [min(r.paretovariate(1.3), 40.0) for _ in range(O)]
            total = sum(weights)
            counts = [min(U, int(M * w / total)) for w in weights]
            left = M - sum(counts)
            order = sorted(range(O), key=lambda o: -weights[o])
            while left > 0:
                for o in order:
                    if left == 0:
                        break
                    if counts[o] < U:
                        counts[o] += 1
                        left -= 1
            self.m_counts = counts
        self.m_starts = []
        acc = 0
        for c in self.m_counts:
            self.m_starts.append(acc)
            acc += c
        self.m_user_start = [r.randrange(U) if U else 0 for _ in range(O)]
        self.m_stride, self.m_stride_inv = [], []
        for _ in range(O):
            s = 1
            if U > 1:
                s = r.randrange(1, U)
                while math.gcd(s, U) != 1:
                    s = r.randrange(1, U)
            self.m_stride.append(s)
            self.m_stride_inv.append(pow(s, -1, U) if U > 1 else 0)
        self.perm_a, self.perm_b, self.perm_inv = 1, 0, 1
        if M > 1:
            a = r.randrange(1, M)
            while math.gcd(a, M) != 1:
                a = r.randrange(1, M)
            self.perm_a, self.perm_b, self.perm_inv = a, r.randrange(M), pow(a, -1, M)

    def _slot_of(self, m):
        M = self.mems.n_base
        return (self.perm_a * m + self.perm_b) % M

    def _mem_of_slot(self, slot):
        M = self.mems.n_base
        return ((slot - self.perm_b) * self.perm_inv) % M

    def mem_link(self, m):
        """(org index, user index) of membership m."""
        if m >= self.mems.n_base:
            return self.mem_links[m]
        slot = self._slot_of(m)
        o = bisect.bisect_right(self.m_starts, slot) - 1
        k = slot - self.m_starts[o]
        U = self.users.n_base
        return o, (self.m_user_start[o] + k * self.m_stride[o]) % U

    def _base_mem_of_pair(self, o, u):
        """Generated membership index linking org o and user u, or None."""
        if o >= self.orgs.n_base or u >= self.users.n_base or not self.m_counts[o]:
            return None
        U = self.users.n_base
        k = ((u - self.m_user_start[o]) * self.m_stride_inv[o]) % U if U > 1 else 0
        if k >= self.m_counts[o]:
            return None
        return self._mem_of_slot(self.m_starts[o] + k)

    def mem_of_pair(self, o, u):
        m = self.mem_pairs.get((o, u))
        if m is None:
            m = self._base_mem_of_pair(o, u)
        return m if self.mems.live(m) else None

    def _base_org_mems(self, o):
        got = self._base_org_mems_cache.get(o)
        if got is None:
            if o < self.orgs.n_base:
                st = self.m_starts[o]
                got = sorted(self._mem_of_slot(st + k) for k in range(self.m_counts[o]))
            else:
                got = []
            self._base_org_mems_cache[o] = got
        return got

    def members_count(self, o):
        base = self.m_counts[o] if o < self.orgs.n_base else 0
        return base + self.member_delta.get(o, 0)

    # -- timestamps ----------------------------------------------------------
    def _times(self, tag, idx, step):
        """(created_at, updated_at) of generated object idx: created_at grows
        strictly with idx; updated_at >= created_at."""
        x = mix64(self.tag_seed[T_TIME + tag] ^ idx)
        created = BASE_TS + idx * step + (x % max(1, step // 2))
        y = mix64(x)
        if y % 10 < 4:
            updated = created
        else:
            updated = created + (y >> 8) % (200 * DAY_MS)
        return created, updated

    # -- users ---------------------------------------------------------------
    def _user_core(self, i):
        """Names, usernames, emails and phones: the part of a user other lookups need."""
        r = random.Random(mix64(self.tag_seed[T_UCORE] ^ i))
        intl_first = r.random() < 0.15
        first = r.choice(FIRST_INTL if intl_first else FIRST_ASCII)
        x = r.random()
        if x < 0.12:
            last = None
        else:
            last = r.choice(LAST_INTL if r.random() < 0.15 else LAST_ASCII)
        if r.random() < 0.04:
            first = None
        fa = ascii_fold(first or "") or "user"
        la = ascii_fold(last or "")
        username = None
        if r.random() < 0.7:
            username = f"{fa}{('_' + la) if la else ''}{i}"
        n_email = pick_count(r, (8, 83, 95, 100))
        emails = []
        for j in range(n_email):
            dom = EMAIL_DOMAINS[(i + j) % len(EMAIL_DOMAINS)] if j else r.choice(EMAIL_DOMAINS)
            if j == 0:
                local = f"{fa}.{la}{i}" if la else f"{fa}{i}"
            elif j == 1:
                local = f"{fa}+work{i}"
            else:
                local = f"{fa[:1]}{la[:6]}.{i}.{j}"
            emails.append(f"{local}@{dom}")
        n_phone = pick_count(r, (55, 95, 100))
        if n_email == 0:
            n_phone = max(n_phone, 1)
        phones = [f"+1555{i:07d}{j}" if j else f"+1555{i:07d}" for j in range(n_phone)]
        has_image = r.random() < 0.35
        null_image = r.random() < 0.03
        primary = 0 if len(emails) < 2 or r.random() < 0.8 else 1
        return first, last, username, emails, phones, has_image, null_image, primary

    def _user_image(self, i, uid, has_image, null_image):
        return None if null_image else image_url_for("user", uid, has_image, self.seed, i)

    def _gen_user(self, i):
        seed = self.seed
        first, last, username, emails, phones, has_image, null_image, primary = self._user_core(i)
        r = random.Random(mix64(self.tag_seed[T_USER] ^ i))
        uid = self.users.key(i)
        created, updated = self._times(1, i, self.u_step)

        # External accounts, some linked to the primary email.
        accounts = []
        linked = {}
        n_acc = pick_count(r, (62, 95, 100))
        for a in range(n_acc):
            prov = OAUTH_PROVIDERS[(r.randrange(3) + a) % 3]
            ident = side_id("idn_", seed, T_EAC, i, a, 1)
            email = emails[a % len(emails)] if emails else f"{ascii_fold(first or '') or 'user'}{i}@{prov}.example"
            if emails and a < len(emails):
                linked.setdefault(a, []).append({"type": "oauth_" + prov, "id": ident})
            acct_img = "https://img.clerk.com/oauth/" + noise62(14, seed, T_EAC, i, a)
            accounts.append({
                "object": "external_account",
                "id": side_id("eac_", seed, T_EAC, i, a),
                "provider": "oauth_" + prov,
                "identification_id": ident,
                "provider_user_id": str(h(seed, T_EAC, i, a, 3) % 10 ** 18),
                "approved_scopes": SCOPES[prov],
                "email_address": email,
                "email_address_verified": True if r.random() < 0.9 else None,
                "first_name": first or "",
                "last_name": last or "",
                "avatar_url": acct_img,
                "image_url": acct_img,
                "username": (username if prov == "github" else None),
                "phone_number": None,
                "public_metadata": {},
                "label": None,
                "created_at": created,
                "updated_at": created,
                "verification": {
                    "object": "verification_oauth",
                    "status": "verified",
                    "strategy": "oauth_" + prov,
                    "attempts": None,
                    "expire_at": created + 600_000,
                },
            })

        email_objs = []
        for j, e in enumerate(emails):
            if j in linked:
                ver = {"object": "verification_from_oauth", "status": "verified",
                       "strategy": "from_oauth_" + linked[j][0]["type"][6:], "attempts": None,
                       "expire_at": created + 600_000, "error": None}
            elif j == 0:
                ver = r.choice([
                    {"object": "verification_otp", "status": "verified", "strategy": "email_code",
                     "attempts": 1, "expire_at": created + 600_000},
                    {"object": "verification_admin", "status": "verified", "strategy": "admin",
                     "attempts": None, "expire_at": None},
                ])
            elif r.random() < 0.15:
                ver = None
            else:
                ver = {"object": "verification_otp", "status": r.choice(["verified", "unverified", "expired"]),
                       "strategy": "email_code", "attempts": r.randrange(0, 3), "expire_at": created + 600_000}
            email_objs.append({
                "id": side_id("idn_", seed, T_IDN, i, j),
                "object": "email_address",
                "email_address": e,
                "reserved": False,
                "verification": ver,
                "linked_to": linked.get(j, []),
                "matches_sso_connection": False,
                "created_at": created,
                "updated_at": created,
            })
        phone_objs = []
        for j, p in enumerate(phones):
            phone_objs.append({
                "id": side_id("idn_", seed, T_IDN, i, 100 + j),
                "object": "phone_number",
                "phone_number": p,
                "reserved_for_second_factor": j == 1,
                "default_second_factor": j == 1,
                "reserved": False,
                "verification": (
                    {"object": "verification_otp", "status": "verified", "strategy": "phone_code",
                     "attempts": 1, "expire_at": created + 600_000, "channel": "sms"}
                    if r.random() < 0.85 else
                    {"object": "verification_admin", "status": "verified", "strategy": "admin",
                     "attempts": None, "expire_at": None}),
                "linked_to": [],
                "backup_codes": None,
                "created_at": created,
                "updated_at": created,
            })
        primary_email = email_objs[primary]["id"] if email_objs else None
        primary_phone = phone_objs[0]["id"] if phone_objs else None

        x = r.random()
        if x < 0.4:
            public = {}
        elif x < 0.7:
            public = {"plan": r.choice(["free", "pro", "enterprise"]), "seats": r.randrange(1, 50)}
        elif x < 0.9:
            public = {
                "plan": "pro",
                "billing": {"customer": {"country": r.choice(["US", "DE", "JP", "BR"]),
                                         "tax_exempt": r.random() < 0.1},
                            "cycle": r.choice(["monthly", "yearly"])},
                "flags": {"beta": True, "features": ["sso", "audit-log", "élan"]},
                "score": round(r.random() * 100, 3),
                "referrer": None,
            }
        else:
            public = {"tags": ["vip", "東京", "🎉"], "nested": {"a": {"b": {"c": [1, 2.5, None, True]}}}}
        y = r.random()
        if y < 0.05:
            private = None
        elif y < 0.6:
            private = {}
        else:
            private = {"stripe_customer_id": "cus_" + noise62(14, seed, "cus", i),
                       "notes": 'Line 1\nLine 2 with "quotes", a back\\slash and a\ttab'}
        unsafe = {} if r.random() < 0.8 else {"theme": r.choice(["dark", "light"]), "onboarded": True}

        pw = r.random() < 0.7
        two_fa = r.random() < 0.1
        locked = r.random() < 0.005
        last_sign_in = None if r.random() < 0.1 else created + r.randrange(0, 300) * DAY_MS // 3
        last_active = None if last_sign_in is None else (last_sign_in // DAY_MS) * DAY_MS
        img = self._user_image(i, uid, has_image, null_image)
        return {
            "id": uid,
            "object": "user",
            "username": username,
            "first_name": first,
            "last_name": last,
            "image_url": img,
            "profile_image_url": img,
            "has_image": has_image and not null_image,
            "primary_email_address_id": primary_email,
            "primary_phone_number_id": primary_phone,
            "primary_web3_wallet_id": None,
            "password_enabled": pw,
            "two_factor_enabled": two_fa,
            "totp_enabled": two_fa and r.random() < 0.6,
            "backup_code_enabled": two_fa,
            "mfa_enabled_at": created + DAY_MS if two_fa else None,
            "mfa_disabled_at": None,
            "password_last_updated_at": created if pw else None,
            "email_addresses": email_objs,
            "phone_numbers": phone_objs,
            "web3_wallets": [],
            "passkeys": [],
            "external_accounts": accounts,
            "saml_accounts": [],
            "enterprise_accounts": [],
            "public_metadata": public,
            "private_metadata": private,
            "unsafe_metadata": unsafe,
            "external_id": f"ext-{i:06d}" if r.random() < 0.25 else None,
            "locale": r.choice([None, None, None, "en-US", "fr-FR", "ja-JP"]),
            "last_sign_in_at": last_sign_in,
            "banned": self._user_banned(i),
            "locked": locked,
            "lockout_expires_in_seconds": 1800 if locked else None,
            "verification_attempts_remaining": 100,
            "created_at": created,
            "updated_at": updated,
            "delete_self_enabled": True,
            "create_organization_enabled": r.random() < 0.95,
            "create_organizations_limit": None,
            "last_active_at": last_active,
            "legal_accepted_at": created if r.random() < 0.3 else None,
            "bypass_client_trust": False,
        }

    def _user_banned(self, i):
        return mix64(self.tag_seed[T_BANNED] ^ i) % 100 == 0

    def user(self, i):
        got = self.users.over.get(i)
        return got if got is not None else self._gen_user(i)

    def _user_created(self, i):
        got = self.users.over.get(i)
        if got is not None:
            return int_or(got.get("created_at"), -1)
        return self._times(1, i, self.u_step)[0]

    def _user_updated(self, i):
        got = self.users.over.get(i)
        if got is not None:
            return int_or(got.get("updated_at"), -1)
        return self._times(1, i, self.u_step)[1]

    def public_user_data(self, u):
        if u not in self.users.over:
            # Fast path: derive from the generated core without building the whole user.
            first, last, username, emails, phones, has_image, null_image, primary = self._user_core(u)
            uid = self.users.key(u)
            img = self._user_image(u, uid, has_image, null_image)
            ident = emails[primary] if emails else (phones[0] if phones else username)
            return {"user_id": uid, "first_name": first, "last_name": last, "profile_image_url": img,
                    "image_url": img, "has_image": has_image and not null_image, "identifier": ident,
                    "username": username, "banned": self._user_banned(u)}
        usr = self.user(u)
        ident = None
        pid = usr.get("primary_email_address_id")
        for e in usr.get("email_addresses") or []:
            if isinstance(e, dict) and e.get("id") == pid:
                ident = e.get("email_address")
        if ident is None:
            pid = usr.get("primary_phone_number_id")
            for p in usr.get("phone_numbers") or []:
                if isinstance(p, dict) and p.get("id") == pid:
                    ident = p.get("phone_number")
        if ident is None:
            ident = usr.get("username")
        return {
            "user_id": self.users.key(u),
            "first_name": usr.get("first_name"),
            "last_name": usr.get("last_name"),
            "profile_image_url": usr.get("image_url"),
            "image_url": usr.get("image_url"),
            "has_image": usr.get("has_image"),
            "identifier": ident,
            "username": usr.get("username"),
            "banned": usr.get("banned", False),
        }

    # -- organizations -------------------------------------------------------
    def _gen_org(self, o):
        seed = self.seed
        r = random.Random(mix64(self.tag_seed[T_ORG] ^ o))
        if r.random() < 0.15:
            name = r.choice(ORG_INTL)
        else:
            name = f"{r.choice(ORG_WORDS)} {r.choice(ORG_SUFFIX)}"
        slug = f"{slugify(name) or 'org'}-{o}"
        oid = self.orgs.key(o)
        created, updated = self._times(2, o, self.o_step)
        has_image = r.random() < 0.3
        created_by = None
        if o < self.orgs.n_base and self.m_counts[o]:
            created_by = self.users.key(self.m_user_start[o])
        elif self.users.n_base:
            created_by = self.users.key(r.randrange(self.users.n_base))
        cap = r.choice([0, 0, 0, 5, 20, 100, 500])
        if cap and o < self.orgs.n_base and self.m_counts[o] > cap:
            cap = 0
        x = r.random()
        public = {} if x < 0.5 else {"tier": r.choice(["startup", "growth", "enterprise"]),
                                      "region": r.choice(["eu", "us", "apac"])}
        private = {} if r.random() < 0.6 else {"billing_id": "cus_" + noise62(14, seed, "cus_org", o),
                                                "limits": {"projects": r.randrange(1, 100), "sso": r.random() < 0.5}}
        return {
            "object": "organization",
            "id": oid,
            "name": name,
            "slug": slug,
            "image_url": image_url_for("org", oid, has_image, seed, o + 10 ** 9),
            "has_image": has_image,
            "max_allowed_memberships": cap,
            "admin_delete_enabled": r.random() < 0.9,
            "public_metadata": public,
            "private_metadata": private,
            "created_by": created_by,
            "created_at": created,
            "updated_at": updated,
        }

    def org(self, o):
        got = self.orgs.over.get(o)
        if got is None:
            got = self._org_cache.get(o)
            if got is None:
                got = self._gen_org(o)
                if len(self._org_cache) < 50_000:
                    self._org_cache[o] = got
        return got

    def org_view(self, o, members_count=False, missing_member=False):
        obj = self.org(o)
        if members_count or missing_member:
            obj = dict(obj)
            if members_count:
                obj["members_count"] = self.members_count(o)
            if missing_member:
                obj["missing_member_with_elevated_permissions"] = False
        return obj

    def _org_slug_map(self):
        got = self._cache.get("slug_map")
        if got is None:
            got = {self._gen_org(o)["slug"]: o for o in range(self.orgs.n_base)}
            self._cache["slug_map"] = got
        return got

    def org_index(self, id_or_slug, allow_slug=True):
        o = self.orgs.index_of(id_or_slug)
        if self.orgs.live(o):
            return o
        if not allow_slug:
            return None
        for idx, obj in self.orgs.over.items():
            if obj.get("slug") == id_or_slug and self.orgs.live(idx):
                return idx
        o = self._org_slug_map().get(id_or_slug)
        if o is not None and o not in self.orgs.over and self.orgs.live(o):
            return o
        return None

    # -- memberships ---------------------------------------------------------
    def _gen_mem_own(self, m):
        r = random.Random(mix64(self.tag_seed[T_MEM] ^ m))
        o, u = self.mem_link(m)
        slot = self._slot_of(m)
        k = slot - self.m_starts[o]
        if k == 0:
            role = "org:admin"
        else:
            x = r.random()
            role = "org:member" if x < 0.85 else ("org:admin" if x < 0.95 else "org:billing_manager")
        role_name, perms = role_info(role)  # membership() shows the role's as it is now
        created, updated = self._times(3, m, self.m_step)
        return {
            "id": self.mems.key(m),
            "object": "organization_membership",
            "role": role,
            "role_name": role_name,
            "permissions": list(perms),
            "public_metadata": {} if r.random() < 0.8 else {"title": r.choice(["Engineer", "Designer", "Chef de projet"])},
            "private_metadata": {} if r.random() < 0.9 else {"hr_id": f"HR-{m:07d}"},
            "created_at": created,
            "updated_at": updated,
        }

    def membership(self, m):
        own = self.mems.over.get(m)
        if own is None:
            own = self._gen_mem_own(m)
        o, u = self.mem_link(m)
        out = {}
        for k in ("id", "object", "role", "role_name", "permissions", "public_metadata", "private_metadata"):
            if k in own:
                out[k] = own[k]
        # As in Clerk, role_name and permissions are those of the role as it is
        # now; a role key that matches no role keeps what was stored.
        cur = self._role_current(own.get("role"))
        if cur is not None:
            out["role_name"], out["permissions"] = cur[0], list(cur[1])
        out["organization"] = own["organization"] if "organization" in own else self.org(o)
        out["public_user_data"] = own["public_user_data"] if "public_user_data" in own else self.public_user_data(u)
        for k, v in own.items():
            if k not in out:
                out[k] = v
        return out

    # -- kinds added later: shared helpers ----------------------------------
    def _ctimes(self, tag, idx, step):
        """(created_at, updated_at) of a generated child object: like _times,
        in the year after the generated users and organizations."""
        x = mix64(self.tag_seed[T_TIME + tag] ^ idx)
        created = CHILD_TS + idx * step + (x % max(1, step // 2))
        y = mix64(x)
        updated = created if y % 10 < 4 else created + (y >> 8) % (60 * DAY_MS)
        return created, updated

    def _gen_cached(self, tag, idx, fn):
        key = (tag, idx)
        got = self._gen_child_cache.get(key)
        if got is None:
            got = fn(idx)
            if len(self._gen_child_cache) < 50_000:
                self._gen_child_cache[key] = got
        return got

    def own(self, kind, idx):
        """The stored or generated own fields of an object of one of the later kinds."""
        got = kind.over.get(idx)
        if got is not None:
            return got
        if kind is self.orginvs:
            return self._gen_cached(T_ORGINV, idx, self._gen_orginv)
        if kind is self.invs:
            return self._gen_cached(T_INV, idx, self._gen_inv)
        if kind is self.doms:
            return self._gen_cached(T_DOM, idx, self._gen_dom)
        if kind is self.roles:
            return self._gen_cached(T_ROLE, idx, self._gen_role)
        if kind is self.perms:
            return self._gen_cached(T_PERM, idx, self._gen_perm)
        if kind is self.sessions:
            return self._gen_cached(T_SESS, idx, self._gen_session)
        if kind is self.plans:
            return self._gen_cached(T_PLAN, idx, self._gen_plan)
        if kind is self.prices:
            return self._gen_cached(T_PRICE, idx, self._gen_price)
        if kind is self.bitems:
            return self._gen_cached(T_BITEM, idx, self._gen_bitem)
        if kind is self.stmts:
            return self._gen_cached(T_STMT, idx, self._gen_stmt)
        if kind is self.payatts:
            return self._gen_cached(T_PAY, idx, self._gen_payatt)
        return self._gen_cached(T_WAIT, idx, self._gen_wait)

    def public_org_data(self, o):
        org = self.org(o)
        return {"id": org.get("id"), "name": org.get("name"), "slug": org.get("slug"),
                "image_url": org.get("image_url"), "has_image": org.get("has_image")}

    def _public_inviter(self, inviter_id):
        u = self.users.index_of(inviter_id) if isinstance(inviter_id, str) else None
        if not self.users.live(u):
            return None
        d = self.public_user_data(u)
        return {k: d.get(k) for k in ("user_id", "first_name", "last_name", "image_url", "has_image", "identifier")}

    @staticmethod
    def _render(own, derived, after):
        """own's fields in order, each derived field (unless own has it) right after `after[name]`."""
        out = {}
        pending = {k: v for k, v in derived.items() if k not in own}
        for k, v in own.items():
            out[k] = v
            for name in [n for n, a in after.items() if a == k and n in pending]:
                out[name] = pending.pop(name)
        out.update(pending)
        return out

    # -- organization invitations ------------------------------------------
    def _gen_orginv(self, i):
        r = random.Random(mix64(self.tag_seed[T_ORGINV] ^ i))
        o = self.orginv_links.parent(i)
        created, updated = self._ctimes(TT_ORGINV, i, self.oi_step)
        x = r.random()
        status = "pending" if x < 0.5 else "accepted" if x < 0.75 else "revoked" if x < 0.9 else "expired"
        expires = created + 30 * DAY_MS
        if status == "expired":
            updated = expires
        elif status == "pending":
            updated = min(updated, created + r.randrange(5 * DAY_MS))
        else:
            updated = created + 3_600_000 + r.randrange(20 * DAY_MS)
        y = r.random()
        role = "org:member" if y < 0.8 else ("org:admin" if y < 0.95 else "org:billing_manager")
        inviter = None
        if o < self.orgs.n_base and self.m_counts[o] and r.random() < 0.7:
            inviter = self.users.key(self.m_user_start[o])
        dom = EMAIL_DOMAINS[r.randrange(len(EMAIL_DOMAINS))]
        return {
            "object": "organization_invitation",
            "id": self.orginvs.key(i),
            "email_address": f"invitee.{i}@{dom}",
            "role": role,
            "role_name": role_info(role)[0],  # orginv() shows the role's name as it is now
            "organization_id": self.orgs.key(o),
            "inviter_id": inviter,
            "status": status,
            "public_metadata": {} if r.random() < 0.7 else {"source": r.choice(["onboarding", "import", "sales"])},
            "private_metadata": {} if r.random() < 0.8 else {"crm_ticket": f"CRM-{i:06d}"},
            "url": (None if r.random() < 0.2 else
                    "https://accounts.example.com/accept-invitation?__clerk_ticket=" + noise62(32, self.seed, "oi", i)),
            "expires_at": expires,
            "created_at": created,
            "updated_at": updated,
        }

    def orginv(self, i, with_org=False):
        own = self.own(self.orginvs, i)
        cur = self._role_current(own.get("role"))
        if cur is not None and own.get("role_name") != cur[0]:
            own = dict(own, role_name=cur[0])  # the role's name as it is now
        derived = {"public_inviter_data": self._public_inviter(own.get("inviter_id"))}
        if with_org:
            derived["public_organization_data"] = self.public_org_data(self.orginv_links.parent(i))
        return self._render(own, derived, {"public_inviter_data": "inviter_id", "public_organization_data": None})

    # -- instance invitations ------------------------------------------------
    def _gen_inv(self, i):
        r = random.Random(mix64(self.tag_seed[T_INV] ^ i))
        created, updated = self._ctimes(TT_INV, i, self.inv_step)
        x = r.random()
        status = "pending" if x < 0.5 else "accepted" if x < 0.8 else "revoked" if x < 0.9 else "expired"
        expires = None if (r.random() < 0.1 and status != "expired") else created + 30 * DAY_MS
        if status == "expired":
            updated = expires
        elif status == "pending":
            updated = min(updated, created + r.randrange(5 * DAY_MS))
        elif status in ("accepted", "revoked"):
            updated = created + 3_600_000 + r.randrange(20 * DAY_MS)
        dom = EMAIL_DOMAINS[r.randrange(len(EMAIL_DOMAINS))]
        return {
            "object": "invitation",
            "id": self.invs.key(i),
            "email_address": f"guest.{i}@{dom}",
            "public_metadata": {} if r.random() < 0.6 else {"plan": r.choice(["free", "pro"]), "referral": f"R{i}"},
            "revoked": status == "revoked",
            "status": status,
            "url": "https://accounts.example.com/sign-up?__clerk_ticket=" + noise62(32, self.seed, "inv", i),
            "expires_at": expires,
            "created_at": created,
            "updated_at": updated,
        }

    def invitation(self, i):
        return self.own(self.invs, i)

    # -- organization domains ------------------------------------------------
    def _gen_dom(self, i):
        r = random.Random(mix64(self.tag_seed[T_DOM] ^ i))
        o = self.dom_links.parent(i)
        created, updated = self._ctimes(TT_DOM, i, self.dom_step)
        base = slugify(self._gen_org(o)["name"]) if o < self.orgs.n_base else ""
        name = f"{base or 'org'}-{i}.example.com"
        x = r.random()
        mode = ("manual_invitation" if x < 0.35 else "automatic_invitation" if x < 0.65
                else "automatic_suggestion" if x < 0.9 else "enterprise_sso")
        affiliation = f"admin@{name}" if r.random() < 0.7 else None
        ver = None
        if affiliation is not None:
            y = r.random()
            vstatus = "verified" if y < 0.65 else "unverified" if y < 0.85 else "expired" if y < 0.95 else "failed"
            ver = {"status": vstatus, "strategy": "email_code",
                   "attempts": (1 if vstatus == "verified" else r.randrange(0, 4)),
                   "expire_at": created + 600_000, "verified_at": None}
        own_ver = None
        if r.random() < 0.3:
            t = created + r.randrange(1, 5) * DAY_MS
            own_ver = {"status": "verified", "strategy": "dns_txt", "attempts": None, "expire_at": None, "verified_at": t}
        return {
            "object": "organization_domain",
            "id": self.doms.key(i),
            "organization_id": self.orgs.key(o),
            "name": name,
            "enrollment_mode": mode,
            "affiliation_email_address": affiliation,
            "affiliation_verification": ver,
            "ownership_verification": own_ver,
            "verification": copy.deepcopy(ver),
            "total_pending_invitations": r.randrange(0, 6) if mode == "automatic_invitation" else 0,
            "total_pending_suggestions": r.randrange(0, 6) if mode == "automatic_suggestion" else 0,
            "created_at": created,
            "updated_at": updated,
        }

    def domain(self, i):
        own = self.own(self.doms, i)
        return self._render(own, {"public_organization_data": self.public_org_data(self.dom_links.parent(i))},
                            {"public_organization_data": "total_pending_suggestions"})

    # -- roles and permissions ---------------------------------------------
    def _base_time(self, i):
        """Built-in roles and permissions exist from the instance's creation on."""
        return BASE_TS - 30 * DAY_MS + i * 1000

    def _gen_perm(self, i):
        nb = len(BASE_PERMISSIONS)
        if i < nb:
            key, name, desc, typ = BASE_PERMISSIONS[i]
            t = self._base_time(i)
            created, updated = t, t
        else:
            j = i - nb
            nf, na = len(PERM_FEATURES), len(PERM_ACTIONS)
            feat = PERM_FEATURES[j % nf] + (str(j // (nf * na)) if j >= nf * na else "")
            act = PERM_ACTIONS[(j // nf) % na]
            key, typ = f"org:{feat}:{act}", "user"
            name = f"{act.title()} {feat.replace('_', ' ')}"
            desc = f"Allows members to {act} {feat.replace('_', ' ')} in the organization."
            created, updated = self._ctimes(TT_PERM, i, self.perm_step)
        return {"object": "permission", "id": self.perms.key(i), "name": name, "key": key, "description": desc,
                "type": typ, "created_at": created, "updated_at": updated}

    def permission(self, i):
        return self.own(self.perms, i)

    def perm_index(self, ident):
        """Index of a live permission given by id or key, or None."""
        p = self.perms.index_of(ident)
        if self.perms.live(p):
            return p
        for p in self.live_indices(self.perms):
            if self.permission(p).get("key") == ident:
                return p
        return None

    def _gen_role(self, i):
        nb = len(BASE_ROLES)
        if i < nb:
            key, desc, creator = BASE_ROLES[i]
            name, pkeys = ROLES[key]
            t = self._base_time(i)
            created, updated = t, t
            perm_ids = [self.perms.key(p) for p in range(len(BASE_PERMISSIONS))
                        if BASE_PERMISSIONS[p][0] in pkeys]
        else:
            j = i - nb
            r = random.Random(mix64(self.tag_seed[T_ROLE] ^ i))
            name = CUSTOM_ROLE_NAMES[j % len(CUSTOM_ROLE_NAMES)]
            if j >= len(CUSTOM_ROLE_NAMES):
                name += f" {j // len(CUSTOM_ROLE_NAMES) + 1}"
            key = "org:" + (re.sub(r"[^a-z0-9]+", "_", ascii_fold_keep(name)).strip("_") or "role") + f"_{j}"
            desc = None if r.random() < 0.3 else f"The {name} role."
            creator = False
            created, updated = self._ctimes(TT_ROLE, i, self.role_step)
            n = self.perms.n_base
            picks = sorted(r.sample(range(n), r.randrange(0, min(n, 5) + 1))) if n else []
            perm_ids = [self.perms.key(p) for p in picks]
        return {"object": "role", "id": self.roles.key(i), "name": name, "key": key, "description": desc,
                "is_creator_eligible": creator, "permissions": perm_ids, "created_at": created, "updated_at": updated}

    def role(self, i):
        own = self.own(self.roles, i)
        perms = own.get("permissions")
        if isinstance(perms, list):
            shown = []
            for p in perms:
                if isinstance(p, str):
                    idx = self.perms.index_of(p)
                    if self.perms.live(idx):
                        shown.append(self.permission(idx))
                else:
                    shown.append(p)  # stored as given by a PATCH
            own = dict(own, permissions=shown)
        return own

    def _role_table(self):
        """{role key: (name, [permission keys])} of the live roles as
        /v1/organization_roles serves them now (the oldest role wins a key
        two roles share).  Rebuilt only after a role or a permission changed
        (role_rev), so rendering a membership costs one dict lookup."""
        got = self._role_table_cache
        if got is not None and got[0] == self.role_rev:
            return got[1]
        table = {}
        for i in self.live_indices(self.roles):
            r = self.role(i)
            key = r.get("key")
            if not isinstance(key, str) or key in table:
                continue
            perms = r.get("permissions")
            keys = [p["key"] for p in perms if isinstance(p, dict) and "key" in p] if isinstance(perms, list) else []
            table[key] = (r.get("name"), keys)
        self._role_table_cache = (self.role_rev, table)
        return table

    def _role_current(self, key):
        """(name, permission keys) of the live role with this key, or None."""
        return self._role_table().get(key) if isinstance(key, str) else None

    def role_view(self, key):
        """(name, permission keys) a membership or invitation of role `key`
        shows: its role's, or, if no role has that key (say it was deleted),
        a guess from the key (role_info)."""
        cur = self._role_current(key)
        return cur if cur is not None else role_info(key)

    def _roles_changed(self, kind):
        if kind is self.roles or kind is self.perms:
            self.role_rev += 1

    # -- sessions --------------------------------------------------------------
    def client_id(self, u, j):
        return self.client_codec.encode(u * 8 + j)

    def client_user(self, client_id):
        """(user index, client number) of a generated client id, or None."""
        c = self.client_codec.decode(client_id)
        return None if c is None else divmod(c, 8)

    def _user_orgs(self, u):
        """Organizations of user u in the generated data (stable under later changes)."""
        got = self._user_orgs_cache.get(u)
        if got is None:
            got = [o for o in range(self.orgs.n_base) if self._base_mem_of_pair(o, u) is not None] \
                if u < self.users.n_base else []
            if len(self._user_orgs_cache) < 50_000:
                self._user_orgs_cache[u] = got
        return got

    def _gen_session(self, i):
        r = random.Random(mix64(self.tag_seed[T_SESS] ^ i))
        u = self.sess_links.parent(i)
        n_clients = 1 + mix64(self.tag_seed[T_CLIENT] ^ u) % 2
        created, _ = self._ctimes(TT_SESS, i, self.sess_step)
        x = r.random()
        status = ("active" if x < 0.45 else "ended" if x < 0.65 else "expired" if x < 0.75 else "revoked" if x < 0.83
                  else "removed" if x < 0.9 else "abandoned" if x < 0.95 else "replaced" if x < 0.98 else "pending")
        expire_at, abandon_at = created + 7 * DAY_MS, created + 30 * DAY_MS
        if status == "pending":
            last_active = updated = created
        elif status == "active":
            last_active = updated = created + r.randrange(0, 5 * DAY_MS)
        elif status == "expired":
            last_active, updated = created + r.randrange(0, 5 * DAY_MS), expire_at
        elif status == "abandoned":
            last_active, updated = created + r.randrange(0, 3_600_000), abandon_at
        else:
            updated = created + r.randrange(60_000, 5 * DAY_MS)
            last_active = updated - r.randrange(0, 60_000)
        orgs = self._user_orgs(u)
        last_org = None
        if orgs and status != "pending" and r.random() < 0.7:
            last_org = self.orgs.key(orgs[r.randrange(len(orgs))])
        actor = None
        if self.users.n_base > 1 and r.random() < 0.03:
            actor = {"sub": self.users.key((u + 1) % self.users.n_base)}
        activity = None
        if status != "pending":
            dev, mobile, browser, version = BROWSERS[r.randrange(len(BROWSERS))]
            activity = {"object": "session_activity", "id": side_id("activity_", self.seed, T_SESS, i),
                        "device_type": dev, "is_mobile": mobile, "browser_name": browser, "browser_version": version,
                        "ip_address": f"203.0.113.{r.randrange(1, 255)}"}
            if r.random() < 0.8:
                city, country = PLACES[r.randrange(len(PLACES))]
                activity.update(city=city, country=country)
        return {
            "object": "session",
            "id": self.sessions.key(i),
            "user_id": self.users.key(u),
            "client_id": self.client_id(u, r.randrange(n_clients)),
            "actor": actor,
            "status": status,
            "last_active_organization_id": last_org,
            "last_active_at": last_active,
            "latest_activity": activity,
            "expire_at": expire_at,
            "abandon_at": abandon_at,
            "updated_at": updated,
            "created_at": created,
            "tasks": [{"key": "choose-organization"}] if status == "pending" else None,
        }

    def session(self, i):
        return self.own(self.sessions, i)

    # -- billing and the waitlist ---------------------------------------------
    def _init_billing(self, n_users, n_orgs, sz, anchor=None):
        """Billing plans and prices, subscription items (of some generated
        users and organizations), statements with their payment attempts, and
        waitlist entries.  Fixed small sizes (DEFAULT_SIZES), not proportional
        to the users.  Billing times are relative to `anchor` (default: the
        first of the current month, UTC), so that a current period holds now
        and a canceled item ends in the future; everything else about them
        comes from the seed."""
        seed = self.seed
        self.anchor = int(anchor) if anchor is not None else month_start(now_ms())
        n_plans = max(0, sz["billing_plans"])
        n_cp = max(0, sz["billing_custom_prices"]) if n_plans else 0
        n_items = max(0, sz["billing_subscription_items"]) if (n_plans and (n_users or n_orgs)) else 0
        self.plans = Kind(n_plans, IdCodec("cplan_", seed, 21))
        self.prices = Kind(n_plans + n_cp, IdCodec("cprice_", seed, 22))
        self.bitems = Kind(n_items, IdCodec("csub_item_", seed, 23))
        self.payer_codec = IdCodec("cpayer_", seed, 27)  # payer 2u: user u; 2o + 1: organization o
        self.csub_codec = IdCodec("csub_", seed, 28)     # one subscription per payer, numbered as the payer
        r = random.Random(h(seed, T_LAYOUT, T_BITEM))
        self._bperm = {}
        for typ, n in (("user", n_users), ("org", n_orgs)):
            a = 1
            if n > 1:
                a = r.randrange(1, n)
                while math.gcd(a, n) != 1:
                    a = r.randrange(1, n)
            self._bperm[typ] = (a, r.randrange(n) if n else 0, n)
        self._plan_pick = {}
        self._billed = [i for i in range(n_items) if self._item_layout(i)[5]]
        n_st = max(0, sz["billing_statements"]) if self._billed else 0
        self.stmts = Kind(n_st, IdCodec("stmt_", seed, 24))
        self.pa_starts, acc = [], 0
        for j in range(n_st):
            self.pa_starts.append(acc)
            acc += 1 + mix64(self.tag_seed[T_STMT] ^ j) % 3
        self.payatts = Kind(acc, IdCodec("pa_", seed, 25))
        n_wait = max(0, sz["waitlist_entries"])
        self.waits = Kind(n_wait, IdCodec("wle_", seed, 26))
        self.wait_step = max(1000, CHILD_SPAN_MS // max(n_wait, 1))
        self.item_step = max(1000, 330 * DAY_MS // max(n_items, 1))
        self.stmt_step = max(3_600_000, 150 * DAY_MS // max(n_st, 1))
        for k in ("plans", "prices", "bitems", "stmts", "payatts", "waits"):
            self.last_created[k] = 0

    # plans and prices
    def _plan_spec(self, i):
        if i < len(PLAN_SPECS):
            return PLAN_SPECS[i]
        k = i - len(PLAN_SPECS) + 1
        typ = "user" if k % 2 else "org"
        return (f"plus_{typ}_{k}", f"Plus {k}", typ, False, 500 * (k + 4), 400 * (k + 4), ["basic", "reports"],
                None, None)

    def feature(self, slug):
        name, desc, avatar = FEATURES.get(slug, (slug.replace("_", " ").title(), None, False))
        return {"object": "feature", "id": side_id("feat_", self.seed, "feature", slug), "name": name,
                "description": desc, "slug": slug,
                "avatar_url": ("https://img.clerk.com/" + noise62(22, self.seed, "feature", slug)) if avatar else None}

    def _gen_plan(self, i):
        slug, name, typ, default, fee, am, feats, trial, desc = self._plan_spec(i)
        return {
            "object": "commerce_plan",
            "id": self.plans.key(i),
            "name": name,
            "fee": money(fee),
            "annual_monthly_fee": money(am),
            "annual_fee": money(am * 12),
            "description": desc,
            "product_id": side_id("cprd_", self.seed, "product"),
            "is_default": default,
            "is_recurring": fee > 0,
            "publicly_visible": True,
            "has_base_fee": fee > 0,
            "for_payer_type": typ,
            "slug": slug,
            "avatar_url": ("https://img.clerk.com/" + noise62(22, self.seed, "plan", i)) if fee else None,
            "features": [self.feature(f) for f in feats],
            "free_trial_enabled": trial is not None,
            "free_trial_days": trial,
        }

    def plan(self, i):
        return self.own(self.plans, i)

    def plan_index(self, ident):
        """Index of a live plan given by id or slug, or None."""
        i = self.plans.index_of(ident) if isinstance(ident, str) else None
        if self.plans.live(i):
            return i
        for i in self.live_indices(self.plans):
            if self.plan(i).get("slug") == ident:
                return i
        return None

    def _paid_plans(self):
        """Generated paid plans, organizations' first: what custom prices are for."""
        specs = [(i, self._plan_spec(i)) for i in range(self.plans.n_base)]
        return [i for t in ("org", "user") for i, sp in specs if sp[4] > 0 and sp[2] == t]

    def _gen_price(self, i):
        nplans = self.plans.n_base
        base = self.anchor - 400 * DAY_MS
        if i < nplans:
            p, default = i, True
            fee, am = self._plan_spec(i)[4], self._plan_spec(i)[5]
            created, desc = base + i * 3_600_000, None
        else:
            c = i - nplans
            paid = self._paid_plans() or [0]
            p, default = paid[c % len(paid)], False
            sp = self._plan_spec(p)
            fee, am = sp[4] * 8 // 1000 * 100, sp[5] * 8 // 1000 * 100
            created = base + (200 + c) * DAY_MS
            desc = f'Negotiated: 20% off "{sp[1]}"\nuntil further notice' if c % 2 == 0 else f"Custom price {c}"
        return {
            "object": "commerce_price",
            "id": self.prices.key(i),
            "plan_id": self.plans.key(p),
            "instance_id": INSTANCE_ID,
            "currency": "USD",
            "currency_symbol": "$",
            "amount": fee,
            "annual_monthly_amount": am,
            "fee": money(fee),
            "annual_monthly_fee": money(am),
            "description": desc,
            "is_default": default,
            "created_at": created,
            "supported_billing_periods": "both" if fee else "month",
        }

    def price(self, i):
        return self.own(self.prices, i)

    # payers
    def payer_index(self, payer_id):
        """('user', u) or ('org', o) of one of the mock's cpayer_ ids, or None."""
        p = self.payer_codec.decode(payer_id)
        if p is None:
            return None
        typ, x = ("user", p // 2) if p % 2 == 0 else ("org", p // 2)
        kind = self.users if typ == "user" else self.orgs
        return (typ, x) if x < kind.next_index else None

    def payer_key(self, typ, x):
        return self.payer_codec.encode(2 * x + (typ == "org"))

    def subscription_key(self, typ, x):
        return self.csub_codec.encode(2 * x + (typ == "org"))

    def _user_email(self, u):
        if u not in self.users.over:
            emails, primary = self._user_core(u)[3], self._user_core(u)[7]
            return emails[primary] if emails else None
        usr = self.user(u)
        for e in usr.get("email_addresses") or []:
            if isinstance(e, dict) and e.get("id") == usr.get("primary_email_address_id"):
                return e.get("email_address")
        return None

    def payer(self, payer_id):
        """CommercePayerResponse of a cpayer_ id of the mock (its user's or
        organization's data as it is now), or None."""
        got = self.payer_index(payer_id)
        if got is None:
            return None
        typ, x = got
        out = {"object": "commerce_payer", "id": payer_id, "instance_id": INSTANCE_ID}
        if typ == "user":
            usr = self.user(x) if x in self.users.over else None
            d = self.public_user_data(x)
            created = self._user_created(x)
            out.update(user_id=self.users.key(x), first_name=d.get("first_name"), last_name=d.get("last_name"),
                       email=self._user_email(x), organization_id=None, organization_name=None,
                       image_url=(usr or d).get("image_url"))
        else:
            org = self.org(x)
            created = org.get("created_at")
            out.update(user_id=None, first_name=None, last_name=None, email=None, organization_id=org.get("id"),
                       organization_name=org.get("name"), image_url=org.get("image_url"))
        out.update(created_at=created, updated_at=created)
        return out

    @staticmethod
    def payer_event(payer):
        """BillingPayerEventPayload: the webhook's payer, '' where the BAPI has null."""
        if not isinstance(payer, dict):
            return payer
        out = {"object": "commerce_payer", "id": payer.get("id")}
        for k in ("user_id", "first_name", "last_name", "email", "organization_id", "organization_name", "image_url"):
            v = payer.get(k)
            out[k] = "" if v is None else v
        for k in ("created_at", "updated_at"):
            if k in payer:
                out[k] = payer[k]
        return out

    def payment_method(self, payer_id):
        """The payer's card (CommercePaymentMethodResponse)."""
        x = int.from_bytes(hashlib.blake2b(f"{self.seed}:pm:{payer_id}".encode(), digest_size=8).digest(), "big")
        card, last4 = CARDS[x % len(CARDS)]
        return {"object": "commerce_payment_method", "id": side_id("cps_", self.seed, "pm", payer_id),
                "payer_id": payer_id, "payment_type": "card", "is_default": True, "gateway": "stripe",
                "gateway_external_id": "pm_" + noise62(24, self.seed, "pm", payer_id),
                "gateway_external_account_id": None, "last4": last4, "status": "active", "wallet_type": None,
                "card_type": card, "expiry_year": 2027 + (x >> 8) % 5, "expiry_month": 1 + (x >> 16) % 12,
                "is_removable": True}

    def payee(self):
        return {"id": side_id("cpayee_", self.seed, "payee"), "gateway_type": "stripe",
                "gateway_external_id": "acct_" + noise62(16, self.seed, "acct"), "gateway_status": "active"}

    # subscription items
    def _item_layout(self, i):
        """(pattern row, payer type, payer index, plan index, price index, billed?)
        of generated item i, by arithmetic alone."""
        row = ITEM_PATTERN[i % len(ITEM_PATTERN)]
        j = i
        while ITEM_PATTERN[j % len(ITEM_PATTERN)][3]:
            j -= 1  # the same payer as the item before
        first = ITEM_PATTERN[j % len(ITEM_PATTERN)]
        typ = first[0]
        if self._bperm[typ][2] == 0:
            typ = "org" if typ == "user" else "user"
        if typ == first[0]:
            rank = sum(1 for r in ITEM_PATTERN[:j % len(ITEM_PATTERN)] if r[0] == typ and not r[3])
            g = (j // len(ITEM_PATTERN)) * sum(1 for r in ITEM_PATTERN if r[0] == typ and not r[3]) + rank
        else:
            g = 1_000_000 + j
        a, c, n = self._bperm[typ]
        x = (a * g + c) % n
        paid = row[1]
        key = (typ, paid)
        plan = self._plan_pick.get(key)
        if plan is None:
            specs = [(p, self._plan_spec(p)) for p in range(self.plans.n_base)]
            cands = ([p for p, sp in specs if sp[2] == typ and (sp[4] > 0) == paid]
                     or [p for p, sp in specs if (sp[4] > 0) == paid] or [0])
            plan = self._plan_pick[key] = cands[0]
        price = plan
        if row[5] == "custom_price":
            paidp = self._paid_plans()
            for c2 in range(self.prices.n_base - self.plans.n_base):
                if paidp and paidp[c2 % len(paidp)] == plan:
                    price = self.plans.n_base + c2
                    break
        billed = paid and self._plan_spec(plan)[4] > 0 and row[2] in BILLED_STATUSES and row[5] != "trial"
        return row, typ, x, plan, price, billed

    def _item_amount(self, price_idx, period):
        pr = self._gen_cached(T_PRICE, price_idx, self._gen_price)
        return pr["annual_monthly_amount"] * 12 if period == "annual" else pr["amount"]

    def _gen_bitem(self, i):
        row, typ, x, plan, price, _ = self._item_layout(i)
        _, paid, status, _, period, extra = row
        r = random.Random(mix64(self.tag_seed[T_BITEM] ^ i))
        A, M = self.anchor, (lambda k: add_months(self.anchor, k))
        step = self.item_step
        created = A - 365 * DAY_MS + i * step + r.randrange(max(1, step // 2))
        amount = self._item_amount(price, period) if paid else 0
        free = amount == 0
        start, end, canceled, past_due, ended = created, None, None, None, None
        lifetime, trial = 0, extra == "trial"
        if status == "active" and extra == "after_ended":
            start = M(-2)
        elif status == "active" and not free:
            start, end = (M(-1), M(11)) if period == "annual" else (A, M(1))
            lifetime = 0 if trial else amount * (1 if period == "annual" else 1 + r.randrange(6))
        elif status == "canceled":
            start, end, canceled = A, M(1), A
            lifetime = amount * (1 + r.randrange(6))
        elif status == "upcoming":
            start = M(1)
        elif status == "past_due":
            start, end, past_due = M(-1), A, A
            lifetime = amount * (1 + r.randrange(3))
        elif status == "ended":
            start, end, canceled, ended = M(-3), M(-2), M(-2) - 5 * DAY_MS, M(-2)
            lifetime = amount * 2
        elif status == "abandoned":
            start = M(-1)
        if free:
            end = None
        updated = max(t for t in (created, canceled, past_due, ended, start if start <= A else None) if t is not None)
        nxt = {"amount": money(amount), "date": end} if status == "active" and not free else None
        return {
            "object": "commerce_subscription_item",
            "id": self.bitems.key(i),
            "instance_id": INSTANCE_ID,
            "status": status,
            "plan_id": self.plans.key(plan),
            "price_id": self.prices.key(price),
            "plan_period": period,
            "lifetime_paid": money(lifetime),
            "next_payment": nxt,
            "payer_id": self.payer_key(typ, x),
            "is_free_trial": trial,
            "period_start": start,
            "period_end": end,
            "canceled_at": canceled,
            "past_due_at": past_due,
            "ended_at": ended,
            "created_at": created,
            "updated_at": updated,
            "subscription_id": self.subscription_key(typ, x),  # not in the BAPI's item: its webhooks'
        }

    def item_plan(self, own):
        """The plan an item shows: its plan as it is now (also once deleted), or the stored one."""
        if "plan" in own:
            return own["plan"]
        p = self.plans.index_of(own.get("plan_id")) if isinstance(own.get("plan_id"), str) else None
        return self.plan(p) if p is not None else None

    def _payer_of(self, own):
        if "payer" in own:
            return own["payer"]
        return self.payer(own.get("payer_id")) if isinstance(own.get("payer_id"), str) else None

    def bitem(self, i):
        own = self.own(self.bitems, i)
        out = self._render(own, {"plan": self.item_plan(own), "payer": self._payer_of(own)},
                           {"plan": "price_id", "payer": "payer_id"})
        out.pop("subscription_id", None)
        return out

    @staticmethod
    def plan_is_free(plan):
        if not isinstance(plan, dict):
            return False
        return money_amount(plan.get("fee"), 0) == 0

    def _event_plan(self, own):
        plan = self.item_plan(own)
        if not isinstance(plan, dict):
            return plan
        fee = plan.get("annual_fee") if own.get("plan_period") == "annual" else plan.get("fee")
        return {"id": plan.get("id"), "slug": plan.get("slug"), "name": plan.get("name"),
                "is_recurring": plan.get("is_recurring"), "amount": money_amount(fee, 0),
                "currency": fee.get("currency", "USD") if isinstance(fee, dict) else "USD"}

    def bitem_event(self, i, nested=False):
        """BillingSubscriptionItemEventPayload: standalone (object subscription_item,
        with payer and subscription_id) or nested in a subscription event
        (object commerce_subscription_item, payer and subscription_id null)."""
        own = self.own(self.bitems, i)
        return {
            "object": "commerce_subscription_item" if nested else "subscription_item",
            "id": own.get("id"),
            "status": own.get("status"),
            "is_free_trial": own.get("is_free_trial"),
            "created_at": own.get("created_at"),
            "updated_at": own.get("updated_at"),
            "period_start": own.get("period_start"),
            "period_end": own.get("period_end"),
            "interval": own.get("plan_period"),
            "plan_id": own.get("plan_id"),
            "plan": self._event_plan(own),
            "payer": None if nested else self.payer_event(self._payer_of(own)),
            "subscription_id": None if nested else own.get("subscription_id"),
        }

    def subscription_items(self, sub_id):
        return [i for i in self.live_indices(self.bitems) if self.own(self.bitems, i).get("subscription_id") == sub_id]

    def subscription_ids(self):
        out = {}
        for i in self.live_indices(self.bitems):
            out.setdefault(self.own(self.bitems, i).get("subscription_id"), []).append(i)
        return out

    def subscription_event(self, sub_id):
        """SubscriptionEventPayload of a subscription (the live items with
        that subscription_id), or None."""
        items = self.subscription_items(sub_id)
        if not items:
            return None
        owns = [self.own(self.bitems, i) for i in items]
        st = [o.get("status") for o in owns]
        if "past_due" in st:
            status = "past_due"
        elif any(s in ("active", "canceled") for s in st):
            status = "canceled" if ("active" not in st and "upcoming" not in st) else "active"
        elif all(s in ("ended", "expired", "abandoned") for s in st):
            status = "abandoned" if all(s == "abandoned" for s in st) else "ended"
        elif "incomplete" in st:
            status = "incomplete"
        else:
            status = "active"

        def times(field, when=None):
            return [o.get(field) for o in owns
                    if isinstance(o.get(field), int) and (when is None or o.get("status") in when)]
        payer_id = owns[0].get("payer_id")
        latest = None
        for k in reversed(self.live_indices(self.payatts)):
            pa = self.own(self.payatts, k)
            if pa.get("payer_id") == payer_id:
                latest = pa.get("payment_id")
                break
        paid = any(not self.plan_is_free(self.item_plan(o)) for o in owns)
        return {
            "object": "commerce_subscription",
            "id": sub_id,
            "status": status,
            "active_at": min(times("period_start", ("active", "canceled", "past_due", "ended")), default=None),
            "canceled_at": max(times("canceled_at"), default=None) if status == "canceled" else None,
            "created_at": min(times("created_at"), default=None),
            "ended_at": max(times("ended_at"), default=None) if status == "ended" else None,
            "past_due_at": max(times("past_due_at", ("past_due",)), default=None) if status == "past_due" else None,
            "updated_at": max(times("updated_at"), default=None),
            "latest_payment_id": latest,
            "payer_id": payer_id,
            "payer": self.payer_event(self._payer_of(owns[0])),
            "payment_source_id": self.payment_method(payer_id)["id"] if paid and isinstance(payer_id, str) else None,
            "items": [self.bitem_event(i, nested=True) for i in items],
        }

    # statements and payment attempts
    def _gen_stmt(self, j):
        item = self._billed[j % len(self._billed)]
        row, typ, x, _, price, _ = self._item_layout(item)
        amount = self._item_amount(price, row[4])
        tax = amount * 19 // 100 if typ == "org" else 0
        n = self.stmts.n_base
        ts = self.anchor - (n - j) * self.stmt_step + mix64(self.tag_seed[T_STMT] ^ j) % (self.stmt_step // 4)
        status = "open" if (j % 3 == 2 or row[2] == "past_due") else "closed"
        return {
            "object": "commerce_statement",
            "id": self.stmts.key(j),
            "instance_id": INSTANCE_ID,
            "timestamp": ts,
            "status": status,
            "totals": {"grand_total": money(amount + tax), "subtotal": money(amount), "base_fee": money(amount),
                       "tax_total": money(tax)},
            "payer_id": self.payer_key(typ, x),  # not in the BAPI's statement (it has the payer)
        }

    def stmt_attempts(self, j):
        """Live payment attempts of statement j, in creation order."""
        sid = self.stmts.key(j)
        return [k for k in self.live_indices(self.payatts) if self.own(self.payatts, k).get("statement_id") == sid]

    def stmt(self, j):
        own = self.own(self.stmts, j)
        groups = []
        if "groups" not in own:
            atts = [self.payatt(k) for k in reversed(self.stmt_attempts(j))]
            if atts:
                groups = [{"object": "commerce_statement_group", "timestamp": own.get("timestamp"), "items": atts}]
        out = self._render(own, {"payer": self._payer_of(own), "groups": groups},
                           {"payer": "timestamp", "groups": "totals"})
        out.pop("payer_id", None)
        return out

    def _gen_payatt(self, k):
        j = bisect.bisect_right(self.pa_starts, k) - 1
        nth = k - self.pa_starts[j]
        count = (self.pa_starts[j + 1] if j + 1 < len(self.pa_starts) else self.payatts.n_base) - self.pa_starts[j]
        st = self._gen_cached(T_STMT, j, self._gen_stmt)
        item = self._billed[j % len(self._billed)]
        past_due = self._item_layout(item)[0][2] == "past_due"
        if nth < count - 1 or (st["status"] == "open" and past_due):
            status = "failed"
        else:
            status = "paid" if st["status"] == "closed" else "pending"
        r = random.Random(mix64(self.tag_seed[T_PAY] ^ k))
        created = st["timestamp"] + nth * DAY_MS + r.randrange(3_600_000)
        paid_at = created + 30_000 if status == "paid" else None
        failed_at = created + 60_000 if status == "failed" else None
        payer_id = st["payer_id"]
        pm = self.payment_method(payer_id)
        gw = "pi_" + noise62(24, self.seed, T_PAY, k)
        payee = self.payee()
        return {
            "object": "commerce_payment",
            "id": self.payatts.key(k),
            "payment_id": side_id("cpa_", self.seed, T_PAY, st["id"]),
            "instance_id": INSTANCE_ID,
            "charge_type": "checkout" if j % 2 == 0 else "recurring",
            "payee_id": payee["id"],
            "payee": payee,
            "payer_id": payer_id,
            "subscription_item_id": self.bitems.key(item),
            "amount": st["totals"]["grand_total"],
            "totals": copy.deepcopy(st["totals"]),
            "payment_method_id": pm["id"],
            "payment_method": pm,
            "statement_id": st["id"],
            "gateway_external_id": gw,
            "gateway_external_url": "https://dashboard.stripe.com/payments/" + gw,
            "status": status,
            "paid_at": paid_at,
            "failed_at": failed_at,
            "created_at": created,
            "updated_at": paid_at or failed_at or created,
        }

    def payatt(self, k):
        own = self.own(self.payatts, k)
        return self._render(own, {"payer": self._payer_of(own)}, {"payer": "payer_id"})

    def payatt_event(self, k):
        """PaymentAttemptEventPayload: no object; totals instead of amount;
        payment_source; subscription_items; the webhook's payer."""
        own = self.own(self.payatts, k)
        tot = own.get("totals") if isinstance(own.get("totals"), dict) else {}
        amt = own.get("amount")
        totals = {"subtotal": tot.get("subtotal", amt), "tax_total": tot.get("tax_total", money(0)),
                  "grand_total": tot.get("grand_total", amt)}
        if "per_unit_totals" in tot:
            totals["per_unit_totals"] = tot["per_unit_totals"]
        pm = own.get("payment_method") if isinstance(own.get("payment_method"), dict) else {}
        source = {"id": pm.get("id"), "gateway": pm.get("gateway"),
                  "gateway_external_id": pm.get("gateway_external_id"),
                  "gateway_external_account_id": pm.get("gateway_external_account_id"),
                  "payment_method": pm.get("payment_type"), "status": pm.get("status"),
                  "card_type": pm.get("card_type"), "last4": pm.get("last4")}
        items = []
        sid = own.get("subscription_item_id")
        i = self.bitems.index_of(sid) if isinstance(sid, str) else None
        if i is not None:
            io = self.own(self.bitems, i)
            items.append({"id": io.get("id"), "object": "commerce_subscription_item", "status": io.get("status"),
                          "created_at": io.get("created_at"), "updated_at": io.get("updated_at"),
                          "period_start": io.get("period_start"), "period_end": io.get("period_end"),
                          "interval": io.get("plan_period"), "plan_id": io.get("plan_id"), "plan": self._event_plan(io),
                          "subscription_id": io.get("subscription_id")})
        failed = own.get("status") == "failed"
        return {
            "id": own.get("id"),
            "instance_id": own.get("instance_id", INSTANCE_ID),
            "payment_id": own.get("payment_id"),
            "invoice_id": own.get("statement_id"),
            "statement_id": own.get("statement_id"),
            "gateway_external_id": own.get("gateway_external_id"),
            "status": own.get("status"),
            "created_at": own.get("created_at"),
            "updated_at": own.get("updated_at"),
            "paid_at": own.get("paid_at"),
            "failed_at": own.get("failed_at"),
            "failed_reason": {"code": "card_declined", "decline_code": "insufficient_funds"} if failed else None,
            "billing_date": own.get("created_at"),
            "charge_type": own.get("charge_type"),
            "payee": own.get("payee"),
            "payer": self.payer_event(self._payer_of(own)),
            "totals": totals,
            "payment_source": source,
            "subscription_items": items,
        }

    # waitlist entries
    def _gen_wait(self, i):
        r = random.Random(mix64(self.tag_seed[T_WAIT] ^ i))
        created, updated = self._ctimes(TT_WAIT, i, self.wait_step)
        status = WAITLIST_PATTERN[i % len(WAITLIST_PATTERN)]
        dom = EMAIL_DOMAINS[r.randrange(len(EMAIL_DOMAINS))]
        local = f"Wait.List+{i}" if i % 6 == 1 else (f"zo\u00eb.{i}" if i % 6 == 5 else f"waiting.{i}")
        email = f"{local}@{dom}"
        inv = None
        if status in ("invited", "completed"):
            t = created + r.randrange(1, 10) * DAY_MS
            inv = {"object": "invitation", "id": side_id("inv_", self.seed, T_WAIT, i), "email_address": email,
                   "public_metadata": {}, "revoked": False, "status": "pending" if status == "invited" else "accepted",
                   "url": "https://accounts.example.com/sign-up?__clerk_ticket=" + noise62(32, self.seed, "wle", i),
                   "expires_at": t + 30 * DAY_MS, "created_at": t,
                   "updated_at": t if status == "invited" else t + r.randrange(1, 5) * DAY_MS}
            updated = inv["updated_at"]
        elif status == "rejected":
            updated = created + r.randrange(1, 10) * DAY_MS
        else:
            updated = min(updated, created + r.randrange(1, 5 * DAY_MS))
        return {"object": "waitlist_entry", "id": self.waits.key(i), "email_address": email, "status": status,
                "is_locked": i % 6 == 4, "created_at": created, "updated_at": updated, "invitation": inv}

    def wait(self, i):
        return self.own(self.waits, i)

    # -- ordered views (cached per version) ---------------------------------
    def live_indices(self, kind):
        """Live indices of a Kind in creation order (a range when nothing is deleted)."""
        if not kind.deleted:
            return range(kind.next_index)
        key = ("live", id(kind), self.version)
        got = self._cache.get(key)
        if got is None:
            d = kind.deleted
            got = [i for i in range(kind.next_index) if i not in d]
            self._cache_put(key, got)
        return got

    def _cache_put(self, key, value):
        # Drop stale versioned entries so the cache cannot grow without bound.
        if len(self._cache) > 64:
            for k in [k for k in self._cache if isinstance(k, tuple) and len(k) == 3 and k[2] != self.version]:
                del self._cache[k]
        self._cache[key] = value

    def users_by_updated(self):
        key = ("users_upd", 0, self.version)
        got = self._cache.get(key)
        if got is not None:
            return got
        base = self._cache.get("users_upd_base")
        if base is None:
            base = sorted(range(self.users.n_base), key=lambda i: (self._times(1, i, self.u_step)[1], i))
            self._cache["users_upd_base"] = base
        U = self.users
        if not U.over and not U.deleted and U.next_index == U.n_base:
            got = base
        else:
            skip = U.deleted | U.over.keys()
            rest = [i for i in base if i not in skip]
            extra = sorted((i for i in U.over if U.live(i)), key=lambda i: (self._user_updated(i), i))
            got = list(heapq.merge(rest, extra, key=lambda i: (self._user_updated(i), i)))
        self._cache_put(key, got)
        return got

    def orgs_ordered(self, field):
        if field == "created_at":
            return self.live_indices(self.orgs)
        key = ("orgs_" + field, 0, self.version)
        got = self._cache.get(key)
        if got is None:
            live = self.live_indices(self.orgs)
            if field == "name":
                def k(o):
                    n = self.org(o).get("name")
                    return (n if isinstance(n, str) else json.dumps(n), o)
            else:
                def k(o):
                    return (self.members_count(o), o)
            got = sorted(live, key=k)
            self._cache_put(key, got)
        return got

    def org_mems(self, o):
        key = ("org_mems", o, self.version)
        got = self._cache.get(key)
        if got is None:
            d = self.mems.deleted
            got = [m for m in self._base_org_mems(o) if m not in d]
            got += [m for m in self.org_created_mems.get(o, []) if m not in d]
            got.sort()
            self._cache_put(key, got)
        return got

    def user_mems(self, u):
        out = []
        if u < self.users.n_base:
            for o in range(self.orgs.n_base):
                m = self._base_mem_of_pair(o, u)
                if m is not None and self.mems.live(m):
                    out.append(m)
        out += [m for m, (o, uu) in self.mem_links.items() if uu == u and self.mems.live(m)]
        out.sort()
        return out

    # -- prepared pages (config prepared_pages) ------------------------------
    # An object's JSON as a listing shows it is encoded once and kept with a
    # key made of what it was rendered from: the stored objects it shows, by
    # identity (a change replaces a stored object, never alters it; a
    # generated object is None and never changes), and the counters it reads
    # (role_rev, members_count).  A change to the object, or to one it embeds
    # (a user in its memberships and in the invitations it sent, an
    # organization in its memberships, invitations and domains, a role or a
    # permission in memberships, invitations and roles), changes the key:
    # those bytes are encoded again when next served, and nothing else is.
    # A view is (name, variant...): Store.prepared, App.listing.
    def _prep_fns(self, view):
        """(deps, render) of a listing view: deps(i) -> (key, stored objects)."""
        name = view[0]
        if name == "users":
            over = self.users.over

            def deps(i):
                got = over.get(i)
                return (id(got),), got
            return deps, self.user
        if name == "orgs":
            _, mc, mm = view
            over = self.orgs.over

            def deps(i):
                got = over.get(i)
                return (id(got), self.members_count(i) if mc else 0), got
            return deps, lambda i: self.org_view(i, mc, mm)
        if name == "mems":
            M, O, U = self.mems.over, self.orgs.over, self.users.over

            def deps(m):
                o, u = self.mem_link(m)
                got = (M.get(m), O.get(o), U.get(u))
                return (id(got[0]), id(got[1]), id(got[2]), self.role_rev), got
            return deps, self.membership
        if name == "orginvs":
            with_org = view[1]
            OI, O, U = self.orginvs, self.orgs.over, self.users

            def deps(i):
                inviter = self.own(OI, i).get("inviter_id")
                u = U.index_of(inviter) if isinstance(inviter, str) else None
                if not U.live(u):
                    u = -1
                got = (OI.over.get(i), U.over.get(u), O.get(self.orginv_links.parent(i)) if with_org else None)
                return (id(got[0]), id(got[1]), id(got[2]), u, self.role_rev), got
            return deps, lambda i: self.orginv(i, with_org=with_org)
        if name == "doms":
            D, O = self.doms.over, self.orgs.over

            def deps(i):
                got = (D.get(i), O.get(self.dom_links.parent(i)))
                return (id(got[0]), id(got[1])), got
            return deps, self.domain
        kind, render = {"invs": (self.invs, self.invitation), "roles": (self.roles, self.role),
                        "perms": (self.perms, self.permission), "sessions": (self.sessions, self.session),
                        "waits": (self.waits, self.wait)}[name]
        over = kind.over

        def deps(i):
            got = over.get(i)
            return (id(got), self.role_rev if kind is self.roles else 0), got
        return deps, render

    def prepared(self, view, idxs):
        """The JSON bytes of objects idxs as listing `view` shows them, from
        what was prepared while it is still what they show (else encoded now
        and kept); None if one of them cannot be served apart from the rest
        of its answer (encode_piece)."""
        if self._prep_raw != RAW_IN_USE[0]:  # raw values are written as such from now on
            self._prep.clear()
            self._prep_raw = RAW_IN_USE[0]
        cache = self._prep.get(view)
        if cache is None:
            cache = self._prep[view] = {}
        deps, render = self._prep_fns(view)
        out, whole = [], True
        for i in idxs:
            key, objs = deps(i)
            got = cache.get(i)
            if got is None or got[0] != key:
                got = cache[i] = (key, encode_piece(render(i)), objs)
            if got[1] is None:
                whole = False
            out.append(got[1])
        return out if whole else None

    # -- lookups -------------------------------------------------------------
    def users_by_email(self, emails):
        wanted = {e.lower() for e in emails}
        found = set()
        U = self.users
        for e in wanted:
            local = e.split("@", 1)[0]
            for d in set(re.findall(r"\d+", local)):
                i = int(d)
                if i < U.n_base and i not in U.over and U.live(i):
                    if e in (x.lower() for x in self._user_core(i)[3]):
                        found.add(i)
        for i, obj in U.over.items():
            if not U.live(i):
                continue
            for ea in obj.get("email_addresses") or []:
                if isinstance(ea, dict) and str(ea.get("email_address", "")).lower() in wanted:
                    found.add(i)
        return found

    def user_by_username(self, name):
        """Index of the live user with this username (case-insensitive), or None."""
        want = name.lower()
        U = self.users
        for i, obj in U.over.items():
            if U.live(i) and isinstance(obj.get("username"), str) and obj["username"].lower() == want:
                return i
        m = re.search(r"\d+$", want)  # generated usernames end in their index
        if m:
            i = int(m.group())
            if i < U.n_base and i not in U.over and U.live(i):
                un = self._user_core(i)[2]
                if un is not None and un.lower() == want:
                    return i
        return None

    def user_by_external_id(self, ext):
        """Index of the live user with this external_id, or None."""
        U = self.users
        for i, obj in U.over.items():
            if U.live(i) and obj.get("external_id") == ext:
                return i
        m = re.fullmatch(r"ext-(\d{6,})", ext)  # generated external ids: ext-<index>
        if m:
            i = int(m.group(1))
            if i < U.n_base and i not in U.over and U.live(i) and self._gen_user(i).get("external_id") == ext:
                return i
        return None

    # -- mutations (callers hold self.lock) ----------------------------------
    def _bump(self):
        self.version += 1

    def _stamp(self, which):
        t = max(now_ms(), self.last_created[which] + 1)
        self.last_created[which] = t
        return t

    @staticmethod
    def _normalise_identifiers(body, idx_seed, t):
        """Accept Clerk create-style 'email_address': [...] / 'phone_number': [...]."""
        body = dict(body)
        for field, listname, obj, idbase in (("email_address", "email_addresses", "email_address", 0),
                                             ("phone_number", "phone_numbers", "phone_number", 100)):
            vals = body.pop(field, None)
            if vals is None and isinstance(body.get(listname), list) and \
                    all(isinstance(v, str) for v in body[listname]):
                vals = body.pop(listname)
            if vals is None:
                continue
            if isinstance(vals, str):
                vals = [vals]
            items = []
            for j, v in enumerate(vals):
                item = {"id": side_id("idn_", idx_seed, T_IDN, t, idbase + j), "object": obj, obj: v,
                        "reserved": False,
                        "verification": {"object": "verification_admin", "status": "verified",
                                         "strategy": "admin", "attempts": None, "expire_at": None},
                        "linked_to": [], "created_at": t, "updated_at": t}
                if obj == "email_address":
                    item["matches_sso_connection"] = False
                else:
                    item.update({"reserved_for_second_factor": False, "default_second_factor": False,
                                 "backup_codes": None})
                items.append(item)
            body[listname] = items
            primary = "primary_email_address_id" if obj == "email_address" else "primary_phone_number_id"
            body.setdefault(primary, items[0]["id"] if items else None)
        return body

    def _new_index(self, kind, body):
        idx = kind.next_index
        kind.next_index += 1
        want = body.get("id")
        if isinstance(want, str) and want:
            if kind.index_of(want) is not None:
                raise ControlError(409, f"id {want} already exists")
            kind.custom_ids[want] = idx
            kind.custom_by_idx[idx] = want
        return idx

    def create_user(self, body):
        t = self._stamp("users")
        body = self._normalise_identifiers(body, self.seed, t)
        U = self.users
        if isinstance(body.get("id"), str) and U.index_of(body["id"]) is not None:
            raise ControlError(409, f"id {body['id']} already exists")
        i = self._new_index(U, body)
        tmpl = self._gen_user(i)
        tmpl.update(created_at=t, updated_at=t, last_sign_in_at=None, last_active_at=None)
        for lst in ("email_addresses", "phone_numbers", "external_accounts"):
            tmpl[lst] = [dict(x, created_at=t, updated_at=t) for x in tmpl[lst]]
        obj = deep_merge(tmpl, body)
        obj["id"] = U.key(i) if "id" not in body else body["id"]
        U.over[i] = obj
        self._bump()
        return obj

    def create_org(self, body, replace=False):
        """replace=True: body's top-level fields replace the generated
        template's instead of merging into them (what POST /v1/organizations needs)."""
        t = self._stamp("orgs")
        O = self.orgs
        if isinstance(body.get("id"), str) and O.index_of(body["id"]) is not None:
            raise ControlError(409, f"id {body['id']} already exists")
        if "slug" in body and self.org_index(body["slug"]) is not None:
            raise ControlError(409, f"slug {body['slug']} already exists")
        o = self._new_index(O, body)
        tmpl = self._gen_org(o)
        tmpl.update(created_at=t, updated_at=t)
        if "name" in body and "slug" not in body and isinstance(body["name"], str):
            tmpl["slug"] = f"{slugify(body['name']) or 'org'}-{noise62(6, self.seed, o, t).lower()}"
        obj = dict(tmpl, **copy.deepcopy(body)) if replace else deep_merge(tmpl, body)
        obj["id"] = O.key(o) if "id" not in body else body["id"]
        O.over[o] = obj
        self._bump()
        return obj

    def create_membership(self, body):
        o = self.org_index(str(body.get("organization_id", "")), allow_slug=False)
        u = self.users.index_of(str(body.get("user_id", "")))
        if o is None:
            raise ControlError(404, "organization not found")
        if not self.users.live(u):
            raise ControlError(404, "user not found")
        if self.mem_of_pair(o, u) is not None:
            raise ControlError(409, "already_a_member_in_organization")
        t = self._stamp("mems")
        M = self.mems
        m = self._new_index(M, body)
        role = body.get("role", "org:member")
        role_name, perms = self.role_view(role)
        own = {"id": M.key(m), "object": "organization_membership", "role": role, "role_name": role_name,
               "permissions": list(perms), "public_metadata": {}, "private_metadata": {},
               "created_at": t, "updated_at": t}
        rest = {k: v for k, v in body.items() if k not in ("organization_id", "user_id")}
        own = deep_merge(own, rest)
        M.over[m] = own
        self.mem_links[m] = (o, u)
        self.mem_pairs[(o, u)] = m
        self.org_created_mems.setdefault(o, []).append(m)
        self.member_delta[o] = self.member_delta.get(o, 0) + 1
        self._bump()
        return self.membership(m)

    def _current(self, kind, idx):
        if kind is self.users:
            return self.user(idx)
        if kind is self.orgs:
            return self.org(idx)
        got = self.mems.over.get(idx)
        return got if got is not None else self._gen_mem_own(idx)

    def patch(self, kind, idx, body, replace=False):
        """Deep-merge body into the object (replace=True: each top-level field
        of body replaces the object's, as the /v1 write endpoints do)."""
        note_raw(body)
        cur = self._current(kind, idx)
        if kind is self.users:
            body = self._normalise_identifiers(body, self.seed, now_ms() * 1000 + self.version % 1000)
        if "role" in body and kind is self.mems and "role_name" not in body:
            name, perms = self.role_view(body["role"])
            body = dict(body, role_name=name)
            body.setdefault("permissions", list(perms))
        obj = dict(cur, **copy.deepcopy(body)) if replace else deep_merge(cur, body)
        if "updated_at" not in body:
            prev = int_or(cur.get("updated_at"), 0)
            obj["updated_at"] = max(now_ms(), prev + 1)
        kind.over[idx] = obj
        self._bump()
        return self.membership(idx) if kind is self.mems else obj

    def delete_membership(self, m):
        if not self.mems.live(m):
            return False
        self.mems.deleted.add(m)
        o, _ = self.mem_link(m)
        self.member_delta[o] = self.member_delta.get(o, 0) - 1
        self._bump()
        return True

    def delete_user(self, u):
        for m in self.user_mems(u):
            self.delete_membership(m)
            self.cascade_log.append(("organization_memberships", m))
        for i in self.sess_links.of_parent(u):
            self.sessions.deleted.add(i)
            self.cascade_log.append(("sessions", i))
        self.users.deleted.add(u)
        self._bump()

    def delete_org(self, o):
        for m in list(self.org_mems(o)):
            self.delete_membership(m)
            self.cascade_log.append(("organization_memberships", m))
        for name, links in (("organization_invitations", self.orginv_links),
                            ("organization_domains", self.dom_links)):
            for i in links.of_parent(o):
                links.kind.deleted.add(i)
                self.cascade_log.append((name, i))
        self.orgs.deleted.add(o)
        self._bump()

    # -- mutations of the kinds added later (callers hold self.lock) -------
    def _live_parent(self, kind, ident, what):
        idx = self.org_index(str(ident or ""), allow_slug=False) if kind is self.orgs else kind.index_of(str(ident or ""))
        if not ident:
            raise ControlError(400, f"{what}_id is required")
        if not kind.live(idx):
            raise ControlError(404, f"{what} {ident} not found")
        return idx

    def _create_child(self, kind, body, own):
        if isinstance(body.get("id"), str) and kind.index_of(body["id"]) is not None:
            raise ControlError(409, f"id {body['id']} already exists")
        i = self._new_index(kind, body)
        obj = deep_merge(own(i), body)
        obj["id"] = kind.key(i) if "id" not in body else body["id"]
        kind.over[i] = obj
        self._roles_changed(kind)
        self._bump()
        return i

    def _resolve_perms(self, perms):
        """Permission ids or keys -> ids (anything but a string is stored as given)."""
        if not isinstance(perms, list):
            return perms
        out = []
        for p in perms:
            if isinstance(p, str):
                idx = self.perm_index(p)
                if idx is None:
                    raise ControlError(404, f"permission {p} not found")
                out.append(self.perms.key(idx))
            else:
                out.append(p)
        return out

    def create_orginv(self, body):
        note_raw(body)
        o = self._live_parent(self.orgs, body.get("organization_id"), "organization")
        body = dict(body, organization_id=self.orgs.key(o))
        email = body.get("email_address")
        if body.get("status", "pending") == "pending" and isinstance(email, str):
            for i in self.orginv_links.of_parent(o):
                own = self.own(self.orginvs, i)
                if own.get("status") == "pending" and str(own.get("email_address", "")).lower() == email.lower():
                    raise ControlError(409, "organization_invitation_not_unique")
        t = self._stamp("orginvs")
        body = self._expiry(body, t)
        role = body.get("role", "org:member")

        def own(i):
            return {"object": "organization_invitation", "id": self.orginvs.key(i),
                    "email_address": f"invitee.new{i}@example.com", "role": role,
                    "role_name": self.role_view(role)[0], "organization_id": self.orgs.key(o), "inviter_id": None,
                    "status": "pending", "public_metadata": {}, "private_metadata": {},
                    "url": "https://accounts.example.com/accept-invitation?__clerk_ticket="
                           + noise62(32, self.seed, "oi-new", i, t),
                    "expires_at": t + 30 * DAY_MS, "created_at": t, "updated_at": t}
        i = self._create_child(self.orginvs, body, own)
        self.orginv_links.add(i, o)
        return i

    def _expiry(self, body, t):
        """A create body's expires_in_days (whole days from now) as expires_at."""
        if "expires_in_days" not in body:
            return body
        body = dict(body)
        days = body.pop("expires_in_days")
        if isinstance(days, int) and not isinstance(days, bool) and "expires_at" not in body:
            body["expires_at"] = t + days * DAY_MS
        return body

    def create_inv(self, body, unique=True):
        note_raw(body)
        email = body.get("email_address")
        if unique and body.get("status", "pending") == "pending" and isinstance(email, str):
            for i in self.live_indices(self.invs):
                own = self.invitation(i)
                if own.get("status") == "pending" and str(own.get("email_address", "")).lower() == email.lower():
                    raise ControlError(409, "duplicate_record: there is already a pending invitation for " + email)
        t = self._stamp("invs")
        body = self._expiry(body, t)
        status = body.get("status", "pending")

        def own(i):
            return {"object": "invitation", "id": self.invs.key(i), "email_address": f"guest.new{i}@example.com",
                    "public_metadata": {}, "revoked": status == "revoked", "status": status,
                    "url": "https://accounts.example.com/sign-up?__clerk_ticket=" + noise62(32, self.seed, "inv-new", i, t),
                    "expires_at": t + 30 * DAY_MS, "created_at": t, "updated_at": t}
        return self._create_child(self.invs, body, own)

    def create_dom(self, body):
        note_raw(body)
        o = self._live_parent(self.orgs, body.get("organization_id"), "organization")
        body = dict(body, organization_id=self.orgs.key(o))
        name = body.get("name")
        if isinstance(name, str):
            for i in self.live_indices(self.doms):
                if str(self.own(self.doms, i).get("name", "")).lower() == name.lower():
                    raise ControlError(409, "organization_domain_already_exists")
        t = self._stamp("doms")

        def own(i):
            base = slugify(str(self.org(o).get("name") or "")) or "org"
            return {"object": "organization_domain", "id": self.doms.key(i), "organization_id": self.orgs.key(o),
                    "name": f"{base}-new{i}.example.com", "enrollment_mode": "manual_invitation",
                    "affiliation_email_address": None, "affiliation_verification": None,
                    "ownership_verification": None, "verification": None, "total_pending_invitations": 0,
                    "total_pending_suggestions": 0, "created_at": t, "updated_at": t}
        if "affiliation_verification" in body and "verification" not in body:
            body["verification"] = copy.deepcopy(body["affiliation_verification"])
        i = self._create_child(self.doms, body, own)
        self.dom_links.add(i, o)
        return i

    def create_role(self, body):
        note_raw(body)
        key = body.get("key")
        if isinstance(key, str) and any(self.own(self.roles, i).get("key") == key for i in self.live_indices(self.roles)):
            raise ControlError(409, f"a role with key {key} already exists")
        if "permissions" in body:
            body = dict(body, permissions=self._resolve_perms(body["permissions"]))
        t = self._stamp("roles")

        def own(i):
            k = key if isinstance(key, str) else f"org:role_{i}"
            return {"object": "role", "id": self.roles.key(i), "name": k.split(":", 1)[-1].replace("_", " ").title(),
                    "key": k, "description": None, "is_creator_eligible": False, "permissions": [],
                    "created_at": t, "updated_at": t}
        return self._create_child(self.roles, body, own)

    def create_perm(self, body):
        note_raw(body)
        key = body.get("key")
        if isinstance(key, str) and self.perm_index(key) is not None:
            raise ControlError(409, f"a permission with key {key} already exists")
        t = self._stamp("perms")

        def own(i):
            k = key if isinstance(key, str) else f"org:feature{i}:manage"
            return {"object": "permission", "id": self.perms.key(i),
                    "name": k.split(":", 1)[-1].replace(":", " ").replace("_", " ").title(), "key": k,
                    "description": "", "type": "user", "created_at": t, "updated_at": t}
        return self._create_child(self.perms, body, own)

    def create_session(self, body):
        note_raw(body)
        u = self._live_parent(self.users, body.get("user_id"), "user")
        body = dict(body, user_id=self.users.key(u))
        t = self._stamp("sessions")
        status = body.get("status", "active")

        def own(i):
            return {"object": "session", "id": self.sessions.key(i), "user_id": self.users.key(u),
                    "client_id": self.client_id(u, 0), "actor": None, "status": status,
                    "last_active_organization_id": None, "last_active_at": t,
                    "latest_activity": None if status == "pending" else {
                        "object": "session_activity", "id": side_id("activity_", self.seed, "new", i, t),
                        "device_type": "desktop", "is_mobile": False, "browser_name": "Chrome",
                        "browser_version": "128.0.0.0", "ip_address": "127.0.0.1"},
                    "expire_at": t + 7 * DAY_MS, "abandon_at": t + 30 * DAY_MS, "updated_at": t, "created_at": t,
                    "tasks": [{"key": "choose-organization"}] if status == "pending" else None}
        i = self._create_child(self.sessions, body, own)
        self.sess_links.add(i, u)
        return i

    # -- billing and the waitlist: control API -----------------------------------
    def _billing_body(self, kind, body, cur=None):
        """A create or PATCH body of a billing kind or a waitlist entry, made
        whole: money given in cents, features given by slug, and the
        timestamps and invitation a status change implies (unless given)."""
        body = dict(body)
        for name in ("plans", "prices", "bitems", "payatts"):
            if kind is getattr(self, name):
                for f in MONEY_FIELDS[name]:
                    if isinstance(body.get(f), int) and not isinstance(body.get(f), bool):
                        body[f] = money(body[f])
        cur = cur or {}
        new = body.get("status") if body.get("status") != cur.get("status") else None
        t = now_ms()
        if kind is self.plans and isinstance(body.get("features"), list):
            body["features"] = [self.feature(f) if isinstance(f, str) else f for f in body["features"]]
        elif kind is self.prices:
            for n, f in (("amount", "fee"), ("annual_monthly_amount", "annual_monthly_fee")):
                if isinstance(body.get(n), int) and f not in body:
                    body[f] = money(body[n])
        elif kind is self.bitems and new in ITEM_STATUS_TIME:
            f = ITEM_STATUS_TIME[new]
            if f not in body and cur.get(f) is None:
                body[f] = t
        elif kind is self.payatts:
            if new in PAYMENT_STATUS_TIME:
                f = PAYMENT_STATUS_TIME[new]
                if f not in body and cur.get(f) is None:
                    body[f] = t
            if isinstance(body.get("amount"), dict) and "totals" not in body:
                body["totals"] = {"grand_total": body["amount"], "subtotal": body["amount"],
                                  "base_fee": body["amount"], "tax_total": money(0)}
        elif kind is self.waits and new is not None and "invitation" not in body:
            inv = cur.get("invitation")
            if new in ("invited", "completed") and not isinstance(inv, dict):
                email = body.get("email_address", cur.get("email_address"))
                inv = {"object": "invitation", "id": side_id("inv_", self.seed, "wle-new", cur.get("id"), t),
                       "email_address": email, "public_metadata": {}, "revoked": False, "status": "pending",
                       "url": "https://accounts.example.com/sign-up?__clerk_ticket="
                              + noise62(32, self.seed, "wle-new", cur.get("id"), t),
                       "expires_at": t + 30 * DAY_MS, "created_at": t, "updated_at": t}
                body["invitation"] = inv
            if new == "completed" and isinstance(inv, dict) and inv.get("status") != "accepted":
                body["invitation"] = dict(inv, status="accepted", updated_at=t)
        return body

    def _payer_from_body(self, body, required=True):
        """Pop payer_user_id / payer_organization_id (or read payer_id / a
        whole payer) from a create body: (payer id, payer type, stored payer or None)."""
        uid, oid = body.pop("payer_user_id", None), body.pop("payer_organization_id", None)
        if uid:
            u = self._live_parent(self.users, uid, "user")
            return self.payer_key("user", u), "user", None
        if oid:
            o = self._live_parent(self.orgs, oid, "organization")
            return self.payer_key("org", o), "org", None
        if isinstance(body.get("payer"), dict):
            payer = body["payer"]
            pid = payer.get("id") or body.get("payer_id") or side_id("cpayer_", self.seed, "new", json.dumps(
                payer, sort_keys=True, default=str))
            stored = dict({"object": "commerce_payer", "id": pid, "instance_id": INSTANCE_ID}, **payer)
            stored["id"] = pid
            body["payer"] = stored
            return pid, ("org" if payer.get("organization_id") else "user"), stored
        if isinstance(body.get("payer_id"), str):
            got = self.payer_index(body["payer_id"])
            if got is None:
                raise ControlError(404, f"payer {body['payer_id']} not found")
            return body["payer_id"], got[0], None
        if required:
            raise ControlError(400, "payer_user_id, payer_organization_id, payer_id or payer is required")
        return None, None, None

    def create_plan(self, body):
        note_raw(body)
        body = dict(body)
        with_price = body.pop("create_price", True)
        slug = body.get("slug")
        if isinstance(slug, str) and self.plan_index(slug) is not None:
            raise ControlError(409, f"a plan with slug {slug} already exists")
        body = self._billing_body(self.plans, body)
        fee = money_amount(body.get("fee"), 1000)

        def own(i):
            return {"object": "commerce_plan", "id": self.plans.key(i), "name": f"Plan {i}", "fee": money(fee),
                    "annual_monthly_fee": money(fee), "annual_fee": money(fee * 12), "description": None,
                    "product_id": side_id("cprd_", self.seed, "product"), "is_default": False,
                    "is_recurring": fee > 0, "publicly_visible": True, "has_base_fee": fee > 0,
                    "for_payer_type": "user", "slug": f"plan_{i}", "avatar_url": None, "features": [],
                    "free_trial_enabled": False, "free_trial_days": None}
        i = self._create_child(self.plans, body, own)
        if with_price:
            pl = self.plan(i)
            am = money_amount(pl.get("annual_monthly_fee"), fee)
            self.create_price({"plan_id": pl["id"], "is_default": True, "amount": money_amount(pl.get("fee"), fee),
                               "annual_monthly_amount": am})
        return i

    def create_price(self, body):
        note_raw(body)
        p = self.plan_index(body.get("plan_id")) if body.get("plan_id") else None
        if not body.get("plan_id"):
            raise ControlError(400, "plan_id is required")
        if p is None:
            raise ControlError(404, f"plan {body['plan_id']} not found")
        pl = self.plan(p)
        body = self._billing_body(self.prices, dict(body, plan_id=self.plans.key(p)))
        t = self._stamp("prices")
        amt = int_or(body.get("amount"), money_amount(pl.get("fee"), 0))
        am = int_or(body.get("annual_monthly_amount"), money_amount(pl.get("annual_monthly_fee"), amt))

        def own(i):
            return {"object": "commerce_price", "id": self.prices.key(i), "plan_id": self.plans.key(p),
                    "instance_id": INSTANCE_ID, "currency": "USD", "currency_symbol": "$", "amount": amt,
                    "annual_monthly_amount": am, "fee": money(amt), "annual_monthly_fee": money(am),
                    "description": None, "is_default": False, "created_at": t, "supported_billing_periods": "both"}
        return self._create_child(self.prices, body, own)

    def create_bitem(self, body):
        note_raw(body)
        body = dict(body)
        payer_id, typ, _ = self._payer_from_body(body)
        if body.get("plan_id"):
            p = self.plan_index(body["plan_id"])
            if p is None:
                raise ControlError(404, f"plan {body['plan_id']} not found")
        else:
            live = list(self.live_indices(self.plans))
            cands = ([i for i in live if self.plan(i).get("for_payer_type") == typ and self.plan(i).get("is_default")]
                     or [i for i in live if self.plan(i).get("for_payer_type") == typ] or live)
            if not cands:
                raise ControlError(409, "there is no plan to subscribe to")
            p = cands[0]
        pl = self.plan(p)
        body["plan_id"] = self.plans.key(p)
        if body.get("price_id"):
            pr = self.prices.index_of(body["price_id"])
            if not self.prices.live(pr):
                raise ControlError(404, f"price {body['price_id']} not found")
        else:
            pr = next((i for i in self.live_indices(self.prices) if self.price(i).get("plan_id") == pl.get("id")
                       and self.price(i).get("is_default")), None)
        period = body.get("plan_period", "month")
        if pr is not None:
            po = self.price(pr)
            amount = int_or(po.get("annual_monthly_amount"), 0) * 12 if period == "annual" else int_or(po.get("amount"), 0)
        else:
            amount = money_amount(pl.get("annual_fee" if period == "annual" else "fee"), 0)
        status = body.get("status", "active")
        body = self._billing_body(self.bitems, body, {"status": None})
        t = self._stamp("bitems")
        got = self.payer_index(payer_id)
        sub = self.subscription_key(*got) if got else side_id("csub_", self.seed, "sub", payer_id)
        free = amount == 0
        end = None if free else add_months(t, 12 if period == "annual" else 1)

        def own(i):
            return {"object": "commerce_subscription_item", "id": self.bitems.key(i), "instance_id": INSTANCE_ID,
                    "status": status, "plan_id": self.plans.key(p),
                    "price_id": self.prices.key(pr) if pr is not None else None, "plan_period": period,
                    "lifetime_paid": money(0 if free or status != "active" else amount),
                    "next_payment": None if free or status != "active" else {"amount": money(amount), "date": end},
                    "payer_id": payer_id, "is_free_trial": False, "period_start": t, "period_end": end,
                    "canceled_at": None, "past_due_at": None, "ended_at": None, "created_at": t, "updated_at": t,
                    "subscription_id": sub}
        return self._create_child(self.bitems, body, own)

    def create_stmt(self, body):
        note_raw(body)
        body = dict(body)
        payer_id, _, _ = self._payer_from_body(body)
        amt = body.pop("amount", 0)
        t = self._stamp("stmts")

        def own(i):
            return {"object": "commerce_statement", "id": self.stmts.key(i), "instance_id": INSTANCE_ID,
                    "timestamp": t, "status": "open",
                    "totals": {"grand_total": money(amt), "subtotal": money(amt), "base_fee": money(amt),
                               "tax_total": money(0)},
                    "payer_id": payer_id}
        return self._create_child(self.stmts, body, own)

    def create_payatt(self, body):
        note_raw(body)
        j = self._live_parent(self.stmts, body.get("statement_id"), "statement")
        so = self.own(self.stmts, j)
        payer_id = so.get("payer_id") or (so.get("payer") or {}).get("id")
        body = dict(body, statement_id=self.stmts.key(j))
        status = body.get("status", "pending")
        item = body.get("subscription_item_id")
        if item is None:
            for i in reversed(self.live_indices(self.bitems)):
                io = self.own(self.bitems, i)
                if io.get("payer_id") == payer_id and not self.plan_is_free(self.item_plan(io)):
                    item = io.get("id")
                    break
        body = self._billing_body(self.payatts, body, {"status": None})
        t = self._stamp("payatts")
        tot = so.get("totals") if isinstance(so.get("totals"), dict) else {}
        amount = tot.get("grand_total", money(0))
        pm = self.payment_method(payer_id)
        payee = self.payee()

        def own(k):
            gw = "pi_" + noise62(24, self.seed, "pa-new", k, t)
            return {"object": "commerce_payment", "id": self.payatts.key(k),
                    "payment_id": side_id("cpa_", self.seed, T_PAY, so.get("id")), "instance_id": INSTANCE_ID,
                    "charge_type": "recurring", "payee_id": payee["id"], "payee": payee, "payer_id": payer_id,
                    "subscription_item_id": item, "amount": amount, "totals": copy.deepcopy(tot) or None,
                    "payment_method_id": pm["id"], "payment_method": pm, "statement_id": so.get("id"),
                    "gateway_external_id": gw, "gateway_external_url": "https://dashboard.stripe.com/payments/" + gw,
                    "status": status, "paid_at": t if status == "paid" else None,
                    "failed_at": t if status == "failed" else None, "created_at": t, "updated_at": t}
        k = self._create_child(self.payatts, body, own)
        if "payer" in so and "payer" not in body:
            self.payatts.over[k] = self._render(self.payatts.over[k], {"payer": so["payer"]}, {"payer": "payer_id"})
        return k

    def create_wait(self, body):
        note_raw(body)
        email = body.get("email_address")
        if isinstance(email, str):
            for i in self.live_indices(self.waits):
                if str(self.wait(i).get("email_address", "")).lower() == email.lower():
                    raise ControlError(409, f"{email} is already on the waitlist")
        t = self._stamp("waits")
        addr = email if isinstance(email, str) else f"waiting.new{self.waits.next_index}@example.com"
        body = self._billing_body(self.waits, body, {"status": "pending", "id": f"new{t}", "email_address": addr})

        def own(i):
            return {"object": "waitlist_entry", "id": self.waits.key(i), "email_address": addr,
                    "status": "pending", "is_locked": False, "created_at": t, "updated_at": t, "invitation": None}
        return self._create_child(self.waits, body, own)

    def patch_more(self, kind, idx, body, replace=False):
        """PATCH of an object of the kinds added later: deep merge (replace=True:
        top-level fields replace), then updated_at = now."""
        note_raw(body)
        cur = self.own(kind, idx)
        body = dict(body)
        if kind is self.orginvs and "role" in body and "role_name" not in body:
            body["role_name"] = self.role_view(body["role"])[0]
        if kind is self.invs and "status" in body and "revoked" not in body:
            body["revoked"] = body["status"] == "revoked"
        if kind is self.doms and "affiliation_verification" in body and "verification" not in body:
            body["verification"] = copy.deepcopy(body["affiliation_verification"])
        if kind is self.roles and "permissions" in body:
            body["permissions"] = self._resolve_perms(body["permissions"])
        if kind is self.sessions and body.get("status") == "pending" and "tasks" not in body:
            body["tasks"] = [{"key": "choose-organization"}]
        elif kind is self.sessions and "status" in body and body["status"] != "pending" and "tasks" not in body \
                and cur.get("status") == "pending":
            body["tasks"] = None
        body = self._billing_body(kind, body, cur)
        obj = dict(cur, **copy.deepcopy(body)) if replace else deep_merge(cur, body)
        if "updated_at" not in body and "updated_at" in cur:  # (plans, prices and statements have none)
            obj["updated_at"] = max(now_ms(), int_or(cur.get("updated_at"), 0) + 1)
        kind.over[idx] = obj
        self._roles_changed(kind)
        self._bump()
        return obj

    def delete_child(self, kind, idx):
        if not kind.live(idx):
            return False
        if kind is self.stmts:
            for k in self.stmt_attempts(idx):
                self.payatts.deleted.add(k)
                self.cascade_log.append(("billing_payment_attempts", k))
        kind.deleted.add(idx)
        self._roles_changed(kind)
        self._bump()
        return True

    def state(self):
        return {
            "users": self.users.live_count(),
            "organizations": self.orgs.live_count(),
            "organization_memberships": self.mems.live_count(),
            "organization_invitations": self.orginvs.live_count(),
            "invitations": self.invs.live_count(),
            "organization_domains": self.doms.live_count(),
            "organization_roles": self.roles.live_count(),
            "organization_permissions": self.perms.live_count(),
            "sessions": self.sessions.live_count(),
            "billing_plans": self.plans.live_count(),
            "billing_prices": self.prices.live_count(),
            "billing_subscription_items": self.bitems.live_count(),
            "billing_statements": self.stmts.live_count(),
            "billing_payment_attempts": self.payatts.live_count(),
            "waitlist_entries": self.waits.live_count(),
            "seed": self.seed,
            "billing_anchor": self.anchor,
            "generated": {"users": self.users.n_base, "organizations": self.orgs.n_base,
                          "organization_memberships": self.mems.n_base,
                          "organization_invitations": self.orginvs.n_base, "invitations": self.invs.n_base,
                          "organization_domains": self.doms.n_base, "organization_roles": self.roles.n_base,
                          "organization_permissions": self.perms.n_base, "sessions": self.sessions.n_base,
                          "billing_plans": self.plans.n_base, "billing_prices": self.prices.n_base,
                          "billing_subscription_items": self.bitems.n_base,
                          "billing_statements": self.stmts.n_base,
                          "billing_payment_attempts": self.payatts.n_base,
                          "waitlist_entries": self.waits.n_base},
        }


# ---------------------------------------------------------------------------
# Query-parameter parsing
# ---------------------------------------------------------------------------

USERS_CLERK_PARAMS = {
    "email_address", "phone_number", "external_id", "username", "web3_wallet", "user_id", "organization_id",
    "query", "email_address_query", "phone_number_query", "username_query", "name_query", "banned",
    "last_active_at_before", "last_active_at_after", "last_active_at_since", "created_at_before",
    "created_at_after", "last_sign_in_at_before", "last_sign_in_at_after", "provider", "provider_user_id",
    "limit", "offset", "starting_after", "order_by",
}
ORGS_CLERK_PARAMS = {"limit", "offset", "include_members_count", "include_missing_member_with_elevated_permissions",
                     "query", "user_id", "organization_id", "order_by"}
ORG_MEMS_CLERK_PARAMS = {"limit", "offset", "order_by", "user_id", "email_address", "phone_number", "username",
                         "web3_wallet", "role", "query", "email_address_query", "phone_number_query",
                         "username_query", "name_query", "last_active_at_before", "last_active_at_after",
                         "created_at_before", "created_at_after"}
ALWAYS_OK = {"__clerk_api_version"}


def check_params(q, supported, clerk_known):
    for name in q:
        if name in supported or name in ALWAYS_OK:
            continue
        if name in clerk_known:
            raise ApiError(422, "form_param_unknown", "is unknown",
                           f"{name} is a valid Clerk parameter but is not supported by this mock server.",
                           {"param_name": name})
        raise ApiError(422, "form_param_unknown", "is unknown",
                       f"{name} is not a valid parameter for this request.", {"param_name": name})


def p_int(q, name, default, lo, hi=None):
    vals = q.get(name)
    if not vals:
        return default
    v = vals[0].strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", v):
        raise param_invalid(name, f"{name} must be an integer.")
    n = int(v)
    if n < lo or (hi is not None and n > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f"greater than or equal to {lo}"
        raise param_invalid(name, f"{name} must be {rng}.")
    return n


def p_bool(q, name):
    vals = q.get(name)
    if not vals:
        return False
    v = vals[0]
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise param_invalid(name, f"{name} must be a boolean.")


def p_order(q, allowed, default="-created_at"):
    """Parse order_by: first value wins; '+' (or a space, as a URL-decoded '+') or no prefix = ascending."""
    vals = q.get("order_by")
    v = vals[0] if vals else default
    desc = False
    field = v
    if v[:1] in ("+", " "):
        field = v[1:]
    elif v[:1] == "-":
        desc, field = True, v[1:]
    if field not in allowed:
        raise param_invalid("order_by", f"{v} does not match the allowed values for parameter order_by. "
                            f"Allowed values: {', '.join(sorted(allowed))} (optionally prefixed by + or -).")
    return field, desc


def p_list(q, name):
    vals = q.get(name, [])
    if len(vals) > MAX_FILTER_VALUES:
        raise param_invalid(name, f"{name} accepts up to {MAX_FILTER_VALUES} values.")
    return vals


def p_enum_list(q, name, allowed, split_commas=False, negatable=False):
    """Repeatable enum parameter: the values, each checked against `allowed`
    (with an optional '-' prefix when negatable)."""
    vals = []
    for v in p_list(q, name):
        vals += v.split(",") if split_commas else [v]
    for v in vals:
        base = v[1:] if negatable and v[:1] == "-" else v
        if base not in allowed:
            raise param_invalid(name, f"{v} is not a valid value for {name}. "
                                f"Allowed values: {', '.join(allowed)}" + (" (optionally prefixed by -)." if negatable else "."))
    return vals


def p_enum(q, name, allowed):
    vals = q.get(name)
    if not vals:
        return None
    if vals[0] not in allowed:
        raise param_invalid(name, f"{vals[0]} is not a valid value for {name}. Allowed values: {', '.join(allowed)}.")
    return vals[0]


def p_str(q, name):
    vals = q.get(name)
    return vals[0] if vals else None


def text_key(v):
    """Sort key for a field that should be a string but may be anything after a PATCH."""
    return (0, v) if isinstance(v, str) else (1, json.dumps(v, sort_keys=True, default=str))


def num_key(v):
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, json.dumps(v, default=str))


def id_filter(q, name, kind):
    """Parse a repeatable +/- id filter into (include set or None, exclude set)."""
    inc, exc, any_inc = set(), set(), False
    for v in p_list(q, name):
        neg = v.startswith("-")
        ident = v[1:] if v[:1] in ("+", "-", " ") else v
        idx = kind.index_of(ident)
        if neg:
            if idx is not None:
                exc.add(idx)
        else:
            any_inc = True
            if idx is not None:
                inc.add(idx)
    return (inc if any_inc else None), exc


class _KeyView:
    """seq as the sequence of key(item), for bisect (which takes no key= before Python 3.10)."""
    __slots__ = ("seq", "key")

    def __init__(self, seq, key):
        self.seq, self.key = seq, key

    def __len__(self):
        return len(self.seq)

    def __getitem__(self, i):
        return self.key(self.seq[i])


def page(seq, offset, limit, desc):
    """Slice `limit` items at `offset` from an ascending sequence, in the requested direction."""
    n = len(seq)
    if desc:
        hi = n - offset
        if hi <= 0:
            return []
        return list(reversed(seq[max(0, hi - limit):hi]))
    return list(seq[offset:offset + limit])


# ---------------------------------------------------------------------------
# The application: routing, faults, triggers, rate limiting, logs
# ---------------------------------------------------------------------------

class Response:
    __slots__ = ("status", "body", "headers", "content_type")

    def __init__(self, status, body, headers=None, content_type="application/json"):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


# Raw JSON on demand: a value {"$raw": "<JSON text>"} or {"$raw_base64": "<bytes>"}
# in a patched object (or in config page_extras) is sent as those very bytes,
# so that tests can serve what Python's json module cannot write: \u0000 and
# lone surrogate escapes as Clerk sends them, numbers beyond any float, nesting
# deeper than Python recurses, invalid UTF-8.  Off until first used.
RAW_IN_USE = [False]
RAW_KEYS = ("$raw", "$raw_base64")


def note_raw(value):
    if any(k in json.dumps(value, ensure_ascii=True) for k in ('"$raw"', '"$raw_base64"')):
        RAW_IN_USE[0] = True


def _swap_raw(obj, raws):
    if isinstance(obj, dict):
        if len(obj) == 1 and next(iter(obj)) in RAW_KEYS:
            k, v = next(iter(obj.items()))
            raws.append(base64.b64decode(v) if k == "$raw_base64" else str(v).encode("utf-8", "surrogatepass"))
            return "\u0001raw%d\u0001" % (len(raws) - 1)
        return {k: _swap_raw(v, raws) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_swap_raw(v, raws) for v in obj]
    return obj


def encode_json(obj):
    raws = []
    if RAW_IN_USE[0]:
        obj = _swap_raw(obj, raws)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates injected through the control API
        data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    for i, raw in enumerate(raws):
        data = data.replace(('"\\u0001raw%d\\u0001"' % i).encode("ascii"), raw)
    return data


def encode_piece(obj):
    """encode_json(obj) as one element of a listing's array, or None when
    its bytes may depend on the rest of the answer: it holds raw values
    (encode_json numbers their placeholders per answer) or text only ASCII
    escapes can carry (encode_json then escapes the whole answer)."""
    if RAW_IN_USE[0]:
        raws = []
        _swap_raw(obj, raws)
        if raws:
            return None
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return None


def with_extras(app, kind, offset, items):
    """The first page of a listing, with config page_extras[kind] (raw JSON
    texts) in front: elements a test wants in a page as they are."""
    extras = (app.config.get("page_extras") or {}).get(kind) or []
    if offset or not extras:
        return items
    RAW_IN_USE[0] = True  # (page_extras alone, before any $raw PATCH, must be raw too)
    return [{"$raw": e} for e in extras] + items


def json_response(status, obj, headers=None):
    return Response(status, encode_json(obj), headers)


def error_response(err):
    return json_response(err.status, clerk_error_body(err.code, err.message, err.long_message, err.meta, err.more),
                         err.headers)


# ---------------------------------------------------------------------------
# /v1 writes: routes, limits, request bodies
# ---------------------------------------------------------------------------

# (method, path pattern ("*": an id), route name (endpoint_errors), App method,
#  write_rate_limits entry or None)
WRITE_ROUTES = [
    ("PATCH", ("users", "*"), "users/{id}", "w_update_user", "PATCH /v1/users/{id}"),
    ("DELETE", ("users", "*"), "users/{id}", "w_delete_user", None),
    ("PATCH", ("users", "*", "metadata"), "users/{id}/metadata", "w_merge_user_metadata",
     "PATCH|PUT /v1/users/{id}/metadata"),
    ("PUT", ("users", "*", "metadata"), "users/{id}/metadata", "w_replace_user_metadata",
     "PATCH|PUT /v1/users/{id}/metadata"),
    ("POST", ("users", "*", "ban"), "users/{id}/ban", "w_ban_user", None),
    ("POST", ("users", "*", "unban"), "users/{id}/unban", "w_unban_user", None),
    ("POST", ("users", "*", "lock"), "users/{id}/lock", "w_lock_user", None),
    ("POST", ("users", "*", "unlock"), "users/{id}/unlock", "w_unlock_user", None),
    ("POST", ("organizations",), "organizations", "w_create_org", None),
    ("PATCH", ("organizations", "*"), "organizations/{id}", "w_update_org", "PATCH /v1/organizations/{id}"),
    ("DELETE", ("organizations", "*"), "organizations/{id}", "w_delete_org", None),
    ("PATCH", ("organizations", "*", "metadata"), "organizations/{id}/metadata", "w_merge_org_metadata",
     "PATCH|PUT /v1/organizations/{id}/metadata"),
    ("PUT", ("organizations", "*", "metadata"), "organizations/{id}/metadata", "w_replace_org_metadata",
     "PATCH|PUT /v1/organizations/{id}/metadata"),
    ("POST", ("organizations", "*", "memberships"), "organizations/{id}/memberships", "w_create_membership", None),
    ("PATCH", ("organizations", "*", "memberships", "*"), "organizations/{id}/memberships/{user_id}",
     "w_update_membership", "PATCH /v1/organizations/{id}/memberships/{user_id}"),
    ("DELETE", ("organizations", "*", "memberships", "*"), "organizations/{id}/memberships/{user_id}",
     "w_delete_membership", None),
    ("PATCH", ("organizations", "*", "memberships", "*", "metadata"),
     "organizations/{id}/memberships/{user_id}/metadata", "w_merge_membership_metadata",
     "PATCH /v1/organizations/{id}/memberships/{user_id}/metadata"),
    ("POST", ("organizations", "*", "invitations"), "organizations/{id}/invitations", "w_create_org_invitation",
     "POST /v1/organizations/{id}/invitations"),
    ("POST", ("organizations", "*", "invitations", "*", "revoke"),
     "organizations/{id}/invitations/{invitation_id}/revoke", "w_revoke_org_invitation", None),
    ("POST", ("invitations",), "invitations", "w_create_invitation", "POST /v1/invitations"),
    ("POST", ("invitations", "*", "revoke"), "invitations/{id}/revoke", "w_revoke_invitation", None),
]

# API-NOTES section 6 (clerk-docs system-limits): {limit, window (seconds), per}.
# "per" says what one window counts: the user, organization or membership
# (organization id / user id) of the path, or the whole instance.
WRITE_RATE_LIMITS = {
    "PATCH /v1/users/{id}": {"limit": 10, "window": 10, "per": "user"},
    "PATCH|PUT /v1/users/{id}/metadata": {"limit": 10, "window": 10, "per": "user"},
    "PATCH /v1/organizations/{id}": {"limit": 10, "window": 10, "per": "organization"},
    "PATCH|PUT /v1/organizations/{id}/metadata": {"limit": 10, "window": 10, "per": "organization"},
    "PATCH /v1/organizations/{id}/memberships/{user_id}": {"limit": 10, "window": 10, "per": "membership"},
    "PATCH /v1/organizations/{id}/memberships/{user_id}/metadata": {"limit": 10, "window": 10, "per": "membership"},
    "POST /v1/invitations": {"limit": 100, "window": 3600, "per": "instance"},
    "POST /v1/organizations/{id}/invitations": {"limit": 250, "window": 3600, "per": "instance"},
}
# Clerk's docs: "Metadata is limited to 8KB maximum" (here: each metadata
# object, as compact UTF-8 JSON).
METADATA_MAX_BYTES = 8192
# As of API version 2026-05-12, PATCH /users/{id} and /organizations/{id} take no metadata.
METADATA_IN_UPDATE_BEFORE = "2026-05-12"
FAULT_KINDS = ("status", "latency", "hang", "malformed", "truncated", "drop", "lost_after_apply")
EMAIL_RX = re.compile(r"[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
USERNAME_RX = re.compile(r"[A-Za-z0-9_-]+")
SLUG_RX = re.compile(r"[a-z0-9-]+")
LOCALE_RX = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
USER_LOCK_SECONDS = 1800  # the lockout the generated locked users show

# Request bodies (the spec's; "?" = nullable).  The metadata of the update
# endpoints is taken by API versions before METADATA_IN_UPDATE_BEFORE only.
USER_UPDATE_FIELDS = {
    "external_id": "string?", "first_name": "string?", "last_name": "string?", "locale": "string?",
    "primary_email_address_id": "string?", "notify_primary_email_address_changed": "boolean?",
    "primary_phone_number_id": "string?", "primary_web3_wallet_id": "string?", "username": "string?",
    "profile_image_id": "string?", "password": "string?", "password_digest": "string", "password_hasher": "string",
    "skip_password_checks": "boolean?", "sign_out_of_other_sessions": "boolean?", "totp_secret": "string?",
    "backup_codes": "array", "delete_self_enabled": "boolean?", "create_organization_enabled": "boolean?",
    "legal_accepted_at": "string?", "skip_legal_checks": "boolean?", "create_organizations_limit": "integer?",
    "created_at": "string?", "bypass_client_trust": "boolean?",
    "public_metadata": "object?", "private_metadata": "object?", "unsafe_metadata": "object?",
}
ORG_CREATE_FIELDS = {
    "name": "string", "created_by": "string?", "private_metadata": "object?", "public_metadata": "object?",
    "slug": "string?", "max_allowed_memberships": "integer?", "created_at": "string?", "role_set_key": "string?",
}
ORG_UPDATE_FIELDS = {
    "name": "string?", "slug": "string?", "max_allowed_memberships": "integer?", "admin_delete_enabled": "boolean?",
    "created_at": "string?", "role_set_key": "string?", "public_metadata": "object?", "private_metadata": "object?",
}
MEMBERSHIP_CREATE_FIELDS = {"user_id": "string", "role": "string", "public_metadata": "object?",
                            "private_metadata": "object?"}
ORG_INVITATION_CREATE_FIELDS = {
    "email_address": "string", "inviter_user_id": "string?", "role": "string", "public_metadata": "object?",
    "private_metadata": "object?", "redirect_url": "string?", "expires_in_days": "integer?", "notify": "boolean?",
}
INVITATION_CREATE_FIELDS = {
    "email_address": "string", "public_metadata": "object", "redirect_url": "string", "notify": "boolean?",
    "ignore_existing": "boolean?", "expires_in_days": "integer?", "template_slug": "string",
}


def write_routes(parts):
    """The write routes whose pattern the path matches."""
    if parts[:2] == ["users", "count"]:
        return []
    out = []
    for w in WRITE_ROUTES:
        pat = w[1]
        if len(pat) == len(parts) and all(p == x if p != "*" else bool(x) for p, x in zip(pat, parts)):
            out.append(w)
    return out


def limit_key(name, parts):
    """The object a write_rate_limits window counts for this path."""
    per = WRITE_RATE_LIMITS.get(name, {}).get("per")
    if per == "instance":
        return ""
    if per == "membership":
        return parts[1] + "/" + parts[3]
    return parts[1]


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _type_ok(t, v):
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "object":
        return isinstance(v, dict)
    return isinstance(v, list) and all(isinstance(x, str) for x in v)  # "array": of strings


def form_error(code, message, long_message, param):
    return ApiError(422, code, message, long_message, {"param_name": param})


def parse_body(raw):
    """A write's JSON body: {} when there is none; 400 request_body_invalid if
    it is not a JSON object."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "request_body_invalid", "Request body invalid",
                       "The request body is invalid. Please consult the API documentation for more information.")
    return body


def form(body, spec, required=()):
    """The fields of a request body, checked against spec {name: type}
    ("string", "boolean", "integer", "object", "array" (of strings); a trailing
    "?" = nullable).  Unknown fields, values of the wrong type and missing
    required fields give one 422 listing every problem, as Clerk does.  Returns
    {name: value} of the fields given; an explicit null is kept for a nullable
    field and left out for another."""
    errs, out = [], {}
    for k, v in body.items():
        t = spec.get(k)
        if t is None:
            errs.append(("form_param_unknown", "is unknown", f"{k} is not a valid parameter for this request.",
                         {"param_name": k}))
            continue
        if v is None:
            if t.endswith("?"):
                out[k] = None
            continue
        if not _type_ok(t.rstrip("?"), v):
            errs.append(("form_param_value_invalid", "is invalid",
                         f"{k} is invalid. Received {json_type(v)}, must be of type {t.rstrip('?')}.",
                         {"param_name": k}))
            continue
        out[k] = v
    bad = {e[3]["param_name"] for e in errs}
    for k in required:
        if out.get(k) is None and k not in bad:
            errs.append(("form_param_missing", "is missing", f"{k} must be included.", {"param_name": k}))
    if errs:
        raise ApiError(422, *errs[0], more=errs[1:])
    return out


def merge_metadata(base, patch):
    """Clerk's metadata merge: objects merge recursively, a key set to null is
    removed, anything else replaces."""
    out = dict(base) if isinstance(base, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = merge_metadata(out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def rfc3339_ms(name, v):
    """An RFC3339 date-time string as Unix ms; 422 form_param_invalid_time otherwise."""
    try:
        dt = datetime.datetime.fromisoformat(v)
        if dt.tzinfo is None or not re.match(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", v):
            raise ValueError(v)
    except ValueError:
        raise form_error("form_param_invalid_time", "invalid format", f"{name} must contain a datetime specified in "
                         "RFC3339 format (e.g. `2022-10-20T10:00:27.645Z`).", name)
    return int(dt.timestamp() * 1000)


def api_version(headers, q):
    hv = headers.get("Clerk-API-Version")
    qv = q.get("__clerk_api_version")
    v = hv if hv is not None else (qv[0] if qv else None)
    return v.strip() if v else None


class App:
    def __init__(self, args):
        self.args = args
        self.cli_config = {
            "rate_limit": args.rate_limit,
            "rate_limit_window": 10.0,
            "latency_ms": args.latency_ms,
            "secret_key": args.secret_key,
            "disable_instance_memberships": False,
            "page_extras": {},
            "offset_cost_us": 0,
            "no_cursors": False,
            "ignore_cursors": False,
            # {endpoint family or route: status or {status, code, message, long_message}}
            "endpoint_errors": {},
            "events": True,           # record webhook events for changes made through /__mock
            "cascade_events": False,  # also for what a deleted user or organization takes along
            "webhook_secret": None,   # whsec_...: sign the recorded events
            "webhook_url": None,      # POST each new event there (Svix headers), if set
            # the per-object and per-endpoint limits of the write endpoints ({} = none)
            "write_rate_limits": copy.deepcopy(WRITE_RATE_LIMITS),
            "metadata_max_bytes": METADATA_MAX_BYTES,  # per metadata object (0 = no limit)
            # serve listings from each object's JSON, encoded once (Store.prepared)
            "prepared_pages": bool(getattr(args, "prepared_pages", False)),
        }
        self.meta_lock = threading.Lock()
        self.events_lock = threading.Lock()
        self.delivery_queue = None
        self._tls = threading.local()
        self.log_fh = open(args.log_file, "a", encoding="utf-8", buffering=1) if args.log_file else None
        self.shutting_down = threading.Event()
        self.reset(None)

    # -- state ---------------------------------------------------------------
    def reset(self, body):
        a = self.args
        body = body or {}
        sizes = {k: int(body.get(k, getattr(a, k))) for k in DEFAULT_SIZES}
        anchor = body.get("billing_anchor", a.billing_anchor)
        store = Store(int(body.get("users", a.users)), int(body.get("organizations", a.organizations)),
                      int(body.get("memberships", a.memberships)), int(body.get("seed", a.seed)), sizes,
                      int(anchor) if anchor is not None else None)
        with self.events_lock:
            self.events = deque(maxlen=EVENT_LOG_MAX)
            self.event_seq = 0
        with self.meta_lock:
            self.store = store
            self.config = dict(self.cli_config)
            self.faults = []
            self.triggers = []
            self.fault_seq = 0
            self.trigger_seq = 0
            self.requests = deque(maxlen=REQUEST_LOG_MAX)
            self.rate_window = deque()
            self.object_windows = {}  # (write limit name, object key) -> deque of times
            self.writes = deque(maxlen=REQUEST_LOG_MAX)  # the /v1 writes applied
            self.write_seq = 0
            self.stats = {"requests": 0, "by_status": {}, "rate_limited": 0, "max_in_flight": 0,
                          "by_path_prefix": {}, "faults_injected": 0, "in_flight": 0}

    def log(self, line):
        if self.log_fh:
            with self.meta_lock:
                self.log_fh.write(time.strftime("%Y-%m-%dT%H:%M:%S") + " " + line + "\n")

    # -- request bookkeeping -------------------------------------------------
    def begin(self):
        with self.meta_lock:
            s = self.stats
            s["in_flight"] += 1
            s["max_in_flight"] = max(s["max_in_flight"], s["in_flight"])

    def finish(self, method, path, query, status, headers, started, fault=None, extra=None, writes=(),
               answered=True):
        dur = (time.time() - started) * 1000
        entry = {"method": method, "path": path, "query": query, "status": status,
                 "headers": headers, "time": started, "duration_ms": round(dur, 3)}
        if fault:
            entry["fault"] = fault
        if extra:
            entry.update(extra)
        with self.meta_lock:
            for w in writes:  # what became of the answer to a write that was applied
                w["status"] = status if answered or not extra else extra.get("withheld_status", status)
                w["answered"] = answered
            s = self.stats
            s["in_flight"] -= 1
            s["requests"] += 1
            key = str(status)
            s["by_status"][key] = s["by_status"].get(key, 0) + 1
            pref = path_prefix(path)
            s["by_path_prefix"][pref] = s["by_path_prefix"].get(pref, 0) + 1
            if status == 429 and fault is None:
                s["rate_limited"] += 1
            if fault:
                s["faults_injected"] += 1
            self.requests.append(entry)
        self.log(f"{method} {path}{'?' + query if query else ''} {status} {dur:.1f}ms"
                 f"{' fault=' + fault if fault else ''}")

    def object_rate_check(self, name, key):
        """config write_rate_limits[name] ({limit, window}): a sliding window
        per object (key) for one write endpoint; 429 when it is full."""
        with self.meta_lock:
            spec = (self.config.get("write_rate_limits") or {}).get(name)
            if not isinstance(spec, dict) or int(spec.get("limit") or 0) <= 0:
                return
            limit, window = int(spec["limit"]), float(spec.get("window") or 10.0)
            now = time.monotonic()
            dq = self.object_windows.setdefault((name, key), deque())
            while dq and dq[0] <= now - window:
                dq.popleft()
            if len(dq) < limit:
                dq.append(now)
                return
            wait = max(1, math.ceil(dq[0] + window - now))
        raise ApiError(429, "too_many_requests", "Too many requests", "Too many requests, retry later",
                       {"resets_in": wait}, {"Retry-After": wait})

    def rate_check(self):
        """Sliding-window limiter; returns seconds to wait, or 0 if the request may proceed."""
        with self.meta_lock:
            limit = int(self.config.get("rate_limit") or 0)
            if limit <= 0:
                return 0
            window = float(self.config.get("rate_limit_window") or 10.0)
            now = time.monotonic()
            dq = self.rate_window
            while dq and dq[0] <= now - window:
                dq.popleft()
            if len(dq) >= limit:
                return max(1, math.ceil(dq[0] + window - now))
            dq.append(now)
            return 0

    # -- faults and triggers ---------------------------------------------------
    @staticmethod
    def _methods(spec):
        """A fault's or trigger's optional "method": one HTTP method or a list
        of them (any case); None = every method."""
        m = spec.get("method")
        if m is None:
            return None
        ms = [m] if isinstance(m, str) else m
        if not isinstance(ms, list) or not ms or not all(isinstance(x, str) and x.strip() for x in ms):
            raise ControlError(400, "method must be an HTTP method or a list of them")
        return frozenset(x.strip().upper() for x in ms)

    def add_fault(self, spec):
        kind = spec.get("kind", "status")
        if kind not in FAULT_KINDS:
            raise ControlError(400, f"unknown fault kind {kind!r}")
        try:
            rx = re.compile(spec.get("path") or r"^/v1/")
        except re.error as e:
            raise ControlError(400, f"bad path regex: {e}")
        methods = self._methods(spec)
        hang = spec.get("hang", False)
        if kind == "lost_after_apply" and not (isinstance(hang, bool) or (isinstance(hang, (int, float)) and hang >= 0)):
            raise ControlError(400, "hang must be true, false or a number of seconds")
        with self.meta_lock:
            self.fault_seq += 1
            f = dict(spec)
            f.update(id=self.fault_seq, kind=kind, _rx=rx, _methods=methods, seen=0, hits=0,
                     _rng=random.Random(h(self.store.seed, 99, self.fault_seq)))
            if "count" not in spec:
                f["count"] = -1 if "rate" in spec else 1
            f["remaining"] = int(f["count"])
            f.setdefault("skip", 0)
            self.faults.append(f)
            return f["id"]

    @staticmethod
    def public_fault(f):
        return {k: v for k, v in f.items() if not k.startswith("_")}

    def pick_faults(self, target, method="GET"):
        """Return (total extra latency in ms, the first applicable non-latency fault or None)."""
        latency, chosen = 0, None
        with self.meta_lock:
            for f in self.faults:
                if not f["_rx"].search(target) or (f["_methods"] is not None and method not in f["_methods"]):
                    continue
                f["seen"] += 1
                if f["seen"] <= int(f["skip"]) or f["remaining"] == 0:
                    continue
                if "rate" in f and f["_rng"].random() >= float(f["rate"]):
                    continue
                if f["kind"] == "latency":
                    latency += int(f.get("latency_ms", 0))
                elif chosen is None:
                    chosen = f
                else:
                    continue
                f["hits"] += 1
                if f["remaining"] > 0:
                    f["remaining"] -= 1
        return latency, chosen

    def add_trigger(self, spec):
        try:
            rx = re.compile(spec.get("path") or r"^/v1/")
        except re.error as e:
            raise ControlError(400, f"bad path regex: {e}")
        methods = self._methods(spec)
        with self.meta_lock:
            self.trigger_seq += 1
            t = dict(spec)
            t.update(id=self.trigger_seq, _rx=rx, _methods=methods, seen=0, fired=False)
            t["on_request"] = int(spec.get("on_request", 1))
            self.triggers.append(t)
            return t["id"]

    def run_triggers(self, target, method="GET"):
        due = []
        with self.meta_lock:
            for t in self.triggers:
                if t["fired"] or not t["_rx"].search(target) or (
                        t["_methods"] is not None and method not in t["_methods"]):
                    continue
                t["seen"] += 1
                if t["seen"] >= t["on_request"]:
                    t["fired"] = True
                    due.append(t)
        for t in due:
            try:
                t["result"] = self.apply_mutations(t)
            except ControlError as e:
                t["result"] = {"error": str(e)}

    def apply_mutations(self, spec):
        """Mutations shared by triggers: delete / create_* / update_*, for every
        collection of the control API (they send their events, unless
        "webhook": false)."""
        st = self.store
        out = {"deleted": [], "created": [], "updated": []}
        self._tls.mute = spec.get("webhook") is False
        try:
            with st.lock:
                dele = spec.get("delete") or {}
                for name in TRIGGER_DELETE_ORDER:
                    kind = self.kind_of(name)
                    for ident in dele.get(name, []):
                        idx = self.lookup(name, ident)
                        if kind.live(idx):
                            self.do_delete(name, idx)
                            out["deleted"].append(ident)
                for name in KIND_NAMES:
                    v = spec.get("create_" + name)
                    items = [{}] * v if isinstance(v, int) else (v or [])
                    for body in items:
                        body = dict(body)
                        parent = PARENT_FIELD.get(name)
                        if parent and not body.get(parent[0]) and not (
                                name.startswith("billing_") and any(body.get(k) for k in PAYER_FIELDS)):
                            pk = getattr(st, parent[1])
                            live = st.live_indices(pk)
                            if not len(live):
                                raise ControlError(409, f"{name}: no {parent[0][:-3]} to attach to")
                            body[parent[0]] = pk.key(live[-1])
                        out["created"].append(self.do_create(name, body)["id"])
                for name in KIND_NAMES:
                    v = spec.get("update_" + name) or []
                    pairs = v.items() if isinstance(v, dict) else ((i, {}) for i in v)
                    kind = self.kind_of(name)
                    for ident, body in pairs:
                        idx = kind.index_of(ident)
                        if kind.live(idx):
                            self.do_patch(name, idx, body or {})
                            out["updated"].append(ident)
        finally:
            self._tls.mute = False
        return out

    # -- /v1 -------------------------------------------------------------------
    def authenticate(self, headers):
        auth = headers.get("Authorization")
        m = re.fullmatch(r"[Bb]earer +(\S+)", auth.strip()) if auth else None
        if not m:
            raise ApiError(401, "authorization_header_format_invalid", "Invalid Authorization header format",
                           "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'")
        key = self.config.get("secret_key") or ""
        if not hmac.compare_digest(m.group(1).encode(), key.encode()):
            raise ApiError(401, "authentication_invalid", "Invalid authentication",
                           "Unable to authenticate the request, you need to supply an active session")

    @staticmethod
    def check_version(headers, q):
        hv = headers.get("Clerk-API-Version")
        qv = q.get("__clerk_api_version")
        if hv is not None and qv:
            raise ApiError(400, "api_version_invalid", "invalid API version",
                           "Invalid Clerk API version: use either the Clerk-API-Version header or the "
                           "__clerk_api_version query parameter, not both")
        v = hv if hv is not None else (qv[0] if qv else None)
        if v is None:
            return
        ok = re.fullmatch(r"\d{4}-\d{2}-\d{2}", v.strip()) is not None
        if ok:
            try:
                datetime.date.fromisoformat(v.strip())
            except ValueError:
                ok = False
        if not ok:
            raise ApiError(400, "api_version_invalid", "invalid API version",
                           f"Invalid Clerk API version: {v!r} is not a date in YYYY-MM-DD format")

    def handle_v1(self, method, path, q, headers, raw=b""):
        self.authenticate(headers)
        self.check_version(headers, q)
        parts = [unquote(p) for p in path.split("/")[2:]]
        st = self.store
        route, rname = None, None
        if parts == ["users"]:
            route = lambda: self.list_users(q)
        elif parts == ["users", "count"]:
            route, rname = (lambda: self.count_users(q)), "users/count"
        elif len(parts) == 2 and parts[0] == "users" and parts[1]:
            route, rname = (lambda: self.get_user(parts[1], q)), "users/{id}"
        elif len(parts) == 3 and parts[0] == "users" and parts[2] == "organization_memberships":
            route, rname = (lambda: self.user_memberships(parts[1], q)), "users/{id}/organization_memberships"
        elif parts == ["organizations"]:
            route = lambda: self.list_orgs(q)
        elif len(parts) == 2 and parts[0] == "organizations" and parts[1]:
            route, rname = (lambda: self.get_org(parts[1], q)), "organizations/{id}"
        elif len(parts) == 3 and parts[0] == "organizations" and parts[2] == "memberships":
            route, rname = (lambda: self.org_memberships(parts[1], q)), "organizations/{id}/memberships"
        elif parts == ["organization_memberships"] and not self.config.get("disable_instance_memberships"):
            route = lambda: self.instance_memberships(q)
        elif len(parts) == 3 and parts[0] == "organizations" and parts[2] == "invitations":
            route, rname = (lambda: self.org_invitations(parts[1], q)), "organizations/{id}/invitations"
        elif len(parts) == 4 and parts[0] == "organizations" and parts[2] == "invitations" and parts[3]:
            route, rname = (lambda: self.get_org_invitation(parts[1], parts[3], q)), \
                "organizations/{id}/invitations/{invitation_id}"
        elif len(parts) == 3 and parts[0] == "organizations" and parts[2] == "domains":
            route, rname = (lambda: self.org_domains(parts[1], q)), "organizations/{id}/domains"
        elif parts == ["organization_invitations"]:
            route = lambda: self.list_org_invitations(q)
        elif parts == ["invitations"]:
            route = lambda: self.list_invitations(q)
        elif parts == ["organization_domains"]:
            route = lambda: self.list_domains(q)
        elif parts == ["organization_roles"]:
            route = lambda: self.list_roles(q)
        elif len(parts) == 2 and parts[0] == "organization_roles" and parts[1]:
            route, rname = (lambda: self.get_role(parts[1], q)), "organization_roles/{id}"
        elif parts == ["organization_permissions"]:
            route = lambda: self.list_permissions(q)
        elif len(parts) == 2 and parts[0] == "organization_permissions" and parts[1]:
            route, rname = (lambda: self.get_permission(parts[1], q)), "organization_permissions/{id}"
        elif parts == ["sessions"]:
            route = lambda: self.list_sessions(q)
        elif len(parts) == 2 and parts[0] == "sessions" and parts[1]:
            route, rname = (lambda: self.get_session(parts[1], q)), "sessions/{id}"
        elif parts == ["billing", "plans"]:
            route, rname = (lambda: self.list_plans(q)), "billing/plans"
        elif parts == ["billing", "prices"]:
            route, rname = (lambda: self.list_prices(q)), "billing/prices"
        elif parts == ["billing", "subscription_items"]:
            route, rname = (lambda: self.list_subscription_items(q)), "billing/subscription_items"
        elif parts == ["billing", "statements"]:
            route, rname = (lambda: self.list_statements(q)), "billing/statements"
        elif len(parts) == 3 and parts[:2] == ["billing", "statements"] and parts[2]:
            route, rname = (lambda: self.get_statement(parts[2], q)), "billing/statements/{id}"
        elif len(parts) == 4 and parts[:2] == ["billing", "statements"] and parts[3] == "payment_attempts":
            route, rname = (lambda: self.statement_payment_attempts(parts[2], q)), \
                "billing/statements/{id}/payment_attempts"
        elif parts == ["waitlist_entries"]:
            route = lambda: self.list_waitlist(q)
        writes = write_routes(parts)
        if method != "GET" or route is None:
            allowed = (["GET"] if route is not None else []) + [w[0] for w in writes]
            if not allowed:
                raise not_found("The requested resource was not found.")
            w = next((w for w in writes if w[0] == method), None)
            if w is None:
                raise ApiError(405, "method_not_allowed", "method not allowed",
                               f"{method} is not supported by this mock server for {path}.",
                               headers={"Allow": ", ".join(allowed)})
            return self.handle_write(w, parts, q, headers, raw)
        self.endpoint_error(rname or parts[0])
        self._tls.offset_cost_s = 0.0
        with st.lock:
            result = route()
        # the rows a large offset skips are walked outside the store's lock:
        # requests pay for their own offsets side by side, as a database does
        if self._tls.offset_cost_s > 0:
            time.sleep(self._tls.offset_cost_s)
        return result

    def endpoint_error(self, rname):
        """config endpoint_errors: answer as an instance whose plan or
        settings lack the feature (403) or whose API lacks the endpoint (404)."""
        errs = self.config.get("endpoint_errors") or {}
        if not errs:
            return
        family = ROUTE_FAMILY.get(rname, rname)
        spec = errs.get(rname, errs.get(family))
        if not spec:
            return
        if not isinstance(spec, dict):
            spec = {"status": spec}
        status = int(spec.get("status", 403))
        if status == 404:
            code, msg, long_msg = "resource_not_found", "not found", "The requested resource was not found."
        elif status == 403:
            code, msg, long_msg = FEATURE_ERRORS.get(family, STATUS_ERRORS[403])
        else:
            code, msg, long_msg = STATUS_ERRORS.get(status, STATUS_ERRORS[500] if status >= 500
                                                    else ("request_invalid", "Request failed", "Request failed"))
        raise ApiError(status, spec.get("code", code), spec.get("message", msg), spec.get("long_message", long_msg),
                       spec.get("meta"))

    def _pagination(self, q):
        return p_int(q, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT), p_int(q, "offset", 0, 0)

    def listing(self, st, view, idxs, render, total=None, extras=None, offset=0):
        """A listing's answer: objects idxs (render(i)) as a bare array, or
        with total as {data, total_count}; page_extras[extras] in front of
        the first page (offset falsy).  With config prepared_pages, the array
        is joined from the objects' prepared JSON (Store.prepared): the same
        bytes, without rendering and encoding again what has not changed."""
        if view is not None and self.config.get("prepared_pages") and not (
                extras is not None and not offset and (self.config.get("page_extras") or {}).get(extras)):
            pieces = st.prepared(view, idxs)
            if pieces is not None:
                body = b"[" + b",".join(pieces) + b"]"
                if total is not None:
                    body = b'{"data":' + body + b',"total_count":%d}' % total
                return Response(200, body)
        data = [render(i) for i in idxs]
        if extras is not None:
            data = with_extras(self, extras, offset, data)
        return json_response(200, data if total is None else {"data": data, "total_count": total})

    def _user_candidates(self, q):
        st = self.store
        inc, exc = id_filter(q, "user_id", st.users)
        emails = p_list(q, "email_address")
        if emails:
            by_email = st.users_by_email(emails)
            inc = by_email if inc is None else inc & by_email
        if inc is not None:
            inc = {i for i in inc if st.users.live(i)}
        return inc, exc

    def _created_range(self, q, seq, by_created):
        """seq filtered by created_at_after / created_at_before (Unix ms, both
        exclusive, as Clerk's "created after/before the given date")."""
        after = p_int(q, "created_at_after", None, 0) if q.get("created_at_after") else None
        before = p_int(q, "created_at_before", None, 0) if q.get("created_at_before") else None
        if after is None and before is None:
            return seq
        st = self.store
        if by_created:
            # creation order is created_at order: cut the slice out by bisection
            keys = _KeyView(seq, st._user_created)
            lo = bisect.bisect_right(keys, after) if after is not None else 0
            hi = bisect.bisect_left(keys, before) if before is not None else len(seq)
            return seq[lo:hi]
        return [i for i in seq if (after is None or st._user_created(i) > after)
                and (before is None or st._user_created(i) < before)]

    def _offset_cost(self, offset):
        """A large offset walks and discards every row before it: config
        offset_cost_us adds that much latency per skipped row."""
        cost = float(self.config.get("offset_cost_us") or 0)
        if cost > 0 and offset > 0:
            self._tls.offset_cost_s = offset * cost / 1e6

    def list_users(self, q):
        check_params(q, {"limit", "offset", "order_by", "user_id", "email_address", "starting_after",
                         "created_at_after", "created_at_before"},
                     USERS_CLERK_PARAMS)
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "updated_at"})
        if self.config.get("no_cursors") and (q.get("starting_after") or q.get("created_at_after")
                                               or q.get("created_at_before")):
            # as an older API version answers: it knows none of these
            name = "starting_after" if q.get("starting_after") else "created_at_after"
            raise param_invalid(name, f"{name} is not a valid parameter for this request.")
        # a broken server that takes starting_after and ignores it
        after = None if self.config.get("ignore_cursors") else q.get("starting_after", [None])[0]
        if after is not None:
            if field != "created_at":
                raise param_invalid("starting_after", "starting_after can only be used with created_at ordering.")
            if offset:
                raise param_invalid("starting_after", "starting_after cannot be combined with a non-zero offset.")
        inc, exc = self._user_candidates(q)
        if inc is not None:
            key = (lambda i: i) if field == "created_at" else (lambda i: (st._user_updated(i), i))
            seq = sorted(inc - exc, key=key)
        else:
            seq = st.live_indices(st.users) if field == "created_at" else st.users_by_updated()
            if exc:
                seq = [i for i in seq if i not in exc]
        seq = self._created_range(q, seq, field == "created_at")
        if after is not None:
            a = st.users.index_of(after)
            if a is None:
                raise param_invalid("starting_after", f"{after} is not a valid user id.")
            pos = bisect.bisect_right(seq, a)
            seq = seq[:bisect.bisect_left(seq, a)] if desc else seq[pos:]
        self._offset_cost(offset)
        return self.listing(st, ("users",), page(seq, offset, limit, desc), st.user, extras="users",
                            offset=offset or after is not None)

    def count_users(self, q):
        check_params(q, {"user_id", "email_address", "created_at_after", "created_at_before"},
                     USERS_CLERK_PARAMS - {"limit", "offset", "order_by", "starting_after"})
        st = self.store
        if self.config.get("no_cursors") and (q.get("created_at_after") or q.get("created_at_before")):
            raise param_invalid("created_at_after", "created_at_after is not a valid parameter for this request.")
        inc, exc = self._user_candidates(q)
        if q.get("created_at_after") or q.get("created_at_before"):
            seq = sorted(inc - exc) if inc is not None else st.live_indices(st.users)
            if inc is None and exc:
                seq = [i for i in seq if i not in exc]
            n = len(self._created_range(q, seq, True))
        elif inc is not None:
            n = len(inc - exc)
        else:
            n = st.users.live_count() - sum(1 for i in exc if st.users.live(i))
        return json_response(200, {"object": "total_count", "total_count": n})

    def get_user(self, ident, q):
        check_params(q, set(), set())
        st = self.store
        i = st.users.index_of(ident)
        if not st.users.live(i):
            raise not_found(f"No user was found with id {ident}")
        return json_response(200, st.user(i))

    def user_memberships(self, ident, q):
        check_params(q, {"limit", "offset"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        u = st.users.index_of(ident)
        if not st.users.live(u):
            raise not_found(f"No user was found with id {ident}")
        seq = st.user_mems(u)
        return self.listing(st, ("mems",), page(seq, offset, limit, True), st.membership, len(seq))

    def list_orgs(self, q):
        check_params(q, {"limit", "offset", "order_by", "include_members_count",
                         "include_missing_member_with_elevated_permissions"}, ORGS_CLERK_PARAMS)
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "name", "members_count"})
        mc = p_bool(q, "include_members_count")
        mm = p_bool(q, "include_missing_member_with_elevated_permissions")
        seq = st.orgs_ordered(field)
        self._offset_cost(offset)
        return self.listing(st, ("orgs", mc, mm), page(seq, offset, limit, desc), lambda o: st.org_view(o, mc, mm),
                            len(seq), "organizations", offset)

    def get_org(self, ident, q):
        check_params(q, {"include_members_count", "include_missing_member_with_elevated_permissions"}, set())
        st = self.store
        o = st.org_index(ident)
        if o is None:
            raise not_found("Given organization not found.")
        return json_response(200, st.org_view(o, p_bool(q, "include_members_count"),
                                              p_bool(q, "include_missing_member_with_elevated_permissions")))

    def org_memberships(self, ident, q):
        check_params(q, {"limit", "offset", "order_by", "user_id"}, ORG_MEMS_CLERK_PARAMS)
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at"})
        o = st.org_index(ident, allow_slug=False)
        if o is None:
            raise not_found("Given organization not found.")
        seq = st.org_mems(o)
        inc, exc = id_filter(q, "user_id", st.users)
        if inc is not None or exc:
            keep = []
            for m in seq:
                u = st.mem_link(m)[1]
                if (inc is None or u in inc) and u not in exc:
                    keep.append(m)
            seq = keep
        self._offset_cost(offset)
        return self.listing(st, ("mems",), page(seq, offset, limit, desc), st.membership, len(seq))

    def instance_memberships(self, q):
        check_params(q, {"limit", "offset", "order_by"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at"})
        seq = st.live_indices(st.mems)
        self._offset_cost(offset)
        return self.listing(st, ("mems",), page(seq, offset, limit, desc), st.membership, len(seq),
                            "organization_memberships", offset)

    # -- the kinds added later ---------------------------------------------
    def _ordered(self, kind, name, field, keyfn):
        """Live indices of kind in `field` order, ascending (creation order
        for created_at; ties in creation order).  Cached per data version."""
        seq = self.store.live_indices(kind)
        if field == "created_at":
            return seq
        st = self.store
        ck = ("ord_" + name + "_" + field, 0, st.version)
        got = st._cache.get(ck)
        if got is None:
            got = sorted(seq, key=lambda i: (keyfn(i), i))
            st._cache_put(ck, got)
        return got

    @staticmethod
    def _sort_subset(seq, field, keyfn):
        return list(seq) if field == "created_at" else sorted(seq, key=lambda i: (keyfn(i), i))

    def _orginv_filter(self, seq, statuses, email_query=None, emails=None):
        st = self.store
        if not statuses and email_query is None and not emails:
            return seq
        want = set(statuses)
        eq = email_query.lower() if email_query is not None else None
        ems = {e.lower() for e in emails or []}
        out = []
        for i in seq:
            own = st.own(st.orginvs, i)
            if want and own.get("status") not in want:
                continue
            addr = str(own.get("email_address", "")).lower()
            if eq is not None and eq not in addr:
                continue
            if ems and addr not in ems:
                continue
            out.append(i)
        return out

    def list_org_invitations(self, q):
        check_params(q, {"limit", "offset", "order_by", "status", "query"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "email_address"})
        statuses = p_enum_list(q, "status", ORGINV_STATUSES)
        query = p_str(q, "query")
        seq = self._ordered(st.orginvs, "orginvs", field,
                            lambda i: text_key(st.own(st.orginvs, i).get("email_address")))
        seq = self._orginv_filter(seq, statuses, query or None)
        self._offset_cost(offset)
        return self.listing(st, ("orginvs", True), page(seq, offset, limit, desc),
                            lambda i: st.orginv(i, with_org=True), len(seq), "organization_invitations", offset)

    def org_invitations(self, ident, q):
        check_params(q, {"limit", "offset", "order_by", "status", "email_address"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "email_address"})
        statuses = p_enum_list(q, "status", ORGINV_STATUSES)
        emails = p_list(q, "email_address")
        o = st.org_index(ident, allow_slug=False)
        if o is None:
            raise not_found("Given organization not found.")
        seq = self._sort_subset(st.orginv_links.of_parent(o), field,
                                lambda i: text_key(st.own(st.orginvs, i).get("email_address")))
        seq = self._orginv_filter(seq, statuses, emails=emails)
        self._offset_cost(offset)
        return self.listing(st, ("orginvs", False), page(seq, offset, limit, desc), st.orginv, len(seq))

    def list_invitations(self, q):
        check_params(q, {"limit", "offset", "order_by", "status", "query", "paginated"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "email_address", "expires_at"})
        status = p_enum(q, "status", INVITATION_STATUSES)
        paginated = p_bool(q, "paginated")
        query = p_str(q, "query")
        keyfn = (lambda i: num_key(st.invitation(i).get("expires_at"))) if field == "expires_at" else \
            (lambda i: text_key(st.invitation(i).get("email_address")))
        seq = self._ordered(st.invs, "invs", field, keyfn)
        ql = query.lower() if query else None
        out = []
        for i in seq:
            inv = st.invitation(i)
            if status is not None:
                if inv.get("status") != status:
                    continue
            elif inv.get("status") == "revoked":
                continue  # "Returns all non-revoked invitations" unless asked for a status
            if ql is not None and ql not in str(inv.get("email_address", "")).lower() and inv.get("id") != query:
                continue
            out.append(i)
        self._offset_cost(offset)
        return self.listing(st, ("invs",), page(out, offset, limit, desc), st.invitation,
                            len(out) if paginated else None, "invitations", offset)

    def _domain_filter(self, seq, q, instance_wide=True):
        st = self.store
        verified = p_str(q, "verified")
        if verified is not None and verified not in ("true", "false"):
            raise param_invalid("verified", f"{verified} is not a valid value for verified. Allowed values: true, false.")
        modes = p_enum_list(q, "enrollment_mode", ENROLLMENT_MODES, split_commas=True, negatable=True)
        inc = {m for m in modes if not m.startswith("-")}
        exc = {m[1:] for m in modes if m.startswith("-")}
        query = p_str(q, "query")
        if query is not None and not query.strip():
            raise param_invalid("query", "query must not be empty.")
        names = {n.lower() for n in p_list(q, "domains")}
        org_id = p_str(q, "organization_id") if instance_wide else None
        if verified is None and not modes and query is None and not names and org_id is None:
            return seq
        out = []
        for i in seq:
            own = st.own(st.doms, i)
            if org_id is not None and own.get("organization_id") != org_id:
                continue
            if verified is not None:
                ver = own.get("affiliation_verification", own.get("verification"))
                is_ver = isinstance(ver, dict) and ver.get("status") == "verified"
                if is_ver != (verified == "true"):
                    continue
            mode = own.get("enrollment_mode")
            if (inc and mode not in inc) or mode in exc:
                continue
            name = str(own.get("name", "")).lower()
            if query is not None:
                if query.startswith("org_"):
                    if own.get("organization_id") != query:
                        continue
                elif query.strip().lower() not in name:
                    continue
            if names and name not in names:
                continue
            out.append(i)
        return out

    def list_domains(self, q):
        check_params(q, {"limit", "offset", "order_by", "organization_id", "verified", "enrollment_mode", "query",
                         "domains"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "name"})
        seq = self._ordered(st.doms, "doms", field, lambda i: text_key(st.own(st.doms, i).get("name")))
        seq = self._domain_filter(seq, q)
        self._offset_cost(offset)
        return self.listing(st, ("doms",), page(seq, offset, limit, desc), st.domain, len(seq), "organization_domains",
                            offset)

    def org_domains(self, ident, q):
        check_params(q, {"limit", "offset", "verified", "enrollment_mode"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        o = st.org_index(ident, allow_slug=False)
        # the spec has no 404 here: an unknown organization has no domains
        seq = self._domain_filter(st.dom_links.of_parent(o) if o is not None else [], q, instance_wide=False)
        self._offset_cost(offset)
        return self.listing(st, ("doms",), page(seq, offset, limit, True), st.domain, len(seq))

    def _named_listing(self, q, kind, name, render, extras):
        """Roles and permissions: query (exact id, or part of name or key), order_by created_at|name|key."""
        check_params(q, {"limit", "offset", "order_by", "query"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "name", "key"})
        seq = self._ordered(kind, name, field, lambda i: text_key(st.own(kind, i).get(field)))
        query = p_str(q, "query")
        if query:
            ql = query.lower()
            seq = [i for i in seq if st.own(kind, i).get("id") == query
                   or ql in str(st.own(kind, i).get("name", "")).lower()
                   or ql in str(st.own(kind, i).get("key", "")).lower()]
        self._offset_cost(offset)
        return self.listing(st, (name,), page(seq, offset, limit, desc), render, len(seq), extras, offset)

    def list_roles(self, q):
        st = self.store
        return self._named_listing(q, st.roles, "roles", st.role, "organization_roles")

    def list_permissions(self, q):
        st = self.store
        return self._named_listing(q, st.perms, "perms", st.permission, "organization_permissions")

    def get_role(self, ident, q):
        check_params(q, set(), set())
        st = self.store
        i = st.roles.index_of(ident)
        if not st.roles.live(i):
            raise ApiError(404, "resource_not_found", "not found", "Organization role not found",
                           {"param_name": "organization_role_id"})
        return json_response(200, st.role(i))

    def get_permission(self, ident, q):
        check_params(q, set(), set())
        st = self.store
        i = st.perms.index_of(ident)
        if not st.perms.live(i):
            raise not_found("Organization permission not found")
        return json_response(200, st.permission(i))

    def list_sessions(self, q):
        check_params(q, {"limit", "offset", "client_id", "user_id", "status", "paginated"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        status = p_enum(q, "status", SESSION_STATUS_FILTER)
        paginated = p_bool(q, "paginated")
        user_id, client_id = p_str(q, "user_id") or None, p_str(q, "client_id") or None
        if user_id is None and client_id is None:
            raise ApiError(400, "missing_query_parameter", "Missing query parameter",
                           "Either of the following query parameters must be provided: client_id, user_id.")
        cand = set()
        u = st.users.index_of(user_id) if user_id is not None else None
        if user_id is None:
            cu = st.client_user(client_id)
            if cu is not None:
                u = cu[0]
        if st.users.live(u):
            cand.update(st.sess_links.of_parent(u))
        # sessions whose user or client a PATCH changed, or created with a client id of their own
        cand.update(i for i in st.sessions.over if st.sessions.live(i))
        seq = []
        for i in sorted(cand):
            ses = st.session(i)
            if user_id is not None and ses.get("user_id") != user_id:
                continue
            if client_id is not None and ses.get("client_id") != client_id:
                continue
            if status is not None and ses.get("status") != status:
                continue
            seq.append(i)
        self._offset_cost(offset)
        return self.listing(st, ("sessions",), page(seq, offset, limit, True), st.session,
                            len(seq) if paginated else None, "sessions", offset)

    def get_session(self, ident, q):
        check_params(q, set(), set())
        st = self.store
        i = st.sessions.index_of(ident)
        if not st.sessions.live(i):
            raise ApiError(404, "resource_not_found", "Session not found", f"No session was found with id {ident}")
        return json_response(200, st.session(i))

    # -- billing and the waitlist -------------------------------------------
    # The /billing listings take paginated, limit and offset (and their
    # filters), no order_by; paginated is checked, and the answer is always
    # {data, total_count} (the spec's only response).
    def _billing_page(self, q, extras, seq, render, desc=True):
        limit, offset = self._pagination(q)
        p_bool(q, "paginated")
        self._offset_cost(offset)
        data = with_extras(self, extras, offset, [render(i) for i in page(seq, offset, limit, desc)])
        return json_response(200, {"data": data, "total_count": len(seq)})

    def list_plans(self, q):
        check_params(q, {"paginated", "limit", "offset", "payer_type"}, set())
        st = self.store
        ptype = p_enum(q, "payer_type", PAYER_TYPES)
        seq = st.live_indices(st.plans)
        if ptype is not None:
            seq = [i for i in seq if st.plan(i).get("for_payer_type") == ptype]
        return self._billing_page(q, "billing_plans", seq, st.plan)

    def list_prices(self, q):
        check_params(q, {"paginated", "limit", "offset", "plan_id"}, set())
        st = self.store
        plan_id = p_str(q, "plan_id")
        seq = st.live_indices(st.prices)
        if plan_id is not None:
            if not st.plans.live(st.plans.index_of(plan_id)):
                raise ApiError(404, "resource_not_found", "not found", f"No plan was found with id {plan_id}.")
            seq = [i for i in seq if st.price(i).get("plan_id") == plan_id]

        def key(i):  # amount ascending, then newest first
            pr = st.price(i)
            c = pr.get("created_at")
            return num_key(pr.get("amount")), -(c if isinstance(c, int) and not isinstance(c, bool) else 0), -i
        return self._billing_page(q, "billing_prices", sorted(seq, key=key), st.price, desc=False)

    def list_subscription_items(self, q):
        check_params(q, {"paginated", "limit", "offset", "status", "payer_type", "plan_id", "include_free", "query"},
                     set())
        st = self.store
        status = p_enum(q, "status", ITEM_STATUS_FILTER)
        ptype = p_enum(q, "payer_type", PAYER_TYPES)
        plan_id = p_str(q, "plan_id")
        include_free = p_bool(q, "include_free")
        query = p_str(q, "query")
        ql = query.strip().lower() if query else None
        seq = []
        for i in st.live_indices(st.bitems):
            own = st.own(st.bitems, i)
            plan = st.item_plan(own)
            if not include_free and st.plan_is_free(plan):
                continue
            if status == "free_trial":
                if own.get("is_free_trial") is not True:
                    continue
            elif status is not None and own.get("status") != status:
                continue
            if plan_id is not None and own.get("plan_id") != plan_id:
                continue
            payer = st._payer_of(own) or {}
            if ptype is not None and ("org" if payer.get("organization_id") else "user") != ptype:
                continue
            if ql:
                exact = {own.get("id"), own.get("payer_id"), own.get("plan_id"), payer.get("user_id"),
                         payer.get("organization_id")}
                text = [payer.get("email"), payer.get("first_name"), payer.get("last_name"),
                        payer.get("organization_name")]
                if isinstance(plan, dict):
                    text += [plan.get("name"), plan.get("slug")]
                if query.strip() not in exact and not any(isinstance(v, str) and ql in v.lower() for v in text):
                    continue
            seq.append(i)
        return self._billing_page(q, "billing_subscription_items", seq, st.bitem)

    def list_statements(self, q):
        check_params(q, {"paginated", "limit", "offset"}, set())
        st = self.store
        return self._billing_page(q, "billing_statements", st.live_indices(st.stmts), st.stmt)

    def _statement(self, ident):
        st = self.store
        j = st.stmts.index_of(ident)
        if not st.stmts.live(j):
            raise ApiError(404, "resource_not_found", "not found", f"No statement found with id {ident}.",
                           {"param_name": "statementID"})
        return j

    def get_statement(self, ident, q):
        check_params(q, set(), set())
        return json_response(200, self.store.stmt(self._statement(ident)))

    def statement_payment_attempts(self, ident, q):
        check_params(q, {"paginated", "limit", "offset"}, set())
        st = self.store
        j = self._statement(ident)
        return self._billing_page(q, "billing_payment_attempts", st.stmt_attempts(j), st.payatt)

    def list_waitlist(self, q):
        check_params(q, {"limit", "offset", "query", "status", "order_by"}, set())
        st = self.store
        limit, offset = self._pagination(q)
        field, desc = p_order(q, {"created_at", "email_address", "invited_at"})
        status = p_enum(q, "status", WAITLIST_STATUSES)
        query = p_str(q, "query")

        def keyfn(i):
            w = st.wait(i)
            if field == "invited_at":
                inv = w.get("invitation")
                return num_key(inv.get("created_at") if isinstance(inv, dict) else None)
            return text_key(w.get("email_address"))
        seq = self._ordered(st.waits, "waits", field, keyfn)
        if status is not None or query:
            ql = query.lower() if query else None
            seq = [i for i in seq if (status is None or st.wait(i).get("status") == status)
                   and (not ql or st.wait(i).get("id") == query
                        or ql in str(st.wait(i).get("email_address", "")).lower())]
        self._offset_cost(offset)
        return self.listing(st, ("waits",), page(seq, offset, limit, desc), st.wait, len(seq), "waitlist_entries",
                            offset)

    # -- /v1 writes --------------------------------------------------------------
    def handle_write(self, w, parts, q, headers, raw):
        """One of WRITE_ROUTES: endpoint_errors, its own rate limit, query
        parameters (none), the JSON body, then the change, made under the store's
        lock through the control API's own operations (so it records the same events)."""
        method, _, rname, fn, limit = w
        self.endpoint_error(rname)
        if limit:
            self.object_rate_check(limit, limit_key(limit, parts))
        check_params(q, set(), set())
        body = parse_body(raw)
        req = getattr(self._tls, "req", None)
        if req is not None:
            req["route"] = f"{method} /v1/{rname}"
        self._tls.mute = False
        with self.store.lock:
            return getattr(self, fn)(parts, body, api_version(headers, q))

    def _applied(self, op, obj, ident):
        """Log a write that changed the data (GET /__mock/writes)."""
        req = getattr(self._tls, "req", None) or {}
        with self.meta_lock:
            self.write_seq += 1
            w = {"seq": self.write_seq, "time": time.time(), "method": req.get("method"), "path": req.get("path"),
                 "route": req.get("route"), "op": op, "object": obj, "id": ident,
                 "body_sha256": req.get("body_sha256"), "status": None, "answered": None}
            self.writes.append(w)
        got = getattr(self._tls, "applied", None)
        if got is not None:
            got.append(w)

    def _user_or_404(self, ident):
        u = self.store.users.index_of(ident)
        if not self.store.users.live(u):
            raise not_found(f"No user was found with id {ident}")
        return u

    def _org_or_404(self, ident):
        o = self.store.org_index(ident, allow_slug=False)
        if o is None:
            raise not_found("Given organization not found.")
        return o

    def _membership_or_404(self, org_ident, user_ident):
        st = self.store
        o = self._org_or_404(org_ident)
        u = st.users.index_of(user_ident)
        m = st.mem_of_pair(o, u) if st.users.live(u) else None
        if m is None:
            raise not_found("Resource not found")
        return o, u, m

    def _metadata_size_ok(self, name, value):
        limit = int_or(self.config.get("metadata_max_bytes"), 0)
        if limit > 0 and value is not None:
            n = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
            if n > limit:
                raise form_error("form_param_exceeds_allowed_size", "exceeds allowed size",
                                 f"{name} exceeds the maximum allowed size of {limit} bytes.", name)
        return value

    @staticmethod
    def _no_metadata_in_update(body, ver, path):
        """As of API version 2026-05-12 the update endpoints take no metadata."""
        if ver is None or ver < METADATA_IN_UPDATE_BEFORE:
            return
        for k in ("public_metadata", "private_metadata", "unsafe_metadata"):
            if k in body:
                raise form_error("form_param_deprecated", "is deprecated",
                                 f"{k} is deprecated. Use PATCH {path}/metadata to merge updates into existing "
                                 f"metadata, or PUT {path}/metadata to replace a metadata field entirely.", k)

    def _metadata_write(self, name, idx, body, fields, merge):
        """PATCH (merge) or PUT (replace) .../metadata of a user, organization or membership."""
        f = form(body, {k: "object" for k in fields})
        cur = self.view(name, idx)
        change = {}
        for k, v in f.items():
            change[k] = self._metadata_size_ok(k, merge_metadata(cur.get(k), v) if merge else copy.deepcopy(v))
        return self.do_patch(name, idx, change, replace=True)

    @staticmethod
    def _email(v, param="email_address"):
        v = v.strip()
        if len(v) > 320 or not EMAIL_RX.fullmatch(v):
            raise form_error("form_param_format_invalid", "is invalid", f"{param} must be a valid email address.",
                             param)
        return v

    def _role_key(self, role, param="role"):
        if role not in self.store._role_table():
            raise form_error("form_param_value_invalid", "is invalid",
                             f"{role} does not match one of the allowed values for parameter {param}", param)
        return role

    @staticmethod
    def _expires_in_days(f):
        days = f.get("expires_in_days")
        if days is None:
            return 30
        if not 1 <= days <= 365:
            raise form_error("form_param_value_invalid", "is invalid", "expires_in_days must be between 1 and 365.",
                             "expires_in_days")
        return days

    def _invite_url(self, redirect_url):
        ticket = noise62(32, self.store.seed, "v1-ticket", time.time_ns(), self.write_seq)
        return redirect_url + ("&" if "?" in redirect_url else "?") + "__clerk_ticket=" + ticket

    def _org_seats_used(self, o):
        """Members plus pending invitations: what max_allowed_memberships counts."""
        st = self.store
        pending = sum(1 for i in st.orginv_links.of_parent(o) if st.own(st.orginvs, i).get("status") == "pending")
        return st.members_count(o) + pending

    def _seat_left(self, o):
        cap = int_or(self.store.org(o).get("max_allowed_memberships"), 0)
        if cap > 0 and self._org_seats_used(o) >= cap:
            raise ApiError(403, "organization_membership_quota_exceeded", "organization membership quota exceeded",
                           f"You have reached your limit of {cap} organization memberships, including outstanding "
                           "invitations.")

    def _org_admin(self, o, ident, param):
        """The id of a user who may manage the organization's members (inviter_user_id, requesting_user_id)."""
        st = self.store
        u = st.users.index_of(ident)
        if not st.users.live(u):
            raise not_found(f"No user was found with id {ident}")
        m = st.mem_of_pair(o, u)
        if m is None:
            raise ApiError(403, "not_a_member_in_organization", "not a member",
                           "Current user is not a member of the organization. "
                           "Only organization members can perform this action.")
        if "org:sys_memberships:manage" not in (st.membership(m).get("permissions") or []):
            raise ApiError(403, "missing_organization_permission", "missing permission",
                           "Current user is missing an organization permission.")
        return st.users.key(u)

    # users
    def w_update_user(self, parts, body, ver):
        st = self.store
        self._no_metadata_in_update(body, ver, "/v1/users/{user_id}")
        f = form(body, USER_UPDATE_FIELDS)
        u = self._user_or_404(parts[1])
        cur = st.user(u)
        key = st.users.key(u)
        t = now_ms()
        ch = {}
        for k in ("first_name", "last_name"):
            if k in f:
                ch[k] = f[k]
        if "username" in f:
            name = f["username"] or None
            if name is not None:
                if not 4 <= len(name) <= 64:
                    raise form_error("form_username_invalid_length", "is invalid",
                                     "Username must be between 4 and 64 characters long.", "username")
                if not USERNAME_RX.fullmatch(name):
                    raise form_error("form_username_invalid_character", "is invalid",
                                     "Username can only contain letters, numbers and '_' or '-'.", "username")
                other = st.user_by_username(name)
                if other is not None and other != u:
                    raise form_error("form_identifier_exists", "is taken",
                                     "That username is taken. Please try another.", "username")
            ch["username"] = name
        if "external_id" in f:
            ext = f["external_id"] or None
            if ext is not None:
                other = st.user_by_external_id(ext)
                if other is not None and other != u:
                    raise form_error("form_identifier_exists", "is taken",
                                     "That external_id is taken. Please try another.", "external_id")
            ch["external_id"] = ext
        if "locale" in f:
            if f["locale"] is not None and not LOCALE_RX.fullmatch(f["locale"]):
                raise form_error("form_param_format_invalid", "is invalid",
                                 "locale must be a valid BCP-47 language tag.", "locale")
            ch["locale"] = f["locale"]
        for k, lst in (("primary_email_address_id", "email_addresses"), ("primary_phone_number_id", "phone_numbers"),
                       ("primary_web3_wallet_id", "web3_wallets")):
            if f.get(k) is None:
                continue
            item = next((x for x in cur.get(lst) or [] if isinstance(x, dict) and x.get("id") == f[k]), None)
            if item is None:
                raise form_error("form_identifier_not_found", "not found",
                                 f"{k} does not match any identification of this user.", k)
            if (item.get("verification") or {}).get("status") != "verified":
                raise form_error("form_verification_needed", "is unverified",
                                 "This identification needs to be verified before you can perform this action.", k)
            ch[k] = f[k]
        if f.get("password") is not None:
            if len(f["password"]) < 8:
                raise form_error("form_password_length_too_short", "is too short",
                                 "Passwords must be 8 characters or more.", "password")
            ch.update(password_enabled=True, password_last_updated_at=t)
        if ("password_digest" in f) != ("password_hasher" in f):
            have, need = ("password_digest", "password_hasher") if "password_digest" in f else \
                ("password_hasher", "password_digest")
            raise form_error("form_conditional_param_missing", "is missing",
                             f"`{need}` is required when `{have}` is present.", need)
        if "password_digest" in f:
            ch.update(password_enabled=True, password_last_updated_at=t)
        if f.get("totp_secret") is not None:
            ch.update(totp_enabled=True, two_factor_enabled=True)
        if "backup_codes" in f:
            ch.update(backup_code_enabled=True, two_factor_enabled=True)
        if ch.get("two_factor_enabled") and not cur.get("two_factor_enabled"):
            ch["mfa_enabled_at"] = t
        for k in ("delete_self_enabled", "create_organization_enabled", "bypass_client_trust"):
            if f.get(k) is not None:
                ch[k] = f[k]
        if "create_organizations_limit" in f:
            if f["create_organizations_limit"] is not None and f["create_organizations_limit"] < 0:
                raise form_error("form_param_value_invalid", "is invalid",
                                 "create_organizations_limit must be greater than or equal to 0.",
                                 "create_organizations_limit")
            ch["create_organizations_limit"] = f["create_organizations_limit"]
        if "legal_accepted_at" in f:
            ch["legal_accepted_at"] = None if f["legal_accepted_at"] is None else \
                rfc3339_ms("legal_accepted_at", f["legal_accepted_at"])
        if f.get("created_at") is not None:
            ch["created_at"] = rfc3339_ms("created_at", f["created_at"])
        for k in ("public_metadata", "private_metadata", "unsafe_metadata"):
            if k in f:
                ch[k] = self._metadata_size_ok(k, {} if f[k] is None else copy.deepcopy(f[k]))
        out = self.do_patch("users", u, ch, replace=True)
        self._applied("update", "user", key)
        return json_response(200, out)

    def w_merge_user_metadata(self, parts, body, ver, merge=True):
        f_ok = form(body, {k: "object" for k in ("public_metadata", "private_metadata", "unsafe_metadata")})
        u = self._user_or_404(parts[1])
        out = self._metadata_write("users", u, f_ok, ("public_metadata", "private_metadata", "unsafe_metadata"), merge)
        self._applied("update", "user", out["id"])
        return json_response(200, out)

    def w_replace_user_metadata(self, parts, body, ver):
        return self.w_merge_user_metadata(parts, body, ver, merge=False)

    def _user_flags(self, parts, body, change):
        form(body, {})
        st = self.store
        u = self._user_or_404(parts[1])
        out = self.do_patch("users", u, change, replace=True)
        self._applied("update", "user", out["id"])
        return u, out

    def w_ban_user(self, parts, body, ver):
        # "all their sessions are revoked"
        st = self.store
        u, out = self._user_flags(parts, body, {"banned": True})
        for i in st.sess_links.of_parent(u):
            if st.session(i).get("status") in ("active", "pending"):
                self.do_patch("sessions", i, {"status": "revoked"})
        return json_response(200, st.user(u))

    def w_unban_user(self, parts, body, ver):
        return json_response(200, self._user_flags(parts, body, {"banned": False})[1])

    def w_lock_user(self, parts, body, ver):
        return json_response(200, self._user_flags(parts, body, {"locked": True,
                                                                 "lockout_expires_in_seconds": USER_LOCK_SECONDS})[1])

    def w_unlock_user(self, parts, body, ver):
        return json_response(200, self._user_flags(parts, body, {"locked": False, "lockout_expires_in_seconds": None,
                                                                 "verification_attempts_remaining": 100})[1])

    def w_delete_user(self, parts, body, ver):
        form(body, {})
        st = self.store
        u = self._user_or_404(parts[1])
        key = st.users.key(u)
        self.do_delete("users", u)
        self._applied("delete", "user", key)
        return json_response(200, {"object": "user", "id": key, "deleted": True})

    # organizations
    @staticmethod
    def _org_name(name):
        if not name.strip():
            raise form_error("form_param_value_invalid", "is invalid", "name is invalid. Must be not empty", "name")
        if len(name) > 256:
            raise form_error("form_param_max_length_exceeded", "exceeds maximum length",
                             "name should not exceed 256 characters.", "name")
        if re.search(r"<[^>]*>|[a-z][a-z0-9+.-]*://|www\.", name, re.I):
            raise form_error("form_param_value_invalid", "invalid organization name",
                             f"The organization name {json.dumps(name, ensure_ascii=False)} is invalid: "
                             "it may not contain URLs or HTML.", "name")
        return name

    def _org_slug(self, slug, o=None):
        if not SLUG_RX.fullmatch(slug):
            raise form_error("form_param_format_invalid", "is invalid",
                             'slug must contain only lowercase alphanumeric characters and the dash "-".', "slug")
        other = self.store.org_index(slug)
        if other is not None and other != o:
            raise form_error("form_identifier_exists", "is taken", "That slug is taken. Please try another.", "slug")
        return slug

    @staticmethod
    def _role_set_key(v):
        if not re.fullmatch(r"role_set:[a-z0-9_]+", v):
            raise form_error("form_param_format_invalid", "is invalid",
                             "role_set_key must start with 'role_set:' and contain only lowercase alphanumeric "
                             "characters and underscores.", "role_set_key")
        return v

    @staticmethod
    def _max_memberships(v):
        if v < 0:
            raise form_error("form_param_value_invalid", "is invalid",
                             "max_allowed_memberships must be greater than or equal to 0.", "max_allowed_memberships")
        return v

    def w_create_org(self, parts, body, ver):
        st = self.store
        f = form(body, ORG_CREATE_FIELDS, required=("name",))
        new = {"name": self._org_name(f["name"]), "created_by": None, "public_metadata": {}, "private_metadata": {},
               "max_allowed_memberships": 0, "admin_delete_enabled": True, "has_image": False}
        if f.get("slug") is not None:
            new["slug"] = self._org_slug(f["slug"])
        if f.get("created_by") is not None:
            u = st.users.index_of(f["created_by"])
            if not st.users.live(u):
                raise ApiError(400, "organization_creator_not_found", "creator not found",
                               f"No users found with id {f['created_by']}.")
            new["created_by"] = st.users.key(u)
        for k in ("public_metadata", "private_metadata"):
            if f.get(k) is not None:
                new[k] = self._metadata_size_ok(k, f[k])
        if f.get("max_allowed_memberships") is not None:
            new["max_allowed_memberships"] = self._max_memberships(f["max_allowed_memberships"])
        if f.get("created_at") is not None:
            new["created_at"] = rfc3339_ms("created_at", f["created_at"])
        if f.get("role_set_key") is not None:
            new["role_set_key"] = self._role_set_key(f["role_set_key"])
        o = st.orgs.next_index
        new["image_url"] = image_url_for("org", st.orgs.key(o), False, st.seed, o + 10 ** 9)
        obj = self.do_create("organizations", new, replace=True)
        o = st.orgs.index_of(obj["id"])
        if new["created_by"]:  # the creator becomes an admin
            self.do_create("organization_memberships", {"organization_id": obj["id"], "user_id": new["created_by"],
                                                        "role": "org:admin"})
        self._applied("create", "organization", obj["id"])
        return json_response(200, st.org(o))

    def w_update_org(self, parts, body, ver):
        st = self.store
        self._no_metadata_in_update(body, ver, "/v1/organizations/{organization_id}")
        f = form(body, ORG_UPDATE_FIELDS)
        o = self._org_or_404(parts[1])
        ch = {}
        if f.get("name") is not None:
            ch["name"] = self._org_name(f["name"])
        if f.get("slug") is not None:
            ch["slug"] = self._org_slug(f["slug"], o)
        if f.get("max_allowed_memberships") is not None:
            ch["max_allowed_memberships"] = self._max_memberships(f["max_allowed_memberships"])
        if f.get("admin_delete_enabled") is not None:
            ch["admin_delete_enabled"] = f["admin_delete_enabled"]
        if f.get("created_at") is not None:
            ch["created_at"] = rfc3339_ms("created_at", f["created_at"])
        if f.get("role_set_key") is not None:
            ch["role_set_key"] = self._role_set_key(f["role_set_key"])
        for k in ("public_metadata", "private_metadata"):
            if k in f:
                ch[k] = self._metadata_size_ok(k, {} if f[k] is None else copy.deepcopy(f[k]))
        out = self.do_patch("organizations", o, ch, replace=True)
        self._applied("update", "organization", out["id"])
        return json_response(200, st.org(o))

    def w_merge_org_metadata(self, parts, body, ver, merge=True):
        st = self.store
        f_ok = form(body, {k: "object" for k in ("public_metadata", "private_metadata")})
        o = self._org_or_404(parts[1])
        self._metadata_write("organizations", o, f_ok, ("public_metadata", "private_metadata"), merge)
        self._applied("update", "organization", st.orgs.key(o))
        return json_response(200, st.org(o))

    def w_replace_org_metadata(self, parts, body, ver):
        return self.w_merge_org_metadata(parts, body, ver, merge=False)

    def w_delete_org(self, parts, body, ver):
        form(body, {})
        st = self.store
        o = self._org_or_404(parts[1])
        key = st.orgs.key(o)
        self.do_delete("organizations", o)
        self._applied("delete", "organization", key)
        return json_response(200, {"object": "organization", "id": key, "deleted": True})

    # memberships
    def w_create_membership(self, parts, body, ver):
        st = self.store
        f = form(body, MEMBERSHIP_CREATE_FIELDS, required=("user_id", "role"))
        o = self._org_or_404(parts[1])
        u = self._user_or_404(f["user_id"])
        role = self._role_key(f["role"])
        if st.mem_of_pair(o, u) is not None:
            raise ApiError(400, "already_a_member_in_organization", "already a member",
                           f"{st.users.key(u)} is already a member of the organization.")
        self._seat_left(o)
        new = {"organization_id": st.orgs.key(o), "user_id": st.users.key(u), "role": role}
        for k in ("public_metadata", "private_metadata"):
            if f.get(k) is not None:
                new[k] = self._metadata_size_ok(k, f[k])
        out = self.do_create("organization_memberships", new)
        self._applied("create", "organization_membership", out["id"])
        return json_response(200, out)

    def w_update_membership(self, parts, body, ver):
        f = form(body, {"role": "string"}, required=("role",))
        o, u, m = self._membership_or_404(parts[1], parts[3])
        out = self.do_patch("organization_memberships", m, {"role": self._role_key(f["role"])}, replace=True)
        self._applied("update", "organization_membership", out["id"])
        return json_response(200, out)

    def w_merge_membership_metadata(self, parts, body, ver):
        f_ok = form(body, {k: "object" for k in ("public_metadata", "private_metadata")})
        o, u, m = self._membership_or_404(parts[1], parts[3])
        out = self._metadata_write("organization_memberships", m, f_ok, ("public_metadata", "private_metadata"), True)
        self._applied("update", "organization_membership", out["id"])
        return json_response(200, out)

    def w_delete_membership(self, parts, body, ver):
        form(body, {})
        st = self.store
        o, u, m = self._membership_or_404(parts[1], parts[3])
        out = st.membership(m)  # the spec answers the membership itself
        self.do_delete("organization_memberships", m)
        self._applied("delete", "organization_membership", out["id"])
        return json_response(200, out)

    # organization invitations
    def get_org_invitation(self, org_ident, inv_ident, q):
        check_params(q, set(), set())
        st = self.store
        i = self._org_invitation_or_404(org_ident, inv_ident)
        return json_response(200, st.orginv(i))

    def _org_invitation_or_404(self, org_ident, inv_ident):
        st = self.store
        o = self._org_or_404(org_ident)
        i = st.orginvs.index_of(inv_ident)
        if not st.orginvs.live(i) or st.orginv_links.parent(i) != o:
            raise ApiError(404, "organization_invitation_not_found", "not found",
                           f"No invitation found with id {inv_ident}.")
        return i

    def w_create_org_invitation(self, parts, body, ver):
        st = self.store
        f = form(body, ORG_INVITATION_CREATE_FIELDS, required=("email_address", "role"))
        o = self._org_or_404(parts[1])
        email = self._email(f["email_address"])
        role = self._role_key(f["role"])
        days = self._expires_in_days(f)
        new = {"organization_id": st.orgs.key(o), "email_address": email, "role": role, "inviter_id": None,
               "public_metadata": {}, "private_metadata": {}, "expires_in_days": days}
        if f.get("inviter_user_id") is not None:
            new["inviter_id"] = self._org_admin(o, f["inviter_user_id"], "inviter_user_id")
        for k in ("public_metadata", "private_metadata"):
            if f.get(k) is not None:
                new[k] = self._metadata_size_ok(k, f[k])
        for i in st.orginv_links.of_parent(o):
            own = st.own(st.orginvs, i)
            if own.get("status") == "pending" and str(own.get("email_address", "")).lower() == email.lower():
                raise ApiError(400, "organization_invitation_not_unique", "organization invitation not unique",
                               "Organizations cannot have duplicate pending invitations for an email address.")
        if any(st.mem_of_pair(o, u) is not None for u in st.users_by_email([email])):
            raise ApiError(400, "already_a_member_in_organization", "already a member",
                           f"{email} is already a member of the organization.")
        self._seat_left(o)
        if f.get("redirect_url"):
            new["url"] = self._invite_url(f["redirect_url"])
        out = self.do_create("organization_invitations", new)
        i = st.orginvs.index_of(out["id"])
        self._applied("create", "organization_invitation", out["id"])
        return json_response(200, st.orginv(i))

    def w_revoke_org_invitation(self, parts, body, ver):
        st = self.store
        f = form(body, {"requesting_user_id": "string?"})
        i = self._org_invitation_or_404(parts[1], parts[3])
        if f.get("requesting_user_id") is not None:
            self._org_admin(st.orginv_links.parent(i), f["requesting_user_id"], "requesting_user_id")
        if st.own(st.orginvs, i).get("status") != "pending":
            raise ApiError(404, "organization_invitation_not_pending", "not pending",
                           "The organization invitation is not in the 'pending' status.")
        self.do_patch("organization_invitations", i, {"status": "revoked"})
        self._applied("update", "organization_invitation", st.orginvs.key(i))
        return json_response(200, st.orginv(i))

    # instance invitations
    def w_create_invitation(self, parts, body, ver):
        st = self.store
        f = form(body, INVITATION_CREATE_FIELDS, required=("email_address",))
        email = self._email(f["email_address"])
        days = self._expires_in_days(f)
        if "template_slug" in f and f["template_slug"] not in ("invitation", "waitlist_invitation"):
            raise form_error("form_param_value_invalid", "is invalid",
                             f"{f['template_slug']} does not match the allowed values for parameter template_slug. "
                             "Allowed values: invitation, waitlist_invitation", "template_slug")
        new = {"email_address": email, "public_metadata": {}, "expires_in_days": days}
        if f.get("public_metadata") is not None:
            new["public_metadata"] = self._metadata_size_ok("public_metadata", f["public_metadata"])
        ignore = f.get("ignore_existing") is True
        if not ignore:
            if any(st.invitation(i).get("status") == "pending"
                   and str(st.invitation(i).get("email_address", "")).lower() == email.lower()
                   for i in st.live_indices(st.invs)):
                raise ApiError(400, "duplicate_record", "duplicate invitation",
                               f"There are already pending invitations for the following email addresses: {email}")
            if st.users_by_email([email]):
                raise form_error("form_identifier_exists", "is taken",
                                 "That email address is taken. Please try another.", "email_address")
        if f.get("redirect_url"):
            new["url"] = self._invite_url(f["redirect_url"])
        out = self.do_create("invitations", new, unique=not ignore)
        self._applied("create", "invitation", out["id"])
        return json_response(200, out)

    def w_revoke_invitation(self, parts, body, ver):
        st = self.store
        form(body, {})
        i = st.invs.index_of(parts[1])
        if not st.invs.live(i):
            raise not_found(f"No invitation was found with id {parts[1]}.")
        status = st.invitation(i).get("status")
        if status == "revoked":
            raise ApiError(400, "invitation_already_revoked", "Invitation is already revoked.",
                           "Invitation is already revoked.")
        if status == "accepted":
            msg = "Invitation is already accepted, try signing in instead."
            raise ApiError(400, "invitation_already_accepted", msg, msg)
        out = self.do_patch("invitations", i, {"status": "revoked"})
        self._applied("update", "invitation", out["id"])
        return json_response(200, out)

    # -- /__mock -------------------------------------------------------------
    def handle_control(self, method, path, q, body):
        parts = [unquote(p) for p in path.split("/")[2:] if p != ""]
        st = self.store
        if parts == ["health"]:
            return {"ok": True}
        if parts == ["state"] and method == "GET":
            with st.lock:
                return st.state()
        if parts == ["reset"] and method == "POST":
            self.reset(body if isinstance(body, dict) else None)
            with self.store.lock:
                return self.store.state()
        if parts == ["config"]:
            if method == "POST":
                if not isinstance(body, dict):
                    raise ControlError(400, "expected a JSON object")
                unknown = set(body) - set(self.cli_config)
                if unknown:
                    raise ControlError(400, f"unknown config keys: {sorted(unknown)}")
                note_raw(body)
                self._check_write_config(body)
                ws = body.get("webhook_secret")
                if ws is not None:
                    try:
                        svix_sign(str(ws), "msg_check", 0, b"")
                        if not base64.b64decode(str(ws)[6:] if str(ws).startswith("whsec_") else str(ws)):
                            raise ValueError("empty key")
                    except ValueError as e:
                        raise ControlError(400, f"webhook_secret is not whsec_<base64>: {e}")
                with self.meta_lock:
                    self.config.update(body)
                    if "rate_limit" in body or "rate_limit_window" in body:
                        self.rate_window.clear()
                    if "write_rate_limits" in body:
                        self.object_windows.clear()
            elif method != "GET":
                raise ControlError(405, "use GET or POST")
            with self.meta_lock:
                cfg = {k: v for k, v in self.config.items() if k not in ("secret_key", "webhook_secret")}
                cfg["secret_key_sha256"] = hashlib.sha256((self.config.get("secret_key") or "").encode()).hexdigest()
                ws = self.config.get("webhook_secret")
                cfg["webhook_secret_sha256"] = hashlib.sha256(ws.encode()).hexdigest() if ws else None
            return cfg
        if parts == ["faults"]:
            if method == "POST":
                specs = body if isinstance(body, list) else [body]
                if not all(isinstance(s, dict) for s in specs):
                    raise ControlError(400, "expected a JSON object")
                ids = [self.add_fault(s) for s in specs]
                return {"id": ids[0]} if len(ids) == 1 else {"ids": ids}
            if method == "DELETE":
                with self.meta_lock:
                    n = len(self.faults)
                    self.faults = []
                return {"deleted": n}
            with self.meta_lock:
                return [self.public_fault(f) for f in self.faults]
        if len(parts) == 2 and parts[0] == "faults" and method == "DELETE":
            with self.meta_lock:
                before = len(self.faults)
                self.faults = [f for f in self.faults if str(f["id"]) != parts[1]]
                return {"deleted": before - len(self.faults)}
        if parts == ["triggers"]:
            if method == "POST":
                if not isinstance(body, dict):
                    raise ControlError(400, "expected a JSON object")
                return {"id": self.add_trigger(body)}
            if method == "DELETE":
                with self.meta_lock:
                    n = len(self.triggers)
                    self.triggers = []
                return {"deleted": n}
            with self.meta_lock:
                return [self.public_fault(t) for t in self.triggers]
        if parts == ["requests"]:
            if method == "DELETE":
                with self.meta_lock:
                    n = len(self.requests)
                    self.requests.clear()
                return {"deleted": n}
            rx = re.compile(q["path"][0]) if q.get("path") else None
            with self.meta_lock:
                items = list(self.requests)
            if rx:
                items = [e for e in items if rx.search(e["path"] + ("?" + e["query"] if e["query"] else ""))]
            return items
        if parts == ["writes"]:
            if method == "DELETE":
                with self.meta_lock:
                    n = len(self.writes)
                    self.writes.clear()
                return {"deleted": n}
            if method != "GET":
                raise ControlError(405, "use GET or DELETE")
            rx = re.compile(q["path"][0]) if q.get("path") else None
            want_m = q["method"][0].upper() if q.get("method") else None
            want_id = q["id"][0] if q.get("id") else None
            with self.meta_lock:
                items = [dict(w) for w in self.writes]
            return [w for w in items if (rx is None or rx.search(w["path"] or ""))
                    and (want_m is None or w["method"] == want_m) and (want_id is None or w["id"] == want_id)]
        if parts == ["stats"]:
            if method == "DELETE":
                with self.meta_lock:
                    self.stats = {"requests": 0, "by_status": {}, "rate_limited": 0,
                                  "max_in_flight": self.stats["in_flight"], "by_path_prefix": {},
                                  "faults_injected": 0, "in_flight": self.stats["in_flight"]}
            with self.meta_lock:
                out = json.loads(json.dumps(self.stats))
            out["cpu_seconds"] = round(time.process_time(), 4)  # the whole process's, since it started
            return out
        if parts == ["prepare"]:
            if method != "POST":
                raise ControlError(405, "use POST")
            return self.prepare(body)
        if parts and parts[0] == "events":
            return self.control_events(method, parts, q, body)
        if parts and parts[0] == "billing_subscriptions":
            return self.control_subscriptions(method, parts, body)
        if parts and parts[0] in KIND_NAMES:
            name = parts[0]
            kind = self.kind_of(name)
            objname = KIND_NAMES[name][0]
            self._tls.mute = (q.get("webhook") or ["1"])[0].lower() in ("0", "false", "no", "off")
            try:
                with st.lock:
                    if len(parts) == 1:
                        if method != "POST":
                            raise ControlError(405, "use POST to create")
                        if not isinstance(body, dict):
                            raise ControlError(400, "expected a JSON object")
                        return self.do_create(name, body)
                    if len(parts) != 2:
                        raise ControlError(404, "no such control endpoint")
                    idx = self.lookup(name, parts[1])
                    if not kind.live(idx):
                        raise ControlError(404, f"{objname} {parts[1]} not found")
                    if method == "GET":
                        return self.view(name, idx)
                    if method == "PATCH":
                        if not isinstance(body, dict):
                            raise ControlError(400, "expected a JSON object")
                        return self.do_patch(name, idx, body)
                    if method == "DELETE":
                        self.do_delete(name, idx)
                        return {"object": objname, "id": parts[1], "deleted": True}
                    raise ControlError(405, "use GET, PATCH or DELETE")
            finally:
                self._tls.mute = False
        raise ControlError(404, f"no control endpoint {method} {path}")

    def prepare(self, body):
        """POST /__mock/prepare [{"collections": [...]}]: encode now what the
        listings of these collections (default: every one served prepared)
        show, for prepared_pages, a slice of 1000 objects at a time under the
        store's lock, so that requests meanwhile wait for one slice at most."""
        names = body.get("collections") if isinstance(body, dict) else None
        names = list(PREPARED_VIEWS) if names is None else names
        if not isinstance(names, list) or any(n not in PREPARED_VIEWS for n in names):
            raise ControlError(400, f"collections: a list of {', '.join(PREPARED_VIEWS)}")
        t0, c0 = time.time(), time.process_time()
        st = self.store
        done = {}
        for name in names:
            kind = self.kind_of(name)
            with st.lock:
                live = list(st.live_indices(kind))
            for view in PREPARED_VIEWS[name]:
                for k in range(0, len(live), 1000):
                    with st.lock:
                        st.prepared(view, [i for i in live[k:k + 1000] if kind.live(i)])
            done[name] = len(live)
        return {"prepared": done, "seconds": round(time.time() - t0, 3),
                "cpu_seconds": round(time.process_time() - c0, 3)}

    @staticmethod
    def _check_write_config(body):
        wl = body.get("write_rate_limits", {})
        if not isinstance(wl, dict):
            raise ControlError(400, "write_rate_limits must be an object")
        for k, v in wl.items():
            if k not in WRITE_RATE_LIMITS:
                raise ControlError(400, f"unknown write rate limit {k!r} (known: {', '.join(WRITE_RATE_LIMITS)})")
            if v is not None and not (isinstance(v, dict) and isinstance(v.get("limit"), int)
                                      and isinstance(v.get("window", 10), (int, float)) and v.get("window", 10) > 0):
                raise ControlError(400, f"write_rate_limits[{k!r}] must be null or {{limit, window}}")
        mb = body.get("metadata_max_bytes", 0)
        if not isinstance(mb, int) or isinstance(mb, bool) or mb < 0:
            raise ControlError(400, "metadata_max_bytes must be an integer >= 0")
        if not isinstance(body.get("prepared_pages", False), bool):
            raise ControlError(400, "prepared_pages must be true or false")

    def control_subscriptions(self, method, parts, body):
        """GET /__mock/billing_subscriptions: every subscription (the live items
        grouped by subscription_id); GET .../<id>: one, as its webhooks show it;
        POST .../<id>/emit {"type": "subscription.created|updated|active|pastDue",
        "data": {...merged over it}}: record that event about it now."""
        st = self.store
        with st.lock:
            if len(parts) == 1 and method == "GET":
                return [{"id": sid, "payer_id": st.own(st.bitems, items[0]).get("payer_id"),
                         "items": [st.bitems.key(i) for i in items]} for sid, items in st.subscription_ids().items()]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "emit"):
                raise ControlError(404, "no such control endpoint")
            data = st.subscription_event(parts[1])
            if data is None:
                raise ControlError(404, f"subscription {parts[1]} not found")
            if len(parts) == 2:
                if method != "GET":
                    raise ControlError(405, "use GET")
                return data
            if method != "POST":
                raise ControlError(405, "use POST")
            etype = body.get("type") if isinstance(body, dict) else None
            if etype not in SUBSCRIPTION_EVENTS:
                raise ControlError(400, f"type must be one of {', '.join(SUBSCRIPTION_EVENTS)}")
            if isinstance(body.get("data"), dict):
                note_raw(body["data"])
                data = deep_merge(data, body["data"])
        return self.event_view(self.emit(etype, data), body.get("ts"))

    # -- control API: objects of every kind, and the events their changes send --
    def kind_of(self, name):
        return getattr(self.store, KIND_NAMES[name][1])

    def lookup(self, name, ident):
        st = self.store
        if name == "organizations":
            return st.org_index(ident, allow_slug=False)
        if name == "billing_plans":
            return st.plan_index(ident)
        return self.kind_of(name).index_of(ident)

    def view(self, name, idx):
        """An object as the control API shows it."""
        st = self.store
        return {
            "users": st.user, "organizations": lambda i: st.org_view(i, True),
            "organization_memberships": st.membership,
            "organization_invitations": lambda i: st.orginv(i, with_org=True),
            "invitations": st.invitation, "organization_domains": st.domain, "organization_roles": st.role,
            "organization_permissions": st.permission, "sessions": st.session,
            "billing_plans": st.plan, "billing_prices": st.price, "billing_subscription_items": st.bitem,
            "billing_statements": st.stmt, "billing_payment_attempts": st.payatt, "waitlist_entries": st.wait,
        }[name](idx)

    def do_create(self, name, body, **opts):
        st = self.store
        st.cascade_log = []
        if name == "users":
            obj = st.create_user(body)
            self.emit_for("user.created", st.users.index_of(obj["id"]))
            return obj
        if name == "organizations":
            obj = st.create_org(body, **opts)
            self.emit_for("organization.created", st.orgs.index_of(obj["id"]))
            return obj
        if name == "organization_memberships":
            obj = st.create_membership(body)
            self.emit_for("organizationMembership.created", st.mems.index_of(obj["id"]))
            return obj
        create = {"organization_invitations": st.create_orginv, "invitations": st.create_inv,
                  "organization_domains": st.create_dom, "organization_roles": st.create_role,
                  "organization_permissions": st.create_perm, "sessions": st.create_session,
                  "billing_plans": st.create_plan, "billing_prices": st.create_price,
                  "billing_subscription_items": st.create_bitem, "billing_statements": st.create_stmt,
                  "billing_payment_attempts": st.create_payatt, "waitlist_entries": st.create_wait}[name]
        idx = create(body, **opts)
        if name == "billing_subscription_items":
            # Clerk has no subscriptionItem.created: a new item sends the event of its status
            self.emit_for("subscriptionItem." + ITEM_STATUS_EVENT.get(st.own(st.bitems, idx).get("status"),
                                                                      "updated"), idx)
        elif name == "sessions":
            self.emit_for("session.pending" if st.session(idx).get("status") == "pending" else "session.created", idx)
        elif name in CREATED_EVENT:
            self.emit_for(CREATED_EVENT[name], idx)
        return self.view(name, idx)

    def do_patch(self, name, idx, body, replace=False):
        st = self.store
        kind = self.kind_of(name)
        if name in ("users", "organizations", "organization_memberships"):
            out = st.patch(kind, idx, body, replace=replace)
            self.emit_for({"users": "user.updated", "organizations": "organization.updated",
                           "organization_memberships": "organizationMembership.updated"}[name], idx)
            return out
        body = dict(body)
        accept_user = body.pop("user_id", None) if name == "organization_invitations" else None
        make_member = body.pop("create_membership", True) if name == "organization_invitations" else True
        before = st.own(kind, idx).get("status")
        st.patch_more(kind, idx, body, replace=replace)
        after = st.own(kind, idx).get("status")
        if name == "organization_invitations" and after != before:
            if after == "accepted":
                self._accept_invitation(idx, accept_user, make_member)
                self.emit_for("organizationInvitation.accepted", idx)
            elif after == "revoked":
                self.emit_for("organizationInvitation.revoked", idx)
        elif name == "sessions" and after != before:
            if after in ("ended", "removed", "revoked", "pending"):
                self.emit_for("session." + after, idx)
            elif before == "pending" and after == "active":
                self.emit_for("session.created", idx)
        elif name == "billing_subscription_items":
            x = ITEM_STATUS_EVENT.get(after) if after != before else None
            self.emit_for("subscriptionItem." + (x or "updated"), idx)
        elif name in UPDATED_EVENT:
            self.emit_for(UPDATED_EVENT[name], idx)
        return self.view(name, idx)

    def _accept_invitation(self, idx, user_id, make_member):
        """What accepting an organization invitation does in Clerk: the
        invited person's user (found by email, or signed up now) becomes a member."""
        st = self.store
        own = st.own(st.orginvs, idx)
        if user_id is not None:
            u = st.users.index_of(str(user_id))
            if not st.users.live(u):
                raise ControlError(404, f"user {user_id} not found")
        else:
            email = own.get("email_address")
            found = st.users_by_email([email]) if isinstance(email, str) else set()
            if found:
                u = min(found)
            else:
                u = st.users.index_of(self.do_create("users", {"email_address": [email]})["id"])
        st.orginv_accepted_by[idx] = st.users.key(u)
        o = st.orginv_links.parent(idx)
        if make_member and st.orgs.live(o) and st.mem_of_pair(o, u) is None:
            self.do_create("organization_memberships", {"organization_id": st.orgs.key(o), "user_id": st.users.key(u),
                                                        "role": own.get("role", "org:member")})

    def do_delete(self, name, idx):
        st = self.store
        st.cascade_log = []
        ev = DELETED_EVENT.get(name) if self._emitting() else None
        data = self.event_data(ev, idx) if ev else None
        {"users": st.delete_user, "organizations": st.delete_org,
         "organization_memberships": st.delete_membership}.get(
            name, lambda i: st.delete_child(self.kind_of(name), i))(idx)
        if ev:
            self.emit(ev, data)
        if self.config.get("cascade_events") and self._emitting():
            for cname, ci in st.cascade_log:
                cev = {"organization_memberships": "organizationMembership.deleted",
                       "organization_domains": "organizationDomain.deleted",
                       "sessions": "session.removed"}.get(cname)
                if cev:
                    d = self.event_data(cev, ci)
                    if cname == "sessions":
                        d = dict(d, status="removed")
                    self.emit(cev, d)
        st.cascade_log = []

    # -- events ------------------------------------------------------------------
    def _emitting(self):
        return bool(self.config.get("events", True)) and not getattr(self._tls, "mute", False)

    def emit_for(self, etype, idx):
        if idx is not None and self._emitting():
            self.emit(etype, self.event_data(etype, idx))

    def event_data(self, etype, idx):
        """The `data` of an event about object idx, as Clerk's webhooks send it."""
        st = self.store
        prefix, op = etype.split(".", 1)
        name = EVENT_KIND.get(prefix)
        if name is None:
            raise ControlError(400, f"unknown event type {etype}")
        key = self.kind_of(name).key(idx)
        if op == "deleted" and prefix == "user":
            out = {"object": "user", "id": key, "deleted": True}
            ext = st.user(idx).get("external_id")
            if isinstance(ext, str):
                out["external_id"] = ext
            return out
        if op == "deleted" and prefix == "organization":
            return {"object": "organization", "id": key, "slug": st.org(idx).get("slug"), "deleted": True}
        if op == "deleted" and prefix == "organizationDomain":
            return {"object": "organization_domain", "id": key, "deleted": True}
        if op == "deleted" and prefix == "role":
            return {"object": "role", "id": key, "slug": None, "deleted": True}
        if op == "deleted" and prefix == "permission":
            return {"object": "permission", "id": key, "deleted": True}
        if prefix == "organizationInvitation":
            out = st.orginv(idx, with_org=True)
            if op == "accepted":
                out["user_id"] = st.orginv_accepted_by.get(idx)
            return out
        if prefix == "subscriptionItem":
            return st.bitem_event(idx)
        if prefix == "paymentAttempt":
            return st.payatt_event(idx)
        if prefix == "waitlistEntry":  # (the webhooks' object name is camelCase)
            return {k: ("waitlistEntry" if k == "object" else v) for k, v in st.wait(idx).items()}
        if prefix == "session":
            out = {k: v for k, v in st.session(idx).items() if k != "tasks"}
            u = st.users.index_of(out.get("user_id")) if isinstance(out.get("user_id"), str) else None
            out["user"] = st.user(u) if u is not None and u < st.users.next_index else None
            return out
        return self.view(name, idx)

    def emit(self, etype, data):
        with self.events_lock:
            self.event_seq += 1
            ev = {"seq": self.event_seq, "svix_id": new_msg_id(), "type": etype, "timestamp": now_ms(), "data": data}
            self.events.append(ev)
        if self.config.get("webhook_url"):
            self._deliver(ev)
        return ev

    @staticmethod
    def event_body(ev):
        got = ev.get("_body")
        if got is None:
            got = ev["_body"] = encode_json({
                "data": ev["data"],
                "event_attributes": {"http_request": {"client_ip": "127.0.0.1", "user_agent": "mock-clerk/1.0"}},
                "instance_id": INSTANCE_ID, "object": "event", "timestamp": ev["timestamp"], "type": ev["type"]})
        return got

    def event_view(self, ev, ts=None):
        body = self.event_body(ev)
        out = {"seq": ev["seq"], "svix_id": ev["svix_id"], "type": ev["type"], "timestamp": ev["timestamp"]}
        try:
            out["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            out["body"] = None
            out["body_base64"] = base64.b64encode(body).decode("ascii")
        secret = self.config.get("webhook_secret")
        ts = int(time.time()) if ts is None else int(ts)
        out["svix_timestamp"] = str(ts) if secret else None
        out["svix_signature"] = svix_sign(secret, ev["svix_id"], ts, body) if secret else None
        if "delivery" in ev:
            out["delivery"] = ev["delivery"]
        return out

    def _deliver(self, ev):
        """POST the event to config webhook_url, in order, from one thread."""
        with self.events_lock:
            if self.delivery_queue is None:
                import queue
                self.delivery_queue = queue.Queue()
                threading.Thread(target=self._delivery_loop, daemon=True).start()
        self.delivery_queue.put(ev)

    def _delivery_loop(self):
        import urllib.request
        while True:
            ev = self.delivery_queue.get()
            url = self.config.get("webhook_url")
            if not url:
                continue
            view = self.event_view(ev)
            headers = {"Content-Type": "application/json", "svix-id": ev["svix_id"],
                       "svix-timestamp": view["svix_timestamp"] or str(int(time.time()))}
            if view["svix_signature"]:
                headers["svix-signature"] = view["svix_signature"]
            try:
                req = urllib.request.Request(url, data=self.event_body(ev), headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=10) as resp:
                    ev["delivery"] = {"status": resp.status}
            except Exception as e:  # noqa: BLE001 - recorded for the test to see
                ev["delivery"] = {"status": getattr(e, "code", None), "error": str(e)}

    def control_events(self, method, parts, q, body):
        if len(parts) != 1:
            raise ControlError(404, "no such control endpoint")
        if method == "DELETE":
            with self.events_lock:
                n = len(self.events)
                self.events.clear()
            return {"deleted": n}
        if method == "POST":
            # {"type": T, "id": ID}: an event about an object as it is now; {"type": T, "data": {...}}: as given
            if not isinstance(body, dict) or not isinstance(body.get("type"), str):
                raise ControlError(400, "expected {type, id} or {type, data}")
            etype = body["type"]
            if "data" in body:
                note_raw(body["data"])
                data = body["data"]
            elif etype.split(".", 1)[0] == "subscription":
                with self.store.lock:
                    data = self.store.subscription_event(str(body.get("id", "")))
                if data is None:
                    raise ControlError(404, f"subscription {body.get('id')} not found")
            else:
                name = EVENT_KIND.get(etype.split(".", 1)[0])
                if name is None:
                    raise ControlError(400, f"unknown event type {etype}")
                with self.store.lock:
                    idx = self.lookup(name, str(body.get("id", "")))
                    if idx is None or idx >= self.kind_of(name).next_index:
                        raise ControlError(404, f"{KIND_NAMES[name][0]} {body.get('id')} not found")
                    data = self.event_data(etype, idx)
            return self.event_view(self.emit(etype, data), body.get("ts"))
        if method != "GET":
            raise ControlError(405, "use GET, POST or DELETE")
        rx = re.compile(q["type"][0]) if q.get("type") else None
        after = int(q["after"][0]) if q.get("after") else 0
        ts = q["ts"][0] if q.get("ts") else None
        with self.events_lock:
            items = [e for e in self.events if e["seq"] > after and (rx is None or rx.search(e["type"]))]
        return [self.event_view(e, ts) for e in items]


# Control API collections: name -> (object name in DELETE answers, Store attribute)
KIND_NAMES = {
    "users": ("user", "users"),
    "organizations": ("organization", "orgs"),
    "organization_memberships": ("organization_membership", "mems"),
    "organization_invitations": ("organization_invitation", "orginvs"),
    "invitations": ("invitation", "invs"),
    "organization_domains": ("organization_domain", "doms"),
    "organization_roles": ("role", "roles"),
    "organization_permissions": ("permission", "perms"),
    "sessions": ("session", "sessions"),
    "billing_plans": ("commerce_plan", "plans"),
    "billing_prices": ("commerce_price", "prices"),
    "billing_subscription_items": ("commerce_subscription_item", "bitems"),
    "billing_statements": ("commerce_statement", "stmts"),
    "billing_payment_attempts": ("commerce_payment", "payatts"),
    "waitlist_entries": ("waitlist_entry", "waits"),
}
EVENT_KIND = {"user": "users", "organization": "organizations", "organizationMembership": "organization_memberships",
              "organizationInvitation": "organization_invitations", "organizationDomain": "organization_domains",
              "role": "organization_roles", "permission": "organization_permissions", "session": "sessions",
              "subscriptionItem": "billing_subscription_items", "paymentAttempt": "billing_payment_attempts",
              "waitlistEntry": "waitlist_entries"}
CREATED_EVENT = {"organization_invitations": "organizationInvitation.created",
                 "organization_domains": "organizationDomain.created",
                 "organization_roles": "role.created", "organization_permissions": "permission.created",
                 "billing_payment_attempts": "paymentAttempt.created", "waitlist_entries": "waitlistEntry.created"}
UPDATED_EVENT = {"organization_domains": "organizationDomain.updated", "organization_roles": "role.updated",
                 "organization_permissions": "permission.updated",
                 "billing_payment_attempts": "paymentAttempt.updated", "waitlist_entries": "waitlistEntry.updated"}
DELETED_EVENT = {"users": "user.deleted", "organizations": "organization.deleted",
                 "organization_memberships": "organizationMembership.deleted",
                 "organization_domains": "organizationDomain.deleted", "organization_roles": "role.deleted",
                 "organization_permissions": "permission.deleted"}


# The listing views (Store.prepared) of each collection that POST /__mock/prepare encodes.
PREPARED_VIEWS = {
    "users": [("users",)],
    "organizations": [("orgs", False, False), ("orgs", True, False)],  # (include_members_count)
    "organization_memberships": [("mems",)],
    "organization_invitations": [("orginvs", True), ("orginvs", False)],  # (instance-wide, per organization)
    "invitations": [("invs",)],
    "organization_domains": [("doms",)],
    "organization_roles": [("roles",)],
    "organization_permissions": [("perms",)],
    "sessions": [("sessions",)],
    "waitlist_entries": [("waits",)],
}

# Triggers delete children before their parents; memberships first, as before.
TRIGGER_DELETE_ORDER = ["billing_payment_attempts", "billing_statements", "billing_subscription_items",
                        "billing_prices", "billing_plans", "waitlist_entries", "organization_memberships", "organization_invitations", "invitations", "organization_domains",
                        "sessions", "organization_roles", "organization_permissions", "organizations", "users"]
# Collections whose objects need a parent: (body field, Store attribute of the parent)
PARENT_FIELD = {"organization_memberships": None, "organization_invitations": ("organization_id", "orgs"),
                "organization_domains": ("organization_id", "orgs"), "sessions": ("user_id", "users"),
                "billing_prices": ("plan_id", "plans"), "billing_subscription_items": ("payer_user_id", "users"),
                "billing_statements": ("payer_user_id", "users"),
                "billing_payment_attempts": ("statement_id", "stmts")}


def new_msg_id():
    """A Svix message id: msg_ and 27 random base62 characters."""
    return "msg_" + os.urandom(27).translate(B62_BYTES).decode("ascii")


def svix_sign(secret, msg_id, timestamp, body):
    """svix-signature of one delivery: v1,base64(HMAC-SHA256(key, "id.ts.body"))."""
    key = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    mac = hmac.new(base64.b64decode(key), b"%s.%d.%s" % (msg_id.encode(), int(timestamp), body), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def path_prefix(path):
    """Route-shaped key for stats: ids replaced by {id}."""
    parts = path.split("/")
    out = []
    for i, p in enumerate(parts):
        if i == 3 and len(parts) > 3 and parts[2] in ("users", "organizations", "sessions", "organization_roles",
                                                     "organization_permissions", "invitations") and p != "count":
            out.append("{id}")
        elif i == 4 and parts[2:4] == ["billing", "statements"]:
            out.append("{id}")
        elif i == 5 and parts[2] == "organizations" and parts[4] in ("memberships", "invitations"):
            out.append("{id}")
        else:
            out.append(p)
    return "/".join(out)


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-clerk/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this

    def log_message(self, fmt, *args):  # silence the default stderr access log
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, resp, truncate=False):
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers.items():
            self.send_header(k, str(v))
        self.end_headers()
        if truncate:
            self.wfile.write(resp.body[:len(resp.body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(resp.body)

    def dispatch(self, method):
        app = self.server.app
        split = urlsplit(self.path)
        path, query = split.path, split.query
        raw = self.read_body()
        if path.startswith("/__mock/") or path == "/__mock":
            self.control(app, method, path, query, raw)
            return
        app.begin()
        started = time.time()
        status, fault, answered, withheld = 0, None, False, None
        headers = {k: (("sha256:" + hashlib.sha256(v.encode("utf-8", "surrogateescape")).hexdigest())
                       if k.lower() in ("authorization", "proxy-authorization") else v)
                   for k, v in self.headers.items()}
        body_sha = hashlib.sha256(raw).hexdigest() if raw else None
        app._tls.req = {"method": method, "path": path, "body_sha256": body_sha, "route": None}
        app._tls.applied = []
        try:
            target = path + ("?" + query if query else "")
            app.run_triggers(target, method)
            extra_ms, f = app.pick_faults(target, method)
            if extra_ms:
                time.sleep(extra_ms / 1000)
            if f is not None:
                fault = f["kind"]
                status = self.inject(app, f, method, path, query)
                if status is not None:
                    return
                status = 0
            cfg_ms = int(app.config.get("latency_ms") or 0)
            if cfg_ms > 0:
                time.sleep(cfg_ms / 1000)
            resp = self.serve_api(app, method, path, query, raw)
            status = resp.status
            if fault == "lost_after_apply":
                withheld, status = status, 0
                self.lose(app, f, resp)
            else:
                self.send(resp, truncate=(fault == "truncated"))
                answered = fault != "truncated"
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            writes = app._tls.applied
            app._tls.applied = None
            extra = {}
            if body_sha:
                extra["body_sha256"] = body_sha
            if method != "GET":
                extra["applied"] = bool(writes)
                if writes:
                    extra["object_id"] = writes[0]["id"]
            if withheld is not None:
                extra.update(answered=False, withheld_status=withheld)
            elif status and not answered:
                extra["answered"] = False
            app.finish(method, path, query, status, headers, started, fault, extra, writes, answered)

    def lose(self, app, f, resp):
        """lost_after_apply: the request has been carried out (a write is
        applied); its answer is not sent.  "truncate": true sends half of it;
        "hang": true or N seconds keeps the connection open and silent first;
        "reset": true closes with a TCP RST."""
        if f.get("truncate"):
            self.send(resp, truncate=True)
            return
        if f.get("hang"):
            secs = HANG_MAX_SECONDS if f["hang"] is True else float(f["hang"])
            self.hang(min(secs, HANG_MAX_SECONDS), app)
        if f.get("reset"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def serve_api(self, app, method, path, query, raw=b""):
        try:
            q = parse_qs(query, keep_blank_values=True)
            wait = app.rate_check()
            if wait:
                raise ApiError(429, "too_many_requests", "Too many requests", "Too many requests, retry later",
                               {"resets_in": wait}, {"Retry-After": wait})
            if path == "/v1" or path.startswith("/v1/"):
                return app.handle_v1(method, path, q, self.headers, raw)
            raise not_found("The requested resource was not found.")
        except ApiError as e:
            resp = error_response(e)
        except Exception as e:  # a mock bug must still produce a well-formed 500
            app.log(f"internal error: {e!r}")
            resp = error_response(ApiError(500, "internal_clerk_error", "Oops, an unexpected error occurred",
                                           "There was an internal error on our servers."))
        resp.headers.setdefault("Clerk-Trace-Id", uuid.uuid4().hex)
        return resp

    def inject(self, app, f, method, path, query):
        """Carry out fault f.  Returns the status to log, or None when the
        request should be served normally (truncated: served, then cut)."""
        kind = f["kind"]
        if kind in ("truncated", "lost_after_apply"):
            return None
        if kind == "drop":
            if f.get("reset"):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return 0
        if kind == "hang":
            self.hang(min(float(f.get("seconds", HANG_MAX_SECONDS)), HANG_MAX_SECONDS), app)
            self.close_connection = True
            return 0
        body = f.get("body")
        if f.get("body_base64") is not None:
            raw = base64.b64decode(f["body_base64"])
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        elif body is not None:
            raw = encode_json(body)
        else:
            raw = None
        headers = dict(f.get("headers") or {})
        headers.setdefault("Clerk-Trace-Id", uuid.uuid4().hex)
        if kind == "malformed":
            if raw is None:
                raw = b'{"data":[{"object":"user","id":"user_2trunc' + b'\xff\xfe' + b'",,]'
            self.send(Response(int(f.get("status", 200)), raw, headers, f.get("content_type", "application/json")))
            return int(f.get("status", 200))
        # kind == "status"
        status = int(f.get("status", 500))
        code, msg, long_msg = STATUS_ERRORS.get(status, STATUS_ERRORS[500] if status >= 500
                                                else ("request_invalid", "Request failed", "Request failed"))
        if status == 503 and "code" not in f:
            code, msg, long_msg = "service_unavailable", "Service unavailable", "The service is temporarily unavailable."
        if f.get("code"):
            code = f["code"]
        if status == 429 and "Retry-After" not in headers:
            ra = f.get("retry_after", 1)
            if ra is not None:
                headers["Retry-After"] = ra
        if raw is None:
            raw = encode_json(clerk_error_body(code, msg, f.get("long_message", long_msg)))
        self.send(Response(status, raw, headers, f.get("content_type", "application/json")))
        return status

    def hang(self, seconds, app):
        """Keep the connection open without answering until the peer closes it."""
        end = time.monotonic() + seconds
        sock = self.connection
        while time.monotonic() < end and not app.shutting_down.is_set():
            try:
                r, _, _ = select.select([sock], [], [], 0.2)
                if r:
                    data = sock.recv(1, socket.MSG_PEEK)
                    if not data:
                        return
                    time.sleep(0.2)  # pipelined bytes: keep waiting
            except (OSError, ValueError):
                return

    def control(self, app, method, path, query, raw):
        try:
            body = None
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise ControlError(400, f"invalid JSON body: {e}")
            result = app.handle_control(method, path, parse_qs(query, keep_blank_values=True), body)
            resp = json_response(200, result)
        except ControlError as e:
            resp = json_response(e.status, {"error": str(e)})
        except (ValueError, TypeError, KeyError) as e:
            resp = json_response(400, {"error": f"bad request: {e!r}"})
        try:
            self.send(resp)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def tune_malloc():
    """Keep glibc from returning freed memory to the kernel after every
    response.  Each connection runs in a fresh thread, and without this every
    large page is mmap()ed, faulted in and unmapped again, which makes JSON
    encoding of a 1 MB page about three times slower.  No-op off glibc."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 64 << 20)   # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Clerk Backend API for tests.")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--port-file", help="write the chosen port to this file once listening")
    ap.add_argument("--secret-key", default=os.environ.get("MOCK_CLERK_SECRET_KEY"),
                    help="accepted Bearer secret key (default: $MOCK_CLERK_SECRET_KEY)")
    ap.add_argument("--users", type=int, default=25)
    ap.add_argument("--organizations", type=int, default=5)
    ap.add_argument("--memberships", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    for k, v in DEFAULT_SIZES.items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v, dest=k,
                        help=f"generated {k.replace('_', ' ')} (default {v})")
    ap.add_argument("--billing-anchor", type=int, default=None,
                    help="Unix ms the generated billing periods are laid out around "
                         "(default: the first of the current month, UTC)")
    ap.add_argument("--rate-limit", type=int, default=0, help="requests per 10 s window (0 = unlimited)")
    ap.add_argument("--latency-ms", type=int, default=0, help="delay added to every /v1 request")
    ap.add_argument("--log-file", help="append one line per /v1 request here")
    ap.add_argument("--prepared-pages", action="store_true",
                    help="serve listings from each object's JSON, encoded once (config prepared_pages)")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="exit when the parent process goes away")
    args = ap.parse_args(argv)
    if not args.secret_key:
        ap.error("--secret-key (or MOCK_CLERK_SECRET_KEY) is required")

    # Responses build many short-lived dicts; collect less often.
    gc.set_threshold(50_000, 20, 20)
    tune_malloc()
    app = App(args)
    server = Server(("127.0.0.1", args.port), Handler)
    server.app = app
    port = server.server_address[1]
    if args.port_file:
        tmp = f"{args.port_file}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"mock_clerk listening on http://127.0.0.1:{port}", flush=True)
    app.log(f"listening on 127.0.0.1:{port}")

    def stop(*_):
        app.shutting_down.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_with_parent:
        parent = os.getppid()

        def watch():
            while not app.shutting_down.is_set():
                if os.getppid() != parent:
                    stop()
                    return
                time.sleep(1)
        threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
