// What the partition kernels report back about the claimed nodes they run, for the delegation
// report: the microkernel each node's operator runs once prepared (a pixel-pair or channel-major
// variant may give a layer to the pixel-major one at prepare time) and, with the delegate option
// `profile`, how long the node's convolution took per invoke. Shared by the delegate and its
// kernels; every member is thread-safe (the interpreter may invoke while Python reads the
// report).
#ifndef TFLITE_DELEGATE_DELEGATE_RUN_LOG_H_
#define TFLITE_DELEGATE_DELEGATE_RUN_LOG_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace tflite_sparse {

class RunLog {
 public:
  struct Entry {
    const char* microkernel = nullptr;  // registry name; null until the node's kernel is prepared
    int64_t runs = 0;                   // invokes timed (profile option)
    int64_t nanoseconds = 0;            // their total time in the node's convolution
  };

  // Forgets every node (a new delegate Prepare replaces the nodes).
  void Clear();
  // After a kernel's Prepare: the microkernel each of its nodes runs.
  void SetMicrokernels(const std::vector<std::pair<int, const char*>>& node_microkernels);
  // After a profiled invoke: each node's time in that invoke.
  void AddRuns(const std::vector<std::pair<int, int64_t>>& node_nanoseconds);
  // A copy of every node's entry, by node index.
  std::map<int, Entry> Entries() const;

 private:
  mutable std::mutex mutex_;
  std::map<int, Entry> entries_;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_DELEGATE_RUN_LOG_H_
