# The trust boundary: each attack that a role with less than a superuser's
# rights could make on clerk_sync, performed as written against a real
# server, and the outcome checked in the database (doc/security.md lists
# them).  Triggers on the clerk tables (a TRIGGER grant), functions and
# operators put where the extension's SQL could resolve to them, DDL and
# clerk_sync_cancel() without the rights to stop a run, a credential read
# rolled back, proxy variables in the server's environment, a membership
# id in a field a user edits, oversized and unauthenticated webhooks, a
# sealed value moved onto another row, and the vault on 1.0's SQL.
#
# Secrets are made up when the test runs and are obviously fake.

use strict;
use warnings;

use File::Basename qw(dirname);
use IPC::Run;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ClerkMock;
use ClerkTest;

my $PYTHON = $ENV{PYTHON} // '/usr/bin/python3';
my $tag = ClerkMock::random_hex(6);
my $SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_security_$tag", '');

my $mock = ClerkMock->new(users => 40, organizations => 4, memberships => 30, seed => 13);
my $node = clerk_node('security', $mock, webhook_secret => $SECRET,
                      init => { allows_streaming => 'logical' },
                      conf => "clerk_sync.max_delete_fraction = 0.5");
my $dir = $node->basedir;
append_to_file("$dir/cliniko_1.json", qq({"api_key": "cliniko_test_fake_first_$tag", "region": "au1"}));
append_to_file("$dir/cliniko_2.json", qq({"api_key": "cliniko_test_fake_second_$tag", "region": "au1"}));

