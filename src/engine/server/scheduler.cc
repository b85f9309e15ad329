#include "engine/server/scheduler.h"

#include <chrono>

#include "util/check.h"
#include "util/timer.h"

namespace swift {

struct Scheduler::Slot {
  std::shared_ptr<Job> job;
  std::unique_ptr<DecoderHandle> handle;
  std::unique_ptr<Generation> gen;
};

bool Job::wait(std::string* text, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return done || !pending.empty(); });
  text->append(pending);
  pending.clear();
  return done;
}

Scheduler::Scheduler(const Model& model, ThreadPool& pool, DecoderFactory factory, int n_slots, size_t max_queue)
    : model_(model), pool_(pool), factory_(std::move(factory)), n_slots_(n_slots), max_queue_(max_queue) {
  SWIFT_CHECK(n_slots >= 1, "need at least one slot");
  metrics_.slots = n_slots;
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= max_queue_)
      throw Error(fmt::format("the server is busy: {} requests are already waiting (--queue-size)", queue_.size()));
    queue_.emplace_back(job, now_ms());
    metrics_.queued = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
}

void Scheduler::cancel_all() {
  cancel_all_ = true;
  cv_.notify_all();
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return metrics_;
}

void Scheduler::fail(Job& job, const std::string& msg, bool client) {
  {
    std::lock_guard<std::mutex> lock(job.mu);
    job.error = msg;
    job.error_is_client = client;
    job.done = true;
  }
  job.cv.notify_all();
  std::lock_guard<std::mutex> lock(mu_);
  ++metrics_.requests_failed;
}

void Scheduler::finish(Slot& s) {
  Job& job = *s.job;
  GenerateResult& r = s.gen->result();
  nlohmann::json mode_stats = s.handle->finish(r.stats);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++metrics_.requests_done;
    metrics_.requests_aborted += r.finish_reason == "abort";
    metrics_.prompt_tokens += r.stats.prompt_tokens;
    metrics_.generated_tokens += r.stats.generated_tokens;
    metrics_.decode_ms += r.stats.decode_ms;
    metrics_.prefill_ms += r.stats.prefill_ms;
    auto x = [&](const char* k) { return r.stats.extra.count(k) ? r.stats.extra.at(k) : 0.0; };
    metrics_.drafted_tokens += static_cast<int64_t>(x("drafted_tokens"));
    metrics_.accepted_tokens += static_cast<int64_t>(x("accepted_tokens"));
    metrics_.verify_steps += static_cast<int64_t>(x("verify_steps"));
  }
  {
    std::lock_guard<std::mutex> lock(job.mu);
    job.result = std::move(r);
    job.mode_stats = std::move(mode_stats);
    job.done = true;
  }
  job.cv.notify_all();
}

void Scheduler::loop() {
  for (;;) {
    // Admit queued jobs into free slots.
    std::vector<std::pair<std::shared_ptr<Job>, double>> admitted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !active_.empty(); });
      if (stop_) break;
      while (!queue_.empty() && active_.size() + admitted.size() < static_cast<size_t>(n_slots_)) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      metrics_.queued = static_cast<int64_t>(queue_.size());
    }
    for (auto& [job, t_queued] : admitted) {
      job->queue_ms = now_ms() - t_queued;
      if (job->cancelled || cancel_all_) {
        fail(*job, "cancelled before it started", true);
        continue;
      }
      try {
        auto slot = std::make_unique<Slot>();
        slot->job = job;
        slot->handle = factory_(job->mode, job->opt.sampling, job->task);
        slot->gen = std::make_unique<Generation>(model_, slot->handle->decoder(), job->prompt, job->opt, pool_);
        active_.push_back(std::move(slot));
      } catch (const Error& e) {
        fail(*job, e.what(), true);
      } catch (const std::exception& e) {
        fail(*job, e.what(), false);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      metrics_.active = static_cast<int64_t>(active_.size());
    }
    // One step of every active generation, round robin.
    for (size_t i = 0; i < active_.size();) {
      Slot& s = *active_[i];
      bool ended = false;
      try {
        if (s.job->cancelled || cancel_all_) {
          s.gen->abort();
        } else {
          std::string text;
          s.gen->advance(&text);
          if (!text.empty()) {
            std::lock_guard<std::mutex> lock(s.job->mu);
            s.job->pending += text;
          }
          s.job->cv.notify_all();
        }
        if (s.gen->finished()) {
          finish(s);
          ended = true;
        }
      } catch (const Error& e) {
        fail(*s.job, e.what(), true);
        ended = true;
      } catch (const std::exception& e) {
        fail(*s.job, std::string("internal error: ") + e.what(), false);
        ended = true;
      }
      if (ended) active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
      else ++i;
    }
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.active = static_cast<int64_t>(active_.size());
  }
  // Shutting down: end everything still running or waiting.
  for (auto& s : active_) {
    s->gen->abort();
    finish(*s);
  }
  active_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [job, t] : queue_) {
    std::lock_guard<std::mutex> jl(job->mu);
    job->error = "the server is shutting down";
    job->error_is_client = false;
    job->done = true;
    job->cv.notify_all();
  }
  queue_.clear();
}

}  // namespace swift
