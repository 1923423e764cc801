/* fuzz_inputs.c: libFuzzer target for every parser of moefuzz. Nothing may crash or hang on any
 * input, and the binary format keeps its promises: every byte string decodes to a valid case,
 * and re-encoding that case decodes to the same case.
 *
 *   build/fuzz/fuzz_inputs -max_len=4096 fuzz-out/inputs
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static void same_or_trap(const mf_case *a, const mf_case *b) {
    if (memcmp(&a->p, &b->p, sizeof a->p) != 0 || a->n_pokes != b->n_pokes) __builtin_trap();
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (a->gen[t].cls != b->gen[t].cls || a->gen[t].seed != b->gen[t].seed ||
            memcmp(&a->gen[t].scale, &b->gen[t].scale, sizeof(float)) != 0)
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* binary: decodes, valid, round-trips */
    mf_case c, d;
    memset(&c, 0, sizeof c);
    memset(&d, 0, sizeof d);
    mf_case_decode(data, size, &c, NULL);
    if (mf_case_validate(&c, NULL) != MF_OK) __builtin_trap();
    uint8_t buf[MF_CASE_MAX_BYTES];
    size_t n = mf_case_encode(&c, size & 1, buf, sizeof buf);
    if (n == 0) __builtin_trap();
    mf_case_decode(buf, n, &d, NULL);
    same_or_trap(&c, &d);
    char why[256];
    mf_case_classify(data, size, why, sizeof why);
    /* text: the same bytes as a text case */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    mf_error err;
    mf_case t;
    if (mf_case_parse_text(text, &t, &err) == MF_OK && mf_case_validate(&t, NULL) != MF_OK)
        __builtin_trap(); /* the text parser accepted an invalid case */
    free(text);
    return 0;
}
