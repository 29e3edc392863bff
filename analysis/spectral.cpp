#include "spectral.h"

#include "error.h"

#include <Spectra/SymEigsSolver.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <unordered_map>

namespace ms {

GraphKernel kernel_from_name(const std::string& name) {
  if (name == "one-minus-cos") return GraphKernel::OneMinusCos;
  if (name == "clipped-cos") return GraphKernel::ClippedCos;
  if (name == "gaussian") return GraphKernel::Gaussian;
  fail("--kernel", "'" + name + "' is not a graph kernel (one-minus-cos, clipped-cos, gaussian)");
}

std::string kernel_name(GraphKernel k) {
  switch (k) {
    case GraphKernel::OneMinusCos:
      return "one-minus-cos";
    case GraphKernel::ClippedCos:
      return "clipped-cos";
    case GraphKernel::Gaussian:
      return "gaussian";
  }
  return "?";
}

namespace {

// Rows scaled to unit length, in double.
Eigen::MatrixXd unit_rows(const float* keys, int n, int dim) {
  Eigen::MatrixXd k =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(keys, n, dim)
          .cast<double>();
  for (int i = 0; i < n; ++i) {
    const double norm = k.row(i).norm();
    if (norm > 0) k.row(i) /= norm;
  }
  return k;
}

}  // namespace

Eigen::MatrixXd token_graph(const float* keys, int n, int dim, const GraphOptions& options) {
  const Eigen::MatrixXd k = unit_rows(keys, n, dim);
  Eigen::MatrixXd cos = k * k.transpose();
  Eigen::MatrixXd W(n, n);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) {
      const double c = std::clamp(cos(i, j), -1.0, 1.0);
      switch (options.kernel) {
        case GraphKernel::OneMinusCos:
          W(i, j) = 1.0 - c;
          break;
        case GraphKernel::ClippedCos:
          W(i, j) = std::max(c, 0.0);
          break;
        case GraphKernel::Gaussian:
          W(i, j) = std::exp(-(1.0 - c) * (1.0 - c) / (2 * options.sigma * options.sigma));
          break;
      }
    }
  W.diagonal().setZero();
  // Symmetrise exactly: the product above is symmetric only up to rounding.
  return 0.5 * (W + W.transpose());
}

Eigen::MatrixXd normalized_laplacian(const Eigen::MatrixXd& W) {
  const Eigen::VectorXd d = W.rowwise().sum();
  Eigen::VectorXd inv_sqrt(d.size());
  for (Eigen::Index i = 0; i < d.size(); ++i) inv_sqrt(i) = d(i) > 0 ? 1.0 / std::sqrt(d(i)) : 0.0;
  Eigen::MatrixXd L = -(inv_sqrt.asDiagonal() * W * inv_sqrt.asDiagonal());
  for (Eigen::Index i = 0; i < d.size(); ++i) L(i, i) += d(i) > 0 ? 1.0 : 0.0;
  return 0.5 * (L + L.transpose());
}

Eigen::VectorXd eigenvalues(const Eigen::MatrixXd& symmetric) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(symmetric, Eigen::EigenvaluesOnly);
  if (solver.info() != Eigen::Success) fail("eigenvalues", "the dense symmetric eigensolver did not converge");
  return solver.eigenvalues();  // ascending
}

namespace {

// Spectra's DenseSymMatProd reads one triangle through a self-adjoint view, which Eigen does not vectorise
// well; the full (symmetric) matrix-vector product is several times faster here.
class FullSymProduct {
 public:
  using Scalar = double;
  explicit FullSymProduct(const Eigen::MatrixXd& m) : m_(m) {}
  Eigen::Index rows() const { return m_.rows(); }
  Eigen::Index cols() const { return m_.cols(); }
  void perform_op(const double* x, double* y) const {
    Eigen::Map<Eigen::VectorXd>(y, m_.rows()).noalias() = m_ * Eigen::Map<const Eigen::VectorXd>(x, m_.cols());
  }

 private:
  const Eigen::MatrixXd& m_;
};

}  // namespace

