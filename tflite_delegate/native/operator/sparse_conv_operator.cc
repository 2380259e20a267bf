#include "operator/sparse_conv_operator.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/cache_size.h"
#include "threading/parallelize.h"

namespace tflite_sparse {

namespace {

// Packed weights of one group chunk should stay in the core's private L2 while the chunk sweeps
// every pixel tile: a quarter of a 1 MiB L2 leaves room for the tiles' input rows.
constexpr int64_t kChunkWeightBytes = 256 * 1024;
// Below this many work items per thread, groups are cut into just enough more chunks to reach
// it, so that the work-stealing split stays balanced for any image size (a 7x7 image has only 7
// tiles of 7 pixels: 2 chunks at 2 threads). Each further chunk re-reads the tile's input rows
// once more and adds calls per tile: cutting every 7x7 and 14x14 layer into 4 chunks per thread,
// as before 2026-12-03, made ResNet-50's 14x14 1x16 layers at 90 % block sparsity up to 1.4x
// slower at 2 threads than this rule, and it changed the others by less than the noise
// (docs/RESULTS.md). 6 rather than 8 since 2026-12-04 14:25 UTC: a 14x14 pixel-pair layer has
// 13 tiles, which 8 cut into 2 chunks at 2 threads (both threads pairing every tile, or one more
// parallel job to pair the image); with 6 the threads share the 13 tiles of one chunk, and
// ResNet-50's 14x14 1x1 layers ran 1.05-1.25x faster at 2 threads inside "1.0G" (per-node
// profile, 11 rounds), the single layers as fast or faster at 50, 77 and 90 % (bench_kernels).
constexpr int64_t kMinItemsPerThread = 6;
// A pixel-major tile reads, for every kept tap vector of every group, one input value of each of
// its pixels: the tile's input rows are re-read once per group. Above this many bytes (pixels x
// input channels x 4; Zen 4's L1D holds 32 KiB, shared with the streaming weights) a 1x1 layer
// is computed in blocks of input channels, each block's partial sums kept in the output tile
// (SparseTileArgs::accumulate / store_partial), the same arithmetic in the same order. Measured
// on 1x16 at 90 % (bench_kernels, 1 thread, Zen 4): 14x14 1024->256 ran at 82-87 GFLOP/s against
// 110-115 for 256->256 at 60 %, which has the same kept work per group and a quarter of the input.
constexpr int64_t kInputTileBytes = 16 * 1024;
// ... but only where few input values of each line are used per group: blocking 1x16 layers with
// 1024 and 2048 input channels took them from 69-86 to 84-97 GFLOP/s at 90 % and cost 5-15 % at
// 75 % (same run, alternating builds), so blocks are used from this kept fraction of tap vectors
// down.
constexpr double kBlockingMaxKeptFraction = 0.15;
// (A pixel-pair variant leaves such 1x1 layers to the pixel-major one with its blocks: at 90 %,
// 14x14 1024->256 and 7x7 2048->512 ran 0.93-0.96x of it paired, bench_kernels --layout both.)
// Where a 1x16 layer (N >= this) gives its pixel-pair variant back to the pixel-major one:
// measured inside ResNet-50 "2.0G" (per-step times of the partition with the pixel-major and the
// pair library, three runs, 1 thread, 2026-12-03 23:05-23:10 UTC; docs/RESULTS.md, "Pixel pairs
// for 1x16 layers"), where the pair variant ran the 1x1 layers whose tiles are paired once per
// group chunk with little work per paired value at 0.73-0.99x of the pixel-major one (56x56
// 64->64 and 256->64: 62-64 kept FLOPs per input value and chunk, 7x7 2048->512: 495 over 8
// chunks), against 1.0-1.16x on the 28x28 and 14x14 1x1 layers (124 and more per chunk); with
// weight prefetching, a threshold of 40 instead of 96 still ran 56x56 256->64 at 0.94x
// (2026-12-04 04:50 UTC). 1x8 keeps its pairs: its pixel-major kernel issues half-width FMAs.
// (Until 2026-12-04 KxK and strided 1x1 layers with an odd output width below 16 also ran
// pixel-major: a 7-wide row is three pairs and a lone pixel, 1/8 of the FMAs wasted, and before
// weight prefetching the pairs ran ResNet-50's 7x7 layers at 0.83-0.95x. With it they run them
// 1.04-1.11x faster: docs/RESULTS.md, "Weight prefetching"; the last column now pairs
// vertically, see PreparePairs.)
// Since 2026-12-04 14:10 UTC a stride-1 layer counts its kept FLOPs per input value over the
// whole layer, not per chunk: with several chunks it is paired once per Run (image_pairs_), not
// once per chunk. That gave ResNet-50's 7x7 2048->512 layers to the pairs: 1.11-1.21x at 1
// thread in both models, 1.10-1.25x at 2 threads in "2.0G", 0.89-0.93x at 2 threads in "1.0G"
// (compare_delegate_builds --profile, 9 rounds).
constexpr int kPairPixelMajorMinBlockN = 16;
constexpr double kPairMinKeptFlopsPerInputPerChunk = 96.0;
// A channel-major KxK layer with fewer tiles than this per thread has every thread build its
// own copy of the planes (the threads share its tiles' group chunks, so each reads every plane;
// from shared planes half of them came from the other core's caches): ResNet-50's 14x14 and
// 7x7 3x3 layers at N = 4 and 90 % ran 1.06x and 1.05-1.11x as fast at 2 threads as from
// shared planes (bench_kernels, two alternations of the builds, Zen 4).
constexpr int64_t kSharedPlanesMinTilesPerThread = 4;
// Pixel-major tiles whose 8 pixels are evenly spaced (every full tile of a 1x1 stride-1 layer,
// the tiles within one output row of others) run SpacedTileGroups (sparse_tile_template.h) on
// layers that keep at most this many tap vectors per group on average, with AVX-512 and with
// the other ISAs. Measured on ResNet-50's stride-1 layers at 50-90 % (bench_kernels --layout
// both against the same operator without the spacing, interleaved, 1 thread, Zen 4;
// docs/RESULTS.md, "Evenly spaced tiles"): with AVX-512 1.16-1.28x at 6-7 tap vectors per group
// (1x16 and 1x8 on 56x56 64->64 and 64->256 at 90 %), 1.01-1.14x at 13, 1.03-1.20x at 26 and
// 0.99-1.03x from 51 up; with AVX2 (1x8 and 1x4) 1.15-1.23x at 6-7 and 0.97-1.28x at 13, but
// 0.93-1.01x at 26 and 0.79-0.97x from 51 up.
constexpr int64_t kSpacedTileMaxTapVectorsPerGroupAvx512 = 32;
constexpr int64_t kSpacedTileMaxTapVectorsPerGroupOther = 16;
// Consecutive evenly spaced tiles, each continuing the one before, run as one tile (one
// microkernel call and one work item, SparseTileArgs::pixel_spacing) of up to this many of them,
// as many as it takes to reach kSpacedRunMinTapVectors kept tap vectors per call (those of a
// group chunk, times the tiles), and no more than leaves kSpacedRunMinTilesPerThread tiles per
// thread for the work-stealing split. Each work item costs its own claim, indexing, argument
// set-up and calls: on 56x56 1x1 64->64 at 90 % 1x16 (26 kept tap vectors per 8-pixel call,
// about 210 FMAs) that was about a fifth of the layer's time (perf, 1 thread, Zen 4). Measured
// against the same operator without runs (bench_kernels --layout both, in one process, 1 and 2
// threads, Zen 4; docs/RESULTS.md, "Runs of spaced tiles"): at 90 %, 1x16 56x56 64->64
// 1.17-1.24x, 64->256 1.05-1.08x, 256->64 1.01-1.06x, 1x8 64->64 1.13-1.16x; at 75 % and 50 %
// 1x16 112x112 32->64 1.07-1.11x; no change beyond the noise where a call already has 512 kept
// tap vectors. A minimum of 128 gained less on 64->256 and 256->64 (1.01-1.06x), runs of up to
// 8 with 1024 no more than this.
constexpr int64_t kMaxSpacedTilesPerRun = 4;
constexpr int64_t kSpacedRunMinTapVectors = 512;
constexpr int64_t kSpacedRunMinTilesPerThread = 2 * kMinItemsPerThread;
// Pixels per tile of a 1x1 channel-major layer: 16, one AVX-512 vector (two AVX2 ones), within
// the variant's tile_pixels. Tiles of the variants' whole tile_pixels (64 for the AVX-512 1x4
// row, 48 for 1x8, 24 for the AVX2 1x4) measured slower almost everywhere (bench_kernels
// --layout both, 1 and 2 threads, Zen 4, against tiles of 1-4 vectors; docs/RESULTS.md,
// "Channel-major tiles of 16 pixels"): at 1x4 and 90 %, 56x56 1x1 64->256, 28x28 128->512 and
// 14x14 256->1024 ran 1.26-1.27x faster in 16-pixel tiles (a tile's output block is one 64-byte
// line per pixel and 16 channels, and 64 such lines at a 1-4 KiB pixel stride fall in 1-4 sets
// of L1, which hold 8 lines each), 56x56 64->64 and 256->64 1.05-1.10x. 32-pixel tiles ran the
// layers of 1024 and 2048 input channels (whose 16-pixel panel, 64-128 KiB, is read from L2) as
// fast at 1 thread (0.99-1.01x) and up to 1.10x slower at 2 (fewer tiles to share). With AVX2,
// 24-pixel tiles ran 7x7 2048->512 1.14x faster at 1 thread, but the stride-2 1x1 1024->512 into
// 7x7 1.32x slower at 2.
constexpr int64_t kPanelTilePixels = 16;

// kPanelTilePixels within `variant`'s tile_pixels, in whole vectors (at least one).
int64_t PanelTilePixels(const MicrokernelVariant& variant) {
  const int64_t lanes = variant.vector_pixels;
  return std::max<int64_t>(std::min<int64_t>(kPanelTilePixels, variant.tile_pixels) / lanes, 1) *
         lanes;
}

// Orders this thread's non-temporal stores before its later stores (the pool's join).
inline void StoreFence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

// The calling thread's panel for one tile of a channel-major variant (or its pairs, for a 1x1
// layer of a pixel-pair variant): reused by every call on
// this thread (grown when a layer needs more), freed when the thread ends. A tile's panel is
// transposed right before its microkernel call, so it is in L1 (or L2 for thousands of input
// channels) when the microkernel reads it, and no full-size transposed copy of the input goes
// through memory: a whole-image panel (tried first) cost more than the 1x1 convolution itself
// on 56x56x256 inputs, every panel line missing cache on its first write. (A KxK layer, K^2
// times the work per input value, does read a whole-image copy: its planes.)
//
// `run` and `tile` say what it holds: tile `tile` of the Run with that id (RunId; tile -1: the
// batch's planes of a KxK layer whose threads each build their own), or nothing reusable
// (run 0). A thread whose next work item is another group chunk of the same tile
// keeps the panel instead of building it again: a layer of one tile (7x7) cut into a dozen
// chunks at 2 threads transposed its whole input a dozen times, and ResNet-50's 7x7 1x1
// 2048->512 layer at N = 4 and 90 % ran 0.58x as fast at 2 threads as at 1 on Zen 4.
struct TileScratch {
  AlignedBuffer buffer;
  uint64_t run = 0;
  int64_t tile = -1;
};

// The calling thread's buffer of at least `floats` floats holding tile `tile` of Run `run`:
// build(buffer) fills it unless it already does.
template <class Build>
float* KeptTileBuffer(size_t floats, uint64_t run, int64_t tile, const Build& build) {
  thread_local TileScratch scratch;
  if (scratch.buffer.size() < floats) {
    scratch.buffer.ResizeZeroed(floats);
    scratch.run = 0;
  }
  if (scratch.run != run || scratch.tile != tile) {
    build(scratch.buffer.data());
    scratch.run = run;
    scratch.tile = tile;
  }
  return scratch.buffer.data();
}

// A process-wide unique id per Run (never 0), so that a panel kept from one Run, of any
// operator, never passes for one of another.
uint64_t RunId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

SparseConvOperator::SparseConvOperator(const ConvParameters& params, float activation_min,
                                       float activation_max, PackedFilter packed,
                                       const MicrokernelVariant* variant,
                                       std::shared_ptr<ThreadPool> pool)
    : params_(params),
      activation_min_(activation_min),
      activation_max_(activation_max),
      residual_min_(-std::numeric_limits<float>::infinity()),
      residual_max_(std::numeric_limits<float>::infinity()),
      packed_(std::move(packed)),
      variant_(variant),
      active_(variant),
      pool_(std::move(pool)),
      workspace_(std::make_shared<AlignedBuffer>()) {}

int64_t SparseConvOperator::StreamingOutputBytes() {
  // Half the L3; 16 MiB (half of a Zen 4 CCD's 32 MiB) if the OS does not say.
  const int64_t l3 = L3CacheBytes();
  return l3 > 0 ? l3 / 2 : int64_t{16} << 20;
}

bool SparseConvOperator::Prepare(int batch, int in_h, int in_w, int channels,
                                 std::string* error) {
  if (channels != packed_.shape.in_channels) {
    *error = "input has " + std::to_string(channels) + " channels, the filter expects " +
             std::to_string(packed_.shape.in_channels);
    return false;
  }
  // An empty batch is legal after a resize: compute the per-image geometry for one image and
  // produce an empty output.
  ConvGeometry geometry;
  std::string reason;
  if (batch < 0 || !ComputeConvGeometry(batch > 0 ? batch : 1, in_h, in_w, channels,
                                        packed_.shape, params_, &geometry, &reason)) {
    *error = "unsupported input shape: " + (reason.empty() ? std::string("negative batch") : reason);
    return false;
  }
  geometry.batch = batch;
  if (prepared_ && geometry == geometry_) return true;
  // Unprepared until every step below succeeded: if one fails (or throws bad_alloc), the next
  // Prepare starts over instead of reusing a half-updated state, and Run refuses to run.
  prepared_ = false;
  geometry_ = geometry;
  const ConvGeometry& g = geometry_;
  // The channel-major variant when the shape allows it, else the pixel-major one.
  active_ = variant_;
  pair_widths_.clear();
  tile_first_pair_.clear();
  pair_tiles_ = false;
  planes_ = false;
  tile_pixel_spacing_.clear();
  tile_first_lane_.clear();
  lane_pixels_.clear();
  if ((variant_->layout == InputLayout::kChannelMajor && !PreparePanel()) ||
      (variant_->layout == InputLayout::kPixelPair && !PreparePairs())) {
    active_ = FindMicrokernel(variant_->isa, variant_->block_n, variant_->weight_type,
                              InputLayout::kPixelMajor);
    if (active_ == nullptr) {
      *error = std::string("internal error: no pixel-major fallback for ") + variant_->name;
      return false;
    }
  }
  int64_t pixels = 0;
  if (active_->layout == InputLayout::kChannelMajor) {
    pixel_offsets_.clear();
    padded_input_.ResizeZeroed(0);
    pixels = static_cast<int64_t>(g.batch) * g.out_h * g.out_w;
    if (planes_) {
      PrepareLaneTiles();
    } else {
      // Tiles of whole pixel vectors (each starts on an aligned panel column), nearly equal
      // vector counts of at most PanelTilePixels / vector_pixels.
      const int64_t lanes = active_->vector_pixels;
      const int64_t vectors = (pixels + lanes - 1) / lanes;
      const int64_t tile_vectors = PanelTilePixels(*active_) / lanes;
      const int64_t tiles = (vectors + tile_vectors - 1) / tile_vectors;
      tile_first_pixel_.resize(static_cast<size_t>(tiles + 1));
      for (int64_t t = 0; t <= tiles; ++t) {
        const int64_t first = tiles > 0 ? vectors * t / tiles * lanes : 0;
        tile_first_pixel_[t] = first < pixels ? first : pixels;
      }
    }
  } else if (active_->layout == InputLayout::kPixelPair) {
    // Tiles of nearly equal pair counts, at most tile_pixels / 2 pairs.
    const int64_t pairs = static_cast<int64_t>(pair_widths_.size());
    const int64_t tile_pairs = active_->tile_pixels / 2;
    const int64_t tiles = (pairs + tile_pairs - 1) / tile_pairs;
    tile_first_pair_.resize(static_cast<size_t>(tiles + 1));
    tile_first_pixel_.resize(static_cast<size_t>(tiles + 1));
    pixels = static_cast<int64_t>(g.batch) * g.out_h * g.out_w;
    // Pairs come in ascending order of their first pixel, each second pixel after its first:
    // a tile's output starts at its first pair's first pixel.
    pair_pixels_.resize(pair_pixels_absolute_.size());
    int64_t pair = 0;
    for (int64_t t = 0; t <= tiles; ++t) {
      const int64_t first = tiles > 0 ? pairs * t / tiles : 0;
      tile_first_pair_[t] = first;
      tile_first_pixel_[t] = first < pairs ? pair_pixels_absolute_[2 * first] : pixels;
      if (t == 0) continue;
      for (; pair < first; ++pair) {
        // A tile-paired layer's pair q sits at (q - its tile's first pair) pairs into the
        // tile's buffer.
        if (pair_tiles_) {
          pixel_offsets_[static_cast<size_t>(pair)] =
              (pair - tile_first_pair_[t - 1]) * 2 * g.channels;
        }
        for (int s = 0; s < 2; ++s) {
          pair_pixels_[2 * pair + s] = static_cast<int32_t>(
              pair_pixels_absolute_[2 * pair + s] - tile_first_pixel_[t - 1]);
        }
      }
    }
    pair_pixels_absolute_.clear();
  } else {
    if (!ComputeTapOffsets(packed_, geometry_, &tap_offsets_)) {
      *error = "packed indices would overflow 32-bit";
      return false;
    }
    PrepareIndirection();
    pixels = static_cast<int64_t>(pixel_offsets_.size());
    // Pixel tiles of nearly equal size: tile t covers [pixels * t / tiles, pixels * (t+1) /
    // tiles).
    const int64_t tile_pixels = active_->tile_pixels;
    const int64_t tiles = (pixels + tile_pixels - 1) / tile_pixels;
    tile_first_pixel_.resize(static_cast<size_t>(tiles + 1));
    for (int64_t t = 0; t <= tiles; ++t) {
      tile_first_pixel_[t] = tiles > 0 ? pixels * t / tiles : 0;
    }
    PrepareTileSpacing();
  }
  PrepareChannelBlocks();
  MergeSpacedTiles();
  group_taps_ = channel_blocks_ == 1 ? UniformGroupTaps() : 0;
  const int64_t tiles = static_cast<int64_t>(tile_first_pixel_.size()) - 1;
#if defined(__x86_64__)
  const int64_t output_bytes = static_cast<int64_t>(g.batch) * g.out_h * g.out_w *
                               g.out_channels * static_cast<int64_t>(sizeof(float));
  stream_output_ = output_bytes >= streaming_output_bytes_ &&
                   active_->layout != InputLayout::kChannelMajor &&
                   packed_.block_n * sizeof(float) % 64 == 0 && g.out_channels % 16 == 0 &&
                   channel_blocks_ == 1;
#else
  stream_output_ = false;  // no non-temporal stores in the portable build
#endif
  // Group chunks of nearly equal cost; a group's cost is its kept tap vectors plus one for the
  // bias, activation and stores, so that empty groups still count.
  const int64_t groups = packed_.num_groups;
  const int64_t threads = pool_->num_threads();
  const int64_t kept = packed_.group_begin[groups];
  int64_t chunks = WeightChunks();
  serial_ = threads == 1 || 2 * pixels * kept * packed_.block_n < min_parallel_flops_;
  if (!serial_ && tiles > 0 && chunks * tiles < kMinItemsPerThread * threads) {
    chunks = (kMinItemsPerThread * threads + tiles - 1) / tiles;
  }
  if (chunks > groups) chunks = groups;
  if (chunks < 1) chunks = 1;
  private_planes_ = planes_ && !serial_ && tiles < kSharedPlanesMinTilesPerThread * threads;
  if (planes_ && !private_planes_) {
    const size_t floats = PlanesFloats();
    if (workspace_->size() < floats) workspace_->ResizeZeroed(floats);
  }
  const int64_t total_cost = kept + groups;
  chunk_first_group_.assign(static_cast<size_t>(chunks + 1), static_cast<int32_t>(groups));
  chunk_first_group_[0] = 0;
  // A channel-major variant writes whole vectors of channels per pixel where a chunk holds
  // whole blocks of vector_pixels / N groups (pixel_vector_template.h, PanelBlock): chunks start
  // at multiples of that.
  const int64_t chunk_step = active_->layout == InputLayout::kChannelMajor &&
                                     active_->vector_pixels % packed_.block_n == 0
                                 ? active_->vector_pixels / packed_.block_n
                                 : 1;
  int64_t group = 0;
  for (int64_t chunk = 1; chunk < chunks; ++chunk) {
    // First group whose cost prefix reaches chunk / chunks of the total.
    const int64_t target = (total_cost * chunk + chunks - 1) / chunks;
    while (group < groups && packed_.group_begin[group] + group < target) ++group;
    group = std::min(groups, (group + chunk_step - 1) / chunk_step * chunk_step);
    chunk_first_group_[chunk] = static_cast<int32_t>(group);
  }
  // No empty chunks (one costly group can reach several targets, and rounding merges more).
  if (groups > 0) {
    chunk_first_group_.erase(std::unique(chunk_first_group_.begin(), chunk_first_group_.end()),
                             chunk_first_group_.end());
    chunks = static_cast<int64_t>(chunk_first_group_.size()) - 1;
  }
  // Measured on ResNet-50 "1.0G" (compare_delegate_builds, 15 rounds, 2026-12-04 14:05 UTC): 1.02x
  // at 1 thread, where its 7x7 1x1 layers have 4 to 8 chunks; no change at 2 threads, where
  // every 14x14 and 7x7 1x1 layer has at least two (docs/RESULTS.md, "Fused max pools and
  // whole-image pairs").
  image_pairs_ = pair_tiles_ && params_.stride_h == 1 && params_.stride_w == 1 && chunks > 1;
  // A chunk-major split between threads gives each thread whole group chunks, so both write
  // every output pixel, each its own channels; blocked by thread, each writes whole pixels of its
  // own tiles (and reads every chunk's weights instead of its half). Two cores writing
  // interleaved parts of one buffer, no line shared, are slow on this VM class (Zen 4):
  // benchmarks/ceilings/interleaved_writes.c, each thread its 1 KiB of every 2 KiB row of a
  // 100 KB buffer, takes 30-140 us a job against 4-6 us when the halves are separate buffers or
  // contiguous (the slow end when the cores' round trip reads 340 ns instead of 55). Against the
  // chunk-major split (bench_kernels, 2 threads, 1x16, interleaved repeats; docs/RESULTS.md,
  // "Threads write whole pixels"): at 90 % the 7x7 1x1 2048->512 layer 1.18x, the stride-2 1x1
  // into 7x7 1.16x (1.5-1.6x in the host's slow periods); at 50-75 % 0.94-1.05x in quiet rounds
  // and up to 1.25x in slow ones; pixel pairs 1.01-1.38x; the four benchmark models at 2 threads
  // 0.987-1.015x in a quiet run. A channel-major variant is tile-major already.
  thread_tiles_ = !serial_ && active_->layout != InputLayout::kChannelMajor && chunks > 1 &&
                  tiles >= threads;
  if (image_pairs_) {
    for (size_t pair = 0; pair < pixel_offsets_.size(); ++pair) {
      pixel_offsets_[pair] = static_cast<int64_t>(pair) * 2 * g.channels;
    }
    const size_t floats = static_cast<size_t>(pixels + 1) * g.channels;
    if (workspace_->size() < floats) workspace_->ResizeZeroed(floats);
  }
  PlanPrefetch();
  prepared_ = true;
  return true;
}

WeightRange SparseConvOperator::ChunkWeights(int64_t chunk) const {
  const int64_t vector_bytes = packed_.block_n * static_cast<int64_t>(sizeof(float));
  const int64_t first = packed_.group_begin[chunk_first_group_[chunk]];
  const int64_t end = packed_.group_begin[chunk_first_group_[chunk + 1]];
  return {reinterpret_cast<const char*>(packed_.weights.data()) + first * vector_bytes,
          (end - first) * vector_bytes};
}

int SparseConvOperator::Runs() const { return serial_ ? 1 : pool_->num_threads(); }

bool SparseConvOperator::TileMajor() const {
  return active_->layout == InputLayout::kChannelMajor;
}

SparseConvOperator::ItemPlace SparseConvOperator::PlaceOf(int64_t item) const {
  const int64_t chunks = group_chunks();
  const int64_t tiles = pixel_tiles();
  ItemPlace place;
  if (TileMajor()) {
    place.chunk = item % chunks;
    place.tile = item / chunks;
    place.segment_begin = item;
    place.segment_end = item + 1;
    return place;
  }
  // Chunk-major over the tiles [first_tile, end_tile), whose items start at `base`: the whole
  // image, or with thread_tiles_ the block of the run the item falls in.
  int64_t first_tile = 0;
  int64_t end_tile = tiles;
  if (thread_tiles_) {
    const int runs = Runs();
    int run = 0;
    while (run + 1 < runs && chunks * FirstTileOfThread(tiles, run + 1, runs) <= item) ++run;
    first_tile = FirstTileOfThread(tiles, run, runs);
    end_tile = FirstTileOfThread(tiles, run + 1, runs);
  }
  const int64_t width = end_tile - first_tile;
  const int64_t base = chunks * first_tile;
  place.chunk = (item - base) / width;
  place.tile = first_tile + (item - base) % width;
  place.segment_begin = base + place.chunk * width;
  place.segment_end = place.segment_begin + width;
  return place;
}

std::vector<WeightRange> SparseConvOperator::FirstWeightsOfRuns() const {
  std::vector<WeightRange> first;
  if (!prepared_) return first;
  const int64_t tiles = pixel_tiles();
  const int64_t items = group_chunks() * tiles;
  const int runs = Runs();
  for (int run = 0; run < runs; ++run) {
    const int64_t item = FirstTileOfThread(items, run, runs);
    first.push_back(item < items ? ChunkWeights(PlaceOf(item).chunk) : WeightRange{});
  }
  return first;
}

void SparseConvOperator::set_next_weights(std::vector<WeightRange> next) {
  next_weights_ = std::move(next);
  if (prepared_) PlanPrefetch();
}

SparseConvOperator::TilePrefetch SparseConvOperator::Prefetch(int64_t item) const {
  return prefetch_plan_.empty() ? TilePrefetch() : prefetch_plan_[static_cast<size_t>(item)];
}

void SparseConvOperator::PlanPrefetch() {
  const int64_t items = group_chunks() * pixel_tiles();
  if (TileMajor()) {  // channel-major variants do not prefetch
    prefetch_plan_.clear();
    return;
  }
  prefetch_plan_.resize(static_cast<size_t>(items));
  bool any = false;
  for (int64_t item = 0; item < items; ++item) {
    prefetch_plan_[static_cast<size_t>(item)] = PlannedPrefetch(item);
    any = any || prefetch_plan_[static_cast<size_t>(item)].address != 0;
  }
  if (!any) prefetch_plan_.clear();
}

SparseConvOperator::TilePrefetch SparseConvOperator::PlannedPrefetch(int64_t item) const {
  TilePrefetch prefetch;
  const ItemPlace place = PlaceOf(item);
  const int64_t chunk = place.chunk;
  const int64_t items = group_chunks() * pixel_tiles();
  const int runs = Runs();
  int run = 0;
  while (run + 1 < runs && FirstTileOfThread(items, run + 1, runs) <= item) ++run;
  const int64_t run_end = FirstTileOfThread(items, run + 1, runs);
  // The run's items of this chunk share what the run reads next.
  const int64_t first = std::max(FirstTileOfThread(items, run, runs), place.segment_begin);
  const int64_t sharing = std::min(run_end, place.segment_end) - first;
  WeightRange next;
  if (place.segment_end < run_end) {
    next = ChunkWeights(PlaceOf(place.segment_end).chunk);
  } else if (static_cast<size_t>(run) < next_weights_.size()) {
    next = next_weights_[static_cast<size_t>(run)];
  }
  // One prefetch per kept tap vector of the call and tile of a spaced run, at most a line apart.
  // A share smaller than one byte per prefetch is left alone: every line would take dozens of
  // prefetches, and on the 56x56 layers (196 tiles, a next layer of 15 KB) that cost more than
  // it saved (docs/RESULTS.md, "Weight prefetching").
  const int32_t first_vector = packed_.group_begin[chunk_first_group_[chunk]];
  const int64_t vectors = packed_.group_begin[chunk_first_group_[chunk + 1]] - first_vector;
  const int64_t count = vectors * SpacedRunTiles(place.tile);
  const int64_t share = (next.bytes + sharing - 1) / sharing;
  if (count <= 0 || share < count) return prefetch;
  prefetch.address = reinterpret_cast<uintptr_t>(next.data) +
                     static_cast<uintptr_t>(std::min(share * (item - first), next.bytes - 1));
  prefetch.first_tap = first_vector;
  prefetch.step = static_cast<int32_t>(std::min<int64_t>((share + count - 1) / count, 64));
  prefetch.count = count;
  return prefetch;
}

int64_t SparseConvOperator::WeightChunks() const {
  const int64_t weight_bytes = static_cast<int64_t>(packed_.group_begin[packed_.num_groups]) *
                               packed_.block_n * static_cast<int64_t>(sizeof(float));
  return (weight_bytes + kChunkWeightBytes - 1) / kChunkWeightBytes;
}

bool SparseConvOperator::output_may_overwrite_residual() const {
  return prepared_ && active_->layout != InputLayout::kChannelMajor && channel_blocks_ == 1;
}

bool SparseConvOperator::PixelMajorBlocksChannels() const {
  const int64_t channels = packed_.shape.in_channels;
  const MicrokernelVariant* pixel_major =
      FindMicrokernel(variant_->isa, variant_->block_n, variant_->weight_type,
                      InputLayout::kPixelMajor);
  if (pixel_major == nullptr) return false;
  const int64_t tile_bytes =
      pixel_major->tile_pixels * channels * static_cast<int64_t>(sizeof(float));
  const double kept_fraction =
      static_cast<double>(packed_.group_begin[packed_.num_groups]) /
      static_cast<double>(std::max<int64_t>(1, packed_.num_groups * channels));
  return packed_.shape.kernel_h == 1 && packed_.shape.kernel_w == 1 &&
         tile_bytes > kInputTileBytes && kept_fraction <= kBlockingMaxKeptFraction;
}

void SparseConvOperator::PrepareChannelBlocks() {
  block_bounds_.clear();
  channel_blocks_ = 1;
  const int64_t channels = packed_.shape.in_channels;
  if (active_->layout != InputLayout::kPixelMajor || !PixelMajorBlocksChannels()) return;
  // Equal blocks of whole 64-byte lines of channels, each tile's block within the budget.
  const int64_t lines = (channels + 15) / 16;
  const int64_t lines_per_block =
      std::max<int64_t>(1, kInputTileBytes / (active_->tile_pixels * 64));
  channel_blocks_ = (lines + lines_per_block - 1) / lines_per_block;
  const int64_t groups = packed_.num_groups;
  block_bounds_.resize(static_cast<size_t>((channel_blocks_ + 1) * groups));
  for (int64_t g = 0; g < groups; ++g) {
    int32_t k = packed_.group_begin[g];
    for (int64_t b = 0; b < channel_blocks_; ++b) {
      // First kept tap vector of group g at or past the block's first channel (a 1x1 tap index
      // is the input channel; packed in tap order).
      const int64_t first_channel = channels * b / channel_blocks_ / 16 * 16;
      while (k < packed_.group_begin[g + 1] && packed_.tap_index[k] < first_channel) ++k;
      block_bounds_[static_cast<size_t>(b * groups + g)] = k;
    }
    block_bounds_[static_cast<size_t>(channel_blocks_ * groups + g)] = packed_.group_begin[g + 1];
  }
}

void SparseConvOperator::PrepareIndirection() {
  const ConvGeometry& g = geometry_;
  // Indirection: flattened output pixel (image, y, x) -> its receptive-field origin in the
  // (pre-padded) input. Without padding the padded image is the input image itself.
  const int64_t batch = g.batch;
  const int64_t pixels_per_image = static_cast<int64_t>(g.out_h) * g.out_w;
  pixel_offsets_.resize(static_cast<size_t>(batch * pixels_per_image));
  const int64_t row_step = static_cast<int64_t>(params_.stride_h) * g.padded_w * g.channels;
  const int64_t column_step = static_cast<int64_t>(params_.stride_w) * g.channels;
  int64_t* offset = pixel_offsets_.data();
  for (int64_t image = 0; image < batch; ++image) {
    for (int64_t y = 0; y < g.out_h; ++y) {
      const int64_t row_origin = image * g.PaddedImageSize() + y * row_step;
      for (int64_t x = 0; x < g.out_w; ++x) *offset++ = row_origin + x * column_step;
    }
  }
  // Zeroed once here; Run rewrites only the interior, so the borders stay zero.
  padded_input_.ResizeZeroed(g.needs_padding ? static_cast<size_t>(batch) * g.PaddedImageSize()
                                             : 0);
}

int64_t SparseConvOperator::evenly_spaced_tiles() const {
  return std::count_if(tile_pixel_spacing_.begin(), tile_pixel_spacing_.end(),
                       [](int64_t spacing) { return spacing != 0; });
}

int32_t SparseConvOperator::UniformGroupTaps() const {
  if (packed_.num_groups <= 0) return 0;
  const int32_t* begin = packed_.group_begin.data();
  const int32_t taps = begin[1] - begin[0];
  for (int64_t group = 1; group < packed_.num_groups; ++group) {
    if (begin[group + 1] - begin[group] != taps) return 0;
  }
  return taps;
}

int64_t SparseConvOperator::SpacedRunTiles(int64_t tile) const {
  if (tile_pixel_spacing_.empty() || tile_pixel_spacing_[static_cast<size_t>(tile)] == 0) return 1;
  return (tile_first_pixel_[tile + 1] - tile_first_pixel_[tile]) / kSpacedTilePixels;
}

void SparseConvOperator::MergeSpacedTiles() {
  const int64_t tiles = static_cast<int64_t>(tile_pixel_spacing_.size());
  const int64_t spaced = evenly_spaced_tiles();
  // With input-channel blocks every tile is computed block by block, 8 pixels per call.
  if (spaced == 0 || channel_blocks_ != 1) return;
  const int64_t chunk_vectors =
      packed_.group_begin[packed_.num_groups] / std::max<int64_t>(1, WeightChunks());
  const int64_t wanted =
      (kSpacedRunMinTapVectors + chunk_vectors - 1) / std::max<int64_t>(1, chunk_vectors);
  const int64_t affordable = tiles / (kSpacedRunMinTilesPerThread * pool_->num_threads());
  const int64_t run_tiles = std::min({kMaxSpacedTilesPerRun, wanted, affordable});
  if (run_tiles <= 1) return;
  std::vector<int64_t> first_pixel(1, 0);
  std::vector<int64_t> spacing;
  for (int64_t t = 0; t < tiles;) {
    const int64_t s = tile_pixel_spacing_[static_cast<size_t>(t)];
    int64_t run = 1;
    // Full spaced tiles are consecutive pixels: tile t + run continues the run when its first
    // origin is kSpacedTilePixels spacings past the previous tile's (not across a row of a KxK
    // layer).
    while (s != 0 && run < run_tiles && t + run < tiles &&
           tile_pixel_spacing_[static_cast<size_t>(t + run)] == s &&
           pixel_offsets_[static_cast<size_t>(tile_first_pixel_[t + run])] ==
               pixel_offsets_[static_cast<size_t>(tile_first_pixel_[t + run - 1])] +
                   kSpacedTilePixels * s) {
      ++run;
    }
    first_pixel.push_back(tile_first_pixel_[t + run]);
    spacing.push_back(s);
    t += run;
  }
  tile_first_pixel_ = std::move(first_pixel);
  tile_pixel_spacing_ = std::move(spacing);
}

void SparseConvOperator::PrepareTileSpacing() {
  // SparseTileArgs::pixel_spacing: per full tile whose origins are evenly spaced, that spacing;
  // 0 for every other tile. Only variants of kSpacedTilePixels pixels have a path for it.
  const int64_t tiles = static_cast<int64_t>(tile_first_pixel_.size()) - 1;
  tile_pixel_spacing_.assign(static_cast<size_t>(std::max<int64_t>(tiles, 0)), 0);
  if (active_->tile_pixels != kSpacedTilePixels) return;
  const int64_t max_taps = active_->isa == Isa::kAvx512 ? kSpacedTileMaxTapVectorsPerGroupAvx512
                                                         : kSpacedTileMaxTapVectorsPerGroupOther;
  if (packed_.group_begin[packed_.num_groups] > max_taps * packed_.num_groups) return;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t first = tile_first_pixel_[t];
    const int64_t count = tile_first_pixel_[t + 1] - first;
    if (count != active_->tile_pixels) continue;
    const int64_t* origin = pixel_offsets_.data() + first;
    const int64_t spacing = origin[1] - origin[0];
    bool even = spacing > 0;
    for (int64_t p = 2; even && p < count; ++p) even = origin[p] - origin[0] == p * spacing;
    if (even) tile_pixel_spacing_[static_cast<size_t>(t)] = spacing;
  }
}

bool SparseConvOperator::PreparePairs() {
  const ConvGeometry& g = geometry_;
  const int64_t batch = g.batch;
  const bool one_by_one =
      packed_.shape.kernel_h == 1 && packed_.shape.kernel_w == 1 && !g.needs_padding;
  const bool strided = params_.stride_h > 1 || params_.stride_w > 1;
  if (one_by_one && PixelMajorBlocksChannels()) return false;
  if (pair_fallback_ && packed_.block_n >= kPairPixelMajorMinBlockN && one_by_one) {
    // 1x16 pairs gain 1.1-1.3x in the loop; where pairing each tile again per group chunk costs
    // more than that, the pixel-major kernel runs the layer (see the constants).
    const int64_t kept = packed_.group_begin[packed_.num_groups];
    // A stride-1 layer in several chunks is paired once per Run (image_pairs_), a strided one
    // tile by tile per chunk.
    const int64_t chunks = strided ? std::max<int64_t>(1, WeightChunks()) : 1;
    if (KeptFlopsPerInputValue(kept, packed_.block_n, g.channels) / chunks <
        kPairMinKeptFlopsPerInputPerChunk) {
      return false;
    }
  }
  // A KxK layer with an odd output width pairs its last column vertically (see
  // vertical_columns_): the columns its windows cover, appended to every pair-image row.
  vertical_columns_ = !one_by_one && g.out_w % 2 == 1 && g.out_h >= 2
                          ? (packed_.shape.kernel_w - 1) * params_.dilation_w + 1
                          : 0;
  pair_image_w_ = static_cast<int64_t>(g.padded_w) + vertical_columns_;
  // Tap offsets within the pair image: twice those of a padded image pair_image_w_ wide; the
  // microkernel adds them in 32 bits.
  ConvGeometry pair_geometry = g;
  pair_geometry.padded_w = static_cast<int>(pair_image_w_);
  if (!ComputeTapOffsets(packed_, pair_geometry, &tap_offsets_)) return false;
  for (int32_t& offset : tap_offsets_) {
    if (offset > std::numeric_limits<int32_t>::max() / 2) return false;
    offset *= 2;
  }
  pair_tiles_ = one_by_one;
  padded_input_.ResizeZeroed(0);  // the pair image (or tile buffer) replaces the padded copy
  pixel_offsets_.clear();
  pair_widths_.clear();
  pair_pixels_absolute_.clear();
  const auto add_pair = [this](int64_t origin, int64_t first, int64_t second, bool alone) {
    pixel_offsets_.push_back(origin);
    pair_widths_.push_back(alone ? 1 : 2);
    pair_pixels_absolute_.push_back(first);
    pair_pixels_absolute_.push_back(alone ? first : second);
  };
  if (pair_tiles_ && !strided) {
    // A 1x1 stride-1 convolution: pairs of consecutive flattened pixels (flattened output pixel
    // i reads flattened input pixel i), each tile paired into its own buffer by Run; the pairs'
    // origins in that buffer are set once the tiles are known (Prepare).
    const int64_t pixels = batch * g.out_h * g.out_w;
    for (int64_t pixel = 0; pixel < pixels; pixel += 2) {
      add_pair(0, pixel, pixel + 1, pixel + 1 == pixels);
    }
    return true;
  }
  // Pairs of horizontally adjacent output pixels of each row. In an odd-width row the last pixel
  // is paired with the last pixel of the next row (for a KxK layer its origin in the appended
  // columns of its first row), or left alone in a last row without a partner. Rows y and y + 1
  // then give their pairs in the order row y, the vertical pair, row y + 1, so that first pixels
  // ascend. (Until 2026-12-04 a strided 1x1 layer left the last pixel of every odd row alone:
  // a 7-wide row is three pairs and a lone pixel, 1/8 of the FMAs wasted.)
  const bool vertical_pairs = g.out_w % 2 == 1 && g.out_h >= 2;
  const int64_t image_floats = static_cast<int64_t>(g.padded_h) * pair_image_w_ * g.channels;
  const int64_t row_step = static_cast<int64_t>(params_.stride_h) * pair_image_w_ * g.channels;
  const int64_t column_step = static_cast<int64_t>(params_.stride_w) * g.channels;
  const int64_t width = g.out_w;
  const int64_t full_pairs = width / 2;
  pair_sources_.clear();
  pair_partners_.clear();
  // A strided 1x1 pair's sources (PairTileRows): output pixel (image, y, x) reads input pixel
  // (image, y x stride_h, x x stride_w).
  const auto add_source = [&](int64_t image, int64_t y, int64_t x, int64_t partner) {
    if (!pair_tiles_) return;
    pair_sources_.push_back(
        ((image * g.in_h + y * params_.stride_h) * g.in_w + x * params_.stride_w) * g.channels);
    pair_partners_.push_back(static_cast<int32_t>(partner));
  };
  for (int64_t image = 0; image < batch; ++image) {
    for (int64_t y = 0; y < g.out_h; ++y) {
      const int64_t row_origin = image * image_floats + y * row_step;
      const int64_t row_pixel = (image * g.out_h + y) * width;
      for (int64_t x = 0; x < 2 * full_pairs; x += 2) {
        add_pair(2 * (row_origin + x * column_step), row_pixel + x, row_pixel + x + 1, false);
        add_source(image, y, x, params_.stride_w);
      }
      if (width % 2 == 0) continue;
      const int64_t last = row_pixel + width - 1;
      if (!vertical_pairs || (y % 2 == 0 && y + 1 == g.out_h)) {
        add_pair(2 * (row_origin + (width - 1) * column_step), last, last, true);
        add_source(image, y, width - 1, 0);
      } else if (y % 2 == 0) {
        add_pair(2 * (row_origin + static_cast<int64_t>(g.padded_w) * g.channels), last,
                 last + width, false);
        add_source(image, y, width - 1, static_cast<int64_t>(params_.stride_h) * g.in_w);
      }
    }
  }
  // A strided 1x1 layer pairs these per tile (PairTileRows), because a pair image of the batch
  // would also pair the input rows and columns that the stride skips; Prepare replaces the
  // offsets above by the pairs' origins in the tile buffer.
  if (pair_tiles_) return true;
  const size_t pair_image_floats = 2 * static_cast<size_t>(batch * image_floats);
  if (workspace_->size() < pair_image_floats) workspace_->ResizeZeroed(pair_image_floats);
  return true;
}

void SparseConvOperator::PairRows(const float* input, int64_t first_row, int64_t end_row,
                                  float* pair_image) {
  // Rows are indexed over batch x padded_h: every row is written (the workspace may hold
  // another layer's values), input row y as pair-image row y + pad_top, padding rows as zeros;
  // then the appended columns, if any (vertical_columns_): the padded row's columns from the
  // last output column's window start, each paired with the same column stride_h rows down.
  const ConvGeometry& g = geometry_;
  const int64_t row_floats = static_cast<int64_t>(g.in_w) * g.channels;
  const int64_t pair_row_floats = 2 * pair_image_w_ * g.channels;
  const int64_t window_start = static_cast<int64_t>(g.out_w - 1) * params_.stride_w;
  // The padded image's value at padded row `padded_row` of `image`, column `column`, channel 0.
  const auto padded = [&](int64_t image, int64_t padded_row, int64_t column) -> const float* {
    const int64_t y = padded_row - g.pad_top;
    const int64_t x = column - g.pad_left;
    if (padded_row >= g.padded_h || y < 0 || y >= g.in_h || x < 0 || x >= g.in_w) return nullptr;
    return input + ((image * g.in_h + y) * g.in_w + x) * g.channels;
  };
  for (int64_t row = first_row; row < end_row; ++row) {
    const int64_t image = row / g.padded_h;
    const int64_t y = row % g.padded_h - g.pad_top;
    float* destination = pair_image + row * pair_row_floats;
    if (y < 0 || y >= g.in_h) {
      std::memset(destination, 0, static_cast<size_t>(2 * g.padded_w * g.channels) * sizeof(float));
    } else {
      active_->build_pair_row(input + (image * g.in_h + y) * row_floats, g.in_w, g.channels,
                              g.pad_left, g.padded_w, params_.stride_w, 1, destination);
    }
    for (int column = 0; column < vertical_columns_; ++column) {
      const float* upper = padded(image, row % g.padded_h, window_start + column);
      const float* lower =
          padded(image, row % g.padded_h + params_.stride_h, window_start + column);
      float* pairs = destination + 2 * (static_cast<int64_t>(g.padded_w) + column) * g.channels;
      for (int c = 0; c < g.channels; ++c) {
        pairs[2 * c] = upper != nullptr ? upper[c] : 0.0f;
        pairs[2 * c + 1] = lower != nullptr ? lower[c] : 0.0f;
      }
    }
  }
}

void SparseConvOperator::PairTileRows(const float* input, int64_t first_pair, int64_t end_pair,
                                      float* tile_buffer) const {
  // Pairs [first_pair, end_pair) of a strided 1x1 layer (pair_sources_): a run of horizontal
  // pairs of one row in one call (output pixels (y, x) and (y, x + 1) read input columns
  // stride_w apart, and the next pair starts 2 x stride_w input columns further:
  // PairRowFunction with column_step 2 x stride_w); a vertical pair as a "row" whose second
  // column is stride_h input rows below; a pixel alone with zeros (a one-column row).
  const ConvGeometry& g = geometry_;
  const int stride_w = params_.stride_w;
  const int column_step = 2 * stride_w;
  const int64_t run_step = static_cast<int64_t>(column_step) * g.channels;
  int64_t pair = first_pair;
  while (pair < end_pair) {
    const int64_t source = pair_sources_[static_cast<size_t>(pair)];
    const int32_t partner = pair_partners_[static_cast<size_t>(pair)];
    float* out = tile_buffer + (pair - first_pair) * 2 * g.channels;
    int64_t count = 1;
    if (partner == stride_w) {
      while (pair + count < end_pair &&
             pair_partners_[static_cast<size_t>(pair + count)] == stride_w &&
             pair_sources_[static_cast<size_t>(pair + count)] == source + count * run_step) {
        ++count;
      }
      const int columns = static_cast<int>(count) * column_step;
      active_->build_pair_row(input + source, columns, g.channels, 0, columns, stride_w,
                              column_step, out);
    } else {
      active_->build_pair_row(input + source, partner + 1, g.channels, 0, 1,
                              partner > 0 ? partner : 1, 1, out);
    }
    pair += count;
  }
}

bool SparseConvOperator::PreparePanel() {
  const ConvGeometry& g = geometry_;
  const bool one_by_one = packed_.shape.kernel_h == 1 && packed_.shape.kernel_w == 1;
  if (!one_by_one || g.needs_padding) return PreparePlanes();
  // The per-tile panel: rows of the tile's pixels rounded up to whole 64-byte lines, and an odd
  // number of lines, because a tile reads the same columns of many rows and with an even line
  // count those rows would share a fraction of L1's sets.
  int64_t stride = (PanelTilePixels(*variant_) + kPanelPixelAlignment - 1) /
                   kPanelPixelAlignment * kPanelPixelAlignment;
  if ((stride / kPanelPixelAlignment) % 2 == 0) stride += kPanelPixelAlignment;
  // Tap offsets are c * stride (1x1: tap index = input channel) in 32 bits, like the
  // pixel-major ones.
  if (stride * packed_.shape.in_channels > std::numeric_limits<int32_t>::max()) return false;
  tap_offsets_.resize(packed_.tap_index.size());
  for (size_t vector = 0; vector < packed_.tap_index.size(); ++vector) {
    tap_offsets_[vector] = static_cast<int32_t>(packed_.tap_index[vector] * stride);
  }
  panel_stride_ = stride;
  return true;
}

bool SparseConvOperator::PreparePlanes() {
  // Phase planes: with strides s_h x s_w, phase (ph, pw) of a channel holds the padded image's
  // rows ph, ph + s_h, ... and columns pw, pw + s_w, ... (plane_rows_ x plane_pitch_, zeros past
  // the padded image), so that output pixel (y, x) at tap (ky, kx) reads phase
  // (ky d_h mod s_h, kx d_w mod s_w) at (y + ky d_h div s_h, x + kx d_w div s_w): lane
  // y x plane_pitch_ + x plus a fixed distance per tap, as at stride 1 (one phase, the padded
  // image itself).
  const ConvGeometry& g = geometry_;
  const FilterShape& shape = packed_.shape;
  const int64_t stride_h = params_.stride_h;
  const int64_t stride_w = params_.stride_w;
  plane_rows_ = (g.padded_h + stride_h - 1) / stride_h;
  plane_pitch_ = (g.padded_w + stride_w - 1) / stride_w;
  const int64_t pitch = plane_pitch_;
  const int64_t align = kPanelPixelAlignment;
  const int64_t lanes = static_cast<int64_t>(g.out_h - 1) * pitch + g.out_w;
  image_lanes_ = (lanes + align - 1) / align * align;
  // A phase holds its rows and what the image's last lane reads at its farthest tap.
  const int64_t last_tap =
      static_cast<int64_t>(shape.kernel_h - 1) * params_.dilation_h / stride_h * pitch +
      static_cast<int64_t>(shape.kernel_w - 1) * params_.dilation_w / stride_w;
  int64_t phase = std::max(plane_rows_ * pitch, image_lanes_ + last_tap);
  phase_stride_ = (phase + align - 1) / align * align;
  // A channel's phases, an odd number of 64-byte lines, so that the same lanes of consecutive
  // channels do not share L1 sets.
  int64_t stride = stride_h * stride_w * phase_stride_;
  if ((stride / align) % 2 == 0) stride += align;
  // Tap offsets c x stride + the tap's phase and distance within it, in 32 bits.
  if (stride * shape.in_channels > std::numeric_limits<int32_t>::max()) return false;
  tap_offsets_.resize(packed_.tap_index.size());
  for (size_t vector = 0; vector < packed_.tap_index.size(); ++vector) {
    const TapPosition tap = DecodeTapIndex(packed_.tap_index[vector], shape);
    const int64_t kx = tap.kx * params_.dilation_w;  // padded columns and rows from the origin
    const int64_t ky = tap.ky * params_.dilation_h;
    const int64_t phase_index = ky % stride_h * stride_w + kx % stride_w;
    tap_offsets_[vector] = static_cast<int32_t>(tap.channel * stride +
                                                phase_index * phase_stride_ +
                                                ky / stride_h * pitch + kx / stride_w);
  }
  panel_stride_ = stride;
  planes_ = true;  // (Prepare sizes the workspace once it knows whether the threads share it)
  return true;
}

void SparseConvOperator::PrepareLaneTiles() {
  // Per image: its lanes (positions of the plane grid up to its last output pixel) in whole
  // vectors, cut into tiles of nearly equal vector counts of at most tile_pixels lanes.
  const ConvGeometry& g = geometry_;
  const int64_t pitch = plane_pitch_;
  const int64_t vector = active_->vector_pixels;
  const int64_t tile_vectors = active_->tile_pixels / vector;
  const int64_t lanes = static_cast<int64_t>(g.out_h - 1) * pitch + g.out_w;
  const int64_t vectors = (lanes + vector - 1) / vector;
  const int64_t tiles = (vectors + tile_vectors - 1) / tile_vectors;
  tile_first_lane_.clear();
  tile_first_pixel_.clear();
  lane_pixels_.assign(static_cast<size_t>(g.batch * image_lanes_), -1);
  for (int64_t image = 0; image < g.batch; ++image) {
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t first = vectors * t / tiles * vector;
      const int64_t end = vectors * (t + 1) / tiles * vector;
      int64_t first_pixel = -1;
      for (int64_t lane = first; lane < end; ++lane) {
        const int64_t y = lane / pitch;
        const int64_t x = lane % pitch;
        if (y >= g.out_h || x >= g.out_w) continue;
        const int64_t pixel = (image * g.out_h + y) * g.out_w + x;
        if (first_pixel < 0) first_pixel = pixel;
        lane_pixels_[static_cast<size_t>(image * image_lanes_ + lane)] = pixel - first_pixel;
      }
      tile_first_lane_.push_back(image * image_lanes_ + first);
      // (A tile of padding columns only, possible for a wide valid-padded window, stores
      // nothing.)
      tile_first_pixel_.push_back(first_pixel >= 0 ? first_pixel : 0);
    }
  }
  tile_first_lane_.push_back(g.batch * image_lanes_);
  tile_first_pixel_.push_back(static_cast<int64_t>(g.batch) * g.out_h * g.out_w);
}

