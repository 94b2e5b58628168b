# Whole-engine tests (included from tests/CMakeLists.txt).
function(graft_test name labels)
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${GEN_DIR})
  target_link_libraries(${name} PRIVATE graft DNNL::dnnl)
  add_test(NAME ${name} COMMAND ${name} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}")
endfunction()

graft_test(test_onnx_node "onnx")

# Small models written by python3-onnx for the CLI and bad-input tests.
add_test(NAME make_test_models
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/scripts/make_test_models.py ${CMAKE_BINARY_DIR}/testmodels)
set_tests_properties(make_test_models PROPERTIES FIXTURES_SETUP testmodels LABELS "badinput;model;cli")

add_test(NAME test_badinput
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_badinput.sh $<TARGET_FILE:graft_cli> ${CMAKE_BINARY_DIR}/testmodels)
set_tests_properties(test_badinput PROPERTIES FIXTURES_REQUIRED testmodels LABELS "badinput")
add_test(NAME test_tiny_model
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_tiny_model.sh $<TARGET_FILE:graft_cli> ${CMAKE_BINARY_DIR}/testmodels)
set_tests_properties(test_tiny_model PROPERTIES FIXTURES_REQUIRED testmodels LABELS "model")
graft_test(test_core "unit")
graft_test(test_graph "unit")

# io writers. test_io_export round-trips the model fixtures of tests/models.cmake through
# gr_onnx_save and checks the files with graft, onnxruntime-node and python3-onnx.
graft_test(test_io_export "export"
  ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/io_export ${CMAKE_BINARY_DIR}/models
  ${CMAKE_BINARY_DIR}/ocr /usr/bin/python3)
set_tests_properties(test_io_export PROPERTIES
  FIXTURES_REQUIRED "torchvision_resnet18;torchvision_mobilenet_v2;ppocr")
# Checkpoints: safetensors against an independent python reader/writer (json + numpy).
graft_test(test_io_safetensors "resume"
  ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/io_safetensors /usr/bin/python3)

add_test(NAME test_cli_data COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_data.sh $<TARGET_FILE:graft_cli>)
set_tests_properties(test_cli_data PROPERTIES LABELS "cli;data;badinput")
add_test(NAME test_cli_adapt COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_adapt.sh
  $<TARGET_FILE:graft_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_cli_adapt PROPERTIES LABELS "cli;transfer;badinput")

# Feature extraction against PyTorch, and its cache (a fixture writes the reference).
add_test(NAME extract_reference
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/scripts/extract_reference.py ${CMAKE_BINARY_DIR}/extract_ref)
set_tests_properties(extract_reference PROPERTIES FIXTURES_SETUP extract_ref LABELS "transfer")
add_executable(check_extract ${CMAKE_CURRENT_SOURCE_DIR}/check_extract.c)
target_include_directories(check_extract PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(check_extract PRIVATE graft)
add_test(NAME check_extract COMMAND ${CMAKE_COMMAND} -E env
  sh -c "rm -rf '${CMAKE_BINARY_DIR}/extract_cache' && exec '$<TARGET_FILE:check_extract>' '${CMAKE_BINARY_DIR}/extract_ref' '${CMAKE_BINARY_DIR}/extract_cache'")
set_tests_properties(check_extract PROPERTIES FIXTURES_REQUIRED extract_ref LABELS "transfer")
add_test(NAME test_cli_transfer
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_transfer.sh $<TARGET_FILE:graft_cli> ${CMAKE_BINARY_DIR}/extract_ref
          ${PROJECT_SOURCE_DIR})
set_tests_properties(test_cli_transfer PROPERTIES FIXTURES_REQUIRED extract_ref LABELS "cli;transfer;badinput;export")
