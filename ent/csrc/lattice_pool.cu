// CUDA kernels of ENT's fused emotion lattice (declarations and node
// labelling in lattice_pool.h). Plain CUDA: no PyTorch header, so this file
// compiles on its own with `nvcc -c` (the compile-only test).
//
// Forward: one thread per node (b, t, u); threads of a block run along u, so
// the transposed predictor rows pred_t[b, j, :] are read coalesced while
// enc[b, t, j] and weight[:, j] are the same for the whole block.
// Backward: (1) one thread per node writes dL/dz; (2) one thread per
// (b, t-block, j) sums over u for grad_enc and its share of grad_weight;
// (3) one thread per (b, u, j) sums over t for grad_pred. tanh is recomputed,
// never stored.
#include "lattice_pool.h"

namespace ent_lattice {
namespace {

constexpr int kBlock = 128;
constexpr int kRowsPerThread = 8;  // frames per thread in the grad_enc kernel

__device__ __forceinline__ float tanh_(float x) { return tanhf(x); }
__device__ __forceinline__ double tanh_(double x) { return tanh(x); }
__device__ __forceinline__ float exp_(float x) { return expf(x); }
__device__ __forceinline__ double exp_(double x) { return exp(x); }
__device__ __forceinline__ float log_(float x) { return logf(x); }
__device__ __forceinline__ double log_(double x) { return log(x); }

// Logits of node (t, u) into z[0 .. classes); returns their log-sum-exp.
template <typename scalar_t, int MAXC>
__device__ __forceinline__ scalar_t node_logits(const scalar_t* __restrict__ enc_row,
                                                const scalar_t* __restrict__ pred_t_b, int64_t u,
                                                int64_t max_u1, int64_t joint,
                                                const scalar_t* __restrict__ weight,
                                                const scalar_t* __restrict__ bias, int classes,
                                                scalar_t (&z)[MAXC]) {
#pragma unroll
  for (int c = 0; c < MAXC; ++c) z[c] = c < classes ? bias[c] : scalar_t(0);
#pragma unroll 4
  for (int64_t j = 0; j < joint; ++j) {
    const scalar_t h = tanh_(enc_row[j] + pred_t_b[j * max_u1 + u]);
#pragma unroll
    for (int c = 0; c < MAXC; ++c) {
      if (c < classes) z[c] += weight[c * joint + j] * h;
    }
  }
  scalar_t top = z[0];
#pragma unroll
  for (int c = 1; c < MAXC; ++c) {
    if (c < classes && z[c] > top) top = z[c];
  }
  scalar_t total = 0;
#pragma unroll
  for (int c = 0; c < MAXC; ++c) {
    if (c < classes) total += exp_(z[c] - top);
  }
  return top + log_(total);
}

// z[cls] without a dynamically indexed (local memory) array access.
template <typename scalar_t, int MAXC>
__device__ __forceinline__ scalar_t pick(const scalar_t (&z)[MAXC], int64_t cls) {
  scalar_t out = 0;
#pragma unroll
  for (int c = 0; c < MAXC; ++c) {
    if (c == cls) out = z[c];
  }
  return out;
}

template <typename scalar_t, int MAXC>
__global__ void log_probs_kernel(LatticeShape s, LatticeInputs<scalar_t> in, int64_t neutral,
                                 scalar_t* __restrict__ out_cls, scalar_t* __restrict__ out_neu) {
  const int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t t = blockIdx.y;
  const int64_t b = blockIdx.z;
  if (u >= s.max_u1) return;
  const int64_t node = (b * s.max_t + t) * s.max_u1 + u;
  const int64_t kf = in.frame_run[b * s.max_t + t];
  const int64_t ku = in.token_run[b * s.max_u1 + u];
  if (kf < 0 || ku < 0) {
    out_cls[node] = 0;
    if (neutral >= 0) out_neu[node] = 0;
    return;
  }
  scalar_t z[MAXC];
  const scalar_t lse = node_logits<scalar_t, MAXC>(in.enc + (b * s.max_t + t) * s.joint,
                                                   in.pred_t + b * s.joint * s.max_u1, u, s.max_u1,
                                                   s.joint, in.weight, in.bias, static_cast<int>(s.classes), z);
  const int64_t k = kf > ku ? kf : ku;
  out_cls[node] = pick<scalar_t, MAXC>(z, in.run_class[b * s.runs + k]) - lse;
  if (neutral >= 0) out_neu[node] = pick<scalar_t, MAXC>(z, neutral) - lse;
}

template <typename scalar_t, int MAXC>
__global__ void grad_logits_kernel(LatticeShape s, LatticeInputs<scalar_t> in,
                                   const scalar_t* __restrict__ run_weight, scalar_t* __restrict__ dz) {
  const int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t t = blockIdx.y;
  const int64_t b = blockIdx.z;
  if (u >= s.max_u1) return;
  const int classes = static_cast<int>(s.classes);
  scalar_t* out = dz + ((b * s.max_t + t) * s.max_u1 + u) * s.classes;
  const int64_t kf = in.frame_run[b * s.max_t + t];
  const int64_t ku = in.token_run[b * s.max_u1 + u];
  const int64_t k = kf > ku ? kf : ku;
  const scalar_t w = (kf < 0 || ku < 0) ? scalar_t(0) : run_weight[b * s.runs + k];
  if (w == scalar_t(0)) {
    for (int c = 0; c < classes; ++c) out[c] = 0;
    return;
  }
  scalar_t z[MAXC];
  const scalar_t lse = node_logits<scalar_t, MAXC>(in.enc + (b * s.max_t + t) * s.joint,
                                                   in.pred_t + b * s.joint * s.max_u1, u, s.max_u1,
                                                   s.joint, in.weight, in.bias, classes, z);
  const int64_t cls = in.run_class[b * s.runs + k];
#pragma unroll
  for (int c = 0; c < MAXC; ++c) {
    if (c < classes) out[c] = w * (exp_(z[c] - lse) - (c == cls ? scalar_t(1) : scalar_t(0)));
  }
}

// weight[:, j] in registers.
template <typename scalar_t, int MAXC>
__device__ __forceinline__ void weight_column(const LatticeShape& s, const scalar_t* __restrict__ weight,
                                              int64_t j, scalar_t (&w_j)[MAXC]) {
#pragma unroll
  for (int c = 0; c < MAXC; ++c) w_j[c] = c < s.classes ? weight[c * s.joint + j] : scalar_t(0);
}

// dL/d(pre-activation) of joint unit j at one node: (sum_c dz_c weight[c, j]) (1 - h^2).
template <typename scalar_t, int MAXC>
__device__ __forceinline__ scalar_t unit_grad(const scalar_t* __restrict__ dz_node, const scalar_t (&w_j)[MAXC],
                                              int classes, scalar_t h) {
  scalar_t g = 0;
#pragma unroll
  for (int c = 0; c < MAXC; ++c) {
    if (c < classes) g += dz_node[c] * w_j[c];
  }
  return g * (scalar_t(1) - h * h);
}

// One thread per (b, j, block of kRowsPerThread frames): grad_enc rows and a
// partial grad_weight, added atomically once per thread.
template <typename scalar_t, int MAXC>
__global__ void grad_enc_weight_kernel(LatticeShape s, LatticeInputs<scalar_t> in,
                                       const scalar_t* __restrict__ dz, scalar_t* __restrict__ grad_enc,
                                       scalar_t* __restrict__ grad_weight) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t b = blockIdx.z;
  if (j >= s.joint) return;
  const int classes = static_cast<int>(s.classes);
  scalar_t w_j[MAXC];
  weight_column<scalar_t, MAXC>(s, in.weight, j, w_j);
  scalar_t wacc[MAXC];
#pragma unroll
  for (int c = 0; c < MAXC; ++c) wacc[c] = 0;
  const int64_t t_begin = static_cast<int64_t>(blockIdx.y) * kRowsPerThread;
  const int64_t t_end = t_begin + kRowsPerThread < s.max_t ? t_begin + kRowsPerThread : s.max_t;
  for (int64_t t = t_begin; t < t_end; ++t) {
    scalar_t acc = 0;
    if (in.frame_run[b * s.max_t + t] >= 0) {
      const scalar_t e = in.enc[(b * s.max_t + t) * s.joint + j];
      for (int64_t u = 0; u < s.max_u1; ++u) {
        if (in.token_run[b * s.max_u1 + u] < 0) continue;
        const scalar_t* d = dz + ((b * s.max_t + t) * s.max_u1 + u) * s.classes;
        const scalar_t h = tanh_(e + in.pred[(b * s.max_u1 + u) * s.joint + j]);
        acc += unit_grad<scalar_t, MAXC>(d, w_j, classes, h);
#pragma unroll
        for (int c = 0; c < MAXC; ++c) {
          if (c < classes) wacc[c] += d[c] * h;
        }
      }
    }
    grad_enc[(b * s.max_t + t) * s.joint + j] = acc;
  }
#pragma unroll
  for (int c = 0; c < MAXC; ++c) {
    if (c < classes) atomicAdd(grad_weight + c * s.joint + j, wacc[c]);
  }
}

// One thread per (b, u, j): grad_pred[b, u, j] = sum over t.
template <typename scalar_t, int MAXC>
__global__ void grad_pred_kernel(LatticeShape s, LatticeInputs<scalar_t> in, const scalar_t* __restrict__ dz,
                                 scalar_t* __restrict__ grad_pred) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t u = blockIdx.y;
  const int64_t b = blockIdx.z;
  if (j >= s.joint) return;
  const int classes = static_cast<int>(s.classes);
  scalar_t w_j[MAXC];
  weight_column<scalar_t, MAXC>(s, in.weight, j, w_j);
  scalar_t acc = 0;
  if (in.token_run[b * s.max_u1 + u] >= 0) {
    const scalar_t p = in.pred[(b * s.max_u1 + u) * s.joint + j];
    for (int64_t t = 0; t < s.max_t; ++t) {
      if (in.frame_run[b * s.max_t + t] < 0) continue;
      const scalar_t* d = dz + ((b * s.max_t + t) * s.max_u1 + u) * s.classes;
      acc += unit_grad<scalar_t, MAXC>(d, w_j, classes, tanh_(in.enc[(b * s.max_t + t) * s.joint + j] + p));
    }
  }
  grad_pred[(b * s.max_u1 + u) * s.joint + j] = acc;
}

