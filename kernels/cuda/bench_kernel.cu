/* bench_kernel.cu: `moefuzz bench kernel`: the fused CUDA MoE kernel against a cuBLAS baseline,
 * on three real-model shapes, with floors measured in the same run.
 *
 *   moefuzz bench kernel [--shape NAME[,NAME]] [--T LIST] [--reps N] [--no-baseline]
 *                        [--require-baseline]
 *
 * For each (shape, T): the median over --reps replays of a CUDA graph of the whole MoE (routing
 * through combine), for the fused kernel (through its ABI, kernels/cuda/moe_cuda.cu) and for
 * the baseline, timed with events in the same process, their replays alternating. Inputs are
 * generated on the device (hash-based, never zero): x ~ N(0,1), logits ~ N(0,1), W13 ~ N(0,
 * 1/sqrt(H)), W2 ~ N(0, 1/sqrt(I)), bias ~ 0.1 N(0,1). Four input sets rotate between replays so
 * that consecutive replays route to different experts; the weights are replicated too when all of
 * them would fit in a few L2 sizes.
 *
 * Baseline: the same MoE from cuBLAS (cublasGemmEx per expert, bf16 in and out, fp32 compute)
 * plus simple kernels: routing (warp per token), gather, SwiGLU, weighted fp32 combine. Its
 * per-expert row counts are taken from one routing run before capture (cuBLAS needs them on the
 * host), so the baseline is NOT charged for the permutation that the fused kernel computes on
 * the device: a conservative baseline. cuBLAS is loaded with dlopen, so moefuzz has no link
 * dependency on it; without it the baseline and the compute floor are reported unavailable,
 * and nothing checks the fused kernel's output: --require-baseline (the smoke test) makes that
 * an error.
 *
 * Figures: TFLOP/s = 2 T k 3 H I / t; GB/s = (bytes of the distinct experts selected + x +
 * logits + out) / t; %mem = those bytes over the copy bandwidth measured here (a large
 * device-to-device copy, read + write counted) divided by t; %compute = flops over the bf16
 * GEMM rate measured here (cuBLAS 8192^3) divided by t; speedup = baseline / fused.
 * read_us: a graph that only reads the weights of the step's distinct experts once
 * (read_weights_kernel), timed alternating with the other two: what streaming those bytes costs
 * on this card with the launch, ramp and tail that the copy bandwidth of %mem leaves out;
 * %read = read_us / fused_us, how close the fused step comes to that attainable time (100%: as
 * fast as the bare read). Measured with the baseline only.
 * MHz: the SM clock (median of samples every 2 ms or more while the replays of both run; n/a
 * below 5 samples), P where the software power cap was holding the clock down in at least half
 * of the samples (thermal and hardware slowdowns are not flagged): a compute-bound shape on a
 * card at its power limit runs below its top clock, and speed then follows the energy each
 * kernel spends per step. (NVML's board power is a one-second average on Hopper, too slow for
 * these runs, so it is not shown.) NVML is loaded with dlopen too; without it the column reads
 * n/a.
 * Exit: 0, 1 on a CUDA error, when fused and baseline disagree or (--require-baseline) when
 * there is no baseline to compare with, 2 bad arguments, 77 no device (cuda_device.h: only the
 * absence of a device skips; 1 under MOEFUZZ_REQUIRE_GPU=1).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "bench.h"
#include "bench_baseline.cuh"
#include "bench_libs.h"
#include "bench_timing.cuh"
#include "cuda_device.h"
#include "moe_cuda.h"

static const bench_shape shapes[] = {
    {"deepseek-v3", 256, 8, 7168, 2048, MF_ABI_SCORE_SIGMOID, MF_ABI_BIAS_F32, 8, 4, 1, 1e-20f,
     2.5f},
    {"qwen3-30b-a3b", 128, 8, 2048, 768, MF_ABI_SCORE_SOFTMAX, MF_ABI_BIAS_NONE, 1, 1, 1, 0.0f,
     1.0f},
    {"mixtral", 8, 2, 4096, 14336, MF_ABI_SCORE_SOFTMAX, MF_ABI_BIAS_NONE, 1, 1, 1, 0.0f, 1.0f},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

/* ---- one (shape, T) ---- */

