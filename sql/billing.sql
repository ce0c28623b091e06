-- Clerk Billing and the waitlist: the mapping of every shape Clerk sends
-- (the API's objects and the webhook spec's own example payloads, with their
-- oddities), exact amounts, the plan and feature checks of the session token
-- (v1 and v2) and of the synced data, and doc/row-level-security.md's plan
-- example as written.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;

-- every new function: STABLE, PARALLEL SAFE, STRICT where it takes arguments, not for PUBLIC
SELECT p.oid::regprocedure AS function, p.provolatile, p.proparallel, p.proisstrict,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'clerk'::regnamespace
   AND (p.proname IN ('has_plan', 'has_feature', 'active_plan', 'payer_has_feature', 'amount_or_null')
        OR p.proname LIKE 'map\_billing\_%' OR p.proname = 'map_waitlist_entries')
 ORDER BY p.oid::regprocedure::text;

-- the tables: nobody but their owner and the writer has a right on them; indexed on the payer and the plan
SELECT c.relname,
       (SELECT array_agg(DISTINCT a.grantee::regrole::text) FROM aclexplode(c.relacl) a
         WHERE a.grantee <> c.relowner) AS grantees,
       (SELECT string_agg(pg_get_indexdef(i.indexrelid), E'\n' ORDER BY 1)
          FROM pg_index i WHERE i.indrelid = c.oid AND NOT i.indisprimary) AS indexes
  FROM pg_class c
 WHERE c.relnamespace = 'clerk'::regnamespace AND c.relkind = 'r'
   AND (c.relname LIKE 'billing\_%' OR c.relname = 'waitlist_entries')
 ORDER BY 1;

-- ---- plans and prices, as listed ----
SELECT id, name, slug, for_payer_type, is_default, is_recurring, publicly_visible, has_base_fee,
       currency, fee, annual_monthly_fee, annual_fee, free_trial_enabled, free_trial_days, features,
       created_at, updated_at
  FROM clerk.map_billing_plans('{"data": [
    {"object": "commerce_plan", "id": "cplan_pro", "name": "Pro", "slug": "pro", "description": "For teams",
     "product_id": "cprod_1", "is_default": false, "is_recurring": true, "publicly_visible": true,
     "has_base_fee": true, "for_payer_type": "org", "avatar_url": null,
     "fee": {"amount": 2000, "amount_formatted": "20.00", "currency": "USD", "currency_symbol": "$"},
     "annual_monthly_fee": {"amount": 1800, "amount_formatted": "18.00", "currency": "USD", "currency_symbol": "$"},
     "annual_fee": {"amount": 21600, "amount_formatted": "216.00", "currency": "USD", "currency_symbol": "$"},
     "free_trial_enabled": true, "free_trial_days": 14,
     "features": [{"object": "feature", "id": "feat_1", "name": "Reports", "description": null, "slug": "reports", "avatar_url": null},
                  {"object": "feature", "id": "feat_2", "name": "SSO", "description": null, "slug": "sso", "avatar_url": null},
                  "not a feature", {"object": "feature", "id": "feat_3"}]},
    {"object": "commerce_plan", "id": "cplan_free", "name": "Free", "slug": "free_org", "description": null,
     "product_id": "cprod_1", "is_default": true, "is_recurring": false, "publicly_visible": true,
     "has_base_fee": false, "for_payer_type": "org", "avatar_url": null,
     "fee": {"amount": 0, "amount_formatted": "0.00", "currency": "USD", "currency_symbol": "$"},
     "annual_monthly_fee": null, "annual_fee": null, "free_trial_enabled": false, "free_trial_days": null}],
    "total_count": 2}');

-- free trial days Clerk may send (int64): beyond integer, fractional, not a number
SELECT o ->> 'x' AS sent, p.free_trial_days
  FROM jsonb_array_elements('[{"id": "p1", "free_trial_days": 99999999999, "x": "99999999999"},
                              {"id": "p2", "free_trial_days": 2.5, "x": "2.5"},
                              {"id": "p3", "free_trial_days": "14", "x": "\"14\""},
                              {"id": "p4", "free_trial_days": -1, "x": "-1"}]') AS o,
       LATERAL clerk.map_billing_plans(o) AS p;

