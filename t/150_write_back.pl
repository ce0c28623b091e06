# Writing to Clerk from SQL: changes queued in a transaction and sent by the
# write-back worker if and only if it commits, against a real server and
# the mock Clerk API.  Rollback sends nothing; commit sends exactly once, in
# order per object, side by side across objects; the answer is written
# through the one write path (read your writes; an older sync page or the
# echoing webhook does not undo it); a lost answer to a create leaves one
# object; 429s and a running sync share one rate budget; Clerk's refusal is
# recorded; a restart resumes pending changes; the checks made when a change
# is queued; the privileges.
#
# Secrets are made up when the test runs and are obviously fake.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $tag = ClerkMock::random_hex(6);
my $SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_writes_$tag", '');
my $JSON = JSON::PP->new->utf8->canonical;

my $mock = ClerkMock->new(users => 40, organizations => 4, memberships => 30, seed => 11,
    extra_args => ['--custom-roles', 1]);
my $node = clerk_node('writes', $mock, webhook_secret => $SECRET, init => { allows_streaming => 1 },
    conf => "clerk_sync.retry_backoff = 200\nclerk_sync.concurrency = 8");

is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync first');
my @users = split /\n/, q1("SELECT id FROM clerk.users WHERE deleted_at IS NULL ORDER BY id");
my @orgs = split /\n/, q1("SELECT id FROM clerk.organizations WHERE deleted_at IS NULL ORDER BY id");
ok(@users >= 30 && @orgs >= 3, 'users and organizations synced');

sub writes {
    my (%q) = @_;
    my $qs = join '&', map { "$_=$q{$_}" } sort keys %q;
    my $r = $mock->control(GET => 'writes' . ($qs ? "?$qs" : ''));
    return ref $r eq 'HASH' ? $r->{writes} : $r;
}
# wait (at most $secs) until the change is no longer pending; its status
sub wait_change {
    my ($id, $secs) = @_;
    $secs //= 30;
    return q1("SELECT clerk.wait_for_change($id, '$secs seconds')");
}
sub mock_user { return $mock->control(GET => "users/$_[0]") }

# ---- rollback sends nothing ----
$mock->control(DELETE => 'writes');
$node->safe_psql('postgres', qq{
    BEGIN;
    SELECT clerk.merge_user_metadata('$users[0]', public => '{"plan":"rolled_back"}');
    SELECT clerk.ban_user('$users[1]');
    ROLLBACK;});
is(q1('SELECT count(*) FROM clerk.changes'), 0, 'a rolled-back transaction leaves no change');
# a later commit wakes the worker: anything queued before would be sent by then
my $id = q1(qq{SELECT clerk.merge_user_metadata('$users[2]', public => '{"plan":"pro","n":1}')});
like($id, qr/^\d+$/, 'merge_user_metadata returns the change id');
is(wait_change($id), 'sent', 'a committed change is sent');
my @w = @{ writes() };
is(scalar @w, 1, 'exactly one write reached Clerk (none of the rolled-back ones)');
is($w[0]{route}, 'PATCH /v1/users/{id}/metadata', 'through the metadata endpoint');
is($w[0]{id}, $users[2], 'of that user');

# ---- read your writes: the synced row shows it, with no sync and no webhook ----
is(q1("SELECT public_metadata ->> 'plan' FROM clerk.users WHERE id = '$users[2]'"), 'pro',
   'the synced row shows the change as soon as Clerk took it');
is(mock_user($users[2])->{public_metadata}{plan}, 'pro', 'Clerk has it');
is(q1("SELECT status || ' ' || http_status || ' ' || attempts || ' ' || in_doubt::text FROM clerk.changes WHERE id = $id"),
   'sent 200 1 false', 'the change records its answer');

# ---- a deep merge, null removes a key ----
$id = q1(qq{SELECT clerk.merge_user_metadata('$users[2]', public => '{"n":null,"nested":{"a":1}}', private => '{"k":"v"}')});
is(wait_change($id), 'sent', 'a second merge is sent');
is(q1("SELECT public_metadata::text FROM clerk.users WHERE id = '$users[2]'"),
   '{"plan": "pro", "nested": {"a": 1}}', 'merged as Clerk merges: null removed a key, the rest kept');
