/* A C program (C11, compiled by `cc`) using a model through vitcc-compile's library and header.
   The demo model's weights come twice: linked in (vitcc-pack --emit-object, demo_blob.o) and read
   from the .vitcc file the C header names (DEMO_BLOB_FILE, in the model's folder); both must give
   PyTorch's logits, and a damaged, misaligned or missing blob must be refused.
   EXPECT_TARGET (optional): the target of DEMO_TARGETS the library must pick on this CPU, or
   "refuse": this CPU runs none of them, and every bind must say so (DEMO_ERR_UNSUPPORTED_CPU).
   Usage: c_api_demo MODEL_DIR INPUT.bin REFERENCE.bin [EXPECT_TARGET] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"      /* vitcc-compile */
#include "demo_blob.h" /* vitcc-pack --emit-object */

static int failures = 0;
#define EXPECT(cond, ...)                                   \
  do {                                                      \
    if (!(cond)) {                                          \
      ++failures;                                           \
      fprintf(stderr, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                         \
      fputc('\n', stderr);                                  \
    }                                                       \
  } while (0)

static unsigned char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* p = aligned_alloc(64, (*size + 63) / 64 * 64 + 64);
  if (p && fread(p, 1, *size, f) != *size) {
    free(p);
    p = NULL;
  }
  fclose(f);
  return p;
}

