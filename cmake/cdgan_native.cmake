# cdgan_optimise_for_this_machine(<target>): the compile options of cdgan's own optimised programs
# (the example trainer, the benchmarks), in builds without a type and in Release / RelWithDebInfo:
# - -march=native where the compiler has it and CDGAN_NATIVE is ON;
# - -fno-trapping-math -fno-math-errno for C++: without them GCC keeps an elementwise loop scalar when
#   it holds a comparison (leaky ReLU, where(x > 0, ...)) or sqrtf, since the vector form might raise a
#   floating-point exception or skip setting errno. Neither changes a computed value.
# The library itself sets no such option: users choose their own flags (docs/performance.md).
include(CheckCXXCompilerFlag)
check_cxx_compiler_flag(-march=native CDGAN_HAS_MARCH_NATIVE)
check_cxx_compiler_flag(-fno-trapping-math CDGAN_HAS_NO_TRAPPING_MATH)
function(cdgan_optimise_for_this_machine target)
  if(CMAKE_BUILD_TYPE AND NOT CMAKE_BUILD_TYPE MATCHES "^(Release|RelWithDebInfo)$")
    return()
  endif()
  if(CDGAN_HAS_MARCH_NATIVE AND CDGAN_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  if(CDGAN_HAS_NO_TRAPPING_MATH)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-trapping-math -fno-math-errno>)
  endif()
endfunction()