sub sq { my ($sql, $db) = @_; return $node->safe_psql($db // 'postgres', $sql) }

# psql as another login role; returns (exit code, stdout, stderr)
sub as_role {
    my ($role, $sql, $db) = @_;
    my ($ret, $out, $err) = $node->psql($db // 'postgres', "\\set VERBOSITY verbose\n$sql",
                                        extra_params => [ '-U', $role ]);
    return ($ret, $out, $err);
}

sub sqlstate_of { my ($err) = @_; return ($err =~ /ERROR:\s+([0-9A-Z]{5}):/)[0] // '' }

is(sq('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a first sync');
my $org = sq('SELECT id FROM clerk.organizations WHERE deleted_at IS NULL ORDER BY id LIMIT 1');
my $cred1 = sq(qq{SELECT clerk_store_credentials('$org', 'cliniko', pg_read_file('$dir/cliniko_1.json')::jsonb)});
my $credential_audit = sq(q{SELECT count(*) FROM clerk.audit_logs WHERE action LIKE 'credentials.%'});
ok($credential_audit > 0, 'the vault has audit rows');

# ---- 1. a TRIGGER grant ----------------------------------------------------
# mallory may create triggers on every clerk table (and nothing else there):
# a deferred constraint trigger whose SECURITY INVOKER function makes her a
# superuser when a superuser runs it, a statement trigger that forges an
# admin membership and deletes the vault's audit rows, BEFORE triggers that
# change what is stored or keep a removed member.  Each records that it ran.

# mallory's record of what ran, and her function that makes her a superuser
# when a superuser runs it
my $MALLORY_ESCALATES = q{
    CREATE TABLE mallory.ran (who text, what text);
    GRANT USAGE ON SCHEMA mallory TO PUBLIC;
    GRANT INSERT ON mallory.ran TO PUBLIC;
    CREATE FUNCTION mallory.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO mallory.ran VALUES (current_user, TG_NAME);
        IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
            EXECUTE 'ALTER ROLE mallory SUPERUSER';
        END IF;
        RETURN NULL;
    END $$;};

sq(q{CREATE ROLE mallory LOGIN;
    CREATE SCHEMA mallory AUTHORIZATION mallory;
    GRANT USAGE ON SCHEMA clerk TO mallory;
    GRANT TRIGGER ON ALL TABLES IN SCHEMA clerk TO mallory});
my ($ret, $out, $err) = as_role('mallory', $MALLORY_ESCALATES . q{
    CREATE FUNCTION mallory.forge() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO mallory.ran VALUES (current_user, TG_NAME);
        INSERT INTO clerk.organization_members (id, organization_id, user_id, role, raw)
        VALUES ('orgmem_forged_by_mallory', 'org_any', 'user_mallory', 'org:admin', '{}')
        ON CONFLICT DO NOTHING;
        DELETE FROM clerk.audit_logs WHERE action LIKE 'credentials.%';
        RETURN NULL;
    END $$;
    CREATE FUNCTION mallory.rename() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO mallory.ran VALUES (current_user, TG_NAME);
        NEW.first_name := 'Forged';
        RETURN NEW;
    END $$;
    CREATE FUNCTION mallory.keep() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO mallory.ran VALUES (current_user, TG_NAME);
        IF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN RETURN NULL; END IF;
        RETURN NEW;
    END $$;
    CREATE CONSTRAINT TRIGGER escalate AFTER INSERT OR UPDATE ON clerk.users
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mallory.escalate();
    CREATE CONSTRAINT TRIGGER escalate AFTER INSERT OR UPDATE ON clerk.sync_runs
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mallory.escalate();
    CREATE CONSTRAINT TRIGGER escalate AFTER INSERT ON clerk.audit_logs
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mallory.escalate();
    CREATE CONSTRAINT TRIGGER escalate AFTER INSERT OR UPDATE ON clerk.sessions
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mallory.escalate();
    CREATE TRIGGER forge AFTER INSERT OR UPDATE ON clerk.users
        FOR EACH STATEMENT EXECUTE FUNCTION mallory.forge();
    CREATE TRIGGER rename BEFORE INSERT OR UPDATE ON clerk.users
        FOR EACH ROW EXECUTE FUNCTION mallory.rename();
    CREATE TRIGGER keep BEFORE UPDATE ON clerk.organization_members
        FOR EACH ROW EXECUTE FUNCTION mallory.keep();
});
is($ret, 0, 'a role holding only TRIGGER creates its triggers on the clerk tables') or diag $err;
($ret, $out, $err) = as_role('mallory', 'ALTER TABLE clerk.users ENABLE ALWAYS TRIGGER rename');
is(sqlstate_of($err), '42501', 'but cannot make one fire on the write path (ENABLE ALWAYS needs ownership)');

# changes in Clerk that the next sync writes
my @users = map { $_->{id} } @{ $mock->get('/users?limit=500&order_by=created_at')->{json} };
my ($removed) = @{ $mock->get('/organization_memberships?limit=1&order_by=created_at')->{json}{data} };
$mock->control(PATCH => "users/$users[0]", { first_name => 'Changed' });
$mock->control(DELETE => "organization_memberships/$removed->{id}");

is(sq('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a superuser syncs with those triggers in place');
is(sq(qq{SELECT first_name FROM clerk.users WHERE id = '$users[0]'}), 'Changed', 'the sync stored what Clerk sent');
is(sq(qq{SELECT deleted_at IS NOT NULL FROM clerk.organization_members WHERE id = '$removed->{id}'}), 't',
   'and soft-deleted the removed membership');
sq(webhook_sql($SECRET, 'user.updated', { id => $users[1], object => 'user', first_name => 'ViaWebhook',
                                         created_at => 1, updated_at => 4102444800000 }));
is(sq(qq{SELECT first_name FROM clerk.users WHERE id = '$users[1]'}), 'ViaWebhook', 'a webhook stored what it carried');
sq(qq{SELECT clerk_apply_page('users', '[{"id": "$users[2]", "object": "user", "first_name": "ViaApply",
                                         "created_at": 1, "updated_at": 4102444800000}]'::jsonb)});
is(sq(qq{SELECT first_name FROM clerk.users WHERE id = '$users[2]'}), 'ViaApply', 'clerk_apply_page() stored its page');
sq(qq{SELECT clerk_sync_sessions(ARRAY['$users[3]'])});
sq(qq{SELECT clerk_store_credentials('$org', 'cliniko', pg_read_file('$dir/cliniko_1.json')::jsonb)});
sq(qq{SELECT clerk_get_credentials('$org', 'cliniko')});

is(sq(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f', 'mallory is not a superuser');
is(sq('SELECT count(*) FROM mallory.ran'), '0', 'none of her triggers ran, deferred or not');
is(sq(q{SELECT count(*) FROM clerk.organization_members WHERE id = 'orgmem_forged_by_mallory'}), '0',
   'no forged membership');
ok(sq(q{SELECT count(*) FROM clerk.audit_logs WHERE action LIKE 'credentials.%'}) > $credential_audit,
   "the vault's audit rows remain (and grew)");
is(sq(q{SELECT count(*) FROM clerk.users WHERE first_name = 'Forged'}), '0', 'no row holds what Clerk did not send');

# What an application may do to react to synced rows (README, "Reacting to
# synced rows"): the recommended way, logical replication of the clerk
# tables to a database of its own, whose triggers run there ...
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->start;
$sub->safe_psql('postgres', q{
    CREATE SCHEMA clerk;
    CREATE TABLE clerk.users (id text PRIMARY KEY, first_name text, deleted_at timestamptz)});
sq('CREATE PUBLICATION clerk_users FOR TABLE clerk.users (id, first_name, deleted_at)');
my $connstr = $node->connstr('postgres') =~ s/'/''/gr;
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION clerk_users CONNECTION '$connstr' PUBLICATION clerk_users");
$sub->poll_query_until('postgres', "SELECT count(*) > 0 FROM clerk.users WHERE id = '$users[0]'")
  or die 'the subscriber did not copy clerk.users';
$mock->control(PATCH => "users/$users[0]", { first_name => 'Replicated' });
is(sq('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync with a publication of clerk.users');
$node->wait_for_catchup('clerk_users');
is($sub->safe_psql('postgres', "SELECT first_name FROM clerk.users WHERE id = '$users[0]'"), 'Replicated',
   'the subscriber receives what the sync wrote');
$sub->safe_psql('postgres', 'DROP SUBSCRIPTION clerk_users');
$sub->stop;

# ... and, for NOTIFY, a trigger that the table's owner enables ALWAYS, whose
# function is SECURITY DEFINER of a role with just the rights it needs
sq(q{CREATE ROLE app_owner NOLOGIN;
    CREATE SCHEMA app AUTHORIZATION app_owner;
    CREATE TABLE app.user_changes (id text, by_role text);
    ALTER TABLE app.user_changes OWNER TO app_owner;
    CREATE FUNCTION app.on_user() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
    BEGIN
        INSERT INTO app.user_changes VALUES (NEW.id, current_user);
        PERFORM pg_notify('clerk_users', NEW.id);
        RETURN NULL;
    END $$;
    ALTER FUNCTION app.on_user() OWNER TO app_owner;
    CREATE TRIGGER app_on_user AFTER INSERT OR UPDATE ON clerk.users
        FOR EACH ROW EXECUTE FUNCTION app.on_user();
    ALTER TABLE clerk.users ENABLE ALWAYS TRIGGER app_on_user});
$mock->control(PATCH => "users/$users[4]", { first_name => 'Notified' });
is(sq('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync with the owner\'s ALWAYS trigger');
is(sq(qq{SELECT string_agg(DISTINCT by_role, ',') FROM app.user_changes WHERE id = '$users[4]'}), 'app_owner',
   'the owner\'s trigger fired, with its function owner\'s rights');
is(sq('SELECT count(*) FROM mallory.ran'), '0', 'and still none of mallory\'s');
sq(q{DROP TRIGGER app_on_user ON clerk.users; DROP PUBLICATION clerk_users});
sq(q{DROP TRIGGER escalate ON clerk.users; DROP TRIGGER escalate ON clerk.sync_runs;
    DROP TRIGGER escalate ON clerk.audit_logs; DROP TRIGGER escalate ON clerk.sessions;
    DROP TRIGGER forge ON clerk.users; DROP TRIGGER rename ON clerk.users;
    DROP TRIGGER keep ON clerk.organization_members});

# ---- 2. functions and operators where the extension's SQL might find them ----
# shadow may CREATE in public, which is on every caller's search_path (and
# is the extension's schema, the search_path of its scripts): for every
# operator and function name the scripts and SQL functions use, a version
# with exact argument types, which would beat a polymorphic or implicitly
# cast built-in.  Each records that it ran; run by a superuser, it would
# also make shadow a superuser.

my @types = ('text', 'text[]', 'jsonb', 'integer', 'bigint', 'numeric', 'timestamptz',
             'oid', 'regclass', 'boolean', 'name', '"char"', 'bytea');
my @operators = split ' ', '= <> < > <= >= -> ->> #> #>> / * + - || @> <@ ? ?| ?& ~~ !~~';
my @functions = qw(count max min sum lower upper now clock_timestamp to_timestamp array_to_string unnest
                   format concat to_jsonb array_position jsonb_build_object jsonb_build_array
                   jsonb_array_elements jsonb_array_elements_text jsonb_typeof jsonb_set get_byte
                   current_setting set_config string_agg array_agg quote_ident quote_literal pg_notify
                   nextval encode decode aclexplode pg_extension_config_dump);

sub shadow_sql {
    my @sql = ('CREATE TABLE IF NOT EXISTS public.shadow_ran (who text, what text)',
               'GRANT INSERT ON public.shadow_ran TO PUBLIC');
    my $body = sub {
        my ($what) = @_;
        return qq{LANGUAGE plpgsql VOLATILE AS \$s\$
            BEGIN
                INSERT INTO public.shadow_ran VALUES (current_user, '$what');
                IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                    EXECUTE 'ALTER ROLE shadow SUPERUSER';
                END IF;
                RETURN NULL;
            END \$s\$};
    };
    for my $l (@types) {
        for my $r (@types) {
            push @sql, "CREATE FUNCTION public.shadow_op($l, $r) RETURNS boolean " . $body->("operator ($l, $r)");
            push @sql, "CREATE OPERATOR public.$_ (LEFTARG = $l, RIGHTARG = $r, FUNCTION = public.shadow_op)"
                for @operators;
        }
    }
    for my $f (@functions) {
        push @sql, "CREATE FUNCTION public.$f() RETURNS boolean " . $body->("$f()");
        for my $a (@types) {
            push @sql, "CREATE FUNCTION public.$f($a) RETURNS boolean " . $body->("$f($a)");
            push @sql, "CREATE FUNCTION public.$f($a, $_) RETURNS boolean " . $body->("$f($a, $_)") for @types;
        }
    }
    return join(";\n", @sql) . ";\n";
}
my $SHADOWS = shadow_sql();
sq('CREATE ROLE shadow LOGIN');

sub shadow_database {
    my ($db) = @_;
    sq("CREATE DATABASE $db");
    sq('GRANT CREATE ON SCHEMA public TO shadow', $db);
}

sub plant_shadows {
    my ($db) = @_;
    my ($r, $o, $e) = as_role('shadow', $SHADOWS, $db);
    is($r, 0, "shadow plants its functions and operators in $db") or diag $e;
}

# What ran of the shadows, read with nothing but pg_catalog on the path.
sub shadows_ran {
    my ($db) = @_;
    return sq(q{SET search_path = pg_catalog;
               SELECT count(*) || coalesce(': ' || string_agg(DISTINCT what, '; '), '') FROM public.shadow_ran}, $db);
}

# Every SQL entry point, as a superuser with the default search_path.
sub exercise {
    my ($db) = @_;
    if (sq(q{SELECT count(*) FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'clerk_sync'}, $db) eq '0') {
        fail("$db: the extension is not installed; nothing to exercise");
        return;
    }
    for my $sql ('SELECT status FROM clerk_sync_all()', 'SELECT status FROM clerk_sync_changes()') {
        my ($r, $out, $e) = $node->psql($db, $sql);
        is($out, 'succeeded', "$db: $sql") or diag $e;
    }
    my $user = sq(q{SET search_path = pg_catalog; SELECT id FROM clerk.users WHERE deleted_at IS NULL ORDER BY id LIMIT 1}, $db);
    my $o = sq(q{SET search_path = pg_catalog; SELECT id FROM clerk.organizations WHERE deleted_at IS NULL ORDER BY id LIMIT 1}, $db);
    my @calls = (
        webhook_sql($SECRET, 'user.updated', { id => $user, object => 'user', first_name => 'Shadowed',
                                               created_at => 1, updated_at => 4102444800000 }),
        webhook_sql($SECRET, 'organization.updated', { id => $o, object => 'organization', name => 'Shadowed',
                                                       created_at => 1, updated_at => 4102444800000 }),
        qq{SELECT clerk_apply_page('users', '[{"id": "$user", "object": "user", "first_name": "Applied", "updated_at": 4102444800001}]'::jsonb)},
        qq{SELECT clerk_apply_page('users', '{"data": [{"id": "$user", "object": "user", "updated_at": 4102444800002}]}'::text)},
        qq{SELECT clerk_apply_page('memberships', '[{"id": "orgmem_x", "organization": {"id": "$o"}, "public_user_data": {"user_id": "$user"}, "role": "org:member", "updated_at": 1}]'::json)},
        qq{SELECT clerk_sync_sessions(ARRAY['$user'])},
        qq{SET request.jwt.claims = '{"sub": "$user", "org_id": "$o", "org_role": "org:admin", "org_slug": "s", "org_permissions": ["org:a:b"]}';
           SELECT clerk.user_id(), clerk.org_id(), clerk.org_role(), clerk.org_slug(), clerk.org_permissions(),
                  clerk.has_permission('org:a:b'), clerk.is_member('$o'), clerk.org_role_in('$o')},
        'SELECT count(*) FROM clerk_database_summary()',
        'SELECT count(*) FROM clerk_organizations()',
        'SELECT clerk_status()',
        'SELECT count(*) FROM clerk_sync_logs()',
        'SELECT count(*) FROM clerk.sync_progress',
        'SELECT clerk_test_connection()',
        q{SELECT * FROM clerk_repair_json('\x7b2261223a317d'::bytea)},
        qq{SELECT clerk_store_credentials('$o', 'cliniko', pg_read_file('$dir/cliniko_1.json')::jsonb)},
        qq{SELECT clerk_get_credentials('$o', 'cliniko')},
        'SELECT count(*) FROM clerk_list_credentials()',
        'SELECT clerk_rotate_encryption_key()',
        qq{SELECT clerk_deactivate_credentials('$o', 'cliniko')},
        q{SELECT clerk_digest('abc', 'sha256'), clerk_hmac('abc', 'key', 'sha256')},
        (map { "SELECT count(*) FROM clerk.map_$_('[{\"id\": \"x_1\", \"created_at\": 1, \"updated_at\": 2, \"status\": \"active\"}]')" }
             qw(users organizations memberships organization_invitations invitations organization_domains
                roles permissions sessions)),
        q{SELECT clerk.ms_to_timestamptz('1000'), clerk.array_or_empty('null'), clerk.object_or_empty('null'),
                 (SELECT count(*) FROM clerk.objects('{"data": [{}]}'))},
    );
    for my $sql (@calls) {
        my ($r, $out, $e) = $node->psql($db, $sql);
        is($r, 0, "$db: " . substr($sql =~ s/\s+/ /gr, 0, 70)) or diag $e;
    }
}

# a fresh install of 1.1 with the shadows in place
shadow_database('shadowed_fresh');
plant_shadows('shadowed_fresh');
($ret, $out, $err) = $node->psql('shadowed_fresh', 'CREATE EXTENSION clerk_sync');
is($ret, 0, 'CREATE EXTENSION clerk_sync with the shadows in place') or diag $err;
is(shadows_ran('shadowed_fresh'), '0', 'CREATE EXTENSION clerk_sync (1.1) ran no shadow');
exercise('shadowed_fresh');
is(shadows_ran('shadowed_fresh'), '0', 'no entry point of 1.1 ran a shadow');

# 1.0, installed before the shadows (its install script is exposed: below),
# with data in every table, then the shadows, then the update
shadow_database('shadowed_update');
sq("CREATE EXTENSION clerk_sync VERSION '1.0'", 'shadowed_update');
sq(qq{INSERT INTO clerk.users (id, first_name, email_addresses, raw, created_at, updated_at)
     VALUES ('user_shadow_1', 'Ada', '{ada\@example.com}',
             '{"id": "user_shadow_1", "primary_email_address_id": "e1", "email_addresses": [
                {"id": "e1", "email_address": "ada\@example.com", "verification": {"status": "verified"}}],
               "created_at": 1, "updated_at": 2}', now(), now());
     INSERT INTO clerk.organizations (id, name, raw) VALUES ('org_shadow_1', 'Shadow Org', '{"id": "org_shadow_1"}');
     INSERT INTO clerk.organization_members (id, organization_id, user_id, role, raw)
     VALUES ('orgmem_shadow_1', 'org_shadow_1', 'user_shadow_1', 'org:admin', '{"id": "orgmem_shadow_1"}');
     INSERT INTO clerk.sync_runs (kind, status) VALUES ('full', 'succeeded');
     INSERT INTO clerk.audit_logs (action) VALUES ('sync.started');
     INSERT INTO clerk.api_credentials (organization_id, service_name, credentials_encrypted, key_id)
     VALUES ('org_shadow_1', 'cliniko', '\\x00', 1);
     INSERT INTO clerk.secrets (name, value_encrypted, key_id) VALUES ('webhook_secret', '\\x00', 1);
     INSERT INTO clerk.webhook_deliveries (svix_id, event_type, result) VALUES ('msg_shadow_1', 'user.created', 'user.created')},
   'shadowed_update');
# and, on 1.0 (whose README recommended the grant), a role holding TRIGGER on
# clerk.users, whose statement trigger would fire on the update's rewrite
sq(q{CREATE SCHEMA mallory AUTHORIZATION mallory;
     GRANT USAGE ON SCHEMA clerk TO mallory;
     GRANT TRIGGER ON clerk.users TO mallory}, 'shadowed_update');
($ret, $out, $err) = as_role('mallory', $MALLORY_ESCALATES . q{
    CREATE TRIGGER escalate AFTER UPDATE ON clerk.users FOR EACH STATEMENT EXECUTE FUNCTION mallory.escalate();
    CREATE CONSTRAINT TRIGGER escalate_late AFTER UPDATE ON clerk.users
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mallory.escalate()}, 'shadowed_update');
is($ret, 0, 'on 1.0, a role holding TRIGGER on clerk.users adds its triggers') or diag $err;
plant_shadows('shadowed_update');
($ret, $out, $err) = $node->psql('shadowed_update', 'ALTER EXTENSION clerk_sync UPDATE');
is($ret, 0, 'ALTER EXTENSION clerk_sync UPDATE with the shadows in place') or diag $err;
# (the made-up sealed values above would not open)
sq('DELETE FROM clerk.api_credentials; DELETE FROM clerk.secrets', 'shadowed_update');
is(shadows_ran('shadowed_update'), '0', 'ALTER EXTENSION clerk_sync UPDATE from 1.0, with data, ran no shadow');
is(sq('SELECT count(*) FROM mallory.ran', 'shadowed_update'), '0', 'and no trigger of the TRIGGER grantee');
is(sq(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f', 'mallory is still not a superuser');
is(sq(q{SET search_path = pg_catalog; SELECT primary_email FROM clerk.users WHERE id = 'user_shadow_1'}, 'shadowed_update'),
   'ada@example.com', 'and the update recomputed the identity columns with the built-ins');
exercise('shadowed_update');
is(shadows_ran('shadowed_update'), '0', 'no entry point of the updated 1.1 ran a shadow');
is(sq(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'shadow'}), 'f', 'shadow is not a superuser');

# 1.0's released install script compares oid with regclass under the
# extension schema's search_path: CHANGELOG.md tells 1.0 installations so
shadow_database('shadowed_10');
plant_shadows('shadowed_10');
sq("CREATE EXTENSION clerk_sync VERSION '1.0'", 'shadowed_10');
like(shadows_ran('shadowed_10'), qr/^[1-9]\d*: operator \(oid, regclass\)$/,
     "1.0's install script is exposed (as CHANGELOG.md says): a shadow ran there");
sq(q{ALTER ROLE shadow NOSUPERUSER});
sq('DROP DATABASE shadowed_10');

# ---- 3. DDL and clerk_sync_cancel() without the rights to stop a run -------
sq(q{CREATE ROLE nobody LOGIN;
    GRANT EXECUTE ON FUNCTION clerk_sync_cancel(bigint) TO nobody});
$mock->add_fault(kind => 'latency', latency_ms => 4000, path => '^/v1/users', count => 20);
my $run = sq('SELECT id FROM clerk_sync_all(wait => false)');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM clerk.sync_progress WHERE run_id = $run")
  or die "run $run did not start";
for my $c (['DROP DATABASE postgres', 'template1'],
           ['DROP EXTENSION clerk_sync', 'postgres'],
           ['DROP SCHEMA clerk CASCADE', 'postgres'],
           ['ALTER EXTENSION clerk_sync UPDATE', 'postgres'],
           ["SELECT clerk_sync_cancel($run)", 'postgres']) {
    ($ret, $out, $err) = as_role('nobody', $c->[0], $c->[1]);
    is(sqlstate_of($err), '42501', "a role without rights: $c->[0] fails with 42501");
    unlike($err, qr/canceled first/, '... and stops no run');
}
is(sq("SELECT status FROM clerk.sync_runs WHERE id = $run"), 'running', 'the run is still running');
is(wait_for_run($node, $run), 'succeeded', 'and succeeds');
$mock->clear_faults;

# a role that may signal the worker (pg_signal_backend, a run that is not a
# superuser's) may cancel; so may a member of the role that started it
sq(q{CREATE ROLE starter LOGIN; CREATE ROLE starters NOLOGIN; GRANT starter TO starters;
    CREATE ROLE starters_member LOGIN IN ROLE starters;
    CREATE ROLE signaller LOGIN IN ROLE pg_signal_backend;
    GRANT EXECUTE ON FUNCTION clerk_sync_all(boolean, boolean) TO starter;
    GRANT EXECUTE ON FUNCTION clerk_sync_cancel(bigint) TO signaller, starters_member});
for my $canceller ('signaller', 'starters_member') {
    $mock->add_fault(kind => 'latency', latency_ms => 4000, path => '^/v1/users', count => 20);
    ($ret, $out, $err) = as_role('starter', 'SELECT id FROM clerk_sync_all(wait => false)');
    is($ret, 0, 'a role with EXECUTE starts a run') or diag $err;
    chomp $out;
    $node->poll_query_until('postgres', "SELECT count(*) = 1 FROM clerk.sync_progress WHERE run_id = $out")
      or die "run $out did not start";
    ($ret, my $canceled, $err) = as_role($canceller, "SELECT clerk_sync_cancel($out)");
    is($canceled, 't', "$canceller cancels another role's run") or diag $err;
    is(wait_for_run($node, $out), 'canceled', '... which ends canceled');
    $mock->clear_faults;
}

# ---- 4. a credential read that is rolled back ---------------------------------
sq(q{CREATE ROLE reader LOGIN;
    GRANT EXECUTE ON FUNCTION clerk_get_credentials(text, text) TO reader});
my $log_offset = -s $node->logfile;
my $reads_before = sq(q{SELECT count(*) FROM clerk.audit_logs WHERE action = 'credentials.read'});
($ret, $out, $err) = as_role('reader', qq{BEGIN; SELECT clerk_get_credentials('$org', 'cliniko') ->> 'api_key'; ROLLBACK;});
is($out, "cliniko_test_fake_first_$tag", 'a role with EXECUTE reads the credential in a transaction it rolls back')
  or diag $err;
is(sq(q{SELECT count(*) FROM clerk.audit_logs WHERE action = 'credentials.read'}), $reads_before,
   'its audit row went with the rollback');
my $active_id = sq(qq{SELECT id FROM clerk.api_credentials WHERE organization_id = '$org' AND is_active});
ok($node->log_contains(qr/clerk_sync: credentials\.read: role "reader", organization "\Q$org\E", service "cliniko", credential id $active_id\b/,
                       $log_offset),
   'the read is on record in the server log, with the role, organization, service and credential id');

# ---- 5. sealed values bound to their rows ------------------------------------
my $cred2 = sq(qq{SELECT clerk_store_credentials('$org', 'cliniko', pg_read_file('$dir/cliniko_2.json')::jsonb)});
is(sq(qq{SELECT clerk_get_credentials('$org', 'cliniko') ->> 'api_key'}), "cliniko_test_fake_second_$tag",
   'the newest credential is active');
# a role that may write clerk.api_credentials puts the older ciphertext back
sq(qq{UPDATE clerk.api_credentials n SET credentials_encrypted = o.credentials_encrypted, key_id = o.key_id
       FROM clerk.api_credentials o
      WHERE n.id = $cred2 AND o.id = (SELECT min(id) FROM clerk.api_credentials
                                       WHERE organization_id = '$org' AND service_name = 'cliniko')});
my ($state, $msg) = sql_error($node, qq{SELECT clerk_get_credentials('$org', 'cliniko')});
is($state, 'XX001', 'an older ciphertext put in place of the active one does not open');
like($msg, qr/could not decrypt the cliniko credentials/, '... and says which credentials');
# the same role makes the older, deactivated row active again instead
my $cred3 = sq(qq{SELECT clerk_store_credentials('$org', 'cliniko', pg_read_file('$dir/cliniko_2.json')::jsonb)});
sq(qq{UPDATE clerk.api_credentials SET is_active = false WHERE id = $cred3;
      UPDATE clerk.api_credentials SET is_active = true WHERE id = $cred1});
($state, $msg) = sql_error($node, qq{SELECT clerk_get_credentials('$org', 'cliniko')});
is($state, 'XX001', 'a deactivated row made active again does not open (deactivation re-sealed it)');
sq(qq{UPDATE clerk.api_credentials SET is_active = false WHERE id = $cred1;
      UPDATE clerk.api_credentials SET is_active = true WHERE id = $cred3});
is(sq(qq{SELECT clerk_get_credentials('$org', 'cliniko') ->> 'api_key'}), "cliniko_test_fake_second_$tag",
   'the row deactivation left active still opens');
# a value in 1.0's format (which bound no row) is refused, but for re-sealing
sq(qq{SET clerk_sync.seal_format = 1;
      SELECT clerk_store_credentials('$org', 'cliniko', pg_read_file('$dir/cliniko_1.json')::jsonb)});
($state, $msg) = sql_error($node, qq{SELECT clerk_get_credentials('$org', 'cliniko')});
is($state, '55000', "a value in 1.0's format is not opened for a read");
# (the store deactivated the row before it, re-sealing it in format 1 too)
is(sq('SELECT clerk_rotate_encryption_key()'), '2', 'clerk_rotate_encryption_key() re-seals them');
is(sq(qq{SELECT clerk_get_credentials('$org', 'cliniko') ->> 'api_key'}), "cliniko_test_fake_first_$tag",
   'and then it opens');

# ---- 6. a membership id in a field a user edits -------------------------------
# the removed membership's id sits in the metadata of the user's new
# membership of the same organization, which the deletion check reads
my ($victim) = grep { $_->{public_user_data}{user_id} } @{ $mock->get('/organization_memberships?limit=5&order_by=-created_at')->{json}{data} };
sq('SELECT clerk_sync_all()');
$mock->control(DELETE => "organization_memberships/$victim->{id}");
my $replacement = $mock->control(POST => 'organization_memberships',
               { organization_id => $victim->{organization}{id}, user_id => $victim->{public_user_data}{user_id},
                 role => 'org:member' });
$mock->control(PATCH => "organization_memberships/$replacement->{id}", { public_metadata => { note => $victim->{id} } });
is(sq('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync after the membership was replaced');
is(sq(qq{SELECT deleted_at IS NOT NULL FROM clerk.organization_members WHERE id = '$victim->{id}'}), 't',
   'the removed membership is soft-deleted, though its id is in another one\'s metadata');

# ---- 7. webhooks from an unauthenticated caller --------------------------------
sq(q{CREATE ROLE webhook_endpoint LOGIN;
    GRANT EXECUTE ON FUNCTION clerk_handle_webhook(text, text, text, text) TO webhook_endpoint});
($ret, $out, $err) = as_role('webhook_endpoint', qq{SELECT clerk_handle_webhook(pg_catalog.repeat('x', 2 * 1024 * 1024), 'msg_big', '1', 'v1,AAAA')});
is(sqlstate_of($err), '54000', 'a body over clerk_sync.webhook_max_body (1MB) is refused first, with 54000');
like($err, qr/webhook body is too large/, '... saying so');
($ret, $out, $err) = as_role('webhook_endpoint', qq{SELECT clerk_handle_webhook('{}', pg_catalog.repeat('m', 1024 * 1024), '1', 'v1,AAAA')});
is(sqlstate_of($err), '54000', 'so is an svix-id of a megabyte, before it is signed or logged');
($ret, $out, $err) = as_role('webhook_endpoint', q{SET clerk_sync.webhook_max_body = '10MB'});
is(sqlstate_of($err), '42501', 'only a superuser may raise the limit');

$log_offset = -s $node->logfile;
my $stale = webhook_sql($SECRET, 'user.updated', { id => $users[5], object => 'user', updated_at => 1 },
                        ts => time() - 3600);
($ret, $out, $err) = as_role('webhook_endpoint', $stale);
like($err, qr/ERROR:\s+\S+:\s+stale timestamp\n/, 'an old delivery: "stale timestamp"');
unlike($err, qr/\d{10}|clock is at/, '... and not the server\'s clock');
my $forged = webhook_sql('whsec_' . encode_base64("test_fake_not_the_secret_$tag", ''), 'user.updated',
                         { id => $users[5], object => 'user', updated_at => 1 });
($ret, $out, my $wrong_err) = as_role('webhook_endpoint', $forged);
like($wrong_err, qr/ERROR:\s+\S+:\s+signature verification failed\n/, 'a wrong signature: "signature verification failed"');
unlike($wrong_err, qr/HINT|v1 signature/, '... and nothing more');
ok($node->log_contains(qr/webhook "msg_test_\d+_\d+" refused: the svix-timestamp is \d+ and the database server's clock is at \d+/,
                       $log_offset),
   'the server log says why the stale one was refused');

# with no secret configured, the caller cannot tell
$node->append_conf('postgresql.conf', "clerk_sync.webhook_secret_file = ''");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('clerk_sync.webhook_secret_file') = ''}) or die;
$log_offset = -s $node->logfile;
($ret, $out, $err) = as_role('webhook_endpoint', $forged);
is(sqlstate_of($err), sqlstate_of($wrong_err), 'no webhook secret: the SQLSTATE of a wrong signature');
like($err, qr/ERROR:\s+\S+:\s+signature verification failed\n/, '... and its message');
unlike($err, qr/configured|secret/i, '... nothing about the secret');
ok($node->log_contains(qr/refused: no webhook secret is configured/, $log_offset), 'the server log says so');

# ---- 8. the vault on 1.0's SQL --------------------------------------------------
sq('CREATE DATABASE old10');
sq("CREATE EXTENSION clerk_sync VERSION '1.0'", 'old10');
sq(q{INSERT INTO clerk.organizations (id, raw) VALUES ('org_old', '{}')}, 'old10');
($ret, $out, $err) = $node->psql('old10', "\\set VERBOSITY verbose\n"
    . qq{SELECT clerk_store_credentials('org_old', 'cliniko', pg_read_file('$dir/cliniko_1.json')::jsonb)});
like($err, qr/ERROR:\s+55000:.*\n(?:.*\n)*HINT:\s+Run ALTER EXTENSION clerk_sync UPDATE\./,
     "on 1.0's SQL the vault refuses (it would write as the extension's owner) and names the update");
is(sq('SELECT count(*) FROM clerk.api_credentials', 'old10'), '0', '... and stores nothing');

# ---- 9. proxy variables in the server's environment -----------------------------
# a proxy that records each request line and answers 502
my $proxy_log = "$dir/proxy.log";
my $proxy_port_file = "$dir/proxy.port";
my $proxy = IPC::Run::start([ $PYTHON, '-c', q{
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[2] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.settimeout(300)
while True:
    c, _ = s.accept()
    data = c.recv(65536)
    with open(sys.argv[1], "a") as f:
        f.write(data.split(b"\r\n")[0].decode("latin-1") + "\n")
    c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    c.close()
}, $proxy_log, $proxy_port_file ], '<', \undef, '>', \my $proxy_out, '2>', \my $proxy_err,
    IPC::Run::timeout(600));
for (1 .. 100) { last if -e $proxy_port_file; usleep(100_000) }
my $proxy_port = slurp_file($proxy_port_file);
append_to_file($proxy_log, '');

my $proxied = clerk_node('proxied', $mock, start => 0,
                         conf => "clerk_sync.request_timeout = 3000\nclerk_sync.max_retries = 0");
{
    local $ENV{http_proxy} = "http://127.0.0.1:$proxy_port";
    local $ENV{HTTPS_PROXY} = "http://127.0.0.1:$proxy_port";
    local $ENV{https_proxy} = "http://127.0.0.1:$proxy_port";
    local $ENV{ALL_PROXY} = "http://127.0.0.1:$proxy_port";
    local $ENV{all_proxy} = "http://127.0.0.1:$proxy_port";
    delete local $ENV{no_proxy};
    delete local $ENV{NO_PROXY};
    $proxied->start;
}
$proxied->safe_psql('postgres', 'CREATE EXTENSION clerk_sync');
($ret, $out, $err) = $proxied->psql('postgres', 'SELECT status FROM clerk_sync_all()');
is($out, 'succeeded', 'a server started with proxy variables in its environment syncs') or diag $err;
is(slurp_file($proxy_log), '', '... without a request to that proxy');
is($proxied->safe_psql('postgres', "SET clerk_sync.proxy = 'http://127.0.0.1:$proxy_port';
                                    SELECT clerk_test_connection() ->> 'status'"), '502',
   'clerk_sync.proxy (a superuser setting) sends the requests through the proxy it names');
like(slurp_file($proxy_log), qr{^GET http://127\.0\.0\.1:\d+/v1/users/count}m, '... as the proxy recorded');
$proxied->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
my ($pret, $pout, $perr) = $proxied->psql('postgres', "\\set VERBOSITY verbose\nSET clerk_sync.proxy = 'http://127.0.0.1:1'",
                                          extra_params => [ '-U', 'plain' ]);
is(sqlstate_of($perr), '42501', 'other roles may not set it');
($pret, $pout, $perr) = $proxied->psql('postgres', "\\set VERBOSITY verbose\nSET clerk_sync.proxy = 'http://user:pw\@127.0.0.1:1'");
is(sqlstate_of($perr), '22023', 'a proxy URL with credentials is refused');
unlike($perr, qr/pw\@/, '... without repeating them');
$proxy->kill_kill;
$proxied->stop;

done_testing();
