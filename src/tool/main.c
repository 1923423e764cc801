/* main.c: the moefuzz command-line tool.
 *
 *   moefuzz check CASE...        verdict of a kernel against the exact reference
 *   moefuzz explain CASE         parameters, routing table, worst elements per stage
 *   moefuzz decode FILE          binary case -> text
 *   moefuzz encode TEXT -o OUT   text case -> canonical binary
 *   moefuzz fuzz [--time S]      libFuzzer campaign with a summary
 *   moefuzz repro FILE           replay a failing input
 *   moefuzz minimize / merge     libFuzzer crash minimization / corpus merge
 *   moefuzz models               model presets for --model
 *   moefuzz bench reference      speed of the exact reference
 *   moefuzz export / verify      case files out, result files in (kernels in other languages)
 *   moefuzz methods              routing methods by project name and number
 *   moefuzz calibrate --backend B  the tightest contract a kernel satisfies, by probing it
 * `moefuzz COMMAND --help` describes each. Exit codes: 0 pass, 1 mismatch, 2 bad input, 77 no
 * usable GPU (skipped; a failure under MOEFUZZ_REQUIRE_GPU=1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "codec.h"
#include "options.h"
#include "tool.h"

static const mf_command commands[] = {
    {"check", "check a kernel against the exact reference on case files", mf_cmd_check,
     mf_help_check},
    {"explain", "show a case: parameters, routing with key intervals, worst elements",
     mf_cmd_explain, mf_help_explain},
    {"decode", "print a binary case file as an editable text case", mf_cmd_decode,
     mf_help_decode},
    {"encode", "write a text case as a canonical binary case file", mf_cmd_encode,
     mf_help_encode},
    {"fuzz", "fuzz a kernel with libFuzzer; summary of failures by signature", mf_cmd_fuzz,
     mf_help_fuzz},
    {"repro", "replay a failing input: diagnosis, text case, rerun command", mf_cmd_repro,
     mf_help_repro},
    {"minimize", "shrink a failing input (libFuzzer crash minimization)", mf_cmd_minimize,
     mf_help_minimize},
    {"merge", "merge fuzz corpora (libFuzzer -merge=1)", mf_cmd_merge, mf_help_merge},
    {"models", "list the model presets for --model", mf_cmd_models, mf_help_models},
    {"mutants", "the mutant zoo: kill rate, time-to-detect, attribution (test builds)",
     mf_cmd_mutants, mf_help_mutants},
    {"bench", "benchmarks: `bench reference`, `bench kernel` (CUDA builds)", mf_cmd_bench,
     mf_help_bench},
    {"export", "write cases as safetensors files for kernels outside moefuzz", mf_cmd_export,
     mf_help_export},
    {"verify", "check result files (safetensors) of exported cases against the reference",
     mf_cmd_verify, mf_help_verify},
    {"methods", "routing methods by project name and number (FlashInfer, vLLM, TRT-LLM)",
     mf_cmd_methods, mf_help_methods},
    {"calibrate", "probe a kernel: the tightest contract it satisfies, field by field",
     mf_cmd_calibrate, mf_help_calibrate},
};

/* Every MOEFUZZ_* variable the tool, the fuzz targets and the kernels read. The fuzz targets
 * take their settings from the environment (libFuzzer owns their command line): `moefuzz fuzz`,
 * `repro` and `minimize` set them from their options, which are the documented way in. */
