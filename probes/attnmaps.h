/* probes/attnmaps.h: attention.bin, the attention maps of one probe window at every probe step, so a
 * reader (the figures, report.html's slider) can look at any step of a run, also while it trains.
 *
 * On disk: the project's header (common/binfile.h) with magic "STATTN", version 1 and the fields
 * T, n_layer, n_head, n_steps; then n_steps records of int64 step | uint16 attn[L][H][T][T], each
 * probability stored as round(p * 65535). The prober rewrites the whole file through a crash-safe write
 * after each probe step, so a reader sees the file before that step or after it, never half of one. */
#ifndef SINKTRACE_ATTNMAPS_H
#define SINKTRACE_ATTNMAPS_H

#include <stdint.h>

#define ATTN_MAGIC "STATTN"
#define ATTN_VERSION 1
#define ATTN_SCALE 65535.0

typedef struct {
    int T, L, H, n_steps;
    int64_t *step; /* [n_steps], increasing */
    uint16_t *q;   /* [n_steps][L][H][T][T] probabilities times ATTN_SCALE */
} AttnMaps;

/* 0 read, 1 the file is absent (m empty), -1 malformed (err names the file and what is wrong) */
int attnmaps_read(const char *path, AttnMaps *m, char *err);
void attnmaps_free(AttnMaps *m);

/* Adds the maps [L][H][T][T] of `step` to the file at path (created when absent). Records of steps >=
 * step are dropped first: a resumed run probes those steps again. A file of other shapes is an error. */
int attnmaps_append(const char *path, long step, const float *maps, int L, int H, int T, char *err);

/* values of one map in one record */
static inline int64_t attnmaps_map_size(const AttnMaps *m) { return (int64_t)m->T * m->T; }
/* probability of query q on key k in layer l, head h at record s */
double attnmaps_prob(const AttnMaps *m, int s, int l, int h, int q, int k);
/* the record whose step is nearest `step` (-1 when the file has none) */
int attnmaps_nearest(const AttnMaps *m, double step);

#endif
