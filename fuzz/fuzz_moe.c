/* fuzz_moe.c: libFuzzer target. Decodes a case (the versioned binary format of codec.h), runs
 * the backend, checks it against the exact reference; on a mismatch prints the case as text and
 * the diagnosis, then traps so libFuzzer saves the input.
 *
 *   build/fuzz/fuzz_moe -dict=fuzz/moe.dict CORPUS_DIR         (or: moefuzz fuzz)
 *   MOEFUZZ_BACKEND=cuda MOEFUZZ_MODEL=deepseek-v3 build/cuda/fuzz_moe ...
 *
 * Structured mutation: a custom mutator and crossover act on case fields (casegen.h), falling
 * back to libFuzzer's byte mutation one time in eight. Numerical coverage: extra counters over
 * (configuration cell x routing ambiguity) and (coarse configuration x utilisation bucket), so
 * inputs that reach new parameter combinations, or come closer to the bound than any before, are
 * kept. The backend opens on the first input, not in LLVMFuzzerInitialize (fork-mode parents run
 * that too and must not hold a GPU context).
 *
 * A backend that cannot open stops the process with _exit (77 when no GPU answers, 2 otherwise):
 * exit() would run libFuzzer's exit hook, which saves the input as a crash artifact.
 * MOEFUZZ_TRAP_STAGE=NAME (set by `moefuzz minimize`) traps only on failures whose first failing
 * stage is NAME, so minimization keeps the failure it started from.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "fuzz.h"

#ifndef MF_FUZZ_BACKEND
#define MF_FUZZ_BACKEND "cpu" /* the build-time default; MOEFUZZ_BACKEND overrides */
#endif

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size) __attribute__((weak));

__attribute__((used,
               section("__libfuzzer_extra_counters"))) static uint8_t mf_counters[MF_FUZZ_COUNTERS];

/* The one piece of process state libFuzzer's C API leaves no other home for. */
static struct {
    mf_fuzz_config cfg;
    mf_fuzz *f;
    mf_fuzz_result r;
    const char *trap_stage;
} target;

static void target_exit(void) {
    mf_fuzz_free(target.f); /* writes the statistics */
    target.f = NULL;
}

static mf_fuzz *target_get(void) {
    if (!target.f) {
        mf_fuzz_config_from_env(&target.cfg, MF_FUZZ_BACKEND);
        if (getenv("MOEFUZZ_MODEL") && !target.cfg.model) {
            fprintf(stderr, "fuzz_moe: unknown MOEFUZZ_MODEL '%s' (moefuzz models)\n",
                    getenv("MOEFUZZ_MODEL"));
            exit(2);
        }
        target.f = mf_fuzz_new(&target.cfg);
        if (!target.f) abort();
        target.trap_stage = getenv("MOEFUZZ_TRAP_STAGE");
        atexit(target_exit);
    }
    return target.f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mf_fuzz *f = target_get();
    mf_fuzz_result *r = &target.r;
    mf_fuzz_outcome o = mf_fuzz_one(f, data, size, r);
    uint32_t idx[4];
    int n = mf_fuzz_features(r, idx, 4);
    for (int i = 0; i < n; i++) mf_counters[idx[i]] = 1;
    if (o == MF_FUZZ_ERROR && r->backend_unusable) {
        /* no usable backend: stop, not a finding */
        fprintf(stderr, "fuzz_moe: %s%s\n", r->error, r->no_device ? " (skipped: exit 77)" : "");
        fflush(stderr);
        _exit(r->no_device ? 77 : 2);
    }
    if (target.trap_stage && (o == MF_FUZZ_FAIL || o == MF_FUZZ_ERROR) &&
        strcmp(mf_fuzz_failed_stage(r), target.trap_stage) != 0)
        return 0; /* another failure than the one being minimized */
    if (o == MF_FUZZ_FAIL || o == MF_FUZZ_ERROR) {
        mf_fuzz_report(r, target.cfg.backend, stderr);
        fflush(stderr);
        __builtin_trap();
    }
    return 0;
}

/* Replay builds (fuzz/replay_main.c): what the inputs came to; returns the number not checked. */
int mf_replay_summary(FILE *out) {
    const mf_fuzz_stats *st = mf_fuzz_get_stats(target_get());
    fprintf(out,
            "fuzz_moe: %llu inputs run on backend %s (contract %s): %llu passed, %llu not "
            "checked (%llu unsupported by the kernel, %llu over the work budget), "
            "metamorphic relations on %llu\n",
            (unsigned long long)st->execs, target.cfg.backend, st->contract[0] ? st->contract : "-",
            (unsigned long long)st->passes, (unsigned long long)st->skips,
            (unsigned long long)st->unsupported, (unsigned long long)(st->skips - st->unsupported),
            (unsigned long long)st->meta_runs);
    return (int)(st->execs - st->passes);
}

#ifndef MF_NO_CUSTOM_MUTATOR
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    mf_fuzz_get_stats(target_get());
    mf_rng rng = {0x9E3779B97F4A7C15ull * (seed + 1)};
    if (mf_rng_below(&rng, 8) == 0 && LLVMFuzzerMutate)
        return LLVMFuzzerMutate(data, size, max_size);
    mf_case c;
    mf_case_decode(data, size, &c, NULL);
    mf_case_mutate(&c, &rng, &target.cfg.lim);
    mf_fuzz_shape(&target.cfg, &c);
    c.rows = 0; /* v1 cannot carry it: mf_fuzz_shape derives it again from the decoded input */
    size_t n = mf_case_encode(&c, 0, data, max_size);
    if (n == 0 && LLVMFuzzerMutate) return LLVMFuzzerMutate(data, size, max_size);
    return n;
}

size_t LLVMFuzzerCustomCrossOver(const uint8_t *d1, size_t s1, const uint8_t *d2, size_t s2,
                                 uint8_t *out, size_t max_out, unsigned int seed) {
    mf_fuzz_get_stats(target_get());
    mf_rng rng = {0xD1B54A32D192ED03ull * (seed + 1)};
    mf_case a, b, c;
    mf_case_decode(d1, s1, &a, NULL);
    mf_case_decode(d2, s2, &b, NULL);
    mf_case_crossover(&a, &b, &rng, &target.cfg.lim, &c);
    mf_fuzz_shape(&target.cfg, &c);
    c.rows = 0; /* as in the mutator */
    return mf_case_encode(&c, 0, out, max_out);
}
#endif /* MF_NO_CUSTOM_MUTATOR */
