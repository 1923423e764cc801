/* cuda_emu.cpp: the fiber scheduler, barriers, warp collectives, cp.async queues and runtime
 * stubs of the CPU emulator (cuda_emu.h says what is emulated and what is checked). */
#include "cuda_emu.h"

#include <setjmp.h>
#include <ucontext.h>

#include <map>
#include <vector>

#include "hopper_model.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

dim3 emu_threadIdx, emu_blockIdx, emu_blockDim, emu_gridDim;
unsigned char smem_raw[EMU_SMEM_BYTES] __attribute__((aligned(128)));

namespace {

const size_t kStack = 512 * 1024; /* per fiber: room for sanitizer redzones */

enum { READY, WAIT_BLOCK, WAIT_WARP, WAIT_GROUP, WAIT_MBAR, DONE };

struct cp_copy {
    uint32_t saddr;
    const void *src;
    int bytes;
};

/* one issued wgmma of one thread: its accumulators, descriptors and the operands it read */
struct wg_op {
    float *d;
    int n;
    uint64_t da, db;
    std::vector<uint16_t> a, b; /* [2][16] rows of A, [n/4][16] columns of B */
};

struct mbar_state {
    int expected = 0, pending = 0;
    long long tx = 0;            /* transaction bytes expected and not yet completed */
    unsigned phase = 0;          /* completed phases */
    std::vector<cp_copy> copies; /* tracked copies: land when the current phase completes */
};

/* a warpgroup's rendezvous (wgmma.commit_group / wait_group) */
struct group_state {
    unsigned gen = 0, count = 0, live = 0, size = 0, nops = 0;
    const char *what = nullptr;
};

/* A fiber starts through makecontext/setcontext and then switches with _setjmp/_longjmp:
 * swapcontext would save and restore the signal mask (a system call) at every switch. */
struct fiber {
    ucontext_t ctx;
    jmp_buf jb;
    bool started = false;
    char *stack = nullptr;
    unsigned tid = 0;
    int lane = 0, warp = 0, state = READY;
    unsigned wait_gen = 0;
    uint32_t wait_bar = 0, wait_parity = 0;   /* WAIT_MBAR */
    std::vector<std::vector<cp_copy>> groups; /* committed, oldest first */
    std::vector<cp_copy> open;                /* not yet committed */
    std::vector<std::vector<wg_op>> wg_groups; /* committed wgmmas, oldest first */
    std::vector<wg_op> wg_open;
};

struct warp_state {
    unsigned gen = 0, count = 0, live = 0, size = 0;
    const char *what = nullptr;
    unsigned char buf[32][64];
    unsigned computed_gen = ~0u; /* emu_warp_compute: generation whose result is in `result` */
    unsigned char result[512];
};

std::vector<fiber> fibers;
/* one stack per thread slot, reused by every block and never freed (a plain array, so the leak
 * checker, which runs after the static destructors, still sees them) */
char *stacks[1024];
std::vector<warp_state> warps;
std::vector<group_state> wgroups; /* per 128 threads */
std::map<uint32_t, mbar_state> mbars;
jmp_buf sched_jb;
int cur = -1;
unsigned bar_gen, bar_count, live;
size_t smem_limit; /* dynamic shared memory of the running launch */
const std::function<void()> *kernel_fn;
const char *kernel_name = "?";
cudaError_t last_error = cudaSuccess;
std::map<const void *, int> smem_optin; /* per kernel, as cudaFuncSetAttribute set it */
uint64_t sched_rng = 0x9e3779b97f4a7c15ull;
#ifdef EMU_ASAN
void *fake_stack_save;
#endif

[[noreturn]] void die(const char *fmt, const char *a = "", const char *b = "") {
    fprintf(stderr, "cuda_emu: kernel %s, block (%u,%u,%u), thread %d: ", kernel_name,
            emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z, cur >= 0 ? (int)fibers[cur].tid : -1);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    abort();
}

fiber &self() {
    if (cur < 0) die("a device function was called outside a kernel");
    return fibers[cur];
}

/* back to the scheduler */
void yield() {
    fiber &f = self();
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&fake_stack_save, nullptr, 0);
#endif
    if (!_setjmp(f.jb)) _longjmp(sched_jb, 1);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack_save, nullptr, nullptr);
