# Clerk Billing and the waitlist against a real server and the mock Clerk
# API: plans, prices, subscription items (free plans included), statements
# and their payment attempts (per statement, and on later runs only those of
# statements that are open or changed), and the waitlist, in the full and
# the incremental sync (typed columns, changes, deletions with and without a
# request for one object, the cascade of a statement's attempts), an
# instance without Clerk Billing, clerk_sync.entities, every new webhook
# event with the ordering rule (the mock's own signed events too), the
# summary's findings, and the row-level security helpers on synced data.
#
# Secrets are made up when the test runs and are obviously fake.

use strict;
use warnings;

use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ClerkMock;
use ClerkTest;

my $tag = ClerkMock::random_hex(6);
my $SECRET = 'whsec_' . encode_base64("test_fake_webhook_secret_billing_$tag", '');

my $mock = ClerkMock->new(users => 30, organizations => 4, memberships => 30, seed => 7);
$mock->configure(webhook_secret => $SECRET);
my $node = clerk_node('billing', $mock, webhook_secret => $SECRET,
    conf => "clerk_sync.max_delete_fraction = 0.9");

# the listings: how the mock lists every object of each (free plans included)
my %LIST = (
    billing_plans              => '/billing/plans?paginated=true',
    billing_prices             => '/billing/prices?paginated=true',
    billing_subscription_items => '/billing/subscription_items?paginated=true&include_free=true',
    billing_statements         => '/billing/statements?paginated=true',
    waitlist_entries           => '/waitlist_entries',
);

sub objects {
    my ($path) = @_;
    my $res = $mock->get("$path&limit=500");
    die "GET $path: $res->{status} $res->{content}" unless $res->{success};
    return @{ $res->{json}{data} };
}
sub mock_ids {
    my ($table) = @_;
    my @ids;
    if ($table eq 'billing_payment_attempts') {
        for my $s (objects($LIST{billing_statements})) {
            push @ids, map { $_->{id} } objects("/billing/statements/$s->{id}/payment_attempts?paginated=true");
        }
    }
    else {
        @ids = map { $_->{id} } objects($LIST{$table} =~ /\?/ ? $LIST{$table} : "$LIST{$table}?order_by=-created_at");
    }
    my @sorted = sort @ids;
    return @sorted;
}
sub stored_ids {
    my ($t) = @_;
    return split /\n/, q1("SELECT id FROM clerk.$t WHERE deleted_at IS NULL ORDER BY id COLLATE \"C\"");
}
sub sorted { my @s = sort @_; return @s }

# ---- a full sync lists everything ----

