/* probes/attnmaps.c: reading and appending attention.bin (see attnmaps.h). */
#include "attnmaps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/util.h"

enum { F_T, F_L, F_H, F_STEPS, N_FIELDS };

void attnmaps_free(AttnMaps *m) {
    free(m->step);
    free(m->q);
    memset(m, 0, sizeof *m);
}

/* the shapes of a header, checked before anything is allocated from them */
static int read_shapes(const char *path, const StHeader *h, int64_t payload_bytes, AttnMaps *m, char *err) {
    int64_t T = h->field[F_T], L = h->field[F_L], H = h->field[F_H], n = h->field[F_STEPS];
    if (T < 2 || T > 4096 || L < 1 || L > 64 || H < 1 || H > 64 || n < 0)
        return st_errorf(err, "%s: header fields T, n_layer, n_head, n_steps: expected 2..4096, 1..64, 1..64, >= 0, "
                              "found %lld, %lld, %lld, %lld",
                         path, (long long)T, (long long)L, (long long)H, (long long)n);
    int64_t record = 8 + 2 * L * H * T * T; /* a record: its step, then L x H maps of T x T */
    if (payload_bytes % record != 0 || payload_bytes / record != n) /* divided, so a huge n cannot overflow */
        return st_errorf(err, "%s: payload size: expected %lld steps of %lld bytes, found %lld bytes", path,
                         (long long)n, (long long)record, (long long)payload_bytes);
    m->T = (int)T, m->L = (int)L, m->H = (int)H, m->n_steps = (int)n;
    return 0;
}

int attnmaps_read(const char *path, AttnMaps *m, char *err) {
    memset(m, 0, sizeof *m);
    if (access(path, F_OK) != 0) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, "%s: cannot open", path);
    StHeader h;
    int64_t payload = 0;
    int rc = st_header_read(f, path, ATTN_MAGIC, ATTN_VERSION, N_FIELDS, &h, err) ||
             st_payload_bytes(path, &h, &payload, err);
    if (!rc) rc = read_shapes(path, &h, payload, m, err);
    size_t per_step = (size_t)m->L * m->H * attnmaps_map_size(m);
    if (!rc) {
        m->step = st_malloc(sizeof(int64_t) * ((size_t)m->n_steps + 1));
        m->q = st_malloc(sizeof(uint16_t) * (per_step * m->n_steps + 1));
    }
    for (int s = 0; s < m->n_steps && !rc; s++) {
        rc = st_read_exact(f, path, &m->step[s], 8, "record step", err) ||
             st_read_exact(f, path, m->q + per_step * s, 2 * per_step, "attention record", err);
        if (!rc && s > 0 && m->step[s] <= m->step[s - 1])
            rc = st_errorf(err, "%s: record %d: step: expected more than %lld, found %lld", path, s,
                           (long long)m->step[s - 1], (long long)m->step[s]);
    }
    fclose(f);
    if (rc) attnmaps_free(m);
    return rc ? -1 : 0;
}

/* writes header and records [0, keep) of m plus the new record (step, maps) */
static int write_file(const char *path, const AttnMaps *m, int keep, long step, const float *maps, char *err) {
    size_t per_step = (size_t)m->L * m->H * attnmaps_map_size(m);
    StHeader h;
    st_header_init(&h, ATTN_MAGIC, ATTN_VERSION);
    st_header_add(&h, m->T), st_header_add(&h, m->L), st_header_add(&h, m->H), st_header_add(&h, keep + 1);
    uint16_t *q = st_malloc(sizeof(uint16_t) * per_step);
    for (size_t i = 0; i < per_step; i++) { /* clamped: a probability is in [0, 1] up to rounding */
        double p = maps[i] < 0 ? 0 : maps[i] > 1 ? 1 : maps[i];
        q[i] = (uint16_t)lround(p * ATTN_SCALE);
    }
    int64_t s64 = step;
    StAtomic a;
    int rc = st_atomic_open(&a, path, err) ? -1 : st_atomic_write_header(&a, &h, err);
    for (int s = 0; s < keep && !rc; s++)
        rc = st_write_all(a.f, path, &m->step[s], 8, err) || st_write_all(a.f, path, m->q + per_step * s, 2 * per_step, err);
    if (!rc) rc = st_write_all(a.f, path, &s64, 8, err) || st_write_all(a.f, path, q, 2 * per_step, err);
    free(q);
    if (rc) {
        if (a.f) st_atomic_abort(&a);
        return -1;
    }
    return st_atomic_commit(&a, err);
}

int attnmaps_append(const char *path, long step, const float *maps, int L, int H, int T, char *err) {
    AttnMaps m;
    if (attnmaps_read(path, &m, err) < 0) return -1;
    if (m.n_steps > 0 && (m.L != L || m.H != H || m.T != T)) {
        st_errorf(err, "%s: shapes: expected n_layer %d, n_head %d, T %d (this run's), found %d, %d, %d", path, L, H,
                  T, m.L, m.H, m.T);
        attnmaps_free(&m);
        return -1;
    }
    m.L = L, m.H = H, m.T = T;
    int keep = 0;
    while (keep < m.n_steps && m.step[keep] < step) keep++;
    int rc = write_file(path, &m, keep, step, maps, err);
    attnmaps_free(&m);
    return rc;
}

double attnmaps_prob(const AttnMaps *m, int s, int l, int h, int q, int k) {
    size_t map = ((size_t)s * m->L + l) * m->H + h;
    return m->q[map * attnmaps_map_size(m) + (size_t)q * m->T + k] / ATTN_SCALE;
}

int attnmaps_nearest(const AttnMaps *m, double step) {
    int best = -1;
    for (int s = 0; s < m->n_steps; s++)
        if (best < 0 || fabs((double)m->step[s] - step) < fabs((double)m->step[best] - step)) best = s;
    return best;
}
