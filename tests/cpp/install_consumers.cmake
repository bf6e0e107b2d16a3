# Driver of the install.* tests (run with cmake -P; see CMakeLists.txt).
#   STEP=scratch_prefix  cmake --install BUILD_DIR into WORK_DIR/prefix and check the files
#   STEP=find_package    build and run EXAMPLE_DIR as a standalone project of that prefix
#   STEP=pkg_config      compile and run EXAMPLE_DIR's C file with pkg-config's flags only
#   STEP=version_rules   find_package(bitsandbytes <version>) accepts and refuses what it should
cmake_minimum_required(VERSION 3.24)

set(PREFIX ${WORK_DIR}/prefix)
separate_arguments(CONSUMER_FLAG_LIST UNIX_COMMAND "${CONSUMER_FLAGS}")

function(run_checked)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "failed (${result}): ${command}\n${out}\n${err}")
  endif()
  set(RUN_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

# The example prints "bitsandbytes <version>: ..." when its round trip is within bounds.
function(expect_example_ran output)
  if(NOT output MATCHES "bitsandbytes ${VERSION}:")
    message(FATAL_ERROR "the consumer ran but printed:\n${output}")
  endif()
  message(STATUS "${output}")
endfunction()

if(STEP STREQUAL "scratch_prefix")
  file(REMOVE_RECURSE ${WORK_DIR})
  file(MAKE_DIRECTORY ${WORK_DIR})
  run_checked(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
  foreach(expected
      ${INCLUDEDIR}/bitsandbytes/bitsandbytes.h
      ${LIBDIR}/libbitsandbytes.so
      ${LIBDIR}/cmake/bitsandbytes/bitsandbytesConfig.cmake
      ${LIBDIR}/cmake/bitsandbytes/bitsandbytesConfigVersion.cmake
      ${LIBDIR}/cmake/bitsandbytes/bitsandbytesTargets.cmake
      ${LIBDIR}/pkgconfig/bitsandbytes.pc)
    if(NOT EXISTS ${PREFIX}/${expected})
      message(FATAL_ERROR "cmake --install did not install ${expected}")
    endif()
  endforeach()
  # Only the C ABI is installed: no internal header may leak into the prefix.
  file(GLOB_RECURSE headers RELATIVE ${PREFIX}/${INCLUDEDIR} ${PREFIX}/${INCLUDEDIR}/*)
  if(NOT headers STREQUAL "bitsandbytes/bitsandbytes.h")
    message(FATAL_ERROR "installed headers are [${headers}], expected only bitsandbytes/bitsandbytes.h")
  endif()

elseif(STEP STREQUAL "find_package")
  set(build ${WORK_DIR}/find_package)
  file(REMOVE_RECURSE ${build})
  run_checked(${CMAKE_COMMAND} -S ${EXAMPLE_DIR} -B ${build} -G ${GENERATOR}
    -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM} -DCMAKE_C_COMPILER=${C_COMPILER}
    -DCMAKE_PREFIX_PATH=${PREFIX} "-DCMAKE_C_FLAGS=${CONSUMER_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_FLAGS}")
  run_checked(${CMAKE_COMMAND} --build ${build})
  run_checked(${build}/bnb_c_abi_example)
  expect_example_ran("${RUN_OUTPUT}")

elseif(STEP STREQUAL "pkg_config")
  if(NOT PKG_CONFIG)
    message("SKIPPED: pkg-config is not installed")
    return()
  endif()
  set(ENV{PKG_CONFIG_PATH} ${PREFIX}/${LIBDIR}/pkgconfig)
  run_checked(${PKG_CONFIG} --modversion bitsandbytes)
  string(STRIP "${RUN_OUTPUT}" modversion)
  if(NOT modversion STREQUAL VERSION)
    message(FATAL_ERROR "pkg-config reports version '${modversion}', expected ${VERSION}")
  endif()
  run_checked(${PKG_CONFIG} --cflags bitsandbytes)
  separate_arguments(cflags UNIX_COMMAND "${RUN_OUTPUT}")
  run_checked(${PKG_CONFIG} --libs bitsandbytes)
  separate_arguments(libs UNIX_COMMAND "${RUN_OUTPUT}")
  run_checked(${PKG_CONFIG} --variable=libdir bitsandbytes)
  string(STRIP "${RUN_OUTPUT}" libdir)
  if(NOT EXISTS ${libdir}/libbitsandbytes.so)
    message(FATAL_ERROR "pkg-config's libdir '${libdir}' holds no libbitsandbytes.so")
  endif()
  set(program ${WORK_DIR}/pkg_config_example)
  run_checked(${C_COMPILER} -std=c99 ${CONSUMER_FLAG_LIST} ${cflags} ${EXAMPLE_DIR}/quantize_roundtrip.c
    -o ${program} ${libs} -lm -Wl,-rpath,${libdir})
  run_checked(${program})
  expect_example_ran("${RUN_OUTPUT}")

elseif(STEP STREQUAL "version_rules")
  # SameMinorVersion: 0.x releases may change the API between minors.
  string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _ ${VERSION})
  set(major ${CMAKE_MATCH_1})
  set(minor ${CMAKE_MATCH_2})
  math(EXPR next_minor "${minor} + 1")
  math(EXPR next_major "${major} + 1")
  set(project ${WORK_DIR}/version_rules)
  file(MAKE_DIRECTORY ${project})
  file(WRITE ${project}/CMakeLists.txt [=[
cmake_minimum_required(VERSION 3.24)
project(bitsandbytes_version_rules LANGUAGES NONE)
find_package(bitsandbytes ${REQUESTED} CONFIG QUIET)
message(STATUS "RESULT found=${bitsandbytes_FOUND} version=${bitsandbytes_VERSION}")
]=])
  foreach(request "" "${major}.${minor}" "${VERSION}" "${major}.${minor}.0" "${major}.${next_minor}" "${next_major}.0")
    if(request STREQUAL "" OR request STREQUAL "${major}.${minor}" OR request STREQUAL VERSION
       OR request STREQUAL "${major}.${minor}.0")
      set(expected TRUE)
    else()
      set(expected FALSE)
    endif()
    file(REMOVE_RECURSE ${project}/build)
    run_checked(${CMAKE_COMMAND} -S ${project} -B ${project}/build -G ${GENERATOR}
      -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM} -DCMAKE_PREFIX_PATH=${PREFIX} -DREQUESTED=${request})
    string(REGEX MATCH "RESULT found=([A-Za-z0-9]*)" _ "${RUN_OUTPUT}")
    set(found ${CMAKE_MATCH_1})
    if(found AND NOT expected)
      message(FATAL_ERROR "find_package(bitsandbytes ${request}) accepted version ${VERSION}")
    elseif(NOT found AND expected)
      message(FATAL_ERROR "find_package(bitsandbytes ${request}) refused version ${VERSION}:\n${RUN_OUTPUT}")
    endif()
    message(STATUS "find_package(bitsandbytes ${request}): found=${found}, as expected")
  endforeach()
  if(NOT RUN_OUTPUT MATCHES "RESULT found=")
    message(FATAL_ERROR "the version probe printed nothing:\n${RUN_OUTPUT}")
  endif()

else()
  message(FATAL_ERROR "unknown STEP '${STEP}'")
endif()
