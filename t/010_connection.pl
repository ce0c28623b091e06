# clerk_test_connection(): answers from the mock, a wrong key, timeouts, cancel of a hanging request, and the
# clear error of a library that was not preloaded.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $mock = ClerkMock->new(users => 30, organizations => 3, memberships => 10);

# Not preloaded: the connection test works, a sync says what is missing.
my $plain = clerk_node('plain', $mock, preload => '');
my $res = $plain->safe_psql('postgres', "SELECT clerk_test_connection() ->> 'users_total'");
is($res, '30', 'clerk_test_connection works without shared_preload_libraries');
my ($state, $msg) = sql_error($plain, 'SELECT clerk_sync_all()');
is($state, '55000', 'clerk_sync_all without preload fails with SQLSTATE 55000');
like($msg, qr/must be loaded via shared_preload_libraries/, 'and says how to fix it');
$plain->stop;

my $node = clerk_node('main', $mock);

# Against the mock: ok, HTTP 200, the user count, a latency, the URL; never the key.
$res = q1(q{SELECT concat_ws('|', r ->> 'ok', r ->> 'status', r ->> 'users_total', r ->> 'error',
                             (r ->> 'latency_ms')::numeric >= 0,
                             r ->> 'api_url' = current_setting('clerk_sync.api_url'))
            FROM clerk_test_connection() r});
is($res, 'true|200|30|t|t', 'clerk_test_connection reports ok, status, count, latency and URL');
my $keyfile = $node->basedir . '/clerk_secret_key';
is(q1(qq{SELECT position(pg_read_file('$keyfile') IN clerk_test_connection()::text)}),
   '0', 'the result never holds the key');

# A wrong key: ok false, HTTP 401, an error that says so, and not the key.
my $wrong = secret_file($node, 'wrong_key', 'sk_test_mock_wrong_key');
$res = q1(qq{SET clerk_sync.secret_key_file = '$wrong';
            SELECT concat_ws('|', r ->> 'ok', r ->> 'status', r ->> 'error',
                             position('sk_test_mock_wrong_key' IN r::text))
            FROM clerk_test_connection() r});
is($res, 'false|401|Clerk rejected the secret key (/users/count answered HTTP 401)|0',
   'a wrong key is reported as rejected, without the key');

# A hung answer hits clerk_sync.request_timeout: ok false, a clear error.
$mock->add_fault(kind => 'hang', path => '/v1/users/count', count => 1);
$res = $node->safe_psql('postgres', q{
    SET clerk_sync.request_timeout = '1s';
    SELECT (r ->> 'ok') || '|' || (r ->> 'error') FROM clerk_test_connection() r});
like($res, qr{^false\|request /users/count timed out after 1000 ms$}, 'a hung request times out with a clear error');
$mock->clear_faults;

# A request that would hang for ten minutes is interrupted by statement_timeout.
$mock->add_fault(kind => 'hang', path => '/v1/users/count', count => 1);
($state, $msg) = sql_error($node, q{
    SET clerk_sync.request_timeout = '600s';
    SET statement_timeout = '1s';
    SELECT clerk_test_connection()});
is($state, '57014', 'statement_timeout cancels a hanging request');
like($msg, qr/statement timeout/, 'with the statement timeout message');
$mock->clear_faults;

# ... and by pg_cancel_backend from another session.
$mock->add_fault(kind => 'hang', path => '/v1/users/count', count => 1);
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, q{
    SET clerk_sync.request_timeout = '600s';
    \echo started
    SELECT clerk_test_connection();
});
ok($node->poll_query_until('postgres',
    q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%clerk_test_connection()%' AND pid <> pg_backend_pid()}),
   'the hanging call is running');
$node->safe_psql('postgres',
    q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%clerk_test_connection()%' AND pid <> pg_backend_pid()});
my $out = $bg->query(q{SELECT 'still alive'});
like($bg->{stderr}, qr/canceling statement due to user request/, 'pg_cancel_backend interrupts a hanging request');
like($out, qr/still alive/, 'the session is usable afterwards');
$bg->quit;
$mock->clear_faults;

# The connection works again after all that.
$res = $node->safe_psql('postgres', "SELECT clerk_test_connection() ->> 'ok'");
is($res, 'true', 'the connection test succeeds afterwards');

# The key never reached the server log.
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q${\ $mock->secret_key }\E/, 'the secret key is not in the server log');

$node->stop;
done_testing();
