# Releases: the released install scripts never change; this library serves
# a database still on 1.0 (each entry point works or names ALTER EXTENSION
# clerk_sync UPDATE) and says which library a database ahead of it needs;
# and a 1.0 database holding data, updated with ALTER EXTENSION, equals a
# fresh install of the newest version: the same catalog objects, every row
# still there and readable (the credential still decrypts), and a sync and a
# webhook work afterwards.
use strict;
use warnings;

use Digest::SHA;
use File::Basename qw(dirname);
use MIME::Base64 qw(encode_base64);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $ROOT = dirname(__FILE__) . '/..';
my $JSON = JSON::PP->new->utf8->canonical;

# ---- released scripts are frozen ----

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
open my $sums, '<', "$ROOT/test/released.sha256" or die "test/released.sha256: $!";
while (my $line = <$sums>) {
    my ($sum, $file) = $line =~ /^([0-9a-f]{64})\s+(\S+)$/ or next;
    is(Digest::SHA->new(256)->addfile("$ROOT/$file")->hexdigest, $sum, "$file is unchanged since its release");
    is(Digest::SHA->new(256)->addfile("$sharedir/extension/$file")->hexdigest, $sum,
       "the installed $file is the released one");
}
close $sums;

# META.json (PGXN) states the version the control file installs
my ($default_version) = slurp_file("$ROOT/clerk_sync.control") =~ /^default_version = '([^']+)'/m;
my $meta = JSON::PP->new->decode(slurp_file("$ROOT/META.json"));
is($meta->{version}, "$default_version.0", 'META.json has the default version of clerk_sync.control');
is($meta->{provides}{clerk_sync}{version}, $meta->{version}, 'and provides that version');
is($meta->{license}, 'postgresql', 'under the PostgreSQL License');

# ---- a server with the new library ----

my $tag = ClerkMock::random_hex(6);
my $SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_upgrade_$tag", '');
my $mock = ClerkMock->new(users => 40, organizations => 4, memberships => 30, seed => 9);
my $node = clerk_node('upgrade', $mock, create => 0, webhook_secret => $SECRET);
my $dir = $node->basedir;
append_to_file("$dir/mock_key", $mock->secret_key);
append_to_file("$dir/cliniko.json", qq({"api_key": "cliniko_test_fake_upgrade_$tag", "region": "au1"}));

sub qdb { my ($db, $sql) = @_; return $node->safe_psql($db, $sql) }

sub webhook { my ($type, $data, $id) = @_; return webhook_sql($SECRET, $type, $data, id => $id) }

# ---- the new library with a database still on 1.0 ----

$node->safe_psql('postgres', 'CREATE DATABASE compat');
qdb('compat', "CREATE EXTENSION clerk_sync VERSION '1.0'");
is(qdb('compat', "SELECT extversion FROM pg_extension WHERE extname = 'clerk_sync'"), '1.0',
   'CREATE EXTENSION ... VERSION 1.0 installs the released 1.0');

# Each entry point of 1.0 either works or fails with 55000 naming the update.
my @calls = (
    [ 'clerk_test_connection', q{SELECT clerk_test_connection() ->> 'ok'} ],
    [ 'clerk_secret_key_configured', q{SELECT clerk_secret_key_configured()} ],
    [ 'clerk_status', q{SELECT clerk_status() IS NOT NULL} ],
    [ 'clerk_apply_page', q{SELECT clerk_apply_page('users', '[{"id": "user_compat_1", "updated_at": 1}]')} ],
    [ 'clerk_sync_all', q{SELECT status FROM clerk_sync_all()} ],
    [ 'clerk_sync_changes', q{SELECT status FROM clerk_sync_changes()} ],
    [ 'clerk_sync_cancel', q{SELECT clerk_sync_cancel(0)} ],
    [ 'clerk_sync_logs', q{SELECT count(*) FROM clerk_sync_logs()} ],
    [ 'clerk.sync_progress', q{SELECT count(*) FROM clerk.sync_progress} ],
    [ 'clerk_database_summary', q{SELECT count(*) FROM clerk_database_summary()} ],
    [ 'clerk_organizations', q{SELECT count(*) FROM clerk_organizations()} ],
    [ 'clerk_store_credentials', qq{SELECT clerk_store_credentials(
          (SELECT id FROM clerk.organizations ORDER BY id LIMIT 1), 'cliniko',
          pg_read_file('$dir/cliniko.json')::jsonb) > 0} ],
    [ 'clerk_get_credentials', q{SELECT clerk_get_credentials(organization_id, service_name) ->> 'region'
                                   FROM clerk.api_credentials LIMIT 1} ],
    [ 'clerk_list_credentials', q{SELECT count(*) FROM clerk_list_credentials()} ],
    [ 'clerk_rotate_encryption_key', q{SELECT clerk_rotate_encryption_key()} ],
    [ 'clerk_deactivate_credentials', q{SELECT clerk_deactivate_credentials(organization_id, service_name)
                                          FROM clerk.api_credentials LIMIT 1} ],
    [ 'clerk_set_secret_key', qq{SELECT clerk_set_secret_key(pg_read_file('$dir/mock_key'))} ],
    [ 'clerk_handle_webhook', webhook('user.created', { id => 'user_compat_2', object => 'user',
                                                            updated_at => 1, created_at => 1 }) ],
    [ 'clerk_digest', q{SELECT encode(clerk_digest('abc', 'sha256'), 'hex')} ],
);
for my $c (@calls) {
    my ($name, $sql) = @$c;
    my ($ret, $out, $err) = $node->psql('compat', "\\set VERBOSITY verbose\n$sql");
    if ($ret == 0) {
        pass("on 1.0, $name works");
    } else {
        like($err, qr/ERROR:\s+55000: .*\n(?:.*\n)*HINT:\s+Run ALTER EXTENSION clerk_sync UPDATE\./,
             "on 1.0, $name fails with 55000 and names ALTER EXTENSION clerk_sync UPDATE");
    }
}
is(qdb('compat', 'SELECT 1'), '1', 'the server is still up after every entry point');

