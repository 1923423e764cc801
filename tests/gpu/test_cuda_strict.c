/* test_cuda_strict.c: the CUDA kernel's tuning knobs (kernels/cuda/moe_cuda.cu, read by
 * create()) refuse what they cannot honour. Runs the kernel's own create() and supports() in the
 * CPU emulator (tests/gpu/emu: an H100 as the kernel sees it, without clusters), so it needs no
 * GPU.
 *
 *   - a value that names no setting fails create(), strict or not, naming the variable;
 *   - contradictory knobs fail create();
 *   - MOEFUZZ_CUDA_STRICT=1 with a cluster variant forced fails create() here (no clusters), and
 *     without strict mode the same setting falls back;
 *   - every setting the GPU tests force, but the cluster ones, is accepted under strict mode;
 *   - under strict mode a forced wgmma variant or BM 64/128 refuses shapes of H or I not a
 *     multiple of 8 (they would take the 16-row path), and BM 16 refuses none.
 * Exit: 0 every expectation holds, 1 otherwise (each failure printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moefuzz/kernel_abi.h"
#include "moe_cuda.h"

static const char *const knob_vars[] = {
    "MOEFUZZ_CUDA_STRICT",  "MOEFUZZ_CUDA_BM",      "MOEFUZZ_CUDA_WG",  "MOEFUZZ_CUDA_WG_MIN",
    "MOEFUZZ_CUDA_WG_GRID", "MOEFUZZ_CUDA_VERBOSE", "MOEFUZZ_CUDA_PDL", "MOEFUZZ_CUDA_TMA",
};

static mf_kernel_api api;
static int failures, checks;

/* Sets exactly the knobs of env ("NAME=VALUE NAME=VALUE ...", spaces between), the others
 * unset. */
static void set_knobs(const char *env) {
    for (size_t i = 0; i < sizeof knob_vars / sizeof knob_vars[0]; i++) unsetenv(knob_vars[i]);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", env);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        setenv(tok, eq + 1, 1);
    }
}

static void expect(int ok, const char *env, const char *what, const char *msg) {
    checks++;
    if (ok) return;
    failures++;
    printf("FAIL [%s]: %s%s%s\n", env, what, msg[0] ? "; message: " : "", msg);
}

/* create() under env must fail with a message containing every fragment of want ('|' between),
 * or (want NULL) succeed. */
static void expect_create(const char *env, const char *want) {
    set_knobs(env);
    void *ctx = NULL;
    char msg[512] = "";
    int rc = api.create(&ctx, msg, sizeof msg);
    if (rc == 0) api.release(ctx);
    if (!want) {
        expect(rc == 0, env, "create() should succeed", msg);
        return;
    }
    expect(rc != 0, env, "create() should fail", msg);
    char frags[256];
    snprintf(frags, sizeof frags, "%s", want);
    for (char *f = strtok(frags, "|"); f && rc != 0; f = strtok(NULL, "|")) {
        char what[300];
        snprintf(what, sizeof what, "the message should name '%s'", f);
        expect(strstr(msg, f) != NULL, env, what, msg);
    }
}

static void params(mf_kernel_params *p, int H, int I) {
    memset(p, 0, sizeof *p);
    p->abi_version = MF_KERNEL_ABI_VERSION;
    p->struct_size = sizeof *p;
    p->memory = MF_ABI_MEM_DEVICE;
    p->T = 4, p->H = H, p->I = I, p->E = 8, p->E_local = 8, p->top_k = 2;
    p->n_group = 1, p->topk_group = 1;
    p->score_fn = MF_ABI_SCORE_SOFTMAX, p->bias_dtype = MF_ABI_BIAS_NONE;
    p->group_rule = MF_ABI_GROUP_TOP2_SUM, p->rsf_site = MF_ABI_RSF_WEIGHTS;
    p->activation = MF_ABI_ACT_SILU_GLU, p->layout = MF_ABI_LAYOUT_GATE_UP;
    p->logits_dtype = MF_ABI_DTYPE_F32, p->routed_scaling_factor = 1.0f;
}

/* supports() under env for H x I: want 1 (supported) or 0 (refused, the message naming the
 * forced setting). */
static void expect_supports(const char *env, int H, int I, int want) {
    set_knobs(env);
    void *ctx = NULL;
    char msg[512] = "";
    if (api.create(&ctx, msg, sizeof msg) != 0) {
        expect(0, env, "create() failed", msg);
        return;
    }
    mf_kernel_params p;
    params(&p, H, I);
    msg[0] = 0;
    int got = api.supports(ctx, &p, msg, sizeof msg);
    api.release(ctx);
    char what[128];
    snprintf(what, sizeof what, "H=%d I=%d should be %s", H, I, want ? "supported" : "refused");
    expect(got == want, env, what, msg);
    if (!want && got == 0)
        expect(strstr(msg, "MOEFUZZ_CUDA_STRICT=1") != NULL, env,
               "the refusal should name strict mode", msg);
}