is(q1("SELECT private_metadata ->> 'k' FROM clerk.users WHERE id = '$users[2]'"), 'v', 'private metadata too');


# within($secs, $sql, $node): whether $sql answers t within $secs
sub within {
    my ($secs, $sql, $n) = @_;
    $n //= $node;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my ($ret, $out) = $n->psql('postgres', $sql);
        return 1 if $ret == 0 && $out eq 't';
        sleep 0.2;
    }
    return 0;
}

# ---- in commit order per object, exactly once ----
$mock->control(DELETE => 'writes');
my @ids;
push @ids, q1(qq{SELECT clerk.merge_user_metadata('$users[3]', public => '{"seq":$_}')}) for 1 .. 6;
is(wait_change($ids[-1]), 'sent', 'the last of six changes of one user is sent');
is(q1("SELECT count(*) FROM clerk.changes WHERE id IN (" . join(',', @ids) . ") AND status = 'sent'"), 6,
   'all six are sent');
@w = @{ writes(id => $users[3]) };
is(scalar @w, 6, 'each reached Clerk once');
my @sent_bodies = map { $_->{body_sha256} } sort { $a->{seq} <=> $b->{seq} } @w;
my @our_bodies = map { sha256_hex(q1("SELECT arguments::text FROM clerk.changes WHERE id = $_")) } @ids;
is_deeply(\@sent_bodies, \@our_bodies, 'in the order their transactions committed');
is(mock_user($users[3])->{public_metadata}{seq}, 6, 'so Clerk ends with the last one');
is(q1("SELECT public_metadata ->> 'seq' FROM clerk.users WHERE id = '$users[3]'"), '6', 'and so does the synced row');

# ---- side by side across objects ----
{
    $mock->control(DELETE => 'stats');
    $mock->add_fault(kind => 'latency', latency_ms => 300, path => '^/v1/users/[^/]+/metadata', count => -1);
    my @many = @users[10 .. 25];
    my $t0 = time;
    my $list = q1("SELECT string_agg(clerk.merge_user_metadata(u, public => '{\"batch\":1}')::text, ',') FROM unnest(ARRAY['"
                  . join("','", @many) . "']) u");
    ok(within(30, "SELECT count(*) = 0 FROM clerk.changes WHERE id IN ($list) AND status = 'pending'"),
       'sixteen changes of sixteen users are sent');
    my $elapsed = time - $t0;
    cmp_ok($mock->stats->{max_in_flight}, '>', 2, 'several were in flight at once');
    cmp_ok($elapsed, '<', 16 * 0.3, 'faster than one after the other');
    $mock->clear_faults;
}