-- amounts are exact: beyond bigint, and a fraction, as Clerk may send them
SELECT id, plan_id, currency, amount, annual_monthly_amount, is_default, supported_billing_periods, created_at
  FROM clerk.map_billing_prices('[
    {"object": "commerce_price", "id": "cprice_1", "plan_id": "cplan_pro", "instance_id": "ins_1",
     "currency": "USD", "currency_symbol": "$", "amount": 2000, "annual_monthly_amount": 1800,
     "fee": null, "annual_monthly_fee": null, "description": null, "is_default": true,
     "created_at": 1716883200000, "supported_billing_periods": "both"},
    {"object": "commerce_price", "id": "cprice_2", "plan_id": "cplan_pro", "currency": "JPY",
     "amount": 123456789012345678901234567890, "annual_monthly_amount": 19.99, "is_default": false,
     "created_at": 1716883200001, "supported_billing_periods": "month"},
    {"object": "commerce_price", "id": "cprice_3", "plan_id": "cplan_pro", "currency": "USD",
     "amount": "2000", "annual_monthly_amount": {"amount": "x"}, "created_at": 1716883200002}]');
SELECT clerk.amount_or_null('12.5'), clerk.amount_or_null('{"amount": 7}'), clerk.amount_or_null('"7"'),
       clerk.amount_or_null('null'), clerk.amount_or_null(NULL);

-- ---- subscription items: listed, sent alone, nested in a subscription ----

-- as GET /billing/subscription_items lists it (commerce_subscription_item, a money lifetime_paid)
SELECT id, subscription_id, payer_id, user_id, organization_id, plan_id, plan_slug, price_id, status,
       plan_period, is_free_trial, amount, currency, lifetime_paid, period_start, period_end, canceled_at
  FROM clerk.map_billing_subscription_items('{"data": [
    {"object": "commerce_subscription_item", "id": "csub_item_api", "instance_id": "ins_1", "status": "active",
     "plan_id": "cplan_pro", "price_id": "cprice_1", "plan_period": "month", "payer_id": "cpayer_org",
     "payer": {"object": "commerce_payer", "id": "cpayer_org", "instance_id": "ins_1", "user_id": null,
               "organization_id": "org_acme", "organization_name": "Acme"},
     "plan": {"object": "commerce_plan", "id": "cplan_pro", "slug": "pro",
              "fee": {"amount": 2000, "amount_formatted": "20.00", "currency": "USD", "currency_symbol": "$"}},
     "lifetime_paid": {"amount": 6000, "amount_formatted": "60.00", "currency": "USD", "currency_symbol": "$"},
     "is_free_trial": false, "period_start": 1716883200000, "period_end": 1719561600000,
     "canceled_at": null, "past_due_at": null, "ended_at": null,
     "created_at": 1716883200000, "updated_at": 1716883200000}], "total_count": 1}');

-- the webhook spec's subscription.created example: data is the subscription; its
-- items (commerce_subscription_item, nested) have no payer and subscription_id
-- null, both taken from the subscription; the payer's organization_id "" is NULL
SELECT id, subscription_id, payer_id, user_id, organization_id, plan_id, plan_slug, status, plan_period,
       is_free_trial, amount, currency, period_start, period_end,
       raw -> 'payer' ->> 'id' AS raw_payer, raw ->> 'subscription_id' AS raw_subscription
  FROM clerk.map_billing_subscription_items('[{
    "object": "commerce_subscription", "id": "csub_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "status": "active",
    "active_at": 1716883200000, "canceled_at": null, "created_at": 1716883200000, "ended_at": null,
    "past_due_at": null, "updated_at": 1716883200000, "latest_payment_id": "cpa_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "payer_id": "cpayer_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "payer": {"object": "commerce_payer", "id": "cpayer_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
              "user_id": "user_34D368EufHwugfYh4yyGNEheM0S", "first_name": "Test", "last_name": "User",
              "email": "test@example.com", "organization_id": "", "organization_name": "",
              "image_url": "https://img.clerk.com/xxxxxx", "created_at": 1716883200000, "updated_at": 1716883200000},
    "payment_source_id": "cps_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "items": [{"object": "commerce_subscription_item", "id": "csub_item_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
               "status": "active", "is_free_trial": false, "created_at": 1716883200000, "updated_at": 1716883200000,
               "period_start": 1716883200000, "period_end": 1719561600000, "interval": "month",
               "plan_id": "cplan_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
               "plan": {"id": "cplan_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "slug": "pro-plan", "name": "Pro Plan",
                        "is_recurring": true, "amount": 2000, "currency": "USD",
                        "unit_prices": [{"name": "seats", "block_size": 1, "tiers": [{"starts_at_block": 1,
                          "ends_after_block": 5, "amount_per_block": 0, "currency": "USD"}]}]},
               "seats": {"quantity": 5}, "subscription_id": null},
              "not an item"]}]');

