/*
 * old_glibc.h
 *		Building against PostgreSQL headers made for glibc 2.38 or later on an older glibc (test/run.sh, PG=17 or 18).
 *
 * Those headers (Debian 13's and unstable's) leave strlcpy and strlcat to
 * the C library, which has none before glibc 2.38; the server binaries the
 * tests run export PostgreSQL's own.  test/run.sh passes this file with
 * COPT=-include; nothing else uses it.
 */
#include <stddef.h>

extern size_t strlcpy(char *dst, const char *src, size_t siz);
extern size_t strlcat(char *dst, const char *src, size_t siz);
