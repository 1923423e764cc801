/* fp8.h: the low-precision formats of block-scaled MoE and the exact arithmetic on them.
 *
 * FP8 W8A8 block scale (the DeepSeek recipe: vLLM Triton `fused_moe_kernel` with
 * `use_fp8_w8a8`, DeepGEMM, SGLang, CUTLASS): e4m3 weights with one scale per block of
 * block_n x block_k (128 x 128 in the models), activations quantized per (token, block_k
 * columns) with scale amax / 448 or that scale rounded up to a power of two (UE8M0); each
 * K block's partial sum of e4m3 products times s_a * s_w is added into an fp32 accumulator.
 * MXFP4: e2m1 values with one UE8M0 scale per 32 along K, two values per byte (layout below).
 *
 * Everything here is exact: e4m3/e5m2/e2m1 values and UE8M0 scales are small dyadic numbers,
 * e4m3 x e4m3 products have 8 significant bits and are multiples of 2^-18, so a K block's sum
 * of up to 2^24 such products is an exact double. docs/error-model.md ("FP8 block scale")
 * derives the radius of the CPU FP8 contract and the interval-valued quantizer.
 */
#ifndef MF_FP8_H
#define MF_FP8_H

#include <stddef.h>
#include <stdint.h>

/* ---- formats ---- */

typedef enum mf_fp8_kind {
    MF_FP8_E4M3 = 0, /* e4m3fn: bias 7, no infinities, 0x7f/0xff NaN, max 448 */
    MF_FP8_E5M2 = 1, /* e5m2: bias 15, IEEE-like, max 57344, 0x7c inf */
} mf_fp8_kind;

#define MF_E4M3_MAX 448.0
#define MF_E5M2_MAX 57344.0

double mf_fp8_max(mf_fp8_kind k);
/* The value of code b (exact); NaN for NaN codes, +-inf for e5m2's infinities. */
double mf_fp8_decode(mf_fp8_kind k, uint8_t b);
/* Round v to the nearest code, ties to even. saturate != 0: |v| beyond the largest finite value
 * gives +-max (the kernels clamp to [-max, max] before the cast: vLLM 0.33.0
 * csrc/quantization/w8a8/fp8/per_token_group_quant.cu:89,
 * vllm/model_executor/layers/quantization/utils/fp8_utils.py:134; CUTLASS's
 * cvt.rn.satfinite). saturate == 0, an unclamped cast: e4m3 gives NaN above 464 (the midpoint
 * of 448 and 480, which is the NaN code's place; 464 itself ties to 448), e5m2 gives inf from
 * 61440 on. NaN in gives NaN. */
uint8_t mf_fp8_encode(mf_fp8_kind k, double v, int saturate);

/* UE8M0: an 8-bit biased exponent, value 2^(e - 127); 0xff is NaN. */
double mf_ue8m0_decode(uint8_t e);
/* The code of the least power of two >= s (s > 0 finite): ceil(log2 s) + 127, clamped to
 * [0, 254]. */
uint8_t mf_ue8m0_round_up(double s);
/* The least power of two >= s for an fp32 s > 0, as an fp32 (exact: frexp, no log2f). */
float mf_pow2_ceil_f32(float s);

/* e2m1 (MXFP4 values): 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives; code = sign << 3 | bits. */
double mf_e2m1_decode(uint8_t code4);

/* ---- the activation quantizer: one group of n values (one token, block_k columns) ---- */

typedef struct mf_fp8_quant {
    mf_fp8_kind kind; /* of the activation codes (e4m3 in every recipe modelled) */
    int ue8m0;        /* the scale is amax / max rounded up to a power of two */
    float eps;        /* amax floor (vLLM: 1e-10, per_token_group_quant_fp8's eps) */
    /* relative error of the kernel's y / s before the cast, beyond one correctly rounded fp32
     * division; 0: the kernel divides in IEEE fp32 (kernels/cpu), decided exactly */
    double div_rel;
    /* the kernel's log2 may round a scale up to 2^k (1 + log2_rel) down to 2^k (log2f then
     * ceilf: vLLM per_token_group_quant.cu:70); 0: exact (kernels/cpu uses frexp) */
    double log2_rel;
    /* 1: y times fl(1 / s), each rounded to fp32 (vLLM per_token_group_quant.cu:85-89); 0: the
     * fp32 quotient y / s */
    int recip;
    /* ue8m0: the raw scale is floored at s_floor before the round-up (vLLM
     * per_token_group_quant.cu:70, fmaxf(|y_s|, 1e-10f)); 0: no floor */
    float s_floor;
    /* not ue8m0: the fp32 scale is max(fl(amax / max), s_min) (vLLM
     * fused_silu_mul_block_quant.cu:88, 1 / (448 * 512) from quantization/utils.cuh:52); 0: none */
    float s_min;
} mf_fp8_quant;

