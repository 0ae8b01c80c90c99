// The cases of tests/shared/graph_cases.hpp on the CPU, with the emulated recording of core/graph.hpp
// (this executable is compiled with CDGAN_EMULATE_GRAPHS_ON_CPU): the model's recording and replaying
// logic, and the rule that nothing that changes from step to step is passed as an argument, tested on
// machines without a GPU. A mutation check: a value baked into a recorded call (a Philox counter, a
// step count, a loss's host value) would make the replayed run differ from the plain one.
#include <doctest/doctest.h>

#include "../shared/graph_cases.hpp"

static_assert(cdgan::step_graph<cdgan::cpu>::supported, "compile this test with CDGAN_EMULATE_GRAPHS_ON_CPU");

TEST_CASE("emulated graph: replaying the recorded training step gives the bits of running it") {
  graph_cases::replay_equals_plain<cdgan::cpu>();
}

TEST_CASE("emulated graph: memory given back between steps makes the model record the step again") {
  graph_cases::memory_given_back_records_again<cdgan::cpu>();
}

TEST_CASE("emulated graph: a β1 ramp keeps the step from being recorded until it ends") {
  graph_cases::ramp_delays_recording<cdgan::cpu>();
}

TEST_CASE("emulated graph: what would break a stream capture throws while recording") {
  using small = cdgan::tensor<cdgan::shape<4>, cdgan::cpu>;
  cdgan::step_graph<cdgan::cpu> g;
  small t(2);
  t = 1.f;
  g.begin();
  t = 2.f;  // recorded, not run
  CHECK_THROWS_AS(t.to_host(), cdgan::device_error);
  CHECK_THROWS_AS(cdgan::backend<cdgan::cpu>::synchronize(), cdgan::device_error);
  CHECK_THROWS_AS(small(1000), cdgan::device_error);
  g.end();
  CHECK(t.to_host()[0] == 1.f);
  g.launch();
  CHECK(t.to_host()[0] == 2.f);
}
