/* paths.c: case files named on a command line (see paths.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paths.h"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static mf_status push_path(mf_path_list *l, const char *p, mf_error *err) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **np = realloc(l->paths, sizeof(char *) * (size_t)cap);
        if (!np) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        l->paths = np;
        l->cap = cap;
    }
    l->paths[l->n] = strdup(p);
    if (!l->paths[l->n]) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    l->n++;
    return MF_OK;
}

mf_status mf_paths_collect(const char *path, mf_path_list *l, mf_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return MF_FAIL(err, MF_EIO, "cannot access %s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return push_path(l, path, err);
    DIR *d = opendir(path);
    if (!d) return MF_FAIL(err, MF_EIO, "cannot open directory %s: %s", path, strerror(errno));
    size_t plen = strlen(path);
    while (plen > 1 && path[plen - 1] == '/') plen--; /* "cases/" joins as "cases/x" */
    mf_path_list sub = {0};
    struct dirent *de;
    mf_status st = MF_OK;
    while ((de = readdir(d)) != NULL && st == MF_OK) {
        if (de->d_name[0] == '.') continue;
        if (strstr(de->d_name, ".md") || strstr(de->d_name, "README")) continue;
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s/%s", (int)plen, path, de->d_name);
        st = push_path(&sub, buf, err);
    }
    closedir(d);
    if (st == MF_OK && sub.n > 1) qsort(sub.paths, (size_t)sub.n, sizeof(char *), cmp_str);
    for (int i = 0; i < sub.n && st == MF_OK; i++) st = mf_paths_collect(sub.paths[i], l, err);
    mf_paths_free(&sub);
    return st;
}

void mf_paths_free(mf_path_list *l) {
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}
