// The server's decode loop: one compute thread runs every active generation ("slot") a step at
// a time, round robin, so `--parallel N` requests make progress together without the model's
// forward pass ever running twice at once (its workspace and thread pool are single-user by
// design: one pass already uses every core). Requests beyond N wait in a FIFO queue.
//
// HTTP threads talk to the loop only through Job: they submit it, then wait for text pieces
// and the final result; setting `cancelled` (a client went away) ends the generation before
// its next step.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/generation.h"

namespace swift {

// A decoder for one request plus what to do when it ends (plan sharing, mode statistics).
class DecoderHandle {
 public:
  virtual ~DecoderHandle() = default;
  virtual Decoder& decoder() = 0;
  virtual nlohmann::json finish(const GenerateStats& stats) = 0;
};
using DecoderFactory =
    std::function<std::unique_ptr<DecoderHandle>(const std::string& mode, const SamplingParams& sampling,
                                                 const std::string& task)>;

struct Job {
  std::vector<int32_t> prompt;
  GenerateOptions opt;
  std::string mode, task;

  std::atomic<bool> cancelled{false};

  // Waits up to timeout_ms for new text or the end; appends text. Returns true when the job
  // has ended (result/error are then final).
  bool wait(std::string* text, int timeout_ms);

  // Set by the scheduler (under mu).
  std::mutex mu;
  std::condition_variable cv;
  std::string pending;           // produced text not yet taken by wait()
  bool done = false;
  std::string error;             // non-empty: the request failed with this message
  bool error_is_client = true;   // bad request (400) vs internal failure (500)
  GenerateResult result;
  nlohmann::json mode_stats = nlohmann::json::object();
  double queue_ms = 0;
};

struct SchedulerMetrics {
  int64_t requests_done = 0, requests_failed = 0, requests_aborted = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double decode_ms = 0, prefill_ms = 0;
  int64_t drafted_tokens = 0, accepted_tokens = 0, verify_steps = 0;
  int64_t active = 0, queued = 0, slots = 0;
};

class Scheduler {
 public:
  Scheduler(const Model& model, ThreadPool& pool, DecoderFactory factory, int n_slots, size_t max_queue);
  ~Scheduler();  // ends every job ("abort") and joins the loop

  // Queues the job; throws swift::Error when max_queue jobs already wait (the server answers 503).
  void submit(const std::shared_ptr<Job>& job);
  SchedulerMetrics metrics() const;
  // Cancels every queued and running job (shutdown): each ends before its next step.
  void cancel_all();

 private:
  struct Slot;
  void loop();
  void finish(Slot& s);
  void fail(Job& job, const std::string& msg, bool client);

  const Model& model_;
  ThreadPool& pool_;
  DecoderFactory factory_;
  int n_slots_;
  size_t max_queue_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<Job>, double>> queue_;  // job, time queued (ms)
  bool stop_ = false;
  std::atomic<bool> cancel_all_{false};  // every job, queued or running, ends before its next step
  SchedulerMetrics metrics_;
  std::vector<std::unique_ptr<Slot>> active_;  // loop thread only
  std::thread thread_;
};

}  // namespace swift
