// Weights for programs without a file system: vitcc-pack --emit-c-array and --emit-object.
//
//   --emit-c-array  OUT/NAME_weights.h: the blob as a 64-byte aligned `static const unsigned char`
//                   array, for small models (every byte goes through the compiler's parser).
//   --emit-object   OUT/NAME_blob.s (an assembler stub that .incbin's NAME.<checksum>.vitcc), OUT/NAME_blob.h
//                   (its declarations) and OUT/NAME_blob.o, assembled by --object-cc (default $CC,
//                   else cc). The bytes never go through a C or C++ parser, so a 300 MB model costs
//                   the assembler a file copy. The .s stub can be assembled again by any GNU
//                   assembler for another target (e.g. arm-none-eabi-gcc -c, see examples/cortex-m7).
//
// Both name the array NAME_blob (NAME made an identifier) and define NAME_BLOB_BYTES and
// NAME_BLOB_CHECKSUM; BlobView::open() reads the weights in place from there, never copying them.
// They keep fixed names (build systems name them), are written into the OutputSet before its
// commit, and each holds or names exactly one blob: a mix with another pack's NAME.hpp is refused
// by bind() (wrong_blob), never run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "output_set.hpp"

namespace vitcc::pack {

struct EmbedRequest {
  std::string name, blob_file;           // blob_file: NAME.<checksum>.vitcc, already in the set
  std::uint64_t checksum = 0;
  std::string object_cc;                 // assembler driver for --emit-object ("" = $CC or cc)
};

// Writes OUT/NAME_weights.h. Returns the path written.
std::string emit_c_array(OutputSet& set, const EmbedRequest& r, const std::vector<unsigned char>& blob);

// Writes OUT/NAME_blob.s and OUT/NAME_blob.h and assembles OUT/NAME_blob.o. Returns the object's path.
std::string emit_object(OutputSet& set, const EmbedRequest& r, std::size_t blob_bytes);

}  // namespace vitcc::pack
