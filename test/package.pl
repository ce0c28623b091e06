# `make deb`, once the package is installed: a fresh cluster loads clerk_sync
# from the package's files (test/package.sh removed any other copy first),
# CREATE EXTENSION installs 1.1, and a sync against the mock stores every
# object.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $mock = ClerkMock->new(users => 60, organizations => 5, memberships => 50, seed => 5);
my $node = clerk_node('package', $mock);

is(q1(q{SELECT extversion FROM pg_extension WHERE extname = 'clerk_sync'}), '1.1',
   'CREATE EXTENSION clerk_sync installs 1.1 from the package');
is(q1('SELECT clerk_library_version()'), '1.1', 'the preloaded library is 1.1');
is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'a sync against the mock succeeds');
is(q1('SELECT count(*) FROM clerk.users WHERE deleted_at IS NULL'), '60', 'and stores every user');
is(q1('SELECT count(*) FROM clerk.organization_members WHERE deleted_at IS NULL'), '50', 'and every membership');

done_testing();
