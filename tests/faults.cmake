# Faults during training and writing (tests/test_faults.sh): stale temp files of killed writers
# removed by the next write; a file-size limit and a full tmpfs (mounted when run as root) while
# writing exports, checkpoints, feature caches, heads and keyword clips: a clear error and the
# previous file intact; SIGKILL at 20 random points of `graft finetune --checkpoint`, resumed to
# the uninterrupted run's model bitwise. About 30 s on an idle 2-core machine (TIMEOUT: 10x).
if(NOT DEFINED TINY_CNN)
  set(TINY_CNN ${CMAKE_BINARY_DIR}/tiny_cnn/tiny_cnn.onnx)
endif()
add_test(NAME test_faults
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_faults.sh $<TARGET_FILE:graft_cli> ${TINY_CNN} ${CMAKE_BINARY_DIR}/faults)
set_tests_properties(test_faults PROPERTIES FIXTURES_REQUIRED tiny_cnn LABELS "faults;cli" TIMEOUT 300)
