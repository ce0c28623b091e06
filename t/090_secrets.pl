# No secret in any setting, privileges that survive default privileges,
# and writes that grant nothing.  Every secret is configured each documented
# way (a file named by a setting, the server's environment, the vault),
# used by a sync and a webhook, and then searched for everywhere it must not
# be.  Then: owner-only ACLs whatever ALTER DEFAULT PRIVILEGES says, triggers
# on clerk tables (a SECURITY DEFINER one works, one that tries ALTER ROLE
# ... SUPERUSER does not), limits only a superuser can raise, the webhook
# key length and replay window, and the credential audit's own retention.
use strict;
use warnings;

use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $tag = ClerkMock::random_hex(8);
my %secret = (
    root => ClerkMock::random_hex(32),
    wh_file => 'whsec_' . encode_base64("test_fake_webhook_secret_file_$tag", ''),
    wh_env => 'whsec_' . encode_base64("test_fake_webhook_secret_env_$tag", ''),
    wh_vault => 'whsec_' . encode_base64("test_fake_webhook_secret_vault_$tag", ''));
my $mock = ClerkMock->new(users => 30, organizations => 3, memberships => 20, seed => 4);
$secret{clerk} = $mock->secret_key;

my $node = clerk_node('secrets', $mock, start => 0, webhook_secret => $secret{wh_file},
    preload => 'clerk_sync, pg_cron, pg_stat_statements',
    conf => "pg_stat_statements.track = all\nlog_statement = 'all'\nlog_min_messages = debug1");
# the vault's root key from the environment this time
$node->adjust_conf('postgresql.conf', 'clerk_sync.encryption_key_command', undef);
my $dir = $node->basedir;
my $keyfile = "$dir/clerk_secret_key";

sub start_with_env {
    my (%env) = @_;
    local $ENV{CREDENTIALS_ENCRYPTION_KEY} = $secret{root};
    local $ENV{CLERK_SECRET_KEY} = $env{clerk} if $env{clerk};
    local $ENV{CLERK_WEBHOOK_SECRET} = $env{webhook} if $env{webhook};
    $node->start;
}
sub webhook_ok {
    my ($secret, $what) = @_;
    my $u = "user_sec_" . ClerkMock::random_hex(4);
    is(q1(webhook_sql($secret, 'user.created', { id => $u, object => 'user', created_at => 1, updated_at => 1 })),
       'user.created', "a webhook signed with the secret from $what is applied");
}
sub environ_of { my ($pid) = @_; return slurp_file("/proc/$pid/environ") }

# ---- a file named by a setting ----
start_with_env();
q1('CREATE EXTENSION clerk_sync; CREATE EXTENSION pg_stat_statements');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync works with the key from clerk_sync.secret_key_file');
webhook_ok($secret{wh_file}, 'clerk_sync.webhook_secret_file');
chmod 0644, $keyfile;
my ($state, $msg) = sql_error($node, 'SELECT clerk_sync_all()');
like($msg, qr/has unsafe ownership or permissions/, 'a key file others may read is refused');
chmod 0600, $keyfile;

# ---- the server's environment ----
$node->stop;
$node->adjust_conf('postgresql.conf', 'clerk_sync.secret_key_file', undef);
$node->adjust_conf('postgresql.conf', 'clerk_sync.webhook_secret_file', undef);
start_with_env(clerk => $secret{clerk}, webhook => $secret{wh_env});
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync works with the key from CLERK_SECRET_KEY');
webhook_ok($secret{wh_env}, 'CLERK_WEBHOOK_SECRET');
my $postmaster = (split /\s+/, slurp_file($node->data_dir . "/postmaster.pid"))[0];
my $backend = $node->background_psql('postgres');
my $bpid = $backend->query_safe('SELECT pg_backend_pid()');
for my $pid ($postmaster, $bpid) {
    my $env = environ_of($pid);
    for my $k (qw(root clerk wh_env)) {
        unlike($env, qr/\Q$secret{$k}\E/, "/proc/$pid/environ no longer holds the $k secret");
    }
    unlike($env, qr/CLERK_SECRET_KEY=|CREDENTIALS_ENCRYPTION_KEY=|CLERK_WEBHOOK_SECRET=/, "nor the variables ($pid)");
}
$backend->quit;

# ---- the vault, loaded from files so that no statement carries a secret ----
append_to_file("$dir/wh_vault", $secret{wh_vault});
q1(qq{SELECT clerk_set_secret_key(pg_read_file('$keyfile'))});
q1(qq{SELECT clerk_set_webhook_secret(pg_read_file('$dir/wh_vault'))});
$node->stop;
start_with_env();
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync works with the key stored by clerk_set_secret_key()');
webhook_ok($secret{wh_vault}, 'clerk_set_webhook_secret()');

