# How a full sync fills the rate limit and no more: the concurrency grows
# while answers come back fast, is cut on a 429 storm and recovers, never
# exceeds clerk_sync.concurrency nor clerk_sync.rate_limit; and how
# memberships are listed: from both ends of the instance-wide listing, or
# per organization when the answers show that deep offsets are expensive.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;
use JSON::PP ();

sub decode_json_text { JSON::PP::decode_json($_[0]) }

my $mock = ClerkMock->new(users => 3000, organizations => 40, memberships => 1200, seed => 29,
                          latency_ms => 100, rate_limit => 100000);
my $node = clerk_node('concurrency', $mock, conf => join("\n",
    "clerk_sync.page_size = 50", "clerk_sync.concurrency = 8", "clerk_sync.rate_limit = 1000",
    "clerk_sync.max_retries = 5", "clerk_sync.retry_backoff = 50"));

sub mock_count { my ($path) = @_; $mock->get($path)->{json}{total_count} }
sub db_memberships { q1(q{SELECT count(*) FROM clerk.organization_members WHERE deleted_at IS NULL}) }

# ---- the concurrency grows up to the maximum while answers come back fast ----
$mock->control(DELETE => 'stats');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync with 100 ms answers succeeds');
my $conc = decode_json_text(last_run(q{stats -> 'concurrency'}));
is($conc->{max}, 8, 'the maximum is clerk_sync.concurrency');
is($conc->{peak}, 8, 'answers that come back fast let the concurrency grow to it');
cmp_ok($mock->stats->{max_in_flight}, '<=', 8, 'never more requests in flight than clerk_sync.concurrency');
is(q1('SELECT count(*) FROM clerk.users WHERE deleted_at IS NULL'), '3000', 'every user stored');
is(last_run(q{stats ->> 'memberships_paging'}), 'instance-wide, from both ends',
   'memberships: the instance-wide listing, read from both ends');
is(db_memberships(), mock_count('/organization_memberships?limit=1'), 'every membership stored once');
my @mem = @{ $mock->requests('/v1/organization_memberships') };
ok((grep { ($_->{query} // '') =~ /order_by=-created_at/ } @mem) && (grep { ($_->{query} // '') =~ /order_by=created_at/ } @mem),
   'pages were asked for oldest first and newest first');
is(last_run(q{(stats -> 'memberships' ->> 'fetched')::int <= 1200 + 50}), 't', 'the two halves overlap by one page at most');

# ---- a 429 storm: the concurrency is cut, the run recovers and succeeds ----
$mock->clear_requests;
$mock->add_fault(kind => 'status', status => 429, retry_after => 1, path => '^/v1/users\?', rate => 0.5, count => 12);
my $id = q1('SELECT id FROM clerk_sync_all(wait => false)');
my ($seen_conc, $deadline) = (0, time + 120);
while (time < $deadline) {
    my $c = q1("SELECT concurrency FROM clerk.sync_progress WHERE run_id = $id");
    last if !defined $c || $c eq '';
    $seen_conc = $c if $c > $seen_conc;
    select(undef, undef, undef, 0.05);
}
is(wait_for_run($node, $id), 'succeeded', 'a full sync through a storm of 429 answers succeeds');
cmp_ok(last_run(q{(stats ->> 'rate_limited')::int}), '>=', 5, 'the 429 answers reached the client');
$conc = decode_json_text(last_run(q{stats -> 'concurrency'}));
cmp_ok($conc->{backoffs}, '>=', 1, 'the concurrency was cut');
cmp_ok($conc->{peak}, '<=', 8, 'and never went above clerk_sync.concurrency');
cmp_ok($conc->{last}, '>=', 4, 'and grew again once the storm was over');
cmp_ok($seen_conc, '>=', 1, 'clerk.sync_progress shows the concurrency in use');
is(q1('SELECT count(*) FROM clerk.users WHERE deleted_at IS NULL'), '3000', 'no user lost to the storm');
$mock->clear_faults;

# ---- rising latency, no 429: the concurrency is cut too ----
$mock->add_fault(kind => 'latency', latency_ms => 1500, path => '^/v1/users\?.*starting_after', rate => 0.3, count => 6);
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync through answers fifteen times slower succeeds');
is(last_run(q{(stats ->> 'rate_limited')::int}), '0', 'with no 429 at all');
cmp_ok(decode_json_text(last_run(q{stats -> 'concurrency'}))->{backoffs}, '>=', 1,
       'the rising latency alone cut the concurrency');
$mock->clear_faults;

# ---- the rate limit is the ceiling: no more requests in any 10 s than it allows ----
$mock->reset({users => 150, organizations => 2, memberships => 30, seed => 31});
$node->append_conf('postgresql.conf', "clerk_sync.rate_limit = 6\n");
$node->reload;
$mock->clear_requests;
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a run under a low rate limit succeeds');
my @t = sort { $a <=> $b } map { $_->{time} } grep { $_->{path} =~ m{^/v1/} } @{ $mock->requests };
my $most = 0;
for my $i (0 .. $#t) {
    my $j = $i;
    $j++ while $j + 1 <= $#t && $t[$j + 1] - $t[$i] < 10;
    $most = $j - $i + 1 if $j - $i + 1 > $most;
}
cmp_ok(scalar(@t), '>', 6, 'the run needed more requests than the limit allows in 10 s');
cmp_ok($most, '<=', 6, "at most clerk_sync.rate_limit requests in any 10 s ($most)");
is(decode_json_text(last_run(q{stats -> 'concurrency'}))->{max}, 6,
   'the concurrency is never above clerk_sync.rate_limit');
$node->append_conf('postgresql.conf', "clerk_sync.rate_limit = 1000\n");
$node->reload;
$mock->reset({users => 3000, organizations => 40, memberships => 1200, seed => 29});

# ---- deep offsets that cost: memberships are listed per organization ----
$mock->configure(offset_cost_us => 3000);
$mock->clear_requests;
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync with costly offsets succeeds');
like(last_run(q{stats ->> 'memberships_paging'}), qr/^per organization: the instance-wide listing was left at offset \d+/,
     'memberships: the answers\' latency moved the listing to one per organization');
my @per_org = grep { $_->{path} =~ m{^/v1/organizations/[^/]+/memberships$} } @{ $mock->requests };
cmp_ok(scalar(@per_org), '>=', 40, 'each organization was asked for its memberships');
my $largest = q1(q{SELECT max(members_count) FROM clerk.organizations});
is(scalar(grep { ($_->{query} // '') =~ /offset=(\d+)/ && $1 >= $largest } @per_org), 0,
   'with no offset deeper than the largest organization');
is(db_memberships(), mock_count('/organization_memberships?limit=1'), 'every membership stored');
is(last_run(q{stats -> 'memberships' ->> 'inserted'}), '0', 'none twice');

# a membership deleted in Clerk is found missing by the per-organization listing too
my $gone = q1(q{SELECT id FROM clerk.organization_members WHERE deleted_at IS NULL ORDER BY id LIMIT 1});
$mock->control(DELETE => "organization_memberships/$gone");
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'the next full sync with costly offsets succeeds');
is(q1(qq{SELECT deleted_at IS NOT NULL FROM clerk.organization_members WHERE id = '$gone'}), 't',
   'a membership deleted in Clerk is soft-deleted after a per-organization listing');
is(db_memberships(), mock_count('/organization_memberships?limit=1'), 'and the rest stay');
$mock->configure(offset_cost_us => 0);

done_testing();
