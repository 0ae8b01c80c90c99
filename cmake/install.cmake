# Install rules and the CMake package of cdgan (included by the top CMakeLists.txt when CDGAN_INSTALL).
#
# Installs the headers under ${CMAKE_INSTALL_INCLUDEDIR}/cdgan, the exported targets cdgan::cdgan (and
# cdgan::cuda when CUDA was enabled at configure time) and, under ${CMAKE_INSTALL_DATADIR}/cmake/cdgan
# (header-only, so architecture-independent), cdganConfig.cmake, cdganConfigVersion.cmake and
# cdganTargets.cmake (+ cdganCudaTargets.cmake). Consumers write:
#
#   find_package(cdgan 0.1 CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE cdgan::cdgan)   # or cdgan::cuda in a CUDA project
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CDGAN_CONFIG_INSTALL_DIR "${CMAKE_INSTALL_DATADIR}/cmake/cdgan" CACHE STRING
    "Where cdgan's CMake package files are installed (relative to the prefix)")
mark_as_advanced(CDGAN_CONFIG_INSTALL_DIR)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/cdgan" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.cuh" PATTERN "*.h")

# cdgan::cdgan in cdganTargets.cmake; cdgan::cuda (when CUDA was enabled here) in its own file,
# which the Config loads only where the consumer's CUDAToolkit is found: an install made on a CUDA
# machine stays usable by CPU-only consumers.
install(TARGETS cdgan EXPORT cdganTargets)
install(EXPORT cdganTargets NAMESPACE cdgan:: FILE cdganTargets.cmake
        DESTINATION "${CDGAN_CONFIG_INSTALL_DIR}")
if(TARGET cdgan_cuda)
  install(TARGETS cdgan_cuda EXPORT cdganCudaTargets)
  install(EXPORT cdganCudaTargets NAMESPACE cdgan:: FILE cdganCudaTargets.cmake
          DESTINATION "${CDGAN_CONFIG_INSTALL_DIR}")
endif()

# Values substituted into the Config file: what the installed targets need from the consumer's system.
if(OpenMP_CXX_FOUND)
  set(CDGAN_CONFIG_OPENMP ON)
else()
  set(CDGAN_CONFIG_OPENMP OFF)
endif()
if(TARGET cdgan_cuda)
  set(CDGAN_CONFIG_CUDA ON)
else()
  set(CDGAN_CONFIG_CUDA OFF)
endif()

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/cdganConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/cdganConfig.cmake"
                              INSTALL_DESTINATION "${CDGAN_CONFIG_INSTALL_DIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cdganConfigVersion.cmake"
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/cdganConfig.cmake" "${PROJECT_BINARY_DIR}/cdganConfigVersion.cmake"
        DESTINATION "${CDGAN_CONFIG_INSTALL_DIR}")

# The same targets from the build tree (export(PACKAGE) is not used: no user registry writes).
export(EXPORT cdganTargets NAMESPACE cdgan:: FILE "${PROJECT_BINARY_DIR}/cdganTargets.cmake")
if(TARGET cdgan_cuda)
  export(EXPORT cdganCudaTargets NAMESPACE cdgan:: FILE "${PROJECT_BINARY_DIR}/cdganCudaTargets.cmake")
endif()
