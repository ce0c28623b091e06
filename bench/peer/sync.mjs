// Reference point (e) of the benchmark (bench/README.md): what a Clerk user
// writes instead of clerk_sync, a short script on Clerk's official SDK.
//
// Lists users, organizations and organization memberships with
// @clerk/backend's list calls, pages of 500 by offset in created_at order,
// 8 pages in flight (one pool shared by the three lists; each list's first
// page gives its totalCount, so how many pages; getUserList asks
// /users/count beside each page, so a page of users is two requests), and
// writes each page as it arrives with one set-based upsert, on a pg pool of
// 8, into plain tables of the schema "peer" (created when missing).
// Memberships are listed instance-wide (getInstanceOrganizationMembershipList,
// GET /organization_memberships).  "seconds" runs from the first request to
// the last write; "rows" counts the objects listed, "written" the rows the
// upserts inserted or changed.
//
// Environment: CLERK_API_URL (the API's base with its version, as
// https://api.clerk.com/v1), CLERK_SECRET_KEY (never printed), and PGHOST,
// PGPORT, PGUSER, PGDATABASE, ... for pg.
// Prints one JSON line: {"seconds", "requests", "rate_limited", "rows",
// "written"}; exits non-zero on any error.
//
// A 429 is retried as a user would: the SDK throws it (ClerkAPIResponseError
// with status 429 and retryAfter from the Retry-After header); the call is
// made again after that many seconds (1 when the header is missing), at most
// 20 times.  Any other error ends the run.

const PAGE = 500;
const IN_FLIGHT = 8;
const MAX_429_RETRIES = 20;

// Every HTTP request the SDK makes, counted: the SDK binds globalThis.fetch
// when it is loaded, so the counter goes in before it is imported.
let requests = 0;
let rateLimited = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  requests++;
  const res = await realFetch(...args);
  if (res.status === 429) rateLimited++;
  return res;
};

const { createClerkClient } = await import('@clerk/backend');
const { default: pg } = await import('pg');

function fail(msg) {
  process.stderr.write(`peer sync: ${msg}\n`);
  process.exit(1);
}
process.on('unhandledRejection', (e) => fail(e?.stack || String(e)));

const apiUrlEnv = process.env.CLERK_API_URL || 'https://api.clerk.com/v1';
const secretKey = process.env.CLERK_SECRET_KEY;
if (!secretKey) fail('CLERK_SECRET_KEY is not set');
// createClerkClient takes the base (apiUrl, default https://api.clerk.com)
// and the version (apiVersion, default "v1") apart, and joins them with the
// path of each call: the last segment of CLERK_API_URL is the version.
const m = apiUrlEnv.replace(/\/+$/, '').match(/^(.*)\/(v\d+)$/);
if (!m) fail(`CLERK_API_URL ${apiUrlEnv} does not end in a version such as /v1`);
const clerk = createClerkClient({
  secretKey,
  apiUrl: m[1],
  apiVersion: m[2],
  telemetry: { disabled: true },
});

const pool = new pg.Pool({ max: IN_FLIGHT });
pool.on('error', (e) => fail(`pg: ${e.message}`));

const DDL = `
CREATE SCHEMA IF NOT EXISTS peer;
CREATE TABLE IF NOT EXISTS peer.users (
  id text PRIMARY KEY,
  email text,
  first_name text,
  last_name text,
  external_id text,
  created_at timestamptz,
  updated_at timestamptz,
  raw jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS users_email_idx ON peer.users (lower(email));
CREATE TABLE IF NOT EXISTS peer.organizations (
  id text PRIMARY KEY,
  name text,
  slug text,
  members_count integer,
  created_at timestamptz,
  updated_at timestamptz,
  raw jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS organizations_slug_idx ON peer.organizations (slug);
CREATE TABLE IF NOT EXISTS peer.memberships (
  id text PRIMARY KEY,
  organization_id text,
  user_id text,
  role text,
  created_at timestamptz,
  updated_at timestamptz,
  raw jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS memberships_organization_id_idx ON peer.memberships (organization_id);
CREATE INDEX IF NOT EXISTS memberships_user_id_idx ON peer.memberships (user_id);
`;

// Clerk's timestamps are Unix milliseconds.
const ts = (f) => `to_timestamp((o->>'${f}')::bigint / 1000.0)`;