typedef struct bench_row {
    const char *shape;
    int T;
    double fused_us, base_us, tflops, gbs, pct_mem, pct_compute, rel_diff;
    double read_us; /* the distinct experts' weights read alone (read_weights_kernel) */
    double clk[2];  /* during the replays: SM clock (MHz, 0: not sampled), share power-capped */
    int have_base, have_read, agree;
    char gemms[64]; /* the GEMM variants the fused kernel chose (mf_cuda_kernel_describe) */
} bench_row;

static void params_for(const bench_shape *s, int T, mf_kernel_params *p) {
    memset(p, 0, sizeof *p);
    p->abi_version = MF_KERNEL_ABI_VERSION;
    p->struct_size = sizeof *p;
    p->T = T, p->H = s->H, p->I = s->I, p->E = s->E, p->E_local = s->E, p->expert_offset = 0;
    p->top_k = s->k, p->score_fn = s->score_fn, p->bias_dtype = s->bias_dtype;
    p->n_group = s->n_group, p->topk_group = s->topk_group, p->group_rule = MF_ABI_GROUP_TOP2_SUM;
    p->renormalize = s->renormalize, p->renorm_eps = s->eps, p->routed_scaling_factor = s->rsf;
    p->rsf_site = MF_ABI_RSF_WEIGHTS, p->activation = MF_ABI_ACT_SILU_GLU;
    p->layout = MF_ABI_LAYOUT_GATE_UP, p->logits_dtype = MF_ABI_DTYPE_F32;
    p->memory = MF_ABI_MEM_DEVICE;
}

