// Locks the compiler checks: clang's thread-safety analysis (-Wthread-safety, the clang preset
// builds with it and -Werror). A member written `GUARDED_BY(mu_)` may only be read or written
// with `mu_` held; a function marked `REQUIRES(mu_)` may only be called with it held. GCC
// ignores the attributes.
//
// std::mutex carries no annotations in libstdc++, so guarded state uses `pb::Mutex` and
// `pb::MutexLock` below. A predicate given to a condition-variable wait runs with the lock held
// but is a function of its own to the analysis: mark it `REQUIRES(mu_)`.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define PB_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PB_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) PB_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY PB_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) PB_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) PB_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) PB_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define REQUIRES(...) PB_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) PB_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) PB_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) PB_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) PB_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) PB_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) PB_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS PB_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace pb {

// A std::mutex the analysis knows as a capability.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // Tells the analysis the mutex is held where it cannot see it (a callback run under it).
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex for its scope; it may be released and taken again in between (Unlock, Lock),
// and it is what condition-variable waits take.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }
  bool owns_lock() const { return lock_.owns_lock(); }

  // For std::condition_variable::wait/wait_for/wait_until, which hold the lock again when
  // they return.
  operator std::unique_lock<std::mutex>&() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace pb
