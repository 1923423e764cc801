/* run_result.c: the run result's poison count and its freeing (see run_result.h). */
#include "run_result.h"

#include <stdlib.h>
#include <string.h>

void mf_run_result_count_unwritten(mf_run_result *r, size_t n) {
    r->unwritten = 0;
    r->first_unwritten = 0;
    for (size_t i = 0; i < n; i++)
        if (r->out[i] == MF_POISON_BF16) {
            if (!r->unwritten) r->first_unwritten = i;
            r->unwritten++;
        }
}

void mf_run_result_free(mf_run_result *r) {
    free(r->out);
    free(r->ids);
    free(r->weights);
    memset(r, 0, sizeof *r);
}

int mf_run_result_equal(const mf_run_result *a, const mf_run_result *b, size_t n_out,
                        size_t n_sel) {
    if (a->unsupported != b->unsupported || a->unwritten != b->unwritten ||
        a->first_unwritten != b->first_unwritten || a->guard_broken != b->guard_broken ||
        a->guard_first != b->guard_first || !a->ids != !b->ids || !a->weights != !b->weights)
        return 0;
    if (a->unsupported) return 1;
    return !memcmp(a->out, b->out, n_out * sizeof *a->out) &&
           (!a->ids || !memcmp(a->ids, b->ids, n_sel * sizeof *a->ids)) &&
           (!a->weights || !memcmp(a->weights, b->weights, n_sel * sizeof *a->weights));
}
