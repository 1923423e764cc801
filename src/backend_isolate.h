/* backend_isolate.h: a kernel of this build or a plugin run in a worker process
 * (backend_isolate.c), reached through mf_backend_open / _run / _close. */
#ifndef MF_BACKEND_ISOLATE_H
#define MF_BACKEND_ISOLATE_H

#include "backend.h"

/* Forks a worker that opens spec in its process (mf_inproc_open); b gets the kernel's
 * declaration from it. b is zeroed, with its spec set. */
mf_status mf_isolate_open(const char *spec, double timeout_s, mf_backend *b, mf_error *err);
/* One case through shared memory, behind the level gate; a crash or a timeout forks a new
 * worker on the next call. */
mf_status mf_isolate_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err);
void mf_isolate_close(mf_backend *b);

#endif /* MF_BACKEND_ISOLATE_H */
