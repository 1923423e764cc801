/* moe_knobs.h: the tuning knobs of the fused CUDA MoE kernel, read from the environment by its
 * create() (kernels/cuda/moe_cuda.cu; docs/cuda-kernel.md lists them). Plain C.
 *
 * A value that names no setting, or settings that contradict each other, make create() fail,
 * strict or not: a typo in a knob meant to force a path would otherwise run the default while
 * the caller believes the path was tested, and no device makes such a value meaningful. Unset
 * and empty variables take the default.
 */
#ifndef MF_CUDA_MOE_KNOBS_H
#define MF_CUDA_MOE_KNOBS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mf_cuda_knobs {
    int strict;              /* MOEFUZZ_CUDA_STRICT=0|1 */
    int bm;                  /* MOEFUZZ_CUDA_BM=16|64|128; 0 unset */
    int wg_cw, wg_bn, wg_mc; /* MOEFUZZ_CUDA_WG: the variant; wg_cw -1 "off", 0 unset */
    const char *wg;          /* its value, for messages */
    double wg_min;           /* MOEFUZZ_CUDA_WG_MIN >= 0 */
    int wg_min_set;
    int wg_grid; /* MOEFUZZ_CUDA_WG_GRID >= 1; 0 unset */
    int verbose; /* MOEFUZZ_CUDA_VERBOSE=0|1 */
    int pdl;     /* MOEFUZZ_CUDA_PDL=0|1|2, default 1 */
    int tma;     /* MOEFUZZ_CUDA_TMA=0|1; -1 unset (B by TMA where the device can) */
} mf_cuda_knobs;

/* Reads every MOEFUZZ_CUDA_* knob into k. 0, or 1 with a message naming the variable. */
int mf_cuda_knobs_read(mf_cuda_knobs *k, char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif

#endif /* MF_CUDA_MOE_KNOBS_H */
