// Compute precision of a forward: fp32 (the default and the reference) or bf16, and whether this CPU runs bf16
// matrix products fast.
//
// bf16 (Model::with_dtype): the blocks' linear layers (qkv, proj, fc1, fc2) and both attention products take bf16
// inputs (weights converted once) and accumulate in fp32 inside oneDNN / cuBLAS, rounding their outputs to bf16.
// LayerNorm, softmax (on upcast logits), GELU's input, LayerScale, the residual stream, the patch embedding and
// the head stay fp32. The reducers see fp32 only: keys are upcast before they are averaged over heads, the
// attention probabilities are the fp32 softmax, tokens are the fp32 residual stream, so a reducer's similarity,
// energy and matching arithmetic is the same as in fp32 and only its inputs differ.
#pragma once

#include <string>

namespace ms {

enum class Dtype { Float32, BFloat16 };

// "fp32" | "bf16" (also "float32", "bfloat16"); throws ms::Error naming `option` otherwise.
Dtype parse_dtype(const std::string& text, const std::string& option);
const char* dtype_name(Dtype dtype);  // "fp32" | "bf16"

// How LibTorch 1.13 runs a bf16 matrix product on this CPU. It hands bf16 GEMMs to oneDNN when the CPU has
// AVX-512 (F/BW/VL/DQ); oneDNN then uses AMX or AVX512_BF16 instructions where they exist (native) and emulates
// bf16 with AVX-512 arithmetic otherwise. Without AVX-512, LibTorch's own reference kernel runs them, far slower
// than fp32 (about 20x on the AMD EPYC these numbers come from), so mergescope emulates bf16 there (Bf16Path).
struct Bf16Support {
  enum class Kind { Native, Emulated, Reference };
  Kind kind = Kind::Reference;
  std::string detail;  // what was detected, e.g. "AMX-BF16, oneDNN ISA avx512_core_amx"
};
// cpuid, the OS's saved state and oneDNN's own dispatch ISA (dnnl_get_effective_cpu_isa, which DNNL_MAX_CPU_ISA
// lowers). MERGESCOPE_BF16_ASSUME_UNSUPPORTED=1 reports Reference whatever the CPU (to test the notice).
Bf16Support bf16_support();
// How mergescope computes in bf16 here. Bf16: bf16 tensors and LibTorch's bf16 kernels (oneDNN on AVX-512 CPUs,
// cuBLAS on CUDA). RoundedFp32 (CPUs where LibTorch has only its reference bf16 kernels): every operand and result
// of a bf16 product is rounded to bf16 and held in fp32 tensors, and the products run as fp32 GEMMs. A product of
// two bf16 values is exact in fp32, so this gives a bf16 GEMM's numbers with fp32 accumulation (the order of the
// sums aside) at fp32's speed, where the reference kernels run many times slower than fp32.
// MERGESCOPE_BF16_PATH=bf16|rounded overrides the choice (tests compare the two).
enum class Bf16Path { Bf16, RoundedFp32 };
Bf16Path bf16_path();

// One line for --version: "bf16: native ...", "bf16: emulated by oneDNN ...", "bf16: emulated by rounding ...".
std::string bf16_report();
// The one-line notice printed when bf16 is asked for and does not run natively; empty when it does.
std::string bf16_notice();

}  // namespace ms