#endif
}

void complete_group(fiber &f) {
    for (const cp_copy &c : f.groups.front()) {
        if (c.bytes > 0) memcpy(smem_raw + c.saddr, c.src, (size_t)c.bytes);
        if (c.bytes < 16) memset(smem_raw + c.saddr + c.bytes, 0, (size_t)(16 - c.bytes));
    }
    f.groups.erase(f.groups.begin());
}

void release_if_complete(void) {
    if (bar_count > 0 && bar_count == live) bar_count = 0, bar_gen++;
}

void warp_release_if_complete(warp_state &w) {
    if (w.count > 0 && w.count == w.live) w.count = 0, w.gen++, w.what = nullptr;
}

[[noreturn]] void fiber_entry(void) {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    (*kernel_fn)();
    fiber &f = self();
    if (!f.open.empty() || !f.groups.empty()) {
        bool real = !f.open.empty();
        for (auto &g : f.groups) real |= !g.empty();
        if (real) die("exits with cp.async copies still in flight");
    }
    if (!f.wg_open.empty() || !f.wg_groups.empty()) die("exits with wgmma operations in flight");
    f.state = DONE;
    live--;
    release_if_complete();
    warp_state &w = warps[f.warp];
    w.live--;
    if (w.count > 0) die("exits while its warp waits in %s", w.what ? w.what : "a collective");
    warp_release_if_complete(w);
    group_state &gs = wgroups[f.tid / 128];
    gs.live--;
    if (gs.count > 0) die("exits while its warpgroup waits in %s", gs.what ? gs.what : "?");
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, nullptr, 0); /* this fiber's stack is done */
#endif
    _longjmp(sched_jb, 1);
}

bool runnable(const fiber &f) {
    switch (f.state) {
    case READY:
        return true;
    case WAIT_BLOCK:
        return bar_gen != f.wait_gen;
    case WAIT_WARP:
        return warps[f.warp].gen != f.wait_gen;
    case WAIT_GROUP:
        return wgroups[f.tid / 128].gen != f.wait_gen;
    case WAIT_MBAR: {
        auto it = mbars.find(f.wait_bar);
        return it != mbars.end() && (it->second.phase & 1u) != f.wait_parity;
    }
    default:
        return false;
    }
}

uint64_t next_rand(void) {
    uint64_t z = (sched_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Runs fiber f until it yields or ends. Its own function: nothing of the caller's frame is live
 * across the _setjmp. */
__attribute__((noinline)) void resume(fiber &f) {
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&fake_stack_save, f.stack, kStack);
#endif
    if (!_setjmp(sched_jb)) {
        if (!f.started) {
            f.started = true;
            setcontext(&f.ctx);
        }
        _longjmp(f.jb, 1);
    }
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack_save, nullptr, nullptr);
#endif
}

