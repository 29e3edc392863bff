// Tie-aware comparison of a run's token partitions with a reference implementation's.
//
// Two correct float32 implementations agree on every merge decision except near-ties: when two candidates
// score within rounding of each other, the order of a sum (another BLAS kernel, another library) can pick
// either. The comparison walks the layers; at the first layer whose partition differs it looks at the
// groups of that block's input tokens that differ (connected through shared outputs on either side) and
// asks whether one of them holds a token whose decision margin in *our* run (LayerTrace::margin,
// core/reduce/ops.h) is below the tolerance. Then the difference is a tie: a near-tie decision went the
// other way, and since one decision can move others of the same block (PiToMe's roles and cut follow its
// energy order), that block and the image's later layers are not compared further. Otherwise it is a
// mismatch, reported with the margins.
#pragma once

#include "trace.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ms {

// The one tolerance for decision margins (cosine similarities, PiToMe energies, importances x N). A decision
// can come out differently in another float32 implementation only where its margin is below the margin's
// own rounding error, which grows through the blocks: each block's keys carry the rounding of every GEMM
// before it. bench/kernel_margins.sh measures it as the difference of the same margins between OpenBLAS's
// Prescott (SSE) and Zen (AVX2 + FMA) kernels, DeiT-Ti, 120 shared images, ToMe r=13 and PiToMe-code 0.9:
// median 1e-7 to 3e-7 in every block, largest 8e-7 in block 0 and 1.0e-4 in blocks 9-11. Twice the largest:
constexpr double kTieTolerance = 2e-4;

struct PartitionComparison {
  enum class Outcome { kIdentical, kTie, kMismatch };
  Outcome outcome = Outcome::kIdentical;
  int layer = -1;      // first layer whose partition differs (-1: none)
  double margin = 0;   // tie: the smallest margin among the groups that differ (< tolerance)
  std::string detail;  // what differs, with the margins there (ties and mismatches)
};

// Partitions per layer of the reference: reference[l][t] = output token holding original token t after
// block l, -1 if pruned; ids are arbitrary, only the partition counts.
using ReferencePartitions = std::vector<std::vector<int64_t>>;

PartitionComparison compare_partitions(const ImageTrace& ours, const ReferencePartitions& reference,
                                       double tolerance = kTieTolerance);

const char* outcome_name(PartitionComparison::Outcome outcome);

}  // namespace ms
