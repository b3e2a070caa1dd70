# Provides the imported targets BLAS::BLAS and LAPACK::LAPACK that loco::blas
# links, and sets LOCO_BLAS_FOUND. Used when loco is built and again by the
# installed loco-config.cmake on the consumer's machine, which keeps the
# package relocatable (no absolute library paths are exported).
#
# Under Conan with ConanCenter's openblas, CMakeDeps provides
# OpenBLAS::OpenBLAS (BLAS and LAPACK in one library) rather than what CMake's
# FindBLAS looks for; elsewhere (Debian, a plain install) FindBLAS and
# FindLAPACK find the system's libraries.
set(LOCO_BLAS_FOUND TRUE)
if(NOT TARGET BLAS::BLAS OR NOT TARGET LAPACK::LAPACK)
  find_package(OpenBLAS CONFIG QUIET)
  if(TARGET OpenBLAS::OpenBLAS)
    foreach(_loco_lib BLAS LAPACK)
      if(NOT TARGET ${_loco_lib}::${_loco_lib})
        add_library(${_loco_lib}::${_loco_lib} INTERFACE IMPORTED)
        target_link_libraries(${_loco_lib}::${_loco_lib} INTERFACE OpenBLAS::OpenBLAS)
      endif()
    endforeach()
  else()
    find_package(BLAS QUIET)
    find_package(LAPACK QUIET)
    if(NOT TARGET BLAS::BLAS OR NOT TARGET LAPACK::LAPACK)
      set(LOCO_BLAS_FOUND FALSE)
    endif()
  endif()
endif()