is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'full sync succeeds');
for my $t (sort(keys %LIST), 'billing_payment_attempts') {
    my @want = mock_ids($t);
    ok(@want > 0, "the mock has $t");
    is_deeply([stored_ids($t)], [sorted(@want)], "every one of $t is stored, nothing else");
    is(q1("SELECT stats -> '$t' ->> 'fetched' FROM clerk.sync_runs ORDER BY id DESC LIMIT 1"), scalar @want,
       "the run's stats count $t");
}
ok(q1(q{SELECT count(*) FROM clerk.billing_subscription_items s JOIN clerk.billing_plans p ON p.id = s.plan_id
         WHERE p.fee = 0}) > 0, 'items of free plans are stored too');
{
    my @reqs = @{ $mock->requests('/v1/billing/') };
    ok(@reqs > 0, 'the sync asked /billing/');
    is(scalar(grep { ($_->{query} // '') =~ /order_by/ } @reqs), 0, 'no billing listing is asked for an order');
}

# typed columns hold what the objects say, amounts exact
{
    my ($item) = grep { $_->{payer}{organization_id} && $_->{status} eq 'active' }
        objects($LIST{billing_subscription_items});
    ok($item, 'an organization has an active item');
    is(q1("SELECT concat_ws('|', organization_id, user_id, payer_id, plan_id, status, amount, currency, plan_period)
             FROM clerk.billing_subscription_items WHERE id = '$item->{id}'"),
       join('|', $item->{payer}{organization_id}, $item->{payer_id}, $item->{plan_id}, $item->{status},
            $item->{plan}{fee}{amount}, $item->{plan}{fee}{currency}, $item->{plan_period}),
       "a subscription item's columns");
    my ($plan) = grep { @{ $_->{features} || [] } } objects($LIST{billing_plans});
    is(q1("SELECT concat_ws('|', slug, for_payer_type, fee, currency, array_to_string(features, ','))
             FROM clerk.billing_plans WHERE id = '$plan->{id}'"),
       join('|', $plan->{slug}, $plan->{for_payer_type}, $plan->{fee}{amount}, $plan->{fee}{currency},
            join(',', map { $_->{slug} } @{ $plan->{features} })), "a plan's columns, its features' slugs");
    my ($st) = objects($LIST{billing_statements});
    is(q1("SELECT concat_ws('|', status, grand_total, currency) FROM clerk.billing_statements WHERE id = '$st->{id}'"),
       join('|', $st->{status}, $st->{totals}{grand_total}{amount}, $st->{totals}{grand_total}{currency}),
       "a statement's columns");
    my ($pa) = objects("/billing/statements/$st->{id}/payment_attempts?paginated=true");
    is(q1("SELECT concat_ws('|', statement_id, status, amount) FROM clerk.billing_payment_attempts WHERE id = '$pa->{id}'"),
       join('|', $st->{id}, $pa->{status}, $pa->{amount}{amount}), "a payment attempt's columns");
    is(q1(q{SELECT count(*) FROM information_schema.columns WHERE table_schema = 'clerk'
             AND (table_name LIKE 'billing\_%' OR table_name = 'waitlist_entries')
             AND (column_name IN ('amount', 'fee', 'grand_total', 'lifetime_paid', 'annual_fee', 'annual_monthly_fee', 'annual_monthly_amount'))
             AND data_type <> 'numeric'}), 0, 'every amount is numeric, never a float');
}

# the RLS helpers read the synced items
{
    my ($item) = grep { $_->{payer}{organization_id} && $_->{status} eq 'active' && $_->{plan}{fee}{amount} > 0 }
        objects($LIST{billing_subscription_items});
    my $org = $item->{payer}{organization_id};
    is(q1("SELECT clerk.active_plan('$org')"), $item->{plan}{slug}, 'clerk.active_plan() of a synced paid organization');
    my $feature = $item->{plan}{features}[0]{slug};
    is(q1("SELECT clerk.payer_has_feature('$org', '$feature')"), 't', 'clerk.payer_has_feature() of its plan');
    is(q1("SELECT clerk.payer_has_feature('$org', 'no-such-feature-$tag')"), 'f', 'and not of another');
}

# ---- later runs: payment attempts only of new or changed statements ----
# (a statement holds its attempts in its groups: a new attempt changes it)
{
    my @open = grep { $_->{status} eq 'open' } objects($LIST{billing_statements});
    my @closed = grep { $_->{status} ne 'open' } objects($LIST{billing_statements});
    ok(@open > 0 && @closed > 0, 'the mock has open and closed statements');
    ok(scalar(grep { @{ $_->{groups} } } @open, @closed), 'statements hold their attempts in groups');
    $mock->clear_requests;
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'incremental sync succeeds');
    my %asked = map { (m{^/v1/billing/statements/([^/]+)/payment_attempts$} ? ($1 => 1) : ()) }
        map { $_->{path} } @{ $mock->requests('/v1/billing/statements/') };
    is_deeply([sort keys %asked], [], 'a later run asks for the attempts of no unchanged statement');

    # a closed statement that changed, and an open one with a new attempt, are asked
    my $st = $closed[0];
    $mock->control(PATCH => "billing_statements/$st->{id}", { totals => { grand_total => {
        amount => 4321, amount_formatted => '43.21', currency => 'USD', currency_symbol => '$' } } });
    my $pa = $mock->control(POST => 'billing_payment_attempts', { statement_id => $open[0]{id}, status => 'paid' });
    $mock->clear_requests;
    is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'full sync succeeds');
    %asked = map { (m{^/v1/billing/statements/([^/]+)/payment_attempts$} ? ($1 => 1) : ()) }
        map { $_->{path} } @{ $mock->requests('/v1/billing/statements/') };
    is_deeply([sort keys %asked], [sorted($open[0]{id}, $st->{id})], 'but those of a changed statement and of one with a new attempt');
    is(q1("SELECT grand_total FROM clerk.billing_statements WHERE id = '$st->{id}'"), 4321, 'the statement changed');
    is(q1("SELECT statement_id FROM clerk.billing_payment_attempts WHERE id = '$pa->{id}'"), $open[0]{id},
       'the new payment attempt is stored');

    # changes while a run lists: a statement (with an attempt) and a
    # subscription item created as the statements are asked for
    my @before = mock_ids('billing_statements');
    $mock->add_trigger(path => '^/v1/billing/statements\?', on_request => 1,
                       create_billing_statements => [{ amount => 100 }]);
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'a run during which Clerk changes succeeds');
    my @after = mock_ids('billing_statements');
    is(scalar @after, @before + 1, 'the mock created a statement mid-run');
    my %old = map { $_ => 1 } @before;
    my ($new) = grep { !$old{$_} } @after;
    is(q1("SELECT count(*) FROM clerk.billing_statements WHERE id = '$new'"), 1, 'the statement created mid-run is stored');
    my @new_pa = map { $_->{id} } objects("/billing/statements/$new/payment_attempts?paginated=true");
    is(q1("SELECT count(*) FROM clerk.billing_payment_attempts WHERE statement_id = '$new' AND deleted_at IS NULL"),
       scalar @new_pa, 'and its payment attempts');
    $mock->clear_triggers;
}

# ---- changes and deletions between runs ----
{
    my ($item) = grep { $_->{status} eq 'active' && $_->{plan}{fee}{amount} > 0 } objects($LIST{billing_subscription_items});
    $mock->control(PATCH => "billing_subscription_items/$item->{id}",
                   { status => 'canceled', canceled_at => 1_900_000_000_000, updated_at => 1_900_000_000_000 });
    my $wl = $mock->control(POST => 'waitlist_entries', { email_address => "waiting-$tag\@example.com" });
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'incremental sync succeeds');
    is(q1("SELECT status || '|' || (canceled_at IS NOT NULL) FROM clerk.billing_subscription_items WHERE id = '$item->{id}'"),
       'canceled|true', 'a subscription item canceled since');
    is(q1("SELECT email_address FROM clerk.waitlist_entries WHERE id = '$wl->{id}'"), "waiting-$tag\@example.com",
       'a waitlist entry created since');

    # gone: a plan and a waitlist entry (no GET of one: the complete listing's word),
    # a statement (confirmed by its 404, its payment attempts with it), a payment attempt
    my ($plan) = grep { !$_->{is_default} } objects($LIST{billing_plans});
    my @statements = objects($LIST{billing_statements});
    # a payment attempt's deletion is seen where its statement is asked: an open one
    my %attempts = map { my $id = $_->{id}; ($id => [objects("/billing/statements/$id/payment_attempts?paginated=true")]) }
        @statements;
    my ($st2) = grep { $_->{status} eq 'open' && @{ $attempts{$_->{id}} } } @statements;
    my ($st) = grep { $_->{id} ne $st2->{id} && @{ $attempts{$_->{id}} } } @statements;
    my @st_attempts = map { $_->{id} } @{ $attempts{$st->{id}} };
    my $pa2 = $attempts{$st2->{id}}[0];
    $mock->control(DELETE => "billing_plans/$plan->{id}");
    $mock->control(DELETE => "waitlist_entries/$wl->{id}");
    $mock->control(DELETE => "billing_statements/$st->{id}");
    $mock->control(DELETE => "billing_payment_attempts/$pa2->{id}");
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'incremental sync succeeds');
    is(q1("SELECT deleted_at IS NULL FROM clerk.billing_plans WHERE id = '$plan->{id}'"), 't',
       'an incremental run deletes nothing');
    $mock->clear_requests;
    is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'full sync succeeds');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.billing_plans WHERE id = '$plan->{id}'"), 't', 'a deleted plan is soft-deleted');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.waitlist_entries WHERE id = '$wl->{id}'"), 't',
       'a deleted waitlist entry is soft-deleted');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.billing_statements WHERE id = '$st->{id}'"), 't',
       'a deleted statement is soft-deleted');
    ok(grep({ $_->{path} eq "/v1/billing/statements/$st->{id}" } @{ $mock->requests('/v1/billing/statements/') }),
       'after Clerk confirmed it gone (GET of one statement)');
    is(q1("SELECT count(*) FROM clerk.billing_payment_attempts WHERE statement_id = '$st->{id}' AND deleted_at IS NULL"), 0,
       "its payment attempts went with it");
    ok(@st_attempts > 0, 'it had payment attempts');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.billing_payment_attempts WHERE id = '$pa2->{id}'"), 't',
       'a payment attempt gone from the listing of its (open) statement is soft-deleted');
    for my $t (sort(keys %LIST), 'billing_payment_attempts') {
        is_deeply([stored_ids($t)], [mock_ids($t)], "$t: the live rows are what Clerk has");
    }
}