void run_block(unsigned nthreads) {
    fibers.assign(nthreads, fiber());
    warps.assign((nthreads + 31) / 32, warp_state());
    wgroups.assign((nthreads + 127) / 128, group_state());
    mbars.clear();
    for (unsigned i = 0; i < nthreads; i++)
        if (!stacks[i] && !(stacks[i] = (char *)malloc(kStack))) die("out of memory for stacks");
    for (unsigned i = 0; i < nthreads; i++) {
        fiber &f = fibers[i];
        f.stack = stacks[i];
        f.tid = i, f.lane = (int)(i & 31), f.warp = (int)(i >> 5), f.state = READY;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = kStack;
        f.ctx.uc_link = nullptr; /* fiber_entry never returns */
        makecontext(&f.ctx, fiber_entry, 0);
        warps[f.warp].live++, warps[f.warp].size++;
        wgroups[i / 128].live++, wgroups[i / 128].size++;
    }
    bar_gen = bar_count = 0;
    live = nthreads;
    /* thread order of this block: forward, reverse or shuffled */
    std::vector<unsigned> order(nthreads);
    for (unsigned i = 0; i < nthreads; i++) order[i] = i;
    uint64_t mode = next_rand() % 3;
    if (mode == 1)
        for (unsigned i = 0; i < nthreads; i++) order[i] = nthreads - 1 - i;
    if (mode == 2)
        for (unsigned i = nthreads; i > 1; i--) std::swap(order[i - 1], order[next_rand() % i]);
    unsigned done = 0;
    while (done < nthreads) {
        bool progress = false;
        for (unsigned oi = 0; oi < nthreads; oi++) {
            unsigned i = order[oi];
            fiber &f = fibers[i];
            if (!runnable(f)) continue;
            f.state = READY;
            cur = (int)i;
            emu_threadIdx = dim3(f.tid, 0, 0);
            resume(f);
            cur = -1;
            progress = true;
            if (f.state == DONE) done++;
        }
        if (!progress) {
            cur = 0;
            for (unsigned i = 0; i < nthreads; i++)
                if (fibers[i].state != DONE) {
                    cur = (int)i;
                    break;
                }
            const int st = fibers[cur].state;
            die("deadlock: %s", st == WAIT_BLOCK   ? "__syncthreads not reached by every live thread"
                                : st == WAIT_WARP  ? "a warp collective not reached by every lane"
                                : st == WAIT_GROUP ? "a warpgroup collective not reached by all"
                                                   : "an mbarrier phase that never completes");
        }
    }
    for (auto &m : mbars)
        if (!m.second.copies.empty() || m.second.tx != 0) {
            cur = -1;
            die("the block ends with copies (cp.async or TMA) tracked by an unfinished mbarrier "
                "phase");
        }
}

}  // namespace

/* ---- device side ---- */

size_t __cvta_generic_to_shared(const void *p) {
    const unsigned char *c = (const unsigned char *)p;
    if (c < smem_raw || c >= smem_raw + EMU_SMEM_BYTES) die("not a shared-memory pointer");
    return (size_t)(c - smem_raw);
}

void emu_check_smem(uint32_t addr, size_t bytes, size_t align, const char *what) {
    if (addr % align) die("%s: shared address not aligned", what);
    if (addr + bytes > smem_limit) die("%s: beyond the launch's dynamic shared memory", what);
}

int emu_lane(void) {
    return self().lane;
}

void __syncthreads(void) {
    fiber &f = self();
    if (++bar_count == live) {
        bar_count = 0, bar_gen++;
        return;
    }
    f.state = WAIT_BLOCK;
    f.wait_gen = bar_gen;
    yield();
}

static void warp_sync(const char *what) {
    fiber &f = self();
    warp_state &w = warps[f.warp];
    if (w.live != 32 || w.size != 32) die("%s with fewer than 32 live lanes", what);
    if (w.count == 0)
        w.what = what;
    else if (w.what != what && strcmp(w.what, what) != 0)
        die("divergent warp collectives: %s and %s", w.what, what);
    if (++w.count == w.live) {
        w.count = 0, w.gen++, w.what = nullptr;
        return;
    }
    f.state = WAIT_WARP;
    f.wait_gen = w.gen;
    yield();
}

void __syncwarp(unsigned mask) {
    if (mask != 0xffffffffu) die("__syncwarp with a partial mask");
    warp_sync("__syncwarp");
}

void emu_warp_gather(const void *mine, size_t bytes, void *all, const char *what) {
    fiber &f = self();
    if (bytes > 64) die("internal: gather of more than 64 bytes");
    warp_state &w = warps[f.warp];
    memcpy(w.buf[f.lane], mine, bytes);
    warp_sync(what);
    for (int l = 0; l < 32; l++) memcpy((unsigned char *)all + l * bytes, w.buf[l], bytes);
    warp_sync(what); /* nobody overwrites buf before every lane has read it */
}

void emu_warp_pick(const void *mine, size_t bytes, const int *lanes, int n, void *out,
                   const char *what) {
    fiber &f = self();
    if (bytes > 64) die("internal: exchange of more than 64 bytes");
    warp_state &w = warps[f.warp];
    memcpy(w.buf[f.lane], mine, bytes);
    warp_sync(what);
    for (int i = 0; i < n; i++)
        memcpy((unsigned char *)out + i * bytes, w.buf[lanes[i] & 31], bytes);
    warp_sync(what);
}

