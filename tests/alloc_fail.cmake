# Allocation-failure sweep (included from tests/CMakeLists.txt): graft's static library linked
# with --wrap on the allocator, so that the test can make the N-th allocation fail.
add_executable(test_alloc_fail ${CMAKE_CURRENT_SOURCE_DIR}/test_alloc_fail.c)
target_include_directories(test_alloc_fail PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(test_alloc_fail PRIVATE graft)
target_link_options(test_alloc_fail PRIVATE
  "LINKER:--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign,--wrap=strdup,--wrap=strndup")
add_test(NAME test_alloc_fail
  COMMAND test_alloc_fail ${CMAKE_BINARY_DIR}/testmodels ${CMAKE_BINARY_DIR}/alloc_fail)
set_tests_properties(test_alloc_fail PROPERTIES FIXTURES_REQUIRED testmodels LABELS "unit;alloc" TIMEOUT 600)
