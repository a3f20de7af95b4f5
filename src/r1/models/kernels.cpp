// Fused float32 CPU kernels for r1's lean forward (r1/models/fast.py) and replayed backward (r1/models/replay.py).
//
// Why by hand: on a CPU the non-matmul parts of a small model's GRPO step are hundreds of tiny ATen operators
// (a decode step's RoPE, KV-cache write and single-query attention are ~15 of them per layer; an RMSNorm backward
// 13 passes over its input; drawing a token ~10), each paying dispatch and a trip through memory. Here each is one
// pass. Every kernel has its plain-PyTorch reference in fast.py / replay.py / rollout/native.py (the path taken when
// this library is not built), and tests/models/test_kernels.py checks one against the other.
//
// Built on first use by r1/models/kernels.py (torch.utils.cpp_extension, -O3 -march=native); operators in the
// `r1` namespace: torch.ops.r1.<name>.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

// exp(x), Cephes' single-precision polynomial (~1-2 ulp on [-87, 88]); branch-free so that loops calling it
// vectorise (glibc's expf does not without -ffast-math). The clamp is written as two selects: with std::min/max
// GCC 12 emits a NaN-preserving masked sequence that ran ~10x slower here.
inline float exp_approx(float x) {
  x = x > 88.0f ? 88.0f : x;
  x = x < -87.0f ? -87.0f : x;
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float z = r * r;
  float y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
             1.6666665459e-1f) * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

void check_f32(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "r1 kernels: ", name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == at::kFloat, "r1 kernels: ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "r1 kernels: ", name, " must be contiguous");
}

// ------------------------------------------------------------------------------------------------- SwiGLU
// gu (..., 2I) = [gate | up] → silu(gate) * up (..., I)
at::Tensor silu_mul(const at::Tensor& gu) {
  check_f32(gu, "gu");
  const int64_t I = gu.size(-1) / 2;
  TORCH_CHECK(gu.size(-1) == 2 * I, "r1 kernels: silu_mul needs an even last dimension");
  const int64_t M = I ? gu.numel() / (2 * I) : 0;
  auto sizes = gu.sizes().vec();
  sizes.back() = I;
  auto out = at::empty(sizes, gu.options());
  const float* src = gu.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, M, std::max<int64_t>(1, 16384 / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* g = src + r * 2 * I;
      const float* u = g + I;
      float* y = dst + r * I;
#pragma omp simd
      for (int64_t j = 0; j < I; ++j) y[j] = g[j] * u[j] / (1.0f + exp_approx(-g[j]));
    }
  });
  return out;
}

// The SwiGLU's forward output and backward in one pass: gu (M, 2I), dh (M, I) the gradient of h = silu(gate)*up →
// h (M, I) and the gate and up gradients, written at dgate[r * ld + j] and dup[r * ld + j].
void swiglu_backward_rows(const at::Tensor& gu, const at::Tensor& dh, float* ph, float* pg, float* pu, int64_t ld) {
  const int64_t I = gu.size(-1) / 2;
  const int64_t M = I ? gu.numel() / (2 * I) : 0;
  const float* src = gu.data_ptr<float>();
  const float* dsrc = dh.data_ptr<float>();
  at::parallel_for(0, M, std::max<int64_t>(1, 8192 / std::max<int64_t>(I, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* g = src + r * 2 * I;
      const float* u = g + I;
      const float* d = dsrc + r * I;
      float *yh = ph + r * I, *yg = pg + r * ld, *yu = pu + r * ld;
#pragma omp simd
      for (int64_t j = 0; j < I; ++j) {
        float s = 1.0f / (1.0f + exp_approx(-g[j]));
        float silu = g[j] * s;
        yh[j] = silu * u[j];
        yu[j] = d[j] * silu;
        yg[j] = d[j] * u[j] * (s * (1.0f + g[j] * (1.0f - s)));  // as aten::silu_backward
      }
    }
  });
}

int64_t swiglu_check(const at::Tensor& gu, const at::Tensor& dh) {
  check_f32(gu, "gu");
  check_f32(dh, "dh");
  const int64_t I = gu.size(-1) / 2;
  const int64_t M = I ? gu.numel() / (2 * I) : 0;
  TORCH_CHECK(dh.numel() == M * I, "r1 kernels: swiglu_backward: dh holds ", dh.numel(), " values, expected ",
              M * I);
  return M;
}

// → (h, dgate, dup), each (M, I).
std::tuple<at::Tensor, at::Tensor, at::Tensor> swiglu_backward(const at::Tensor& gu, const at::Tensor& dh) {
  const int64_t M = swiglu_check(gu, dh), I = gu.size(-1) / 2;
  auto h = at::empty({M, I}, gu.options());
  auto dgate = at::empty({M, I}, gu.options());
  auto dup = at::empty({M, I}, gu.options());
  swiglu_backward_rows(gu, dh, h.data_ptr<float>(), dgate.data_ptr<float>(), dup.data_ptr<float>(), I);
  return {h, dgate, dup};
}

// → (h (M, I), dgu (M, 2I) = [dgate | dup]): the gradient of the fused gate/up product's output as one matrix, so its
// input and weight gradients are one product each.
std::tuple<at::Tensor, at::Tensor> swiglu_backward_cat(const at::Tensor& gu, const at::Tensor& dh) {
  const int64_t M = swiglu_check(gu, dh), I = gu.size(-1) / 2;
  auto h = at::empty({M, I}, gu.options());
  auto dgu = at::empty({M, 2 * I}, gu.options());
  float* pg = dgu.data_ptr<float>();
  swiglu_backward_rows(gu, dh, h.data_ptr<float>(), pg, pg + I, 2 * I);
  return {h, dgu};
}

// ------------------------------------------------------------------------------------------------- RMSNorm
// HF's Llama RMSNorm in float32: x * rsqrt(mean(x²) + eps) * w over the last dim.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  check_f32(x, "x");
  check_f32(w, "weight");
  const int64_t E = x.size(-1);
  TORCH_CHECK(w.numel() == E, "r1 kernels: rms_norm: weight has ", w.numel(), " values, x's last dim is ", E);
  const int64_t M = E ? x.numel() / E : 0;
  auto out = at::empty_like(x);
  const float *px = x.data_ptr<float>(), *pw = w.data_ptr<float>();
  float* py = out.data_ptr<float>();
  const float feps = static_cast<float>(eps);
  at::parallel_for(0, M, std::max<int64_t>(1, 16384 / std::max<int64_t>(E, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = px + r * E;
      float* yr = py + r * E;
      float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
      for (int64_t j = 0; j < E; ++j) ss += xr[j] * xr[j];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(E) + feps);
#pragma omp simd
      for (int64_t j = 0; j < E; ++j) yr[j] = pw[j] * (xr[j] * inv);
    }
  });
  return out;
}