static int bench_one(const shape_data *sd, int T, int reps, int use_base, mf_bench_cublas *cb,
                     const mf_bench_nvml *nv, const mf_kernel_api *api, void *kctx, double copy_bw,
                     double gemm_rate, cudaStream_t st, bench_row *row) {
    const bench_shape *s = sd->s;
    const int H = s->H, I = s->I, E = s->E, k = s->k, n = T * k;
    char msg[512] = "";
    memset(row, 0, sizeof *row);
    row->shape = s->name;
    row->T = T;

    /* inputs: BENCH_SETS sets of x and logits */
    uint16_t *x[BENCH_SETS], *out_f, *out_b;
    float *logits[BENCH_SETS];
    for (int i = 0; i < BENCH_SETS; i++) {
        CK(cudaMalloc(&x[i], (size_t)T * H * 2));
        CK(cudaMalloc(&logits[i], (size_t)T * E * 4));
        fill_bf16(x[i], (size_t)T * H, 1000 + 17 * i + T, 1.0f);
        fill_f32(logits[i], (size_t)T * E, 2000 + 17 * i + T, 1.0f);
    }
    CK(cudaMalloc(&out_f, (size_t)T * H * 2));
    CK(cudaMalloc(&out_b, (size_t)T * H * 2));
    CK(cudaDeviceSynchronize()); /* the fills ran on the legacy stream; st does not wait for it */

    /* fused kernel: one graph per input set */
    mf_kernel_params p[BENCH_SETS];
    size_t ws_bytes = 0;
    params_for(s, T, &p[0]);
    if (api->supports(kctx, &p[0], msg, sizeof msg) != 1 ||
        api->workspace_size(kctx, &p[0], &ws_bytes, msg, sizeof msg) != 0) {
        fprintf(stderr, "moefuzz bench kernel: %s T=%d: fused kernel refuses: %s\n", s->name, T,
                msg);
        return 1;
    }
    mf_cuda_kernel_describe(kctx, &p[0], row->gemms, sizeof row->gemms);
    void *ws;
    CK(cudaMalloc(&ws, ws_bytes));
    cudaGraphExec_t gf[BENCH_SETS];
    for (int i = 0; i < BENCH_SETS; i++) {
        params_for(s, T, &p[i]);
        int c = i % sd->copies;
        p[i].x = x[i], p[i].logits = logits[i], p[i].bias = sd->bias;
        p[i].w13 = sd->w13[c], p[i].w2 = sd->w2[c], p[i].out = out_f;
        p[i].workspace = ws, p[i].workspace_bytes = ws_bytes, p[i].stream = st;
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        int rc = api->run(kctx, &p[i], msg, sizeof msg);
        CK(cudaStreamEndCapture(st, &g));
        if (rc != 0) {
            fprintf(stderr, "moefuzz bench kernel: %s T=%d: run failed: %s\n", s->name, T, msg);
            return 1;
        }
        CK(cudaGraphInstantiate(&gf[i], g, 0));
        CK(cudaGraphDestroy(g));
    }
    /* routing of every set (baseline routing kernel), for the baseline's host-side expert lists
     * and the bytes of the distinct experts selected */
    int32_t *ids_d;
    float *w_d;
    CK(cudaMalloc(&ids_d, (size_t)BENCH_SETS * n * 4));
    CK(cudaMalloc(&w_d, (size_t)BENCH_SETS * n * 4));
    int32_t *ids_h = (int32_t *)malloc((size_t)BENCH_SETS * n * 4);
    for (int i = 0; i < BENCH_SETS; i++) {
        base_route(s, T, logits[i], sd->bias, ids_d + (size_t)i * n, w_d + (size_t)i * n, st);
        CK(cudaGetLastError());
    }
    CK(cudaMemcpyAsync(ids_h, ids_d, (size_t)BENCH_SETS * n * 4, cudaMemcpyDeviceToHost, st));
    CK(cudaStreamSynchronize(st));
    double distinct = 0;
    int *cnt = (int *)calloc((size_t)BENCH_SETS * E, sizeof(int));
    for (int i = 0; i < BENCH_SETS; i++) {
        for (int j = 0; j < n; j++) cnt[i * E + ids_h[(size_t)i * n + j]]++;
        for (int e = 0; e < E; e++) distinct += cnt[i * E + e] > 0;
    }
    distinct /= BENCH_SETS;
    double bytes = distinct * 3.0 * H * I * 2 + (double)T * H * 2 * 2 + (double)T * E * 4;
    double flops = 2.0 * T * k * 3.0 * H * I;

    if (!(use_base && cb->dl)) {
        float med;
        cudaGraphExec_t *sets[1] = {gf};
        time_graphs(sets, 1, BENCH_SETS, reps, st, nv, &med, row->clk);
        row->fused_us = 1e3 * med;
    } else {
        /* permutation per set: rows grouped by expert, in entry order */
        base_bufs bb;
        CK(cudaMalloc(&bb.xg, (size_t)n * H * 2));
        CK(cudaMalloc(&bb.c1, (size_t)n * 2 * I * 2));
        CK(cudaMalloc(&bb.hb, (size_t)n * I * 2));
        CK(cudaMalloc(&bb.yb, (size_t)n * H * 2));
        int32_t *row_token_d, *entry_row_d;
        CK(cudaMalloc(&row_token_d, (size_t)BENCH_SETS * n * 4));
        CK(cudaMalloc(&entry_row_d, (size_t)BENCH_SETS * n * 4));
        int32_t *row_token = (int32_t *)malloc((size_t)n * 4),
                *entry_row = (int32_t *)malloc((size_t)n * 4);
        int *start = (int *)malloc(sizeof(int) * (E + 1));
        cudaGraphExec_t gb[BENCH_SETS];
        int fail = 0;
        for (int i = 0; i < BENCH_SETS && !fail; i++) {
            const int *ci = cnt + (size_t)i * E;
            const int32_t *idi = ids_h + (size_t)i * n;
            start[0] = 0;
            for (int e = 0; e < E; e++) start[e + 1] = start[e] + ci[e];
            int *fill = (int *)calloc((size_t)E, sizeof(int));
            for (int j = 0; j < n; j++) {
                int e = idi[j], r = start[e] + fill[e]++;
                row_token[r] = j / k;
                entry_row[j] = r;
            }
            free(fill);
            int32_t *rt_d = row_token_d + (size_t)i * n, *er_d = entry_row_d + (size_t)i * n;
            CK(cudaMemcpy(rt_d, row_token, (size_t)n * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(er_d, entry_row, (size_t)n * 4, cudaMemcpyHostToDevice));
            const int c = i % sd->copies;
            const base_set in = {x[i],          sd->w13[c], sd->w2[c], logits[i],
                                 sd->bias,      ids_d + (size_t)i * n,
                                 w_d + (size_t)i * n,   ci,         start,
                                 rt_d,          er_d};
            fail = base_capture(cb, s, T, &in, &bb, out_b, st, &gb[i]);
        }
        if (fail) return 1;
        /* the read-alone graph of each set, from the weight copy that set uses */
        cudaGraphExec_t gr[BENCH_SETS];
        void *segs[BENCH_SETS];
        unsigned *sink;
        CK(cudaMalloc(&sink, 4));
        for (int i = 0; i < BENCH_SETS; i++)
            gr[i] = read_graph(sd, cnt + (size_t)i * E, i % sd->copies, sink, st, &segs[i]);
        /* replay r runs the fused and baseline graphs of set r, then the read of set r + 2:
         * the fused graph of set r follows the baseline of set r - 1 and the read of set r + 1,
         * the read of set r + 2 follows the two graphs of set r, so neither finds its own
         * experts in L2 from the graphs just before it */
        cudaGraphExec_t grr[BENCH_SETS];
        for (int i = 0; i < BENCH_SETS; i++) grr[i] = gr[(i + 2) % BENCH_SETS];
        float med[3];
        cudaGraphExec_t *sets[3] = {gf, gb, grr};
        time_graphs(sets, 3, BENCH_SETS, reps, st, nv, med, row->clk);
        row->fused_us = 1e3 * med[0], row->base_us = 1e3 * med[1], row->read_us = 1e3 * med[2];
        row->have_base = row->have_read = 1;
        for (int i = 0; i < BENCH_SETS; i++) {
            cudaGraphExecDestroy(gr[i]);
            CK(cudaFree(segs[i]));
        }
        CK(cudaFree(sink));
        /* set 0 of each last, for the comparison below */
        CK(cudaGraphLaunch(gf[0], st));
        CK(cudaGraphLaunch(gb[0], st));
        CK(cudaStreamSynchronize(st));
        /* loose agreement: a broken baseline (or kernel) shows here */
        size_t no = (size_t)T * H;
        uint16_t *of = (uint16_t *)malloc(no * 2), *ob = (uint16_t *)malloc(no * 2);
        CK(cudaMemcpy(of, out_f, no * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(ob, out_b, no * 2, cudaMemcpyDeviceToHost));
        double maxd = 0, maxr = 0;
        for (size_t j = 0; j < no; j++) {
            uint32_t uf = (uint32_t)of[j] << 16, ub = (uint32_t)ob[j] << 16;
            float f, b;
            memcpy(&f, &uf, 4);
            memcpy(&b, &ub, 4);
            double d = fabs((double)f - (double)b);
            if (!(d <= maxd)) maxd = d; /* NaN propagates */
            if (fabs((double)b) > maxr) maxr = fabs((double)b);
        }
        row->rel_diff = maxr > 0 ? maxd / maxr : maxd;
        row->agree = row->rel_diff < 2e-2;
        free(of);
        free(ob);
        for (int i = 0; i < BENCH_SETS; i++) cudaGraphExecDestroy(gb[i]);
        free(row_token);
        free(entry_row);
        free(start);
        CK(cudaFree(bb.xg));
        CK(cudaFree(bb.c1));
        CK(cudaFree(bb.hb));
        CK(cudaFree(bb.yb));
        CK(cudaFree(row_token_d));
        CK(cudaFree(entry_row_d));
    }
    double t = row->fused_us * 1e-6;
    row->tflops = flops / t * 1e-12;
    row->gbs = bytes / t * 1e-9;
    row->pct_mem = 100.0 * bytes / copy_bw / t;
    row->pct_compute = gemm_rate > 0 ? 100.0 * flops / gemm_rate / t : -1;
    for (int i = 0; i < BENCH_SETS; i++) {
        cudaGraphExecDestroy(gf[i]);
        CK(cudaFree(x[i]));
        CK(cudaFree(logits[i]));
    }
    free(cnt);
    free(ids_h);
    CK(cudaFree(ids_d));
    CK(cudaFree(w_d));
    CK(cudaFree(ws));
    CK(cudaFree(out_f));
    CK(cudaFree(out_b));
    return 0;
}

/* The table's header, after a line break: the columns of print_row. */
static void print_header(void) {
    printf("\n%-14s %5s %10s %10s %8s %8s %8s %7s %9s %6s %7s %6s %-18s %s\n", "shape", "T",
           "fused_us", "cublas_us", "speedup", "TFLOP/s", "GB/s", "%mem", "read_us", "%read",
           "%comp", "MHz", "check", "gemms");
}

static void print_row(const bench_row *r) {
    printf("%-14s %5d %10.1f ", r->shape, r->T, r->fused_us);
    if (r->have_base)
        printf("%10.1f %7.2fx ", r->base_us, r->base_us / r->fused_us);
    else
        printf("%10s %8s ", "n/a", "n/a");
    printf("%8.1f %8.0f %6.1f%% ", r->tflops, r->gbs, r->pct_mem);
    if (r->have_read)
        printf("%9.1f %5.1f%% ", r->read_us, 100.0 * r->read_us / r->fused_us);
    else
        printf("%9s %6s ", "n/a", "n/a");
    if (r->pct_compute >= 0)
        printf("%6.1f%% ", r->pct_compute);
    else
        printf("%7s ", "n/a");
    if (r->clk[0] > 0)
        printf("%5.0f%s ", r->clk[0], r->clk[1] >= 0.5 ? "P" : " ");
    else
        printf("%6s ", "n/a");
    char chk[40] = "-";
    if (r->have_base)
        snprintf(chk, sizeof chk, "%s (%.1e)", r->agree ? "agree" : "DISAGREE", r->rel_diff);
    printf("%-18s %s\n", chk, r->gemms);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: moefuzz bench kernel [--shape NAME[,NAME...]] [--T N[,N...]] [--reps N]\n"
            "                            [--no-baseline] [--require-baseline]\n\n"
            "Times the fused CUDA MoE kernel (CUDA-graph replays of routing through combine,\n"
            "median of --reps, default 20) against a cuBLAS baseline built in the same run, and\n"
            "reports TFLOP/s, GB/s and the share of the memory and compute floors measured on\n"
            "this card (device-to-device copy; cuBLAS bf16 GEMM 8192^3), the time of a graph\n"
            "that only reads the step's expert weights once (read_us, with the baseline only;\n"
            "%%read = read_us / fused_us), the SM clock while the replays ran (NVML; P: held\n"
            "down by the power cap), and the GEMM variants the fused kernel chose for the shape\n"
            "(GEMM1/GEMM2; pdl: programmatic launches).\n"
            "--require-baseline: an error (exit 1) unless cuBLAS loads and every row is compared\n"
            "with the baseline (without it nothing checks the fused kernel's output).\n\n"
            "shapes (default all):\n");
    for (int i = 0; i < N_SHAPES; i++)
        fprintf(f, "  %-14s E=%d k=%d H=%d I=%d %s%s groups %d/%d rsf %g\n", shapes[i].name,
                shapes[i].E, shapes[i].k, shapes[i].H, shapes[i].I,
                shapes[i].score_fn == MF_ABI_SCORE_SIGMOID ? "sigmoid" : "softmax",
                shapes[i].bias_dtype != MF_ABI_BIAS_NONE ? "+bias" : "", shapes[i].n_group,
                shapes[i].topk_group, (double)shapes[i].rsf);
    fprintf(f,
            "T (default): 1,8,64,512,4096\n"
            "exit: 0, 1 error, fused/baseline disagreement or (--require-baseline) no baseline,\n"
            "2 bad arguments, 77 no device (1 with MOEFUZZ_REQUIRE_GPU=1)\n");
}

extern "C" int mf_bench_kernel_main(int argc, char **argv) {
    int use[N_SHAPES] = {0}, any_shape = 0;
    int Ts[BENCH_MAX_T] = {1, 8, 64, 512, 4096}, nT = 5, reps = 20, use_base = 1, need_base = 0;
    for (int a = 1; a < argc; a++) {
        const char *o = argv[a];
        int more = a + 1 < argc;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--shape") && more) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[++a]);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int found = 0;
                for (int i = 0; i < N_SHAPES; i++)
                    if (!strcmp(tok, shapes[i].name) || !strcmp(tok, "all")) use[i] = 1, found = 1;
                if (!found) {
                    fprintf(stderr, "moefuzz bench kernel: unknown shape '%s'\n", tok);
                    usage(stderr);
                    return 2;
                }
            }
            any_shape = 1;
        } else if (!strcmp(o, "--T") && more) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[++a]);
            nT = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int v = atoi(tok);
                if (v < 1 || v > 16384 || nT == BENCH_MAX_T) {
                    fprintf(stderr, "moefuzz bench kernel: bad --T list (1..16384, at most %d)\n",
                            BENCH_MAX_T);
                    return 2;
                }
                Ts[nT++] = v;
            }
            if (nT == 0) return 2;
        } else if (!strcmp(o, "--reps") && more) {
            reps = atoi(argv[++a]);
            if (reps < 1 || reps > BENCH_MAX_REPS) {
                fprintf(stderr, "moefuzz bench kernel: --reps in [1, %d]\n", BENCH_MAX_REPS);
                return 2;
            }
        } else if (!strcmp(o, "--no-baseline")) {
            use_base = 0;
        } else if (!strcmp(o, "--require-baseline")) {
            need_base = 1;
        } else {
            fprintf(stderr, "moefuzz bench kernel: unknown or incomplete option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (!any_shape)
        for (int i = 0; i < N_SHAPES; i++) use[i] = 1;
    if (need_base && !use_base) {
        fprintf(stderr, "moefuzz bench kernel: --require-baseline and --no-baseline contradict\n");
        return 2;
    }

    /* the device: first of compute capability >= 9.0 */
    int dev = -1;
    char why[256] = "";
    const int found = mf_cuda_device_find(&dev, why, sizeof why);
    if (found == MF_CUDA_DEVICE_NONE) {
        printf("moefuzz bench kernel: no usable device: %s\n", why);
        return mf_cuda_skip_exit_code();
    }
    if (found != MF_CUDA_DEVICE_OK) {
        fprintf(stderr, "moefuzz bench kernel: %s\n", why);
        return 1;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    printf("card: %s (sm_%d%d, %d SMs, %.0f MB L2, %.1f GB)\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount, prop.l2CacheSize / 1e6, prop.totalGlobalMem / 1e9);
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    mf_bench_cublas cb;
    mf_bench_cublas_load(&cb, st);
    if (need_base && !cb.dl) {
        fprintf(stderr,
                "moefuzz bench kernel: --require-baseline: no cuBLAS baseline (above), "
                "so nothing would check the fused kernel's output\n");
        return 1;
    }

    double copy_bw = measure_copy_bw(st);
    double gemm_rate = measure_gemm_rate(&cb, st);
    printf("copy bandwidth (read + write): %.0f GB/s\n", copy_bw * 1e-9);
    if (gemm_rate > 0) printf("cuBLAS bf16 GEMM 8192^3: %.0f TFLOP/s\n", gemm_rate * 1e-12);

    mf_kernel_api api;
    void *kctx = NULL;
    char msg[512] = "";
    if (mf_cuda_kernel_get_api(MF_KERNEL_ABI_VERSION, &api, sizeof api) != 0 ||
        api.create(&kctx, msg, sizeof msg) != 0) {
        fprintf(stderr, "moefuzz bench kernel: cannot create the fused kernel: %s\n", msg);
        return 1;
    }

    bench_row rows[N_SHAPES * BENCH_MAX_T];
    int nrows = 0, status = 0;
    mf_bench_nvml nv;
    mf_bench_nvml_load(&nv, dev);
    if (!nv.dl) printf("NVML: not available: the MHz column reads n/a\n");
    print_header();
    for (int si = 0; si < N_SHAPES; si++) {
        if (!use[si]) continue;
        const bench_shape *s = &shapes[si];
        shape_data sd;
        memset(&sd, 0, sizeof sd);
        sd.s = s;
        size_t w13n = (size_t)s->E * 2 * s->I * s->H, w2n = (size_t)s->E * s->H * s->I;
        double wbytes = 2.0 * (double)(w13n + w2n);
        /* replicate the weights when all of them fit in four L2s: otherwise replays hit L2 */
        sd.copies = 1;
        if (wbytes < 4.0 * prop.l2CacheSize) {
            sd.copies = (int)ceil(4.0 * prop.l2CacheSize / wbytes);
            if (sd.copies > BENCH_SETS) sd.copies = BENCH_SETS;
        }
        for (int c = 0; c < sd.copies; c++) {
            CK(cudaMalloc(&sd.w13[c], w13n * 2));
            CK(cudaMalloc(&sd.w2[c], w2n * 2));
            fill_bf16(sd.w13[c], w13n, 31 + c, 1.0f / sqrtf((float)s->H));
            fill_bf16(sd.w2[c], w2n, 37 + c, 1.0f / sqrtf((float)s->I));
        }
        if (s->bias_dtype == MF_ABI_BIAS_F32) {
            CK(cudaMalloc(&sd.bias, (size_t)s->E * 4));
            fill_f32(sd.bias, (size_t)s->E, 41, 0.1f);
        }
        CK(cudaDeviceSynchronize());
        for (int ti = 0; ti < nT; ti++) {
            bench_row *r = &rows[nrows];
            if (bench_one(&sd, Ts[ti], reps, use_base, &cb, &nv, &api, kctx, copy_bw, gemm_rate, st,
                          r) != 0) {
                status = 1;
                continue;
            }
            if (r->have_base && !r->agree) status = 1;
            if (need_base && !r->have_base) status = 1;
            print_row(r);
            fflush(stdout);
            nrows++;
        }
        for (int c = 0; c < sd.copies; c++) {
            CK(cudaFree(sd.w13[c]));
            CK(cudaFree(sd.w2[c]));
        }
        if (sd.bias) CK(cudaFree(sd.bias));
    }
    printf(
        "\ncard: %s; median of %d CUDA-graph replays (fused and baseline alternating); "
        "copy %.0f GB/s",
        prop.name, reps, copy_bw * 1e-9);
    if (gemm_rate > 0) printf("; cuBLAS bf16 %.0f TFLOP/s", gemm_rate * 1e-12);
    printf("; MHz: SM clock during the replays (P: held down by the power cap)");
    print_header();
    for (int i = 0; i < nrows; i++) print_row(&rows[i]);
    api.release(kctx);
    mf_bench_nvml_unload(&nv);
    if (cb.dl) {
        cb.destroy(cb.h);
        if (cb.ws) cudaFree(cb.ws);
    }
    cudaStreamDestroy(st);
    return status;
}
