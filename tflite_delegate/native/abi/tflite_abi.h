// The subset of the TFLite/LiteRT C ABI this delegate relies on.
//
// No package ships the TFLite C headers for the Python wheels, and the wheels export no TfLite*
// symbols, so the plugin talks to the runtime only through the classic function-pointer ABI.
// These declarations are our own, written from the documented layout of the TFLite C structs
// (field order, sizes and offsets, checked by the static_asserts below), not copied from TFLite
// sources.
// Structs the plugin allocates or passes by value (TfLiteDelegate, TfLiteRegistration) and
// TfLiteTensor (an array the plugin indexes) are complete; runtime-owned structs read through
// pointers only (TfLiteContext, TfLiteNode) are complete too, which costs nothing and lets the
// static_asserts check every field offset used.
#ifndef TFLITE_DELEGATE_ABI_TFLITE_ABI_H_
#define TFLITE_DELEGATE_ABI_TFLITE_ABI_H_

#include <cstddef>
#include <cstdint>

extern "C" {

// All values the runtime may return, so that none lies outside the enum's range.
typedef enum TfLiteStatus {
  kTfLiteOk = 0,
  kTfLiteError = 1,
  kTfLiteDelegateError = 2,
  kTfLiteApplicationError = 3,
  kTfLiteDelegateDataNotFound = 4,
  kTfLiteDelegateDataWriteError = 5,
  kTfLiteDelegateDataReadError = 6,
  kTfLiteUnresolvedOps = 7,
  kTfLiteCancelled = 8,
  kTfLiteOutputShapeNotKnown = 9,
} TfLiteStatus;

typedef enum TfLiteType {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteInt8 = 9,
  kTfLiteFloat16 = 10,
  kTfLiteFloat64 = 11,
  kTfLiteInt4 = 18,
  kTfLiteBFloat16 = 19,
} TfLiteType;

typedef enum TfLiteAllocationType {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo = 1,
  kTfLiteArenaRw = 2,
  kTfLiteArenaRwPersistent = 3,
  kTfLiteDynamic = 4,
  kTfLitePersistentRo = 5,
  kTfLiteCustom = 6,
  kTfLiteVariantObject = 7,
  kTfLiteNonCpu = 8,
} TfLiteAllocationType;

typedef enum TfLitePadding {
  kTfLitePaddingUnknown = 0,
  kTfLitePaddingSame = 1,
  kTfLitePaddingValid = 2,
} TfLitePadding;

typedef enum TfLiteFusedActivation {
  kTfLiteActNone = 0,
  kTfLiteActRelu = 1,
  kTfLiteActReluN1To1 = 2,
  kTfLiteActRelu6 = 3,
  kTfLiteActTanh = 4,
  kTfLiteActSignBit = 5,
  kTfLiteActSigmoid = 6,
} TfLiteFusedActivation;

enum {
  kTfLiteDelegateFlagsNone = 0,
  kTfLiteDelegateFlagsAllowDynamicTensors = 1,
};

enum { kTfLiteNoQuantization = 0 };

// Builtin operator codes used by the claiming policy.
enum {
  kTfLiteBuiltinAdd = 0,
  kTfLiteBuiltinConv2d = 3,
  kTfLiteBuiltinDepthwiseConv2d = 4,
  kTfLiteBuiltinDequantize = 6,
  kTfLiteBuiltinMaxPool2d = 17,
  kTfLiteBuiltinDelegate = 51,
};

typedef struct TfLiteIntArray {
  int size;
  int data[];  // flexible array member (GNU C++ extension, also what TFLite uses)
} TfLiteIntArray;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct TfLiteQuantization {
  int type;
  void* params;
} TfLiteQuantization;

typedef union TfLitePtrUnion {
  void* data;
  float* f;
  uint16_t* f16;  // IEEE half-precision bit patterns
  const void* raw_const;
} TfLitePtrUnion;

struct TfLiteDelegate;
struct TfLiteContext;
struct TfLiteNode;

typedef struct TfLiteTensor {
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  struct TfLiteDelegate* delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void* sparsity;
  const TfLiteIntArray* dims_signature;
} TfLiteTensor;

typedef struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate;
  bool might_have_side_effect;
} TfLiteNode;

