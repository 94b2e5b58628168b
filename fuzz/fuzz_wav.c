/* fuzz_wav.c — WAV files: graft_audio_load at the file's own rate and resampled to 16 kHz
 * (what the speech front end asks for), then written back with graft_audio_save. */
#include "fuzz_common.h"

#include <graft.h>

static void load(const char *path, int rate)
{
    graft_tensor *s = NULL;
    int info[3] = { 0, 0, 0 };
    if (fz_note("graft_audio_load", graft_audio_load(path, rate, &s, info))) return;
    fz_touch(s->data, (size_t)graft_tensor_numel(s) * sizeof(float));
    char out[1024];
    if (!fz_path("out.wav", out, sizeof out))
        (void)graft_audio_save(out, s, info[0] > 0 && rate == 0 ? info[0] : 16000);
    graft_tensor_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1024];
    if (fz_write("in.wav", data, size, path, sizeof path)) return 0;
    load(path, 0);
    load(path, 16000);
    return 0;
}
