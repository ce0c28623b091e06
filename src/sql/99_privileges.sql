-- Nothing is usable by PUBLIC: an administrator grants what each role needs
-- (see README, "Permissions").
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT d.objid::regprocedure
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
         WHERE e.extname = 'clerk_sync'
           AND d.classid = 'pg_catalog.pg_proc'::regclass
           AND d.deptype = 'e'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
REVOKE ALL ON ALL TABLES IN SCHEMA clerk FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA clerk FROM PUBLIC;
REVOKE ALL ON SCHEMA clerk FROM PUBLIC;
