// The one place for vitcc's version; CMakeLists.txt parses these three lines.
#pragma once
#define VITCC_VERSION_MAJOR 0
#define VITCC_VERSION_MINOR 1
#define VITCC_VERSION_PATCH 0
