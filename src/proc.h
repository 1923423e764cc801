/* proc.h: the child processes that run kernels outside moefuzz, supervised one way: the isolated
 * plugin's worker (backend_isolate.c) and the exec adapter (backend_exec.c).
 *
 * A child talks to moefuzz over a socket pair (sends use MSG_NOSIGNAL, so a dead child is an
 * error value, never a SIGPIPE in moefuzz), dies with moefuzz (PR_SET_PDEATHSIG), ignores
 * Ctrl-C (moefuzz ends it) and has the default action for the crash signals, so a kernel's
 * crash ends it even under a fuzzer's or sanitizer's inherited handlers. How a child ended is
 * described in the same words whichever backend started it. Library code: errors are values.
 */
#ifndef MF_PROC_H
#define MF_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "mf_base.h"

typedef struct mf_proc {
    pid_t pid; /* <= 0: not running */
    int sock;  /* moefuzz's end of the socket pair, -1 when closed */
    int group; /* the child leads its own process group: ending it ends the whole group */
    int shell; /* the child is `sh -c COMMAND` (exit status 128 + N: the command died of N) */
} mf_proc;

/* A child that runs fn(sock, arg) and then _exits; fn gets the child's end of the socket. */
mf_status mf_proc_fork(mf_proc *pr, void (*fn)(int sock, void *arg), void *arg, mf_error *err);

/* `sh -c command` in its own process group, its stdin and stdout on the socket (stderr is
 * moefuzz's). */
mf_status mf_proc_spawn_shell(mf_proc *pr, const char *command, mf_error *err);

/* Ends the child: waits up to wait_s seconds for it to exit by itself,
 * then kills it (its whole group when it leads one; a group it leaves behind is killed too),
 * reaps it and closes the socket. how: how it ended (mf_proc_describe's words, "was killed" when
 * moefuzz killed it, "was not running"). */
void mf_proc_end(mf_proc *pr, double wait_s, char *how, size_t n);

/* A wait status in words: "crashed with signal 11 (Segmentation fault)", "exited with status 3",
 * and for a shell "exited with status 139 (its command crashed with signal 11 (Segmentation
 * fault))". */
void mf_proc_describe(int status, int shell, char *how, size_t n);

/* ---- the socket ---- */

enum { MF_IO_OK = 0, MF_IO_EOF = -1, MF_IO_TIMEOUT = -2, MF_IO_ERROR = -3 };

/* All n bytes, or MF_IO_ERROR. */
int mf_proc_send(int fd, const void *buf, size_t n);
/* Exactly n bytes before the deadline (mf_now_s() clock; < 0: no deadline). */
int mf_proc_recv(int fd, void *buf, size_t n, double deadline);
/* Some bytes (at most cap) before the deadline: the count, or an MF_IO_* code. */
long mf_proc_recv_some(int fd, void *buf, size_t cap, double deadline);

#endif /* MF_PROC_H */
