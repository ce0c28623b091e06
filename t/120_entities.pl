# More of Clerk against a real server and the mock Clerk API: organization
# invitations, instance invitations, organization domains, roles and
# permissions in the full and the incremental sync (typed columns, changes,
# deletions with and without a request for one object), an endpoint the
# instance's plan does not have, clerk_sync.entities, the cascades of a
# deleted organization or user (in the sync and in the webhooks), the new
# webhook events with their ordering rule, and the login history
# (clerk_sync_sessions(), session events, clerk_sync.session_retention).
#
# Secrets are made up when the test runs and are obviously fake.

use strict;
use warnings;

use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $tag = ClerkMock::random_hex(6);
my $SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_entities_$tag", '');

my $mock = ClerkMock->new(users => 30, organizations => 4, memberships => 30, seed => 7,
    extra_args => ['--organization-invitations', 12, '--organization-domains', 4, '--invitations', 9,
                   '--sessions', 40, '--custom-roles', 2, '--custom-permissions', 3]);
my $node = clerk_node('entities', $mock, webhook_secret => $SECRET,
    conf => "clerk_sync.max_delete_fraction = 0.9");

my %TABLE = (organization_invitations => 'organization_invitations', invitations => 'invitations',
             organization_domains => 'organization_domains', organization_roles => 'roles',
             organization_permissions => 'permissions');

sub live { my ($t) = @_; return q1("SELECT count(*) FROM clerk.$t WHERE deleted_at IS NULL") }

# every object of every listing, as the mock has it (invitations: revoked ones too)
sub mock_ids {
    my ($kind) = @_;
    my @paths = ("/$kind?limit=500");
    @paths = ('/invitations?paginated=true&limit=500', '/invitations?paginated=true&limit=500&status=revoked')
        if $kind eq 'invitations';
    my @ids;
    for my $p (@paths) {
        my $res = $mock->get($p);
        die "GET $p: $res->{status}" unless $res->{success};
        push @ids, map { $_->{id} } @{ $res->{json}{data} };
    }
    my @sorted = sort @ids;
    return @sorted;
}
sub mock_count { my @ids = mock_ids(@_); return scalar @ids }

sub stored_ids {
    my ($t) = @_;
    return split /\n/, q1("SELECT id FROM clerk.$t WHERE deleted_at IS NULL ORDER BY id");
}

# ---- a full sync lists every entity ----

# one invitation revoked: Clerk lists it only when asked for revoked ones
my $revoked = $mock->get('/invitations?paginated=true&limit=1&status=pending')->{json}{data}[0];
$mock->control(PATCH => "invitations/$revoked->{id}", { status => 'revoked', revoked => JSON::PP::true });

is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'full sync succeeds');
for my $kind (sort keys %TABLE) {
    my @want = mock_ids($kind);
    ok(@want > 0, "the mock has $kind");
    is_deeply([stored_ids($TABLE{$kind})], [sort @want], "every one of $kind is stored, nothing else");
}
is(q1("SELECT status FROM clerk.invitations WHERE id = '$revoked->{id}'"), 'revoked',
   'revoked instance invitations are listed too (Clerk leaves them out without a status)');
is(q1(q{SELECT stats -> 'roles' ->> 'fetched' FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}),
   mock_count('organization_roles'), 'stats count the roles');