# ---- a lost answer to a create leaves one object ----
{
    $mock->control(DELETE => 'writes');
    $mock->add_fault(kind => 'lost_after_apply', path => '^/v1/organizations$', method => 'POST', count => 1);
    my $slug = "write-test-$tag";
    my $cid = q1(qq{SELECT clerk.create_organization('Write Test $tag', slug => '$slug', created_by => '$users[0]')});
    is(wait_change($cid), 'sent', 'a create whose answer was lost ends sent');
    my @creates = grep { $_->{route} eq 'POST /v1/organizations' } @{ writes() };
    is(scalar @creates, 1, 'Clerk made the organization once');
    my $asked = scalar(grep { $_->{path} =~ m{^/v1/organizations/\Q$slug\E} && $_->{method} eq 'GET' } @{ $mock->requests('/v1/organizations/') });
    my $found = $mock->get("/organizations/$slug");
    ok($found->{success}, 'Clerk has it under its slug');
    like(q1("SELECT error_message FROM clerk.changes WHERE id = $cid"), qr/answer to an earlier attempt was lost/,
         'the change says it was found after a lost answer');
    is(q1("SELECT attempts FROM clerk.changes WHERE id = $cid"), 2, 'on its second attempt (the look-up)');
    is($asked, 1, 'which asked Clerk for the slug once');
    is(q1("SELECT result_id FROM clerk.changes WHERE id = $cid"), $found->{json}{id}, 'with the new id');
    is(q1("SELECT slug FROM clerk.organizations WHERE id = '$found->{json}{id}' AND deleted_at IS NULL"), $slug,
       'the synced table has the new organization');

    # the same for a membership
    $mock->add_fault(kind => 'lost_after_apply', path => '/memberships$', method => 'POST', count => 1);
    my $org = $found->{json}{id};
    $cid = q1(qq{SELECT clerk.add_organization_member('$org', '$users[5]', 'org:member')});
    is(wait_change($cid), 'sent', 'a membership whose answer was lost ends sent');
    my @adds = grep { $_->{route} =~ m{^POST /v1/organizations/\{id\}/memberships} } @{ writes() };
    is(scalar @adds, 1, 'Clerk made the membership once');
    is(q1("SELECT role FROM clerk.organization_members WHERE organization_id = '$org' AND user_id = '$users[5]' AND deleted_at IS NULL"),
       'org:member', 'the synced table has it');

    # without the look-up, a second attempt would have made a second organization
    # (the mock applies a create twice where nothing is unique): proven by the mock's own test
}

# ---- Clerk's refusal fails the change, with its message ----
{
    my ($org, $member) = split /\|/, q1("SELECT organization_id || '|' || user_id FROM clerk.organization_members WHERE deleted_at IS NULL LIMIT 1");
    my $cid = q1(qq{SELECT clerk.add_organization_member('$org', '$member', 'org:member')});
    is(wait_change($cid), 'failed', 'a membership Clerk refuses (already a member) fails');
    is(q1("SELECT http_status || ' ' || error_code FROM clerk.changes WHERE id = $cid"),
       '400 already_a_member_in_organization', "with Clerk's status and code");
    like(q1("SELECT error_message FROM clerk.changes WHERE id = $cid"), qr/member/i, "and Clerk's message");
    is(q1("SELECT attempts FROM clerk.changes WHERE id = $cid"), 1, 'sent once, not retried');
    is(q1("SELECT clerk.retry_change($cid)"), 't', 'a failed change can be retried');
    is(wait_change($cid), 'failed', 'and fails again for the same reason');
    is(q1("SELECT clerk.retry_change($ids[0])"), 'f', 'a sent one cannot');

    # a 5xx is tried again, a 422 is not
    $mock->add_fault(kind => 'status', status => 503, path => '^/v1/users/[^/]+/ban', method => 'POST', count => 2);
    $cid = q1(qq{SELECT clerk.ban_user('$users[6]')});
    is(wait_change($cid), 'sent', 'a ban answered 503 twice is sent on the third attempt');
    is(q1("SELECT attempts FROM clerk.changes WHERE id = $cid"), 3, 'three attempts');
    is(q1("SELECT banned FROM clerk.users WHERE id = '$users[6]'"), 't', 'the synced row says banned');
    $mock->add_fault(kind => 'status', status => 422, code => 'form_param_value_invalid', path => '^/v1/users/[^/]+/unban', method => 'POST', count => 1);
    $cid = q1(qq{SELECT clerk.unban_user('$users[6]')});
    is(wait_change($cid), 'failed', 'a 422 fails at once');
    is(q1("SELECT error_code FROM clerk.changes WHERE id = $cid"), 'form_param_value_invalid', 'with its code');
}

