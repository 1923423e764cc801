/* backend_isolate.c: a kernel in a worker process, so its crash or hang cannot take moefuzz
 * down (`moefuzz check --isolate`, the default for plugins).
 *
 * The worker is forked from moefuzz and opens the backend in process (dlopen, create) there;
 * the parent never loads the kernel, so a fresh worker can always be forked, and a device
 * kernel initialises CUDA in the worker only. Per call, the parent copies the tensors into a
 * shared-memory file (memfd) and sends a fixed-size request over a socket pair; the worker runs
 * mf_backend_run on views of that memory (poison, guards, device copies all as in process),
 * writes out / ids / weights back into it and answers with a fixed-size response. A worker
 * that dies (EOF on the socket; waitpid gives the signal) is a crash on this case; one that does
 * not answer within the timeout is killed. Either way the next call forks a new worker.
 *
 * Sockets, not pipes: sends use MSG_NOSIGNAL, so a dead worker is an error value, never a
 * SIGPIPE in moefuzz.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

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
} iso_hello;

typedef struct iso_request {
    uint32_t magic;
    mf_moe_params p;
    uint64_t map_size;
    uint64_t off_x, off_logits, off_bias, off_w13, off_w2, off_out, off_ids, off_weights;
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
    pid_t pid; /* <= 0: no worker */
    int sock;
    int memfd;
    uint8_t *map;
    size_t map_size;
    iso_hello info; /* the strings b->api points to */
    char who[300];  /* "plugin PATH" or "backend SPEC", for messages */
};

/* ---- transport ---- */

enum { IO_OK = 0, IO_EOF = -1, IO_TIMEOUT = -2, IO_ERROR = -3 };

static int send_all(int fd, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return IO_ERROR;
        p += w;
        n -= (size_t)w;
    }
    return IO_OK;
}

/* deadline < 0: wait forever */
static int recv_all(int fd, void *buf, size_t n, double deadline) {
    uint8_t *p = buf;
    while (n) {
        if (deadline >= 0) {
            double left = deadline - mf_now_s();
            if (left <= 0) return IO_TIMEOUT;
            struct pollfd pf = {fd, POLLIN, 0};
            int pr = poll(&pf, 1, (int)(left * 1000) + 1);
            if (pr < 0 && errno == EINTR) continue;
            if (pr < 0) return IO_ERROR;
            if (pr == 0) continue; /* re-check the deadline */
        }
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return IO_ERROR;
        if (r == 0) return IO_EOF;
        p += r;
        n -= (size_t)r;
    }
    return IO_OK;
}

static size_t align_up(size_t x) { return (x + ISO_ALIGN - 1) / ISO_ALIGN * ISO_ALIGN; }

/* ---- the worker ---- */

static uint8_t *worker_map(int memfd, size_t size, uint8_t **map, size_t *mapped) {
    if (*mapped == size && *map) return *map;
    if (*map) munmap(*map, *mapped);
    *map = NULL;
    *mapped = 0;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (m == MAP_FAILED) return NULL;
    *map = m;
    *mapped = size;
    return *map;
}

static void worker_call(mf_backend *inner, int memfd, const iso_request *q, uint8_t **map,
                        size_t *mapped, iso_response *a) {
    mf_error err = {0};
    uint8_t *m = worker_map(memfd, (size_t)q->map_size, map, mapped);
    if (!m) {
        a->status = MF_ENOMEM;
        snprintf(a->msg, sizeof a->msg, "worker: cannot map %llu bytes of shared memory",
                 (unsigned long long)q->map_size);
        return;
    }
    /* the problem as views of the shared memory (nothing here is freed) */
    mf_problem pb;
    memset(&pb, 0, sizeof pb);
    pb.p = q->p;
    pb.x = (uint16_t *)(m + q->off_x);
    pb.logits = (float *)(m + q->off_logits);
    pb.bias = (float *)(m + q->off_bias);
    pb.w13 = (uint16_t *)(m + q->off_w13);
    pb.w2 = (uint16_t *)(m + q->off_w2);
    pb.t = (mf_moe_tensors){pb.x, pb.logits, q->p.bias != MF_BIAS_NONE ? pb.bias : NULL, pb.w13,
                            pb.w2};
    mf_run_result r;
    a->status = mf_backend_run(inner, &pb, &r, &err);
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

static void worker_main(int sock, int memfd, const char *spec) {
    /* die with moefuzz; report the kernel's own signals, not a fuzzer's or sanitizer's
     * handlers inherited through fork */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    signal(SIGINT, SIG_IGN); /* Ctrl-C goes to moefuzz, which ends the worker */
    mf_backend inner;
    mf_error err = {0};
    iso_hello *h = calloc(1, sizeof *h);
    if (!h) _exit(3);
    h->magic = ISO_MAGIC;
    mf_backend_opts o = {.isolate = 0, .timeout_s = 0};
    h->status = mf_backend_open_opts(spec, &o, &inner, &err);
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
    } else {
        snprintf(h->msg, sizeof h->msg, "%s", err.msg);
    }
    int ok = send_all(sock, h, sizeof *h) == IO_OK && h->status == MF_OK;
    free(h);
    uint8_t *map = NULL;
    size_t mapped = 0;
    iso_request q;
    iso_response *a = malloc(sizeof *a);
    while (ok && a && recv_all(sock, &q, sizeof q, -1) == IO_OK && q.magic == ISO_MAGIC) {
        memset(a, 0, sizeof *a);
        a->magic = ISO_MAGIC;
        worker_call(&inner, memfd, &q, &map, &mapped, a);
        if (send_all(sock, a, sizeof *a) != IO_OK) break;
    }
    /* EOF: moefuzz closed the socket (done, or it gave up on this worker) */
    if (ok) mf_backend_close(&inner);
    _exit(0);
}