Eigen::VectorXd extreme_eigenvalues(const Eigen::MatrixXd& symmetric, int k, bool largest) {
  const int n = static_cast<int>(symmetric.rows());
  if (k <= 0 || k >= n)
    fail("extreme_eigenvalues", "k = " + std::to_string(k) + " must be in [1, " + std::to_string(n - 1) + "]");
  FullSymProduct op(symmetric);
  const int ncv = std::min(n, std::max(2 * k + 1, 20));
  Spectra::SymEigsSolver<FullSymProduct> solver(op, k, ncv);
  solver.init();
  solver.compute(largest ? Spectra::SortRule::LargestAlge : Spectra::SortRule::SmallestAlge, 1000, 1e-9,
                 Spectra::SortRule::SmallestAlge);
  if (solver.info() != Spectra::CompInfo::Successful) fail("extreme_eigenvalues", "Lanczos iteration did not converge");
  return solver.eigenvalues();
}

std::vector<int> Partition::sizes() const {
  std::vector<int> s(groups, 0);
  for (int g : group) ++s[g];
  return s;
}

Partition make_partition(const std::vector<int>& ids) {
  Partition p;
  std::unordered_map<int, int> label;
  p.group.reserve(ids.size());
  for (int id : ids) {
    const auto it = label.emplace(id, p.groups);
    if (it.second) ++p.groups;
    p.group.push_back(it.first->second);
  }
  return p;
}

Eigen::MatrixXd coarsen_sum(const Eigen::MatrixXd& W, const Partition& p) {
  const int N = static_cast<int>(W.rows());
  Eigen::MatrixXd rows = Eigen::MatrixXd::Zero(p.groups, N);  // P^T W
  for (int i = 0; i < N; ++i) rows.row(p.group[i]) += W.row(i);
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(p.groups, p.groups);  // (P^T W) P
  for (int j = 0; j < N; ++j) out.col(p.group[j]) += rows.col(j);
  return out;
}

Eigen::MatrixXd coarsen_mean(const Eigen::MatrixXd& W, const Partition& p) {
  const std::vector<int> s = p.sizes();
  Eigen::MatrixXd out = coarsen_sum(W, p);
  for (int b = 0; b < p.groups; ++b)
    for (int a = 0; a < p.groups; ++a) out(a, b) /= static_cast<double>(s[a]) * s[b];
  return out;
}

Eigen::MatrixXd lift(const Eigen::MatrixXd& coarse_sum, const Partition& p) {
  const std::vector<int> s = p.sizes();
  const int N = static_cast<int>(p.group.size());
  Eigen::MatrixXd out(N, N);
  for (int j = 0; j < N; ++j)
    for (int i = 0; i < N; ++i)
      out(i, j) = coarse_sum(p.group[i], p.group[j]) / (static_cast<double>(s[p.group[i]]) * s[p.group[j]]);
  return out;
}

Eigen::VectorXd low_rank_laplacian_spectrum(const Eigen::MatrixXd& B, const Eigen::VectorXd& signs) {
  const Eigen::Index n = B.rows(), r = B.cols();
  const Eigen::VectorXd degree = B * signs.cwiseProduct(B.transpose() * Eigen::VectorXd::Ones(n));
  if (degree.minCoeff() <= 1e-12 * std::max(1.0, degree.maxCoeff())) return {};
  if (n <= r) {  // nothing to gain: form the small graph
    Eigen::MatrixXd W = B * signs.asDiagonal() * B.transpose();
    return eigenvalues(normalized_laplacian(W));
  }
  const Eigen::MatrixXd M = degree.cwiseInverse().cwiseSqrt().asDiagonal() * B;
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(M);
  const Eigen::MatrixXd R = qr.matrixQR().topRows(r).triangularView<Eigen::Upper>();
  Eigen::MatrixXd T = R * signs.asDiagonal() * R.transpose();
  T = 0.5 * (T + T.transpose());
  const Eigen::VectorXd mu = eigenvalues(T);
  Eigen::VectorXd out = Eigen::VectorXd::Ones(n);
  out.head(r) = Eigen::VectorXd::Ones(r) - mu;
  std::sort(out.data(), out.data() + out.size());
  return out;
}

Eigen::MatrixXd one_minus_cos_factor(const float* keys, int n, int dim) {
  Eigen::MatrixXd B(n, dim + 1);
  B.col(0).setOnes();
  B.rightCols(dim) = unit_rows(keys, n, dim);
  return B;
}

Eigen::VectorXd one_minus_cos_signs(int dim) {
  Eigen::VectorXd s = -Eigen::VectorXd::Ones(dim + 1);
  s(0) = 1.0;
  return s;
}