# side by side: the first pages of the optional listings are in flight
# together, as many as the HTTP client's window allows (each answer held
# 400 ms: listed one after the other, no two would ever overlap)
{
    my $rx = '^/v1/(organization_invitations|invitations|organization_domains|organization_roles|organization_permissions)$';
    (my $target = $rx) =~ s/\$$/\\?/;    # a fault matches the path with its query
    my $fault = $mock->add_fault(kind => 'latency', latency_ms => 400, path => $target, count => -1);
    $mock->clear_requests;
    is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'full sync with slow optional endpoints succeeds');
    $mock->control(DELETE => "faults/$fault");
    my @first = grep { $_->{path} =~ /$rx/ && ($_->{query} // '') =~ /(^|&)offset=0(&|$)/ }
        @{ $mock->requests('/v1/') };
    is(scalar @first, 6, 'six first pages (instance invitations twice)');
    my $most = 0;
    for my $r (@first) {
        my $n = grep { $_->{time} <= $r->{time} && $r->{time} < $_->{time} + $_->{duration_ms} / 1000 } @first;
        $most = $n if $n > $most;
    }
    cmp_ok($most, '>=', 3, "the optional listings' first pages overlap ($most in flight at once)");
}

# typed columns hold what the objects say
{
    my $inv = $mock->get('/organization_invitations?limit=1')->{json}{data}[0];
    is(q1("SELECT organization_id || '|' || email_address || '|' || status || '|' || role FROM clerk.organization_invitations WHERE id = '$inv->{id}'"),
       "$inv->{organization_id}|$inv->{email_address}|$inv->{status}|$inv->{role}", 'an organization invitation\'s columns');
    my $role = $mock->get('/organization_roles?limit=1&order_by=key')->{json}{data}[0];
    is(q1("SELECT array_to_string(permissions, ',') FROM clerk.roles WHERE id = '$role->{id}'"),
       join(',', map { $_->{key} } @{ $role->{permissions} }), 'a role\'s permissions are their keys');
    my $dom = $mock->get('/organization_domains?limit=1')->{json}{data}[0];
    is(q1("SELECT organization_id || '|' || name || '|' || coalesce(verification_status, '-') FROM clerk.organization_domains WHERE id = '$dom->{id}'"),
       "$dom->{organization_id}|$dom->{name}|" . ($dom->{affiliation_verification} ? $dom->{affiliation_verification}{status} : '-'),
       'a domain\'s columns');
}

# ---- changes between runs: the incremental sync lists these in full ----

my $inv_acc = (grep { $_->{status} eq 'pending' } @{ $mock->get('/organization_invitations?limit=500')->{json}{data} })[0];
$mock->control(PATCH => "organization_invitations/$inv_acc->{id}", { status => 'revoked' });
my $new_dom = $mock->control(POST => 'organization_domains',
    { organization_id => $inv_acc->{organization_id}, name => "new-$tag.example.com" });
is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'incremental sync succeeds');
is(q1("SELECT status FROM clerk.organization_invitations WHERE id = '$inv_acc->{id}'"), 'revoked',
   'an invitation revoked since is revoked after the incremental sync');
is(q1("SELECT name FROM clerk.organization_domains WHERE id = '$new_dom->{id}'"), "new-$tag.example.com",
   'a domain created since is stored');

# ---- deletions: confirmed by a 404 where Clerk has a GET of one object, else the listing's word ----

my $role_gone = (grep { $_->{key} !~ /^org:(admin|member)$/ } @{ $mock->get('/organization_roles?limit=500')->{json}{data} })[0];
$mock->control(DELETE => "organization_roles/$role_gone->{id}");
my $inv_gone = $mock->get('/invitations?paginated=true&limit=1')->{json}{data}[0];
$mock->control(DELETE => "invitations/$inv_gone->{id}");
$mock->clear_requests;
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'full sync after deletions succeeds');
ok(q1("SELECT deleted_at IS NOT NULL FROM clerk.roles WHERE id = '$role_gone->{id}'") eq 't',
   'a deleted role is soft-deleted');
ok(scalar(grep { $_->{path} =~ m{/organization_roles/\Q$role_gone->{id}\E$} } @{ $mock->requests }) == 1,
   'after Clerk confirmed it gone (one GET of the role)');
ok(q1("SELECT deleted_at IS NOT NULL FROM clerk.invitations WHERE id = '$inv_gone->{id}'") eq 't',
   'a deleted instance invitation is soft-deleted (no request for one exists: the complete listing says so)');
is(q1(q{SELECT stats -> 'roles' ->> 'deleted' FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}), '1',
   'stats count the deletion');

# ---- clerk_sync.max_delete_fraction guards each small table on its own ----

my @perms = grep { $_->{type} ne 'system' } @{ $mock->get('/organization_permissions?limit=500')->{json}{data} };
ok(@perms >= 2, 'the mock has custom permissions');
$mock->control(DELETE => "organization_permissions/$_->{id}") for @perms[0 .. 1];
my $user_gone = q1(q{SELECT id FROM clerk.users u WHERE deleted_at IS NULL AND NOT EXISTS
                      (SELECT 1 FROM clerk.organization_members m WHERE m.user_id = u.id) ORDER BY id DESC LIMIT 1});
$mock->control(DELETE => "users/$user_gone");
is(q1(q{SET clerk_sync.max_delete_fraction = 0.1; SELECT status FROM clerk_sync_all()}), 'succeeded',
   'a full sync with 2 permissions of few gone, under max_delete_fraction 0.1');
is(q1("SELECT count(*) FROM clerk.permissions WHERE deleted_at IS NULL AND id IN ('$perms[0]{id}', '$perms[1]{id}')"), '2',
   'the permissions are not deleted: more than the fraction of their table');
like(last_run(q{stats ->> 'deletion'}), qr/^done, except: 2 of \d+ permissions are missing/, 'stats.deletion says so');
is(q1("SELECT deleted_at IS NOT NULL FROM clerk.users WHERE id = '$user_gone'"), 't',
   'and the rest of the sweep still runs (a deleted user is soft-deleted)');
