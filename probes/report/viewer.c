/* probes/report/viewer.c: report.html and compare.html (see viewer.h). The page is written in three parts:
 * the report's markdown as HTML (figures inlined as base64 PNG), the runs' data as one JSON block, and
 * the viewer's script and style. */
#include "viewer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/binfile.h"
#include "../../common/util.h"
#include "../attnmaps.h"
#include "plot.h"

/* probes/report/viewer.js and probes/report/viewer.css, built into the program by the assembler (paths relative to
 * the directory the compiler runs in, the repository's root; the Makefile makes viewer.o depend on
 * both files); each ends with a NUL so it reads as one C string */
__asm__(".section .rodata\n"
        ".global st_viewer_js\n"
        "st_viewer_js:\n"
        ".incbin \"probes/report/viewer.js\"\n"
        ".byte 0\n"
        ".global st_viewer_css\n"
        "st_viewer_css:\n"
        ".incbin \"probes/report/viewer.css\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char st_viewer_js[], st_viewer_css[];

/* ---------------------------------------------------------------- text helpers */

/* writes n bytes as base64 (RFC 4648, with '=' padding) */
static void put_base64(FILE *f, const unsigned char *b, size_t n) {
    static const char digit[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)b[i] << 16 | (i + 1 < n ? (unsigned)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        char out[4] = {digit[v >> 18 & 63], digit[v >> 12 & 63], i + 1 < n ? digit[v >> 6 & 63] : '=',
                       i + 2 < n ? digit[v & 63] : '='};
        fwrite(out, 1, 4, f);
    }
}

/* the n bytes of text s with &, < and > escaped */
static void put_escaped(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '&') fputs("&amp;", f);
        else if (s[i] == '<') fputs("&lt;", f);
        else if (s[i] == '>') fputs("&gt;", f);
        else fputc(s[i], f);
    }
}

/* one line of markdown prose: **strong**, *emphasis* and `code` (each closed at the line's end) */
static void put_inline(FILE *f, const char *s, size_t n) {
    int strong = 0, em = 0, code = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '`') {
            fputs((code = !code) ? "<code>" : "</code>", f);
        } else if (!code && s[i] == '*' && i + 1 < n && s[i + 1] == '*') {
            fputs((strong = !strong) ? "<strong>" : "</strong>", f);
            i++;
        } else if (!code && s[i] == '*') {
            fputs((em = !em) ? "<em>" : "</em>", f);
        } else {
            put_escaped(f, s + i, 1);
        }
    }
    if (code) fputs("</code>", f);
    if (em) fputs("</em>", f);
    if (strong) fputs("</strong>", f);
}

