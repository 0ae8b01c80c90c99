// The doctest main of cdgan_tests; every tests/unit/*_test.cpp adds test cases to it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
