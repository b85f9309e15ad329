#include "engine/swift/layer_search.h"

#include <algorithm>
#include <numeric>

#include "util/check.h"

namespace swift {

LayerSearch::LayerSearch(int64_t n_layer, LayerSearchParams p)
    : n_layer_(n_layer), dim_(std::max<int64_t>(0, 2 * (n_layer - 2))), p_(p), rng_(p.seed) {
  best_ = SkipPlan::none(n_layer);
}

bool LayerSearch::done() const {
  return dim_ == 0 || best_score_ > p_.max_score || since_gain_ >= p_.max_tolerance || proposals_ >= p_.max_iter;
}

std::vector<uint8_t> LayerSearch::encode(const SkipPlan& plan) const {
  std::vector<uint8_t> bits(dim_, 0);
  const int64_t m = n_layer_ - 2;
  for (int64_t l = 1; l <= m; ++l) {
    bits[l - 1] = plan.skip_attn[l];
    bits[m + l - 1] = plan.skip_mlp[l];
  }
  return bits;
}

SkipPlan LayerSearch::decode(const std::vector<uint8_t>& bits) const {
  SkipPlan plan = SkipPlan::none(n_layer_);
  const int64_t m = n_layer_ - 2;
  for (int64_t l = 1; l <= m; ++l) {
    plan.skip_attn[l] = bits[l - 1];
    plan.skip_mlp[l] = bits[m + l - 1];
  }
  return plan;
}

SkipPlan LayerSearch::every_other_layer(int64_t n_layer) {
  SkipPlan plan = SkipPlan::none(n_layer);
  for (int64_t l = 1; l < n_layer - 1; l += 2) plan.skip_attn[l] = plan.skip_mlp[l] = 1;
  return plan;
}

int64_t LayerSearch::draw_k() {
  double r = p_.skip_ratio;
  if (p_.ratio_max > p_.ratio_min) r = std::uniform_real_distribution<double>(p_.ratio_min, p_.ratio_max)(rng_);
  return std::clamp<int64_t>(static_cast<int64_t>(static_cast<double>(dim_) * r), 1, dim_);
}

std::vector<uint8_t> LayerSearch::random_bits(int64_t k) {
  std::vector<int64_t> idx(dim_);
  std::iota(idx.begin(), idx.end(), 0);
  std::vector<uint8_t> bits;
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::shuffle(idx.begin(), idx.end(), rng_);
    bits.assign(dim_, 0);
    for (int64_t j = 0; j < k; ++j) bits[idx[j]] = 1;
    if (!seen_.count(bits)) break;
  }
  return bits;
}

std::vector<uint8_t> LayerSearch::bayes_bits(int64_t k) {
  if (xs_.size() < 2) return random_bits(k);
  Eigen::MatrixXd X(static_cast<int64_t>(xs_.size()), dim_);
  Eigen::VectorXd y(static_cast<int64_t>(ys_.size()));
  for (size_t i = 0; i < xs_.size(); ++i) {
    for (int64_t d = 0; d < dim_; ++d) X(static_cast<int64_t>(i), d) = xs_[i][d];
    y(static_cast<int64_t>(i)) = ys_[i];
  }
  GaussianProcess gp(p_.noise);
  gp.fit(X, y);
  const Eigen::VectorXd s = ucb_suggest(gp, dim_, k, p_.kappa, 500, rng_);
  // Top-k coordinates of the continuous suggestion form the set (as the reference code does).
  std::vector<int64_t> idx(dim_);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return s(a) > s(b); });
  std::vector<uint8_t> bits(dim_, 0);
  for (int64_t j = 0; j < k; ++j) bits[idx[j]] = 1;
  if (seen_.count(bits)) return random_bits(k);
  return bits;
}

SkipPlan LayerSearch::propose() {
  SWIFT_CHECK(dim_ > 0);
  const int64_t k = draw_k();
  const bool bayes = p_.bayes_interval > 0 && (proposals_ + 1) % p_.bayes_interval == 0;
  return decode(bayes ? bayes_bits(k) : random_bits(k));
}

void LayerSearch::seed(const SkipPlan& plan, double score) {
  auto bits = encode(plan);
  xs_.push_back(bits);
  ys_.push_back(score);
  seen_.insert(bits);
  if (score > best_score_) best_score_ = score, best_ = plan;
}

bool LayerSearch::observe(const SkipPlan& plan, double score) {
  ++proposals_;
  auto bits = encode(plan);
  xs_.push_back(bits);
  ys_.push_back(score);
  seen_.insert(bits);
  if (score > best_score_) {
    best_score_ = score;
    best_ = plan;
    since_gain_ = 0;
    return true;
  }
  ++since_gain_;
  return false;
}

}  // namespace swift
