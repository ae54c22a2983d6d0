// PyTorch bindings of the fused emotion lattice kernels (lattice_pool.cu).
// Built on first use by ent.losses.fused_lattice (torch.utils.cpp_extension).
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <vector>

#include "lattice_pool.h"

namespace {

using ent_lattice::LatticeShape;

void check_float(const torch::Tensor& x, const char* name, int64_t dim, const torch::Tensor& like) {
  TORCH_CHECK(x.is_cuda(), "ent lattice kernels: ", name, " must be a CUDA tensor");
  TORCH_CHECK(x.device() == like.device(), "ent lattice kernels: ", name, " is on ", x.device(),
              ", expected ", like.device());
  TORCH_CHECK(x.dim() == dim, "ent lattice kernels: ", name, " must have ", dim, " dimensions, got ",
              x.dim());
  TORCH_CHECK(x.scalar_type() == like.scalar_type(), "ent lattice kernels: ", name, " has dtype ",
              x.scalar_type(), ", expected ", like.scalar_type());
}

void check_index(const torch::Tensor& x, const char* name, int64_t rows, int64_t cols,
                 const torch::Tensor& like) {
  TORCH_CHECK(x.is_cuda() && x.device() == like.device(), "ent lattice kernels: ", name,
              " must be on ", like.device());
  TORCH_CHECK(x.scalar_type() == torch::kLong, "ent lattice kernels: ", name, " must be int64");
  TORCH_CHECK(x.dim() == 2 && x.size(0) == rows && (cols < 0 || x.size(1) == cols),
              "ent lattice kernels: ", name, " has shape ", x.sizes(), ", expected (", rows, ", ",
              cols < 0 ? "R" : std::to_string(cols), ")");
}

// The inputs, checked against enc (B, T, J) and pred (B, U+1, J) and made contiguous.
struct Inputs {
  LatticeShape shape;
  torch::Tensor enc, pred, pred_t, weight, bias, frame_run, token_run, run_class;

  template <typename scalar_t>
  ent_lattice::LatticeInputs<scalar_t> pointers() const {
    return {enc.data_ptr<scalar_t>(),      pred.data_ptr<scalar_t>(),      pred_t.data_ptr<scalar_t>(),
            weight.data_ptr<scalar_t>(),   bias.data_ptr<scalar_t>(),      frame_run.data_ptr<int64_t>(),
            token_run.data_ptr<int64_t>(), run_class.data_ptr<int64_t>()};
  }
};

Inputs prepare(const torch::Tensor& enc, const torch::Tensor& pred, const torch::Tensor& weight,
               const torch::Tensor& bias, const torch::Tensor& frame_run, const torch::Tensor& token_run,
               const torch::Tensor& run_class) {
  TORCH_CHECK(enc.is_cuda(), "ent lattice kernels: enc must be a CUDA tensor");
  TORCH_CHECK(enc.scalar_type() == torch::kFloat || enc.scalar_type() == torch::kDouble,
              "ent lattice kernels: float32 or float64 inputs expected, got ", enc.scalar_type());
  TORCH_CHECK(enc.dim() == 3, "ent lattice kernels: enc must be (B, T, J)");
  check_float(pred, "pred", 3, enc);
  check_float(weight, "weight", 2, enc);
  check_float(bias, "bias", 1, enc);
  TORCH_CHECK(run_class.dim() == 2, "ent lattice kernels: run_class must be (B, R)");
  const LatticeShape s{enc.size(0), enc.size(1), pred.size(1), enc.size(2), weight.size(0), run_class.size(1)};
  TORCH_CHECK(pred.size(0) == s.batch && pred.size(2) == s.joint, "ent lattice kernels: pred has shape ",
              pred.sizes(), ", expected (", s.batch, ", U+1, ", s.joint, ")");
  TORCH_CHECK(weight.size(1) == s.joint && bias.size(0) == s.classes,
              "ent lattice kernels: weight (C, J) and bias (C) do not match J = ", s.joint);
  TORCH_CHECK(s.classes >= 1 && s.classes <= ent_lattice::kMaxClasses,
              "ent lattice kernels: 1 to ", ent_lattice::kMaxClasses, " classes supported, got ", s.classes);
  TORCH_CHECK(s.max_t <= 65535 && s.max_u1 <= 65535 && s.batch <= 65535,
              "ent lattice kernels: B, T and U+1 must each be at most 65535");
  check_index(frame_run, "frame_run", s.batch, s.max_t, enc);
  check_index(token_run, "token_run", s.batch, s.max_u1, enc);
  check_index(run_class, "run_class", s.batch, -1, enc);
  TORCH_CHECK(s.runs >= 1, "ent lattice kernels: run_class needs at least one column");
  return {s,
          enc.contiguous(),
          pred.contiguous(),
          pred.transpose(1, 2).contiguous(),
          weight.contiguous(),
          bias.contiguous(),
          frame_run.contiguous(),
          token_run.contiguous(),
          run_class.contiguous()};
}

void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "ent lattice kernels: ", what, " failed: ", cudaGetErrorString(err));
}

}  // namespace