# ---- a 1.0 configuration that still sets a removed setting ----
q1(q{SELECT clerk_set_secret_key('')});
$node->append_conf('postgresql.conf', "clerk_sync.secret_key = '$secret{clerk}'");
my $log_offset = -s $node->logfile;
$node->stop;
start_with_env();
like(substr(slurp_file($node->logfile), $log_offset), qr/clerk_sync\.secret_key is no longer a setting/,
     'the server says at start that clerk_sync.secret_key was removed');
($state, $msg) = sql_error($node, "SELECT clerk_sync_all()");
is($state, '55000', 'a sync fails');
like(slurp_file($node->logfile), qr/clerk_sync\.secret_key is no longer read: name a file with clerk_sync\.secret_key_file/,
     'with a hint that names the replacement');
$node->adjust_conf('postgresql.conf', 'clerk_sync.secret_key', undef);
$node->reload;
q1(qq{SELECT clerk_set_secret_key(pg_read_file('$keyfile'))});

# ---- nowhere else: log, pg_stat_statements, settings, files, environ, dump, tables ----
q1(q{CREATE ROLE monitor LOGIN IN ROLE pg_monitor});
my %places = (
    'the server log' => slurp_file($node->logfile),
    'pg_stat_statements' => q1(q{SELECT string_agg(query, ' ') FROM pg_stat_statements}),
    'pg_db_role_setting' => q1(q{SELECT coalesce(string_agg(array_to_string(setconfig, ' '), ' '), '') FROM pg_db_role_setting}),
    'pg_settings for pg_monitor' => $node->safe_psql('postgres',
        q{SELECT string_agg(name || '=' || coalesce(setting, ''), ' ') FROM pg_settings}, extra_params => [ '-U', 'monitor' ]),
    'SHOW and current_setting() for pg_monitor' => $node->safe_psql('postgres',
        q{SELECT current_setting('clerk_sync.secret_key') || current_setting('clerk_sync.webhook_secret');
          SHOW clerk_sync.secret_key; SHOW clerk_sync.webhook_secret;}, extra_params => [ '-U', 'monitor' ]),
    'postgresql.auto.conf' => slurp_file($node->data_dir . '/postgresql.auto.conf'),
    'the postmaster environment' => environ_of((split /\s+/, slurp_file($node->data_dir . '/postmaster.pid'))[0]),
    'the clerk tables' => q1(q{SELECT string_agg(t::text, ' ') FROM (
        SELECT to_jsonb(x)::text t FROM clerk.sync_runs x UNION ALL SELECT to_jsonb(x)::text FROM clerk.audit_logs x
        UNION ALL SELECT to_jsonb(x)::text FROM clerk.secrets x UNION ALL SELECT to_jsonb(x)::text FROM clerk.webhook_deliveries x
        UNION ALL SELECT to_jsonb(x)::text FROM clerk.users x) s}));
SKIP: {
    my $pg_dumpall = client_program('pg_dumpall')
      or skip 'no pg_dumpall for this PostgreSQL here (Debian 13\'s needs glibc 2.38; the npm package has none)', 1;
    my $dump = "$dir/all.sql";
    $node->command_ok([ $pg_dumpall, '-h', $node->host, '-p', $node->port, '-f', $dump ], 'pg_dumpall works');
    $places{'a pg_dumpall'} = slurp_file($dump);
}
for my $where (sort keys %places) {
    for my $k (sort keys %secret) {
        my $b64 = $secret{$k} =~ s/^whsec_//r;
        unlike($places{$where}, qr/\Q$b64\E/, "the $k secret is not in $where");
    }
}

