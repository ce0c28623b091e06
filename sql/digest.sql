-- clerk_digest() and clerk_hmac() are computed with libsodium and must be
-- byte-identical to pgcrypto's digest() and hmac().
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;

-- FIPS 180-4 examples: the digests are printed, and pgcrypto must agree.
CREATE TEMP TABLE fips (name text, data bytea);
INSERT INTO fips VALUES
    ('empty', ''),
    ('abc', 'abc'),
    ('448 bits', 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
    ('896 bits', 'abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu'),
    ('million a', convert_to(repeat('a', 1000000), 'UTF8'));

SELECT name, encode(clerk_digest(data, 'sha256'), 'hex') AS sha256,
       clerk_digest(data, 'sha256') = digest(data, 'sha256') AS same_as_pgcrypto
  FROM fips ORDER BY name;
SELECT name, encode(clerk_digest(data, 'sha512'), 'hex') AS sha512,
       clerk_digest(data, 'sha512') = digest(data, 'sha512') AS same_as_pgcrypto
  FROM fips ORDER BY name;

-- RFC 4231 test cases 1 to 7.  Case 5 specifies only the first 128 bits.
CREATE TEMP TABLE rfc4231 (tc int, key bytea, data bytea, sha256 text, sha512 text);
INSERT INTO rfc4231 VALUES
    (1, decode(repeat('0b', 20), 'hex'), 'Hi There',
     'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
     '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854'),
    (2, 'Jefe', 'what do ya want for nothing?',
     '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
     '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737'),
    (3, decode(repeat('aa', 20), 'hex'), decode(repeat('dd', 50), 'hex'),
     '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe',
     'fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb'),
    (4, decode('0102030405060708090a0b0c0d0e0f10111213141516171819', 'hex'), decode(repeat('cd', 50), 'hex'),
     '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
     'b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd'),
    (5, decode(repeat('0c', 20), 'hex'), 'Test With Truncation',
     'a3b6167473100ee06e0c796c2955552b',
     '415fad6271580a531d4179bc891d87a6'),
    (6, decode(repeat('aa', 131), 'hex'), 'Test Using Larger Than Block-Size Key - Hash Key First',
     '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
     '80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598'),
    (7, decode(repeat('aa', 131), 'hex'), 'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
     '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
     'e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58')
    ;
SELECT tc,
       encode(substr(clerk_hmac(data, key, 'sha256'), 1, length(decode(sha256, 'hex'))), 'hex') = sha256 AS sha256_ok,
       encode(substr(clerk_hmac(data, key, 'sha512'), 1, length(decode(sha512, 'hex'))), 'hex') = sha512 AS sha512_ok,
       clerk_hmac(data, key, 'sha256') = hmac(data, key, 'sha256') AS sha256_same_as_pgcrypto,
       clerk_hmac(data, key, 'sha512') = hmac(data, key, 'sha512') AS sha512_same_as_pgcrypto
  FROM rfc4231 ORDER BY tc;

-- Random inputs: lengths around the block sizes and beyond, keys from empty
-- to longer than a block.  Only the number of mismatches is printed.
SELECT count(*) AS inputs,
       count(*) FILTER (WHERE clerk_digest(d, 'sha256') <> digest(d, 'sha256')) AS sha256_digest_mismatches,
       count(*) FILTER (WHERE clerk_digest(d, 'sha512') <> digest(d, 'sha512')) AS sha512_digest_mismatches,
       count(*) FILTER (WHERE clerk_hmac(d, k, 'sha256') <> hmac(d, k, 'sha256')) AS sha256_hmac_mismatches,
       count(*) FILTER (WHERE clerk_hmac(d, k, 'sha512') <> hmac(d, k, 'sha512')) AS sha512_hmac_mismatches
  FROM (SELECT CASE WHEN n % 300 = 0 THEN ''::bytea ELSE gen_random_bytes(n % 300) END
                 || CASE WHEN n % 7 = 0 THEN gen_random_bytes(1024) ELSE '' END AS d,
               CASE WHEN n % 200 = 0 THEN ''::bytea ELSE gen_random_bytes(n % 200) END AS k
          FROM generate_series(1, 600) AS n) AS r;

-- The text forms hash the text's bytes, as pgcrypto's do.
SELECT clerk_digest('abc', 'sha256') = digest('abc', 'sha256') AS text_digest,
       clerk_hmac('what do ya want for nothing?', 'Jefe', 'sha512')
         = hmac('what do ya want for nothing?', 'Jefe', 'sha512') AS text_hmac,
       clerk_digest('ünïcødé', 'sha512') = digest('ünïcødé', 'sha512') AS text_multibyte;

-- Algorithm names are matched without regard to case, as pgcrypto does.
SELECT clerk_digest('abc'::bytea, 'SHA256') = digest('abc'::bytea, 'SHA256') AS upper_case;

-- STRICT: NULL in gives NULL out.
SELECT clerk_digest(NULL::bytea, 'sha256') IS NULL AS null_data,
       clerk_digest('abc'::bytea, NULL) IS NULL AS null_type,
       clerk_hmac(NULL::bytea, 'k'::bytea, 'sha256') IS NULL AS null_hmac_data,
       clerk_hmac('abc'::bytea, NULL::bytea, 'sha256') IS NULL AS null_hmac_key;

-- Only sha256 and sha512.
SELECT clerk_digest('abc'::bytea, 'md5');
SELECT clerk_hmac('abc'::bytea, 'k'::bytea, 'sha1');

-- Not for PUBLIC.
CREATE ROLE regress_digest_user;
SET ROLE regress_digest_user;
SELECT clerk_digest('abc'::bytea, 'sha256');
RESET ROLE;
DROP ROLE regress_digest_user;
