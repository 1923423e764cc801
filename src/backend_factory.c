/* backend_factory.c: mf_backend_open, _run and _close of backend.h: the spec and the options
 * choose a kind (an exec: adapter, a worker process, this process) and every later call goes to
 * that kind's module. Above backend_exec.c, backend_isolate.c and backend.c, none of which calls
 * back up: a worker opens and runs its kernel with backend.c's functions directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_exec.h"
#include "backend_isolate.h"

void mf_backend_opts_default(mf_backend_opts *o) {
    o->isolate = -1;
    o->timeout_s = MF_BACKEND_TIMEOUT_S;
    const char *iso = getenv("MOEFUZZ_ISOLATE"), *to = getenv("MOEFUZZ_TIMEOUT");
    if (iso && *iso) o->isolate = atoi(iso) != 0;
    if (to && *to && atof(to) > 0) o->timeout_s = atof(to);
}

mf_status mf_backend_open(const char *spec, mf_backend *b, mf_error *err) {
    mf_backend_opts o;
    mf_backend_opts_default(&o);
    return mf_backend_open_opts(spec, &o, b, err);
}

mf_status mf_backend_open_opts(const char *spec, const mf_backend_opts *o, mf_backend *b,
                               mf_error *err) {
    memset(b, 0, sizeof *b);
    snprintf(b->spec, sizeof b->spec, "%s", spec);
    double timeout = o->timeout_s > 0 ? o->timeout_s : MF_BACKEND_TIMEOUT_S;
    if (!strncmp(spec, "exec:", 5)) return mf_exec_open(spec + 5, timeout, b, err);
    int isolate = o->isolate < 0 ? !strncmp(spec, "plugin:", 7) : o->isolate;
    if (isolate) return mf_isolate_open(spec, timeout, b, err);
    return mf_inproc_open(spec, b, err);
}

/* Each kind's run applies the level gate itself (mf_backend_gate). */
mf_status mf_backend_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err) {
    if (b->exec) return mf_exec_run(b, pb, r, err);
    if (b->iso) return mf_isolate_run(b, pb, r, err);
    return mf_inproc_run(b, pb, r, err);
}

void mf_backend_close(mf_backend *b) {
    if (b->exec)
        mf_exec_close(b);
    else if (b->iso)
        mf_isolate_close(b);
    else
        mf_inproc_close(b);
}
