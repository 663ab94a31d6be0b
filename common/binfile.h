/* common/binfile.h: the one header format of every binary file of the project (token shards,
 * tokenizers, checkpoints), exact reads with clear errors, and crash-safe writes.
 *
 * On disk (little-endian): char magic[8] | uint32 version | uint32 n_fields | int64 field[n_fields],
 * then the file's payload. What each field means belongs to the format that uses it. */
#ifndef SINKTRACE_BINFILE_H
#define SINKTRACE_BINFILE_H

#include <stdint.h>
#include <stdio.h>

#define ST_HDR_MAX_FIELDS 64

typedef struct {
    char magic[8]; /* NUL-padded, e.g. "STSHARD" */
    uint32_t version;
    uint32_t n_fields;
    int64_t field[ST_HDR_MAX_FIELDS];
} StHeader;

void st_header_init(StHeader *h, const char *magic, uint32_t version);
/* appends one field; returns its index */
int st_header_add(StHeader *h, int64_t value);
long st_header_bytes(const StHeader *h);
int st_header_write(FILE *f, const char *path, const StHeader *h, char *err);
/* reads a header and checks magic, version and that at least min_fields fields are present */
int st_header_read(FILE *f, const char *path, const char *magic, uint32_t version, uint32_t min_fields,
                   StHeader *h, char *err);

/* fread exactly `bytes` bytes of what the file calls `what`; a short read is "truncated" */
int st_read_exact(FILE *f, const char *path, void *buf, size_t bytes, const char *what, char *err);
int st_write_all(FILE *f, const char *path, const void *buf, size_t bytes, char *err);
int st_file_size(const char *path, int64_t *size, char *err);
/* the size and CRC-32 (zlib's) of a whole file */
int st_file_crc32(const char *path, int64_t *size, uint32_t *crc, char *err);
/* mkdir -p: creates path and every missing parent */
int st_make_dirs(const char *path, char *err);

/* Crash-safe write: everything goes to "<path>.tmp"; commit flushes, fsyncs, renames it over
 * <path> and fsyncs the directory, so a crash at any moment leaves the old file or the new one,
 * never a torn one. abort removes the temporary file. */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} StAtomic;
int st_atomic_open(StAtomic *a, const char *path, char *err);
int st_atomic_commit(StAtomic *a, char *err);
void st_atomic_abort(StAtomic *a);

#endif
