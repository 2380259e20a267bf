// The parameters of a MAX_POOL_2D the delegate runs after a claimed conv (claiming/pool_fusion.h,
// operator/max_pool_operator.h), shared by claiming and the operator like ConvParameters.
#ifndef TFLITE_DELEGATE_COMMON_POOL_PARAMETERS_H_
#define TFLITE_DELEGATE_COMMON_POOL_PARAMETERS_H_

#include "common/conv_shape.h"

namespace tflite_sparse {

struct PoolParameters {
  int filter_h = 1;
  int filter_w = 1;
  int stride_h = 1;
  int stride_w = 1;
  // TFLite's padding rule; SAME's padded positions take no part in the maximum.
  Padding padding = Padding::kValid;
  // Zero rows and columns a folded PAD node puts around the input before `padding` applies:
  // unlike SAME's, these zeros take part in the maximum (they are values of the PAD's output).
  int pad_top = 0;
  int pad_bottom = 0;
  int pad_left = 0;
  int pad_right = 0;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_COMMON_POOL_PARAMETERS_H_
