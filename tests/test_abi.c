/* test_abi.c: the kernel ABI grows without breaking kernels built against the first header.
 *
 *   test_abi V1_PLUGIN PLUGIN SEEDS_DIR
 *
 * 1. Layout: every field of the first header (tests/abi_v1/, compiled alone into
 *    abi_v1_layout.c) sits where the current header has it, and the extension slots are the
 *    first header's reserved[0] of mf_kernel_api and mf_kernel_params.
 * 2. Levels: a plugin built against the first header (V1_PLUGIN) loads in process and isolated
 *    with feature level 1 and no extensions; the current example (PLUGIN) declares
 *    MF_KERNEL_FEATURE_LEVEL through get_ext, and the isolated worker carries that declaration
 *    by value. Declarations that are not one are errors.
 * 3. The gate: every seed and random case of format v1 is a level-1 case (so a v1 kernel is
 *    offered all of them), every v2 one level 2; most random cases are v1; a kernel below a case's level is answered unsupported ("needs ABI
 *    feature level") and never called, in process, isolated and through exec.
 * 4. Process supervision (proc.c): a child's end is described in the same words whether it was
 *    forked (the isolated worker) or started under sh (the exec adapter); a child that does not
 *    end is killed with its whole process group.
 * 5. The exec hello: moefuzz says "hello 3"; an adapter without protocol= / level= (the first
 *    adapters) gets level 1; protocol=, level= and cache=weights are read; a bad level is bad
 * input.
 */
#include <dirent.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "casegen.h"
#include "codec.h"
#include "mf_test.h"
#include "proc.h"

/* The fields levels 7 and 8 appended to mf_kernel_params_v2, where a kernel built against this
 * header reads them (x86-64): appended after level 6's, never moved (a level-8 plugin built
 * against another order would read tp_size from placement) */
_Static_assert(offsetof(mf_kernel_params_v2, placement) == 160 &&
                   offsetof(mf_kernel_params_v2, expert_map) == 168 &&
                   offsetof(mf_kernel_params_v2, tp_size) == 176 &&
                   offsetof(mf_kernel_params_v2, tp_rank) == 180 &&
                   sizeof(mf_kernel_params_v2) == 184,
               "mf_kernel_params_v2: level 7 and 8 fields moved");

typedef struct abi_v1_field {
    const char *name;
    size_t offset, size;
} abi_v1_field;
extern const abi_v1_field abi_v1_fields[];

