/* paths.h: case files named on a command line or a replay's arguments: files as given,
 * directories expanded recursively in sorted order. */
#ifndef MF_PATHS_H
#define MF_PATHS_H

#include "mf_base.h"

typedef struct mf_path_list {
    char **paths;
    int n, cap;
} mf_path_list;

/* Appends `path`, or every file under it when it is a directory (recursively, sorted; names
 * starting with '.', and README and *.md files, are left out). */
mf_status mf_paths_collect(const char *path, mf_path_list *l, mf_error *err);
void mf_paths_free(mf_path_list *l);

#endif /* MF_PATHS_H */
