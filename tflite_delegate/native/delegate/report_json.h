// JSON text of the delegate's claiming report (read from Python through
// tflite_sparse_delegate_report).
#ifndef TFLITE_DELEGATE_REPORT_JSON_H_
#define TFLITE_DELEGATE_REPORT_JSON_H_

#include <string>
#include <vector>

#include "claiming_policy.h"

namespace tflite_sparse {

// {"isa": ..., "num_threads": ..., "kernels_created": ..., "nodes": [{...}, ...]}
std::string FormatReportJson(const char* isa, int num_threads, int kernels_created,
                             const std::vector<NodeDecision>& decisions);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_REPORT_JSON_H_
