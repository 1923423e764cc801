/* moe_knobs.c: the MOEFUZZ_CUDA_* tuning knobs of the fused CUDA MoE kernel (moe_knobs.h). */
#include "moe_knobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *knob_get(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Index of v in the NULL-terminated list, or -1. */
static int knob_pick(const char *v, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(v, list[i])) return i;
    return -1;
}

static int knob_bad(const char *name, const char *v, const char *allowed, char *msg,
                    size_t msg_len) {
    snprintf(msg, msg_len, "moe_cuda: %s=%.40s names no setting (%s)", name, v, allowed);
    return 1;
}

int mf_cuda_knobs_read(mf_cuda_knobs *k, char *msg, size_t msg_len) {
    static const char *const off_on[] = {"0", "1", NULL}, *const pdls[] = {"0", "1", "2", NULL};
    static const char *const bms[] = {"16", "64", "128", NULL};
    static const char *const wgs[] = {"3x192", "3x128",  "2x256",  "2x128", "1x128", "1x96",
                                      "1x64",  "3x192c", "2x256c", "off",   NULL};
    memset(k, 0, sizeof *k);
    k->pdl = 1, k->tma = -1;
    const char *v;
    if ((v = knob_get("MOEFUZZ_CUDA_STRICT"))) {
        if ((k->strict = knob_pick(v, off_on)) < 0)
            return knob_bad("MOEFUZZ_CUDA_STRICT", v, "0 or 1", msg, msg_len);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_BM"))) {
        if (knob_pick(v, bms) < 0)
            return knob_bad("MOEFUZZ_CUDA_BM", v, "16, 64, 128", msg, msg_len);
        k->bm = atoi(v);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_WG"))) {
        if (knob_pick(v, wgs) < 0)
            return knob_bad("MOEFUZZ_CUDA_WG", v,
                            "3x192, 3x128, 2x256, 2x128, 1x128, 1x96, 1x64, 3x192c, 2x256c, off",
                            msg, msg_len);
        k->wg = v;
        if (!strcmp(v, "off"))
            k->wg_cw = -1;
        else
            k->wg_cw = v[0] - '0', k->wg_bn = atoi(v + 2), k->wg_mc = v[strlen(v) - 1] == 'c';
    }
    if ((v = knob_get("MOEFUZZ_CUDA_WG_MIN"))) {
        char *end;
        k->wg_min = strtod(v, &end);
        if (*end || !(k->wg_min >= 0.0 && k->wg_min <= 1e9))
            return knob_bad("MOEFUZZ_CUDA_WG_MIN", v, "rows per expert, 0 to 1e9", msg, msg_len);
        k->wg_min_set = 1;
    }
    if ((v = knob_get("MOEFUZZ_CUDA_WG_GRID"))) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 1 << 20)
            return knob_bad("MOEFUZZ_CUDA_WG_GRID", v, "blocks, 1 to 1048576", msg, msg_len);
        k->wg_grid = (int)n;
    }
    if ((v = knob_get("MOEFUZZ_CUDA_VERBOSE"))) {
        if ((k->verbose = knob_pick(v, off_on)) < 0)
            return knob_bad("MOEFUZZ_CUDA_VERBOSE", v, "0 or 1", msg, msg_len);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_PDL"))) {
        if ((k->pdl = knob_pick(v, pdls)) < 0)
            return knob_bad("MOEFUZZ_CUDA_PDL", v, "0, 1 or 2", msg, msg_len);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_TMA"))) {
        if ((k->tma = knob_pick(v, off_on)) < 0)
            return knob_bad("MOEFUZZ_CUDA_TMA", v, "0 or 1", msg, msg_len);
    }
#define CONTRADICT(...) (snprintf(msg, msg_len, "moe_cuda: " __VA_ARGS__), 1)
    if (k->bm && k->wg_cw > 0)
        return CONTRADICT(
            "MOEFUZZ_CUDA_BM=%d (mma.sync) and MOEFUZZ_CUDA_WG=%s (wgmma) "
            "contradict",
            k->bm, k->wg);
    if (k->wg_mc && k->tma == 0)
        return CONTRADICT(
            "MOEFUZZ_CUDA_WG=%s multicasts B by TMA: MOEFUZZ_CUDA_TMA=0 "
            "contradicts it (no cluster variant loads B by cp.async)",
            k->wg);
    if (k->tma == 1 && (k->bm || k->wg_cw < 0))
        return CONTRADICT("MOEFUZZ_CUDA_TMA=1: the forced %s runs no kernel that loads B by TMA",
                          k->bm ? "MOEFUZZ_CUDA_BM" : "MOEFUZZ_CUDA_WG=off");
    if (k->wg_min_set && (k->bm || k->wg_cw))
        return CONTRADICT(
            "MOEFUZZ_CUDA_WG_MIN steers the default choice, which the forced %s "
            "replaces",
            k->bm ? "MOEFUZZ_CUDA_BM" : "MOEFUZZ_CUDA_WG");
#undef CONTRADICT
    return 0;
}
