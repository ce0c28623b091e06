# Nothing Clerk can send stops a sync: \u0000, lone surrogates, numbers
# beyond numeric, invalid UTF-8 (repaired and stored), nesting deeper than
# jsonb converts (the object fails alone), elements that are not objects,
# in users, organizations and memberships, by sync and by webhook; a huge
# count and a truncated body still fail with 08P01.  Then the ordering rule
# (a webhook landing while a page is held back wins), the incremental
# guarantee (deletions during the run, equal updated_at across a page
# boundary, a future updated_at) and a record that fails on every run.
use strict;
use warnings;

use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use ClerkMock;
use ClerkTest;

my $tag = ClerkMock::random_hex(6);
my $SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_hostile_$tag", '');
my $mock = ClerkMock->new(users => 120, organizations => 6, memberships => 80, seed => 21);
my $node = clerk_node('hostile', $mock, webhook_secret => $SECRET, conf => join("\n",
    "clerk_sync.page_size = 50",
    "clerk_sync.max_delete_fraction = 0.5"));

sub webhook { my ($type, $data, %opt) = @_; return q1(webhook_sql($SECRET, $type, $data, %opt)) }
sub ids { my ($path) = @_; my $r = $mock->get($path)->{json}; return map { $_->{id} } (ref $r eq 'ARRAY' ? @$r : @{ $r->{data} }) }
sub stat_of { my ($entity, $key) = @_; return last_run("stats -> '$entity' ->> '$key'") }

my @users = ids('/users?limit=500&order_by=created_at');
my @orgs = ids('/organizations?limit=500&order_by=created_at');
my @mems = ids('/organization_memberships?limit=500&order_by=created_at');
my ($u_nul, $u_sur, $u_num, $u_deep, $u_utf8) = @users[10, 60, 110, 70, 20];
my $deep = ('[' x 100000) . (']' x 100000);

# ==== hostile content, as any end user can write it ====
# (the one that cannot be stored changes first: later changes lie between it and the mark)
$mock->control(PATCH => "users/$u_deep", { unsafe_metadata => { deep => { '$raw' => $deep } } });
$mock->control(PATCH => "users/$_", { last_name => 'Filler' }) for @users[40 .. 49];
$mock->control(PATCH => "users/$u_nul", { unsafe_metadata => { note => { '$raw' => '"a\u0000b"' } } });
$mock->control(PATCH => "users/$u_sur", { first_name => { '$raw' => '"\ud800"' } });
$mock->control(PATCH => "users/$u_num", { public_metadata => { n => { '$raw' => '1e200000' } } });
$mock->control(PATCH => "users/$u_utf8", { last_name => { '$raw_base64' => encode_base64("\"ab\xffcd\"", '') } });
$mock->control(PATCH => "organizations/$orgs[2]", { public_metadata => { x => { '$raw' => '"\u0000"' } } });
$mock->control(PATCH => "organization_memberships/$mems[5]", { public_metadata => { y => { '$raw' => '"\udc00"' } } });
$mock->configure(page_extras => { users => ['42', 'null', '"not an object"'] });

is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync over hostile content succeeds');
is(q1('SELECT count(*) FROM clerk.users'), scalar(@users) - 1, 'every user is stored but the one nested too deep');
is(q1('SELECT count(*) FROM clerk.organizations'), scalar(@orgs), 'every organization is stored');
is(q1('SELECT count(*) FROM clerk.organization_members'), scalar(@mems), 'every membership is stored');
is(stat_of('users', 'repaired'), '4', 'four users were repaired');
is(stat_of('users', 'failed'), '4', 'one user and three page elements failed alone');
is(stat_of('organizations', 'repaired'), '1', 'one organization was repaired');
# (a membership carries its organization and its user's public data: those
# of the repaired ones are repaired too)
cmp_ok(stat_of('memberships', 'repaired'), '>=',
   q1("SELECT count(*) FROM clerk.organization_members WHERE organization_id = '$orgs[2]' OR id = '$mems[5]'"),
   'and every membership that holds repaired content');
