/*
 * json_members.c
 *		Members of a jsonb object, read the one way every part of clerk_sync reads them.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "clerk/json_members.h"

/* The member `key` of obj, when obj is an object that has it. */
static bool
member(JsonbContainer *obj, const char *key, JsonbValue *v)
{
	return JsonContainerIsObject(obj) &&
		getKeyJsonValueFromContainer(obj, key, strlen(key), v) != NULL;
}

char *
clerk_json_string(JsonbContainer *obj, const char *key)
{
	JsonbValue	v;

	if (!member(obj, key, &v) || v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

Jsonb *
clerk_json_object(JsonbContainer *obj, const char *key)
{
	JsonbValue	v;

	if (!member(obj, key, &v) || v.type != jbvBinary ||
		!JsonContainerIsObject(v.val.binary.data))
		return NULL;
	return JsonbValueToJsonb(&v);
}

Jsonb *
clerk_json_array(JsonbContainer *obj, const char *key)
{
	JsonbValue	v;

	if (!member(obj, key, &v) || v.type != jbvBinary ||
		!JsonContainerIsArray(v.val.binary.data))
		return NULL;
	return JsonbValueToJsonb(&v);
}

bool
clerk_json_number_is(JsonbContainer *obj, const char *key, int64 value)
{
	JsonbValue	v;

	if (!member(obj, key, &v) || v.type != jbvNumeric)
		return false;
	return DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(v.val.numeric),
											NumericGetDatum(int64_to_numeric(value))));
}

int64
clerk_json_ms(JsonbContainer *obj, const char *key, bool seconds_too)
{
	JsonbValue	v;
	double		d;

	if (!member(obj, key, &v) || v.type != jbvNumeric)
		return -1;
	/* through float8, which never fails: a nonsense value is just ignored */
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
										   NumericGetDatum(v.val.numeric)));
	if (seconds_too && d > 0 && d < 1e11)
		d *= 1000;
	if (!(d >= 0 && d < 1e15))
		return -1;
	return (int64) d;
}