/* the current header's offset and size of a field the first header had */
static int current_field(const char *name, size_t *off, size_t *size) {
#define F(n, o, s) \
    if (!strcmp(name, #n)) return *off = (o), *size = (s), 1;
    F(api_size, 0, sizeof(mf_kernel_api))
    F(api.contract, offsetof(mf_kernel_api, contract), sizeof(mf_kernel_contract))
    F(api.create, offsetof(mf_kernel_api, create), 8)
    F(api.supports, offsetof(mf_kernel_api, supports), 8)
    F(api.workspace_size, offsetof(mf_kernel_api, workspace_size), 8)
    F(api.run, offsetof(mf_kernel_api, run), 8)
    F(api.release, offsetof(mf_kernel_api, release), 8)
    /* the first header's reserved tail: get_ext, then the rest still reserved */
    F(api.reserved, offsetof(mf_kernel_api, get_ext),
      sizeof(void *) + sizeof(((mf_kernel_api *)0)->reserved))
    F(contract.reserved, offsetof(mf_kernel_contract, reserved),
      sizeof(((mf_kernel_contract *)0)->reserved))
    F(params_size, 0, sizeof(mf_kernel_params))
    F(params.T, offsetof(mf_kernel_params, T), 4)
    F(params.routed_scaling_factor, offsetof(mf_kernel_params, routed_scaling_factor), 4)
    F(params.memory, offsetof(mf_kernel_params, memory), 4)
    F(params.x, offsetof(mf_kernel_params, x), 8)
    F(params.logits, offsetof(mf_kernel_params, logits), 8)
    F(params.bias, offsetof(mf_kernel_params, bias), 8)
    F(params.w13, offsetof(mf_kernel_params, w13), 8)
    F(params.w2, offsetof(mf_kernel_params, w2), 8)
    F(params.out, offsetof(mf_kernel_params, out), 8)
    F(params.stream, offsetof(mf_kernel_params, stream), 8)
    F(params.reserved, offsetof(mf_kernel_params, ext),
      8 + sizeof(((mf_kernel_params *)0)->reserved))
#undef F
    return 0;
}

static void test_layout(void) {
    int n = 0;
    for (const abi_v1_field *f = abi_v1_fields; f->name; f++, n++) {
        size_t off = 0, size = 0;
        EXPECT(current_field(f->name, &off, &size), "field %s of the first header unknown",
               f->name);
        EXPECT(off == f->offset && size == f->size,
               "%s: first header offset %zu size %zu, now offset %zu size %zu", f->name, f->offset,
               f->size, off, size);
    }
    EXPECT(n == 21, "%d fields of the first header compared", n);
}

/* a seed case built into a problem */
static int load_problem(const char *path, mf_problem *pb) {
    mf_case c;
    mf_error err = {0};
    if (mf_case_load(path, 0, &c, NULL, &err) != MF_OK || mf_problem_build(&c, pb, &err) != MF_OK) {
        printf("cannot load %s: %s\n", path, err.msg);
        return 0;
    }
    return 1;
}

/* Opens spec; checks its level and declaration; runs the case at its level (runs: a pass) and
 * one level below (unsupported, the kernel not reached). */
static void test_backend(const char *spec, int isolate, const mf_problem *pb, uint32_t level,
                         uint32_t declared_kind, int runs) {
    mf_backend b;
    mf_error err = {0};
    mf_backend_opts o = {.isolate = isolate, .timeout_s = 60};
    mf_status st = mf_backend_open_opts(spec, &o, &b, &err);
    EXPECT(st == MF_OK, "%s (isolate %d): %s", spec, isolate, err.msg);
    if (st != MF_OK) return;
    EXPECT(b.level == level, "%s (isolate %d): level %u, want %u", spec, isolate, b.level, level);
    EXPECT(b.features.ext.kind == declared_kind &&
               (!declared_kind || b.features.level == MF_KERNEL_FEATURE_LEVEL),
           "%s (isolate %d): declared kind %u level %u", spec, isolate, b.features.ext.kind,
           b.features.level);
    mf_run_result r;
    st = runs ? mf_backend_run(&b, pb, &r, &err) : MF_OK;
    if (runs)
        EXPECT(st == MF_OK && !r.unsupported && r.out && r.unwritten == 0 && !r.guard_broken,
               "%s (isolate %d): run: status %d unsupported %d (%s) unwritten %zu: %s", spec,
               isolate, st, r.unsupported, r.reason, r.unwritten, err.msg);
    if (runs && st == MF_OK) mf_run_result_free(&r);
    /* the gate: a kernel below the case's level never sees it */
    char what[128], want[64];
    uint32_t need = mf_case_level(&pb->p, what, sizeof what);
    snprintf(want, sizeof want, "needs ABI feature level %u", need);
    b.level = need - 1;
    st = mf_backend_run(&b, pb, &r, &err);
    EXPECT(st == MF_OK && r.unsupported && strstr(r.reason, want) && !r.out,
           "%s (isolate %d): below the case's level: status %d unsupported %d '%s'", spec, isolate,
           st, r.unsupported, r.reason);
    if (st == MF_OK) mf_run_result_free(&r);
    mf_backend_close(&b);
}

static void test_levels(const char *v1_plugin, const char *plugin, const char *seeds) {
    char path[4096], spec[4200];
    mf_problem pb;
    snprintf(path, sizeof path, "%s/exact-ties.txt", seeds);
    if (!load_problem(path, &pb)) {
        EXPECT(0, "seed %s", path);
        return;
    }
    snprintf(spec, sizeof spec, "plugin:%s", v1_plugin);
    test_backend(spec, 0, &pb, MF_ABI_LEVEL_1, 0, 1);
    test_backend(spec, 1, &pb, MF_ABI_LEVEL_1, 0, 1);
    snprintf(spec, sizeof spec, "plugin:%s", plugin);
    test_backend(spec, 0, &pb, MF_KERNEL_FEATURE_LEVEL, MF_KERNEL_EXT_FEATURES, 1);
    test_backend(spec, 1, &pb, MF_KERNEL_FEATURE_LEVEL, MF_KERNEL_EXT_FEATURES, 1);
    test_backend("cpu", 0, &pb, MF_KERNEL_FEATURE_LEVEL, MF_KERNEL_EXT_FEATURES, 1);
    /* a level-2 case (a v2 parameter set): the level-1 plugin is never sent it, in process or
     * isolated; the cpu kernel (level 2) runs it */
    pb.p.renorm_denom = MF_RENORM_SUM_OR_ONE;
    pb.src.p.renorm_denom = MF_RENORM_SUM_OR_ONE;
    for (int iso = 0; iso < 2; iso++) {
        mf_backend b;
        mf_error err = {0};
        mf_backend_opts o = {.isolate = iso, .timeout_s = 60};
        snprintf(spec, sizeof spec, "plugin:%s", v1_plugin);
        if (mf_backend_open_opts(spec, &o, &b, &err) != MF_OK) {
            EXPECT(0, "%s: %s", spec, err.msg);
            continue;
        }
        mf_run_result r;
        mf_status st = mf_backend_run(&b, &pb, &r, &err);
        EXPECT(st == MF_OK && r.unsupported && !r.out &&
                   strstr(r.reason, "needs ABI feature level 2 (renorm_denom = sum_or_one)"),
               "v1 plugin (isolate %d) on a level-2 case: status %d unsupported %d '%s'", iso, st,
               r.unsupported, r.reason);
        if (st == MF_OK) mf_run_result_free(&r);
        mf_backend_close(&b);
    }
    test_backend("cpu", 0, &pb, MF_KERNEL_FEATURE_LEVEL, MF_KERNEL_EXT_FEATURES, 1);
    /* an adapter that answers every run with an error: reaching it below its level would show */
    test_backend(
        "exec:read l; echo hello sh-adapter; while read c a b; do echo error reached; "
        "done",
        0, &pb, MF_ABI_LEVEL_1, 0, 0);
    mf_problem_free(&pb);

    /* declarations that are not one */
    mf_kernel_features f = {{MF_KERNEL_EXT_CONTRACT, sizeof f, NULL}, 1, 0};
    uint32_t lvl;
    mf_error err;
    EXPECT(mf_backend_level(&f, &lvl, &err) == MF_EINVAL, "a features ext of another kind");
    f.ext.kind = MF_KERNEL_EXT_FEATURES;
    f.level = 0;
    EXPECT(mf_backend_level(&f, &lvl, &err) == MF_EINVAL, "level 0 declared");
    f.ext.struct_size = 8;
    f.level = 1;
    EXPECT(mf_backend_level(&f, &lvl, &err) == MF_EINVAL, "a features ext too short for level");
    f.ext.struct_size = sizeof f;
    f.level = MF_KERNEL_FEATURE_LEVEL + 5;
    EXPECT(mf_backend_level(&f, &lvl, &err) == MF_OK && lvl == MF_KERNEL_FEATURE_LEVEL,
           "a newer kernel gets this moefuzz's level, got %u", lvl);
}

/* The level a case needs: 1 if v1 carries it, 8 with a tensor-parallel shard, 7 with an expert
 * map, 6 with pre-routed input, 5 with a routing variant (score none, the weight on the input), 4
 * with shared experts, 3 with quantized weights, else 2. */
static uint32_t expected_level(const mf_case *c) {
    mf_case problem_only = *c; /* rows is the case's, not the problem's: no ABI level */
    problem_only.rows = 0;
    if (mf_case_format(&problem_only) == 1) return MF_ABI_LEVEL_1;
    if (c->p.tp_size > 1) return MF_ABI_LEVEL_8;
    if (c->p.placement != MF_PLACEMENT_CONTIGUOUS) return MF_ABI_LEVEL_7;
    if (c->p.preroute != MF_PREROUTE_NONE) return MF_ABI_LEVEL_6;
    if (c->p.score == MF_SCORE_NONE || c->p.weight_on_input) return MF_ABI_LEVEL_5;
    if (c->p.n_shared > 0) return MF_ABI_LEVEL_4;
    return c->p.weight_format != MF_WFMT_BF16 ? MF_ABI_LEVEL_3 : MF_ABI_LEVEL_2;
}

static void test_case_levels(const char *seeds) {
    DIR *d = opendir(seeds);
    EXPECT(d != NULL, "cannot open %s", seeds);
    if (!d) return;
    int n = 0;
    char what[128];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".txt")) continue;
        char path[4096];
        mf_case c;
        mf_error err = {0};
        snprintf(path, sizeof path, "%s/%s", seeds, e->d_name);
        EXPECT(mf_case_load(path, 0, &c, NULL, &err) == MF_OK, "%s: %s", path, err.msg);
        uint32_t l = mf_case_level(&c.p, what, sizeof what);
        /* a case v1 carries is level 1 (a kernel of the first header is offered it); quantized
         * weights are level 3 */
        EXPECT(l == expected_level(&c), "%s: level %u (%s), format v%d", e->d_name, l, what,
               mf_case_format(&c));
        n++;
    }
    closedir(d);
    EXPECT(n >= 40, "%d seed cases", n);
    mf_rng r = {7};
    mf_case_limits lim;
    mf_case_limits_default(&lim);
    int n_v1 = 0, quantized = 0, shared = 0, variants = 0, prerouted = 0, mapped = 0, tp = 0;
    for (int i = 0; i < 2000; i++) {
        mf_case c;
        mf_case_random(&r, &lim, &c);
        uint32_t l = mf_case_level(&c.p, what, sizeof what);
        if (l != expected_level(&c))
            EXPECT(0, "random case %d: level %u (%s), format v%d", i, l, what, mf_case_format(&c));
        n_v1 += l == MF_ABI_LEVEL_1;
        quantized += l == MF_ABI_LEVEL_3;
        shared += l == MF_ABI_LEVEL_4;
        variants += l == MF_ABI_LEVEL_5;
        prerouted += l == MF_ABI_LEVEL_6;
        mapped += l == MF_ABI_LEVEL_7;
        tp += l == MF_ABI_LEVEL_8;
    }
    EXPECT(mapped > 0 && mapped < 200, "%d of 2000 random cases with an expert map (level 7)",
           mapped);
    EXPECT(tp > 0 && tp < 200, "%d of 2000 random cases with a tensor-parallel shard (level 8)",
           tp);
    EXPECT(prerouted > 0 && prerouted < 200,
           "%d of 2000 random cases with pre-routed input (level 6)", prerouted);
    EXPECT(variants > 0 && variants < 200,
           "%d of 2000 random cases with routing variants (level 5)", variants);
    EXPECT(shared > 0 && shared < 200, "%d of 2000 random cases with shared experts (level 4)",
           shared);
    /* most random cases stay level 1: a kernel of the first header is offered them */
    EXPECT(n_v1 >= 1000 && n_v1 < 2000, "%d of 2000 random cases are level 1 (v1)", n_v1);
    EXPECT(quantized > 0 && quantized < 1000, "%d of 2000 random cases quantized (level 3)",
           quantized);
}