// One statement per page: the page's objects as one jsonb array ($1), the
// columns taken out in SQL, a row rewritten only when its JSON changed.
const UPSERT = {
  users: `
    INSERT INTO peer.users AS t (id, email, first_name, last_name, external_id, created_at, updated_at, raw)
    SELECT o->>'id',
           (SELECT a->>'email_address' FROM jsonb_array_elements(o->'email_addresses') a
             WHERE a->>'id' = o->>'primary_email_address_id'),
           o->>'first_name', o->>'last_name', o->>'external_id', ${ts('created_at')}, ${ts('updated_at')}, o
      FROM jsonb_array_elements($1::jsonb) e(o)
    ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, first_name = EXCLUDED.first_name,
           last_name = EXCLUDED.last_name, external_id = EXCLUDED.external_id,
           created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, raw = EXCLUDED.raw
     WHERE t.raw IS DISTINCT FROM EXCLUDED.raw`,
  organizations: `
    INSERT INTO peer.organizations AS t (id, name, slug, members_count, created_at, updated_at, raw)
    SELECT o->>'id', o->>'name', o->>'slug', (o->>'members_count')::integer,
           ${ts('created_at')}, ${ts('updated_at')}, o
      FROM jsonb_array_elements($1::jsonb) e(o)
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, slug = EXCLUDED.slug,
           members_count = EXCLUDED.members_count, created_at = EXCLUDED.created_at,
           updated_at = EXCLUDED.updated_at, raw = EXCLUDED.raw
     WHERE t.raw IS DISTINCT FROM EXCLUDED.raw`,
  memberships: `
    INSERT INTO peer.memberships AS t (id, organization_id, user_id, role, created_at, updated_at, raw)
    SELECT o->>'id', o->'organization'->>'id', o->'public_user_data'->>'user_id', o->>'role',
           ${ts('created_at')}, ${ts('updated_at')}, o
      FROM jsonb_array_elements($1::jsonb) e(o)
    ON CONFLICT (id) DO UPDATE SET organization_id = EXCLUDED.organization_id,
           user_id = EXCLUDED.user_id, role = EXCLUDED.role, created_at = EXCLUDED.created_at,
           updated_at = EXCLUDED.updated_at, raw = EXCLUDED.raw
     WHERE t.raw IS DISTINCT FROM EXCLUDED.raw`,
};

// The SDK's list calls; each returns {data, totalCount}, data being class
// instances (camelCase) that keep the API's JSON in .raw.
const LIST = {
  users: (offset) => clerk.users.getUserList({ limit: PAGE, offset, orderBy: 'created_at' }),
  organizations: (offset) =>
    clerk.organizations.getOrganizationList({ limit: PAGE, offset, orderBy: 'created_at', includeMembersCount: true }),
  memberships: (offset) =>
    clerk.organizations.getInstanceOrganizationMembershipList({ limit: PAGE, offset, orderBy: 'created_at' }),
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(fn) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (e?.status === 429 && attempt < MAX_429_RETRIES) {
        await sleep(1000 * (e.retryAfter ?? 1));
        continue;
      }
      throw e;
    }
  }
}

const rows = { users: 0, organizations: 0, memberships: 0 };
const written = { users: 0, organizations: 0, memberships: 0 };

async function page(entity, offset) {
  const { data, totalCount } = await call(() => LIST[entity](offset));
  if (!Array.isArray(data) || typeof totalCount !== 'number') {
    throw new Error(`${entity} at offset ${offset}: no data or totalCount`);
  }
  if (data.length > 0) {
    const json = JSON.stringify(data.map((o) => o.raw ?? o));
    const r = await pool.query(UPSERT[entity], [json]);
    written[entity] += r.rowCount;
  }
  rows[entity] += data.length;
  return totalCount;
}

// The pool: IN_FLIGHT workers take (entity, offset) jobs from one queue.
// Each list starts with its first page; its totalCount adds the others.
const queue = Object.keys(LIST).map((entity) => ({ entity, offset: 0 }));
let running = 0;
let failed = null;

async function worker() {
  for (;;) {
    const job = queue.shift();
    if (!job) {
      // no job now: one may come from a first page still in flight
      if (running === 0 || failed) return;
      await sleep(5);
      continue;
    }
    running++;
    try {
      const total = await page(job.entity, job.offset);
      if (job.offset === 0) {
        for (let o = PAGE; o < total; o += PAGE) queue.push({ entity: job.entity, offset: o });
      }
    } catch (e) {
      failed ??= e;
      queue.length = 0;
    } finally {
      running--;
    }
  }
}

try {
  await pool.query(DDL);
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  if (failed) throw failed;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await pool.end();
  process.stdout.write(
    JSON.stringify({ seconds: Number(seconds.toFixed(2)), requests, rate_limited: rateLimited, rows, written }) + '\n',
  );
} catch (e) {
  // a ClerkAPIResponseError: the status and Clerk's error codes and messages
  const errs = Array.isArray(e?.errors) ? e.errors.map((x) => `${x.code}: ${x.message}`).join('; ') : '';
  fail([e?.message, e?.status && `HTTP ${e.status}`, errs].filter(Boolean).join(', ') || String(e));
}
