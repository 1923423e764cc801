/* fuzz_inputs.c: libFuzzer target for every parser of moefuzz. Nothing may crash or hang on any
 * input, and the binary format keeps its promises: every byte string decodes to a valid case,
 * and re-encoding that case decodes to the same case. The same bytes also go to the safetensors
 * reader, as a case file and as a result file (docs/files.md): any answer but a crash will do.
 *
 *   build/fuzz/fuzz_inputs -max_len=4096 fuzz-out/inputs
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "exchange.h"
#include "safetensors.h"

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
    /* safetensors: the reader, a case file, a result file for the case decoded above */
    mf_safetensors st;
    if (mf_st_parse(data, size, &st, &err) == MF_OK) mf_st_free(&st);
    mf_problem pb;
    if (mf_xcase_parse(data, size, &t, &pb, &err) == MF_OK) {
        if (mf_case_validate(&t, NULL) != MF_OK) __builtin_trap(); /* accepted an invalid case */
        mf_problem_free(&pb);
    }
    mf_run_result r;
    if (mf_xresult_parse(data, size, &c.p, &r, &err) == MF_OK) mf_run_result_free(&r);
    return 0;
}
