// Shapes and parameters of a CONV_2D layer shared by every layer of the native code (claiming,
// packing, operator): the OHWI filter shape and the stride/dilation/padding settings.
#ifndef TFLITE_DELEGATE_COMMON_CONV_SHAPE_H_
#define TFLITE_DELEGATE_COMMON_CONV_SHAPE_H_

#include <cstdint>

namespace tflite_sparse {

struct FilterShape {
  int out_channels = 0;  // O
  int kernel_h = 0;      // KH
  int kernel_w = 0;      // KW
  int in_channels = 0;   // I
  // Filter taps per output channel: KH * KW * I.
  int64_t TapsPerChannel() const {
    return static_cast<int64_t>(kernel_h) * kernel_w * in_channels;
  }
};

enum class Padding { kSame, kValid };

struct ConvParameters {
  Padding padding = Padding::kValid;
  int stride_h = 1;
  int stride_w = 1;
  int dilation_h = 1;
  int dilation_w = 1;
  // Zero rows and columns a folded PAD node (claiming/pad_folding.h) puts around the input
  // before `padding` applies: the convolution then sees an input of in_h + pad_top + pad_bottom
  // rows and in_w + pad_left + pad_right columns. All 0 for a conv without a folded PAD.
  int pad_top = 0;
  int pad_bottom = 0;
  int pad_left = 0;
  int pad_right = 0;
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_COMMON_CONV_SHAPE_H_
