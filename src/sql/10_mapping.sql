-- The mapping from Clerk's JSON to rows.  This is the only place that knows
-- which JSON field feeds which column: the sync and the webhooks both write
-- through these functions.
--
-- Each takes a page as Clerk sends it (a bare array, an object with a "data"
-- array) or a single object, and yields one row per object.  Clerk sends
-- timestamps as Unix milliseconds.

CREATE FUNCTION clerk.objects(page jsonb)
RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT o
    FROM pg_catalog.jsonb_array_elements(
        CASE pg_catalog.jsonb_typeof(page)
            WHEN 'array' THEN page
            WHEN 'object' THEN
                CASE WHEN pg_catalog.jsonb_typeof(page -> 'data') = 'array'
                     THEN page -> 'data'
                     ELSE pg_catalog.jsonb_build_array(page) END
            ELSE '[]'::jsonb
        END) AS o
$$;
COMMENT ON FUNCTION clerk.objects(jsonb) IS 'The objects of a Clerk page: a bare array, {data: [...]} or one object';

CREATE FUNCTION clerk.ms_to_timestamptz(ms jsonb)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.to_timestamp((ms #>> '{}')::numeric / 1000)
$$;

-- Elements of a JSON array, or none when the value is not an array.
CREATE FUNCTION clerk.array_or_empty(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(v) = 'array' THEN v ELSE '[]'::jsonb END
$$;

-- A metadata object; JSON null or a missing field become {}.
CREATE FUNCTION clerk.object_or_empty(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN v IS NULL OR v = 'null'::jsonb THEN '{}'::jsonb ELSE v END
$$;

CREATE FUNCTION clerk.map_users(page jsonb)
RETURNS SETOF clerk.users
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'external_id',
        o ->> 'username',
        o ->> 'first_name',
        o ->> 'last_name',
        (SELECT e ->> 'email_address'
           FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'email_addresses')) e
          WHERE e ->> 'id' = o ->> 'primary_email_address_id'
          LIMIT 1),
        ARRAY(SELECT e ->> 'email_address'
                FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'email_addresses'))
                     WITH ORDINALITY AS a(e, n)
               WHERE e ->> 'email_address' IS NOT NULL
               ORDER BY n),
        (SELECT p ->> 'phone_number'
           FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'phone_numbers')) p
          WHERE p ->> 'id' = o ->> 'primary_phone_number_id'
          LIMIT 1),
        o ->> 'image_url',
        coalesce((o ->> 'banned')::boolean, false),
        coalesce((o ->> 'locked')::boolean, false),
        clerk.object_or_empty(o -> 'public_metadata'),
        clerk.object_or_empty(o -> 'private_metadata'),
        clerk.object_or_empty(o -> 'unsafe_metadata'),
        clerk.ms_to_timestamptz(o -> 'last_sign_in_at'),
        clerk.ms_to_timestamptz(o -> 'last_active_at'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_users(jsonb) IS 'Rows of clerk.users from Clerk user objects';

CREATE FUNCTION clerk.map_organizations(page jsonb)
RETURNS SETOF clerk.organizations
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'name',
        o ->> 'slug',
        o ->> 'image_url',
        (o ->> 'members_count')::integer,
        (o ->> 'max_allowed_memberships')::integer,
        (o ->> 'admin_delete_enabled')::boolean,
        o ->> 'created_by',
        clerk.object_or_empty(o -> 'public_metadata'),
        clerk.object_or_empty(o -> 'private_metadata'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_organizations(jsonb) IS 'Rows of clerk.organizations from Clerk organization objects';

CREATE FUNCTION clerk.map_memberships(page jsonb)
RETURNS SETOF clerk.organization_members
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        coalesce(o -> 'organization' ->> 'id', o ->> 'organization_id'),
        coalesce(o -> 'public_user_data' ->> 'user_id', o ->> 'user_id'),
        o ->> 'role',
        o ->> 'role_name',
        ARRAY(SELECT p FROM pg_catalog.jsonb_array_elements_text(clerk.array_or_empty(o -> 'permissions'))
                     WITH ORDINALITY AS a(p, n) ORDER BY n),
        clerk.object_or_empty(o -> 'public_metadata'),
        clerk.object_or_empty(o -> 'private_metadata'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_memberships(jsonb) IS 'Rows of clerk.organization_members from Clerk organization membership objects';
