// The parameters of a MAX_POOL_2D the delegate runs after a claimed conv (claiming/pool_fusion.h,
// operator/max_pool_operator.h), shared by claiming and the operator like ConvParameters.
#ifndef TFLITE_DELEGATE_COMMON_POOL_PARAMETERS_H_
#define TFLITE_DELEGATE_COMMON_POOL_PARAMETERS_H_

#include "common/conv_shape.h"

namespace tflite_sparse {

struct PoolParameters {
  int filter_h = 1;
  int filter_w = 1;
  // The window's strides, TFLite padding rule and a folded PAD's zeros, as a conv's (dilation
  // stays 1). SAME's padded positions take no part in the maximum; the folded PAD's zeros
  // (pad_top ...) do: they are values of the PAD's output.
  ConvParameters window;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_COMMON_POOL_PARAMETERS_H_
