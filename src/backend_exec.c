/* backend_exec.c: a kernel in any language, as a long-lived adapter process (`--backend
 * exec:COMMAND`), spoken to through case and result files and one line per message on its stdin
 * and stdout (protocol: docs/files.md).
 *
 *   moefuzz: hello 3                        adapter: hello NAME [protocol=3] [level=L]
 *                                                 [contract=C] [routing=0|1] [method=M]
 *                                                 [cache=weights]
 *   moefuzz: run IN.safetensors OUT.safetensors
 *                                            adapter: ok | unsupported REASON | error MESSAGE
 *   moefuzz: quit                           (the adapter exits; EOF on stdin means the same)
 *
 * moefuzz's hello gives the highest protocol version it speaks; the adapter's, the version it
 * speaks (no protocol=: 1, the first adapters' hello) and the ABI feature level of the cases it
 * understands (no level=: 1); moefuzz sends it no case above that level. cache=weights (protocol
 * 3): the adapter keeps the per-expert tensors of the last case file that carried them, by the
 * file's "weights_key"; moefuzz then leaves them out of a case file whose key the adapter holds
 * (metadata "weights" = "cached"). It holds a key once it answered ok to a file carrying it, and
 * nothing after a restart.
 *
 * COMMAND runs under `sh -c` in its own process group (proc.c) with stdin and stdout on one end
 * of a socket pair (stderr is moefuzz's). Lines that are not protocol replies are skipped, so a
 * stray print does not break the exchange. A process that exits or is killed during a call is
 * a crash on that case; one that does not answer within the timeout has its whole process group
 * killed; either way the next call starts it again (and greets it again). All state lives in
 * struct mf_exec, one per mf_backend, so fuzz targets that open backends by name get one
 * adapter per process.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_exec.h"
#include "exchange.h"
#include "methods.h"
#include "proc.h"

#define EXEC_PROTOCOL_VERSION 3
#define EXEC_START_TIMEOUT_S 60.0 /* an adapter may import torch and compile kernels first */
#define EXEC_LINE_MAX 4096

struct mf_exec {
    char command[2048];
    double timeout_s;
    mf_proc proc; /* the adapter; pid <= 0: not running */
    char dir[PATH_MAX], in_path[PATH_MAX + 32], out_path[PATH_MAX + 32];
    char rbuf[EXEC_LINE_MAX];
    size_t rlen;
    char skipped[160]; /* the last non-protocol line, for error messages */
    /* from the adapter's hello */
    char name[64], contract[64], method[64];
    int reports_routing, greeted;
    int protocol;      /* the version the adapter speaks */
    uint32_t level;    /* the feature level of the cases it understands */
    int cache_weights; /* announced cache=weights, in protocol 3 or later */
    mf_xcase_cache cache;
};

/* ---- process ---- */

/* Ends the adapter (proc.c): waits up to wait_s for it to exit by itself, then kills its process
 * group. Describes how it ended. */
static void stop(struct mf_exec *e, double wait_s, char *how, size_t n) {
    mf_proc_end(&e->proc, wait_s, how, n);
    e->rlen = 0;
}

static int send_line(struct mf_exec *e, const char *line) {
    return mf_proc_send(e->proc.sock, line, strlen(line)) == MF_IO_OK ? 0 : -1;
}

enum { LINE_OK = MF_IO_OK, LINE_EOF = MF_IO_EOF, LINE_TIMEOUT = MF_IO_TIMEOUT };

