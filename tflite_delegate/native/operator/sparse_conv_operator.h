// The sparse CONV_2D operator: a packed filter plus the geometry of the current input shape.
//
// Prepare (once per input shape) computes the output size, the per-kept-tap-vector input
// offsets, the per-output-pixel input offsets (the indirection over flattened pixels), the
// zero-bordered scratch for pre-padding, and how the work is tiled. Run pads the input when the
// convolution needs it, then calls the microkernel once per (pixel tile, group range) through
// the threading layer.
//
// With a channel-major variant (InputLayout::kChannelMajor, chosen by SelectMicrokernel)
// tiles are whole pixel vectors. On a 1x1 layer each work item first transposes its tile's
// pixels (at a stride, those of each output row it covers) into a small per-thread
// channel-major panel (then calls the microkernel on it); on a KxK one (or a padded 1x1) Run
// first writes the batch's planes, the padded input channel by channel (at a stride, its
// phases), into the workspace or, for a layer of few tiles, each thread its own copy
// (microkernel.h), and tiles are runs of positions of the plane grid. If the panel cannot be
// used for a shape (offsets beyond 32 bits) the operator runs the pixel-major variant of the
// same ISA, N and weight type instead.
//
// With a pixel-pair variant (InputLayout::kPixelPair, chosen for KxK and 1x1 convolutions) Run builds the whole batch's pair image first (instead of the padded copy;
// microkernel.h) in a workspace that operators may share (set_workspace), or for a 1x1 layer
// pairs each tile's pixels into a per-thread buffer right before its call; tiles are runs of
// pixel pairs (a pair is two pixels of one output row; in an odd-width output the last column's
// pixels pair vertically for a KxK layer, else the last pixel of a row is a pair of its own).
// Where pairs measured slower, the pixel-major variant runs the layer
// (set_pixel_pair_fallback). The operator knows nothing of TFLite (delegate/partition_kernel.h
// runs it), so the C++ tests and the microbenchmark drive it directly.
#ifndef TFLITE_DELEGATE_OPERATOR_SPARSE_CONV_OPERATOR_H_
#define TFLITE_DELEGATE_OPERATOR_SPARSE_CONV_OPERATOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/conv_shape.h"
#include "microkernels/microkernel.h"
#include "common/conv_geometry.h"
#include "packing/packing.h"
#include "threading/thread_pool.h"

namespace tflite_sparse {

// A range of packed weights (bytes), e.g. what a layer's first group chunk reads.
struct WeightRange {
  const void* data = nullptr;
  int64_t bytes = 0;
};

class SparseConvOperator {
 public:
  // `variant` must have packed.block_n (either layout); the pool may be shared with other
  // operators.
  SparseConvOperator(const ConvParameters& params, float activation_min, float activation_max,
                     PackedFilter packed, const MicrokernelVariant* variant,
                     std::shared_ptr<ThreadPool> pool);

  // Prepares for an NHWC input of the given shape (batch may be 0: the output is empty).
  // Returns false with `error` set when the shape is unusable; throws std::bad_alloc when
  // memory runs out. Until a Prepare succeeds, Run refuses to run.
  bool Prepare(int batch, int in_h, int in_w, int channels, std::string* error);

  // Output shape of the last successful Prepare: batch, out_h, out_w, out_channels.
  const ConvGeometry& geometry() const { return geometry_; }

  // Convolves `input` (batch x in_h x in_w x channels floats) into `output` (batch x out_h x
  // out_w x out_channels floats). With a `residual` (shaped like the output) it also runs a
  // fused ADD: output = clamp(conv + residual) to the range of set_residual_activation (see
  // microkernel.h). False if not prepared or a worker failed.
  bool Run(const float* input, float* output, const float* residual = nullptr);

  // The fused ADD's activation range (default: none, [-inf, inf]).
  void set_residual_activation(float activation_min, float activation_max) {
    residual_min_ = activation_min;
    residual_max_ = activation_max;
  }