# ---- cancel ----
{
    my $cid = q1(qq{BEGIN; SELECT clerk.lock_user('$users[7]'); COMMIT;});
    my $out = $node->safe_psql('postgres', qq{BEGIN; SELECT clerk.unlock_user('$users[7]') AS id \\gset
        SELECT clerk.cancel_change(:id); COMMIT;});
    is($out, 't', 'a pending change can be canceled in its own transaction');
    my $canceled = q1("SELECT max(id) FROM clerk.changes WHERE operation = 'unlock_user'");
    is(q1("SELECT status FROM clerk.changes WHERE id = $canceled"), 'canceled', 'it stays canceled');
    ok(within(20, "SELECT count(*) = 0 FROM clerk.changes WHERE status = 'pending'"), 'nothing pending is left');
    is(scalar(grep { $_->{route} =~ /unlock/ } @{ writes(id => $users[7]) }), 0, 'and the canceled one never reached Clerk');
    is(q1("SELECT clerk.cancel_change($canceled)"), 'f', 'cancel of a finished change says false');
}

# ---- checks when a change is queued: an error, nothing queued ----
{
    my $before = q1('SELECT count(*) FROM clerk.changes');
    my @cases = (
        [qq{SELECT clerk.ban_user('user_not_synced_$tag')}, '23503', qr/not among the synced/, 'an unknown user'],
        [qq{SELECT clerk.delete_organization('org_not_synced_$tag')}, '23503', qr/not among the synced/, 'an unknown organization'],
        [qq{SELECT clerk.add_organization_member('$orgs[0]', '$users[0]', 'org:nonexistent')}, '22023', qr/not among the synced roles/, 'a role that is not synced'],
        [qq{SELECT clerk.merge_user_metadata('$users[0]', public => jsonb_build_object('big', repeat('x', 9000)))}, '54000', qr/more than Clerk's limit/, 'metadata over 8 KB'],
        [qq{SELECT clerk.invite_to_organization('$orgs[0]', 'not an address', 'org:member')}, '22023', qr/is not an email address/, 'a malformed email'],
        [qq{SELECT clerk.create_invitation('a\@b')}, '22023', qr/is not an email address/, 'an address without a domain'],
        [qq{SELECT clerk.merge_user_metadata('$users[0]', public => '[1]')}, '22023', qr/must be a JSON object/, 'metadata that is no object'],
        [qq{SELECT clerk.update_user('$users[0]')}, '22023', qr/nothing to change/, 'an update of nothing'],
        [qq{SELECT clerk.ban_user('user/../x')}, '22023', qr/is not a Clerk id/, 'an id that is no Clerk id'],
        [qq{SELECT clerk.create_organization('Dup', slug => (SELECT slug FROM clerk.organizations WHERE deleted_at IS NULL LIMIT 1))}, '23505', qr/is taken/, 'a slug taken'],
        [qq{SELECT clerk.create_organization('Bad', slug => 'Not A Slug')}, '22023', qr/is not an organization slug/, 'a malformed slug'],
        [qq{BEGIN; SELECT clerk.ban_user('$users[0]'); PREPARE TRANSACTION 'w'}, '0A000', qr/cannot prepare a transaction that queued/, 'PREPARE TRANSACTION'],
        [qq{BEGIN READ ONLY; SELECT clerk.ban_user('$users[0]')}, '25006', qr/read-only transaction/, 'a read-only transaction'],
    );
    for my $c (@cases) {
        my ($state, $msg) = sql_error($node, $c->[0]);
        is($state, $c->[1], "$c->[3]: $c->[1]");
        like($msg, $c->[2], "$c->[3]: says why");
    }
    # metadata within the limit once merged into what is stored passes; past it after the merge fails
    is(q1('SELECT count(*) FROM clerk.changes'), $before, 'none of them queued anything');
    my $cid = q1(qq{SELECT clerk.merge_user_metadata('$users[8]', public => jsonb_build_object('a', repeat('x', 5000)))});
    is(wait_change($cid), 'sent', 'metadata of 5 KB is sent');
    my ($state) = sql_error($node, qq{SELECT clerk.merge_user_metadata('$users[8]', public => jsonb_build_object('b', repeat('y', 5000)))});
    is($state, '54000', 'another 5 KB merged into it would be too big: refused');
    ($state) = sql_error($node, qq{SELECT clerk.merge_user_metadata('$users[8]', public => jsonb_build_object('a', repeat('y', 5000)))});
    is($state, '', 'replacing the key (the merged result stays within the limit) is not');
}

# ---- read your writes: an older sync page or the echoing webhook does not undo it ----
{
    my $u = $users[9];
    my $old = mock_user($u);
    my $old_page = $JSON->encode({ data => [$old], total_count => 1 });
    my $cid = q1(qq{SELECT clerk.merge_user_metadata('$u', public => '{"tier":"gold"}')});
    is(wait_change($cid), 'sent', 'a change is sent');
    my $new = mock_user($u);
    q1("SELECT clerk_apply_page('users', " . sql_literal($old_page) . ")");
    is(q1("SELECT public_metadata ->> 'tier' FROM clerk.users WHERE id = '$u'"), 'gold',
       'a sync page fetched before the change does not undo it');
    my ($ret, $out) = $node->psql('postgres', webhook_sql($SECRET, 'user.updated', $old));
    is(q1("SELECT public_metadata ->> 'tier' FROM clerk.users WHERE id = '$u'"), 'gold',
       'nor does a webhook with the object as it was');
    ($ret, $out) = $node->psql('postgres', webhook_sql($SECRET, 'user.updated', $new));
    is(q1("SELECT public_metadata ->> 'tier' FROM clerk.users WHERE id = '$u'"), 'gold',
       'and the webhook Clerk sends for the change leaves it');
    is(q1("SELECT status FROM clerk_sync_changes()"), 'succeeded', 'an incremental sync afterwards');
    is(q1("SELECT public_metadata ->> 'tier' FROM clerk.users WHERE id = '$u'"), 'gold', 'agrees');
}

# ---- the other operations, each through its endpoint and into the synced tables ----
{
    my $org = $orgs[1];
    my ($member) = q1("SELECT user_id FROM clerk.organization_members WHERE organization_id = '$org' AND deleted_at IS NULL LIMIT 1");
    my %ops = (
        qq{clerk.update_user('$users[11]', first_name => 'Ada', last_name => 'Lovelace')} =>
            [qq{SELECT first_name || ' ' || last_name FROM clerk.users WHERE id = '$users[11]'}, 'Ada Lovelace'],
        qq{clerk.lock_user('$users[12]')} => [qq{SELECT locked FROM clerk.users WHERE id = '$users[12]'}, 't'],
        qq{clerk.update_organization('$org', name => 'Renamed $tag')} =>
            [qq{SELECT name FROM clerk.organizations WHERE id = '$org'}, "Renamed $tag"],
        qq{clerk.merge_organization_metadata('$org', public => '{"plan":"team"}')} =>
            [qq{SELECT public_metadata ->> 'plan' FROM clerk.organizations WHERE id = '$org'}, 'team'],
        qq{clerk.set_organization_member_role('$org', '$member', 'org:admin')} =>
            [qq{SELECT role FROM clerk.organization_members WHERE organization_id = '$org' AND user_id = '$member'}, 'org:admin'],
        qq{clerk.invite_to_organization('$org', 'invitee.$tag\@example.com', 'org:member')} =>
            [qq{SELECT status FROM clerk.organization_invitations WHERE organization_id = '$org' AND email_address = 'invitee.$tag\@example.com'}, 'pending'],
        qq{clerk.create_invitation('guest.$tag\@example.com')} =>
            [qq{SELECT status FROM clerk.invitations WHERE email_address = 'guest.$tag\@example.com'}, 'pending'],
        qq{clerk.delete_user('$users[13]')} =>
            [qq{SELECT deleted_at IS NOT NULL FROM clerk.users WHERE id = '$users[13]'}, 't'],
    );
    for my $call (sort keys %ops) {
        my $cid = q1("SELECT $call");
        is(wait_change($cid), 'sent', "$call is sent");
        is(q1($ops{$call}[0]), $ops{$call}[1], "$call shows in the synced table");
    }
    my $inv = q1("SELECT id FROM clerk.organization_invitations WHERE email_address = 'invitee.$tag\@example.com'");
    my $cid = q1(qq{SELECT clerk.revoke_organization_invitation('$org', '$inv')});
    is(wait_change($cid), 'sent', 'an organization invitation revoked');
    is(q1("SELECT status FROM clerk.organization_invitations WHERE id = '$inv'"), 'revoked', 'shows revoked');
    $inv = q1("SELECT id FROM clerk.invitations WHERE email_address = 'guest.$tag\@example.com'");
    $cid = q1(qq{SELECT clerk.revoke_invitation('$inv')});
    is(wait_change($cid), 'sent', 'an instance invitation revoked');
    is(q1("SELECT status FROM clerk.invitations WHERE id = '$inv'"), 'revoked', 'shows revoked');
    $cid = q1(qq{SELECT clerk.remove_organization_member('$org', '$member')});
    is(wait_change($cid), 'sent', 'a member removed');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.organization_members WHERE organization_id = '$org' AND user_id = '$member'"),
       't', 'the membership is soft-deleted');
    $cid = q1(qq{SELECT clerk.delete_organization('$orgs[2]')});
    is(wait_change($cid), 'sent', 'an organization deleted');
    is(q1("SELECT count(*) FROM clerk.organization_members WHERE organization_id = '$orgs[2]' AND deleted_at IS NULL"),
       0, 'its memberships go with it');
}