/* What the CPU kernel computes, bit for bit: amax = max(max|y_j|, eps) in fp32, s = fl(amax /
 * max), with ue8m0 s = mf_pow2_ceil_f32(max(s, s_floor)), else s = max(s, s_min); q_j = encode(fl(y_j / s)) saturating,
 * or encode(fl(y_j fl(1 / s))) with recip (exact log2: log2_rel is not applied). Returns s. */
float mf_fp8_quant_group(const mf_fp8_quant *qz, const float *y, int n, uint8_t *q);

/* The quantizer with interval inputs. Each y_j is only known to lie in [lo_j, hi_j] (fp32
 * values: the admissible bf16 activations, or a point where lo = hi). Every scale the kernel may
 * pick lies in the enumerated candidates (a UE8M0 scale: each power of two between the ends;
 * an fp32 scale: the interval [s_lo, s_hi], its two ends given as one candidate); for each
 * candidate and each element, every code the kernel may produce lies in [qlo, qhi] (ordered by
 * value). The dequantized element q * s the kernel multiplies by W then lies in [dlo_j, dhi_j],
 * the union over the candidates. The representative is what the kernel computes on the
 * representative inputs rep_j (in [lo_j, hi_j]): rep_s and rep_q_j. n <= 4096. */
#define MF_FP8_MAX_SCALES 8
typedef struct mf_fp8_group_iv {
    int nscales;                     /* candidates (UE8M0) or 1 (an fp32 interval) */
    float s_lo[MF_FP8_MAX_SCALES];   /* UE8M0: s_lo[i] == s_hi[i] */
    float s_hi[MF_FP8_MAX_SCALES];
    int scales_clipped;              /* more UE8M0 candidates than MF_FP8_MAX_SCALES: undecided */
    float rep_s;                     /* the scale on the representative inputs */
} mf_fp8_group_iv;

/* Fills g, rep_q[n] and the dequantized enclosure dlo/dhi[n] (exact doubles). Returns the number
 * of elements with more than one admissible dequantized value. */
int mf_fp8_quant_group_iv(const mf_fp8_quant *qz, const float *lo, const float *hi,
                          const float *rep, int n, mf_fp8_group_iv *g, uint8_t *rep_q,
                          double *dlo, double *dhi);

/* vLLM's fused silu_and_mul_per_block_quant (csrc/quantization/fused_kernels/
 * fused_silu_mul_block_quant.cu:54-60) computes, from bf16 gate g and up u, the fp32 value
 * r = fl(fl(g fl(1 / fl(1 + E))) u) with E = expf(-g) within exp_ulps ulps of exp(-g) (all other
 * operations IEEE fp32, round to nearest). For g one of the bf16 values in [g_lo, g_hi] (bits,
 * ordered by value, finite) and u in [u_lo, u_hi] (fp32), [*lo, *hi] encloses every r, and *rep
 * is r on g_rep, u_rep with E the correctly rounded exp. Up to 64 gate values are taken one by
 * one; a wider range as a box (the sigmoid factor's range over the whole gate range). Returns 0,
 * or -1 where the enclosure is not computed (a gate not finite, or a result beyond fp32's range:
 * the kernel's quantizer then meets inf or NaN). */
int mf_silu_mul_f32_range(uint16_t g_lo, uint16_t g_hi, float u_lo, float u_hi, double exp_ulps,
                          uint16_t g_rep, float u_rep, float *lo, float *hi, float *rep);

/* ---- exact block-scaled dot product and the CPU FP8 contract's radius ---- */

/* e4m3 operands only (every modelled recipe): a product is a multiple of 2^-18 below 2^18, so
 * a block's sum of up to 2^17 products is exact in double. One output of a block-scaled GEMM: sum over K blocks b of s_a[b] s_w[b] sum_{j in b} qa_j qw_j.
 * qa: the activation's representative codes (length n), sa[n / bk rounded up] its scales; qw, sw
 * the weight row's codes and the scales of its K blocks; bk the K block (the last block may be
 * shorter). delta (may be NULL): the kernel's dequantized activation j may differ from
 * qa_j sa[j / bk] by up to delta_j; the radius covers every such input.
 *
 * CPU FP8 contract (kernels/cpu/moe_cpu_fp8.c): per block an fp32 chain in K order of the exact
 * products, then t = fl(fl(P * s_a) * s_w), then acc = fl(acc + t) in block order. */
