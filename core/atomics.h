// Copyright (c) glint authors.
//
// Every atomic access to the shared region goes through these helpers, so each
// ordering choice is named, visible and greppable (the mimalloc habit).
//
// The protocols of glint use three orderings:
//  - Relaxed: counters and hints whose value no other data depends on.
//  - Acquire/Release: publishing data written before a store (an object's
//    fields before its SEALED state) to a reader that loads the state.
//  - SeqCst: the Dekker-style handshakes, where each side stores its own word
//    and then loads the other side's word, and at least one side must see the
//    other (holder bit vs DELETING state; waiter count vs SEALED state; two
//    creators of one id). Acquire/release does not forbid both loads seeing
//    the old values; a single total order over the SeqCst operations does.
//    On x86-64 a SeqCst store is an XCHG and every RMW is already a full
//    barrier, so these cost nothing beyond the RMW itself.

#ifndef GLINT_CORE_ATOMICS_H_
#define GLINT_CORE_ATOMICS_H_

#include <atomic>
#include <cstdint>

namespace glint::core {

template <typename T>
inline T LoadRelaxed(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}
template <typename T>
inline T LoadAcquire(const std::atomic<T>& a) {
  return a.load(std::memory_order_acquire);
}
template <typename T>
inline T LoadSeqCst(const std::atomic<T>& a) {
  return a.load(std::memory_order_seq_cst);
}
template <typename T>
inline void StoreRelaxed(std::atomic<T>& a, T v) {
  a.store(v, std::memory_order_relaxed);
}
template <typename T>
inline void StoreRelease(std::atomic<T>& a, T v) {
  a.store(v, std::memory_order_release);
}
template <typename T>
inline void StoreSeqCst(std::atomic<T>& a, T v) {
  a.store(v, std::memory_order_seq_cst);
}
// Strong CAS, full barrier (SeqCst on success, acquire on failure).
template <typename T>
inline bool CasSeqCst(std::atomic<T>& a, T& expected, T desired) {
  return a.compare_exchange_strong(expected, desired, std::memory_order_seq_cst,
                                   std::memory_order_acquire);
}
// CAS for words whose ordering is carried elsewhere (acq_rel is still free on
// x86-64; we ask for acq_rel so a reader of the bit sees what preceded it).
template <typename T>
inline bool CasAcqRel(std::atomic<T>& a, T& expected, T desired) {
  return a.compare_exchange_strong(expected, desired, std::memory_order_acq_rel,
                                   std::memory_order_acquire);
}
template <typename T>
inline T FetchAddRelaxed(std::atomic<T>& a, T v) {
  return a.fetch_add(v, std::memory_order_relaxed);
}
template <typename T>
inline T FetchOrSeqCst(std::atomic<T>& a, T v) {
  return a.fetch_or(v, std::memory_order_seq_cst);
}
template <typename T>
inline T FetchAndSeqCst(std::atomic<T>& a, T v) {
  return a.fetch_and(v, std::memory_order_seq_cst);
}
template <typename T>
inline T FetchAndRelease(std::atomic<T>& a, T v) {
  return a.fetch_and(v, std::memory_order_release);
}
template <typename T>
inline T FetchSubAcqRel(std::atomic<T>& a, T v) {
  return a.fetch_sub(v, std::memory_order_acq_rel);
}

inline void FenceSeqCst() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// A hint to the CPU inside spin loops.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace glint::core

#endif  // GLINT_CORE_ATOMICS_H_