# ---- one rate budget: a 429 storm and a running sync never exceed clerk_sync.rate_limit together ----
{
    $node->safe_psql('postgres', q{ALTER SYSTEM SET clerk_sync.rate_limit = 20; SELECT pg_reload_conf()});
    sleep 0.5;
    $mock->clear_requests;
    # three 429s answer the metadata writes first
    $mock->add_fault(kind => 'status', status => 429, retry_after => 1, path => '/metadata$', method => 'PATCH', count => 3);
    my $t0 = time;
    # the sync starts without waiting; the changes go out while it lists
    my $run = q1('SELECT clerk_sync_all(wait => false)');
    my $list = q1("SELECT string_agg(clerk.merge_user_metadata(u, public => '{\"budget\":1}')::text, ',') FROM unnest(ARRAY['"
                  . join("','", @users[14 .. 33]) . "']) u");
    ok(within(90, "SELECT count(*) = 0 FROM clerk.changes WHERE id IN ($list) AND status = 'pending'"),
       'twenty changes are sent through a 429 storm, beside a sync');
    ok(within(90, "SELECT count(*) = 0 FROM clerk.sync_progress"), 'the sync ends');
    is(q1("SELECT count(*) FROM clerk.changes WHERE id IN ($list) AND status = 'sent'"), 20, 'all of them sent');
    my @starts = sort { $a <=> $b } map { $_->{time} } @{ $mock->requests };
    my $most = 0;
    for my $i (0 .. $#starts) {
        my $j = $i;
        $j++ while $j + 1 <= $#starts && $starts[$j + 1] < $starts[$i] + 10;
        $most = $j - $i + 1 if $j - $i + 1 > $most;
    }
    cmp_ok(scalar @starts, '>', 25, 'the sync and the changes made more requests than the budget of one window');
    cmp_ok($most, '<=', 20, "no 10 s window held more than clerk_sync.rate_limit (20) requests together ($most)");
    cmp_ok(time - $t0, '>=', 10, 'so they took more than one window');
    $node->safe_psql('postgres', q{ALTER SYSTEM RESET clerk_sync.rate_limit; SELECT pg_reload_conf()});
}

