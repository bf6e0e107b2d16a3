# Driver of the c_abi.exports test (cmake -P): the shared library exports every
# function the header declares, and nothing but unmangled bnb_* symbols, so that
# no C++ internals (which the C ABI promises not to have) leak out.
#   LIBRARY  path of libbitsandbytes.so
#   HEADER   path of bitsandbytes.h
#   NM       the nm of the toolchain
cmake_minimum_required(VERSION 3.24)

file(READ ${HEADER} header)
string(REGEX MATCHALL "BNB_API[^;(]*[ *]bnb_[a-z0-9_]+\\(" declarations "${header}")
set(declared "")
foreach(declaration ${declarations})
  string(REGEX MATCH "bnb_[a-z0-9_]+\\($" name "${declaration}")
  string(REPLACE "(" "" name "${name}")
  list(APPEND declared ${name})
endforeach()
list(LENGTH declared declared_count)
if(declared_count LESS 10)
  message(FATAL_ERROR "found only ${declared_count} declarations in ${HEADER}: the pattern no longer matches")
endif()

execute_process(COMMAND ${NM} -D --defined-only ${LIBRARY}
  RESULT_VARIABLE result OUTPUT_VARIABLE symbols ERROR_VARIABLE error)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${LIBRARY}: ${error}")
endif()
string(REPLACE "\n" ";" lines "${symbols}")
set(exported "")
set(foreign "")
foreach(line ${lines})
  if(NOT line MATCHES "^[0-9a-fA-F]* +([A-Za-z]) +(.+)$")
    continue()
  endif()
  set(kind ${CMAKE_MATCH_1})
  set(name ${CMAKE_MATCH_2})
  # 'u' (GNU unique) symbols are static locals of libstdc++'s inline functions;
  # the toolchain exports them whatever the visibility, and they name nothing of ours.
  if(kind STREQUAL "u")
    continue()
  endif()
  if(name MATCHES "^bnb_[a-z0-9_]+$")
    list(APPEND exported ${name})
  else()
    list(APPEND foreign "${kind} ${name}")
  endif()
endforeach()

set(missing "")
foreach(name ${declared})
  if(NOT name IN_LIST exported)
    list(APPEND missing ${name})
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "declared in bitsandbytes.h but not exported: ${missing}")
endif()
if(foreign)
  list(JOIN foreign "\n  " foreign_lines)
  message(FATAL_ERROR "exported symbols outside the C ABI (internal code without hidden visibility?):\n  ${foreign_lines}")
endif()
message(STATUS "${declared_count} declared functions exported; no other symbols")
