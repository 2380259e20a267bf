// JSON text of the delegate's claiming report (read from Python through
// tflite_sparse_delegate_report).
#ifndef TFLITE_DELEGATE_DELEGATE_REPORT_JSON_H_
#define TFLITE_DELEGATE_DELEGATE_REPORT_JSON_H_

#include <string>
#include <vector>

#include "claiming/claiming_policy.h"

namespace tflite_sparse {

// {"isa": ..., "split_avx512": ..., "pixel_pairs": ..., "num_threads": ..., "kernels_created":
// ..., "partitions_created": ..., "nodes": [{...}, ...]}; split_avx512 is CpuSplitsAvx512()
// (which default min_sparsity table applies), pixel_pairs the resolved option (whether pixel-pair
// variants may be chosen); a node has
// node_index, claimed, reason_code, reason, microkernel, filter_shape, block_n, the block
// statistics (block_sparsity, kept_blocks_min, kept_blocks_max, balance_ratio) and the
// tap-vector statistics (tap_vector_sparsity, kept_tap_vectors_min, kept_tap_vectors_max); the
// statistics are null when the node was refused before its filter was analysed; fused_add_node
// is the ADD node run in the conv's epilogue, or null; runs and run_seconds (profile option) the
// invokes timed and their total time in the conv, or null.
std::string FormatReportJson(const char* isa, bool split_avx512, bool pixel_pairs,
                             int num_threads, int kernels_created, int partitions_created,
                             const std::vector<NodeDecision>& decisions);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_DELEGATE_REPORT_JSON_H_
