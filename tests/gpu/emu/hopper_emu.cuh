/* hopper_emu.cuh: the Hopper primitives of kernels/cuda/hopper.cuh, emulated on the CPU
 * (included by hopper.cuh under MF_CUDA_EMULATE, tests/gpu/emu only).
 *
 * Written from the PTX ISA's description, independently of the kernel's own addressing helpers:
 *   mbarrier   init / arrive / try_wait.parity with phases; a waiting thread sleeps until the
 *              phase it waits for has completed (a wait that can never end is a deadlock).
 *   cp.async.mbarrier.arrive.noinc
 *              the thread's uncommitted cp.async copies are handed to the barrier and land only
 *              when the barrier's current phase completes (the latest moment the hardware
 *              allows), the arrival counting at once.
 *   mbarrier.arrive.expect_tx, cp.async.bulk.tensor (TMA, tile mode, one CTA)
 *              a phase completes when its arrivals and its expected transaction bytes are all
 *              in; a TMA box counts its bytes at once and its data (zeros outside the tensor,
 *              rows through the 128-byte swizzle of the shared address) lands only when the
 *              phase completes, like a tracked cp.async. The tensor map is the emulator's own
 *              (emu_tmap_encode), which the kernel only passes through.
 *   wgmma      K-major operands through the descriptor (start address, stride byte offset,
 *              128-byte swizzle: address bits [4:6] ^= bits [7:9]; other modes abort), each
 *              thread's accumulator elements by the documented fragment layout, every k16 step
 *              with the measured Hopper model (B=16, F=25, RZ). The operands are read when the
 *              wgmma is issued and again when wgmma.wait_group completes it; if shared memory
 *              changed in between (a slot refilled too early, or read before its copies landed)
 *              the emulator aborts. The accumulators are written only at completion, so a read
 *              before the wait sees stale values. commit_group and wait_group are warpgroup
 *              collectives (all 128 threads, the same number of wgmmas).
 *   fences, setmaxnreg, griddepcontrol
 *              no-ops: kernels run one after the other, each block's threads as fibers.
 */
#ifndef MF_HOPPER_EMU_CUH
#define MF_HOPPER_EMU_CUH

/* Clusters (and so TMA multicast and remote arrivals) are not modelled: under the emulator the
 * host never selects the cluster variants (moe_cuda.cu), so reaching one of these is an error. */
static inline uint32_t cluster_rank(void) {
    fprintf(stderr, "emu: clusters are not modelled\n");
    abort();
}
static inline void cluster_sync(void) {
    cluster_rank();
}
static inline void mbar_arrive_peer(uint32_t, uint32_t) {
    cluster_rank();
}
static inline void tma_load_3d_mc(uint32_t, const mf_tmap *, int, int, int, uint32_t, uint16_t) {
    cluster_rank();
}

static inline void mbar_init(uint32_t bar, int count) {
    emu_mbar_init(bar, count);
}
static inline void mbar_init_fence(void) {}
static inline void mbar_arrive(uint32_t bar) {
    emu_mbar_arrive(bar);
}
static inline void mbar_wait(uint32_t bar, uint32_t parity) {
    emu_mbar_wait(bar, parity);
}
static inline void cp_async_mbar_arrive(uint32_t bar) {
    emu_cp_async_mbar_arrive(bar);
}
static inline void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    emu_mbar_expect_tx(bar, bytes);
}
static inline void tma_load_3d(uint32_t dst, const mf_tmap *tm, int c0, int c1, int c2,
                               uint32_t bar) {
    emu_tma_load_3d(dst, tm, c0, c1, c2, bar);
}
static inline void cp_async_wait_all(void) { /* = commit_group + wait_group 0 */
    emu_cp_async_commit();
    emu_cp_async_wait(0);
}
static inline void fence_proxy_async(void) {}
static inline void griddep_wait(void) {}
static inline void griddep_launch(void) {}

static inline void wgmma_fence(void) {}
static inline void wgmma_commit(void) {
    emu_wgmma_commit();
}
template <int N>
static inline void wgmma_wait(void) {
    emu_wgmma_wait(N);
}
template <int R>
static inline void wgmma_fence_acc(float (&d)[R]) {
    (void)d;
}
template <int N>
static inline void wgmma_bf16(float *d, uint64_t da, uint64_t db) {
    emu_wgmma(d, N, da, db);
}

#endif /* MF_HOPPER_EMU_CUH */
