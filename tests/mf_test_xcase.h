/* mf_test_xcase.h: a case written as a case file (safetensors) and read back, for the tests of
 * the v2 parameters' round trips. Include after mf_test.h. */
#ifndef MF_TEST_XCASE_H
#define MF_TEST_XCASE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exchange.h"
#include "mf_test.h"

/* A fresh empty file /tmp/mf_test_TAG_XXXXXX in path (the caller removes it); 0 on failure,
 * counted as one. */
static inline int mf_test_tmpfile(char path[64], const char *tag) {
    snprintf(path, 64, "/tmp/mf_test_%s_XXXXXX", tag);
    int fd = mkstemp(path);
    EXPECT(fd >= 0, "mkstemp %s", path);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

/* pb and c written to path (metadata name `name`) and read back into c2 and pb2 (pb2 then the
 * caller's to free); 0, with the failure counted, when either step fails. */
static inline int mf_test_xcase_round_trip(const char *path, const mf_problem *pb, const mf_case *c,
                                           const char *name, mf_case *c2, mf_problem *pb2) {
    mf_error err = {0};
    memset(pb2, 0, sizeof *pb2);
    if (mf_xcase_write(path, pb, c, name, NULL, &err) != MF_OK ||
        mf_xcase_read(path, c2, pb2, &err) != MF_OK) {
        EXPECT(0, "safetensors: %s", err.msg);
        return 0;
    }
    return 1;
}

#endif /* MF_TEST_XCASE_H */
