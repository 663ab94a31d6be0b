#include "binfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util.h"

void st_header_init(StHeader *h, const char *magic, uint32_t version) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, magic, strnlen(magic, sizeof h->magic));
    h->version = version;
}

int st_header_add(StHeader *h, int64_t value) {
    if (h->n_fields >= ST_HDR_MAX_FIELDS) {
        fprintf(stderr, "error: header '%.8s' has more than %d fields\n", h->magic, ST_HDR_MAX_FIELDS);
        return -1;
    }
    h->field[h->n_fields] = value;
    return (int)h->n_fields++;
}

long st_header_bytes(const StHeader *h) { return 16 + 8 * (long)h->n_fields; }

static int header_write(FILE *f, const char *path, const StHeader *h, char *err) {
    if (st_write_all(f, path, h->magic, 8, err) || st_write_all(f, path, &h->version, 4, err) ||
        st_write_all(f, path, &h->n_fields, 4, err) ||
        st_write_all(f, path, h->field, 8 * (size_t)h->n_fields, err))
        return -1;
    return 0;
}

/* copies a magic into a printable string for error messages */
static void printable_magic(const char in[8], char out[33]) {
    int o = 0;
    for (int i = 0; i < 8 && in[i]; i++) {
        unsigned char c = (unsigned char)in[i];
        o += (c >= 32 && c < 127) ? snprintf(out + o, 33 - (size_t)o, "%c", c)
                                  : snprintf(out + o, 33 - (size_t)o, "\\x%02x", c);
    }
    out[o] = 0;
}

static const char TRAILER_TAG[4] = {'S', 'T', 'C', 'K'};

/* "STCK" and the CRC little-endian */
static void make_trailer(uint32_t crc, unsigned char trailer[ST_TRAILER_BYTES]) {
    memcpy(trailer, TRAILER_TAG, 4);
    for (int b = 0; b < 4; b++) trailer[4 + b] = (unsigned char)(crc >> (8 * b));
}

void st_checksum_trailer(const void *data, size_t size, unsigned char trailer[ST_TRAILER_BYTES]) {
    make_trailer((uint32_t)crc32_z(crc32(0L, Z_NULL, 0), data, size), trailer);
}

/* the CRC-32 of the first n bytes of f */
static int crc_of_prefix(FILE *f, const char *path, int64_t n, uint32_t *crc, char *err) {
    unsigned char buf[1 << 16];
    uLong sum = crc32(0L, Z_NULL, 0);
    if (fseek(f, 0, SEEK_SET) != 0) return st_errorf(err, "%s: cannot seek: %s", path, strerror(errno));
    for (int64_t left = n; left > 0;) {
        size_t want = left < (int64_t)sizeof buf ? (size_t)left : sizeof buf;
        if (st_read_exact(f, path, buf, want, "checksummed bytes", err)) return -1;
        sum = crc32_z(sum, buf, want);
        left -= (int64_t)want;
    }
    *crc = (uint32_t)sum;
    return 0;
}

/* Checks the trailer of the whole file against its bytes, then puts f back where it was (just after
 * the magic and version). */
static int check_trailer(FILE *f, const char *path, char *err) {
    long at = ftell(f);
    if (at < 0 || fseek(f, 0, SEEK_END) != 0) return st_errorf(err, "%s: cannot seek: %s", path, strerror(errno));
    int64_t size = ftell(f), body = size - ST_TRAILER_BYTES;
    if (body < at)
        return st_errorf(err, "%s: truncated: expected a header and a %d-byte checksum trailer, found %" PRId64 " bytes",
                         path, ST_TRAILER_BYTES, size);
    unsigned char stored[ST_TRAILER_BYTES], want[ST_TRAILER_BYTES];
    uint32_t crc;
    if (crc_of_prefix(f, path, body, &crc, err) || st_read_exact(f, path, stored, sizeof stored, "checksum", err))
        return -1;
    make_trailer(crc, want);
    if (memcmp(stored, want, sizeof want) != 0)
        return st_errorf(err, "%s: checksum: expected CRC-32 %08" PRIx32 " of its %" PRId64 " bytes, found %s "
                         "(the file is corrupt or truncated)", path, crc, body,
                         memcmp(stored, TRAILER_TAG, 4) ? "no trailer" : "another");
    return fseek(f, at, SEEK_SET) == 0 ? 0 : st_errorf(err, "%s: cannot seek: %s", path, strerror(errno));
}

int st_payload_bytes(const char *path, const StHeader *h, int64_t *bytes, char *err) {
    if (st_file_size(path, bytes, err)) return -1;
    *bytes -= st_header_bytes(h) + ST_TRAILER_BYTES;
    return 0;
}

