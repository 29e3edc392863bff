#include "worker.h"

#include "error.h"

namespace ms::gui {

void TaskContext::progress(float fraction) { worker_.progress_ = fraction; }
bool TaskContext::cancelled() const { return worker_.cancel_; }
void TaskContext::check() const {
  if (worker_.cancel_) throw Cancelled{};
}
void TaskContext::post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(worker_.mutex_);
  worker_.posted_.push_back(std::move(fn));
}

Worker::Worker(std::function<void(const std::string&)> on_error) : on_error_(std::move(on_error)) {
  thread_ = std::thread([this] { loop(); });
}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    queue_.clear();
  }
  cancel_ = true;
  wake_.notify_all();
  thread_.join();
}

void Worker::submit(std::string name, Task task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.emplace_back(std::move(name), std::move(task));
  }
  wake_.notify_all();
}

void Worker::cancel_all() {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.clear();
  if (running_) cancel_ = true;
}

WorkStatus Worker::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  WorkStatus s;
  s.busy = running_;
  s.task = current_;
  s.progress = progress_;
  s.queued = static_cast<int>(queue_.size());
  return s;
}

bool Worker::idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !running_ && queue_.empty() && posted_.empty();
}

void Worker::run_posted() {
  std::deque<std::function<void()>> todo;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    todo.swap(posted_);
  }
  // What tasks post (results going into the state, GL uploads) is part of their request: a failure there is
  // shown like one in the task and the rest of the queue still runs.
  for (auto& fn : todo) {
    try {
      fn();
    } catch (const std::exception& e) {
      on_error_(one_line(e));
    } catch (...) {
      on_error_("unknown error");
    }
  }
}

void Worker::loop() {
  for (;;) {
    std::pair<std::string, Task> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
      current_ = job.first;
      progress_ = -1;
      cancel_ = false;
    }
    TaskContext ctx(*this);
    std::string error;
    try {
      job.second(ctx);
    } catch (const Cancelled&) {
    } catch (const std::exception& e) {
      error = one_line(e);
    } catch (...) {
      error = "unknown error";
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error.empty()) {
      const std::string message = job.first + ": " + error;
      posted_.push_back([this, message] { on_error_(message); });
    }
    running_ = false;
    current_.clear();
  }
}

}  // namespace ms::gui