/* ---- the parent ---- */

/* Waits for the worker to end and describes how it ended; kills it first when asked. */
static void reap(struct mf_isolate *w, int kill_first, char *how, size_t n) {
    int status = 0;
    if (w->pid > 0) {
        if (kill_first) kill(w->pid, SIGKILL);
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (WIFSIGNALED(status))
            snprintf(how, n, "crashed with signal %d (%s)", WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        else if (WIFEXITED(status))
            snprintf(how, n, "ended its process with exit status %d", WEXITSTATUS(status));
        else
            snprintf(how, n, "ended");
    } else {
        snprintf(how, n, "was not running");
    }
    if (w->sock >= 0) close(w->sock);
    w->sock = -1;
    w->pid = -1;
}

static mf_status start_worker(struct mf_isolate *w, mf_error *err) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return MF_FAIL(err, MF_EIO, "socketpair: %s", strerror(errno));
    fflush(NULL); /* buffered output must not be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return MF_FAIL(err, MF_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(sv[0]);
        worker_main(sv[1], w->memfd, w->spec);
        _exit(0);
    }
    close(sv[1]);
    w->pid = pid;
    w->sock = sv[0];
    /* loading a kernel may legitimately take a while (CUDA context, autotuning) */
    double limit = w->timeout_s > 60 ? w->timeout_s : 60;
    int rc = recv_all(w->sock, &w->info, sizeof w->info, mf_now_s() + limit);
    if (rc != IO_OK || w->info.magic != ISO_MAGIC) {
        char how[160];
        reap(w, rc == IO_TIMEOUT, how, sizeof how);
        if (rc == IO_TIMEOUT)
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
    w->pid = -1;
    w->sock = -1;
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
    /* the worker resolved it already: this cannot fail where the worker succeeded */
    mf_status cs = mf_contract_from_abi(&b->api.contract, &b->contract, b->contract_name,
                                        sizeof b->contract_name, err);
    if (cs != MF_OK) mf_isolate_close(b);
    return cs;
}

void mf_isolate_close(mf_backend *b) {
    struct mf_isolate *w = b->iso;
    if (!w) return;
    if (w->pid > 0) {
        /* EOF tells the worker to release the kernel and exit; give it a moment */
        shutdown(w->sock, SHUT_RDWR);
        double until = mf_now_s() + 2.0;
        int status;
        while (waitpid(w->pid, &status, WNOHANG) == 0 && mf_now_s() < until) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
        if (waitpid(w->pid, &status, WNOHANG) == 0) {
            kill(w->pid, SIGKILL);
            waitpid(w->pid, &status, 0);
        }
        close(w->sock);
    }
    if (w->map) munmap(w->map, w->map_size);
    close(w->memfd);
    free(w);
    b->iso = NULL;
}

mf_status mf_isolate_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err) {
    struct mf_isolate *w = b->iso;
    memset(r, 0, sizeof *r);
    if (w->pid <= 0) MF_TRY(start_worker(w, err));
    const mf_moe_params *p = &pb->p;
    size_t n_out = (size_t)p->T * p->H, n_sel = (size_t)p->T * p->top_k;
    iso_request q;
    memset(&q, 0, sizeof q);
    q.magic = ISO_MAGIC;
    q.p = *p;
    size_t o = 0;
#define PLACE(field, bytes) (q.field = o, o = align_up(o + (bytes)))
    PLACE(off_x, mf_tensor_elems(p, MF_T_X) * 2);
    PLACE(off_logits, mf_tensor_elems(p, MF_T_LOGITS) * 4);
    PLACE(off_bias, (size_t)p->E * 4);
    PLACE(off_w13, mf_tensor_elems(p, MF_T_W13) * 2);
    PLACE(off_w2, mf_tensor_elems(p, MF_T_W2) * 2);
    PLACE(off_out, n_out * 2);
    PLACE(off_ids, n_sel * 4);
    PLACE(off_weights, n_sel * 4);
#undef PLACE
    q.map_size = o;
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
    memcpy(w->map + q.off_x, pb->x, mf_tensor_elems(p, MF_T_X) * 2);
    memcpy(w->map + q.off_logits, pb->logits, mf_tensor_elems(p, MF_T_LOGITS) * 4);
    memcpy(w->map + q.off_bias, pb->bias, (size_t)p->E * 4);
    memcpy(w->map + q.off_w13, pb->w13, mf_tensor_elems(p, MF_T_W13) * 2);
    memcpy(w->map + q.off_w2, pb->w2, mf_tensor_elems(p, MF_T_W2) * 2);
    iso_response *a = malloc(sizeof *a);
    if (!a) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    char how[160];
    int rc = send_all(w->sock, &q, sizeof q);
    if (rc == IO_OK) rc = recv_all(w->sock, a, sizeof *a, mf_now_s() + w->timeout_s);
    if (rc == IO_TIMEOUT) {
        reap(w, 1, how, sizeof how);
        free(a);
        return MF_FAIL(err, MF_ETIMEOUT,
                       "%s timed out after %g s on this case (worker killed; a new one starts "
                       "for the next case)",
                       w->who, w->timeout_s);
    }
    if (rc != IO_OK || a->magic != ISO_MAGIC) {
        reap(w, rc == IO_OK, how, sizeof how);
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