// Backward of rms_norm: dy, x (M, E), w (E) → dx (M, E), dw (E) summed over the rows. residual (M, E), optional:
// added to dx in place (the residual stream's gradient: one pass instead of a separate add), and returned as dx.
std::tuple<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w,
                                                     double eps, const std::optional<at::Tensor>& residual) {
  check_f32(dy, "dy");
  check_f32(x, "x");
  check_f32(w, "weight");
  const int64_t E = x.size(-1);
  const int64_t M = E ? x.numel() / E : 0;
  TORCH_CHECK(dy.numel() == x.numel() && w.numel() == E, "r1 kernels: rms_norm_backward: mismatched sizes");
  const bool accumulate = residual.has_value() && residual->defined();
  if (accumulate) {
    check_f32(*residual, "residual");
    TORCH_CHECK(residual->numel() == x.numel(), "r1 kernels: rms_norm_backward: residual must match x");
  }
  auto dx = accumulate ? *residual : at::empty_like(x);
  // dw: one partial sum per chunk of rows (a fixed split, so the sum does not depend on scheduling), added below.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(M, at::get_num_threads()));
  auto partial = at::zeros({chunks, E}, x.options());
  const float *pdy = dy.data_ptr<float>(), *px = x.data_ptr<float>(), *pw = w.data_ptr<float>();
  float *pdx = dx.data_ptr<float>(), *pp = partial.data_ptr<float>();
  const float feps = static_cast<float>(eps);
  at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      float* dwc = pp + c * E;
      const int64_t r0 = M * c / chunks, r1 = M * (c + 1) / chunks;
      for (int64_t r = r0; r < r1; ++r) {
        const float *xr = px + r * E, *dyr = pdy + r * E;
        float* dxr = pdx + r * E;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < E; ++j) ss += xr[j] * xr[j];
        const float inv = 1.0f / std::sqrt(ss / static_cast<float>(E) + feps);
        float dot = 0.0f;  // sum_j dxh_j * xh_j, dxh = dy * w, xh = x * inv
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < E; ++j) dot += dyr[j] * pw[j] * (xr[j] * inv);
        const float mean_dot = dot / static_cast<float>(E);
#pragma omp simd
        for (int64_t j = 0; j < E; ++j) {
          const float xh = xr[j] * inv;
          dxr[j] = (accumulate ? dxr[j] : 0.0f) + inv * (dyr[j] * pw[j] - xh * mean_dot);
          dwc[j] += dyr[j] * xh;
        }
      }
    }
  });
  return {dx, chunks == 1 ? partial[0] : partial.sum(0)};
}

// ------------------------------------------------------------------------------------------------- decode attention
// One query head over S keys: p = softmax(scale · q·k_t) (masked keys get 0), o = Σ p_t v_t. DD > 0: the head
// dimension as a compile-time constant (the dot products unrolled, o kept in registers); DD = 0: any D.
template <int DD>
inline void attend_head(const float* q, const float* kb, const float* vb, int64_t S, int64_t Drt, const bool* mr,
                        float scale, float* p, float* o) {
  const int64_t D = DD > 0 ? DD : Drt;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < S; ++t) {
    const float* kt = kb + t * D;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < D; ++j) dot += q[j] * kt[j];
    p[t] = dot * scale;
    if (!mr || mr[t]) mx = std::max(mx, p[t]);
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t t = 0; t < S; ++t) {
    const float e = exp_approx(p[t] - mx);
    p[t] = (mr && !mr[t]) ? 0.0f : e;
    sum += p[t];
  }
  const float inv = 1.0f / sum;
  if constexpr (DD > 0) {
    float acc[DD] = {};
    for (int64_t t = 0; t < S; ++t) {
      const float pt = p[t];
      const float* vt = vb + t * DD;
#pragma omp simd
      for (int64_t j = 0; j < DD; ++j) acc[j] += pt * vt[j];
    }
#pragma omp simd
    for (int64_t j = 0; j < DD; ++j) o[j] = acc[j] * inv;
  } else {
    std::fill(o, o + D, 0.0f);
    for (int64_t t = 0; t < S; ++t) {
      const float pt = p[t] * inv;
      const float* vt = vb + t * D;
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] += pt * vt[j];
    }
  }
}

// One decode step's attention block after the q/k/v projection, for every row at once:
//   qkv (R, (H + 2 KV) D) pre-RoPE projections; cos, sin (R, D) this position's RoPE table;
//   kcache, vcache (R, KV, C, D) with C > length: RoPE'd k and v are written at [length];
//   mask (R, S) bool, S = length + 1, or an empty tensor (every key visible); scale the softmax scale.
// Returns o (R, H D): softmax(scale · q·k) · v over the S keys, query head h reading KV head h / (H / KV); written
// into `out` when given (a contiguous float32 tensor of R·H·D values, returned).
at::Tensor decode_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin, at::Tensor kcache,
                            at::Tensor vcache, int64_t length, const at::Tensor& mask, int64_t H, int64_t KV,
                            double scale, const std::optional<at::Tensor>& out_opt) {
  check_f32(qkv, "qkv");
  check_f32(cos, "cos");
  check_f32(sin, "sin");
  check_f32(kcache, "kcache");
  check_f32(vcache, "vcache");
  TORCH_CHECK(kcache.dim() == 4 && kcache.sizes() == vcache.sizes(), "r1 kernels: kcache/vcache must be (R, KV, C, D)");
  const int64_t R = kcache.size(0), C = kcache.size(2), D = kcache.size(3);
  TORCH_CHECK(kcache.size(1) == KV && H % KV == 0 && D % 2 == 0, "r1 kernels: decode_attention: bad head counts");
  TORCH_CHECK(qkv.numel() == R * (H + 2 * KV) * D, "r1 kernels: decode_attention: qkv holds ", qkv.numel(),
              " values, expected ", R * (H + 2 * KV) * D);
  TORCH_CHECK(cos.numel() == R * D && sin.numel() == R * D, "r1 kernels: decode_attention: cos/sin must be (R, D)");
  TORCH_CHECK(length >= 0 && length < C, "r1 kernels: decode_attention: position ", length, " outside the cache (",
              C, ")");
  const int64_t S = length + 1;
  const bool masked = mask.defined() && mask.numel() > 0;
  if (masked) {
    TORCH_CHECK(mask.scalar_type() == at::kBool && mask.is_contiguous() && mask.numel() == R * S,
                "r1 kernels: decode_attention: mask must be a contiguous (R, length + 1) bool tensor");
  }
  at::Tensor out;
  if (out_opt.has_value() && out_opt->defined()) {
    check_f32(*out_opt, "out");
    TORCH_CHECK(out_opt->numel() == R * H * D, "r1 kernels: decode_attention: out must hold R·H·D values");
    out = *out_opt;
  } else {
    out = at::empty({R, H * D}, qkv.options());
  }
  const float *pqkv = qkv.data_ptr<float>(), *pcos = cos.data_ptr<float>(), *psin = sin.data_ptr<float>();
  float *pk = kcache.data_ptr<float>(), *pv = vcache.data_ptr<float>(), *po = out.data_ptr<float>();
  const bool* pm = masked ? mask.data_ptr<bool>() : nullptr;
  const int64_t half = D / 2, g = H / KV, F = (H + 2 * KV) * D;
  const float fscale = static_cast<float>(scale);
  at::parallel_for(0, R, 1, [&](int64_t rb, int64_t re) {
    std::vector<float> qr(D), p(S);
    for (int64_t r = rb; r < re; ++r) {
      const float* row = pqkv + r * F;
      const float *c = pcos + r * D, *s = psin + r * D;
      // RoPE'd keys and the values into the cache at [length]
      for (int64_t kv = 0; kv < KV; ++kv) {
        const float* k = row + (H + kv) * D;
        const float* v = row + (H + KV + kv) * D;
        float* kd = pk + ((r * KV + kv) * C + length) * D;
        float* vd = pv + ((r * KV + kv) * C + length) * D;
#pragma omp simd
        for (int64_t j = 0; j < half; ++j) {
          kd[j] = k[j] * c[j] - k[j + half] * s[j];
          kd[j + half] = k[j + half] * c[j + half] + k[j] * s[j + half];
        }
        std::memcpy(vd, v, D * sizeof(float));
      }
      const bool* mr = masked ? pm + r * S : nullptr;
      for (int64_t h = 0; h < H; ++h) {
        const float* q = row + h * D;
#pragma omp simd
        for (int64_t j = 0; j < half; ++j) {
          qr[j] = q[j] * c[j] - q[j + half] * s[j];
          qr[j + half] = q[j + half] * c[j + half] + q[j] * s[j + half];
        }
        const int64_t kv = h / g;
        const float* kb = pk + (r * KV + kv) * C * D;
        const float* vb = pv + (r * KV + kv) * C * D;
        float* o = po + r * H * D + h * D;
        if (D == 64) {
          attend_head<64>(qr.data(), kb, vb, S, D, mr, fscale, p.data(), o);
        } else if (D == 128) {
          attend_head<128>(qr.data(), kb, vb, S, D, mr, fscale, p.data(), o);
        } else {
          attend_head<0>(qr.data(), kb, vb, S, D, mr, fscale, p.data(), o);
        }
      }
    }
  });
  return out;
}

