/* test_cuda_plan.c: the host-side plan of the fused CUDA kernel (kernels/cuda/moe_plan.c) on the
 * CPU, no GPU and no emulator:
 *   - each case of tests/gpu/emu/cases takes the routing path and GEMM variants (and grids)
 *     written below, on an H100 as the emulator presents it (132 SMs, no clusters), by default
 *     and with MOEFUZZ_CUDA_WG=off; every case in the directory has a row and every row a case;
 *   - the thresholds of moe_plan.h hold on both sides: small-T routing (T <= 64, T k <= 1024),
 *     the tiny step (T k <= 32), decode tiles below 12 mean rows per expert, 128-row mma.sync
 *     tiles from 192, the cluster variant from 768, the 2-byte path, MOEFUZZ_CUDA_WG_MIN, a
 *     device without wgmma;
 *   - the tile bound that sizes the workspace holds on random row counts, and the workspace
 *     regions are aligned and disjoint.
 * The per-case rows were read from the kernel itself: MOEFUZZ_CUDA_VERBOSE=1 names the variants
 * and grids of each run of test_cuda_mutants_emu.
 *   test_cuda_plan tests/gpu/emu/cases
 * Exit: 0 every expectation holds, 1 otherwise, 2 bad arguments.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mf_test.h"
#include "moe_plan.h"

/* Routing: "tiny" (one block, routing warps alone), "small" (one block of 1024 threads),
 * "kernels" (route, count, scan, place). */
typedef struct case_row {
    const char *file;
    const char *routing;
    const char *g1, *g2;     /* default choice */
    int grid1, grid2;        /* its persistent grids */
    const char *off1, *off2; /* MOEFUZZ_CUDA_WG=off */
} case_row;

static const case_row rows[] = {
    {"bm128-t800-two-chunks.txt", "kernels", "wg2x128", "wg2x128", 20, 20, "mma128x256",
     "mma128x256"},
    {"bm64-t160-k2-e8.txt", "kernels", "wg2x128", "wg2x128", 10, 10, "mma64x128", "mma64x128"},
    {"decode-t1-k1-e4.txt", "tiny", "wg1x64", "wg1x64", 1, 2, "mma16x64", "mma16x32"},
    {"e1024-groups1024.txt", "tiny", "wg1x64", "wg1x64", 24, 24, "mma16x64", "mma16x32"},
    {"e1024-t65-route-kernel.txt", "kernels", "wg1x64", "wg1x64", 132, 132, "mma16x128",
     "mma16x128"},
    {"ep-offset16-t90.txt", "kernels", "wg1x64", "wg1x64", 13, 13, "mma16x64", "mma16x32"},
    {"h36-i40-vec-out.txt", "tiny", "mma16x64", "mma16x32", 0, 0, "mma16x64", "mma16x32"},
    {"large-t100-multipath.txt", "kernels", "wg2x128", "wg2x128", 19, 19, "mma64x128", "mma64x128"},
    {"nan-logit-row-softmax.txt", "tiny", "wg1x64", "wg1x64", 16, 16, "mma16x64", "mma16x32"},
    {"odd-h100-i36-t70.txt", "kernels", "mma16x64", "mma16x64", 0, 0, "mma16x64", "mma16x64"},
    {"small-path-full-chunk-t64-k16.txt", "small", "wg2x128", "wg2x128", 72, 72, "mma64x128",
     "mma64x128"},
    {"topk32-t40.txt", "kernels", "wg2x128", "wg2x128", 74, 74, "mma64x128", "mma64x128"},
    {"wg-t1600-e256-persistent.txt", "kernels", "wg2x128", "wg2x256", 132, 132, "mma64x128",
     "mma64x128"},
    {"wg-t300-h328-i72-two-warpgroups.txt", "kernels", "wg3x128", "wg3x128", 14, 21, "mma64x128",
     "mma64x128"},
    {"wg-t40-h200-i136-one-warpgroup.txt", "small", "wg2x128", "wg2x128", 12, 8, "mma64x128",
     "mma64x128"},
};
#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))

/* The device of tests/gpu/emu/cuda_emu.cpp (an H100 SXM without clusters) and the default
 * knobs, as create() fills them. */
static mf_cuda_target emu_target(void) {
    mf_cuda_target t;
    memset(&t, 0, sizeof t);
    t.sm_count = 132, t.smem_optin = 232448, t.wgmma = 1, t.clusters = 0;
    t.pdl = 1, t.wg_grid = t.sm_count;
    return t;
}

/* A shape with every tensor 16-byte aligned (NULL pointers). */
static mf_kernel_params shape(int T, int H, int I, int E, int k) {
    mf_kernel_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.T = T, p.H = H, p.I = I, p.E = E, p.E_local = E, p.top_k = k, p.n_group = 1;
    p.topk_group = 1;
    return p;
}