int st_header_read(FILE *f, const char *path, const char *magic, uint32_t version, uint32_t min_fields,
                   StHeader *h, char *err) {
    memset(h, 0, sizeof *h);
    if (st_read_exact(f, path, h->magic, 8, "header magic", err)) return -1;
    char want[8] = {0};
    memcpy(want, magic, strnlen(magic, 8));
    if (memcmp(h->magic, want, 8) != 0) {
        char found[33];
        printable_magic(h->magic, found);
        return st_errorf(err, "%s: magic: expected '%.8s', found '%s' (not a %.8s file)", path, magic, found,
                         magic);
    }
    if (st_read_exact(f, path, &h->version, 4, "header version", err) ||
        st_read_exact(f, path, &h->n_fields, 4, "header field count", err))
        return -1;
    if (h->version != version)
        return st_errorf(err, "%s: version: expected %u, found %u (written by another version of sinktrace: make it "
                         "again)", path, version, h->version);
    if (check_trailer(f, path, err)) return -1;
    if (h->n_fields < min_fields || h->n_fields > ST_HDR_MAX_FIELDS)
        return st_errorf(err, "%s: header field count: expected %u to %d, found %u", path, min_fields,
                         ST_HDR_MAX_FIELDS, h->n_fields);
    return st_read_exact(f, path, h->field, 8 * (size_t)h->n_fields, "header fields", err);
}

int st_read_exact(FILE *f, const char *path, void *buf, size_t bytes, const char *what, char *err) {
    size_t got = fread(buf, 1, bytes, f);
    if (got != bytes) {
        if (ferror(f)) return st_errorf(err, "%s: reading %s: %s", path, what, strerror(errno));
        return st_errorf(err, "%s: truncated: expected %zu bytes of %s, found %zu", path, bytes, what, got);
    }
    return 0;
}

int st_write_all(FILE *f, const char *path, const void *buf, size_t bytes, char *err) {
    if (bytes && fwrite(buf, 1, bytes, f) != bytes)
        return st_errorf(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

int st_file_size(const char *path, int64_t *size, char *err) {
    struct stat st;
    if (stat(path, &st) != 0) return st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
    *size = (int64_t)st.st_size;
    return 0;
}

int st_file_crc32(const char *path, int64_t *size, uint32_t *crc, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = st_file_size(path, size, err) || crc_of_prefix(f, path, *size, crc, err) ? -1 : 0;
    fclose(f);
    return rc;
}

int st_make_dirs(const char *path, char *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0; /* each prefix ending at a '/' is a parent to create */
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return st_errorf(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = c;
        if (!c) return 0;
    }
}

int st_atomic_open(StAtomic *a, const char *path, char *err) {
    if (strlen(path) >= sizeof a->path) return st_errorf(err, "%s: path too long", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp", path);
    a->checksummed = 0;
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return st_errorf(err, "%s: cannot create: %s", a->tmp, strerror(errno));
    return 0;
}

/* fsync of the directory makes the rename itself durable */
static void sync_parent_dir(const char *path) {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int st_atomic_write_header(StAtomic *a, const StHeader *h, char *err) {
    a->checksummed = 1;
    return header_write(a->f, a->tmp, h, err);
}

/* appends the trailer: the CRC-32 of everything written, read back from the temporary file */
static int append_trailer(StAtomic *a, char *err) {
    if (fflush(a->f) != 0) return st_errorf(err, "%s: write failed: %s", a->path, strerror(errno));
    int64_t size;
    uint32_t crc;
    unsigned char trailer[ST_TRAILER_BYTES];
    if (st_file_crc32(a->tmp, &size, &crc, err)) return -1;
    make_trailer(crc, trailer);
    return st_write_all(a->f, a->path, trailer, sizeof trailer, err);
}

int st_atomic_commit(StAtomic *a, char *err) {
    if (a->checksummed && append_trailer(a, err)) {
        st_atomic_abort(a);
        return -1;
    }
    int bad = fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    int saved = errno;
    if (fclose(a->f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        return st_errorf(err, "%s: write failed: %s (the previous file is untouched)", a->path, strerror(saved));
    }
    if (rename(a->tmp, a->path) != 0) {
        saved = errno;
        unlink(a->tmp);
        return st_errorf(err, "%s: rename from %s failed: %s", a->path, a->tmp, strerror(saved));
    }
    sync_parent_dir(a->path);
    return 0;
}

void st_atomic_abort(StAtomic *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}
