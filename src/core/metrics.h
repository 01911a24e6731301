#pragma once
// Process-wide metrics, given by GET /metrics in the Prometheus text exposition format 0.0.4:
// counters, gauges and histograms with labels, and collectors that read a value when scraped
// (the index queue, jobs by state). Hot paths look a labelled child up once (With) and then
// update atomics. Debian 12 packages no C++ Prometheus client; the format is small (HELP and
// TYPE lines, escaped label values, cumulative buckets), so it is written here.
//
// Label values must come from configuration (a receiver's or node's name) or a closed set (an
// outcome, a state), never from what a peer sends: each value is a series kept for ever.
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/thread_annotations.h"

namespace pb::metrics {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Add(int64_t delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);  // upper bounds, rising; +Inf is added
  void Observe(double value);
  // Cumulative counts per bound (the last is +Inf, the count), and the sum.
  std::vector<uint64_t> Cumulative() const;
  double sum() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<uint64_t> sum_micro_{0};               // the sum in millionths (durations, sizes)
};

using LabelValues = std::vector<std::string>;

// One metric name with its label names; a child per label values, created on first use and kept
// (its address is stable).
template <class T>
class Family {
 public:
  Family(std::vector<std::string> labels, std::vector<double> bounds)
      : labels_(std::move(labels)), bounds_(std::move(bounds)) {}
  T& With(const LabelValues& values) {
    MutexLock lock(mu_);
    auto it = index_.find(values);
    if (it != index_.end()) return *it->second;
    if constexpr (std::is_same_v<T, Histogram>) {
      children_.emplace_back(bounds_);
    } else {
      children_.emplace_back();
    }
    index_.emplace(values, &children_.back());
    return children_.back();
  }
  // Each child with its label values, in label order.
  template <class F>
  void ForEach(F&& f) const {
    MutexLock lock(mu_);
    for (const auto& [values, child] : index_) f(values, *child);
  }
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  const std::vector<std::string> labels_;
  const std::vector<double> bounds_;
  mutable Mutex mu_;
  std::deque<T> children_ GUARDED_BY(mu_);
  std::map<LabelValues, T*> index_ GUARDED_BY(mu_);
};

// A value read when scraped: one sample per label values.
using Samples = std::vector<std::pair<LabelValues, double>>;

class Registry {
 public:
  // A family is created on first call and the same one returned after (the help and labels of
  // the first call stay).
  Family<Counter>& CounterFamily(const std::string& name, const std::string& help, std::vector<std::string> labels);
  Family<Gauge>& GaugeFamily(const std::string& name, const std::string& help, std::vector<std::string> labels);
  Family<Histogram>& HistogramFamily(const std::string& name, const std::string& help, std::vector<std::string> labels,
                                     std::vector<double> bounds);

  // Keeps a collector (a gauge read at scrape time) until the returned handle is destroyed.
  class Registration {
   public:
    Registration(Registry& r, uint64_t id) : registry_(&r), id_(id) {}
    ~Registration();
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    Registry* registry_;
    uint64_t id_;
  };
  // `type`: "gauge", or "counter" for a total kept elsewhere (its name ends in _total).
  [[nodiscard]] std::unique_ptr<Registration> AddCollector(const std::string& name, const std::string& help,
                                                           std::vector<std::string> labels,
                                                           std::function<Samples()> read,
                                                           const std::string& type = "gauge");

  // Every metric in the text format, sorted by name.
  std::string Text() const;

 private:
  struct Collector {
    std::string name, help, type;
    std::vector<std::string> labels;
    std::function<Samples()> read;
  };
  struct Entry {
    std::string help, type;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  // The family of `name` in `slot` of its entry, created with `type`, `help`, `labels` and
  // `bounds` on first call.
  template <class T>
  Family<T>& FamilyIn(std::unique_ptr<Family<T>> Entry::*slot, const char* type, const std::string& name,
                      const std::string& help, std::vector<std::string> labels, std::vector<double> bounds);
  mutable Mutex mu_;
  std::map<std::string, Entry> families_ GUARDED_BY(mu_);
  std::map<uint64_t, Collector> collectors_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
};

// The process's registry, which GET /metrics gives.
Registry& Default();

// A label value or HELP text escaped for the text format (backslash, double quote, newline).
std::string Escape(const std::string& text, bool label_value);

}  // namespace pb::metrics
