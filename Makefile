# clerk_sync: keep a PostgreSQL database in step with Clerk.
#
#   make test          install what is missing, build, start throwaway servers, run every test
#   make demo          the same set-up, then one sync against the bundled mock (or a real Clerk)
#   make bench         the benchmark (prints a table; see bench/README.md)
#   make installcheck  the regression (REGRESS) and TAP (t/*.pl) suites, PGXS style, on a
#                      machine that already has the packages; see test/README.md
#   make dist          the PGXN archive of the last commit, clerk_sync-<version>.zip (git archive)
#   make deb           the Debian package (debian/, pg_buildext), built, installed on a fresh
#                      cluster and synced against the mock from its installed files only
#
#   PG=17 (or 18) with test, demo or bench: against that PostgreSQL instead of 15

MODULE_big = clerk_sync
OBJS = clerk_sync.o $(patsubst %.c,%.o,$(sort $(wildcard src/*/*.c)))
EXTENSION = clerk_sync
PGFILEDESC = "clerk_sync - sync Clerk users and organizations into PostgreSQL"

# Released install and upgrade scripts.  A released script never changes:
# every change of a release goes into its upgrade script, and
# test/released.sha256 holds the checksum of each released script.
#
# A fresh install of 1.1 runs clerk_sync--1.1.sql, which make assembles
# from clerk_sync--1.0.sql and the upgrade script: the very same statements
# as an upgrade, each change written once, except 1.0's last block (the
# REVOKE loop over the extension's functions, which the upgrade's
# privileges section does again) because it compares oid with regclass
# under the extension schema's search_path, which a role that may CREATE
# there can capture (see CHANGELOG.md, 1.1).  The upgrade test
# (t/060_upgrade.pl) checks that an upgrade of a database holding data ends
# with the same catalog as a fresh install and every row still readable.
DATA = clerk_sync--1.0.sql clerk_sync--1.0--1.1.sql
DATA_built = clerk_sync--1.1.sql

# libraries through pkg-config (libcurl4-openssl-dev and libsodium-dev ship
# their .pc files); the plain names where pkg-config is not installed yet
SHLIB_LINK += $(or $(shell pkg-config --libs libcurl libsodium 2>/dev/null),-lcurl -lsodium)
PG_CPPFLAGS += -I$(srcdir)/src $(shell pkg-config --cflags libcurl libsodium 2>/dev/null)
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow=compatible-local -Wold-style-definition -Wstrict-prototypes

# pg_regress: the SQL surface; settings in test/regress.conf (also the
# --temp-config of a pg_regress temporary instance)
REGRESS = billing connection digest mapping repair rls surface vault webhook
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf
# TAP: each file starts its own servers and mock Clerk API
TAP_TESTS = 1
PROVE_FLAGS += -I $(srcdir)/test/perl

EXTRA_CLEAN = results regression.diffs regression.out tmp_check log clerk_sync-*.zip

# no JIT bitcode: nothing of clerk_sync runs inside JIT-compiled expressions
# (and a build needs no clang)
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(wildcard src/*/*.h)

clerk_sync--1.1.sql: clerk_sync--1.0.sql clerk_sync--1.0--1.1.sql
	{ echo '-- clerk_sync 1.1 install script: made by make from clerk_sync--1.0.sql and clerk_sync--1.0--1.1.sql.'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION clerk_sync" to load this file. \quit'; \
	  awk '/^\\echo/ { next } /^DO \$$\$$$$/ { skip = 1 } !skip { print } skip && /^\$$\$$;$$/ { skip = 0 }' clerk_sync--1.0.sql; \
	  grep -v '^\\echo' clerk_sync--1.0--1.1.sql; } > $@

# the release version, as META.json states it for PGXN (1.1.0 for 1.1)
DIST_VERSION = $(shell sed -n 's/^   "version": "\(.*\)",$$/\1/p' META.json)

.PHONY: test demo bench dist deb
test:
	bash test/run.sh test

demo:
	bash test/run.sh demo

bench:
	bash test/run.sh bench

deb:
	bash test/package.sh

dist:
	git archive --format zip --prefix=clerk_sync-$(DIST_VERSION)/ -o clerk_sync-$(DIST_VERSION).zip HEAD
