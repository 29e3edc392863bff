// OpenBLAS kernel selection for CPUs that OpenBLAS does not recognise.
//
// OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from cpuid when it loads and falls back to a generic SSE
// kernel (Prescott) on CPUs newer than itself, e.g. recent Xeons with AVX-512: 3-4x slower SGEMM. It reads
// OPENBLAS_CORETYPE once, at load time, so the only way to change its choice is to set the variable and run
// the program again. Every mergescope executable does so from a load-time hook in blas_select.cpp (linked
// into each of them by core/CMakeLists.txt): when OpenBLAS reports a generic kernel, the user did not set
// OPENBLAS_CORETYPE and the CPU can run a better kernel, the hook sets
//   OPENBLAS_CORETYPE=<kernel>, MERGESCOPE_BLAS_SELECTED=<kernel> (the marker: this process is the re-exec)
//   and MERGESCOPE_BLAS_REPLACED=<the kernel OpenBLAS had picked>
// and re-executes /proc/self/exe once with the same argv. A process whose OPENBLAS_CORETYPE equals
// MERGESCOPE_BLAS_SELECTED never re-executes.
//
// Testing override: MERGESCOPE_BLAS_ASSUME_GENERIC=1 makes mergescope treat the running kernel as OpenBLAS's
// generic fallback, even one forced with OPENBLAS_CORETYPE. So
//   OPENBLAS_CORETYPE=Prescott MERGESCOPE_BLAS_ASSUME_GENERIC=1 mergescope-cli --version
// simulates a CPU that OpenBLAS does not know: it starts on Prescott, and mergescope selects this CPU's
// best kernel and re-executes. Without the override a user's OPENBLAS_CORETYPE is always obeyed.
//
// No LibTorch here: the hook runs before main, and tests call the decision directly.
#pragma once

#include <string>

namespace ms {

// What cpuid and XGETBV say about the CPU running this process (all false on other architectures).
struct CpuInfo {
  char vendor[13] = {};       // "GenuineIntel", "AuthenticAMD", "HygonGenuine", ...
  int family = 0, model = 0;  // display family and model (extended fields folded in), as /proc/cpuinfo shows
  bool avx = false, fma = false, avx2 = false;
  bool avx512f = false, avx512dq = false, avx512cd = false, avx512bw = false, avx512vl = false;
  bool os_saves_ymm = false;  // XCR0 bits 1-2: the OS saves XMM/YMM state, so AVX instructions may run
  bool os_saves_zmm = false;  // XCR0 bits 5-7: the OS saves opmask and ZMM state, so AVX-512 may run
  // bf16 instructions (core/precision.h): AVX512_BF16 (leaf 7.1 EAX bit 5), AMX-BF16 and AMX-TILE (leaf 7.0 EDX
  // bits 22, 24) with the OS saving tile state (XCR0 bits 17-18).
  bool avx512_bf16 = false, amx_bf16 = false, amx_tile = false, os_saves_tiles = false;
};
CpuInfo read_cpu_info();

// Everything besides the CPU that the decision depends on.
struct BlasSituation {
  const char* corename = nullptr;       // openblas_get_corename(); nullptr: the BLAS is not OpenBLAS
  bool coretype_honoured = false;       // a DYNAMIC_ARCH OpenBLAS that reads OPENBLAS_CORETYPE at load
  bool user_set_coretype = false;       // OPENBLAS_CORETYPE is set, and not by mergescope's re-exec
  bool selected_by_mergescope = false;  // this process is the re-exec (OPENBLAS_CORETYPE == the marker)
  bool assume_generic = false;          // MERGESCOPE_BLAS_ASSUME_GENERIC=1
};

enum class BlasReason {
  not_openblas,          // keep: nothing to select
  coretype_ignored,      // keep: this OpenBLAS has one fixed kernel (no DYNAMIC_ARCH)
  already_selected,      // keep: mergescope chose the running kernel (never re-execute twice)
  set_by_user,           // keep: the user's OPENBLAS_CORETYPE wins
  detected_by_openblas,  // keep: OpenBLAS recognised the CPU (a non-generic kernel)
  nothing_better,        // keep: generic kernel, and the CPU (or its OS) offers nothing better
  generic_fallback,      // select: OpenBLAS fell back to a generic kernel on a CPU that supports more
};

struct BlasDecision {
  const char* select = nullptr;  // the kernel to put in OPENBLAS_CORETYPE; nullptr: keep the running one
  BlasReason reason = BlasReason::not_openblas;
};

// The pure decision: keep the running kernel, or the kernel to select and why.
BlasDecision decide_blas_kernel(const BlasSituation& situation, const CpuInfo& cpu);

// The best of OpenBLAS's kernels this CPU and OS can run: SkylakeX (AVX-512), Zen (AMD family 17h/19h,
// Hygon 18h) or Haswell (AVX2 + FMA), Sandybridge (AVX); nullptr below AVX.
const char* best_openblas_kernel(const CpuInfo& cpu);

// Whether this CPU and OS can execute the named OpenBLAS kernel (OpenBLAS itself accepts any name in
// OPENBLAS_CORETYPE and then dies on an illegal instruction). Prescott and the other SSE-era kernels: always.
bool cpu_runs_openblas_kernel(const char* kernel, const CpuInfo& cpu);

// True for the SSE-era kernels OpenBLAS 0.3.21 reports when it does not know a CPU or the CPU is that old
// (Prescott, Core2, Nehalem, Barcelona, ...); false for AVX kernels and for names it does not list.
bool is_generic_openblas_core(const char* corename);

// True when openblas_get_config()'s string shows a DYNAMIC_ARCH build of OpenBLAS 0.3.10 or later, whose
// OPENBLAS_CORETYPE accepts SkylakeX, Haswell, Zen and Sandybridge.
bool openblas_honours_coretype(const char* config);

// This process's situation, read from OpenBLAS (dlsym) and the environment.
BlasSituation current_blas_situation();

// "AMD family 25 model 1, AVX2": vendor, family and model in decimal, and the widest usable vector ISA.
std::string describe_cpu(const CpuInfo& cpu);

// One line for --version: which OpenBLAS kernel runs and why, e.g. "BLAS kernel: Zen, detected by OpenBLAS";
// empty when the BLAS is not OpenBLAS.
std::string blas_kernel_report();

}  // namespace ms