# ---- an item in two shapes: what one leaves out, the other keeps ----
{
    my ($item) = grep { $_->{status} eq 'canceled' && $_->{canceled_at} } objects($LIST{billing_subscription_items});
    ok($item, 'the mock has a canceled item with canceled_at');
    my $sub_id = "csub_merge_$tag";
    # the item's event: no canceled_at, no price_id, and a subscription_id the listing does not have
    my %ev = (object => 'subscription_item', id => $item->{id}, status => 'canceled', is_free_trial => JSON::PP::false,
              created_at => $item->{created_at}, updated_at => $item->{updated_at}, period_start => $item->{period_start},
              period_end => $item->{period_end}, interval => $item->{plan_period}, plan_id => $item->{plan_id},
              plan => { id => $item->{plan_id}, slug => $item->{plan}{slug}, name => $item->{plan}{name},
                        is_recurring => JSON::PP::true, amount => $item->{plan}{fee}{amount}, currency => 'USD' },
              payer => { %{ $item->{payer} }, organization_id => $item->{payer}{organization_id} // '' },
              subscription_id => $sub_id);
    is(q1(webhook_sql($SECRET, 'subscriptionItem.canceled', \%ev)), 'subscriptionItem.canceled', 'the item\'s event');
    is(q1("SELECT concat_ws('|', subscription_id, canceled_at IS NOT NULL, price_id) FROM clerk.billing_subscription_items WHERE id = '$item->{id}'"),
       "$sub_id|t|$item->{price_id}", 'the event adds its subscription_id and keeps the listed canceled_at and price_id');
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'incremental sync succeeds');
    is(q1("SELECT concat_ws('|', subscription_id, canceled_at IS NOT NULL, raw ->> 'object') FROM clerk.billing_subscription_items WHERE id = '$item->{id}'"),
       "$sub_id|t|commerce_subscription_item", 'the listing keeps the subscription_id the event brought');
    my $synced = q1("SELECT synced_at FROM clerk.billing_subscription_items WHERE id = '$item->{id}'");
    is(q1('SELECT status FROM clerk_sync_changes()'), 'succeeded', 'incremental sync succeeds');
    is(q1("SELECT synced_at = '$synced' FROM clerk.billing_subscription_items WHERE id = '$item->{id}'"), 't',
       'and the next listing of the unchanged item writes nothing');
}

