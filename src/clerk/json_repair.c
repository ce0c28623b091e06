/*
 * json_repair.c
 *		Make any RFC 8259 JSON text storable as jsonb, and find its parts.
 *
 * Clerk's answers are valid JSON, but any end user writes parts of them
 * (unsafe_metadata from the browser, names), and jsonb cannot hold all of
 * valid JSON: it refuses \u0000 and unpaired surrogate escapes, numbers
 * outside numeric's range, and (in a UTF-8 database) it must never store
 * invalid UTF-8.  One pass over the text checks the syntax and applies the
 * one documented repair (json_repair.h), and notes where the list's
 * elements and a few root members are, so that each object can be
 * converted, and fail, on its own.  Nothing here recurses: nesting costs a
 * frame of memory, not a frame of stack.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "clerk/json_repair.h"

/* numeric's limits (src/backend/utils/adt/numeric.c) in decimal digits */
#define NUMERIC_MAX_INT_EXPONENT	131071	/* of the most significant digit */
#define NUMERIC_MAX_SCALE			16383	/* digits after the decimal point */

/* a repaired text keeps at most this many repair records */
#define MAX_REPAIRS 1000
/* path components and bytes of a key kept in a repair's path */
#define MAX_PATH_DEPTH 16
#define MAX_KEY_BYTES 64

static const char *const rule_names[CLERK_REPAIR_NRULES] = {
	"nul_character", "unpaired_surrogate", "invalid_utf8", "number_out_of_range"
};

/* Which span of the result a value fills when it ends. */
typedef enum SpanTarget
{
	SPAN_NONE,
	SPAN_ELEM,
	SPAN_ELEM_ID,
	SPAN_TOTAL,
	SPAN_TYPE,
	SPAN_DATA,
	SPAN_DATA_ID,
	SPAN_ROOT_ID
} SpanTarget;

typedef struct Frame
{
	char		kind;			/* '{' or '[' */
	int			count;			/* index of the current element or member */
	ClerkJsonSpan key;			/* '{': the current member's key, without quotes */
	SpanTarget	target;			/* what this container's own span fills */
	int			target_index;
	int			start;			/* where this container starts */
} Frame;

typedef struct Scan
{
	const unsigned char *in;
	size_t		len;
	size_t		pos;
	/* output, once something was repaired: in[0..copied) is in out */
	bool		active;
	StringInfoData out;
	size_t		copied;
	Frame	   *frames;
	int			depth;
	int			maxframes;
	int			list_frame;		/* the frame whose elements are the list, or -1 */
	int			cur_elem;		/* the list element being scanned, or -1 */
	int			elems_cap;
	bool		in_key;
	int			nrepairs;
	ClerkJsonText *res;
} Scan;

const char *
clerk_repair_rule_name(ClerkRepairRule rule)
{
	return rule_names[rule];
}

/* Where the scan is, in the repaired text. */
static int
opos(Scan *s)
{
	return s->active ? (int) (s->out.len + (s->pos - s->copied)) : (int) s->pos;
}

/* The repaired text up to s->pos (positions as opos() gives them). */
static const char *
text_so_far(Scan *s)
{
	if (!s->active)
		return (const char *) s->in;
	/* (inside repair(), copied is already past pos, and all keys are in out) */
	if (s->pos > s->copied)
	{
		appendBinaryStringInfo(&s->out, (const char *) s->in + s->copied, s->pos - s->copied);
		s->copied = s->pos;
	}
	return s->out.data;
}

static void
append_key(StringInfo buf, Scan *s, ClerkJsonSpan key)
{
	const char *k = text_so_far(s) + key.start;
	int			n = key.len;

	if (n > MAX_KEY_BYTES)
	{
		n = MAX_KEY_BYTES;
		/* never cut a UTF-8 character in two */
		while (n > 0 && (((unsigned char) k[n]) & 0xC0) == 0x80)
			n--;
	}
	appendBinaryStringInfo(buf, k, n);
	if (n < key.len)
		appendStringInfoString(buf, "...");
}