is(q1(q{SELECT status FROM clerk_sync_all()}), 'succeeded', 'with the server\'s fraction (0.9) again');
is(q1("SELECT count(*) FROM clerk.permissions WHERE deleted_at IS NOT NULL AND id IN ('$perms[0]{id}', '$perms[1]{id}')"), '2',
   'they are deleted');

# ---- an endpoint the instance's plan does not have ----

$mock->configure(endpoint_errors => { organization_domains => 403 });
my $domains_before = live('organization_domains');
{
    my ($stdout, $stderr);
    $node->psql('postgres', 'SELECT status FROM clerk_sync_all()', stdout => \$stdout, stderr => \$stderr);
    is($stdout, 'succeeded', 'a full sync with domains answering 403 succeeds');
    like($stderr, qr/NOTICE:.*organization_domains: skipped/, 'with a NOTICE that says what was skipped');
}
like(last_run(q{stats -> 'skipped' ->> 'organization_domains'}), qr/403 or 404/, 'stats.skipped says why');
is(live('organization_domains'), $domains_before, 'and the domains stored are left as they are (no sweep)');
$mock->configure(endpoint_errors => { organization_domains => 404 });
is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'a 404 is skipped the same way');
$mock->configure(endpoint_errors => {});

# ---- clerk_sync.entities ----

$mock->clear_requests;
is(q1(q{SET clerk_sync.entities = 'roles'; SELECT status FROM clerk_sync_all()}), 'succeeded',
   'a run with clerk_sync.entities = roles succeeds');
my @asked = map { $_->{path} } @{ $mock->requests };
ok((grep { m{^/v1/organization_roles} } @asked) && !(grep { m{^/v1/(organization_invitations|invitations|organization_domains|organization_permissions)} } @asked),
   'it lists roles and none of the other optional entities');
is(last_run(q{stats ? 'permissions'}), 'f', 'stats have no permissions entry');
is(live('permissions'), mock_count('organization_permissions'), 'and nothing is swept from what was not listed');
my ($state, $msg) = sql_error($node, q{SET clerk_sync.entities = 'roles, widgets'});
is($state, '22023', 'an unknown entity in clerk_sync.entities is an error');
like($msg, qr/invalid value for parameter "clerk_sync.entities"/, 'that names the setting');
is(q1(q{SET clerk_sync.entities = 'none'; SELECT status FROM clerk_sync_changes()}), 'succeeded', 'none lists no optional entity');

# ---- login history: the backfill ----

my @users = split /\n/, q1('SELECT id FROM clerk.users WHERE deleted_at IS NULL ORDER BY id');
my %mock_sessions;
for my $u (@users) {
    my $res = $mock->get("/sessions?user_id=$u&paginated=true&limit=500");
    $mock_sessions{$u} = [map { $_->{id} } @{ $res->{json}{data} }];
}
my @with = grep { @{ $mock_sessions{$_} } } @users;
ok(@with >= 2, 'the mock has users with sessions');
my $pick = join(',', map { "'$_'" } @with[0 .. 1], 'user_unknown_to_clerk');
# the mock's sessions are from long ago: kept while this part looks at them
my $res = decode_json(q1("SET clerk_sync.session_retention = 0; SELECT clerk_sync_sessions(ARRAY[$pick])"));
is($res->{users}, 3, 'clerk_sync_sessions() asks about the users named');
is($res->{fetched}, @{ $mock_sessions{ $with[0] } } + @{ $mock_sessions{ $with[1] } }, 'and fetches their sessions');
is_deeply([split /\n/, q1("SELECT id FROM clerk.sessions WHERE user_id IN ($pick) ORDER BY id")],
          [sort(@{ $mock_sessions{ $with[0] } }, @{ $mock_sessions{ $with[1] } })], 'which are stored');
is(q1("SELECT count(*) FROM clerk.sessions WHERE status <> 'active' AND status <> 'pending' AND ended_at IS NULL"), '0',
   'a session that is no longer active has ended_at');
is(q1(q{SELECT count(*) FROM clerk.audit_logs WHERE action = 'sync.sessions'}), '1', 'the backfill is audited');
$res = decode_json(q1('SET clerk_sync.session_retention = 0; SELECT clerk_sync_sessions()'));
is($res->{users}, 0, 'without names: the users active since the last backfill (none)');
q1(q{UPDATE clerk.users SET last_active_at = now() + interval '1 minute' WHERE id = } . "'$with[2]'") if @with > 2;
$res = decode_json(q1('SET clerk_sync.session_retention = 0; SELECT clerk_sync_sessions()'));
is($res->{users}, @with > 2 ? 1 : 0, 'a user active since is asked about');
like(q1(q{SELECT findings::text FROM clerk_database_summary() WHERE entity = 'sessions'}), qr/"active"/,
     'clerk_database_summary() reports sessions');

