/* tool.h: shared pieces of the moefuzz command-line tool (src/tool/). */
#ifndef MF_TOOL_H
#define MF_TOOL_H

#include <stdio.h>

#include "case.h"
#include "mf_base.h"
#include "paths.h"
#include "prepare.h"

/* The source tree (corpus/, fuzz/moe.dict); MOEFUZZ_SOURCE_DIR overrides at run time. */
#ifndef MF_SOURCE_DIR
#define MF_SOURCE_DIR "."
#endif

/* Exit codes of every command. MF_EXIT_SKIP only where a GPU is needed and none answers. */
enum { MF_EXIT_PASS = 0, MF_EXIT_MISMATCH = 1, MF_EXIT_BAD_INPUT = 2, MF_EXIT_SKIP = 77 };

/* 1 if `spec` names a built-in CUDA backend (cuda, cuda-mutant:NAME) that this build has but no
 * usable device answers, with the reason in why; 0 otherwise (a build without CUDA included:
 * there the backend does not exist, which is bad input, not a skip). */
int mf_tool_gpu_missing(const char *spec, char *why, size_t n);

/* 1 where MOEFUZZ_REQUIRE_GPU=1: no usable GPU is a failure, not a skip. */
int mf_tool_require_gpu(void);

/* The exit of a command that needs a GPU and finds none: prints why, returns MF_EXIT_SKIP, or
 * MF_EXIT_MISMATCH where MOEFUZZ_REQUIRE_GPU=1 (on the GPU machine a skip is a failure). */
int mf_tool_gpu_skip(const char *cmd, const char *why);

typedef struct mf_command {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv);
    void (*help)(FILE *f);
} mf_command;

/* Commands, one per file. */
int mf_cmd_check(int argc, char **argv);
void mf_help_check(FILE *f);
int mf_cmd_explain(int argc, char **argv);
void mf_help_explain(FILE *f);
int mf_cmd_decode(int argc, char **argv);
void mf_help_decode(FILE *f);
int mf_cmd_encode(int argc, char **argv);
void mf_help_encode(FILE *f);
int mf_cmd_bench(int argc, char **argv);
void mf_help_bench(FILE *f);
int mf_cmd_fuzz(int argc, char **argv);
void mf_help_fuzz(FILE *f);
int mf_cmd_repro(int argc, char **argv);
void mf_help_repro(FILE *f);
int mf_cmd_minimize(int argc, char **argv);
void mf_help_minimize(FILE *f);
int mf_cmd_merge(int argc, char **argv);
void mf_help_merge(FILE *f);
int mf_cmd_mutants(int argc, char **argv);
void mf_help_mutants(FILE *f);
int mf_cmd_models(int argc, char **argv);
void mf_help_models(FILE *f);
int mf_cmd_export(int argc, char **argv); /* cmd_exchange.c */
void mf_help_export(FILE *f);
int mf_cmd_verify(int argc, char **argv);
void mf_help_verify(FILE *f);
int mf_cmd_methods(int argc, char **argv);
void mf_help_methods(FILE *f);
int mf_cmd_calibrate(int argc, char **argv);
void mf_help_calibrate(FILE *f);

/* One line describing a case: "T=4 H=64 I=32 E=16/16+0 k=4 sigmoid+bias g=1/1 rn=1
 * rsf=2.5@weights" (cmd_check.c). */
void mf_tool_case_summary(const mf_case *c, char *buf, size_t n);

/* `moefuzz bench kernel`: defined by the CUDA benchmark object when the build has CUDA
 * (kernels/cuda); NULL otherwise. Returns an exit code. */
int mf_bench_kernel_main(int argc, char **argv) __attribute__((weak));

/* True if argv[i] is -h or --help. */
int mf_is_help(const char *a);

#endif /* MF_TOOL_H */
