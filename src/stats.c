/*
 * crmauthctl stats: the figures GET metrics gives, for a terminal (the
 * series that are not 0, a table per family, latency summed up per
 * method) or as JSON for scripts (every series).  Both walk the same
 * series as the Prometheus text (metrics_walk), so the three never
 * disagree on a name or a label.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "extern.h"

/* ---- for a terminal: a family's samples kept, printed when it ends ---- */

struct row {
	char		 name[64];
	char		 lv[METRICS_LABELS_MAX][64];
	uint64_t	 v;
	int		 ns;
};

struct term {
	FILE		*f;
	char		 name[64], type[16], help[160];
	char		 ln[METRICS_LABELS_MAX][16];	/* label names */
	size_t		 nl;
	struct row	*rows;
	size_t		 n, cap;
	int		 failed;
};

static void
copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

/* "2h 3m 4s" */
static void
duration(char *buf, size_t size, uint64_t s)
{
	if (s >= 86400)
		snprintf(buf, size, "%" PRIu64 "d %" PRIu64 "h", s / 86400,
		    s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "m", s / 3600,
		    s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, size, "%" PRIu64 "m %" PRIu64 "s", s / 60,
		    s % 60);
	else
		snprintf(buf, size, "%" PRIu64 "s", s);
}

/* An unlabelled gauge or counter: one line, with a reading aid. */
static void
print_single(struct term *t, const struct row *r)
{
	char	 num[48], aid[64] = "";

	metrics_number(num, sizeof(num), r->v, r->ns);
	if (strcmp(t->name, "crmauth_metrics_start_time_seconds") == 0 &&
	    r->v > 0) {
		aid[0] = ' ';
		aid[1] = '(';
		if (fmt_utc(aid + 2, sizeof(aid) - 4, (int64_t)r->v) > 0)
			strcat(aid, "Z)");
		else
			aid[0] = '\0';
	} else if (strcmp(t->name, "crmauth_signing_key_age_seconds") == 0) {
		aid[0] = ' ';
		aid[1] = '(';
		duration(aid + 2, sizeof(aid) - 4, r->v);
		strcat(aid, ")");
	}
	fprintf(t->f, "%-36s %s%s\n", t->name, num, aid);
}

/* A bucket's bound ("2.5e-05" seconds) in milliseconds ("0.025"). */
static void
ms(char *buf, size_t size, const char *le)
{
	if (strcmp(le, "+Inf") == 0)
		snprintf(buf, size, "%s", le);
	else
		snprintf(buf, size, "%g", strtod(le, NULL) * 1000);
}

/* One method's latency: count, mean, and the bucket bounds that half
 * and 99 in 100 of its requests fell within (buckets cumulative, the
 * last +Inf). */
static void
print_method(struct term *t, const struct row *bucket, size_t nb,
    uint64_t sum, uint64_t count, size_t *shown)
{
	const char	*p50 = "+Inf", *p99 = "+Inf";
	char		 b50[32], b99[32];
	size_t		 i;

	if (count == 0)
		return;
	for (i = nb; i-- > 0; ) {
		if (bucket[i].v * 2 >= count)
			p50 = bucket[i].lv[1];
		if (bucket[i].v * 100 >= count * 99)
			p99 = bucket[i].lv[1];
	}
	if ((*shown)++ == 0)
		fprintf(t->f, "  %-34s %10s %10s %10s %10s\n", "method",
		    "count", "mean ms", "50% <= ms", "99% <= ms");
	ms(b50, sizeof(b50), p50);
	ms(b99, sizeof(b99), p99);
	fprintf(t->f, "  %-34s %10" PRIu64 " %10.3f %10s %10s\n",
	    bucket[0].lv[0], count, (double)sum / 1e6 / (double)count, b50,
	    b99);
}

/* Each method's rows come as its buckets, then _sum, then _count. */
static void
print_histogram(struct term *t)
{
	size_t	 i, first = 0, shown = 0;

	fprintf(t->f, "%s: %s\n", t->name, t->help);
	for (i = 2; i < t->n; i++)
		if (strstr(t->rows[i].name, "_count") != NULL) {
			print_method(t, &t->rows[first], i - 1 - first,
			    t->rows[i - 1].v, t->rows[i].v, &shown);
			first = i + 1;
		}
	if (shown == 0)
		fprintf(t->f, "  (none)\n");
}

