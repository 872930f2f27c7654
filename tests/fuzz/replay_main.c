/*
 * A main() for the fuzz targets in builds without libFuzzer: runs the target once on
 * every file named, or on every file in every directory named, so the seed corpus and
 * the regression inputs run as a plain test under any compiler. Like libFuzzer, it
 * calls the target's LLVMFuzzerInitialize first.
 */
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_MAX_INPUT (1 << 20)

static int run_file(const char *path)
{
    static uint8_t buf[REPLAY_MAX_INPUT];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

static int run_dir(const char *path, int *count)
{
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort), ret = 0;

    if (n < 0) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char file[4096];
        struct stat st;

        snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
            ret |= run_file(file);
            (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

int main(int argc, char **argv)
{
    int count = 0, ret = 0;

    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            ret |= run_dir(argv[i], &count);
        } else {
            ret |= run_file(argv[i]);
            count++;
        }
    }
    printf("replay: %d inputs ran\n", count);
    return ret || count == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
