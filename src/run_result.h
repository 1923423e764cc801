/* run_result.h: what one run of a kernel left behind, whichever way it ran (in this process, in
 * a worker, through an adapter's result file): its output, its routing when it reports one, and
 * what the poison pattern and the guard bands around the output saw.
 *
 * Below every backend and below the case and result files (exchange.c), which all fill it.
 */
#ifndef MF_RUN_RESULT_H
#define MF_RUN_RESULT_H

#include <stddef.h>
#include <stdint.h>

#define MF_POISON_BF16 0x7fa5u /* a NaN payload no arithmetic produces */
#define MF_GUARD_ELEMS 64      /* bf16 guard elements before and after the output */
#define MF_GUARD_BF16 0x5a5au

typedef struct mf_run_result {
    int unsupported;
    char reason[256];
    uint16_t *out;    /* [T][H], malloc'd */
    int32_t *ids;     /* [T][top_k] or NULL */
    float *weights;   /* [T][top_k] or NULL */
    size_t unwritten; /* output elements that still hold the poison pattern */
    size_t first_unwritten;
    int guard_broken; /* a guard element changed */
    long guard_first; /* offset of the first changed guard element from the output start */
    double seconds;
} mf_run_result;

/* Sets unwritten and first_unwritten from the n elements of r->out: the elements that still
 * hold MF_POISON_BF16, which no arithmetic produces. */
void mf_run_result_count_unwritten(mf_run_result *r, size_t n);
/* 1 if a and b hold the same outputs (n_out), routing (n_sel) and written/guard state: the
 * verdict of one contract on them is the same. */
int mf_run_result_equal(const mf_run_result *a, const mf_run_result *b, size_t n_out,
                        size_t n_sel);

/* Frees the arrays and zeroes r. */
void mf_run_result_free(mf_run_result *r);

#endif /* MF_RUN_RESULT_H */