# ---- a subscription item and a price gone; a row a webhook wrote during the run stays ----
{
    my ($item) = grep { $_->{status} eq 'ended' } objects($LIST{billing_subscription_items});
    my ($price) = grep { !$_->{is_default} } objects($LIST{billing_prices});
    ok($item && $price, 'the mock has an ended item and a custom price');
    $mock->control(DELETE => "billing_subscription_items/$item->{id}");
    $mock->control(DELETE => "billing_prices/$price->{id}");
    # as if a webhook had written it after the run began: synced later than its start
    q1(qq{INSERT INTO clerk.billing_subscription_items (id, organization_id, status, raw, synced_at)
          VALUES ('csub_item_late_$tag', 'org_late_$tag', 'active', '{}', now() + interval '1 hour')});
    is(q1('SELECT status FROM clerk_sync_all()'), 'succeeded', 'full sync succeeds');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.billing_subscription_items WHERE id = '$item->{id}'"), 't',
       'a subscription item gone from the complete listing is soft-deleted');
    is(q1("SELECT deleted_at IS NOT NULL FROM clerk.billing_prices WHERE id = '$price->{id}'"), 't',
       'a price gone from the complete listing is soft-deleted');
    is(q1("SELECT deleted_at IS NULL FROM clerk.billing_subscription_items WHERE id = 'csub_item_late_$tag'"), 't',
       'a row written after the run began is not the listing\'s to delete');
    q1("DELETE FROM clerk.billing_subscription_items WHERE id = 'csub_item_late_$tag'");
}

