/* fuzz/target.c: the libFuzzer entry point of one parser, chosen at build time with
 * -DFUZZ_PARSER='"shard"' (fuzz/run.sh builds build-fuzz/fuzz_<parser> for each of tests/fuzz_feed.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../tests/fuzz_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const FuzzParser *parser;
    if (!parser && !(parser = fuzz_parser(FUZZ_PARSER))) {
        fprintf(stderr, "fuzz: no parser '%s' in tests/fuzz_feed.c\n", FUZZ_PARSER);
        exit(1);
    }
    fuzz_reseal_checksums = 1; /* past the checksum, into the parser */
    char err[ST_ERR_LEN] = "";
    /* a rejected input must say why in one line */
    if (parser->feed(data, size, err) != 0 && (err[0] == 0 || strchr(err, '\n'))) {
        fprintf(stderr, "fuzz: %s rejected an input without a one-line error: '%s'\n", FUZZ_PARSER, err);
        abort();
    }
    return 0;
}