-- the spec's subscriptionItem.active example: object "subscription_item" at the top level
SELECT id, subscription_id, payer_id, user_id, organization_id, plan_id, plan_slug, status, plan_period,
       amount, currency, period_end
  FROM clerk.map_billing_subscription_items('{
    "object": "subscription_item", "id": "csub_item_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "status": "active",
    "is_free_trial": false, "created_at": 1716883200000, "updated_at": 1716883200000,
    "period_start": 1716883200000, "period_end": null, "interval": "month",
    "plan_id": "cplan_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "plan": {"id": "cplan_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "slug": "free-plan", "name": "Free Plan",
             "is_recurring": false, "amount": 0, "currency": "USD"},
    "seats": {"quantity": 5},
    "payer": {"object": "commerce_payer", "id": "cpayer_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
              "user_id": "user_34D368EufHwugfYh4yyGNEheM0S", "first_name": "Test", "last_name": "User",
              "email": "test@example.com", "organization_id": "", "organization_name": "",
              "image_url": "https://img.clerk.com/xxxxxx", "created_at": 1716883200000, "updated_at": 1716883200000},
    "subscription_id": "csub_2g7np7Hrk0SN6kj5EDMLDaKNL0S"}');

-- ---- statements and payment attempts ----
SELECT id, payer_id, user_id, organization_id, status, currency, grand_total, statement_at, created_at
  FROM clerk.map_billing_statements('[{"object": "commerce_statement", "id": "stmt_1", "instance_id": "ins_1",
    "timestamp": 1719561600000, "status": "closed",
    "payer": {"object": "commerce_payer", "id": "cpayer_org", "instance_id": "ins_1", "organization_id": "org_acme"},
    "totals": {"grand_total": {"amount": 2200, "amount_formatted": "22.00", "currency": "USD", "currency_symbol": "$"}},
    "groups": []}]');

-- listed: a commerce_payment with its amount
SELECT id, payment_id, statement_id, subscription_item_id, payer_id, user_id, organization_id, status,
       charge_type, amount, currency, paid_at, failed_at
  FROM clerk.map_billing_payment_attempts('{"data": [{"object": "commerce_payment", "id": "cpa_1", "payment_id": "cpay_1",
    "instance_id": "ins_1", "charge_type": "recurring", "payee_id": "cpayee_1", "payee": {},
    "payer_id": "cpayer_org", "payer": {"object": "commerce_payer", "id": "cpayer_org", "instance_id": "ins_1",
                                        "organization_id": "org_acme"},
    "subscription_item_id": "csub_item_api", "subscription_item": {},
    "amount": {"amount": 2200, "amount_formatted": "22.00", "currency": "USD", "currency_symbol": "$"},
    "payment_method_id": "cpm_1", "payment_method": {}, "statement_id": "stmt_1", "gateway_external_id": null,
    "gateway_external_url": null, "status": "paid", "paid_at": 1719561600000, "failed_at": null,
    "created_at": 1719561600000, "updated_at": 1719561600000}], "total_count": 1}');

