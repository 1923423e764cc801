/* cmd_fuzz.c: `moefuzz fuzz`, `moefuzz minimize`, `moefuzz merge`, `moefuzz models`.
 *
 * `fuzz` runs the libFuzzer target fuzz_moe (built next to this binary by the fuzz preset) with
 * good flags, prints a progress line while it runs, and ends with a summary: execs, execs/s,
 * configuration cells covered, highest utilisation, and failures grouped by signature, each with
 * an artifact and the command that replays it.
 *
 * moefuzz owns the campaign's clock and processes: the target runs in a process group of its own;
 * at --time (corpus replay included), on Ctrl-C, SIGTERM or SIGHUP the whole group gets SIGINT
 * (libFuzzer stops and prints its statistics), and SIGKILL 5 s later; the summary follows.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attribute.h"
#include "codec.h"
#include "fuzz.h"
#include "models.h"
#include "options.h"
#include "tool.h"

/* ---- locating the fuzz targets, the seeds and the dictionary ---- */

static void self_dir(char *buf, size_t n) {
    ssize_t r = readlink("/proc/self/exe", buf, n - 1);
    if (r <= 0) {
        snprintf(buf, n, ".");
        return;
    }
    buf[r] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
}

static int find_target(const char *name, const char *override, char *out, size_t n) {
    if (override) {
        snprintf(out, n, "%s", override);
        return access(out, X_OK) == 0;
    }
    char dir[PATH_MAX];
    self_dir(dir, sizeof dir);
    snprintf(out, n, "%.3900s/%.60s", dir, name);
    if (access(out, X_OK) == 0) return 1;
    snprintf(out, n, "%.3900s/../fuzz/%.60s", dir, name); /* build/default/ -> build/fuzz/ */
    return access(out, X_OK) == 0;
}

static void no_target(const char *cmd, const char *name) {
    fprintf(stderr,
            "moefuzz %s: the libFuzzer target %s was not found next to this moefuzz; build it "
            "with clang: cmake --preset fuzz && cmake --build --preset fuzz, then run "
            "build/fuzz/moefuzz %s (or pass --target PATH)\n",
            cmd, name, cmd);
}

/* Where seeds and the dictionary may be, in order: MOEFUZZ_SOURCE_DIR, next to this binary (a
 * copied tool with corpus/ beside it), the working directory, the source tree it was built from
 * (two levels up from build/NAME/ too). */
static int roots(char out[][PATH_MAX], int max) {
    char self[PATH_MAX];
    self_dir(self, sizeof self);
    int n = 0;
    const char *env = getenv("MOEFUZZ_SOURCE_DIR");
    if (env && *env && n < max) snprintf(out[n++], PATH_MAX, "%s", env);
    if (n < max) snprintf(out[n++], PATH_MAX, "%s", self);
    if (n < max) snprintf(out[n++], PATH_MAX, ".");
    if (n < max) snprintf(out[n++], PATH_MAX, "%s", MF_SOURCE_DIR);
    return n;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The first root with a corpus/ directory; "" and the places looked at when none has one. */
static void find_corpus(char *found, size_t n, char *looked, size_t ln) {
    char r[4][PATH_MAX];
    int nr = roots(r, 4);
    found[0] = looked[0] = '\0';
    for (int i = 0; i < nr; i++) {
        char p[PATH_MAX + 16];
        snprintf(p, sizeof p, "%s/corpus", r[i]);
        size_t used = strlen(looked);
        snprintf(looked + used, ln - used, "%s%s", used ? ", " : "", p);
        if (is_dir(p)) {
            snprintf(found, n, "%s", p);
            return;
        }
    }
}

static void find_dict(char *out, size_t n) {
    char r[4][PATH_MAX];
    int nr = roots(r, 4);
    for (int i = 0; i < nr; i++) {
        snprintf(out, n, "%.4000s/fuzz/moe.dict", r[i]);
        if (access(out, R_OK) == 0) return;
        snprintf(out, n, "%.4000s/moe.dict", r[i]); /* copied next to the binaries */
        if (access(out, R_OK) == 0) return;
    }
    out[0] = '\0';
}

static int mkdirs(const char *path) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0775) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0775) != 0 && errno != EEXIST ? -1 : 0;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d))) n += de->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* ---- seeds: text cases -> binary inputs in the working corpus ---- */

/* Returns the number of seeds written; *bad counts the files that are not cases. */
static int seed_corpus(const char *src_dir, const char *dst_dir, const char *prefix, int *bad) {
    mf_path_list l = {0};
    mf_error err;
    if (!is_dir(src_dir) || mf_paths_collect(src_dir, &l, &err) != MF_OK) return 0;
    int n = 0;
    for (int i = 0; i < l.n; i++) {
        mf_case c;
        if (mf_case_load(l.paths[i], 0, &c, NULL, &err) != MF_OK) {
            fprintf(stderr, "moefuzz fuzz: seed skipped: %s\n", err.msg);
            (*bad)++;
            continue;
        }
        uint8_t buf[MF_CASE_MAX_BYTES];
        size_t len = mf_case_encode(&c, 0, buf, sizeof buf);
        const char *base = strrchr(l.paths[i], '/');
        base = base ? base + 1 : l.paths[i];
        char out[PATH_MAX + 512];
        snprintf(out, sizeof out, "%s/%s%s", dst_dir, prefix, base);
        char *dot = strrchr(out, '.');
        if (dot && dot > strrchr(out, '/')) *dot = '\0';
        FILE *f = fopen(out, "wb");
        if (f) {
            n += fwrite(buf, 1, len, f) == len;
            fclose(f);
        }
    }
    mf_paths_free(&l);
    return n;
}

/* ---- the campaign ---- */

typedef struct campaign {
    const char *target_override, *backend, *model, *workdir, *method, *contract;
    double seconds, timeout; /* timeout: per kernel call of an isolated or exec backend */
    int isolate;             /* -1 default, 0, 1 (MOEFUZZ_ISOLATE) */
    int jobs, overnight, full, plain, keep_going;
    long runs;
    unsigned seed;
    char target[PATH_MAX];
    char workdir_buf[PATH_MAX];
    char extra[32][256];
    int n_extra;
} campaign;

typedef struct progress {
    unsigned long long execs, cov, ft, corp;
    double exec_s;
    int crashes;
    int fuzzing; /* past the replay of the existing corpus */
} progress;

