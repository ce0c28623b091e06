package ClerkTest;

# Shared set-up for the TAP tests: a PostgreSQL::Test::Cluster with
# clerk_sync (and pg_cron) preloaded, pointed at a ClerkMock.

use strict;
use warnings;

use Exporter qw(import);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(clerk_node sql_ok sql_error row_versions wait_for_run);

# clerk_node($name, $mock, %opt): a started node with the extension created.
# Options: preload (default 'clerk_sync, pg_cron'), conf (extra lines).
sub clerk_node {
    my ($name, $mock, %opt) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    my $preload = $opt{preload} // 'clerk_sync, pg_cron';
    $node->append_conf('postgresql.conf', "shared_preload_libraries = '$preload'\n") if $preload ne '';
    $node->append_conf('postgresql.conf', join("\n",
        "cron.database_name = 'postgres'",
        "cron.use_background_workers = on",
        "max_worker_processes = 32",
        "restart_after_crash = on",
        "clerk_sync.api_url = '" . $mock->url . "'",
        "clerk_sync.secret_key = '" . $mock->secret_key . "'",
        "clerk_sync.retry_backoff = 50",
        "clerk_sync.rate_limit = 1000",
        $opt{conf} // '', ''));
    $node->start;
    $node->safe_psql('postgres', 'CREATE EXTENSION clerk_sync');
    return $node;
}

# Run SQL that must fail; returns (sqlstate, message).
sub sql_error {
    my ($node, $sql, %opt) = @_;
    my ($stdout, $stderr);
    my $ret = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
        stdout => \$stdout, stderr => \$stderr, on_error_stop => 1, %opt);
    my ($state, $msg) = $stderr =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/;
    return ($state // '', $msg // $stderr, $ret);
}

# A fingerprint of every row version of the synced tables: equal before and
# after means nothing was written.
sub row_versions {
    my ($node) = @_;
    return $node->safe_psql('postgres', q{
        SELECT md5(string_agg(t || ':' || id || ':' || xmin::text || ':' || ctid::text, ',' ORDER BY t, id))
        FROM (SELECT 'u' t, id, xmin, ctid FROM clerk.users
              UNION ALL SELECT 'o', id, xmin, ctid FROM clerk.organizations
              UNION ALL SELECT 'm', id, xmin, ctid FROM clerk.organization_members) s});
}

# Wait until run $id is no longer running; returns its status.
sub wait_for_run {
    my ($node, $id) = @_;
    $node->poll_query_until('postgres',
        "SELECT status <> 'running' FROM clerk.sync_runs WHERE id = $id")
      or die "run $id did not finish";
    return $node->safe_psql('postgres', "SELECT status FROM clerk.sync_runs WHERE id = $id");
}

1;