/* reads a whole file into a NUL-terminated buffer (NULL when it cannot be read); *n gets its size */
static char *slurp(const char *path, size_t *n) {
    char err[ST_ERR_LEN];
    int64_t size;
    FILE *f = st_file_size(path, &size, err) ? NULL : fopen(path, "rb");
    if (!f) return NULL;
    char *buf = st_malloc((size_t)size + 1);
    *n = fread(buf, 1, (size_t)size, f);
    buf[*n] = 0;
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------- the report as HTML */

/* an image line ![alt](file): the PNG from dir inlined, or the alt text when it cannot be read */
static void put_image(FILE *f, const char *dir, const char *line) {
    const char *alt = line + 2, *alt_end = strchr(alt, ']'), *file = alt_end ? alt_end + 2 : NULL;
    const char *file_end = file ? strchr(file, ')') : NULL;
    if (!file_end) {
        put_escaped(f, line, strlen(line));
        return;
    }
    char path[2400];
    snprintf(path, sizeof path, "%s/%.*s", dir, (int)(file_end - file), file);
    size_t n;
    unsigned char *png = (unsigned char *)slurp(path, &n);
    fputs("<figure>", f);
    if (png) {
        fputs("<img alt=\"", f);
        put_escaped(f, alt, (size_t)(alt_end - alt));
        fputs("\" src=\"data:image/png;base64,", f);
        put_base64(f, png, n);
        fputs("\">", f);
        free(png);
    }
    fputs("<figcaption>", f);
    put_escaped(f, file, (size_t)(file_end - file));
    fputs(png ? "</figcaption></figure>\n" : " (not found)</figcaption></figure>\n", f);
}

/* a table row | a | b |: header cells for the first row of a table */
static void put_table_row(FILE *f, const char *line, int header) {
    const char *cell = line + 1, *tag = header ? "th" : "td";
    fputs("<tr>", f);
    for (const char *bar; (bar = strchr(cell, '|')); cell = bar + 1) {
        while (*cell == ' ') cell++;
        const char *end = bar;
        while (end > cell && end[-1] == ' ') end--;
        fprintf(f, "<%s>", tag);
        put_inline(f, cell, (size_t)(end - cell));
        fprintf(f, "</%s>", tag);
    }
    fputs("</tr>\n", f);
}

/* The subset of markdown report.md and compare.md use: # headings, paragraphs (ended by a blank line),
 * | tables | (whose second row is the |---| separator), ![images](file.png) on their own line. */
static void put_markdown(FILE *f, const char *dir, char *md) {
    enum { BLANK, HEADING, IMAGE, PARA, TABLE };
    int open = BLANK;
    int table_row = 0;
    for (char *line = md, *end; line && *line; line = end ? end + 1 : NULL) {
        if ((end = strchr(line, '\n'))) *end = 0;
        int kind = !line[0]               ? BLANK
                   : line[0] == '|'       ? TABLE
                   : line[0] == '#'       ? HEADING
                   : !strncmp(line, "![", 2) ? IMAGE
                                          : PARA;
        if (open != kind) { /* close what the previous lines opened, open what this one starts */
            fputs(open == PARA ? "</p>\n" : open == TABLE ? "</table>\n" : "", f);
            fputs(kind == PARA ? "<p>" : kind == TABLE ? "<table>\n" : "", f);
            table_row = 0;
        } else if (kind == PARA) {
            fputc('\n', f);
        }
        open = kind;
        if (kind == TABLE && table_row++ != 1) {
            put_table_row(f, line, table_row == 1);
        } else if (kind == PARA) {
            put_inline(f, line, strlen(line));
        } else if (kind == HEADING) {
            int level = (int)strspn(line, "#");
            const char *text = line + level + (line[level] == ' ');
            fprintf(f, "<h%d>", level);
            put_inline(f, text, strlen(text));
            fprintf(f, "</h%d>\n", level);
        } else if (kind == IMAGE) {
            put_image(f, dir, line);
        }
    }
    fputs(open == PARA ? "</p>\n" : open == TABLE ? "</table>\n" : "", f);
}

/* ---------------------------------------------------------------- the data of a run */

static void add_doubles(cJSON *o, const char *key, const double *v, size_t n) {
    cJSON_AddItemToObject(o, key, cJSON_CreateDoubleArray(v, (int)n));
}

/* attention.bin as {T, L, H, step[], record[np] (the record nearest each probe row), q: base64 of the
 * uint16 records}; NULL when the run has none */
static cJSON *attention_data(const Run *r, const double *probe_step, AttnMaps *m, char *err, int *rc) {
    char path[1200];
    snprintf(path, sizeof path, "%s/attention.bin", r->dir);
    *rc = attnmaps_read(path, m, err);
    if (*rc != 0 || m->n_steps == 0) {
        *rc = *rc < 0 ? -1 : 0;
        return NULL;
    }
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "T", m->T);
    cJSON_AddNumberToObject(a, "L", m->L);
    cJSON_AddNumberToObject(a, "H", m->H);
    double *v = st_malloc(sizeof(double) * ((size_t)m->n_steps + r->np));
    for (int s = 0; s < m->n_steps; s++) v[s] = (double)m->step[s];
    add_doubles(a, "step", v, (size_t)m->n_steps);
    for (int k = 0; k < r->np; k++) v[k] = attnmaps_nearest(m, probe_step[k]);
    add_doubles(a, "record", v, (size_t)r->np);
    free(v);
    return a;
}

/* the JSON of one run: train curve, probe rows (a_p0_layer [np][L], rho [np][P] flattened), chance */
static cJSON *run_data(const Run *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "variant", r->variant);
    cJSON_AddNumberToObject(o, "L", r->L);
    cJSON_AddNumberToObject(o, "P", r->P);
    const char *train_keys[3] = {"step", "ce", "val_loss"};
    for (int k = 0; k < 3; k++) {
        char key[32];
        snprintf(key, sizeof key, "train_%s", train_keys[k]);
        double *v = run_train_col(r, train_keys[k]);
        add_doubles(o, key, v, (size_t)r->train.n);
        free(v);
    }
    const char *probe_keys[4] = {"step", "chance", "a_p0_2plus", "sink_rate_30"};
    for (int k = 0; k < 4 && r->np > 0; k++) {
        double *v = run_probe_col(r, probe_keys[k]);
        add_doubles(o, probe_keys[k], v, (size_t)r->np);
        free(v);
    }
    const struct {
        const char *key;
        int width;
    } mats[2] = {{"a_p0_layer", r->L}, {"rho", r->P}};
    for (int k = 0; k < 2 && r->np > 0; k++) {
        double *v = run_probe_mat(r, mats[k].key, mats[k].width);
        add_doubles(o, mats[k].key, v, (size_t)r->np * mats[k].width);
        free(v);
    }
    return o;
}

