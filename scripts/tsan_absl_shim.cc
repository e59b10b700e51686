// Makes Debian's Abseil synchronization visible to ThreadSanitizer.
//
// libabsl_synchronization.so is not built with -fsanitize=thread, so TSan sees
// neither absl::Mutex's atomics nor its futex waits: every access that an
// absl::Mutex orders would be reported as a race. This library, preloaded by
// scripts/sanitize.sh (LD_PRELOAD) in TSan runs only, defines the same
// functions; each calls Abseil's own (found with dlsym(RTLD_NEXT)) and tells
// TSan about the ordering it provides: a release on the mutex's address before
// anything that gives the mutex up (Unlock, the wait inside Await and
// CondVar::Wait), an acquire after anything that takes it. Being preloaded, it
// also wraps the calls that gRPC makes inside its own (uninstrumented) code.
//
// Build (sanitize.sh does): g++ -shared -fPIC -O1 -g -fsanitize=thread
//   scripts/tsan_absl_shim.cc -o libtsan_absl_shim.so -ldl

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

// Abseil's definition of the function whose mangled name is `symbol`.
void* Next(const char* symbol) {
  void* next = dlsym(RTLD_NEXT, symbol);
  if (next == nullptr) {
    std::fprintf(stderr, "tsan_absl_shim: %s not found: %s\n", symbol,
                 dlerror());
    std::abort();
  }
  return next;
}

// Abseil's `symbol` as a function pointer of type F, looked up once.
#define ABSL_REAL(F, symbol)                                  \
  ([] {                                                       \
    static const auto fn = reinterpret_cast<F>(Next(symbol)); \
    return fn;                                                \
  }())

void Acquired(const void* mu) { __tsan_acquire(const_cast<void*>(mu)); }
void Releasing(const void* mu) { __tsan_release(const_cast<void*>(mu)); }

// HasBeenNotified() is inline: an instrumented acquire load of notified_yet_,
// the member right after the mutex. Releasing that address too lets it see
// what happened before Notify().
const void* NotifiedFlag(const absl::Notification* n) {
  return reinterpret_cast<const char*>(n) + sizeof(absl::Mutex);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

using synchronization_internal::KernelTimeout;

void Mutex::Lock() {
  ABSL_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv")(this);
  Acquired(this);
}

void Mutex::ReaderLock() {
  ABSL_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv")(this);
  Acquired(this);
}

bool Mutex::TryLock() {
  const bool locked =
      ABSL_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv")(this);
  if (locked) Acquired(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  const bool locked = ABSL_REAL(
      bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv")(this);
  if (locked) Acquired(this);
  return locked;
}

void Mutex::Unlock() {
  Releasing(this);
  ABSL_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv")(this);
}

void Mutex::ReaderUnlock() {
  Releasing(this);
  ABSL_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv")(this);
}

void Mutex::LockWhen(const Condition& cond) {
  ABSL_REAL(void (*)(Mutex*, const Condition&),
            "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE")
  (this, cond);
  Acquired(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  ABSL_REAL(void (*)(Mutex*, const Condition&),
            "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE")
  (this, cond);
  Acquired(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  const bool met = ABSL_REAL(
      bool (*)(Mutex*, const Condition&, Duration),
      "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_"
      "8DurationE")(this, cond, timeout);
  Acquired(this);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  const bool met = ABSL_REAL(
      bool (*)(Mutex*, const Condition&, Time),
      "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_"
      "4TimeE")(this, cond, deadline);
  Acquired(this);
  return met;
}

void Mutex::Await(const Condition& cond) {
  Releasing(this);
  ABSL_REAL(void (*)(Mutex*, const Condition&),
            "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE")
  (this, cond);
  Acquired(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  Releasing(this);
  const bool met =
      ABSL_REAL(bool (*)(Mutex*, const Condition&, Duration),
                "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_"
                "8DurationE")(this, cond, timeout);
  Acquired(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  Releasing(this);
  const bool met = ABSL_REAL(
      bool (*)(Mutex*, const Condition&, Time),
      "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_"
      "4TimeE")(this, cond, deadline);
  Acquired(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  Releasing(mu);
  ABSL_REAL(void (*)(CondVar*, Mutex*),
            "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE")
  (this, mu);
  Acquired(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  Releasing(mu);
  const bool timed_out = ABSL_REAL(
      bool (*)(CondVar*, Mutex*, Duration),
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE")(
      this, mu, timeout);
  Acquired(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  Releasing(mu);
  const bool timed_out = ABSL_REAL(
      bool (*)(CondVar*, Mutex*, Time),
      "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE")(
      this, mu, deadline);
  Acquired(mu);
  return timed_out;
}

void Notification::Notify() {
  Releasing(this);
  Releasing(NotifiedFlag(this));
  ABSL_REAL(void (*)(Notification*), "_ZN4absl7debian312Notification6NotifyEv")
  (this);
}

void Notification::WaitForNotification() const {
  ABSL_REAL(void (*)(const Notification*),
            "_ZNK4absl7debian312Notification19WaitForNotificationEv")
  (this);
  Acquired(this);
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  const bool notified = ABSL_REAL(
      bool (*)(const Notification*, Duration),
      "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_"
      "8DurationE")(this, timeout);
  if (notified) Acquired(this);
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  const bool notified = ABSL_REAL(
      bool (*)(const Notification*, Time),
      "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_"
      "4TimeE")(this, deadline);
  if (notified) Acquired(this);
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