static void parse_line(const char *line, progress *pr) {
    /* "#12345\tNEW    cov: 123 ft: 456 corp: 7/89b exec/s: 10 rss: 40Mb" or in fork mode
     * "#12345: cov: 123 ft: 456 corp: 7 exec/s: 10 oom/timeout/crash: 0/0/1 time: 5s ..." */
    if (line[0] == '#' && isdigit((unsigned char)line[1])) pr->execs = strtoull(line + 1, NULL, 10);
    const char *p;
    if ((p = strstr(line, " cov: "))) pr->cov = strtoull(p + 6, NULL, 10);
    if ((p = strstr(line, " ft: "))) pr->ft = strtoull(p + 5, NULL, 10);
    if ((p = strstr(line, " corp: "))) pr->corp = strtoull(p + 7, NULL, 10);
    if ((p = strstr(line, " exec/s: "))) pr->exec_s = strtod(p + 9, NULL);
    if ((p = strstr(line, "oom/timeout/crash: "))) {
        const char *q = strrchr(p, '/');
        if (q) pr->crashes = (int)strtol(q + 1, NULL, 10);
    }
    if (strstr(line, "==== moefuzz: MISMATCH") || strstr(line, "deadly signal")) pr->crashes++;
    /* the corpus replay ends at INITED ("#50\tINITED cov: ...", one process) or when the
     * fork-mode parent starts its workers */
    if (strstr(line, "INITED cov:") || strstr(line, "starting to fuzz in")) pr->fuzzing = 1;
}

static int count_cells(const char *stats_dir, mf_fuzz_stats *sum) {
    memset(sum, 0, sizeof *sum);
    DIR *d = opendir(stats_dir);
    if (!d) return 0;
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "stats-", 6) || strstr(de->d_name, ".tmp")) continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", stats_dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        mf_fuzz_stats s;
        if (fread(&s, sizeof s, 1, f) == 1 && s.magic == MF_FUZZ_STATS_MAGIC &&
            s.version == MF_FUZZ_STATS_VERSION) {
            if (s.contract[0]) memcpy(sum->contract, s.contract, sizeof sum->contract);
            files++;
            sum->execs += s.execs;
            sum->passes += s.passes;
            sum->skips += s.skips;
            sum->fails += s.fails;
            sum->errors += s.errors;
            sum->unsupported += s.unsupported;
            if (s.max_util > sum->max_util) sum->max_util = s.max_util;
            if (s.max_util_informative > sum->max_util_informative)
                sum->max_util_informative = s.max_util_informative;
            for (int b = 0; b < MF_FUZZ_UTIL_BUCKETS; b++)
                sum->cases_by_bucket[b] += s.cases_by_bucket[b];
            sum->meta_runs += s.meta_runs;
            sum->meta_violations += s.meta_violations;
            sum->observed_cases += s.observed_cases;
            for (int k = 0; k < MF_FUZZ_KNOBS; k++) sum->observable[k] += s.observable[k];
            for (int c = 0; c < MF_FUZZ_CELLS; c++) sum->cells[c] |= s.cells[c];
            for (int z = 0; z < MF_SIZE_COUNT; z++) {
                sum->cases_by_size[z] += s.cases_by_size[z];
                for (int d = 0; d < 3; d++)
                    if (s.size_max[z][d] > sum->size_max[z][d])
                        sum->size_max[z][d] = s.size_max[z][d];
            }
        }
        fclose(f);
    }
    closedir(d);
    int cells = 0;
    for (int c = 0; c < MF_FUZZ_CELLS; c++) cells += sum->cells[c];
    return cells;
}

/* Failure signature of an artifact: replayed in this process with the campaign's config. */
typedef struct failure_group {
    char signature[200];
    char example[PATH_MAX + 256];
    int count;
} failure_group;

static void signature_of(const char *path, const campaign *cp, char *sig, size_t n) {
    uint8_t *d;
    size_t len;
    mf_error err;
    if (mf_read_file(path, &d, &len, 1u << 20, &err) != MF_OK) {
        snprintf(sig, n, "unreadable artifact");
        return;
    }
    mf_fuzz_config cfg;
    mf_fuzz_config_from_env(&cfg, cp->backend ? cp->backend : "cpu");
    cfg.stats_dir[0] = '\0';
    cfg.meta_every = 1;
    mf_fuzz *f = mf_fuzz_new(&cfg);
    mf_fuzz_result *r = malloc(sizeof *r);
    if (!f || !r) {
        snprintf(sig, n, "out of memory");
    } else {
        mf_fuzz_outcome o = mf_fuzz_one(f, d, len, r);
        if (o == MF_FUZZ_PASS)
            snprintf(sig, n, "does not reproduce in this process (crash/timeout?)");
        else if (o == MF_FUZZ_SKIP)
            snprintf(sig, n, "skipped on replay (budget or unsupported)");
        else
            mf_fuzz_signature(r, sig, n);
    }
    free(r);
    mf_fuzz_free(f);
    free(d);
}

/* The replay command of an artifact, shell-quoted. */
static void replay_command(const campaign *cp, const char *artifact, char *out, size_t n) {
    char q[PATH_MAX + 600];
    size_t u = (size_t)snprintf(out, n, "moefuzz repro");
    const char *opt[] = {"--backend", cp->backend, "--model",    cp->model,
                         "--method",  cp->method,  "--contract", cp->contract};
    for (int i = 0; i < 8 && u < n; i += 2)
        if (opt[i + 1]) {
            mf_shell_quote(opt[i + 1], q, sizeof q);
            u += (size_t)snprintf(out + u, n - u, " %s %s", opt[i], q);
        }
    if (cp->full && u < n) u += (size_t)snprintf(out + u, n - u, " --full");
    mf_shell_quote(artifact, q, sizeof q);
    if (u < n) snprintf(out + u, n - u, " %s", q);
}

