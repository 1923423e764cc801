/* cmd_fuzz.c: `moefuzz fuzz`, `moefuzz minimize`, `moefuzz merge`, `moefuzz models`.
 *
 * `fuzz` runs the libFuzzer target fuzz_moe (built next to this binary by the fuzz preset) with
 * good flags, prints a progress line while it runs, and ends with a summary: execs, execs/s,
 * configuration cells covered, highest utilisation, and failures grouped by signature, each with
 * an artifact and the command that replays it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "tool.h"

/* ---- locating the fuzz targets ---- */

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

/* ---- seeds: text cases -> binary inputs in the working corpus ---- */

static int seed_corpus(const char *src_dir, const char *dst_dir, const char *prefix) {
    mf_path_list l = {0};
    mf_error err;
    if (mf_paths_collect(src_dir, &l, &err) != MF_OK) return 0;
    int n = 0;
    for (int i = 0; i < l.n; i++) {
        mf_case c;
        if (mf_case_load(l.paths[i], 1, &c, NULL, &err) != MF_OK) continue;
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
    const char *target_override, *backend, *model, *workdir, *method;
    double seconds, timeout; /* timeout: per kernel call of an isolated or exec backend */
    int isolate;             /* -1 default, 0, 1 (MOEFUZZ_ISOLATE) */
    int jobs, overnight, full, plain, keep_going;
    long runs;
    unsigned seed;
    char target[PATH_MAX];
    char extra[32][256];
    int n_extra;
} campaign;

typedef struct progress {
    unsigned long long execs, cov, ft, corp;
    double exec_s;
    int crashes;
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
        if (q) pr->crashes = atoi(q + 1);
    }
    if (strstr(line, "==== moefuzz: MISMATCH") || strstr(line, "deadly signal")) pr->crashes++;
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
        if (fread(&s, sizeof s, 1, f) == 1 && s.magic == MF_FUZZ_STATS_MAGIC) {
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
            for (int b = 0; b < MF_FUZZ_UTIL_BUCKETS; b++) sum->cases_by_bucket[b] += s.cases_by_bucket[b];
            sum->meta_runs += s.meta_runs;
            sum->meta_violations += s.meta_violations;
            sum->observed_cases += s.observed_cases;
            for (int k = 0; k < MF_FUZZ_KNOBS; k++) sum->observable[k] += s.observable[k];
            for (int c = 0; c < MF_FUZZ_CELLS; c++) sum->cells[c] |= s.cells[c];
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
        if (o == MF_FUZZ_PASS) snprintf(sig, n, "does not reproduce in this process (crash/timeout?)");
        else if (o == MF_FUZZ_SKIP) snprintf(sig, n, "skipped on replay (budget or unsupported)");
        else if (o == MF_FUZZ_ERROR) snprintf(sig, n, "backend error: %.120s", r->error);
        else {
            int first = -1;
            for (int s = 0; s < MF_STAGE_COUNT && first < 0; s++)
                if (r->v.n_bad[s]) first = s;
            const char *stage = first >= 0 ? mf_stage_name((mf_stage)first)
                                           : r->v.meta.n_violated ? "metamorphic" : "?";
            if (r->v.has_attribution && r->v.attr.n_match == 1)
                snprintf(sig, n, "stage %s; suspected %s (%s)", stage,
                         mf_knob_name(r->v.attr.match[0]), mf_knob_summary(r->v.attr.match[0]));
            else if (r->v.has_attribution && r->v.attr.n_match > 1)
                snprintf(sig, n, "stage %s; suspected one of %d knobs, first %s", stage,
                         r->v.attr.n_match, mf_knob_name(r->v.attr.match[0]));
            else
                snprintf(sig, n, "stage %s; no single knob explains it", stage);
        }
    }
    free(r);
    mf_fuzz_free(f);
    free(d);
}

