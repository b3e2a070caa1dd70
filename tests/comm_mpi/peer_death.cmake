# Runs peer_death under mpirun and checks that the job ends instead of hanging.
#   cmake -DMPIEXEC=... -DPROGRAM=... -DMODE=default|survive -P peer_death.cmake
# default: OpenMPI's mpirun kills the job when rank 1 exits (non-zero status).
# survive: mpirun is told not to (orte_abort_on_non_zero_status 0); the
#          survivors must report loco::peer_lost and abort.
set(_extra "")
if(MODE STREQUAL "survive")
  set(_extra --mca orte_abort_on_non_zero_status 0)
endif()
execute_process(COMMAND ${MPIEXEC} -np 3 ${_extra} ${PROGRAM}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message("${out}${err}")
if(rc MATCHES "timeout")
  message(FATAL_ERROR "peer_death (${MODE}): the job hung (${rc})")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "peer_death (${MODE}): the job succeeded although rank 1 died")
endif()
if("${out}${err}" MATCHES "allreduce succeeded")
  message(FATAL_ERROR "peer_death (${MODE}): an allreduce completed without rank 1")
endif()
if(MODE STREQUAL "survive" AND NOT "${out}${err}" MATCHES "lost peer")
  message(FATAL_ERROR "peer_death (survive): no survivor reported loco::peer_lost")
endif()
message("peer_death (${MODE}): job ended with status ${rc}")