  // Kept FLOPs per Run below which the calling thread runs the layer alone instead of waking
  // workers; applies from the next Prepare. The default, kDefaultMinParallelFlops, is about 10 us
  // of one core: below it, handing half the tiles to a worker costs about what it saves. Above
  // it a split costs the calling thread little even when the worker sleeps (the work-stealing
  // join does not wait for a worker that has not started: threading/parallelize.h), and a
  // worker still polling from the previous conv takes half. Measured on ResNet-50's single-conv
  // layers at 90 % 1x16 block sparsity, 2 threads (docs/RESULTS.md): with the former 4 MFLOP,
  // 56x56 1x1 64->64 (2.8 MFLOP kept) ran alone, 2-over-1-thread scaling 0.85-1.03x in four
  // runs; with 1 MFLOP it splits, 1.04-1.80x. The C++ tests set 0 so that their small layers
  // still exercise the split between threads.
  static constexpr int64_t kDefaultMinParallelFlops = 1000 * 1000;
  void set_min_parallel_flops(int64_t flops) {
    min_parallel_flops_ = flops;
    prepared_ = false;
  }
  // After Prepare: whether Run hands tiles to the pool's workers (false with one thread or
  // below min_parallel_flops).
  bool splits_between_threads() const { return !serial_; }
  // After Prepare: the work decomposition (see tile_first_pixel_ and chunk_first_group_ below).
  int64_t pixel_tiles() const { return static_cast<int64_t>(tile_first_pixel_.size()) - 1; }
  int64_t group_chunks() const { return static_cast<int64_t>(chunk_first_group_.size()) - 1; }
  // After Prepare: the pixel tiles that run with SparseTileArgs::pixel_spacing set
  // (PrepareTileSpacing), a run of merged tiles counting once (MergeSpacedTiles).
  int64_t evenly_spaced_tiles() const;
  // After Prepare: SparseTileArgs::group_taps of every call (0: the groups' counts differ, or the
  // layer has input-channel blocks).
  int32_t group_taps() const { return group_taps_; }

  // Output bytes per Run from which Run writes the output with non-temporal stores
  // (SparseTileArgs::stream_output): such an output, with the input it is computed from, does
  // not fit in the last-level cache, so reading each output line into the caches before
  // overwriting it (what a plain store does) only adds memory traffic, and the next layer reads
  // it from memory either way. Default StreamingOutputBytes(): half the L3 cache
  // (common/cache_size.h), 16 MiB when the OS does not report one. Applies from the next
  // Prepare; the C++ tests set 0 to stream small layers.
  static int64_t StreamingOutputBytes();
  void set_streaming_output_bytes(int64_t bytes) {
    streaming_output_bytes_ = bytes;
    prepared_ = false;
  }
  // After Prepare: whether Run streams the output (when the output pointer is 64-byte aligned).
  // Needs a pixel-major or pixel-pair variant with N x 4 bytes a multiple of 64 and out_channels
  // a multiple of 16, so that every streamed store fills whole lines (a partial last group, then
  // itself whole lines, keeps plain stores), and no input-channel blocks (whose partial sums are
  // re-read from the output).
  bool streams_output() const { return stream_output_; }
  // True if Run may write its output over its residual (the same bytes): the prepared variant
  // writes each output element after reading that element's residual, in the same call, and
  // nothing else writes the output before (pixel-major and pixel-pair variants without
  // input-channel blocks, whose partial sums pass through the output; a channel-major variant
  // stores the convolution first and adds the residual in a second pass). False before Prepare.
  bool output_may_overwrite_residual() const;

  // The buffer a pixel-pair variant builds its pair image in, grown by Prepare to what the
  // prepared shape needs and rewritten whole by every Run. Each operator starts with its own;
  // operators that never run at the same time (the steps of one partition) share one, so that
  // a layer writes lines that earlier layers left in the caches instead of its own buffer's,
  // which the layers in between have evicted (a cold 1.6 MB pair image for 56x56x64 took about
  // 3.5x as long to build as a warm one: docs/RESULTS.md, "Pixel pairs for 1x16 layers").
  void set_workspace(std::shared_ptr<AlignedBuffer> workspace) {
    workspace_ = std::move(workspace);
    prepared_ = false;
  }

  // Whether a pixel-pair variant at N >= 16 gives the layer to the pixel-major one where the
  // pairs measured slower inside models: 1x1 layers with less than 96 kept FLOPs per paired
  // input value and group chunk (constants in the .cc). Default on; applies from the next
  // Prepare. The C++ tests turn it off so that their small layers run paired.
  void set_pixel_pair_fallback(bool enabled) {
    pair_fallback_ = enabled;
    prepared_ = false;
  }

