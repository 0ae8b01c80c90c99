// The training step recorded as a CUDA graph (model_options::cuda_graph) against the same step run
// kernel by kernel, bit for bit, and how often it is recorded and replayed: the cases of
// tests/shared/graph_cases.hpp on the GPU (tests/emulated/graph_emulated_test.cpp runs the same cases
// on the CPU with an emulated recording). Without a CUDA device every case prints "SKIPPED: no CUDA
// device" (see cuda_test.hpp).
#include <doctest/doctest.h>

#include "../shared/graph_cases.hpp"
#include "cuda_test.hpp"

TEST_CASE("graph: replaying the recorded training step gives the bits of running it") {
  CDGAN_REQUIRE_GPU();
  graph_cases::replay_equals_plain<cdgan::cuda>();
}

TEST_CASE("graph: memory given back between steps makes the model record the step again") {
  CDGAN_REQUIRE_GPU();
  graph_cases::memory_given_back_records_again<cdgan::cuda>();
}

TEST_CASE("graph: a β1 ramp keeps the step from being recorded until it ends") {
  CDGAN_REQUIRE_GPU();
  graph_cases::ramp_delays_recording<cdgan::cuda>();
}
