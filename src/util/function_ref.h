// FunctionRef<R(A...)>: a non-owning reference to a callable (as llvm::function_ref).
//
// Why: the thread pool's jobs and the attention kernel's per-head hook are called synchronously,
// while the caller's lambda is alive, so owning it is never needed; std::function copies a
// lambda that captures more than two references onto the heap. A decoding step of
// swift-mini-24L made ~147 such allocations (one per pool round), against the rule of no
// allocation on the per-token path.
//
// Invariant: the callable must outlive every call through the reference. Passing a lambda
// straight to a function taking a FunctionRef is safe (it lives until the call returns);
// keeping a FunctionRef to a temporary past the full expression dangles.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace swift {

template <typename Sig>
class FunctionRef;

template <typename R, typename... A>
class FunctionRef<R(A...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> &&
                                                    std::is_invocable_r_v<R, F&, A...>>>
  FunctionRef(F&& f) noexcept  // NOLINT(google-explicit-constructor): used like a function parameter
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, A... a) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<A>(a)...); }) {}

  R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, A...);
};

}  // namespace swift
