#include "precision.h"

#include "blas_select.h"
#include "error.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

namespace ms {

Dtype parse_dtype(const std::string& text, const std::string& option) {
  if (text == "fp32" || text == "float32") return Dtype::Float32;
  if (text == "bf16" || text == "bfloat16") return Dtype::BFloat16;
  fail(option, "'" + text + "' is not fp32 or bf16");
}

const char* dtype_name(Dtype dtype) { return dtype == Dtype::BFloat16 ? "bf16" : "fp32"; }

namespace {

// oneDNN's dispatch ISA from the libdnnl LibTorch links (oneDNN 2.x's dnnl_cpu_isa_t values); -1 if none.
int onednn_isa() {
  void* lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_NOLOAD);
  if (!lib) lib = dlopen("libdnnl.so.2", RTLD_NOW);
  if (!lib) return -1;
  using Fn = int (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(lib, "dnnl_get_effective_cpu_isa"));
  return fn ? fn() : -1;
}

const char* onednn_isa_name(int isa) {
  switch (isa) {
    case 0x1:
      return "sse41";
    case 0x3:
      return "avx";
    case 0x7:
      return "avx2";
    case 0x27:
      return "avx512_core";
    case 0x67:
      return "avx512_core_vnni";
    case 0xe7:
      return "avx512_core_bf16";
    case 0x3e7:
      return "avx512_core_amx";
    case 0x407:
      return "avx2_vnni";
    default:
      return isa < 0 ? "not found" : "other";
  }
}

}  // namespace

Bf16Support bf16_support() {
  Bf16Support s;
  const CpuInfo cpu = read_cpu_info();
  const int isa = onednn_isa();
  const bool avx512_core = cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq && cpu.os_saves_zmm;
  const bool amx = cpu.amx_bf16 && cpu.amx_tile && cpu.os_saves_tiles;
  const bool onednn_bf16 = isa > 0 && (isa & 0x80);  // the avx512_core_bf16 bit, also set for amx
  std::string found = amx               ? "AMX-BF16"
                      : cpu.avx512_bf16 ? "AVX512_BF16"
                      : avx512_core     ? "AVX-512 without bf16 instructions"
                      : cpu.avx2        ? "AVX2, no AVX-512"
                                        : "no AVX2";
  s.detail = found + ", oneDNN ISA " + onednn_isa_name(isa);
  const char* assume = std::getenv("MERGESCOPE_BF16_ASSUME_UNSUPPORTED");
  if (assume && std::strcmp(assume, "1") == 0) {
    s.kind = Bf16Support::Kind::Reference;
    s.detail += "; MERGESCOPE_BF16_ASSUME_UNSUPPORTED=1";
  } else if (avx512_core && (amx || cpu.avx512_bf16) && onednn_bf16) {
    s.kind = Bf16Support::Kind::Native;
  } else if (avx512_core) {
    s.kind = Bf16Support::Kind::Emulated;
  } else {
    s.kind = Bf16Support::Kind::Reference;
  }
  return s;
}

Bf16Path bf16_path() {
  if (const char* forced = std::getenv("MERGESCOPE_BF16_PATH")) {
    if (std::strcmp(forced, "bf16") == 0) return Bf16Path::Bf16;
    if (std::strcmp(forced, "rounded") == 0) return Bf16Path::RoundedFp32;
  }
  return bf16_support().kind == Bf16Support::Kind::Reference ? Bf16Path::RoundedFp32 : Bf16Path::Bf16;
}

std::string bf16_report() {
  const Bf16Support s = bf16_support();
  switch (s.kind) {
    case Bf16Support::Kind::Native:
      return "bf16: native through oneDNN (" + s.detail + ")";
    case Bf16Support::Kind::Emulated:
      return "bf16: emulated by oneDNN with AVX-512 arithmetic (" + s.detail + ")";
    case Bf16Support::Kind::Reference:
      break;
  }
  return "bf16: emulated by rounding to bf16 around fp32 products (LibTorch has only slow reference bf16 kernels "
         "here: " +
         s.detail + ")";
}

std::string bf16_notice() {
  const Bf16Support s = bf16_support();
  if (s.kind == Bf16Support::Kind::Native) return "";
  if (s.kind == Bf16Support::Kind::Emulated)
    return "notice: --dtype bf16 on a CPU without bf16 instructions (" + s.detail +
           "): oneDNN emulates it, expect little or no speed-up over fp32";
  return "notice: --dtype bf16 on a CPU without AVX-512 (" + s.detail +
         "): emulated by rounding to bf16 around fp32 products, so the numbers are bf16's and the speed is fp32's";
}

}  // namespace ms
