# Cross-compiling for 64-bit ARM Linux (Cortex-A, NEON) with Debian's g++-aarch64-linux-gnu;
# test executables run under qemu-aarch64 (Debian's qemu-user) with the cross sysroot as -L.
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DVITCC_HOST_TOOLS_DIR=$PWD/build/bin
#   cmake --build build-aarch64 -j2 && ctest --test-dir build-aarch64      (or: make test-aarch64)
#
# vitcc-pack needs ONNX and protobuf, which Debian does not ship for aarch64 on an x86 host, so the
# cross build takes vitcc-pack and vitcc-run from a host build (VITCC_HOST_TOOLS_DIR); vitcc-run then
# compiles each model's runner with this cross compiler and runs it under the emulator.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(VITCC_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${VITCC_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${VITCC_CROSS_TRIPLE}-g++)
set(VITCC_CROSS_SYSROOT /usr/${VITCC_CROSS_TRIPLE})

# Libraries come from the cross sysroot only. The dependencies' CMake packages (Eigen, xsimd,
# doctest, nlohmann_json) are header-only and architecture-independent: take them from the host.
set(CMAKE_FIND_ROOT_PATH ${VITCC_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# CMake never passes /usr/include (where Debian puts those header-only libraries) as an include
# folder; searching it after the cross compiler's own folders finds them without ever preferring a
# host C library header over the sysroot's.
set(VITCC_CROSS_HOST_HEADERS "-idirafter /usr/include")
set(CMAKE_C_FLAGS_INIT "${VITCC_CROSS_HOST_HEADERS}")
set(CMAKE_CXX_FLAGS_INIT "${VITCC_CROSS_HOST_HEADERS}")

# Debian's aarch64 GCC 12.2 stops with an internal compiler error (vect_transform_reduction) on
# some floating-point max reductions at -O3 (tests/readme/main.cpp has one); -O2, which is also what
# vitcc-run compiles runners with, does not.
set(CMAKE_C_FLAGS_RELEASE "-O2 -DNDEBUG" CACHE STRING "Release flags (see the note in the toolchain file)")
set(CMAKE_CXX_FLAGS_RELEASE "-O2 -DNDEBUG" CACHE STRING "Release flags (see the note in the toolchain file)")

set(VITCC_CROSS_EMULATOR qemu-aarch64 -L ${VITCC_CROSS_SYSROOT})
set(CMAKE_CROSSCOMPILING_EMULATOR ${VITCC_CROSS_EMULATOR})

# The tools come from a host build (VITCC_HOST_TOOLS_DIR), see above.
set(VITCC_BUILD_TOOLS OFF CACHE BOOL "Build vitcc-pack and vitcc-run (not when cross-compiling)")

# Debian installs xsimd's package file under the host's multiarch folder, which a search for the
# target architecture does not visit.
if(NOT DEFINED xsimd_DIR)
  file(GLOB _vitcc_xsimd_dirs /usr/lib/*-linux-gnu*/cmake/xsimd /usr/lib/cmake/xsimd)
  if(_vitcc_xsimd_dirs)
    list(GET _vitcc_xsimd_dirs 0 _vitcc_xsimd_dir)
    set(xsimd_DIR ${_vitcc_xsimd_dir} CACHE PATH "xsimd's CMake package (header-only, host copy)")
  endif()
endif()