# ---- clerk_sync.entities, and an instance without Clerk Billing ----
{
    $mock->clear_requests;
    is(q1(q{SET clerk_sync.entities = 'billing_plans'; SELECT status FROM clerk_sync_changes()}), 'succeeded',
       'a sync with clerk_sync.entities = billing_plans');
    my @paths = map { $_->{path} } @{ $mock->requests('/v1/(billing|waitlist)') };
    ok(@paths > 0 && !grep({ $_ ne '/v1/billing/plans' } @paths), 'lists the plans only') or diag explain \@paths;

    $mock->configure(endpoint_errors => { billing => 403, waitlist_entries => 404 });
    my $before = q1(q{SELECT count(*) FROM clerk.billing_subscription_items WHERE deleted_at IS NULL});
    my ($out, $err) = ('', '');
    $node->psql('postgres', 'SELECT status FROM clerk_sync_all()', stdout => \$out, stderr => \$err);
    is($out, 'succeeded', 'a full sync of an instance without Clerk Billing succeeds');
    like($err, qr/billing_subscription_items: skipped, the instance does not have this endpoint/,
         'with a notice that billing is skipped');
    like($err, qr/waitlist_entries: skipped/, 'and the waitlist');
    like($err, qr/billing_payment_attempts: skipped/, 'and the payment attempts');
    is(q1(q{SELECT count(*) FROM clerk.billing_subscription_items WHERE deleted_at IS NULL}), $before,
       'nothing is deleted');
    like(q1(q{SELECT stats -> 'skipped' ->> 'billing_plans' FROM clerk.sync_runs ORDER BY id DESC LIMIT 1}),
         qr/403 or 404/, 'the run records why');
    $mock->configure(endpoint_errors => {});
}

# ---- webhooks: every event type, the spec's shapes, the ordering rule ----

sub hook { my ($type, $data, %o) = @_; return q1(webhook_sql($SECRET, $type, $data, %o)) }
sub outcome { return q1(q{SELECT outcome FROM clerk.webhook_deliveries ORDER BY received_at DESC, svix_id DESC LIMIT 1}) }
my $t0 = 1_800_000_000_000;
my %payer = (object => 'commerce_payer', id => "cpayer_hook_$tag", user_id => "user_hook_$tag",
             first_name => 'Test', last_name => 'User', email => 'test@example.com',
             organization_id => '', organization_name => '', image_url => 'https://img.example.com/x',
             created_at => $t0, updated_at => $t0);
my %plan = (id => "cplan_hook_$tag", slug => 'pro-plan', name => 'Pro Plan', is_recurring => JSON::PP::true,
            amount => 2000, currency => 'USD');
my %item = (object => 'subscription_item', id => "csub_item_hook_$tag", status => 'active',
            is_free_trial => JSON::PP::false, created_at => $t0, updated_at => $t0, period_start => $t0,
            period_end => $t0 + 30 * 86_400_000, interval => 'month', plan_id => $plan{id}, plan => \%plan,
            payer => \%payer, subscription_id => "csub_hook_$tag");

