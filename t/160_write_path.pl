# The bulk write path: a page's new rows go in as COPY stores them
# (table_multi_insert), unchanged objects are recognised before they are
# mapped, and everything INSERT would do still happens: the table's
# constraints and unique indexes (a violating record fails alone), the
# triggers that would fire (the path steps aside for them), the mapping
# (every row equals clerk.map_* of its raw), and the counts.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $mock = ClerkMock->new(users => 700, organizations => 12, memberships => 600, seed => 16);
my $node = clerk_node('write_path', $mock, conf => "clerk_sync.page_size = 200");

my @users = map { $_->{id} } @{ $mock->get('/users?limit=500&order_by=created_at')->{json} };
push @users, map { $_->{id} } @{ $mock->get('/users?limit=500&offset=500&order_by=created_at')->{json} };
is(scalar(@users), 700, 'the mock lists 700 users');

sub stat_of { my ($entity, $key) = @_; return last_run("stats -> '$entity' ->> '$key'") }

# every stored row is what the one mapping makes of its raw (synced_at aside)
sub rows_equal_mapping {
    my ($table, $map) = @_;
    return q1(qq{SELECT count(*) FROM $table t CROSS JOIN LATERAL $map(t.raw) m
                 WHERE to_jsonb(m) - 'synced_at' IS DISTINCT FROM to_jsonb(t) - 'synced_at'});
}

# WAL of the heap's multi-insert, where pg_walinspect is installed
my $walinspect = $node->psql('postgres', 'CREATE EXTENSION pg_walinspect') == 0;
sub multi_inserts_since {
    my ($lsn) = @_;
    return q1(qq{SELECT count(*) FROM pg_get_wal_records_info('$lsn', pg_current_wal_flush_lsn())
                 WHERE resource_manager = 'Heap2' AND record_type = 'MULTI_INSERT'});
}

# ---- a full sync into empty tables ----
my $lsn = q1('SELECT pg_current_wal_insert_lsn()');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync into empty tables succeeds');
is(q1('SELECT count(*) FROM clerk.users'), '700', 'every user stored');
is(q1('SELECT count(*) FROM clerk.organization_members'), '600', 'every membership stored');
is(stat_of('users', 'inserted'), '700', 'counted as inserted');
is(rows_equal_mapping('clerk.users', 'clerk.map_users'), '0', 'every user row is the mapping of its raw');
is(rows_equal_mapping('clerk.organizations', 'clerk.map_organizations'), '0', 'every organization row too');
is(rows_equal_mapping('clerk.organization_members', 'clerk.map_memberships'), '0', 'every membership row too');
is(q1(q{SELECT count(*) FROM clerk.users WHERE id IS NULL OR raw IS NULL OR synced_at IS NULL}), '0',
   'no row lacks what NOT NULL requires');
SKIP: {
    skip 'pg_walinspect is not installed', 1 unless $walinspect;
    cmp_ok(multi_inserts_since($lsn), '>', 0, 'the new rows went in by multi-insert WAL records, as COPY writes them');
}

# ---- unchanged: recognised before mapping, nothing written ----
my $before = row_versions($node);
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'an unchanged re-sync succeeds');
is(row_versions($node), $before, 'it writes no row version');
is(stat_of('users', 'unchanged'), '700', 'every user counted unchanged');
is(stat_of('users', 'inserted') + stat_of('users', 'updated'), 0, 'none inserted or updated');
# recognised before they are mapped: with a mapping that fails, an
# unchanged re-sync still fails no user
my $def = q1(q{SELECT pg_get_functiondef('clerk.map_users(jsonb)'::regprocedure)});
q1(q{CREATE OR REPLACE FUNCTION clerk.map_users(page jsonb) RETURNS SETOF clerk.users LANGUAGE plpgsql
     AS $$ BEGIN RAISE EXCEPTION 'mapped'; END $$});
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'an unchanged re-sync with a mapping that would fail');
is(stat_of('users', 'unchanged') . '/' . stat_of('users', 'failed'), '700/0', 'no user was mapped: all unchanged, none failed');
q1($def);

# the same through clerk_apply_page(): an object as stored is unchanged,
# one changed in a nested number is updated, a new one is inserted
my $new = q{'{"id": "user_bulk_new", "object": "user", "first_name": "New", "created_at": 1700000000000, "updated_at": 1700000000000}'::jsonb};
is(q1(qq{SELECT clerk_apply_page('users', jsonb_build_array(
             (SELECT raw FROM clerk.users WHERE id = '$users[3]'),
             (SELECT jsonb_set(raw, '{public_metadata}', '{"n": {"deep": 12.5}}') || '{"updated_at": 4102444800000}'
                FROM clerk.users WHERE id = '$users[4]'),
             $new)) - 'fetched' - 'failed' - 'repaired'}),
   '{"updated": 1, "inserted": 1, "unchanged": 1}', 'a page of one unchanged, one changed, one new object');