// ------------------------------------------------------------------------------------------------- sampling
// One token per row from softmax(logits / temperature), by inverting the cumulative distribution at u (one uniform
// draw per row), and its logprob log_softmax(logits / temperature)[token]: logits (R, V), u (R,) in [0, 1),
// temperature > 0 → tokens (R,) int64, logps (R,) float32. A -inf logit has probability 0 and is never drawn.
std::tuple<at::Tensor, at::Tensor> sample_categorical(const at::Tensor& logits, const at::Tensor& u,
                                                      double temperature) {
  check_f32(logits, "logits");
  check_f32(u, "u");
  TORCH_CHECK(logits.dim() == 2 && u.numel() == logits.size(0),
              "r1 kernels: sample_categorical: logits (R, V), u (R,)");
  TORCH_CHECK(temperature > 0, "r1 kernels: sample_categorical: temperature must be > 0");
  const int64_t R = logits.size(0), V = logits.size(1);
  auto tokens = at::empty({R}, logits.options().dtype(at::kLong));
  auto logps = at::empty({R}, logits.options());
  const float *pl = logits.data_ptr<float>(), *pu = u.data_ptr<float>();
  int64_t* pt = tokens.data_ptr<int64_t>();
  float* pp = logps.data_ptr<float>();
  const float inv_t = static_cast<float>(1.0 / temperature);
  const float ninf = -std::numeric_limits<float>::infinity();
  at::parallel_for(0, R, std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    std::vector<float> ex(V);
    for (int64_t r = b; r < e; ++r) {
      const float* l = pl + r * V;
      float mx = ninf;
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < V; ++j) mx = l[j] > mx ? l[j] : mx;
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < V; ++j) {
        const float x = exp_approx((l[j] - mx) * inv_t);
        ex[j] = l[j] == ninf ? 0.0f : x;
        sum += ex[j];
      }
      const double target = static_cast<double>(pu[r]) * sum;
      double c = 0.0;
      int64_t tok = -1, last = 0;
      for (int64_t j = 0; j < V; ++j) {
        if (ex[j] > 0.0f) last = j;
        c += ex[j];
        if (c > target && ex[j] > 0.0f) {
          tok = j;
          break;
        }
      }
      if (tok < 0) tok = last;  // u·sum rounded up to the total: the last token with mass
      pt[r] = tok;
      pp[r] = static_cast<float>((l[tok] - mx) * inv_t - std::log(sum));
    }
  });
  return {tokens, logps};
}



