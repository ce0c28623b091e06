#!/usr/bin/perl
# Fidelity tests for the mock Clerk Backend API (test/mock_clerk.py).
# No PostgreSQL needed:  PERL5LIB=test/perl prove -v t/001_mock.pl

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/../test/perl";

use ClerkMock;
use Digest::SHA qw(sha256_hex hmac_sha256);
use JSON::PP;
use List::Util qw(sum0 any all);
use MIME::Base64 qw(encode_base64 decode_base64);
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

# --- mock fidelity: more resources ---------------------------------------------
# Organization invitations, instance invitations, organization domains, roles,
# permissions and sessions (test/README.md, "More resources"): their shapes
# against Clerk's BAPI spec (shared/clerk/bapi-openapi.yml), listings, filters
# and errors, endpoint_errors, the control API, cascades, and the webhook
# events of webhooks-openapi.yml with their Svix signatures.

# Schema fields: [required], [every property the schema lists].
my %SCHEMA = (
    organization_invitation => [
        [qw(object id email_address role role_name public_metadata url expires_at created_at updated_at inviter_id
            public_inviter_data)],
        [qw(object id email_address role role_name organization_id inviter_id public_inviter_data status
            public_metadata private_metadata url expires_at created_at updated_at)] ],
    inviter      => [ [qw(user_id first_name last_name image_url has_image identifier)],
                      [qw(user_id first_name last_name image_url has_image identifier)] ],
    public_org   => [ [qw(id name slug has_image)], [qw(id name slug image_url has_image)] ],
    invitation   => [ [qw(object id email_address public_metadata status created_at updated_at)],
                      [qw(object id email_address public_metadata revoked status url expires_at created_at updated_at)] ],
    organization_domain => [
        [qw(object id organization_id name enrollment_mode affiliation_email_address affiliation_verification
            ownership_verification verification total_pending_invitations total_pending_suggestions created_at
            updated_at)],
        [qw(object id organization_id name enrollment_mode affiliation_email_address affiliation_verification
            ownership_verification verification total_pending_invitations total_pending_suggestions
            public_organization_data created_at updated_at)] ],
    domain_verification => [ [qw(status strategy attempts expire_at verified_at)],
                             [qw(status strategy attempts expire_at verified_at)] ],
    role         => [ [qw(object id name key description is_creator_eligible permissions created_at updated_at)],
                      [qw(object id name key description is_creator_eligible permissions created_at updated_at)] ],
    permission   => [ [qw(object id name key description type created_at updated_at)],
                      [qw(object id name key description type created_at updated_at)] ],
    session      => [ [qw(object id user_id client_id status last_active_at expire_at abandon_at updated_at created_at)],
                      [qw(object id user_id client_id actor status last_active_organization_id last_active_at
                          latest_activity expire_at abandon_at updated_at created_at tasks)] ],
    session_activity => [ [qw(id object is_mobile)],
                          [qw(object id device_type is_mobile browser_name browser_version ip_address city country)] ],
    # webhooks-openapi.yml: Session has no tasks; SessionEventPayload adds the user
    session_event => [ [qw(object id user_id client_id status last_active_at expire_at abandon_at updated_at created_at
                           user)],
                       [qw(object id user_id client_id actor status last_active_organization_id last_active_at
                           latest_activity expire_at abandon_at updated_at created_at user)] ],
);
my @ORGINV_STATUS  = qw(pending accepted revoked expired);
my @INV_STATUS     = qw(pending accepted revoked expired);
my @SESSION_STATUS = qw(active revoked ended expired removed abandoned replaced pending);
my @ENROLLMENT     = qw(manual_invitation automatic_invitation automatic_suggestion enterprise_sso);
my @DOMVER_STATUS  = qw(unverified verified failed expired);
my $DAY_MS = 24 * 3600 * 1000;

# What is wrong with $obj's fields for a schema: missing required ones, unlisted ones.
sub shape_problems {
    my ($obj, $schema, @extra) = @_;
    return ('not an object') unless ref $obj eq 'HASH';
    my ($req, $props) = @{ $SCHEMA{$schema} };
    my %allowed = map { $_ => 1 } @$props, @extra;
    my $id = $obj->{id} // '?';
    return ((map { exists $obj->{$_} ? () : "$id: no $_" } @$req),
            (map { $allowed{$_} ? () : "$id: unlisted $_" } sort keys %$obj));
}

sub shapes_ok {
    my ($objs, $schema, $name, @extra) = @_;
    is_deeply [ map { shape_problems($_, $schema, @extra) } @$objs ], [], $name;
}

sub is_ms { my ($v) = @_; defined $v && !ref $v && $v =~ /^\d+$/ && $v > 1_500_000_000_000 && $v < 10_000_000_000_000 }

sub sorted_ids { [ sort(ids(@_)) ] }

sub uniq_list { my %s; grep { !$s{$_}++ } @_ }

sub bool01 { $_[0] ? 1 : 0 }

sub public_org_of { my ($o) = @_; return { map { $_ => $o->{$_} } qw(id name slug image_url has_image) } }

sub without { my ($h, @k) = @_; my %c = %$h; delete @c{@k}; return \%c }

# ClerkTest::svix_sign; ClerkTest itself is not loaded here, since it needs
# PostgreSQL::Test::Cluster and this file needs no PostgreSQL.
sub svix_sign {
    my ($secret, $id, $ts, $body) = @_;
    (my $b64 = $secret) =~ s/^whsec_//;
    return 'v1,' . encode_base64(hmac_sha256("$id.$ts.$body", decode_base64($b64)), '');
}

# the mock's signing secret for these tests: made up here, obviously fake
my $WHSEC = 'whsec_' . encode_base64('test_fake_webhook_secret_for_the_mock_events', '');
my $ev_seen = 0;    # seq of the last event looked at

# The events recorded since the last call, each with {raw} (the delivery's bytes) and {payload} (decoded).
sub new_events {
    my $ev = $mock->control(GET => "events?after=$ev_seen");
    $ev_seen = $ev->[-1]{seq} if @$ev;
    for my $e (@$ev) {
        my $raw = $e->{body} // '';
        utf8::encode($raw);
        $e->{raw} = $raw;
        $e->{payload} = eval { $JSON->decode($raw) };
    }
    return @$ev;
}

