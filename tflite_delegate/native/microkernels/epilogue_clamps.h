// Which clamps a microkernel's epilogue applies. An epilogue clamps each output register to the
// conv's activation range and, with a fused ADD, the sum to the ADD's range: two vector min/max
// operations per clamp and register. An unbounded side of a range is infinite (ActivationRange in
// claiming_policy.h, as XNNPACK sets it), and a min or max against an infinity returns its other
// operand bit for bit (NaN included: x86's min/max return the second operand, the value, when
// either is NaN), so the epilogue may skip it. ResNets' convs are mostly ReLU (only the lower
// bound), linear (none) or linear with a fused ADD + ReLU (only the ADD's lower bound): skipping
// those operations (with the pixel-pair epilogue's plain stores) made ResNet-50 1.02-1.04x
// faster, its 1x1 convs with a fused ADD 1.03-1.12x (docs/RESULTS.md, "Epilogues without
// infinite clamps").
//
// Internal linkage for the same reason as sparse_tile_template.h.
#ifndef TFLITE_DELEGATE_MICROKERNELS_EPILOGUE_CLAMPS_H_
#define TFLITE_DELEGATE_MICROKERNELS_EPILOGUE_CLAMPS_H_

#include "microkernels/microkernel.h"

namespace tflite_sparse {
namespace {

// How one clamp of an epilogue runs.
enum ClampKind : int {
  kClampNone = 0,  // both bounds infinite: nothing to do
  kClampLow = 1,   // only the upper bound infinite (ReLU): one max
  kClampBoth = 2,  // anything else: max, then min (correct for every range)
};

inline int ClampKindOf(float low, float high) {
  if (high != __builtin_inff()) return kClampBoth;
  return low == -__builtin_inff() ? kClampNone : kClampLow;
}

// `value` clamped to [low, high] the way kKind says; bitwise V::Clamp(value, low, high) whenever
// kKind is ClampKindOf(low, high) or kClampBoth.
template <class V, int kKind>
inline typename V::Reg ClampAs(typename V::Reg value, typename V::Reg low,
                               typename V::Reg high) {
  if constexpr (kKind == kClampBoth) {
    return V::Clamp(value, low, high);
  } else if constexpr (kKind == kClampLow) {
    return V::Max(low, value);  // V::Clamp's first half
  } else {
    return value;
  }
}

// The (activation clamp, ADD clamp) pairs that get their own instantiation of a microkernel;
// every other pair runs as kEpilogueGeneral (both clamps kClampBoth).
enum EpilogueKind : int {
  kEpilogueGeneral,
  kEpilogueRelu,           // activation kClampLow, no ADD clamp
  kEpilogueLinear,         // no clamp at all (also every partial sum)
  kEpilogueLinearAddRelu,  // activation kClampNone, ADD kClampLow
};

// The kind of epilogue a call needs: a partial sum (store_partial) is stored unclamped, and the
// ADD's range counts only with a residual.
inline EpilogueKind EpilogueOf(const SparseTileArgs& args) {
  if (args.store_partial) return kEpilogueLinear;
  const int activation = ClampKindOf(args.activation_min, args.activation_max);
  const int add =
      args.residual != nullptr ? ClampKindOf(args.residual_min, args.residual_max) : kClampNone;
  if (add == kClampNone) {
    if (activation == kClampLow) return kEpilogueRelu;
    if (activation == kClampNone) return kEpilogueLinear;
  } else if (add == kClampLow && activation == kClampNone) {
    return kEpilogueLinearAddRelu;
  }
  return kEpilogueGeneral;
}

// An EpilogueKind as a type, for WithEpilogue's callback.
template <int kEpilogue>
struct EpilogueTag {
  static constexpr int kValue = kEpilogue;
};

// Calls body(EpilogueTag<EpilogueOf(args)>()) when kSpecialize, else
// body(EpilogueTag<kEpilogueGeneral>()): the one place a microkernel picks the instantiation of
// its epilogue (the general clamps give the same bits for every kind).
template <bool kSpecialize, class Body>
inline void WithEpilogue(const SparseTileArgs& args, const Body& body) {
  if constexpr (kSpecialize) {
    switch (EpilogueOf(args)) {
      case kEpilogueRelu:
        body(EpilogueTag<kEpilogueRelu>());
        return;
      case kEpilogueLinear:
        body(EpilogueTag<kEpilogueLinear>());
        return;
      case kEpilogueLinearAddRelu:
        body(EpilogueTag<kEpilogueLinearAddRelu>());
        return;
      case kEpilogueGeneral:
        break;
    }
  }
  body(EpilogueTag<kEpilogueGeneral>());
}

// The activation and ADD clamp kinds of each EpilogueKind.
template <int kEpilogue>
struct EpilogueClamps {
  static constexpr int kActivation = kEpilogue == kEpilogueRelu      ? kClampLow
                                     : kEpilogue == kEpilogueGeneral ? kClampBoth
                                                                     : kClampNone;
  static constexpr int kAdd = kEpilogue == kEpilogueLinearAddRelu ? kClampLow
                              : kEpilogue == kEpilogueGeneral     ? kClampBoth
                                                                  : kClampNone;
};

}  // namespace
}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_MICROKERNELS_EPILOGUE_CLAMPS_H_