# ==== owner-only ACLs, whatever the default privileges ====
q1(q{CREATE ROLE app_ro LOGIN});
for my $upgrade (0, 1) {
    my $db = $upgrade ? 'dp_upgraded' : 'dp_fresh';
    q1("CREATE DATABASE $db");
    $node->safe_psql($db, q{
        ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT EXECUTE ON FUNCTIONS TO app_ro;
        ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON TABLES TO app_ro;
        ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON SEQUENCES TO app_ro;
        ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT USAGE ON TYPES TO app_ro;
        ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON SCHEMAS TO app_ro;});
    $node->safe_psql($db, $upgrade ? "CREATE EXTENSION clerk_sync VERSION '1.0'; ALTER EXTENSION clerk_sync UPDATE"
                                   : 'CREATE EXTENSION clerk_sync');
    my $what = $upgrade ? 'after an upgrade' : 'after CREATE EXTENSION';
    is($node->safe_psql($db, q{
        WITH m AS (SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                    WHERE e.extname = 'clerk_sync' AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'),
        acls AS (
            SELECT p.oid::regprocedure::text AS obj, p.proacl AS acl, p.proowner AS owner FROM pg_proc p JOIN m ON m.objid = p.oid AND m.classid = 'pg_proc'::regclass
            UNION ALL SELECT c.oid::regclass::text, c.relacl, c.relowner FROM pg_class c JOIN m ON m.objid = c.oid AND m.classid = 'pg_class'::regclass
            UNION ALL SELECT n.nspname, n.nspacl, n.nspowner FROM pg_namespace n JOIN m ON m.objid = n.oid AND m.classid = 'pg_namespace'::regclass
            UNION ALL SELECT t.oid::regtype::text, t.typacl, t.typowner FROM pg_type t JOIN m ON m.objid = t.oid AND m.classid = 'pg_type'::regclass)
        SELECT coalesce(string_agg(DISTINCT obj, ', '), 'none') FROM acls
         WHERE (acl IS NULL AND obj ~ '\(') OR EXISTS (SELECT 1 FROM aclexplode(acl) a
                WHERE a.grantee <> owner AND a.grantee::regrole::text <> 'clerk_sync_writer')}), 'none',
       "$what, every object of the extension has an owner-only ACL (but for the writer role)");
    my ($ret, $out, $err) = $node->psql($db, q{SELECT clerk_get_credentials('org_x', 'cliniko')},
                                        extra_params => [ '-U', 'app_ro' ]);
    like($err, qr/permission denied/, "$what, app_ro cannot read credentials");
    ($ret, $out, $err) = $node->psql($db, q{SELECT clerk_set_secret_key('sk_test_mock_x')}, extra_params => [ '-U', 'app_ro' ]);
    like($err, qr/permission denied/, "$what, nor store the key");
    ($ret, $out, $err) = $node->psql($db, q{SELECT clerk_apply_page('users', '[]'::jsonb)}, extra_params => [ '-U', 'app_ro' ]);
    like($err, qr/permission denied/, "$what, nor apply a page");
}

# ==== writes grant nothing: triggers on clerk tables ====
q1(q{CREATE ROLE app NOLOGIN; CREATE SCHEMA app AUTHORIZATION app;
     GRANT USAGE ON SCHEMA clerk TO app; GRANT ALL ON clerk.users TO app});
q1(q{SET ROLE app;
     CREATE TABLE app.profiles (user_id text PRIMARY KEY);
     -- the documented way: a SECURITY DEFINER function owned by the application's role
     CREATE FUNCTION app.on_user() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = app, pg_catalog AS $$
     BEGIN INSERT INTO app.profiles VALUES (NEW.id) ON CONFLICT DO NOTHING; RETURN NEW; END $$;
     CREATE TRIGGER profiles AFTER INSERT ON clerk.users FOR EACH ROW EXECUTE FUNCTION app.on_user();
     RESET ROLE});
q1('TRUNCATE clerk.users');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync with an application trigger on clerk.users succeeds');
is(q1('SELECT count(*) FROM app.profiles'), '0',
   "a trigger the table's owner did not enable ALWAYS does not fire on the write path");
# the table's owner (the superuser that installed the extension) enables it
q1('ALTER TABLE clerk.users ENABLE ALWAYS TRIGGER profiles; TRUNCATE clerk.users');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync with the trigger enabled ALWAYS succeeds');
is(q1('SELECT count(*) FROM app.profiles'), q1('SELECT count(*) FROM clerk.users'), 'and the trigger made a profile for every user');
webhook_ok($secret{wh_vault}, 'the vault, with the trigger');
is(q1('SELECT count(*) FROM app.profiles'), q1('SELECT count(*) FROM clerk.users'), 'a webhook write fires it too');
q1(q{SET ROLE app;
     CREATE FUNCTION app.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN EXECUTE 'ALTER ROLE app SUPERUSER'; RETURN NEW; END $$;
     CREATE TRIGGER escalate BEFORE UPDATE ON clerk.users FOR EACH ROW EXECUTE FUNCTION app.escalate();
     RESET ROLE});
my $u = q1('SELECT id FROM clerk.users ORDER BY id LIMIT 1');
my $other = q1('SELECT id FROM clerk.users ORDER BY id OFFSET 1 LIMIT 1');
is(q1(webhook_sql($secret{wh_vault}, 'user.updated',
                  { id => $other, object => 'user', first_name => 'Y', created_at => 1, updated_at => 4102444800000 })),
   'user.updated', 'a webhook write with the role\'s own escalating trigger succeeds: the trigger does not fire');
is(q1(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'app'}), 'f', 'and the role is not a superuser');
# enabled ALWAYS by the owner, it runs, as the writer: which may not do it
q1('ALTER TABLE clerk.users ENABLE ALWAYS TRIGGER escalate');
($state) = sql_error($node, webhook_sql($secret{wh_vault}, 'user.updated',
                                        { id => $u, object => 'user', first_name => 'X', created_at => 1, updated_at => 4102444800000 }));