# A database ahead of the library (a server not restarted after an upgrade,
# or a downgraded package): a clear error that names the library needed.
qdb('compat', "UPDATE pg_extension SET extversion = '1.9' WHERE extname = 'clerk_sync'");
for my $sql ('SELECT clerk_sync_all()', q{SELECT clerk_apply_page('users', '[]')},
             'SELECT clerk_secret_key_configured()') {
    my ($ret, $out, $err) = $node->psql('compat', "\\set VERBOSITY verbose\n$sql");
    like($err, qr/ERROR:\s+55000: extension clerk_sync is at version 1\.9, newer than its library \(1\.1\)/,
         "$sql on SQL newer than the library: 55000 and says so");
    like($err, qr/HINT:\s+Install the clerk_sync library of version 1\.9 and restart the server\./,
         "$sql: the hint names the library version needed");
}
qdb('postgres', 'DROP DATABASE compat');

# ---- a 1.0 database holding data ----

$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
qdb('upgraded', "CREATE EXTENSION clerk_sync VERSION '1.0'");
qdb('upgraded', q{
    INSERT INTO clerk.users (id, first_name, primary_email, email_addresses, public_metadata,
                             created_at, updated_at, raw, synced_at)
    VALUES ('user_up_1', 'Ada', 'ada@example.com', '{ada@example.com,ada@unverified.example}', '{"plan": "pro"}',
            '2024-01-01 00:00:00+00', '2024-02-01 00:00:00+00',
            '{"id": "user_up_1", "first_name": "Ada", "primary_email_address_id": "e1", "email_addresses": [
               {"id": "e1", "email_address": "ada@example.com", "verification": {"status": "verified"}},
               {"id": "e2", "email_address": "ada@unverified.example", "verification": null}]}',
            '2024-03-01 00:00:00+00'),
           ('user_up_2', 'Bob', NULL, '{}', '{}', '2024-01-02 00:00:00+00', '2024-01-02 00:00:00+00',
            '{"id": "user_up_2"}', '2024-03-01 00:00:00+00');
    UPDATE clerk.users SET deleted_at = '2024-04-01 00:00:00+00' WHERE id = 'user_up_2';
    INSERT INTO clerk.organizations (id, name, slug, members_count, raw, created_at, updated_at)
    VALUES ('org_up_1', 'Upgrade Org', 'upgrade-org', 1, '{"id": "org_up_1"}',
            '2024-01-01 00:00:00+00', '2024-01-01 00:00:00+00');
    INSERT INTO clerk.organization_members (id, organization_id, user_id, role, permissions, raw)
    VALUES ('orgmem_up_1', 'org_up_1', 'user_up_1', 'org:admin', '{org:sys_memberships:manage}',
            '{"id": "orgmem_up_1"}');
    INSERT INTO clerk.sync_runs (kind, status, started_at, finished_at, stats)
    VALUES ('full', 'succeeded', '2024-03-01 00:00:00+00', '2024-03-01 00:01:00+00', '{"requests": 3}'),
           ('incremental', 'failed', '2024-03-02 00:00:00+00', '2024-03-02 00:00:05+00', '{}');
    UPDATE clerk.sync_runs SET error = 'Clerk rejected the secret key', error_code = '28000' WHERE status = 'failed';
    INSERT INTO clerk.audit_logs (action, entity_type, entity_id, run_id, details)
    VALUES ('sync.started', NULL, NULL, 1, '{}'), ('sync.soft_deleted', 'user', 'user_up_2', 1, '{"reason": "gone"}');
});
# A credential and the secret key as the 1.0 library stored them: this
# library's vault refuses 1.0's SQL (it would write as the extension's
# owner), so they are sealed in 1.0's format (no row id) in a 1.1 database
# of the same server (one key ring) and their bytes copied over.
$node->safe_psql('postgres', 'CREATE DATABASE legacy');
qdb('legacy', 'CREATE EXTENSION clerk_sync');
qdb('legacy', qq{INSERT INTO clerk.organizations (id, raw) VALUES ('org_up_1', '{}');
                 SET clerk_sync.seal_format = 1;
                 SELECT clerk_store_credentials('org_up_1', 'cliniko', pg_read_file('$dir/cliniko.json')::jsonb);
                 SELECT clerk_set_secret_key(pg_read_file('$dir/mock_key'))});
