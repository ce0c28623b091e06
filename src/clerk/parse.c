/*
 * parse.c
 *		A Clerk answer (or webhook body) as objects: checked, repaired and
 *		converted to jsonb one by one.
 *
 * The text is checked and repaired first (json_repair.c), so that content
 * any end user can write never fails an answer.  The whole answer is then
 * converted at once, which is what nearly always happens; only if that
 * fails (nesting deeper than the server's stack allows, say) is each
 * element of the list converted on its own, so that one object fails
 * alone.  Elements that are not objects are rejected, never dropped
 * silently.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "base/compat.h"
#include "base/subtransaction.h"
#include "clerk/parse.h"

PG_FUNCTION_INFO_V1(clerk_repair_json);

typedef struct ConvertArgs
{
	const char *text;
	Jsonb	   *result;
} ConvertArgs;

static void
convert(void *varg)
{
	ConvertArgs *a = (ConvertArgs *) varg;

	a->result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(a->text)));
}

/* text as jsonb, or NULL with the error in *err */
static Jsonb *
try_convert(const char *text, ErrorData **err)
{
	ConvertArgs a = {text, NULL};

	*err = clerk_try(convert, &a);
	return *err == NULL ? a.result : NULL;
}

char *
clerk_parsed_string(const ClerkParsed *p, ClerkJsonSpan span)
{
	Jsonb	   *j;
	JsonbValue	v;

	if (span.len < 2 || p->text.text[span.start] != '"')
		return NULL;
	j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
										   CStringGetDatum(pnstrdup(p->text.text + span.start, span.len))));
	if (!JsonbExtractScalar(&j->root, &v) || v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

int64
clerk_parsed_total_count(const ClerkParsed *p)
{
	ClerkJsonSpan s = p->text.total_count;
	char	   *tok;
	char	   *end;
	int64		v;
	int			i;

	if (s.len == 0)
		return -1;
	tok = pnstrdup(p->text.text + s.start, s.len);
	for (i = 0; i < s.len; i++)
		if (!isdigit((unsigned char) tok[i]))
			return -2;
	errno = 0;
	v = strtoi64(tok, &end, 10);
	if (errno != 0 || *end != '\0')
		return -2;
	return v;
}

static const char *
value_kind(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "a value";
	}
}

static void
add_reject(ClerkParsed *p, char *id, char *reason, int sqlerrcode)
{
	ClerkReject *r = palloc0(sizeof(ClerkReject));

	r->id = id;
	r->reason = reason;
	r->sqlerrcode = sqlerrcode;
	p->rejects = lappend(p->rejects, r);
}

/* A jsonb value as the JsonbValue of its root: the scalar, or the container. */
static void
root_value(Jsonb *j, JsonbValue *v)
{
	if (JB_ROOT_IS_SCALAR(j))
		(void) JsonbExtractScalar(&j->root, v);
	else
	{
		v->type = jbvBinary;
		v->val.binary.data = &j->root;
		v->val.binary.len = VARSIZE(j) - VARHDRSZ;
	}
}

