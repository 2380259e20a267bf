// The size of the CPU's last-level (L3) cache, for decisions that depend on what stays cached
// between layers (SparseConvOperator::StreamingOutputBytes).
#ifndef TFLITE_DELEGATE_COMMON_CACHE_SIZE_H_
#define TFLITE_DELEGATE_COMMON_CACHE_SIZE_H_

#include <cstdint>

namespace tflite_sparse {

// Bytes of the L3 cache that CPU 0 shares, as Linux describes it in
// /sys/devices/system/cpu/cpu0/cache/index*/ (level 3, "size"), or 0 when no such entry exists
// or cannot be read. Read from sysfs rather than sysconf(_SC_LEVEL3_CACHE_SIZE): on the Zen 4
// virtual machine this project is measured on, glibc reports 320 MiB where sysfs (and lscpu) say
// 32 MiB. Reads the files once; later calls return the same value.
int64_t L3CacheBytes();

// Parses a sysfs cache "size" value ("32768K", "1M", "512"): bytes, or 0 if malformed.
int64_t ParseCacheSize(const char* text);

}  // namespace tflite_sparse

#endif  // TFLITE_DELEGATE_COMMON_CACHE_SIZE_H_
