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
