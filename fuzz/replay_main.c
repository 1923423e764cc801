/* replay_main.c: runs a fuzz target's LLVMFuzzerTestOneInput over files and directories, with any
 * compiler (no libFuzzer). Text cases are encoded first. The corpus replays in ctest this way.
 *
 *   fuzz_moe_replay corpus/seeds corpus/regress
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    mf_path_list l = {0};
    mf_error err;
    setenv("MOEFUZZ_NO_BUDGET", "1", 0);  /* a replay runs every file, whatever its size */
    setenv("MOEFUZZ_META_EVERY", "1", 0); /* and every metamorphic relation on it */
    for (int i = 1; i < argc; i++)
        if (mf_paths_collect(argv[i], &l, &err) != MF_OK) return fprintf(stderr, "%s\n", err.msg), 2;
    for (int i = 0; i < l.n; i++) {
        uint8_t *d, buf[MF_CASE_MAX_BYTES];
        size_t n;
        if (mf_read_file(l.paths[i], &d, &n, 1u << 20, &err) != MF_OK)
            return fprintf(stderr, "%s\n", err.msg), 2;
        mf_case c;
        fprintf(stderr, "replay %s\n", l.paths[i]);
        if (n > 0 && (d[0] == '#' || (d[0] >= 'A' && d[0] <= 'z')) &&
            mf_case_parse_text((const char *)d, &c, &err) == MF_OK) {
            size_t m = mf_case_encode(&c, 1, buf, sizeof buf);
            LLVMFuzzerTestOneInput(buf, m);
        } else {
            LLVMFuzzerTestOneInput(d, n);
        }
        free(d);
    }
    printf("%d passed, 0 failed\n", l.n);
    mf_paths_free(&l);
    return 0;
}
