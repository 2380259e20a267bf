#include "delegate/run_log.h"

namespace tflite_sparse {

void RunLog::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.clear();
}

void RunLog::SetMicrokernels(const std::vector<std::pair<int, const char*>>& node_microkernels) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [node, name] : node_microkernels) entries_[node].microkernel = name;
}

void RunLog::AddRuns(const std::vector<std::pair<int, int64_t>>& node_nanoseconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [node, nanoseconds] : node_nanoseconds) {
    Entry& entry = entries_[node];
    entry.runs += 1;
    entry.nanoseconds += nanoseconds;
  }
}

std::map<int, RunLog::Entry> RunLog::Entries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_;
}

}  // namespace tflite_sparse
