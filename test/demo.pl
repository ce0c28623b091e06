# What `make demo` runs: a throwaway server set up like every test server
# (ClerkTest), the bundled mock Clerk API (or a real Clerk when
# CLERK_SECRET_KEY is set), and test/demo.sql through psql.
use strict;
use warnings;

# PostgreSQL::Test::Utils sends the process's own output to a log file when
# it starts; keep the terminal for what the demo shows
our ($TERM_OUT, $TERM_ERR);
BEGIN {
    open $TERM_OUT, '>&', \*STDOUT or die "stdout: $!";
    open $TERM_ERR, '>&', \*STDERR or die "stderr: $!";
}

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use ClerkMock;
use ClerkTest;

my $demo_sql = dirname(abs_path(__FILE__)) . '/demo.sql';
my ($mock, $conf);
if ($ENV{CLERK_SECRET_KEY}) {
    # the key stays in the server's environment; only the URL is written down
    my $api = $ENV{CLERK_API_URL} // 'https://api.clerk.com/v1';
    print $TERM_OUT "== syncing from $api with the key in CLERK_SECRET_KEY\n";
    $conf = "clerk_sync.api_url = '$api'";
} else {
    $mock = ClerkMock->new(users => 250, organizations => 12, memberships => 400, seed => 7);
    print $TERM_OUT '== mock Clerk API at ', $mock->url, " (250 users, 12 organizations, 400 memberships)\n";
}
my $node = clerk_node('demo', $mock, create => 0, conf => $conf);
open STDOUT, '>&', $TERM_OUT or die "stdout: $!";
open STDERR, '>&', $TERM_ERR or die "stderr: $!";
my $rc = system('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
                '-f', $demo_sql);
open STDOUT, '>', '/dev/null';
$node->stop;
exit($rc == 0 ? 0 : 1);
