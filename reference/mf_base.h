/* mf_base.h: status codes and the error value every moefuzz library function fills.
 *
 * Library code never prints and never exits: it returns an mf_status and, on failure, writes a
 * message into a caller-owned mf_error. MF_TRY propagates a failure and appends the call site,
 * so a message reads like a short backtrace ("bad shape (at src/case.c:120) (at src/codec.c:88)").
 */
#ifndef MF_BASE_H
#define MF_BASE_H

#include <stddef.h>

typedef enum mf_status {
    MF_OK = 0,
    MF_EINVAL = 1,       /* malformed input: a bad case, file or argument */
    MF_ENOMEM = 2,       /* allocation failed */
    MF_EUNSUPPORTED = 3, /* valid input outside what this component handles */
    MF_EIO = 4,          /* file or pipe error */
    MF_EBACKEND = 5,     /* a kernel under test failed to run (not a wrong answer) */
    MF_EINTERNAL = 6,    /* a broken invariant inside moefuzz */
    MF_ETIMEOUT = 7,     /* an external kernel did not answer in time */
    MF_ECRASH = 8,       /* a kernel running in another process died (signal or exit) */
    MF_ENODEVICE = 9,    /* a GPU backend found no usable device (the one reason to skip) */
} mf_status;

typedef struct mf_error {
    mf_status status;
    char msg[1024]; /* for the user: what went wrong, without source locations */
    char where[256]; /* for a developer: "file:line" where it was set, then each MF_TRY above */
} mf_error;

/* Sets err (if not NULL) to status st with a printf-style message and the call site; returns st. */
mf_status mf_error_set(mf_error *err, mf_status st, const char *file, int line, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));
/* Appends " (at file:line)" to the message; used by MF_TRY. */
void mf_error_trace(mf_error *err, const char *file, int line);
void mf_error_clear(mf_error *err);
const char *mf_status_name(mf_status st);

#define MF_FAIL(err, st, ...) mf_error_set((err), (st), __FILE__, __LINE__, __VA_ARGS__)

/* Propagates a failing status; needs a variable `mf_error *err` in scope. */
#define MF_TRY(expr)                                      \
    do {                                                  \
        mf_status mf_try_st_ = (expr);                    \
        if (mf_try_st_ != MF_OK) {                        \
            mf_error_trace(err, __FILE__, __LINE__);      \
            return mf_try_st_;                            \
        }                                                 \
    } while (0)

/* Monotonic clock in seconds. */
double mf_now_s(void);

/* Allocation helpers: zeroed, overflow-checked; NULL on failure. */
void *mf_calloc(size_t n, size_t size);

/* first[i] = the lowest index j <= i whose row (row_bytes bytes at rows + j * row_bytes) is
 * bit-identical to row i (hash, then full compare). Returns the number of distinct rows, or -1
 * out of memory. */
int mf_rows_first_equal(const void *rows, size_t row_bytes, int n, int *first);

#endif /* MF_BASE_H */