static const char *routing_of(const mf_cuda_plan *c) {
    if (!c->small) return "kernels";
    return c->tiny ? "tiny" : "small";
}

/* Chooses p's plan on t; a refusal is a failure. */
static int plan(const mf_cuda_target *t, const mf_kernel_params *p, mf_cuda_plan *c,
                const char *what) {
    char msg[256] = "";
    int rc = mf_cuda_plan_choose(t, p, c, msg, sizeof msg);
    EXPECT(rc == 0, "%s: no plan: %s", what, msg);
    return rc == 0;
}

static int name_is(const mf_cuda_gemm *g, const char *want) {
    return g && !strcmp(g->name, want);
}

/* ---- the emulator's cases ---- */

static void check_case(const char *dir, const case_row *r) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, r->file);
    mf_case cs;
    mf_error err;
    memset(&err, 0, sizeof err);
    if (mf_case_load(path, 0, &cs, NULL, &err) != MF_OK) {
        EXPECT(0, "%s: %s", path, err.msg);
        return;
    }
    mf_kernel_params p = shape(cs.p.T, cs.p.H, cs.p.I, cs.p.E, cs.p.top_k);
    p.E_local = cs.p.E_local, p.expert_offset = cs.p.expert_offset;
    p.n_group = cs.p.n_group, p.topk_group = cs.p.topk_group;
    mf_cuda_target t = emu_target();
    mf_cuda_plan c;
    if (plan(&t, &p, &c, r->file)) {
        EXPECT(!strcmp(routing_of(&c), r->routing), "%s: routing %s, want %s", r->file,
               routing_of(&c), r->routing);
        EXPECT(name_is(c.g1, r->g1) && name_is(c.g2, r->g2), "%s: GEMMs %s/%s, want %s/%s", r->file,
               c.g1->name, c.g2->name, r->g1, r->g2);
        EXPECT(c.grid1 == r->grid1 && c.grid2 == r->grid2, "%s: grids %d/%d, want %d/%d", r->file,
               c.grid1, c.grid2, r->grid1, r->grid2);
        EXPECT(c.pdl == c.g1->wg, "%s: PDL %d with %s", r->file, c.pdl, c.g1->name);
    }
    t.force_wg_cw = -1; /* MOEFUZZ_CUDA_WG=off */
    if (plan(&t, &p, &c, r->file)) {
        EXPECT(name_is(c.g1, r->off1) && name_is(c.g2, r->off2),
               "%s, WG=off: GEMMs %s/%s, want %s/%s", r->file, c.g1->name, c.g2->name, r->off1,
               r->off2);
        EXPECT(!strcmp(routing_of(&c), r->routing), "%s, WG=off: routing %s, want %s", r->file,
               routing_of(&c), r->routing);
        EXPECT(c.grid1 == 0 && c.grid2 == 0 && !c.pdl, "%s, WG=off: grids %d/%d pdl %d", r->file,
               c.grid1, c.grid2, c.pdl);
    }
}

static void check_cases(const char *dir) {
    for (int i = 0; i < N_ROWS; i++) check_case(dir, &rows[i]);
    DIR *d = opendir(dir);
    EXPECT(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".txt")) continue;
        files++;
        int found = 0;
        for (int i = 0; i < N_ROWS; i++) found |= !strcmp(rows[i].file, e->d_name);
        EXPECT(found, "%s/%s has no row in test_cuda_plan.c", dir, e->d_name);
    }
    closedir(d);
    EXPECT(files == N_ROWS, "%d case files in %s, %d rows", files, dir, N_ROWS);
}

/* ---- thresholds ---- */

/* The routing path on both sides of T = 64, T k = 1024 and T k = 32. */
static void check_routing_thresholds(void) {
    static const struct {
        int T, E, k;
        const char *routing;
    } cases[] = {
        {32, 64, 1, "tiny"},      {33, 64, 1, "small"},   {8, 64, 4, "tiny"},
        {64, 64, 1, "small"},     {65, 64, 1, "kernels"}, {64, 64, 16, "small"},
        {64, 128, 17, "kernels"}, {60, 64, 17, "small"},  {61, 64, 17, "kernels"},
    };
    const mf_cuda_target t = emu_target();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mf_kernel_params p = shape(cases[i].T, 64, 64, cases[i].E, cases[i].k);
        mf_cuda_plan c;
        char what[64];
        snprintf(what, sizeof what, "T=%d E=%d k=%d", p.T, p.E, p.top_k);
        if (!plan(&t, &p, &c, what)) continue;
        EXPECT(!strcmp(routing_of(&c), cases[i].routing), "%s: routing %s, want %s", what,
               routing_of(&c), cases[i].routing);
        if (c.small)
            EXPECT(c.nrw >= 1 && c.nrw <= 32 && c.nrw <= p.T && c.prep_smem <= t.smem_optin,
                   "%s: %d routing warps, %d bytes", what, c.nrw, c.prep_smem);
    }
}

