# Never hang, never leak a run slot: DDL on the extension during a run
# (both wait modes) completes within seconds and the run ends canceled; a
# call in a transaction block that would deadlock is refused, or ends in
# 40P01; a client that goes away cancels its run; a hot standby refuses
# runs at once and leaves no phantom slot; a worker blocked while recording
# its outcome stops on SIGTERM; a fast shutdown is not held up.  Every wait
# here has a time limit.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use ClerkMock;
use ClerkTest;

# slow enough that a run lasts several seconds
my $mock = ClerkMock->new(users => 2000, organizations => 10, memberships => 100, seed => 8, latency_ms => 150);
my $node = clerk_node('nohang', $mock, init => { allows_streaming => 1 }, conf => join("\n",
    "clerk_sync.page_size = 20", "clerk_sync.concurrency = 2", "max_connections = 30"));

# Poll $sql until it returns 't', at most $secs seconds; true if it did.
sub within {
    my ($secs, $sql, $db) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my ($ret, $out) = $node->psql($db // 'postgres', $sql);
        return 1 if $ret == 0 && $out eq 't';
        sleep 0.1;
    }
    return 0;
}
sub running { within(30, q{SELECT count(*) = 1 FROM clerk.sync_progress WHERE run_id IS NOT NULL AND pages > 0}) }
sub timed { my ($sql) = @_; my $t0 = time; my ($ret, $out, $err) = $node->psql('postgres', $sql, timeout => 60); return (time - $t0, $ret, $err) }

# ==== DDL on the extension during a run, in both wait modes ====
for my $ddl ('DROP EXTENSION clerk_sync', 'ALTER EXTENSION clerk_sync UPDATE', 'DROP SCHEMA clerk CASCADE') {
    for my $wait (1, 0) {
        my $what = "$ddl during a run " . ($wait ? 'with a waiting caller' : 'started with wait => false');
        my ($bg, $id);
        if ($wait) {
            $bg = $node->background_psql('postgres', on_error_stop => 0);
            $bg->query_until(qr/started/, "\\echo started\nSELECT clerk_sync_all();\n");
        } else {
            $id = q1('SELECT id FROM clerk_sync_all(wait => false)');
        }
        ok(running(), "$what: the run is going");
        my ($secs, $ret, $err) = timed($ddl);
        cmp_ok($secs, '<', 15, "$what: finishes within seconds (" . sprintf('%.1f', $secs) . ' s)');
        ok($ret == 0 || $err =~ /ERROR:/, "$what: succeeds or fails with a clear error");
        like($err, qr/running clerk_sync runs were canceled first/, "$what: it canceled the run first");
        if ($wait) {
            $bg->query('SELECT 1');
            like($bg->{stderr}, qr/was canceled by DDL on the extension/, "$what: the waiting caller hears why");
            $bg->quit;
        }
        if ($ddl =~ /^ALTER/) {
            $id //= q1('SELECT max(id) FROM clerk.sync_runs');
            is(q1("SELECT status FROM clerk.sync_runs WHERE id = $id"), 'canceled', "$what: the run ended canceled");
        }
        ok(within(10, q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'clerk_sync worker'}),
           "$what: no worker is left");
        is(q1('SELECT 1'), '1', "$what: nothing else is blocked");
        q1('DROP EXTENSION IF EXISTS clerk_sync CASCADE; CREATE EXTENSION clerk_sync') unless $ddl =~ /^ALTER/;
    }
}
is(q1('SELECT status FROM clerk_sync_all(dry_run => true)'), 'succeeded', 'afterwards a run succeeds');

# ==== transaction blocks ====
{
    my ($secs, $ret, $err) = timed(q{BEGIN; SELECT clerk_apply_page('users', '[{"id": "user_tx_1"}]');
                                     SELECT clerk_sync_all(); COMMIT;});
    like($err, qr/cannot wait for its run in a transaction block that has written or locked clerk tables/,
         'a waiting call after a write in the same transaction is refused');
    cmp_ok($secs, '<', 5, 'at once');
    my ($state) = sql_error($node, q{BEGIN; SELECT clerk_apply_page('users', '[{"id": "user_tx_2"}]'); SELECT clerk_sync_changes();});
    is($state, '25001', 'with SQLSTATE 25001');
    ($secs, $ret, $err) = timed(q{BEGIN; LOCK TABLE clerk.sync_runs IN EXCLUSIVE MODE; SELECT clerk_sync_all(wait => false); COMMIT;});
    like($err, qr/deadlock detected: the clerk_sync worker waits for a lock held by this session/,
         'a worker that waits for its caller is noticed (40P01), not waited for');
    cmp_ok($secs, '<', 10, "within seconds ($secs s)");
    ok(within(20, q{SELECT count(*) = 0 FROM clerk.sync_progress}), 'and leaves no run behind');
    is(q1(q{SELECT count(*) FROM clerk.sync_runs WHERE status = 'running'}), '0', 'none recorded as running');
}