/* Next line (without '\n') before the deadline; overlong lines are cut. */
static int read_line(struct mf_exec *e, char *out, size_t cap, double deadline) {
    for (;;) {
        char *nl = memchr(e->rbuf, '\n', e->rlen);
        if (nl || e->rlen == sizeof e->rbuf) {
            size_t len = nl ? (size_t)(nl - e->rbuf) : e->rlen;
            size_t used = nl ? len + 1 : len;
            size_t copy = len < cap - 1 ? len : cap - 1;
            memcpy(out, e->rbuf, copy);
            out[copy] = '\0';
            if (copy && out[copy - 1] == '\r') out[copy - 1] = '\0';
            memmove(e->rbuf, e->rbuf + used, e->rlen - used);
            e->rlen -= used;
            return LINE_OK;
        }
        long r = mf_proc_recv_some(e->proc.sock, e->rbuf + e->rlen, sizeof e->rbuf - e->rlen,
                                   deadline);
        if (r < 0) return (int)r;
        e->rlen += (size_t)r;
    }
}

static int starts_with_word(const char *line, const char *word) {
    size_t n = strlen(word);
    return !strncmp(line, word, n) && (line[n] == '\0' || line[n] == ' ');
}

/* The next protocol line, skipping anything else the adapter printed. */
static int read_reply(struct mf_exec *e, char *out, size_t cap, double deadline) {
    for (;;) {
        int rc = read_line(e, out, cap, deadline);
        if (rc != LINE_OK) return rc;
        if (starts_with_word(out, "hello") || starts_with_word(out, "ok") ||
            starts_with_word(out, "unsupported") || starts_with_word(out, "error"))
            return LINE_OK;
        snprintf(e->skipped, sizeof e->skipped, "%.150s", out);
    }
}

static mf_status parse_hello(struct mf_exec *e, const char *line, mf_error *err) {
    char buf[EXEC_LINE_MAX];
    snprintf(buf, sizeof buf, "%s", line + 5);
    char *save = NULL;
    char *name = strtok_r(buf, " \t", &save);
    if (!name)
        return MF_FAIL(err, MF_EINVAL, "exec backend: hello without the adapter's name");
    char contract[64] = "any-order", method[64] = "";
    int routing = 0, cache_weights = 0;
    long protocol = 1, level = MF_ABI_LEVEL_1; /* what the first adapters' hello meant */
    for (char *tok; (tok = strtok_r(NULL, " \t", &save));) {
        if (!strncmp(tok, "contract=", 9)) snprintf(contract, sizeof contract, "%s", tok + 9);
        else if (!strncmp(tok, "routing=", 8)) routing = atoi(tok + 8) != 0;
        else if (!strncmp(tok, "method=", 7)) snprintf(method, sizeof method, "%s", tok + 7);
        else if (!strncmp(tok, "protocol=", 9) || !strncmp(tok, "level=", 6)) {
            char *eq = strchr(tok, '='), *end;
            long v = strtol(eq + 1, &end, 10);
            if (end == eq + 1 || *end || v < 1 || v > 1000000)
                return MF_FAIL(err, MF_EINVAL, "exec backend: bad '%.40s' in the adapter's hello "
                               "(a whole number from 1)", tok);
            *(tok[0] == 'p' ? &protocol : &level) = v;
        } else if (!strncmp(tok, "cache=", 6)) {
            cache_weights = !strcmp(tok + 6, "weights");
        }
        /* unknown keys: a newer adapter; ignored */
    }
    if (!mf_contract_find(contract))
        return MF_FAIL(err, MF_EINVAL,
                       "exec backend: the adapter declares unknown contract '%s' (known: "
                       "cpu-scalar, hopper-tc, any-order, vllm-triton, flashinfer-trtllm-bf16)",
                       contract);
    if (method[0] && !mf_method_find(method))
        return MF_FAIL(err, MF_EINVAL,
                       "exec backend: the adapter declares unknown routing method '%s' (moefuzz "
                       "methods)",
                       method);
    if (e->greeted) return MF_OK; /* a restart: the first greeting stands */
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->contract, sizeof e->contract, "%s", contract);
    snprintf(e->method, sizeof e->method, "%s", method);
    e->reports_routing = routing;
    e->protocol = (int)(protocol < EXEC_PROTOCOL_VERSION ? protocol : EXEC_PROTOCOL_VERSION);
    e->level = level < MF_KERNEL_FEATURE_LEVEL ? (uint32_t)level : MF_KERNEL_FEATURE_LEVEL;
    e->cache_weights = cache_weights;
    e->greeted = 1;
    return MF_OK;
}