// ---------------------------------------------------------------------------------------------------- RoPE
// HF's rotation x·cos + rotate_half(x)·sin over `heads` heads of D per row, rotate_half(x) = (−x2, x1), in one pass
// (PyTorch: a product and two multiply-adds over half-rows), or with `transpose` its backward: dx1 = dy1·c1 +
// dy2·s2, dx2 = dy2·c2 − dy1·s1. x (M, heads·D) float32 with unit stride along a row (rows may be strided: the
// q and k columns of a q/k/v matrix); cos, sin (M, D) contiguous. Into `out` (same layout rules) when given, else a
// new contiguous (M, heads·D).
at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t heads, bool transpose,
                const std::optional<at::Tensor>& out_opt) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 && x.stride(1) == 1,
              "r1 kernels: rope: x must be a float32 CPU (M, heads·D) matrix with contiguous rows");
  check_f32(cos, "cos");
  check_f32(sin, "sin");
  const int64_t M = x.size(0), D = cos.numel() / std::max<int64_t>(M, 1);
  TORCH_CHECK(heads > 0 && x.size(1) == heads * D && D % 2 == 0 && cos.numel() == M * D && sin.numel() == M * D,
              "r1 kernels: rope: x (M, heads·D), cos and sin (M, D), D even");
  at::Tensor out;
  if (out_opt.has_value() && out_opt->defined()) {
    out = *out_opt;
    TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == at::kFloat && out.dim() == 2 && out.size(0) == M &&
                    out.size(1) == heads * D && out.stride(1) == 1,
                "r1 kernels: rope: out must be a float32 (M, heads·D) matrix with contiguous rows");
  } else {
    out = at::empty({M, heads * D}, x.options());
  }
  const float *px = x.data_ptr<float>(), *pc = cos.data_ptr<float>(), *ps = sin.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const int64_t sx = x.stride(0), so = out.stride(0), half = D / 2;
  const float sign = transpose ? -1.0f : 1.0f;  // forward: o1 = x1 c1 − x2 s1, o2 = x2 c2 + x1 s2
  at::parallel_for(0, M, std::max<int64_t>(1, 4096 / std::max<int64_t>(heads * D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float *c = pc + r * D, *sn = ps + r * D;
      for (int64_t h = 0; h < heads; ++h) {
        const float* xi = px + r * sx + h * D;
        float* oi = po + r * so + h * D;
#pragma omp simd
        for (int64_t j = 0; j < half; ++j) {
          const float x1 = xi[j], x2 = xi[half + j];
          // transpose: o1 = x1 c1 + x2 s2, o2 = x2 c2 − x1 s1
          const float s_a = transpose ? sn[half + j] : sn[j];
          const float s_b = transpose ? sn[j] : sn[half + j];
          oi[j] = x1 * c[j] - sign * x2 * s_a;
          oi[half + j] = x2 * c[half + j] + sign * x1 * s_b;
        }
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------- MKL packing
// MKL's packed sgemm, from the MKL the torch build links (libtorch_cpu exports it). Declared weak: in a build
// without MKL the symbols are null, mkl_packing() says false and r1 runs its plain products. Why: a product of a
// few rows (a decode step's 64) re-packs its whole weight inside every sgemm call; packing each matrix once per
// rollout and computing from the packing made the 23M preset's decode products ~25 % faster (docs/performance.md).
// torch's own wrapper (torch.ops.mkl._mkl_linear) takes only its opaque packed tensors, newly allocated at every
// packing; these pack into a buffer the caller keeps, so a rollout reuses the last one's memory.
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kBMatrix = 162, kPacked = 151;  // MKL's enum values

bool mkl_packing() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

int64_t packed_floats(int64_t rows, int64_t n, int64_t k) {
  return static_cast<int64_t>(cblas_sgemm_pack_get_size(kBMatrix, rows, n, k) / sizeof(float)) + 1;
}

// weight (N, K) float32 → MKL's packing of weight^T for products of `rows` rows, written into `buffer` when it is
// a large enough contiguous float32 tensor (else into a new one); returns the buffer's first packed_floats.
at::Tensor mkl_pack(const at::Tensor& weight, int64_t rows, const std::optional<at::Tensor>& buffer) {
  TORCH_CHECK(mkl_packing(), "r1 kernels: mkl_pack: this torch build has no MKL packed sgemm");
  check_f32(weight, "weight");
  TORCH_CHECK(weight.dim() == 2 && rows > 0, "r1 kernels: mkl_pack: weight (N, K), rows > 0");
  const int64_t N = weight.size(0), K = weight.size(1);
  const int64_t floats = packed_floats(rows, N, K);
  at::Tensor out;
  if (buffer.has_value() && buffer->defined() && buffer->scalar_type() == at::kFloat && buffer->is_contiguous() &&
      buffer->device().is_cpu() && buffer->numel() >= floats) {
    out = *buffer;
  } else {
    out = at::empty({floats}, weight.options());
  }
  cblas_sgemm_pack(kRowMajor, kBMatrix, kTrans, rows, N, K, 1.0f, weight.data_ptr<float>(), K,
                   out.data_ptr<float>());
  return out.narrow(0, 0, floats);
}

// x (..., K) @ weight^T + bias from mkl_pack's packing (for `rows` rows): MKL's packed product when x has at most
// that many rows, else the plain product of weight (N, K). Same values as F.linear (MKL either way). Fewer rows: a
// decode step after some rows finished. MKL's packing of B does not depend on the row count it is given (the same
// size for every m; a product of m >= 2 rows from the packing for 64 equals the one from a packing for m bit for
// bit, and m = 1 within float rounding, on torch 2.13's MKL): the plain product of the 23M preset's 56-row decode
// step is ~35 % slower than the packed one, alone (tests/models/test_kernels.py checks the values).
// `out` (optional): a contiguous float32 tensor of the result's size to write it into (returned).
at::Tensor mkl_packed_linear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, int64_t rows,
                             const std::optional<at::Tensor>& out_opt) {
  const int64_t N = weight.size(0), K = weight.size(1);
  const int64_t M = x.dim() ? x.numel() / std::max<int64_t>(x.size(-1), 1) : 0;
  const bool has_out = out_opt.has_value() && out_opt->defined();
  if (has_out) {
    TORCH_CHECK(out_opt->numel() == M * N && out_opt->scalar_type() == x.scalar_type(),
                "r1 kernels: mkl_packed_linear: out must hold the (", M, ", ", N, ") result in x's dtype");
  }
  if (!mkl_packing() || x.scalar_type() != at::kFloat || weight.scalar_type() != at::kFloat || M > rows || M == 0 ||
      x.size(-1) != K || packed.numel() < packed_floats(rows, N, K) || (has_out && !out_opt->is_contiguous())) {
    auto y = at::linear(x, weight, bias);
    return has_out ? out_opt->copy_(y.reshape(out_opt->sizes())) : y;
  }
  auto xc = x.contiguous();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 1);
  shape.push_back(N);
  auto out = has_out ? *out_opt : at::empty(shape, x.options());
  float* po = out.data_ptr<float>();
  float beta = 0.0f;
  if (bias.has_value() && bias->defined()) {
    check_f32(*bias, "bias");
    TORCH_CHECK(bias->numel() == N, "r1 kernels: mkl_packed_linear: bias (N,)");
    const float* pb = bias->data_ptr<float>();
    for (int64_t r = 0; r < M; ++r) std::memcpy(po + r * N, pb, sizeof(float) * N);
    beta = 1.0f;
  }
  cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, M, N, K, xc.data_ptr<float>(), K, packed.data_ptr<float>(), K,
                      beta, po, N);
  return out;
}

// ------------------------------------------------------------------------------------------------- gradient norm
// sqrt(Σ over every tensor of Σ x²), accumulated in float64 per chunk, as one float32 scalar: the gradient norm
// for clipping in one parallel pass over all the parameters' gradients (torch's clip_grad_norm_ takes one norm
// per tensor, then their norm).
at::Tensor total_norm(at::TensorList xs) {
  constexpr int64_t kChunk = 1 << 16;
  std::vector<std::pair<const float*, int64_t>> chunks;  // (start, length)
  for (const auto& t : xs) {
    check_f32(t, "tensor");
    const float* p = t.data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); i += kChunk) chunks.emplace_back(p + i, std::min(kChunk, t.numel() - i));
  }
  std::vector<double> partial(chunks.size(), 0.0);
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const float* p = chunks[c].first;
      const int64_t n = chunks[c].second;
      double acc = 0.0;
      for (int64_t i = 0; i < n; i += 1024) {  // float sums of 1024 values, then float64
        float ss = 0.0f;
        const int64_t m = std::min<int64_t>(1024, n - i);
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < m; ++j) ss += p[i + j] * p[i + j];
        acc += ss;
      }
      partial[c] = acc;
    }
  });
  double total = 0.0;
  for (double v : partial) total += v;
  return at::scalar_tensor(std::sqrt(total), at::TensorOptions().dtype(at::kFloat));
}