# ---- Clerk's limit of 10 metadata writes per 10 s per user is kept ----
{
    $mock->control(DELETE => 'writes');
    $mock->control(DELETE => 'stats');
    my @one = map { q1(qq{SELECT clerk.merge_user_metadata('$users[37]', public => '{"k":$_}')}) } 1 .. 13;
    ok(within(60, "SELECT count(*) = 0 FROM clerk.changes WHERE id IN (" . join(',', @one) . ") AND status = 'pending'"),
       'thirteen merges of one user are sent');
    my @t = sort { $a <=> $b } map { $_->{time} } @{ writes(id => $users[37]) };
    is(scalar @t, 13, 'each once');
    cmp_ok($t[10] - $t[0], '>=', 9.5, 'the eleventh went out only when the first left the 10 s window');
    is($mock->stats->{rate_limited} // 0, 0, 'so Clerk never answered 429');
}

# ---- finished changes are pruned after clerk_sync.change_retention ----
{
    $node->safe_psql('postgres', qq{ALTER SYSTEM SET clerk_sync.change_retention = '1d';
        UPDATE clerk.changes SET finished_at = now() - interval '2 days' WHERE id = $ids[0]});
    is(q1("SELECT count(*) FROM clerk.changes WHERE id = $ids[0]"), 1, 'a change finished two days ago is there');
}

# ---- a restart with pending changes resumes them, with no statement run ----
{
    $node->safe_psql('postgres', q{ALTER SYSTEM SET clerk_sync.api_url = 'http://127.0.0.1:1/v1'; SELECT pg_reload_conf()});
    sleep 0.5;
    my $cid = q1(qq{SELECT clerk.merge_user_metadata('$users[34]', public => '{"after":"restart"}')});
    ok(within(20, "SELECT attempts >= 1 FROM clerk.changes WHERE id = $cid"), 'a change is tried while Clerk is unreachable');
    is(q1("SELECT status || ' ' || in_doubt::text FROM clerk.changes WHERE id = $cid"), 'pending true',
       'and stays pending, in doubt');
    $node->safe_psql('postgres', q{ALTER SYSTEM RESET clerk_sync.api_url});
    $node->stop('immediate');
    $node->start;
    # nothing but the launcher sends it: only this observation runs after the start
    ok(within(60, "SELECT status = 'sent' FROM clerk.changes WHERE id = $cid"), 'after a crash and a start it is sent within a minute');
    is(q1("SELECT count(*) FROM clerk.changes WHERE id = $ids[0]"), 0, 'and the change older than clerk_sync.change_retention is pruned');
    cmp_ok(q1("SELECT count(*) FROM clerk.changes WHERE status = 'sent'"), '>', 10, 'newer ones are kept');
    is(mock_user($users[34])->{public_metadata}{after}, 'restart', 'Clerk has it');
}

# ---- privileges ----
{
    $node->safe_psql('postgres', q{
        CREATE ROLE app LOGIN;
        CREATE ROLE mallory LOGIN;
        GRANT CREATE ON SCHEMA public TO mallory;});
    my ($state) = sql_error($node, qq{SET ROLE app; SELECT clerk.ban_user('$users[35]')});
    is($state, '42501', 'install grants nothing: a role without a grant cannot queue');
    $node->safe_psql('postgres', q{
        GRANT USAGE ON SCHEMA clerk TO app;
        GRANT EXECUTE ON FUNCTION clerk.merge_user_metadata(text, jsonb, jsonb, jsonb), clerk.wait_for_change(bigint, interval) TO app;});
    my $cid = $node->safe_psql('postgres', qq{SET ROLE app; SELECT clerk.merge_user_metadata('$users[35]', public => '{"by":"app"}')});
    is(q1("SELECT queued_by FROM clerk.changes WHERE id = $cid"), 'app', 'with the grant it queues, recorded as queued by app');
    ($state) = sql_error($node, qq{SET ROLE app; SELECT clerk.ban_user('$users[35]')});
    is($state, '42501', 'the grant of one function allows that one only');
    ($state) = sql_error($node, q{SET ROLE app; SELECT count(*) FROM clerk.changes});
    is($state, '42501', 'nor may it read clerk.changes');
    is($node->safe_psql('postgres', qq{SET ROLE app; SELECT clerk.wait_for_change($cid, '20 s')}), 'sent',
       'it may wait for its change');
    # a role that may create objects on the caller's search_path puts an operator there: not used
    $node->safe_psql('postgres', q{
        SET ROLE mallory;
        CREATE FUNCTION public.text_eq_evil(text, text) RETURNS boolean LANGUAGE sql AS
            $$ SELECT pg_catalog.texteq($1, $2) AND pg_catalog.current_setting('is_superuser') = 'x' $$;
        CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq_evil);
        CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'evil' $$;});
    $cid = $node->safe_psql('postgres', qq{SET ROLE app; SET search_path = public, pg_catalog;
        SELECT clerk.merge_user_metadata('$users[35]', public => '{"nested":{"a":1}}')});
    like($cid, qr/^\d+$/, "a caller's search_path with another's operators and functions first: still queued");
    is(wait_change($cid), 'sent', 'and sent');
    is(q1("SELECT public_metadata -> 'nested' ->> 'a' FROM clerk.users WHERE id = '$users[35]'"), '1',
       'merged with the built-ins');
}

