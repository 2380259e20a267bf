// Runs every registered TEST and closes with "N passed, M failed" (the plain summary line).
#include <cstdio>
#include <cstring>
#include <exception>

#include "test_harness.h"

namespace native_test {

std::vector<TestCase>& Registry() {
  static std::vector<TestCase> tests;
  return tests;
}

int& CurrentFailures() {
  static int failures = 0;
  return failures;
}

std::vector<std::string>& SkipNotes() {
  static std::vector<std::string> notes;
  return notes;
}

Failure::Failure(const char* file, int line, const std::string& what) {
  stream_ << file << ":" << line << ": " << what << " failed ";
}

Failure::~Failure() {
  ++CurrentFailures();
  std::fprintf(stderr, "  %s\n", stream_.str().c_str());
}

}  // namespace native_test

int main(int argc, char** argv) {
  // Optional argument: run only tests whose name contains it.
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0;
  int failed = 0;
  for (const native_test::TestCase& test : native_test::Registry()) {
    if (filter != nullptr && std::strstr(test.name, filter) == nullptr) continue;
    native_test::CurrentFailures() = 0;
    try {
      test.body();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "  uncaught exception: %s\n", error.what());
      ++native_test::CurrentFailures();
    }
    const bool ok = native_test::CurrentFailures() == 0;
    std::printf("[%s] %s\n", ok ? "  OK  " : "FAILED", test.name);
    ok ? ++passed : ++failed;
  }
  // Variants the CPU cannot run are listed, so a green run on a small CPU says what it missed.
  if (native_test::SkipNotes().empty()) {
    std::printf("microkernel variants skipped because this CPU lacks their ISA: none\n");
  }
  for (const std::string& note : native_test::SkipNotes()) {
    std::printf("skipped: %s\n", note.c_str());
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