static const struct {
    const char *name, *help;
} env_knobs[] = {
    {"MOEFUZZ_SOURCE_DIR", "where corpus/ and fuzz/moe.dict are looked for\n"
                           "first (fuzz, repro --save, mutants)"},
    {"MOEFUZZ_REQUIRE_GPU", "1: no usable GPU is a failure (1), not a skip (77)"},
    {"MOEFUZZ_ISOLATE", "1 / 0: default of --isolate / --no-isolate"},
    {"MOEFUZZ_TIMEOUT", "seconds: default of --timeout"},
    {"MOEFUZZ_BACKEND", "fuzz targets: the kernel (fuzz --backend)"},
    {"MOEFUZZ_MODEL", "fuzz targets: the model preset (fuzz --model)"},
    {"MOEFUZZ_FULL", "fuzz targets: 1 for the model's full sizes (fuzz --full)"},
    {"MOEFUZZ_METHOD", "fuzz targets: the routing method (fuzz --method)"},
    {"MOEFUZZ_CONTRACT", "fuzz targets: the contract (fuzz --contract)"},
    {"MOEFUZZ_STATS", "fuzz targets: directory of per-process statistics"},
    {"MOEFUZZ_MAX_WORK", "fuzz targets: reference multiply-adds above which\n"
                         "a case is skipped"},
    {"MOEFUZZ_NO_BUDGET", "fuzz targets: 1 runs every input whatever its size"},
    {"MOEFUZZ_META_EVERY", "fuzz targets: metamorphic relations on 1 input in N"},
    {"MOEFUZZ_TRAP_STAGE", "fuzz targets: trap only on failures first failing\n"
                           "at this stage (minimize sets it)"},
    {"MOEFUZZ_CUDA_STRICT", "CUDA kernel: 1 makes a forced setting it cannot\n"
                            "run an error (docs/cuda-kernel.md: the knobs)"},
    {"MOEFUZZ_CUDA_BM", "CUDA kernel: the mma.sync tile height 16, 64, 128"},
    {"MOEFUZZ_CUDA_WG", "CUDA kernel: that wgmma variant everywhere, or off"},
    {"MOEFUZZ_CUDA_WG_MIN", "CUDA kernel: mean rows per expert from which the\n"
                            "wgmma path is considered"},
    {"MOEFUZZ_CUDA_WG_GRID", "CUDA kernel: at most N blocks in persistent grids"},
    {"MOEFUZZ_CUDA_PDL", "CUDA kernel: 0 ordinary launches, 1 (default), 2\n"
                         "programmatic launches for mma.sync GEMMs too"},
    {"MOEFUZZ_CUDA_TMA", "CUDA kernel: 0 loads B by cp.async, not TMA"},
    {"MOEFUZZ_CUDA_VERBOSE", "CUDA kernel: 1 prints each run's GEMM variants"},
};

int mf_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

static void usage(FILE *f) {
    fprintf(f, "moefuzz: find wrong answers in fused MoE kernels against an exact reference\n\n"
               "usage: moefuzz COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`moefuzz COMMAND --help` for details.\n"
               "Exit codes: 0 pass, 1 mismatch, 2 bad input, 77 no usable GPU (skipped; 1 with\n"
               "MOEFUZZ_REQUIRE_GPU=1).\n\nenvironment:\n");
    for (size_t i = 0; i < sizeof env_knobs / sizeof env_knobs[0]; i++)
        mf_opt_print_text(f, 20, env_knobs[i].name, env_knobs[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return MF_EXIT_BAD_INPUT;
    }
    if (mf_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        if (argc > 2)
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    commands[i].help(stdout);
                    return 0;
                }
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        /* `bench kernel` has its own --help */
        int own_help = !strcmp(argv[1], "bench") && argc > 2 && !strcmp(argv[2], "kernel");
        for (int a = 2; a < argc && !own_help; a++)
            if (mf_is_help(argv[a])) {
                commands[i].help(stdout);
                return 0;
            }
        return commands[i].main(argc - 1, argv + 1);
    }
    fprintf(stderr, "moefuzz: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return MF_EXIT_BAD_INPUT;
}

/* ---- shared helpers ---- */

int mf_tool_gpu_missing(const char *spec, char *why, size_t n) {
    if (strcmp(spec, "cuda") != 0 && strncmp(spec, "cuda-mutant:", 12) != 0) return 0;
    const mf_cuda_provider *cp = mf_cuda_backend_provider ? mf_cuda_backend_provider() : NULL;
    if (!cp) return 0; /* a build without CUDA: the backend does not exist, bad input */
    snprintf(why, n, "no reason given");
    return cp->available(why, n) == 0; /* -1, a CUDA error, is not a skip: open fails with it */
}

int mf_tool_require_gpu(void) {
    const char *req = getenv("MOEFUZZ_REQUIRE_GPU");
    return req && !strcmp(req, "1");
}

int mf_tool_gpu_skip(const char *cmd, const char *why) {
    if (mf_tool_require_gpu()) {
        fprintf(stderr, "%s: no usable GPU (%s), and MOEFUZZ_REQUIRE_GPU=1 makes that a failure\n",
                cmd, why);
        return MF_EXIT_MISMATCH;
    }
    fprintf(stderr, "%s: skipped (77): no usable GPU: %s\n", cmd, why);
    return MF_EXIT_SKIP;
}
