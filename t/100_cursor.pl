# The full listing of users with cursors: created_at ranges walked at once
# with starting_after, every user read once, users created and deleted
# during the run neither lost nor doubled, and the fall-back to offset paging
# when the API refuses cursors (422, as an older API version does).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $mock = ClerkMock->new(users => 2000, organizations => 4, memberships => 50, seed => 17);
my $node = clerk_node('cursor', $mock, conf => join("\n",
    "clerk_sync.page_size = 100", "clerk_sync.concurrency = 4", "clerk_sync.max_delete_fraction = 0.5"));

sub mock_live_ids {
    my @ids;
    for (my $offset = 0; ; $offset += 500) {
        my $page = $mock->get("/users?limit=500&order_by=created_at&offset=$offset")->{json};
        push @ids, map { $_->{id} } @$page;
        last if @$page < 500;
    }
    return join ',', sort @ids;
}
sub db_live_ids { q1(q{SELECT string_agg(id, ',' ORDER BY id COLLATE "C") FROM clerk.users WHERE deleted_at IS NULL}) }

# ---- a run over a list that stands still ----
$mock->clear_requests;
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync with cursors succeeds');
like(last_run(q{stats ->> 'users_paging'}), qr/^cursor: 4 created_at ranges walked at once$/,
     'users are listed with cursors, four created_at ranges at once');
is(last_run(q{stats -> 'users' ->> 'fetched'}), '2000', 'every user is fetched exactly once');
my @list = grep { $_->{path} eq '/v1/users' } @{ $mock->requests('/v1/users') };
is(db_live_ids(), mock_live_ids(), 'and stored');
is(scalar(grep { ($_->{query} // '') =~ /offset=[1-9]/ } @list), 0, 'no page is asked for by offset');
cmp_ok(scalar(grep { ($_->{query} // '') =~ /starting_after=/ } @list), '>=', 16, 'pages follow cursors');

# ---- users created and deleted while the ranges are walked ----
my @ids = split /\n/, q1(q{SELECT id FROM clerk.users ORDER BY created_at});
my @gone = @ids[map { $_ * 97 } 1 .. 20];
$mock->add_trigger(path => '/v1/users\?.*starting_after=', on_request => 3,
                   delete => { users => \@gone }, create_users => 15);
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync with creations and deletions during it succeeds');
cmp_ok(last_run(q{(stats -> 'users' ->> 'fetched')::int}), '<=', 2000 + 15, 'no user is read twice');
# (a user read before Clerk deleted it stays until the next run, as with offset paging)
q1('SELECT clerk_sync_all()');
is(q1(q{SELECT count(*) FROM clerk.users WHERE deleted_at IS NOT NULL AND id IN (} . join(',', map { "'$_'" } @gone) . ')'),
   scalar(@gone), 'the users deleted meanwhile are soft-deleted');
is(db_live_ids(), mock_live_ids(), 'after the next run at the latest, the stored users are exactly Clerk\'s: none skipped');
$mock->clear_triggers;

# ---- an API that refuses cursors ----
$mock->configure(no_cursors => \1);
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT status FROM clerk_sync_all()');
is($out, 'succeeded', 'with an API that answers 422 to cursors the run still succeeds');
like($err, qr/the API refuses cursor paging \(HTTP 422\); listing by offset in this run/, 'and says so once, in a NOTICE');
like(last_run(q{stats ->> 'users_paging'}), qr/^offset: the API answered HTTP 422/, 'and in the run\'s stats');
is(db_live_ids(), mock_live_ids(), 'listing every user by offset');
$mock->configure(no_cursors => \0);

# ---- an API that takes starting_after and ignores it: no endless loop ----
$mock->configure(no_cursors => \0, ignore_cursors => \1);
($ret, $out, $err) = $node->psql('postgres', 'SELECT status FROM clerk_sync_all()');
is($out, 'succeeded', 'with an API that ignores starting_after the run still succeeds');
like(last_run(q{stats ->> 'users_paging'}), qr/^offset: the API ignored starting_after/, 'listing by offset, and saying why');
is(db_live_ids(), mock_live_ids(), 'every user, once');
$mock->configure(ignore_cursors => \0);

$node->stop;
done_testing();