// Returns {out_cls} or {out_cls, out_neu} (when neutral >= 0), each (B, T, U+1).
std::vector<torch::Tensor> log_probs(const torch::Tensor& enc, const torch::Tensor& pred,
                                     const torch::Tensor& weight, const torch::Tensor& bias,
                                     const torch::Tensor& frame_run, const torch::Tensor& token_run,
                                     const torch::Tensor& run_class, int64_t neutral) {
  const Inputs in = prepare(enc, pred, weight, bias, frame_run, token_run, run_class);
  const LatticeShape& s = in.shape;
  TORCH_CHECK(neutral < s.classes, "ent lattice kernels: neutral class ", neutral, " outside [0, ",
              s.classes, ")");
  const c10::cuda::CUDAGuard guard(enc.device());
  torch::Tensor out_cls = torch::empty({s.batch, s.max_t, s.max_u1}, in.enc.options());
  torch::Tensor out_neu = neutral >= 0 ? torch::empty_like(out_cls) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(in.enc.scalar_type(), "ent_lattice_log_probs", [&] {
    check_launch(ent_lattice::launch_log_probs<scalar_t>(
                     s, in.pointers<scalar_t>(), neutral, out_cls.data_ptr<scalar_t>(),
                     neutral >= 0 ? out_neu.data_ptr<scalar_t>() : nullptr, c10::cuda::getCurrentCUDAStream()),
                 "log_probs");
  });
  if (neutral >= 0) return {out_cls, out_neu};
  return {out_cls};
}

// Returns {grad_enc (B, T, J), grad_pred (B, U+1, J), grad_weight (C, J), grad_bias (C)}.
std::vector<torch::Tensor> backward(const torch::Tensor& enc, const torch::Tensor& pred,
                                    const torch::Tensor& weight, const torch::Tensor& bias,
                                    const torch::Tensor& frame_run, const torch::Tensor& token_run,
                                    const torch::Tensor& run_class, const torch::Tensor& run_weight) {
  const Inputs in = prepare(enc, pred, weight, bias, frame_run, token_run, run_class);
  const LatticeShape& s = in.shape;
  check_float(run_weight, "run_weight", 2, enc);
  TORCH_CHECK(run_weight.size(0) == s.batch && run_weight.size(1) == s.runs,
              "ent lattice kernels: run_weight must have the shape of run_class");
  const c10::cuda::CUDAGuard guard(enc.device());
  const torch::Tensor weights = run_weight.contiguous();
  torch::Tensor dz = torch::empty({s.batch, s.max_t, s.max_u1, s.classes}, in.enc.options());
  torch::Tensor grad_enc = torch::empty_like(in.enc);
  torch::Tensor grad_pred = torch::empty_like(in.pred);
  torch::Tensor grad_weight = torch::zeros_like(in.weight);
  AT_DISPATCH_FLOATING_TYPES(in.enc.scalar_type(), "ent_lattice_backward", [&] {
    check_launch(ent_lattice::launch_backward<scalar_t>(
                     s, in.pointers<scalar_t>(), weights.data_ptr<scalar_t>(), dz.data_ptr<scalar_t>(),
                     grad_enc.data_ptr<scalar_t>(), grad_pred.data_ptr<scalar_t>(),
                     grad_weight.data_ptr<scalar_t>(), c10::cuda::getCurrentCUDAStream()),
                 "backward");
  });
  return {grad_enc, grad_pred, grad_weight, dz.sum({0, 1, 2})};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused emotion lattice kernels of ENT (lattice max pooling without the lattice)";
  m.def("log_probs", &log_probs, "Per-node log-probabilities of the run class (and of the neutral class)");
  m.def("backward", &backward, "Gradients of the weighted node negative log-likelihoods");
}
