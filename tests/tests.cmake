# Whole-engine tests (included from tests/CMakeLists.txt).
function(graft_test name labels)
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${GEN_DIR})
  target_link_libraries(${name} PRIVATE graft DNNL::dnnl)
  add_test(NAME ${name} COMMAND ${name} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}")
endfunction()

graft_test(test_onnx_node "onnx")