/* ---- process supervision ---- */

static void child_segv(int sock, void *arg) {
    (void)sock, (void)arg;
    raise(SIGSEGV);
}

static void child_exit3(int sock, void *arg) {
    (void)sock, (void)arg;
    _exit(3);
}

static void child_sleep(int sock, void *arg) {
    (void)sock, (void)arg;
    sleep(100);
}

/* 1 if a process of group pgid runs (zombies left to an init that does not reap are not) */
static int group_alive(pid_t pgid) {
    DIR *d = opendir("/proc");
    int alive = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')'); /* after the command name: state ppid pgrp */
        char state;
        int ppid, pgrp;
        if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z')
            alive = 1;
    }
    if (d) closedir(d);
    return alive;
}

/* how a child ended, after at most wait_s */
static void end_words(mf_proc *pr, double wait_s, char *how, size_t n) {
    mf_proc_end(pr, wait_s, how, n);
}

static void test_proc(void) {
    mf_proc pr;
    mf_error err;
    char how[200];
    EXPECT(mf_proc_fork(&pr, child_segv, NULL, &err) == MF_OK, "fork: %s", err.msg);
    end_words(&pr, 5, how, sizeof how);
    EXPECT(!strcmp(how, "crashed with signal 11 (Segmentation fault)"), "forked segv: '%s'", how);
    EXPECT(mf_proc_spawn_shell(&pr, "kill -SEGV $$", &err) == MF_OK, "spawn: %s", err.msg);
    end_words(&pr, 5, how, sizeof how);
    EXPECT(!strcmp(how, "crashed with signal 11 (Segmentation fault)"), "shell segv: '%s'", how);
    EXPECT(mf_proc_fork(&pr, child_exit3, NULL, &err) == MF_OK, "fork: %s", err.msg);
    end_words(&pr, 5, how, sizeof how);
    EXPECT(!strcmp(how, "exited with status 3"), "forked exit: '%s'", how);
    EXPECT(mf_proc_spawn_shell(&pr, "exit 3", &err) == MF_OK, "spawn: %s", err.msg);
    end_words(&pr, 5, how, sizeof how);
    EXPECT(!strcmp(how, "exited with status 3"), "shell exit: '%s'", how);
    /* a command under sh that dies of a signal: sh reports 128 + N */
    EXPECT(mf_proc_spawn_shell(&pr, "sh -c 'kill -SEGV $$'; exit $?", &err) == MF_OK, "spawn: %s",
           err.msg);
    end_words(&pr, 5, how, sizeof how);
    EXPECT(!strcmp(how,
                   "exited with status 139 (its command crashed with signal 11 "
                   "(Segmentation fault))"),
           "command under sh: '%s'", how);
    /* one that does not end: killed, with what it started */
    EXPECT(mf_proc_fork(&pr, child_sleep, NULL, &err) == MF_OK, "fork: %s", err.msg);
    end_words(&pr, 0.05, how, sizeof how);
    EXPECT(!strcmp(how, "was killed") && pr.pid == -1 && pr.sock == -1, "forked sleep: '%s'", how);
    EXPECT(mf_proc_spawn_shell(&pr, "sleep 100 & sleep 100", &err) == MF_OK, "spawn: %s", err.msg);
    pid_t group = pr.pid;
    usleep(100000);
    end_words(&pr, 0.05, how, sizeof how);
    EXPECT(!strcmp(how, "was killed"), "shell sleep: '%s'", how);
    usleep(100000);
    EXPECT(!group_alive(group), "the adapter's process group outlived it");
    end_words(&pr, 0, how, sizeof how);
    EXPECT(!strcmp(how, "was not running"), "ended twice: '%s'", how);
}

