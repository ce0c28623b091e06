# clerk_sync: keep a PostgreSQL database in step with Clerk.
#
#   make test    install what is missing, build, start throwaway servers, run every test
#   make demo    the same set-up, then one sync against the bundled mock (or a real Clerk)
#   make bench   the benchmark (prints a table; see bench/README.md)

MODULE_big = clerk_sync
OBJS = clerk_sync.o $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
EXTENSION = clerk_sync
DATA_built = clerk_sync--1.0.sql
PGFILEDESC = "clerk_sync - sync Clerk users and organizations into PostgreSQL"

SHLIB_LINK += -lcurl -lsodium
PG_CPPFLAGS += -I$(srcdir)/src
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type

EXTRA_CLEAN = results regression.diffs regression.out tmp_check log

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The install script is assembled from one file per concern.
clerk_sync--1.0.sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

$(OBJS): $(wildcard src/*.h)

.PHONY: test demo bench
test:
	bash test/run.sh test

demo:
	bash test/run.sh demo

bench:
	bash test/run.sh bench