int64_t SparseConvOperator::PlaneRows() const {
  return static_cast<int64_t>(geometry_.batch) * plane_rows_ * params_.stride_h;
}

size_t SparseConvOperator::PlanesFloats() const {
  return static_cast<size_t>(geometry_.batch) * geometry_.channels * panel_stride_;
}

void SparseConvOperator::BuildPlaneRows(const float* input, int64_t first_row, int64_t end_row,
                                        float* destination) const {
  // Rows are padded rows (PlaneRows: over batch x plane_rows_ x stride_h, the last few past the
  // padded image all zeros); each item writes its row of every phase of every channel whole
  // (the workspace may hold another layer's values), and a phase's last row also the zeros
  // after it. Nothing is written outside the item's rows, so threads may build any rows: Run
  // splits them like the tiles, and a thread mostly reads the rows it wrote (at 2 threads,
  // planes split by channels instead made every thread read half its input from the other
  // core's caches).
  const ConvGeometry& g = geometry_;
  const int64_t stride_h = params_.stride_h;
  const int64_t stride_w = params_.stride_w;
  const int64_t pitch = plane_pitch_;
  const int64_t stride = panel_stride_;
  const int64_t image_rows = plane_rows_ * stride_h;
  const int channels = g.channels;
  const int64_t row_floats = static_cast<int64_t>(g.in_w) * channels;
  for (int64_t row = first_row; row < end_row; ++row) {
    const int64_t image = row / image_rows;
    const int64_t padded_row = row % image_rows;
    const int64_t y = padded_row - g.pad_top;
    const int64_t phase_row = padded_row / stride_h;
    const bool data = padded_row < g.padded_h && y >= 0 && y < g.in_h;
    // The row's end within its phase: the zeros after the phase too for its last row.
    const int64_t end = phase_row + 1 == plane_rows_ ? phase_stride_ - phase_row * pitch : pitch;
    for (int64_t pw = 0; pw < stride_w; ++pw) {
      const int64_t phase = padded_row % stride_h * stride_w + pw;
      float* rows = destination + image * channels * stride + phase * phase_stride_ +
                    phase_row * pitch;
      // Phase columns [first, last) hold input columns first x s_w + pw - pad_left, ...
      const int64_t first =
          g.pad_left > pw ? (g.pad_left - pw + stride_w - 1) / stride_w : 0;
      const int64_t last = std::max(
          first, std::min(pitch, (g.pad_left + g.in_w - pw + stride_w - 1) / stride_w));
      const int64_t count = data ? last - first : 0;
      if (count == 0) {
        for (int c = 0; c < channels; ++c) {
          std::fill(rows + c * stride, rows + c * stride + end, 0.0f);
        }
      } else {
        // The padding columns, a column at a time across the channels: a few floats per
        // channel row, where a fill per row and side was a memset call each (5-11 % of the
        // 3x3 channel-major layers' time, docs/RESULTS.md, "Padding columns without memset").
        const auto zero_columns = [&](int64_t begin, int64_t end_column) {
          for (int64_t column = begin; column < end_column; ++column) {
            for (int c = 0; c < channels; ++c) rows[c * stride + column] = 0.0f;
          }
        };
        const int64_t row_end = std::min(end, pitch);
        zero_columns(0, first);
        zero_columns(last, row_end);
        if (row_end < end) {  // a phase's last row: the rows of zeros after it, one fill each
          for (int c = 0; c < channels; ++c) {
            std::fill(rows + c * stride + row_end, rows + c * stride + end, 0.0f);
          }
        }
      }
      if (count > 0) {
        const int64_t column = first * stride_w + pw - g.pad_left;
        active_->transpose(input + (image * g.in_h + y) * row_floats + column * channels,
                           channels, stride_w * channels, count, rows + first, stride);
      }
    }
  }
}

