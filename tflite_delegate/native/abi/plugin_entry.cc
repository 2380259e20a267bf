// The exported C entry points: the two functions of TFLite's external delegate interface, the
// claiming report, the reason of the last failed creation, and the microkernel registry.
// Nothing else is visible outside the library (see exports.lds).
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "abi/tflite_abi.h"
#include "delegate/delegate.h"
#include "delegate/options.h"
#include "microkernels/microkernel.h"

#define TFLITE_SPARSE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// Reason of the last failed tflite_plugin_create_delegate in this thread ("" after a success).
// Fixed-size so that recording it never allocates (it is written from catch blocks too).
thread_local char last_error[1024] = "";

void RecordError(const char* message, const char* detail = nullptr) noexcept {
  size_t length = 0;
  for (const char* part : {message, detail}) {
    for (; part != nullptr && *part != '\0' && length + 1 < sizeof(last_error); ++part) {
      last_error[length++] = *part;
    }
  }
  last_error[length] = '\0';
}

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
  last_error[0] = '\0';
  try {
    tflite_sparse::DelegateOptions options;
    std::string error;
    if (!tflite_sparse::ParseDelegateOptions(options_keys, options_values, num_options, &options,
                                             &error)) {
      RecordError(error.c_str());
      Report(report_error, error.c_str());
      return nullptr;
    }
    auto* delegate = new tflite_sparse::SparseDelegate(options);
    return delegate->tflite_delegate();
  } catch (const std::exception& exception) {
    RecordError("could not create the delegate: ", exception.what());
    Report(report_error, "could not create the delegate: ", exception.what());
  } catch (...) {
    RecordError("could not create the delegate");
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

// The reason why the last tflite_plugin_create_delegate of the calling thread returned NULL, or
// "" if it succeeded (or none was made). Valid until that thread's next create call.
TFLITE_SPARSE_EXPORT const char* tflite_sparse_delegate_last_error(void) { return last_error; }

// JSON array of the microkernel registry: one object per variant with name, isa, weight_type,
// block_n, tile_pixels, layout and supported_by_cpu. The text lives as long as the library;
// NULL only if it could not be built (out of memory).
TFLITE_SPARSE_EXPORT const char* tflite_sparse_delegate_microkernels(void) {
  try {
    static const std::string json = tflite_sparse::MicrokernelsJson();
    return json.c_str();
  } catch (...) {
    return nullptr;
  }
}
