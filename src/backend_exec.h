/* backend_exec.h: the exec: kind of backend, a kernel in any language as an adapter process
 * (backend_exec.c, docs/files.md), reached through mf_backend_open / _run / _close. */
#ifndef MF_BACKEND_EXEC_H
#define MF_BACKEND_EXEC_H

#include "backend.h"

/* Starts `sh -c command` and greets it; b gets the contract, routing method and feature level
 * the adapter declares. b is zeroed, with its spec set. */
mf_status mf_exec_open(const char *command, double timeout_s, mf_backend *b, mf_error *err);
/* One case through the adapter's files, behind the level gate; a crash or a timeout restarts
 * the adapter on the next call. */
mf_status mf_exec_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err);
void mf_exec_close(mf_backend *b);

#endif /* MF_BACKEND_EXEC_H */