void SparseConvOperator::TransposeStridedTile(const float* input, int64_t first_pixel,
                                              int64_t pixels, float* panel) const {
  // Output pixel (image, y, x) reads input pixel (image, y x stride_h, x x stride_w): one
  // transposition per output row the tile covers, its pixels stride_w input pixels apart.
  const ConvGeometry& g = geometry_;
  const int64_t end = first_pixel + pixels;
  for (int64_t pixel = first_pixel; pixel < end;) {
    const int64_t row = pixel / g.out_w;  // over batch x out_h
    const int64_t x = pixel % g.out_w;
    const int64_t image = row / g.out_h;
    const int64_t y = row % g.out_h;
    const int64_t count = std::min<int64_t>(end - pixel, g.out_w - x);
    const float* source =
        input + ((image * g.in_h + y * params_.stride_h) * g.in_w + x * params_.stride_w) *
                    g.channels;
    active_->transpose(source, g.channels, static_cast<int64_t>(params_.stride_w) * g.channels,
                       count, panel + (pixel - first_pixel), panel_stride_);
    pixel += count;
  }
}

void SparseConvOperator::PadRows(const float* input, int64_t first_row, int64_t end_row) {
  // Rows are indexed over batch x in_h; each input row is copied into its padded position.
  const ConvGeometry& g = geometry_;
  const size_t row_floats = static_cast<size_t>(g.in_w) * g.channels;
  for (int64_t row = first_row; row < end_row; ++row) {
    const int64_t image = row / g.in_h;
    const int64_t y = row % g.in_h;
    float* destination = padded_input_.data() + image * g.PaddedImageSize() +
                         ((y + g.pad_top) * g.padded_w + g.pad_left) * g.channels;
    std::memcpy(destination, input + row * row_floats, row_floats * sizeof(float));
  }
}

