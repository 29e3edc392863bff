// One background thread for the app's slow work (model load, running methods, thumbnails). Tasks run in
// order; each reports progress and polls a cancel flag through its Context. Results and errors reach the
// main thread only through post(): run_posted() runs them there, once per frame, so GL objects and the
// AppState are touched by the main thread alone.
#pragma once

#include "app_state.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ms::gui {

class Worker;

// Thrown by Context::check() once the task is cancelled; the worker swallows it.
struct Cancelled {};

class TaskContext {
 public:
  explicit TaskContext(Worker& worker) : worker_(worker) {}
  void progress(float fraction);  // 0..1
  bool cancelled() const;
  void check() const;                   // throws Cancelled when cancelled
  void post(std::function<void()> fn);  // runs fn on the main thread

 private:
  Worker& worker_;
};

class Worker {
 public:
  using Task = std::function<void(TaskContext&)>;
  // `on_error` runs on the main thread with a one-line message when a task throws.
  explicit Worker(std::function<void(const std::string&)> on_error);
  ~Worker();  // cancels, joins

  void submit(std::string name, Task task);
  // Cancels the running task and drops the queued ones.
  void cancel_all();
  WorkStatus status() const;
  bool idle() const;  // nothing running, queued or waiting to be posted
  // Main thread: runs what tasks posted, in order; one that throws goes to `on_error` and the rest still run.
  void run_posted();

 private:
  friend class TaskContext;
  void loop();

  std::function<void(const std::string&)> on_error_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::string, Task>> queue_;
  std::deque<std::function<void()>> posted_;
  std::string current_;
  bool running_ = false, stop_ = false;
  std::atomic<bool> cancel_{false};
  std::atomic<float> progress_{0};
  std::thread thread_;
};

}  // namespace ms::gui