  // Weight prefetching. Run computes a layer group chunk by group chunk, each chunk's weights
  // swept over every pixel tile, so only the first tile of a chunk reads them from memory: on a
  // 7x7 layer that tile ran several times slower than the rest, and ResNet-50's 7x7 layers ran
  // inside the model at 1.5-2.3x their time with warm weights (docs/RESULTS.md, "Weight
  // prefetching"). So each run of work items (the contiguous run a thread starts with:
  // threading/parallelize.h) prefetches into L2, while it computes a chunk, the weights it
  // reads next (SparseTileArgs::prefetch_address): its next chunk, or after its last chunk
  // next_weights[run], what the caller runs next on that thread (PartitionKernel: the next
  // step's FirstWeightsOfRuns). set_next_weights keeps the prepared state.
  //
  // After Prepare: per run of Run's split (one for a layer the calling thread runs alone), the
  // packed weights of the group chunk it starts with.
  std::vector<WeightRange> FirstWeightsOfRuns() const;
  void set_next_weights(std::vector<WeightRange> next);
  // After Prepare: the prefetch fields of work item `item` (numbered as Run's split numbers
  // them: PlaceOf), as Run passes them to the microkernel (all zero: none). Planned once per
  // Prepare and set_next_weights, not per Run.
  struct TilePrefetch {
    uintptr_t address = 0;
    int32_t first_tap = 0;
    int32_t step = 0;
    // How many prefetches the item issues, at address + k x step for k < count: its chunk's
    // kept tap vectors, times the tiles of a spaced run (not passed to the microkernel, which
    // counts them itself).
    int64_t count = 0;
  };
  TilePrefetch Prefetch(int64_t item) const;
  // After Prepare: whether any work item prefetches (false when the next weights were too small
  // to spread over this layer's items, see PlannedPrefetch in the .cc).
  bool prefetches() const { return !prefetch_plan_.empty(); }
  // After Prepare: the packed weights of group chunk `chunk` (< group_chunks()).
  WeightRange ChunkWeights(int64_t chunk) const;
  // After Prepare: where work item `item` (< group_chunks() x pixel_tiles(), numbered as Run's
  // split numbers them) falls: its group chunk and pixel tile, and the consecutive items of the
  // same chunk around it ([segment_begin, segment_end): the tiles one chunk's weights sweep
  // before the next chunk's).
  struct ItemPlace {
    int64_t chunk = 0;
    int64_t tile = 0;
    int64_t segment_begin = 0;
    int64_t segment_end = 0;
  };
  ItemPlace PlaceOf(int64_t item) const;
  // After Prepare: whether the chunk-major items are blocked by thread (see tile_first_pixel_).
  bool thread_tiles() const { return thread_tiles_; }

  // The variant Run uses: the constructor's, or its pixel-major fallback (see the top).
  const MicrokernelVariant& variant() const { return *active_; }
  const PackedFilter& packed() const { return packed_; }

