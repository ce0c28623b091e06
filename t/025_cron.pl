# clerk_sync_all() scheduled with pg_cron: the job runs in pg_cron's own
# background worker, the run is recorded, the data arrives, and a failing
# run shows up as a failed job.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

plan skip_all => 'pg_cron is not installed for this PostgreSQL (Debian 12 packages it for 15 only; Debian 13\'s build for 17 and 18 needs glibc 2.38)'
  unless have_pg_cron();

my $mock = ClerkMock->new(users => 40, organizations => 4, memberships => 30);
my $node = clerk_node('cron', $mock);

q1('CREATE EXTENSION pg_cron');

# the schedule from the README is accepted as it is
my $jobid = q1(q{SELECT cron.schedule('clerk-sync', '*/15 * * * *', 'SELECT clerk_sync_all()')});
like($jobid, qr/^\d+$/, 'the README schedule is accepted');
is(q1(q{SELECT command FROM cron.job WHERE jobname = 'clerk-sync'}), 'SELECT clerk_sync_all()', 'and stored');

# pg_cron's smallest interval here is one minute: run it every minute and wait
q1(q{SELECT cron.schedule('clerk-sync', '* * * * *', 'SELECT clerk_sync_all()')});
ok($node->poll_query_until('postgres',
    q{SELECT count(*) > 0 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
      WHERE j.jobname = 'clerk-sync' AND d.status IN ('succeeded', 'failed')}),
   'the job ran');
is(q1(q{SELECT d.status FROM cron.job_run_details d JOIN cron.job j USING (jobid)
        WHERE j.jobname = 'clerk-sync' ORDER BY runid LIMIT 1}), 'succeeded', 'the job is recorded as succeeded');
is(q1('SELECT count(*) FROM clerk.users'), '40', 'the job synced the users');
is(q1(q{SELECT status FROM clerk.sync_runs ORDER BY id LIMIT 1}), 'succeeded', 'and recorded its run');

# a failing run makes the job fail, so monitoring sees it
q1(q{SELECT cron.unschedule('clerk-sync')});
$mock->configure(secret_key => 'sk_test_mock_rotated_elsewhere');
q1(q{SELECT cron.schedule('clerk-sync-bad', '* * * * *', 'SELECT clerk_sync_all()')});
ok($node->poll_query_until('postgres',
    q{SELECT count(*) > 0 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
      WHERE j.jobname = 'clerk-sync-bad' AND d.status IN ('succeeded', 'failed')}),
   'the failing job ran');
like(q1(q{SELECT d.status || ': ' || d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)
          WHERE j.jobname = 'clerk-sync-bad' ORDER BY runid LIMIT 1}),
     qr/^failed: .*rejected the secret key/, 'a rejected key fails the job with the reason');
q1(q{SELECT cron.unschedule('clerk-sync-bad')});

$node->stop;
done_testing();
