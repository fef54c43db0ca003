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

/* An executor that runs every task on the calling thread but hands out worker indices 0..workers-1,
   as a pool of that many threads would: the kernels' split, without threads. */
static size_t parallel_regions = 0;
static void serial_parallel_for(void* self, size_t tasks, void (*task)(void*, size_t, size_t), void* arg) {
  const size_t workers = *(const size_t*)self;
  ++parallel_regions;
  for (size_t t = 0; t < tasks; ++t) task(arg, t, t % workers);
}
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

  /* 4. Contexts: instances of their own (the linked-in blob, a second copy of the file), a batch, an
     executor, the version. */
  {
    size_t copy_size = 0;
    unsigned char* copy = read_file(blob_path, &copy_size);
    EXPECT(copy != NULL && copy_size == DEMO_BLOB_BYTES, "cannot read %s again", blob_path);
    static _Alignas(64) unsigned char mem_a[DEMO_CONTEXT_BYTES], mem_b[DEMO_CONTEXT_BYTES], mem_c[DEMO_CONTEXT_BYTES];
    demo_context *ca = NULL, *cb = NULL, *cc = NULL;
    EXPECT(demo_context_init(mem_a, sizeof mem_a, demo_blob, DEMO_BLOB_BYTES, &ca) == 0, "context a: %s", demo_context_error(ca));
    EXPECT(demo_context_init(mem_b, sizeof mem_b, copy, copy_size, &cb) == 0, "context b: %s", demo_context_error(cb));
    float batch_in[2 * DEMO_INPUT_FLOATS], batch_out[2 * DEMO_OUTPUT_FLOATS];
    memcpy(batch_in, image, sizeof(float) * DEMO_INPUT_FLOATS);
    memcpy(batch_in + DEMO_INPUT_FLOATS, image, sizeof(float) * DEMO_INPUT_FLOATS);
    EXPECT(demo_context_forward(ca, batch_in, 2, batch_out, workspace, ws, NULL) == 0, "batch of 2");
    EXPECT(memcmp(batch_out, linked_out, sizeof linked_out) == 0 &&
           memcmp(batch_out + DEMO_OUTPUT_FLOATS, linked_out, sizeof linked_out) == 0, "a batch differs from one image");
    size_t workers = 3;
    const demo_executor ex = {serial_parallel_for, &workers, 3};
    const size_t ws3_bytes = demo_workspace_bytes_for(3);
    EXPECT(ws3_bytes >= DEMO_WORKSPACE_BYTES, "workspace for 3 workers: %zu", ws3_bytes);
    unsigned char* ws3 = aligned_alloc(64, (ws3_bytes + 63) / 64 * 64);
    float ex_out[DEMO_OUTPUT_FLOATS];
    EXPECT(demo_context_forward(cb, image, 1, ex_out, ws3, ws3_bytes, &ex) == 0, "forward with an executor");
    EXPECT(memcmp(ex_out, linked_out, sizeof ex_out) == 0, "3 workers gave other bits than one thread");
    EXPECT(parallel_regions > 0, "the executor was never used");
    if (ws3_bytes > ws)
      EXPECT(demo_context_forward(cb, image, 1, ex_out, workspace, ws, &ex) == DEMO_ERR_WORKSPACE_TOO_SMALL,
             "one worker's workspace for three must be refused");
    copy[copy_size - 4] ^= 0x40; /* damaged: the context says why, and refuses to run */
    EXPECT(demo_context_init(mem_c, sizeof mem_c, copy, copy_size, &cc) != 0 && cc != NULL &&
               strstr(demo_context_error(cc), "checksum") != NULL,
           "damaged blob in a context: %s", cc ? demo_context_error(cc) : "(no context)");
    EXPECT(demo_context_forward(cc, image, 1, ex_out, workspace, ws, NULL) == DEMO_ERR_NOT_BOUND, "unbound context");
    EXPECT(demo_context_forward(ca, image, 1, ex_out, workspace, ws, NULL) == 0, "context a after c's failure");
    demo_context* untouched = NULL;
    EXPECT(demo_context_init(mem_c, DEMO_CONTEXT_BYTES - 64, demo_blob, DEMO_BLOB_BYTES, &untouched) ==
               DEMO_ERR_WORKSPACE_TOO_SMALL && untouched == NULL, "a context in too little memory");
    EXPECT(demo_context_init(mem_c + 8, DEMO_CONTEXT_BYTES - 64, demo_blob, DEMO_BLOB_BYTES, &untouched) ==
               DEMO_ERR_MISALIGNED, "a misaligned context");
    EXPECT(strcmp(demo_version(), "vitcc " DEMO_VITCC_VERSION) == 0, "version '%s'", demo_version());
    EXPECT(demo_context_bytes() == DEMO_CONTEXT_BYTES, "demo_context_bytes() %zu, DEMO_CONTEXT_BYTES %u",
           demo_context_bytes(), DEMO_CONTEXT_BYTES);
    printf("contexts: 2 instances, a batch of 2 and 3 workers give the single run's bits; %s\n", demo_version());
    free(ws3);
    free(copy);
  }

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