typedef struct mf_fp8_dot_out {
    double hi, lo;   /* exact value ~= hi + lo */
    double err;      /* |exact - (hi + lo)| <= err */
    double radius;   /* |kernel - exact| <= radius (includes err and the perturbation) */
    double abs_sum;  /* sum over blocks of |s_a s_w| sum |qa qw|, plus the perturbation */
    int nonfinite;   /* a NaN code or scale: the value is void */
    int may_overflow;/* a partial may exceed the fp32 range within the radius */
} mf_fp8_dot_out;

/* A tensor-core FP8 accumulation (docs/error-model.md, "FP8 on the tensor cores"): each K block's
 * partial is a chain from 0 of fused steps of `step` products (zero-padded at the block's end),
 * each step the sum of the fp32 accumulator and its products, every term truncated toward zero
 * to `frac` fraction bits below the largest exponent field of the step (a product's is
 * e(a) + e(b), subnormal operands at the format's minimum normal exponent), the sum truncated to
 * `res_bits` significant bits and stored in fp32. Hopper's wgmma k32, measured: 32, 13, 14
 * (docs/hopper-probe.md, "FP8"). step == 0: the CPU FP8 contract's fp32 chain instead. */
typedef struct mf_fp8_acc {
    int step;
    int frac;
    int res_bits;
    /* 1: the epilogue may apply the two scales in either order, fl(fl(P s_w) s_a) as well as
     * fl(fl(P s_a) s_w) (vLLM's swap-AB kernel: fused_moe.py l. 557-560); 0: s_a first */
    int scale_order_any;
} mf_fp8_acc;

typedef struct mf_fp8_dot_ws mf_fp8_dot_ws;
mf_fp8_dot_ws *mf_fp8_dot_ws_new(void);
void mf_fp8_dot_ws_free(mf_fp8_dot_ws *ws);

void mf_fp8_dot(mf_fp8_dot_ws *ws, const uint8_t *qa, const float *sa, const double *delta,
                const uint8_t *qw, const float *sw, size_t n, int bk, mf_fp8_dot_out *out);
/* mf_fp8_dot with each K block's partial accumulated as `acc` says (NULL or step 0: the fp32
 * chain of mf_fp8_dot); the rest (t = fl(fl(P s_a) s_w), the fp32 sum over blocks) the same. */
void mf_fp8_dot_acc(mf_fp8_dot_ws *ws, const uint8_t *qa, const float *sa, const double *delta,
                    const uint8_t *qw, const float *sw, size_t n, int bk, const mf_fp8_acc *acc,
                    mf_fp8_dot_out *out);
/* The error of one K block's partial under a tensor-core accumulation (acc->step > 0), scaled
 * by the activation's block scale: |s'_a (P' - sum q'_j qw_j)| <= the returned value, P' the
 * kernel's partial on the codes q'_j it was given and s'_a their scale. delta NULL: q' = qa and
 * s'_a = sa, and the bound is taken from the exact partial sums of the steps; otherwise any q',
 * s'_a with |q'_j s'_a - qa_j sa| <= delta_j, bounded through the steps' sums of magnitudes.
 * n <= the block size of the caller, at most 4096. */
double mf_fp8_tc_block_bound(const mf_fp8_acc *acc, const uint8_t *qa, const uint8_t *qw,
                             const double *delta, double sa, size_t n);

/* ---- MXFP4 ---- */

/* A row of K e2m1 values packed two per byte, element 2i in the low nibble of byte i and 2i + 1
 * in the high nibble (OCP MX, vLLM/triton_kernels' layout), with one UE8M0 scale per 32
 * elements (the last block may be partial: ceil(K / 32) scales, ceil(K / 2) bytes). Writes the
 * dequantized row as bf16 bits: exact, except a value beyond bf16's range (becomes +-inf) and
 * the scale 0xff (NaN). */
void mf_mxfp4_dequant_bf16(const uint8_t *packed, const uint8_t *scales, size_t K, uint16_t *out);

/* The canonical MXFP4 form of a row of K bf16 values (layout above), how a case's weights
 * reach an MXFP4 kernel: per block of 32, a NaN gives the scale 0xff; else the scale is
 * 2^(floor(log2 amax) - 2) (OCP MX: the largest value lands in [4, 8)) clamped to [2^-127,
 * 2^127], and each value is rounded to the nearest e2m1 value (ties to even), saturating at 6.
 * A block of e2m1 values times one power of two is recovered exactly. */
void mf_mxfp4_pack_bf16(const uint16_t *in, size_t K, uint8_t *packed, uint8_t *scales);

/* e4m3 codes of a row of bf16 values (saturating encode): how a case's weights reach an FP8
 * kernel. */
void mf_e4m3_from_bf16(const uint16_t *in, size_t n, uint8_t *out);

#endif /* MF_FP8_H */