# events_ok([types], $name): the events since the last look are exactly these
# (in any order), each in Clerk's envelope and signed as Svix does with the
# configured secret.  Returns their payloads.
sub events_ok {
    my ($want, $name) = @_;
    my @ev = new_events();
    my $now = time;
    subtest $name => sub {
        is_deeply [ sort map { $_->{type} } @ev ], [ sort @$want ], 'events: ' . (join(', ', @$want) || 'none');
        for my $e (@ev) {
            my $p = $e->{payload};
            is $e->{svix_signature}, svix_sign($WHSEC, $e->{svix_id}, $e->{svix_timestamp} // '', $e->{raw}),
                "$e->{type}: Svix signature of the exact body";
            ok ref $p eq 'HASH' && $p->{object} eq 'event' && $p->{type} eq $e->{type} && ($p->{instance_id} // '') =~ /^ins_/
                && ref $p->{data} eq 'HASH' && ref $p->{event_attributes}{http_request} eq 'HASH'
                && is_ms($p->{timestamp}) && abs($p->{timestamp} - $now * 1000) < 60_000,
                "$e->{type}: envelope {data, event_attributes, instance_id, object: event, timestamp (ms, now), type}";
        }
    };
    return map { $_->{payload} } @ev;
}

sub of_type { my ($type, @p) = @_; return map { $_->{data} } grep { $_->{type} eq $type } @p }

my %MORE = (users => 60, organizations => 6, memberships => 120, seed => 42, organization_invitations => 60,
            organization_domains => 20, invitations => 40, sessions => 120, custom_roles => 3, custom_permissions => 5);
{
# A fresh connection per request: on a kept-alive connection each answer of
# the mock takes ~40 ms (it writes headers and body separately, and the second
# write waits for the client's delayed ACK), which would make the hundreds of
# requests below take many seconds; on a new connection it takes ~1 ms.
local $mock->{http} = HTTP::Tiny->new(keep_alive => 0, timeout => 60, agent => 'clerk-mock-tests/1.0');

my (@m_orgs, %org_by_id, @m_users, %user_by_id, @m_mems, @perms, %perm_by_id, @roles, %role_by_key, @oinv, @doms, @sess);

subtest 'more resources: sizes and state' => sub {
    my $st = $mock->reset(\%MORE);
    is_deeply [ @$st{qw(organization_invitations organization_domains invitations sessions organization_roles
                        organization_permissions)} ], [ 60, 20, 40, 120, 3 + 3, 7 + 5 ],
        'reset takes every size (3 system roles and 7 built-in permissions besides the custom ones)';
    is_deeply without($st->{generated}, qw(billing_plans billing_prices billing_subscription_items billing_statements
                                           billing_payment_attempts waitlist_entries)),
        { users => 60, organizations => 6, organization_memberships => 120,
        organization_invitations => 60, organization_domains => 20, invitations => 40, sessions => 120,
        organization_roles => 6, organization_permissions => 12 }, 'generated counts (billing: see below)';
    @m_orgs = @{ ok_get('/organizations?limit=500&order_by=created_at')->{data} };
    %org_by_id = map { $_->{id} => $_ } @m_orgs;
    @m_users = walk('/users?order_by=created_at', 500);
    %user_by_id = map { $_->{id} => $_ } @m_users;
    @m_mems = walk('/organization_memberships?order_by=created_at', 500);
    is_deeply [ scalar @m_orgs, scalar @m_users, scalar @m_mems ], [ 6, 60, 120 ], 'organizations, users, memberships';
};

subtest 'GET /organization_permissions and /organization_permissions/{id}' => sub {
    my $res = $mock->get('/organization_permissions');
    is ref $res->{json}, 'HASH', '{data,total_count} object';
    is $res->{json}{total_count}, 12, 'total_count';
    is scalar @{ $res->{json}{data} }, 10, 'default limit is 10';
    ok strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @{ $res->{json}{data} }), 'newest first by default';
    @perms = walk('/organization_permissions?order_by=created_at', 5);
    is uniq_count(ids(@perms)), 12, 'limit/offset walk: 12 distinct permissions';
    %perm_by_id = map { $_->{id} => $_ } @perms;
    shapes_ok \@perms, 'permission', 'Permission: every required field, no unlisted one';
    ok((all { $_->{object} eq 'permission' && $_->{id} =~ /^perm_[0-9A-Za-z]{27}$/ } @perms), 'object and id');
    ok((all { defined $_->{description} && !ref $_->{description} && defined $_->{name} } @perms),
        'description and name are strings');
    ok((all { $_->{type} =~ /^(?:system|user)$/ && $_->{key} =~ /^org:[\w:]+$/ } @perms), 'type system|user, org: keys');
    is uniq_count(map { $_->{key} } @perms), 12, 'keys are unique';
    is_deeply [ sort map { $_->{key} } grep { $_->{type} eq 'system' } @perms ],
        [ sort map { "org:sys_$_" } qw(profile:manage profile:delete memberships:read memberships:manage domains:read
                                       domains:manage) ], 'the six system permissions';
    ok((all { is_ms($_->{created_at}) && $_->{updated_at} >= $_->{created_at} } @perms), 'timestamps in ms');

    my @keys = map { $_->{key} } @{ ok_get('/organization_permissions?order_by=key&limit=500')->{data} };
    is_deeply \@keys, [ sort map { $_->{key} } @perms ], 'order_by=key';
    my @names = map { $_->{name} } @{ ok_get('/organization_permissions?order_by=-name&limit=500')->{data} };
    is_deeply \@names, [ reverse sort map { $_->{name} } @perms ], 'order_by=-name';
    my $p = $perms[4];
    is_deeply ok_get("/organization_permissions?query=$p->{id}")->{data}, [ $p ], 'query: exact id';
    is_deeply sorted_ids(@{ ok_get('/organization_permissions?query=SYS_DOMAINS&limit=500')->{data} }),
        sorted_ids(grep { $_->{key} =~ /sys_domains/ } @perms), 'query: part of the key, case-insensitive';
    is ok_get('/organization_permissions?query=no-such-thing')->{total_count}, 0, 'query without a match';
    is_deeply ok_get("/organization_permissions/$p->{id}"), $p, 'GET by id = the listed object';
    my $e = error_is $mock->get('/organization_permissions/perm_2nothere'), 404, 'resource_not_found', 'unknown permission';
    is $e->{errors}[0]{long_message}, 'Organization permission not found', 'long_message';
    error_is $mock->get('/organization_permissions?limit=501'), 422, 'form_param_value_invalid', 'limit=501 -> 422';
    error_is $mock->get('/organization_permissions?order_by=type'), 422, 'form_param_value_invalid', 'order_by=type -> 422';
    error_is $mock->get('/organization_permissions?type=system'), 422, 'form_param_unknown', 'unknown parameter -> 422';
};

subtest 'GET /organization_roles and /organization_roles/{id}' => sub {
    my $res = $mock->get('/organization_roles');
    is ref $res->{json}, 'HASH', '{data,total_count} object';
    is $res->{json}{total_count}, 6, 'total_count';
    ok strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @{ $res->{json}{data} }), 'newest first by default';
    @roles = walk('/organization_roles?order_by=created_at', 4);
    is uniq_count(ids(@roles)), 6, 'limit/offset walk: 6 distinct roles';
    %role_by_key = map { $_->{key} => $_ } @roles;
    shapes_ok \@roles, 'role', 'Role: every required field, no unlisted one';
    ok((all { $_->{object} eq 'role' && $_->{id} =~ /^role_[0-9A-Za-z]{27}$/ } @roles), 'object and id');
    ok((all { JSON::PP::is_bool($_->{is_creator_eligible}) && (!defined $_->{description} || !ref $_->{description}) }
        @roles), 'is_creator_eligible boolean, description string or null');
    ok $role_by_key{$_}, "system role $_" for qw(org:admin org:member org:billing_manager);
    ok $role_by_key{'org:admin'}{is_creator_eligible}, 'org:admin is creator-eligible';
    is uniq_count(map { $_->{key} } @roles), 6, 'keys are unique';
    my @rp = map { @{ $_->{permissions} } } @roles;
    ok @rp > 0, 'roles carry permissions';
    is_deeply [ grep { !$perm_by_id{ $_->{id} // '' } || $JSON->encode($_) ne $JSON->encode($perm_by_id{ $_->{id} }) } @rp ],
        [], 'role permissions are whole Permission objects, equal to the listed ones';
    my @mismatch = grep {
        my $r = $role_by_key{ $_->{role} };
        !$r || join(',', sort @{ $_->{permissions} }) ne join(',', sort map { $_->{key} } @{ $r->{permissions} })
    } @m_mems;
    is_deeply [ ids(@mismatch) ], [], "memberships carry their role's permissions";
    ok((all { $_->{role_name} eq $role_by_key{ $_->{role} }{name} } @m_mems), "membership role_name = the role's name");

    my @names = map { $_->{name} } @{ ok_get('/organization_roles?order_by=name&limit=500')->{data} };
    is_deeply \@names, [ sort map { $_->{name} } @roles ], 'order_by=name';
    my @keys = map { $_->{key} } @{ ok_get('/organization_roles?order_by=-key&limit=500')->{data} };
    is_deeply \@keys, [ reverse sort map { $_->{key} } @roles ], 'order_by=-key';
    my $r = $roles[-1];
    is_deeply ok_get("/organization_roles?query=$r->{id}")->{data}, [ $r ], 'query: exact id';
    is_deeply [ map { $_->{key} } @{ ok_get('/organization_roles?query=ADMIN')->{data} } ], [ 'org:admin' ],
        'query: part of name or key, case-insensitive';
    is_deeply ok_get("/organization_roles/$r->{id}"), $r, 'GET by id = the listed object';
    my $e = error_is $mock->get('/organization_roles/role_2nothere'), 404, 'resource_not_found', 'unknown role';
    is $e->{errors}[0]{long_message}, 'Organization role not found', 'long_message';
    error_is $mock->get('/organization_roles?limit=0'), 422, 'form_param_value_invalid', 'limit=0 -> 422';
    error_is $mock->get('/organization_roles?order_by=permissions'), 422, 'form_param_value_invalid', 'bad order_by -> 422';
    error_is $mock->get('/organization_roles?key=org:admin'), 422, 'form_param_unknown', 'unknown parameter -> 422';
};

subtest 'GET /organization_invitations: shapes, pagination, order, filters, errors' => sub {
    my $res = $mock->get('/organization_invitations');
    is ref $res->{json}, 'HASH', '{data,total_count} object';
    is $res->{json}{total_count}, 60, 'total_count';
    is scalar @{ $res->{json}{data} }, 10, 'default limit is 10';
    @oinv = walk('/organization_invitations?order_by=created_at', 7);
    is uniq_count(ids(@oinv)), 60, 'limit/offset walk: 60 distinct invitations';
    ok strictly(sub { $_[0] < $_[1] }, map { $_->{created_at} } @oinv), 'created_at increases (creation order)';
    is_deeply [ ids(@{ $res->{json}{data} }) ], [ reverse ids(@oinv[-10 .. -1]) ], 'default page = the 10 newest';
    shapes_ok \@oinv, 'organization_invitation', 'OrganizationInvitationWithPublicOrganizationData fields',
        'public_organization_data';
    ok((all { $_->{object} eq 'organization_invitation' && $_->{id} =~ /^orginv_[0-9A-Za-z]{27}$/ } @oinv), 'object, id');
    ok((all { my $s = $_->{status}; any { $s eq $_ } @ORGINV_STATUS } @oinv), 'status pending|accepted|revoked|expired');
    is uniq_count(map { $_->{status} } @oinv), 4, 'every status occurs';
    ok((all { $role_by_key{ $_->{role} } && $_->{role_name} eq $role_by_key{ $_->{role} }{name} } @oinv),
        "role is a role's key, role_name its name");
    ok((all { is_ms($_->{created_at}) && $_->{updated_at} >= $_->{created_at}
              && (!defined $_->{expires_at} || $_->{expires_at} > $_->{created_at}) } @oinv),
        'timestamps in ms, updated_at >= created_at, expires_at after created_at');
    ok((all { $org_by_id{ $_->{organization_id} } } @oinv), 'organization_id is a real organization');
    is_deeply [ map { $_->{id} } grep { $JSON->encode($_->{public_organization_data})
                                        ne $JSON->encode(public_org_of($org_by_id{ $_->{organization_id} })) } @oinv ],
        [], 'public_organization_data = the organization\'s id, name, slug, image_url, has_image';
    shapes_ok [ map { $_->{public_organization_data} } @oinv ], 'public_org', 'public_organization_data fields';
    my @with = grep { defined $_->{inviter_id} } @oinv;
    ok @with && @with < @oinv, 'some invitations have an inviter, some do not';
    ok((all { !defined $_->{public_inviter_data} } grep { !defined $_->{inviter_id} } @oinv),
        'no inviter: public_inviter_data is null');
    shapes_ok [ map { $_->{public_inviter_data} } @with ], 'inviter', 'public_inviter_data fields';
    is_deeply [ map { $_->{id} } grep { my ($p, $u) = ($_->{public_inviter_data}, $user_by_id{ $_->{inviter_id} });
                    !$u || $p->{user_id} ne $u->{id} || ($p->{first_name} // '') ne ($u->{first_name} // '')
                    || !defined $p->{image_url} } @with ],
        [], 'public_inviter_data describes the inviter (a real user), image_url a string';

    my @e = map { $_->{email_address} } @{ ok_get('/organization_invitations?order_by=email_address&limit=500')->{data} };
    is_deeply \@e, [ sort map { $_->{email_address} } @oinv ], 'order_by=email_address';
    @e = map { $_->{email_address} } @{ ok_get('/organization_invitations?order_by=-email_address&limit=500')->{data} };
    is_deeply \@e, [ reverse sort map { $_->{email_address} } @oinv ], 'order_by=-email_address';
    is_deeply [ ids(@{ ok_get('/organization_invitations?order_by=%2Bcreated_at&limit=5')->{data} }) ],
        [ ids(@oinv[0 .. 4]) ], 'order_by=+created_at';
    my $total = 0;
    for my $s (@ORGINV_STATUS) {
        my $r = ok_get("/organization_invitations?status=$s&limit=500");
        is_deeply sorted_ids(@{ $r->{data} }), sorted_ids(grep { $_->{status} eq $s } @oinv), "status=$s";
        $total += $r->{total_count};
    }
    is $total, 60, 'the status counts add up';
    my $two = ok_get('/organization_invitations?status=accepted&status=revoked&limit=500');
    is_deeply sorted_ids(@{ $two->{data} }), sorted_ids(grep { $_->{status} =~ /^(?:accepted|revoked)$/ } @oinv),
        'repeated status: either';
    is $two->{total_count}, scalar @{ $two->{data} }, 'total_count of the filtered set';
    is_deeply sorted_ids(@{ ok_get('/organization_invitations?query=INVITEE.1&limit=500')->{data} }),
        sorted_ids(grep { index($_->{email_address}, 'invitee.1') >= 0 } @oinv),
        'query: part of the email address, case-insensitive';
    my $j = error_is $mock->get('/organization_invitations?limit=501'), 422, 'form_param_value_invalid', 'limit=501';
    is $j->{errors}[0]{meta}{param_name}, 'limit', 'meta.param_name = limit';
    error_is $mock->get('/organization_invitations?offset=-1'), 422, 'form_param_value_invalid', 'offset=-1';
    error_is $mock->get('/organization_invitations?order_by=role'), 422, 'form_param_value_invalid', 'order_by=role';
    $j = error_is $mock->get('/organization_invitations?status=sent'), 422, 'form_param_value_invalid', 'status=sent';
    is $j->{errors}[0]{meta}{param_name}, 'status', 'meta.param_name = status';
    error_is $mock->get('/organization_invitations?email_address=a@b.test'), 422, 'form_param_unknown',
        'email_address is not a parameter of the instance-wide listing';
};

subtest 'GET /organizations/{id}/invitations' => sub {
    my (%n, @seen, @bad);
    $n{ $_->{organization_id} }++ for @oinv;
    for my $org (@m_orgs) {
        my $r = $mock->get("/organizations/$org->{id}/invitations?limit=500");
        push(@bad, "$org->{id}: $r->{status}"), next unless $r->{status} == 200 && ref $r->{json} eq 'HASH';
        my @l = @{ $r->{json}{data} };
        push @bad, "$org->{id}: total_count" unless $r->{json}{total_count} == ($n{ $org->{id} } // 0);
        push @bad, "$org->{id}: not newest first" unless strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @l);
        push @bad, map { "$_->{id}: of another organization" } grep { $_->{organization_id} ne $org->{id} } @l;
        push @seen, @l;
    }
    is_deeply \@bad, [], "each organization's listing: its invitations, total_count, newest first";
    is_deeply sorted_ids(@seen), sorted_ids(@oinv), 'together they hold every invitation once';
    shapes_ok \@seen, 'organization_invitation', 'OrganizationInvitation fields (no public_organization_data)';
    is_deeply { map { $_->{id} => $_ } @seen }, { map { $_->{id} => without($_, 'public_organization_data') } @oinv },
        'the same objects as the instance-wide listing';

    my ($big) = sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;
    my @mine = grep { $_->{organization_id} eq $big } @oinv;
    cmp_ok scalar @mine, '>=', 5, 'an organization with several invitations';
    my @page = walk("/organizations/$big/invitations", 2);
    is_deeply [ ids(@page) ], [ reverse ids(@mine) ], 'limit/offset pages, newest first';
    my @e = map { $_->{email_address} }
        @{ ok_get("/organizations/$big/invitations?order_by=email_address&limit=500")->{data} };
    is_deeply \@e, [ sort map { $_->{email_address} } @mine ], 'order_by=email_address';
    is_deeply sorted_ids(@{ ok_get("/organizations/$big/invitations?status=pending&status=expired&limit=500")->{data} }),
        sorted_ids(grep { $_->{status} =~ /^(?:pending|expired)$/ } @mine), 'status filter (repeatable)';
    my ($x, $y) = @mine[0, 1];
    is_deeply sorted_ids(@{ ok_get("/organizations/$big/invitations?email_address=" . uri_escape(uc $x->{email_address})
                                   . '&email_address=' . uri_escape($y->{email_address}))->{data} }),
        sorted_ids($x, $y), 'email_address filter: repeatable, case-insensitive';
    my $j = error_is $mock->get('/organizations/org_2nothere/invitations'), 404, 'resource_not_found', 'unknown organization';
    is $j->{errors}[0]{long_message}, 'Given organization not found.', 'long_message';
    error_is $mock->get("/organizations/$big/invitations?query=x"), 422, 'form_param_unknown', 'query is not a parameter here';
    error_is $mock->get("/organizations/$big/invitations?status=bogus"), 422, 'form_param_value_invalid', 'bad status';
    error_is $mock->get("/organizations/$big/invitations?limit=501"), 422, 'form_param_value_invalid', 'limit=501';
};

subtest 'GET /invitations: bare array, paginated=true, revoked only on request' => sub {
    my $res = $mock->get('/invitations');
    is ref $res->{json}, 'ARRAY', 'bare JSON array';
    is scalar @{ $res->{json} }, 10, 'default limit is 10';
    ok strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @{ $res->{json} }), 'newest first by default';
    my (%by, @all);
    for my $s (@INV_STATUS) {
        my $p = ok_get("/invitations?status=$s&paginated=true&limit=500");
        ok ref $p eq 'HASH' && ref $p->{data} eq 'ARRAY' && $p->{total_count} == @{ $p->{data} },
            "status=$s&paginated=true: {data,total_count}";
        ok((all { $_->{status} eq $s } @{ $p->{data} }), "status=$s: only $s");
        $by{$s} = $p->{data};
        push @all, @{ $p->{data} };
    }
    @all = sort { $a->{created_at} <=> $b->{created_at} } @all;
    is uniq_count(ids(@all)), 40, 'the statuses together hold all 40 invitations';
    ok @{ $by{$_} } > 0, "some are $_" for @INV_STATUS;
    my @listed = walk('/invitations?order_by=created_at', 6);
    is_deeply [ ids(@listed) ], [ ids(grep { $_->{status} ne 'revoked' } @all) ],
        'without status: every non-revoked invitation, in creation order';
    my $pg = ok_get('/invitations?paginated=true&limit=3&offset=2');
    is $pg->{total_count}, scalar @listed, 'paginated total_count leaves out revoked ones too';
    is_deeply [ ids(@{ $pg->{data} }) ], [ ids((reverse @listed)[2 .. 4]) ], 'paginated page with limit/offset';
    shapes_ok \@all, 'invitation', 'Invitation: every required field, no unlisted one';
    ok((all { $_->{object} eq 'invitation' && $_->{id} =~ /^inv_[0-9A-Za-z]{27}$/ && $_->{email_address} =~ /\@/ } @all),
        'object, id, email_address');
    ok((all { JSON::PP::is_bool($_->{revoked}) && bool01($_->{revoked}) == bool01($_->{status} eq 'revoked') } @all),
        'revoked is a boolean, true exactly for revoked invitations');
    ok((all { is_ms($_->{created_at}) && $_->{updated_at} >= $_->{created_at}
              && (!defined $_->{expires_at} || $_->{expires_at} > $_->{created_at}) } @all), 'timestamps');
    ok((any { !defined $_->{expires_at} } @all), 'some expires_at are null');

    my @e = map { $_->{email_address} } @{ ok_get('/invitations?order_by=email_address&limit=500') };
    is_deeply \@e, [ sort map { $_->{email_address} } @listed ], 'order_by=email_address';
    my @x = map { $_->{expires_at} } @{ ok_get('/invitations?order_by=expires_at&limit=500') };
    is scalar @x, scalar @listed, 'order_by=expires_at lists them all';
    ok strictly(sub { $_[0] <= $_[1] }, grep { defined } @x), 'order_by=expires_at ascending';
    @x = map { $_->{expires_at} } @{ ok_get('/invitations?order_by=-expires_at&limit=500') };
    ok strictly(sub { $_[0] >= $_[1] }, grep { defined } @x), 'order_by=-expires_at descending';
    my $t = $listed[5];
    is_deeply ok_get("/invitations?query=$t->{id}"), [ $t ], 'query: exact id';
    is_deeply sorted_ids(@{ ok_get('/invitations?query=GUEST.2&limit=500') }),
        sorted_ids(grep { index($_->{email_address}, 'guest.2') >= 0 } @listed), 'query: part of the email, any case';
    my $rev = $by{revoked}[0];
    is_deeply ok_get("/invitations?query=$rev->{id}"), [], 'a revoked one stays out without status';
    is_deeply [ ids(@{ ok_get("/invitations?query=$rev->{id}&status=revoked") }) ], [ $rev->{id} ], '... and is found with it';
    my $j = error_is $mock->get('/invitations?status=bogus'), 422, 'form_param_value_invalid', 'bad status';
    is $j->{errors}[0]{meta}{param_name}, 'status', 'meta.param_name = status';
    $j = error_is $mock->get('/invitations?paginated=maybe'), 422, 'form_param_value_invalid', 'paginated=maybe';
    is $j->{errors}[0]{meta}{param_name}, 'paginated', 'meta.param_name = paginated';
    error_is $mock->get('/invitations?order_by=name'), 422, 'form_param_value_invalid', 'order_by=name';
    error_is $mock->get('/invitations?limit=501'), 422, 'form_param_value_invalid', 'limit=501';
    error_is $mock->get('/invitations?email_address=a@b.test'), 422, 'form_param_unknown', 'unknown parameter';
};

subtest 'GET /organization_domains: shapes, order, filters, errors' => sub {
    my $res = $mock->get('/organization_domains');
    is ref $res->{json}, 'HASH', '{data,total_count} object';
    is $res->{json}{total_count}, 20, 'total_count';
    is scalar @{ $res->{json}{data} }, 10, 'default limit is 10';
    ok strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @{ $res->{json}{data} }), 'newest first by default';
    @doms = walk('/organization_domains?order_by=created_at', 6);
    is uniq_count(ids(@doms)), 20, 'limit/offset walk: 20 distinct domains';
    shapes_ok \@doms, 'organization_domain', 'OrganizationDomain: every required field, no unlisted one';
    ok((all { $_->{object} eq 'organization_domain' && $_->{id} =~ /^orgdmn_[0-9A-Za-z]{27}$/ } @doms), 'object, id');
    is uniq_count(map { lc $_->{name} } @doms), 20, 'names are unique';
    ok((all { my $m = $_->{enrollment_mode}; any { $m eq $_ } @ENROLLMENT } @doms), 'enrollment_mode in the enum');
    is uniq_count(map { $_->{enrollment_mode} } @doms), 4, 'every enrollment_mode occurs';
    is_deeply [ map { $_->{id} } grep { $JSON->encode($_->{verification}) ne $JSON->encode($_->{affiliation_verification}) }
                @doms ], [], 'verification is the deprecated copy of affiliation_verification';
    my @ver = grep { defined } map { @$_{qw(affiliation_verification ownership_verification)} } @doms;
    shapes_ok \@ver, 'domain_verification', 'OrganizationDomainVerification fields';
    ok((all { my $s = $_->{status}; any { $s eq $_ } @DOMVER_STATUS } @ver), 'verification status in the documented set');
    ok((any { !defined $_->{affiliation_verification} } @doms) && (any { defined $_->{affiliation_verification} } @doms)
       && (any { !defined $_->{ownership_verification} } @doms) && (any { defined $_->{ownership_verification} } @doms),
        'verifications are sometimes null');
    ok((all { !defined $_->{affiliation_verification} || !defined $_->{affiliation_verification}{verified_at} } @doms),
        'verified_at is null on affiliation_verification (spec)');
    ok((all { $_->{total_pending_invitations} =~ /^\d+$/ && $_->{total_pending_suggestions} =~ /^\d+$/ } @doms),
        'pending counts are integers');
    ok((all { is_ms($_->{created_at}) && $_->{updated_at} >= $_->{created_at} } @doms), 'timestamps');
    is_deeply [ map { $_->{id} } grep { !$org_by_id{ $_->{organization_id} } || $JSON->encode($_->{public_organization_data})
                ne $JSON->encode(public_org_of($org_by_id{ $_->{organization_id} })) } @doms ],
        [], 'organization_id is a real organization, public_organization_data describes it';

    my @n = map { $_->{name} } @{ ok_get('/organization_domains?order_by=name&limit=500')->{data} };
    is_deeply \@n, [ sort map { $_->{name} } @doms ], 'order_by=name';
    @n = map { $_->{name} } @{ ok_get('/organization_domains?order_by=-name&limit=500')->{data} };
    is_deeply \@n, [ reverse sort map { $_->{name} } @doms ], 'order_by=-name';
    my @bad;
    for my $org (@m_orgs) {
        my $r = ok_get("/organization_domains?organization_id=$org->{id}&limit=500");
        my @want = grep { $_->{organization_id} eq $org->{id} } @doms;
        push @bad, $org->{id} unless $JSON->encode(sorted_ids(@{ $r->{data} })) eq $JSON->encode(sorted_ids(@want))
                                     && $r->{total_count} == @want;
    }
    is_deeply \@bad, [], 'organization_id filter, with its total_count';
    my $verified = sub { my $v = $_[0]{affiliation_verification}; ref $v eq 'HASH' && $v->{status} eq 'verified' };
    my $vt = ok_get('/organization_domains?verified=true&limit=500');
    my $vf = ok_get('/organization_domains?verified=false&limit=500');
    is_deeply sorted_ids(@{ $vt->{data} }), sorted_ids(grep { $verified->($_) } @doms), 'verified=true: affiliation verified';
    is_deeply sorted_ids(@{ $vf->{data} }), sorted_ids(grep { !$verified->($_) } @doms), 'verified=false: the others';
    ok $vt->{total_count} && $vf->{total_count}, 'both are non-empty';
    my @ai = grep { $_->{enrollment_mode} =~ /^automatic_/ } @doms;
    is_deeply sorted_ids(@{ ok_get('/organization_domains?enrollment_mode=automatic_invitation'
                                   . '&enrollment_mode=automatic_suggestion&limit=500')->{data} }),
        sorted_ids(@ai), 'enrollment_mode repeated';
    is_deeply sorted_ids(@{ ok_get('/organization_domains?enrollment_mode=automatic_invitation,automatic_suggestion'
                                   . '&limit=500')->{data} }), sorted_ids(@ai), 'enrollment_mode comma-separated';
    is_deeply sorted_ids(@{ ok_get('/organization_domains?enrollment_mode=-enterprise_sso&limit=500')->{data} }),
        sorted_ids(grep { $_->{enrollment_mode} ne 'enterprise_sso' } @doms), 'enrollment_mode=-mode excludes';
    my $d = $doms[3];
    is_deeply sorted_ids(@{ ok_get("/organization_domains?query=$d->{organization_id}&limit=500")->{data} }),
        sorted_ids(grep { $_->{organization_id} eq $d->{organization_id} } @doms), 'query=org_…: exact organization id';
    my $part = uc substr($d->{name}, 0, 6);
    is_deeply sorted_ids(@{ ok_get('/organization_domains?query=' . uri_escape($part) . '&limit=500')->{data} }),
        sorted_ids(grep { index(lc $_->{name}, lc $part) >= 0 } @doms), 'query: part of the name, case-insensitive';
    is_deeply sorted_ids(@{ ok_get("/organization_domains?domains=$doms[0]{name}&domains=$doms[7]{name}")->{data} }),
        sorted_ids(@doms[0, 7]), 'domains: exact names, repeatable';
    is ok_get('/organization_domains?domains=nothing.example')->{total_count}, 0, 'domains without a match';
    error_is $mock->get('/organization_domains?query=%20'), 422, 'form_param_value_invalid', 'blank query -> 422';
    my $j = error_is $mock->get('/organization_domains?verified=yes'), 422, 'form_param_value_invalid', 'verified=yes';
    is $j->{errors}[0]{meta}{param_name}, 'verified', 'meta.param_name = verified';
    error_is $mock->get('/organization_domains?enrollment_mode=sso'), 422, 'form_param_value_invalid', 'bad enrollment_mode';
    error_is $mock->get('/organization_domains?order_by=enrollment_mode'), 422, 'form_param_value_invalid', 'bad order_by';
    error_is $mock->get('/organization_domains?limit=501'), 422, 'form_param_value_invalid', 'limit=501';
    error_is $mock->get('/organization_domains?status=verified'), 422, 'form_param_unknown', 'unknown parameter';
};

subtest 'GET /organizations/{id}/domains' => sub {
    my (@seen, @bad);
    for my $org (@m_orgs) {
        my @want = reverse grep { $_->{organization_id} eq $org->{id} } @doms;
        my @got = walk("/organizations/$org->{id}/domains", 2);
        push @bad, $org->{id} unless $JSON->encode([ ids(@got) ]) eq $JSON->encode([ ids(@want) ]);
        push @seen, @got;
    }
    is_deeply \@bad, [], "each organization's domains, newest first, in pages of 2";
    is_deeply { map { $_->{id} => $_ } @seen }, { map { $_->{id} => $_ } @doms }, 'together: every domain, same objects';
    my %n;
    $n{ $_->{organization_id} }++ for @doms;
    my ($big) = sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;
    my @mine = grep { $_->{organization_id} eq $big } @doms;
    is ok_get("/organizations/$big/domains?limit=1")->{total_count}, scalar @mine, 'total_count';
    is_deeply sorted_ids(@{ ok_get("/organizations/$big/domains?verified=false")->{data} }),
        sorted_ids(grep { (($_->{affiliation_verification} // {})->{status} // '') ne 'verified' } @mine), 'verified=false';
    my $mode = $mine[0]{enrollment_mode};
    is_deeply sorted_ids(@{ ok_get("/organizations/$big/domains?enrollment_mode=-$mode")->{data} }),
        sorted_ids(grep { $_->{enrollment_mode} ne $mode } @mine), 'enrollment_mode=-mode';
    is_deeply ok_get('/organizations/org_2nothere/domains'), { data => [], total_count => 0 },
        'unknown organization: no domains (the spec lists no 404 here)';
    error_is $mock->get("/organizations/$big/domains?order_by=name"), 422, 'form_param_unknown', 'no order_by here';
    error_is $mock->get("/organizations/$big/domains?query=x"), 422, 'form_param_unknown', 'no query here';
    error_is $mock->get("/organizations/$big/domains?verified=1x"), 422, 'form_param_value_invalid', 'bad verified';
};

subtest 'GET /sessions and /sessions/{id}' => sub {
    my $j = error_is $mock->get('/sessions'), 400, 'missing_query_parameter', 'neither user_id nor client_id -> 400';
    like $j->{errors}[0]{long_message}, qr/client_id, user_id/, 'long_message names both parameters';
    error_is $mock->get('/sessions?status=active&paginated=true'), 400, 'missing_query_parameter', 'status alone -> 400';
    error_is $mock->get('/sessions?user_id='), 400, 'missing_query_parameter', 'empty user_id -> 400';
    my (%of, @all, @bad);
    for my $u (@m_users) {
        my $r = $mock->get("/sessions?user_id=$u->{id}&paginated=true&limit=500");
        push(@bad, "$u->{id}: $r->{status}"), next unless $r->{status} == 200 && ref $r->{json} eq 'HASH';
        my @s = @{ $r->{json}{data} };
        push @bad, "$u->{id}: total_count" unless $r->{json}{total_count} == @s;
        push @bad, "$u->{id}: foreign session" if any { $_->{user_id} ne $u->{id} } @s;
        push @bad, "$u->{id}: not newest first" unless strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @s);
        $of{ $u->{id} } = \@s;
        push @all, @s;
    }
    is_deeply \@bad, [], "user_id=…&paginated=true for each user: {data,total_count}, that user's sessions, newest first";
    is uniq_count(ids(@all)), 120, "the users' sessions: all 120, each once";
    @sess = @all;
    shapes_ok \@all, 'session', 'Session: every required field, no unlisted one';
    ok((all { $_->{object} eq 'session' && $_->{id} =~ /^sess_[0-9A-Za-z]{27}$/
              && $_->{client_id} =~ /^client_[0-9A-Za-z]{27}$/ } @all), 'object, id, client_id');
    ok((all { my $s = $_->{status}; any { $s eq $_ } @SESSION_STATUS } @all), 'status in the Session enum');
    is uniq_count(map { $_->{status} } @all), 8, 'every status occurs, pending included';
    ok((all { bool01(ref $_->{tasks} eq 'ARRAY' && @{ $_->{tasks} } && all { defined $_->{key} } @{ $_->{tasks} })
              == bool01($_->{status} eq 'pending') } @all), 'tasks (each with a key) exactly on pending sessions');
    my @act = grep { defined } map { $_->{latest_activity} } @all;
    shapes_ok \@act, 'session_activity', 'latest_activity: SessionActivityResponse fields';
    ok((all { JSON::PP::is_bool($_->{is_mobile}) } @act), 'is_mobile is a boolean');
    ok((all { !defined $_->{actor} || ref $_->{actor} eq 'HASH' } @all) && (any { defined $_->{actor} } @all),
        'actor is null or an object (some are set)');
    ok((all { is_ms($_->{created_at}) && $_->{updated_at} >= $_->{created_at} && $_->{expire_at} > $_->{created_at}
              && $_->{abandon_at} >= $_->{expire_at} && is_ms($_->{last_active_at}) } @all), 'timestamps');
    my %orgs_of;
    $orgs_of{ $_->{public_user_data}{user_id} }{ $_->{organization}{id} } = 1 for @m_mems;
    my @lao = grep { defined $_->{last_active_organization_id} } @all;
    ok @lao && (all { $orgs_of{ $_->{user_id} }{ $_->{last_active_organization_id} } } @lao),
        "last_active_organization_id (when set) is one of the user's organizations";

    my ($busy) = sort { @{ $of{$b} } <=> @{ $of{$a} } || $a cmp $b } keys %of;
    my $bare = ok_get("/sessions?user_id=$busy");
    is ref $bare, 'ARRAY', 'without paginated: a bare array';
    is_deeply [ ids(walk("/sessions?user_id=$busy", 2)) ], [ ids(@{ $of{$busy} }) ], 'limit/offset pages';
    my %by_client;
    push @{ $by_client{ $_->{client_id} } }, $_ for @all;
    ok((all { uniq_count(map { $_->{user_id} } @$_) == 1 } values %by_client), 'a client belongs to one user');
    my ($two) = grep { uniq_count(map { $_->{client_id} } @{ $of{$_} }) == 2 } sort keys %of;
    ok $two, 'a user with two clients';
    for my $c (sort { $a cmp $b } uniq_list(map { $_->{client_id} } @{ $of{$two} })) {
        is_deeply [ ids(@{ ok_get("/sessions?client_id=$c&limit=500") }) ], [ ids(@{ $by_client{$c} }) ],
            "client_id=$c: that client's sessions";
    }
    my $s = $of{$busy}[0];
    is_deeply [ ids(@{ ok_get("/sessions?user_id=$busy&client_id=$s->{client_id}&limit=500") }) ],
        [ ids(grep { $_->{client_id} eq $s->{client_id} } @{ $of{$busy} }) ], 'user_id and client_id together';
    my ($st) = map { $_->{status} } grep { $_->{status} ne 'pending' } @{ $of{$busy} };
    is_deeply [ ids(@{ ok_get("/sessions?user_id=$busy&status=$st&limit=500") }) ],
        [ ids(grep { $_->{status} eq $st } @{ $of{$busy} }) ], "status=$st";
    is_deeply ok_get("/sessions?user_id=$busy&status=" . ($st eq 'replaced' ? 'abandoned' : 'replaced') . '&limit=500'),
        [ grep { $_->{status} eq ($st eq 'replaced' ? 'abandoned' : 'replaced') } @{ $of{$busy} } ], 'another status';
    is_deeply ok_get('/sessions?user_id=user_2nothere'), [], 'unknown user: []';
    is_deeply ok_get('/sessions?client_id=client_2nothere'), [], 'unknown client: []';
    $j = error_is $mock->get("/sessions?user_id=$busy&status=pending"), 422, 'form_param_value_invalid',
        'status=pending is not in the filter enum';
    is $j->{errors}[0]{meta}{param_name}, 'status', 'meta.param_name = status';
    error_is $mock->get("/sessions?user_id=$busy&order_by=created_at"), 422, 'form_param_unknown', 'no order_by';
    error_is $mock->get("/sessions?user_id=$busy&paginated=maybe"), 422, 'form_param_value_invalid', 'paginated=maybe';
    error_is $mock->get("/sessions?user_id=$busy&limit=501"), 422, 'form_param_value_invalid', 'limit=501';
    is_deeply ok_get("/sessions/$s->{id}"), $s, 'GET /sessions/{id} = the listed object';
    $j = error_is $mock->get('/sessions/sess_2nothere'), 404, 'resource_not_found', 'unknown session';
    is $j->{errors}[0]{long_message}, 'No session was found with id sess_2nothere', 'long_message';
};

subtest 'endpoint_errors: 403 and 404 for the new families' => sub {
    my ($o, $r, $p, $u, $s) = ($m_orgs[0]{id}, $roles[0]{id}, $perms[0]{id}, $sess[0]{user_id}, $sess[0]{id});
    my %routes = (
        organization_invitations => [ [ '/organization_invitations', "/organizations/$o/invitations" ],
                                      'organization_not_enabled_in_instance', qr/organizations feature is not enabled/ ],
        invitations              => [ [ '/invitations' ], 'authorization_invalid', qr/not authorized/ ],
        organization_domains     => [ [ '/organization_domains', "/organizations/$o/domains" ],
                                      'organization_domains_not_enabled',
                                      qr/^This instance does not have domains enabled for organizations\.$/ ],
        organization_roles       => [ [ '/organization_roles', "/organization_roles/$r" ], 'feature_not_enabled',
                                      qr/^This feature is not enabled on this instance$/ ],
        organization_permissions => [ [ '/organization_permissions', "/organization_permissions/$p" ],
                                      'feature_not_enabled', qr/^This feature is not enabled on this instance$/ ],
        sessions                 => [ [ "/sessions?user_id=$u", "/sessions/$s" ], 'authorization_invalid',
                                      qr/not authorized/ ],
    );
    $mock->configure(endpoint_errors => { map { $_ => 403 } keys %routes });
    for my $fam (sort keys %routes) {
        my ($paths, $code, $long) = @{ $routes{$fam} };
        for my $path (@$paths) {
            my $j = error_is $mock->get($path), 403, $code, "$fam 403: GET $path";
            like $j->{errors}[0]{long_message}, $long, "$fam 403: long_message";
        }
    }
    is $mock->get('/users/count')->{status}, 200, 'other families unaffected (users)';
    is $mock->get('/organizations')->{status}, 200, 'other families unaffected (organizations)';
    error_is $mock->get('/sessions'), 403, 'authorization_invalid', 'checked before the parameters (no user_id: 403, not 400)';
    error_is $mock->get('/organization_roles?limit=501'), 403, 'feature_not_enabled', '... (bad limit: 403, not 422)';
    error_is $mock->get('/organization_domains', auth => 'sk_test_wrong'), 401, 'authentication_invalid',
        'checked after authentication';

    $mock->configure(endpoint_errors => { map { $_ => 404 } keys %routes });
    for my $fam (sort keys %routes) {
        for my $path (@{ $routes{$fam}[0] }) {
            my $j = error_is $mock->get($path), 404, 'resource_not_found', "$fam 404: GET $path";
            is $j->{errors}[0]{long_message}, 'The requested resource was not found.', "$fam 404: long_message";
        }
    }
    $mock->configure(endpoint_errors => { 'organizations/{id}/domains' => 403 });
    error_is $mock->get("/organizations/$o/domains"), 403, 'organization_domains_not_enabled', 'one route: that route';
    is $mock->get('/organization_domains')->{status}, 200, 'one route: not the rest of its family';
    $mock->configure(endpoint_errors => { sessions => { status => 403, code => 'custom_code', long_message => 'Custom.' } });
    my $j = error_is $mock->get("/sessions/$s"), 403, 'custom_code', 'an object gives code and long_message';
    is $j->{errors}[0]{long_message}, 'Custom.', 'custom long_message';
    $mock->configure(endpoint_errors => {});
    is_deeply [ map { $mock->get($_)->{status} } map { @{ $_->[0] } } values %routes ], [ (200) x 11 ], '{} clears them';
};

subtest 'control API and events: organization invitations' => sub {
    $mock->configure(webhook_secret => $WHSEC);
    new_events();
    my $org = $m_orgs[1];
    my %member = map { $_->{public_user_data}{user_id} => 1 } grep { $_->{organization}{id} eq $org->{id} } @m_mems;
    my ($user) = grep { !$member{ $_->{id} } && defined $_->{primary_email_address_id} } @m_users;
    my ($email) = map { $_->{email_address} } grep { $_->{id} eq $user->{primary_email_address_id} }
        @{ $user->{email_addresses} };
    my $before = ok_get('/organization_invitations?limit=1')->{total_count};
    my $t0 = time * 1000;
    my $inv = $mock->control(POST => 'organization_invitations',
        { organization_id => $org->{id}, email_address => $email, role => 'org:admin' });
    like $inv->{id}, qr/^orginv_[0-9A-Za-z]{27}$/, 'created: a Clerk-like id';
    is_deeply [ @$inv{qw(status role role_name organization_id)} ], [ 'pending', 'org:admin', 'Admin', $org->{id} ],
        'pending, role and role_name, organization';
    ok abs($inv->{created_at} - $t0) < 60_000 && $inv->{expires_at} > $inv->{created_at}, 'created now, expires later';
    is_deeply [ shape_problems($inv, 'organization_invitation', 'public_organization_data') ], [], 'shape';
    my ($ev) = events_ok([ 'organizationInvitation.created' ], 'POST records organizationInvitation.created');
    is_deeply $ev->{data}, $inv, 'event data: the invitation with public_organization_data';
    my $top = ok_get('/organization_invitations?limit=1');
    is_deeply [ $top->{total_count}, $top->{data}[0]{id} ], [ $before + 1, $inv->{id} ], 'listed first, counted';
    is ok_get("/organizations/$org->{id}/invitations?limit=1")->{data}[0]{id}, $inv->{id}, "first in the organization's";
    is $mock->control_raw(POST => 'organization_invitations', { organization_id => $org->{id}, email_address => uc $email })
        ->{status}, 409, 'a second pending invitation of the same email -> 409';
    is $mock->control_raw(POST => 'organization_invitations', { email_address => 'x@example.com' })->{status}, 400,
        'no organization_id -> 400';
    is $mock->control_raw(POST => 'organization_invitations', { organization_id => 'org_2nothere' })->{status}, 404,
        'unknown organization -> 404';
    events_ok([], 'rejected requests record nothing');

    my $pm = $mock->control(PATCH => "organization_invitations/$inv->{id}",
        { role => 'org:member', public_metadata => { k => 1 } });
    is_deeply [ @$pm{qw(role role_name)} ], [ 'org:member', 'Member' ], 'PATCH: role_name follows role';
    cmp_ok $pm->{updated_at}, '>', $inv->{updated_at}, 'PATCH bumps updated_at';
    is ok_get("/organizations/$org->{id}/invitations?limit=1")->{data}[0]{public_metadata}{k}, 1, 'the change is listed';
    events_ok([], 'other changes record nothing');

    $mock->control(PATCH => "organization_invitations/$inv->{id}", { status => 'accepted' });
    my @ev = events_ok([ 'organizationMembership.created', 'organizationInvitation.accepted' ],
        'status -> accepted: organizationInvitation.accepted (and the new membership)');
    my ($acc) = of_type('organizationInvitation.accepted', @ev);
    is_deeply [ @$acc{qw(id status user_id)} ], [ $inv->{id}, 'accepted', $user->{id} ],
        'accepted event: the invitation, with user_id = the user with the invited email';
    is_deeply [ shape_problems($acc, 'organization_invitation', 'public_organization_data', 'user_id') ], [],
        'accepted event: OrganizationInvitationAcceptedPayload fields';
    my $mem = ok_get("/organizations/$org->{id}/memberships?user_id=$user->{id}");
    is_deeply [ $mem->{total_count}, $mem->{data}[0]{role} ], [ 1, 'org:member' ], 'the user became a member, with its role';
    ok((grep { $_ eq $inv->{id} } ids(@{ ok_get('/organization_invitations?status=accepted&limit=500')->{data} })),
        'listed under status=accepted');

    my ($i2, $i3) = map { $mock->control(POST => 'organization_invitations',
                                         { organization_id => $org->{id}, email_address => $_ }) }
        'revoke.me@example.com', 'expire.me@example.com';
    events_ok([ ('organizationInvitation.created') x 2 ], 'two more created');
    $mock->control(PATCH => "organization_invitations/$i2->{id}", { status => 'revoked' });
    ($ev) = events_ok([ 'organizationInvitation.revoked' ], 'status -> revoked: organizationInvitation.revoked');
    is_deeply [ @{ $ev->{data} }{qw(id status)} ], [ $i2->{id}, 'revoked' ], 'revoked event data';
    $mock->control(PATCH => "organization_invitations/$i3->{id}", { status => 'expired' });
    events_ok([], 'status -> expired records nothing');
    ok((grep { $_ eq $i2->{id} } ids(@{ ok_get("/organizations/$org->{id}/invitations?status=revoked&limit=500")->{data} })),
        'listed under status=revoked');
    is_deeply $mock->control(DELETE => "organization_invitations/$i3->{id}"),
        { object => 'organization_invitation', id => $i3->{id}, deleted => JSON::PP::true }, 'DELETE answers a deleted object';
    events_ok([], 'DELETE records nothing (Clerk has no organizationInvitation.deleted)');
    ok !(grep { $_ eq $i3->{id} } ids(walk("/organizations/$org->{id}/invitations", 100))), 'deleted: not listed';
    is ok_get('/organization_invitations?limit=1')->{total_count}, $before + 2, 'deleted: not counted';
    is $mock->control_raw(GET => "organization_invitations/$i3->{id}")->{status}, 404, 'deleted: control GET -> 404';
    is $mock->control_raw(DELETE => "organization_invitations/$i3->{id}")->{status}, 404, 'double delete -> 404';
};

subtest 'control API and events: organization domains' => sub {
    my $org = $m_orgs[2];
    my $before = ok_get('/organization_domains?limit=1')->{total_count};
    my $d = $mock->control(POST => 'organization_domains',
        { organization_id => $org->{id}, name => 'fidelity-test.example.com', enrollment_mode => 'automatic_suggestion' });
    like $d->{id}, qr/^orgdmn_[0-9A-Za-z]{27}$/, 'created: a Clerk-like id';
    is_deeply [ shape_problems($d, 'organization_domain') ], [], 'OrganizationDomain shape';
    is_deeply $d->{public_organization_data}, public_org_of($org), 'public_organization_data';
    my ($ev) = events_ok([ 'organizationDomain.created' ], 'POST records organizationDomain.created');
    is_deeply $ev->{data}, $d, 'event data: the domain';
    is_deeply ok_get('/organization_domains?domains=fidelity-test.example.com')->{data}, [ $d ], 'listed (domains filter)';
    is ok_get("/organizations/$org->{id}/domains?limit=1")->{data}[0]{id}, $d->{id}, "first in the organization's";
    is ok_get('/organization_domains?limit=1')->{total_count}, $before + 1, 'counted';
    is $mock->control_raw(POST => 'organization_domains',
        { organization_id => $m_orgs[3]{id}, name => 'FIDELITY-test.example.com' })->{status}, 409,
        'a name already used -> 409';
    is $mock->control_raw(POST => 'organization_domains', { name => 'x.example.com' })->{status}, 400,
        'no organization_id -> 400';
    events_ok([], 'rejected requests record nothing');

    my $ver = { status => 'verified', strategy => 'email_code', attempts => 1, expire_at => undef, verified_at => undef };
    $mock->control(PATCH => "organization_domains/$d->{id}",
        { affiliation_email_address => 'admin@fidelity-test.example.com', affiliation_verification => $ver });
    ($ev) = events_ok([ 'organizationDomain.updated' ], 'PATCH records organizationDomain.updated');
    is_deeply [ $ev->{data}{affiliation_verification}, $ev->{data}{verification} ], [ $ver, $ver ],
        'event data: the changed domain (verification follows affiliation_verification)';
    ok((grep { $_ eq $d->{id} } ids(@{ ok_get("/organization_domains?organization_id=$org->{id}&verified=true")->{data} })),
        'now listed under verified=true');
    is_deeply $mock->control(DELETE => "organization_domains/$d->{id}"),
        { object => 'organization_domain', id => $d->{id}, deleted => JSON::PP::true }, 'DELETE answers a deleted object';
    ($ev) = events_ok([ 'organizationDomain.deleted' ], 'DELETE records organizationDomain.deleted');
    is_deeply $ev->{data}, { object => 'organization_domain', id => $d->{id}, deleted => JSON::PP::true },
        'organizationDomain.deleted data: DeletedObject {object, id, deleted}';
    is ok_get('/organization_domains?domains=fidelity-test.example.com')->{total_count}, 0, 'deleted: not listed';
    is ok_get('/organization_domains?limit=1')->{total_count}, $before, 'deleted: not counted';
};

subtest 'control API and events: roles and permissions' => sub {
    my $p = $mock->control(POST => 'organization_permissions',
        { key => 'org:fidelity:read', name => 'Read fidelity', description => 'Reads it.' });
    like $p->{id}, qr/^perm_[0-9A-Za-z]{27}$/, 'permission created';
    is_deeply [ shape_problems($p, 'permission') ], [], 'Permission shape';
    my ($ev) = events_ok([ 'permission.created' ], 'POST records permission.created');
    is_deeply $ev->{data}, $p, 'event data: the permission';
    is_deeply ok_get("/organization_permissions/$p->{id}"), $p, 'GET /v1/organization_permissions/{id}';
    is_deeply ok_get('/organization_permissions?limit=1')->{data}, [ $p ], 'listed first';
    is $mock->control_raw(POST => 'organization_permissions', { key => 'org:fidelity:read' })->{status}, 409,
        'a key already used -> 409';
    my $sys = $perm_by_id{ (map { $_->{id} } grep { $_->{key} eq 'org:sys_memberships:read' } @perms)[0] };
    my $r = $mock->control(POST => 'organization_roles',
        { key => 'org:fidelity_tester', name => 'Fidelity Tester', permissions => [ 'org:fidelity:read', $sys->{id} ] });
    like $r->{id}, qr/^role_[0-9A-Za-z]{27}$/, 'role created';
    is_deeply $r->{permissions}, [ $p, $sys ], 'permissions given by key or id, shown as whole Permission objects';
    is_deeply [ shape_problems($r, 'role') ], [], 'Role shape';
    ($ev) = events_ok([ 'role.created' ], 'POST records role.created');
    is_deeply $ev->{data}, $r, 'event data: the role';
    is_deeply ok_get("/organization_roles/$r->{id}"), $r, 'GET /v1/organization_roles/{id}';
    is ok_get('/organization_roles?limit=1')->{total_count}, 7, 'counted';
    is $mock->control_raw(POST => 'organization_roles', { key => 'org:fidelity_tester' })->{status}, 409, 'key in use -> 409';
    is $mock->control_raw(POST => 'organization_roles', { key => 'org:other', permissions => ['org:nope'] })->{status}, 404,
        'an unknown permission -> 404';
    events_ok([], 'rejected requests record nothing');

    $mock->control(PATCH => "organization_permissions/$p->{id}", { name => 'Read fidelity (renamed)' });
    ($ev) = events_ok([ 'permission.updated' ], 'PATCH records permission.updated');
    is $ev->{data}{name}, 'Read fidelity (renamed)', 'event data: the changed permission';
    is ok_get("/organization_roles/$r->{id}")->{permissions}[0]{name}, 'Read fidelity (renamed)',
        'roles show their permissions as they are now';
    $mock->control(PATCH => "organization_roles/$r->{id}", { description => 'Tests things.' });
    ($ev) = events_ok([ 'role.updated' ], 'PATCH records role.updated');
    is $ev->{data}{description}, 'Tests things.', 'event data: the changed role';
    is_deeply $mock->control(DELETE => "organization_permissions/$p->{id}"),
        { object => 'permission', id => $p->{id}, deleted => JSON::PP::true }, 'DELETE permission';
    ($ev) = events_ok([ 'permission.deleted' ], 'DELETE records permission.deleted');
    is_deeply $ev->{data}, { object => 'permission', id => $p->{id}, deleted => JSON::PP::true },
        'permission.deleted data: {object, id, deleted}';
    error_is $mock->get("/organization_permissions/$p->{id}"), 404, 'resource_not_found', 'deleted permission: 404';
    is_deeply [ ids(@{ ok_get("/organization_roles/$r->{id}")->{permissions} }) ], [ $sys->{id} ],
        'a deleted permission disappears from its roles';
    $mock->control(DELETE => "organization_roles/$r->{id}");
    ($ev) = events_ok([ 'role.deleted' ], 'DELETE records role.deleted');
    is_deeply $ev->{data}, { object => 'role', id => $r->{id}, slug => undef, deleted => JSON::PP::true },
        'role.deleted data: {object, id, slug: null, deleted} as in the spec example';
    error_is $mock->get("/organization_roles/$r->{id}"), 404, 'resource_not_found', 'deleted role: 404';
    is ok_get('/organization_roles?limit=1')->{total_count}, 6, 'deleted role: not counted';
};

# Clerk's role_name is the role's name and a membership's permissions are its
# role's, as the role is now: the mock reads both from the role it serves.
subtest 'custom roles in invitations and memberships' => sub {
    my ($cr) = grep { $_->{key} !~ /^org:(?:admin|member|billing_manager)$/ } @roles;
    my $org = $m_orgs[4];
    my %member = map { $_->{public_user_data}{user_id} => 1 } grep { $_->{organization}{id} eq $org->{id} } @m_mems;
    my ($user) = grep { !$member{ $_->{id} } } @m_users;
    my $inv = $mock->control(POST => 'organization_invitations',
        { organization_id => $org->{id}, email_address => 'custom.role@example.com', role => $cr->{key} });
    my $mem = $mock->control(POST => 'organization_memberships',
        { organization_id => $org->{id}, user_id => $user->{id}, role => $cr->{key} });
    is_deeply [ $inv->{role}, $mem->{role} ], [ $cr->{key}, $cr->{key} ], "created with the custom role $cr->{key}";
    events_ok([ 'organizationInvitation.created', 'organizationMembership.created' ], 'both recorded');
    is $inv->{role_name}, $cr->{name}, "invitation role_name = the role's name";
    is $mem->{role_name}, $cr->{name}, "membership role_name = the role's name";
    is_deeply [ sort @{ $mem->{permissions} } ], [ sort map { $_->{key} } @{ $cr->{permissions} } ],
        "membership permissions = the role's";

    # The membership $id as every listing of memberships shows it (organization_id, user_id).
    my $everywhere = sub {
        my ($id, $org_id, $user_id) = @_;
        return [ map { my $l = $_; grep { $_->{id} eq $id } @$l }
                 [ walk('/organization_memberships', 500) ],
                 ok_get("/organizations/$org_id/memberships?limit=500")->{data},
                 ok_get("/users/$user_id/organization_memberships?limit=500")->{data} ];
    };
    my $role_of = sub {  # [role_name, sorted permissions] of each membership given
        [ map { [ $_->{role_name}, [ sort @{ $_->{permissions} } ] ] } @_ ];
    };
    my $inv_now = sub { (grep { $_->{id} eq $inv->{id} } walk("/organizations/$org->{id}/invitations", 100))[0] };

    # A custom role renamed and given other permissions: its memberships and invitations follow.
    my @new_perms = qw(org:sys_domains:read org:sys_profile:manage);
    $mock->control(PATCH => "organization_roles/$cr->{id}", { name => 'Renamed Role', permissions => \@new_perms });
    events_ok([ 'role.updated' ], 'PATCH of the role records role.updated (and nothing for its memberships)');
    my $got = $everywhere->($mem->{id}, $org->{id}, $user->{id});
    is scalar @$got, 3, 'the created membership is in all three listings';
    is_deeply $role_of->(@$got), [ ([ 'Renamed Role', [ sort @new_perms ] ]) x 3 ],
        "every listing: role_name and permissions of the role as it is now";
    is $inv_now->()->{role_name}, 'Renamed Role', "the invitation's role_name follows the role's name";
    $mock->control(PATCH => "organization_memberships/$mem->{id}", { public_metadata => { k => 'v' } });
    my ($ev) = events_ok([ 'organizationMembership.updated' ], 'PATCH of the membership records its event');
    is_deeply $role_of->($ev->{data}), [ [ 'Renamed Role', [ sort @new_perms ] ] ], '... with the role as it is now';
    is_deeply $ev->{data}, $everywhere->($mem->{id}, $org->{id}, $user->{id})->[0], '... the membership as listed';

    # A system role changed: generated memberships follow, and are as before once it is changed back.
    my ($gm) = grep { $_->{role} eq 'org:member' } @m_mems;
    my ($gu, $go) = ($gm->{public_user_data}{user_id}, $gm->{organization}{id});
    my $before = $everywhere->($gm->{id}, $go, $gu);
    is scalar @$before, 3, 'a generated org:member membership, in all three listings';
    is_deeply $role_of->(@$before), [ ([ 'Member', [ 'org:sys_memberships:read' ] ]) x 3 ], '... as org:member is';
    my $member = $role_by_key{'org:member'};
    $mock->control(PATCH => "organization_roles/$member->{id}",
        { name => 'Team Member', permissions => [ 'org:sys_memberships:read', 'org:sys_domains:read' ] });
    events_ok([ 'role.updated' ], 'PATCH of org:member records role.updated');
    is_deeply $role_of->(@{ $everywhere->($gm->{id}, $go, $gu) }),
        [ ([ 'Team Member', [ 'org:sys_domains:read', 'org:sys_memberships:read' ] ]) x 3 ],
        'a generated membership follows a changed system role, in every listing';
    $mock->control(PATCH => "organization_roles/$member->{id}",
        { name => 'Member', permissions => [ map { $_->{id} } @{ $member->{permissions} } ] });
    events_ok([ 'role.updated' ], 'changed back');
    is_deeply $everywhere->($gm->{id}, $go, $gu), $before, '... and the membership is exactly as before';

    # No role with that key (never was, or deleted): a guess from the key, or what it was.
    my ($other) = grep { !$member{ $_->{id} } && $_->{id} ne $user->{id} } @m_users;
    my $odd = $mock->control(POST => 'organization_memberships',
        { organization_id => $org->{id}, user_id => $other->{id}, role => 'org:no_such_role' });
    events_ok([ 'organizationMembership.created' ], 'a membership of an unknown role key');
    is_deeply $role_of->(@{ $everywhere->($odd->{id}, $org->{id}, $other->{id}) }),
        [ ([ 'No Such Role', [ 'org:sys_memberships:read' ] ]) x 3 ], '... shows a name and permissions guessed from the key';
    $mock->control(DELETE => "organization_roles/$cr->{id}");
    events_ok([ 'role.deleted' ], 'the custom role deleted');
    is_deeply $role_of->(@{ $everywhere->($mem->{id}, $org->{id}, $user->{id}) }),
        [ ([ $cr->{name}, [ sort map { $_->{key} } @{ $cr->{permissions} } ] ]) x 3 ],
        'a membership of a deleted role keeps what it last stored (here: from its creation)';
};

subtest 'control API and events: sessions' => sub {
    my $u = $m_users[7];
    my $t0 = time * 1000;
    my $s = $mock->control(POST => 'sessions', { user_id => $u->{id} });
    like $s->{id}, qr/^sess_[0-9A-Za-z]{27}$/, 'created: a Clerk-like id';
    is_deeply [ shape_problems($s, 'session') ], [], 'Session shape';
    is_deeply [ @$s{qw(status user_id tasks)} ], [ 'active', $u->{id}, undef ], 'active, the user\'s, no tasks';
    ok abs($s->{created_at} - $t0) < 60_000 && $s->{expire_at} == $s->{created_at} + 7 * $DAY_MS
        && $s->{abandon_at} == $s->{created_at} + 30 * $DAY_MS, 'created now, expires in 7 days, abandoned in 30';
    my ($ev) = events_ok([ 'session.created' ], 'POST records session.created');
    is_deeply [ shape_problems($ev->{data}, 'session_event') ], [],
        'SessionEventPayload fields (Session without tasks, plus user)';
    is_deeply without($ev->{data}, 'user'), without($s, 'tasks'), 'event data: the session';
    is_deeply $ev->{data}{user}, ok_get("/users/$u->{id}"), 'event data: user is the whole user';
    is ok_get("/sessions?user_id=$u->{id}&limit=1")->[0]{id}, $s->{id}, "first in the user's sessions";
    is_deeply ok_get("/sessions/$s->{id}"), $s, 'GET /sessions/{id}';
    is $mock->control_raw(POST => 'sessions', {})->{status}, 400, 'no user_id -> 400';
    is $mock->control_raw(POST => 'sessions', { user_id => 'user_2nothere' })->{status}, 404, 'unknown user -> 404';
    events_ok([], 'rejected requests record nothing');

    for my $to (qw(ended revoked removed)) {
        my $x = $mock->control(POST => 'sessions', { user_id => $u->{id} });
        new_events();
        $mock->control(PATCH => "sessions/$x->{id}", { status => $to });
        ($ev) = events_ok([ "session.$to" ], "status -> $to records session.$to");
        is_deeply [ @{ $ev->{data} }{qw(id status)} ], [ $x->{id}, $to ], "session.$to data";
        my $l = ok_get("/sessions?user_id=$u->{id}&status=$to&limit=500");
        ok((grep { $_ eq $x->{id} } ids(@$l)) && (all { $_->{status} eq $to } @$l), "status=$to lists it");
    }
    $mock->control(PATCH => "sessions/$s->{id}", { status => 'expired' });
    $mock->control(PATCH => "sessions/$s->{id}", { last_active_at => time * 1000 });
    events_ok([], 'status -> expired and other changes record nothing');

    my $p = $mock->control(POST => 'sessions', { user_id => $u->{id}, status => 'pending' });
    is_deeply [ $p->{status}, ref $p->{tasks} ], [ 'pending', 'ARRAY' ], 'a pending session has tasks';
    ($ev) = events_ok([ 'session.pending' ], 'POST of a pending session records session.pending');
    ok !exists $ev->{data}{tasks}, 'event data has no tasks (the webhook Session schema has none)';
    $mock->control(PATCH => "sessions/$p->{id}", { status => 'active' });
    ($ev) = events_ok([ 'session.created' ], 'pending -> active records session.created');
    is ok_get("/sessions/$p->{id}")->{tasks}, undef, 'active: tasks gone';
    $mock->control(PATCH => "sessions/$p->{id}", { status => 'pending' });
    ($ev) = events_ok([ 'session.pending' ], 'status -> pending records session.pending');
    is $ev->{data}{status}, 'pending', 'session.pending data';
    is_deeply $mock->control(DELETE => "sessions/$p->{id}"),
        { object => 'session', id => $p->{id}, deleted => JSON::PP::true }, 'DELETE answers a deleted object';
    events_ok([], 'DELETE records nothing (Clerk has no session.deleted)');
    error_is $mock->get("/sessions/$p->{id}"), 404, 'resource_not_found', 'deleted: 404';
    ok !(grep { $_ eq $p->{id} } ids(@{ ok_get("/sessions?user_id=$u->{id}&limit=500") })), 'deleted: not listed';
};

subtest 'control API: instance invitations (no events)' => sub {
    my $count = sub { ok_get('/invitations?paginated=true&limit=1')->{total_count} };
    my $before = $count->();
    my $i = $mock->control(POST => 'invitations', { email_address => 'fidelity.guest@example.com' });
    like $i->{id}, qr/^inv_[0-9A-Za-z]{27}$/, 'created: a Clerk-like id';
    is_deeply [ shape_problems($i, 'invitation') ], [], 'Invitation shape';
    is_deeply [ $i->{status}, $i->{revoked} ], [ 'pending', JSON::PP::false ], 'pending, not revoked';
    is_deeply ok_get('/invitations?limit=1'), [ $i ], 'listed first';
    is $count->(), $before + 1, 'counted';
    is $mock->control_raw(POST => 'invitations', { email_address => 'FIDELITY.guest@example.com' })->{status}, 409,
        'a second pending invitation of the same email -> 409';
    my $pi = $mock->control(PATCH => "invitations/$i->{id}", { status => 'revoked' });
    is_deeply [ $pi->{status}, $pi->{revoked} ], [ 'revoked', JSON::PP::true ], 'PATCH status: revoked follows';
    is $count->(), $before, 'revoked: left out of the default listing';
    is_deeply [ ids(@{ ok_get("/invitations?status=revoked&query=$i->{id}") }) ], [ $i->{id} ],
        '... listed with status=revoked';
    $mock->control(DELETE => "invitations/$i->{id}");
    is_deeply ok_get("/invitations?status=revoked&query=$i->{id}"), [], 'deleted: gone';
    events_ok([], 'instance invitations record no events (Clerk has none)');
};

subtest 'cascades: deleting an organization or a user' => sub {
    my $inv_n = sub { ok_get("/organizations/$_[0]/invitations?limit=1")->{total_count} };
    my $dom_n = sub { ok_get("/organizations/$_[0]/domains?limit=1")->{total_count} };
    my $mem_n = sub { ok_get("/organizations/$_[0]/memberships?limit=1")->{total_count} };
    my %n = map { $_->{id} => [ $inv_n->($_->{id}), $dom_n->($_->{id}), $mem_n->($_->{id}) ] } @m_orgs;
    my @cand = sort { $n{$b}[0] + $n{$b}[1] <=> $n{$a}[0] + $n{$a}[1] || $a cmp $b }
        grep { $n{$_}[0] && $n{$_}[1] && $n{$_}[2] } keys %n;
    cmp_ok scalar @cand, '>=', 2, 'two organizations with invitations, domains and members';
    my $o = $cand[0];
    my @its = ids(walk("/organizations/$o/invitations", 100));
    my @ds  = ids(walk("/organizations/$o/domains", 100));
    my $nm  = $n{$o}[2];
    my $st0 = $mock->state;
    $mock->control(DELETE => "organizations/$o");
    events_ok([ 'organization.deleted' ], 'by default only organization.deleted, nothing for what it takes along');
    my $st1 = $mock->state;
    is_deeply [ map { $st0->{$_} - $st1->{$_} } qw(organizations organization_invitations organization_domains
                                                    organization_memberships) ], [ 1, scalar @its, scalar @ds, $nm ],
        'state: the organization, its invitations, domains and memberships are gone';
    error_is $mock->get("/organizations/$o/invitations"), 404, 'resource_not_found', 'its invitations listing: 404';
    my @left = walk('/organization_invitations', 100);
    is scalar @left, $st1->{organization_invitations}, 'instance-wide total follows';
    ok !(grep { $_->{organization_id} eq $o } @left), 'none of its invitations is listed';
    is ok_get("/organization_domains?organization_id=$o")->{total_count}, 0, 'none of its domains is listed';
    is_deeply ok_get("/organizations/$o/domains"), { data => [], total_count => 0 }, 'its domains listing: empty';
    is ok_get('/organization_domains?limit=1')->{total_count}, $st1->{organization_domains}, 'domain total follows';
    is_deeply [ map { $mock->control_raw(GET => "organization_invitations/$_")->{status} } @its[0, -1] ], [ 404, 404 ],
        'its invitations: control GET -> 404';

    my %n_s;
    $n_s{ $_->{user_id} }++ for @sess;
    my @users = sort { $n_s{$b} <=> $n_s{$a} || $a cmp $b } grep { $user_by_id{$_} } keys %n_s;
    my $u = $users[0];
    my @us = ids(@{ ok_get("/sessions?user_id=$u&limit=500") });
    cmp_ok scalar @us, '>=', 2, 'a user with sessions';
    $mock->control(DELETE => "users/$u");
    events_ok([ 'user.deleted' ], 'by default only user.deleted');
    is_deeply ok_get("/sessions?user_id=$u"), [], "the user's sessions are gone";
    is_deeply [ map { $mock->get("/sessions/$_")->{status} } @us ], [ (404) x @us ], 'GET /sessions/{id}: 404';
    is $mock->state->{sessions}, $st1->{sessions} - @us, 'state: sessions drop';

    $mock->configure(cascade_events => JSON::PP::true);
    my $o2 = $cand[1];
    my ($nd2, $nm2) = @{ $n{$o2} }[1, 2];
    my @d2 = ids(walk("/organizations/$o2/domains", 100));
    $mock->control(DELETE => "organizations/$o2");
    my @ev = events_ok([ 'organization.deleted', ('organizationDomain.deleted') x $nd2,
                         ('organizationMembership.deleted') x $nm2 ],
        'cascade_events: organization.deleted, organizationDomain.deleted and organizationMembership.deleted for each');
    is_deeply [ sort map { $_->{id} } of_type('organizationDomain.deleted', @ev) ], [ sort @d2 ], '... for its domains';
    ok((all { $_->{object} eq 'organization_membership' && $_->{organization}{id} eq $o2 }
        of_type('organizationMembership.deleted', @ev)), '... the whole memberships');
    my $u2 = (grep { $_ ne $u } @users)[0];
    my @s2 = @{ ok_get("/sessions?user_id=$u2&limit=500") };
    my $m2 = ok_get("/users/$u2/organization_memberships?limit=1")->{total_count};
    $mock->control(DELETE => "users/$u2");
    @ev = events_ok([ 'user.deleted', ('session.removed') x @s2, ('organizationMembership.deleted') x $m2 ],
        'cascade_events: user.deleted, session.removed for each session, organizationMembership.deleted');
    is_deeply [ sort map { $_->{id} } of_type('session.removed', @ev) ], sorted_ids(@s2), '... for its sessions';
    ok((all { $_->{status} eq 'removed' && $_->{user_id} eq $u2 && !exists $_->{tasks} } of_type('session.removed', @ev)),
        '... with status removed');
    $mock->configure(cascade_events => JSON::PP::false);
};

subtest 'webhook event log: Svix signatures, filters, switches' => sub {
    is svix_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
                 '{"test": 2432232314}'), 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
        "the signature helper reproduces Svix's test vector";
    my $all = $mock->control(GET => 'events');
    cmp_ok scalar @$all, '>=', 20, 'the log holds the events so far';
    ok strictly(sub { $_[0] < $_[1] }, map { $_->{seq} } @$all), 'seq increases';
    ok((all { $_->{svix_id} =~ /^msg_[0-9A-Za-z]{27}$/ } @$all), 'svix_id looks like a Svix message id');
    is uniq_count(map { $_->{svix_id} } @$all), scalar @$all, 'svix_ids are unique';
    ok((all { $_->{svix_timestamp} =~ /^\d+$/ && abs($_->{svix_timestamp} - time) < 60 } @$all),
        'svix_timestamp: now, in seconds');
    my $e = $all->[-1];
    (my $raw = $e->{body}) =~ s/^/ /;
    utf8::encode($raw);
    isnt svix_sign($WHSEC, $e->{svix_id}, $e->{svix_timestamp}, $raw), $e->{svix_signature}, 'a changed body does not verify';
    my $at = $mock->control(GET => 'events?ts=1700000000');
    ok((all { my $b = $_->{body}; utf8::encode($b); $_->{svix_timestamp} eq '1700000000'
              && $_->{svix_signature} eq svix_sign($WHSEC, $_->{svix_id}, 1700000000, $b) } @$at),
        'ts=…: signed at that time');
    isnt $at->[-1]{svix_signature}, $e->{svix_signature}, 'the signature depends on the timestamp';
    my $types = $mock->control(GET => 'events?type=' . uri_escape('^session\.'));
    ok @$types && (all { $_->{type} =~ /^session\./ } @$types), 'type=REGEX filters';
    is_deeply [ map { $_->{seq} } @{ $mock->control(GET => "events?after=$all->[-3]{seq}") } ],
        [ map { $_->{seq} } @$all[-2, -1] ], 'after=SEQ: the newer ones';
    is $mock->control(GET => 'config')->{webhook_secret_sha256}, sha256_hex($WHSEC), 'config shows the secret as a sha256';
    unlike $mock->control_raw(GET => 'config')->{content}, qr/\Q$WHSEC\E/, '... never the secret';

    new_events();
    $mock->control(POST => 'organization_permissions?webhook=0', { key => 'org:muted:read' });
    events_ok([], '?webhook=0 records nothing');
    $mock->configure(events => JSON::PP::false);
    $mock->control(POST => 'organization_roles', { key => 'org:muted' });
    events_ok([], 'config events: false records nothing');
    $mock->configure(events => JSON::PP::true);
    my $r = $roles[0];
    my $posted = $mock->control(POST => 'events', { type => 'role.updated', id => $r->{id} });
    is $posted->{type}, 'role.updated', 'POST /__mock/events {type, id} records an event';
    my ($ev) = events_ok([ 'role.updated' ], '... signed like the others');
    is_deeply $ev->{data}, ok_get("/organization_roles/$r->{id}"), '... about the object as it is now';

    $mock->configure(webhook_secret => undef);
    my $plain = $mock->control(GET => 'events');
    ok((all { !defined $_->{svix_signature} && !defined $_->{svix_timestamp} } @$plain), 'no secret: no signature');
    is $mock->control_raw(POST => 'config', { webhook_secret => 'whsec_***' })->{status}, 400,
        'a secret that is not base64 -> 400';
    is $mock->control(DELETE => 'events')->{deleted}, scalar @$plain, 'DELETE /__mock/events clears';
    is_deeply $mock->control(GET => 'events'), [], 'the log is empty';
};

$mock->reset;
}

# --- mock fidelity: billing and the waitlist ------------------------------------
# Billing plans, prices, subscription items, statements and their payment
# attempts, and waitlist entries (test/mock_clerk.py, "Billing and the
# waitlist"): the fields the BAPI spec requires of CommercePlan,
# FeatureResponse, CommerceMoneyResponse, BillingPriceResponse,
# CommerceSubscriptionItem, CommercePayerResponse, BillingStatement,
# BillingPaymentAttempt and WaitlistEntry (written out here: nothing reads the
# spec at test time), the listings' parameters and errors, endpoint_errors,
# the control API, and the webhooks' shapes: BillingSubscriptionItemEventPayload
# (object subscription_item), SubscriptionEventPayload (its items object
# commerce_subscription_item), PaymentAttemptEventPayload (no object) and
# WaitlistEntry (object waitlistEntry).
@SCHEMA{qw(commerce_plan feature money commerce_price commerce_subscription_item commerce_payer next_payment
           commerce_statement statement_totals statement_group commerce_payment payment_method payee waitlist_entry
           item_event event_plan payer_event subscription_event payment_attempt_event billing_totals payment_source
           billing_item)} = (
    [ [qw(object id name fee annual_monthly_fee annual_fee description product_id is_default is_recurring
          publicly_visible has_base_fee for_payer_type slug avatar_url free_trial_enabled free_trial_days)],
      [qw(object id name fee annual_monthly_fee annual_fee description product_id is_default is_recurring
          publicly_visible has_base_fee for_payer_type slug avatar_url features free_trial_enabled free_trial_days
          unit_prices)] ],
    [ [qw(object id name description slug avatar_url)], [qw(object id name description slug avatar_url)] ],
    [ [qw(amount amount_formatted currency currency_symbol)], [qw(amount amount_formatted currency currency_symbol)] ],
    [ [qw(object id plan_id instance_id currency currency_symbol amount annual_monthly_amount fee annual_monthly_fee
          is_default created_at supported_billing_periods)],
      [qw(object id plan_id instance_id currency currency_symbol amount annual_monthly_amount fee annual_monthly_fee
          description is_default created_at supported_billing_periods)] ],
    [ [qw(object id instance_id status plan_id plan_period payer_id is_free_trial period_start period_end canceled_at
          past_due_at ended_at)],
      [qw(object id instance_id status credit credits plan_id price_id plan plan_period payment_method lifetime_paid
          next_payment payer_id payer is_free_trial period_start period_end proration_date canceled_at past_due_at
          ended_at created_at updated_at seats totals)] ],
    [ [qw(object id instance_id)],
      [qw(object id instance_id user_id first_name last_name email organization_id organization_name image_url
          credits_balance created_at updated_at)] ],
    [ [], [qw(amount date per_unit_totals totals)] ],
    [ [qw(object id instance_id timestamp payer status totals groups)],
      [qw(object id instance_id timestamp payer status totals groups)] ],
    [ [qw(grand_total subtotal base_fee tax_total)], [qw(grand_total subtotal base_fee tax_total)] ],
    [ [qw(object timestamp items)], [qw(object timestamp items)] ],
    [ [qw(object id payment_id instance_id charge_type payee_id payee payer_id payer amount payment_method_id
          payment_method statement_id gateway_external_id gateway_external_url status paid_at failed_at created_at
          updated_at)],
      [qw(object id payment_id instance_id charge_type payee_id payee payer_id payer subscription_item_id
          subscription_item amount totals payment_method_id payment_method statement_id gateway_external_id
          gateway_external_url status paid_at failed_at created_at updated_at)] ],
    [ [qw(object id payer_id payment_type gateway gateway_external_id gateway_external_account_id last4 status
          card_type)],
      [qw(object id payer_id payment_type is_default gateway gateway_external_id gateway_external_account_id last4
          status wallet_type card_type expiry_year expiry_month created_at updated_at is_removable)] ],
    [ [qw(id gateway_type gateway_external_id gateway_status)], [qw(id gateway_type gateway_external_id gateway_status)] ],
    [ [qw(object id email_address status created_at updated_at)],
      [qw(object id email_address status is_locked created_at updated_at invitation)] ],
    # webhooks-openapi.yml
    [ [qw(object id status is_free_trial created_at updated_at period_start period_end interval plan_id plan
          subscription_id)],
      [qw(object id status is_free_trial created_at updated_at period_start period_end interval plan_id plan payer
          subscription_id seats)] ],
    [ [qw(id slug name is_recurring amount currency)], [qw(id slug name is_recurring amount currency unit_prices)] ],
    [ [qw(id image_url user_id first_name last_name email organization_id organization_name)],
      [qw(object id user_id first_name last_name email organization_id organization_name image_url created_at
          updated_at)] ],
    [ [qw(object id status active_at canceled_at created_at ended_at past_due_at updated_at latest_payment_id payer_id
          payer payment_source_id items)],
      [qw(object id status active_at canceled_at created_at ended_at past_due_at updated_at latest_payment_id payer_id
          payer payment_source_id items)] ],
    [ [qw(id instance_id payment_id invoice_id statement_id gateway_external_id status created_at updated_at paid_at
          failed_at failed_reason billing_date charge_type payee payer totals payment_source subscription_items)],
      [qw(id instance_id payment_id invoice_id statement_id gateway_external_id status created_at updated_at paid_at
          failed_at failed_reason billing_date charge_type payee payer totals payment_source subscription_items)] ],
    [ [qw(subtotal tax_total grand_total)], [qw(subtotal tax_total grand_total per_unit_totals)] ],
    [ [qw(id gateway gateway_external_id gateway_external_account_id payment_method status card_type last4)],
      [qw(id gateway gateway_external_id gateway_external_account_id payment_method status card_type last4)] ],
    [ [qw(id object status created_at updated_at period_start period_end interval plan_id plan)],
      [qw(id object status created_at updated_at period_start period_end interval plan_id plan payer subscription_id
          credit credits)] ],
);
my @ITEM_STATUS = qw(active canceled expired ended past_due upcoming incomplete abandoned);
my @WAIT_STATUS = qw(pending invited completed rejected);
my @BILLING_KINDS = qw(billing_plans billing_prices billing_subscription_items billing_statements
                       billing_payment_attempts waitlist_entries);

# money objects: an integer amount in cents, formatted, in dollars
sub money_problems {
    my ($name, @m) = @_;
    return map {
        my $m = $_;
        ref $m ne 'HASH' ? ("$name: not an object")
        : ((map { "$name: $_" } shape_problems($m, 'money')),
           ($m->{amount} =~ /^-?\d+$/ ? () : "$name: amount $m->{amount}"),
           ($m->{currency} eq 'USD' && $m->{currency_symbol} eq '$' ? () : "$name: currency"),
           ($m->{amount_formatted} eq sprintf('$%d.%02d', int($m->{amount} / 100), $m->{amount} % 100)
               ? () : "$name: amount_formatted $m->{amount_formatted}"))
    } @m;
}

# Numbers must be JSON numbers: the raw body has no "amount":"…" or "…_at":"…"
sub numbers_ok {
    my ($raw, $name) = @_;
    unlike $raw, qr/"(?:amount|annual_monthly_amount|timestamp|date|free_trial_days|[a-z_]+_at)":"/,
        "$name: amounts and timestamps are JSON numbers";
}

my $now_ms = sub { int(time * 1000) };

{
local $mock->{http} = HTTP::Tiny->new(keep_alive => 0, timeout => 60, agent => 'clerk-mock-tests/1.0');
my %BILL = (users => 30, organizations => 4, memberships => 40, seed => 7);
my (@b_users, %b_user, @b_orgs, %b_org, @plans, %plan_by_id, %plan_by_slug, @prices, @items, %item_by_id, @stmts,
    %atts_of, @waits);

subtest 'billing: sizes, reset keys and CLI flags' => sub {
    my $st = $mock->reset(\%BILL);
    $ev_seen = 0;
    is_deeply [ @$st{qw(billing_plans billing_prices billing_subscription_items billing_statements waitlist_entries)} ],
        [ 4, 5, 12, 6, 6 ], 'defaults: 4 plans, a default price each and 1 custom one, 12 items, 6 statements, 6 entries';
    ok $st->{billing_payment_attempts} >= 6 && $st->{billing_payment_attempts} <= 18, '1 to 3 attempts per statement';
    is_deeply [ map { $st->{generated}{$_} } @BILLING_KINDS ], [ map { $st->{$_} } @BILLING_KINDS ], 'generated counts';
    like $st->{billing_anchor}, qr/^\d{13}$/, 'billing_anchor (ms) in the state';
    my $x = $mock->reset({ %BILL, billing_plans => 6, billing_custom_prices => 3, billing_subscription_items => 30,
                           billing_statements => 2, waitlist_entries => 1, billing_anchor => 1_767_225_600_000 });
    is_deeply [ @$x{qw(billing_plans billing_prices billing_subscription_items billing_statements waitlist_entries
                       billing_anchor)} ], [ 6, 9, 30, 2, 1, 1_767_225_600_000 ], 'reset takes every billing size';
    $x = $mock->reset({ users => 100_000, organizations => 5, memberships => 10, seed => 7 });
    is_deeply [ @$x{qw(billing_plans billing_subscription_items billing_statements waitlist_entries)} ], [ 4, 12, 6, 6 ],
        '100k users: the billing sizes stay small';
    $x = $mock->reset({ users => 0, organizations => 0, memberships => 0, seed => 7 });
    is_deeply [ @$x{qw(billing_plans billing_subscription_items billing_statements billing_payment_attempts)} ],
        [ 4, 0, 0, 0 ], 'no users and no organizations: no payers, no items, no statements';
    my $m = ClerkMock->new(%BILL, extra_args => [ '--billing-plans', 2, '--billing-custom-prices', 0,
        '--billing-subscription-items', 5, '--billing-statements', 1, '--waitlist-entries', 0,
        '--billing-anchor', 1_767_225_600_000 ]);
    my $ms = $m->state;
    is_deeply [ @$ms{qw(billing_plans billing_prices billing_subscription_items billing_statements waitlist_entries
                        billing_anchor)} ], [ 2, 2, 5, 1, 0, 1_767_225_600_000 ], 'the CLI flags';
    $m->stop;
    $mock->reset(\%BILL);
    @b_users = walk('/users?order_by=created_at', 500);
    %b_user = map { $_->{id} => $_ } @b_users;
    @b_orgs = @{ ok_get('/organizations?limit=500&order_by=created_at')->{data} };
    %b_org = map { $_->{id} => $_ } @b_orgs;
};

subtest 'GET /billing/plans' => sub {
    my $res = $mock->get('/billing/plans');
    is ref $res->{json}, 'HASH', '{data,total_count} object';
    is_deeply [ sort keys %{ $res->{json} } ], [qw(data total_count)], 'only data and total_count';
    is $res->{json}{total_count}, 4, 'total_count';
    numbers_ok $res->{content}, 'plans';
    @plans = @{ $res->{json}{data} };
    is_deeply [ map { $_->{slug} } @plans ], [qw(pro free_org pro_user free_user)],
        'newest first: the order they were made in, reversed';
    is_deeply [ ids(walk('/billing/plans', 1)) ], [ ids(@plans) ], 'limit/offset walk';
    %plan_by_id = map { $_->{id} => $_ } @plans;
    %plan_by_slug = map { $_->{slug} => $_ } @plans;
    shapes_ok \@plans, 'commerce_plan', 'CommercePlan: every required field, no unlisted one (no created_at)';
    ok((all { $_->{object} eq 'commerce_plan' && $_->{id} =~ /^cplan_[0-9A-Za-z]{27}$/ } @plans), 'object, id');
    is_deeply [ money_problems('fee', map { @$_{qw(fee annual_monthly_fee annual_fee)} } @plans) ], [], 'money objects';
    is_deeply [ map { [ @$_{qw(for_payer_type)}, bool01($_->{is_default}), $_->{fee}{amount} ] }
                @plan_by_slug{qw(free_user pro_user free_org pro)} ],
        [ [ 'user', 1, 0 ], [ 'user', 0, 2000 ], [ 'org', 1, 0 ], [ 'org', 0, 9900 ] ],
        'free_user and free_org are the free defaults, pro_user and pro paid';
    ok((all { my $p = $_; all { JSON::PP::is_bool($p->{$_}) } qw(is_default is_recurring publicly_visible has_base_fee
        free_trial_enabled) } @plans), 'booleans');
    ok((all { $_->{annual_fee}{amount} == 12 * $_->{annual_monthly_fee}{amount} } @plans), 'annual_fee = 12 x annual_monthly_fee');
    my @feat = map { @{ $_->{features} } } @plans;
    shapes_ok \@feat, 'feature', 'FeatureResponse fields';
    ok((all { $_->{object} eq 'feature' && $_->{id} =~ /^feat_/ } @feat), 'features: object feature');
    is_deeply { map { $_->{slug} => [ map { $_->{slug} } @{ $_->{features} } ] } @plans },
        { free_user => ['basic'], free_org => ['basic'], pro_user => [qw(basic reports sso)], pro => [qw(basic reports sso)] },
        'free plans have basic; paid ones basic, reports, sso';
    is uniq_count(map { "$_->{slug}=$_->{id}" } @feat), 3, 'a feature has one id in every plan';
    ok((any { ($_->{name} // '') =~ /[^\x00-\x7f]/ } @plans) && (any { ($_->{description} // '') =~ /\n/ } @plans),
        'hostile content: non-ASCII names, newlines in descriptions');
    is_deeply [ map { $_->{slug} } @{ ok_get('/billing/plans?payer_type=org')->{data} } ], [qw(pro free_org)],
        'payer_type=org';
    is_deeply [ map { $_->{slug} } @{ ok_get('/billing/plans?payer_type=user&paginated=true')->{data} } ],
        [qw(pro_user free_user)], 'payer_type=user (paginated=true: the same answer)';
    my $j = error_is $mock->get('/billing/plans?order_by=created_at'), 422, 'form_param_unknown', 'order_by -> 422';
    is $j->{errors}[0]{meta}{param_name}, 'order_by', 'meta.param_name = order_by';
    error_is $mock->get('/billing/plans?payer_type=team'), 422, 'form_param_value_invalid', 'payer_type=team';
    error_is $mock->get('/billing/plans?paginated=maybe'), 422, 'form_param_value_invalid', 'paginated=maybe';
    error_is $mock->get('/billing/plans?limit=501'), 422, 'form_param_value_invalid', 'limit=501';
    error_is $mock->get('/billing/plans?limit=0'), 422, 'form_param_value_invalid', 'limit=0';
    error_is $mock->get('/billing/plans?offset=-1'), 422, 'form_param_value_invalid', 'offset=-1';
    error_is $mock->get('/billing/plans', auth => 'sk_test_wrong'), 401, 'authentication_invalid', 'authenticated';
    error_is $mock->get('/billing'), 404, 'resource_not_found', '/billing: 404';
    my $r = $mock->request(POST => '/billing/plans');
    is $r->{status}, 405, 'POST -> 405';
};

subtest 'GET /billing/prices' => sub {
    my $res = $mock->get('/billing/prices?limit=500');
    is $res->{json}{total_count}, 5, 'total_count: 4 default prices and a custom one';
    numbers_ok $res->{content}, 'prices';
    @prices = @{ $res->{json}{data} };
    shapes_ok \@prices, 'commerce_price', 'BillingPriceResponse: every required field, no unlisted one';
    ok((all { $_->{object} eq 'commerce_price' && $_->{id} =~ /^cprice_[0-9A-Za-z]{27}$/ && $_->{instance_id} =~ /^ins_/
              && is_ms($_->{created_at}) && !exists $_->{updated_at} } @prices), 'object, id, created_at only');
    is_deeply [ money_problems('price', map { @$_{qw(fee annual_monthly_fee)} } @prices) ], [], 'money objects';
    ok((all { $_->{fee}{amount} == $_->{amount} && $_->{annual_monthly_fee}{amount} == $_->{annual_monthly_amount} }
        @prices), 'fee and annual_monthly_fee match amount and annual_monthly_amount');
    my %def;
    $def{ $_->{plan_id} }++ for grep { $_->{is_default} } @prices;
    is_deeply \%def, { map { $_->{id} => 1 } @plans }, 'one default price per plan';
    my ($custom) = grep { !$_->{is_default} } @prices;
    is $plan_by_id{ $custom->{plan_id} }{slug}, 'pro', 'the custom price is for a paid plan (pro)';
    ok $custom->{amount} < $plan_by_slug{pro}{fee}{amount}, '... below its default price';
    ok((all { $plan_by_id{ $_->{plan_id} }{fee}{amount} == $_->{amount} } grep { $_->{is_default} } @prices),
        "a default price is its plan's fee");
    ok strictly(sub { $_[0]{amount} < $_[1]{amount} || ($_[0]{amount} == $_[1]{amount}
                                                        && $_[0]{created_at} >= $_[1]{created_at}) }, @prices),
        'sorted by amount ascending, then created_at descending';
    is_deeply [ ids(walk('/billing/prices', 2)) ], [ ids(@prices) ], 'limit/offset walk';
    my $pro = $plan_by_slug{pro}{id};
    is_deeply [ ids(@{ ok_get("/billing/prices?plan_id=$pro")->{data} }) ],
        [ ids(grep { $_->{plan_id} eq $pro } @prices) ], 'plan_id filter';
    error_is $mock->get('/billing/prices?plan_id=cplan_2nothere'), 404, 'resource_not_found', 'unknown plan_id -> 404';
    error_is $mock->get('/billing/prices?order_by=amount'), 422, 'form_param_unknown', 'order_by -> 422';
    error_is $mock->get('/billing/prices?limit=501'), 422, 'form_param_value_invalid', 'limit=501';
};

subtest 'GET /billing/subscription_items' => sub {
    my $res = $mock->get('/billing/subscription_items?include_free=true&limit=500');
    is $res->{json}{total_count}, 12, 'include_free=true: all 12';
    numbers_ok $res->{content}, 'items';
    @items = @{ $res->{json}{data} };
    %item_by_id = map { $_->{id} => $_ } @items;
    shapes_ok \@items, 'commerce_subscription_item', 'CommerceSubscriptionItem: every required field, no unlisted one';
    ok((all { $_->{object} eq 'commerce_subscription_item' && $_->{id} =~ /^csub_item_[0-9A-Za-z]{27}$/
              && $_->{instance_id} =~ /^ins_/ && !exists $_->{subscription_id} } @items),
        'object, id; no subscription_id (the BAPI item has none)');
    ok strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @items), 'newest created first';
    ok((all { is_ms($_->{created_at}) && $_->{updated_at} >= $_->{created_at} && is_ms($_->{period_start}) } @items),
        'timestamps in ms');
    ok((all { my $s = $_->{status}; any { $s eq $_ } @ITEM_STATUS } @items), 'status in the enum');
    is_deeply [ sort(uniq_list(map { $_->{status} } @items)) ], [ sort qw(active canceled upcoming past_due ended abandoned) ],
        'every status is listed without a status filter: active, canceled, upcoming, past_due, ended, abandoned';
    ok((all { $_->{plan_period} =~ /^(?:month|annual)$/ && JSON::PP::is_bool($_->{is_free_trial}) } @items),
        'plan_period month|annual, is_free_trial boolean');
    ok((any { $_->{plan_period} eq 'annual' } @items) && (any { $_->{is_free_trial} } @items), 'an annual one, a free trial');
    is_deeply [ map { $_->{id} } grep { !$plan_by_id{ $_->{plan_id} }
                                        || $JSON->encode($_->{plan}) ne $JSON->encode($plan_by_id{ $_->{plan_id} }) } @items ],
        [], 'plan: the listed CommercePlan of plan_id';
    my %price = map { $_->{id} => $_ } @prices;
    ok((all { $price{ $_->{price_id} } && $price{ $_->{price_id} }{plan_id} eq $_->{plan_id} } @items),
        "price_id: one of the plan's prices");
    ok((any { !$price{ $_->{price_id} }{is_default} } @items), 'one of them on the custom price');
    is_deeply [ money_problems('lifetime_paid', map { $_->{lifetime_paid} } @items) ], [], 'lifetime_paid money objects';
    my @np = grep { defined } map { $_->{next_payment} } @items;
    shapes_ok \@np, 'next_payment', 'next_payment fields';
    is_deeply [ money_problems('next_payment', map { $_->{amount} } @np) ], [], 'next_payment: amount, a money object';
    ok((all { is_ms($_->{date}) } @np), 'next_payment: date');
    my @payers = map { $_->{payer} } @items;
    shapes_ok \@payers, 'commerce_payer', 'CommercePayerResponse: every required field, no unlisted one';
    ok((all { $_->{payer}{object} eq 'commerce_payer' && $_->{payer}{id} eq $_->{payer_id}
              && $_->{payer_id} =~ /^cpayer_[0-9A-Za-z]{27}$/ } @items), 'payer_id = payer.id, cpayer_…');
    my @u = grep { defined $_->{payer}{user_id} } @items;
    my @o = grep { defined $_->{payer}{organization_id} } @items;
    is @u + @o, 12, 'each payer is a user or an organization';
    ok @u && @o, 'both kinds of payer';
    is_deeply [ map { $_->{id} } grep { my $p = $_->{payer}; my $x = $b_user{ $p->{user_id} };
                    !$x || defined $p->{organization_id} || defined $p->{organization_name}
                    || ($p->{first_name} // '') ne ($x->{first_name} // '') } @u ],
        [], "user payers: a generated user, its name, organization_id and organization_name null";
    is_deeply [ map { $_->{id} } grep { my $p = $_->{payer}; my $x = $b_org{ $p->{organization_id} };
                    !$x || defined $p->{user_id} || $p->{organization_name} ne $x->{name} } @o ],
        [], 'organization payers: a generated organization, its name, user_id null';
    is uniq_count(map { $_->{payer}{organization_id} } @o), 4, 'all 4 organizations hold items';
    my $free = sub { $plan_by_id{ $_[0]{plan_id} }{fee}{amount} == 0 };
    ok((all { !defined $_->{period_end} } grep { $free->($_) } @items), 'free plans: period_end null');
    ok((all { $_->{status} eq 'active' || $_->{status} eq 'upcoming' } grep { $free->($_) } @items),
        'free plans: active (or upcoming)');
    my $now = $now_ms->();
    my ($canceled) = grep { $_->{status} eq 'canceled' } @items;
    ok defined $canceled->{canceled_at} && $canceled->{period_end} > $now, 'canceled: canceled_at set, ends in the future';
    ok((all { defined $_->{past_due_at} } grep { $_->{status} eq 'past_due' } @items), 'past_due: past_due_at set');
    ok((all { defined $_->{ended_at} && $_->{ended_at} < $now } grep { $_->{status} eq 'ended' } @items), 'ended: ended_at set');
    ok((all { $_->{period_start} > $now } grep { $_->{status} eq 'upcoming' } @items), 'upcoming: starts in the future');
    ok((all { $_->{period_start} <= $now && (!defined $_->{period_end} || $_->{period_end} > $now) }
        grep { $_->{status} eq 'active' } @items), 'active: the current period holds now');

    my $def = ok_get('/billing/subscription_items?limit=500');
    is_deeply [ ids(@{ $def->{data} }) ], [ ids(grep { !$free->($_) } @items) ],
        'include_free defaults to false: items of free plans are left out';
    is $def->{total_count}, scalar(grep { !$free->($_) } @items), '... and not counted';
    is_deeply [ ids(@{ ok_get('/billing/subscription_items?include_free=false&limit=500')->{data} }) ],
        [ ids(@{ $def->{data} }) ], 'include_free=false';
    is_deeply [ ids(walk('/billing/subscription_items?include_free=true', 5)) ], [ ids(@items) ], 'limit/offset walk';
    for my $s (qw(active ended past_due upcoming)) {
        is_deeply [ ids(@{ ok_get("/billing/subscription_items?include_free=true&status=$s&limit=500")->{data} }) ],
            [ ids(grep { $_->{status} eq $s } @items) ], "status=$s";
    }
    is_deeply [ ids(@{ ok_get('/billing/subscription_items?status=free_trial&limit=500')->{data} }) ],
        [ ids(grep { $_->{is_free_trial} } @items) ], 'status=free_trial: the free-trial items';
    for my $t (qw(user org)) {
        is_deeply [ ids(@{ ok_get("/billing/subscription_items?include_free=true&payer_type=$t&limit=500")->{data} }) ],
            [ ids($t eq 'user' ? @u : @o) ], "payer_type=$t";
    }
    my $pro = $plan_by_slug{pro}{id};
    is_deeply [ ids(@{ ok_get("/billing/subscription_items?plan_id=$pro&limit=500")->{data} }) ],
        [ ids(grep { $_->{plan_id} eq $pro } @items) ], 'plan_id';
    is_deeply [ ids(@{ ok_get("/billing/subscription_items?plan_id=$plan_by_slug{free_org}{id}")->{data} }) ], [],
        "a free plan's items need include_free=true";
    my $uid = $u[0]{payer}{user_id};
    is_deeply [ ids(@{ ok_get("/billing/subscription_items?include_free=true&query=$uid&limit=500")->{data} }) ],
        [ ids(grep { ($_->{payer}{user_id} // '') eq $uid } @items) ], 'query: a user id';
    my ($withmail) = grep { defined $_->{payer}{email} } @u;
    my $mail = $withmail->{payer}{email};
    is_deeply [ ids(@{ ok_get('/billing/subscription_items?include_free=true&limit=500&query='
                              . uri_escape(uc substr($mail, 0, 8)))->{data} }) ],
        [ ids(grep { index(lc($_->{payer}{email} // ''), lc substr($mail, 0, 8)) >= 0 } @items) ],
        'query: part of the email address, any case';
    is_deeply ok_get('/billing/subscription_items?query=nobody-at-all')->{data}, [], 'query without a match';
    error_is $mock->get('/billing/subscription_items?order_by=-created_at'), 422, 'form_param_unknown', 'order_by -> 422';
    error_is $mock->get('/billing/subscription_items?status=canceled'), 422, 'form_param_value_invalid',
        'status=canceled is not a filter value';
    error_is $mock->get('/billing/subscription_items?include_free=sometimes'), 422, 'form_param_value_invalid',
        'include_free=sometimes';
    error_is $mock->get('/billing/subscription_items?payer_type=team'), 422, 'form_param_value_invalid', 'payer_type=team';
    error_is $mock->get('/billing/subscription_items?limit=501'), 422, 'form_param_value_invalid', 'limit=501';
};

subtest 'GET /billing/statements, /billing/statements/{id} and its payment_attempts' => sub {
    my $res = $mock->get('/billing/statements?limit=500');
    is $res->{json}{total_count}, 6, 'total_count';
    numbers_ok $res->{content}, 'statements';
    @stmts = @{ $res->{json}{data} };
    shapes_ok \@stmts, 'commerce_statement', 'BillingStatement: every required field, no unlisted one';
    ok((all { $_->{object} eq 'commerce_statement' && $_->{id} =~ /^stmt_[0-9A-Za-z]{27}$/ && is_ms($_->{timestamp}) }
        @stmts), 'object, id, timestamp');
    ok strictly(sub { $_[0] > $_[1] }, map { $_->{timestamp} } @stmts), 'newest first';
    is_deeply [ sort(uniq_list(map { $_->{status} } @stmts)) ], [qw(closed open)], 'open and closed ones';
    shapes_ok [ map { $_->{totals} } @stmts ], 'statement_totals', 'totals fields';
    is_deeply [ money_problems('totals', map { values %{ $_->{totals} } } @stmts) ], [], 'totals are money objects';
    ok((all { $_->{totals}{grand_total}{amount} == $_->{totals}{subtotal}{amount} + $_->{totals}{tax_total}{amount} }
        @stmts), 'grand_total = subtotal + tax_total');
    shapes_ok [ map { $_->{payer} } @stmts ], 'commerce_payer', 'payer: CommercePayerResponse';
    my %payers = map { $_->{payer_id} => 1 } @items;
    ok((all { $payers{ $_->{payer}{id} } } @stmts), "each statement's payer holds subscription items");
    is_deeply [ ids(walk('/billing/statements', 4)) ], [ ids(@stmts) ], 'limit/offset walk';
    is_deeply ok_get("/billing/statements/$stmts[2]{id}"), $stmts[2], 'GET one = the listed object';
    my $j = error_is $mock->get('/billing/statements/stmt_2nothere'), 404, 'resource_not_found', 'unknown statement';
    like $j->{errors}[0]{long_message}, qr/^No statement found with id stmt_2nothere\.$/, 'long_message';
    error_is $mock->get("/billing/statements/$stmts[0]{id}?limit=5"), 422, 'form_param_unknown', 'GET one takes no limit';
    error_is $mock->get('/billing/statements?order_by=timestamp'), 422, 'form_param_unknown', 'order_by -> 422';

    my (@all, @bad);
    for my $s (@stmts) {
        my $r = $mock->get("/billing/statements/$s->{id}/payment_attempts?limit=500");
        push(@bad, "$s->{id}: $r->{status}"), next unless $r->{status} == 200;
        numbers_ok $r->{content}, "attempts of $s->{id}" if $s eq $stmts[0];
        my @a = @{ $r->{json}{data} };
        push @bad, "$s->{id}: total_count" unless $r->{json}{total_count} == @a;
        push @bad, "$s->{id}: " . scalar(@a) . ' attempts' unless @a >= 1 && @a <= 3;
        push @bad, "$s->{id}: not newest first" unless strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @a);
        push @bad, map { "$_->{id}: of another statement" } grep { $_->{statement_id} ne $s->{id} } @a;
        push @bad, "$s->{id}: groups" unless $JSON->encode([ map { @{ $_->{items} } } @{ $s->{groups} } ]) eq $JSON->encode(\@a);
        push @bad, map { "$_->{id}: payer" } grep { $JSON->encode($_->{payer}) ne $JSON->encode($s->{payer}) } @a;
        push @bad, map { "$_->{id}: amount" } grep { $_->{amount}{amount} != $s->{totals}{grand_total}{amount} } @a;
        push @bad, "$s->{id}: closed but its last attempt is not paid" if $s->{status} eq 'closed' && $a[0]{status} ne 'paid';
        $atts_of{ $s->{id} } = \@a;
        push @all, @a;
    }
    is_deeply \@bad, [], "each statement's attempts: its own, 1 to 3, newest first, total_count, in groups, its payer";
    is scalar @all, $mock->state->{billing_payment_attempts}, 'together: every payment attempt';
    shapes_ok \@all, 'commerce_payment', 'BillingPaymentAttempt: every required field, no unlisted one';
    shapes_ok [ map { $_->{payment_method} } @all ], 'payment_method', 'CommercePaymentMethodResponse fields';
    shapes_ok [ map { $_->{payee} } @all ], 'payee', 'payee fields';
    shapes_ok [ map { @{ $_->{groups} } } @stmts ], 'statement_group', 'statement groups';
    ok((all { $_->{object} eq 'commerce_statement_group' } map { @{ $_->{groups} } } @stmts), 'object commerce_statement_group');
    ok((all { $_->{object} eq 'commerce_payment' && $_->{id} =~ /^pa_[0-9A-Za-z]{27}$/ && $_->{payment_id} =~ /^cpa_/
              && $_->{payer_id} eq $_->{payer}{id} && $_->{payment_method_id} eq $_->{payment_method}{id}
              && $_->{payee_id} eq $_->{payee}{id} } @all), 'object, ids, payer_id/payment_method_id/payee_id');
    is_deeply [ sort(uniq_list(map { $_->{status} } @all)) ], [qw(failed paid pending)], 'pending, paid and failed ones';
    is_deeply [ sort(uniq_list(map { $_->{charge_type} } @all)) ], [qw(checkout recurring)], 'checkout and recurring';
    ok((all { (defined $_->{paid_at}) == ($_->{status} eq 'paid') && (defined $_->{failed_at}) == ($_->{status} eq 'failed') }
        @all), 'paid_at exactly when paid, failed_at exactly when failed');
    ok((all { $item_by_id{ $_->{subscription_item_id} }
              && $item_by_id{ $_->{subscription_item_id} }{payer_id} eq $_->{payer_id} } @all),
        "subscription_item_id: an item of the attempt's payer");
    is_deeply [ money_problems('amount', map { $_->{amount} } @all) ], [], 'amount: money object';
    my $one = $stmts[0];
    is_deeply [ ids(walk("/billing/statements/$one->{id}/payment_attempts", 1)) ], [ ids(@{ $atts_of{ $one->{id} } }) ],
        'limit/offset walk';
    error_is $mock->get('/billing/statements/stmt_2nothere/payment_attempts'), 404, 'resource_not_found',
        'payment attempts of an unknown statement';
    error_is $mock->get("/billing/statements/$one->{id}/payment_attempts?status=paid"), 422, 'form_param_unknown',
        'no status filter';
    error_is $mock->get("/billing/statements/$one->{id}/payment_attempts?limit=501"), 422, 'form_param_value_invalid',
        'limit=501';
};

subtest 'GET /waitlist_entries' => sub {
    my $res = $mock->get('/waitlist_entries');
    is_deeply [ sort keys %{ $res->{json} } ], [qw(data total_count)], '{data,total_count} object';
    is $res->{json}{total_count}, 6, 'total_count';
    numbers_ok $res->{content}, 'waitlist';
    ok strictly(sub { $_[0] > $_[1] }, map { $_->{created_at} } @{ $res->{json}{data} }), 'newest first by default';
    @waits = walk('/waitlist_entries?order_by=created_at', 4);
    is_deeply [ ids(@waits) ], [ reverse ids(@{ $res->{json}{data} }) ], 'order_by=created_at: oldest first';
    shapes_ok \@waits, 'waitlist_entry', 'WaitlistEntry: every required field, no unlisted one';
    ok((all { $_->{object} eq 'waitlist_entry' && $_->{id} =~ /^wle_[0-9A-Za-z]{27}$/ && $_->{email_address} =~ /\@/
              && JSON::PP::is_bool($_->{is_locked}) && is_ms($_->{created_at}) && $_->{updated_at} >= $_->{created_at} }
        @waits), 'object, id, email, is_locked, timestamps');
    is_deeply [ sort(uniq_list(map { $_->{status} } @waits)) ], [ sort @WAIT_STATUS ], 'every status';
    ok((all { defined($_->{invitation}) == ($_->{status} =~ /^(?:invited|completed)$/) } @waits),
        'an invitation exactly for invited and completed entries');
    shapes_ok [ grep { defined } map { $_->{invitation} } @waits ], 'invitation', 'invitation: an Invitation';
    ok((any { $_->{is_locked} } @waits) && (any { $_->{email_address} =~ /[^\x00-\x7f]/ } @waits)
       && (any { $_->{email_address} =~ /[A-Z+]/ } @waits), 'a locked one; non-ASCII, upper case, + in emails');
    for my $s (@WAIT_STATUS) {
        is_deeply sorted_ids(@{ ok_get("/waitlist_entries?status=$s&limit=500")->{data} }),
            sorted_ids(grep { $_->{status} eq $s } @waits), "status=$s";
    }
    my $w = $waits[3];
    is_deeply ok_get("/waitlist_entries?query=$w->{id}")->{data}, [ $w ], 'query: exact id';
    is_deeply sorted_ids(@{ ok_get('/waitlist_entries?query=WAIT.LIST&limit=500')->{data} }),
        sorted_ids(grep { index(lc $_->{email_address}, 'wait.list') >= 0 } @waits), 'query: part of the email, any case';
    my @e = map { $_->{email_address} } @{ ok_get('/waitlist_entries?order_by=email_address&limit=500')->{data} };
    is_deeply \@e, [ sort map { $_->{email_address} } @waits ], 'order_by=email_address';
    @e = map { $_->{email_address} } @{ ok_get('/waitlist_entries?order_by=-email_address&limit=500')->{data} };
    is_deeply \@e, [ reverse sort map { $_->{email_address} } @waits ], 'order_by=-email_address';
    my @inv = map { $_->{invitation} ? $_->{invitation}{created_at} : undef }
        @{ ok_get('/waitlist_entries?order_by=%2Binvited_at&limit=500')->{data} };
    my @with = grep { defined } @inv;
    ok strictly(sub { $_[0] <= $_[1] }, @with) && (all { defined } @inv[0 .. $#with]),
        'order_by=+invited_at: by the invitation, the uninvited last';
    error_is $mock->get('/waitlist_entries?order_by=status'), 422, 'form_param_value_invalid', 'order_by=status';
    error_is $mock->get('/waitlist_entries?status=waiting'), 422, 'form_param_value_invalid', 'status=waiting';
    error_is $mock->get('/waitlist_entries?paginated=true'), 422, 'form_param_unknown', 'paginated is not a parameter here';
    error_is $mock->get('/waitlist_entries?limit=501'), 422, 'form_param_value_invalid', 'limit=501';
};

subtest 'endpoint_errors and the offset cost: billing and the waitlist' => sub {
    my $s = $stmts[0]{id};
    my @billing = ('/billing/plans', '/billing/prices', '/billing/subscription_items', '/billing/statements',
                   "/billing/statements/$s", "/billing/statements/$s/payment_attempts");
    $mock->configure(endpoint_errors => { billing => 403, waitlist_entries => 403 });
    for my $path (@billing) {
        my $j = error_is $mock->get($path), 403, 'billing_not_enabled', "billing 403: GET $path";
        like $j->{errors}[0]{long_message}, qr/^The billing feature is not enabled for this instance/, 'long_message';
    }
    error_is $mock->get('/waitlist_entries'), 403, 'authorization_invalid', 'waitlist 403';
    error_is $mock->get('/billing/plans?order_by=x'), 403, 'billing_not_enabled', 'checked before the parameters';
    is $mock->get('/users/count')->{status}, 200, 'other families unaffected';
    $mock->configure(endpoint_errors => { billing => 404, waitlist_entries => 404 });
    for my $path (@billing, '/waitlist_entries') {
        my $j = error_is $mock->get($path), 404, 'resource_not_found', "404: GET $path";
        is $j->{errors}[0]{long_message}, 'The requested resource was not found.', 'long_message';
    }
    $mock->configure(endpoint_errors => { 'billing/statements/{id}' => 403 });
    error_is $mock->get("/billing/statements/$s"), 403, 'billing_not_enabled', 'one route: that route';
    is $mock->get('/billing/statements')->{status}, 200, 'one route: not the rest of its family';
    $mock->configure(endpoint_errors => {});
    is_deeply [ map { $mock->get($_)->{status} } @billing, '/waitlist_entries' ], [ (200) x 7 ], '{} clears them';

    $mock->configure(offset_cost_us => 100_000);
    for my $path ('/billing/subscription_items?include_free=true&limit=1&offset=5', '/waitlist_entries?limit=1&offset=5',
                  "/billing/statements/$s/payment_attempts?offset=5") {
        my $t0 = time;
        $mock->get($path);
        cmp_ok time - $t0, '>=', 0.45, "offset_cost_us: $path";
    }
    $mock->configure(offset_cost_us => 0);
};

subtest 'control API: plans, prices, statements and payment attempts' => sub {
    $mock->configure(webhook_secret => $WHSEC);
    new_events();
    my $st0 = $mock->state;
    my $p = $mock->control(POST => 'billing_plans', { slug => 'enterprise', name => 'Enterprise', for_payer_type => 'org',
                                                      fee => 49_900, features => [qw(basic sso)] });
    like $p->{id}, qr/^cplan_[0-9A-Za-z]{27}$/, 'plan created: a Clerk-like id';
    is_deeply [ shape_problems($p, 'commerce_plan') ], [], 'CommercePlan shape';
    is_deeply [ $p->{fee}{amount_formatted}, $p->{annual_fee}{amount}, [ map { $_->{slug} } @{ $p->{features} } ] ],
        [ '$499.00', 12 * 49_900, [qw(basic sso)] ], 'fee in cents -> money; features by slug -> FeatureResponse';
    is_deeply ok_get('/billing/plans?limit=1')->{data}, [ $p ], 'listed first';
    is_deeply [ map { [ $_->{amount}, bool01($_->{is_default}) ] } @{ ok_get("/billing/prices?plan_id=$p->{id}")->{data} } ],
        [ [ 49_900, 1 ] ], '... with a default price of its own';
    is $mock->control_raw(POST => 'billing_plans', { slug => 'enterprise' })->{status}, 409, 'a second slug -> 409';
    my $pp = $mock->control(PATCH => "billing_plans/$p->{id}", { name => 'Enterprise+', publicly_visible => JSON::PP::false });
    ok !exists $pp->{updated_at} && !exists $pp->{created_at}, 'PATCH adds no timestamps to a plan';
    is ok_get('/billing/plans?limit=1')->{data}[0]{name}, 'Enterprise+', 'the change is listed';
    is_deeply $mock->control(GET => 'billing_plans/enterprise'), $pp, 'control GET by slug';
    my $cp = $mock->control(POST => 'billing_prices', { plan_id => $p->{id}, amount => 39_900, description => 'VIP' });
    is_deeply [ @$cp{qw(plan_id amount is_default description)}, $cp->{fee}{amount} ], [ $p->{id}, 39_900, JSON::PP::false,
        'VIP', 39_900 ], 'custom price created';
    is_deeply [ shape_problems($cp, 'commerce_price') ], [], 'BillingPriceResponse shape';
    my $cpp = $mock->control(PATCH => "billing_prices/$cp->{id}", { amount => 100 });
    is_deeply [ $cpp->{amount}, $cpp->{fee}{amount}, $cpp->{created_at}, exists $cpp->{updated_at} ? 1 : 0 ],
        [ 100, 100, $cp->{created_at}, 0 ], 'PATCH amount: fee follows, no updated_at';
    is((grep { $_->{amount} > 0 } @{ ok_get('/billing/prices?limit=500')->{data} })[0]{id}, $cp->{id},
        'the cheapest price but the free ones: listed right after them');
    is $mock->control_raw(POST => 'billing_prices', {})->{status}, 400, 'a price without plan_id -> 400';
    is $mock->control_raw(POST => 'billing_prices', { plan_id => 'cplan_2nothere' })->{status}, 404, 'unknown plan -> 404';
    events_ok([], 'plans and prices record no events');

    my $org = $b_orgs[1];
    my $s = $mock->control(POST => 'billing_statements', { payer_organization_id => $org->{id}, amount => 4200 });
    like $s->{id}, qr/^stmt_[0-9A-Za-z]{27}$/, 'statement created';
    is_deeply [ shape_problems($s, 'commerce_statement') ], [], 'BillingStatement shape';
    is_deeply [ $s->{status}, $s->{totals}{grand_total}{amount}, $s->{payer}{organization_id}, $s->{groups} ],
        [ 'open', 4200, $org->{id}, [] ], 'open, its totals, the organization as payer, no groups yet';
    is_deeply ok_get('/billing/statements?limit=1')->{data}, [ $s ], 'listed first';
    is $mock->control_raw(POST => 'billing_statements', {})->{status}, 400, 'a statement without a payer -> 400';
    is $mock->control_raw(POST => 'billing_statements', { payer_user_id => 'user_2nothere' })->{status}, 404,
        'unknown user -> 404';
    my $a1 = $mock->control(POST => 'billing_payment_attempts', { statement_id => $s->{id} });
    is_deeply [ shape_problems($a1, 'commerce_payment') ], [], 'BillingPaymentAttempt shape';
    is_deeply [ @$a1{qw(statement_id status paid_at)}, $a1->{amount}{amount}, $a1->{payer}{id} ],
        [ $s->{id}, 'pending', undef, 4200, $s->{payer}{id} ], "pending, the statement's amount and payer";
    my ($ev) = events_ok([ 'paymentAttempt.created' ], 'POST records paymentAttempt.created');
    my $d = $ev->{data};
    is_deeply [ shape_problems($d, 'payment_attempt_event') ], [], 'PaymentAttemptEventPayload: every required field';
    ok !exists $d->{object}, 'no object field';
    ok !exists $d->{amount} && $d->{totals}{grand_total}{amount} == 4200, 'totals instead of amount';
    is_deeply [ shape_problems($d->{totals}, 'billing_totals'), shape_problems($d->{payment_source}, 'payment_source'),
                shape_problems($d->{payee}, 'payee'), shape_problems($d->{payer}, 'payer_event') ], [],
        'totals, payment_source, payee, payer shapes';
    is_deeply [ @{ $d->{payer} }{qw(organization_id user_id)} ], [ $org->{id}, '' ], 'payer: the organization, user_id ""';
    is_deeply [ @$d{qw(id statement_id payment_id status)} ], [ @$a1{qw(id statement_id payment_id status)} ], 'ids and status';
    is $d->{payment_source}{id}, $a1->{payment_method_id}, 'payment_source: the payment method';
    is ref $d->{subscription_items}, 'ARRAY', 'subscription_items list';
    is_deeply [ map { shape_problems($_, 'billing_item') } @{ $d->{subscription_items} } ], [], 'its items: BillingSubscriptionItem';
    ok((all { $_->{object} eq 'commerce_subscription_item' } @{ $d->{subscription_items} }), '... object commerce_subscription_item');
    my $a2 = $mock->control(PATCH => "billing_payment_attempts/$a1->{id}", { status => 'failed' });
    ok is_ms($a2->{failed_at}) && $a2->{updated_at} > $a1->{updated_at}, 'PATCH status failed: failed_at set, updated_at bumped';
    ($ev) = events_ok([ 'paymentAttempt.updated' ], 'PATCH records paymentAttempt.updated');
    is_deeply [ $ev->{data}{status}, ref $ev->{data}{failed_reason} ], [ 'failed', 'HASH' ], 'failed, with failed_reason';
    my $a3 = $mock->control(POST => 'billing_payment_attempts', { statement_id => $s->{id}, status => 'paid' });
    ok is_ms($a3->{paid_at}), 'created paid: paid_at set';
    events_ok([ 'paymentAttempt.created' ], 'the second attempt');
    my $got = ok_get("/billing/statements/$s->{id}/payment_attempts");
    is_deeply [ ids(@{ $got->{data} }) ], [ $a3->{id}, $a1->{id} ], 'listed under the statement, newest first';
    is_deeply [ map { $_->{id} } @{ ok_get("/billing/statements/$s->{id}")->{groups}[0]{items} } ], [ $a3->{id}, $a1->{id} ],
        "... and in the statement's groups";
    is $mock->control_raw(POST => 'billing_payment_attempts', {})->{status}, 400, 'no statement_id -> 400';
    is $mock->control_raw(POST => 'billing_payment_attempts', { statement_id => 'stmt_2nothere' })->{status}, 404,
        'unknown statement -> 404';
    my $st1 = $mock->state;
    is_deeply [ map { $st1->{$_} - $st0->{$_} } @BILLING_KINDS ], [ 1, 2, 0, 1, 2, 0 ], 'state counts them';
    is_deeply $mock->control(DELETE => "billing_statements/$s->{id}"),
        { object => 'commerce_statement', id => $s->{id}, deleted => JSON::PP::true }, 'DELETE a statement';
    error_is $mock->get("/billing/statements/$s->{id}"), 404, 'resource_not_found', 'deleted: 404';
    error_is $mock->get("/billing/statements/$s->{id}/payment_attempts"), 404, 'resource_not_found', '... its attempts too';
    is $mock->control_raw(GET => "billing_payment_attempts/$a1->{id}")->{status}, 404, 'its attempts are deleted with it';
    my $st2 = $mock->state;
    is_deeply [ $st1->{billing_statements} - $st2->{billing_statements},
                $st1->{billing_payment_attempts} - $st2->{billing_payment_attempts} ], [ 1, 2 ], 'state follows';
    $mock->control(DELETE => "billing_prices/$cp->{id}");
    $mock->control(DELETE => "billing_plans/$p->{id}");
    ok !(grep { $_ eq $p->{id} } ids(@{ ok_get('/billing/plans')->{data} })), 'a deleted plan is not listed';
    error_is $mock->get("/billing/prices?plan_id=$p->{id}"), 404, 'resource_not_found', '... nor takes prices';
    events_ok([], 'deletions record no events');
};

subtest 'control API and events: subscription items' => sub {
    new_events();
    my %payer = map { ($_->{payer}{user_id} // '') => 1 } @items;
    my ($u) = grep { defined $_->{primary_email_address_id} && !$payer{ $_->{id} } } @b_users;
    my $t0 = $now_ms->();
    my $it = $mock->control(POST => 'billing_subscription_items', { payer_user_id => $u->{id}, plan_id => 'pro_user' });
    like $it->{id}, qr/^csub_item_[0-9A-Za-z]{27}$/, 'created: a Clerk-like id';
    is_deeply [ shape_problems($it, 'commerce_subscription_item') ], [], 'CommerceSubscriptionItem shape';
    is_deeply [ @$it{qw(status plan_id plan_period)}, $it->{payer}{user_id}, $it->{payer}{organization_id} ],
        [ 'active', $plan_by_slug{pro_user}{id}, 'month', $u->{id}, undef ], "active, the plan, the user's";
    ok abs($it->{created_at} - $t0) < 60_000 && $it->{period_end} > $it->{period_start}, 'created now, a period of a month';
    my %def_price = map { $_->{plan_id} => $_->{id} } grep { $_->{is_default} } @prices;
    is $it->{price_id}, $def_price{ $it->{plan_id} }, "the plan's default price";
    my ($ev) = events_ok([ 'subscriptionItem.active' ], 'POST records subscriptionItem.active (Clerk has no .created)');
    my $d = $ev->{data};
    is_deeply [ shape_problems($d, 'item_event') ], [], 'BillingSubscriptionItemEventPayload: every required field';
    is $d->{object}, 'subscription_item', 'object subscription_item (as Clerk sends it)';
    is_deeply [ @$d{qw(id status interval plan_id period_start period_end)}, exists $d->{plan_period} ? 1 : 0 ],
        [ @$it{qw(id status plan_period plan_id period_start period_end)}, 0 ], 'interval instead of plan_period';
    is_deeply $d->{plan}, { id => $it->{plan_id}, slug => 'pro_user', name => 'Pro', is_recurring => JSON::PP::true,
                            amount => 2000, currency => 'USD' }, 'plan: BillingSubscriptionItemEventPlan';
    is_deeply [ shape_problems($d->{payer}, 'payer_event') ], [], 'payer: BillingPayerEventPayload';
    is_deeply [ @{ $d->{payer} }{qw(id user_id organization_id organization_name)} ], [ $it->{payer_id}, $u->{id}, '', '' ],
        'a user payer: organization_id and organization_name ""';
    like $d->{subscription_id}, qr/^csub_[0-9A-Za-z]{27}$/, 'subscription_id';
    my $sub = $d->{subscription_id};
    is ok_get('/billing/subscription_items?limit=1')->{data}[0]{id}, $it->{id}, 'listed first';
    is_deeply ok_get("/billing/subscription_items?query=$it->{id}")->{data}, [ $it ], '... as created';

    my $c = $mock->control(PATCH => "billing_subscription_items/$it->{id}", { status => 'canceled' });
    ok is_ms($c->{canceled_at}) && $c->{updated_at} > $it->{updated_at}, 'canceled: canceled_at set, updated_at bumped';
    ($ev) = events_ok([ 'subscriptionItem.canceled' ], 'status canceled: subscriptionItem.canceled');
    is $ev->{data}{status}, 'canceled', '... its data';
    $mock->control(PATCH => "billing_subscription_items/$it->{id}", { lifetime_paid => 2000 });
    ($ev) = events_ok([ 'subscriptionItem.updated' ], 'another change: subscriptionItem.updated');
    is_deeply ok_get("/billing/subscription_items?query=$it->{id}")->{data}[0]{lifetime_paid},
        { amount => 2000, amount_formatted => '$20.00', currency => 'USD', currency_symbol => '$' },
        'the change is listed (cents -> money)';
    my %want = (past_due => 'pastDue', ended => 'ended', upcoming => 'upcoming', abandoned => 'abandoned',
                incomplete => 'incomplete', active => 'active');
    for my $s (sort keys %want) {
        $mock->control(PATCH => "billing_subscription_items/$it->{id}", { status => $s });
        events_ok([ "subscriptionItem.$want{$s}" ], "status $s: subscriptionItem.$want{$s}");
    }
    $mock->control(PATCH => "billing_subscription_items/$it->{id}?webhook=0", { status => 'past_due' });
    events_ok([], '?webhook=0 records nothing');

    my $org = $b_orgs[2];
    my $oi = $mock->control(POST => 'billing_subscription_items', { payer_organization_id => $org->{id} });
    is_deeply [ $oi->{plan}{slug}, $oi->{payer}{organization_id}, $oi->{payer}{user_id}, $oi->{period_end} ],
        [ 'free_org', $org->{id}, undef, undef ], "no plan_id: the organizations' default free plan";
    ($ev) = events_ok([ 'subscriptionItem.active' ], 'recorded');
    is_deeply [ @{ $ev->{data}{payer} }{qw(organization_id organization_name user_id first_name last_name email)} ],
        [ $org->{id}, $org->{name}, '', '', '', '' ], 'an organization payer in the webhook: "" for the user fields';
    ok !(grep { $_ eq $oi->{id} } ids(@{ ok_get('/billing/subscription_items?limit=500')->{data} })),
        'a free item is left out by default';
    is ok_get('/billing/subscription_items?include_free=true&limit=1')->{data}[0]{id}, $oi->{id}, '... listed with include_free';
    my $full = $mock->control(POST => 'billing_subscription_items',
        { payer => { id => 'cpayer_external', user_id => 'user_external', first_name => 'Ext', last_name => undef,
                     email => 'ext@example.com', organization_id => undef, organization_name => undef },
          plan_id => $plan_by_slug{pro_user}{id}, status => 'upcoming' });
    is_deeply [ $full->{payer_id}, $full->{payer}{first_name}, $full->{status} ], [ 'cpayer_external', 'Ext', 'upcoming' ],
        'a whole payer, as given';
    ($ev) = events_ok([ 'subscriptionItem.upcoming' ], 'POST of an upcoming item: subscriptionItem.upcoming');
    is_deeply [ @{ $ev->{data}{payer} }{qw(id last_name organization_id)} ], [ 'cpayer_external', '', '' ], 'null -> ""';
    is $mock->control_raw(POST => 'billing_subscription_items', { plan_id => 'pro' })->{status}, 400, 'no payer -> 400';
    is $mock->control_raw(POST => 'billing_subscription_items', { payer_user_id => $u->{id}, plan_id => 'nope' })->{status},
        404, 'unknown plan -> 404';
    is $mock->control_raw(POST => 'billing_subscription_items', { payer_organization_id => 'org_2nothere' })->{status},
        404, 'unknown organization -> 404';
    events_ok([], 'rejected requests record nothing');

    is_deeply $mock->control(DELETE => "billing_subscription_items/$full->{id}"),
        { object => 'commerce_subscription_item', id => $full->{id}, deleted => JSON::PP::true }, 'DELETE';
    ok !(grep { $_ eq $full->{id} } ids(@{ ok_get('/billing/subscription_items?include_free=true&limit=500')->{data} })),
        'deleted: not listed';
    events_ok([], 'DELETE records nothing');
    is $mock->state->{billing_subscription_items}, 14, 'state: 12 + 3 - 1';
};

subtest 'subscription events: POST /__mock/billing_subscriptions/{id}/emit' => sub {
    new_events();
    my $subs = $mock->control(GET => 'billing_subscriptions');
    ok @$subs >= 9, 'GET /__mock/billing_subscriptions lists the subscriptions';
    ok((all { $_->{id} =~ /^csub_[0-9A-Za-z]{27}$/ && $_->{payer_id} =~ /^cpayer_/ && @{ $_->{items} } } @$subs),
        '... with payer_id and item ids');
    my ($canceled) = grep { $_->{status} eq 'canceled' } @items;
    my ($two) = grep { my $s = $_; any { $_ eq $canceled->{id} } @{ $s->{items} } } @$subs;
    is_deeply [ map { $item_by_id{$_}{status} } @{ $two->{items} } ], [qw(canceled upcoming)],
        'a subscription with two items: canceled, then the free one upcoming';
    is_deeply [ map { $item_by_id{$_}{payer_id} } @{ $two->{items} } ], [ ($two->{payer_id}) x 2 ], '... of one payer';
    my %seen;
    for my $type (qw(subscription.created subscription.updated subscription.active subscription.pastDue)) {
        my $r = $mock->control(POST => "billing_subscriptions/$two->{id}/emit", { type => $type });
        is $r->{type}, $type, "$type emitted";
    }
    my @ev = events_ok([qw(subscription.created subscription.updated subscription.active subscription.pastDue)],
        'four events, signed like the others');
    my $d = $ev[0]{data};
    is_deeply [ shape_problems($d, 'subscription_event') ], [], 'SubscriptionEventPayload: every required field';
    is_deeply [ @$d{qw(object id payer_id)} ], [ 'commerce_subscription', $two->{id}, $two->{payer_id} ], 'object, id, payer_id';
    is_deeply [ shape_problems($d->{payer}, 'payer_event') ], [], 'payer: BillingPayerEventPayload';
    is $d->{payer}{organization_id}, '', 'a user payer: organization_id ""';
    is_deeply [ map { $_->{id} } @{ $d->{items} } ], $two->{items}, 'items: its items';
    is_deeply [ map { shape_problems($_, 'item_event') } @{ $d->{items} } ], [], 'items: BillingSubscriptionItemEventPayload';
    ok((all { $_->{object} eq 'commerce_subscription_item' && !defined $_->{payer} && exists $_->{payer}
              && !defined $_->{subscription_id} && exists $_->{subscription_id} } @{ $d->{items} }),
        'nested items: object commerce_subscription_item, payer and subscription_id null');
    is $d->{status}, 'active', 'status active (canceled, ends later)';
    ok is_ms($d->{active_at}) && $d->{payment_source_id} =~ /^cps_/, 'active_at, payment_source_id';
    my ($pd) = grep { my $s = $_; any { ($item_by_id{$_}{status} // '') eq 'past_due' } @{ $s->{items} } } @$subs;
    $mock->control(POST => "billing_subscriptions/$pd->{id}/emit", { type => 'subscription.pastDue' });
    ($d) = map { $_->{data} } events_ok([ 'subscription.pastDue' ], 'a past-due subscription');
    is_deeply [ $d->{status}, is_ms($d->{past_due_at}) ? 1 : 0 ], [ 'past_due', 1 ], 'status past_due, past_due_at';
    is $d->{payer}{user_id}, '', 'an organization payer: user_id ""';
    like $d->{latest_payment_id} // '', qr/^cpa_/, "latest_payment_id: its statement's payment";
    is_deeply $mock->control(GET => "billing_subscriptions/$pd->{id}"), $d, 'GET …/{id}: the same data';
    $mock->control(POST => 'events', { type => 'subscription.updated', id => $pd->{id} });
    ($d) = map { $_->{data} } events_ok([ 'subscription.updated' ], 'POST /__mock/events {type, id} works too');
    is $d->{id}, $pd->{id}, '... about it';
    $mock->control(POST => "billing_subscriptions/$pd->{id}/emit", { type => 'subscription.updated', data => { status => 'canceled' } });
    ($d) = map { $_->{data} } events_ok([ 'subscription.updated' ], 'data merged over it');
    is $d->{status}, 'canceled', '... as given';
    is $mock->control_raw(POST => "billing_subscriptions/$pd->{id}/emit", { type => 'subscription.deleted' })->{status}, 400,
        'another type -> 400';
    is $mock->control_raw(POST => 'billing_subscriptions/csub_2nothere/emit', { type => 'subscription.created' })->{status},
        404, 'unknown subscription -> 404';
    $mock->control(POST => 'events', { type => 'subscriptionItem.freeTrialEnding', id => $two->{items}[0] });
    ($d) = map { $_->{data} } events_ok([ 'subscriptionItem.freeTrialEnding' ], 'POST /__mock/events for an item');
    is_deeply [ $d->{object}, $d->{subscription_id} ], [ 'subscription_item', $two->{id} ], '... standalone shape';
};

subtest 'control API and events: waitlist entries' => sub {
    new_events();
    my $w = $mock->control(POST => 'waitlist_entries', { email_address => 'Waiting.Fidelity@example.com' });
    like $w->{id}, qr/^wle_[0-9A-Za-z]{27}$/, 'created: a Clerk-like id';
    is_deeply [ shape_problems($w, 'waitlist_entry') ], [], 'WaitlistEntry shape';
    is_deeply [ @$w{qw(status is_locked invitation)} ], [ 'pending', JSON::PP::false, undef ], 'pending, unlocked, no invitation';
    my ($ev) = events_ok([ 'waitlistEntry.created' ], 'POST records waitlistEntry.created');
    is_deeply $ev->{data}, { %$w, object => 'waitlistEntry' }, 'data: the entry with object waitlistEntry (camelCase)';
    is_deeply ok_get('/waitlist_entries?limit=1')->{data}, [ $w ], 'listed first';
    is $mock->control_raw(POST => 'waitlist_entries', { email_address => 'waiting.fidelity@EXAMPLE.com' })->{status}, 409,
        'the same email again -> 409';
    my $i = $mock->control(PATCH => "waitlist_entries/$w->{id}", { status => 'invited' });
    is_deeply [ $i->{status}, $i->{invitation}{status}, $i->{invitation}{email_address} ],
        [ 'invited', 'pending', $w->{email_address} ], 'invited: a pending invitation';
    is_deeply [ shape_problems($i->{invitation}, 'invitation') ], [], 'an Invitation';
    cmp_ok $i->{updated_at}, '>', $w->{updated_at}, 'updated_at bumped';
    ($ev) = events_ok([ 'waitlistEntry.updated' ], 'PATCH records waitlistEntry.updated');
    is_deeply [ @{ $ev->{data} }{qw(object status)} ], [ 'waitlistEntry', 'invited' ], '... its data';
    is ok_get('/waitlist_entries?status=invited&limit=1&order_by=-invited_at')->{data}[0]{id}, $w->{id},
        'listed under status=invited, newest invitation first';
    my $c = $mock->control(PATCH => "waitlist_entries/$w->{id}", { status => 'completed' });
    is_deeply [ $c->{invitation}{id}, $c->{invitation}{status} ], [ $i->{invitation}{id}, 'accepted' ],
        'completed: the invitation accepted';
    events_ok([ 'waitlistEntry.updated' ], 'recorded');
    $mock->control(DELETE => "waitlist_entries/$w->{id}");
    is_deeply ok_get("/waitlist_entries?query=$w->{id}")->{data}, [], 'deleted: gone';
    events_ok([], 'DELETE records nothing (Clerk has no waitlistEntry.deleted)');
};

subtest 'billing: triggers, determinism' => sub {
    new_events();
    my $before = $mock->state;
    $mock->add_trigger(path => '^/v1/billing/statements(?:\\?|$)', create_billing_statements => [{ amount => 100 }],
                       create_billing_payment_attempts => 1, create_waitlist_entries => 1);
    my $r = ok_get('/billing/statements?limit=1');
    my $after = $mock->state;
    is_deeply [ map { $after->{$_} - $before->{$_} } qw(billing_statements billing_payment_attempts waitlist_entries) ],
        [ 1, 1, 1 ], 'a trigger creates billing objects (attached to the last user and statement)';
    is $r->{data}[0]{totals}{grand_total}{amount}, 100, '... visible to the request that fired it';
    events_ok([ 'paymentAttempt.created', 'waitlistEntry.created' ], '... with their events');
    $mock->clear_triggers;

    my %fixed = (%BILL, extra_args => [ '--billing-anchor', 1_767_225_600_000 ]);
    my ($x, $y, $z) = (ClerkMock->new(%fixed), ClerkMock->new(%fixed), ClerkMock->new(%fixed, seed => 8));
    for my $path ('/billing/plans', '/billing/prices', '/billing/subscription_items?include_free=true&limit=500',
                  '/billing/statements?limit=500', '/waitlist_entries?limit=500') {
        my $body = $x->get($path)->{content};
        is $y->get($path)->{content}, $body, "same seed and anchor, same data: $path";
        isnt $z->get($path)->{content}, $body, "other seed, other data: $path";
    }
    my $s = $x->get('/billing/statements?limit=1')->{json}{data}[0]{id};
    is $y->get("/billing/statements/$s/payment_attempts")->{content}, $x->get("/billing/statements/$s/payment_attempts")->{content},
        'payment attempts too';
    $_->stop for $x, $y, $z;
};

$mock->reset;
}

# --- mock fidelity: the write endpoints ---------------------------------------
# PATCH/DELETE users (and their metadata, ban, lock), POST/PATCH/DELETE
# organizations (and their metadata), memberships, organization and instance
# invitations (test/README.md, "Write endpoints"): request bodies and answers of
# bapi-openapi.yml, Clerk's error codes (clerk-api-errors.json), the limits of
# API-NOTES section 6, faults matched by method, answers lost after the change
# was applied, the writes log, and the webhook events each change records.
{
local $mock->{http} = HTTP::Tiny->new(keep_alive => 0, timeout => 60, agent => 'clerk-mock-tests/1.0');

# A /v1 request with a JSON body (a string is sent as it is); {json} is the decoded answer.
sub api {
    my ($method, $path, $body, %opt) = @_;
    my %h = %{ $opt{headers} || {} };
    $h{Authorization} //= 'Bearer ' . $mock->secret_key;
    my %args = (headers => \%h);
    if (defined $body) {
        $h{'Content-Type'} = 'application/json';
        $args{content} = ref $body ? $JSON->encode($body) : $body;
    }
    my $http = defined $opt{timeout} ? HTTP::Tiny->new(timeout => $opt{timeout}, keep_alive => 0) : $mock->{http};
    my $res = $http->request($method, $mock->url . $path, \%args);
    $res->{json} = eval { $JSON->decode($res->{content}) };
    return $res;
}

sub ok_api {
    my ($method, $path, $body, %opt) = @_;
    my $res = api($method, $path, $body, %opt);
    is $res->{status}, 200, "$method $path -> 200" or diag $res->{content};
    return $res->{json};
}

sub body_sha { sha256_hex($JSON->encode($_[0])) }

# Every code of a Clerk error answer, in order.
sub codes { my ($res) = @_; [ map { $_->{code} } @{ $res->{json}{errors} || [] } ] }

sub writes_log { my ($q) = @_; $mock->control(GET => 'writes' . ($q ? "?$q" : '')) }

my @ORG_REQUIRED = qw(object id name slug has_image max_allowed_memberships admin_delete_enabled public_metadata
                      created_at updated_at);
my (@w_users, $w_limits);

subtest 'writes: users (PATCH, metadata, ban, lock, DELETE)' => sub {
    $mock->reset(\%MORE);
    $ev_seen = 0;
    $mock->configure(webhook_secret => $WHSEC);
    $w_limits = $mock->control(GET => 'config')->{write_rate_limits};
    is_deeply $w_limits->{'PATCH|PUT /v1/users/{id}/metadata'}, { limit => 10, window => 10, per => 'user' },
        'config write_rate_limits: metadata 10 per 10 s per user (API-NOTES section 6)';
    $mock->configure(write_rate_limits => {});    # many writes to few users here; the limits have their own subtest
    @w_users = @{ ok_get('/users?limit=500&order_by=created_at') };
    my ($u, $v, $w) = @w_users[3, 4, 5];
    $mock->control(DELETE => 'writes');

    my $body = { first_name => 'Zoë', last_name => undef, username => 'zoe_writes', external_id => 'ext-w-1',
                 locale => 'fr-FR', public_metadata => { plan => 'pro', nested => { a => 1 } },
                 delete_self_enabled => JSON::PP::false, create_organizations_limit => 3,
                 legal_accepted_at => '2025-01-02T03:04:05.678Z' };
    my $t0 = time * 1000;
    my $p = ok_api(PATCH => "/users/$u->{id}", $body);
    is_deeply [ @$p{qw(object id first_name last_name username external_id locale create_organizations_limit)} ],
        [ 'user', $u->{id}, 'Zoë', undef, 'zoe_writes', 'ext-w-1', 'fr-FR', 3 ], 'the answer: the user as changed';
    is_deeply $p->{public_metadata}, { plan => 'pro', nested => { a => 1 } }, 'public_metadata replaced (not merged)';
    ok !$p->{delete_self_enabled}, 'delete_self_enabled';
    is $p->{legal_accepted_at}, 1735787045678, 'legal_accepted_at: RFC3339 in, Unix ms out';
    ok $p->{updated_at} >= $t0 - 1000 && $p->{updated_at} > $u->{updated_at}, 'updated_at = now';
    is_deeply [ @$p{qw(private_metadata email_addresses created_at)} ], [ @$u{qw(private_metadata email_addresses created_at)} ],
        'what the body leaves out is unchanged';
    is_deeply ok_get("/users/$u->{id}"), $p, 'GET /users/{id} shows the answer';
    my ($ev) = events_ok([ 'user.updated' ], 'PATCH /users/{id} records user.updated');
    is_deeply $ev->{data}, $p, 'event data: the user as changed';
    my $log = writes_log();
    is_deeply [ map { [ @$_{qw(method path route op object id body_sha256 status answered)} ] } @$log ],
        [ [ 'PATCH', "/v1/users/$u->{id}", 'PATCH /v1/users/{id}', 'update', 'user', $u->{id}, body_sha($body), 200,
            JSON::PP::true ] ], 'GET /__mock/writes: the write, its body hash, its answer';

    my ($named) = grep { defined $_->{username} } @w_users[20 .. 59];
    my $e = error_is api(PATCH => "/users/$v->{id}", { username => uc $named->{username} }), 422, 'form_identifier_exists',
        'a username another user has (case-insensitive) -> 422';
    is $e->{errors}[0]{meta}{param_name}, 'username', 'meta.param_name = username';
    error_is api(PATCH => "/users/$v->{id}", { username => 'zoe_writes' }), 422, 'form_identifier_exists',
        'a username set through /v1 -> 422';
    is ok_api(PATCH => "/users/$u->{id}", { username => 'zoe_writes' })->{username}, 'zoe_writes', 'its own username is fine';
    my ($ext) = grep { defined $_->{external_id} } @w_users;
    error_is api(PATCH => "/users/$v->{id}", { external_id => $ext->{external_id} }), 422, 'form_identifier_exists',
        'an external_id another user has -> 422';
    ok !defined ok_api(PATCH => "/users/$u->{id}", { username => undef })->{username}, 'username null removes it';
    ok !defined ok_api(PATCH => "/users/$u->{id}", { external_id => '' })->{external_id}, 'external_id "" removes it';
    events_ok([ ('user.updated') x 3 ], 'failed writes record nothing');

    my $r = api(PATCH => "/users/$v->{id}", '{"shoe_size":44,"first_name":7,"locale":"fr-FR"}');
    is $r->{status}, 422, 'unknown field and wrong type -> 422';
    is_deeply codes($r), [qw(form_param_unknown form_param_value_invalid)], 'every problem listed, in body order';
    is_deeply [ map { $_->{meta}{param_name} } @{ $r->{json}{errors} } ], [qw(shoe_size first_name)], 'their param_names';
    like $r->{json}{errors}[1]{long_message}, qr/first_name is invalid\. Received number, must be of type string/,
        'the type error says what came and what was wanted';
    error_is api(PATCH => "/users/$v->{id}", { username => 'ab' }), 422, 'form_username_invalid_length', 'username too short';
    error_is api(PATCH => "/users/$v->{id}", { username => 'a b!c' }), 422, 'form_username_invalid_character',
        'username with spaces';
    error_is api(PATCH => "/users/$v->{id}", { locale => 'not a locale' }), 422, 'form_param_format_invalid', 'bad locale';
    error_is api(PATCH => "/users/$v->{id}", { legal_accepted_at => 'yesterday' }), 422, 'form_param_invalid_time',
        'legal_accepted_at not RFC3339';
    error_is api(PATCH => "/users/$v->{id}", { password => 'short' }), 422, 'form_password_length_too_short',
        'password under 8 characters';
    error_is api(PATCH => "/users/$v->{id}", { password_digest => 'x' }), 422, 'form_conditional_param_missing',
        'password_digest without password_hasher';
    error_is api(PATCH => "/users/$v->{id}", { primary_email_address_id => 'idn_2nothere' }), 422,
        'form_identifier_not_found', 'a primary email that is not the user\'s';
    error_is api(PATCH => "/users/$v->{id}", 'not json'), 400, 'request_body_invalid', 'a body that is not JSON -> 400';
    error_is api(PATCH => "/users/$v->{id}", '[1,2]'), 400, 'request_body_invalid', 'a JSON array -> 400';
    error_is api(PATCH => "/users/$v->{id}?frob=1", {}), 422, 'form_param_unknown', 'an unknown query parameter -> 422';
    error_is api(PATCH => '/users/user_2doesnotexist000000000000', { first_name => 'X' }), 404, 'resource_not_found',
        'unknown user -> 404';
    my $newer = { 'Clerk-API-Version' => '2026-05-12' };
    $e = error_is api(PATCH => "/users/$v->{id}", { public_metadata => {} }, headers => $newer), 422,
        'form_param_deprecated', 'API version 2026-05-12: no metadata in PATCH /users/{id}';
    like $e->{errors}[0]{long_message}, qr{/v1/users/\{user_id\}/metadata}, '... pointing at the metadata endpoint';
    is ok_api(PATCH => "/users/$v->{id}", { first_name => 'Vee' }, headers => $newer)->{first_name}, 'Vee',
        '... which still takes the other fields';
    is ok_get("/users/$v->{id}")->{username}, $v->{username}, 'rejected changes left the user as it was';
    events_ok([ 'user.updated' ], 'only the accepted PATCH recorded an event');

    # metadata: PUT replaces, PATCH merges deeply, null removes
    my $put = ok_api(PUT => "/users/$w->{id}/metadata",
        { public_metadata => { a => { b => 1, c => 2 }, keep => 1, list => [ 1, 2 ] } });
    is_deeply $put->{public_metadata}, { a => { b => 1, c => 2 }, keep => 1, list => [ 1, 2 ] }, 'PUT .../metadata replaces';
    is_deeply [ @$put{qw(private_metadata unsafe_metadata)} ], [ @$w{qw(private_metadata unsafe_metadata)} ],
        'PUT leaves the metadata it was not given';
    my $m = ok_api(PATCH => "/users/$w->{id}/metadata",
        { public_metadata => { a => { b => undef, d => { e => 1, z => undef } }, list => [3], gone => undef },
          private_metadata => { p => { q => 1 } }, unsafe_metadata => {} });
    is_deeply $m->{public_metadata}, { a => { c => 2, d => { e => 1 } }, keep => 1, list => [3] },
        'PATCH .../metadata: objects merge recursively, null removes a key, arrays replace';
    is_deeply $m->{private_metadata}, { %{ $w->{private_metadata} || {} }, p => { q => 1 } }, 'private_metadata merged';
    is_deeply $m->{unsafe_metadata}, $w->{unsafe_metadata}, '{} changes nothing';
    is_deeply ok_get("/users/$w->{id}"), $m, 'GET shows the merge';
    my @ev = events_ok([ ('user.updated') x 2 ], 'PUT and PATCH .../metadata record user.updated');
    is_deeply $ev[1]{data}, $m, 'event data: the merged user';
    $e = error_is api(PATCH => "/users/$w->{id}/metadata", { private_metadata => { blob => 'x' x 8200 } }), 422,
        'form_param_exceeds_allowed_size', 'a metadata object over 8 KB -> 422';
    is $e->{errors}[0]{meta}{param_name}, 'private_metadata', 'meta.param_name';
    ok_api(PATCH => "/users/$w->{id}/metadata", { private_metadata => { blob => 'x' x 5000 } });
    error_is api(PATCH => "/users/$w->{id}/metadata", { private_metadata => { more => 'y' x 4000 } }), 422,
        'form_param_exceeds_allowed_size', 'a merge whose result is over 8 KB -> 422';
    ok !exists ok_get("/users/$w->{id}")->{private_metadata}{more}, '... and changes nothing';
    error_is api(PATCH => "/users/$w->{id}/metadata", { public_metadata => [1] }), 422, 'form_param_value_invalid',
        'metadata that is not an object -> 422';
    error_is api(PATCH => "/users/$w->{id}/metadata", { metadata => {} }), 422, 'form_param_unknown', 'unknown field';
    error_is api(PATCH => "/users/$w->{id}", { public_metadata => { big => 'z' x 9000 } }), 422,
        'form_param_exceeds_allowed_size', 'the size limit holds for PATCH /users/{id} too';
    events_ok([ 'user.updated' ], 'only the accepted one recorded');

    # ban revokes the user's sessions; unban, lock, unlock
    my ($b, $sess);
    for my $x (@w_users[10 .. 59]) {
        $sess = ok_get("/sessions?user_id=$x->{id}&status=active");
        if (@$sess) { $b = $x; last }
    }
    ok $b, 'a user with active sessions';
    my $ban = ok_api(POST => "/users/$b->{id}/ban");
    ok $ban->{banned}, 'ban: banned';
    is_deeply ok_get("/sessions?user_id=$b->{id}&status=active"), [], '... and the active sessions are revoked';
    @ev = events_ok([ 'user.updated', ('session.revoked') x @$sess ], 'ban: user.updated and session.revoked for each');
    is_deeply [ sort map { $_->{id} } of_type('session.revoked', @ev) ], [ sort(ids(@$sess)) ], 'the sessions revoked';
    ok !ok_api(POST => "/users/$b->{id}/unban")->{banned}, 'unban';
    my $lk = ok_api(POST => "/users/$b->{id}/lock");
    is_deeply [ bool01($lk->{locked}), $lk->{lockout_expires_in_seconds} ], [ 1, 1800 ], 'lock';
    my $ul = ok_api(POST => "/users/$b->{id}/unlock");
    is_deeply [ bool01($ul->{locked}), $ul->{lockout_expires_in_seconds} ], [ 0, undef ], 'unlock';
    events_ok([ ('user.updated') x 3 ], 'unban, lock, unlock: user.updated each');
    error_is api(POST => "/users/$b->{id}/ban", { reason => 'x' }), 422, 'form_param_unknown', 'ban takes no body fields';
    error_is api(POST => '/users/user_2doesnotexist000000000000/lock'), 404, 'resource_not_found', 'lock: unknown user';

    # DELETE
    my $d = $w_users[30];
    my $before = ok_get('/users/count')->{total_count};
    is_deeply ok_api(DELETE => "/users/$d->{id}"), { object => 'user', id => $d->{id}, deleted => JSON::PP::true },
        'DELETE answers a DeletedObject';
    error_is $mock->get("/users/$d->{id}"), 404, 'resource_not_found', 'the user is gone';
    is ok_get('/users/count')->{total_count}, $before - 1, 'and not counted';
    ($ev) = events_ok([ 'user.deleted' ], 'DELETE records user.deleted');
    is_deeply [ @{ $ev->{data} }{qw(object id deleted)} ], [ 'user', $d->{id}, JSON::PP::true ], 'user.deleted data';
    error_is api(DELETE => "/users/$d->{id}"), 404, 'resource_not_found', 'a second DELETE -> 404';
    my $ops = writes_log('method=DELETE');
    is_deeply [ map { [ @$_{qw(op object id)} ] } @$ops ], [ [ 'delete', 'user', $d->{id} ] ], 'the writes log: one delete';
};

my ($w_org, $w_admin);
subtest 'writes: organizations (POST, PATCH, metadata, DELETE)' => sub {
    my ($creator, $other) = @w_users[40, 41];
    my $body = { name => 'Ünïcode Writes', slug => 'unicode-writes', created_by => $creator->{id},
                 public_metadata => { tier => 'gold' }, max_allowed_memberships => 25 };
    my $before = ok_get('/organizations?limit=1')->{total_count};
    my $t0 = time * 1000;
    my $o = ok_api(POST => '/organizations', $body);
    like $o->{id}, qr/^org_[0-9A-Za-z]{27}$/, 'a Clerk-like id';
    is_deeply [ grep { !exists $o->{$_} } @ORG_REQUIRED ], [], 'every required Organization field';
    is_deeply [ @$o{qw(object name slug created_by max_allowed_memberships)}, bool01($o->{has_image}),
                bool01($o->{admin_delete_enabled}) ],
        [ 'organization', 'Ünïcode Writes', 'unicode-writes', $creator->{id}, 25, 0, 1 ], 'fields from the body';
    is_deeply [ $o->{public_metadata}, $o->{private_metadata} ], [ { tier => 'gold' }, {} ], 'metadata as given (no other)';
    ok abs($o->{created_at} - $t0) < 60_000 && $o->{updated_at} == $o->{created_at}, 'created now';
    ok !exists $o->{members_count}, 'no members_count';
    is_deeply ok_get("/organizations/$o->{id}"), $o, 'GET shows it';
    is ok_get('/organizations?limit=1')->{total_count}, $before + 1, 'counted';
    is ok_get("/organizations/$o->{id}?include_members_count=true")->{members_count}, 1, 'the creator is a member';
    my @ev = events_ok([ 'organization.created', 'organizationMembership.created' ],
        'POST /organizations with created_by: organization.created, organizationMembership.created');
    is_deeply without((of_type('organization.created', @ev))[0], 'members_count'), $o,
        'organization.created data: the organization (with members_count, as the control API\'s)';
    my ($mem) = of_type('organizationMembership.created', @ev);
    is_deeply [ $mem->{role}, $mem->{organization}{id}, $mem->{public_user_data}{user_id} ],
        [ 'org:admin', $o->{id}, $creator->{id} ], 'the creator became an admin';
    my $auto = ok_api(POST => '/organizations', { name => 'Slugless Co' });
    like $auto->{slug}, qr/^slugless-co-[a-z0-9]+$/, 'without a slug, one is made from the name';
    ok !defined $auto->{created_by}, 'no created_by';
    events_ok([ 'organization.created' ], 'without created_by: no membership');

    my $e = error_is api(POST => '/organizations', { slug => 'no-name' }), 422, 'form_param_missing', 'no name -> 422';
    is $e->{errors}[0]{meta}{param_name}, 'name', 'meta.param_name = name';
    error_is api(POST => '/organizations', { name => '  ' }), 422, 'form_param_value_invalid', 'blank name';
    error_is api(POST => '/organizations', { name => 'Visit https://spam.example' }), 422, 'form_param_value_invalid',
        'a URL in the name';
    error_is api(POST => '/organizations', { name => 'X', slug => 'Bad Slug' }), 422, 'form_param_format_invalid',
        'a slug with capitals and a space';
    error_is api(POST => '/organizations', { name => 'X', slug => $o->{slug} }), 422, 'form_identifier_exists',
        'a slug in use (created)';
    my $gen = ok_get('/organizations?order_by=created_at&limit=1')->{data}[0];
    error_is api(POST => '/organizations', { name => 'X', slug => $gen->{slug} }), 422, 'form_identifier_exists',
        'a slug in use (generated)';
    error_is api(POST => '/organizations', { name => 'X', created_by => 'user_2nothere' }), 400,
        'organization_creator_not_found', 'an unknown created_by -> 400';
    error_is api(POST => '/organizations', { name => 'X', max_allowed_memberships => -1 }), 422, 'form_param_value_invalid',
        'max_allowed_memberships < 0';
    error_is api(POST => '/organizations', { name => 'X', members => [] }), 422, 'form_param_unknown', 'an unknown field';
    events_ok([], 'rejected creates record nothing');

    my $p = ok_api(PATCH => "/organizations/$o->{id}",
        { name => 'Renamed Writes', slug => 'renamed-writes', max_allowed_memberships => 30,
          admin_delete_enabled => JSON::PP::false });
    is_deeply [ @$p{qw(name slug max_allowed_memberships)}, bool01($p->{admin_delete_enabled}) ],
        [ 'Renamed Writes', 'renamed-writes', 30, 0 ], 'PATCH: the organization as changed';
    cmp_ok $p->{updated_at}, '>', $o->{updated_at}, 'updated_at bumped';
    is ok_get('/organizations/renamed-writes')->{id}, $o->{id}, 'found by its new slug';
    my ($ev) = events_ok([ 'organization.updated' ], 'PATCH records organization.updated');
    is_deeply without($ev->{data}, 'members_count'), $p, 'event data: the organization';
    error_is api(PATCH => "/organizations/$o->{id}", { slug => $auto->{slug} }), 422, 'form_identifier_exists',
        "another organization's slug";
    is ok_api(PATCH => "/organizations/$o->{id}", { slug => 'renamed-writes' })->{slug}, 'renamed-writes',
        'its own slug is fine';
    error_is api(PATCH => '/organizations/org_2nothere', { name => 'X' }), 404, 'resource_not_found', 'unknown organization';
    is api(PATCH => '/organizations/org_2nothere', { name => 'X' })->{json}{errors}[0]{long_message},
        'Given organization not found.', 'its long_message';
    error_is api(PATCH => "/organizations/$o->{id}", { private_metadata => {} },
                 headers => { 'Clerk-API-Version' => '2026-05-12' }), 422, 'form_param_deprecated',
        'API version 2026-05-12: no metadata in PATCH /organizations/{id}';
    my $om = ok_api(PATCH => "/organizations/$o->{id}", { private_metadata => { keep => 1, drop => 2 } });
    is_deeply $om->{private_metadata}, { keep => 1, drop => 2 }, 'older versions: PATCH /organizations/{id} replaces metadata';
    $om = ok_api(PATCH => "/organizations/$o->{id}/metadata",
        { public_metadata => { tier => undef, region => { eu => 1 } }, private_metadata => { drop => undef } });
    is_deeply [ $om->{public_metadata}, $om->{private_metadata} ], [ { region => { eu => 1 } }, { keep => 1 } ],
        'PATCH .../metadata merges, null removes';
    $om = ok_api(PUT => "/organizations/$o->{id}/metadata", { public_metadata => { only => 1 } });
    is_deeply [ $om->{public_metadata}, $om->{private_metadata} ], [ { only => 1 }, { keep => 1 } ], 'PUT .../metadata replaces';
    error_is api(PATCH => "/organizations/$o->{id}/metadata", { public_metadata => { big => 'b' x 8192 } }), 422,
        'form_param_exceeds_allowed_size', 'organization metadata over 8 KB';
    events_ok([ ('organization.updated') x 4 ], 'each accepted change records organization.updated');

    $w_org = $p;
    $w_admin = $creator;
    my $gone = ok_api(POST => '/organizations', { name => 'Short Lived', created_by => $other->{id} });
    new_events();
    is_deeply ok_api(DELETE => "/organizations/$gone->{id}"),
        { object => 'organization', id => $gone->{id}, deleted => JSON::PP::true }, 'DELETE answers a DeletedObject';
    error_is $mock->get("/organizations/$gone->{id}"), 404, 'resource_not_found', 'gone';
    is ok_get("/users/$other->{id}/organization_memberships")->{total_count},
        scalar(grep { $_->{public_user_data}{user_id} eq $other->{id} } walk('/organization_memberships', 100)),
        "its memberships went with it";
    ($ev) = events_ok([ 'organization.deleted' ], 'DELETE records organization.deleted');
    is_deeply $ev->{data}, { object => 'organization', id => $gone->{id}, slug => $gone->{slug}, deleted => JSON::PP::true },
        'organization.deleted data';
    error_is api(DELETE => "/organizations/$gone->{id}"), 404, 'resource_not_found', 'a second DELETE -> 404';
};

subtest 'writes: memberships (POST, PATCH, metadata, DELETE)' => sub {
    my $o = $w_org->{id};
    my ($x, $y, $z) = @w_users[42, 43, 44];
    my $m = ok_api(POST => "/organizations/$o/memberships",
        { user_id => $x->{id}, role => 'org:member', public_metadata => { title => 'Chef' } });
    like $m->{id}, qr/^orgmem_[0-9A-Za-z]{27}$/, 'a Clerk-like id';
    is_deeply [ @$m{qw(object role role_name)}, $m->{organization}{id}, $m->{public_user_data}{user_id} ],
        [ 'organization_membership', 'org:member', 'Member', $o, $x->{id} ], 'the membership';
    is_deeply [ $m->{public_metadata}, $m->{private_metadata} ], [ { title => 'Chef' }, {} ], 'its metadata';
    ok ref $m->{permissions} eq 'ARRAY' && is_ms($m->{created_at}), 'permissions, created_at';
    my ($ev) = events_ok([ 'organizationMembership.created' ], 'POST records organizationMembership.created');
    is_deeply $ev->{data}, $m, 'event data: the membership';
    is_deeply [ ids(@{ ok_get("/organizations/$o/memberships?user_id=$x->{id}")->{data} }) ], [ $m->{id} ], 'listed';
    my $e = error_is api(POST => "/organizations/$o/memberships", { user_id => $x->{id}, role => 'org:member' }), 400,
        'already_a_member_in_organization', 'an existing membership -> 400 (clerk-api-errors.json)';
    like $e->{errors}[0]{long_message}, qr/\Q$x->{id}\E is already a member/, 'its long_message';
    $e = error_is api(POST => "/organizations/$o/memberships", { user_id => $y->{id}, role => 'org:overlord' }), 422,
        'form_param_value_invalid', 'an unknown role -> 422';
    is $e->{errors}[0]{meta}{param_name}, 'role', 'meta.param_name = role';
    my $r = api(POST => "/organizations/$o/memberships", {});
    is_deeply codes($r), [qw(form_param_missing form_param_missing)], 'no user_id, no role: both missing';
    error_is api(POST => "/organizations/$o/memberships", { user_id => 'user_2nothere', role => 'org:member' }), 404,
        'resource_not_found', 'unknown user';
    error_is api(POST => '/organizations/org_2nothere/memberships', { user_id => $y->{id}, role => 'org:member' }), 404,
        'resource_not_found', 'unknown organization';
    my ($custom) = grep { $_->{key} !~ /^org:(admin|member|billing_manager)$/ }
        @{ ok_get('/organization_roles?limit=100')->{data} };
    my $cm = ok_api(POST => "/organizations/$o/memberships", { user_id => $y->{id}, role => $custom->{key} });
    is_deeply [ $cm->{role}, $cm->{role_name} ], [ $custom->{key}, $custom->{name} ], 'a custom role of the instance';
    events_ok([ 'organizationMembership.created' ], 'one more created');
    ok_api(PATCH => "/organizations/$o", { max_allowed_memberships => 3 });
    new_events();
    error_is api(POST => "/organizations/$o/memberships", { user_id => $z->{id}, role => 'org:member' }), 403,
        'organization_membership_quota_exceeded', 'max_allowed_memberships reached -> 403';
    ok_api(PATCH => "/organizations/$o", { max_allowed_memberships => 0 });
    new_events();

    my $p = ok_api(PATCH => "/organizations/$o/memberships/$x->{id}", { role => 'org:admin' });
    is_deeply [ @$p{qw(id role role_name)} ], [ $m->{id}, 'org:admin', 'Admin' ], 'PATCH: the role, and role_name with it';
    ok((grep { $_ eq 'org:sys_memberships:manage' } @{ $p->{permissions} }), '... and the permissions');
    ($ev) = events_ok([ 'organizationMembership.updated' ], 'PATCH records organizationMembership.updated');
    is_deeply $ev->{data}, $p, 'event data';
    error_is api(PATCH => "/organizations/$o/memberships/$x->{id}", {}), 422, 'form_param_missing', 'PATCH without role';
    error_is api(PATCH => "/organizations/$o/memberships/$x->{id}", { role => 'org:nope' }), 422, 'form_param_value_invalid',
        'PATCH to an unknown role';
    error_is api(PATCH => "/organizations/$o/memberships/$z->{id}", { role => 'org:admin' }), 404, 'resource_not_found',
        'PATCH of a user who is no member -> 404';
    my $md = ok_api(PATCH => "/organizations/$o/memberships/$x->{id}/metadata",
        { public_metadata => { title => undef, team => { a => 1 } }, private_metadata => { hr => 7 } });
    is_deeply [ $md->{public_metadata}, $md->{private_metadata} ], [ { team => { a => 1 } }, { hr => 7 } ],
        'PATCH .../metadata merges, null removes';
    events_ok([ 'organizationMembership.updated' ], 'metadata: organizationMembership.updated');

    my $d = ok_api(DELETE => "/organizations/$o/memberships/$y->{id}");
    is_deeply [ @$d{qw(object id role)} ], [ 'organization_membership', $cm->{id}, $custom->{key} ],
        'DELETE answers the membership (the spec: OrganizationMembership)';
    is_deeply ok_get("/organizations/$o/memberships?user_id=$y->{id}")->{data}, [], 'not listed any more';
    ($ev) = events_ok([ 'organizationMembership.deleted' ], 'DELETE records organizationMembership.deleted');
    is $ev->{data}{id}, $cm->{id}, 'with the whole membership';
    error_is api(DELETE => "/organizations/$o/memberships/$y->{id}"), 404, 'resource_not_found', 'a second DELETE -> 404';
};

subtest 'writes: organization invitations (POST, GET, revoke)' => sub {
    my $o = $w_org->{id};
    my $member = ok_api(POST => "/organizations/$o/memberships", { user_id => $w_users[46]{id}, role => 'org:member' });
    new_events();
    my $email = 'Invitee.Writes@example.com';
    my $t0 = time * 1000;
    my $inv = ok_api(POST => "/organizations/$o/invitations",
        { email_address => $email, role => 'org:member', inviter_user_id => $w_admin->{id},
          public_metadata => { source => 'api' }, private_metadata => { ticket => 9 },
          redirect_url => 'https://app.example.com/join', expires_in_days => 7, notify => JSON::PP::false });
    like $inv->{id}, qr/^orginv_[0-9A-Za-z]{27}$/, 'a Clerk-like id';
    is_deeply [ shape_problems($inv, 'organization_invitation') ], [], 'OrganizationInvitation shape';
    is_deeply [ @$inv{qw(email_address role role_name organization_id inviter_id status)} ],
        [ $email, 'org:member', 'Member', $o, $w_admin->{id}, 'pending' ], 'fields';
    is $inv->{public_inviter_data}{user_id}, $w_admin->{id}, 'public_inviter_data';
    is_deeply [ $inv->{public_metadata}, $inv->{private_metadata} ], [ { source => 'api' }, { ticket => 9 } ], 'metadata';
    like $inv->{url}, qr{^https://app\.example\.com/join\?__clerk_ticket=\w+$}, 'url: redirect_url with the ticket';
    ok abs($inv->{created_at} - $t0) < 60_000 && $inv->{expires_at} == $inv->{created_at} + 7 * $DAY_MS,
        'expires_in_days';
    my ($ev) = events_ok([ 'organizationInvitation.created' ], 'POST records organizationInvitation.created');
    is_deeply without($ev->{data}, 'public_organization_data'), $inv, 'event data: the invitation ...';
    is_deeply $ev->{data}{public_organization_data}, public_org_of($w_org), '... with public_organization_data';
    is_deeply ok_get("/organizations/$o/invitations/$inv->{id}"), $inv, 'GET /organizations/{id}/invitations/{id}';
    is ok_get("/organizations/$o/invitations?limit=1")->{data}[0]{id}, $inv->{id}, 'listed first';

    error_is api(POST => "/organizations/$o/invitations", { email_address => lc $email, role => 'org:member' }), 400,
        'organization_invitation_not_unique', 'a second pending invitation of the email -> 400';
    my $e = error_is api(POST => "/organizations/$o/invitations", { email_address => 'not-an-email', role => 'org:member' }),
        422, 'form_param_format_invalid', 'a malformed email -> 422';
    is $e->{errors}[0]{meta}{param_name}, 'email_address', 'meta.param_name = email_address';
    error_is api(POST => "/organizations/$o/invitations", { email_address => 'a@example.com' }), 422, 'form_param_missing',
        'no role';
    error_is api(POST => "/organizations/$o/invitations", { email_address => 'a@example.com', role => 'org:x' }), 422,
        'form_param_value_invalid', 'an unknown role';
    error_is api(POST => "/organizations/$o/invitations",
                 { email_address => 'a@example.com', role => 'org:member', expires_in_days => 0 }), 422,
        'form_param_value_invalid', 'expires_in_days 0';
    error_is api(POST => "/organizations/$o/invitations",
                 { email_address => 'a@example.com', role => 'org:member', inviter_user_id => $w_users[50]{id} }), 403,
        'not_a_member_in_organization', 'an inviter who is no member -> 403';
    error_is api(POST => "/organizations/$o/invitations",
                 { email_address => 'a@example.com', role => 'org:member',
                   inviter_user_id => $member->{public_user_data}{user_id} }), 403,
        'missing_organization_permission', 'an inviter who is no admin -> 403';
    my $mu = ok_get("/users/$member->{public_user_data}{user_id}");
    my ($maddr) = map { $_->{email_address} } grep { $_->{id} eq ($mu->{primary_email_address_id} // '') }
        @{ $mu->{email_addresses} };
    SKIP: {
        skip 'the member has no email address', 1 unless $maddr;
        error_is api(POST => "/organizations/$o/invitations", { email_address => $maddr, role => 'org:member' }), 400,
            'already_a_member_in_organization', "a member's email -> 400";
    }
    error_is api(POST => '/organizations/org_2nothere/invitations', { email_address => 'a@example.com', role => 'org:member' }),
        404, 'resource_not_found', 'unknown organization';
    events_ok([], 'rejected invitations record nothing');

    my $rv = ok_api(POST => "/organizations/$o/invitations/$inv->{id}/revoke", { requesting_user_id => $w_admin->{id} });
    is_deeply [ @$rv{qw(id status)} ], [ $inv->{id}, 'revoked' ], 'revoke: the invitation, revoked';
    ($ev) = events_ok([ 'organizationInvitation.revoked' ], 'revoke records organizationInvitation.revoked');
    is_deeply without($ev->{data}, 'public_organization_data'), $rv, 'event data';
    error_is api(POST => "/organizations/$o/invitations/$inv->{id}/revoke"), 404, 'organization_invitation_not_pending',
        'revoking it again -> organization_invitation_not_pending';
    error_is api(POST => "/organizations/$o/invitations/orginv_2nothere/revoke"), 404, 'organization_invitation_not_found',
        'unknown invitation';
    my $elsewhere = ok_get('/organization_invitations?status=pending&limit=1')->{data}[0];
    error_is api(POST => "/organizations/$o/invitations/$elsewhere->{id}/revoke"), 404, 'organization_invitation_not_found',
        "another organization's invitation";
    error_is $mock->get("/organizations/$o/invitations/$elsewhere->{id}"), 404, 'organization_invitation_not_found',
        '... nor GET it here';
    ok((grep { $_ eq $inv->{id} } ids(@{ ok_get("/organizations/$o/invitations?status=revoked&limit=100")->{data} })),
        'listed under status=revoked');
    my $again = ok_api(POST => "/organizations/$o/invitations", { email_address => $email, role => 'org:admin' });
    is_deeply [ $again->{status}, $again->{inviter_id}, $again->{expires_at} - $again->{created_at} ],
        [ 'pending', undef, 30 * $DAY_MS ], 'once revoked, the email may be invited again (30 days, no inviter)';
    events_ok([ 'organizationInvitation.created' ], 'created');
};

subtest 'writes: instance invitations (POST, revoke; no events)' => sub {
    my $i = ok_api(POST => '/invitations',
        { email_address => 'guest.writes@example.com', public_metadata => { plan => 'pro' },
          redirect_url => 'https://app.example.com/welcome?from=mail', notify => JSON::PP::false, expires_in_days => 10 });
    like $i->{id}, qr/^inv_[0-9A-Za-z]{27}$/, 'a Clerk-like id';
    is_deeply [ shape_problems($i, 'invitation') ], [], 'Invitation shape';
    is_deeply [ @$i{qw(email_address status)}, bool01($i->{revoked}), $i->{public_metadata} ],
        [ 'guest.writes@example.com', 'pending', 0, { plan => 'pro' } ], 'fields';
    like $i->{url}, qr{^https://app\.example\.com/welcome\?from=mail&__clerk_ticket=\w+$}, 'url';
    is $i->{expires_at} - $i->{created_at}, 10 * $DAY_MS, 'expires_in_days';
    is_deeply ok_get('/invitations?limit=1'), [ $i ], 'listed first';
    error_is api(POST => '/invitations', { email_address => 'GUEST.writes@example.com' }), 400, 'duplicate_record',
        'a pending invitation of the email -> 400 duplicate_record';
    my $dup = ok_api(POST => '/invitations', { email_address => 'guest.writes@example.com', ignore_existing => JSON::PP::true });
    isnt $dup->{id}, $i->{id}, 'ignore_existing: a second one';
    my $u = $w_users[45];
    my ($addr) = map { $_->{email_address} } @{ $u->{email_addresses} };
    SKIP: {
        skip 'no email address', 2 unless $addr;
        error_is api(POST => '/invitations', { email_address => $addr }), 422, 'form_identifier_exists',
            "a user's email -> 422";
        ok_api(POST => '/invitations', { email_address => $addr, ignore_existing => JSON::PP::true });
    }
    error_is api(POST => '/invitations', { email_address => 'two@@example.com' }), 422, 'form_param_format_invalid',
        'a malformed email';
    error_is api(POST => '/invitations', { email_address => 'a@example.com', template_slug => 'other' }), 422,
        'form_param_value_invalid', 'a template_slug not in the enum';
    error_is api(POST => '/invitations', { email_address => 'a@example.com', role => 'x' }), 422, 'form_param_unknown',
        'an unknown field';
    error_is api(POST => '/invitations', {}), 422, 'form_param_missing', 'no email_address';

    my $rv = ok_api(POST => "/invitations/$i->{id}/revoke");
    is_deeply [ @$rv{qw(id status)}, bool01($rv->{revoked}) ], [ $i->{id}, 'revoked', 1 ], 'revoke: Invitation.Revoked';
    error_is api(POST => "/invitations/$i->{id}/revoke"), 400, 'invitation_already_revoked', 'revoked already -> 400';
    my $acc = ok_get('/invitations?status=accepted&limit=1')->[0];
    error_is api(POST => "/invitations/$acc->{id}/revoke"), 400, 'invitation_already_accepted', 'an accepted one -> 400';
    my $e = error_is api(POST => '/invitations/inv_2nothere/revoke'), 404, 'resource_not_found', 'unknown invitation';
    like $e->{errors}[0]{long_message}, qr/No invitation was found with id inv_2nothere/, 'its long_message';
    events_ok([], 'instance invitations record no events (Clerk has none)');
};

subtest 'writes: routes, methods, auth, endpoint_errors' => sub {
    my $u = $w_users[6]{id};
    $mock->control(DELETE => 'stats');
    my $r = api(GET => "/users/$u/ban");
    error_is $r, 405, 'method_not_allowed', 'GET of a POST-only path -> 405';
    is $r->{headers}{allow}, 'POST', 'Allow: POST';
    $r = api(PUT => "/users/$u", {});
    is_deeply [ $r->{status}, $r->{headers}{allow} ], [ 405, 'GET, PATCH, DELETE' ], 'PUT /users/{id}: Allow lists the rest';
    $r = api(POST => '/users', { first_name => 'X' });
    is_deeply [ $r->{status}, $r->{headers}{allow} ], [ 405, 'GET' ], 'a route the mock only reads: Allow: GET';
    is api(DELETE => '/users/count')->{status}, 405, 'DELETE /users/count -> 405 (not a user id)';
    is api(POST => '/users/count/ban')->{status}, 404, 'no route -> 404';
    error_is api(PATCH => "/users/$u", { first_name => 'X' }, headers => { Authorization => 'Bearer sk_test_wrong' }),
        401, 'authentication_invalid', 'a write needs the key';
    isnt ok_get("/users/$u")->{first_name}, 'X', '... and changed nothing';
    $mock->configure(endpoint_errors => { organization_invitations => 403 });
    error_is api(POST => "/organizations/$w_org->{id}/invitations", { email_address => 'e@example.com', role => 'org:member' }),
        403, 'organization_not_enabled_in_instance', 'endpoint_errors apply to writes';
    $mock->configure(endpoint_errors => {});
    is_deeply [ map { $_->{status} } @{ $mock->requests('^/v1/users/user_') }[ -2, -1 ] ], [ 401, 200 ], 'writes are logged';
    my ($last) = grep { $_->{method} eq 'PATCH' } reverse @{ $mock->requests };
    is_deeply [ @$last{qw(applied body_sha256)} ], [ JSON::PP::false, body_sha({ first_name => 'X' }) ],
        'the request log: applied false, the body hash';
    is $mock->stats->{by_path_prefix}{'/v1/users/{id}/ban'}, 1, 'stats by_path_prefix';
    new_events();
};

subtest 'writes: rate limits (global and per object)' => sub {
    $mock->configure(write_rate_limits => $w_limits);
    my ($u, $v) = @w_users[7, 8];
    my @st = map { api(PATCH => "/users/$u->{id}/metadata", { public_metadata => { n => $_ } })->{status} } 1 .. 10;
    is_deeply \@st, [ (200) x 10 ], '10 metadata writes to one user within 10 s pass';
    my $r = api(PATCH => "/users/$u->{id}/metadata", { public_metadata => { n => 11 } });
    error_is $r, 429, 'too_many_requests', 'the 11th -> 429';
    ok(($r->{headers}{'retry-after'} // 0) >= 1 && $r->{headers}{'retry-after'} <= 10, 'Retry-After in 1..10');
    is ok_get("/users/$u->{id}")->{public_metadata}{n}, 10, 'the 11th changed nothing';
    is api(PUT => "/users/$u->{id}/metadata", { public_metadata => {} })->{status}, 429, 'PUT .../metadata shares the window';
    is api(PATCH => "/users/$v->{id}/metadata", { public_metadata => { n => 1 } })->{status}, 200, 'another user: fine';
    is api(PATCH => "/users/$u->{id}", { first_name => 'Still' })->{status}, 200, 'PATCH /users/{id}: a window of its own';
    ok $mock->stats->{rate_limited} >= 2, 'stats.rate_limited counts them';

    my $o = $w_org->{id};
    is_deeply [ map { api(PATCH => "/organizations/$o", { name => "Org $_" })->{status} } 1 .. 11 ], [ (200) x 10, 429 ],
        'PATCH /organizations/{id}: 10 per 10 s per organization';
    is api(PATCH => "/organizations/$o/metadata", { public_metadata => {} })->{status}, 200, '... its metadata: another window';
    my ($m) = @{ ok_get("/organizations/$o/memberships?limit=1")->{data} };
    my $mu = $m->{public_user_data}{user_id};
    is_deeply [ map { api(PATCH => "/organizations/$o/memberships/$mu", { role => 'org:admin' })->{status} } 1 .. 11 ],
        [ (200) x 10, 429 ], 'PATCH /organizations/{id}/memberships/{user_id}: 10 per 10 s per membership';

    $mock->configure(write_rate_limits => { %$w_limits, 'PATCH|PUT /v1/users/{id}/metadata' => { limit => 2, window => 1 } });
    my $w = $w_users[9]{id};
    is_deeply [ map { api(PATCH => "/users/$w/metadata", {})->{status} } 1 .. 3 ], [ 200, 200, 429 ],
        'config write_rate_limits: {limit: 2, window: 1}';
    sleep 1.1;
    is api(PATCH => "/users/$w/metadata", {})->{status}, 200, 'allowed again after the window';
    is $mock->control_raw(POST => 'config', { write_rate_limits => { 'PATCH /v1/nothing' => { limit => 1 } } })->{status}, 400,
        'an unknown write rate limit is refused';

    my $n = scalar @{ writes_log() };
    $mock->configure(rate_limit => 2);
    my @g = map { api(POST => '/organizations', { name => "Global $_" })->{status} } 1 .. 3;
    $mock->configure(rate_limit => 0);
    is_deeply \@g, [ 200, 200, 429 ], 'the global limit applies to writes';
    is scalar @{ writes_log() }, $n + 2, 'the limited one was not applied';
    new_events();
};

subtest 'writes: faults by method, lost answers, the writes log' => sub {
    my $u = $w_users[11];
    $mock->add_fault(kind => 'status', status => 503, method => 'PATCH', path => '^/v1/users/');
    is api(GET => "/users/$u->{id}")->{status}, 200, 'a PATCH fault leaves GETs alone';
    my $before = scalar @{ writes_log() };
    error_is api(PATCH => "/users/$u->{id}", { first_name => 'Faulty' }), 503, 'service_unavailable', 'it hits the PATCH';
    is scalar @{ writes_log() }, $before, 'a status fault: nothing applied';
    isnt ok_get("/users/$u->{id}")->{first_name}, 'Faulty', 'the user is unchanged';
    is api(PATCH => "/users/$u->{id}", { first_name => 'Fine' })->{status}, 200, 'count 1: the next one passes';
    $mock->add_fault(kind => 'status', status => 500, method => [qw(post delete)], count => 2);
    is_deeply [ api(PATCH => "/users/$u->{id}", {})->{status}, api(POST => "/users/$u->{id}/lock")->{status},
                api(DELETE => "/users/$w_users[12]{id}")->{status}, api(POST => "/users/$u->{id}/unlock")->{status} ],
        [ 200, 500, 500, 200 ], 'a list of methods (any case)';
    is ok_get("/users/$w_users[12]{id}")->{id}, $w_users[12]{id}, 'the faulted DELETE deleted nothing';
    $mock->add_fault(kind => 'latency', latency_ms => 400, method => 'POST');
    my $t0 = time;
    ok_api(POST => "/users/$u->{id}/lock");
    cmp_ok time - $t0, '>=', 0.38, 'a latency fault for POST';
    # (not on a DELETE: HTTP::Tiny sends an idempotent request again when the connection closes unanswered)
    $mock->add_fault(kind => 'drop', method => 'PATCH');
    is api(PATCH => "/users/$w_users[12]{id}", { first_name => 'Dropped' })->{status}, 599, 'drop: no answer';
    isnt ok_get("/users/$w_users[12]{id}")->{first_name}, 'Dropped', '... and nothing applied';
    is $mock->control_raw(POST => 'faults', { kind => 'status', method => [] })->{status}, 400, 'a bad method is refused';
    is $mock->control_raw(POST => 'faults', { kind => 'lost_after_apply' })->{status}, 200, 'lost_after_apply is a kind';
    $mock->clear_faults;
    new_events();

    # a lost answer to a create: the object exists once; the retry cannot make a second one with the same slug
    $mock->control(DELETE => 'writes');
    my $orgs = $mock->state->{organizations};
    my $body = { name => 'Lost Answer Inc', slug => 'lost-answer-inc' };
    $mock->add_fault(kind => 'lost_after_apply', method => 'POST', path => '^/v1/organizations$');
    my $r = api(POST => '/organizations', $body);
    is $r->{status}, 599, 'lost_after_apply: the client gets no answer';
    is $mock->state->{organizations}, $orgs + 1, '... but the organization was created';
    my $log = writes_log('path=^/v1/organizations$');
    is scalar @$log, 1, 'the writes log: applied once';
    is_deeply [ @{ $log->[0] }{qw(method route op object status answered body_sha256)} ],
        [ 'POST', 'POST /v1/organizations', 'create', 'organization', 200, JSON::PP::false, body_sha($body) ],
        '... its answer (200) was not delivered';
    my ($req) = grep { ($_->{fault} // '') eq 'lost_after_apply' } @{ $mock->requests('^/v1/organizations$') };
    is_deeply [ @$req{qw(status withheld_status object_id)}, bool01($req->{applied}), bool01($req->{answered}) ],
        [ 0, 200, $log->[0]{id}, 1, 0 ], 'the request log: status 0, withheld_status 200, applied, not answered';
    my ($ev) = events_ok([ 'organization.created' ], 'the event was recorded');
    is $ev->{data}{id}, $log->[0]{id}, '... for that organization';
    error_is api(POST => '/organizations', $body), 422, 'form_identifier_exists', 'a blind retry: the slug is taken';
    is $mock->state->{organizations}, $orgs + 1, 'one organization';
    is_deeply ok_get('/organizations/lost-answer-inc'), ok_get("/organizations/$log->[0]{id}"), 'it can be found by slug';
    is scalar @{ writes_log('method=POST&path=^/v1/organizations$') }, 1, 'still applied once';
    events_ok([], 'the failed retry recorded nothing');

    # truncated and hanging variants, on PATCH and DELETE
    $mock->add_fault(kind => 'lost_after_apply', method => 'PATCH', truncate => JSON::PP::true);
    is api(PATCH => "/users/$u->{id}", { first_name => 'Cut' })->{status}, 599, 'truncate: half an answer';
    is ok_get("/users/$u->{id}")->{first_name}, 'Cut', '... the change was applied';
    my $o = $w_org->{id};
    my ($m) = @{ ok_get("/organizations/$o/memberships?limit=1")->{data} };
    $mock->add_fault(kind => 'lost_after_apply', method => 'DELETE', hang => 3);
    $t0 = time;
    is api(DELETE => "/organizations/$o/memberships/$m->{public_user_data}{user_id}", undef, timeout => 0.7)->{status},
        599, 'hang: the client times out';
    cmp_ok time - $t0, '<', 2.5, '... on its own timeout';
    is_deeply ok_get("/organizations/$o/memberships?user_id=$m->{public_user_data}{user_id}")->{data}, [],
        '... the membership was deleted';
    my $w;
    for (1 .. 40) {
        ($w) = @{ writes_log('method=DELETE') };
        last if $w && defined $w->{answered};
        sleep 0.1;
    }
    is_deeply [ @$w{qw(op object id)}, bool01($w->{answered}) ], [ 'delete', 'organization_membership', $m->{id}, 0 ],
        'the writes log: deleted, not answered';
    events_ok([ 'user.updated', 'organizationMembership.deleted' ], 'both changes recorded their events');
    $mock->clear_faults;

    # triggers match by method too
    my $users = $mock->state->{users};
    $mock->add_trigger(path => '^/v1/users/', method => 'POST', create_users => 1);
    ok_get("/users/$u->{id}");
    is $mock->state->{users}, $users, 'a POST trigger: not fired by a GET';
    ok_api(POST => "/users/$u->{id}/unlock");
    is $mock->state->{users}, $users + 1, '... fired by the POST';
    $mock->clear_triggers;
    new_events();

    is_deeply writes_log("id=$u->{id}&method=POST")->[-1]{route}, 'POST /v1/users/{id}/unlock', 'writes: ?id= and ?method=';
    ok $mock->control(DELETE => 'writes')->{deleted} > 0, 'DELETE /__mock/writes clears it';
    is_deeply writes_log(), [], 'empty';
    $mock->reset;
    is_deeply writes_log(), [], 'reset clears it too';
};
}

# --- prepared pages -------------------------------------------------------------
# Config prepared_pages (test/README.md, "Prepared pages") serves listings
# joined from each object's JSON, encoded once: every answer must be byte for
# byte the one served without it, for the same data, also right after a
# change, when what was prepared before it is stale.
{
my $pm = ClerkMock->new(users => 400, organizations => 8, memberships => 300, seed => 17,
                        extra_args => [ '--organization-invitations', 40, '--invitations', 20,
                                        '--organization-domains', 12, '--sessions', 200, '--waitlist-entries', 10,
                                        '--custom-roles', 2, '--custom-permissions', 3 ]);
my $http = HTTP::Tiny->new(keep_alive => 0, timeout => 60, agent => 'clerk-mock-tests/1.0');
my %auth = (Authorization => 'Bearer ' . $pm->secret_key);
# the exact bytes of a /v1 answer (no decoding: JSON::PP is slow on a page of 500 users)
my $raw = sub {
    my ($path) = @_;
    my $r = $http->get($pm->url . $path, { headers => \%auth });
    die "GET $path: $r->{status} $r->{content}" unless $r->{status} == 200;
    return $r->{content};
};
my $v1 = sub {
    my ($method, $path, $body) = @_;
    my $r = $http->request($method, $pm->url . $path, { headers => { %auth, 'Content-Type' => 'application/json' },
                                                        content => $JSON->encode($body) });
    is $r->{status}, 200, "$method $path -> 200" or diag $r->{content};
    return $JSON->decode($r->{content});
};
my $on  = sub { $pm->configure(prepared_pages => JSON::PP::true) };
my $off = sub { $pm->configure(prepared_pages => JSON::PP::false) };

my @users = @{ $pm->get('/users?limit=60&order_by=created_at')->{json} };
my @orgs  = @{ $pm->get('/organizations?limit=100&include_members_count=true&order_by=-members_count')->{json}{data} };
my @mems  = @{ $pm->get("/organizations/$orgs[0]{id}/memberships?limit=40")->{json}{data} };
my @oinv  = grep { defined $_->{inviter_id} } @{ $pm->get('/organization_invitations?limit=100')->{json}{data} };
my @roles = grep { $_->{key} !~ /^org:(?:admin|member|billing_manager)$/ }
            @{ $pm->get('/organization_roles?limit=100')->{json}{data} };
my @perms = @{ $pm->get('/organization_permissions?limit=100')->{json}{data} };
my ($lo, $hi) = ($users[10]{created_at}, $users[40]{created_at});
my @paths = (
    '/users?limit=500&order_by=created_at', '/users?limit=500', '/users?limit=37&offset=50&order_by=-updated_at',
    '/users?limit=100&offset=20&order_by=updated_at', '/users?limit=10&offset=395&order_by=created_at',
    "/users?limit=500&order_by=created_at&created_at_after=$lo",
    "/users?limit=20&order_by=-created_at&created_at_after=$lo&created_at_before=$hi",
    "/users?limit=25&order_by=created_at&starting_after=$users[5]{id}",
    "/users?user_id=$users[3]{id}&user_id=$users[9]{id}&order_by=updated_at",
    '/organizations?limit=100', '/organizations?limit=100&include_members_count=true',
    '/organizations?limit=3&offset=2&order_by=name&include_members_count=true',
    '/organizations?limit=100&order_by=-members_count&include_members_count=true'
        . '&include_missing_member_with_elevated_permissions=true',
    '/organization_memberships?limit=500', '/organization_memberships?limit=500&order_by=created_at',
    '/organization_memberships?limit=50&offset=120&order_by=-created_at',
    (map { ("/organizations/$_->{id}/memberships?limit=500", "/organizations/$_->{id}/invitations?limit=100",
            "/organizations/$_->{id}/domains?limit=100") } @orgs[0, 1, -1]),
    "/organizations/$orgs[0]{id}/memberships?limit=5&offset=3&order_by=created_at",
    "/users/$mems[1]{public_user_data}{user_id}/organization_memberships?limit=100",
    '/organization_invitations?limit=100', '/organization_invitations?limit=10&offset=5&order_by=email_address',
    '/organization_invitations?limit=100&status=pending', '/invitations?limit=100',
    '/invitations?limit=100&paginated=true&status=revoked', '/organization_domains?limit=100&order_by=name',
    '/organization_roles?limit=100', '/organization_permissions?limit=100&order_by=-name',
    "/sessions?user_id=$users[1]{id}&paginated=true", "/sessions?user_id=$users[2]{id}", '/waitlist_entries?limit=100',
);

# every path with the mode on (twice: encoded now, then from what was kept) and off: the same bytes
my $same = sub {
    my ($name) = @_;
    $on->();
    my %first = map { $_ => $raw->($_) } @paths;
    my %again = map { $_ => $raw->($_) } @paths;
    $off->();
    my %plain = map { $_ => $raw->($_) } @paths;
    my @diff = grep { $first{$_} ne $plain{$_} || $again{$_} ne $plain{$_} } @paths;
    is_deeply \@diff, [], "$name: " . @paths . ' listings byte-identical with prepared_pages on and off';
    return \%plain;
};
# prepare every listing with the mode on, make a change, compare
my $after = sub {
    my ($name, $change) = @_;
    $on->();
    $raw->($_) for @paths;
    $change->();
    return $same->($name);
};

subtest 'prepared_pages: config, CLI flag, stats' => sub {
    my $cfg = $pm->control(GET => 'config');
    ok exists $cfg->{prepared_pages} && !$cfg->{prepared_pages}, 'off by default, shown by GET /__mock/config';
    is $pm->control_raw(POST => 'config', { prepared_pages => 1 })->{status}, 400, 'not a boolean -> 400';
    ok $pm->configure(prepared_pages => JSON::PP::true)->{prepared_pages}, 'POST /__mock/config turns it on';
    $pm->reset;
    ok !$pm->control(GET => 'config')->{prepared_pages}, 'reset: back to the CLI value';
    my $flag = ClerkMock->new(users => 5, organizations => 1, memberships => 2, extra_args => ['--prepared-pages']);
    ok $flag->control(GET => 'config')->{prepared_pages}, '--prepared-pages: on from the start';
    $flag->reset;
    ok $flag->control(GET => 'config')->{prepared_pages}, '... and after a reset';
    $flag->stop;
    my $c0 = $pm->stats->{cpu_seconds};
    ok defined $c0 && $c0 > 0, "GET /__mock/stats: cpu_seconds ($c0)";
    $raw->('/users?limit=500') for 1 .. 3;
    cmp_ok $pm->stats->{cpu_seconds}, '>', $c0, '... grows as the mock works';
    $pm->control(DELETE => 'stats');
    cmp_ok $pm->stats->{cpu_seconds}, '>', $c0, '... and is not reset with the stats';
};

subtest 'prepared_pages: the same bytes, also after changes' => sub {
    my $plain = $same->('fresh data');
    my $uid = $mems[0]{public_user_data}{user_id};
    $plain = $after->('control PATCH of a member (name, metadata)', sub {
        $pm->control(PATCH => "users/$uid", { first_name => 'Prepared', public_metadata => { tier => 'gold' } });
    });
    like $plain->{"/organizations/$orgs[0]{id}/memberships?limit=500"}, qr/"first_name":"Prepared"/,
        '... the change shows in the memberships that embed the user';
    $plain = $after->('control PATCH of an organization', sub {
        $pm->control(PATCH => "organizations/$orgs[0]{id}",
                     { name => 'Aaa Prepared Org', private_metadata => { x => 1 } });
    });
    like $plain->{'/organization_memberships?limit=500'}, qr/"name":"Aaa Prepared Org"/, '... in the memberships';
    $after->('control PATCH of a membership role', sub {
        $pm->control(PATCH => "organization_memberships/$mems[2]{id}", { role => 'org:billing_manager' });
    });
    $after->('control DELETE of a member', sub { $pm->control(DELETE => "users/$mems[3]{public_user_data}{user_id}") });
    $after->('control DELETE of a membership', sub { $pm->control(DELETE => "organization_memberships/$mems[4]{id}") });
    $after->('control POST of a membership', sub {
        my %in = map { $_->{public_user_data}{user_id} => 1 }
                 @{ $pm->get("/organizations/$orgs[1]{id}/memberships?limit=500")->{json}{data} };
        my ($new) = grep { !$in{$_->{id}} && $_->{id} ne $mems[3]{public_user_data}{user_id} } @users[20 .. 59];
        $pm->control(POST => 'organization_memberships', { organization_id => $orgs[1]{id}, user_id => $new->{id} });
    });
    $after->('control PATCH of the user who sent an invitation', sub {
        $pm->control(PATCH => "users/$oinv[0]{inviter_id}", { last_name => 'Inviter' });
    });
    $after->('control PATCH of an invitation, a domain, a session', sub {
        my ($inv) = @{ $pm->get('/invitations?limit=1')->{json} };
        $pm->control(PATCH => "invitations/$inv->{id}", { public_metadata => { again => JSON::PP::true } });
        my ($dom) = @{ $pm->get('/organization_domains?limit=1')->{json}{data} };
        $pm->control(PATCH => "organization_domains/$dom->{id}", { enrollment_mode => 'manual_invitation' });
        my ($ses) = @{ $pm->get("/sessions?user_id=$users[1]{id}")->{json} };
        $pm->control(PATCH => "sessions/$ses->{id}", { status => 'ended' }) if $ses;
    });
    $after->('/v1 PATCH /users/{id}/metadata', sub {
        $v1->(PATCH => "/users/$mems[5]{public_user_data}{user_id}/metadata",
              { public_metadata => { v1 => [ 1, 2 ] } });
    });
    $after->('/v1 PATCH of a membership role and of an organization', sub {
        $v1->(PATCH => "/organizations/$orgs[0]{id}/memberships/$mems[6]{public_user_data}{user_id}",
              { role => 'org:admin' });
        $v1->(PATCH => "/organizations/$orgs[1]{id}", { name => 'Renamed Through V1' });
    });
    # a trigger fires while the listings are being prepared: some before the change, some after
    $on->();
    $pm->add_trigger(path => '^/v1/organizations', on_request => 2,
                     update_users => { $uid => { first_name => 'Triggered' }, $users[0]{id} => {} },
                     update_organizations => [ $orgs[-1]{id} ]);
    $raw->($_) for @paths;
    ok $pm->control(GET => 'triggers')->[0]{fired}, 'a trigger changed users and an organization mid-listing';
    $pm->clear_triggers;
    $same->('... after it');
    $after->('control PATCH of a role and a permission', sub {
        $pm->control(PATCH => "organization_roles/$roles[0]{id}", { name => 'Renamed Role' });
        $pm->control(PATCH => "organization_permissions/$perms[0]{id}", { name => 'Renamed Permission' });
        $pm->control(PATCH => 'organization_roles/' . (grep { $_->{key} eq 'org:member' }
            @{ $pm->get('/organization_roles?limit=100')->{json}{data} })[0]{id}, { name => 'Plain Member' });
    });
    $after->('control DELETE of an organization', sub { $pm->control(DELETE => "organizations/$orgs[2]{id}") });

    $pm->reset;
    $on->();
    my $p = $pm->control(POST => 'prepare');
    is_deeply [ @{ $p->{prepared} }{qw(users organizations organization_memberships organization_invitations)} ],
        [ 400, 8, 300, 40 ], 'POST /__mock/prepare: every live object';
    $same->('served from what POST /__mock/prepare encoded');
    is_deeply [ keys %{ $pm->control(POST => 'prepare', { collections => ['users'] })->{prepared} } ], ['users'],
        'collections picks some';
    is $pm->control_raw(POST => 'prepare', { collections => ['billing_plans'] })->{status}, 400,
        'an unknown collection -> 400';
};

subtest 'prepared_pages: a page costs the mock much less CPU' => sub {
    $pm->reset;
    my $path = '/users?limit=500&order_by=created_at';
    my $cpu = sub {
        my $c0 = $pm->stats->{cpu_seconds};
        $raw->($path) for 1 .. 10;
        return $pm->stats->{cpu_seconds} - $c0;
    };
    $off->();
    my $plain = $cpu->();
    $on->();
    $raw->($path);
    my $prepared = $cpu->();
    cmp_ok $prepared, '<=', 0.5 * $plain,
        sprintf('10 pages of 400 users: %.3f s of mock CPU prepared, %.3f s without (%.2fx)', $prepared, $plain,
                $prepared / ($plain || 1));
};

subtest 'prepared_pages: raw values, lone surrogates, page_extras, faults' => sub {
    $pm->reset;
    my ($u) = @{ $pm->get('/users?limit=1&order_by=created_at')->{json} };
    $after->('page_extras', sub { $pm->configure(page_extras => { users => [ '42', 'null' ] }) });
    $after->('a $raw value', sub {
        $pm->control(PATCH => "users/$u->{id}", { last_name => { '$raw' => '"\u0000"' } });
    });
    $after->('a lone surrogate', sub {
        my $r = $http->request(PATCH => $pm->base_url . "/__mock/users/$users[1]{id}",
                               { headers => { 'Content-Type' => 'application/json' },
                                 content => '{"first_name": "a\ud800b"}' });
        is $r->{status}, 200, 'PATCH with a lone surrogate' or diag $r->{content};
    });
    $on->();
    $pm->add_fault(kind => 'status', status => 503, path => '^/v1/users\?');
    is $http->get($pm->url . '/users?limit=5', { headers => \%auth })->{status}, 503, 'faults apply as before';
    $pm->clear_faults;
    is $http->get($pm->url . "/users/$u->{id}", { headers => \%auth })->{status}, 200, 'a single object as before';
};
$pm->stop;
}

$mock->stop;
done_testing;
