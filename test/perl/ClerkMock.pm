package ClerkMock;

# Start and drive test/mock_clerk.py (the mock Clerk Backend API) from TAP tests.
#
#   my $mock = ClerkMock->new(users => 50, organizations => 5, memberships => 60, seed => 7);
#   my $res  = $mock->get('/users?limit=5');          # { status, headers, content, json }
#   $mock->control(POST => 'faults', { kind => 'status', status => 503 });
#   $mock->stop;                                       # also done on DESTROY / END
#
# The secret key is handed to the mock through the environment, so it never
# shows up in a process listing.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

my $SCRIPT = File::Spec->catfile(dirname(abs_path(__FILE__)), File::Spec->updir, 'mock_clerk.py');
my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;
my %LIVE;    # refaddr => weakened object, for END

sub random_hex {
    my ($bytes) = @_;
    my $buf = '';
    if (open my $fh, '<:raw', '/dev/urandom') {
        read $fh, $buf, $bytes;
        close $fh;
    }
    $buf = join '', map { chr int rand 256 } 1 .. $bytes if length $buf != $bytes;
    return unpack 'H*', $buf;
}

# Options: users organizations memberships seed rate_limit latency_ms secret_key
#          log_file (default: a file in the temp dir) python start_timeout extra_args (arrayref)
sub new {
    my ($class, %opt) = @_;
    my $self = bless {
        secret_key => $opt{secret_key} // ('sk_test_mock_' . random_hex(16)),
        dir        => tempdir('clerk_mock_XXXXXX', TMPDIR => 1, CLEANUP => 1),
        owner      => $$,
    }, $class;
    $self->{port_file} = "$self->{dir}/port";
    $self->{log_file}  = $opt{log_file} // "$self->{dir}/mock.log";
    $self->{out_file}  = "$self->{dir}/mock.out";

    my $python = $opt{python} // $ENV{PYTHON} // '/usr/bin/python3';
    my @cmd = ($python, $SCRIPT, '--port', 0, '--port-file', $self->{port_file},
               '--log-file', $self->{log_file}, '--exit-with-parent');
    for my $k (qw(users organizations memberships seed rate_limit latency_ms)) {
        next unless defined $opt{$k};
        (my $flag = $k) =~ tr/_/-/;
        push @cmd, "--$flag", $opt{$k};
    }
    push @cmd, @{ $opt{extra_args} || [] };

    my $pid = fork;
    croak "fork failed: $!" unless defined $pid;
    if ($pid == 0) {
        $ENV{MOCK_CLERK_SECRET_KEY} = $self->{secret_key};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $self->{out_file};
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;

    my $deadline = time + ($opt{start_timeout} // 30);
    until (-s $self->{port_file}) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            croak "mock_clerk.py exited during start-up (status $?): " . $self->output;
        }
        if (time > $deadline) {
            $self->stop;
            croak "mock_clerk.py did not start within the timeout: " . $self->output;
        }
        sleep 0.05;
    }
    open my $fh, '<', $self->{port_file} or croak "cannot read port file: $!";
    chomp(my $port = <$fh> // '');
    close $fh;
    croak "bad port file content '$port'" unless $port =~ /^\d+$/;
    $self->{port} = $port;
    $self->{http} = HTTP::Tiny->new(timeout => 60, keep_alive => 1, agent => 'clerk-mock-tests/1.0');
    $LIVE{"$self"} = $self;
    weaken $LIVE{"$self"};
    return $self;
}

sub port       { $_[0]{port} }
sub pid        { $_[0]{pid} }
sub base_url   { 'http://127.0.0.1:' . $_[0]{port} }
sub url        { $_[0]->base_url . '/v1' }
sub secret_key { $_[0]{secret_key} }
sub log_file   { $_[0]{log_file} }
sub out_file   { $_[0]{out_file} }

# Captured stdout/stderr of the mock process.
sub output {
    my ($self) = @_;
    open my $fh, '<', $self->{out_file} or return '';
    local $/;
    return scalar <$fh>;
}

sub _decode {
    my ($res) = @_;
    my $json = eval { $JSON->decode($res->{content}) };
    $res->{json} = $json;
    $res->{json_error} = $@ if $@;
    return $res;
}

# request($method, $path, %opt): $path is relative to /v1 unless it starts with
# /v1 or /__mock.  Options: headers (hashref), auth (0 = no Authorization
# header; a string = use that as the key), timeout (seconds, fresh connection),
# raw_auth (exact Authorization header value).
# Returns the HTTP::Tiny response plus {json} (decoded body or undef).
sub request {
    my ($self, $method, $path, %opt) = @_;
    $path = "/v1$path" unless $path =~ m{^/(?:v1|__mock)(?:/|$|\?)};
    my %h = %{ $opt{headers} || {} };
    if (defined $opt{raw_auth}) {
        $h{Authorization} = $opt{raw_auth};
    } elsif (!defined $opt{auth} || $opt{auth}) {
        my $key = (defined $opt{auth} && $opt{auth} ne '1') ? $opt{auth} : $self->{secret_key};
        $h{Authorization} = "Bearer $key";
    }
    my $http = $self->{http};
    $http = HTTP::Tiny->new(timeout => $opt{timeout}, keep_alive => 0) if defined $opt{timeout};
    my $res = $http->request($method, $self->base_url . $path, { headers => \%h });
    return _decode($res);
}

sub get { my ($self, $path, %opt) = @_; return $self->request(GET => $path, %opt) }

# raw_get($path, timeout => $s): one GET over a plain socket with
# "Connection: close", reading until EOF or timeout.  No retries, no parsing
# beyond splitting head and body, so tests can see exactly what was sent.
# Returns { raw, status, headers (lower-cased names), body, timed_out }.
sub raw_get {
    my ($self, $path, %opt) = @_;
    $path = "/v1$path" unless $path =~ m{^/(?:v1|__mock)(?:/|$|\?)};
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port}, Proto => 'tcp')
        or croak "connect: $!";
    my $auth = defined $opt{auth} ? $opt{auth} : $self->{secret_key};
    print {$sock} "GET $path HTTP/1.1\r\nHost: 127.0.0.1:$self->{port}\r\n"
        . "Authorization: Bearer $auth\r\nConnection: close\r\n\r\n";
    my $sel = IO::Select->new($sock);
    my $deadline = time + ($opt{timeout} // 10);
    my ($raw, $timed_out) = ('', 0);
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0 || !$sel->can_read($left)) { $timed_out = 1; last }
        my $n = sysread $sock, my $buf, 65536;
        last unless $n;    # EOF or error
        $raw .= $buf;
    }
    close $sock;
    my %r = (raw => $raw, timed_out => $timed_out, headers => {});
    if ($raw =~ /\A(HTTP\/1\.[01]) (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n(.*)\z/s) {
        $r{status} = $2;
        $r{body} = $4;
        for my $line (split /\r\n/, $3) {
            my ($k, $v) = split /:\s*/, $line, 2;
            $r{headers}{lc $k} = $v;
        }
    }
    return \%r;
}