typedef struct TfLiteRegistration {
  void* (*init)(struct TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(struct TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(struct TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(struct TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const struct TfLiteContext* context, const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;  // TfLiteOperator*; must stay NULL (opaque path otherwise)
  void* (*async_kernel)(struct TfLiteContext* context, TfLiteNode* node);
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(struct TfLiteContext* context, struct TfLiteDelegate* delegate);
  TfLiteStatus (*CopyFromBufferHandle)(struct TfLiteContext* context,
                                       struct TfLiteDelegate* delegate, int buffer_handle,
                                       TfLiteTensor* tensor);
  TfLiteStatus (*CopyToBufferHandle)(struct TfLiteContext* context,
                                     struct TfLiteDelegate* delegate, int buffer_handle,
                                     TfLiteTensor* tensor);
  void (*FreeBufferHandle)(struct TfLiteContext* context, struct TfLiteDelegate* delegate,
                           int* handle);
  int64_t flags;
  void* opaque_delegate_builder;  // must stay NULL
} TfLiteDelegate;

typedef struct TfLiteDelegateParams {
  TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
} TfLiteDelegateParams;

typedef struct TfLiteConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  TfLiteFusedActivation activation;
  int dilation_width_factor;
  int dilation_height_factor;
  TfLiteType quantized_bias_type;
} TfLiteConvParams;

typedef struct TfLiteDepthwiseConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int depth_multiplier;
  TfLiteFusedActivation activation;
  int dilation_width_factor;
  int dilation_height_factor;
} TfLiteDepthwiseConvParams;

// MAX_POOL_2D's builtin data (TFLite's TfLitePoolParams, the computed padding as its
// TfLitePaddingValues: width, height, width_offset, height_offset).
typedef struct TfLitePoolParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int filter_width;
  int filter_height;
  TfLiteFusedActivation activation;
  struct {
    struct {
      int width;
      int height;
      int width_offset;
      int height_offset;
    } padding;
  } computed;
} TfLitePoolParams;

typedef struct TfLiteAddParams {
  TfLiteFusedActivation activation;
  bool pot_scale_int16;
} TfLiteAddParams;

typedef void (*TfLiteUnusedContextFunction)(void);

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext* context, TfLiteIntArray** execution_plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext* context, TfLiteTensor* tensor,
                               TfLiteIntArray* new_size);
  void (*ReportError)(struct TfLiteContext* context, const char* format, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext* context, int tensors_to_add,
                             int* first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext* context, int node_index,
                                         TfLiteNode** node, TfLiteRegistration** registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext* context,
                                                        TfLiteRegistration registration,
                                                        const TfLiteIntArray* nodes_to_replace,
                                                        TfLiteDelegate* delegate);
  int recommended_num_threads;
  TfLiteUnusedContextFunction GetExternalContext;
  TfLiteUnusedContextFunction SetExternalContext;
  bool allow_fp32_relax_to_fp16;
  void* profiler;
  TfLiteUnusedContextFunction AllocatePersistentBuffer;   // NULL outside TFLite Micro
  TfLiteUnusedContextFunction AllocateBufferForEval;      // NULL
  TfLiteUnusedContextFunction RequestScratchBufferInArena;  // NULL
  TfLiteUnusedContextFunction GetScratchBuffer;           // NULL
  TfLiteUnusedContextFunction ResizeTensorExplicit;       // NULL
  // The partitions ReplaceNodeSubsetsWithDelegateKernels would make of these nodes, without
  // changing the graph; the array is the context's, valid until its next call or replacement.
  TfLiteStatus (*PreviewDelegatePartitioning)(struct TfLiteContext* context,
                                              const TfLiteIntArray* nodes_to_replace,
                                              TfLiteDelegateParams** partition_params_array,
                                              int* num_partitions);
  TfLiteUnusedContextFunction GetTensor;                  // NULL
  TfLiteUnusedContextFunction GetEvalTensor;              // NULL
  TfLiteUnusedContextFunction GetModelMetadata;
  TfLiteUnusedContextFunction AcquireSubgraphContext;
  TfLiteUnusedContextFunction ReleaseSubgraphContext;
} TfLiteContext;

// The two plugin entry points of tflite/delegates/external/external_delegate_interface.h.
TfLiteDelegate* tflite_plugin_create_delegate(const char* const* options_keys,
                                              const char* const* options_values,
                                              size_t num_options,
                                              void (*report_error)(const char*));
void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate);

}  // extern "C"

// The layouts above were verified against both wheels on x86-64 Linux (LP64). They follow from
// the C layout rules for any LP64 System V target (e.g. aarch64 Linux) as well, so the checks run
// there too. Other data models (ILP32, LLP64/Windows, where TfLiteContext also grows) have
// different layouts that nobody verified: the build fails there rather than produce a library
// that would misread the runtime's structs.
#if !defined(__LP64__) || defined(_WIN32)
#error "tflite_abi.h: struct layouts are verified only for LP64 System V targets"
#else
static_assert(sizeof(void*) == 8 && sizeof(size_t) == 8, "LP64 expected");
static_assert(sizeof(TfLiteIntArray) == 4, "TfLiteIntArray size");
static_assert(offsetof(TfLiteIntArray, data) == 4, "TfLiteIntArray::data");

