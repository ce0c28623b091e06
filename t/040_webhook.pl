# Clerk webhooks against a real server and the mock Clerk API: a webhook
# and a sync of the same object converge to the same row, in both orders;
# 1,000 deliveries from several connections at once (duplicates, same-object
# updates out of order, deletions racing late updates) end in the right
# state without an error or a lost event; test/send_webhook.py signs as
# Svix does; and the secret can be stored encrypted instead of in a setting.
#
# Secrets are made up when the test runs and are obviously fake.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use List::Util qw(shuffle);
use MIME::Base64 qw(encode_base64 decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $JSON = JSON::PP->new->utf8->canonical;
my $SEND_WEBHOOK = dirname(abs_path(__FILE__)) . '/../test/send_webhook.py';
my $PYTHON = $ENV{PYTHON} // '/usr/bin/python3';

my $tag = ClerkMock::random_hex(6);
my $SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_tap_$tag", '');
my $STORED_SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_stored_$tag", '');

# the credentials vault's root key, for the stored-secret test (made up here)
$ENV{CREDENTIALS_ENCRYPTION_KEY} = ClerkMock::random_hex(32);

my $mock = ClerkMock->new(users => 60, organizations => 5, memberships => 40, seed => 11);
my $node = clerk_node('webhook', $mock, webhook_secret => $SECRET, conf => join("\n",
    "clerk_sync.max_delete_fraction = 0.5",
    "max_connections = 40"));


# ---- signing, as Svix does ----


my $msg_seq = 0;
sub msg_id { return sprintf('msg_tap_%s_%06d', $tag, ++$msg_seq) }

# The body of a Clerk event (bytes), as Clerk sends it.
sub event_body {
    my ($type, $data, $ts_ms) = @_;
    return $JSON->encode({ data => $data, object => 'event', type => $type,
                           timestamp => $ts_ms // int(time() * 1000), instance_id => 'ins_test_fake' });
}


# A signed delivery: { body, id, ts, sig }.
sub delivery {
    my ($type, $data, %opt) = @_;
    my $body = $opt{body} // event_body($type, $data, $opt{event_ms});
    my $id = $opt{id} // msg_id();
    my $ts = $opt{ts} // time();
    return { body => $body, id => $id, ts => "$ts", sig => svix_sign($opt{secret} // $SECRET, $id, $ts, $body) };
}

sub call_sql {
    my ($d) = @_;
    return sprintf('SELECT clerk_handle_webhook(%s, %s, %s, %s);',
                   sql_literal($d->{body}), sql_literal($d->{id}), sql_literal($d->{ts}), sql_literal($d->{sig}));
}

# Apply deliveries in one session, in order; returns the results.
sub deliver {
    my @d = @_;
    return split /\n/, q1(join("\n", map { call_sql($_) } @d));
}

sub listing {
    my ($path) = @_;
    my $res = $mock->get($path);
    die "GET $path: $res->{status}" unless $res->{success};
    return ref $res->{json} eq 'ARRAY' ? @{ $res->{json} } : @{ $res->{json}{data} };
}

# The objects exactly as the sync lists them.
sub all_users { listing('/users?limit=500&order_by=created_at') }
sub all_orgs { listing('/organizations?include_members_count=true&limit=500&order_by=created_at') }
sub all_mems { listing('/organization_memberships?limit=500&order_by=created_at') }

# Every stored row but synced_at, as one fingerprint.
sub fingerprint {
    return q1(q{
        SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM (
            SELECT to_jsonb(u) - 'synced_at' AS r FROM clerk.users u
            UNION ALL SELECT to_jsonb(o) - 'synced_at' FROM clerk.organizations o
            UNION ALL SELECT to_jsonb(m) - 'synced_at' FROM clerk.organization_members m) s});
}

# ==== send_webhook.py signs exactly as Svix does ====
{
    my ($out, $err);
    my $ok = IPC::Run::run([ $PYTHON, $SEND_WEBHOOK, '--id', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                             '--timestamp', '1614265330', '--body', '{"test": 2432232314}', '--signature-only' ],
                           '<', \undef, '>', \$out, '2>', \$err,
                           init => sub { $ENV{CLERK_WEBHOOK_SECRET} = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' });
    chomp $out;
    is($out, 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=', 'send_webhook.py reproduces the official Svix vector');
    is(svix_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'),
       $out, 'and so does the signing in this test');
}

# ==== a sync, then the same objects as webhooks: the same rows ====
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'first sync succeeds');
my $synced = fingerprint();
my @users = all_users();
my @orgs = all_orgs();
my @mems = all_mems();
is(q1('SELECT count(*) FROM clerk.users') . '/' . q1('SELECT count(*) FROM clerk.organizations') . '/'
   . q1('SELECT count(*) FROM clerk.organization_members'),
   scalar(@users) . '/' . scalar(@orgs) . '/' . scalar(@mems), 'the sync stored every object the mock lists');

q1('TRUNCATE clerk.users, clerk.organizations, clerk.organization_members');
my @results = deliver((map { delivery('user.created', $_) } @users),
                      (map { delivery('organization.created', $_) } @orgs),
                      (map { delivery('organizationMembership.created', $_) } @mems));
is(scalar(grep { !/^(user|organization|organizationMembership)\.created$/ } @results), 0,
   'every *.created webhook is applied (' . scalar(@results) . ')');
is(fingerprint(), $synced, 'the rows the webhooks wrote equal the rows the sync wrote, column for column');

# ==== webhooks first, then a sync: the sync finds nothing to change ====
# Changes in Clerk (the mock), each followed by the webhook Clerk would send.
# A rename also shows in the memberships that embed the user or the
# organization, and a deletion changes members_count, so those objects are
# delivered again too.
my ($u, $u2, $o, $m) = ($users[0]{id}, $users[1]{id}, $orgs[0]{id}, $mems[0]{id});
my %old_user = %{ $users[0] };
my $u2_mems = q1("SELECT count(*) FROM clerk.organization_members WHERE user_id = '$u2' AND deleted_at IS NULL");
$mock->control(PATCH => "users/$u", { first_name => 'ViaWebhook', public_metadata => { tier => 'gold' } });
$mock->control(PATCH => "organizations/$o", { name => 'Renamed Via Webhook' });
$mock->control(PATCH => "organization_memberships/$m", { role => 'org:admin' });
$mock->control(DELETE => "users/$u2");
my $new = $mock->control(POST => 'users', { first_name => 'Brand', last_name => 'New' });
my ($nu) = grep { $_->{id} eq $new->{id} } all_users();
my ($pu) = grep { $_->{id} eq $u } all_users();
@results = deliver(delivery('user.updated', $pu), delivery('user.created', $nu),
                   delivery('user.deleted', { id => $u2, object => 'user', deleted => JSON::PP::true }),
                   (map { delivery('organization.updated', $_) } all_orgs()),
                   (map { delivery('organizationMembership.updated', $_) } all_mems()),
                   delivery('user.updated', \%old_user));
is(join(',', @results[0 .. 2]), 'user.updated,user.created,user.deleted', 'the changes arrive as webhooks');
is(q1("SELECT first_name || ' ' || (public_metadata ->> 'tier') FROM clerk.users WHERE id = '$u'"), 'ViaWebhook gold',
   'an older version delivered late does not undo the newer one');
is(q1(q{SELECT outcome FROM clerk.webhook_deliveries ORDER BY received_at DESC LIMIT 1}), 'stale',
   'and is recorded as stale');
is(q1("SELECT name FROM clerk.organizations WHERE id = '$o'") . ' ' . q1("SELECT role FROM clerk.organization_members WHERE id = '$m'"),
   'Renamed Via Webhook org:admin', 'organization.updated and organizationMembership.updated are applied');
is(q1("SELECT deleted_at IS NOT NULL FROM clerk.users WHERE id = '$u2'"), 't', 'user.deleted (only an id) soft-deletes the user');
is(q1("SELECT count(*) FROM clerk.organization_members WHERE user_id = '$u2' AND deleted_at IS NULL"), '0',
   "and the user's memberships ($u2_mems), as Clerk does");

my $before = row_versions($node);
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync after the webhooks succeeds');
is(row_versions($node), $before, 'and writes no row: every webhook row is what the sync would have written');
is(q1(q{SELECT (stats -> 'users' ->> 'inserted') || '/' || (stats -> 'users' ->> 'updated') || '/'
        || (stats -> 'organizations' ->> 'updated') || '/' || (stats -> 'memberships' ->> 'updated')
        FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}), '0/0/0/0', 'the sync reports nothing to insert or update');

# send_webhook.py end to end: a psql statement for a user.updated event
{
    $mock->control(PATCH => "users/$u", { last_name => 'FromTheTool' });
    my ($pu2) = grep { $_->{id} eq $u } all_users();
    my ($sql, $err);
    IPC::Run::run([ $PYTHON, $SEND_WEBHOOK, '--type', 'user.updated', '--sql', '-' ],
                  '<', \$JSON->encode($pu2), '>', \$sql, '2>', \$err,
                  init => sub { $ENV{CLERK_WEBHOOK_SECRET} = $SECRET })
      or die "send_webhook.py failed: $err";
    is(q1($sql), 'user.updated', 'a delivery made by send_webhook.py is accepted');
    is(q1("SELECT last_name FROM clerk.users WHERE id = '$u'"), 'FromTheTool', 'and applied');
}

# ==== 1,000 deliveries from 8 connections at once ====
{
    srand(40);
    my (@queue, %expect);
    my @some_users = @users[2 .. 51];
    my @conc_mems = grep { $_->{public_user_data}{user_id} ne $u2 } @mems;
    my $base = 1_800_000_000_000;    # later than anything the mock generates

    # 50 users, 8 versions each, delivered in any order: the 8th must win
    for my $x (@some_users) {
        for my $k (1 .. 8) {
            push @queue, delivery('user.updated', { %$x, first_name => "Conc $k", updated_at => $base + $k * 1000 });
        }
        $expect{users}{ $x->{id} } = "Conc 8";
    }
    # 150 new users; 30 of them deleted, with a newer update racing the deletion
    for my $n (1 .. 150) {
        my $id = sprintf('user_conc_%s_%04d', $tag, $n);
        my $obj = { %{ $users[0] }, id => $id, first_name => "New $n", created_at => $base, updated_at => $base };
        push @queue, delivery('user.created', $obj);
        if ($n <= 30) {
            push @queue, delivery('user.deleted', { id => $id, object => 'user', deleted => JSON::PP::true });
            push @queue, delivery('user.updated', { %$obj, first_name => 'Resurrected', updated_at => $base + 5000 });
        }
    }
    # 5 organizations, 10 versions each
    for my $x (@orgs) {
        push @queue, delivery('organization.updated', { %$x, name => "Conc org $_", updated_at => $base + $_ * 1000 })
          for 1 .. 10;
    }
    # the live memberships, 3 versions each
    for my $x (@conc_mems) {
        for my $k (1 .. 3) {
            push @queue, delivery('organizationMembership.updated',
                                  { %$x, role => ($k == 3 ? 'org:admin' : 'org:member'), updated_at => $base + $k * 1000 });
        }
    }
    # event types that are only recorded, up to 880 distinct deliveries
    my $ignored = 880 - scalar(@queue);
    push @queue, delivery('sms.created', { id => "sms_conc_$_", object => 'sms_message' }) for 1 .. $ignored;
    # 120 deliveries sent twice (Svix retries), the copies mixed in anywhere
    my @dups = (shuffle @queue)[0 .. 119];
    push @queue, @dups;
    @queue = shuffle @queue;
    is(scalar(@queue), 1000, '1,000 deliveries prepared');

    my $dir = PostgreSQL::Test::Utils::tempdir();
    open my $fh, '>:raw', "$dir/queue.csv" or die $!;
    my $n = 0;
    for my $d (@queue) {
        print {$fh} join(',', ++$n, map { my $v = $_; $v =~ s/"/""/g; qq{"$v"} } @$d{qw(body id ts sig)}), "\n";
    }
    close $fh;
    q1(qq{CREATE TABLE wh_queue (n int PRIMARY KEY, body text, svix_id text, ts text, sig text);
          COPY wh_queue FROM '$dir/queue.csv' WITH (FORMAT csv);
          CREATE SEQUENCE wh_seq;
          CREATE TABLE wh_results (n int PRIMARY KEY, result text)});

    open $fh, '>', "$dir/deliver.sql" or die $!;
    print {$fh} "SELECT nextval('wh_seq') AS n \\gset\n"
      . "INSERT INTO wh_results SELECT n, clerk_handle_webhook(body, svix_id, ts, sig) FROM wh_queue WHERE n = :n;\n";
    close $fh;

    my ($out, $err);
    my $ok = IPC::Run::run([ 'pgbench', '-n', '-c', '8', '-j', '8', '-t', '125', '-f', "$dir/deliver.sql",
                             '-h', $node->host, '-p', $node->port, 'postgres' ],
                           '<', \undef, '>', \$out, '2>', \$err);
    ok($ok, 'pgbench with 8 connections finishes without an error') or diag("$out\n$err");
    like($out, qr{number of transactions actually processed: 1000/1000}, 'all 1,000 transactions are processed');
    like($out, qr{number of failed transactions: 0 }, 'none failed');

    is(q1('SELECT count(*) FROM wh_results'), '1000', 'every delivery has a result');
    is(q1(q{SELECT count(*) FROM wh_results WHERE result = 'duplicate'}), '120', 'each copy of a retried delivery is a duplicate');
    is(q1(q{SELECT count(*) FROM wh_queue q JOIN clerk.webhook_deliveries d USING (svix_id)}), '1000',
       'every delivery id is recorded');
    is(q1(q{SELECT count(DISTINCT svix_id) FROM wh_queue}) . '/'
       . q1(q{SELECT count(*) FROM clerk.webhook_deliveries WHERE svix_id IN (SELECT svix_id FROM wh_queue)}),
       '880/880', '880 distinct delivery ids, each recorded once');
    is(q1(qq{SELECT count(*) || '/' || count(DISTINCT details ->> 'svix_id') FROM clerk.audit_logs
             WHERE action LIKE 'webhook.%' AND details ->> 'svix_id' IN (SELECT svix_id FROM wh_queue)}),
       (880 - $ignored) . '/' . (880 - $ignored), 'every applied event is audited once (ignored types and duplicates are not)');

    my $ids = join(',', map { sql_literal($_) } keys %{ $expect{users} });
    is(q1("SELECT count(*) FROM clerk.users WHERE id IN ($ids) AND first_name = 'Conc 8' AND deleted_at IS NULL"
          . " AND updated_at = to_timestamp(" . ($base + 8000) . " / 1000.0)"),
       '50', 'for each user updated 8 times in any order, the newest version is stored');
    is(q1(qq{SELECT count(*) FROM clerk.users WHERE id LIKE 'user_conc_${tag}_%' AND deleted_at IS NULL}), '120',
       'the 120 new users that were not deleted are live');
    is(q1(qq{SELECT count(*) FROM clerk.users WHERE id LIKE 'user_conc_${tag}_%' AND deleted_at IS NOT NULL}), '30',
       'the 30 deleted ones stay deleted, whatever arrived after the deletion');
    is(q1(q{SELECT count(*) FROM clerk.users WHERE first_name = 'Resurrected' AND deleted_at IS NULL}), '0',
       'no deleted user is resurrected');
    is(q1("SELECT count(*) FROM clerk.organizations WHERE name = 'Conc org 10'"), scalar(@orgs),
       'each organization holds its newest version');
    my $mids = join(',', map { sql_literal($_->{id}) } @conc_mems);
    is(q1("SELECT count(*) FROM clerk.organization_members WHERE id IN ($mids) AND role = 'org:admin'"
          . " AND updated_at = to_timestamp(" . ($base + 3000) . " / 1000.0)"),
       scalar(@conc_mems), 'each membership holds its newest version (' . scalar(@conc_mems) . ')');
    # the stored rows are the mapping of the newest versions, column for column
    is(q1("SELECT count(*) FROM clerk.users u WHERE u.id IN ($ids) AND "
          . "to_jsonb(u) - 'synced_at' <> (SELECT to_jsonb(m) - 'synced_at' FROM clerk.map_users(u.raw) m)"),
       '0', 'and every column agrees with the mapping of that version');
}

# ==== the secret stored encrypted (when this build has the vault) ====
{
    # through a file, so that no statement text (logged here) carries the secret
    my $file = PostgreSQL::Test::Utils::tempdir() . '/webhook_secret';
    PostgreSQL::Test::Utils::append_to_file($file, $STORED_SECRET);
    my ($state, $msg) = sql_error($node, "SELECT clerk_set_webhook_secret(pg_read_file(" . sql_literal($file) . "))");
  SKIP: {
        skip 'this build keeps the webhook secret in the setting only', 7 if $state eq '0A000';
        is($state, '', 'clerk_set_webhook_secret stores the secret') or diag($msg);
        my @r = deliver(delivery('sms.created', { id => 'sms_stored' }, secret => $STORED_SECRET));
        is($r[0], 'ignored:sms.created', 'a delivery signed with the stored secret is accepted');
        ($state) = sql_error($node, call_sql(delivery('sms.created', { id => 'sms_guc' })));
        is($state, '28P01', 'the stored secret is preferred over clerk_sync.webhook_secret_file');
        is(q1("SELECT count(*) FROM clerk.secrets WHERE name = 'webhook_secret' AND position(convert_to("
              . "regexp_replace(pg_read_file(" . sql_literal($file) . "), '^whsec_', ''), 'UTF8') IN value_encrypted) = 0"),
           '1', 'it is stored encrypted');
        ($state, $msg) = sql_error($node, "SELECT clerk_set_webhook_secret('whsec_not base64')");
        is($state, '22023', 'a malformed secret is refused');
        unlike($msg, qr/not base64/, 'without repeating it');
        q1(q{SELECT clerk_set_webhook_secret('')});
        @r = deliver(delivery('sms.created', { id => 'sms_guc2' }));
        is($r[0], 'ignored:sms.created', 'removing it falls back to clerk_sync.webhook_secret_file');
    }
}

# ==== no secret in the server log ====
{
    my $log = slurp_file($node->logfile);
    for my $s ($SECRET, $STORED_SECRET) {
        (my $b64 = $s) =~ s/^whsec_//;
        unlike($log, qr/\Q$b64\E/, 'a webhook secret never reaches the server log');
    }
}

$node->stop;
done_testing();
