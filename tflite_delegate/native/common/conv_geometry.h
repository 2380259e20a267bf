// Output size, SAME padding and pre-padded input layout of a CONV_2D node (TFLite rules).
#ifndef TFLITE_DELEGATE_COMMON_CONV_GEOMETRY_H_
#define TFLITE_DELEGATE_COMMON_CONV_GEOMETRY_H_

#include <cstdint>
#include <string>

#include "common/conv_shape.h"

namespace tflite_sparse {

struct ConvGeometry {
  int batch = 0;
  int in_h = 0;
  int in_w = 0;
  int channels = 0;  // input channels == filter I (groups == 1)
  int out_h = 0;
  int out_w = 0;
  int out_channels = 0;
  int pad_top = 0;   // zero rows in front of the input; the extra odd row goes to the bottom
  int pad_left = 0;  // zero columns in front of the input; the extra odd column goes right
  int padded_h = 0;  // rows of the pre-padded input image
  int padded_w = 0;  // columns of the pre-padded input image
  bool needs_padding = false;  // false: the microkernels read the input tensor in place
  ConvParameters params;
  FilterShape filter;

  // Floats in one pre-padded input image (padded_h * padded_w * channels).
  int64_t PaddedImageSize() const {
    return static_cast<int64_t>(padded_h) * padded_w * channels;
  }
  bool operator==(const ConvGeometry& other) const;
};

// Why ComputeConvGeometry refused a shape.
enum class GeometryError {
  kNone,
  kInvalidParameters,  // non-positive stride or dilation
  kZeroSized,          // empty filter, input or output
  kIndexOverflow,      // sizes beyond the microkernels' 32-bit offsets
};

// Computes the geometry for an NHWC input of the given size. Returns false and sets `reason`
// (and `error`, when given) when the shape is unusable: non-positive stride or dilation, empty
// input or output, or sizes whose
// per-image indices would not fit the microkernels' 32-bit offsets ("packed indices would overflow
// 32-bit ...").
bool ComputeConvGeometry(int batch, int in_h, int in_w, int channels, const FilterShape& filter,
                         const ConvParameters& params, ConvGeometry* geometry,
                         std::string* reason, GeometryError* error = nullptr);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_COMMON_CONV_GEOMETRY_H_
