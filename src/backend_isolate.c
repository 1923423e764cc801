/* backend_isolate.c: a kernel in a worker process, so its crash or hang cannot take moefuzz
 * down (`moefuzz check --isolate`, the default for plugins).
 *
 * The worker is forked from moefuzz and opens the backend in its process there
 * (mf_inproc_open: dlopen, create); the parent never loads the kernel, so a fresh worker can
 * always be forked, and a device kernel initialises CUDA in the worker only. Per call, the
 * parent copies the tensors into a shared-memory file (memfd) and sends a fixed-size request
 * over a socket pair; the worker runs mf_inproc_run on views of that memory (poison, guards,
 * device copies all as in process), writes out / ids / weights back into it and answers with
 * a fixed-size response. The worker maps the inputs read-only (the outputs start on a page of
 * their own), so a kernel that writes to its const inputs, its weights included, faults: a
 * crash on this case, where in process the write would go unseen (not the tensors the worker
 * converts before the call: widened logits or bias, dequantized weights, device copies). A
 * worker that dies (EOF on the socket; waitpid gives the signal) is a crash on this case; one
 * that does not answer within the timeout is killed. Either way the next call forks a new worker.
 *
 * The process itself (fork, deadlines, ending it, how it ended) is proc.c's, shared with the
 * exec backend. The wire format follows the tensor table (MF_TENSOR_LIST: one offset per
 * tensor) and carries the kernel's extensions by value.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_isolate.h"
#include "proc.h"

#define ISO_MAGIC 0x4d46494fu /* "MFIO" */
#define ISO_ALIGN 64

typedef struct iso_hello {
    uint32_t magic;
    int32_t status;
    char msg[1024];
    uint32_t abi_version, struct_size;
    int32_t memory;
    mf_kernel_contract contract; /* pointers cleared; the strings follow */
    char name[64], description[256], contract_name[64], routing_method[64];
    mf_kernel_features features; /* the kernel's extensions, by value (next cleared) */
    mf_kernel_contract_ext contract_ext;
} iso_hello;

typedef struct iso_request {
    uint32_t magic;
    mf_moe_params p;
    uint64_t map_size;
    uint64_t off[MF_NUM_TENSORS]; /* each tensor's array as mf_problem holds it */
    uint64_t off_out, off_ids, off_weights;
} iso_request;

typedef struct iso_response {
    uint32_t magic;
    int32_t status;
    char msg[1024];
    int32_t unsupported;
    char reason[256];
    uint64_t unwritten, first_unwritten;
    int32_t guard_broken;
    int64_t guard_first;
    double seconds;
    int32_t has_ids, has_weights;
} iso_response;

struct mf_isolate {
    char spec[256];
    double timeout_s;
    mf_proc proc; /* the worker; pid <= 0: none */
    int memfd;
    uint8_t *map;
    size_t map_size;
    iso_hello info; /* the strings b->api points to */
    char who[300];  /* "plugin PATH" or "backend SPEC", for messages */
};

static size_t align_up(size_t x) { return (x + ISO_ALIGN - 1) / ISO_ALIGN * ISO_ALIGN; }

/* ---- the worker ---- */

static size_t page_up(size_t x) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (x + page - 1) / page * page;
}

/* The shared file of size bytes, mapped read-only but for the outputs: from out_at (a page
 * boundary, where the parent placed them) to the end. */
static uint8_t *worker_map(int memfd, size_t size, size_t out_at, uint8_t **map, size_t *mapped) {
    if (out_at > size || out_at != page_up(out_at)) {
        errno = EINVAL;
        return NULL;
    }
    if (*mapped != size || !*map) {
        if (*map) munmap(*map, *mapped);
        *map = NULL;
        *mapped = 0;
        void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, memfd, 0);
        if (m == MAP_FAILED) return NULL;
        *map = m;
        *mapped = size;
    }
    /* the last call's outputs may have started elsewhere */
    if (mprotect(*map, out_at, PROT_READ) != 0 ||
        mprotect(*map + out_at, size - out_at, PROT_READ | PROT_WRITE) != 0)
        return NULL;
    return *map;
}

