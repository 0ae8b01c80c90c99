# CTest registration of the packaging test (tests/consumer/run.sh): install cdgan into a prefix in the
# build tree, then build and run tests/consumer against it with find_package and with FetchContent.
# Included from tests/CMakeLists.txt: include(${CMAKE_CURRENT_SOURCE_DIR}/packaging.cmake)
# It takes a minute or two (three configures, two compiles of <cdgan/cdgan.hpp>), so it carries the
# labels "packaging" and "slow": `ctest -LE packaging` leaves it out.
find_program(CDGAN_BASH bash)
if(CDGAN_BASH)
  add_test(NAME packaging
           COMMAND ${CDGAN_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run.sh ${PROJECT_SOURCE_DIR}
                   ${CMAKE_CURRENT_BINARY_DIR}/packaging)
  set_tests_properties(packaging PROPERTIES LABELS "packaging;slow" TIMEOUT 1200
                       ENVIRONMENT "CDGAN_CONSUMER_CUDA=OFF")
endif()
