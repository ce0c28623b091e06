# clerk_sync_all() end to end: a real server, a real background worker,
# libcurl over real sockets, against the mock Clerk API.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Encode qw(encode);
use ClerkMock;
use ClerkTest;

my $mock = ClerkMock->new(users => 300, organizations => 10, memberships => 200, seed => 3);
my $node = clerk_node('sync', $mock, conf => "clerk_sync.page_size = 50\nclerk_sync.max_delete_fraction = 0.5");
# These tests page users by offset, the way an API without cursors is
# listed (the fall-back); the cursor listing has t/100_cursor.pl.
$mock->configure(no_cursors => \1);

sub mock_ids {
    my ($path) = @_;
    my $res = $mock->get($path);
    my $list = ref $res->{json} eq 'ARRAY' ? $res->{json} : $res->{json}{data};
    return map { $_->{id} } @$list;
}

# ---- a normal run ----
my ($stdout, $stderr);
$node->psql('postgres', 'SELECT status FROM clerk_sync_all()', stdout => \$stdout, stderr => \$stderr);
is($stdout, 'succeeded', 'first run succeeds');
like($stderr, qr/NOTICE:  users: listing \(Clerk has 300\)/, 'progress reaches the caller as NOTICE: phase');
like($stderr, qr/NOTICE:  users: \d+ fetched so far/, 'progress reaches the caller as NOTICE: pages');
like($stderr, qr/NOTICE:  run \d+ succeeded/, 'and the end');
is(q1('SELECT count(*) FROM clerk.users'), '300', 'every user stored');
is(q1('SELECT count(*) FROM clerk.organizations'), '10', 'every organization stored');
is(q1('SELECT count(*) FROM clerk.organization_members'), '200', 'every membership stored');
is(q1(q{SELECT stats -> 'users' ->> 'inserted' FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}), '300', 'stats count inserts');
is(q1(q{SELECT count(*) FROM clerk.audit_logs WHERE action IN ('sync.start', 'sync.end')}), '2', 'audit has start and end');
is(q1(q{SELECT count(*) FROM clerk.users WHERE raw ->> 'id' <> id OR created_at IS NULL}), '0', 'rows carry the raw object');
is(q1(q{SELECT (stats ->> 'requests')::int > 0 FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}), 't', 'requests counted');
ok($mock->stats->{max_in_flight} > 1, 'several page requests were in flight at once');