Eigen::MatrixXd coarsen_factor(const Eigen::MatrixXd& B, const Partition& p) {
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(p.groups, B.cols());
  for (Eigen::Index i = 0; i < B.rows(); ++i) out.row(p.group[i]) += B.row(i);
  return out;
}

Eigen::VectorXd lifted_spectrum_from_coarse(const Eigen::VectorXd& coarse_spectrum, int original_nodes) {
  const Eigen::Index n = coarse_spectrum.size();
  Eigen::VectorXd out(original_nodes);
  out.head(n) = coarse_spectrum;
  out.tail(original_nodes - n).setOnes();
  std::sort(out.data(), out.data() + out.size());
  return out;
}

double spectral_distance(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  if (a.size() != b.size()) fail("spectral_distance", "spectra of different lengths");
  return (a - b).cwiseAbs().sum();
}

Partition random_partition_like(const Partition& p, unsigned seed) {
  Partition out = p;
  std::mt19937 rng(seed);
  std::shuffle(out.group.begin(), out.group.end(), rng);
  return make_partition(out.group);
}

Partition kmeans_partition(const float* keys, int n, int dim, int groups, unsigned seed, int iterations) {
  if (groups <= 0 || groups > n)
    fail("kmeans", "cannot make " + std::to_string(groups) + " groups of " + std::to_string(n) + " points");
  const Eigen::MatrixXd x = unit_rows(keys, n, dim);
  const Eigen::VectorXd x2 = x.rowwise().squaredNorm();
  std::mt19937 rng(seed);
  // k-means++ seeding
  Eigen::MatrixXd centers(groups, dim);
  std::vector<double> dist(n, std::numeric_limits<double>::infinity());
  centers.row(0) = x.row(std::uniform_int_distribution<int>(0, n - 1)(rng));
  for (int c = 1; c < groups; ++c) {
    // |x_i - c|^2 = |x_i|^2 + |c|^2 - 2 x_i.c, one matrix-vector product (rows of x are unit or zero)
    const Eigen::VectorXd dots = x * centers.row(c - 1).transpose();
    const double cc = centers.row(c - 1).squaredNorm();
    for (int i = 0; i < n; ++i) dist[i] = std::min(dist[i], std::max(0.0, x2(i) + cc - 2.0 * dots(i)));
    std::discrete_distribution<int> pick(dist.begin(), dist.end());
    const double total = std::accumulate(dist.begin(), dist.end(), 0.0);
    centers.row(c) = x.row(total > 0 ? pick(rng) : c % n);
  }
  std::vector<int> assign(n, -1);
  for (int it = 0; it < iterations; ++it) {
    bool changed = false;
    const Eigen::MatrixXd d2 = (-2.0 * x * centers.transpose()).rowwise() + centers.rowwise().squaredNorm().transpose();
    for (int i = 0; i < n; ++i) {
      Eigen::Index best;
      d2.row(i).minCoeff(&best);
      if (assign[i] != best) changed = true;
      assign[i] = static_cast<int>(best);
    }
    Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(groups, dim);
    std::vector<int> count(groups, 0);
    for (int i = 0; i < n; ++i) {
      sum.row(assign[i]) += x.row(i);
      ++count[assign[i]];
    }
    // Empty clusters take the points farthest from their centres, each a different point.
    std::vector<int> far_order;
    size_t next_far = 0;
    for (int c = 0; c < groups; ++c) {
      if (count[c] > 0) {
        centers.row(c) = sum.row(c) / count[c];
        continue;
      }
      if (far_order.empty()) {
        std::vector<double> d(n);
        for (int i = 0; i < n; ++i) d[i] = d2(i, assign[i]);
        far_order.resize(n);
        std::iota(far_order.begin(), far_order.end(), 0);
        std::sort(far_order.begin(), far_order.end(), [&](int a, int b) { return d[a] > d[b]; });
      }
      while (next_far < far_order.size() && count[assign[far_order[next_far]]] <= 1) ++next_far;
      if (next_far == far_order.size()) continue;
      const int i = far_order[next_far++];
      --count[assign[i]];
      assign[i] = c;
      count[c] = 1;
      centers.row(c) = x.row(i);
      changed = true;
    }
    if (!changed) break;
  }
  return make_partition(assign);
}

}  // namespace ms
