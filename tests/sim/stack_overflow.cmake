# Runs PROGRAM with RANKS ranks: it must fail and name rank 5's overflow.
# Under AddressSanitizer an overflow into a neighbouring stack may be caught
# by the sanitizer first (stack-buffer-underflow or -overflow): that report
# counts too.
execute_process(COMMAND ${PROGRAM} ${RANKS} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "sim_stack_overflow ${RANKS} succeeded:\n${out}${err}")
endif()
if(NOT err MATCHES "rank 5 overflowed its stack of 262144 bytes" AND
   NOT (SANITIZE MATCHES "address" AND err MATCHES "AddressSanitizer: stack-buffer-(underflow|overflow)"))
  message(FATAL_ERROR "sim_stack_overflow ${RANKS} failed (${rc}) without naming the rank:\n${out}${err}")
endif()
message(STATUS "sim_stack_overflow ${RANKS}: ${err}")
