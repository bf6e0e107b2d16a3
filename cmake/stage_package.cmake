# Links every entry of the source package into DEST (so edits to Python files
# need no rebuild); the build then copies the native modules beside them.
file(MAKE_DIRECTORY ${DEST})
file(GLOB entries RELATIVE ${SOURCE} ${SOURCE}/*)
foreach(entry ${entries})
  if(entry MATCHES "\\.so$" OR entry STREQUAL "__pycache__")
    continue()
  endif()
  if(NOT EXISTS ${DEST}/${entry})
    file(CREATE_LINK ${SOURCE}/${entry} ${DEST}/${entry} SYMBOLIC)
  endif()
endforeach()
