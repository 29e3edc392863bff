#include "trace_compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>

namespace ms {
namespace {

using Outcome = PartitionComparison::Outcome;

// Canonical labels: each kept token labelled by the first token of its group; pruned tokens keep -1.
template <typename T>
std::vector<int64_t> canonical(const std::vector<T>& cluster) {
  std::map<int64_t, int64_t> first;
  std::vector<int64_t> out(cluster.size());
  for (size_t t = 0; t < cluster.size(); ++t)
    out[t] = cluster[t] < 0 ? -1 : first.emplace(cluster[t], static_cast<int64_t>(t)).first->second;
  return out;
}

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(int n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int i) { return parent[i] == i ? i : parent[i] = find(parent[i]); }
  void join(int a, int b) { parent[find(a)] = find(b); }
};

PartitionComparison mismatch(int layer, const std::string& detail) {
  PartitionComparison c;
  c.outcome = Outcome::kMismatch;
  c.layer = layer;
  c.detail = "layer " + std::to_string(layer) + ": " + detail;
  return c;
}

std::string format_margin(double m) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", m);
  return buf;
}

// Layer l is the first whose partition differs: the layer's input tokens are the same groups in both runs.
PartitionComparison classify_difference(const ImageTrace& ours, const ReferencePartitions& reference, int l,
                                        double tolerance) {
  const LayerTrace& lt = ours.layers[l];
  const int n_in = lt.tokens_in;
  const size_t n0 = lt.cluster_of_token.size();
  std::vector<int64_t> input_of(n0);
  for (size_t t = 0; t < n0; ++t)
    input_of[t] = l == 0 ? static_cast<int64_t>(t) : ours.layers[l - 1].cluster_of_token[t];

  auto margin_of = [&](int i) {
    return lt.margin.empty() ? std::numeric_limits<double>::infinity() : static_cast<double>(lt.margin[i]);
  };

  // Each input token's output in both runs; a reference that splits an input token cannot come from the
  // same earlier partition.
  std::vector<int64_t> ours_out(n_in, -2), ref_out(n_in, -2);
  for (size_t t = 0; t < n0; ++t) {
    const int64_t in = input_of[t];
    if (in < 0) {
      if (reference[l][t] >= 0) return mismatch(l, "the reference restores pruned token " + std::to_string(t));
      continue;
    }
    if (in >= n_in) return mismatch(l, "input token " + std::to_string(in) + " out of range");
    if (ref_out[in] != -2 && ref_out[in] != reference[l][t])
      return mismatch(l, "the reference splits the group of original token " + std::to_string(t));
    ours_out[in] = lt.cluster_of_token[t];
    ref_out[in] = reference[l][t];
  }

  // Groups that differ, connected through shared outputs on either side.
  UnionFind uf(n_in);
  std::map<int64_t, int> first_ours, first_ref;
  for (int i = 0; i < n_in; ++i) {
    if (ours_out[i] >= 0) uf.join(i, first_ours.emplace(ours_out[i], i).first->second);
    if (ref_out[i] >= 0) uf.join(i, first_ref.emplace(ref_out[i], i).first->second);
  }
  std::map<int, std::vector<int>> components;
  for (int i = 0; i < n_in; ++i)
    if (ours_out[i] != -2) components[uf.find(i)].push_back(i);

  // A near-tie can move other decisions of the same block (PiToMe's A/B roles and its cut follow the
  // energy order, so one swapped pair changes which B the other A tokens see and which edge sits at the
  // cut), so the block is excused when a group that differs holds a token whose margin is below the
  // tolerance; the groups that differ and their smallest margins are listed either way.
  std::string groups;
  double smallest = std::numeric_limits<double>::infinity();
  for (const auto& [root, members] : components) {
    std::vector<int64_t> a, b;
    for (int i : members) a.push_back(ours_out[i]), b.push_back(ref_out[i]);
    if (canonical(a) == canonical(b)) continue;
    int closest = members.front();
    for (int i : members)
      if (margin_of(i) < margin_of(closest)) closest = i;
    smallest = std::min(smallest, margin_of(closest));
    std::string tokens;
    for (int i : members) tokens += (tokens.empty() ? "" : ",") + std::to_string(i);
    groups += (groups.empty() ? "" : "; ") +
              ("input tokens {" + tokens + "} (smallest margin " + format_margin(margin_of(closest)) + " at token " +
               std::to_string(closest) + ")");
  }
  if (groups.empty()) return mismatch(l, "partitions differ but no group of input tokens does");  // cannot happen
  if (!(smallest < tolerance))
    return mismatch(l, "groups differ where every margin is >= " + format_margin(tolerance) + ": " + groups);
  PartitionComparison result;
  result.outcome = Outcome::kTie;
  result.layer = l;
  result.margin = smallest;
  result.detail = "layer " + std::to_string(l) + ": tie (margin " + format_margin(smallest) + " < " +
                  format_margin(tolerance) + "): " + groups;
  return result;
}

}  // namespace

PartitionComparison compare_partitions(const ImageTrace& ours, const ReferencePartitions& reference, double tolerance) {
  if (reference.size() != ours.layers.size())
    return mismatch(0, "the reference has " + std::to_string(reference.size()) + " layers, the run " +
                           std::to_string(ours.layers.size()));
  // Margins are checked everywhere, not only where partitions differ: a margin computed with the wrong sign
  // would otherwise excuse every difference.
  for (size_t l = 0; l < ours.layers.size(); ++l) {
    const LayerTrace& lt = ours.layers[l];
    const int layer = static_cast<int>(l);
    if (!lt.margin.empty() && static_cast<int>(lt.margin.size()) != lt.tokens_in)
      return mismatch(layer, "the trace has " + std::to_string(lt.margin.size()) + " margins for " +
                                 std::to_string(lt.tokens_in) + " input tokens");
    for (size_t i = 0; i < lt.margin.size(); ++i)
      if (!(lt.margin[i] >= 0))  // also NaN
        return mismatch(layer, "invalid margin " + format_margin(lt.margin[i]) + " of input token " +
                                   std::to_string(i) + " (margins are >= 0)");
  }
  for (size_t l = 0; l < reference.size(); ++l) {
    const int layer = static_cast<int>(l);
    if (reference[l].size() != ours.layers[l].cluster_of_token.size())
      return mismatch(layer, "the reference has " + std::to_string(reference[l].size()) + " tokens, the run " +
                                 std::to_string(ours.layers[l].cluster_of_token.size()));
    if (canonical(ours.layers[l].cluster_of_token) != canonical(reference[l]))
      return classify_difference(ours, reference, layer, tolerance);
  }
  return {};
}

const char* outcome_name(PartitionComparison::Outcome outcome) {
  switch (outcome) {
    case Outcome::kIdentical:
      return "identical";
    case Outcome::kTie:
      return "tie";
    case Outcome::kMismatch:
      return "mismatch";
  }
  return "?";
}

}  // namespace ms