/* The GEMM tiles on both sides of each mean-rows threshold (E = 8, k = 1: m = T / 8). */
static void check_gemm_thresholds(void) {
    static const struct {
        int T, H, force_wg_cw, wgmma, clusters;
        double wg_min;
        const char *g1; /* NULL: any variant of BM bm */
        int bm;         /* -1: two or three warpgroups (128 or 192 rows) */
    } cases[] = {
        /* wgmma, default: decode tiles while m < 12 */
        {95, 64, 0, 1, 0, 0.0, NULL, 64},
        {96, 64, 0, 1, 0, 0.0, NULL, -1},
        /* MOEFUZZ_CUDA_WG=off: mma.sync 16 / 64 / 128 rows at m < 12 / < 192 / >= 192 */
        {95, 64, -1, 1, 0, 0.0, "mma16x64", 16},
        {96, 64, -1, 1, 0, 0.0, "mma64x128", 64},
        {1535, 64, -1, 1, 0, 0.0, "mma64x128", 64},
        {1536, 64, -1, 1, 0, 0.0, "mma128x256", 128},
        /* no sm_90a: the same mma.sync choice */
        {95, 64, 0, 0, 0, 0.0, "mma16x64", 16},
        {1536, 64, 0, 0, 0, 0.0, "mma128x256", 128},
        /* the 2-byte path (H not a multiple of 8): 16 rows at any m */
        {1536, 100, 0, 1, 0, 0.0, "mma16x64", 16},
        /* MOEFUZZ_CUDA_WG_MIN=20: mma.sync below 20 rows per expert */
        {152, 64, 0, 1, 0, 20.0, "mma64x128", 64},
        {160, 64, 0, 1, 0, 20.0, NULL, -1},
        /* clusters: the cluster variant from m = 768 */
        {6143, 64, 0, 1, 1, 0.0, "wg3x128", 192},
        {6144, 64, 0, 1, 1, 0.0, "wg3x192c", 384},
        {6144, 64, 0, 1, 0, 0.0, "wg3x128", 192},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mf_cuda_target t = emu_target();
        t.force_wg_cw = cases[i].force_wg_cw, t.wgmma = cases[i].wgmma;
        t.clusters = cases[i].clusters, t.wg_min_rows = cases[i].wg_min;
        for (int g = 0; g < MF_CUDA_MAX_GEMMS; g++) t.mc_max[g] = 66;
        const mf_kernel_params p = shape(cases[i].T, cases[i].H, 64, 8, 1);
        mf_cuda_plan c;
        char what[128];
        snprintf(what, sizeof what, "T=%d H=%d E=8 k=1 (m %.3f) WG=%d wgmma=%d clusters=%d", p.T,
                 p.H, p.T / 8.0, t.force_wg_cw, t.wgmma, t.clusters);
        if (!plan(&t, &p, &c, what)) continue;
        const int bm_ok =
            cases[i].bm < 0 ? c.g1->wg && (c.BM == 128 || c.BM == 192) : c.BM == cases[i].bm;
        EXPECT(bm_ok, "%s: BM %d, want %d (%s)", what, c.BM, cases[i].bm, c.g1->name);
        if (cases[i].g1)
            EXPECT(name_is(c.g1, cases[i].g1), "%s: GEMM1 %s, want %s", what, c.g1->name,
                   cases[i].g1);
        EXPECT(c.g1->BM == c.BM && c.g2->BM == c.BM, "%s: tiles of %d rows, GEMMs %s/%s", what,
               c.BM, c.g1->name, c.g2->name);
        EXPECT(c.tiles == mf_cuda_max_tiles(&p, c.BM), "%s: %d tiles", what, c.tiles);
    }
}

/* A forced setting that the shape cannot run: refused in strict mode, the 16-row path without. */
static void check_strict(void) {
    mf_cuda_target t = emu_target();
    t.force_wg_cw = 3, t.force_wg_bn = 192;
    const mf_kernel_params p = shape(100, 100, 64, 8, 1);
    mf_cuda_plan c;
    char msg[256] = "";
    EXPECT(mf_cuda_plan_choose(&t, &p, &c, msg, sizeof msg) == 0 && name_is(c.g1, "mma16x64"),
           "WG=3x192, H=100, not strict: the 16-row path");
    t.strict = 1;
    EXPECT(mf_cuda_plan_choose(&t, &p, &c, msg, sizeof msg) == 1 &&
               strstr(msg, "MOEFUZZ_CUDA_WG=3x192"),
           "WG=3x192, H=100, strict: refused naming the setting (%s)", msg);
}

