#!/bin/bash
# bench/peer/run.sh [API_URL [KEY_FILE]]: reference point (e) of the
# benchmark (bench/README.md), sync.mjs, once against a Clerk API (the mock).
# bench/peer/run.sh --install: only the install below.
#
#   API_URL   the API's base with its version, e.g. http://127.0.0.1:PORT/v1
#             (default: $CLERK_API_URL)
#   KEY_FILE  a file holding the secret key (default: $CLERK_SECRET_KEY_FILE)
#   PGHOST, PGPORT, PGUSER, PGDATABASE, ...: the database (schema "peer")
#   PEER_JSON (optional): a file to write the script's JSON line to
#
# Installs the pinned packages (package-lock.json) with `npm ci` once, when
# node_modules is missing or was installed from another lock file.  Prints
# the run's seconds.  Needs Node.js 20.9 or later (@clerk/backend's engines)
# and npm; test/run.sh installs npm for `make bench` when it is missing.
set -euo pipefail

DIR=$(cd "$(dirname "$0")" && pwd)

install() {
	# npm ci once per lock file: the stamp holds the lock file's checksum
	local stamp=$DIR/node_modules/.peer-lock.sha256 sum
	sum=$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)
	if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
		(cd "$DIR" && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error >&2)
		echo "$sum" >"$stamp"
	fi
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "peer: node and npm are needed" >&2
	exit 1
fi
node -e '
	const [a, b] = process.versions.node.split(".").map(Number);
	process.exit(a > 20 || (a === 20 && b >= 9) ? 0 : 1);' \
	|| { echo "peer: @clerk/backend needs Node.js 20.9 or later, this is $(node --version)" >&2; exit 1; }
if [ "${1:-}" = --install ]; then
	install
	exit 0
fi

API_URL=${1:-${CLERK_API_URL:-}}
KEY_FILE=${2:-${CLERK_SECRET_KEY_FILE:-}}
[ -n "$API_URL" ] || { echo "peer: no API URL (argument or CLERK_API_URL)" >&2; exit 2; }
if [ -z "$KEY_FILE" ] || [ ! -r "$KEY_FILE" ]; then
	echo "peer: no readable key file (argument or CLERK_SECRET_KEY_FILE)" >&2
	exit 2
fi

install

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# the key goes to the script through its environment only
CLERK_API_URL=$API_URL CLERK_SECRET_KEY=$(cat "$KEY_FILE") CLERK_TELEMETRY_DISABLED=1 \
	node "$DIR/sync.mjs" >"$out"
[ -z "${PEER_JSON:-}" ] || cp "$out" "$PEER_JSON"
node -e '
	const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
	if (typeof r.seconds !== "number") process.exit(1);
	console.log(r.seconds.toFixed(2));' "$out"
