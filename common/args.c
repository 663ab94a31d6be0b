#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int args_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

int args_check_repeats(int argc, char **argv, char *err) {
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) continue;
        for (int j = i + 1; j < argc; j++)
            if (!strcmp(argv[i], argv[j])) return st_errorf(err, "%s: expected once, found twice", argv[i]);
    }
    return 0;
}

int args_value(int argc, char **argv, int i, const char **value, char *err) {
    if (i + 1 >= argc) return st_errorf(err, "%s: expected a value after it, found the end", argv[i]);
    /* "--steps --lr 3" would read "--lr" as the steps and 3 as a stray word */
    if (!strncmp(argv[i + 1], "--", 2))
        return st_errorf(err, "%s: expected a value, found the flag '%s'", argv[i], argv[i + 1]);
    *value = argv[i + 1];
    return 0;
}

/* skips the digits at *p; returns how many there were */
static int skip_digits(const char **p) {
    int n = 0;
    for (; isdigit((unsigned char)**p); (*p)++) n++;
    return n;
}

int args_is_decimal(const char *text, int allow_fraction) {
    const char *p = text + (text[0] == '-' || (allow_fraction && text[0] == '+'));
    int digits = skip_digits(&p);
    if (!allow_fraction) return digits > 0 && *p == 0;
    if (*p == '.') {
        p++;
        digits += skip_digits(&p);
    }
    if (digits == 0) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (skip_digits(&p) == 0) return 0;
    }
    return *p == 0;
}

int args_int(const char *flag, const char *text, long long lo, long long hi, long long *out, char *err) {
    errno = 0;
    long long v = args_is_decimal(text, 0) ? strtoll(text, NULL, 10) : 0;
    if (!args_is_decimal(text, 0) || errno == ERANGE || v < lo || v > hi) {
        if (hi == INT64_MAX) return st_errorf(err, "%s: expected an integer >= %lld, found '%s'", flag, lo, text);
        return st_errorf(err, "%s: expected an integer in %lld..%lld, found '%s'", flag, lo, hi, text);
    }
    *out = v;
    return 0;
}

int args_number(const char *flag, const char *text, double lo, double hi, double *out, char *err) {
    errno = 0;
    double v = args_is_decimal(text, 1) ? strtod(text, NULL) : 0;
    if (!args_is_decimal(text, 1) || errno == ERANGE || !(v >= lo && v <= hi))
        return st_errorf(err, "%s: expected a decimal number in [%g, %g], found '%s'", flag, lo, hi, text);
    *out = v;
    return 0;
}
