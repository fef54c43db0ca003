# The installed package as a product team uses it (issue 19, part 2). Installs the build into a private
# prefix, then:
#   1. configures tests/consumer against it with Eigen and nlohmann_json made unfindable: vitcc::vitcc
#      needs xsimd only;
#   2. builds it: vitcc_add_model packs demo/demo.onnx with vitcc::pack at build time and links the
#      weights in (on x86 with AVX2, TARGET x86-64-v3: the instruction-set flags come from the package);
#      runs it against PyTorch's output;
#   3. the same project for aarch64 with cmake/toolchains/aarch64-linux-gnu.cmake (TARGET
#      armv8.2-a+dotprod), run under qemu-aarch64, when the cross compiler and QEMU are there;
#   4. pkg-config: `pkg-config --cflags vitcc` compiles a translation unit that includes vitcc.
set(prefix ${BUILD}/consumer-install)
file(REMOVE_RECURSE ${prefix} ${BUILD}/consumer-build ${BUILD}/consumer-build-aarch64)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix} RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed")
endif()
foreach(f share/cmake/vitcc/vitcc-tools-targets.cmake share/cmake/vitcc/vitcc-functions.cmake share/pkgconfig/vitcc.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "the install has no ${f}")
  endif()
endforeach()

function(consumer build_dir)  # consumer(DIR [cmake args...]): configure, build, and return the exe path
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/tests/consumer -B ${build_dir} -DCMAKE_PREFIX_PATH=${prefix}
    -DDEMO_ONNX=${SRC}/demo/demo.onnx -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=TRUE -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=TRUE ${ARGN}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "configuring the consumer (${build_dir}) against the installed package failed")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${build_dir} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building the consumer (${build_dir}) failed")
  endif()
endfunction()

set(model_args "")
cmake_host_system_information(RESULT host_arch QUERY OS_PLATFORM)
if(host_arch MATCHES "x86_64|AMD64" AND EXISTS /proc/cpuinfo)
  file(READ /proc/cpuinfo cpuinfo)
  if(cpuinfo MATCHES " avx2" AND cpuinfo MATCHES " fma" AND cpuinfo MATCHES " bmi2")
    set(model_args -DCONSUMER_TARGET=x86-64-v3)
  endif()
endif()
consumer(${BUILD}/consumer-build -DCMAKE_CXX_COMPILER=${CXX} ${model_args})
execute_process(COMMAND ${BUILD}/consumer-build/consumer ${SRC}/demo/input.bin ${SRC}/demo/reference.bin
  RESULT_VARIABLE rc OUTPUT_VARIABLE said)
message(STATUS "native (${model_args}): ${said}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the consumer's output does not match the reference")
endif()
execute_process(COMMAND ${BUILD}/consumer-build/consumer_blob RESULT_VARIABLE rc OUTPUT_VARIABLE said_blob)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer_blob, the second target with the same model: ${said_blob}")
endif()
if(model_args AND NOT said MATCHES "fma3\\+avx2")
  message(FATAL_ERROR "TARGET x86-64-v3: the consumer ran ${said}, not fma3+avx2")
endif()

find_program(cross_cxx aarch64-linux-gnu-g++)
find_program(qemu qemu-aarch64)
if(cross_cxx AND qemu)
  consumer(${BUILD}/consumer-build-aarch64 -DCMAKE_TOOLCHAIN_FILE=${SRC}/cmake/toolchains/aarch64-linux-gnu.cmake
    -DCONSUMER_TARGET=armv8.2-a+dotprod)
  execute_process(COMMAND ${qemu} -L /usr/aarch64-linux-gnu -cpu max ${BUILD}/consumer-build-aarch64/consumer
    ${SRC}/demo/input.bin ${SRC}/demo/reference.bin RESULT_VARIABLE rc OUTPUT_VARIABLE said)
  message(STATUS "aarch64 under qemu: ${said}")
  if(NOT rc EQUAL 0 OR NOT said MATCHES "arm64\\+neon")
    message(FATAL_ERROR "the aarch64 consumer failed or did not run NEON code: ${said}")
  endif()
else()
  message(STATUS "no aarch64-linux-gnu-g++ or qemu-aarch64: the cross consumer is skipped")
endif()

find_program(pkgconfig pkg-config)
if(pkgconfig)
  set(ENV{PKG_CONFIG_PATH} ${prefix}/share/pkgconfig)
  execute_process(COMMAND ${pkgconfig} --cflags vitcc RESULT_VARIABLE rc OUTPUT_VARIABLE cflags
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0 OR NOT cflags MATCHES "consumer-install/share/pkgconfig/\\.\\./\\.\\./include")
    message(FATAL_ERROR "pkg-config --cflags vitcc: '${cflags}' (exit ${rc})")
  endif()
  file(WRITE ${BUILD}/consumer-build/pc.cpp "#include <vitcc/vitcc.hpp>\nint main() { return vitcc::default_arch::name()[0] == 0; }\n")
  separate_arguments(cflags_list UNIX_COMMAND "${cflags}")
  execute_process(COMMAND ${CXX} -std=c++17 ${cflags_list} -fsyntax-only ${BUILD}/consumer-build/pc.cpp RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "a translation unit compiled with pkg-config's flags for vitcc (${cflags}) failed")
  endif()
  message(STATUS "pkg-config --cflags vitcc: ${cflags}")
else()
  message(STATUS "no pkg-config: its check is skipped")
endif()