 private:
  void PadRows(const float* input, int64_t first_row, int64_t end_row);
  void PairRows(const float* input, int64_t first_row, int64_t end_row, float* pair_image);
  void PrepareIndirection();
  void PrepareTileSpacing();
  // Merges runs of consecutive evenly spaced tiles into single tiles (kMaxSpacedTilesPerRun in
  // the .cc), after PrepareChannelBlocks.
  void MergeSpacedTiles();
  // The tap vectors every group of the packed filter keeps when that count is the same for all,
  // else 0.
  int32_t UniformGroupTaps() const;
  // The 8-pixel tiles that pixel tile `tile` runs (1 unless it is a merged spaced run).
  int64_t SpacedRunTiles(int64_t tile) const;
  bool PreparePairs();
  void PairTileRows(const float* input, int64_t first_pair, int64_t end_pair,
                    float* tile_buffer) const;
  void PrepareChannelBlocks();
  // True if the pixel-major variant of this operator's ISA and N would compute the prepared
  // layer in input-channel blocks (see kInputTileBytes in the .cc).
  bool PixelMajorBlocksChannels() const;
  // Group chunks the packed weights need at kChunkWeightBytes each (0 for an empty filter),
  // before any split for threads.
  int64_t WeightChunks() const;
  // Threads Run splits the work items between (1 when the calling thread runs them alone).
  int Runs() const;
  // Whether work items go tile-major (see tile_first_pixel_).
  bool TileMajor() const;
  // Fills prefetch_plan_ (empty when no work item prefetches) from the prepared decomposition
  // and next_weights_; PlannedPrefetch computes one item's entry.
  void PlanPrefetch();
  TilePrefetch PlannedPrefetch(int64_t item) const;
  bool PreparePanel();
  bool PreparePlanes();
  // Transposes the tile of `pixels` output pixels from first_pixel of a strided 1x1 layer into
  // its panel.
  void TransposeStridedTile(const float* input, int64_t first_pixel, int64_t pixels,
                            float* panel) const;
  void PrepareLaneTiles();
  // Writes padded rows [first_row, end_row) (of PlaneRows()) of every channel's phases into the
  // batch's planes at `destination`.
  void BuildPlaneRows(const float* input, int64_t first_row, int64_t end_row,
                      float* destination) const;
  // Padded rows of the batch's planes: batch x plane_rows_ x stride_h.
  int64_t PlaneRows() const;
  // Floats of the batch's planes: batch x channels x panel_stride_.
  size_t PlanesFloats() const;

  ConvParameters params_;
  float activation_min_;
  float activation_max_;
  float residual_min_;
  float residual_max_;
  PackedFilter packed_;
  const MicrokernelVariant* variant_;  // as constructed
  const MicrokernelVariant* active_;   // what Run calls for the prepared shape
  std::shared_ptr<ThreadPool> pool_;