is(hook('subscriptionItem.created', \%item), 'subscriptionItem.created', 'subscriptionItem.created is handled');
is(q1("SELECT concat_ws('|', user_id, coalesce(organization_id, '-'), subscription_id, plan_slug, amount, plan_period)
         FROM clerk.billing_subscription_items WHERE id = '$item{id}'"),
   "user_hook_$tag|-|csub_hook_$tag|pro-plan|2000|month",
   'stored: the payer\'s organization_id "" is no organization');
my $n = 1;
for my $ev (qw(updated active canceled upcoming ended abandoned incomplete pastDue freeTrialEnding)) {
    (my $status = $ev) =~ s/pastDue/past_due/;
    $status = 'active' if $ev =~ /^(updated|freeTrialEnding)$/;
    is(hook("subscriptionItem.$ev", { %item, status => $status, updated_at => $t0 + 1000 * $n++ }),
       "subscriptionItem.$ev", "subscriptionItem.$ev is handled");
    is(q1("SELECT status FROM clerk.billing_subscription_items WHERE id = '$item{id}'"), $status,
       "subscriptionItem.$ev: the item's status");
}
hook('subscriptionItem.canceled', { %item, status => 'canceled', updated_at => $t0 + 500 });
is(outcome(), 'stale', 'an older item event delivered late is stale');
is(q1("SELECT status FROM clerk.billing_subscription_items WHERE id = '$item{id}'"), 'active',
   'and does not overwrite the newer one');

# subscription.*: the subscription's items, nested (commerce_subscription_item, no payer, subscription_id null)
my %sub = (object => 'commerce_subscription', id => "csub_sub_$tag", status => 'active', active_at => $t0,
           canceled_at => undef, created_at => $t0, ended_at => undef, past_due_at => undef, updated_at => $t0,
           latest_payment_id => "cpa_sub_$tag", payer_id => "cpayer_sub_$tag",
           payer => { %payer, id => "cpayer_sub_$tag", user_id => undef, organization_id => "org_sub_$tag",
                      organization_name => 'Sub Org' },
           payment_source_id => "cps_sub_$tag");
my @sub_items = map { { object => 'commerce_subscription_item', id => "csub_item_sub_${_}_$tag", status => 'active',
                        is_free_trial => JSON::PP::false, created_at => $t0, updated_at => $t0, period_start => $t0,
                        period_end => undef, interval => 'month', plan_id => $plan{id}, plan => \%plan,
                        subscription_id => undef } } (1, 2);
$n = 0;
for my $ev (qw(created updated active pastDue)) {
    my $status = $ev eq 'pastDue' ? 'past_due' : 'active';
    is(hook("subscription.$ev", { %sub, status => $status, updated_at => $t0 + 1000 * $n,
                                  items => [map { { %$_, status => $status, updated_at => $t0 + 1000 * $n } } @sub_items] }),
       "subscription.$ev", "subscription.$ev is handled");
    $n++;
}
is(q1("SELECT string_agg(concat_ws('|', id, organization_id, subscription_id, payer_id, status), ',' ORDER BY id)
         FROM clerk.billing_subscription_items WHERE subscription_id = '$sub{id}'"),
   join(',', map { "csub_item_sub_${_}_$tag|org_sub_$tag|$sub{id}|cpayer_sub_$tag|past_due" } (1, 2)),
   'a subscription event writes each of its items, payer and subscription from the subscription');

# a subscription's items without an id, or twice, do not cost the others; an older subscription event is stale
is(hook('subscription.updated', { %sub, status => 'active', updated_at => $t0 + 9000,
                                  items => [ { %{ $sub_items[0] }, status => 'active', updated_at => $t0 + 9000 },
                                             { %{ $sub_items[0] }, status => 'active', updated_at => $t0 + 9000 },
                                             { %{ $sub_items[1] }, id => undef, status => 'ended', updated_at => $t0 + 9000 },
                                             'not an item' ] }),
   'subscription.updated', 'a subscription event with an item twice and one without an id is handled');
is(outcome(), 'updated', 'and applied');
is(q1("SELECT string_agg(status, ',' ORDER BY id) FROM clerk.billing_subscription_items WHERE subscription_id = '$sub{id}'"),
   'active,past_due', 'the good item is written once, the others are left out');
hook('subscription.updated', { %sub, status => 'canceled', updated_at => $t0 + 100,
                               items => [ { %{ $sub_items[0] }, status => 'canceled', updated_at => $t0 + 100 } ] });
is(outcome(), 'stale', 'an older subscription event is stale');
is(q1("SELECT status FROM clerk.billing_subscription_items WHERE id = '$sub_items[0]{id}'"), 'active',
   'and does not overwrite its newer item');

# paymentAttempt.*: data without "object", totals instead of an amount
my %pa = (id => "pa_hook_$tag", instance_id => 'ins_test_fake', payment_id => "cpa_hook_$tag",
          statement_id => "stmt_hook_$tag", gateway_external_id => 'pi_test_fake', status => 'pending',
          created_at => $t0, updated_at => $t0, paid_at => undef, failed_at => undef, failed_reason => undef,
          billing_date => $t0, charge_type => 'recurring', payee => { id => 'cpayee_test_fake' }, payer => \%payer,
          totals => { grand_total => { amount => 2200, amount_formatted => '$22.00', currency => 'USD', currency_symbol => '$' } },
          payment_source => { id => 'cps_test_fake' }, subscription_items => [{ id => $item{id} }]);
is(hook('paymentAttempt.created', \%pa), 'paymentAttempt.created', 'paymentAttempt.created is handled');
is(hook('paymentAttempt.updated', { %pa, status => 'paid', paid_at => $t0 + 2000, updated_at => $t0 + 2000 }),
   'paymentAttempt.updated', 'paymentAttempt.updated is handled');
is(q1("SELECT concat_ws('|', status, amount, currency, subscription_item_id, statement_id) FROM clerk.billing_payment_attempts WHERE id = '$pa{id}'"),
   "paid|2200|USD|$item{id}|stmt_hook_$tag", 'a payment attempt from its events');
hook('paymentAttempt.updated', { %pa, status => 'failed', updated_at => $t0 + 1000 });
is(q1("SELECT status FROM clerk.billing_payment_attempts WHERE id = '$pa{id}'"), 'paid', 'an older attempt event changes nothing');

# waitlistEntry.*: object "waitlistEntry"
my %wl = (object => 'waitlistEntry', id => "wle_hook_$tag", email_address => "wait-$tag\@example.com",
          status => 'pending', is_locked => JSON::PP::false, created_at => $t0, updated_at => $t0, invitation => undef);
is(hook('waitlistEntry.created', \%wl), 'waitlistEntry.created', 'waitlistEntry.created is handled');
is(hook('waitlistEntry.updated', { %wl, status => 'invited', updated_at => $t0 + 1000,
                                   invitation => { object => 'invitation', id => "inv_wl_$tag" } }),
   'waitlistEntry.updated', 'waitlistEntry.updated is handled');
is(q1("SELECT status || '|' || invitation_id FROM clerk.waitlist_entries WHERE id = '$wl{id}'"), "invited|inv_wl_$tag",
   'a waitlist entry from its events');
hook('waitlistEntry.updated', { %wl, status => 'rejected', updated_at => $t0 + 500 });
is(outcome(), 'stale', 'an older waitlist event is stale');
is(q1("SELECT status FROM clerk.waitlist_entries WHERE id = '$wl{id}'"), 'invited', 'and changes nothing');

# the webhook spec's own example payloads (test/billing_events.json), each
# delivered as Clerk sends it, alone (its rows removed before), then in order
{
    open my $fh, '<:raw', 'test/billing_events.json' or die "test/billing_events.json: $!";
    my $spec = JSON::PP->new->utf8->decode(do { local $/; <$fh> });
    close $fh;
    my $json = JSON::PP->new->utf8->canonical;
    my %table = (subscription => 'billing_subscription_items', subscriptionItem => 'billing_subscription_items',
                 paymentAttempt => 'billing_payment_attempts', waitlistEntry => 'waitlist_entries');
    is(scalar @{ $spec->{events} }, 17, 'the spec has 17 examples of these events');
    my @rows;
    for my $ev (@{ $spec->{events} }) {
        my ($family) = $ev->{type} =~ /^([^.]+)\./;
        my $d = $ev->{body}{data};
        my @items = $family eq 'subscription' ? @{ $d->{items} } : ($d);
        q1("DELETE FROM clerk.$table{$family} WHERE id IN (" . join(', ', map { sql_literal($_->{id}) } @items) . ')');
        is(q1(webhook_sql($SECRET, $ev->{type}, undef, body => $json->encode($ev->{body}))), $ev->{type},
           "the spec's $ev->{type} example is accepted");
        my ($want, $got);
        if ($family eq 'subscription' || $family eq 'subscriptionItem') {
            my $payer = $d->{payer};
            $want = join ',', map { join '|', $_->{id}, $_->{status}, $payer->{user_id}, '-',
                                    $family eq 'subscription' ? $d->{id} : $d->{subscription_id}, $_->{plan}{slug}, $_->{plan}{amount} } @items;
            $got = q1("SELECT string_agg(concat_ws('|', id, status, user_id, coalesce(organization_id, '-'), subscription_id, plan_slug, amount), ',' ORDER BY id)
                         FROM clerk.billing_subscription_items WHERE id IN (" . join(', ', map { sql_literal($_->{id}) } @items) . ')');
        }
        elsif ($family eq 'paymentAttempt') {
            $want = join '|', $d->{status}, $d->{totals}{grand_total}{amount}, $d->{statement_id}, $d->{payer}{user_id},
                $d->{subscription_items}[0]{id};
            $got = q1("SELECT concat_ws('|', status, amount, statement_id, user_id, subscription_item_id) FROM clerk.billing_payment_attempts WHERE id = " . sql_literal($d->{id}));
        }
        else {
            $want = join '|', $d->{status}, $d->{email_address}, $d->{invitation} ? $d->{invitation}{id} : '-';
            $got = q1("SELECT concat_ws('|', status, email_address, coalesce(invitation_id, '-')) FROM clerk.waitlist_entries WHERE id = " . sql_literal($d->{id}));
        }
        is($got, $want, "the spec's $ev->{type} example: the stored row");
    }
    # in order, each family's examples: the newest updated_at wins, an older one is stale
    q1("DELETE FROM clerk.billing_subscription_items WHERE id = 'csub_item_2g7np7Hrk0SN6kj5EDMLDaKNL0S'");
    for my $t (qw(subscriptionItem.active subscriptionItem.ended subscriptionItem.canceled)) {
        my ($ev) = grep { $_->{type} eq $t } @{ $spec->{events} };
        q1(webhook_sql($SECRET, $t, undef, body => $json->encode($ev->{body})));
    }
    is(q1("SELECT status FROM clerk.billing_subscription_items WHERE id = 'csub_item_2g7np7Hrk0SN6kj5EDMLDaKNL0S'"), 'ended',
       "the spec's examples in order: canceled (older) after ended does not undo it");
    is(outcome(), 'stale', 'and is recorded stale');
}

# the audit names the billing entities
is(q1(qq{SELECT count(*) FROM clerk.audit_logs WHERE action = 'webhook.subscription.created' AND entity_type = 'billing_subscription_items'
           AND entity_id = '$sub{id}' AND organization_id = 'org_sub_$tag'}), 1,
   'the audit records a subscription event with its payer organization');

# the mock's own signed events, as Clerk sends them
{
    $mock->control(DELETE => 'events');
    my ($item2) = grep { $_->{status} eq 'active' } objects($LIST{billing_subscription_items});
    $mock->control(PATCH => "billing_subscription_items/$item2->{id}", { status => 'past_due', updated_at => $t0 + 10 ** 9 });
    my $w = $mock->control(POST => 'waitlist_entries', { email_address => "mock-$tag\@example.com" });
    my ($st) = objects($LIST{billing_statements});
    my $pa3 = $mock->control(POST => 'billing_payment_attempts', { statement_id => $st->{id}, status => 'failed' });
    my $events = $mock->control(GET => 'events');
    is_deeply([sort map { $_->{type} } @$events],
              [sort 'subscriptionItem.pastDue', 'waitlistEntry.created', 'paymentAttempt.created'],
              'the mock signs an event for each change');
    for my $e (@$events) {
        is(q1(sprintf('SELECT clerk_handle_webhook(%s, %s, %s, %s)', map { sql_literal($_) }
                      @$e{qw(body svix_id svix_timestamp svix_signature)})), $e->{type}, "the mock's $e->{type} is applied");
    }
    is(q1("SELECT status FROM clerk.billing_subscription_items WHERE id = '$item2->{id}'"), 'past_due', 'subscriptionItem.pastDue applied');
    is(q1("SELECT count(*) FROM clerk.waitlist_entries WHERE id = '$w->{id}'"), 1, 'waitlistEntry.created applied');
    is(q1("SELECT status FROM clerk.billing_payment_attempts WHERE id = '$pa3->{id}'"), 'failed', 'paymentAttempt.created applied');
}

# ---- the summary's findings ----
{
    my @orgs = split /\n/, q1(q{SELECT id FROM clerk.organizations WHERE deleted_at IS NULL ORDER BY id});
    q1(qq{INSERT INTO clerk.billing_subscription_items (id, organization_id, plan_id, status, period_end, raw) VALUES
           ('f_dup1_$tag', '$orgs[0]', 'cplan_dup_$tag', 'active', now() + interval '1 day', '{}'),
           ('f_dup2_$tag', '$orgs[0]', 'cplan_dup_$tag', 'active', now() + interval '1 day', '{}'),
           ('f_past_$tag', '$orgs[1]', 'cplan_past_$tag', 'active', now() - interval '1 day', '{}'),
           ('f_orphan_$tag', 'org_nowhere_$tag', 'cplan_x_$tag', 'active', NULL, '{}'),
           ('f_orphan_user_$tag', NULL, 'cplan_x_$tag', 'active', NULL, '{}')});
    my $f = decode_json(q1(q{SELECT findings FROM clerk_database_summary() WHERE entity = 'billing_subscription_items'}));
    my $g = decode_json(q1(q{SELECT jsonb_build_object(
        'dups', (SELECT count(*) FROM (SELECT 1 FROM clerk.billing_subscription_items WHERE deleted_at IS NULL AND status = 'active'
                  GROUP BY coalesce(organization_id, user_id, payer_id), plan_id HAVING count(*) > 1) d))}));
    cmp_ok($f->{payers_with_duplicate_active_items}, '>=', 1, 'a payer with two active items for one plan is found');
    is($f->{payers_with_duplicate_active_items}, $g->{dups}, 'and counted once');
    cmp_ok($f->{active_past_period_end}, '>=', 1, 'an active item past its period end is found');
    cmp_ok($f->{payer_missing_or_deleted}, '>=', 2, 'items whose payer is missing are found');
    my @entities = split /\n/, q1(q{SELECT entity FROM clerk_database_summary() ORDER BY entity});
    for my $t (qw(billing_plans billing_prices billing_subscription_items billing_statements billing_payment_attempts waitlist_entries)) {
        ok(grep({ $_ eq $t } @entities), "the summary reports $t");
    }
    q1(qq{DELETE FROM clerk.billing_subscription_items WHERE id LIKE 'f\\_%\\_$tag'});
}

done_testing();
