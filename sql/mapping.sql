-- The one mapping from Clerk JSON to rows, on the shapes the Backend API sends.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;
SET timezone = 'UTC';
\pset null '(null)'

-- A full user as in the API reference: primary email and phone resolved by id,
-- every address kept in order, milliseconds turned into timestamptz.
SELECT id, external_id, username, first_name, last_name, primary_email, email_addresses,
       primary_phone, image_url, banned, locked, public_metadata, private_metadata,
       unsafe_metadata, last_sign_in_at, last_active_at, created_at, updated_at,
       raw ->> 'object' AS object, deleted_at
FROM clerk.map_users('[{
  "id": "user_29w83sxmDNGwOuEthce5gg56FcC",
  "object": "user",
  "external_id": "ext-42",
  "primary_email_address_id": "idn_2",
  "primary_phone_number_id": "idn_ph1",
  "primary_web3_wallet_id": null,
  "username": "ada",
  "first_name": "Ada",
  "last_name": "Lovelace",
  "image_url": "https://img.clerk.com/xyz",
  "has_image": true,
  "public_metadata": {"plan": "pro", "seats": 3},
  "private_metadata": {"stripe": {"customer": "cus_fake"}},
  "unsafe_metadata": {},
  "email_addresses": [
    {"id": "idn_1", "object": "email_address", "email_address": "ada@old.example", "verification": null, "linked_to": []},
    {"id": "idn_2", "object": "email_address", "email_address": "ada@example.com",
     "verification": {"status": "verified", "strategy": "email_code"}, "linked_to": []}
  ],
  "phone_numbers": [{"id": "idn_ph1", "object": "phone_number", "phone_number": "+15555550100"}],
  "web3_wallets": [], "passkeys": [], "external_accounts": [],
  "password_enabled": true, "two_factor_enabled": false,
  "banned": false, "locked": true,
  "last_sign_in_at": 1700000000000,
  "last_active_at": 1700000123456,
  "created_at": 1690000000000,
  "updated_at": 1700000000500
}]');

-- Nulls and missing optional fields: nothing fails, defaults apply.
SELECT id, username, first_name, last_name, primary_email, email_addresses, primary_phone,
       banned, locked, public_metadata, private_metadata, unsafe_metadata,
       last_sign_in_at, created_at
FROM clerk.map_users('[
  {"id": "user_nulls", "object": "user", "username": null, "first_name": null, "last_name": null,
   "primary_email_address_id": null, "email_addresses": [], "phone_numbers": null,
   "public_metadata": null, "private_metadata": null, "unsafe_metadata": null,
   "banned": null, "locked": null, "last_sign_in_at": null, "created_at": 1690000000000,
   "updated_at": 1690000000000},
  {"id": "user_minimal"}
]') ORDER BY id;

-- Unknown extra fields are kept in raw and ignored otherwise; non-ASCII text survives.
SELECT id, first_name, last_name, primary_email, raw -> 'some_future_field' AS extra
FROM clerk.map_users('[{"id": "user_intl", "first_name": "Zoë", "last_name": "Łukasiewicz 東京 🚀",
  "primary_email_address_id": "idn_x",
  "email_addresses": [{"id": "idn_x", "email_address": "zoë@exämple.com"}],
  "some_future_field": {"nested": [1, 2, 3]}, "created_at": 1690000000000}]');

-- The same mapping accepts a {data, total_count} page and a single object (webhooks).
SELECT count(*) FROM clerk.map_users('{"data": [{"id": "user_a"}, {"id": "user_b"}], "total_count": 2}');
SELECT id FROM clerk.map_users('{"id": "user_single", "object": "user"}');
SELECT count(*) FROM clerk.map_users('[]');
SELECT count(*) FROM clerk.map_users(NULL);

-- Organizations, with and without members_count.
SELECT id, name, slug, image_url, members_count, max_allowed_memberships, admin_delete_enabled,
       created_by, public_metadata, private_metadata, created_at, updated_at
FROM clerk.map_organizations('{"data": [
  {"object": "organization", "id": "org_1", "name": "Acme Säge GmbH", "slug": "acme",
   "image_url": "https://img.clerk.com/org", "has_image": true, "members_count": 3,
   "max_allowed_memberships": 5, "admin_delete_enabled": true,
   "public_metadata": {"tier": "gold"}, "private_metadata": {},
   "created_by": "user_29w83sxmDNGwOuEthce5gg56FcC",
   "created_at": 1690000000000, "updated_at": 1690000000001},
  {"object": "organization", "id": "org_2", "name": "Nulls Inc", "slug": "nulls",
   "image_url": null, "max_allowed_memberships": 0, "admin_delete_enabled": null,
   "public_metadata": null, "created_at": 1690000000000, "updated_at": 1690000000000}
], "total_count": 2}') ORDER BY id;

-- Memberships: organization and user come from the nested objects.
SELECT id, organization_id, user_id, role, role_name, permissions, public_metadata,
       private_metadata, created_at, updated_at
FROM clerk.map_memberships('{"data": [
  {"object": "organization_membership", "id": "orgmem_1", "role": "org:admin", "role_name": "Admin",
   "permissions": ["org:sys_memberships:manage", "org:sys_profile:read"],
   "public_metadata": {"team": "ops"}, "private_metadata": {},
   "organization": {"object": "organization", "id": "org_1", "name": "Acme Säge GmbH", "slug": "acme"},
   "public_user_data": {"user_id": "user_29w83sxmDNGwOuEthce5gg56FcC", "first_name": "Ada",
                        "last_name": null, "image_url": "https://img.clerk.com/xyz",
                        "has_image": true, "identifier": "ada@example.com"},
   "created_at": 1690000000000, "updated_at": 1690000000000},
  {"object": "organization_membership", "id": "orgmem_2", "role": "org:member",
   "permissions": null, "organization": {"id": "org_2"}, "public_user_data": {"user_id": "user_b"},
   "created_at": 1690000000000, "updated_at": 1690000000000}
], "total_count": 2}') ORDER BY id;

-- A value Postgres rejects is an error of the mapping (the sync stores such
-- records one by one and logs the failure).
SELECT id, created_at FROM clerk.map_users('[{"id": "user_bad", "created_at": "yesterday"}]');
SELECT id, members_count FROM clerk.map_organizations('[{"id": "org_bad", "members_count": 1e20}]');