static void summary(const campaign *cp, const progress *pr, double wall) {
    char stats_dir[PATH_MAX], art_dir[PATH_MAX];
    snprintf(stats_dir, sizeof stats_dir, "%s/stats", cp->workdir);
    snprintf(art_dir, sizeof art_dir, "%s/artifacts", cp->workdir);
    mf_fuzz_stats sum;
    int cells = count_cells(stats_dir, &sum);
    unsigned long long execs = sum.execs > pr->execs ? sum.execs : pr->execs;
    printf("\n==== moefuzz fuzz summary (%s backend%s%s, %.0f s, %d job%s) ====\n",
           cp->backend ? cp->backend : "cpu", cp->model ? ", model " : "",
           cp->model ? cp->model : "", wall, cp->jobs, cp->jobs == 1 ? "" : "s");
    printf("execs            %llu (%.1f/s), of which %llu passed, %llu skipped (budget or "
           "unsupported)\n",
           execs, wall > 0 ? (double)execs / wall : 0.0, (unsigned long long)sum.passes,
           (unsigned long long)sum.skips);
    printf("coverage         %llu edges, %llu features, corpus %llu inputs\n", pr->cov, pr->ft,
           pr->corp);
    printf("config cells     %d of %d reached\n", cells, MF_FUZZ_CELLS);
    printf("utilisation      highest %.3g (%.3g where the radius is below |z|/2); cases by "
           "bucket:",
           sum.max_util, sum.max_util_informative);
    static const char *bl[] = {"0", "<1/64", "<1/32", "<1/16", "<1/8", "<1/4", "<1/2", "<=1", ">1"};
    for (int b = 0; b < MF_FUZZ_UTIL_BUCKETS; b++)
        printf(" %s:%llu", bl[b], (unsigned long long)sum.cases_by_bucket[b]);
    printf("\n");
    printf("metamorphic      %llu inputs ran the relations, %llu violated one\n",
           (unsigned long long)sum.meta_runs, (unsigned long long)sum.meta_violations);
    printf("observability    of %llu cases examined, how many could catch each knob's loss:\n",
           (unsigned long long)sum.observed_cases);
    for (int k = 0; k < MF_FUZZ_KNOBS; k++)
        printf("  %-20s %8llu  %s\n", mf_knob_name((mf_knob)k),
               (unsigned long long)sum.observable[k], mf_knob_summary((mf_knob)k));
    /* failures */
    failure_group groups[32];
    int ng = 0, nfail = 0;
    DIR *d = opendir(art_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[PATH_MAX + 256], sig[200];
        snprintf(path, sizeof path, "%s/%s", art_dir, de->d_name);
        nfail++;
        if (!strncmp(de->d_name, "crash-", 6)) signature_of(path, cp, sig, sizeof sig);
        else if (!strncmp(de->d_name, "timeout-", 8)) snprintf(sig, sizeof sig, "timeout");
        else if (!strncmp(de->d_name, "oom-", 4)) snprintf(sig, sizeof sig, "out of memory");
        else if (!strncmp(de->d_name, "leak-", 5)) snprintf(sig, sizeof sig, "memory leak");
        else snprintf(sig, sizeof sig, "artifact");
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
        printf("failures         %d artifacts in %s, %d signatures:\n", nfail, art_dir, ng);
        for (int g = 0; g < ng; g++) {
            printf("  [%d] %s\n      e.g. %s\n      replay: moefuzz repro%s%s%s%s%s%s%s %s\n",
                   groups[g].count, groups[g].signature, groups[g].example,
                   cp->backend ? " --backend '" : "", cp->backend ? cp->backend : "",
                   cp->backend ? "'" : "", cp->model ? " --model " : "",
                   cp->model ? cp->model : "", cp->method ? " --method " : "",
                   cp->method ? cp->method : "", groups[g].example);
        }
    }
}

static int count_artifacts(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d))) n += de->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int s) {
    (void)s;
    interrupted = 1;
}

