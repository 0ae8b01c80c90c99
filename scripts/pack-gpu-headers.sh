#!/usr/bin/env bash
# pack-gpu-headers.sh — builds the HEADERS_DIR that scripts/gpu-check.sh needs, from the Debian
# packages installed on THIS machine, for a GPU machine that has nvcc and CMake but no network and none
# of cdgan's other dependencies.
#
#   bash scripts/pack-gpu-headers.sh HEADERS_DIR      (e.g. build-gpu-headers: build*/ is git-ignored)
#
# What it copies (each package's files from `dpkg -L`, under HEADERS_DIR/usr/... as on Debian, without
# /usr/share/doc, man pages and lintian overrides):
#   libeigen3-dev        Eigen headers + Eigen3Config.cmake (Eigen3_DIR = usr/share/eigen3/cmake)
#   doctest-dev          doctest headers + doctestConfig.cmake (usr/lib/cmake/doctest); its targets file
#                        hard-codes the prefix /usr, which is rewritten to be relative to the folder
#   nlohmann-json3-dev   nlohmann/json headers + config (usr/share/cmake/nlohmann_json)
#   libcli11-dev         CLI11 headers + config (usr/share/cmake/CLI11)
#   libfmt-dev           fmt headers only. Debian's fmt is a compiled library (libfmt.so.9, from libfmt9),
#                        so its config is replaced by usr/lib/cmake/fmt/fmt-config.cmake, a small file
#                        that defines fmt::fmt as header-only (FMT_HEADER_ONLY=1: fmt/core.h then pulls in
#                        format-inl.h, which libfmt-dev ships; no libfmt.so is needed to link)
#   zlib1g-dev           zlib.h, zconf.h and the static libz.a (no run-time dependency on the GPU machine)
#   libbenchmark-dev     (optional, when installed) Google Benchmark headers, config and libbenchmark_main.a,
#   libbenchmark1debian  plus libbenchmark.so.1.7.1 itself. A compiled C++ library: it needs a libstdc++
#                        at least as new as this machine's (GLIBCXX_3.4.30, GCC 12) on the GPU machine;
#                        where it is older, gpu-check.sh reports the GPU benchmark as not built or not run.
# It also writes HEADERS_DIR/MANIFEST.txt (package versions, the machine it was packed on).
#
# Requires: a Debian-like system with dpkg and those packages installed (scripts/install-deps.sh
# installs them; libbenchmark-dev too). Prints the folder's size when done.
set -euo pipefail

if [[ $# -ne 1 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 2
fi
out="$1"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log() { echo "pack-gpu-headers: $*" >&2; }

required=(libeigen3-dev doctest-dev nlohmann-json3-dev libcli11-dev libfmt-dev zlib1g-dev)
optional=(libbenchmark-dev libbenchmark1debian)
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

missing=()
for p in "${required[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  log "missing packages: ${missing[*]} (sudo apt-get install ${missing[*]})"
  exit 1
fi
packages=("${required[@]}")
if installed libbenchmark-dev && installed libbenchmark1debian; then
  packages+=("${optional[@]}")
else
  log "libbenchmark-dev not installed: the folder will have no Google Benchmark (gpu-check.sh then skips the GPU benchmark)"
fi

# Files not to copy: documentation, and the shared-library links of packages whose library is not
# packed (libfmt.so -> libfmt.so.9 of libfmt9; libz.so -> libz.so.1 of zlib1g: libz.a is used instead).
skip() {
  case "$1" in
    /usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/*) return 0 ;;
    */libfmt.so* | */libz.so*) return 0 ;;
    */cmake/fmt/*) return 0 ;;  # replaced by the header-only config below
  esac
  return 1
}

n=0
for p in "${packages[@]}"; do
  while IFS= read -r f; do
    [[ -z "$f" || -d "$f" && ! -L "$f" ]] && continue
    [[ -e "$f" || -L "$f" ]] || continue
    skip "$f" && continue
    cp -P --parents "$f" "$out"
    n=$((n + 1))
  done < <(dpkg -L "$p")
done
log "copied $n files from ${packages[*]}"

# doctest: the targets file says set(_IMPORT_PREFIX "/usr"); make it the folder's usr/.
dt="$out/usr/lib/cmake/doctest/doctestTargets.cmake"
if [[ -f "$dt" ]] && grep -q 'set(_IMPORT_PREFIX "/usr")' "$dt"; then
  sed -i 's|set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' "$dt"
fi

# fmt: header-only config (Debian's imports libfmt.so.9, which is not in the folder).
mkdir -p "$out/usr/lib/cmake/fmt"
fmt_version="$(dpkg-query -W -f='${Version}' libfmt-dev | sed 's/[+~-].*//')"
cat >"$out/usr/lib/cmake/fmt/fmt-config.cmake" <<'EOF'
# fmt as a header-only library (FMT_HEADER_ONLY), written by cdgan's scripts/pack-gpu-headers.sh in
# place of Debian's fmt-config.cmake, which imports the compiled libfmt.so.
get_filename_component(_cdgan_fmt_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET fmt::fmt-header-only)
  add_library(fmt::fmt-header-only INTERFACE IMPORTED)
  set_target_properties(fmt::fmt-header-only PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_cdgan_fmt_prefix}/include"
    INTERFACE_COMPILE_DEFINITIONS "FMT_HEADER_ONLY=1")
endif()
if(NOT TARGET fmt::fmt)
  add_library(fmt::fmt INTERFACE IMPORTED)
  set_target_properties(fmt::fmt PROPERTIES INTERFACE_LINK_LIBRARIES fmt::fmt-header-only)
endif()
unset(_cdgan_fmt_prefix)
set(fmt_FOUND TRUE)
EOF
cat >"$out/usr/lib/cmake/fmt/fmt-config-version.cmake" <<EOF
# Written by cdgan's scripts/pack-gpu-headers.sh: fmt $fmt_version (Debian libfmt-dev), header-only.
set(PACKAGE_VERSION "$fmt_version")
if(PACKAGE_FIND_VERSION AND PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
EOF

# Any other absolute /usr prefix left in a CMake file would point outside the folder: report it.
if grep -rlE 'set\(_IMPORT_PREFIX "/usr"\)|(INCLUDE_DIRECTORIES|IMPORTED_LOCATION[A-Z_]*) +"/usr' "$out/usr" --include='*.cmake' 2>/dev/null; then
  log "WARNING: the CMake files above still name /usr directly"
fi

{
  echo "cdgan GPU headers folder, packed by scripts/pack-gpu-headers.sh"
  echo "packed on: $(hostname) $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "compiler here: $(g++ --version 2>/dev/null | head -1)"
  echo
  echo "packages:"
  for p in "${packages[@]}"; do dpkg-query -W -f='  ${Package} ${Version}\n' "$p"; done
  echo
  echo "CMake package directories (relative to this folder):"
  (cd "$out" && find usr -name '*onfig.cmake' -o -name '*-config.cmake' | sort | sed 's/^/  /')
  echo
  echo "zlib: usr/include/zlib.h, usr/lib/*/libz.a (static)"
} >"$out/MANIFEST.txt"

log "wrote $out ($(du -sh "$out" | cut -f1)); see $out/MANIFEST.txt"
