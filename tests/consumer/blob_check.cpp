// The second target of tests/consumer that adds the demo model (vitcc_add_model shares one pack and
// one assembled object between them): its linked-in weights start with the blob's magic and have
// the recorded size.
#include <cstdio>
#include <cstring>

#include "demo_blob.h"

int main() {
  const bool ok = std::memcmp(demo_blob, "VITCCBLB", 8) == 0 && DEMO_BLOB_BYTES > 64;
  std::printf("%s: %u bytes of weights linked in\n", ok ? "ok" : "FAIL", static_cast<unsigned>(DEMO_BLOB_BYTES));
  return ok ? 0 : 1;
}
