// Fused emotion lattice kernels of ENT: declarations shared by the CUDA
// kernels (lattice_pool.cu, no PyTorch headers) and the PyTorch bindings
// (lattice_pool.cpp).
//
// The emotion joint network is evaluated node by node,
//   z(b, t, u) = weight . tanh(enc[b, t] + pred[b, u]) + bias,
// without ever storing the (B, T, U+1, J) activations. Node labelling (see
// ent/kernels/lattice_numba.py): frame_run (B, T) and token_run (B, U+1) hold
// run indices, -1 for frames / positions that do not take part; node (t, u)
// takes part when both are >= 0 and belongs to run k = max of the two, of
// class run_class[b, k] and loss weight run_weight[b, k].
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace ent_lattice {

// Most emotion classes the kernels accept (per-thread logits in registers).
constexpr int kMaxClasses = 64;

struct LatticeShape {
  int64_t batch;    // B
  int64_t max_t;    // T
  int64_t max_u1;   // U + 1
  int64_t joint;    // J
  int64_t classes;  // C
  int64_t runs;     // R, second dimension of run_class / run_weight
};

// Device pointers of the inputs (contiguous, row-major).
template <typename scalar_t>
struct LatticeInputs {
  const scalar_t* enc;        // (B, T, J) projected encoder outputs
  const scalar_t* pred;       // (B, U+1, J) projected predictor outputs
  const scalar_t* pred_t;     // (B, J, U+1) the same, transposed (coalesced reads along u)
  const scalar_t* weight;     // (C, J) output layer weight
  const scalar_t* bias;       // (C) output layer bias
  const int64_t* frame_run;   // (B, T)
  const int64_t* token_run;   // (B, U+1)
  const int64_t* run_class;   // (B, R)
};

// out_cls[b, t, u] = log p(run_class[b, k]); out_neu[b, t, u] = log p(neutral)
// when neutral >= 0 (out_neu may be null otherwise); 0 for nodes that do not
// take part.
template <typename scalar_t>
cudaError_t launch_log_probs(const LatticeShape& shape, const LatticeInputs<scalar_t>& in, int64_t neutral,
                             scalar_t* out_cls, scalar_t* out_neu, cudaStream_t stream);

// Gradients of sum over nodes of -run_weight[b, k] * log p(run_class[b, k]),
// run_weight: (B, R). dz: (B, T, U+1, C) scratch that receives dL/dz of every
// node (its sum over the nodes is the bias gradient). grad_enc: (B, T, J) and
// grad_pred: (B, U+1, J) are overwritten; grad_weight: (C, J) must be zero on
// entry.
template <typename scalar_t>
cudaError_t launch_backward(const LatticeShape& shape, const LatticeInputs<scalar_t>& in,
                            const scalar_t* run_weight, scalar_t* dz, scalar_t* grad_enc, scalar_t* grad_pred,
                            scalar_t* grad_weight, cudaStream_t stream);

}  // namespace ent_lattice
