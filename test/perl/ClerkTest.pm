package ClerkTest;

# Shared set-up and helpers for the TAP tests: a PostgreSQL::Test::Cluster
# with the settings of test/regress.conf (the one place every test server's
# configuration comes from), pointed at a ClerkMock; queries, errors, runs
# and Svix signatures.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Spec;
use JSON::PP;
use Time::HiRes ();
use MIME::Base64 qw(encode_base64 decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(clerk_node clerk_server_conf q1 sql_error row_versions wait_for_run last_run
                 svix_sign sql_literal webhook_sql secret_file have_pg_cron client_program);

# Under plain prove, pg_regress (which PostgreSQL::Test::Cluster needs) is
# the one PGXS installed; make installcheck sets PG_REGRESS itself.
if (!$ENV{PG_REGRESS}) {
    my $pgxs = `pg_config --pgxs`;
    chomp $pgxs;
    $ENV{PG_REGRESS} = dirname($pgxs) . '/../test/regress/pg_regress';
}

my $REGRESS_CONF = File::Spec->catfile(dirname(abs_path(__FILE__)), File::Spec->updir, 'regress.conf');

# The node q1() and last_run() talk to: the last one clerk_node() made.
our $node;

# The settings of every test server, as postgresql.conf lines.
sub clerk_server_conf {
    return slurp_file($REGRESS_CONF);
}

# Whether pg_cron is installed for the PostgreSQL under test (test/run.sh
# has it for 15 only: Debian 12 packages it for 15, and Debian 13's build
# for 17 and 18 needs glibc 2.38).
sub have_pg_cron {
    my $sharedir = `pg_config --sharedir`;
    chomp $sharedir;
    return -e "$sharedir/extension/pg_cron.control";
}

# The path of a client program (pg_dump, ...) of the PostgreSQL under test,
# or undef: test/run.sh has none for 17 and 18 (Debian 13's and unstable's
# need glibc 2.38, and the npm package ships the server programs only).
sub client_program {
    my ($name) = @_;
    my $bindir = `pg_config --bindir`;
    chomp $bindir;
    return -x "$bindir/$name" ? "$bindir/$name" : undef;
}

# clerk_node($name, $mock, %opt): a started node with the extension created.
# Options: preload (default: test/regress.conf's), conf (extra lines),
# webhook_secret (put in a file named by clerk_sync.webhook_secret_file),
# create (default 1: CREATE EXTENSION clerk_sync), version (of the extension
# to create), start (default 1), init (options of PostgreSQL::Test::Cluster's
# init, such as allows_streaming).
sub clerk_node {
    my ($name, $mock, %opt) = @_;
    my $n = PostgreSQL::Test::Cluster->new($name);
    $n->init(%{ $opt{init} // {} });
    my $conf = clerk_server_conf();
    if (defined $opt{preload}) {
        my $preload = join(', ', grep { $_ ne 'pg_cron' || have_pg_cron() } split /\s*,\s*/, $opt{preload});
        $conf =~ s/^shared_preload_libraries\s*=.*$/shared_preload_libraries = '$preload'/m;
    }
    $n->append_conf('postgresql.conf', $conf);
    # secrets go in files only the server reads, named by settings
    $n->append_conf('postgresql.conf', join("\n",
        ($mock ? ("clerk_sync.api_url = '" . $mock->url . "'",
                  "clerk_sync.secret_key_file = '" . secret_file($n, 'clerk_secret_key', $mock->secret_key) . "'") : ()),
        (defined $opt{webhook_secret} ?
            ("clerk_sync.webhook_secret_file = '" . secret_file($n, 'clerk_webhook_secret', $opt{webhook_secret}) . "'") : ()),
        $opt{conf} // '', ''));
    $node = $n;
    return $n if defined $opt{start} && !$opt{start};
    $n->start;
    if ($opt{create} // 1) {
        my $version = defined $opt{version} ? " VERSION '$opt{version}'" : '';
        $n->safe_psql('postgres', "CREATE EXTENSION clerk_sync$version");
    }
    $node = $n;
    return $n;
}

# A file in the node's directory holding $content, readable by its owner
# only (as secret files must be); its path.
sub secret_file {
    my ($n, $name, $content) = @_;
    my $path = $n->basedir . "/$name";
    unlink $path;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh;
    chmod 0600, $path or die "chmod $path: $!";
    return $path;
}

# One query on the last node clerk_node() made; its output.
sub q1 {
    my ($sql) = @_;
    return $node->safe_psql('postgres', $sql);
}

# A column (or expression) of the newest run of the last node.
sub last_run {
    my ($expr) = @_;
    return q1("SELECT $expr FROM clerk.sync_runs ORDER BY id DESC LIMIT 1");
}

# Run SQL that must fail; returns (sqlstate, message).
sub sql_error {
    my ($n, $sql, %opt) = @_;
    my ($stdout, $stderr);
    my $ret = $n->psql('postgres', "\\set VERBOSITY verbose\n$sql",
        stdout => \$stdout, stderr => \$stderr, on_error_stop => 1, %opt);
    my ($state, $msg) = $stderr =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/;
    return ($state // '', $msg // $stderr, $ret);
}

# A fingerprint of every row version of the synced tables: equal before and
# after means nothing was written.
sub row_versions {
    my ($n) = @_;
    return $n->safe_psql('postgres', q{
        SELECT md5(string_agg(t || ':' || id || ':' || xmin::text || ':' || ctid::text, ',' ORDER BY t, id))
        FROM (SELECT 'u' t, id, xmin, ctid FROM clerk.users
              UNION ALL SELECT 'o', id, xmin, ctid FROM clerk.organizations
              UNION ALL SELECT 'm', id, xmin, ctid FROM clerk.organization_members) s});
}

# Wait until run $id is no longer running; returns its status.
sub wait_for_run {
    my ($n, $id) = @_;
    $n->poll_query_until('postgres',
        "SELECT status <> 'running' FROM clerk.sync_runs WHERE id = $id")
      or die "run $id did not finish";
    return $n->safe_psql('postgres', "SELECT status FROM clerk.sync_runs WHERE id = $id");
}

# The svix-signature header for a delivery, as Svix computes it.
sub svix_sign {
    my ($secret, $id, $ts, $body) = @_;
    (my $b64 = $secret) =~ s/^whsec_//;
    return 'v1,' . encode_base64(hmac_sha256("$id.$ts.$body", decode_base64($b64)), '');
}

# A string as an SQL literal.
sub sql_literal {
    my ($s) = @_;
    $s =~ s/'/''/g;
    return "'$s'";
}

# SQL that calls clerk_handle_webhook() with one delivery signed with
# $secret: event $type about $data (a hash, or the JSON text of the object
# as Clerk would send it).  Options: id, ts (svix-timestamp), timestamp_ms
# (the event's), body (the whole body instead).
my $webhook_seq = 0;
sub webhook_sql {
    my ($secret, $type, $data, %opt) = @_;
    my $json = ref $data ? JSON::PP->new->utf8->canonical->encode($data) : $data;
    my $body = $opt{body} // sprintf('{"data":%s,"object":"event","type":"%s","timestamp":%d,"instance_id":"ins_test_fake"}',
                                     $json, $type, $opt{timestamp_ms} // int(Time::HiRes::time() * 1000));
    my $id = $opt{id} // sprintf('msg_test_%d_%06d', $$, ++$webhook_seq);
    my $ts = $opt{ts} // time();
    return sprintf('SELECT clerk_handle_webhook(%s, %s, %s, %s)', sql_literal($body), sql_literal($id),
                   sql_literal("$ts"), sql_literal(svix_sign($secret, $id, $ts, $body)));
}

1;