// ------------------------------------------------------------------------------------------------- decode layers
// c (M, N) = a (M, K) · weight^T from its MKL packing, + bias, + residual (M, N) when given (residual may be c itself:
// accumulated in place). The bias and residual enter as MKL's C with beta = 1: no pass of their own.
void packed_product(const at::Tensor& a, const at::Tensor& packed, const at::Tensor& weight,
                    const std::optional<at::Tensor>& bias, const at::Tensor* residual, at::Tensor& c) {
  const int64_t M = a.size(0), N = weight.size(0), K = weight.size(1);
  const float* pb = bias.has_value() && bias->defined() ? bias->data_ptr<float>() : nullptr;
  float* pc = c.data_ptr<float>();
  const float* pr = residual ? residual->data_ptr<float>() : nullptr;
  float beta = 0.0f;
  if (pr || pb) {
    beta = 1.0f;
    if (pr != pc || pb) {
      at::parallel_for(0, M, std::max<int64_t>(1, 8192 / std::max<int64_t>(N, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          float* cr = pc + r * N;
          const float* rr = pr ? pr + r * N : nullptr;
#pragma omp simd
          for (int64_t j = 0; j < N; ++j) cr[j] = (rr ? rr[j] : 0.0f) + (pb ? pb[j] : 0.0f);
        }
      });
    }
  }
  cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, M, N, K, a.data_ptr<float>(), K, packed.data_ptr<float>(), K,
                      beta, pc, N);
}

// One decode step through every layer: x (R, E) the new tokens' embeddings → the last layer's output (R, E). Per
// layer: qkv = rms_norm(x, n1)·Wqkv^T + b; o = decode_attention(qkv, ...); x2 = x + o·Wo^T + b;
// gu = rms_norm(x2, n2)·Wgu^T + b; x = x2 + silu_mul(gu)·Wd^T + b: FastLM.forward's fused decode branch (its
// reference, one operator call per piece), with every product from MKL's packing (R <= rows).
//   norms, eps (2L): n1, n2 of each layer; packed, mats, biases (4L): the qkv, o, gu, d products' packings, plain
//   (N, K) matrices (their shapes) and biases (None: none); kcache, vcache (L): as decode_attention's.
//   record: empty, or a ForwardRecord's buffers, 5L + 1 of (M_rec, F): per layer x, qkv, o, x2, gu, then the last
//   x. Row r's activations go to row row0 + r, or row0 + slot_rows[r] when slot_rows is given (rows have left
//   the batch); without slot_rows they are computed in place there (no copy).
// Why: in Python the same step is ~12 operator calls per layer; a 23M rollout spent ~70 ms in dispatch and Python.
at::Tensor decode_layers(const at::Tensor& x, at::TensorList norms, at::ArrayRef<double> eps, at::TensorList packed,
                         at::TensorList mats, const c10::List<std::optional<at::Tensor>>& biases,
                         at::TensorList kcache, at::TensorList vcache, const at::Tensor& cos, const at::Tensor& sin,
                         int64_t length, const at::Tensor& mask, int64_t H, int64_t KV, double scale, int64_t rows,
                         at::TensorList record, int64_t row0, const std::optional<at::Tensor>& slot_rows) {
  TORCH_CHECK(mkl_packing(), "r1 kernels: decode_layers: this torch build has no MKL packed sgemm");
  check_f32(x, "x");
  const int64_t L = static_cast<int64_t>(kcache.size());
  TORCH_CHECK(L > 0 && static_cast<int64_t>(vcache.size()) == L && static_cast<int64_t>(norms.size()) == 2 * L &&
                  static_cast<int64_t>(eps.size()) == 2 * L && static_cast<int64_t>(packed.size()) == 4 * L &&
                  static_cast<int64_t>(mats.size()) == 4 * L && static_cast<int64_t>(biases.size()) == 4 * L,
              "r1 kernels: decode_layers: per layer 2 norms and eps, 4 packings, matrices and biases, 1 KV cache");
  TORCH_CHECK(record.empty() || static_cast<int64_t>(record.size()) == 5 * L + 1,
              "r1 kernels: decode_layers: record needs 5 L + 1 buffers");
  const int64_t R = x.size(0), E = x.size(-1);
  TORCH_CHECK(x.numel() == R * E && R <= rows, "r1 kernels: decode_layers: x (R, E) with R <= rows");
  for (int64_t i = 0; i < 4 * L; ++i) {
    check_f32(mats[i], "matrix");
    check_f32(packed[i], "packing");
    TORCH_CHECK(mats[i].dim() == 2 && packed[i].numel() >= packed_floats(rows, mats[i].size(0), mats[i].size(1)),
                "r1 kernels: decode_layers: a packing is smaller than MKL's for its matrix");
    auto b = biases.get(i);
    if (b.has_value() && b->defined()) {
      check_f32(*b, "bias");
      TORCH_CHECK(b->numel() == mats[i].size(0), "r1 kernels: decode_layers: a bias does not fit its matrix");
    }
  }
  for (int64_t i = 0; i < L; ++i) {  // the products chain: E → q/k/v; H·D → E; E → 2 I; I → E
    const auto &q = mats[4 * i], &o = mats[4 * i + 1], &gu = mats[4 * i + 2], &d = mats[4 * i + 3];
    TORCH_CHECK(q.size(1) == E && o.size(0) == E && gu.size(1) == E && d.size(0) == E && 2 * d.size(1) == gu.size(0),
                "r1 kernels: decode_layers: layer ", i, "'s matrices do not chain from width ", E);
    if (!record.empty()) {
      const int64_t widths[5] = {E, q.size(0), o.size(1), E, gu.size(0)};
      for (int64_t k = 0; k < 5; ++k)
        TORCH_CHECK(record[5 * i + k].dim() == 2 && record[5 * i + k].size(1) == widths[k],
                    "r1 kernels: decode_layers: record buffer ", 5 * i + k, " is not (M, ", widths[k], ")");
    }
  }
  TORCH_CHECK(record.empty() || (record[5 * L].dim() == 2 && record[5 * L].size(1) == E),
              "r1 kernels: decode_layers: the last record buffer is not (M, ", E, ")");
  const int64_t* slots = nullptr;
  if (slot_rows.has_value() && slot_rows->defined()) {
    TORCH_CHECK(slot_rows->scalar_type() == at::kLong && slot_rows->is_contiguous() && slot_rows->numel() == R,
                "r1 kernels: decode_layers: slot_rows must be (R,) int64");
    slots = slot_rows->data_ptr<int64_t>();
  }
  int64_t lo = row0, hi = row0 + R - 1;  // the record rows this step writes
  if (slots && R > 0) {
    lo = row0 + *std::min_element(slots, slots + R);
    hi = row0 + *std::max_element(slots, slots + R);
  }
  for (const auto& b : record) {
    check_f32(b, "record buffer");
    TORCH_CHECK(b.size(0) == 0 || (lo >= 0 && hi < b.size(0)), "r1 kernels: decode_layers: record rows ", lo, "..",
                hi, " outside a buffer of ", b.size(0));
  }
  const bool direct = !record.empty() && !slots;  // computed straight into the record's rows
  // A buffer of 0 rows is an activation the record does not keep (the backward recomputes it).
  auto kept = [&](int64_t k) { return !record.empty() && record[k].size(0) > 0; };
  // Where activation k (record order) of this step is computed: the record's rows, else a new (R, F) tensor.
  auto target = [&](int64_t k, int64_t F) {
    return direct && kept(k) ? record[k].narrow(0, row0, R) : at::empty({R, F}, x.options());
  };
  // A value computed elsewhere, copied into the record's rows (scattered by slot_rows).
  auto keep = [&](int64_t k, const at::Tensor& v) {
    const int64_t F = v.size(-1);
    float* dst = kept(k) ? record[k].data_ptr<float>() : nullptr;
    if (!dst || (direct && v.data_ptr<float>() == dst + row0 * F)) return;  // none, or computed there
    const float* src = v.data_ptr<float>();
    for (int64_t r = 0; r < R; ++r)
      std::memcpy(dst + (row0 + (slots ? slots[r] : r)) * F, src + r * F, sizeof(float) * F);
  };
  at::Tensor h = x.reshape({R, E});
  keep(0, h);
  if (direct) h = record[0].narrow(0, row0, R);
  for (int64_t i = 0; i < L; ++i) {
    const at::Tensor &Wqkv = mats[4 * i], &Wo = mats[4 * i + 1], &Wgu = mats[4 * i + 2], &Wd = mats[4 * i + 3];
    at::Tensor qkv = target(5 * i + 1, Wqkv.size(0));
    packed_product(rms_norm(h, norms[2 * i], eps[2 * i]), packed[4 * i], Wqkv, biases.get(4 * i), nullptr, qkv);
    keep(5 * i + 1, qkv);
    at::Tensor o = target(5 * i + 2, Wo.size(1));
    at::Tensor kc = kcache[i], vc = vcache[i];
    decode_attention(qkv, cos, sin, kc, vc, length, mask, H, KV, scale, o);
    keep(5 * i + 2, o);
    // x2 = x + o·Wo^T: into the record's rows, or in place over x when x is this call's own (not the caller's)
    at::Tensor x2 = direct ? target(5 * i + 3, E) : (i == 0 ? at::empty({R, E}, x.options()) : h);
    packed_product(o, packed[4 * i + 1], Wo, biases.get(4 * i + 1), &h, x2);
    keep(5 * i + 3, x2);
    at::Tensor gu = target(5 * i + 4, Wgu.size(0));
    packed_product(rms_norm(x2, norms[2 * i + 1], eps[2 * i + 1]), packed[4 * i + 2], Wgu, biases.get(4 * i + 2),
                   nullptr, gu);
    keep(5 * i + 4, gu);
    at::Tensor out = direct ? target(5 * i + 5, E) : x2;
    packed_product(silu_mul(gu), packed[4 * i + 3], Wd, biases.get(4 * i + 3), &x2, out);
    keep(5 * i + 5, out);
    h = out;
  }
  return h;
}