/* the colour map of the figures (plot.h) as 256 RGB triples, so the page's maps match the PNGs */
static cJSON *colormap_data(void) {
    double rgb[256 * 3];
    for (int i = 0; i < 256; i++) {
        PlColor c = pl_colormap(i / 255.0);
        rgb[3 * i] = c.r, rgb[3 * i + 1] = c.g, rgb[3 * i + 2] = c.b;
    }
    return cJSON_CreateDoubleArray(rgb, 256 * 3);
}

/* the JSON block: {"colormap": [...], "runs": [...]}, each run's attention records after it as a
 * separate base64 script block (too large to go through cJSON's printer); '<' written as \u003c so
 * no string can close the script element */
static int put_data(FILE *f, const Run *runs, int n_runs, char *err) {
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "runs");
    cJSON_AddItemToObject(root, "colormap", colormap_data());
    AttnMaps *maps = st_calloc((size_t)n_runs, sizeof(AttnMaps));
    int rc = 0;
    for (int i = 0; i < n_runs && !rc; i++) {
        cJSON *o = run_data(&runs[i]);
        double *step = runs[i].np ? run_probe_col(&runs[i], "step") : NULL;
        cJSON *a = attention_data(&runs[i], step, &maps[i], err, &rc);
        free(step);
        if (a) cJSON_AddItemToObject(o, "attn", a);
        cJSON_AddItemToArray(list, o);
    }
    char *json = rc ? NULL : cJSON_PrintUnformatted(root);
    if (json) {
        fputs("<script type=\"application/json\" id=\"run-data\">", f);
        for (const char *c = json; *c; c++)
            if (*c == '<') fputs("\\u003c", f);
            else fputc(*c, f);
        fputs("</script>\n", f);
    }
    for (int i = 0; i < n_runs && json; i++) {
        const AttnMaps *m = &maps[i];
        fprintf(f, "<script type=\"text/plain\" id=\"attn-data-%d\">", i);
        put_base64(f, (const unsigned char *)m->q, sizeof(uint16_t) * (size_t)m->n_steps * m->L * m->H * m->T * m->T);
        fputs("</script>\n", f);
    }
    for (int i = 0; i < n_runs; i++) attnmaps_free(&maps[i]);
    free(maps);
    free(json);
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------- the page */

static int write_page(const char *out_dir, const char *md_name, const char *html_name, const char *title,
                      const Run *runs, int n_runs, char *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", out_dir, md_name);
    size_t n;
    char *md = slurp(path, &n);
    if (!md) return st_errorf(err, "%s: cannot read (it is written before the page)", path);
    snprintf(path, sizeof path, "%s/%s", out_dir, html_name);
    StAtomic a;
    if (st_atomic_open(&a, path, err)) {
        free(md);
        return -1;
    }
    FILE *f = a.f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    put_escaped(f, title, strlen(title));
    fprintf(f, "</title>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>\n%s</style>\n"
               "</head>\n<body>\n<div id=\"viewer\" hidden></div>\n<noscript><p class=\"note\">JavaScript is off: "
               "this is the static report; with it, a viewer above scrubs through the probe steps.</p></noscript>\n"
               "<main id=\"report\">\n",
            st_viewer_css);
    put_markdown(f, out_dir, md);
    fputs("</main>\n", f);
    free(md);
    int rc = put_data(f, runs, n_runs, err);
    fprintf(f, "<script>\n%s</script>\n</body>\n</html>\n", st_viewer_js);
    if (!rc && ferror(f)) rc = st_errorf(err, "%s: write failed", path);
    if (rc) {
        st_atomic_abort(&a);
        return -1;
    }
    return st_atomic_commit(&a, err);
}

int viewer_write_run(const Run *r, char *err) {
    char title[300];
    snprintf(title, sizeof title, "Run report: %s", r->name);
    return write_page(r->dir, "report.md", "report.html", title, r, 1, err);
}

int viewer_write_compare(const Run *runs, int n_runs, const char *out_dir, char *err) {
    char title[64];
    snprintf(title, sizeof title, "Comparison of %d runs", n_runs);
    return write_page(out_dir, "compare.md", "compare.html", title, runs, n_runs, err);
}
