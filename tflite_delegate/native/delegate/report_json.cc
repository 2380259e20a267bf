#include "delegate/report_json.h"

#include <cstdio>

namespace tflite_sparse {

namespace {

std::string JsonString(const std::string& text) {
  std::string quoted = "\"";
  for (const char character : text) {
    const unsigned char code = static_cast<unsigned char>(character);
    if (character == '"' || character == '\\') {
      quoted += '\\';
      quoted += character;
    } else if (code < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof(escape), "\\u%04x", code);
      quoted += escape;
    } else {
      quoted += character;
    }
  }
  return quoted + "\"";
}

std::string JsonNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

const char* JsonBool(bool value) { return value ? "true" : "false"; }

}  // namespace

std::string FormatReportJson(const char* isa, bool split_avx512, bool pixel_pairs,
                             int num_threads, int kernels_created, int partitions_created,
                             const std::vector<NodeDecision>& decisions) {
  std::string json = "{\"isa\": " + JsonString(isa) +
                     ", \"split_avx512\": " + JsonBool(split_avx512) +
                     ", \"pixel_pairs\": " + JsonBool(pixel_pairs) +
                     ", \"num_threads\": " + std::to_string(num_threads) +
                     ", \"kernels_created\": " + std::to_string(kernels_created) +
                     ", \"partitions_created\": " + std::to_string(partitions_created) +
                     ", \"nodes\": [";
  for (size_t i = 0; i < decisions.size(); ++i) {
    const NodeDecision& decision = decisions[i];
    if (i > 0) json += ", ";
    json += "{\"node_index\": " + std::to_string(decision.node_index);
    json += ", \"claimed\": ";
    json += JsonBool(decision.claimed);
    json += ", \"reason_code\": ";
    json += JsonString(ReasonCodeName(decision.reason_code));
    json += ", \"reason\": " + JsonString(decision.reason);
    json += ", \"microkernel\": ";
    json += decision.microkernel != nullptr ? JsonString(decision.microkernel) : "null";
    const FilterShape& shape = decision.filter;
    json += ", \"filter_shape\": [" + std::to_string(shape.out_channels) + ", " +
            std::to_string(shape.kernel_h) + ", " + std::to_string(shape.kernel_w) + ", " +
            std::to_string(shape.in_channels) + "]";
    const BlockPattern& pattern = decision.pattern;
    const bool known = decision.has_pattern;
    json += ", \"block_n\": " + (known ? std::to_string(pattern.block_n) : "null");
    json += ", \"block_sparsity\": " + (known ? JsonNumber(pattern.block_sparsity) : "null");
    json += ", \"kept_blocks_min\": " + (known ? std::to_string(pattern.kept_blocks_min) : "null");
    json += ", \"kept_blocks_max\": " + (known ? std::to_string(pattern.kept_blocks_max) : "null");
    json += ", \"balance_ratio\": " + (known ? JsonNumber(pattern.balance_ratio) : "null");
    json += ", \"tap_vector_sparsity\": " +
            (known ? JsonNumber(pattern.tap_vector_sparsity) : "null");
    json += ", \"kept_tap_vectors_min\": " +
            (known ? std::to_string(pattern.kept_tap_vectors_min) : "null");
    json += ", \"kept_tap_vectors_max\": " +
            (known ? std::to_string(pattern.kept_tap_vectors_max) : "null");
    json += ", \"fused_add_node\": " +
            (decision.fused_add_node >= 0 ? std::to_string(decision.fused_add_node) : "null");
    json += ", \"folded_pad_node\": " +
            (decision.folded_pad_node >= 0 ? std::to_string(decision.folded_pad_node) : "null");
    json += ", \"fused_pool_node\": " +
            (decision.fused_pool_node >= 0 ? std::to_string(decision.fused_pool_node) : "null");
    json += ", \"fused_pool_pad_node\": " + (decision.fused_pool_pad_node >= 0
                                                  ? std::to_string(decision.fused_pool_pad_node)
                                                  : "null");
    json += ", \"runs\": " + (decision.runs >= 0 ? std::to_string(decision.runs) : "null");
    json += ", \"run_seconds\": " +
            (decision.runs >= 0 ? JsonNumber(decision.run_seconds) : "null");
    json += "}";
  }
  return json + "]}";
}

}  // namespace tflite_sparse