/* The project's parity bound against PyTorch. */
static int matches(const float* got, const float* ref, size_t n, const char* what) {
  double err = 0, mag = 0, dot = 0, ng = 0, nr = 0;
  for (size_t i = 0; i < n; ++i) {
    err = fmax(err, fabs((double)got[i] - ref[i]));
    mag = fmax(mag, fabs((double)ref[i]));
    dot += (double)got[i] * ref[i];
    ng += (double)got[i] * got[i];
    nr += (double)ref[i] * ref[i];
  }
  const double cosine = dot / sqrt(ng * nr);
  printf("%-24s max abs error %.3g (max |ref| %.3g), cosine %.9f\n", what, err, mag, cosine);
  return err <= 1e-4 * fmax(1.0, mag) && cosine >= 0.99999;
}

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s MODEL_DIR INPUT.bin REFERENCE.bin [EXPECT_TARGET|refuse]\n", argv[0]);
    return 2;
  }
  const char* expect_target = argc == 5 ? argv[4] : NULL;
  size_t blob_size = 0, in_size = 0, ref_size = 0;
  char blob_path[4096];
  snprintf(blob_path, sizeof blob_path, "%s/%s", argv[1], DEMO_BLOB_FILE);
  unsigned char* file_blob = read_file(blob_path, &blob_size);
  float* image = (float*)read_file(argv[2], &in_size);
  float* reference = (float*)read_file(argv[3], &ref_size);
  if (!file_blob || !image || !reference) {
    fprintf(stderr, "cannot read the inputs\n");
    return 2;
  }
  EXPECT(in_size == DEMO_INPUT_FLOATS * sizeof(float), "input has %zu bytes", in_size);
  EXPECT(ref_size == DEMO_OUTPUT_FLOATS * sizeof(float), "reference has %zu bytes", ref_size);
  EXPECT(demo_workspace_bytes() == DEMO_WORKSPACE_BYTES, "%zu", demo_workspace_bytes());
  EXPECT(demo_input_floats() == DEMO_INPUT_FLOATS && demo_output_floats() == DEMO_OUTPUT_FLOATS, "sizes");
  EXPECT(DEMO_BLOB_BYTES == blob_size, "linked-in blob %u bytes, file %zu", (unsigned)DEMO_BLOB_BYTES, blob_size);

  /* A static, aligned workspace sized by the header's constant. */
  static _Alignas(64) unsigned char workspace[DEMO_WORKSPACE_BYTES];
  float linked_out[DEMO_OUTPUT_FLOATS], file_out[DEMO_OUTPUT_FLOATS];

  const size_t ws = sizeof workspace;
  EXPECT(demo_forward(image, linked_out, workspace, ws) == DEMO_ERR_NOT_BOUND, "forward before any bind must fail");

  printf("targets %s; this CPU runs %s (%s)\n", DEMO_TARGETS, demo_target()[0] ? demo_target() : "none of them",
         demo_isa());
  if (expect_target && strcmp(expect_target, "refuse") == 0) {
    /* A CPU without the library's instructions: a clear refusal, never SIGILL. */
    int rc = demo_bind(demo_blob, DEMO_BLOB_BYTES);
    EXPECT(rc == DEMO_ERR_UNSUPPORTED_CPU, "bind on a CPU the library cannot run = %d (%s)", rc, demo_last_error());
    EXPECT(strstr(demo_last_error(), "this CPU lacks") != NULL, "message: %s", demo_last_error());
    EXPECT(demo_target()[0] == '\0' && demo_isa()[0] == '\0', "target '%s', isa '%s'", demo_target(), demo_isa());
    EXPECT(demo_forward(image, linked_out, workspace, ws) == DEMO_ERR_NOT_BOUND, "forward after a refused bind");
    printf("refused as expected: %s\n", demo_last_error());
    free(file_blob);
    free(image);
    free(reference);
    return failures ? 1 : 0;
  }
  if (expect_target)
    EXPECT(strcmp(demo_target(), expect_target) == 0, "this CPU should run %s, the library picked '%s'", expect_target,
           demo_target());

  /* 1. Weights linked into the program. */
  EXPECT(((size_t)demo_blob) % 64 == 0, "linked-in blob at %p is not 64-byte aligned", (const void*)demo_blob);
  int rc = demo_bind(demo_blob, DEMO_BLOB_BYTES);
  EXPECT(rc == 0, "bind(linked-in blob) = %d: %s", rc, demo_last_error());
  EXPECT(demo_forward(image, linked_out, workspace, ws) == 0, "forward failed");
  EXPECT(matches(linked_out, reference, DEMO_OUTPUT_FLOATS, "linked-in weights:"), "output differs from PyTorch");

  /* 2. Weights read from the file: the same bits. */
  rc = demo_bind(file_blob, blob_size);
  EXPECT(rc == 0, "bind(file blob) = %d: %s", rc, demo_last_error());
  EXPECT(demo_forward(image, file_out, workspace, ws) == 0, "forward failed");
  EXPECT(memcmp(linked_out, file_out, sizeof file_out) == 0, "linked-in and file weights give different outputs");

  /* 3. Refusals. A damaged byte in the last tensor: the checksum catches it. */
  file_blob[blob_size - 4] ^= 0x40;
  rc = demo_bind(file_blob, blob_size);
  EXPECT(rc != 0 && strstr(demo_last_error(), "checksum") != NULL, "damaged blob: bind = %d (%s)", rc, demo_last_error());
  EXPECT(demo_forward(image, file_out, workspace, ws) == DEMO_ERR_NOT_BOUND, "forward after a refused bind must fail");
  file_blob[blob_size - 4] ^= 0x40;
  memmove(file_blob + 16, file_blob, blob_size);
  rc = demo_bind(file_blob + 16, blob_size);
  EXPECT(rc != 0 && strstr(demo_last_error(), "aligned") != NULL, "misaligned blob: bind = %d (%s)", rc, demo_last_error());
  rc = demo_bind(NULL, blob_size);
  EXPECT(rc != 0, "null blob: bind = %d", rc);
  rc = demo_bind(demo_blob, DEMO_BLOB_BYTES);
  EXPECT(rc == 0, "re-bind: %s", demo_last_error());
  EXPECT(demo_forward(image, file_out, workspace + 8, ws - 8) == DEMO_ERR_MISALIGNED, "misaligned workspace must be refused");
  EXPECT(demo_forward(image, file_out, NULL, ws) == DEMO_ERR_NULL_POINTER, "null workspace must be refused");
  EXPECT(demo_forward(NULL, file_out, workspace, ws) == DEMO_ERR_NULL_POINTER, "null image must be refused");
  EXPECT(demo_forward(image, file_out, workspace, ws - 64) == DEMO_ERR_WORKSPACE_TOO_SMALL,
         "a workspace short of DEMO_WORKSPACE_BYTES must be refused");

  free(file_blob);
  free(image);
  free(reference);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("C program: all checks passed\n");
  return 0;
}