/* ---- the exec hello ---- */

static void test_exec_hello(void) {
    static const struct {
        const char *reply;
        mf_status st;
        uint32_t level;
    } cases[] = {
        {"hello old contract=any-order routing=1", MF_OK, MF_ABI_LEVEL_1},
        {"hello new protocol=2 level=1 cache=weights", MF_OK, MF_ABI_LEVEL_1},
        {"hello cached protoc=3 level=2 cache=weights", MF_OK, MF_ABI_LEVEL_2},
        {"hello newer protocol=9 level=99 future=yes", MF_OK, MF_KERNEL_FEATURE_LEVEL},
        {"hello bad level=abc", MF_EINVAL, 0},
        {"hello bad level=0", MF_EINVAL, 0},
        {"hello bad protocol=", MF_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char spec[300];
        /* answers only moefuzz's own greeting, "hello 3" */
        snprintf(spec, sizeof spec,
                 "exec:read l; test \"$l\" = 'hello 3' && echo '%s' || echo 'hello x level=0'",
                 cases[i].reply);
        mf_backend b;
        mf_error err = {0};
        mf_status st = mf_backend_open(spec, &b, &err);
        EXPECT(st == cases[i].st, "'%s': status %d, want %d (%s)", cases[i].reply, st, cases[i].st,
               err.msg);
        if (st == MF_OK) {
            EXPECT(b.level == cases[i].level, "'%s': level %u", cases[i].reply, b.level);
            mf_backend_close(&b);
        } else {
            EXPECT(strstr(err.msg, "exec backend: bad '") != NULL, "'%s': message '%s'",
                   cases[i].reply, err.msg);
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_abi V1_PLUGIN PLUGIN SEEDS_DIR\n");
        return 2;
    }
    test_layout();
    test_case_levels(argv[3]);
    test_levels(argv[1], argv[2], argv[3]);
    test_proc();
    test_exec_hello();
    return mf_test_exit("test_abi");
}
