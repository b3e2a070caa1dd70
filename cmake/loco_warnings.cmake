# Warnings-as-errors and sanitizers for loco's own tests, benchmarks and
# examples only; the INTERFACE targets a user links carry none of this.
add_library(loco_strict INTERFACE)
target_compile_options(loco_strict INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wnull-dereference -Wdouble-promotion -Wimplicit-fallthrough -Werror)

if(LOCO_SANITIZE)
  string(REPLACE ";" "," _loco_san "${LOCO_SANITIZE}")
  target_compile_options(loco_strict INTERFACE -fsanitize=${_loco_san} -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  target_link_options(loco_strict INTERFACE -fsanitize=${_loco_san})
  # GCC 12's flow analysis under sanitizer instrumentation reports
  # maybe-uninitialized false positives inside std::function (Catch2's main).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(loco_strict INTERFACE -Wno-maybe-uninitialized)
  endif()
endif()

# Third-party headers are system headers, so their warnings do not fail our build.
function(loco_strict_target target)
  target_link_libraries(${target} PRIVATE loco_strict)
endfunction()
