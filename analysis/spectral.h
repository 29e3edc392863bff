// The spectral check of PiToMe §3.3 on real token graphs.
//
// A token graph has weights W[i,j] from the keys (default 1 - cos, the paper's Eq. 3). A merge history is a
// partition of its N nodes into n groups. The coarsened graph sums each block (W_c = P^T W P); the lifted graph
// spreads it back, W_l[i,j] = W_c[g(i), g(j)] / (|g(i)| |g(j)|). For the normalised Laplacian
// L = I - D^-1/2 W D^-1/2, spec(L_lift) = spec(L_coarse) plus eigenvalue 1 repeated N - n times (Lemma 1,
// which holds for block sums; with block means, the paper's Definition 1, it does not). The spectral distance
// SD = sum_i |lambda_i(L) - lambda_i(L_lift)| over sorted eigenvalues.
#pragma once

#include <Eigen/Dense>

#include <string>
#include <vector>

namespace ms {

enum class GraphKernel { OneMinusCos, ClippedCos, Gaussian };

struct GraphOptions {
  GraphKernel kernel = GraphKernel::OneMinusCos;
  double sigma = 0.5;  // Gaussian kernel width on 1 - cos: exp(-(1 - cos)^2 / (2 sigma^2))
};

GraphKernel kernel_from_name(const std::string& name);  // one-minus-cos | clipped-cos | gaussian
std::string kernel_name(GraphKernel k);

// Dense symmetric weights of n tokens with `dim`-dimensional keys (row-major); zero diagonal.
Eigen::MatrixXd token_graph(const float* keys, int n, int dim, const GraphOptions& options = {});

// I - D^-1/2 W D^-1/2; a node without edges gets L_ii = 0, so zero eigenvalues count connected components.
Eigen::MatrixXd normalized_laplacian(const Eigen::MatrixXd& W);

// All eigenvalues of a symmetric matrix, ascending (Eigen's dense self-adjoint solver).
Eigen::VectorXd eigenvalues(const Eigen::MatrixXd& symmetric);

// The k smallest or largest eigenvalues with Spectra (Lanczos), ascending; for graphs too large for a
// full decomposition.
Eigen::VectorXd extreme_eigenvalues(const Eigen::MatrixXd& symmetric, int k, bool largest);

// A partition of N nodes: group[i] in [0, groups).
struct Partition {
  std::vector<int> group;
  int groups = 0;
  std::vector<int> sizes() const;
};

// Relabels arbitrary ids (e.g. cluster_of_token entries) to 0..n-1 in order of first appearance.
Partition make_partition(const std::vector<int>& ids);

Eigen::MatrixXd coarsen_sum(const Eigen::MatrixXd& W, const Partition& p);
Eigen::MatrixXd coarsen_mean(const Eigen::MatrixXd& W, const Partition& p);
// N x N lift of a block-sum coarse graph: W_c[g(i), g(j)] / (|g(i)| |g(j)|).
Eigen::MatrixXd lift(const Eigen::MatrixXd& coarse_sum, const Partition& p);

// The 1 - cos graph of unit keys is W = 11^T - K K^T (zero diagonal included): rank <= dim + 1. For a graph
// W = B diag(signs) B^T (one row of B per node), the normalised Laplacian has eigenvalue 1 with multiplicity
// >= n - rank(B), and the rest are 1 - eig(R diag(signs) R^T) with D^-1/2 B = QR: an r x r problem instead of
// n x n. Returns all n eigenvalues ascending; empty when a node has no edge weight (use the dense path).
Eigen::VectorXd low_rank_laplacian_spectrum(const Eigen::MatrixXd& B, const Eigen::VectorXd& signs);

// B and signs of the 1 - cos graph: B = [1, K_unit], signs = [+1, -1, ..., -1].
Eigen::MatrixXd one_minus_cos_factor(const float* keys, int n, int dim);
Eigen::VectorXd one_minus_cos_signs(int dim);

// Rows of B summed per group: the factor of the block-sum coarsened graph P^T W P.
Eigen::MatrixXd coarsen_factor(const Eigen::MatrixXd& B, const Partition& p);

// spec(L_coarse) plus (N - n) ones, sorted: the lifted spectrum by Lemma 1, at the cost of an n x n solve.
Eigen::VectorXd lifted_spectrum_from_coarse(const Eigen::VectorXd& coarse_spectrum, int original_nodes);

// sum_i |a_i - b_i| over two sorted spectra of equal length.
double spectral_distance(const Eigen::VectorXd& a, const Eigen::VectorXd& b);

// Baselines: a random partition with the same group sizes, and k-means (k-means++, Lloyd) on the
// unit-normalised keys with the same number of groups.
Partition random_partition_like(const Partition& p, unsigned seed);
Partition kmeans_partition(const float* keys, int n, int dim, int groups, unsigned seed, int iterations = 50);

}  // namespace ms