// ------------------------------------------------------------------------------------------------- packed attention
// Causal self-attention within each of N examples packed one after another (SFT / pretraining's packed rows), and
// its backward. q (M, H·D), k and v (M, KV·D) at the M packed positions (RoPE applied); example n at rows starts[n]
// .. starts[n] + lengths[n] − 1, the examples one after another from row 0 and covering all M; query head h reads KV
// head h / (H / KV). Forward → o (M, H·D) and each row's logsumexp (M, H) of its scaled scores; the backward
// recomputes the probabilities from those (no (L, L) tensor is kept between the two).
// One task per (example, KV head): its keys and values transposed once, then for each query head of the group the
// scores, softmax and products as register-blocked loops over (L, L) tiles that stay in cache; the key and value
// gradients are summed over the group's query heads inside the task, so no two tasks write one row.
// Why by hand: on the demo's pretraining batch (64 examples of 15-79 tokens, 4 / 2 heads of 32) PyTorch's attention
// needs the examples gathered into padded groups, SDPA per group, and the outputs scattered back: 8.2 ms a layer
// (forward + backward, 2 threads) against 2.5 ms here. Meant for short examples: past ~512 tokens the tiles leave
// the cache and SDPA is faster (r1/models/sequence.py chooses).

constexpr int64_t RB = 4;   // rows per block
constexpr int64_t CB = 16;  // columns per block (one vector of floats)

// S[i][j] = scale · Σ_d A[i·sa + d] · Bt[d·ld + j] for the 16-column blocks j0 ≤ i (the causal triangle, block-wise);
// A (L, D) rows at stride sa, Bt (D, ld) a block transposed; S (L, ld).
template <int D>
void tri_products(const float* A, int64_t sa, const float* Bt, int64_t ld, int64_t L, float scale, float* S) {
  for (int64_t i0 = 0; i0 < L; i0 += RB) {
    const int64_t nr = std::min(RB, L - i0);
    const int64_t jend = i0 + nr;  // columns 0 .. jend-1 are needed by these rows
    for (int64_t j0 = 0; j0 < jend; j0 += CB) {
      float acc[RB][CB] = {};
      for (int64_t d = 0; d < D; ++d) {
        const float* b = Bt + d * ld + j0;
        for (int64_t r = 0; r < RB; ++r) {
          const float a = A[(i0 + (r < nr ? r : 0)) * sa + d];
#pragma omp simd
          for (int64_t c = 0; c < CB; ++c) acc[r][c] += a * b[c];
        }
      }
      for (int64_t r = 0; r < nr; ++r) {
        float* s = S + (i0 + r) * ld + j0;
#pragma omp simd
        for (int64_t c = 0; c < CB; ++c) s[c] = acc[r][c] * scale;
      }
    }
  }
}

// Out[i] = Σ_{j ≤ i} P[i][j] · B[j] (P zero above the diagonal up to its 16-block), B rows at stride sb,
// Out rows at stride so; D floats a row.
template <int D>
void rows_times(const float* P, int64_t ld, const float* B, int64_t sb, int64_t L, float* Out, int64_t so) {
  constexpr int64_t R = D >= 128 ? 2 : RB;
  for (int64_t i0 = 0; i0 < L; i0 += R) {
    const int64_t nr = std::min(R, L - i0);
    float acc[R][D] = {};
    const int64_t jend = i0 + nr;
    for (int64_t j = 0; j < jend; ++j) {
      const float* b = B + j * sb;
      for (int64_t r = 0; r < R; ++r) {
        const float p = P[(i0 + (r < nr ? r : 0)) * ld + j];
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) acc[r][c] += p * b[c];
      }
    }
    for (int64_t r = 0; r < nr; ++r) std::memcpy(Out + (i0 + r) * so, acc[r], D * sizeof(float));
  }
}

// Out[j] += Σ_{i ≥ j} P[i][j] · A[i] (P zero above the diagonal), A rows at stride sa, Out (L, D) contiguous.
template <int D>
void trans_times(const float* P, int64_t ld, const float* A, int64_t sa, int64_t L, float* Out) {
  constexpr int64_t R = D >= 128 ? 2 : RB;
  for (int64_t j0 = 0; j0 < L; j0 += R) {
    const int64_t nr = std::min(R, L - j0);
    float acc[R][D] = {};
    for (int64_t i = j0; i < L; ++i) {
      const float* a = A + i * sa;
      const float* p = P + i * ld + j0;
      for (int64_t r = 0; r < R; ++r) {
        const float w = r < nr ? p[r] : 0.0f;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) acc[r][c] += w * a[c];
      }
    }
    for (int64_t r = 0; r < nr; ++r) {
      float* out = Out + (j0 + r) * D;
#pragma omp simd
      for (int64_t c = 0; c < D; ++c) out[c] += acc[r][c];
    }
  }
}