inline dim3 grid_for(int64_t inner, int64_t y, int64_t z) {
  return dim3(static_cast<unsigned>((inner + kBlock - 1) / kBlock), static_cast<unsigned>(y),
              static_cast<unsigned>(z));
}

inline bool grid_fits(const LatticeShape& s) {
  // gridDim.y and gridDim.z are limited to 65535.
  return s.max_t <= 65535 && s.max_u1 <= 65535 && s.batch <= 65535;
}

template <typename scalar_t, int MAXC>
cudaError_t log_probs_impl(const LatticeShape& s, const LatticeInputs<scalar_t>& in, int64_t neutral,
                           scalar_t* out_cls, scalar_t* out_neu, cudaStream_t stream) {
  log_probs_kernel<scalar_t, MAXC>
      <<<grid_for(s.max_u1, s.max_t, s.batch), kBlock, 0, stream>>>(s, in, neutral, out_cls, out_neu);
  return cudaGetLastError();
}

template <typename scalar_t, int MAXC>
cudaError_t backward_impl(const LatticeShape& s, const LatticeInputs<scalar_t>& in, const scalar_t* run_weight,
                          scalar_t* dz, scalar_t* grad_enc, scalar_t* grad_pred, scalar_t* grad_weight,
                          cudaStream_t stream) {
  grad_logits_kernel<scalar_t, MAXC>
      <<<grid_for(s.max_u1, s.max_t, s.batch), kBlock, 0, stream>>>(s, in, run_weight, dz);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const int64_t t_blocks = (s.max_t + kRowsPerThread - 1) / kRowsPerThread;
  grad_enc_weight_kernel<scalar_t, MAXC>
      <<<grid_for(s.joint, t_blocks, s.batch), kBlock, 0, stream>>>(s, in, dz, grad_enc, grad_weight);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  grad_pred_kernel<scalar_t, MAXC>
      <<<grid_for(s.joint, s.max_u1, s.batch), kBlock, 0, stream>>>(s, in, dz, grad_pred);
  return cudaGetLastError();
}

}  // namespace