-- the spec's paymentAttempt.created example: no "object", totals instead of an amount, items in a list
SELECT id, payment_id, statement_id, subscription_item_id, payer_id, user_id, organization_id, status,
       charge_type, amount, currency, paid_at, created_at, raw ? 'object' AS has_object
  FROM clerk.map_billing_payment_attempts('{
    "id": "pa_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "instance_id": "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "payment_id": "cpa_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "statement_id": "stmt_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "gateway_external_id": "pi_1A2B3C4D5E6F7G8H9I0J1K2L", "status": "pending",
    "created_at": 1716883200000, "updated_at": 1716883200000, "paid_at": null, "failed_at": null,
    "failed_reason": null, "billing_date": 1716883200000, "charge_type": "recurring",
    "payee": {"id": "cpayee_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "gateway_type": "stripe",
              "gateway_external_id": "acct_1A2B3C4D5E6F7G8H", "gateway_status": "active"},
    "payer": {"id": "cpayer_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "image_url": "https://img.clerk.com/xxxxxx",
              "user_id": "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "first_name": "John", "last_name": "Doe",
              "email": "john.doe@acme.com"},
    "totals": {"subtotal": {"amount": 2000, "amount_formatted": "$20.00", "currency": "USD", "currency_symbol": "$"},
               "tax_total": {"amount": 200, "amount_formatted": "$2.00", "currency": "USD", "currency_symbol": "$"},
               "grand_total": {"amount": 2200, "amount_formatted": "$22.00", "currency": "USD", "currency_symbol": "$"}},
    "payment_source": {"id": "cps_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "gateway": "stripe", "payment_method": "card",
                       "status": "active", "card_type": "visa", "last4": "4242"},
    "subscription_items": [{"id": "csub_item_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "status": "active",
                            "plan_period": "month", "period_start": 1716883200000, "period_end": 1719561600000,
                            "lifetime_paid": 10000, "amount": {"amount": 2000, "amount_formatted": "$20.00",
                            "currency": "USD", "currency_symbol": "$"},
                            "plan_id": "cplan_2g7np7Hrk0SN6kj5EDMLDaKNL0S"}]}');

-- ---- the waitlist: listed (waitlist_entry) and in the spec's events (waitlistEntry) ----
SELECT id, email_address, status, is_locked, invitation_id, created_at, updated_at
  FROM clerk.map_waitlist_entries('{"data": [
    {"object": "waitlist_entry", "id": "wle_1", "email_address": "ada@example.com", "status": "pending",
     "is_locked": false, "created_at": 1716883200000, "updated_at": 1716883200000, "invitation": null},
    {"object": "waitlistEntry", "id": "wle_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "email_address": "john.doe@example.com",
     "status": "invited", "is_locked": false, "created_at": 1716883200000, "updated_at": 1716883500000,
     "invitation": {"object": "invitation", "id": "inv_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
                    "email_address": "john.doe@example.com", "status": "pending",
                    "created_at": 1716883500000, "updated_at": 1716883500000}}], "total_count": 2}');