/* The path of the value being scanned, from the list element (or the root). */
static char *
current_path(Scan *s)
{
	StringInfoData buf;
	int			base = s->cur_elem >= 0 ? s->list_frame + 1 : 0;
	int			i;

	initStringInfo(&buf);
	for (i = base; i < s->depth; i++)
	{
		Frame	   *f = &s->frames[i];

		if (i - base >= MAX_PATH_DEPTH)
		{
			appendStringInfoString(&buf, "...");
			break;
		}
		if (f->kind == '[')
			appendStringInfo(&buf, "[%d]", f->count);
		else if (i == s->depth - 1 && s->in_key)
			appendStringInfoString(&buf, buf.len > 0 ? ".(a key)" : "(a key)");
		else
		{
			if (buf.len > 0)
				appendStringInfoChar(&buf, '.');
			append_key(&buf, s, f->key);
		}
	}
	return buf.data;
}

/* Replace in[from, to) by repl, noting the repair. */
static void
repair(Scan *s, size_t from, size_t to, const char *repl, int repl_len, ClerkRepairRule rule)
{
	ClerkRepair *last = s->res->repairs != NIL ? (ClerkRepair *) llast(s->res->repairs) : NULL;
	char	   *path;

	if (!s->active)
	{
		initStringInfo(&s->out);
		s->active = true;
		s->copied = 0;
	}
	appendBinaryStringInfo(&s->out, (const char *) s->in + s->copied, from - s->copied);
	appendBinaryStringInfo(&s->out, repl, repl_len);
	s->copied = to;

	if (s->nrepairs >= MAX_REPAIRS)
		return;
	path = current_path(s);
	/* one record for a run of the same repair in the same place */
	if (last != NULL && last->element == s->cur_elem && last->rule == rule &&
		strcmp(last->path, path) == 0)
	{
		pfree(path);
		return;
	}
	last = palloc(sizeof(ClerkRepair));
	last->element = s->cur_elem;
	last->path = path;
	last->rule = rule;
	s->res->repairs = lappend(s->res->repairs, last);
	s->nrepairs++;
}

static void
skip_ws(Scan *s)
{
	while (s->pos < s->len &&
		   (s->in[s->pos] == ' ' || s->in[s->pos] == '\t' ||
			s->in[s->pos] == '\n' || s->in[s->pos] == '\r'))
		s->pos++;
}