bool SparseConvOperator::Run(const float* input, float* output, const float* residual) {
  if (!prepared_) return false;
  if (geometry_.batch == 0) return true;
  const ConvGeometry& g = geometry_;
  const bool panel = active_->layout == InputLayout::kChannelMajor;
  const bool pairs = active_->layout == InputLayout::kPixelPair;
  const float* source = input;
  // (A channel-major variant on a 1x1 layer needs nothing before the tiles: each transposes its
  // own pixels.)
  if (planes_ && !private_planes_) {
    float* planes = workspace_->data();
    const bool built = Parallelize1DTile(
        serial_ ? nullptr : pool_.get(), PlaneRows(), 1,
        [this, input, planes](int64_t row, int64_t rows) {
          BuildPlaneRows(input, row, row + rows, planes);
        });
    if (!built) return false;
    source = planes;
  } else if (pairs && !pair_tiles_) {
    float* pair_image = workspace_->data();
    const bool built = Parallelize1DTile(
        serial_ ? nullptr : pool_.get(), static_cast<int64_t>(g.batch) * g.padded_h, 1,
        [this, input, pair_image](int64_t row, int64_t rows) {
          PairRows(input, row, row + rows, pair_image);
        });
    if (!built) return false;
    source = pair_image;
  } else if (image_pairs_) {
    // Consecutive pixels into disjoint pairs (PairRowFunction with column_step 2); an odd last
    // pixel pairs with zeros. Tiles of about 32 KiB of pairs, so that both threads share even a
    // 7x7 image (25 pairs): built by one thread, a 7x7x2048 image made the layer 1.2x slower at
    // 2 threads.
    float* pair_image = workspace_->data();
    const int64_t pixels = static_cast<int64_t>(g.batch) * g.out_h * g.out_w;
    const int channels = g.channels;
    const PairRowFunction build = active_->build_pair_row;
    const int64_t tile_pairs =
        std::max<int64_t>(1, 32 * 1024 / (2 * static_cast<int64_t>(channels) * sizeof(float)));
    const bool built = Parallelize1DTile(
        serial_ ? nullptr : pool_.get(), (pixels + 1) / 2, tile_pairs,
        [&](int64_t pair, int64_t pairs) {
          const int count = static_cast<int>(std::min(2 * pairs, pixels - 2 * pair));
          build(input + 2 * pair * channels, count, channels, 0, count + count % 2, 1, 2,
                pair_image + 2 * pair * channels);
        });
    if (!built) return false;
    source = pair_image;
  } else if (!panel && g.needs_padding) {
    const bool padded = Parallelize1DTile(
        serial_ ? nullptr : pool_.get(), static_cast<int64_t>(g.batch) * g.in_h, 1,
        [this, input](int64_t row, int64_t rows) { PadRows(input, row, row + rows); });
    if (!padded) return false;
    source = padded_input_.data();
  }
  SparseTileArgs base;
  base.input = source;
  base.pixel_offsets = pixel_offsets_.data();
  base.num_pixels = 0;
  base.first_group = 0;
  base.end_group = 0;
  base.group_begin = packed_.group_begin.data();
  base.weights = packed_.weights.data();
  base.tap_offsets = tap_offsets_.data();
  base.bias = packed_.bias.data();
  base.output = output;
  base.output_pixel_stride = g.out_channels;
  base.out_channels = g.out_channels;
  base.activation_min = activation_min_;
  base.activation_max = activation_max_;
  base.residual = residual;
  base.residual_min = residual_min_;
  base.residual_max = residual_max_;
  const bool stream = stream_output_ && reinterpret_cast<uintptr_t>(output) % 64 == 0;
  base.stream_output = stream;
  base.group_taps = group_taps_;
  const SparseTileFunction function = active_->function;
  const PanelTransposeFunction transpose = active_->transpose;
  const int channels = g.channels;
  const int64_t panel_stride = panel_stride_;
  const size_t panel_floats = static_cast<size_t>(panel_stride_) * g.channels;
  const int64_t tiles = static_cast<int64_t>(tile_first_pixel_.size()) - 1;
  const int64_t chunks = static_cast<int64_t>(chunk_first_group_.size()) - 1;
  const int64_t* tile_first_pixel = tile_first_pixel_.data();
  const int64_t* tile_pixel_spacing = tile_pixel_spacing_.data();
  const int64_t* tile_first_pair = tile_first_pair_.data();
  const bool tile_pairs = pair_tiles_ && !image_pairs_;
  const bool tile_pair_rows = tile_pairs && (params_.stride_h > 1 || params_.stride_w > 1);
  const PairRowFunction build_pairs = active_->build_pair_row;
  const size_t tile_buffer_floats = static_cast<size_t>(active_->tile_pixels) * g.channels;
  const uint8_t* pair_widths = pair_widths_.data();
  const int32_t* pair_pixels = pair_pixels_.data();
  const int32_t* chunk_first_group = chunk_first_group_.data();
  const int64_t blocks = channel_blocks_;
  const int64_t groups = packed_.num_groups;
  const int32_t* block_bounds = block_bounds_.data();
  const bool strided_panel = params_.stride_h > 1 || params_.stride_w > 1;
  const bool planes = planes_;
  const bool private_planes = private_planes_;
  const size_t planes_floats = PlanesFloats();
  const int64_t plane_rows = PlaneRows();
  const int64_t* tile_first_lane = tile_first_lane_.data();
  const int64_t* lane_pixels = lane_pixels_.data();
  const int64_t image_lanes = image_lanes_;
  const uint64_t run = RunId();  // what the threads' tile panels are kept for
  // One work item = one pixel tile x one group chunk (PlaceOf).
  return Parallelize1DTile(
      serial_ ? nullptr : pool_.get(), chunks * tiles, 1,
      [&](int64_t item, int64_t) {
        const ItemPlace place = PlaceOf(item);
        const int64_t chunk = place.chunk;
        const int64_t tile = place.tile;
        const int64_t pixel = tile_first_pixel[tile];
        SparseTileArgs args = base;
        args.num_pixels = static_cast<int>(tile_first_pixel[tile + 1] - pixel);
        if (planes) {
          const float* planes_base =
              private_planes ? KeptTileBuffer(planes_floats, run, -1,
                                              [&](float* own) {
                                                BuildPlaneRows(input, 0, plane_rows, own);
                                              })
                             : source;
          const int64_t lane = tile_first_lane[tile];
          const int64_t image = lane / image_lanes;
          args.input =
              planes_base + image * channels * panel_stride + (lane - image * image_lanes);
          args.num_pixels = static_cast<int>(tile_first_lane[tile + 1] - lane);
          args.pixel_offsets = lane_pixels + lane;
        } else if (panel) {
          args.input = KeptTileBuffer(panel_floats, run, tile, [&](float* tile_panel) {
            if (strided_panel) {
              TransposeStridedTile(input, pixel, args.num_pixels, tile_panel);
            } else {
              // Stride 1: flattened output pixel i reads flattened input pixel i.
              transpose(input + pixel * channels, channels, channels, args.num_pixels,
                        tile_panel, panel_stride);
            }
          });
          args.pixel_offsets = nullptr;  // lane l is the tile's pixel l
        } else if (pairs) {
          const int64_t pair = tile_first_pair[tile];
          if (tile_pairs) {
            args.input = KeptTileBuffer(tile_buffer_floats, run, tile, [&](float* tile_buffer) {
              if (tile_pair_rows) {
                PairTileRows(input, pair, tile_first_pair[tile + 1], tile_buffer);
              } else {
                // Consecutive pixels into disjoint pairs (PairRowFunction with column_step 2).
                const int count = static_cast<int>(tile_first_pixel[tile + 1] - pixel);
                build_pairs(input + pixel * channels, count, channels, 0, count + count % 2, 1,
                            2, tile_buffer);
              }
            });
          }
          args.pixel_offsets = base.pixel_offsets + pair;
          args.pair_widths = pair_widths + pair;
          args.pair_pixels = pair_pixels + 2 * pair;
          args.num_pairs = static_cast<int>(tile_first_pair[tile + 1] - pair);
          args.num_pixels = 0;
          for (int p = 0; p < args.num_pairs; ++p) args.num_pixels += args.pair_widths[p];
        } else {
          args.pixel_offsets = base.pixel_offsets + pixel;
          args.pixel_spacing = tile_pixel_spacing[tile];
        }
        args.first_group = chunk_first_group[chunk];
        args.end_group = chunk_first_group[chunk + 1];
        const TilePrefetch prefetch = Prefetch(item);
        args.prefetch_address = prefetch.address;
        args.prefetch_first_tap = prefetch.first_tap;
        args.prefetch_step = prefetch.step;
        args.output = base.output + pixel * base.output_pixel_stride;
        if (residual != nullptr) args.residual = residual + pixel * base.output_pixel_stride;
        if (blocks == 1) {
          function(args);
          // Streamed stores are weakly ordered: fence them before the join publishes the output.
          if (stream) StoreFence();
          return;
        }
        // Input-channel blocks: partial sums wait in the output tile between the calls.
        for (int64_t block = 0; block < blocks; ++block) {
          args.group_begin = block_bounds + block * groups;
          args.group_end = block_bounds + (block + 1) * groups;
          args.accumulate = block > 0;
          args.store_partial = block + 1 < blocks;
          function(args);
        }
      });
}

}  // namespace tflite_sparse