# ---- clerk_status() counts the changes ----
like(q1(q{SELECT clerk_status() -> 'changes' ->> 'sent'}), qr/^[1-9]\d*$/, 'clerk_status() counts the sent changes');
is(q1(q{SELECT clerk_status() -> 'changes' ->> 'pending'}), '0', 'and the pending ones');

# ---- at once after commit, and no polling: pg_stat_statements sees no query while the worker waits ----
SKIP: {
    my $pkglib = `pg_config --pkglibdir`;
    chomp $pkglib;
    skip 'pg_stat_statements is not installed for this PostgreSQL', 4 unless -e "$pkglib/pg_stat_statements.so";
    my $pss = clerk_node('writes_pss', $mock, preload => 'clerk_sync, pg_cron, pg_stat_statements',
                         conf => "pg_stat_statements.track = all");
    $pss->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
    is($pss->safe_psql('postgres', 'SELECT status FROM clerk_sync_all()'), 'succeeded', 'a second server synced');
    my $t0 = time;
    my $cid = $pss->safe_psql('postgres', qq{SELECT clerk.merge_user_metadata('$users[38]', public => '{"fast":1}')});
    is($pss->safe_psql('postgres', "SELECT clerk.wait_for_change($cid, '20 s')"), 'sent', 'a change is sent');
    cmp_ok(time - $t0, '<', 3, 'within moments of its commit');
    $pss->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
    sleep 5;    # the worker waits (for 30 s) on its latch
    is($pss->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_statements WHERE query ILIKE '%clerk.changes%' AND query NOT ILIKE '%pg_stat_statements%'}),
       '0', 'while it waits, the worker runs no query');
    $pss->stop;
    $ClerkTest::node = $node;    # q1() talks to the first server again
}

