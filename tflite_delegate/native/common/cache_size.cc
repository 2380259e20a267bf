#include "common/cache_size.h"

#include <cstdio>
#include <string>

namespace tflite_sparse {

namespace {

// The first line of a small sysfs file, without its newline; empty if it cannot be read.
std::string ReadFirstLine(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return std::string();
  char buffer[64] = {};
  const bool read = std::fgets(buffer, sizeof(buffer), file) != nullptr;
  std::fclose(file);
  if (!read) return std::string();
  std::string line(buffer);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

int64_t ReadL3CacheBytes() {
  // index0..3 are usually L1d, L1i, L2, L3; look at a few more in case of other layouts.
  for (int index = 0; index < 8; ++index) {
    const std::string directory =
        "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    if (ReadFirstLine(directory + "level") != "3") continue;
    return ParseCacheSize(ReadFirstLine(directory + "size").c_str());
  }
  return 0;
}

}  // namespace

int64_t ParseCacheSize(const char* text) {
  if (text == nullptr || *text < '0' || *text > '9') return 0;
  int64_t value = 0;
  for (; *text >= '0' && *text <= '9'; ++text) {
    if (value > (int64_t{1} << 40)) return 0;  // no cache is a terabyte: malformed
    value = value * 10 + (*text - '0');
  }
  int64_t unit = 1;
  if (*text == 'K') {
    unit = int64_t{1} << 10;
    ++text;
  } else if (*text == 'M') {
    unit = int64_t{1} << 20;
    ++text;
  } else if (*text == 'G') {
    unit = int64_t{1} << 30;
    ++text;
  }
  return *text == '\0' ? value * unit : 0;
}

int64_t L3CacheBytes() {
  static const int64_t bytes = ReadL3CacheBytes();
  return bytes;
}

}  // namespace tflite_sparse
