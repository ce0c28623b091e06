CREATE FUNCTION clerk_apply_page(entity text, page jsonb)
RETURNS jsonb
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_apply_page';
COMMENT ON FUNCTION clerk_apply_page(text, jsonb) IS 'Write one page of Clerk JSON (users, organizations or memberships) through the sync''s write path';
