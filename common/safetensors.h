/* common/safetensors.h: the safetensors format of the Python ecosystem (Hugging Face), written and
 * read back: what bin/export writes for PyTorch, numpy and notebooks.
 *
 * On disk: uint64 N (little-endian), N bytes of a JSON object, then the data. The object maps each
 * tensor's name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} (byte offsets into
 * the data, which follows the JSON), plus an optional "__metadata__" object of string values. Tensors
 * are row-major and little-endian, and tile the data in offset order without gaps or overlaps. The
 * writer pads the JSON with spaces to a multiple of 8 bytes, so every tensor written after 8-byte
 * ones starts 8-byte aligned in the file. */
#ifndef SINKTRACE_SAFETENSORS_H
#define SINKTRACE_SAFETENSORS_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SFT_F64, SFT_F32, SFT_I32, SFT_U8, SFT_DTYPES } SftDtype;

#define SFT_MAX_DIMS 8

typedef struct {
    char name[96];
    SftDtype dtype;
    int ndim;
    int64_t shape[SFT_MAX_DIMS];
    const unsigned char *data; /* the values, row-major (the reader's point into SftFile.bytes) */
} SftTensor;

/* a tensor of ndim sizes shape[] over data (not copied) */
SftTensor sft_tensor(const char *name, SftDtype dtype, const void *data, int ndim, const int64_t *shape);
/* elements and bytes of a tensor */
int64_t sft_count(const SftTensor *t);
int64_t sft_bytes(const SftTensor *t);

/* Writes the tensors in the order given (data in that order) and `metadata`, a cJSON object whose
 * values are all strings (NULL: none), through a crash-safe write (common/binfile.h). */
int sft_save(const char *path, const SftTensor *tensors, int n, const cJSON *metadata, char *err);

typedef struct {
    int n;
    SftTensor *tensors;     /* in the header's order */
    cJSON *metadata;        /* the "__metadata__" object; NULL when the file has none */
    unsigned char *bytes;   /* the whole file */
} SftFile;

/* Reads and checks a whole file: the header length against the file's size, the JSON, every tensor's
 * dtype, shape and offsets, and that the tensors tile the data exactly. Errors name the file and the
 * key. Tensor data is not aligned: read it with memcpy. */
int sft_load(SftFile *f, const char *path, char *err);
void sft_free(SftFile *f);
const SftTensor *sft_find(const SftFile *f, const char *name); /* NULL if absent */
const char *sft_meta(const SftFile *f, const char *key);       /* NULL if absent */

#endif