inline int64_t padded(int64_t L) { return (L + CB - 1) / CB * CB; }

// gather one KV head's (L, D) rows transposed into (D, ld)
template <int D>
void transpose_in(const float* x, int64_t stride, int64_t L, int64_t ld, float* xt) {
  for (int64_t j = 0; j < L; ++j)
    for (int64_t d = 0; d < D; ++d) xt[d * ld + j] = x[j * stride + d];
  for (int64_t d = 0; d < D; ++d)
    for (int64_t j = L; j < ld; ++j) xt[d * ld + j] = 0.0f;
}

template <int D>
void fwd_task(const float* q, const float* k, const float* v, float* o, float* lse, int64_t s0, int64_t L, int64_t g,
              int64_t H, int64_t KV, float scale, std::vector<float>& buf) {
  const int64_t ld = padded(L);
  buf.resize(D * ld + L * ld);
  float* kt = buf.data();
  float* S = kt + D * ld;
  transpose_in<D>(k + (s0 * KV + g) * D, KV * D, L, ld, kt);
  const int64_t per = H / KV;
  for (int64_t h = g * per; h < (g + 1) * per; ++h) {
    const float* qh = q + (s0 * H + h) * D;
    tri_products<D>(qh, H * D, kt, ld, L, scale, S);
    for (int64_t i = 0; i < L; ++i) {
      float* s = S + i * ld;
      const int64_t nb = (i + CB) / CB * CB;  // the 16-column blocks row i reaches
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j0 = 0; j0 < nb; j0 += CB) {
#pragma omp simd reduction(max : mx)
        for (int64_t c = 0; c < CB; ++c) {
          const float x = j0 + c <= i ? s[j0 + c] : -std::numeric_limits<float>::infinity();
          mx = x > mx ? x : mx;
        }
      }
      float sum = 0.0f;
      for (int64_t j0 = 0; j0 < nb; j0 += CB) {
#pragma omp simd reduction(+ : sum)
        for (int64_t c = 0; c < CB; ++c) {
          const float e = j0 + c <= i ? exp_approx(s[j0 + c] - mx) : 0.0f;
          s[j0 + c] = e;
          sum += e;
        }
      }
      const float inv = 1.0f / sum;
      for (int64_t j0 = 0; j0 < nb; j0 += CB) {
#pragma omp simd
        for (int64_t c = 0; c < CB; ++c) s[j0 + c] *= inv;
      }
      for (int64_t j = nb; j < ld; ++j) s[j] = 0.0f;
      lse[(s0 + i) * H + h] = mx + std::log(sum);
    }
    rows_times<D>(S, ld, v + (s0 * KV + g) * D, KV * D, L, o + (s0 * H + h) * D, H * D);
  }
}

template <int D>
void bwd_task(const float* q, const float* k, const float* v, const float* o, const float* lse, const float* dout,
              float* dq, float* dk, float* dv, int64_t s0, int64_t L, int64_t g, int64_t H, int64_t KV, float scale,
              std::vector<float>& buf) {
  const int64_t ld = padded(L);
  buf.resize(2 * D * ld + 2 * L * ld + 2 * L * D);
  float* kt = buf.data();
  float* vt = kt + D * ld;
  float* P = vt + D * ld;
  float* dS = P + L * ld;
  float* dK = dS + L * ld;
  float* dV = dK + L * D;
  std::fill(dK, dK + 2 * L * D, 0.0f);
  const float* kg = k + (s0 * KV + g) * D;
  const float* vg = v + (s0 * KV + g) * D;
  transpose_in<D>(kg, KV * D, L, ld, kt);
  transpose_in<D>(vg, KV * D, L, ld, vt);
  const int64_t per = H / KV;
  for (int64_t h = g * per; h < (g + 1) * per; ++h) {
    const int64_t base = s0 * H + h;
    const float* qh = q + base * D;
    const float* doh = dout + base * D;
    const float* oh = o + base * D;
    tri_products<D>(qh, H * D, kt, ld, L, scale, P);
    tri_products<D>(doh, H * D, vt, ld, L, 1.0f, dS);
    for (int64_t i = 0; i < L; ++i) {
      float* p = P + i * ld;
      float* ds = dS + i * ld;
      const float* doi = doh + i * H * D;
      const float* oi = oh + i * H * D;
      float delta = 0.0f;
#pragma omp simd reduction(+ : delta)
      for (int64_t c = 0; c < D; ++c) delta += doi[c] * oi[c];
      const float m = lse[base + i * H];
      const int64_t nb = (i + CB) / CB * CB;
      for (int64_t j0 = 0; j0 < nb; j0 += CB) {
#pragma omp simd
        for (int64_t c = 0; c < CB; ++c) {
          const float e = j0 + c <= i ? exp_approx(p[j0 + c] - m) : 0.0f;
          p[j0 + c] = e;
          ds[j0 + c] = e * (ds[j0 + c] - delta) * scale;
        }
      }
      for (int64_t j = nb; j < ld; ++j) p[j] = ds[j] = 0.0f;
    }
    rows_times<D>(dS, ld, kg, KV * D, L, dq + base * D, H * D);
    trans_times<D>(dS, ld, qh, H * D, L, dK);
    trans_times<D>(P, ld, doh, H * D, L, dV);
  }
  for (int64_t j = 0; j < L; ++j) {
    std::memcpy(dk + ((s0 + j) * KV + g) * D, dK + j * D, D * sizeof(float));
    std::memcpy(dv + ((s0 + j) * KV + g) * D, dV + j * D, D * sizeof(float));
  }
}

void check_packed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& starts,
                  const at::Tensor& lengths, int64_t H, int64_t KV) {
  check_f32(q, "q");
  check_f32(k, "k");
  check_f32(v, "v");
  TORCH_CHECK(H > 0 && KV > 0 && H % KV == 0, "r1 kernels: packed_attention: ", H, " query heads over ", KV,
              " KV heads");
  TORCH_CHECK(q.dim() == 2 && q.size(1) % H == 0, "r1 kernels: packed_attention: q must be (M, H·D)");
  const int64_t M = q.size(0), D = q.size(1) / H;
  TORCH_CHECK(k.sizes() == at::IntArrayRef({M, KV * D}) && v.sizes() == k.sizes(),
              "r1 kernels: packed_attention: k and v must be (M, KV·D) = (", M, ", ", KV * D, "), got ", k.sizes(),
              " and ", v.sizes());
  for (const auto* t : {&starts, &lengths})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kLong && t->dim() == 1 && t->is_contiguous(),
                "r1 kernels: packed_attention: starts and lengths must be 1-D int64 CPU tensors");
  TORCH_CHECK(starts.numel() == lengths.numel(), "r1 kernels: packed_attention: ", starts.numel(), " starts, ",
              lengths.numel(), " lengths");
  TORCH_CHECK(D == 16 || D == 32 || D == 64 || D == 128, "r1 kernels: packed_attention: head dim ", D,
              " (16, 32, 64 or 128)");
  const int64_t* st = starts.data_ptr<int64_t>();
  const int64_t* ln = lengths.data_ptr<int64_t>();
  int64_t next = 0;  // the examples tile the M rows, in order: every output row is written
  for (int64_t n = 0; n < starts.numel(); ++n) {
    TORCH_CHECK(st[n] == next && ln[n] >= 1, "r1 kernels: packed_attention: example ", n, " at row ", st[n],
                " with length ", ln[n], ": the examples must follow one another from row 0, each at least 1 long");
    next += ln[n];
  }
  TORCH_CHECK(next == M, "r1 kernels: packed_attention: the examples cover ", next, " rows of ", M);
}