/* ---- the tile bound and the workspace ---- */

/* A uniform draw in [0, n) (n small: the modulo bias does not matter here). */
static uint32_t below(uint64_t *s, uint32_t n) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33) % n;
}

/* The tile table never holds more tiles than mf_cuda_max_tiles, the bound that sizes the
 * workspace and the mma.sync grids: random row counts per expert, every tile height. */
static void check_tile_bound(void) {
    static const int bms[] = {16, 64, 128, 192, 256, 384};
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int worst = 0;
    for (int trial = 0; trial < 2000; trial++) {
        const int E = 1 + (int)below(&s, 64), k = 1 + (int)below(&s, E < 8 ? E : 8);
        const int T = 1 + (int)below(&s, 600);
        mf_kernel_params p = shape(T, 64, 64, E, k);
        int cnt[64] = {0};
        for (int e = 0; e < T * k; e++) {
            /* skewed: half the entries on expert 0 in every other trial */
            const int hot = (trial & 1) && below(&s, 2);
            cnt[hot ? 0 : (int)below(&s, (uint32_t)E)]++;
        }
        for (size_t b = 0; b < sizeof bms / sizeof bms[0]; b++) {
            int tiles = 0;
            for (int e = 0; e < E; e++) tiles += (cnt[e] + bms[b] - 1) / bms[b];
            const int bound = mf_cuda_max_tiles(&p, bms[b]);
            if (tiles > bound)
                EXPECT(0, "T=%d E=%d k=%d BM=%d: %d tiles over the bound %d", T, E, k, bms[b],
                       tiles, bound);
            if (bound - tiles > worst) worst = bound - tiles;
        }
    }
    EXPECT(worst > 0, "the bound was never loose: the check saw no shape");
}

static void check_workspace(void) {
    static const int shapes[][5] = {{1, 72, 24, 4, 1},
                                    {1600, 256, 32, 256, 4},
                                    {800, 64, 32, 8, 2},
                                    {16384, 7168, 2048, 256, 8}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *v = shapes[i];
        const mf_kernel_params p = shape(v[0], v[1], v[2], v[3], v[4]);
        mf_cuda_ws_layout L;
        mf_cuda_ws_plan(&p, &L);
        const size_t n = (size_t)p.T * p.top_k;
        const size_t at[] = {L.route_ids,  L.route_w,      L.entry_row, L.row_entry,
                             L.expert_cnt, L.expert_start, L.n_tiles,   L.tiles,
                             L.chunk_cnt,  L.hbuf,         L.ybuf};
        const size_t len[] = {n * 4,
                              n * 4,
                              n * 4,
                              n * 4,
                              (size_t)p.E_local * 4,
                              (size_t)p.E_local * 4,
                              16,
                              (size_t)L.max_tiles * 16,
                              (size_t)L.n_chunks * p.E_local * 4,
                              n * p.I * 2,
                              n * p.H * 4};
        int ok = L.n_chunks == (int)((n + MOE_CHUNK - 1) / MOE_CHUNK) &&
                 L.max_tiles == mf_cuda_max_tiles(&p, 16);
        for (size_t r = 0; r < sizeof at / sizeof at[0]; r++) {
            ok &= at[r] % 256 == 0 && at[r] + len[r] + 256 <= L.total;
            if (r + 1 < sizeof at / sizeof at[0]) ok &= at[r] + len[r] <= at[r + 1];
        }
        EXPECT(ok, "T=%d H=%d I=%d E=%d k=%d: workspace regions misplaced (total %zu)", p.T, p.H,
               p.I, p.E, p.top_k, L.total);
    }
}

/* Every variant has a distinct name and is found by its own properties. */
static void check_table(void) {
    for (int i = 0; i < mf_cuda_n_gemms; i++) {
        const mf_cuda_gemm *g = &mf_cuda_gemms[i];
        EXPECT(mf_cuda_gemm_find(g->mode, g->BM, g->BN, g->vec, g->wg, g->mc) == g,
               "%s (mode %d) is not found by its properties", g->name, g->mode);
        for (int j = 0; j < i; j++)
            if (mf_cuda_gemms[j].mode == g->mode)
                EXPECT(strcmp(mf_cuda_gemms[j].name, g->name) || mf_cuda_gemms[j].vec != g->vec,
                       "%s twice in mode %d", g->name, g->mode);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_cuda_plan CASE_DIR (tests/gpu/emu/cases)\n");
        return 2;
    }
    check_cases(argv[1]);
    check_routing_thresholds();
    check_gemm_thresholds();
    check_strict();
    check_tile_bound();
    check_workspace();
    check_table();
    return mf_test_exit("test_cuda_plan");
}
