# Every public header compiles on its own, in its own translation unit (Catch2's "surrogate TU"
# idea): a header that forgets an #include, or defines a non-inline function, fails here.
# The CUDA-only kernel headers (*.cuh) are compiled by the CUDA tests instead.
file(GLOB_RECURSE CDGAN_PUBLIC_HEADERS CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR}/include
     ${PROJECT_SOURCE_DIR}/include/cdgan/*.hpp)
# The host-side CUDA headers (backend/cuda/*.hpp) need the CUDA toolkit's include directories: they
# get their own target linked to cdgan::cuda when CUDA is enabled.
set(surrogates)
set(cuda_surrogates)
foreach(h ${CDGAN_PUBLIC_HEADERS})
  string(MAKE_C_IDENTIFIER ${h} id)
  set(src ${CMAKE_CURRENT_BINARY_DIR}/surrogates/${id}.cpp)
  file(CONFIGURE OUTPUT ${src} CONTENT "#include <${h}>\n#include <${h}>  // twice: include guards\n")
  if(h MATCHES "^cdgan/backend/cuda/")
    list(APPEND cuda_surrogates ${src})
  else()
    list(APPEND surrogates ${src})
  endif()
endforeach()
if(CDGAN_ENABLE_CUDA)
  set(cuda_main ${CMAKE_CURRENT_BINARY_DIR}/surrogates/cuda_main.cpp)
  file(CONFIGURE OUTPUT ${cuda_main} CONTENT "#include <cdgan/cdgan.hpp>\nint main() { return 0; }\n")
  add_executable(cdgan_cuda_header_surrogates ${cuda_surrogates} ${cuda_main})
  target_link_libraries(cdgan_cuda_header_surrogates PRIVATE cdgan::cuda)
  set_target_properties(cdgan_cuda_header_surrogates PROPERTIES LINKER_LANGUAGE CXX)
  target_compile_options(cdgan_cuda_header_surrogates PRIVATE -O0)
  add_test(NAME cuda_header_surrogates COMMAND cdgan_cuda_header_surrogates)
endif()
# Two of them in one program: any non-inline definition in a header is a duplicate symbol at link time.
set(odr_main ${CMAKE_CURRENT_BINARY_DIR}/surrogates/odr_main.cpp)
file(CONFIGURE OUTPUT ${odr_main} CONTENT "#include <cdgan/cdgan.hpp>\nint main() { return 0; }\n")
add_executable(cdgan_header_surrogates ${surrogates} ${odr_main})
target_link_libraries(cdgan_header_surrogates PRIVATE cdgan::cdgan)
find_package(ZLIB)
if(ZLIB_FOUND)
  target_link_libraries(cdgan_header_surrogates PRIVATE ZLIB::ZLIB)
endif()
target_compile_options(cdgan_header_surrogates PRIVATE -Wall -Wextra -O0)
add_test(NAME header_surrogates COMMAND cdgan_header_surrogates)