is(q1("SELECT unsafe_metadata ->> 'note' = 'a' || U&'\\FFFD' || 'b' AND raw -> 'unsafe_metadata' ->> 'note' = 'a' || U&'\\FFFD' || 'b'
         FROM clerk.users WHERE id = '$u_nul'"), 't', '\u0000 is stored as U+FFFD, in the typed column and in raw');
is(q1("SELECT first_name = U&'\\FFFD' FROM clerk.users WHERE id = '$u_sur'"), 't', 'a lone surrogate is stored as U+FFFD');
is(q1("SELECT public_metadata -> 'n' FROM clerk.users WHERE id = '$u_num'"), '"1e200000"', 'a number beyond numeric is kept as a string');
is(q1("SELECT last_name = 'ab' || U&'\\FFFD' || 'cd' FROM clerk.users WHERE id = '$u_utf8'"), 't', 'invalid UTF-8 is stored as U+FFFD');
is(q1("SELECT public_metadata ->> 'x' = U&'\\FFFD' FROM clerk.organizations WHERE id = '$orgs[2]'"), 't', 'in an organization too');
is(q1("SELECT public_metadata ->> 'y' = U&'\\FFFD' FROM clerk.organization_members WHERE id = '$mems[5]'"), 't', 'and in a membership');
my $run = last_run('id');
is(q1("SELECT details::text FROM clerk.audit_logs WHERE run_id = $run AND action = 'sync.record_repaired' AND entity_id = '$u_nul'"),
   '{"rules": ["nul_character"], "fields": ["unsafe_metadata.note"], "dry_run": false}', 'the repair is audited: object, field, rule');
is(q1("SELECT details ->> 'sqlstate' FROM clerk.audit_logs WHERE run_id = $run AND action = 'sync.record_failed' AND entity_id = '$u_deep'"),
   '54001', 'the object nested too deep is audited with its SQLSTATE');
is(q1("SELECT count(*) FROM clerk.audit_logs WHERE run_id = $run AND action = 'sync.record_failed' AND entity_id IS NULL
         AND details ->> 'reason' LIKE 'element % of the list is %, not an object'"), '3', 'each non-object element is audited');
is(q1("SELECT attempts FROM clerk.sync_failures WHERE entity = 'users' AND id = '$u_deep'"), '1', 'and the failed user is kept for a retry');
is(last_run(q{stats ->> 'deletion'}), 'done', 'the deletion sweep ran');

# pg_dump and a restore work on what was stored
SKIP: {
    my $pg_dump = client_program('pg_dump')
      or skip 'no pg_dump for this PostgreSQL here (Debian 13\'s needs glibc 2.38; the npm package has none)', 3;
    my $dump = $node->basedir . '/hostile.sql';
    $node->command_ok([ $pg_dump, '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump works');
    $node->safe_psql('postgres', 'CREATE DATABASE restored');
    $node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
                      'and the dump restores');
    is($node->safe_psql('restored', "SELECT first_name = U&'\\FFFD' FROM clerk.users WHERE id = '$u_sur'"), 't',
       'with the repaired values');
}

# the next incremental run succeeds, retries the failed record and advances its mark
$mock->control(PATCH => "users/$users[3]", { last_name => 'Changed' });
my $mark0 = last_run(q{(stats ->> 'high_water_ms')::int8});
# (no overlap and small pages: the failing record lies well before the
# mark, so only a retry by id reaches it)
is(q1('SET clerk_sync.incremental_overlap = 0; SET clerk_sync.page_size = 5; SELECT status FROM clerk_sync_changes()'), 'succeeded',
   'an incremental run after them succeeds');
cmp_ok(last_run(q{(stats ->> 'high_water_ms')::int8}), '>', $mark0, 'and advances its mark despite the failing record');
is(q1("SELECT last_name FROM clerk.users WHERE id = '$users[3]'"), 'Changed', 'and stores the change');
is(last_run(q{stats ->> 'failures_retried'}), '1', 'it retried the failed record by id');
is(q1("SELECT attempts FROM clerk.sync_failures WHERE id = '$u_deep'"), '2', 'which failed again, counted');

# webhooks about the same objects are applied, with the same repair
like(webhook('user.updated', qq({"id":"$u_nul","object":"user","first_name":"Hook\\u0000","updated_at":4102444800000,"created_at":1})),
     qr/^user\.updated$/, 'a webhook with \u0000 is applied');
is(q1("SELECT first_name = 'Hook' || U&'\\FFFD' FROM clerk.users WHERE id = '$u_nul'"), 't', 'with the repair');
like(q1(q{SELECT details::text FROM clerk.audit_logs WHERE action = 'webhook.user.updated' ORDER BY id DESC LIMIT 1}),
     qr/"repaired": \{"rules": \["nul_character"\], "fields": \["data\.first_name"\]\}/, 'and its repair audited');
is(webhook('organization.updated', qq({"id":"$orgs[2]","object":"organization","name":"\\ud800","updated_at":4102444800000,"created_at":1})),
   'organization.updated', 'an organization webhook with a lone surrogate is applied');
is(webhook('organizationMembership.updated',
           qq({"id":"$mems[5]","object":"organization_membership","role":"org:member","organization":{"id":"$orgs[0]"},)
           . qq("public_user_data":{"user_id":"$users[0]"},"public_metadata":{"n":1e200000},"updated_at":4102444800000,"created_at":1})),
   'organizationMembership.updated', 'a membership webhook with a huge number is applied');
is(q1("SELECT public_metadata -> 'n' FROM clerk.organization_members WHERE id = '$mems[5]'"), '"1e200000"', 'as a string');
is(webhook('user.updated', qq({"id":"$u_deep","object":"user","unsafe_metadata":$deep,"updated_at":4102444800000,"created_at":1})),
   'user.updated', 'a webhook whose object cannot be stored still succeeds');
is(q1(q{SELECT outcome FROM clerk.webhook_deliveries ORDER BY received_at DESC LIMIT 1}), 'failed', 'recorded as failed');

# the user repairs the data: the next run stores it and forgets the failure
$mock->control(PATCH => "users/$u_deep", { unsafe_metadata => { deep => 'no longer' } });
is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'the next incremental run succeeds');
is(q1("SELECT count(*) FROM clerk.sync_failures WHERE id = '$u_deep'"), '0', 'the record is stored and forgotten');
is(q1("SELECT unsafe_metadata ->> 'deep' FROM clerk.users WHERE id = '$u_deep'"), 'no longer', 'with its data');

# truly malformed answers still fail the run with 08P01
$mock->configure(page_extras => {});
$mock->add_fault(kind => 'malformed', path => '^/v1/users/count', body => '{"object":"total_count","total_count":1e30}');
my ($state, $msg) = sql_error($node, 'SELECT clerk_sync_all()');
is($state, '08P01', 'a count of 1e30 is a bad answer (08P01)');
like($msg, qr{/users/count}, 'naming the request');
$mock->add_fault(kind => 'malformed', path => '^/v1/organizations\?', body => '{"data": [{"id": "org_x"');
($state, $msg) = sql_error($node, 'SELECT clerk_sync_all()');
is($state, '08P01', 'a truncated page fails the run with 08P01');
like($msg, qr/malformed JSON/, 'as malformed JSON');
$mock->clear_faults;

# ==== the ordering rule: a webhook landing while a page is in flight wins ====
# The page write is held back by a lock; the webhooks land (in the session
# holding the lock) after the page was fetched; then the page is written.
sub blocked_on {
    my ($table) = @_;
    return $node->poll_query_until('postgres',
        "SELECT count(*) > 0 FROM pg_locks WHERE relation = '$table'::regclass AND NOT granted");
}
{
    my $ts = int(time() * 1000);
    my ($ua, $ub) = @users[1, 2];
    my ($oa, $ob) = @orgs[4, 5];
    my $l1 = $node->background_psql('postgres');
    my $l2 = $node->background_psql('postgres');
    $l1->query_safe('BEGIN; LOCK TABLE clerk.users IN SHARE ROW EXCLUSIVE MODE');
    $l2->query_safe('BEGIN; LOCK TABLE clerk.organizations IN SHARE ROW EXCLUSIVE MODE');
    my $id = q1('SELECT id FROM clerk_sync_all(wait => false)');
    ok(blocked_on('clerk.organizations'), 'the first page of organizations is held back');
    $mock->control(DELETE => "organizations/$oa");
    $l2->query_safe(webhook_sql($SECRET, 'organization.deleted', { id => $oa, object => 'organization', deleted => \1 },
                                timestamp_ms => time() * 1000));
    $l2->query_safe(webhook_sql($SECRET, 'organization.updated', { id => $ob, object => 'organization', name => 'FromWebhook',
                                                                   updated_at => $ts + 3_600_000, created_at => 1 }));
    $l2->query_safe('COMMIT');
    ok(blocked_on('clerk.users'), 'then the first page of users');
    $mock->control(DELETE => "users/$ua");
    $l1->query_safe(webhook_sql($SECRET, 'user.deleted', { id => $ua, object => 'user', deleted => \1 },
                                timestamp_ms => time() * 1000));
    $l1->query_safe(webhook_sql($SECRET, 'user.updated', { id => $ub, object => 'user', first_name => 'FromWebhook',
                                                           updated_at => $ts + 3_600_000, created_at => 1 }));
    $l1->query_safe('COMMIT');
    is(wait_for_run($node, $id), 'succeeded', 'the run succeeds');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.users WHERE id = '$ua'"), 't', 'a page fetched before a user.deleted does not revive the user');
    is(q1("SELECT first_name FROM clerk.users WHERE id = '$ub'"), 'FromWebhook', 'nor overwrite a newer version of a user');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.organizations WHERE id = '$oa'"), 't', 'the same for an organization.deleted');
    is(q1("SELECT name FROM clerk.organizations WHERE id = '$ob'"), 'FromWebhook', 'and a newer organization');
    $l1->quit;
    $l2->quit;

    # memberships, in a run of their own (an organization.deleted would wait for this lock)
    my @live = split /\n/, q1('SELECT id FROM clerk.organization_members WHERE deleted_at IS NULL ORDER BY created_at LIMIT 2');
    my ($ma, $mb) = @live;
    my $mb_org = q1("SELECT organization_id || ' ' || user_id FROM clerk.organization_members WHERE id = '$mb'");
    my ($mb_o, $mb_u) = split / /, $mb_org;
    my $ma_row = q1("SELECT organization_id || ' ' || user_id FROM clerk.organization_members WHERE id = '$ma'");
    my ($ma_o, $ma_u) = split / /, $ma_row;
    my $l3 = $node->background_psql('postgres');
    $l3->query_safe('BEGIN; LOCK TABLE clerk.organization_members IN SHARE ROW EXCLUSIVE MODE');
    $id = q1('SELECT id FROM clerk_sync_all(wait => false)');
    ok(blocked_on('clerk.organization_members'), 'the first page of memberships is held back');
    $mock->control(DELETE => "organization_memberships/$ma");
    $l3->query_safe(webhook_sql($SECRET, 'organizationMembership.deleted',
        { id => $ma, object => 'organization_membership', organization => { id => $ma_o }, public_user_data => { user_id => $ma_u } },
        timestamp_ms => time() * 1000));
    $l3->query_safe(webhook_sql($SECRET, 'organizationMembership.updated',
        { id => $mb, object => 'organization_membership', role => 'org:webhook', organization => { id => $mb_o },
          public_user_data => { user_id => $mb_u }, updated_at => $ts + 3_600_000, created_at => 1 }));
    $l3->query_safe('COMMIT');
    is(wait_for_run($node, $id), 'succeeded', 'that run succeeds too');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.organization_members WHERE id = '$ma'"), 't',
       'a page fetched before an organizationMembership.deleted does not revive it');
    is(q1("SELECT role FROM clerk.organization_members WHERE id = '$mb'"), 'org:webhook', 'nor overwrite a newer membership');
    $l3->quit;
}

# ==== the incremental guarantee ====
# Deletions while an incremental run pages newest first shift the list by
# more than the pages overlap: the run sees it and reads the gap again.
{
    my @live = grep { $_ ne $users[1] } @users[30 .. 99];
    my $n = 0;
    $mock->control(PATCH => "users/$_", { last_name => 'Shifted' . $n++ }) for @live;   # 70 changes, newest last
    my @newest = reverse @live;
    $mock->add_trigger(path => '/v1/users\?.*order_by=-updated_at', on_request => 2,
                       delete => { users => [ @newest[0 .. 19] ] });
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'an incremental run with deletions during it succeeds');
    cmp_ok(last_run(q{(stats ->> 'shifts_repaired')::int}), '>=', 1, 'it saw the listing move and read the gap again');
    my @kept = @newest[20 .. $#newest];
    is(q1("SELECT count(*) FROM clerk.users WHERE id IN (" . join(',', map { "'$_'" } @kept) . ") AND last_name LIKE 'Shifted%'"),
       scalar(@kept), 'no changed user was skipped');
    $mock->clear_triggers;
}
# equal updated_at values across page boundaries
{
    my $t = int(time() * 1000) + 1000;
    # (not those a webhook gave a later updated_at: the ordering rule keeps those)
    my %newer = map { $_ => 1 } split /\n/, q1('SELECT id FROM clerk.users WHERE updated_at > now()');
    my @same = grep { $_ ne $users[1] && !$newer{$_} } @users[0 .. 29, 100 .. 119];
    $mock->control(PATCH => "users/$_", { first_name => 'Same', updated_at => $t }) for @same;
    is(q1('SET clerk_sync.page_size = 20; SELECT status FROM clerk_sync_changes()'), 'succeeded',
       'an incremental run over equal updated_at values across pages succeeds');
    is(q1("SELECT count(*) FROM clerk.users WHERE first_name = 'Same'"), scalar(@same), 'and gets every one of them');
}
# a future updated_at does not hide the changes made until then
{
    $mock->control(PATCH => "users/$users[5]", { first_name => 'Future', updated_at => 4102444800000 });
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'an incremental run with a future updated_at succeeds');
    cmp_ok(last_run(q{(stats ->> 'high_water_ms')::int8}), '<=', int(time() * 1000), 'its mark is not in the future');
    $mock->control(PATCH => "users/$users[7]", { first_name => 'AfterFuture' });
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'the next incremental run succeeds');
    is(q1("SELECT first_name FROM clerk.users WHERE id = '$users[7]'"), 'AfterFuture', 'and still sees a later change');
}

# ==== per-organization listing: an organization deleted during the run ====
{
    $mock->configure(disable_instance_memberships => \1);
    my ($big) = split /\n/, q1('SELECT organization_id FROM clerk.organization_members WHERE deleted_at IS NULL
                                GROUP BY 1 HAVING count(*) > 10 ORDER BY count(*) DESC LIMIT 1');
    $mock->add_trigger(path => "/v1/organizations/$big/memberships\\?.*offset=10", on_request => 1,
                       delete => { organizations => [$big] });
    is(q1('SET clerk_sync.page_size = 10; SELECT status FROM clerk_sync_all()'), 'succeeded',
       'an organization deleted while its memberships are listed is skipped, not a failed run');
    $mock->configure(disable_instance_memberships => \0);
    $mock->clear_triggers;
}

# the server log holds neither the key nor an error from all this
unlike(slurp_file($node->logfile), qr/\Q${\ $mock->secret_key }\E/, 'the key is not in the server log');
$node->stop;
done_testing();