/* Prints the summary; returns the number of artifacts this campaign wrote (newer than since). */
static int summary(const campaign *cp, const progress *pr, double wall, time_t since,
                   const char *stopped) {
    char stats_dir[PATH_MAX], art_dir[PATH_MAX];
    snprintf(stats_dir, sizeof stats_dir, "%s/stats", cp->workdir);
    snprintf(art_dir, sizeof art_dir, "%s/artifacts", cp->workdir);
    mf_fuzz_stats sum;
    count_cells(stats_dir, &sum);
    unsigned long long execs = sum.execs;
    printf("\n==== moefuzz fuzz summary (%s backend%s%s, %.0f s, %d job%s%s%s) ====\n",
           cp->backend ? cp->backend : "cpu", cp->model ? ", model " : "",
           cp->model ? cp->model : "", wall, cp->jobs, cp->jobs == 1 ? "" : "s",
           stopped ? ", " : "", stopped ? stopped : "");
    printf(
        "execs            %llu (%.1f/s), of which %llu passed, %llu skipped (budget or "
        "unsupported)\n",
        execs, wall > 0 ? (double)execs / wall : 0.0, (unsigned long long)sum.passes,
        (unsigned long long)sum.skips);
    printf("contract         %s\n", sum.contract[0] ? sum.contract : "- (no input ran)");
    printf("coverage         %llu edges, %llu features, corpus %llu inputs\n", pr->cov, pr->ft,
           pr->corp);
    mf_fuzz_stats_print(&sum, stdout);
    /* failures: the artifacts this campaign wrote */
    failure_group groups[32];
    int ng = 0, nfail = 0, older = 0;
    DIR *d = opendir(art_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[PATH_MAX + 256], sig[200];
        snprintf(path, sizeof path, "%s/%s", art_dir, de->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || sb.st_mtime < since) {
            older++;
            continue;
        }
        nfail++;
        if (!strncmp(de->d_name, "crash-", 6))
            signature_of(path, cp, sig, sizeof sig);
        else if (!strncmp(de->d_name, "timeout-", 8))
            snprintf(sig, sizeof sig, "timeout");
        else if (!strncmp(de->d_name, "oom-", 4))
            snprintf(sig, sizeof sig, "out of memory");
        else if (!strncmp(de->d_name, "leak-", 5))
            snprintf(sig, sizeof sig, "memory leak");
        else
            snprintf(sig, sizeof sig, "artifact");
        int g = 0;
        while (g < ng && strcmp(groups[g].signature, sig)) g++;
        if (g == ng && ng < 32) {
            snprintf(groups[g].signature, sizeof groups[g].signature, "%s", sig);
            snprintf(groups[g].example, sizeof groups[g].example, "%s", path);
            groups[g].count = 0;
            ng++;
        }
        if (g < ng) groups[g].count++;
    }
    if (d) closedir(d);
    if (nfail == 0) {
        printf("failures         none\n");
    } else {
        printf("failures         %d artifact%s in %s, %d signature%s:\n", nfail,
               nfail == 1 ? "" : "s", art_dir, ng, ng == 1 ? "" : "s");
        for (int g = 0; g < ng; g++) {
            char cmd[3 * PATH_MAX];
            replay_command(cp, groups[g].example, cmd, sizeof cmd);
            printf("  [%d] %s\n      e.g. %s\n      replay: %s\n", groups[g].count,
                   groups[g].signature, groups[g].example, cmd);
        }
    }
    if (older)
        printf("                 (%d older artifact%s of earlier campaigns in %s)\n", older,
               older == 1 ? "" : "s", art_dir);
    return nfail;
}

static volatile sig_atomic_t interrupted = 0;
static void on_signal(int s) {
    interrupted = s;
}

/* Fork-mode workers are the target's children: a backend that cannot open would only be
 * restarted there, so one input is run first in a process of its own. Returns the target's exit
 * code (0 the backend opened). */
static int preflight(const campaign *cp, const char *art, const char *logp) {
    char a1[PATH_MAX + 32];
    snprintf(a1, sizeof a1, "-artifact_prefix=%s", art);
    char *args[] = {(char *)cp->target, "-runs=0", "-error_exitcode=1", a1, NULL};
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0664);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        unsetenv("MOEFUZZ_STATS");
        execv(cp->target, args);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The line of the target's log that says why it stopped ("fuzz_moe: ..."). */
static void reason_from_log(const char *logp, char *out, size_t n) {
    FILE *f = fopen(logp, "r");
    char line[1024];
    snprintf(out, n, "(see %s)", logp);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "fuzz_moe: ", 10)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, n, "%s", line + 10);
        }
    if (f) fclose(f);
}

static int skipped_no_gpu(const char *reason) {
    if (mf_tool_require_gpu()) {
        fprintf(stderr, "moefuzz fuzz: FAIL: %s (MOEFUZZ_REQUIRE_GPU=1)\n", reason);
        return MF_EXIT_MISMATCH;
    }
    fprintf(stderr, "moefuzz fuzz: skipped: %s\n", reason);
    return MF_EXIT_SKIP;
}