static int run_campaign(campaign *cp) {
    char corpus[PATH_MAX], art[PATH_MAX], stats[PATH_MAX], logp[PATH_MAX];
    snprintf(corpus, sizeof corpus, "%s/corpus", cp->workdir);
    snprintf(art, sizeof art, "%s/artifacts/", cp->workdir);
    snprintf(stats, sizeof stats, "%s/stats", cp->workdir);
    snprintf(logp, sizeof logp, "%s/fuzz.log", cp->workdir);
    if (mkdirs(corpus) || mkdirs(art) || mkdirs(stats)) {
        fprintf(stderr, "moefuzz fuzz: cannot create %s\n", cp->workdir);
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
    int artifacts_before = count_artifacts(art);
    char src[PATH_MAX];
    self_dir(src, sizeof src);
    const char *root = getenv("MOEFUZZ_SOURCE_DIR");
    char seeds[PATH_MAX], regress[PATH_MAX];
    snprintf(seeds, sizeof seeds, "%s/corpus/seeds", root ? root : MF_SOURCE_DIR);
    snprintf(regress, sizeof regress, "%s/corpus/regress", root ? root : MF_SOURCE_DIR);
    int ns = seed_corpus(seeds, corpus, "seed-") + seed_corpus(regress, corpus, "regress-");
    char dict[PATH_MAX];
    snprintf(dict, sizeof dict, "%s/fuzz/moe.dict", root ? root : MF_SOURCE_DIR);

    char *argv[64];
    char buf[24][PATH_MAX + 64];
    int a = 0, b = 0;
    argv[a++] = cp->target;
    argv[a++] = corpus;
#define FLAG(...) (snprintf(buf[b], sizeof buf[b], __VA_ARGS__), argv[a++] = buf[b++])
    FLAG("-artifact_prefix=%s", art);
    if (access(dict, R_OK) == 0) FLAG("-dict=%s", dict);
    FLAG("-max_len=%d", 512);
    /* libFuzzer's own limit stays above the per-call limit of a kernel in another process,
     * whose timeout is reported with the case */
    int external = cp->timeout > 0 || cp->isolate == 1 ||
                   (cp->backend && (!strncmp(cp->backend, "plugin:", 7) ||
                                    !strncmp(cp->backend, "exec:", 5)));
    double call_s = cp->timeout > 0 ? cp->timeout : MF_BACKEND_TIMEOUT_S;
    FLAG("-timeout=%d", external && call_s * 3 + 30 > 60 ? (int)(call_s * 3 + 30) : 60);
    FLAG("-rss_limit_mb=%d", cp->overnight ? 16384 : 8192);
    FLAG("-print_final_stats=1");
    /* libFuzzer's default crash exit code is 77, which moefuzz keeps for "no GPU" */
    FLAG("-error_exitcode=1");
    FLAG("-timeout_exitcode=1");
    if (cp->seconds > 0) FLAG("-max_total_time=%d", (int)cp->seconds);
    if (cp->runs >= 0) FLAG("-runs=%ld", cp->runs);
    if (cp->seed) FLAG("-seed=%u", cp->seed);
    if (cp->jobs > 1 || cp->overnight || cp->keep_going) {
        FLAG("-fork=%d", cp->jobs);
        FLAG("-ignore_crashes=1");
    }
#undef FLAG
    for (int i = 0; i < cp->n_extra && a < 62; i++) argv[a++] = cp->extra[i];
    argv[a] = NULL;

    printf("moefuzz fuzz: %s on %s, %d job%s, %s; %d seed inputs; work dir %s\n", cp->target,
           cp->backend ? cp->backend : "cpu", cp->jobs, cp->jobs == 1 ? "" : "s",
           cp->runs >= 0 ? "fixed run count" : "timed", ns, cp->workdir);
    fflush(stdout);
    int pipefd[2];
    if (pipe(pipefd) != 0) return MF_EXIT_BAD_INPUT;
    setenv("MOEFUZZ_STATS", stats, 1);
    if (cp->backend) setenv("MOEFUZZ_BACKEND", cp->backend, 1);
    if (cp->model) setenv("MOEFUZZ_MODEL", cp->model, 1);
    if (cp->full) setenv("MOEFUZZ_FULL", "1", 1);
    if (cp->method) setenv("MOEFUZZ_METHOD", cp->method, 1);
    if (cp->isolate >= 0) setenv("MOEFUZZ_ISOLATE", cp->isolate ? "1" : "0", 1);
    if (cp->timeout > 0) {
        char t[32];
        snprintf(t, sizeof t, "%g", cp->timeout);
        setenv("MOEFUZZ_TIMEOUT", t, 1);
    }
    double t0 = mf_now_s();
    pid_t pid = fork();
    if (pid < 0) return MF_EXIT_BAD_INPUT;
    if (pid == 0) {
        dup2(pipefd[1], 2);
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(cp->target, argv);
        fprintf(stderr, "cannot execute %s: %s\n", cp->target, strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    signal(SIGINT, on_sigint);
    FILE *log = fopen(logp, "w");
    progress pr = {0};
    double last = t0;
    int reporting = 0;
    /* read the target's output line by line, and print progress every 10 s even when the
     * target is quiet (libFuzzer prints status lines only on new coverage and at powers of 2) */
    char line[4096];
    size_t used = 0;
    for (;;) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(pipefd[0], &rd);
        struct timeval tv = {1, 0};
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
                /* show mismatch reports as they happen */
                if (strstr(start, "==== moefuzz:")) reporting = 1;
                if (reporting) printf("%s\n", start);
                if (reporting && !strcmp(start, "====")) reporting = 0;
                start = nl + 1;
            }
            used = strlen(start);
            memmove(line, start, used + 1);
            if (used >= sizeof line - 1) used = 0; /* an overlong line: drop it */
        }
        double now = mf_now_s();
        if (now - last >= 10.0) {
            mf_fuzz_stats sum;
            int cells = count_cells(stats, &sum);
            unsigned long long ex = sum.execs > pr.execs ? sum.execs : pr.execs;
            printf("[%6.0fs] execs %llu (%.0f/s)  cov %llu  ft %llu  corpus %llu  cells %d  "
                   "failures %d\n",
                   now - t0, ex, (double)ex / (now - t0), pr.cov, pr.ft, pr.corp, cells,
                   pr.crashes);
            fflush(stdout);
            last = now;
        }
        if (interrupted) kill(pid, SIGINT);
    }
    close(pipefd[0]);
    if (log) fclose(log);
    int status = 0;
    waitpid(pid, &status, 0);
    double wall = mf_now_s() - t0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        fprintf(stderr, "moefuzz fuzz: could not run %s\n", cp->target);
        return MF_EXIT_BAD_INPUT;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && pr.execs == 0) {
        fprintf(stderr, "moefuzz fuzz: the target refused to start (see %s)\n", logp);
        return MF_EXIT_BAD_INPUT;
    }
    summary(cp, &pr, wall);
    mf_fuzz_stats sum;
    count_cells(stats, &sum);
    int fresh = count_artifacts(art) - artifacts_before;
    if (fresh > 0) return MF_EXIT_MISMATCH;
    /* no finding: a pass only if the target ran to its end and checked inputs */
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0 && !(interrupted && (code == 72 || WIFSIGNALED(status)))) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "moefuzz fuzz: FAIL: the target died of signal %d without leaving an "
                            "artifact (see %s)\n", WTERMSIG(status), logp);
        else
            fprintf(stderr, "moefuzz fuzz: FAIL: the target exited with %d without leaving an "
                            "artifact (see %s)\n", code, logp);
        return MF_EXIT_BAD_INPUT;
    }
    if (sum.execs == 0 || sum.passes + sum.fails == 0) {
        fprintf(stderr, "moefuzz fuzz: FAIL: no input was checked (%llu run, %llu skipped); "
                        "nothing was tested (see %s)\n",
                (unsigned long long)sum.execs, (unsigned long long)sum.skips, logp);
        return MF_EXIT_BAD_INPUT;
    }
    return MF_EXIT_PASS;
}

