#!/usr/bin/perl
# Fidelity tests for the mock Clerk Backend API (test/mock_clerk.py).
# No PostgreSQL needed:  PERL5LIB=test/perl prove -v t/001_mock.pl

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/../test/perl";

use ClerkMock;
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use List::Util qw(sum0 any all);
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

my $JSON = JSON::PP->new->utf8->canonical;
my %GEN = (users => 200, organizations => 6, memberships => 90, seed => 42);
my $mock = ClerkMock->new(%GEN);

# --- helpers -----------------------------------------------------------------

sub ok_get {
    my ($path, %opt) = @_;
    my $res = $mock->get($path, %opt);
    is $res->{status}, 200, "GET $path -> 200" or diag $res->{content};
    return $res->{json};
}

sub error_is {
    my ($res, $status, $code, $name) = @_;
    subtest $name => sub {
        is $res->{status}, $status, "status $status";
        my $err = ref $res->{json} eq 'HASH' && ref $res->{json}{errors} eq 'ARRAY' ? $res->{json}{errors}[0] : undef;
        ok $err, 'Clerk error body with an errors array' or return diag $res->{content};
        is $err->{code}, $code, "code $code";
        ok length($err->{message} // ''),      'message present';
        ok length($err->{long_message} // ''), 'long_message present';
        like $res->{json}{clerk_trace_id} // '', qr/^\w{8,}$/, 'clerk_trace_id present';
    };
    return $res->{json};
}

# Walk a list endpoint with limit/offset; returns the objects in order.
sub walk {
    my ($path, $limit) = @_;
    my ($offset, @all) = (0);
    my $sep = $path =~ /\?/ ? '&' : '?';
    while (1) {
        my $res = $mock->get("$path${sep}limit=$limit&offset=$offset");
        die "walk $path: $res->{status} $res->{content}" unless $res->{status} == 200;
        my $items = ref $res->{json} eq 'ARRAY' ? $res->{json} : $res->{json}{data};
        push @all, @$items;
        last if @$items < $limit;
        $offset += $limit;
        die "runaway pagination on $path" if $offset > 100_000;
    }
    return @all;
}

sub ids { map { $_->{id} } @_ }

sub uri_escape { my ($s) = @_; utf8::encode($s); $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge; $s }

sub uniq_count { my %s; $s{$_}++ for @_; return scalar keys %s }

sub strictly { my ($cmp, @v) = @_; all { $cmp->($v[$_ - 1], $v[$_]) } 1 .. $#v }

# --- tests -------------------------------------------------------------------

subtest 'health and state' => sub {
    is_deeply $mock->control(GET => 'health'), { ok => JSON::PP::true }, 'health';
    my $st = $mock->state;
    is $st->{users}, 200, '200 users';
    is $st->{organizations}, 6, '6 organizations';
    is $st->{organization_memberships}, 90, '90 memberships';
};

my @users;    # all users, oldest first
subtest 'GET /users: bare array, shapes, data variety' => sub {
    my $res = $mock->get('/users');
    is $res->{status}, 200, 'status 200';
    like $res->{headers}{'content-type'}, qr{^application/json}, 'JSON content type';
    is $res->{headers}{'content-length'}, length($res->{content}), 'Content-Length matches the body';
    is ref $res->{json}, 'ARRAY', 'response is a bare JSON array';
    is scalar @{ $res->{json} }, 10, 'default limit is 10';

    my $all = ok_get('/users?limit=500&order_by=created_at');
    @users = @$all;
    is scalar @users, 200, 'limit=500 returns every user';

    my @required = qw(id object username first_name last_name has_image primary_email_address_id
        primary_phone_number_id primary_web3_wallet_id password_enabled two_factor_enabled totp_enabled
        backup_code_enabled email_addresses phone_numbers web3_wallets passkeys external_accounts
        saml_accounts enterprise_accounts public_metadata external_id last_sign_in_at banned locked
        lockout_expires_in_seconds verification_attempts_remaining created_at updated_at
        delete_self_enabled create_organization_enabled last_active_at mfa_enabled_at mfa_disabled_at
        legal_accepted_at);
    my @missing = map { my $u = $_; map { exists $u->{$_} ? () : "$u->{id}.$_" } @required } @users;
    is_deeply \@missing, [], 'every user has every required User field';
    ok((all { $_->{object} eq 'user' } @users), 'object discriminator is "user"');
    ok((all { $_->{id} =~ /^user_[0-9A-Za-z]{27}$/ } @users), 'ids look like Clerk user ids');
    ok((all { $_->{created_at} > 1_500_000_000_000 && $_->{created_at} < 10_000_000_000_000 } @users),
        'created_at is in Unix milliseconds');
    ok((all { $_->{updated_at} >= $_->{created_at} } @users), 'updated_at >= created_at');

    my @emails = map { @{ $_->{email_addresses} } } @users;
    ok((all { $_->{id} =~ /^idn_/ && $_->{object} eq 'email_address' && exists $_->{verification}
              && ref $_->{linked_to} eq 'ARRAY' && $_->{email_address} =~ /\@/ } @emails),
        'email_addresses have id/object/email_address/verification/linked_to');
    ok((all { my $u = $_; !defined $u->{primary_email_address_id}
              || any { $_->{id} eq $u->{primary_email_address_id} } @{ $u->{email_addresses} } } @users),
        'primary_email_address_id points at one of the user\'s emails');
    ok((any { @{ $_->{email_addresses} } > 1 } @users), 'some users have several email addresses');
    ok((any { @{ $_->{email_addresses} } == 0 } @users), 'some users have no email address');
    ok((any { @{ $_->{phone_numbers} } > 1 } @users), 'some users have several phone numbers');
    ok((any { @{ $_->{external_accounts} } } @users), 'some users have external accounts');
    ok((any { any { @{ $_->{linked_to} } } @{ $_->{email_addresses} } } @users), 'some emails are linked to OAuth');
    ok((any { !defined $_->{username} } @users), 'some usernames are null');
    ok((any { !defined $_->{last_name} } @users), 'some last names are null');
    ok((any { !defined $_->{image_url} } @users), 'some image_urls are null');
    ok((any { any { ref $_ eq 'HASH' } values %{ $_->{public_metadata} } } @users), 'nested public_metadata');
    ok((any { !defined $_->{private_metadata} } @users), 'some private_metadata is null');
    ok((any { ($_->{first_name} // '') =~ /[^\x00-\x7f]/ || ($_->{last_name} // '') =~ /[^\x00-\x7f]/ } @users),
        'some names are non-ASCII');
    ok((any { ($_->{first_name} // '') =~ /[\x{1F300}-\x{1FAFF}]/ } @users), 'some names contain an emoji');
    my $raw = $mock->get('/users?limit=500')->{content};
    ok $raw =~ /[\x80-\xff]/, 'non-ASCII is sent as raw UTF-8, not only as \\u escapes';
};

subtest 'limit / offset / params validation' => sub {
    error_is $mock->get('/users?limit=501'), 422, 'form_param_value_invalid', 'limit=501 -> 422';
    is $mock->get('/users?limit=501')->{json}{errors}[0]{meta}{param_name}, 'limit', 'meta.param_name = limit';
    error_is $mock->get('/users?limit=0'), 422, 'form_param_value_invalid', 'limit=0 -> 422';
    error_is $mock->get('/users?limit=ten'), 422, 'form_param_value_invalid', 'limit=ten -> 422';
    my $j = error_is $mock->get('/users?offset=-1'), 422, 'form_param_value_invalid', 'offset=-1 -> 422';
    is $j->{errors}[0]{meta}{param_name}, 'offset', 'meta.param_name = offset';
    error_is $mock->get('/users?order_by=shoe_size'), 422, 'form_param_value_invalid', 'bad order_by -> 422';
    error_is $mock->get('/users?frobnicate=1'), 422, 'form_param_unknown', 'unknown parameter -> 422';
    error_is $mock->get('/organizations?limit=501'), 422, 'form_param_value_invalid', 'orgs limit=501 -> 422';
    error_is $mock->get('/organization_memberships?limit=501'), 422, 'form_param_value_invalid',
        'instance memberships limit=501 -> 422';
    is scalar @{ ok_get('/users?limit=500&offset=195') }, 5, 'offset near the end returns the remainder';
    is scalar @{ ok_get('/users?offset=5000') }, 0, 'offset past the end returns an empty array';
};

subtest 'ordering' => sub {
    my $default = ok_get('/users');
    my @c = map { $_->{created_at} } @$default;
    ok strictly(sub { $_[0] > $_[1] }, @c), 'default order is newest first';
    is_deeply [ ids(@$default) ], [ reverse ids(@users[-10 .. -1]) ], 'default page = 10 newest users';
    is_deeply [ ids(@{ ok_get('/users?order_by=-created_at') }) ], [ ids(@$default) ], '-created_at = default';
    my $asc = ok_get('/users?order_by=%2Bcreated_at');
    is_deeply [ ids(@$asc) ], [ ids(@users[0 .. 9]) ], '+created_at is oldest first';
    ok strictly(sub { $_[0] < $_[1] }, map { $_->{created_at} } @users), 'created_at strictly increases';
    my $up = ok_get('/users?order_by=updated_at&limit=500');
    ok strictly(sub { $_[0] <= $_[1] }, map { $_->{updated_at} } @$up), 'updated_at ascending';
    my $down = ok_get('/users?order_by=-updated_at&limit=500');
    ok strictly(sub { $_[0] >= $_[1] }, map { $_->{updated_at} } @$down), '-updated_at descending';
    isnt join(',', ids(@$up)), join(',', ids(@users)), 'updated_at order differs from created_at order';
};

subtest 'pagination covers every id exactly once' => sub {
    for my $order (qw(created_at -created_at updated_at -updated_at)) {
        my @got = ids(walk("/users?order_by=$order", 7));
        is scalar @got, 200, "$order: 200 rows";
        is uniq_count(@got), 200, "$order: 200 distinct ids";
    }
    my @orgs = ids(walk('/organizations', 4));
    is uniq_count(@orgs), 6, 'organizations: 6 distinct ids';
    my @mems = ids(walk('/organization_memberships', 13));
    is uniq_count(@mems), 90, 'instance memberships: 90 distinct ids';
};

subtest 'count, get by id, filters, cursor' => sub {
    is_deeply ok_get('/users/count'), { object => 'total_count', total_count => 200 }, '/users/count';
    my $u = $users[17];
    is_deeply ok_get("/users/$u->{id}"), $u, 'GET /users/{id} returns the listed object';
    my $e = error_is $mock->get('/users/user_2doesnotexist000000000000'), 404, 'resource_not_found', 'unknown user';
    like $e->{errors}[0]{long_message}, qr/No user was found/, 'user not found long_message';

    my ($a, $b) = ($users[3]{id}, $users[150]{id});
    my $two = ok_get("/users?user_id=$a&user_id=$b&limit=5");
    is_deeply [ sort(ids(@$two)) ], [ sort($a, $b) ], 'repeated user_id filter';
    is ok_get("/users/count?user_id=-$a")->{total_count}, 199, 'user_id=-id excludes';
    my ($withmail) = grep { defined $_->{primary_email_address_id} } @users[100 .. 199];
    my ($addr) = map { $_->{email_address} } grep { $_->{id} eq $withmail->{primary_email_address_id} }
        @{ $withmail->{email_addresses} };
    is_deeply [ ids(@{ ok_get('/users?email_address=' . uri_escape(uc $addr)) }) ], [ $withmail->{id} ],
        'email_address filter (case-insensitive)';
    is ok_get('/users/count?email_address=nobody@nowhere.test')->{total_count}, 0, 'count with unmatched email';

    my $p1 = ok_get('/users?limit=10');
    my $p2 = ok_get("/users?limit=10&starting_after=$p1->[-1]{id}");
    is_deeply [ ids(@$p2) ], [ ids(@{ ok_get('/users?limit=10&offset=10') }) ], 'starting_after = next page';
    error_is $mock->get("/users?order_by=updated_at&starting_after=$a"), 422, 'form_param_value_invalid',
        'starting_after needs created_at ordering';
};

my (@orgs, @mems);
subtest 'organizations' => sub {
    my $res = $mock->get('/organizations');
    is ref $res->{json}, 'HASH', '{data,total_count} object';
    is $res->{json}{total_count}, 6, 'total_count';
    is scalar @{ $res->{json}{data} }, 6, 'all 6 on the default page';
    ok((all { !exists $_->{members_count} } @{ $res->{json}{data} }), 'no members_count unless asked');
    @orgs = @{ ok_get('/organizations?include_members_count=true&order_by=created_at')->{data} };
    ok((all { defined $_->{members_count} && $_->{members_count} =~ /^\d+$/ } @orgs), 'members_count when asked');
    my @required = qw(object id name slug has_image max_allowed_memberships admin_delete_enabled
        public_metadata created_at updated_at);
    ok((all { my $o = $_; all { exists $o->{$_} } @required } @orgs), 'required Organization fields');
    ok((all { $_->{object} eq 'organization' && $_->{id} =~ /^org_[0-9A-Za-z]{27}$/ } @orgs), 'org ids/objects');
    ok strictly(sub { $_[0] < $_[1] }, map { $_->{created_at} } @orgs), 'created_at ascending';
    my @names = map { $_->{name} } @{ ok_get('/organizations?order_by=name')->{data} };
    is_deeply \@names, [ sort @names ], 'order_by=name';

    my $o = $orgs[2];
    is ok_get("/organizations/$o->{id}")->{id}, $o->{id}, 'GET by id';
    is ok_get("/organizations/$o->{slug}")->{id}, $o->{id}, 'GET by slug';
    my $e = error_is $mock->get('/organizations/org_2nothere'), 404, 'resource_not_found', 'unknown org';
    is $e->{errors}[0]{long_message}, 'Given organization not found.', 'org not found long_message';
    error_is $mock->get('/organizations/org_2nothere/memberships'), 404, 'resource_not_found',
        'memberships of an unknown org';

    my $total = ok_get('/organization_memberships?limit=1')->{total_count};
    is sum0(map { $_->{members_count} } @orgs), $total, 'members_count adds up to the membership total';
    for my $org (@orgs) {
        my @m = walk("/organizations/$org->{id}/memberships", 5);
        is scalar @m, $org->{members_count}, "org $org->{slug}: members listed = members_count";
        ok((all { $_->{organization}{id} eq $org->{id} } @m), "org $org->{slug}: memberships belong to it");
    }
};

subtest 'memberships' => sub {
    @mems = walk('/organization_memberships?order_by=created_at', 50);
    is scalar @mems, 90, '90 memberships';
    my %uid = map { $_->{id} => 1 } @users;
    my %oid = map { $_->{id} => 1 } @orgs;
    ok((all { $uid{ $_->{public_user_data}{user_id} } } @mems), 'every membership links a real user');
    ok((all { $oid{ $_->{organization}{id} } } @mems), 'every membership links a real organization');
    is uniq_count(map { "$_->{organization}{id}/$_->{public_user_data}{user_id}" } @mems), 90,
        'no duplicate (organization, user) pair';
    ok((all { $_->{object} eq 'organization_membership' && $_->{id} =~ /^orgmem_[0-9A-Za-z]{27}$/
              && $_->{role} =~ /^org:/ && defined $_->{role_name} && ref $_->{permissions} eq 'ARRAY'
              && ref $_->{public_metadata} eq 'HASH' && ref $_->{private_metadata} eq 'HASH'
              && exists $_->{public_user_data}{identifier} && exists $_->{public_user_data}{image_url}
              && $_->{created_at} > 1_500_000_000_000 } @mems), 'membership shape');
    ok strictly(sub { $_[0] < $_[1] }, map { $_->{created_at} } @mems), 'created_at ascending';
    my $m = $mems[7];
    my $u = ok_get("/users/$m->{public_user_data}{user_id}");
    is $m->{public_user_data}{first_name}, $u->{first_name}, 'public_user_data matches the user';
    my $f = ok_get("/organizations/$m->{organization}{id}/memberships?user_id=$m->{public_user_data}{user_id}");
    is_deeply [ ids(@{ $f->{data} }) ], [ $m->{id} ], 'per-org user_id filter';
    is $f->{total_count}, 1, 'filtered total_count';
    my $first = ok_get('/organization_memberships?limit=1')->{data}[0];
    is $first->{id}, $mems[-1]{id}, 'instance memberships default to newest first';
};

subtest 'authentication, API version, unknown paths' => sub {
    error_is $mock->get('/users', auth => 0), 401, 'authorization_header_format_invalid', 'no Authorization';
    error_is $mock->get('/users', raw_auth => 'Basic Zm9vOmJhcg=='), 401, 'authorization_header_format_invalid',
        'Basic scheme';
    error_is $mock->get('/users', raw_auth => 'Bearer'), 401, 'authorization_header_format_invalid', 'no token';
    error_is $mock->get('/users', auth => 'sk_test_wrong'), 401, 'authentication_invalid', 'wrong key';
    is $mock->get('/users', headers => { 'Clerk-API-Version' => '2025-11-10' })->{status}, 200, 'dated version ok';
    error_is $mock->get('/users', headers => { 'Clerk-API-Version' => 'latest' }), 400, 'api_version_invalid',
        'non-date version';
    error_is $mock->get('/users', headers => { 'Clerk-API-Version' => '2025-13-45' }), 400, 'api_version_invalid',
        'impossible date';
    error_is $mock->get('/nope'), 404, 'resource_not_found', 'unknown /v1 path';
    error_is $mock->get('/users/user_x/nothing'), 404, 'resource_not_found', 'unknown nested path';
};

subtest 'rate limiting' => sub {
    $mock->configure(rate_limit => 3);
    my @st = map { $mock->get('/users/count')->{status} } 1 .. 3;
    is_deeply \@st, [ 200, 200, 200 ], 'first 3 requests pass';
    my $res = $mock->get('/users/count');
    error_is $res, 429, 'too_many_requests', '4th request in the window -> 429';
    like $res->{headers}{'retry-after'} // '', qr/^\d+$/, 'Retry-After is an integer';
    ok(($res->{headers}{'retry-after'} // 0) >= 1 && $res->{headers}{'retry-after'} <= 10, 'Retry-After in 1..10');
    ok $mock->stats->{rate_limited} >= 1, 'stats.rate_limited counts it';

    $mock->configure(rate_limit => 2, rate_limit_window => 1);
    $mock->get('/users/count') for 1 .. 2;
    my $r = $mock->get('/users/count');
    is $r->{status}, 429, 'limited with a 1 s window';
    sleep $r->{headers}{'retry-after'} + 0.1;
    is $mock->get('/users/count')->{status}, 200, 'allowed again after Retry-After';
    $mock->configure(rate_limit => 0, rate_limit_window => 10);
    is_deeply [ map { $mock->get('/users/count')->{status} } 1 .. 5 ], [ (200) x 5 ], 'unlimited again';
};

subtest 'faults' => sub {
    $mock->add_fault(kind => 'status', status => 503);
    error_is $mock->get('/users'), 503, 'service_unavailable', 'status fault 503';
    is $mock->get('/users')->{status}, 200, 'count defaults to 1';

    $mock->add_fault(kind => 'status', status => 429, retry_after => 7);
    my $r = $mock->get('/organizations');
    error_is $r, 429, 'too_many_requests', 'status fault 429';
    is $r->{headers}{'retry-after'}, 7, 'Retry-After from the fault';

    $mock->add_fault(kind => 'status', status => 500, path => '^/v1/organizations');
    is $mock->get('/users')->{status}, 200, 'path regex: /users unaffected';
    error_is $mock->get('/organizations'), 500, 'internal_clerk_error', 'path regex: /organizations hit';

    $mock->add_fault(kind => 'status', status => 502, skip => 2, count => 2);
    is_deeply [ map { $mock->get('/users/count')->{status} } 1 .. 5 ], [ 200, 200, 502, 502, 200 ],
        'skip 2 then 2 failures';

    $mock->add_fault(kind => 'status', status => 500, rate => 0);
    is_deeply [ map { $mock->get('/users/count')->{status} } 1 .. 5 ], [ (200) x 5 ], 'rate 0 never fires';
    $mock->clear_faults;
    $mock->add_fault(kind => 'status', status => 401, rate => 1);
    is_deeply [ map { $mock->get('/users/count')->{status} } 1 .. 3 ], [ (401) x 3 ], 'rate 1 fires every time';
    is scalar @{ $mock->control(GET => 'faults') }, 1, 'fault listed';
    $mock->clear_faults;
    is scalar @{ $mock->control(GET => 'faults') }, 0, 'DELETE /__mock/faults clears';
    is $mock->get('/users/count')->{status}, 200, 'healthy after clearing';

    $mock->add_fault(kind => 'latency', latency_ms => 400);
    my $t0 = time;
    is $mock->get('/users/count')->{status}, 200, 'latency fault still answers';
    cmp_ok time - $t0, '>=', 0.38, 'latency fault delays the answer';

    $mock->add_fault(kind => 'hang');
    $t0 = time;
    my $h = $mock->raw_get('/users', timeout => 1.5);
    ok $h->{timed_out}, 'hang: no answer before the client gives up';
    is $h->{raw}, '', 'hang: nothing was sent';
    my $logged;
    for (1 .. 40) {
        ($logged) = grep { ($_->{fault} // '') eq 'hang' } @{ $mock->requests };
        last if $logged;
        sleep 0.1;
    }
    ok $logged, 'hang: the mock notices the client went away';

    $mock->add_fault(kind => 'drop');
    $t0 = time;
    my $d = $mock->raw_get('/users', timeout => 5);
    is $d->{raw}, '', 'drop: connection closed without a response';
    ok !$d->{timed_out} && time - $t0 < 3, 'drop: closed promptly';

    $mock->add_fault(kind => 'malformed');
    my $m = $mock->raw_get('/users', timeout => 5);
    is $m->{status}, 200, 'malformed: status 200';
    ok !eval { decode_json($m->{body}); 1 }, 'malformed: body is not valid JSON';

    $mock->add_fault(kind => 'truncated');
    my $t = $mock->raw_get('/users?limit=50', timeout => 5);
    is $t->{status}, 200, 'truncated: status 200';
    cmp_ok length($t->{body}), '>', 0, 'truncated: part of the body was sent';
    cmp_ok $t->{headers}{'content-length'}, '>', length($t->{body}), 'truncated: fewer bytes than Content-Length';
    is $mock->get('/users')->{status}, 200, 'normal service after one-shot faults';

    my $bad = $mock->control_raw(POST => 'faults', { kind => 'gremlins' });
    is $bad->{status}, 400, 'unknown fault kind rejected';
};

subtest 'control API: create, update, delete' => sub {
    my $now = time * 1000;
    my $u = $mock->control(POST => 'users',
        { first_name => 'Zoë', last_name => undef, email_address => ['new.person@example.com'] });
    like $u->{id}, qr/^user_[0-9A-Za-z]{27}$/, 'created user has a Clerk-like id';
    ok abs($u->{created_at} - $now) < 60_000, 'created_at is now (ms)';
    is $u->{email_addresses}[0]{email_address}, 'new.person@example.com', 'email from email_address';
    is $u->{primary_email_address_id}, $u->{email_addresses}[0]{id}, 'primary email set';
    is ok_get('/users/count')->{total_count}, 201, 'count includes the new user';
    is ok_get('/users?limit=1')->[0]{id}, $u->{id}, 'newest first puts it on top';
    is_deeply [ ids(@{ ok_get('/users?email_address=new.person@example.com') }) ], [ $u->{id} ], 'found by email';
    is ok_get("/users/$u->{id}")->{first_name}, 'Zoë', 'GET returns the created user';

    my $target = $users[10];
    my $p = $mock->control(PATCH => "users/$target->{id}",
        { first_name => "nul\x{0}byte", public_metadata => { injected => { deep => 1 } } });
    cmp_ok $p->{updated_at}, '>', $target->{updated_at}, 'PATCH bumps updated_at';
    my $g = ok_get("/users/$target->{id}");
    is $g->{first_name}, "nul\x{0}byte", 'arbitrary value (NUL) stored and served';
    is $g->{public_metadata}{injected}{deep}, 1, 'metadata merged';
    is_deeply { map { $_ => $g->{public_metadata}{$_} } grep { $_ ne 'injected' } keys %{ $g->{public_metadata} } },
        $target->{public_metadata}, 'existing metadata keys kept';
    $mock->control(PATCH => "users/$target->{id}", { created_at => 'not-a-number', email_addresses => 'oops' });
    my $g2 = ok_get("/users/$target->{id}");
    is $g2->{created_at}, 'not-a-number', 'type-violating value served as given';
    is ok_get('/users?limit=500&order_by=-updated_at')->[0]{id}, $target->{id}, 'patched user is most recently updated';

    # Delete a user that has memberships: they go too.
    my %per_user;
    $per_user{ $_->{public_user_data}{user_id} }++ for @mems;
    my ($victim) = sort { $per_user{$b} <=> $per_user{$a} || $a cmp $b } keys %per_user;
    my $before = ok_get('/organization_memberships?limit=1')->{total_count};
    is_deeply $mock->control(DELETE => "users/$victim"), { object => 'user', id => $victim, deleted => JSON::PP::true },
        'DELETE returns a deleted object';
    error_is $mock->get("/users/$victim"), 404, 'resource_not_found', 'deleted user is gone';
    is ok_get('/users/count')->{total_count}, 200, 'count drops';
    ok !(grep { $_ eq $victim } ids(walk('/users', 100))), 'deleted user not listed';
    is ok_get('/organization_memberships?limit=1')->{total_count}, $before - $per_user{$victim},
        'its memberships are removed';
    my @mc = map { $_->{members_count} } @{ ok_get('/organizations?include_members_count=true')->{data} };
    is sum0(@mc), $before - $per_user{$victim}, 'members_count follows';

    # Organizations and memberships.
    my $o = $mock->control(POST => 'organizations', { name => 'Ünïcode Org', public_metadata => { a => 1 } });
    like $o->{id}, qr/^org_/, 'created org';
    like $o->{slug}, qr/^unicode-org-/, 'slug derived from name';
    is ok_get('/organizations')->{total_count}, 7, 'org count includes it';
    my $mem = $mock->control(POST => 'organization_memberships',
        { organization_id => $o->{id}, user_id => $u->{id}, role => 'org:admin' });
    like $mem->{id}, qr/^orgmem_/, 'created membership';
    is $mem->{role_name}, 'Admin', 'role_name from role';
    is $mem->{public_user_data}{user_id}, $u->{id}, 'membership user';
    is ok_get("/organizations/$o->{id}?include_members_count=true")->{members_count}, 1, 'members_count 1';
    is $mock->control_raw(POST => 'organization_memberships', { organization_id => $o->{id}, user_id => $u->{id} })
        ->{status}, 409, 'duplicate membership rejected';
    my $pm = $mock->control(PATCH => "organization_memberships/$mem->{id}", { role => 'org:member' });
    is $pm->{role_name}, 'Member', 'membership role updated';
    my $before2 = ok_get('/organization_memberships?limit=1')->{total_count};
    $mock->control(DELETE => "organizations/$o->{id}");
    error_is $mock->get("/organizations/$o->{id}"), 404, 'resource_not_found', 'deleted org gone';
    is ok_get('/organization_memberships?limit=1')->{total_count}, $before2 - 1, 'org deletion removes memberships';
    my ($some) = grep { $_->{public_user_data}{user_id} ne $victim } @mems;
    $mock->control(DELETE => "organization_memberships/$some->{id}");
    is ok_get('/organization_memberships?limit=1')->{total_count}, $before2 - 2, 'membership deleted';
    is $mock->control_raw(DELETE => "organization_memberships/$some->{id}")->{status}, 404, 'double delete -> 404';

    my $st = $mock->reset;
    is_deeply [ @$st{qw(users organizations organization_memberships)} ], [ 200, 6, 90 ], 'reset restores counts';
    is ok_get("/users/$victim")->{id}, $victim, 'reset brings deleted users back';
    is_deeply ok_get("/users/$target->{id}"), $target, 'reset drops patches';
};

subtest 'triggers' => sub {
    my @asc = ids(@users);
    my $id = $mock->add_trigger(path => '^/v1/users\?', on_request => 3,
        delete => { users => [ $asc[5], $asc[40] ] });
    ok $id, 'trigger added';
    my @seen = ids(walk('/users?order_by=created_at', 10));
    ok((grep { $_ eq $asc[5] } @seen), 'user deleted after it was read was seen');
    ok !(grep { $_ eq $asc[40] } @seen), 'user deleted before it was read is not seen';
    ok !(grep { $_ eq $asc[20] } @seen), 'offset paging skips one user after a deletion behind it';
    is uniq_count(@seen), 198, '198 distinct users seen';
    my ($t) = @{ $mock->control(GET => 'triggers') };
    ok $t->{fired}, 'trigger reported as fired';

    $mock->add_trigger(path => '^/v1/users/count', on_request => 2, create_users => 2, update_users => [ $asc[0] ]);
    is ok_get('/users/count')->{total_count}, 198, 'before the trigger';
    is ok_get('/users/count')->{total_count}, 200, 'trigger created 2 users just before the 2nd request';
    cmp_ok ok_get("/users/$asc[0]")->{updated_at}, '>', $users[0]{updated_at}, 'and updated a user';
    $mock->clear_triggers;
    $mock->reset;
};

subtest 'request log and secrecy' => sub {
    $mock->clear_requests;
    ok_get('/users?limit=1');
    ok_get('/organizations?limit=1');
    my $log = $mock->requests;
    is scalar @$log, 2, 'two requests logged (control calls are not)';
    is $log->[0]{path}, '/v1/users', 'path';
    is $log->[0]{query}, 'limit=1', 'query';
    is $log->[0]{status}, 200, 'status';
    is $log->[0]{method}, 'GET', 'method';
    ok $log->[0]{time} > 1_600_000_000, 'time';
    my ($auth) = map { $log->[0]{headers}{$_} } grep { lc $_ eq 'authorization' } keys %{ $log->[0]{headers} };
    is $auth, 'sha256:' . sha256_hex('Bearer ' . $mock->secret_key), 'Authorization stored as a sha256';
    my $key = $mock->secret_key;
    my $raw = $mock->control_raw(GET => 'requests')->{content};
    unlike $raw, qr/\Q$key\E/, 'request log never contains the key';
    unlike $mock->control_raw(GET => 'config')->{content}, qr/\Q$key\E/, 'config never contains the key';
    open my $fh, '<', $mock->log_file or die $!;
    my $file = do { local $/; <$fh> };
    like $file, qr{GET /v1/users\?limit=1 200}, 'log file has request lines';
    unlike $file, qr/\Q$key\E/, 'log file never contains the key';
    unlike $mock->output, qr/\Q$key\E/, 'stdout/stderr never contain the key';
    my $ps = `ps -o args= -p ${\ $mock->pid} 2>/dev/null`;
    unlike $ps, qr/\Q$key\E/, 'key not on the command line';
};

subtest 'stats and concurrency' => sub {
    $mock->add_fault(kind => 'latency', latency_ms => 700, count => 4);
    my @kids;
    for (1 .. 4) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $r = HTTP::Tiny->new->get($mock->url . '/users/count',
                { headers => { Authorization => 'Bearer ' . $mock->secret_key } });
            POSIX::_exit($r->{status} == 200 ? 0 : 1);
        }
        push @kids, $pid;
    }
    my @rc = map { waitpid($_, 0); $? >> 8 } @kids;
    is_deeply \@rc, [ 0, 0, 0, 0 ], 'concurrent requests all succeed';
    my $s = $mock->stats;
    cmp_ok $s->{max_in_flight}, '>=', 3, 'requests were served concurrently';
    cmp_ok $s->{requests}, '>', 4, 'requests counted';
    cmp_ok $s->{by_status}{200}, '>', 0, 'by_status';
    cmp_ok $s->{by_path_prefix}{'/v1/users/count'}, '>=', 4, 'by_path_prefix';
};

subtest 'disable_instance_memberships' => sub {
    $mock->configure(disable_instance_memberships => JSON::PP::true);
    error_is $mock->get('/organization_memberships'), 404, 'resource_not_found', 'endpoint disabled -> 404';
    $mock->configure(disable_instance_memberships => JSON::PP::false);
    is $mock->get('/organization_memberships')->{status}, 200, 'enabled again';
};

subtest 'determinism' => sub {
    $mock->reset;
    my $twin  = ClerkMock->new(%GEN);
    my $other = ClerkMock->new(%GEN, seed => 43);
    for my $path ('/users?limit=500&order_by=created_at', '/organizations?include_members_count=true',
                  '/organization_memberships?limit=500') {
        my $x = $mock->get($path)->{json};
        is $JSON->encode($twin->get($path)->{json}), $JSON->encode($x), "same seed, same data: $path";
        isnt $JSON->encode($other->get($path)->{json}), $JSON->encode($x), "other seed, other data: $path";
    }
    my @ids = ids(@{ $twin->get('/users?limit=500')->{json} });
    is ok_get("/users/$ids[0]")->{id}, $ids[0], 'ids are stable across processes';
    $twin->stop;
    $other->stop;
};

subtest 'scale' => sub {
    my $t0 = time;
    my $big = ClerkMock->new(users => 100_000, organizations => 5_000, memberships => 150_000, seed => 5);
    my $startup = time - $t0;
    cmp_ok $startup, '<', 5, sprintf('100k users start in %.2f s', $startup);
    is $big->get('/users/count')->{json}{total_count}, 100_000, '100k users';
    # Server-side durations from the request log (decoding 1 MB with JSON::PP
    # here would dominate a client-side measurement).
    my $r = $big->get('/users?limit=500&offset=99000&order_by=created_at');
    is scalar @{ $r->{json} }, 500, '500 users at offset 99000';
    my $m = $big->get('/organization_memberships?limit=500&offset=140000')->{json};
    is $m->{total_count}, 150_000, '150k memberships';
    is scalar @{ $m->{data} }, 500, '500 memberships at offset 140000';
    my %ms = map { $_->{path} => $_->{duration_ms} } @{ $big->requests };
    cmp_ok $ms{'/v1/users'}, '<', 1000, sprintf('users page served in %.0f ms', $ms{'/v1/users'});
    cmp_ok $ms{'/v1/organization_memberships'}, '<', 1000,
        sprintf('memberships page served in %.0f ms', $ms{'/v1/organization_memberships'});
    is uniq_count(map { "$_->{organization}{id}/$_->{public_user_data}{user_id}" } @{ $m->{data} }), 500,
        'no duplicate pairs in the page';
    my $orgs = $big->get('/organizations?limit=500&include_members_count=true&order_by=-members_count')->{json};
    is $orgs->{total_count}, 5000, '5000 organizations';
    my $top = $orgs->{data}[0];
    is $big->get("/organizations/$top->{id}/memberships?limit=1")->{json}{total_count}, $top->{members_count},
        'largest org: members_count consistent';
    $big->stop;
};

subtest 'created_at ranges and the offset cost' => sub {
    my $m = ClerkMock->new(users => 300, organizations => 3, memberships => 10, seed => 13);
    my @all = @{ $m->get('/users?limit=500&order_by=created_at')->{json} };
    my ($lo, $hi) = ($all[99]{created_at}, $all[199]{created_at});
    my @mid = @{ $m->get("/users?limit=500&order_by=created_at&created_at_after=$lo&created_at_before=$hi")->{json} };
    is_deeply [ ids(@mid) ], [ ids(@all[100 .. 198]) ], 'created_at_after and created_at_before are exclusive bounds';
    is $m->get("/users/count?created_at_after=$lo&created_at_before=$hi")->{json}{total_count}, 99,
        '/users/count takes the same filters';
    my @after = @{ $m->get("/users?limit=500&order_by=created_at&created_at_after=$lo&starting_after=$all[149]{id}")->{json} };
    is_deeply [ ids(@after) ], [ ids(@all[150 .. 299]) ], 'with a cursor inside the range';
    $m->configure(offset_cost_us => 2000);
    my $t0 = time;
    $m->get('/users?limit=1&offset=250&order_by=created_at');
    my $offset_secs = time - $t0;
    cmp_ok $offset_secs, '>=', 0.45, 'offset_cost_us adds latency per skipped row (250 x 2 ms)';
    $t0 = time;
    $m->get("/users?limit=1&order_by=created_at&starting_after=$all[250]{id}");
    cmp_ok time - $t0, '<', $offset_secs, 'a cursor page does not pay it';
    $m->stop;
};

$mock->stop;
done_testing;
