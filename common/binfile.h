/* common/binfile.h: the one header format of every binary file of the project (token shards,
 * tokenizers, checkpoints, probe sets), exact reads with clear errors, and crash-safe writes.
 *
 * On disk (little-endian): char magic[8] | uint32 version | uint32 n_fields | int64 field[n_fields],
 * then the file's payload, then a trailer: char tag[4] = "STCK" | uint32 CRC-32 (zlib's) of every byte
 * before the trailer. What each field means belongs to the format that uses it.
 *
 * The checksum is the layer's, not the format's: a header written with st_atomic_write_header gets
 * its trailer when the file is committed, and st_header_read checks it (after the magic and version,
 * so a file of another format or version says so) before the caller reads any field. A flipped byte or
 * a truncation anywhere is then one error naming the file, before its data is used. */
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

#define ST_TRAILER_BYTES 8

void st_header_init(StHeader *h, const char *magic, uint32_t version);
/* appends one field; returns its index */
int st_header_add(StHeader *h, int64_t value);
long st_header_bytes(const StHeader *h);
/* Reads a header and checks magic, version, the whole file's checksum and that at least min_fields
 * fields are present; f is left at the first byte of the payload. */
int st_header_read(FILE *f, const char *path, const char *magic, uint32_t version, uint32_t min_fields,
                   StHeader *h, char *err);
/* the bytes of the payload of a file whose header is h: its size less the header and the trailer */
int st_payload_bytes(const char *path, const StHeader *h, int64_t *bytes, char *err);
/* the trailer of `size` bytes of a file (what st_atomic_commit appends); for tools that make files */
void st_checksum_trailer(const void *data, size_t size, unsigned char trailer[ST_TRAILER_BYTES]);

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
    int checksummed; /* a header was written: commit appends the checksum trailer */
} StAtomic;
int st_atomic_open(StAtomic *a, const char *path, char *err);
/* the header of a binary file, first in it; the file gets its checksum trailer on commit */
int st_atomic_write_header(StAtomic *a, const StHeader *h, char *err);
int st_atomic_commit(StAtomic *a, char *err);
void st_atomic_abort(StAtomic *a);

#endif
