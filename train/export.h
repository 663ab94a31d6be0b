/* train/export.h: a run's checkpoint as one safetensors file (common/safetensors.h), the format
 * PyTorch, numpy and notebooks read: bin/export, and python/sinktrace_torch.py on the other side.
 *
 * Tensors:
 *   every named tensor of the model (model/moe.h's table: same names, shapes [out][in], F32), in the
 *   table's order, so the data begins with the checkpoint's parameter buffer as it is;
 *   probe.tokens [7][n][T], probe.targets [n][T] (I32) and probe.classes [n][T] (U8): the run's probe
 *   set (probes/probeset.h; variants in the order of the metadata's probe_variants), when it has one;
 *   tokenizer.offsets [V+1] (I32) and tokenizer.bytes (U8): token id i decodes to the bytes
 *   [offsets[i], offsets[i+1]) of tokenizer.bytes (BOS to nothing, a symbol to "<s12>").
 * __metadata__ (strings, as safetensors requires):
 *   format "sinktrace", format_version "1"; config: the checkpoint's config as `key = value` lines
 *   (every key, the same text bin/train --config reads); step, tokens, val_loss ("nan" when none);
 *   tokenizer "bytes" | "bpe" | "symbols", bos_id (-1: none); probe_variants ("natural,bos,...");
 *   probes_jsonl: the run's probes.jsonl lines at this step, one per line ("" when none), which a
 *   notebook reproduces from probe.tokens with the same definitions (probes/metrics.h). */
#ifndef SINKTRACE_EXPORT_H
#define SINKTRACE_EXPORT_H

#include <stdint.h>

typedef struct {
    char ckpt[4200];  /* the checkpoint exported */
    int64_t step;
    int n_tensors;
    int64_t bytes;    /* of the file written */
    int probe_n, probe_T; /* the probe set's shape (0 when the run has no probe_set.bin) */
    int probe_lines;  /* probes.jsonl lines at this step */
} ExportInfo;

/* Writes the checkpoint of run_dir at `step` (-1: the latest) to out, then reads out back and checks
 * that every tensor is bit for bit what was written. */
int export_run(const char *run_dir, int64_t step, const char *out, ExportInfo *info, char *err);

#endif
