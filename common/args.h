/* common/args.h: the strict command-line reading every program shares. A flag's value is checked as
 * what it claims to be: decimals are plain digits (no hex, no trailing junk, no inf or nan), within
 * the flag's range; a value that is itself a flag ("--steps --lr 3") is refused, and so is a flag
 * given twice. Errors are one line naming the flag, what was expected and what was found. */
#ifndef SINKTRACE_ARGS_H
#define SINKTRACE_ARGS_H

/* 1 when argv holds --help or -h: the program prints its usage on stdout and exits 0 */
int args_wants_help(int argc, char **argv);
/* refuses any --flag that appears twice in argv */
int args_check_repeats(int argc, char **argv, char *err);
/* the value after the flag argv[i]: present and not itself a --flag */
int args_value(int argc, char **argv, int i, const char **value, char *err);

/* 1 when text is a plain decimal: [-]digits, and with allow_fraction also [.digits][e[+-]digits] */
int args_is_decimal(const char *text, int allow_fraction);
/* a decimal integer of flag `flag` in [lo, hi] */
int args_int(const char *flag, const char *text, long long lo, long long hi, long long *out, char *err);
/* a decimal number of flag `flag` in [lo, hi] */
int args_number(const char *flag, const char *text, double lo, double hi, double *out, char *err);

#endif