static mf_status start(struct mf_exec *e, mf_error *err) {
    MF_TRY(mf_proc_spawn_shell(&e->proc, e->command, err));
    e->rlen = 0;
    e->cache.held = 0; /* a new process holds no weights */
    e->skipped[0] = '\0';
    char line[EXEC_LINE_MAX], how[160];
    double limit = e->timeout_s > EXEC_START_TIMEOUT_S ? e->timeout_s : EXEC_START_TIMEOUT_S;
    char hello[32];
    snprintf(hello, sizeof hello, "hello %d\n", EXEC_PROTOCOL_VERSION);
    int rc = send_line(e, hello) == 0 ? read_reply(e, line, sizeof line, mf_now_s() + limit)
                                      : LINE_EOF;
    if (rc == LINE_OK && starts_with_word(line, "hello")) {
        mf_status st = parse_hello(e, line, err);
        if (st != MF_OK) stop(e, 0, how, sizeof how);
        return st;
    }
    stop(e, rc == LINE_TIMEOUT ? 0 : 2.0, how, sizeof how);
    if (rc == LINE_TIMEOUT)
        return MF_FAIL(err, MF_ETIMEOUT,
                       "exec backend '%s': no hello within %g s (the adapter must answer "
                       "'hello %d' with 'hello NAME ...')",
                       e->command, limit, EXEC_PROTOCOL_VERSION);
    if (rc == LINE_OK)
        return MF_FAIL(err, MF_EINVAL, "exec backend '%s': expected 'hello NAME ...', got '%.80s'",
                       e->command, line);
    return MF_FAIL(err, MF_ECRASH, "exec backend '%s': the adapter %s before answering hello%s%s",
                   e->command, how, e->skipped[0] ? "; its last output: " : "", e->skipped);
}

/* ---- backend interface ---- */

mf_status mf_exec_open(const char *command, double timeout_s, mf_backend *b, mf_error *err) {
    while (*command == ' ') command++;
    if (!*command) return MF_FAIL(err, MF_EINVAL, "exec backend: give a command, exec:COMMAND");
    struct mf_exec *e = calloc(1, sizeof *e);
    if (!e) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    if (strlen(command) >= sizeof e->command) {
        free(e);
        return MF_FAIL(err, MF_EINVAL, "exec backend: command longer than %zu bytes",
                       sizeof e->command - 1);
    }
    snprintf(e->command, sizeof e->command, "%s", command);
    e->timeout_s = timeout_s;
    e->proc.pid = -1;
    e->proc.sock = -1;
    /* file paths travel in a line of words: a directory without spaces */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strpbrk(tmp, " \t\n") || strlen(tmp) > PATH_MAX - 64) tmp = "/tmp";
    snprintf(e->dir, sizeof e->dir, "%s/moefuzz-exec-XXXXXX", tmp);
    if (!mkdtemp(e->dir)) {
        free(e);
        return MF_FAIL(err, MF_EIO, "exec backend: cannot create a directory in %s: %s", tmp,
                       strerror(errno));
    }
    snprintf(e->in_path, sizeof e->in_path, "%s/case.safetensors", e->dir);
    snprintf(e->out_path, sizeof e->out_path, "%s/case" MF_XRESULT_SUFFIX, e->dir);
    b->exec = e;
    mf_status st = start(e, err);
    if (st != MF_OK) {
        mf_exec_close(b);
        return st;
    }
    const mf_contract *c = mf_contract_find(e->contract);
    b->contract = *c;
    snprintf(b->contract_name, sizeof b->contract_name, "%s", c->name);
    b->contract.name = b->contract_name;
    b->api.abi_version = MF_KERNEL_ABI_VERSION;
    b->api.struct_size = sizeof b->api;
    b->api.name = e->name;
    b->api.description = e->command;
    b->api.memory = MF_ABI_MEM_HOST;
    b->api.contract.struct_size = sizeof b->api.contract;
    b->api.contract.name = b->contract_name;
    b->api.contract.deterministic = c->deterministic;
    b->api.contract.reports_routing = e->reports_routing;
    snprintf(b->routing_method, sizeof b->routing_method, "%s", e->method);
    b->level = e->level;
    return MF_OK;
}

