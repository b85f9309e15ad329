#include "engine/swift/gaussian_process.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace swift {

double GaussianProcess::kernel(const Eigen::VectorXd& a, const Eigen::VectorXd& b) const {
  const double r = (a - b).norm() / length_;
  const double s = std::sqrt(5.0) * r;
  return (1.0 + s + s * s / 3.0) * std::exp(-s);
}

void GaussianProcess::fit_with(double length) {
  length_ = length;
  const int64_t n = X_.rows();
  Eigen::MatrixXd K(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) K(i, j) = K(j, i) = kernel(X_.row(i).transpose(), X_.row(j).transpose());
  K.diagonal().array() += noise_;
  llt_.compute(K);
}

void GaussianProcess::fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) {
  X_ = X;
  const int64_t n = y.size();
  y_mean_ = n ? y.mean() : 0.0;
  y_std_ = n > 1 ? std::sqrt((y.array() - y_mean_).square().sum() / n) : 1.0;
  if (!(y_std_ > 1e-12)) y_std_ = 1.0;
  const Eigen::VectorXd yn = (y.array() - y_mean_) / y_std_;
  double best_ll = -INFINITY, best_len = 1.0;
  for (double len : {0.5, 1.0, 2.0, 3.0, 5.0, 8.0}) {
    fit_with(len);
    if (llt_.info() != Eigen::Success) continue;
    const Eigen::VectorXd a = llt_.solve(yn);
    const Eigen::MatrixXd L = llt_.matrixL();
    const double ll = -0.5 * yn.dot(a) - L.diagonal().array().log().sum();
    if (ll > best_ll) best_ll = ll, best_len = len;
  }
  fit_with(best_len);
  alpha_ = llt_.solve(yn);
}

void GaussianProcess::predict(const Eigen::VectorXd& x, double* mean, double* stddev) const {
  const int64_t n = X_.rows();
  if (n == 0) {
    *mean = 0.0;
    *stddev = 1.0;
    return;
  }
  Eigen::VectorXd k(n);
  for (int64_t i = 0; i < n; ++i) k(i) = kernel(X_.row(i).transpose(), x);
  *mean = k.dot(alpha_) * y_std_ + y_mean_;
  const Eigen::VectorXd v = llt_.matrixL().solve(k);
  const double var = std::max(1.0 - v.squaredNorm(), 1e-12);
  *stddev = std::sqrt(var) * y_std_;
}

Eigen::VectorXd ucb_suggest(const GaussianProcess& gp, int64_t dim, int64_t k, double kappa, int n_random,
                            std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  Eigen::VectorXd best(dim), x(dim);
  double best_score = -INFINITY;
  std::vector<int64_t> idx(dim);
  std::iota(idx.begin(), idx.end(), 0);
  for (int i = 0; i < 2 * n_random; ++i) {
    if (i < n_random) {
      for (int64_t d = 0; d < dim; ++d) x(d) = uni(rng);
    } else {
      x.setZero();
      std::shuffle(idx.begin(), idx.end(), rng);
      for (int64_t j = 0; j < k && j < dim; ++j) x(idx[j]) = 1.0;
    }
    double m, s;
    gp.predict(x, &m, &s);
    const double score = m + kappa * s;
    if (score > best_score) best_score = score, best = x;
  }
  return best;
}

}  // namespace swift