-- ---- plans and features from the session token: v2 pla and fea ----
CREATE FUNCTION billing_read(claims text, plan text, feature text)
RETURNS TABLE (has_plan boolean, has_feature boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', claims, true);
    RETURN QUERY SELECT clerk.has_plan(plan), clerk.has_feature(feature);
END
$$;

-- no token at all, then each case
SELECT clerk.has_plan('pro'), clerk.has_feature('reports'), clerk.has_plan(NULL);
SELECT c.name, c.plan, c.feature, r.*
  FROM (VALUES
    (1, 'v2 org plan, any scope', '{"v": 2, "sub": "user_1", "pla": "u:free_user,o:pro", "fea": "o:reports,u:basic", "o": {"id": "org_1"}}', 'pro', 'reports'),
    (2, 'v2 org plan, org scope', '{"v": 2, "sub": "user_1", "pla": "u:free_user,o:pro", "fea": "o:reports,u:basic", "o": {"id": "org_1"}}', 'org:pro', 'org:reports'),
    (3, 'v2 org plan asked as the user''s', '{"v": 2, "sub": "user_1", "pla": "u:free_user,o:pro", "fea": "o:reports,u:basic", "o": {"id": "org_1"}}', 'user:pro', 'user:reports'),
    (4, 'v2 user plan, user scope', '{"v": 2, "sub": "user_1", "pla": "u:free_user,o:pro", "fea": "o:reports,u:basic"}', 'user:free_user', 'user:basic'),
    (5, 'v2 both scopes (uo)', '{"v": 2, "sub": "user_1", "pla": "uo:team", "fea": " uo:sso , o:x"}', 'org:team', 'user:sso'),
    (6, 'v2 other plan', '{"v": 2, "sub": "user_1", "pla": "u:free_user,o:pro", "fea": "o:reports"}', 'enterprise', 'sso'),
    (7, 'v2 entry without scope', '{"v": 2, "sub": "user_1", "pla": "pro", "fea": "reports"}', 'pro', 'reports'),
    (8, 'v2 empty name asked', '{"v": 2, "sub": "user_1", "pla": "o:", "fea": "o:"}', 'org:', ''),
    (9, 'v2 pla not a string', '{"v": 2, "sub": "user_1", "pla": ["o:pro"], "fea": 7}', 'pro', 'reports'),
    (10, 'v2 no pla or fea', '{"v": 2, "sub": "user_1", "o": {"id": "org_1"}}', 'pro', 'reports'),
    (11, 'v1 (no such claims)', '{"sub": "user_1", "org_id": "org_1", "pla": "o:pro", "fea": "o:reports"}', 'pro', 'reports'),
    (12, 'empty token', '{}', 'pro', 'reports'),
    (13, 'other prefix: any scope', '{"v": 2, "pla": "o:pro", "fea": "o:reports"}', 'team:pro', 'x:reports')
  ) AS c(n, name, claims, plan, feature),
  LATERAL billing_read(c.claims, c.plan, c.feature) AS r
 ORDER BY c.n;
-- a setting that is not JSON is an error (22P02), as for the other claims
\set VERBOSITY default
BEGIN;
SET LOCAL request.jwt.claims = '{"v": 2, "pla": ';
SELECT clerk.has_plan('pro');
ROLLBACK;
\set VERBOSITY terse

-- ---- plans and features from the synced data ----
INSERT INTO clerk.billing_plans (id, slug, features, raw) VALUES
    ('cplan_free', 'free_org', '{basic}', '{}'),
    ('cplan_pro', 'pro', '{basic,reports,sso}', '{}'),
    ('cplan_team', 'team', '{basic,reports}', '{}'),
    ('cplan_gone', 'legacy', '{reports}', '{}');
UPDATE clerk.billing_plans SET deleted_at = now() WHERE id = 'cplan_gone';
INSERT INTO clerk.billing_subscription_items
       (id, organization_id, user_id, plan_id, plan_slug, status, amount, period_start, period_end, raw) VALUES
    -- Acme: paid Pro, beside its free default (the paid one stands for its plan)
    ('i_acme_free', 'org_acme', NULL, 'cplan_free', NULL, 'active', 0, now() - interval '90 days', NULL, '{}'),
    ('i_acme_pro', 'org_acme', NULL, 'cplan_pro', NULL, 'active', 2000, now() - interval '10 days', now() + interval '20 days', '{}'),
    -- Globex: canceled Team, until its period ends
    ('i_globex_team', 'org_globex', NULL, 'cplan_team', NULL, 'canceled', 1000, now() - interval '10 days', now() + interval '20 days', '{}'),
    -- Initech: canceled, past its period; and an ended one
    ('i_initech_team', 'org_initech', NULL, 'cplan_team', NULL, 'canceled', 1000, now() - interval '40 days', now() - interval '10 days', '{}'),
    ('i_initech_pro', 'org_initech', NULL, 'cplan_pro', NULL, 'ended', 2000, now() - interval '70 days', now() - interval '40 days', '{}'),
    -- Umbrella: past due on Pro (still its plan), and an upcoming Team
    ('i_umbrella_pro', 'org_umbrella', NULL, 'cplan_pro', NULL, 'past_due', 2000, now() - interval '35 days', now() - interval '5 days', '{}'),
    ('i_umbrella_team', 'org_umbrella', NULL, 'cplan_team', NULL, 'upcoming', 1000, now() + interval '1 day', NULL, '{}'),
    -- Ada: a user's plan known only by the slug of an event's nested plan
    ('i_ada', NULL, 'user_ada', 'cplan_unknown', 'free_user', 'active', 0, now() - interval '5 days', NULL, '{}'),
    -- Hooli: a deleted plan's item, and a soft-deleted item
    ('i_hooli_legacy', 'org_hooli', NULL, 'cplan_gone', 'legacy', 'active', 500, now() - interval '5 days', NULL, '{}'),
    ('i_hooli_pro', 'org_hooli', NULL, 'cplan_pro', NULL, 'active', 2000, now() - interval '5 days', NULL, '{}');
UPDATE clerk.billing_subscription_items SET deleted_at = now() WHERE id = 'i_hooli_pro';

SELECT p.payer, clerk.active_plan(p.payer), clerk.payer_has_feature(p.payer, 'reports') AS reports,
       clerk.payer_has_feature(p.payer, 'sso') AS sso, clerk.payer_has_feature(p.payer, 'basic') AS basic
  FROM (VALUES ('org_acme'), ('org_globex'), ('org_initech'), ('org_umbrella'), ('user_ada'),
               ('org_hooli'), ('org_nobody'), ('')) AS p(payer)
 ORDER BY 1;
SELECT clerk.active_plan(NULL), clerk.payer_has_feature('org_acme', NULL);

-- one index scan for a payer
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT 1 FROM clerk.billing_subscription_items i WHERE coalesce(i.organization_id, i.user_id) = 'org_acme';
RESET enable_seqscan;

-- a call site reads a payer once per snapshot: a change in the same
-- transaction is seen by the next statement
BEGIN;
SELECT clerk.active_plan('org_globex');
UPDATE clerk.billing_subscription_items SET status = 'ended' WHERE id = 'i_globex_team';
SELECT clerk.active_plan('org_globex');
ROLLBACK;

-- ---- doc/row-level-security.md's plan example, as written ----

CREATE ROLE report_app NOLOGIN;

CREATE TABLE reports (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id text NOT NULL,
    title  text NOT NULL
);
CREATE INDEX reports_org_id_idx ON reports (org_id);
ALTER TABLE reports ENABLE ROW LEVEL SECURITY;

-- an organization's reports, visible to its members while its plan has the feature "reports"
CREATE POLICY reports_on_plan ON reports FOR SELECT TO report_app
    USING (clerk.is_member(org_id) AND clerk.payer_has_feature(org_id, 'reports'));

GRANT USAGE ON SCHEMA clerk TO report_app;
GRANT EXECUTE ON FUNCTION clerk.is_member(text), clerk.payer_has_feature(text, text) TO report_app;
GRANT SELECT ON reports TO report_app;

INSERT INTO reports (org_id, title) VALUES
    ('org_acme', 'Acme Q3'), ('org_globex', 'Globex Q3'), ('org_initech', 'Initech Q3'), ('org_hooli', 'Hooli Q3');

-- Ada is a member of all four; Acme is on Pro, Globex on Team until its
-- period ends, Initech's plan ended, and Hooli's plan was deleted
INSERT INTO clerk.organization_members (id, organization_id, user_id, role, raw) VALUES
    ('mem_ada_acme', 'org_acme', 'user_ada', 'org:admin', '{}'),
    ('mem_ada_globex', 'org_globex', 'user_ada', 'org:member', '{}'),
    ('mem_ada_initech', 'org_initech', 'user_ada', 'org:member', '{}'),
    ('mem_ada_hooli', 'org_hooli', 'user_ada', 'org:member', '{}');

BEGIN;
SET LOCAL ROLE report_app;
SET LOCAL request.jwt.claims = '{"sub": "user_ada", "v": 2}';
SELECT org_id, title FROM reports ORDER BY id;    -- Acme's and Globex's
COMMIT;

-- Bob is a member of none: he sees nothing
BEGIN;
SET LOCAL ROLE report_app;
SET LOCAL request.jwt.claims = '{"sub": "user_bob", "v": 2}';
SELECT org_id, title FROM reports ORDER BY id;
COMMIT;

-- report_app has no right on the synced billing tables themselves
SET ROLE report_app;
SELECT count(*) FROM clerk.billing_subscription_items;
RESET ROLE;

DROP TABLE reports;
DROP OWNED BY report_app;
DROP ROLE report_app;
DELETE FROM clerk.organization_members WHERE id LIKE 'mem\_ada\_%';
DELETE FROM clerk.billing_subscription_items;
DELETE FROM clerk.billing_plans;
