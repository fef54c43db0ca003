// vitcc: statically shaped Vision Transformer inference. The one header most users include,
// next to the config header vitcc-pack generated for their model.
#pragma once
#include "vitcc/version.hpp"
#include "vitcc/core/config.hpp"
#include "vitcc/core/arch.hpp"
#include "vitcc/core/aligned.hpp"
#include "vitcc/core/error.hpp"
#include "vitcc/core/memory.hpp"
#include "vitcc/io/blob_format.hpp"
#include "vitcc/io/blob_reader.hpp"
#include "vitcc/core/executor.hpp"
#include "vitcc/models/efficientvit.hpp"
#include "vitcc/models/vit.hpp"
