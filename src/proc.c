/* proc.c: child processes of moefuzz (see proc.h). */
#include "proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* In the child, before it runs anything. */
static void child_setup(void) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL,
                               SIGTRAP, SIGSYS, SIGALRM, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
    signal(SIGINT, SIG_IGN); /* Ctrl-C goes to moefuzz, which ends the child */
}

static mf_status start(mf_proc *pr, int sv[2], mf_error *err) {
    pr->pid = -1;
    pr->sock = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return MF_FAIL(err, MF_EIO, "socketpair: %s", strerror(errno));
    fflush(NULL); /* buffered output must not be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return MF_FAIL(err, MF_EIO, "fork: %s", strerror(errno));
    }
    pr->pid = pid;
    return MF_OK;
}

mf_status mf_proc_fork(mf_proc *pr, void (*fn)(int sock, void *arg), void *arg, mf_error *err) {
    int sv[2];
    pr->group = pr->shell = 0;
    MF_TRY(start(pr, sv, err));
    if (pr->pid == 0) {
        close(sv[0]);
        child_setup();
        fn(sv[1], arg);
        _exit(0);
    }
    close(sv[1]);
    pr->sock = sv[0];
    return MF_OK;
}

mf_status mf_proc_spawn_shell(mf_proc *pr, const char *command, mf_error *err) {
    int sv[2];
    pr->group = pr->shell = 1;
    MF_TRY(start(pr, sv, err));
    if (pr->pid == 0) {
        setpgid(0, 0); /* one group: ending it ends the shell and everything it started */
        child_setup();
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    setpgid(pr->pid, pr->pid); /* also from here: no race with the first kill(-pid) */
    close(sv[1]);
    pr->sock = sv[0];
    return MF_OK;
}

void mf_proc_describe(int status, int shell, char *how, size_t n) {
    if (WIFSIGNALED(status)) {
        snprintf(how, n, "crashed with signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else if (WIFEXITED(status) && shell && WEXITSTATUS(status) > 128 &&
               WEXITSTATUS(status) < 128 + 65) {
        /* sh -c reports a command killed by signal N as status 128 + N */
        int sig = WEXITSTATUS(status) - 128;
        snprintf(how, n, "exited with status %d (its command crashed with signal %d (%s))",
                 WEXITSTATUS(status), sig, strsignal(sig));
    } else if (WIFEXITED(status)) {
        snprintf(how, n, "exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(how, n, "ended");
    }
}

void mf_proc_end(mf_proc *pr, double wait_s, char *how, size_t n) {
    if (pr->pid <= 0) {
        snprintf(how, n, "was not running");
    } else {
        int status = 0, done = 0;
        double until = mf_now_s() + wait_s;
        for (;;) {
            pid_t r = waitpid(pr->pid, &status, WNOHANG);
            if (r == pr->pid) {
                done = 1;
                break;
            }
            if ((r < 0 && errno != EINTR) || mf_now_s() >= until) break;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (pr->group) kill(-pr->pid, SIGKILL); /* also what the shell left behind */
        if (done) {
            mf_proc_describe(status, pr->shell, how, n);
        } else {
            kill(pr->pid, SIGKILL);
            while (waitpid(pr->pid, &status, 0) < 0 && errno == EINTR) {
            }
            snprintf(how, n, "was killed");
        }
    }
    if (pr->sock >= 0) close(pr->sock);
    pr->sock = -1;
    pr->pid = -1;
}

/* ---- the socket ---- */

int mf_proc_send(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return MF_IO_ERROR;
        p += w;
        n -= (size_t)w;
    }
    return MF_IO_OK;
}

long mf_proc_recv_some(int fd, void *buf, size_t cap, double deadline) {
    for (;;) {
        if (deadline >= 0) {
            double left = deadline - mf_now_s();
            if (left <= 0) return MF_IO_TIMEOUT;
            struct pollfd pf = {fd, POLLIN, 0};
            int pr = poll(&pf, 1, (int)(left * 1000) + 1);
            if (pr < 0 && errno == EINTR) continue;
            if (pr < 0) return MF_IO_ERROR;
            if (pr == 0) continue; /* re-check the deadline */
        }
        ssize_t r = recv(fd, buf, cap, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return MF_IO_ERROR;
        if (r == 0) return MF_IO_EOF;
        return (long)r;
    }
}

int mf_proc_recv(int fd, void *buf, size_t n, double deadline) {
    unsigned char *p = buf;
    while (n) {
        long r = mf_proc_recv_some(fd, p, n, deadline);
        if (r < 0) return (int)r;
        p += r;
        n -= (size_t)r;
    }
    return MF_IO_OK;
}