my ($cred_hex, $cred_key) = split /\|/, qdb('legacy',
    q{SELECT encode(credentials_encrypted, 'hex') || '|' || key_id FROM clerk.api_credentials});
my ($secret_hex, $secret_key_id) = split /\|/, qdb('legacy',
    q{SELECT encode(value_encrypted, 'hex') || '|' || key_id FROM clerk.secrets WHERE name = 'clerk_secret_key'});
is(substr($cred_hex, 0, 2) . substr($secret_hex, 0, 2), '0101', "the values are in 1.0's format");
qdb('postgres', 'DROP DATABASE legacy');
qdb('upgraded', qq{INSERT INTO clerk.api_credentials (organization_id, service_name, credentials_encrypted, key_id)
                   VALUES ('org_up_1', 'cliniko', decode('$cred_hex', 'hex'), $cred_key);
                   INSERT INTO clerk.secrets (name, value_encrypted, key_id)
                   VALUES ('clerk_secret_key', decode('$secret_hex', 'hex'), $secret_key_id)});
# a delivery as 1.0 recorded it (this library's webhooks need 1.1)
my $pre_upgrade_delivery = "msg_upgrade_${tag}_before";
qdb('upgraded', qq{INSERT INTO clerk.webhook_deliveries (svix_id, event_type, object_id, result, outcome)
                   VALUES ('$pre_upgrade_delivery', 'organization.updated', 'org_up_1', 'organization.updated', 'updated')});