void emu_warp_compute(const void *mine, size_t bytes, void (*compute)(const void *, void *),
                      void *result, size_t result_bytes, const char *what) {
    fiber &f = self();
    if (bytes > 64 || result_bytes > 512) die("internal: warp computation too large");
    warp_state &w = warps[f.warp];
    memcpy(w.buf[f.lane], mine, bytes);
    warp_sync(what);
    if (w.computed_gen != w.gen) {
        unsigned char all[32 * 64];
        for (int l = 0; l < 32; l++) memcpy(all + l * bytes, w.buf[l], bytes);
        compute(all, w.result);
        w.computed_gen = w.gen;
    }
    memcpy(result, w.result, result_bytes);
    warp_sync(what);
}

unsigned __match_any_sync(unsigned mask, int v) {
    if (mask != 0xffffffffu) die("__match_any_sync with a partial mask");
    int all[32];
    emu_warp_gather(&v, sizeof v, all, "__match_any_sync");
    unsigned m = 0;
    for (int l = 0; l < 32; l++)
        if (all[l] == v) m |= 1u << l;
    return m;
}

unsigned __ballot_sync(unsigned mask, int pred) {
    if (mask != 0xffffffffu) die("__ballot_sync with a partial mask");
    int all[32], p = pred != 0;
    emu_warp_gather(&p, sizeof p, all, "__ballot_sync");
    unsigned m = 0;
    for (int l = 0; l < 32; l++)
        if (all[l]) m |= 1u << l;
    return m;
}

unsigned __reduce_max_sync(unsigned mask, unsigned v) {
    if (mask != 0xffffffffu) die("__reduce_max_sync with a partial mask");
    unsigned all[32], m = 0;
    emu_warp_gather(&v, sizeof v, all, "__reduce_max_sync");
    for (int l = 0; l < 32; l++) m = all[l] > m ? all[l] : m;
    return m;
}

void emu_cp_async_16(uint32_t saddr, const void *gptr, int src_bytes) {
    emu_check_smem(saddr, 16, 16, "cp.async destination");
    if ((uintptr_t)gptr % 16) die("cp.async: global source not 16-byte aligned");
    if (src_bytes < 0 || src_bytes > 16) die("cp.async: src-size outside [0, 16]");
    self().open.push_back(cp_copy{saddr, gptr, src_bytes});
}

void emu_cp_async_commit(void) {
    fiber &f = self();
    f.groups.push_back(f.open);
    f.open.clear();
}

void emu_cp_async_wait(int n) {
    fiber &f = self();
    while ((int)f.groups.size() > n) complete_group(f);
}

/* ---- Hopper: mbarriers ---- */

static mbar_state &mbar_at(uint32_t bar, const char *what) {
    auto it = mbars.find(bar);
    if (it == mbars.end()) die("%s on an mbarrier that was never initialised", what);
    return it->second;
}

/* The phase completes once every arrival and every expected transaction byte is in: then, and
 * not before, its tracked copies land. */
static void mbar_try_complete(mbar_state &m) {
    if (m.pending > 0 || m.tx > 0) return;
    for (const cp_copy &c : m.copies) {
        if (c.bytes > 0) memcpy(smem_raw + c.saddr, c.src, (size_t)c.bytes);
        if (c.bytes < 16) memset(smem_raw + c.saddr + c.bytes, 0, (size_t)(16 - c.bytes));
    }
    m.copies.clear();
    m.phase++;
    m.pending = m.expected;
}

static void mbar_complete_one(mbar_state &m) {
    if (m.pending <= 0) die("mbarrier: more arrivals than expected in a phase");
    --m.pending;
    mbar_try_complete(m);
}

void emu_mbar_init(uint32_t bar, int count) {
    emu_check_smem(bar, 8, 8, "mbarrier.init");
    if (count < 1) die("mbarrier.init with a count below 1");
    mbar_state m;
    m.expected = m.pending = count;
    mbars[bar] = m;
}

void emu_mbar_arrive(uint32_t bar) {
    mbar_complete_one(mbar_at(bar, "mbarrier.arrive"));
}