static int
hex4(const unsigned char *p)
{
	int			v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		int			c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* A string token at s->pos (the opening quote); NULL or the syntax error. */
static char *
scan_string(Scan *s)
{
	s->pos++;
	for (;;)
	{
		unsigned char c;

		if (s->pos >= s->len)
			return "a string is not terminated";
		c = s->in[s->pos];
		if (c == '"')
		{
			s->pos++;
			return NULL;
		}
		if (c < 0x20)
			return psprintf("a string holds the unescaped control character 0x%02x", c);
		if (c == '\\')
		{
			int			u,
						lo;

			if (s->pos + 1 >= s->len)
				return "a string is not terminated";
			c = s->in[s->pos + 1];
			if (c != 'u')
			{
				if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
					return psprintf("a string holds the invalid escape \\%c", c);
				s->pos += 2;
				continue;
			}
			if (s->pos + 6 > s->len || (u = hex4(s->in + s->pos + 2)) < 0)
				return "a string holds an invalid \\u escape";
			if (u == 0)
				repair(s, s->pos, s->pos + 6, "\\ufffd", 6, CLERK_REPAIR_NUL);
			else if (u >= 0xD800 && u <= 0xDBFF)
			{
				/* a high surrogate must be followed by a low one */
				if (s->pos + 12 <= s->len && s->in[s->pos + 6] == '\\' &&
					s->in[s->pos + 7] == 'u' &&
					(lo = hex4(s->in + s->pos + 8)) >= 0xDC00 && lo <= 0xDFFF)
				{
					s->pos += 12;
					continue;
				}
				repair(s, s->pos, s->pos + 6, "\\ufffd", 6, CLERK_REPAIR_SURROGATE);
			}
			else if (u >= 0xDC00 && u <= 0xDFFF)
				repair(s, s->pos, s->pos + 6, "\\ufffd", 6, CLERK_REPAIR_SURROGATE);
			s->pos += 6;
			continue;
		}
		if (c < 0x80)
		{
			s->pos++;
			continue;
		}
		{
			int			n = pg_utf_mblen(s->in + s->pos);

			if (s->pos + n <= s->len && n > 1 && pg_utf8_islegal(s->in + s->pos, n))
				s->pos += n;
			else
			{
				repair(s, s->pos, s->pos + 1, "\xEF\xBF\xBD", 3, CLERK_REPAIR_UTF8);
				s->pos++;
			}
		}
	}
}

static bool
is_digit(Scan *s)
{
	return s->pos < s->len && s->in[s->pos] >= '0' && s->in[s->pos] <= '9';
}

/* Whether numeric can hold the number token p[0..n) (already checked). */
static bool
number_fits(const unsigned char *p, size_t n)
{
	size_t		i = 0,
				int_start,
				int_end,
				frac_start = 0,
				frac_end = 0,
				k;
	int64		exp = 0;
	bool		neg_exp = false;
	bool		has_msd = false;
	int64		msd = 0;
	int64		scale;

	if (p[i] == '-')
		i++;
	int_start = i;
	while (i < n && p[i] >= '0' && p[i] <= '9')
		i++;
	int_end = i;
	if (i < n && p[i] == '.')
	{
		frac_start = ++i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		frac_end = i;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E'))
	{
		i++;
		if (p[i] == '+' || p[i] == '-')
			neg_exp = p[i++] == '-';
		for (; i < n; i++)
			if (exp < PG_INT32_MAX)
				exp = exp * 10 + (p[i] - '0');
		if (exp >= PG_INT32_MAX / 2)
			return false;		/* numeric_in refuses such exponents outright */
		if (neg_exp)
			exp = -exp;
	}
	for (k = int_start; k < int_end; k++)
		if (p[k] != '0')
		{
			has_msd = true;
			msd = (int64) (int_end - k - 1) + exp;
			break;
		}
	if (!has_msd)
		for (k = frac_start; k < frac_end; k++)
			if (p[k] != '0')
			{
				has_msd = true;
				msd = -(int64) (k - frac_start + 1) + exp;
				break;
			}
	scale = (int64) (frac_end - frac_start) - exp;
	if (has_msd && msd > NUMERIC_MAX_INT_EXPONENT)
		return false;
	if (scale > NUMERIC_MAX_SCALE)
		return false;
	return true;
}

/* A number token at s->pos; NULL or the syntax error. */
static char *
scan_number(Scan *s)
{
	size_t		start = s->pos;

	if (s->in[s->pos] == '-')
		s->pos++;
	if (!is_digit(s))
		return "a number has no digits";
	if (s->in[s->pos] == '0')
		s->pos++;
	else
		while (is_digit(s))
			s->pos++;
	if (s->pos < s->len && s->in[s->pos] == '.')
	{
		s->pos++;
		if (!is_digit(s))
			return "a number has no digits after its decimal point";
		while (is_digit(s))
			s->pos++;
	}
	if (s->pos < s->len && (s->in[s->pos] == 'e' || s->in[s->pos] == 'E'))
	{
		s->pos++;
		if (s->pos < s->len && (s->in[s->pos] == '+' || s->in[s->pos] == '-'))
			s->pos++;
		if (!is_digit(s))
			return "a number has no digits in its exponent";
		while (is_digit(s))
			s->pos++;
	}
	if (!number_fits(s->in + start, s->pos - start))
	{
		/* the same characters, as a string */
		StringInfoData q;

		initStringInfo(&q);
		appendStringInfoChar(&q, '"');
		appendBinaryStringInfo(&q, (const char *) s->in + start, s->pos - start);
		appendStringInfoChar(&q, '"');
		repair(s, start, s->pos, q.data, q.len, CLERK_REPAIR_NUMBER);
		pfree(q.data);
	}
	return NULL;
}

static bool
key_is(Scan *s, Frame *f, const char *name)
{
	int			n = strlen(name);

	return f->kind == '{' && f->key.len == n &&
		memcmp(text_so_far(s) + f->key.start, name, n) == 0;
}

/* The span a value starting now fills, if any; also opens list elements. */
static SpanTarget
value_target(Scan *s, char first, int *index)
{
	int			parent = s->depth - 1;
	Frame	   *f;

	*index = 0;
	if (parent < 0)
		return SPAN_NONE;
	f = &s->frames[parent];
	if (parent == s->list_frame)
	{
		ClerkJsonText *r = s->res;

		if (r->nelems == s->elems_cap)
		{
			s->elems_cap *= 2;
			r->elems = repalloc(r->elems, sizeof(ClerkJsonSpan) * s->elems_cap);
			r->elem_ids = repalloc(r->elem_ids, sizeof(ClerkJsonSpan) * s->elems_cap);
		}
		r->elem_ids[r->nelems].start = r->elem_ids[r->nelems].len = 0;
		s->cur_elem = r->nelems;
		*index = r->nelems++;
		return SPAN_ELEM;
	}
	if (s->list_frame >= 0 && parent == s->list_frame + 1 && s->cur_elem >= 0 &&
		first == '"' && key_is(s, f, "id"))
	{
		*index = s->cur_elem;
		return SPAN_ELEM_ID;
	}
	if (parent == 0 && f->kind == '{')
	{
		if (key_is(s, f, "total_count"))
			return SPAN_TOTAL;
		if (key_is(s, f, "type") && first == '"')
			return SPAN_TYPE;
		if (key_is(s, f, "data"))
			return SPAN_DATA;
		if (key_is(s, f, "id") && first == '"')
			return SPAN_ROOT_ID;
	}
	if (parent == 1 && f->kind == '{' && first == '"' && key_is(s, f, "id") &&
		key_is(s, &s->frames[0], "data"))
		return SPAN_DATA_ID;
	return SPAN_NONE;
}

static void
fill_span(Scan *s, SpanTarget target, int index, int start)
{
	ClerkJsonText *r = s->res;
	ClerkJsonSpan span;

	span.start = start;
	span.len = opos(s) - start;
	switch (target)
	{
		case SPAN_NONE:
			return;
		case SPAN_ELEM:
			r->elems[index] = span;
			s->cur_elem = -1;
			return;
		case SPAN_ELEM_ID:
			r->elem_ids[index] = span;
			return;
		case SPAN_TOTAL:
			r->total_count = span;
			return;
		case SPAN_TYPE:
			r->type = span;
			return;
		case SPAN_DATA:
			r->data = span;
			return;
		case SPAN_DATA_ID:
			r->data_id = span;
			return;
		case SPAN_ROOT_ID:
			r->root_id = span;
			return;
	}
}

static void
push(Scan *s, char kind, SpanTarget target, int index, int start)
{
	Frame	   *f;

	if (s->depth == s->maxframes)
	{
		s->maxframes *= 2;
		s->frames = repalloc(s->frames, sizeof(Frame) * s->maxframes);
	}
	f = &s->frames[s->depth++];
	f->kind = kind;
	f->count = 0;
	f->key.start = f->key.len = 0;
	f->target = target;
	f->target_index = index;
	f->start = start;

	/* the list: the root array, or the array in the root's "data" */
	if (kind == '[' && (s->depth == 1 ||
						(s->depth == 2 && key_is(s, &s->frames[0], "data"))))
	{
		s->list_frame = s->depth - 1;
		s->res->nelems = 0;
		s->res->is_list = true;
	}
}

/* A member's key and colon, at s->pos; NULL or the syntax error. */
static char *
scan_key(Scan *s)
{
	Frame	   *f = &s->frames[s->depth - 1];
	char	   *err;
	int			start;

	if (s->pos >= s->len || s->in[s->pos] != '"')
		return "an object member has no key";
	s->in_key = true;
	start = opos(s);
	err = scan_string(s);
	s->in_key = false;
	if (err)
		return err;
	f->key.start = start + 1;
	f->key.len = opos(s) - start - 2;
	skip_ws(s);
	if (s->pos >= s->len || s->in[s->pos] != ':')
		return "an object member has no colon after its key";
	s->pos++;
	skip_ws(s);
	return NULL;
}

static char *
scan_document(Scan *s)
{
	char	   *err;

	skip_ws(s);
	for (;;)
	{
		unsigned char c;
		SpanTarget	target;
		int			index;
		int			start;

		/* a value */
		if (s->pos >= s->len)
			return s->depth == 0 && s->pos == 0 ? "the text is empty" : "the text ends in the middle of a value";
		c = s->in[s->pos];
		target = value_target(s, (char) c, &index);
		start = opos(s);
		if (c == '{' || c == '[')
		{
			push(s, (char) c, target, index, start);
			s->pos++;
			skip_ws(s);
			if (s->pos < s->len && s->in[s->pos] == (c == '{' ? '}' : ']'))
			{
				s->pos++;
				s->depth--;
				fill_span(s, target, index, start);
			}
			else if (c == '{')
			{
				if ((err = scan_key(s)) != NULL)
					return err;
				continue;
			}
			else
				continue;
		}
		else
		{
			if (c == '"')
				err = scan_string(s);
			else if (c == '-' || (c >= '0' && c <= '9'))
				err = scan_number(s);
			else if (s->len - s->pos >= 4 && memcmp(s->in + s->pos, "true", 4) == 0)
				s->pos += 4, err = NULL;
			else if (s->len - s->pos >= 5 && memcmp(s->in + s->pos, "false", 5) == 0)
				s->pos += 5, err = NULL;
			else if (s->len - s->pos >= 4 && memcmp(s->in + s->pos, "null", 4) == 0)
				s->pos += 4, err = NULL;
			else
				err = "a value is expected";
			if (err)
				return err;
			fill_span(s, target, index, start);
		}

		/* after a value: the next one, or the end of containers */
		for (;;)
		{
			Frame	   *f;

			skip_ws(s);
			if (s->depth == 0)
				return s->pos == s->len ? NULL : "more follows the JSON value";
			f = &s->frames[s->depth - 1];
			if (s->pos >= s->len)
				return "the text ends inside an object or array";
			c = s->in[s->pos];
			if (c == ',')
			{
				s->pos++;
				skip_ws(s);
				f->count++;
				if (f->kind == '{' && (err = scan_key(s)) != NULL)
					return err;
				break;
			}
			if (c == (f->kind == '{' ? '}' : ']'))
			{
				s->pos++;
				s->depth--;
				fill_span(s, f->target, f->target_index, f->start);
				continue;
			}
			return f->kind == '{' ? "an object member is not followed by , or }" :
				"an array element is not followed by , or ]";
		}
	}
}

char *
clerk_json_repair(const char *in, size_t len, ClerkJsonText *out)
{
	Scan		s;
	char	   *err;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	s.in = (const unsigned char *) in;
	s.len = len;
	s.maxframes = 16;
	s.frames = palloc(sizeof(Frame) * s.maxframes);
	s.list_frame = -1;
	s.cur_elem = -1;
	s.elems_cap = 64;
	s.res = out;
	out->elems = palloc(sizeof(ClerkJsonSpan) * s.elems_cap);
	out->elem_ids = palloc(sizeof(ClerkJsonSpan) * s.elems_cap);

	err = scan_document(&s);
	pfree(s.frames);
	if (err != NULL)
	{
		if (s.active)
			pfree(s.out.data);
		memset(out, 0, sizeof(*out));
		return psprintf("%s (at byte %zu)", err, s.pos);
	}
	if (s.active)
	{
		appendBinaryStringInfo(&s.out, in + s.copied, len - s.copied);
		out->text = s.out.data;
		out->len = s.out.len;
	}
	else
	{
		out->text = in;
		out->len = (int) len;
	}
	/* an object root without a "data" list is the one object */
	if (!out->is_list)
		out->nelems = 0;
	return NULL;
}
