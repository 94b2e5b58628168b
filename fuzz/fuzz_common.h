/* fuzz_common.h — what every fuzz target shares: the libFuzzer entry points, a scratch folder
 * per process and small file helpers.
 *
 * graft's API reads paths, not buffers, so each input is written to a file first. The files
 * live in one folder per process, made with mkdtemp under $GRAFT_FUZZ_TMP, else /dev/shm (a
 * RAM disk: no disk traffic at thousands of writes a second), else $TMPDIR or /tmp, and they
 * are reused from one input to the next; the folder is removed at exit. A process stopped by a
 * sanitizer skips atexit, so its folder is named with its pid ("graft-fuzz-<pid>-XXXXXX") and the
 * next target to start removes the folders of processes that are gone. */
#ifndef GRAFT_FUZZ_COMMON_H
#define GRAFT_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points (the replay driver calls them the same way). fuzz_common.c defines
 * LLVMFuzzerInitialize for every target; each target defines LLVMFuzzerTestOneInput. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The scratch folder (made on first use), or NULL when none can be made. */
const char *fz_dir(void);

/* <scratch>/<name> into path[n]; 0 on success, -1 when there is no scratch folder or the name
 * does not fit. */
int fz_path(const char *name, char *path, size_t n);

/* Writes data to <scratch>/<name> (replacing it) and returns 0, or -1 (path unset) on failure.
 * Intermediate folders in name must exist (fz_mkdir). */
int fz_write(const char *name, const void *data, size_t size, char *path, size_t n);

/* Creates <scratch>/<name> as a folder if missing; 0 or -1. */
int fz_mkdir(const char *name);

/* Removes <scratch>/<name> and, for a folder, everything in it; missing is fine. */
void fz_remove(const char *name);

/* Checks what a call returned against the API's contract (a graft_status value; on failure a
 * message in graft_last_error()) and aborts when it is broken, so the fuzzer reports it. With
 * GRAFT_FUZZ_VERBOSE set, also prints the status and message to stderr: how to check that the
 * seeds get where they should. Returns st. */
int fz_note(const char *what, int st);

/* A little-endian integer from p (fuzz inputs carry their own small headers). */
uint32_t fz_le32(const uint8_t *p);

/* Reads every byte of a buffer graft returned, so that a buffer shorter than the sizes it
 * claims shows up under AddressSanitizer; the sum keeps the reads from being optimised away. */
unsigned fz_touch(const void *p, size_t n);

/* Bytes per element of a public dtype, 0 for one graft_tensor_new refuses. */
size_t fz_dtype_size(int dtype);

#endif