# ---- cascades, in the sync ----

my $victim_org = q1(q{SELECT organization_id FROM clerk.organization_invitations WHERE deleted_at IS NULL
                      GROUP BY 1 ORDER BY count(*) DESC LIMIT 1});
my $victim_user = $with[0];
$mock->control(DELETE => "organizations/$victim_org");
$mock->control(DELETE => "users/$victim_user");
is(q1(q{RESET clerk_sync.entities; SELECT status FROM clerk_sync_all()}), 'succeeded', 'full sync after an organization and a user were deleted');
is(q1("SELECT deleted_at IS NOT NULL FROM clerk.organizations WHERE id = '$victim_org'"), 't', 'the organization is soft-deleted');
for my $t (qw(organization_members organization_invitations organization_domains)) {
    is(q1("SELECT count(*) FROM clerk.$t WHERE organization_id = '$victim_org' AND deleted_at IS NULL"), '0',
       "its $t are soft-deleted with it");
}
ok(q1("SELECT count(*) FROM clerk.sessions WHERE user_id = '$victim_user'") > 0, 'the deleted user had sessions stored');
is(q1("SELECT count(*) FROM clerk.sessions WHERE user_id = '$victim_user' AND deleted_at IS NULL"), '0',
   'the deleted user\'s sessions are soft-deleted with the user');
is(q1("SELECT count(*) FROM clerk.organization_members WHERE user_id = '$victim_user' AND deleted_at IS NULL"), '0',
   'and the user\'s memberships');

# ---- webhooks: every new event type, the ordering rule, cascades ----

sub hook { my ($type, $data, %o) = @_; return q1(webhook_sql($SECRET, $type, $data, %o)) }
my $t0 = 1_800_000_000_000;
my $org = q1(q{SELECT id FROM clerk.organizations WHERE deleted_at IS NULL ORDER BY id LIMIT 1});
my %inv = (object => 'organization_invitation', id => "orginv_hook_$tag", email_address => "hook-$tag\@example.com",
           role => 'org:member', role_name => 'Member', organization_id => $org, status => 'pending',
           public_metadata => {}, private_metadata => {}, url => undef, expires_at => undef, inviter_id => undef,
           created_at => $t0, updated_at => $t0);
is(hook('organizationInvitation.created', \%inv), 'organizationInvitation.created', 'organizationInvitation.created is handled');
is(hook('organizationInvitation.accepted', { %inv, status => 'accepted', updated_at => $t0 + 2000 }),
   'organizationInvitation.accepted', 'organizationInvitation.accepted is handled');
hook('organizationInvitation.revoked', { %inv, status => 'revoked', updated_at => $t0 + 1000 });
is(q1("SELECT status FROM clerk.organization_invitations WHERE id = '$inv{id}'"), 'accepted',
   'an older event (revoked, delivered late) does not overwrite a newer one');

my %dom = (object => 'organization_domain', id => "orgdmn_hook_$tag", organization_id => $org, name => "hook-$tag.test",
           enrollment_mode => 'manual_invitation', affiliation_verification => { status => 'unverified' },
           created_at => $t0, updated_at => $t0);
hook('organizationDomain.created', \%dom);
hook('organizationDomain.updated', { %dom, affiliation_verification => { status => 'verified' }, updated_at => $t0 + 1000 });
is(q1("SELECT verification_status FROM clerk.organization_domains WHERE id = '$dom{id}'"), 'verified',
   'organizationDomain.created and .updated');
hook('organizationDomain.deleted', { object => 'organization_domain', id => $dom{id}, deleted => JSON::PP::true });
is(q1("SELECT deleted_at IS NOT NULL FROM clerk.organization_domains WHERE id = '$dom{id}'"), 't', 'organizationDomain.deleted');

for my $kind (qw(role permission)) {
    my $table = $kind eq 'role' ? 'roles' : 'permissions';
    my %o = (object => $kind, id => "${kind}_hook_$tag", key => "org:hook_$tag", name => 'Hook', description => 'from a webhook',
             ($kind eq 'role' ? (permissions => [], is_creator_eligible => JSON::PP::false) : (type => 'user')),
             created_at => $t0, updated_at => $t0);
    hook("$kind.created", \%o);
    hook("$kind.updated", { %o, name => 'Hook renamed', updated_at => $t0 + 1000 });
    is(q1("SELECT name FROM clerk.$table WHERE id = '$o{id}'"), 'Hook renamed', "$kind.created and .updated");
    hook("$kind.deleted", { object => $kind, id => $o{id}, deleted => JSON::PP::true });
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.$table WHERE id = '$o{id}'"), 't', "$kind.deleted");
}