template <typename F>
void over_tasks(const at::Tensor& starts, const at::Tensor& lengths, int64_t KV, F f) {
  const int64_t N = starts.numel();
  const int64_t* st = starts.data_ptr<int64_t>();
  const int64_t* ln = lengths.data_ptr<int64_t>();
  at::parallel_for(0, N * KV, 1, [&](int64_t b, int64_t e) {
    std::vector<float> buf;
    for (int64_t t = b; t < e; ++t) f(st[t / KV], ln[t / KV], t % KV, buf);
  });
}

#define R1_BY_HEAD_DIM(D, CALL)                                       \
  switch (D) {                                                 \
    case 16: { constexpr int DD = 16; CALL; break; }           \
    case 32: { constexpr int DD = 32; CALL; break; }           \
    case 64: { constexpr int DD = 64; CALL; break; }           \
    case 128: { constexpr int DD = 128; CALL; break; }         \
    default: TORCH_CHECK(false, "r1 kernels: packed_attention: head dim ", D);   \
  }

std::tuple<at::Tensor, at::Tensor> packed_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                    const at::Tensor& starts, const at::Tensor& lengths, int64_t H,
                                                    int64_t KV, double scale) {
  check_packed(q, k, v, starts, lengths, H, KV);
  const int64_t M = q.size(0), D = q.size(1) / H;
  auto o = at::empty_like(q);
  auto lse = at::empty({M, H}, q.options());
  const float *pq = q.data_ptr<float>(), *pk = k.data_ptr<float>(), *pv = v.data_ptr<float>();
  float *po = o.data_ptr<float>(), *pl = lse.data_ptr<float>();
  const float sc = static_cast<float>(scale);
  over_tasks(starts, lengths, KV, [&](int64_t s0, int64_t L, int64_t g, std::vector<float>& buf) {
    R1_BY_HEAD_DIM(D, (fwd_task<DD>(pq, pk, pv, po, pl, s0, L, g, H, KV, sc, buf)));
  });
  return {o, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> packed_attention_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& o,
    const at::Tensor& lse, const at::Tensor& starts, const at::Tensor& lengths, int64_t H, int64_t KV, double scale) {
  check_packed(q, k, v, starts, lengths, H, KV);
  check_f32(dout, "dout");
  check_f32(o, "o");
  check_f32(lse, "lse");
  TORCH_CHECK(dout.sizes() == q.sizes() && o.sizes() == q.sizes() && lse.numel() == q.size(0) * H,
              "r1 kernels: packed_attention_backward: dout and o must be shaped as q, lse (M, H)");
  const int64_t D = q.size(1) / H;
  auto dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
  const float *pq = q.data_ptr<float>(), *pk = k.data_ptr<float>(), *pv = v.data_ptr<float>();
  const float *po = o.data_ptr<float>(), *pl = lse.data_ptr<float>(), *pd = dout.data_ptr<float>();
  float *gq = dq.data_ptr<float>(), *gk = dk.data_ptr<float>(), *gv = dv.data_ptr<float>();
  const float sc = static_cast<float>(scale);
  over_tasks(starts, lengths, KV, [&](int64_t s0, int64_t L, int64_t g, std::vector<float>& buf) {
    R1_BY_HEAD_DIM(D, (bwd_task<DD>(pq, pk, pv, po, pl, pd, gq, gk, gv, s0, L, g, H, KV, sc, buf)));
  });
  return {dq, dk, dv};
}
}  // namespace

TORCH_LIBRARY(r1, m) {
  m.def("silu_mul(Tensor gu) -> Tensor");
  m.def("swiglu_backward(Tensor gu, Tensor dh) -> (Tensor, Tensor, Tensor)");
  m.def("swiglu_backward_cat(Tensor gu, Tensor dh) -> (Tensor, Tensor)");
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  m.def("rms_norm_backward(Tensor dy, Tensor x, Tensor weight, float eps, Tensor(a!)? residual=None) -> (Tensor, Tensor)");
  m.def(
      "decode_attention(Tensor qkv, Tensor cos, Tensor sin, Tensor(a!) kcache, Tensor(b!) vcache, int length, "
      "Tensor mask, int H, int KV, float scale, Tensor(c!)? out=None) -> Tensor");
  m.def("sample_categorical(Tensor logits, Tensor u, float temperature) -> (Tensor, Tensor)");
  m.def("rope(Tensor x, Tensor cos, Tensor sin, int heads, bool transpose, Tensor(a!)? out=None) -> Tensor");
  m.def("mkl_packing() -> bool", mkl_packing);
  m.def("mkl_pack(Tensor weight, int rows, Tensor? buffer) -> Tensor");
  m.def(
      "mkl_packed_linear(Tensor x, Tensor packed, Tensor weight, Tensor? bias, int rows, Tensor(a!)? out=None) -> "
      "Tensor");
  m.def("total_norm(Tensor[] xs) -> Tensor");
  m.def(
      "decode_layers(Tensor x, Tensor[] norms, float[] eps, Tensor[] packed, Tensor[] mats, Tensor?[] biases, "
      "Tensor(a!)[] kcache, Tensor(b!)[] vcache, Tensor cos, Tensor sin, int length, Tensor mask, int H, int KV, "
      "float scale, int rows, Tensor(c!)[] record, int row0, Tensor? slot_rows) -> Tensor");

  m.def(
      "packed_attention(Tensor q, Tensor k, Tensor v, Tensor starts, Tensor lengths, int H, int KV, float scale) -> "
      "(Tensor, Tensor)");
  m.def(
      "packed_attention_backward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor starts, "
      "Tensor lengths, int H, int KV, float scale) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(r1, CPU, m) {
  m.impl("silu_mul", silu_mul);
  m.impl("swiglu_backward", swiglu_backward);
  m.impl("swiglu_backward_cat", swiglu_backward_cat);
  m.impl("rms_norm", rms_norm);
  m.impl("rms_norm_backward", rms_norm_backward);
  m.impl("decode_attention", decode_attention);
  m.impl("sample_categorical", sample_categorical);
  m.impl("rope", rope);
  m.impl("mkl_pack", mkl_pack);
  m.impl("mkl_packed_linear", mkl_packed_linear);
  m.impl("decode_layers", decode_layers);
  m.impl("total_norm", total_norm);
  m.impl("packed_attention", packed_attention);
  m.impl("packed_attention_backward", packed_attention_backward);
}
