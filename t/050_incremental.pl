# clerk_sync_changes(): only what changed since the last successful run.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $mock = ClerkMock->new(users => 1000, organizations => 8, memberships => 300, seed => 5);
my $node = clerk_node('incr', $mock, conf => "clerk_sync.page_size = 50");

# with no earlier successful run, an incremental run lists everything
is(q1('SELECT kind || \' \' || status FROM clerk_sync_changes()'), 'incremental succeeded', 'first incremental run succeeds');
is(q1('SELECT count(*) FROM clerk.users'), '1000', 'with no earlier run it lists every user');
is(q1('SELECT count(*) FROM clerk.organization_members'), '300', 'and every membership');

q1('SELECT clerk_sync_all()');
my $full_requests = last_run(q{(stats ->> 'requests')::int});

# change 1% of the users: 6 updates and 4 creations, plus a new membership
my @ids = map { $_->{id} } @{ $mock->get('/users?limit=500&order_by=created_at&offset=300')->{json} };
my @updated = @ids[0 .. 5];
$mock->control(PATCH => "users/$_", { last_name => "Changed-$_" }) for @updated;
my @created = map { $mock->control(POST => 'users', { first_name => "New$_" })->{id} } 1 .. 3;
my $org = q1('SELECT id FROM clerk.organizations ORDER BY id LIMIT 1');
my $mem = $mock->control(POST => 'organization_memberships', { organization_id => $org, user_id => $created[0], role => 'org:member' });
# one more user is created during the run, after the users were listed
$mock->add_trigger(path => '/v1/organization_memberships\?', on_request => 1, create_users => 1);

is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'incremental run succeeds');
my $inc_requests = last_run(q{(stats ->> 'requests')::int});
is(q1("SELECT count(*) FROM clerk.users WHERE last_name LIKE 'Changed-%'"), '6', 'every updated user is picked up');
is(q1("SELECT count(*) FROM clerk.users WHERE id IN ('" . join("','", @created) . "')"), '3', 'every created user is picked up');
is(q1("SELECT count(*) FROM clerk.organization_members WHERE id = '$mem->{id}'"), '1', 'the new membership is picked up');
ok($inc_requests * 3 < $full_requests, "it needs far fewer requests than a full run ($inc_requests vs $full_requests)");
like(last_run(q{stats ->> 'deletion'}), qr/^not attempted/, 'an incremental run never deletes');

# the user created during that run arrives with the next one, which
# fetches no more than the overlap holds
is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'second incremental run succeeds');
my $mock_users = $mock->get('/users/count')->{json}{total_count};
is(q1('SELECT count(*) FROM clerk.users WHERE deleted_at IS NULL'), $mock_users, 'now every user Clerk has is stored');
my $fetched = last_run(q{(stats -> 'users' ->> 'fetched')::int});
ok($fetched <= 50, "the second run fetches only the overlap: one page at most ($fetched users)");
is(last_run(q{(stats -> 'users' ->> 'inserted')::int + (stats -> 'users' ->> 'updated')::int}), '1',
   'and writes just the one user it had not seen');

# a failed incremental run does not advance the high-water mark
my $mark = q1(q{SELECT max((stats ->> 'high_water_ms')::int8) FROM clerk.sync_runs WHERE status = 'succeeded'});
$mock->control(PATCH => "users/$ids[10]", { first_name => 'AfterMark' });
$mock->add_fault(kind => 'malformed', count => -1, path => '/v1/users\?');
my ($state) = sql_error($node, 'SELECT clerk_sync_changes()');
is($state, '08P01', 'an incremental run with a broken answer fails');
$mock->clear_faults;
is(q1(q{SELECT max((stats ->> 'high_water_ms')::int8) FROM clerk.sync_runs WHERE status = 'succeeded'}), $mark,
   'the failed run did not advance the mark');
is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'the next incremental run succeeds');
is(q1("SELECT first_name FROM clerk.users WHERE id = '$ids[10]'"), 'AfterMark', 'and picks up the change the failed run saw');
ok(q1(q{SELECT max((stats ->> 'high_water_ms')::int8) FROM clerk.sync_runs WHERE status = 'succeeded'}) > $mark,
   'a successful run advances the mark');

$node->stop;
done_testing();
