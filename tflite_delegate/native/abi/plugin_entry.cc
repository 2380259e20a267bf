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
// Called from catch blocks too, so it must not throw: if the message cannot be built (out of
// memory), a fixed one is reported instead.
void Report(void (*report_error)(const char*), const char* message,
            const char* detail = nullptr) noexcept {
  if (report_error == nullptr) return;
  try {
    std::string text = std::string("tflite_sparse_delegate: ") + message;
    if (detail != nullptr) text += detail;
    report_error(text.c_str());
  } catch (...) {
    report_error("tflite_sparse_delegate: out of memory while reporting an error");
  }
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
      Report(report_error, error.c_str());
      return nullptr;
    }
    auto* delegate = new tflite_sparse::SparseDelegate(options);
    return delegate->tflite_delegate();
  } catch (const std::exception& exception) {
    Report(report_error, "could not create the delegate: ", exception.what());
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
  // The fallbacks are string literals, so the catch block allocates nothing and cannot throw.
  static const char kNotOurs[] = "{\"error\": \"not a tflite_sparse_delegate delegate\"}";
  static const char kFailed[] = "{\"error\": \"could not format the report\"}";
  std::string json;
  const char* text = kNotOurs;
  size_t length = sizeof(kNotOurs) - 1;
  try {
    tflite_sparse::SparseDelegate* sparse =
        tflite_sparse::SparseDelegate::FromTfLiteDelegate(delegate);
    if (sparse != nullptr) {
      json = sparse->ReportJson();
      text = json.data();
      length = json.size();
    }
  } catch (...) {
    text = kFailed;
    length = sizeof(kFailed) - 1;
  }
  if (buffer != nullptr && capacity > 0) {
    const size_t copied = length < capacity - 1 ? length : capacity - 1;
    std::memcpy(buffer, text, copied);
    buffer[copied] = '\0';
  }
  return length;
}