# every request carried the pinned version, a User-Agent and Bearer auth, never the key in clear
my $reqs = $mock->requests;
$reqs = $reqs->{requests} if ref $reqs eq 'HASH';
my @api = grep { $_->{path} =~ m{^/v1/} } @$reqs;
ok(@api > 0, 'the mock logged the requests');
is(scalar(grep { ($_->{headers}{'Clerk-API-Version'} // '') !~ /^\d{4}-\d\d-\d\d$/ } @api), 0, 'every request pins Clerk-API-Version');
is(scalar(grep { ($_->{headers}{'User-Agent'} // '') !~ m{^clerk_sync/} } @api), 0, 'every request has the User-Agent');

# ---- an unchanged re-sync writes no row version ----
my $before = row_versions($node);
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'unchanged re-sync succeeds');
is(row_versions($node), $before, 'an unchanged re-sync writes no new row version');
is(q1(q{SELECT (stats -> 'users' ->> 'unchanged') || '/' || (stats -> 'users' ->> 'updated') FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}),
   '300/0', 'and reports every user unchanged');

# ---- creates, updates and deletes in Clerk are reflected ----
my @users = mock_ids('/users?limit=500&order_by=created_at');
my @orgs = mock_ids('/organizations?limit=500&order_by=created_at');
my @mems = mock_ids('/organization_memberships?limit=500&order_by=created_at');
my $created = $mock->control(POST => 'users', { first_name => 'Nouvelle', last_name => "Zo\x{eb}" });
$mock->control(PATCH => "users/$users[0]", { first_name => 'Renamed' });
$mock->control(DELETE => "users/$users[1]");
$mock->control(DELETE => "organization_memberships/$mems[0]");
my $mem_of_deleted_user = q1("SELECT count(*) FROM clerk.organization_members WHERE user_id = '$users[1]'");
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'run after changes succeeds');
is(q1("SELECT last_name FROM clerk.users WHERE id = '$created->{id}'"), encode('UTF-8', "Zo\x{eb}"), 'a new user is inserted');
is(q1("SELECT first_name FROM clerk.users WHERE id = '$users[0]'"), 'Renamed', 'an updated user is updated');
is(q1("SELECT deleted_at IS NOT NULL FROM clerk.users WHERE id = '$users[1]'"), 't', 'a deleted user is soft-deleted');
is(q1("SELECT deleted_at IS NOT NULL FROM clerk.organization_members WHERE id = '$mems[0]'"), 't', 'a deleted membership is soft-deleted');
is(q1("SELECT count(*) FROM clerk.organization_members WHERE user_id = '$users[1]' AND deleted_at IS NULL"), '0',
   "the deleted user's memberships are soft-deleted ($mem_of_deleted_user)");
is(q1(q{SELECT count(*) FROM clerk.audit_logs WHERE action = 'sync.soft_delete' AND entity_id = '} . $users[1] . q{'}), '1',
   'the deletion is in the audit log');

# an object marked deleted that Clerk lists again is revived
q1("UPDATE clerk.users SET deleted_at = now() WHERE id = '$users[7]'");
q1('SELECT clerk_sync_all()');
is(q1("SELECT deleted_at IS NULL FROM clerk.users WHERE id = '$users[7]'"), 't', 'a user that comes back is revived');

# ---- dry run: reports, writes nothing but its run record ----
$mock->control(POST => 'users', { first_name => 'Dry' });
$mock->control(PATCH => "users/$users[2]", { last_name => 'DryRename' });
$before = row_versions($node);
my $dry = q1(q{SELECT (stats -> 'users' ->> 'inserted') || '/' || (stats -> 'users' ->> 'updated') || '/' || dry_run FROM clerk_sync_all(dry_run => true)});
is($dry, '1/1/true', 'a dry run reports what it would insert and update');
is(row_versions($node), $before, 'a dry run writes nothing');
q1('SELECT clerk_sync_all()');

# ---- a record Postgres rejects is logged, the rest is stored ----
$mock->control(PATCH => "users/$users[3]", { created_at => 'not-a-time', first_name => 'Broken' });
$mock->control(PATCH => "users/$users[4]", { first_name => 'Fine' });
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a run with a bad record still succeeds');
is(q1(q{SELECT stats -> 'users' ->> 'failed' FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}), '1', 'the bad record is counted');
like(q1(q{SELECT entity_id || ' ' || (details ->> 'sqlstate') FROM clerk.audit_logs WHERE action = 'sync.record_failed' ORDER BY id DESC LIMIT 1}),
   qr/^\Q$users[3]\E 22P02$/, 'and logged with its id and the reason');
is(q1("SELECT first_name FROM clerk.users WHERE id = '$users[4]'"), 'Fine', 'the rest of its page is stored');
is(q1("SELECT deleted_at IS NULL FROM clerk.users WHERE id = '$users[3]'"), 't', 'the bad record is not deleted');
$mock->control(PATCH => "users/$users[3]", { created_at => 1700000000000 });

# ---- 429 storm with Retry-After ----
$mock->add_fault(kind => 'status', status => 429, retry_after => 1, count => 4, path => '/v1/users');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a 429 storm with Retry-After is waited out');
ok(q1(q{SELECT (stats ->> 'rate_limited')::int FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}) >= 4, 'the 429s are counted');
$mock->clear_faults;

# ---- intermittent 500s ----
$mock->add_fault(kind => 'status', status => 500, count => 3, path => '/v1/');
$mock->add_fault(kind => 'drop', count => 1, path => '/v1/organizations');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'intermittent 500s and a dropped connection are retried');
ok(q1(q{SELECT (stats ->> 'retries')::int FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}) >= 3, 'the retries are counted');
$mock->clear_faults;

# ---- a hung request hits the timeout and is retried ----
$mock->add_fault(kind => 'hang', count => 1, path => '/v1/users\?');
is(q1(q{SET clerk_sync.request_timeout = '1s'; SELECT status FROM clerk_sync_all()}), 'succeeded', 'a hung request times out and is retried');
$mock->clear_faults;

# ---- 5xx beyond max_retries: the run fails with the cause's SQLSTATE ----
$mock->add_fault(kind => 'status', status => 503, count => -1, path => '/v1/organizations');
my ($state, $msg) = sql_error($node, q{SET clerk_sync.max_retries = 2; SELECT clerk_sync_all()});
is($state, '38000', 'an API that keeps failing fails the run with SQLSTATE 38000');
is(q1(q{SELECT status || ' ' || error_code FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}), 'failed 38000', 'the failed run is recorded');
$mock->clear_faults;

# ---- malformed JSON on one page: run fails, nothing deleted, earlier pages kept ----
$mock->control(DELETE => "users/$users[5]");
$mock->control(PATCH => "users/$users[6]", { first_name => 'EarlyPage' });
$mock->add_fault(kind => 'malformed', count => -1, path => 'offset=150');
($state, $msg) = sql_error($node, 'SELECT clerk_sync_all()');
is($state, '08P01', 'malformed JSON fails the run with SQLSTATE 08P01');
like($msg, qr/malformed JSON/, 'and says so');
is(q1("SELECT deleted_at IS NULL FROM clerk.users WHERE id = '$users[5]'"), 't', 'a failed run deletes nothing');
is(q1("SELECT first_name FROM clerk.users WHERE id = '$users[6]'"), 'EarlyPage', 'pages before the bad one are kept');
$mock->clear_faults;

# ---- users deleted in Clerk while the run pages through them ----
# Deleting users from the first page while later pages are fetched shifts
# every later offset: some live users are never listed.  None of them may
# be marked deleted.
q1('SELECT clerk_sync_all()');
@users = mock_ids('/users?limit=500&order_by=created_at');
my @victims = @users[10 .. 19];
$mock->clear_requests;
$mock->add_trigger(path => '/v1/users\?.*offset=100', on_request => 1, delete => { users => \@victims });
is(q1(q{SET clerk_sync.concurrency = 1; SELECT status FROM clerk_sync_all()}), 'succeeded', 'run with deletions during paging succeeds');
my %live = map { $_ => 1 } mock_ids('/users?limit=500&order_by=created_at');
my @wrongly = grep { $live{$_} } split /\n/, q1('SELECT id FROM clerk.users WHERE deleted_at IS NOT NULL');
is(scalar(@wrongly), 0, 'no live user is marked deleted');
my @confirms = grep { $_->{path} =~ m{^/v1/users/user_} } @{ $mock->requests('/v1/users/user_') };
ok(@confirms >= 10, 'the live users the shifted offsets skipped were confirmed with Clerk (' . scalar(@confirms) . ' lookups)');
is(q1("SELECT count(*) FROM clerk.users WHERE deleted_at IS NOT NULL AND id IN ('" . join("','", @victims) . "')"), '0',
   'users listed before Clerk deleted them stay until the next run');
q1('SELECT clerk_sync_all()');
is(q1("SELECT count(*) FROM clerk.users WHERE deleted_at IS NOT NULL AND id IN ('" . join("','", @victims) . "')"), '10',
   'and the next run soft-deletes them');
$mock->clear_triggers;

# ---- too many deletions: nothing deleted, the run says why ----
my @more = (mock_ids('/users?limit=500&order_by=created_at'))[0 .. 99];
$mock->control(DELETE => "users/$_") for @more[0 .. 59];
is(q1(q{SET clerk_sync.max_delete_fraction = 0.1; SELECT status FROM clerk_sync_all()}), 'succeeded', 'run with many missing users succeeds');
like(q1(q{SELECT stats ->> 'deletion' FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}), qr/^skipped: 60 of \d+ users/, 'the run says why it deleted nothing');
is(q1("SELECT count(*) FROM clerk.users WHERE deleted_at IS NOT NULL AND id IN ('" . join("','", @more[0 .. 59]) . "')"), '0',
   'nothing is deleted beyond max_delete_fraction');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'with the default fraction of this test (0.5) they go');

# ---- 401: clear error, nothing changed ----
$before = row_versions($node);
my $wrong = secret_file($node, 'wrong_key', 'sk_test_mock_not_the_key');
($state, $msg) = sql_error($node, qq{SET clerk_sync.secret_key_file = '$wrong'; SELECT clerk_sync_all()});
is($state, '28000', 'a rejected key fails with SQLSTATE 28000');
like($msg, qr/rejected the secret key/, 'and says the key was rejected');
unlike($msg, qr/sk_test_mock_not_the_key/, 'without showing the key');
is(row_versions($node), $before, 'a rejected key changes nothing');

# ---- cancel ----
$mock->configure(latency_ms => 300);
my $id = q1(q{SET clerk_sync.concurrency = 1; SELECT id FROM clerk_sync_all(wait => false)});
is(q1("SELECT status FROM clerk.sync_runs WHERE id = $id"), 'running', 'wait => false returns a running run');
ok($node->poll_query_until('postgres', "SELECT pages > 0 FROM clerk.sync_progress WHERE run_id = $id"),
   'clerk.sync_progress shows the running run');
is(q1("SELECT phase IS NOT NULL AND requests > 0 FROM clerk.sync_progress"), 't', 'with its phase and requests');
like(q1('SELECT clerk_status() -> \'running\' ->> \'run_id\''), qr/^$id$/, 'clerk_status shows it');
is(q1("SELECT clerk_sync_cancel($id)"), 't', 'clerk_sync_cancel accepts the run');
is(wait_for_run($node, $id), 'canceled', 'the run ends canceled');
is(q1("SELECT clerk_sync_cancel($id)"), 'f', 'canceling a finished run returns false');
$mock->configure(latency_ms => 0);

# ---- a second call while a run is going joins it ----
$mock->configure(latency_ms => 200);
$id = q1(q{SET clerk_sync.concurrency = 1; SELECT id FROM clerk_sync_all(wait => false)});
my $joined = q1('SELECT id FROM clerk_sync_all(wait => false)');
is($joined, $id, 'a second call returns the run in progress');
is(wait_for_run($node, $id), 'succeeded', 'which finishes');
is(q1("SELECT count(*) FROM clerk.sync_runs WHERE id > $id"), '0', 'and no other run was started');
$mock->configure(latency_ms => 0);

# ---- kill -9 mid-run, then recovery ----
$mock->configure(latency_ms => 300);
$id = q1(q{SET clerk_sync.concurrency = 1; SELECT id FROM clerk_sync_all(wait => false)});
ok($node->poll_query_until('postgres', "SELECT pages >= 2 FROM clerk.sync_progress WHERE run_id = $id"), 'run under way');
my $pid = q1("SELECT pid FROM clerk.sync_progress WHERE run_id = $id");
my $users_before_kill = q1('SELECT count(*) FROM clerk.users');
my $log_offset = -s $node->logfile;
kill 'KILL', $pid;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
ok($node->poll_query_until('postgres', 'SELECT true', 't'), 'server is back after the crash');
is(q1('SELECT count(*) FROM clerk.users'), $users_before_kill, 'committed pages survive the crash');
$mock->configure(latency_ms => 0);
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'the next run completes');
is(q1("SELECT status FROM clerk.sync_runs WHERE id = $id"), 'failed', 'the killed run is marked failed');

# ---- rate limit: never more than clerk_sync.rate_limit requests in 10 s ----
$mock->clear_requests;
q1(q{SET clerk_sync.rate_limit = 5; SET clerk_sync.page_size = 100; SELECT clerk_sync_all()});
$reqs = $mock->requests;
$reqs = $reqs->{requests} if ref $reqs eq 'HASH';
my @t = sort { $a <=> $b } map { $_->{time} } grep { $_->{path} =~ m{^/v1/} } @$reqs;
my $worst = 0;
for my $i (0 .. $#t) {
    my $n = grep { $_ >= $t[$i] && $_ < $t[$i] + 10 } @t;
    $worst = $n if $n > $worst;
}
ok(@t > 5, 'the run needed more requests than the limit (' . scalar(@t) . ')');
ok($worst <= 5, "never more than 5 requests in any 10 s (worst window: $worst)");

# ---- permissions: a granted non-superuser can sync and never see the key ----
q1(q{CREATE ROLE clerk_operator LOGIN;
     GRANT EXECUTE ON FUNCTION clerk_sync_all(boolean, boolean), clerk_status(), clerk_sync_logs(integer) TO clerk_operator});
is($node->safe_psql('postgres', 'SET ROLE clerk_operator; SELECT status FROM clerk_sync_all()'), 'succeeded',
   'a granted role can run a sync');
is($node->safe_psql('postgres', q{SET ROLE clerk_operator; SELECT started_by FROM clerk_sync_logs(1)}), 'clerk_operator',
   'the run is recorded as started by that role');
($state) = sql_error($node, 'SET ROLE clerk_operator; SHOW clerk_sync.secret_key');
is($state, '42501', 'that role cannot read the secret key');
($state) = sql_error($node, 'SET ROLE clerk_operator; SELECT clerk_sync_cancel(1)');
is($state, '42501', 'nor call what it was not granted');
unlike($node->safe_psql('postgres', 'SET ROLE clerk_operator; SELECT clerk_status()::text'), qr/\Q${\ $mock->secret_key }\E/,
   'clerk_status does not show the key');

# ---- a caller's search_path cannot put its objects in the run's queries ----
q1(q{CREATE SCHEMA evil AUTHORIZATION clerk_operator});
$node->safe_psql('postgres', q{
    SET ROLE clerk_operator;
    CREATE FUNCTION evil.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'evil operator ran as %', current_user; END $$;
    CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.eq);
    CREATE FUNCTION evil.jsonb_array_elements(jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'evil function ran as %', current_user; END $$;
    ALTER ROLE clerk_operator SET search_path = evil, pg_catalog, public;});
is($node->safe_psql('postgres', 'SET ROLE clerk_operator; SET search_path = evil, pg_catalog, public; SELECT status FROM clerk_sync_all()'),
   'succeeded', 'a sync with a hostile search_path succeeds');
unlike(slurp_file($node->logfile), qr/ERROR:  evil (operator|function) ran as/, "and never runs the caller's objects");
q1(q{ALTER ROLE clerk_operator RESET search_path});

# ---- the caller's statement_timeout takes its run down ----
$mock->configure(latency_ms => 300);
($state) = sql_error($node, q{SET clerk_sync.concurrency = 1; SET statement_timeout = '1500ms'; SELECT clerk_sync_all()});
is($state, '57014', 'statement_timeout cancels the waiting call');
$id = q1('SELECT max(id) FROM clerk.sync_runs');
is(wait_for_run($node, $id), 'canceled', 'and the run it started ends canceled');
$mock->configure(latency_ms => 0);

# ---- a call of another kind waits for the run in progress, then runs ----
$mock->configure(latency_ms => 200);
$id = q1(q{SET clerk_sync.concurrency = 1; SELECT id FROM clerk_sync_all(wait => false)});
$node->psql('postgres', 'SELECT dry_run FROM clerk_sync_all(dry_run => true)', stdout => \$stdout, stderr => \$stderr);
is($stdout, 't', 'a dry run asked for during a full run is a dry run');
like($stderr, qr/waiting for the full sync run in progress to finish/, 'after waiting for the full run');
is(q1("SELECT status FROM clerk.sync_runs WHERE id = $id"), 'succeeded', 'which finished first');
$mock->configure(latency_ms => 0);

# ---- the key is in no table and not in the server log ----
my $key = $mock->secret_key;
my $kf = $node->basedir . '/clerk_secret_key';
# (the key is read server-side, so these queries do not put it in the log)
is(q1(qq{SELECT count(*) FROM clerk.sync_runs WHERE strpos(sync_runs::text, pg_read_file('$kf')) > 0}), '0',
   'the key is in no run row');
is(q1(qq{SELECT count(*) FROM clerk.audit_logs WHERE strpos(audit_logs::text, pg_read_file('$kf')) > 0}), '0',
   'the key is in no audit row');
is(q1(qq{SELECT count(*) FROM clerk.users WHERE strpos(raw::text, pg_read_file('$kf')) > 0}), '0',
   'the key is in no synced row');
unlike(slurp_file($node->logfile), qr/\Q$key\E/, 'the key is not in the server log');

$node->stop;
done_testing();