static bool
is_object(const JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

/* An element is kept if it is an object; else rejected (and false). */
static bool
keep_element(ClerkParsed *p, int i, JsonbValue *v)
{
	if (is_object(v))
		return true;
	add_reject(p, NULL,
			   p->is_list ? psprintf("element %d of the list is %s, not an object", i, value_kind(v)) :
			   psprintf("the answer is %s, not an object", value_kind(v)),
			   ERRCODE_DATATYPE_MISMATCH);
	return false;
}

/* The id of element i (or of the root object), from the text. */
static char *
element_id(ClerkParsed *p, int i)
{
	return clerk_parsed_string(p, i >= 0 && p->is_list ? p->text.elem_ids[i] : p->text.root_id);
}

/*
 * Fill objects (and rejects) from a converted root.  A list of objects only
 * (what Clerk sends) is kept as it is; only a list with other elements is
 * built anew, of its objects.
 */
static void
collect(ClerkParsed *p, Jsonb *root)
{
	JsonbParseState *state = NULL;
	JsonbValue *arr;
	JsonbContainer *list = NULL;
	JsonbValue	v;
	int			i,
				n;
	bool		all_objects = true;

	if (p->is_list)
	{
		if (JB_ROOT_IS_ARRAY(root) && !JB_ROOT_IS_SCALAR(root))
			list = &root->root;
		else if (getKeyJsonValueFromContainer(&root->root, "data", 4, &v) != NULL &&
				 v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
			list = v.val.binary.data;
	}
	(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	if (list != NULL)
	{
		n = JsonContainerSize(list);
		p->nelems = n;
		for (i = 0; i < n; i++)
			if (!keep_element(p, i, getIthJsonbValueFromContainer(list, i)))
				all_objects = false;
		if (all_objects)
		{
			/* the list as it is: no copy */
			p->objects = list == &root->root ? root : JsonbValueToJsonb(&v);
			return;
		}
		/* (pushing a container unpacks it: only for a list that needs it) */
		for (i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(list, i);

			if (is_object(e))
				(void) pushJsonbValue(&state, WJB_ELEM, e);
		}
	}
	else
	{
		JsonbValue	r;

		p->is_list = false;
		p->nelems = 1;
		root_value(root, &r);
		if (keep_element(p, -1, &r))
			(void) pushJsonbValue(&state, WJB_ELEM, &r);
	}
	arr = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	p->objects = JsonbValueToJsonb(arr);
}

/* The answer did not convert as a whole: each element on its own. */
static void
collect_each(ClerkParsed *p, ErrorData *whole)
{
	JsonbParseState *state = NULL;
	int			i;

	(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	if (!p->is_list)
	{
		p->nelems = 1;
		add_reject(p, element_id(p, -1), pstrdup(whole->message), whole->sqlerrcode);
	}
	else
	{
		p->nelems = p->text.nelems;
		for (i = 0; i < p->text.nelems; i++)
		{
			ClerkJsonSpan s = p->text.elems[i];
			ErrorData  *err;
			Jsonb	   *j = try_convert(pnstrdup(p->text.text + s.start, s.len), &err);
			JsonbValue	v;

			if (j == NULL)
			{
				add_reject(p, element_id(p, i), pstrdup(err->message), err->sqlerrcode);
				FreeErrorData(err);
				continue;
			}
			root_value(j, &v);
			if (keep_element(p, i, &v))
				(void) pushJsonbValue(&state, WJB_ELEM, &v);
		}
	}
	p->objects = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
}

static bool
in_list(List *strings, const char *s)
{
	ListCell   *lc;

	foreach(lc, strings)
		if (strcmp((const char *) lfirst(lc), s) == 0)
			return true;
	return false;
}

/* A list of C strings as a JSON array. */
static void
append_strings(StringInfo buf, List *strings)
{
	ListCell   *lc;

	appendStringInfoChar(buf, '[');
	foreach(lc, strings)
	{
		if (lc != list_head(strings))
			appendStringInfoString(buf, ", ");
		escape_json(buf, (const char *) lfirst(lc));
	}
	appendStringInfoChar(buf, ']');
}

/* One ClerkRepaired per repaired object (repairs outside any object are not counted). */
static void
group_repairs(ClerkParsed *p)
{
	ListCell   *lc;
	int			nobj = p->is_list ? p->text.nelems : 1;
	List	  **fields = palloc0(sizeof(List *) * nobj);
	List	  **rules = palloc0(sizeof(List *) * nobj);
	int			i;

	foreach(lc, p->text.repairs)
	{
		ClerkRepair *r = (ClerkRepair *) lfirst(lc);
		int			k = p->is_list ? r->element : 0;
		const char *rule = clerk_repair_rule_name(r->rule);

		if (k < 0 || k >= nobj)
			continue;
		if (!in_list(fields[k], r->path))
			fields[k] = lappend(fields[k], r->path);
		if (!in_list(rules[k], rule))
			rules[k] = lappend(rules[k], (void *) rule);
	}
	for (i = 0; i < nobj; i++)
	{
		StringInfoData d;
		ClerkRepaired *rep;

		if (fields[i] == NIL)
			continue;
		initStringInfo(&d);
		appendStringInfoString(&d, "{\"fields\": ");
		append_strings(&d, fields[i]);
		appendStringInfoString(&d, ", \"rules\": ");
		append_strings(&d, rules[i]);
		appendStringInfoChar(&d, '}');
		rep = palloc(sizeof(ClerkRepaired));
		rep->id = element_id(p, p->is_list ? i : -1);
		rep->details = d.data;
		p->repaired = lappend(p->repaired, rep);
	}
}

void
clerk_parse_jsonb(Jsonb *root, ClerkParsed *out)
{
	JsonbValue	v;

	memset(out, 0, sizeof(*out));
	out->root = root;
	out->is_list = (JB_ROOT_IS_ARRAY(root) && !JB_ROOT_IS_SCALAR(root)) ||
		(JB_ROOT_IS_OBJECT(root) &&
		 getKeyJsonValueFromContainer(&root->root, "data", 4, &v) != NULL &&
		 v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data));
	collect(out, root);
}

char *
clerk_parse_scan(const char *body, size_t len, ClerkParsed *out)
{
	char	   *err;

	memset(out, 0, sizeof(*out));
	err = clerk_json_repair(body, len, &out->text);
	if (err != NULL)
		return err;
	out->is_list = out->text.is_list;
	out->nelems = out->is_list ? out->text.nelems : 1;
	return NULL;
}

void
clerk_parse_convert(ClerkParsed *out)
{
	ErrorData  *whole;

	out->root = try_convert(out->text.text, &whole);
	if (out->root != NULL)
		collect(out, out->root);
	else
	{
		collect_each(out, whole);
		FreeErrorData(whole);
	}
	if (out->text.repairs != NIL)
		group_repairs(out);
}

char *
clerk_parse(const char *body, size_t len, ClerkParsed *out)
{
	char	   *err = clerk_parse_scan(body, len, out);

	if (err == NULL)
		clerk_parse_convert(out);
	return err;
}

char *
clerk_parsed_element_id(const ClerkParsed *p, int i)
{
	if (!p->is_list || i < 0 || i >= p->text.nelems)
		return NULL;
	return clerk_parsed_string(p, p->text.elem_ids[i]);
}

/*
 * clerk_repair_json(body bytea, OUT value jsonb, OUT repairs jsonb)
 *
 * The repair every write path applies, on its own: the value as it would
 * be stored (NULL when it cannot be converted even after the repair), and
 * a list of {element, path, rule}, element being the index in the list
 * (null outside a list).  Text that is not JSON is an error.
 */
Datum
clerk_repair_json(PG_FUNCTION_ARGS)
{
	bytea	   *body = PG_GETARG_BYTEA_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(body);
	char	   *text = palloc(len + 1);
	ClerkParsed p;
	char	   *err;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	StringInfoData r;
	ListCell   *lc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memcpy(text, VARDATA_ANY(body), len);
	text[len] = '\0';
	err = clerk_parse(text, len, &p);
	if (err != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("the value is not JSON"),
				 errdetail("The text is not JSON: %s.", err)));

	initStringInfo(&r);
	appendStringInfoChar(&r, '[');
	foreach(lc, p.text.repairs)
	{
		ClerkRepair *rep = (ClerkRepair *) lfirst(lc);

		if (r.len > 1)
			appendStringInfoString(&r, ", ");
		if (rep->element >= 0)
			appendStringInfo(&r, "{\"element\": %d, \"path\": ", rep->element);
		else
			appendStringInfoString(&r, "{\"element\": null, \"path\": ");
		escape_json(&r, rep->path);
		appendStringInfo(&r, ", \"rule\": \"%s\"}", clerk_repair_rule_name(rep->rule));
	}
	appendStringInfoChar(&r, ']');

	if (p.root != NULL)
		values[0] = JsonbPGetDatum(p.root);
	else
		nulls[0] = true;
	values[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(r.data));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