static int run_campaign(campaign *cp) {
    char corpus[PATH_MAX], art[PATH_MAX], stats[PATH_MAX], logp[PATH_MAX];
    snprintf(corpus, sizeof corpus, "%s/corpus", cp->workdir);
    snprintf(art, sizeof art, "%s/artifacts/", cp->workdir);
    snprintf(stats, sizeof stats, "%s/stats", cp->workdir);
    snprintf(logp, sizeof logp, "%s/fuzz.log", cp->workdir);
    if (mkdirs(corpus) || mkdirs(art) || mkdirs(stats)) {
        fprintf(stderr, "moefuzz fuzz: cannot create %s: %s\n", cp->workdir, strerror(errno));
        return MF_EXIT_BAD_INPUT;
    }
    /* the campaign's settings: recorded for repro and minimize; a corpus of another campaign
     * is announced (it is replayed first, within --time) */
    mf_fuzz_campaign now = {0}, before;
    snprintf(now.backend, sizeof now.backend, "%s", cp->backend ? cp->backend : "cpu");
    snprintf(now.model, sizeof now.model, "%s", cp->model ? cp->model : "");
    snprintf(now.method, sizeof now.method, "%s", cp->method ? cp->method : "");
    snprintf(now.contract, sizeof now.contract, "%s", cp->contract ? cp->contract : "");
    now.full = cp->full;
    mf_error err = {0};
    int old_inputs = count_files(corpus);
    int foreign = old_inputs > 0 && (mf_fuzz_campaign_read(cp->workdir, &before, &err) != MF_OK ||
                                     !mf_fuzz_campaign_same(&before, &now));
    if (mf_fuzz_campaign_write(cp->workdir, &now, NULL, &err) != MF_OK) {
        fprintf(stderr, "moefuzz fuzz: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    /* fresh statistics for this campaign; the corpus and artifacts accumulate */
    DIR *sd = opendir(stats);
    struct dirent *de;
    while (sd && (de = readdir(sd))) {
        char p[PATH_MAX + 256];
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", stats, de->d_name);
        unlink(p);
    }
    if (sd) closedir(sd);
    char croot[PATH_MAX], looked[4 * PATH_MAX + 64];
    find_corpus(croot, sizeof croot, looked, sizeof looked);
    char seeds[PATH_MAX + 16], regress[PATH_MAX + 16];
    snprintf(seeds, sizeof seeds, "%s/seeds", croot);
    snprintf(regress, sizeof regress, "%s/regress", croot);
    int bad = 0, ns = 0;
    if (croot[0])
        ns = seed_corpus(seeds, corpus, "seed-", &bad) +
             seed_corpus(regress, corpus, "regress-", &bad);
    char dict[PATH_MAX];
    find_dict(dict, sizeof dict);

    char *argv[64];
    char buf[24][PATH_MAX + 64];
    int a = 0, b = 0;
    argv[a++] = cp->target;
    argv[a++] = corpus;
#define FLAG(...) (snprintf(buf[b], sizeof buf[b], __VA_ARGS__), argv[a++] = buf[b++])
    FLAG("-artifact_prefix=%s", art);
    if (dict[0]) FLAG("-dict=%s", dict);
    FLAG("-max_len=%d", 512);
    /* libFuzzer's own limit stays above the per-call limit of a kernel in another process,
     * whose timeout is reported with the case */
    int external =
        cp->timeout > 0 || cp->isolate == 1 ||
        (cp->backend && (!strncmp(cp->backend, "plugin:", 7) || !strncmp(cp->backend, "exec:", 5)));
    double call_s = cp->timeout > 0 ? cp->timeout : MF_BACKEND_TIMEOUT_S;
    FLAG("-timeout=%d", external && call_s * 3 + 30 > 60 ? (int)(call_s * 3 + 30) : 60);
    FLAG("-rss_limit_mb=%d", cp->overnight ? 16384 : 8192);
    FLAG("-print_final_stats=1");
    /* libFuzzer's default crash exit code is 77, which moefuzz keeps for "no GPU" */
    FLAG("-error_exitcode=1");
    FLAG("-timeout_exitcode=1");
    /* libFuzzer stops itself at --time once fuzzing; moefuzz stops the corpus replay too */
    if (cp->seconds > 0) FLAG("-max_total_time=%ld", (long)ceil(cp->seconds));
    if (cp->runs >= 0) FLAG("-runs=%ld", cp->runs);
    if (cp->seed) FLAG("-seed=%u", cp->seed);
    int fork_mode = cp->jobs > 1 || cp->overnight || cp->keep_going;
    if (fork_mode) {
        FLAG("-fork=%d", cp->jobs);
        FLAG("-ignore_crashes=1");
    }
#undef FLAG
    for (int i = 0; i < cp->n_extra && a < 62; i++) argv[a++] = cp->extra[i];
    argv[a] = NULL;

    setenv("MOEFUZZ_STATS", stats, 1);
    if (cp->backend) setenv("MOEFUZZ_BACKEND", cp->backend, 1);
    if (cp->model) setenv("MOEFUZZ_MODEL", cp->model, 1);
    if (cp->full) setenv("MOEFUZZ_FULL", "1", 1);
    if (cp->method) setenv("MOEFUZZ_METHOD", cp->method, 1);
    if (cp->contract) setenv("MOEFUZZ_CONTRACT", cp->contract, 1);
    if (cp->isolate >= 0) setenv("MOEFUZZ_ISOLATE", cp->isolate ? "1" : "0", 1);
    if (cp->timeout > 0) {
        char t[32];
        snprintf(t, sizeof t, "%g", cp->timeout);
        setenv("MOEFUZZ_TIMEOUT", t, 1);
    }

    char clock[96];
    if (cp->runs >= 0)
        snprintf(clock, sizeof clock, "stops after %ld inputs", cp->runs);
    else
        snprintf(clock, sizeof clock, "stops after %.0f s, corpus replay included", cp->seconds);
    printf("moefuzz fuzz: %s on %s, %d job%s, %s\n", cp->target, now.backend, cp->jobs,
           cp->jobs == 1 ? "" : "s", clock);
    if (croot[0])
        printf("seeds: %d inputs from %s%s\n", ns, croot, bad ? " (some files skipped above)" : "");
    else
        printf(
            "seeds: none found (looked in %s; put seeds in ./corpus/seeds or set "
            "MOEFUZZ_SOURCE_DIR)\n",
            looked);
    printf("work dir %s: %d corpus inputs%s\n", cp->workdir, old_inputs + ns,
           old_inputs ? " (replayed first)" : "");
    if (foreign)
        printf(
            "note: %d of them come from another campaign (%s); their replay counts against "
            "the time limit (use --workdir for a fresh corpus)\n",
            old_inputs,
            mf_fuzz_campaign_read(cp->workdir, &before, &err) == MF_OK ? "different settings"
                                                                       : "settings unknown");
    fflush(stdout);

    /* stop signals are caught from here on: the campaign ends with its summary */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (fork_mode) {
        int rc = preflight(cp, art, logp);
        if (rc == 77 || rc == 2 || rc == 127) {
            char why[1024];
            reason_from_log(logp, why, sizeof why);
            if (rc == 77) return skipped_no_gpu(why);
            fprintf(stderr, "moefuzz fuzz: the target could not start: %s\n", why);
            return MF_EXIT_BAD_INPUT;
        }
    }

    int pipefd[2];
    if (pipe(pipefd) != 0) return MF_EXIT_BAD_INPUT;
    time_t since = time(NULL);
    double t0 = mf_now_s();
    pid_t pid = fork();
    if (pid < 0) return MF_EXIT_BAD_INPUT;
    if (pid == 0) {
        setpgid(0, 0); /* its own group: the terminal's Ctrl-C reaches moefuzz, which stops all */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        dup2(pipefd[1], 2);
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(cp->target, argv);
        fprintf(stderr, "cannot execute %s: %s\n", cp->target, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    close(pipefd[1]);
    FILE *log = fopen(logp, "w");
    progress pr = {0};
    double last = t0, stop_at = 0;
    const char *stopped = NULL;
    int reporting = 0, status = 0, reaped = 0, killed = 0;
    /* read the target's output line by line, and print progress every 10 s even when the
     * target is quiet (libFuzzer prints status lines only on new coverage and at powers of 2) */
    char line[4096];
    size_t used = 0;
    for (;;) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(pipefd[0], &rd);
        struct timeval tv = {0, 250000};
        int ready = select(pipefd[0] + 1, &rd, NULL, NULL, &tv);
        if (ready > 0) {
            ssize_t got = read(pipefd[0], line + used, sizeof line - 1 - used);
            if (got <= 0) break;
            used += (size_t)got;
            line[used] = '\0';
            char *start = line, *nl;
            while ((nl = strchr(start, '\n')) != NULL) {
                *nl = '\0';
                if (log) fprintf(log, "%s\n", start);
                parse_line(start, &pr);
                /* show mismatch reports as they happen, and the target's own complaints */
                if (strstr(start, "==== moefuzz:")) reporting = 1;
                if (reporting || !strncmp(start, "fuzz_moe: ", 10)) printf("%s\n", start);
                if (reporting && !strcmp(start, "====")) reporting = 0;
                start = nl + 1;
            }
            used = strlen(start);
            memmove(line, start, used + 1);
            if (used >= sizeof line - 1) used = 0; /* an overlong line: drop it */
        }
        double now_s = mf_now_s();
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
            reaped = 1;
            kill(-pid, SIGKILL); /* workers that outlive their parent */
        }
        if (!stop_at && (interrupted || (cp->seconds > 0 && now_s - t0 >= cp->seconds))) {
            stopped = interrupted == SIGINT    ? "interrupted (SIGINT)"
                      : interrupted == SIGTERM ? "stopped by SIGTERM"
                      : interrupted            ? "stopped by SIGHUP"
                                               : "stopped at the time limit";
            stop_at = now_s;
            if (!reaped) kill(-pid, SIGINT);
        }
        if (stop_at && !killed && now_s - stop_at >= 5.0) {
            killed = 1;
            kill(-pid, SIGKILL);
        }
        if (now_s - last >= 10.0) {
            mf_fuzz_stats sum;
            int cells = count_cells(stats, &sum);
            char lim[48] = "";
            if (cp->seconds > 0) snprintf(lim, sizeof lim, " of %.0fs", cp->seconds);
            printf(
                "[%6.0fs%s] %s execs %llu (%.0f/s)  cov %llu  ft %llu  corpus %llu  cells %d  "
                "failures %d\n",
                now_s - t0, lim,
                pr.fuzzing ? "fuzzing" : "replaying the corpus:", (unsigned long long)sum.execs,
                (double)sum.execs / (now_s - t0), pr.cov, pr.ft, pr.corp, cells, pr.crashes);
            fflush(stdout);
            last = now_s;
        }
    }
    close(pipefd[0]);
    if (log) fclose(log);
    if (!reaped)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    kill(-pid, SIGKILL); /* nothing of the campaign outlives it */
    double wall = mf_now_s() - t0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 127) {
        fprintf(stderr, "moefuzz fuzz: could not run %s\n", cp->target);
        return MF_EXIT_BAD_INPUT;
    }
    if (code == 77 || code == 2) {
        char why[1024];
        reason_from_log(logp, why, sizeof why);
        if (code == 77) return skipped_no_gpu(why);
        if (pr.execs == 0) {
            fprintf(stderr, "moefuzz fuzz: the target refused to start: %s\n", why);
            return MF_EXIT_BAD_INPUT;
        }
    }
    mf_fuzz_stats sum;
    count_cells(stats, &sum);
    if (sum.contract[0]) {
        char note[160];
        snprintf(note, sizeof note, "checked against contract %s%s", sum.contract,
                 cp->contract ? "" : " (declared by the kernel)");
        mf_fuzz_campaign_write(cp->workdir, &now, note, &err);
    }
    int fresh = summary(cp, &pr, wall, since, stopped);
    if (fresh > 0) return MF_EXIT_MISMATCH;
    /* no finding: a pass only if the target ran to its end (or was stopped by moefuzz) and
     * checked inputs */
    if (!stop_at && code != 0) {
        if (WIFSIGNALED(status))
            fprintf(stderr,
                    "moefuzz fuzz: FAIL: the target died of signal %d without leaving an "
                    "artifact (see %s)\n",
                    WTERMSIG(status), logp);
        else
            fprintf(stderr,
                    "moefuzz fuzz: FAIL: the target exited with %d without leaving an "
                    "artifact (see %s)\n",
                    code, logp);
        return MF_EXIT_BAD_INPUT;
    }
    if (sum.execs == 0 || sum.passes + sum.fails == 0) {
        fprintf(stderr,
                "moefuzz fuzz: FAIL: no input was checked (%llu run, %llu skipped); "
                "nothing was tested (see %s)\n",
                (unsigned long long)sum.execs, (unsigned long long)sum.skips, logp);
        return MF_EXIT_BAD_INPUT;
    }
    return MF_EXIT_PASS;
}

/* fuzz's option table, targets in cp (and the time, kept apart to tell whether it was given) */
static int fuzz_table(campaign *cp, double *time_s, long *seed, mf_opt *t) {
    const mf_opt opts[] = {
        {"--time", NULL, MF_OPT_SECS, time_s, .arg = "D",
         .help = "stop after D (90, 90s, 10m, 8h, 1d; default 60 s), the\n"
                 "replay of the work dir's corpus included; workers get\n"
                 "SIGINT, then SIGKILL 5 s later. Ctrl-C, SIGTERM and SIGHUP\n"
                 "stop it the same way; the summary follows"},
        {"--runs", NULL, MF_OPT_LONG, &cp->runs, .min = 0, .max = LONG_MAX, .arg = "N",
         .help = "stop after N inputs (deterministic with --seed)"},
        {"--seed", NULL, MF_OPT_LONG, seed, .min = 0, .max = UINT_MAX, .arg = "N",
         .help = "libFuzzer seed (0: libFuzzer picks one)"},
        {"--jobs", NULL, MF_OPT_INT, &cp->jobs, .min = 1, .max = 4096, .arg = "N",
         .help = "N worker processes (libFuzzer fork mode, crashes do not\nstop it)"},
        {"--overnight", NULL, MF_OPT_FLAG, &cp->overnight, 1,
         .help = "fork mode over all cores (GPU workers share the device),\n8 h unless --time, "
                 "raised RSS limit, keeps going after\nfailures"},
        {"--keep-going", NULL, MF_OPT_FLAG, &cp->keep_going, 1,
         .help = "fork mode with one worker: continue after a failure"},
        {"--backend", NULL, MF_OPT_STR, &cp->backend, .arg = "NAME",
         .help = "kernel under test (default cpu; MOEFUZZ_BACKEND): cpu,\ncuda (fuzz_moe_cuda of "
                 "the cuda preset), plugin:PATH.so,\nexec:COMMAND (docs/files.md)"},
        {"--method", NULL, MF_OPT_STR, &cp->method, .arg = "NAME",
         .help = "apply a routing method to every case (moefuzz methods)"},
        {"--contract", NULL, MF_OPT_STR, &cp->contract, .arg = "NAME",
         .help = "check against this contract instead of the kernel's own"},
        {"--isolate", NULL, MF_OPT_FLAG, &cp->isolate, 1,
         .help = "run the kernel in a worker process (default for plugins;\na crash or hang "
                 "becomes a reported failure)"},
        {"--no-isolate", NULL, MF_OPT_FLAG, &cp->isolate, 0,
         .help = "run the kernel in the target's process"},
        {"--timeout", NULL, MF_OPT_SECS, &cp->timeout, .arg = "D",
         .help = "limit per kernel call of an isolated or exec backend"},
        {"--model", NULL, MF_OPT_STR, &cp->model, .arg = "NAME",
         .help = "fuzz one model's routing (moefuzz models); tokens and\ndata vary"},
        {"--full", NULL, MF_OPT_FLAG, &cp->full, 1,
         .help = "with --model: the model's full sizes, not its small twin"},
        {"--workdir", NULL, MF_OPT_STR, &cp->workdir, .arg = "DIR",
         .help = "corpus, artifacts, stats, log and campaign.txt (default\nfuzz-out, "
                 "fuzz-out-MODEL with --model)"},
        {"--plain", NULL, MF_OPT_FLAG, &cp->plain, 1,
         .help = "use fuzz_moe_plain: libFuzzer's byte mutation only"},
        {"--target", NULL, MF_OPT_STR, &cp->target_override, .arg = "PATH",
         .help = "the fuzz target binary"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_fuzz(FILE *f) {
    fprintf(f,
            "usage: moefuzz fuzz [options] [-- libFuzzer flags]\n\n"
            "Fuzzes a kernel with the libFuzzer target fuzz_moe against the exact reference.\n"
            "Seeds: corpus/seeds and corpus/regress (text cases, converted), from the first of\n"
            "$MOEFUZZ_SOURCE_DIR, the directory of this binary, the working directory and the\n"
            "source tree that has a corpus/ (the run says which). Failures land in\n"
            "WORKDIR/artifacts; the summary groups them by signature with a replay command.\n"
            "WORKDIR/campaign.txt records the backend, model, method and contract, which\n"
            "`moefuzz repro` and `moefuzz minimize` of its inputs use.\n\n");
    campaign cp;
    double time_s;
    long seed;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, fuzz_table(&cp, &time_s, &seed, t));
    fprintf(f,
            "\nexit: 0 no failure (and inputs were checked), 1 failures found, 2 bad usage or a\n"
            "campaign that checked nothing, 77 no usable GPU for --backend cuda (1 with\n"
            "MOEFUZZ_REQUIRE_GPU=1)\n");
}

int mf_cmd_fuzz(int argc, char **argv) {
    campaign cp;
    memset(&cp, 0, sizeof cp);
    cp.seconds = 60;
    cp.jobs = 1;
    cp.runs = -1;
    cp.isolate = -1;
    double time_s = 0;
    long seed = 0;
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    if (mf_opts_parse_n("fuzz", t, fuzz_table(&cp, &time_s, &seed, t), argc, argv, &args, 0,
                        INT_MAX, "") != 0) {
        free(args.v);
        return MF_EXIT_BAD_INPUT;
    }
    /* the arguments after "--" go to libFuzzer; fuzz takes none of its own */
    int n_own = args.n_before_end < 0 ? args.n : args.n_before_end, bad = n_own > 0;
    if (bad)
        fprintf(stderr,
                "moefuzz fuzz: unexpected argument '%s' (libFuzzer flags go after \"--\"; "
                "moefuzz fuzz --help)\n",
                args.v[0]);
    for (int i = n_own; i < args.n && !bad; i++) {
        bad = cp.n_extra == 32 || strlen(args.v[i]) >= sizeof cp.extra[0];
        if (bad)
            fprintf(stderr,
                    "moefuzz fuzz: at most 32 libFuzzer flags of at most 255 characters, not "
                    "'%.80s'\n",
                    args.v[i]);
        else
            snprintf(cp.extra[cp.n_extra++], sizeof cp.extra[0], "%s", args.v[i]);
    }
    free(args.v);
    if (bad) return MF_EXIT_BAD_INPUT;
    int time_given = time_s > 0;
    if (time_given) cp.seconds = time_s;
    if (cp.runs >= 0) cp.seconds = 0;
    cp.seed = (unsigned)seed;
    if (cp.runs >= 0 && time_given) {
        fprintf(stderr, "moefuzz fuzz: give --time or --runs, not both\n");
        return MF_EXIT_BAD_INPUT;
    }
    /* the names the target's case preparation (mf_fuzz_shape) will take from the environment */
    mf_prep prep;
    mf_prep_default(&prep);
    mf_error err = {0};
    if (mf_prep_set_model(&prep, cp.model, cp.full, &err) != MF_OK ||
        mf_prep_set_method(&prep, cp.method, &err) != MF_OK) {
        fprintf(stderr, "moefuzz fuzz: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    const mf_model *model = prep.model;
    if (cp.full && !model) {
        fprintf(stderr, "moefuzz fuzz: --full needs --model\n");
        return MF_EXIT_BAD_INPUT;
    }
    if (cp.contract && !mf_contract_find(cp.contract)) {
        fprintf(stderr, "moefuzz fuzz: unknown contract '%s'\n", cp.contract);
        return MF_EXIT_BAD_INPUT;
    }
    if (!cp.workdir) {
        /* one corpus per model: another model's corpus would be replayed first */
        if (model)
            snprintf(cp.workdir_buf, sizeof cp.workdir_buf, "fuzz-out-%s%s", model->name,
                     cp.full ? "-full" : "");
        else
            snprintf(cp.workdir_buf, sizeof cp.workdir_buf, "fuzz-out");
        cp.workdir = cp.workdir_buf;
    }
    if (cp.overnight) {
        /* all cores, with --backend cuda too: the exact reference on the CPU is the slow side,
         * and the workers share the GPU (15 workers on one H100: docs/fuzzing.md) */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (cp.jobs == 1) cp.jobs = n > 0 ? (int)n : 1;
        if (!time_given && cp.runs < 0) cp.seconds = 8 * 3600;
    }
    const char *name = cp.plain ? "fuzz_moe_plain" : "fuzz_moe";
    if (cp.backend && !strcmp(cp.backend, "cuda") && !cp.target_override) {
        /* the target with the CUDA backend linked in; fuzz_moe has none */
        if (cp.plain) {
            fprintf(stderr, "moefuzz fuzz: --plain has no CUDA target\n");
            return MF_EXIT_BAD_INPUT;
        }
        if (!find_target("fuzz_moe_cuda", NULL, cp.target, sizeof cp.target)) {
            fprintf(stderr,
                    "moefuzz fuzz: --backend cuda needs fuzz_moe_cuda, which this build does not "
                    "have: build the cuda preset (cmake --preset cuda && cmake --build --preset "
                    "cuda) and run build/cuda/moefuzz\n");
            return MF_EXIT_BAD_INPUT;
        }
        return run_campaign(&cp);
    }
    if (!find_target(name, cp.target_override, cp.target, sizeof cp.target)) {
        no_target("fuzz", name);
        return MF_EXIT_BAD_INPUT;
    }
    return run_campaign(&cp);
}

/* ---- minimize, merge ---- */

static int exec_target(const char *target, char **args) {
    pid_t pid = fork();
    if (pid < 0) return MF_EXIT_BAD_INPUT;
    if (pid == 0) {
        execv(target, args);
        fprintf(stderr, "cannot execute %s: %s\n", target, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs bytes once as `moefuzz repro` does (every relation, no budget); returns the outcome and
 * the first failing stage in stage. */
static mf_fuzz_outcome replay_once(const uint8_t *d, size_t n, char *stage, size_t sn, char *error,
                                   size_t en) {
    mf_fuzz_config cfg;
    mf_fuzz_config_from_env(&cfg, "cpu");
    cfg.stats_dir[0] = '\0';
    mf_fuzz_config_no_budget(&cfg);
    cfg.meta_every = 1;
    mf_fuzz *f = mf_fuzz_new(&cfg);
    mf_fuzz_result *r = malloc(sizeof *r);
    mf_fuzz_outcome o = MF_FUZZ_ERROR;
    snprintf(error, en, "out of memory");
    stage[0] = '\0';
    if (f && r) {
        o = mf_fuzz_one(f, d, n, r);
        const char *s = mf_fuzz_failed_stage(r);
        snprintf(stage, sn, "%s", s ? s : "");
        snprintf(error, en, "%s", r->error);
    }
    free(r);
    mf_fuzz_free(f);
    return o;
}

/* Takes the settings the command line left open from the input's work dir, and says so. */
static void use_campaign(const char *cmd, const char *file) {
    char dir[PATH_MAX];
    mf_fuzz_campaign c;
    mf_error err;
    int used = mf_fuzz_campaign_use(file, &c, dir, sizeof dir, &err);
    if (used < 0) fprintf(stderr, "moefuzz %s: ignored: %s\n", cmd, err.msg);
    if (used <= 0) return;
    printf("# campaign settings from %s/%s: backend %s%s%s%s%s%s%s%s (options override them)\n",
           dir, MF_FUZZ_CAMPAIGN_FILE, c.backend, c.model[0] ? ", model " : "", c.model,
           c.full ? " (full)" : "", c.method[0] ? ", method " : "", c.method,
           c.contract[0] ? ", contract " : "", c.contract);
}

typedef struct minimize_args {
    const char *out, *target, *backend, *model, *method, *contract;
    long runs;
    int raw, full;
} minimize_args;

static int minimize_table(minimize_args *a, mf_opt *t) {
    const mf_opt opts[] = {
        {"-o", NULL, MF_OPT_STR, &a->out, .arg = "OUT",
         .help = "the minimized input (default FILE.min; text if it ends\nin .txt)"},
        {"--runs", NULL, MF_OPT_LONG, &a->runs, .min = 1, .max = LONG_MAX, .arg = "N",
         .help = "libFuzzer tries at most N inputs (default 20000)"},
        {"--backend", NULL, MF_OPT_STR, &a->backend, .arg = "NAME",
         .help = "the kernel (default: the campaign's, else cpu)"},
        {"--model", NULL, MF_OPT_STR, &a->model, .arg = "NAME",
         .help = "the model preset of the campaign (moefuzz models)"},
        {"--full", NULL, MF_OPT_FLAG, &a->full, 1, .help = "with --model: the model's full sizes"},
        {"--method", NULL, MF_OPT_STR, &a->method, .arg = "NAME",
         .help = "the routing method (moefuzz methods)"},
        {"--contract", NULL, MF_OPT_STR, &a->contract, .arg = "NAME",
         .help = "check against this contract instead of the kernel's own"},
        {"--raw", NULL, MF_OPT_FLAG, &a->raw, 1,
         .help = "FILE's bytes are a fuzzer input whatever they look like"},
        {"--target", NULL, MF_OPT_STR, &a->target, .arg = "PATH",
         .help = "the fuzz target binary (default fuzz_moe of this build)"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_minimize(FILE *f) {
    fprintf(f,
            "usage: moefuzz minimize [options] FILE [-o OUT]\n\n"
            "Shrinks a failing input with libFuzzer's crash minimization (-minimize_crash=1),\n"
            "keeping its failure: only inputs that fail at the same first stage count (the\n"
            "metamorphic relations run on every try). The result is replayed once more and\n"
            "written to OUT (default FILE.min) as a canonical binary case, or as a text case\n"
            "when OUT ends in .txt; `moefuzz repro OUT` reads either. FILE is read as repro\n"
            "reads it (--raw: its bytes are a fuzzer input whatever they look like). The\n"
            "backend, model, method and contract come from the work dir's campaign.txt\n"
            "(moefuzz fuzz) unless given.\n\n");
    minimize_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, minimize_table(&a, t));
    fprintf(f,
            "\nexit: 0 minimized, 1 the minimized input lost the failure, 2 bad input (or FILE\n"
            "does not fail)\n");
}

int mf_cmd_minimize(int argc, char **argv) {
    minimize_args a = {.runs = 20000};
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list pos;
    int parsed = mf_opts_parse_n("minimize", t, minimize_table(&a, t), argc, argv, &pos, 1, 1,
                                 "one failing input") == 0;
    const char *file = parsed ? pos.v[0] : NULL;
    free(pos.v);
    if (!parsed) return MF_EXIT_BAD_INPUT;
    const char *out = a.out, *target = a.target;
    const char *backend = a.backend, *model = a.model, *method = a.method, *contract = a.contract;
    long runs = a.runs;
    int raw = a.raw, full = a.full;
    if (model && !mf_model_find(model)) {
        fprintf(stderr, "moefuzz minimize: unknown model '%s' (moefuzz models)\n", model);
        return MF_EXIT_BAD_INPUT;
    }
    char path[PATH_MAX];
    if (!find_target("fuzz_moe", target, path, sizeof path)) {
        no_target("minimize", "fuzz_moe");
        return MF_EXIT_BAD_INPUT;
    }
    if (backend) setenv("MOEFUZZ_BACKEND", backend, 1);
    if (model) setenv("MOEFUZZ_MODEL", model, 1);
    if (full) setenv("MOEFUZZ_FULL", "1", 1);
    if (method) setenv("MOEFUZZ_METHOD", method, 1);
    if (contract) setenv("MOEFUZZ_CONTRACT", contract, 1);
    use_campaign("minimize", file);
    setenv("MOEFUZZ_META_EVERY", "1", 1); /* a metamorphic failure stays visible */
    mf_error err = {0};
    mf_fuzz_input in;
    if (mf_fuzz_input_load(file, raw, &in, &err) != MF_OK) {
        fprintf(stderr, "moefuzz minimize: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    char stage[64], error[1024];
    mf_fuzz_outcome o = replay_once(in.bytes, in.len, stage, sizeof stage, error, sizeof error);
    if (o != MF_FUZZ_FAIL && !(o == MF_FUZZ_ERROR && strncmp(error, "backend ", 8))) {
        fprintf(stderr, "moefuzz minimize: %s does not fail here (%s): nothing to minimize\n", file,
                o == MF_FUZZ_PASS   ? "it passes"
                : o == MF_FUZZ_SKIP ? "skipped"
                                    : error);
        mf_fuzz_input_free(&in);
        return MF_EXIT_BAD_INPUT;
    }
    char outbuf[PATH_MAX], start[PATH_MAX + 16], result[PATH_MAX + 16];
    if (!out) {
        snprintf(outbuf, sizeof outbuf, "%s.min", file);
        out = outbuf;
    }
    /* libFuzzer minimizes the bytes the target runs: a text case's encoding, not its text */
    snprintf(start, sizeof start, "%s.start", out);
    snprintf(result, sizeof result, "%s.raw", out);
    FILE *sf = fopen(start, "wb");
    int wrote = sf && fwrite(in.bytes, 1, in.len, sf) == in.len;
    if (sf) wrote &= fclose(sf) == 0;
    mf_fuzz_input_free(&in);
    if (!wrote) {
        fprintf(stderr, "moefuzz minimize: cannot write %s\n", start);
        return MF_EXIT_BAD_INPUT;
    }
    printf("minimizing %s: fails at stage %s; only inputs failing there are kept\n", file, stage);
    fflush(stdout);
    setenv("MOEFUZZ_TRAP_STAGE", stage, 1);
    char a1[64], a2[PATH_MAX + 64];
    snprintf(a1, sizeof a1, "-runs=%ld", runs);
    snprintf(a2, sizeof a2, "-exact_artifact_path=%s", result);
    char *args[] = {path, "-minimize_crash=1", "-error_exitcode=1", a1, a2, start, NULL};
    unlink(result);
    int rc = exec_target(path, args);
    unlink(start);
    uint8_t *d;
    size_t n;
    if (mf_read_file(result, &d, &n, 1u << 20, &err) != MF_OK) {
        fprintf(stderr, "moefuzz minimize: libFuzzer wrote no minimized input (exit %d)\n", rc);
        return MF_EXIT_BAD_INPUT;
    }
    unlink(result);
    /* the result as the case it decodes to, checked once more before it is kept */
    mf_case c;
    mf_case_decode(d, n, &c, NULL);
    free(d);
    uint8_t buf[MF_CASE_MAX_BYTES];
    size_t len = mf_case_encode(&c, 1, buf, sizeof buf);
    char stage2[64];
    o = replay_once(buf, len, stage2, sizeof stage2, error, sizeof error);
    if (len == 0 || strcmp(stage, stage2)) {
        fprintf(stderr, "moefuzz minimize: FAIL: the minimized input %s at stage %s\n",
                o == MF_FUZZ_PASS ? "passes" : "fails elsewhere than", stage);
        return MF_EXIT_MISMATCH;
    }
    size_t ol = strlen(out);
    int text = ol > 4 && !strcmp(out + ol - 4, ".txt");
    FILE *f = fopen(out, text ? "w" : "wb");
    int ok = f != NULL;
    if (f && text) {
        fprintf(f, "# minimized from %s; fails at stage %s\n", file, stage);
        mf_case_print_text(&c, f);
    } else if (f) {
        ok = fwrite(buf, 1, len, f) == len;
    }
    if (f) ok &= fclose(f) == 0;
    if (!ok) {
        fprintf(stderr, "moefuzz minimize: cannot write %s\n", out);
        return MF_EXIT_BAD_INPUT;
    }
    char q[PATH_MAX + 64];
    mf_shell_quote(out, q, sizeof q);
    printf("minimized input: %s (%zu bytes, %s), still fails at stage %s: moefuzz repro %s\n", out,
           len, text ? "text case" : "canonical binary case", stage, q);
    return MF_EXIT_PASS;
}

void mf_help_merge(FILE *f) {
    fprintf(f,
            "usage: moefuzz merge OUT_DIR IN_DIR... [-- libFuzzer flags]\n\n"
            "Merges corpora with libFuzzer's -merge=1: OUT_DIR receives the inputs of the\n"
            "IN_DIRs that add coverage (features, configuration cells, utilisation buckets).\n"
            "It takes no options; arguments after \"--\" go to libFuzzer.\n\n"
            "exit: 0 merged, 2 bad input or a libFuzzer error\n");
}

int mf_cmd_merge(int argc, char **argv) {
    mf_opt_list args;
    if (mf_opts_parse_n("merge", NULL, 0, argc, argv, &args, 2, 61,
                        "OUT_DIR and at least one IN_DIR (at most 60 in all)") != 0) {
        free(args.v);
        return MF_EXIT_BAD_INPUT;
    }
    char path[PATH_MAX];
    int rc = MF_EXIT_BAD_INPUT;
    if (!find_target("fuzz_moe", NULL, path, sizeof path)) {
        no_target("merge", "fuzz_moe");
    } else if (mkdirs(args.v[0]) != 0) {
        fprintf(stderr, "moefuzz merge: cannot create %s\n", args.v[0]);
    } else {
        char *targs[64];
        int a = 0;
        targs[a++] = path;
        targs[a++] = "-merge=1";
        for (int i = 0; i < args.n; i++) targs[a++] = (char *)args.v[i];
        targs[a] = NULL;
        rc = exec_target(path, targs) == 0 ? MF_EXIT_PASS : MF_EXIT_BAD_INPUT;
    }
    free(args.v);
    return rc;
}

void mf_help_models(FILE *f) {
    fprintf(f,
            "usage: moefuzz models\n\n"
            "Lists the model presets for --model (check, fuzz): routing, full sizes, the small\n"
            "twin's sizes, and what case format v1 cannot yet express for some models.\n");
}

int mf_cmd_models(int argc, char **argv) {
    mf_opt_list args;
    int ok = mf_opts_parse_n("models", NULL, 0, argc, argv, &args, 0, 0, "") == 0;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    mf_models_print(stdout);
    return MF_EXIT_PASS;
}
