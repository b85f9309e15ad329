// Gaussian-process regression with a Matern-5/2 kernel and an upper-confidence-bound
// acquisition, the Bayesian-optimisation half of SWIFT's layer-set search (Xia et al., sec. 3.2:
// every `bayes_interval`-th proposal comes from GP + UCB over the 0/1 skip vector).
//
// Mirrors what the reference code gets from the `bayes_opt` package: inputs in [0, 1]^D,
// observation noise alpha = 1e-2, targets normalised, UCB = mean + kappa * std with kappa 2.5,
// acquisition maximised over random points. The kernel length scale is chosen by marginal
// likelihood over a small grid (bayes_opt fits it with L-BFGS; the grid is cheaper and
// deterministic). Cost: one Cholesky of n x n per fit, n = observations (<= 1000).
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <random>
#include <vector>

namespace swift {

class GaussianProcess {
 public:
  explicit GaussianProcess(double noise = 1e-2) : noise_(noise) {}

  // Fits to rows of X (n x D) and targets y (n).
  void fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y);
  // Posterior mean and standard deviation at x (in the original target units).
  void predict(const Eigen::VectorXd& x, double* mean, double* stddev) const;
  double length_scale() const { return length_; }

 private:
  double kernel(const Eigen::VectorXd& a, const Eigen::VectorXd& b) const;
  void fit_with(double length);  // factorises K + noise*I for this length scale

  double noise_;
  double length_ = 1.0;
  double y_mean_ = 0.0, y_std_ = 1.0;
  Eigen::MatrixXd X_;
  Eigen::LLT<Eigen::MatrixXd> llt_;
  Eigen::VectorXd alpha_;
};

// Returns the point of [0,1]^D maximising mean + kappa * std among `n_random` uniform points
// and as many random k-hot points (the shape of real skip sets).
Eigen::VectorXd ucb_suggest(const GaussianProcess& gp, int64_t dim, int64_t k, double kappa, int n_random,
                            std::mt19937_64& rng);

}  // namespace swift