static_assert(sizeof(TfLiteTensor) == 112, "TfLiteTensor size (array stride)");
static_assert(offsetof(TfLiteTensor, type) == 0, "TfLiteTensor::type");
static_assert(offsetof(TfLiteTensor, data) == 8, "TfLiteTensor::data");
static_assert(offsetof(TfLiteTensor, dims) == 16, "TfLiteTensor::dims");
static_assert(offsetof(TfLiteTensor, allocation_type) == 32, "TfLiteTensor::allocation_type");
static_assert(offsetof(TfLiteTensor, bytes) == 40, "TfLiteTensor::bytes");
static_assert(offsetof(TfLiteTensor, name) == 56, "TfLiteTensor::name");
static_assert(offsetof(TfLiteTensor, quantization) == 80, "TfLiteTensor::quantization");
static_assert(offsetof(TfLiteTensor, sparsity) == 96, "TfLiteTensor::sparsity");
static_assert(offsetof(TfLiteTensor, dims_signature) == 104, "TfLiteTensor::dims_signature");

static_assert(sizeof(TfLiteNode) == 80, "TfLiteNode size");
static_assert(offsetof(TfLiteNode, inputs) == 0, "TfLiteNode::inputs");
static_assert(offsetof(TfLiteNode, outputs) == 8, "TfLiteNode::outputs");
static_assert(offsetof(TfLiteNode, user_data) == 32, "TfLiteNode::user_data");
static_assert(offsetof(TfLiteNode, builtin_data) == 40, "TfLiteNode::builtin_data");

static_assert(sizeof(TfLiteRegistration) == 88, "TfLiteRegistration size (passed by value)");
static_assert(offsetof(TfLiteRegistration, invoke) == 24, "TfLiteRegistration::invoke");
static_assert(offsetof(TfLiteRegistration, builtin_code) == 40,
              "TfLiteRegistration::builtin_code");
static_assert(offsetof(TfLiteRegistration, custom_name) == 48, "TfLiteRegistration::custom_name");
static_assert(offsetof(TfLiteRegistration, version) == 56, "TfLiteRegistration::version");
static_assert(offsetof(TfLiteRegistration, registration_external) == 64,
              "TfLiteRegistration::registration_external");
static_assert(offsetof(TfLiteRegistration, inplace_operator) == 80,
              "TfLiteRegistration::inplace_operator");

static_assert(sizeof(TfLiteDelegate) == 56, "TfLiteDelegate size");
static_assert(offsetof(TfLiteDelegate, Prepare) == 8, "TfLiteDelegate::Prepare");
static_assert(offsetof(TfLiteDelegate, flags) == 40, "TfLiteDelegate::flags");
static_assert(offsetof(TfLiteDelegate, opaque_delegate_builder) == 48,
              "TfLiteDelegate::opaque_delegate_builder");

static_assert(sizeof(TfLiteDelegateParams) == 32, "TfLiteDelegateParams size");
static_assert(offsetof(TfLiteDelegateParams, nodes_to_replace) == 8,
              "TfLiteDelegateParams::nodes_to_replace");

static_assert(sizeof(TfLiteConvParams) == 28, "TfLiteConvParams size");
static_assert(offsetof(TfLiteConvParams, activation) == 12, "TfLiteConvParams::activation");
static_assert(offsetof(TfLiteConvParams, dilation_height_factor) == 20,
              "TfLiteConvParams::dilation_height_factor");
static_assert(sizeof(TfLiteDepthwiseConvParams) == 28, "TfLiteDepthwiseConvParams size");
static_assert(sizeof(TfLiteAddParams) == 8, "TfLiteAddParams size");
static_assert(sizeof(TfLitePoolParams) == 40, "TfLitePoolParams size");
static_assert(offsetof(TfLitePoolParams, activation) == 20, "TfLitePoolParams::activation");

static_assert(offsetof(TfLiteContext, GetExecutionPlan) == 8, "TfLiteContext::GetExecutionPlan");
static_assert(offsetof(TfLiteContext, tensors) == 16, "TfLiteContext::tensors");
static_assert(offsetof(TfLiteContext, impl_) == 24, "TfLiteContext::impl_");
static_assert(offsetof(TfLiteContext, ResizeTensor) == 32, "TfLiteContext::ResizeTensor");
static_assert(offsetof(TfLiteContext, ReportError) == 40, "TfLiteContext::ReportError");
static_assert(offsetof(TfLiteContext, GetNodeAndRegistration) == 56,
              "TfLiteContext::GetNodeAndRegistration");
static_assert(offsetof(TfLiteContext, ReplaceNodeSubsetsWithDelegateKernels) == 64,
              "TfLiteContext::ReplaceNodeSubsetsWithDelegateKernels");
static_assert(offsetof(TfLiteContext, recommended_num_threads) == 72,
              "TfLiteContext::recommended_num_threads");
static_assert(offsetof(TfLiteContext, PreviewDelegatePartitioning) == 152,
              "TfLiteContext::PreviewDelegatePartitioning");
static_assert(offsetof(TfLiteContext, GetTensor) == 160, "TfLiteContext::GetTensor");
static_assert(sizeof(TfLiteContext) == 200, "TfLiteContext size (Linux)");
#endif

#endif  // TFLITE_DELEGATE_ABI_TFLITE_ABI_H_