my $hook_user = q1(q{SELECT id FROM clerk.users WHERE deleted_at IS NULL ORDER BY id DESC LIMIT 1});
my %sess = (object => 'session', id => "sess_hook_$tag", user_id => $hook_user, client_id => "client_hook_$tag",
            status => 'pending', last_active_at => $t0, expire_at => $t0 + 86_400_000, abandon_at => $t0 + 864_000_000,
            created_at => $t0, updated_at => $t0);
hook('session.pending', \%sess);
is(q1("SELECT status || '|' || last_event FROM clerk.sessions WHERE id = '$sess{id}'"), 'pending|session.pending', 'session.pending');
hook('session.created', { %sess, status => 'active', updated_at => $t0 + 1000 });
is(q1("SELECT status || '|' || last_event FROM clerk.sessions WHERE id = '$sess{id}'"), 'active|session.created', 'session.created');
for my $end (qw(ended removed revoked)) {
    my %s = (%sess, id => "sess_hook_${end}_$tag", status => 'active');
    hook('session.created', \%s);
    hook("session.$end", { %s, status => $end, updated_at => $t0 + 5000 });
    is(q1("SELECT status || '|' || last_event || '|' || (ended_at = to_timestamp(($t0 + 5000) / 1000.0)) FROM clerk.sessions WHERE id = '$s{id}'"),
       "$end|session.$end|true", "session.$end: status, last event and ended_at");
}
hook('session.created', { %sess, status => 'active', updated_at => $t0 + 500 });
is(q1("SELECT last_event FROM clerk.sessions WHERE id = '$sess{id}'"), 'session.created', 'a late older session event changes nothing');

# the cascades of the webhooks are the sync's
my $cascade_org = q1(q{SELECT organization_id FROM clerk.organization_invitations WHERE deleted_at IS NULL
                       GROUP BY 1 ORDER BY count(*) DESC LIMIT 1});
my $n_inv = q1("SELECT count(*) FROM clerk.organization_invitations WHERE organization_id = '$cascade_org' AND deleted_at IS NULL");
hook('organization.deleted', { object => 'organization', id => $cascade_org, deleted => JSON::PP::true });
for my $t (qw(organization_members organization_invitations organization_domains)) {
    is(q1("SELECT count(*) FROM clerk.$t WHERE organization_id = '$cascade_org' AND deleted_at IS NULL"), '0',
       "organization.deleted soft-deletes its $t");
}
like(q1(q{SELECT details::text FROM clerk.audit_logs WHERE action = 'webhook.organization.deleted' ORDER BY id DESC LIMIT 1}),
     qr/"organization_invitations_deleted": $n_inv\b/, 'the audit row says how many went with it');
hook('user.deleted', { object => 'user', id => $hook_user, deleted => JSON::PP::true });
is(q1("SELECT count(*) FROM clerk.sessions WHERE user_id = '$hook_user' AND deleted_at IS NULL"), '0',
   'user.deleted soft-deletes the user\'s sessions');

# ---- retention ----

my %old = (%sess, id => "sess_hook_old_$tag", status => 'ended', created_at => 1_600_000_000_000, updated_at => 1_600_000_100_000,
           last_active_at => 1_600_000_100_000);
q1(q{ALTER SYSTEM SET clerk_sync.session_retention = '30d'; SELECT pg_reload_conf()});
$node->poll_query_until('postgres', q{SELECT current_setting('clerk_sync.session_retention') = '30d'})
  or die 'the setting did not take';
q1(q{SELECT clerk_apply_page('sessions', '{"id": "sess_apply_old", "object": "session", "status": "ended", "user_id": "user_x", "created_at": 1600000000000, "updated_at": 1600000100000}')});
is(q1(q{SELECT count(*) FROM clerk.sessions WHERE id = 'sess_apply_old'}), '1', 'a session that ended long ago is stored');
hook('session.ended', \%old);
is(q1(q{SELECT count(*) FROM clerk.sessions WHERE coalesce(ended_at, greatest(last_active_at, updated_at, created_at, synced_at)) < now() - interval '30 days'}), '0',
   'a session event prunes the sessions older than clerk_sync.session_retention');
ok(q1(q{SELECT count(*) FROM clerk.sessions}) > 0, 'and keeps the recent ones');

done_testing();