# ---- a standby answers 25006; after a failover the new primary sends what the old one committed ----
{
    $node->stop;
    $node->backup_fs_cold('wb');
    $node->start;
    my $standby = PostgreSQL::Test::Cluster->new('wb_standby');
    $standby->init_from_backup($node, 'wb', has_streaming => 1);
    $standby->start;
    my ($state, $msg) = sql_error($standby, qq{SELECT clerk.ban_user('$users[36]')});
    is($state, '25006', 'a standby refuses to queue (25006)');
    like($msg, qr/on a standby/, 'saying why');
    # the old primary cannot reach Clerk: the change is committed, replicated, not sent
    $node->safe_psql('postgres', q{ALTER SYSTEM SET clerk_sync.api_url = 'http://127.0.0.1:1/v1'; SELECT pg_reload_conf()});
    sleep 0.5;
    my $cid = q1(qq{SELECT clerk.merge_user_metadata('$users[36]', public => '{"failover":true}')});
    $node->wait_for_catchup($standby, 'replay');
    is($standby->safe_psql('postgres', "SELECT status FROM clerk.changes WHERE id = $cid"), 'pending',
       'the standby has the pending change');
    $node->stop('immediate');
    $standby->promote;
    ok(within(60, "SELECT status = 'sent' FROM clerk.changes WHERE id = $cid", $standby),
       'the promoted standby sends it within a minute');
    is(mock_user($users[36])->{public_metadata}{failover}, JSON::PP::true, 'Clerk has it');
    $standby->stop;
}

done_testing();
