/* A C program that classifies a photo with a model vitcc-compile turned into a library:
   decode (stb_image, as an application or a camera driver would hand over a frame), vitcc's own
   preprocessing (MODEL_preprocess: the model's resize, centre crop and normalisation), forward,
   top-5. Nothing is allocated by the library; this program sizes every buffer from the header.

   Written for a model packed under the name `demo` (demo_*, DEMO_*): for yours, replace those
   with its name. Build (README.md):
     vitcc-pack demo/demo.onnx -o model --name demo --emit-object --crop-pct 1.0
     vitcc-compile model/demo.json -o lib --target x86-64-v2,x86-64-v3,x86-64-v4
     cc -std=c11 -O2 -Ilib -Imodel classify.c model/demo_blob.o -Llib -ldemo -lm -o classify
   Run: classify IMAGE [REFERENCE.bin]   (with a reference: exit 1 unless the logits hold the
   project's parity bound against it) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb/stb_image.h>

#include "demo.h"      /* vitcc-compile: the C API */
#include "demo_blob.h" /* vitcc-pack --emit-object: the weights, linked in */

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s IMAGE [REFERENCE.bin]\n", argv[0]);
    return 2;
  }
  /* The frame: RGBA, as many camera pipelines deliver it. */
  int width = 0, height = 0, comp = 0;
  unsigned char* frame = stbi_load(argv[1], &width, &height, &comp, 4);
  if (!frame) {
    fprintf(stderr, "%s: cannot decode: %s\n", argv[1], stbi_failure_reason());
    return 2;
  }

  /* The weights are linked in (vitcc-pack --emit-object); bind checks this CPU, then the blob. */
  int rc = demo_bind(demo_blob, DEMO_BLOB_BYTES);
  if (rc != 0) {
    fprintf(stderr, "bind: %s\n", demo_last_error());
    return 1;
  }
  printf("model compiled for %s; this CPU runs %s (%s)\n", DEMO_TARGETS, demo_target(), demo_isa());

  const size_t scratch_bytes = demo_preprocess_scratch_bytes(width, height);
  void* scratch = aligned_alloc(64, (scratch_bytes + 63) / 64 * 64);
  static float image[DEMO_INPUT_FLOATS];
  static float logits[DEMO_OUTPUT_FLOATS];
  static _Alignas(64) unsigned char workspace[DEMO_WORKSPACE_BYTES];
  if (!scratch || scratch_bytes == 0) {
    fprintf(stderr, "%dx%d: no scratch for this frame size\n", width, height);
    return 1;
  }
  rc = demo_preprocess(frame, width, height, (size_t)width * 4, 4, image, scratch, scratch_bytes);
  if (rc == 0) rc = demo_forward(image, logits, workspace, sizeof workspace);
  if (rc != 0) {
    fprintf(stderr, "preprocess/forward: error %d\n", rc);
    return 1;
  }

  /* Top-5 with softmax probabilities. */
  double mx = -INFINITY, sum = 0;
  for (size_t i = 0; i < DEMO_OUTPUT_FLOATS; ++i) mx = fmax(mx, logits[i]);
  for (size_t i = 0; i < DEMO_OUTPUT_FLOATS; ++i) sum += exp(logits[i] - mx);
  int used[DEMO_OUTPUT_FLOATS] = {0};
  printf("%s (%dx%d): top-5\n", argv[1], width, height);
  for (int k = 0; k < 5 && k < (int)DEMO_OUTPUT_FLOATS; ++k) {
    int best = -1;
    for (size_t i = 0; i < DEMO_OUTPUT_FLOATS; ++i)
      if (!used[i] && (best < 0 || logits[i] > logits[best])) best = (int)i;
    used[best] = 1;
    printf("  class %4d  %6.2f%%  (logit %.4f)\n", best, 100.0 * exp(logits[best] - mx) / sum, logits[best]);
  }

  int status = 0;
  if (argc == 3) { /* the project's parity bound against a reference (e.g. PyTorch's logits) */
    FILE* f = fopen(argv[2], "rb");
    static float ref[DEMO_OUTPUT_FLOATS];
    if (!f || fread(ref, sizeof(float), DEMO_OUTPUT_FLOATS, f) != DEMO_OUTPUT_FLOATS) {
      fprintf(stderr, "%s: cannot read %u floats\n", argv[2], (unsigned)DEMO_OUTPUT_FLOATS);
      return 2;
    }
    fclose(f);
    double err = 0, mag = 0;
    for (size_t i = 0; i < DEMO_OUTPUT_FLOATS; ++i) {
      err = fmax(err, fabs((double)logits[i] - ref[i]));
      mag = fmax(mag, fabs((double)ref[i]));
    }
    const int ok = err <= 1e-4 * fmax(1.0, mag);
    printf("vs %s: max abs error %.3g (max |ref| %.3g): %s\n", argv[2], err, mag, ok ? "within bound" : "OUT OF BOUND");
    status = ok ? 0 : 1;
  }
  free(scratch);
  stbi_image_free(frame);
  return status;
}