void emu_mbar_wait(uint32_t bar, uint32_t parity) {
    fiber &f = self();
    if (parity > 1) die("mbarrier.try_wait.parity with a parity other than 0 or 1");
    while ((mbar_at(bar, "mbarrier.try_wait").phase & 1u) == parity) {
        f.state = WAIT_MBAR;
        f.wait_bar = bar, f.wait_parity = parity;
        yield();
    }
}

void emu_cp_async_mbar_arrive(uint32_t bar) {
    fiber &f = self();
    for (auto &g : f.groups)
        if (!g.empty()) die("cp.async.mbarrier.arrive after commit_group: not modelled");
    mbar_state &m = mbar_at(bar, "cp.async.mbarrier.arrive");
    m.copies.insert(m.copies.end(), f.open.begin(), f.open.end());
    f.open.clear();
    mbar_complete_one(m);
}

void emu_mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    mbar_state &m = mbar_at(bar, "mbarrier.arrive.expect_tx");
    m.tx += bytes;
    mbar_complete_one(m);
}

/* ---- Hopper: TMA (cp.async.bulk.tensor, tile mode, one CTA) ----
 * The emulator's tensor map (emu_tmap_encode; the kernel only passes it through): the global
 * base, then per dimension its size, the byte strides of dimensions 1 and 2, and the box. */
struct emu_tmap {
    const unsigned char *base;
    unsigned long long dims[3], strides[2];
    unsigned box[3];
    unsigned long long magic;
};
static const unsigned long long kTmapMagic = 0x7e6d617054414dull;

void emu_tmap_encode(void *tmap, const void *base, const unsigned long long dims[3],
                     const unsigned long long strides[2], const unsigned box[3]) {
    static_assert(sizeof(emu_tmap) <= 128, "a tensor map has 128 bytes");
    emu_tmap t;
    memset(&t, 0, sizeof t);
    t.base = (const unsigned char *)base;
    memcpy(t.dims, dims, sizeof t.dims);
    memcpy(t.strides, strides, sizeof t.strides);
    memcpy(t.box, box, sizeof t.box);
    t.magic = kTmapMagic;
    memset(tmap, 0, 128);
    memcpy(tmap, &t, sizeof t);
}

/* bf16 elements; the box's rows (dimension 1, and 2) land one after the other, 2 box[0] bytes
 * each, with the 128-byte swizzle applied to the shared address (16-byte chunk bits [4:6] ^=
 * bits [7:9]); elements outside the tensor are zeros; the box's bytes count as complete_tx on
 * the barrier; the data lands when the barrier's phase completes. */
void emu_tma_load_3d(uint32_t dst, const void *tmap, int c0, int c1, int c2, uint32_t bar) {
    emu_tmap t;
    memcpy(&t, tmap, sizeof t);
    if (t.magic != kTmapMagic) die("cp.async.bulk.tensor: not a tensor map from emu_tmap_encode");
    if (t.box[0] * 2 != 128) die("cp.async.bulk.tensor: only 128-byte box rows are modelled");
    if (c0 % 8) die("cp.async.bulk.tensor: only 16-byte aligned inner coordinates are modelled");
    const unsigned rows = t.box[1] * t.box[2];
    emu_check_smem(dst, (size_t)rows * 128, 128, "cp.async.bulk.tensor destination");
    mbar_state &m = mbar_at(bar, "cp.async.bulk.tensor");
    for (unsigned z = 0; z < t.box[2]; z++)
        for (unsigned y = 0; y < t.box[1]; y++) {
            const uint32_t row = dst + (z * t.box[1] + y) * 128u;
            const long long gy = (long long)c1 + y, gz = (long long)c2 + z;
            const bool in_row = gy >= 0 && gy < (long long)t.dims[1] && gz >= 0 &&
                                gz < (long long)t.dims[2];
            for (int ch = 0; ch < 8; ch++) {
                const uint32_t a = row + 16u * ch, sw = a ^ (((a >> 7) & 7u) << 4);
                const long long gx = (long long)c0 + 8 * ch; /* first element of the chunk */
                long long n = in_row && gx >= 0 ? (long long)t.dims[0] - gx : 0;
                n = n < 0 ? 0 : n > 8 ? 8 : n;
                const unsigned char *src =
                    n > 0 ? t.base + gz * t.strides[1] + gy * t.strides[0] + gx * 2 : nullptr;
                m.copies.push_back(cp_copy{sw, src, (int)(2 * n)});
            }
        }
    m.tx -= (long long)rows * 128;
    if (m.tx < 0) die("cp.async.bulk.tensor: more bytes than the barrier's phase expects");
    mbar_try_complete(m);
}

