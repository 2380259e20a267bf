// A small self-contained unit-test harness for the delegate's C++ layers (no dependency beyond
// the standard library, so `make test` needs nothing installed).
//
//   TEST(PackingKeepsTapOrder) { ... EXPECT_EQ(a, b); EXPECT_TRUE(x) << "context"; ... }
//
// Every TEST registers itself; test_main.cc runs them all, prints one line per failed check and
// closes with "N passed, M failed" (and the skipped microkernel variants).
#ifndef TESTS_TFLITE_DELEGATE_NATIVE_TEST_HARNESS_H_
#define TESTS_TFLITE_DELEGATE_NATIVE_TEST_HARNESS_H_

#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace native_test {

struct TestCase {
  const char* name;
  std::function<void()> body;
};

std::vector<TestCase>& Registry();
// Failed checks of the running test.
int& CurrentFailures();
// Notes printed at the end of the run (e.g. microkernel variants skipped on this CPU).
std::vector<std::string>& SkipNotes();

struct Registrar {
  Registrar(const char* name, std::function<void()> body) {
    Registry().push_back({name, std::move(body)});
  }
};

// Collects the message of one failed check and prints it when destroyed.
class Failure {
 public:
  Failure(const char* file, int line, const std::string& what);
  ~Failure();
  template <class T>
  Failure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Deterministic random source for a test (seeded per call site).
inline std::mt19937_64 Random(uint64_t seed) { return std::mt19937_64(seed); }

inline int UniformInt(std::mt19937_64& rng, int low, int high) {  // [low, high]
  return std::uniform_int_distribution<int>(low, high)(rng);
}

inline float UniformFloat(std::mt19937_64& rng, float low, float high) {
  return std::uniform_real_distribution<float>(low, high)(rng);
}

}  // namespace native_test

#define NATIVE_TEST_CONCAT_INNER(a, b) a##b
#define NATIVE_TEST_CONCAT(a, b) NATIVE_TEST_CONCAT_INNER(a, b)

#define TEST(name)                                                                     \
  static void NATIVE_TEST_CONCAT(TestBody_, name)();                                   \
  static const ::native_test::Registrar NATIVE_TEST_CONCAT(test_registrar_, name)(     \
      #name, &NATIVE_TEST_CONCAT(TestBody_, name));                                    \
  static void NATIVE_TEST_CONCAT(TestBody_, name)()

// Each check evaluates its arguments once; on failure it prints file:line, the expression and
// anything streamed into it.
#define EXPECT_TRUE(condition) \
  if (condition) {             \
  } else                       \
    ::native_test::Failure(__FILE__, __LINE__, "EXPECT_TRUE(" #condition ")")

#define EXPECT_EQ(actual, expected)                                                          \
  if (const auto& native_test_a = (actual); native_test_a == (expected)) {                   \
  } else                                                                                     \
    ::native_test::Failure(__FILE__, __LINE__, "EXPECT_EQ(" #actual ", " #expected ")")      \
        << "got " << native_test_a << ": "

#endif  // TESTS_TFLITE_DELEGATE_NATIVE_TEST_HARNESS_H_