void mf_help_fuzz(FILE *f) {
    fprintf(f,
            "usage: moefuzz fuzz [options] [-- libFuzzer flags]\n\n"
            "Fuzzes a kernel with the libFuzzer target fuzz_moe against the exact reference.\n"
            "Seeds: corpus/seeds and corpus/regress (text cases, converted). Failures land in\n"
            "WORKDIR/artifacts; the summary groups them by signature with a replay command.\n\n"
            "options:\n"
            "  --time S          stop after S seconds (default 60)\n"
            "  --runs N          stop after N inputs (deterministic with --seed)\n"
            "  --seed N          libFuzzer seed\n"
            "  --jobs N          N worker processes (libFuzzer fork mode, crashes do not stop it)\n"
            "  --overnight       fork mode over all cores (GPU workers share the device), 8 h\n"
            "                    unless --time, raised RSS limit, keeps going after failures\n"
            "  --keep-going      fork mode with one worker: continue after a failure\n"
            "  --backend NAME    kernel under test (default cpu; MOEFUZZ_BACKEND): cpu,\n"
            "                    plugin:PATH.so, exec:COMMAND (docs/files.md)\n"
            "  --method NAME     apply a routing method to every case (moefuzz methods)\n"
            "  --isolate         run the kernel in a worker process (default for plugins; a\n"
            "                    crash or hang becomes a reported failure); --no-isolate\n"
            "  --timeout S       limit per kernel call of an isolated or exec backend\n"
            "  --model NAME      fuzz one model's routing (moefuzz models); tokens and data vary\n"
            "  --full            with --model: the model's full sizes, not its small twin\n"
            "  --workdir DIR     corpus, artifacts, stats and log (default fuzz-out)\n"
            "  --plain           use fuzz_moe_plain: libFuzzer's byte mutation only\n"
            "  --target PATH     the fuzz target binary\n\n"
            "exit: 0 no failure, 1 failures found, 2 bad usage\n");
}