/* ---- Hopper: wgmma ---- */

/* A K-major operand's descriptor with the 128-byte swizzle, decoded and checked once. */
struct wg_desc {
    uint32_t start, sbo;
};

static wg_desc wg_decode(uint64_t desc) {
    if ((desc >> 62) != 1) die("wgmma: only the 128-byte swizzle is modelled");
    if (((desc >> 49) & 7) != 0) die("wgmma: a nonzero matrix base offset is not modelled");
    wg_desc d;
    d.start = (uint32_t)(desc & 0x3FFF) << 4;
    d.sbo = (uint32_t)((desc >> 32) & 0x3FFF) << 4;
    if ((d.start & ~127u) % 1024) die("wgmma: swizzle pattern not at a 1024-byte boundary");
    return d;
}

/* Shared address of elements (row r, k .. k + 7), k a multiple of 8: one 16-byte chunk, which
 * the swizzle moves as a whole (it permutes address bits 4-6, and the chunk's row offset is a
 * multiple of 16). */
static uint32_t wg_chunk_addr(const wg_desc &d, int r, int k) {
    const uint32_t a = d.start + (uint32_t)(r >> 3) * d.sbo + (uint32_t)(r & 7) * 128 +
                       (uint32_t)k * 2;
    const uint32_t s = a ^ (((a >> 7) & 7u) << 4);
    emu_check_smem(s, 16, 16, "wgmma operand");
    return s;
}

/* The operands this thread's accumulator elements need: A rows 16 w + g, + 8 and B rows
 * (columns of the product) 8 j + 2 q + c, 16 k values each. */
static void wg_gather(const fiber &f, uint64_t da, uint64_t db, int n, std::vector<uint16_t> &a,
                      std::vector<uint16_t> &b) {
    const int w = (int)(f.tid / 32) & 3, g = f.lane >> 2, q = f.lane & 3;
    const wg_desc A = wg_decode(da), B = wg_decode(db);
    a.resize(2 * 16);
    b.resize((size_t)n / 4 * 16);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 16; k += 8)
            memcpy(&a[h * 16 + k], smem_raw + wg_chunk_addr(A, 16 * w + g + 8 * h, k), 16);
    for (int j = 0; j < n / 8; j++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 16; k += 8)
                memcpy(&b[(size_t)(2 * j + c) * 16 + k],
                       smem_raw + wg_chunk_addr(B, 8 * j + 2 * q + c, k), 16);
}

void emu_wgmma(float *d, int n, uint64_t da, uint64_t db) {
    fiber &f = self();
    if (n % 8 || n < 8 || n > 256) die("wgmma: n not a multiple of 8 in [8, 256]");
    wg_op op;
    op.d = d, op.n = n, op.da = da, op.db = db;
    wg_gather(f, da, db, n, op.a, op.b);
    f.wg_open.push_back(op);
}

static void group_sync(const char *what, unsigned nops) {
    fiber &f = self();
    group_state &g = wgroups[f.tid / 128];
    if (g.live != 128 || g.size != 128) die("%s with fewer than 128 live threads", what);
    if (g.count == 0) {
        g.what = what, g.nops = nops;
    } else if (strcmp(g.what, what) != 0) {
        die("divergent warpgroup collectives: %s and %s", g.what, what);
    } else if (g.nops != nops) {
        die("%s: the warpgroup's threads issued different numbers of wgmmas", what);
    }
    if (++g.count == g.live) {
        g.count = 0, g.gen++, g.what = nullptr;
        return;
    }
    f.state = WAIT_GROUP;
    f.wait_gen = g.gen;
    yield();
}