# Every row of every table, over the columns 1.0 has: must survive as it is.
my @tables = split /\n/, qdb('upgraded', q{
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = 'clerk'::regnamespace AND c.relkind = 'r' ORDER BY 1});
# (1.1 recomputes the identity columns of users from raw: compared below)
my %recomputed = map { $_ => 1 } qw(primary_email email_addresses primary_phone);
my %columns = map {
    my $t = $_;
    $t => join(', ', grep { $t ne 'clerk.users' || !$recomputed{$_} } split /\n/,
               qdb('upgraded', qq{SELECT quote_ident(attname) FROM pg_attribute
                                  WHERE attrelid = '$t'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum}))
} @tables;
# (the update adds the audit row of its re-sealing of 1.0's vault values)
sub rows_fingerprint {
    return join "\n", map {
        my $cols = $columns{$_};
        my $where = $_ eq 'clerk.audit_logs' ? "WHERE action <> 'encryption_key.rotate'" : '';
        "$_ " . qdb('upgraded', "SELECT count(*) || ' ' || coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '-')
                                  FROM (SELECT $cols FROM $_ $where) r")
    } @tables;
}
my $before = rows_fingerprint();
like($before, qr/clerk\.users 2 /, 'the 1.0 database holds the users');
like($before, qr/clerk\.webhook_deliveries 1 /, 'and the webhook delivery');

# ---- ALTER EXTENSION clerk_sync UPDATE ----

# an administrator's own grant, made on 1.0, survives the update
qdb('upgraded', q{CREATE ROLE upgrade_webhook NOLOGIN;
                  GRANT EXECUTE ON FUNCTION clerk_handle_webhook(text, text, text, text) TO upgrade_webhook});
qdb('upgraded', 'ALTER EXTENSION clerk_sync UPDATE');
is(qdb('upgraded', q{SELECT has_function_privilege('upgrade_webhook', 'clerk_handle_webhook(text, text, text, text)', 'EXECUTE')}),
   't', "an administrator's grant made on 1.0 survives the update");
qdb('upgraded', q{REVOKE EXECUTE ON FUNCTION clerk_handle_webhook(text, text, text, text) FROM upgrade_webhook});
is(qdb('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'clerk_sync'"), '1.1',
   'ALTER EXTENSION clerk_sync UPDATE goes to 1.1');
# (the update re-seals 1.0's vault values, compared below)
my $resealed = qr/^clerk\.(api_credentials|secrets) /m;
is(join("\n", grep { !/$resealed/ } split /\n/, rows_fingerprint()), join("\n", grep { !/$resealed/ } split /\n/, $before),
   'every row of every table is still there, unchanged');
is(qdb('upgraded', q{SELECT primary_email || ' ' || email_addresses::text FROM clerk.users WHERE id = 'user_up_1'}),
   'ada@example.com {ada@example.com}', 'identity columns now hold verified addresses only');
is(qdb('upgraded', q{SELECT clerk_get_credentials('org_up_1', 'cliniko') ->> 'api_key'}),
   "cliniko_test_fake_upgrade_$tag", 'the credential stored on 1.0 still decrypts');
# the update re-sealed 1.0's values in the format that binds row and state
is(qdb('upgraded', q{SELECT string_agg(get_byte(v, 0)::text, ',') FROM (
                        SELECT credentials_encrypted FROM clerk.api_credentials
                        UNION ALL SELECT value_encrypted FROM clerk.secrets) s(v)}),
   '2,2', "the update re-sealed both of 1.0's values in the format that binds their row");
is(qdb('upgraded', q{SELECT details ->> 'credentials' || '/' || (details ->> 'secrets') FROM clerk.audit_logs
                      WHERE action = 'encryption_key.rotate'}), '1/1', 'and audited it');
is(qdb('upgraded', 'SELECT clerk_rotate_encryption_key()'), '0', 'nothing is left for a rotation');
is(qdb('upgraded', q{SELECT clerk_status() -> 'version' ->> 'extension'}), '1.1',
   'clerk_status() shows the updated version');

# A sync after the update, authenticated by the key stored on 1.0 only.
my $wrong = secret_file($node, 'wrong_key', 'sk_test_mock_not_the_right_one');
is(qdb('upgraded', qq{SET clerk_sync.secret_key_file = '$wrong';
                     SELECT status FROM clerk_sync_all()}),
   'succeeded', 'a sync works after the update, with the secret key stored on 1.0');
my @mock_users = map { $_->{id} } @{ $mock->get('/users?limit=500')->{json} };
is(qdb('upgraded', 'SELECT count(*) FROM clerk.users WHERE deleted_at IS NULL AND id = ANY (ARRAY['
                   . join(',', map { sql_literal($_) } @mock_users) . '])'),
   scalar(@mock_users), 'and stores every user of the mock');
my @mock_items = map { $_->{id} } @{ $mock->get('/billing/subscription_items?paginated=true&include_free=true&limit=500')->{json}{data} };
ok(@mock_items > 0, 'the mock has Clerk Billing');
is(qdb('upgraded', 'SELECT count(*) FROM clerk.billing_subscription_items WHERE deleted_at IS NULL AND id = ANY (ARRAY['
                   . join(',', map { sql_literal($_) } @mock_items) . '])'),
   scalar(@mock_items), 'and its subscription items, in the tables the update made');
is(qdb('upgraded', webhook('waitlistEntry.created', { object => 'waitlistEntry', id => 'wle_upgraded', email_address => 'up@example.com',
                                                      status => 'pending', created_at => 1, updated_at => 1 })),
   'waitlistEntry.created', 'a billing-era event works after the update');
is(qdb('upgraded', q{SELECT status FROM clerk.waitlist_entries WHERE id = 'wle_upgraded'}), 'pending', 'and writes its row');
my $u = qdb('upgraded', 'SELECT id FROM clerk.users WHERE deleted_at IS NULL ORDER BY id LIMIT 1');
is(qdb('upgraded', webhook('user.updated', { id => $u, object => 'user', first_name => 'Upgraded',
                                                 created_at => 1, updated_at => 4102444800000 })),
   'user.updated', 'a webhook works after the update');
is(qdb('upgraded', "SELECT first_name FROM clerk.users WHERE id = '$u'"), 'Upgraded', 'and writes its row');
my ($ret, $out) = $node->psql('upgraded', webhook('organization.updated',
        { id => 'org_up_1', object => 'organization', created_at => 1, updated_at => 1 }, $pre_upgrade_delivery));
is($out, 'duplicate', 'a delivery recorded on 1.0 is still recognized as a duplicate');

# ---- the upgraded catalog equals a fresh install's ----

# Every object of the extension and everything in schema clerk, as text that
# does not depend on OIDs: definitions, columns in order, constraints,
# indexes, triggers, policies, owners, ACLs, comments, dump configuration.
my $CATALOG = q{
WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'clerk_sync'),
member AS (SELECT d.classid, d.objid FROM pg_depend d, ext
            WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rel AS (SELECT c.* FROM pg_class c WHERE c.relnamespace = 'clerk'::regnamespace)
SELECT line FROM (
  SELECT 'extension ' || extversion || ' relocatable ' || extrelocatable || ' schema ' || extnamespace::regnamespace
         || ' config ' || coalesce((SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)
                                      FROM unnest(extconfig) c), '-')
         || ' conditions ' || coalesce(array_to_string(extcondition, ','), '-') FROM ext
  UNION ALL
  SELECT 'member ' || pg_describe_object(classid, objid, 0)
         || ' comment ' || coalesce(obj_description(objid, classid::regclass::name), '-') FROM member
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure || ' owner ' || p.proowner::regrole || ' acl ' || coalesce(p.proacl::text, '-')
         || E'\n' || CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE pg_get_functiondef(p.oid) END
    FROM pg_proc p JOIN member m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
  UNION ALL
  SELECT 'schema ' || n.nspname || ' owner ' || n.nspowner::regrole || ' acl ' || coalesce(n.nspacl::text, '-')
    FROM pg_namespace n WHERE n.nspname = 'clerk'
  UNION ALL
  SELECT 'relation ' || c.oid::regclass || ' kind ' || c.relkind::text || ' owner ' || c.relowner::regrole
         || ' acl ' || coalesce(c.relacl::text, '-') || ' options ' || coalesce(c.reloptions::text, '-')
         || ' rls ' || c.relrowsecurity || ' ' || c.relforcerowsecurity || ' persistence ' || c.relpersistence::text
         || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
         || ' member ' || EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
    FROM rel c
  UNION ALL
  SELECT 'column ' || c.oid::regclass || ' #' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
         || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
         || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
         || CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END
         || ' collation ' || coalesce(nullif(a.attcollation, 0)::regcollation::text, '-')
         || ' storage ' || a.attstorage::text || ' compression ' || coalesce(nullif(a.attcompression::text, ''), '-')
         || ' acl ' || coalesce(a.attacl::text, '-')
         || ' comment ' || coalesce(col_description(c.oid, a.attnum), '-')
    FROM rel c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
   WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  UNION ALL
  SELECT 'constraint ' || co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
    FROM pg_constraint co JOIN rel c ON c.oid = co.conrelid
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN rel c ON c.oid = i.indrelid
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN rel c ON c.oid = t.tgrelid
   WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 'policy ' || p.polrelid::regclass || ' ' || p.polname || ' ' || p.polcmd::text || ' ' || p.polpermissive
         || ' roles ' || p.polroles::regrole[]::text || ' using ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '-')
         || ' check ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-')
    FROM pg_policy p JOIN rel c ON c.oid = p.polrelid
  UNION ALL
  SELECT 'view ' || c.oid::regclass || E'\n' || pg_get_viewdef(c.oid) FROM rel c WHERE c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'sequence ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqstart
         || ' ' || s.seqincrement || ' ' || s.seqmax || ' ' || s.seqmin || ' ' || s.seqcache || ' ' || s.seqcycle
         || ' owned by ' || coalesce((SELECT d.refobjid::regclass || '.' || a.attname FROM pg_depend d
                                      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                     WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                                       AND d.deptype = 'a' LIMIT 1), '-')
    FROM pg_sequence s JOIN rel c ON c.oid = s.seqrelid
  UNION ALL
  SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text FROM pg_type t
   WHERE t.typnamespace = 'clerk'::regnamespace AND t.typrelid = 0
) l (line) ORDER BY line
};

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
qdb('fresh', 'CREATE EXTENSION clerk_sync');
is(qdb('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'clerk_sync'"), '1.1',
   'a fresh install is at 1.1');
my $fresh = qdb('fresh', $CATALOG);
my $upgraded = qdb('upgraded', $CATALOG);
cmp_ok(scalar(split /\n/, $fresh), '>', 100, 'the catalog listing covers the extension');
is($upgraded, $fresh, 'the upgraded catalog equals a fresh install of 1.1');
# the comparison sees a difference as small as one grant
qdb('fresh', 'GRANT SELECT (id) ON clerk.users TO PUBLIC');
isnt(qdb('fresh', $CATALOG), $upgraded, 'the listing tells a catalog with one more grant apart');

$node->stop;
done_testing();