void mf_exec_close(mf_backend *b) {
    struct mf_exec *e = b->exec;
    if (!e) return;
    if (e->proc.pid > 0) {
        char how[160];
        send_line(e, "quit\n");
        shutdown(e->proc.sock, SHUT_WR); /* EOF on its stdin as well */
        stop(e, 2.0, how, sizeof how);
    }
    remove(e->in_path);
    remove(e->out_path);
    rmdir(e->dir);
    free(e);
    b->exec = NULL;
}

mf_status mf_exec_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err) {
    struct mf_exec *e = b->exec;
    memset(r, 0, sizeof *r);
    if (mf_backend_gate(b, &pb->p, r)) return MF_OK;
    if (e->proc.pid <= 0) MF_TRY(start(e, err));
    remove(e->out_path);
    const char *method = b->routing_method[0] ? b->routing_method : NULL;
    if (e->protocol >= 3 && e->cache_weights)
        MF_TRY(mf_xcase_write_cached(e->in_path, pb, method, &e->cache, err));
    else
        MF_TRY(mf_xcase_write(e->in_path, pb, NULL, NULL, method, err));
    e->cache.held = 0; /* until the adapter answers ok to this file */
    char line[EXEC_LINE_MAX], how[160], request[2 * PATH_MAX + 160];
    snprintf(request, sizeof request, "run %s %s\n", e->in_path, e->out_path);
    e->skipped[0] = '\0';
    double t0 = mf_now_s();
    int rc = send_line(e, request) == 0 ? read_reply(e, line, sizeof line, t0 + e->timeout_s)
                                        : LINE_EOF;
    double secs = mf_now_s() - t0;
    if (rc != LINE_OK || !starts_with_word(line, "ok")) remove(e->in_path);
    if (rc == LINE_TIMEOUT) {
        stop(e, 0, how, sizeof how);
        return MF_FAIL(err, MF_ETIMEOUT,
                       "exec backend %s timed out after %g s on this case (process group "
                       "killed; it restarts for the next case)",
                       e->name, e->timeout_s);
    }
    if (rc != LINE_OK) {
        stop(e, 2.0, how, sizeof how);
        return MF_FAIL(err, MF_ECRASH, "exec backend %s: the adapter %s on this case%s%s",
                       e->name, how, e->skipped[0] ? "; its last output: " : "", e->skipped);
    }
    if (starts_with_word(line, "unsupported")) {
        r->unsupported = 1;
        snprintf(r->reason, sizeof r->reason, "%.250s", line[11] ? line + 12 : "(no reason given)");
        return MF_OK;
    }
    if (starts_with_word(line, "error"))
        return MF_FAIL(err, MF_EBACKEND, "exec backend %s reports an error: %s", e->name,
                       line[5] ? line + 6 : "(no message)");
    if (!starts_with_word(line, "ok"))
        return MF_FAIL(err, MF_EBACKEND, "exec backend %s: unexpected reply '%.80s' to run",
                       e->name, line);
    e->cache.held = 1, e->cache.key = e->cache.pending;
    mf_error e2 = {0};
    mf_status st = mf_xresult_read(e->out_path, &pb->p, r, &e2);
    /* the files live only for the call: a fuzz process that traps leaves no tensors behind */
    remove(e->in_path);
    remove(e->out_path);
    if (st != MF_OK)
        return MF_FAIL(err, MF_EBACKEND, "exec backend %s answered ok, but its result file is "
                       "unusable: %s", e->name, e2.msg);
    r->seconds = secs;
    return MF_OK;
}
