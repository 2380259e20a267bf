// The exported C entry points: the two functions of TFLite's external delegate interface and one
// introspection function. Nothing else is visible outside the library (see exports.lds).
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "delegate.h"
#include "options.h"
#include "tflite_abi.h"

#define TFLITE_SPARSE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// report_error is a ctypes callback valid only during the create call: use it, never keep it.
void Report(void (*report_error)(const char*), const std::string& message) {
  if (report_error != nullptr) report_error(("tflite_sparse_delegate: " + message).c_str());
}

}  // namespace

TFLITE_SPARSE_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(
    const char* const* options_keys, const char* const* options_values, size_t num_options,
    void (*report_error)(const char*)) {
  try {
    tflite_sparse::DelegateOptions options;
    std::string error;
    if (!tflite_sparse::ParseDelegateOptions(options_keys, options_values, num_options, &options,
                                             &error)) {
      Report(report_error, error);
      return nullptr;
    }
    auto* delegate = new tflite_sparse::SparseDelegate(options);
    return delegate->tflite_delegate();
  } catch (const std::exception& exception) {
    Report(report_error, std::string("could not create the delegate: ") + exception.what());
  } catch (...) {
    Report(report_error, "could not create the delegate");
  }
  return nullptr;
}

TFLITE_SPARSE_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  // Destruction joins the pool's threads; nothing in it throws.
  delete tflite_sparse::SparseDelegate::FromTfLiteDelegate(delegate);
}

// Writes the JSON report of `delegate` (NUL-terminated, truncated to capacity - 1 characters) and
// returns the full length without the NUL, so callers can retry with a larger buffer.
TFLITE_SPARSE_EXPORT size_t tflite_sparse_delegate_report(const TfLiteDelegate* delegate,
                                                          char* buffer, size_t capacity) {
  std::string json;
  try {
    tflite_sparse::SparseDelegate* sparse =
        tflite_sparse::SparseDelegate::FromTfLiteDelegate(delegate);
    json = sparse != nullptr ? sparse->ReportJson()
                             : "{\"error\": \"not a tflite_sparse_delegate delegate\"}";
  } catch (...) {
    json = "{\"error\": \"could not format the report\"}";
  }
  if (buffer != nullptr && capacity > 0) {
    const size_t copied = json.size() < capacity - 1 ? json.size() : capacity - 1;
    std::memcpy(buffer, json.data(), copied);
    buffer[copied] = '\0';
  }
  return json.size();
}
