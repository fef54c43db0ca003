# Installs the build into a private prefix, configures and builds tests/consumer against it with
# find_package(vitcc CONFIG), and runs it on the demo model.
set(prefix ${BUILD}/consumer-install)
set(cbuild ${BUILD}/consumer-build)
file(REMOVE_RECURSE ${prefix} ${cbuild})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix} RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/tests/consumer -B ${cbuild} -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_CXX_COMPILER=${CXX} -DDEMO_MODEL_DIR=${DEMO_MODEL} -DCMAKE_BUILD_TYPE=Release RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the consumer against the installed package failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${cbuild} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the consumer failed")
endif()
execute_process(COMMAND ${cbuild}/consumer ${DEMO_MODEL} ${SRC}/demo/input.bin ${SRC}/demo/reference.bin
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the consumer's output does not match the reference")
endif()