is(q1(qq{SELECT raw #>> '{public_metadata,n,deep}' FROM clerk.users WHERE id = '$users[4]'}), '12.5', 'the changed one updated');
is(q1(q{SELECT first_name FROM clerk.users WHERE id = 'user_bulk_new'}), 'New', 'the new one inserted');
is(q1(qq{SELECT clerk_apply_page('users', jsonb_build_array(
             (SELECT raw FROM clerk.users WHERE id = '$users[3]'), (SELECT raw FROM clerk.users WHERE id = '$users[4]'),
             $new)) - 'fetched' - 'failed' - 'repaired'}),
   '{"updated": 0, "inserted": 0, "unchanged": 3}', 'the same objects again: all unchanged');
# the ordering rule holds on the bulk path: an older object does not replace a newer row
is(q1(qq{SELECT clerk_apply_page('users', jsonb_build_array(
             (SELECT raw || '{"first_name": "Older", "updated_at": 1600000000000}' FROM clerk.users WHERE id = '$users[4]'),
             '{"id": "user_bulk_new2", "object": "user"}'::jsonb)) - 'fetched' - 'failed' - 'repaired'}),
   '{"updated": 0, "inserted": 1, "unchanged": 1}', 'a page with an older object and a new one: the new one inserted');
isnt(q1(qq{SELECT first_name FROM clerk.users WHERE id = '$users[4]'}), 'Older', 'and the newer stored row kept');
# an object without an id: the page goes the ordinary way, and that object fails alone
is(q1(q{SELECT clerk_apply_page('users', '[{"object": "user", "first_name": "NoId"}, {"id": "user_bulk_new3", "object": "user"}]'::jsonb)
        - 'fetched' - 'repaired'}),
   '{"failed": 1, "updated": 0, "inserted": 1, "unchanged": 0}', 'a page with an object without an id: the other one inserted, that one failed');

# ---- the table's constraints, as INSERT checks them ----
q1(q{TRUNCATE clerk.users, clerk.organizations, clerk.organization_members CASCADE});
q1(q{ALTER TABLE clerk.users ADD CONSTRAINT bulk_no_forbidden CHECK (first_name IS DISTINCT FROM 'Forbidden')});
q1(q{CREATE UNIQUE INDEX bulk_unique_username ON clerk.users (username)});
$mock->control(PATCH => "users/$users[10]", { first_name => 'Forbidden' });
$mock->control(PATCH => "users/$users[20]", { username => 'same_name' });
$mock->control(PATCH => "users/$users[30]", { username => 'same_name' });
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync with a CHECK constraint and a unique index of the owner');
is(q1('SELECT count(*) FROM clerk.users'), '698', 'every user stored but the two that violate them');
is(q1(qq{SELECT sqlstate FROM clerk.sync_failures WHERE id = '$users[10]'}), '23514', 'the CHECK violation failed alone');
is(q1(qq{SELECT string_agg(sqlstate, ',') FROM clerk.sync_failures WHERE id IN ('$users[20]', '$users[30]')}), '23505',
   'one of the two equal usernames failed alone on the unique index');
is(stat_of('users', 'failed'), '2', 'counted as failed');
q1(q{ALTER TABLE clerk.users DROP CONSTRAINT bulk_no_forbidden});
q1(q{DROP INDEX clerk.bulk_unique_username});

# ---- a trigger that would fire: the path steps aside, the trigger sees every row ----
q1(q{TRUNCATE clerk.users, clerk.organizations, clerk.organization_members CASCADE});
q1(q{CREATE TABLE public.bulk_seen (id text, op text)});
q1(q{GRANT INSERT ON public.bulk_seen TO clerk_sync_writer});
q1(q{CREATE FUNCTION public.bulk_note() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN INSERT INTO public.bulk_seen VALUES (NEW.id, TG_OP); RETURN NEW; END $$});
q1(q{CREATE FUNCTION public.bulk_note_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN INSERT INTO public.bulk_seen VALUES (NULL, 'STATEMENT'); RETURN NULL; END $$});
q1(q{CREATE TRIGGER bulk_note AFTER INSERT ON clerk.users FOR EACH ROW EXECUTE FUNCTION public.bulk_note()});
q1(q{CREATE TRIGGER bulk_note_stmt AFTER INSERT ON clerk.organization_members FOR EACH STATEMENT EXECUTE FUNCTION public.bulk_note_stmt()});
q1(q{ALTER TABLE clerk.users ENABLE ALWAYS TRIGGER bulk_note});
q1(q{ALTER TABLE clerk.organization_members ENABLE ALWAYS TRIGGER bulk_note_stmt});
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync with the owner\'s ALWAYS triggers');
is(q1(q{SELECT count(DISTINCT id) FROM public.bulk_seen WHERE op = 'INSERT'}), '700',
   'the row trigger fired for every user inserted');
cmp_ok(q1(q{SELECT count(*) FROM public.bulk_seen WHERE op = 'STATEMENT'}), '>=', 3,
   'the statement trigger fired for each page of memberships');
is(rows_equal_mapping('clerk.users', 'clerk.map_users'), '0', 'and the rows are the same mapping');
q1(q{DROP TRIGGER bulk_note ON clerk.users});
q1(q{DROP TRIGGER bulk_note_stmt ON clerk.organization_members});

# a trigger that would not fire (ENABLE ORIGIN, the default: the writer
# writes as a replica) leaves the bulk path on, as it leaves INSERT silent
q1(q{TRUNCATE clerk.users, public.bulk_seen});
q1(q{CREATE TRIGGER bulk_note AFTER INSERT ON clerk.users FOR EACH ROW EXECUTE FUNCTION public.bulk_note()});
$lsn = q1('SELECT pg_current_wal_insert_lsn()');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a full sync with a trigger that does not fire for the writer');
is(q1('SELECT count(*) FROM clerk.users'), '700', 'every user stored');
is(q1('SELECT count(*) FROM public.bulk_seen'), '0', 'the trigger did not fire, as with INSERT');
SKIP: {
    skip 'pg_walinspect is not installed', 1 unless $walinspect;
    cmp_ok(multi_inserts_since($lsn), '>', 0, 'and the users went in by multi-insert');
}

done_testing();