static void worker_call(mf_backend *inner, int memfd, const iso_request *q, uint8_t **map,
                        size_t *mapped, iso_response *a) {
    mf_error err = {0};
    uint8_t *m = worker_map(memfd, (size_t)q->map_size, (size_t)q->off_out, map, mapped);
    if (!m) {
        a->status = MF_ENOMEM;
        snprintf(a->msg, sizeof a->msg,
                 "worker: cannot map %llu bytes of shared memory, outputs from %llu: %s",
                 (unsigned long long)q->map_size, (unsigned long long)q->off_out, strerror(errno));
        return;
    }
    /* the problem as views of the shared memory (nothing here is freed) */
    mf_problem pb;
    memset(&pb, 0, sizeof pb);
    pb.p = q->p;
    const mf_moe_params *p = &q->p;
#define MF_TENSOR_VIEW_(ID, name, storage, rank, d0, d1, d2, bf16, present, ...) \
    pb.name = (storage *)(m + q->off[MF_T_##ID]);                                 \
    pb.t.name = (present) ? pb.name : NULL;
    MF_TENSOR_LIST(MF_TENSOR_VIEW_)
#undef MF_TENSOR_VIEW_
    mf_run_result r;
    a->status = mf_inproc_run(inner, &pb, &r, &err);
    if (a->status != MF_OK) {
        snprintf(a->msg, sizeof a->msg, "%s", err.msg);
        return;
    }
    a->unsupported = r.unsupported;
    snprintf(a->reason, sizeof a->reason, "%s", r.reason);
    a->unwritten = r.unwritten;
    a->first_unwritten = r.first_unwritten;
    a->guard_broken = r.guard_broken;
    a->guard_first = r.guard_first;
    a->seconds = r.seconds;
    size_t n_out = (size_t)q->p.T * q->p.H, n_sel = (size_t)q->p.T * q->p.top_k;
    if (r.out) memcpy(m + q->off_out, r.out, n_out * 2);
    if (r.ids) memcpy(m + q->off_ids, r.ids, n_sel * 4), a->has_ids = 1;
    if (r.weights) memcpy(m + q->off_weights, r.weights, n_sel * 4), a->has_weights = 1;
    mf_run_result_free(&r);
}

/* The worker process (proc.c set up its signals). */
static void worker_main(int sock, void *arg) {
    const struct mf_isolate *w = arg;
    int memfd = w->memfd;
    const char *spec = w->spec;
    mf_backend inner;
    mf_error err = {0};
    iso_hello *h = calloc(1, sizeof *h);
    if (!h) _exit(3);
    h->magic = ISO_MAGIC;
    h->status = mf_inproc_open(spec, &inner, &err);
    if (h->status == MF_OK) {
        h->abi_version = inner.api.abi_version;
        h->struct_size = inner.api.struct_size;
        h->memory = inner.api.memory;
        h->contract = inner.api.contract;
        h->contract.name = NULL;
        h->contract.routing_method = NULL;
        snprintf(h->name, sizeof h->name, "%s", inner.api.name ? inner.api.name : "?");
        snprintf(h->description, sizeof h->description, "%s",
                 inner.api.description ? inner.api.description : "");
        /* a contract declared by name travels as its name; one declared field by field as
         * the fields (an empty name) */
        if (inner.api.contract.name)
            snprintf(h->contract_name, sizeof h->contract_name, "%s", inner.contract_name);
        snprintf(h->routing_method, sizeof h->routing_method, "%s", inner.routing_method);
        h->features = inner.features;
        h->contract_ext = inner.contract_ext;
    } else {
        snprintf(h->msg, sizeof h->msg, "%s", err.msg);
    }
    int ok = mf_proc_send(sock, h, sizeof *h) == MF_IO_OK && h->status == MF_OK;
    free(h);
    uint8_t *map = NULL;
    size_t mapped = 0;
    iso_request q;
    iso_response *a = malloc(sizeof *a);
    while (ok && a && mf_proc_recv(sock, &q, sizeof q, -1) == MF_IO_OK && q.magic == ISO_MAGIC) {
        memset(a, 0, sizeof *a);
        a->magic = ISO_MAGIC;
        worker_call(&inner, memfd, &q, &map, &mapped, a);
        if (mf_proc_send(sock, a, sizeof *a) != MF_IO_OK) break;
    }
    /* EOF: moefuzz closed the socket (done, or it gave up on this worker) */
    if (ok) mf_inproc_close(&inner);
    _exit(0);
}

/* ---- the parent ---- */

/* Ends the worker and says how it ended: at once (a timeout, a reply that is not one) or after
 * letting it finish dying (EOF on the socket). */
static void reap(struct mf_isolate *w, int kill_first, char *how, size_t n) {
    mf_proc_end(&w->proc, kill_first ? 0 : 2.0, how, n);
}

static mf_status start_worker(struct mf_isolate *w, mf_error *err) {
    MF_TRY(mf_proc_fork(&w->proc, worker_main, w, err));
    /* loading a kernel may legitimately take a while (CUDA context, autotuning) */
    double limit = w->timeout_s > 60 ? w->timeout_s : 60;
    int rc = mf_proc_recv(w->proc.sock, &w->info, sizeof w->info, mf_now_s() + limit);
    if (rc != MF_IO_OK || w->info.magic != ISO_MAGIC) {
        char how[160];
        reap(w, rc == MF_IO_TIMEOUT, how, sizeof how);
        if (rc == MF_IO_TIMEOUT)
            return MF_FAIL(err, MF_ETIMEOUT, "%s: loading the kernel timed out after %g s",
                           w->who, limit);
        return MF_FAIL(err, MF_ECRASH, "%s %s while loading the kernel", w->who, how);
    }
    if (w->info.status != MF_OK) {
        char how[160];
        reap(w, 0, how, sizeof how);
        w->info.msg[sizeof w->info.msg - 1] = '\0';
        return MF_FAIL(err, (mf_status)w->info.status, "%s", w->info.msg);
    }
    return MF_OK;
}

mf_status mf_isolate_open(const char *spec, double timeout_s, mf_backend *b, mf_error *err) {
    struct mf_isolate *w = calloc(1, sizeof *w);
    if (!w) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    snprintf(w->spec, sizeof w->spec, "%s", spec);
    if (!strncmp(spec, "plugin:", 7)) snprintf(w->who, sizeof w->who, "plugin %s", spec + 7);
    else snprintf(w->who, sizeof w->who, "backend %s", spec);
    w->timeout_s = timeout_s;
    w->proc.pid = -1;
    w->proc.sock = -1;
    w->memfd = memfd_create("moefuzz-tensors", MFD_CLOEXEC);
    if (w->memfd < 0) {
        free(w);
        return MF_FAIL(err, MF_EIO, "memfd_create: %s", strerror(errno));
    }
    mf_status st = start_worker(w, err);
    if (st != MF_OK) {
        close(w->memfd);
        free(w);
        return st;
    }
    /* the function table stays empty: every call goes through mf_isolate_run */
    iso_hello *h = &w->info;
    h->name[sizeof h->name - 1] = h->description[sizeof h->description - 1] = '\0';
    h->contract_name[sizeof h->contract_name - 1] = '\0';
    h->routing_method[sizeof h->routing_method - 1] = '\0';
    b->iso = w;
    b->api.abi_version = h->abi_version;
    b->api.struct_size = h->struct_size;
    b->api.name = h->name;
    b->api.description = h->description;
    b->api.memory = h->memory;
    b->api.contract = h->contract;
    b->api.contract.name = h->contract_name[0] ? h->contract_name : NULL;
    snprintf(b->routing_method, sizeof b->routing_method, "%s", h->routing_method);
    b->features = h->features;
    b->contract_ext = h->contract_ext;
    /* the worker resolved both already: these cannot fail where the worker succeeded */
    mf_status cs = mf_backend_contract(b, err);
    if (cs == MF_OK) cs = mf_backend_level(&b->features, &b->level, err);
    if (cs != MF_OK) mf_isolate_close(b);
    return cs;
}

void mf_isolate_close(mf_backend *b) {
    struct mf_isolate *w = b->iso;
    if (!w) return;
    if (w->proc.pid > 0) {
        /* EOF tells the worker to release the kernel and exit; give it a moment */
        char how[160];
        shutdown(w->proc.sock, SHUT_RDWR);
        mf_proc_end(&w->proc, 2.0, how, sizeof how);
    }
    if (w->map) munmap(w->map, w->map_size);
    close(w->memfd);
    free(w);
    b->iso = NULL;
}

mf_status mf_isolate_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err) {
    struct mf_isolate *w = b->iso;
    memset(r, 0, sizeof *r);
    if (mf_backend_gate(b, &pb->p, r)) return MF_OK;
    if (w->proc.pid <= 0) MF_TRY(start_worker(w, err));
    const mf_moe_params *p = &pb->p;
    size_t n_out = (size_t)p->T * p->H, n_sel = (size_t)p->T * p->top_k;
    iso_request q;
    memset(&q, 0, sizeof q);
    q.magic = ISO_MAGIC;
    q.p = *p;
    size_t o = 0;
#define PLACE(field, bytes) (q.field = o, o = align_up(o + (bytes)))
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        PLACE(off[t], mf_tensor_elems(p, (mf_tensor_id)t) * mf_tensor_host_size((mf_tensor_id)t));
    o = page_up(o); /* the inputs' pages end here: the worker maps them read-only */
    PLACE(off_out, n_out * 2);
    PLACE(off_ids, n_sel * 4);
    PLACE(off_weights, n_sel * 4);
#undef PLACE
    if (o > w->map_size) {
        if (w->map) munmap(w->map, w->map_size);
        w->map = NULL;
        w->map_size = 0;
        if (ftruncate(w->memfd, (off_t)o) != 0)
            return MF_FAIL(err, MF_ENOMEM, "shared memory of %zu bytes: %s", o, strerror(errno));
        void *m = mmap(NULL, o, PROT_READ | PROT_WRITE, MAP_SHARED, w->memfd, 0);
        if (m == MAP_FAILED)
            return MF_FAIL(err, MF_ENOMEM, "mapping %zu bytes: %s", o, strerror(errno));
        w->map = m;
        w->map_size = o;
    }
    q.map_size = w->map_size; /* the worker maps the whole file */
    /* A lazy problem's experts that no routing can select are never written there (a full-size
     * model case holds gigabytes of them): the file holds zeros in their place, as the
     * problem's own unwritten pages do, after its earlier contents are punched out. */
    int lazy = mf_problem_experts_ready(pb) < p->E_local;
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        size_t bytes = mf_tensor_elems(p, id) * mf_tensor_host_size(id);
        if (lazy && bytes > 0 &&
            fallocate(w->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)q.off[t],
                      (off_t)bytes) != 0)
            memset(w->map + q.off[t], 0, bytes);
        mf_problem_copy_tensor(pb, id, w->map + q.off[t]);
    }
    iso_response *a = malloc(sizeof *a);
    if (!a) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    char how[160];
    int rc = mf_proc_send(w->proc.sock, &q, sizeof q);
    if (rc == MF_IO_OK) rc = mf_proc_recv(w->proc.sock, a, sizeof *a, mf_now_s() + w->timeout_s);
    if (rc == MF_IO_TIMEOUT) {
        reap(w, 1, how, sizeof how);
        free(a);
        return MF_FAIL(err, MF_ETIMEOUT,
                       "%s timed out after %g s on this case (worker killed; a new one starts "
                       "for the next case)",
                       w->who, w->timeout_s);
    }
    if (rc != MF_IO_OK || a->magic != ISO_MAGIC) {
        reap(w, rc == MF_IO_OK, how, sizeof how);
        free(a);
        return MF_FAIL(err, MF_ECRASH, "%s %s on this case", w->who, how);
    }
    mf_status st = (mf_status)a->status;
    if (st != MF_OK) {
        a->msg[sizeof a->msg - 1] = '\0';
        MF_FAIL(err, st, "%s", a->msg);
        free(a);
        return st;
    }
    r->unsupported = a->unsupported;
    a->reason[sizeof a->reason - 1] = '\0';
    snprintf(r->reason, sizeof r->reason, "%s", a->reason);
    r->unwritten = (size_t)a->unwritten;
    r->first_unwritten = (size_t)a->first_unwritten;
    r->guard_broken = a->guard_broken;
    r->guard_first = (long)a->guard_first;
    r->seconds = a->seconds;
    if (!r->unsupported) {
        r->out = malloc(n_out * 2);
        if (a->has_ids) r->ids = malloc(n_sel * 4);
        if (a->has_weights) r->weights = malloc(n_sel * 4);
        if (!r->out || (a->has_ids && !r->ids) || (a->has_weights && !r->weights)) {
            mf_run_result_free(r);
            free(a);
            return MF_FAIL(err, MF_ENOMEM, "out of memory for outputs");
        }
        memcpy(r->out, w->map + q.off_out, n_out * 2);
        if (r->ids) memcpy(r->ids, w->map + q.off_ids, n_sel * 4);
        if (r->weights) memcpy(r->weights, w->map + q.off_weights, n_sel * 4);
    }
    free(a);
    return MF_OK;
}