void emu_wgmma_commit(void) {
    fiber &f = self();
    group_sync("wgmma.commit_group", (unsigned)f.wg_open.size());
    f.wg_groups.push_back(f.wg_open);
    f.wg_open.clear();
}

static float wg_step(float c, const uint16_t *a, const uint16_t *b) {
    static const hm_hypothesis hopper = {"B=16 F=25 RZ", 16, 25, 0};
    int finite = isfinite(c);
    for (int k = 0; k < 16; k++) finite &= (a[k] & 0x7f80) != 0x7f80 && (b[k] & 0x7f80) != 0x7f80;
    if (finite) return hm_step(&hopper, c, a, b);
    double s = c; /* non-finite inputs: IEEE classes, as the mma.sync model */
    for (int k = 0; k < 16; k++)
        s += (double)__uint_as_float((uint32_t)a[k] << 16) * __uint_as_float((uint32_t)b[k] << 16);
    return (float)s;
}

void emu_wgmma_wait(int n) {
    fiber &f = self();
    if (!f.wg_open.empty()) die("wgmma.wait_group with uncommitted wgmmas");
    group_sync("wgmma.wait_group", (unsigned)f.wg_groups.size());
    while ((int)f.wg_groups.size() > n) {
        for (wg_op &op : f.wg_groups.front()) {
            std::vector<uint16_t> a, b;
            wg_gather(f, op.da, op.db, op.n, a, b);
            if (a != op.a || b != op.b)
                die("wgmma: an operand in shared memory changed between issue and completion");
            for (int h = 0; h < 2; h++)
                for (int j = 0; j < op.n / 8; j++)
                    for (int c = 0; c < 2; c++) {
                        float &acc = op.d[4 * j + 2 * h + c];
                        acc = wg_step(acc, &op.a[h * 16], &op.b[(size_t)(2 * j + c) * 16]);
                    }
        }
        f.wg_groups.erase(f.wg_groups.begin());
    }
    /* the warpgroup leaves the wait together: once any of its threads goes on (and, say, frees
     * the operands' slot), every thread's wgmmas have completed, as on the hardware */
    group_sync("wgmma.wait_group (end)", (unsigned)f.wg_groups.size());
}

/* ---- host side ---- */

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
const char *cudaGetErrorName(cudaError_t e) {
    return e == cudaSuccess             ? "cudaSuccess"
           : e == cudaErrorInvalidValue ? "cudaErrorInvalidValue"
                                        : "cudaErrorInvalidConfiguration";
}
const char *cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess             ? "no error"
           : e == cudaErrorInvalidValue ? "invalid argument"
                                        : "invalid configuration argument";
}
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
/* An H100 SXM as the kernel sees it */
cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int d) {
    (void)d;
    switch (a) {
    case cudaDevAttrMultiProcessorCount:
        *v = 132;
        return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor:
        *v = 9;
        return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
        *v = 0;
        return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
        *v = 232448;
        return cudaSuccess;
    }
    return cudaErrorInvalidValue;
}
cudaError_t cudaFuncSetAttribute(const void *fn, enum cudaFuncAttribute a, int v) {
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > 232448)
        return cudaErrorInvalidValue;
    smem_optin[fn] = v;
    return cudaSuccess;
}

void emu_run_grid(const char *name, const void *fid, dim3 grid, dim3 block, size_t smem,
                  const std::function<void()> &fn) {
    size_t nthreads = (size_t)block.x * block.y * block.z;
    auto it = smem_optin.find(fid);
    size_t limit = it != smem_optin.end() ? (size_t)it->second : 48 * 1024;
    if (nthreads == 0 || nthreads > 1024 || block.y != 1 || block.z != 1 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (smem > limit) {
        last_error = cudaErrorInvalidValue;
        return;
    }
    kernel_fn = &fn;
    kernel_name = name;
    smem_limit = smem;
    emu_gridDim = grid;
    emu_blockDim = block;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                emu_blockIdx = dim3(x, y, z);
                memset(smem_raw, 0xff, smem); /* poison: NaN bf16/fp32, -1 ints */
                run_block((unsigned)nthreads);
            }
    kernel_name = "?";
}
