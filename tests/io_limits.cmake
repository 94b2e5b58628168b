# Sizes read from files checked before allocating (.npy, safetensors, heads, checkpoints):
# included from tests/CMakeLists.txt after tests.cmake (it uses graft_test from there).
# "unit;badinput" so that `make test-fast` and `make asan` (ASan/UBSan) run it.
graft_test(test_io_limits "unit;badinput" ${CMAKE_BINARY_DIR}/io_limits)