int mf_cmd_fuzz(int argc, char **argv) {
    campaign cp;
    memset(&cp, 0, sizeof cp);
    cp.seconds = 60;
    cp.jobs = 1;
    cp.runs = -1;
    cp.workdir = "fuzz-out";
    cp.isolate = -1;
    int time_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(o, "--")) {
            for (i++; i < argc && cp.n_extra < 32; i++)
                snprintf(cp.extra[cp.n_extra++], sizeof cp.extra[0], "%s", argv[i]);
            break;
        } else if (!strcmp(o, "--time") && more) cp.seconds = atof(argv[++i]), time_given = 1;
        else if (!strcmp(o, "--runs") && more) cp.runs = atol(argv[++i]), cp.seconds = 0;
        else if (!strcmp(o, "--seed") && more) cp.seed = (unsigned)atol(argv[++i]);
        else if (!strcmp(o, "--jobs") && more) cp.jobs = atoi(argv[++i]);
        else if (!strcmp(o, "--overnight")) cp.overnight = 1;
        else if (!strcmp(o, "--keep-going")) cp.keep_going = 1;
        else if (!strcmp(o, "--backend") && more) cp.backend = argv[++i];
        else if (!strcmp(o, "--method") && more) cp.method = argv[++i];
        else if (!strcmp(o, "--isolate")) cp.isolate = 1;
        else if (!strcmp(o, "--no-isolate")) cp.isolate = 0;
        else if (!strcmp(o, "--timeout") && more && atof(argv[i + 1]) > 0)
            cp.timeout = atof(argv[++i]);
        else if (!strcmp(o, "--model") && more) cp.model = argv[++i];
        else if (!strcmp(o, "--full")) cp.full = 1;
        else if (!strcmp(o, "--workdir") && more) cp.workdir = argv[++i];
        else if (!strcmp(o, "--plain")) cp.plain = 1;
        else if (!strcmp(o, "--target") && more) cp.target_override = argv[++i];
        else {
            fprintf(stderr, "moefuzz fuzz: unknown or incomplete option '%s'\n", o);
            return MF_EXIT_BAD_INPUT;
        }
    }
    if (cp.model && !mf_model_find(cp.model)) {
        fprintf(stderr, "moefuzz fuzz: unknown model '%s' (moefuzz models)\n", cp.model);
        return MF_EXIT_BAD_INPUT;
    }
    if (cp.model && mf_model_find(cp.model)->unsupported) {
        fprintf(stderr, "moefuzz fuzz: model %s needs %s, not in case format v1\n", cp.model,
                mf_model_find(cp.model)->unsupported);
        return MF_EXIT_BAD_INPUT;
    }
    if (cp.method && !mf_method_find(cp.method)) {
        fprintf(stderr, "moefuzz fuzz: unknown routing method '%s' (moefuzz methods)\n",
                cp.method);
        return MF_EXIT_BAD_INPUT;
    }
    if (cp.jobs < 1) cp.jobs = 1;
    if (cp.overnight) {
        /* all cores, with --backend cuda too: the exact reference on the CPU is the slow side,
         * and the workers share the GPU (15 workers on one H100: docs/fuzzing.md) */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (cp.jobs == 1) cp.jobs = n > 0 ? (int)n : 1;
        if (!time_given) cp.seconds = 8 * 3600;
    }
    const char *name = cp.plain ? "fuzz_moe_plain" : "fuzz_moe";
    /* --backend cuda: the target with the CUDA backend linked in, where it was built */
    if (!cp.plain && !cp.target_override && cp.backend && !strcmp(cp.backend, "cuda") &&
        find_target("fuzz_moe_cuda", NULL, cp.target, sizeof cp.target))
        name = "fuzz_moe_cuda";
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
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void mf_help_minimize(FILE *f) {
    fprintf(f, "usage: moefuzz minimize [--runs N] [--backend NAME] [--model NAME] FILE [-o OUT]\n\n"
               "Shrinks a failing input with libFuzzer's crash minimization (-minimize_crash=1)\n"
               "and writes the smallest input that still fails to OUT (default FILE.min).\n");
}