int main(void) {
    if (mf_cuda_kernel_get_api(MF_KERNEL_ABI_VERSION, &api, sizeof api) != 0) {
        printf("test_cuda_strict: the kernel refused ABI version %u\n", MF_KERNEL_ABI_VERSION);
        return 1;
    }
    /* values that name no setting: an error, strict or not */
    static const char *const bad[] = {
        "MOEFUZZ_CUDA_STRICT=yes", "MOEFUZZ_CUDA_BM=32",       "MOEFUZZ_CUDA_WG=3x192x",
        "MOEFUZZ_CUDA_WG=4x64",    "MOEFUZZ_CUDA_WG=OFF",      "MOEFUZZ_CUDA_WG_MIN=abc",
        "MOEFUZZ_CUDA_WG_MIN=-1",  "MOEFUZZ_CUDA_WG_GRID=0",   "MOEFUZZ_CUDA_WG_GRID=2x",
        "MOEFUZZ_CUDA_VERBOSE=2",  "MOEFUZZ_CUDA_PDL=3",       "MOEFUZZ_CUDA_TMA=2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "%.*s|names no setting", (int)(strchr(bad[i], '=') - bad[i]),
                 bad[i]);
        expect_create(bad[i], want);
    }
    /* contradictions: an error, strict or not */
    expect_create("MOEFUZZ_CUDA_BM=64 MOEFUZZ_CUDA_WG=1x64", "MOEFUZZ_CUDA_BM=64|contradict");
    expect_create("MOEFUZZ_CUDA_WG=3x192c MOEFUZZ_CUDA_TMA=0", "MOEFUZZ_CUDA_TMA=0|contradict");
    expect_create("MOEFUZZ_CUDA_WG=2x256c MOEFUZZ_CUDA_TMA=0", "MOEFUZZ_CUDA_TMA=0|contradict");
    expect_create("MOEFUZZ_CUDA_WG=off MOEFUZZ_CUDA_TMA=1", "MOEFUZZ_CUDA_TMA=1");
    expect_create("MOEFUZZ_CUDA_BM=16 MOEFUZZ_CUDA_TMA=1", "MOEFUZZ_CUDA_TMA=1");
    expect_create("MOEFUZZ_CUDA_WG=1x64 MOEFUZZ_CUDA_WG_MIN=3", "MOEFUZZ_CUDA_WG_MIN");
    /* a cluster variant where none can run: refused in strict mode, a fallback otherwise */
    expect_create("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=3x192c",
                  "MOEFUZZ_CUDA_STRICT=1|MOEFUZZ_CUDA_WG=3x192c|cluster");
    expect_create("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=2x256c MOEFUZZ_CUDA_WG_GRID=4",
                  "MOEFUZZ_CUDA_STRICT=1|MOEFUZZ_CUDA_WG=2x256c|cluster");
    expect_create("MOEFUZZ_CUDA_WG=3x192c", NULL);
    /* what the GPU tests force (tests/gpu/CMakeLists.txt), but the cluster variants, and the
     * other variants and tile heights: honoured here */
    static const char *const good[] = {
        "",
        "MOEFUZZ_CUDA_WG=",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=3x192 MOEFUZZ_CUDA_WG_GRID=3 MOEFUZZ_CUDA_TMA=1",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=1x128 MOEFUZZ_CUDA_WG_GRID=2 MOEFUZZ_CUDA_TMA=1",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=1x96 MOEFUZZ_CUDA_WG_GRID=2 MOEFUZZ_CUDA_TMA=1",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=1x64 MOEFUZZ_CUDA_WG_GRID=2 MOEFUZZ_CUDA_TMA=1",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=3x128",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=2x256",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=2x128 MOEFUZZ_CUDA_TMA=0",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=off",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=off MOEFUZZ_CUDA_TMA=0",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_BM=16",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_BM=64 MOEFUZZ_CUDA_WG=off",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_BM=128",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_TMA=0",
        "MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_TMA=1 MOEFUZZ_CUDA_WG_MIN=12.5",
        "MOEFUZZ_CUDA_STRICT=0 MOEFUZZ_CUDA_PDL=2 MOEFUZZ_CUDA_VERBOSE=0",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) expect_create(good[i], NULL);
    /* strict mode refuses the shapes that cannot take a forced 16-byte path */
    static const int shapes[][3] = {
        /* H, I, multiple of 8 both */
        {128, 64, 1}, {200, 136, 1}, {129, 63, 0}, {36, 40, 0}, {64, 1, 0}, {100, 36, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int H = shapes[i][0], I = shapes[i][1], vec = shapes[i][2];
        expect_supports("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=1x64", H, I, vec);
        expect_supports("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=3x192", H, I, vec);
        expect_supports("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_BM=64", H, I, vec);
        expect_supports("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_BM=128", H, I, vec);
        expect_supports("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_BM=16", H, I, 1);
        expect_supports("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_WG=off", H, I, 1);
        expect_supports("MOEFUZZ_CUDA_STRICT=1 MOEFUZZ_CUDA_TMA=0", H, I, 1);
        expect_supports("MOEFUZZ_CUDA_WG=1x64", H, I, 1);
    }
    set_knobs("");
    printf("test_cuda_strict: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
