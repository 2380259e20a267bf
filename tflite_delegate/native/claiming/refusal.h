// The outcome of one claiming step: nothing (go on), or a reason code with its message.
#ifndef TFLITE_DELEGATE_CLAIMING_REFUSAL_H_
#define TFLITE_DELEGATE_CLAIMING_REFUSAL_H_

#include <string>
#include <utility>

#include "claiming/reason_code.h"

namespace tflite_sparse {

struct Refusal {
  ReasonCode code = ReasonCode::kClaimed;
  std::string message;

  // Records the refusal and returns false, so a step can `return refusal->Refuse(...)`.
  bool Refuse(ReasonCode refusal_code, std::string text) {
    code = refusal_code;
    message = std::move(text);
    return false;
  }
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_CLAIMING_REFUSAL_H_