# ==== a client that goes away ====
{
    my ($in, $out, $err) = ('', '', '');
    my $h = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'SELECT clerk_sync_all()' ],
                            \$in, \$out, \$err);
    ok(running(), 'a run is going, its client waiting');
    my $id = q1('SELECT run_id FROM clerk.sync_progress');
    $h->signal('KILL');
    $h->finish;
    ok(within(20, "SELECT status = 'canceled' FROM clerk.sync_runs WHERE id = $id"),
       'the run of a client that went away is canceled within seconds');
    ok(within(10, q{SELECT count(*) = 0 FROM clerk.sync_progress}), 'and its slot is free');
    is(q1('SELECT status FROM clerk_sync_all(dry_run => true)'), 'succeeded', 'the next run succeeds');
}

# ==== the worker can always be stopped ====
{
    my $id = q1('SELECT id FROM clerk_sync_all(wait => false)');
    ok(running(), 'a run is going');
    my $pid = q1('SELECT pid FROM clerk.sync_progress');
    my $locker = $node->background_psql('postgres');
    $locker->query_safe("BEGIN; SELECT 1 FROM clerk.sync_runs WHERE id = $id FOR UPDATE");
    ok(within(60, q{SELECT wait_event_type = 'Lock' FROM clerk.sync_progress}),
       'recording its end, the worker waits for the row lock, and clerk.sync_progress shows it');
    my $t0 = time;
    q1("SELECT pg_terminate_backend($pid)");
    ok(within(3, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"), 'SIGTERM ends it within seconds');
    cmp_ok(time - $t0, '<', 3, 'even while it waited for a lock (not just until its 5 s lock timeout)');
    $locker->query_safe('ROLLBACK');
    $locker->quit;
    is(q1("SELECT status FROM clerk.sync_runs WHERE id = $id"), 'running', 'its outcome could not be recorded');
    q1('SELECT clerk_sync_all(dry_run => true)');
    is(q1("SELECT status FROM clerk.sync_runs WHERE id = $id"), 'failed', 'the next run marks it failed');

    # a fast shutdown is not held up by a run
    q1('SELECT id FROM clerk_sync_all(wait => false)');
    ok(running(), 'a run is going');
    $t0 = time;
    $node->stop('fast');
    cmp_ok(time - $t0, '<', 30, 'a fast shutdown during a run completes within seconds');
    $node->start;
    is(q1('SELECT status FROM clerk_sync_all(dry_run => true)'), 'succeeded', 'after the restart a run succeeds');
    is(q1(q{SELECT count(*) FROM clerk.sync_runs WHERE status = 'running'}), '0', 'and nothing is left running');
}

# ==== a worker that does not start in time ====
{
    # (0 gives the worker no time at all; now and then the postmaster still
    # starts it before the caller looks: then that run is stopped by the
    # statement timeout, and the call tried again)
    my ($state, $msg);
    for my $try (1 .. 10) {
        ($state, $msg) = sql_error($node, q{SET clerk_sync.worker_start_timeout = 0; SET statement_timeout = '3s';
                                            SELECT clerk_sync_all()});
        last if $state eq '53000';
        within(30, q{SELECT count(*) = 0 FROM clerk.sync_progress});
    }
    is($state, '53000', 'a worker not started within clerk_sync.worker_start_timeout fails the call (53000)');
    like($msg, qr/did not start within 0 ms/, 'saying so');
    ok(within(10, q{SELECT count(*) = 0 FROM clerk.sync_progress}), 'and gives its slot back');
    is(q1('SELECT status FROM clerk_sync_all(dry_run => true)'), 'succeeded', 'the next call runs');
}

# ==== a hot standby ====
{
    # a copy of the stopped primary (pg_basebackup is not there for every
    # version test/run.sh tests)
    $node->stop;
    $node->backup_fs_cold('base');
    $node->start;
    my $standby = PostgreSQL::Test::Cluster->new('standby');
    $standby->init_from_backup($node, 'base', has_streaming => 1);
    $standby->start;
    my $t0 = time;
    my ($state, $msg) = sql_error($standby, 'SELECT clerk_sync_all()');
    is($state, '25006', 'on a standby clerk_sync_all() fails with 25006');
    cmp_ok(time - $t0, '<', 10, 'at once');
    like($msg, qr/cannot run a clerk_sync run on a server in recovery/, 'saying why');
    ($state) = sql_error($standby, 'SELECT clerk_sync_changes()');
    is($state, '25006', 'and so does clerk_sync_changes()');
    is($standby->safe_psql('postgres', 'SELECT count(*) FROM clerk.sync_progress'), '0', 'no phantom slot is left');
    like($standby->safe_psql('postgres', q{SELECT clerk_status() ->> 'last_run'}), qr/"status"/, 'clerk_status() works there');
    is($standby->safe_psql('postgres', 'SELECT clerk_sync_cancel(0)'), 'f', 'clerk_sync_cancel(0) matches nothing');
    $standby->stop;
}

$node->stop;
done_testing();
