#include "fuzz_feed.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/binfile.h"
#include "../common/safetensors.h"
#include "../common/util.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../probes/attnmaps.h"
#include "../probes/probeset.h"
#include "../probes/report/runlog.h"
#include "../train/checkpoint.h"
#include "../train/config.h"
#include "../train/sweep.h"

static char dir[64]; /* a per-process temporary directory, removed at exit */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static void remove_dir(void) { nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

/* the parsers read files: the input goes to <dir>/<name> */
static const char *input_file(const char *name, const uint8_t *data, size_t size) {
    static char path[128];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/sinktrace_fuzz_XXXXXX");
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            exit(1);
        }
        atexit(remove_dir);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    return path;
}

int fuzz_reseal_checksums = 0;

/* input_file for a binary format: with fuzz_reseal_checksums, its last 8 bytes become the checksum
 * trailer of the bytes before them */
static const char *input_binfile(const char *name, const uint8_t *data, size_t size) {
    if (!fuzz_reseal_checksums || size < ST_TRAILER_BYTES) return input_file(name, data, size);
    uint8_t *copy = st_malloc(size);
    memcpy(copy, data, size);
    st_checksum_trailer(copy, size - ST_TRAILER_BYTES, copy + size - ST_TRAILER_BYTES);
    const char *path = input_file(name, copy, size);
    free(copy);
    return path;
}

static int feed_shard(const uint8_t *data, size_t size, char *err) {
    Shard s;
    int rc = shard_read(input_binfile("train.bin", data, size), &s, err);
    if (rc == 0) shard_free(&s);
    return rc;
}

static int feed_tokenizer(const uint8_t *data, size_t size, char *err) {
    Tokenizer *tok;
    int rc = tokenizer_load(&tok, input_binfile("tokenizer.bin", data, size), err);
    if (rc == 0) {
        /* a loaded tokenizer must encode and decode without faults */
        static const uint8_t text[] = "Call me Ishmael. Some years ago";
        int ids[sizeof text];
        uint8_t back[4 * sizeof text];
        size_t n = tokenizer_encode(tok, text, sizeof text - 1, ids);
        tokenizer_decode(tok, ids, n, back, sizeof back);
        tokenizer_free(tok);
    }
    return rc;
}

/* checkpoints are read the way bin/probe and bin/sample read them: the stored config, a model built
 * from it, then the load (which the checkpoint's parameter count must fit) */
static int feed_checkpoint(const uint8_t *data, size_t size, char *err) {
    const char *path = input_binfile("ckpt_00000001.bin", data, size);
    TrainConfig cfg;
    int64_t step;
    if (ckpt_read_step(path, &step, err) || ckpt_read_config(path, &cfg, err)) return -1;
    Moe m;
    if (moe_init(&m, &cfg.model, err)) return -1;
    CkptState s;
    int rc = ckpt_load(path, NULL, &m, NULL, &s, err);
    moe_free(&m);
    return rc;
}

/* a config file as bin/train --config reads it (config_read_file, then config_parse_lines through
 * config_load_text); the validation of the combination of keys follows */
static int feed_config(const uint8_t *data, size_t size, char *err) {
    TrainConfig c;
    config_defaults(&c);
    int rc = config_load_file(&c, input_file("fuzz.conf", data, size), err);
    return rc ? rc : config_validate(&c, err);
}

static int feed_sweep(const uint8_t *data, size_t size, char *err) {
    static Sweep s; /* large: kept off the stack */
    return sweep_load(&s, input_file("fuzz.sweep", data, size), err);
}

static int feed_probeset(const uint8_t *data, size_t size, char *err) {
    ProbeSet ps;
    int rc = probe_set_load(&ps, input_binfile("probe_set.bin", data, size), err);
    if (rc == 0) probe_set_free(&ps);
    return rc;
}

static int feed_attention(const uint8_t *data, size_t size, char *err) {
    AttnMaps m;
    int rc = attnmaps_read(input_binfile("attention.bin", data, size), &m, err);
    if (rc == 0) attnmaps_free(&m);
    return rc;
}

/* JSONL as the report reads it: the rows, then the checks of train.jsonl's columns */
static int feed_jsonl(const uint8_t *data, size_t size, char *err) {
    Jsonl j;
    int rc = jsonl_read(input_file("train.jsonl", data, size), &j, err);
    if (rc != 0) return rc; /* a failed read frees what it read */
    /* as the report does: the width of an array column comes from the first row */
    int width = j.n ? jlen(j.row[0], "load_max_mean") : -1;
    rc = jsonl_require_num(&j, "step", 1, err) || (width >= 0 && jsonl_require_arr(&j, "load_max_mean", width, err))
             ? -1
             : 0;
    jsonl_free(&j);
    return rc;
}

static int feed_runconfig(const uint8_t *data, size_t size, char *err) {
    static RunConfig c; /* large: kept off the stack */
    return runconfig_read(input_file("config.txt", data, size), &c, err);
}

/* a safetensors file as bin/export reads back the file it wrote */
static int feed_safetensors(const uint8_t *data, size_t size, char *err) {
    SftFile f;
    int rc = sft_load(&f, input_file("model.safetensors", data, size), err);
    if (rc == 0) sft_free(&f);
    return rc;
}

const FuzzParser FUZZ_PARSERS[] = {
    {"shard", feed_shard},     {"tokenizer", feed_tokenizer}, {"checkpoint", feed_checkpoint},
    {"config", feed_config},   {"sweep", feed_sweep},         {"probeset", feed_probeset},
    {"jsonl", feed_jsonl},     {"runconfig", feed_runconfig}, {"safetensors", feed_safetensors},
    {"attention", feed_attention},
};
const int FUZZ_N_PARSERS = sizeof FUZZ_PARSERS / sizeof FUZZ_PARSERS[0];

const FuzzParser *fuzz_parser(const char *name) {
    for (int i = 0; i < FUZZ_N_PARSERS; i++)
        if (strcmp(FUZZ_PARSERS[i].name, name) == 0) return &FUZZ_PARSERS[i];
    return NULL;
}
