#include "core/metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace pb::metrics {

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double value) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  if (value > 0) sum_micro_.fetch_add(static_cast<uint64_t>(std::llround(value * 1e6)), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = total += counts_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum() const { return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6; }

namespace {

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

// {a="x",b="y"} (empty without labels); `extra` is one more pair already formatted (le="0.1").
std::string Labels(const std::vector<std::string>& names, const LabelValues& values, const std::string& extra = {}) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], Escape(values[i], true));
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? out : "{" + out + "}";
}

void Header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, Escape(help, false), name, type);
}

}  // namespace

std::string Escape(const std::string& text, bool label_value) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && label_value) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

template <class T>
Family<T>& Registry::FamilyIn(std::unique_ptr<Family<T>> Entry::*slot, const char* type, const std::string& name,
                              const std::string& help, std::vector<std::string> labels, std::vector<double> bounds) {
  MutexLock lock(mu_);
  Entry& e = families_[name];
  std::unique_ptr<Family<T>>& family = e.*slot;
  if (!family) {
    e.help = help;
    e.type = type;
    family = std::make_unique<Family<T>>(std::move(labels), std::move(bounds));
  }
  return *family;
}

Family<Counter>& Registry::CounterFamily(const std::string& name, const std::string& help,
                                         std::vector<std::string> labels) {
  return FamilyIn(&Entry::counter, "counter", name, help, std::move(labels), {});
}

Family<Gauge>& Registry::GaugeFamily(const std::string& name, const std::string& help,
                                     std::vector<std::string> labels) {
  return FamilyIn(&Entry::gauge, "gauge", name, help, std::move(labels), {});
}

Family<Histogram>& Registry::HistogramFamily(const std::string& name, const std::string& help,
                                             std::vector<std::string> labels, std::vector<double> bounds) {
  return FamilyIn(&Entry::histogram, "histogram", name, help, std::move(labels), std::move(bounds));
}

Registry::Registration::~Registration() {
  MutexLock lock(registry_->mu_);
  registry_->collectors_.erase(id_);
}

std::unique_ptr<Registry::Registration> Registry::AddCollector(const std::string& name, const std::string& help,
                                                               std::vector<std::string> labels,
                                                               std::function<Samples()> read, const std::string& type) {
  MutexLock lock(mu_);
  const uint64_t id = next_id_++;
  collectors_[id] = Collector{name, help, type, std::move(labels), std::move(read)};
  return std::make_unique<Registration>(*this, id);
}

std::string Registry::Text() const {
  // The collectors are read outside the lock (they may query the database), from a copy.
  std::vector<Collector> collectors;
  {
    MutexLock lock(mu_);
    for (const auto& [id, c] : collectors_) collectors.push_back(c);
  }
  std::map<std::string, std::string> blocks;  // by name: the output is sorted
  for (const Collector& c : collectors) {
    std::string out;
    Header(out, c.name, c.help, c.type.c_str());
    for (const auto& [values, v] : c.read())
      out += fmt::format("{}{} {}\n", c.name, Labels(c.labels, values), Number(v));
    blocks[c.name] = std::move(out);
  }
  MutexLock lock(mu_);
  for (const auto& family : families_) {
    const std::string& name = family.first;  // (clang 14 lambdas cannot capture structured bindings)
    const Entry& e = family.second;
    std::string out;
    Header(out, name, e.help, e.type.c_str());
    if (e.counter) {
      e.counter->ForEach([&](const LabelValues& values, const Counter& c) {
        out += fmt::format("{}{} {}\n", name, Labels(e.counter->labels(), values), c.value());
      });
    } else if (e.gauge) {
      e.gauge->ForEach([&](const LabelValues& values, const Gauge& g) {
        out += fmt::format("{}{} {}\n", name, Labels(e.gauge->labels(), values), g.value());
      });
    } else if (e.histogram) {
      e.histogram->ForEach([&](const LabelValues& values, const Histogram& h) {
        const std::vector<uint64_t> cumulative = h.Cumulative();
        for (size_t i = 0; i < cumulative.size(); ++i) {
          const double le = i < h.bounds().size() ? h.bounds()[i] : INFINITY;
          out +=
              fmt::format("{}_bucket{} {}\n", name,
                          Labels(e.histogram->labels(), values, fmt::format("le=\"{}\"", Number(le))), cumulative[i]);
        }
        out += fmt::format("{}_sum{} {}\n", name, Labels(e.histogram->labels(), values), Number(h.sum()));
        out += fmt::format("{}_count{} {}\n", name, Labels(e.histogram->labels(), values), cumulative.back());
      });
    }
    blocks[name] = std::move(out);
  }
  std::string text;
  for (auto& [name, block] : blocks) text += block;
  return text;
}

Registry& Default() {
  static Registry* registry = new Registry();  // never destroyed: threads may count until exit
  return *registry;
}

}  // namespace pb::metrics
