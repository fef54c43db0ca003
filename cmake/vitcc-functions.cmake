# vitcc_add_model(<target> <MODEL.onnx> [NAME <name>] [PRECISION fp32|bf16|int8] [TARGET <isa target>]
#                 [PACK_ARGS <arg>...])
#
# Packs MODEL.onnx with vitcc::pack when <target> is built (again whenever the ONNX file or the packer
# changes) and gives <target>:
#   - the generated config header on its include path: #include "<name>.hpp" declares
#     vitcc_models::<name>_model (and <name>_blob.h declares the weights);
#   - the weights linked in as an object: `extern const unsigned char <name>_blob[]`, 64-byte
#     aligned, <name>_BLOB_BYTES long (vitcc-pack --emit-object, assembled by <target>'s compiler, so
#     a cross build gets the cross target's object);
#   - vitcc::vitcc;
#   - with TARGET, that instruction-set target's compiler flags (vitcc-compile --list-targets,
#     docs/TARGETS.md) on all of <target>'s sources, since the model is compiled in them.
# Files go to ${CMAKE_CURRENT_BINARY_DIR}/vitcc_models/<name>/. NAME defaults to the ONNX file's
# stem; PRECISION to fp32; PACK_ARGS are passed to vitcc-pack as they are. Several targets of one
# directory may add the same model with the same arguments: it is packed and assembled once (the
# custom target vitcc_model_<name>_<dir hash> builds it first). The same NAME with other arguments is
# refused: give it another NAME. The weights are assembled with CMAKE_CXX_FLAGS (the toolchain's)
# and TARGET's instruction-set flags, so that an ARM object carries the float ABI of the code it
# links with; other per-target ABI options belong in the toolchain's flags.
function(vitcc_add_model target onnx)
  cmake_parse_arguments(PARSE_ARGV 2 _vam "" "NAME;PRECISION;TARGET" "PACK_ARGS")
  if(_vam_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "vitcc_add_model(${target}): unexpected arguments: ${_vam_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "vitcc_add_model: '${target}' is not a target (add_executable or add_library first)")
  endif()
  if(NOT TARGET vitcc::pack)
    message(FATAL_ERROR "vitcc_add_model(${target}): this vitcc has no vitcc::pack (installed without its tools)")
  endif()
  get_filename_component(onnx "${onnx}" ABSOLUTE)
  if(NOT EXISTS "${onnx}")
    message(FATAL_ERROR "vitcc_add_model(${target}): ${onnx} does not exist")
  endif()
  set(name "${_vam_NAME}")
  if(NOT name)
    get_filename_component(name "${onnx}" NAME_WE)
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "vitcc_add_model(${target}): NAME '${name}' must be a C identifier (letters, digits, _)")
  endif()
  set(precision "${_vam_PRECISION}")
  if(NOT precision)
    set(precision fp32)
  endif()
  if(NOT precision MATCHES "^(fp32|bf16|int8)$")
    message(FATAL_ERROR "vitcc_add_model(${target}): PRECISION '${precision}' is not fp32, bf16 or int8")
  endif()

  # TARGET's flags: for the model's code (every source of <target>) and the weights' object.
  set(_isa_flags)
  if(_vam_TARGET)
    if(NOT TARGET vitcc::compile)
      message(FATAL_ERROR "vitcc_add_model(${target}): TARGET needs vitcc::compile (installed without its tools)")
    endif()
    get_target_property(_compile vitcc::compile LOCATION)
    execute_process(COMMAND "${_compile}" --target-flags "${_vam_TARGET}" OUTPUT_VARIABLE _isa_flags
      ERROR_VARIABLE _err RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "vitcc_add_model(${target}): TARGET ${_vam_TARGET}: ${_err}")
    endif()
    separate_arguments(_isa_flags NATIVE_COMMAND "${_isa_flags}")
  endif()

  set(dir "${CMAKE_CURRENT_BINARY_DIR}/vitcc_models/${name}")
  # Not vitcc-pack's own ${name}_blob.o (the host's format): this target's, under another name.
  set(obj "${dir}/${name}_weights_for_target${CMAKE_CXX_OUTPUT_EXTENSION}")
  string(MD5 _dir_hash "${CMAKE_CURRENT_BINARY_DIR}")
  string(SUBSTRING "${_dir_hash}" 0 8 _dir_hash)
  set(_builder "vitcc_model_${name}_${_dir_hash}")
  set(_signature "${onnx}|${precision}|${_vam_TARGET}|${_vam_PACK_ARGS}")
  get_property(_known DIRECTORY PROPERTY "VITCC_MODEL_${name}")
  if(DEFINED _known AND NOT _known STREQUAL "")
    if(NOT _known STREQUAL _signature)
      message(FATAL_ERROR "vitcc_add_model(${target}): model NAME '${name}' is already added in this directory with "
        "other arguments (${_known}); give this one another NAME")
    endif()
    _vitcc_model_use(${target} "${dir}" "${name}" "${obj}" "${_builder}" "${_isa_flags}")
    return()
  endif()
  set_property(DIRECTORY PROPERTY "VITCC_MODEL_${name}" "${_signature}")

  add_custom_command(
    OUTPUT "${dir}/${name}.json" "${dir}/${name}.hpp" "${dir}/${name}_blob.s" "${dir}/${name}_blob.h"
    COMMAND vitcc::pack "${onnx}" -o "${dir}" --name "${name}" --precision ${precision} --emit-object ${_vam_PACK_ARGS}
    DEPENDS "${onnx}" vitcc::pack
    COMMENT "vitcc-pack ${name} (${precision})"
    VERBATIM)
  # The .incbin stub, assembled by this target's own compiler driver (the host's object vitcc-pack also
  # writes is the wrong format in a cross build). The toolchain's flags come along: an ARM object must
  # carry the same float ABI as the code it links with.
  separate_arguments(_flags NATIVE_COMMAND "${CMAKE_CXX_FLAGS}")
  set(_target_arg)
  if(CMAKE_CXX_COMPILER_TARGET)
    set(_target_arg "--target=${CMAKE_CXX_COMPILER_TARGET}")
  endif()
  add_custom_command(
    OUTPUT "${obj}"
    COMMAND ${CMAKE_CXX_COMPILER} ${_target_arg} ${_flags} ${_isa_flags} -c "${dir}/${name}_blob.s" "-Wa,-I,${dir}" -o "${obj}"
    DEPENDS "${dir}/${name}_blob.s" "${dir}/${name}.json"
    COMMENT "Assembling ${name}'s weights"
    VERBATIM)
  # Built once, before any target that uses it (two targets listing the same custom command's outputs
  # could otherwise run it twice at once).
  add_custom_target(${_builder} DEPENDS "${obj}" "${dir}/${name}.json" "${dir}/${name}.hpp" "${dir}/${name}_blob.h")
  _vitcc_model_use(${target} "${dir}" "${name}" "${obj}" "${_builder}" "${_isa_flags}")
endfunction()

# <target> uses the model packed in <dir>: its weights' object, headers and flags.
function(_vitcc_model_use target dir name obj builder isa_flags)
  add_dependencies(${target} ${builder})
  target_sources(${target} PRIVATE "${obj}" "${dir}/${name}.hpp" "${dir}/${name}_blob.h")
  target_include_directories(${target} PRIVATE "${dir}")
  target_link_libraries(${target} PRIVATE vitcc::vitcc)
  target_compile_features(${target} PRIVATE cxx_std_17)
  if(isa_flags)
    target_compile_options(${target} PRIVATE ${isa_flags})
  endif()
endfunction()