# control($method, $path, $data): call /__mock/$path with an optional JSON
# body; returns the decoded JSON answer and croaks on an HTTP error.
sub control {
    my ($self, $method, $path, $data) = @_;
    my $res = $self->control_raw($method, $path, $data);
    croak "control $method $path failed: $res->{status} $res->{content}" unless $res->{success};
    return $res->{json};
}

# Same, but returns the whole response ({status, content, json}) without croaking.
sub control_raw {
    my ($self, $method, $path, $data) = @_;
    $path =~ s{^/?(?:__mock/)?}{};
    my %args = (headers => { 'Content-Type' => 'application/json' });
    $args{content} = $JSON->encode($data) if defined $data;
    my $res = $self->{http}->request($method, $self->base_url . "/__mock/$path", \%args);
    return _decode($res);
}

# Convenience wrappers around the control API.
sub reset         { my ($s, $d) = @_; $s->control(POST => 'reset', $d) }
sub state         { $_[0]->control(GET => 'state') }
sub stats         { $_[0]->control(GET => 'stats') }
# the request log, or the requests to paths that start with $prefix
sub requests {
    my ($s, $prefix) = @_;
    my $r = $s->control(GET => 'requests' . ($prefix ? "?path=$prefix" : ''));
    return ref $r eq 'HASH' ? $r->{requests} : $r;
}
sub clear_requests { $_[0]->control(DELETE => 'requests') }
sub add_fault     { my ($s, %f) = @_; $s->control(POST => 'faults', \%f)->{id} }
sub clear_faults  { $_[0]->control(DELETE => 'faults') }
sub add_trigger   { my ($s, %t) = @_; $s->control(POST => 'triggers', \%t)->{id} }
sub clear_triggers { $_[0]->control(DELETE => 'triggers') }
sub configure     { my ($s, %c) = @_; $s->control(POST => 'config', \%c) }

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid};
    return unless $pid && $$ == $self->{owner};
    kill 'TERM', $pid;
    my $deadline = time + 5;
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop;
}

END {
    local $?;
    for my $m (values %LIVE) {
        $m->stop if $m;
    }
}

1;