int mf_cmd_minimize(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *target = NULL;
    long runs = 20000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) setenv("MOEFUZZ_BACKEND", argv[++i], 1);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) setenv("MOEFUZZ_MODEL", argv[++i], 1);
        else if (!strcmp(argv[i], "--target") && i + 1 < argc) target = argv[++i];
        else if (!file && argv[i][0] != '-') file = argv[i];
        else {
            fprintf(stderr, "moefuzz minimize: unexpected '%s'\n", argv[i]);
            return MF_EXIT_BAD_INPUT;
        }
    }
    if (!file || access(file, R_OK) != 0) {
        fprintf(stderr, "moefuzz minimize: give a readable failing input\n");
        return MF_EXIT_BAD_INPUT;
    }
    char path[PATH_MAX], outbuf[PATH_MAX], a1[64], a2[PATH_MAX + 32];
    if (!find_target("fuzz_moe", target, path, sizeof path)) {
        no_target("minimize", "fuzz_moe");
        return MF_EXIT_BAD_INPUT;
    }
    if (!out) {
        snprintf(outbuf, sizeof outbuf, "%s.min", file);
        out = outbuf;
    }
    snprintf(a1, sizeof a1, "-runs=%ld", runs);
    snprintf(a2, sizeof a2, "-exact_artifact_path=%s", out);
    char *args[] = {path, "-minimize_crash=1", a1, a2, (char *)file, NULL};
    int rc = exec_target(path, args);
    if (access(out, R_OK) != 0) {
        fprintf(stderr, "moefuzz minimize: no minimized input written (exit %d); does %s fail?\n",
                rc, file);
        return MF_EXIT_BAD_INPUT;
    }
    printf("minimized input: %s (moefuzz repro %s)\n", out, out);
    return MF_EXIT_PASS;
}

void mf_help_merge(FILE *f) {
    fprintf(f, "usage: moefuzz merge OUT_DIR IN_DIR...\n\n"
               "Merges corpora with libFuzzer's -merge=1: OUT_DIR receives the inputs of the\n"
               "IN_DIRs that add coverage (features, configuration cells, utilisation buckets).\n");
}

int mf_cmd_merge(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "moefuzz merge: give OUT_DIR and at least one IN_DIR\n");
        return MF_EXIT_BAD_INPUT;
    }
    char path[PATH_MAX];
    if (!find_target("fuzz_moe", NULL, path, sizeof path)) {
        no_target("merge", "fuzz_moe");
        return MF_EXIT_BAD_INPUT;
    }
    if (mkdirs(argv[1]) != 0) {
        fprintf(stderr, "moefuzz merge: cannot create %s\n", argv[1]);
        return MF_EXIT_BAD_INPUT;
    }
    char *args[64];
    int a = 0;
    args[a++] = path;
    args[a++] = "-merge=1";
    for (int i = 1; i < argc && a < 62; i++) args[a++] = argv[i];
    args[a] = NULL;
    int rc = exec_target(path, args);
    return rc == 0 ? MF_EXIT_PASS : MF_EXIT_BAD_INPUT;
}

void mf_help_models(FILE *f) {
    fprintf(f, "usage: moefuzz models\n\n"
               "Lists the model presets for --model (check, fuzz): routing, full sizes, the small\n"
               "twin's sizes, and what case format v1 cannot yet express for some models.\n");
}

int mf_cmd_models(int argc, char **argv) {
    (void)argc, (void)argv;
    mf_models_print(stdout);
    return MF_EXIT_PASS;
}
