/* replay_main.c: runs a fuzz target's LLVMFuzzerTestOneInput over files and directories, with any
 * compiler (no libFuzzer). The corpus replays in ctest this way.
 *
 *   fuzz_moe_replay corpus/seeds corpus/regress
 *   fuzz_moe_replay --raw crash-8d1da8f0...
 *
 * Files are read as the fuzz tools read them (mf_fuzz_input_load): *.txt is a text case, run as
 * its canonical encoding, and one that does not parse is an error (exit 2); anything else runs as
 * the bytes it holds, except a file whose header says case format but whose length disagrees
 * (truncated or extended: exit 2), which runs as its bytes only under --raw, as every file does. A failure traps, as under libFuzzer. The summary counts what ran; a target
 * that can say so (fuzz_moe) reports how many inputs it passed, and an input it did not check
 * (unsupported, over budget) fails the replay (exit 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "paths.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* defined by targets that count their outcomes (fuzz_moe.c) */
int mf_replay_summary(FILE *out) __attribute__((weak));

int main(int argc, char **argv) {
    int raw = 0, first = 1;
    if (argc > 1 && !strcmp(argv[1], "--raw")) raw = 1, first = 2;
    if (argc <= first) {
        fprintf(stderr, "usage: %s [--raw] FILE|DIR...\n", argv[0]);
        return 2;
    }
    mf_path_list l = {0};
    mf_error err;
    setenv("MOEFUZZ_NO_BUDGET", "1", 0);  /* a replay runs every file, whatever its size */
    setenv("MOEFUZZ_META_EVERY", "1", 0); /* and every metamorphic relation on it */
    for (int i = first; i < argc; i++)
        if (mf_paths_collect(argv[i], &l, &err) != MF_OK)
            return fprintf(stderr, "%s\n", err.msg), 2;
    if (l.n == 0) {
        fprintf(stderr, "%s: no input files under the paths given\n", argv[0]);
        return 2;
    }
    int by_kind[3] = {0};
    for (int i = 0; i < l.n; i++) {
        mf_fuzz_input in;
        if (mf_fuzz_input_load(l.paths[i], raw, &in, &err) != MF_OK) {
            fprintf(stderr, "%s: %s\n", argv[0], err.msg);
            mf_paths_free(&l);
            return 2;
        }
        fprintf(stderr, "replay %s (%s)\n", l.paths[i], mf_fuzz_input_kind_name(in.kind));
        LLVMFuzzerTestOneInput(in.bytes, in.len);
        by_kind[in.kind]++;
        mf_fuzz_input_free(&in);
    }
    printf("replayed %d inputs (%d text, %d binary, %d raw), none failed\n", l.n,
           by_kind[MF_FUZZ_INPUT_TEXT], by_kind[MF_FUZZ_INPUT_CANONICAL],
           by_kind[MF_FUZZ_INPUT_RAW]);
    mf_paths_free(&l);
    if (mf_replay_summary && mf_replay_summary(stdout) > 0) {
        printf("FAIL: not every input was checked\n");
        return 1;
    }
    return 0;
}