  bool prepared_ = false;
  ConvGeometry geometry_;
  std::vector<int32_t> tap_offsets_;    // per kept tap vector, for the current input width
  std::vector<int64_t> pixel_offsets_;  // per flattened output pixel: its receptive-field origin
  // Pixel-major: per pixel tile its SparseTileArgs::pixel_spacing, or 0 (PrepareTileSpacing).
  std::vector<int64_t> tile_pixel_spacing_;
  // SparseTileArgs::group_taps for every call: the tap vectors every group keeps when that count
  // is the same for all (and the layer has no input-channel blocks), else 0.
  int32_t group_taps_ = 0;
  AlignedBuffer padded_input_;          // batch x padded image; borders stay zero
  int64_t panel_stride_ = 0;            // channel-major: floats per row of a tile's panel
  // Channel-major on a KxK (or padded 1x1) layer: Run writes the batch's planes into the
  // workspace, image after image, each input channel's padded image in panel_stride_ floats:
  // stride_h x stride_w phases of phase_stride_ floats (PreparePlanes; one at stride 1), each
  // plane_rows_ x plane_pitch_ (flattened) with zeros after it. Lane l of an image is the plane
  // grid position l, output pixel (l / plane_pitch_, l % plane_pitch_) when that column is below
  // out_w; an image has image_lanes_ lanes (its last output pixel's, rounded up to
  // kPanelPixelAlignment), and tile t the global lanes [tile_first_lane_[t],
  // tile_first_lane_[t + 1]) (image x image_lanes_ + lane; whole vectors, never two images).
  // lane_pixels_[global lane]: its output pixel counted from its tile's first output pixel
  // (tile_first_pixel_), or -1 for a lane in the padding columns (SparseTileArgs::pixel_offsets).
  bool planes_ = false;
  int64_t plane_rows_ = 0;
  int64_t plane_pitch_ = 0;
  int64_t phase_stride_ = 0;
  // ... in a per-thread buffer, each thread its own copy, instead of the workspace (see
  // kSharedPlanesMinTilesPerThread in the .cc).
  bool private_planes_ = false;
  int64_t image_lanes_ = 0;
  std::vector<int64_t> tile_first_lane_;
  std::vector<int64_t> lane_pixels_;
  // Pixel-pair: per pair (in flattened pixel order) its origin in the pair image (in
  // pixel_offsets_) and its pixel count; the buffer of the batch's pair image (2 x the padded
  // input's floats, see set_workspace).
  std::vector<uint8_t> pair_widths_;
  // Pixel-pair: per pair its two output pixels, flattened (PreparePairs), then relative to its
  // tile's first pixel (Prepare: SparseTileArgs::pair_pixels).
  std::vector<int64_t> pair_pixels_absolute_;
  std::vector<int32_t> pair_pixels_;
  // Pixel-pair KxK with an odd output width: the columns appended to every pair-image row, where
  // the last output column's pixels are paired vertically, (y, W - 1) with (y + 1, W - 1) (0:
  // none); and the pair image's columns per row (padded_w + vertical_columns_).
  int vertical_columns_ = 0;
  int64_t pair_image_w_ = 0;
  std::shared_ptr<AlignedBuffer> workspace_;
  // Pixel-pair on a 1x1 layer: each tile paired by Run into a per-thread buffer, from
  // consecutive flattened pixels (stride 1) or, for a strided one, from the pairs of each output
  // row the tile covers (PairTileRows).
  bool pair_tiles_ = false;
  // Strided 1x1 pixel-pair: per pair, the input offset (floats) of its first pixel and how many
  // input pixels further its second pixel is (stride_w in a row; stride_h x in_w for the
  // vertical pair of an odd-width output's last column, as for KxK layers; 0 for a pixel alone).
  std::vector<int64_t> pair_sources_;
  std::vector<int32_t> pair_partners_;
  // ... except a 1x1 stride-1 layer cut into several group chunks: its tiles would be paired once
  // per chunk, so Run pairs the whole batch once into the workspace instead (consecutive
  // flattened pixels, pair q at 2 x q x channels floats), as for a KxK layer.
  bool image_pairs_ = false;
  bool pair_fallback_ = true;
  std::vector<int64_t> tile_first_pair_;  // pixel-pair: num tiles + 1 boundaries over pairs
  // Work decomposition, fixed at prepare time. Pixel tiles: the flattened output pixels cut into
  // tiles of nearly equal size, at most the variant's tile_pixels. Group chunks: consecutive
  // groups of nearly equal cost (kept tap vectors) whose packed weights fit a per-core cache
  // budget, more chunks when there are too few tiles to keep every thread busy. Work items are
  // (chunk, tile) pairs, split into one contiguous run per thread, in chunk-major order (a
  // thread's run sweeps its tiles with one chunk of weights, which stay in L2), or tile-major
  // for a channel-major variant (TileMajor: a thread transposes a tile's panel once and keeps it
  // for that tile's chunks, where each transposition costs more than reading a chunk again).
  // With thread_tiles_ the chunk-major order is blocked by thread: block r holds the tiles
  // [T r / R, T (r + 1) / R) of every chunk (chunk by chunk), so that each thread writes whole
  // output pixels of its own (where and why: thread_tiles_ in Prepare, the .cc). Run's split cuts
  // the items into R runs of equal count, so where R does not divide T a run ends with the first
  // items of the next block (those tiles' pixels are then written by both threads, as before).
  // Which thread computes an item never changes what it computes: results stay bitwise equal
  // across thread counts.
  // num tiles + 1 boundaries over flattened pixels (with planes: each tile's first output
  // pixel, then the pixel count)
  std::vector<int64_t> tile_first_pixel_;
  std::vector<int32_t> chunk_first_group_;  // num chunks + 1 boundaries over groups
  // Input-channel blocks of a pixel-major 1x1 layer whose tile input (tile pixels x Cin floats)
  // would not stay in L1 (see kInputTileBytes in the .cc): block b of group g is the kept tap
  // vectors [block_bounds_[b * groups + g], block_bounds_[(b + 1) * groups + g]). Empty: one
  // block.
  std::vector<int32_t> block_bounds_;
  int64_t channel_blocks_ = 1;
  int64_t min_parallel_flops_ = kDefaultMinParallelFlops;
  int64_t streaming_output_bytes_ = StreamingOutputBytes();
  bool stream_output_ = false;
  bool serial_ = false;  // too little work to wake a worker: the calling thread runs it all
  bool thread_tiles_ = false;  // chunk-major items blocked by thread (see tile_first_pixel_)
  std::vector<WeightRange> next_weights_;  // per run (set_next_weights)
  std::vector<TilePrefetch> prefetch_plan_;  // per work item (PlanPrefetch)
};

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_OPERATOR_SPARSE_CONV_OPERATOR_H_