// Dispatch on the number of classes: the per-thread logits live in registers.
#define ENT_LATTICE_DISPATCH_CLASSES(CLASSES, CALL)  \
  do {                                               \
    if ((CLASSES) <= 4) {                            \
      constexpr int kC = 4;                          \
      return CALL;                                   \
    } else if ((CLASSES) <= 8) {                     \
      constexpr int kC = 8;                          \
      return CALL;                                   \
    } else if ((CLASSES) <= 16) {                    \
      constexpr int kC = 16;                         \
      return CALL;                                   \
    } else if ((CLASSES) <= 32) {                    \
      constexpr int kC = 32;                         \
      return CALL;                                   \
    } else if ((CLASSES) <= kMaxClasses) {           \
      constexpr int kC = kMaxClasses;                \
      return CALL;                                   \
    }                                                \
    return cudaErrorInvalidValue;                    \
  } while (0)

template <typename scalar_t>
cudaError_t launch_log_probs(const LatticeShape& shape, const LatticeInputs<scalar_t>& in, int64_t neutral,
                             scalar_t* out_cls, scalar_t* out_neu, cudaStream_t stream) {
  if (!grid_fits(shape) || shape.classes < 1) return cudaErrorInvalidValue;
  ENT_LATTICE_DISPATCH_CLASSES(shape.classes,
                               (log_probs_impl<scalar_t, kC>(shape, in, neutral, out_cls, out_neu, stream)));
}

template <typename scalar_t>
cudaError_t launch_backward(const LatticeShape& shape, const LatticeInputs<scalar_t>& in,
                            const scalar_t* run_weight, scalar_t* dz, scalar_t* grad_enc, scalar_t* grad_pred,
                            scalar_t* grad_weight, cudaStream_t stream) {
  if (!grid_fits(shape) || shape.classes < 1) return cudaErrorInvalidValue;
  ENT_LATTICE_DISPATCH_CLASSES(shape.classes, (backward_impl<scalar_t, kC>(shape, in, run_weight, dz, grad_enc,
                                                                         grad_pred, grad_weight, stream)));
}

#undef ENT_LATTICE_DISPATCH_CLASSES

template cudaError_t launch_log_probs<float>(const LatticeShape&, const LatticeInputs<float>&, int64_t, float*,
                                             float*, cudaStream_t);
template cudaError_t launch_log_probs<double>(const LatticeShape&, const LatticeInputs<double>&, int64_t,
                                              double*, double*, cudaStream_t);
template cudaError_t launch_backward<float>(const LatticeShape&, const LatticeInputs<float>&, const float*,
                                            float*, float*, float*, float*, cudaStream_t);
template cudaError_t launch_backward<double>(const LatticeShape&, const LatticeInputs<double>&, const double*,
                                             double*, double*, double*, double*, cudaStream_t);

}  // namespace ent_lattice