/* The rows that are not 0, a column per label. */
static void
print_table(struct term *t)
{
	char	 num[48];
	size_t	 i, j, w[METRICS_LABELS_MAX], shown = 0;

	fprintf(t->f, "%s: %s\n", t->name, t->help);
	for (j = 0; j < t->nl; j++)
		w[j] = strlen(t->ln[j]);
	for (i = 0; i < t->n; i++)
		for (j = 0; j < t->nl && t->rows[i].v != 0; j++)
			if (strlen(t->rows[i].lv[j]) > w[j])
				w[j] = strlen(t->rows[i].lv[j]);
	for (i = 0; i < t->n; i++) {
		if (t->rows[i].v == 0)
			continue;
		if (shown++ == 0) {
			fputs(" ", t->f);
			for (j = 0; j < t->nl; j++)
				fprintf(t->f, " %-*s", (int)w[j], t->ln[j]);
			fprintf(t->f, " %12s\n", "value");
		}
		fputs(" ", t->f);
		for (j = 0; j < t->nl; j++)
			fprintf(t->f, " %-*s", (int)w[j], t->rows[i].lv[j]);
		metrics_number(num, sizeof(num), t->rows[i].v, t->rows[i].ns);
		fprintf(t->f, " %12s\n", num);
	}
	if (shown == 0)
		fprintf(t->f, "  (none)\n");
}

static void
term_flush(struct term *t)
{
	if (t->name[0] == '\0')
		return;
	if (strcmp(t->type, "histogram") == 0)
		print_histogram(t);
	else if (t->n == 1 && t->nl == 0)
		print_single(t, &t->rows[0]);
	else if (t->n > 0)
		print_table(t);
	t->n = 0;
	t->nl = 0;
	t->name[0] = '\0';
}

static void
term_family(void *arg, const char *name, const char *type, const char *help)
{
	struct term *t = arg;

	term_flush(t);
	copy(t->name, sizeof(t->name), name);
	copy(t->type, sizeof(t->type), type);
	copy(t->help, sizeof(t->help), help);
}

static void
term_sample(void *arg, const char *name, const struct metrics_label *l,
    size_t n, uint64_t v, int ns)
{
	struct term	*t = arg;
	struct row	*r;
	size_t		 i;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;

		if ((r = reallocarray(t->rows, cap, sizeof(*r))) == NULL) {
			t->failed = 1;
			return;
		}
		t->rows = r;
		t->cap = cap;
	}
	r = &t->rows[t->n++];
	memset(r, 0, sizeof(*r));
	copy(r->name, sizeof(r->name), name);
	for (i = 0; i < n; i++) {
		copy(r->lv[i], sizeof(r->lv[i]), l[i].value);
		if (t->n == 1)
			copy(t->ln[i], sizeof(t->ln[i]), l[i].name);
	}
	if (t->n == 1)
		t->nl = n;
	r->v = v;
	r->ns = ns;
}

/* ---- as JSON: {"NAME": {"type", "help", "samples": [{"name", "labels",
 * "value"}]}} ---------------------------------------------------------- */

struct js {
	json_object	*top, *samples;
	int		 failed;
};

static void
js_family(void *arg, const char *name, const char *type, const char *help)
{
	struct js	*j = arg;
	json_object	*fam;

	if ((fam = json_object_new_object()) == NULL ||
	    (j->samples = json_object_new_array()) == NULL) {
		json_object_put(fam);
		j->failed = 1;
		j->samples = NULL;
		return;
	}
	json_object_object_add(fam, "type", json_object_new_string(type));
	json_object_object_add(fam, "help", json_object_new_string(help));
	json_object_object_add(fam, "samples", j->samples);
	json_object_object_add(j->top, name, fam);
}

static void
js_sample(void *arg, const char *name, const struct metrics_label *l,
    size_t n, uint64_t v, int ns)
{
	struct js	*j = arg;
	json_object	*s, *labels, *val;
	char		 num[48];
	size_t		 i;

	if (j->samples == NULL || (s = json_object_new_object()) == NULL ||
	    (labels = json_object_new_object()) == NULL) {
		j->failed = 1;
		return;
	}
	for (i = 0; i < n; i++)
		json_object_object_add(labels, l[i].name,
		    json_object_new_string(l[i].value));
	/* Seconds written as metrics_number() writes them: to the
	 * nanosecond, without a binary fraction's tail. */
	metrics_number(num, sizeof(num), v, ns);
	val = ns ? json_object_new_double_s((double)v / 1e9, num) :
	    json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
	json_object_object_add(s, "name", json_object_new_string(name));
	json_object_object_add(s, "labels", labels);
	json_object_object_add(s, "value", val);
	json_object_array_add(j->samples, s);
}

int
stats_print(FILE *f, const struct metrics *m, const struct metrics_gauges *g,
    int json)
{
	if (json) {
		struct js		 j = { 0 };
		struct metrics_out	 o = { js_family, js_sample, &j };

		if ((j.top = json_object_new_object()) == NULL)
			return -1;
		metrics_walk(m, g, &o);
		if (!j.failed)
			fprintf(f, "%s\n", json_object_to_json_string_ext(j.top,
			    JSON_C_TO_STRING_PLAIN |
			    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j.top);
		return j.failed ? -1 : 0;
	} else {
		struct term		 t = { .f = f };
		struct metrics_out	 o = { term_family, term_sample, &t };

		metrics_walk(m, g, &o);
		if (!t.failed)
			term_flush(&t);
		free(t.rows);
		return t.failed ? -1 : 0;
	}
}