is($state, '42501', 'a trigger trying ALTER ROLE ... SUPERUSER on a webhook write fails (permission denied)');
$mock->control(PATCH => "users/$u", { first_name => 'Changed' });
# (the run may fail as a whole too: its soft deletes fire the trigger as well)
sql_error($node, 'SELECT clerk_sync_all()');
is(q1(qq{SELECT details ->> 'sqlstate' FROM clerk.audit_logs WHERE action = 'sync.record_failed' AND entity_id = '$u'
         ORDER BY id DESC LIMIT 1}), '42501', 'and on a sync write: the record fails, audited');
is(q1(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'app'}), 'f', 'the role did not become a superuser');
is(q1(q{SELECT rolsuper::text || rolcanlogin::text FROM pg_roles WHERE rolname = 'clerk_sync_writer'}), 'falsefalse',
   'the writer role is neither superuser nor able to log in');
q1('DROP TRIGGER escalate ON clerk.users; DROP TRIGGER profiles ON clerk.users');

# ==== limits that only a superuser can lift ====
q1(q{CREATE ROLE operator LOGIN});
for my $case ([ 'SET clerk_sync.rate_limit = 100000', qr/only a superuser may raise clerk_sync\.rate_limit above 1000/ ],
              [ 'SET clerk_sync.concurrency = 32', qr/only a superuser may raise clerk_sync\.concurrency above 16/ ],
              [ 'SET clerk_sync.max_delete_fraction = 1', qr/only a superuser may raise clerk_sync\.max_delete_fraction above 0\.1/ ]) {
    my ($ret, $out, $err) = $node->psql('postgres', $case->[0], extra_params => [ '-U', 'operator' ]);
    like($err, $case->[1], "a non-superuser session cannot: $case->[0]");
}
my ($ret, $out, $err) = $node->psql('postgres', 'SET clerk_sync.rate_limit = 10; SET clerk_sync.concurrency = 1; SET clerk_sync.max_delete_fraction = 0.01; SHOW clerk_sync.rate_limit',
                                    extra_params => [ '-U', 'operator' ]);
is($out, '10', 'but may lower the limits');

# ==== webhooks: key length, replay window ====
($state, $msg) = sql_error($node, q{SELECT clerk_set_webhook_secret('whsec_AA==')});
is($state, '22023', 'a 1-byte webhook key is refused');
q1(q{INSERT INTO clerk.webhook_deliveries (svix_id, event_type, result, received_at) VALUES
     ('msg_recent', 'user.updated', 'user.updated', now() - interval '5 minutes'),
     ('msg_old', 'user.updated', 'user.updated', now() - interval '20 minutes')});
q1(q{SET clerk_sync.log_retention = '1min'; } . webhook_sql($secret{wh_vault}, 'sms.created', { id => 'sms_x' }));
is(q1(q{SELECT string_agg(svix_id, ',' ORDER BY svix_id) FROM clerk.webhook_deliveries WHERE svix_id IN ('msg_recent', 'msg_old')}),
   'msg_recent', 'a delivery id within twice the replay window is never pruned, an older one is');

# ==== credential audit rows have their own retention ====
q1(q{INSERT INTO clerk.audit_logs (action, entity_type, occurred_at) VALUES
     ('credentials.read', 'api_credentials', now() - interval '2 days'),
     ('sync.start', NULL, now() - interval '2 days')});
q1(q{SET clerk_sync.log_retention = '1h'; SELECT clerk_sync_all(dry_run => true)});
is(q1(q{SELECT string_agg(action, ',' ORDER BY action) FROM clerk.audit_logs WHERE occurred_at < now() - interval '1 day'}),
   'credentials.read', 'sync logs are pruned, credential audit rows are kept');
q1(q{SET clerk_sync.log_retention = '1h'; SET clerk_sync.credential_audit_retention = '1h'; SELECT clerk_sync_all(dry_run => true)});
is(q1(q{SELECT count(*) FROM clerk.audit_logs WHERE occurred_at < now() - interval '1 day'}), '0',
   'until their own retention says otherwise');

$node->stop;
done_testing();
