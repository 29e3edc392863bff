#include "blas_select.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <strings.h>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

// Everything the load-time hook calls is plain C: no allocation that could throw, no output, no locale.

namespace ms {
namespace {

constexpr const char* kCoretypeVar = "OPENBLAS_CORETYPE";
constexpr const char* kSelectedVar = "MERGESCOPE_BLAS_SELECTED";
constexpr const char* kReplacedVar = "MERGESCOPE_BLAS_REPLACED";
constexpr const char* kAssumeGenericVar = "MERGESCOPE_BLAS_ASSUME_GENERIC";

bool same_kernel(const char* a, const char* b) { return a && b && strcasecmp(a, b) == 0; }

bool is_vendor(const CpuInfo& cpu, const char* vendor) { return std::strcmp(cpu.vendor, vendor) == 0; }

#if defined(__x86_64__) || defined(__i386__)
uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  // Raw opcode of xgetbv: the assembler needs no -mxsave, and the caller has checked OSXSAVE first
  // (without it the instruction faults).
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return static_cast<uint64_t>(edx) << 32 | eax;
}
#endif

}  // namespace

CpuInfo read_cpu_info() {
  CpuInfo cpu;
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return cpu;
  const unsigned max_leaf = eax;
  std::memcpy(cpu.vendor + 0, &ebx, 4);
  std::memcpy(cpu.vendor + 4, &edx, 4);
  std::memcpy(cpu.vendor + 8, &ecx, 4);
  cpu.vendor[12] = '\0';
  if (max_leaf < 1 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return cpu;
  const int base_family = (eax >> 8) & 0xf, base_model = (eax >> 4) & 0xf;
  cpu.family = base_family == 0xf ? base_family + static_cast<int>((eax >> 20) & 0xff) : base_family;
  cpu.model =
      base_family == 0x6 || base_family == 0xf ? base_model | static_cast<int>((eax >> 16) & 0xf) << 4 : base_model;
  cpu.fma = ecx & (1u << 12);
  cpu.avx = ecx & (1u << 28);
  const bool osxsave = ecx & (1u << 27);
  if (osxsave) {
    const uint64_t xcr0 = read_xcr0();
    cpu.os_saves_ymm = (xcr0 & 0x6) == 0x6;
    cpu.os_saves_zmm = cpu.os_saves_ymm && (xcr0 & 0xe0) == 0xe0;
    cpu.os_saves_tiles = (xcr0 & 0x60000) == 0x60000;
  }
  if (max_leaf >= 7 && __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    cpu.avx2 = ebx & (1u << 5);
    cpu.avx512f = ebx & (1u << 16);
    cpu.avx512dq = ebx & (1u << 17);
    cpu.avx512cd = ebx & (1u << 28);
    cpu.avx512bw = ebx & (1u << 30);
    cpu.avx512vl = ebx & (1u << 31);
    cpu.amx_bf16 = edx & (1u << 22);
    cpu.amx_tile = edx & (1u << 24);
    const unsigned subleaves = eax;
    if (subleaves >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) cpu.avx512_bf16 = eax & (1u << 5);
  }
#endif
  return cpu;
}

const char* best_openblas_kernel(const CpuInfo& cpu) {
  if (!cpu.avx || !cpu.os_saves_ymm) return nullptr;
  // OpenBLAS compiles its SkylakeX kernels for skylake-avx512, so the compiler may use any of F/DQ/CD/BW/VL
  // there; require all five, not only the F/BW/VL its own detection checks.
  if (cpu.avx512f && cpu.avx512dq && cpu.avx512cd && cpu.avx512bw && cpu.avx512vl && cpu.os_saves_zmm)
    return "SkylakeX";
  if (cpu.avx2 && cpu.fma) {
    // Same AVX2+FMA instructions as Haswell's; OpenBLAS tunes the Zen set (blocking sizes) for these families.
    const bool zen = (is_vendor(cpu, "AuthenticAMD") && (cpu.family == 0x17 || cpu.family == 0x19)) ||
                     (is_vendor(cpu, "HygonGenuine") && cpu.family == 0x18);
    return zen ? "Zen" : "Haswell";
  }
  return "Sandybridge";
}

bool cpu_runs_openblas_kernel(const char* kernel, const CpuInfo& cpu) {
  if (is_generic_openblas_core(kernel)) return true;
  const bool avx = cpu.avx && cpu.os_saves_ymm, avx2 = avx && cpu.avx2 && cpu.fma;
  if (same_kernel(kernel, "Sandybridge")) return avx;
  if (same_kernel(kernel, "Haswell") || same_kernel(kernel, "Zen")) return avx2;
  if (same_kernel(kernel, "SkylakeX"))
    return avx2 && cpu.avx512f && cpu.avx512dq && cpu.avx512cd && cpu.avx512bw && cpu.avx512vl && cpu.os_saves_zmm;
  return false;
}

bool is_generic_openblas_core(const char* corename) {
  // The SSE-era names among the corenames OpenBLAS 0.3.21 can report (its DYNAMIC_ARCH table). Prescott is
  // its fallback for an unknown x86-64 CPU, Nehalem/Barcelona its fallback when the OS disables AVX (then
  // os_saves_ymm is false and nothing better is chosen). "Unknown" is not here: we cannot tell what runs.
  static const char* const kGeneric[] = {"Katmai",       "Coppermine", "Northwood",  "Prescott", "Banias", "Atom",
                                         "Core2",        "Penryn",     "Dunnington", "Nehalem",  "Athlon", "Opteron",
                                         "Opteron_SSE3", "Barcelona",  "Nano",       "Bobcat"};
  if (!corename) return false;
  for (const char* name : kGeneric)
    if (same_kernel(corename, name)) return true;
  return false;
}

bool openblas_honours_coretype(const char* config) {
  if (!config || std::strncmp(config, "OpenBLAS ", 9) != 0 || !std::strstr(config, "DYNAMIC_ARCH")) return false;
  // "OpenBLAS 0.3.21 ...": SkylakeX, Zen and OPENBLAS_CORETYPE all predate 0.3.10 (2020); older builds are
  // left alone rather than guessed at.
  int part[3] = {0, 0, 0};
  const char* p = config + 9;
  for (int i = 0; i < 3; ++i) {
    if (*p < '0' || *p > '9') return false;
    while (*p >= '0' && *p <= '9' && part[i] < 100000) part[i] = part[i] * 10 + (*p++ - '0');
    if (i < 2 && *p++ != '.') return false;
  }
  if (part[0] > 0) return true;
  return part[1] > 3 || (part[1] == 3 && part[2] >= 10);
}

BlasDecision decide_blas_kernel(const BlasSituation& s, const CpuInfo& cpu) {
  BlasDecision d;
  if (!s.corename) return d;  // not_openblas
  // First: the re-executed process must never decide again, whatever else holds.
  if (s.selected_by_mergescope) return {nullptr, BlasReason::already_selected};
  if (!s.coretype_honoured) return {nullptr, BlasReason::coretype_ignored};
  if (s.user_set_coretype && !s.assume_generic) return {nullptr, BlasReason::set_by_user};
  if (!s.assume_generic && !is_generic_openblas_core(s.corename)) return {nullptr, BlasReason::detected_by_openblas};
  const char* best = best_openblas_kernel(cpu);
  if (!best || same_kernel(best, s.corename)) return {nullptr, BlasReason::nothing_better};
  return {best, BlasReason::generic_fallback};
}

BlasSituation current_blas_situation() {
  BlasSituation s;
  using NameFn = char* (*)();
  const auto corename_fn = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const auto config_fn = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  if (!corename_fn || !config_fn) return s;
  s.corename = corename_fn();
  s.coretype_honoured = openblas_honours_coretype(config_fn());
  const char* coretype = std::getenv(kCoretypeVar);
  s.selected_by_mergescope = same_kernel(coretype, std::getenv(kSelectedVar));
  s.user_set_coretype = coretype && !s.selected_by_mergescope;
  const char* assume = std::getenv(kAssumeGenericVar);
  s.assume_generic = assume && std::strcmp(assume, "1") == 0;
  return s;
}

std::string describe_cpu(const CpuInfo& cpu) {
  std::string vendor = is_vendor(cpu, "GenuineIntel")   ? "Intel"
                       : is_vendor(cpu, "AuthenticAMD") ? "AMD"
                       : is_vendor(cpu, "HygonGenuine") ? "Hygon"
                       : cpu.vendor[0]                  ? cpu.vendor
                                                        : "unknown vendor";
  const char* isa = !cpu.avx || !cpu.os_saves_ymm     ? "SSE"
                    : cpu.avx512f && cpu.os_saves_zmm ? "AVX-512"
                    : cpu.avx2                        ? "AVX2"
                                                      : "AVX";
  return vendor + " family " + std::to_string(cpu.family) + " model " + std::to_string(cpu.model) + ", " + isa;
}

std::string blas_kernel_report() {
  const BlasSituation s = current_blas_situation();
  if (!s.corename) return "";
  const CpuInfo cpu = read_cpu_info();
  const char* coretype = std::getenv(kCoretypeVar);
  std::string line = std::string("BLAS kernel: ") + s.corename + ", ";
  if (s.selected_by_mergescope && same_kernel(s.corename, coretype)) {
    const char* replaced = std::getenv(kReplacedVar);
    line += std::string("chosen by mergescope: OpenBLAS picked ") +
            (replaced && *replaced ? replaced : "a generic kernel") + " on this CPU (" + describe_cpu(cpu) + ")";
    if (s.assume_generic) line += std::string(" [simulated with ") + kAssumeGenericVar + "=1]";
  } else if (coretype && !same_kernel(s.corename, coretype)) {
    // OpenBLAS replaces names it does not know or cannot run here (silently unless OPENBLAS_VERBOSE=2).
    line += std::string("chosen by OpenBLAS in place of OPENBLAS_CORETYPE=") + coretype;
  } else if (s.user_set_coretype) {
    line += "set by OPENBLAS_CORETYPE";
  } else if (!s.coretype_honoured) {
    line += "fixed when OpenBLAS was built";
  } else {
    line += "detected by OpenBLAS";
  }
  // Only when the hook could not act (exec failed, or an executable without it): say what it would do.
  const BlasDecision d = decide_blas_kernel(s, cpu);
  if (d.select) line += std::string("; mergescope would select ") + d.select + " but did not re-execute";
  return line;
}

}  // namespace ms

extern "C" void mergescope_blas_select_at_load(int argc, char** argv, char** envp) noexcept;

namespace {

// One environment variable's value before the hook changed it, to put back if exec fails.
struct SavedVar {
  const char* name;
  bool was_set = false;
  char value[256] = {};
};

bool save(SavedVar& v) {
  const char* p = std::getenv(v.name);
  v.was_set = p != nullptr;
  if (!p) return true;
  if (std::strlen(p) >= sizeof v.value) return false;
  std::strcpy(v.value, p);
  return true;
}

void restore(const SavedVar& v) {
  if (v.was_set)
    setenv(v.name, v.value, 1);
  else
    unsetenv(v.name);
}

// Re-executing /proc/self/exe runs this program again only when the kernel started it directly; under
// `ld.so ./program` it names the loader (AT_BASE is 0 then), and in a shared library that linked
// mergescope_core it would name the host program. Set-id programs (AT_SECURE) are left alone too.
bool hook_runs_in_main_program() {
  if (getauxval(AT_BASE) == 0 || getauxval(AT_SECURE) != 0) return false;
  Dl_info info;
  void* map = nullptr;
  if (!dladdr1(reinterpret_cast<void*>(&mergescope_blas_select_at_load), &info, &map, RTLD_DL_LINKMAP) || !map)
    return false;
  const char* name = static_cast<link_map*>(map)->l_name;
  return name && name[0] == '\0';  // the main program's link map has an empty name
}

}  // namespace

// The load-time hook. glibc runs the main program's .init_array after every shared library's constructors,
// so OpenBLAS has already chosen its kernel, and passes (argc, argv, envp). Priority 101 runs it before the
// program's own static constructors, which a re-exec would waste. core/CMakeLists.txt links it into every
// executable with --undefined=mergescope_blas_select_at_load. It fails safe: on any doubt it returns, it
// never prints, and the re-executed process (OPENBLAS_CORETYPE == MERGESCOPE_BLAS_SELECTED) always returns.
extern "C" __attribute__((constructor(101), used)) void mergescope_blas_select_at_load(int argc, char** argv,
                                                                                       char** /*envp*/) noexcept {
  if (argc < 1 || !argv || !argv[0]) return;
  const ms::BlasSituation situation = ms::current_blas_situation();
  if (!situation.corename || situation.selected_by_mergescope) return;  // no OpenBLAS, or the re-execution
  const ms::BlasDecision decision = ms::decide_blas_kernel(situation, ms::read_cpu_info());
  if (!decision.select || !hook_runs_in_main_program()) return;

  SavedVar coretype{ms::kCoretypeVar}, selected{ms::kSelectedVar}, replaced{ms::kReplacedVar};
  if (!save(coretype) || !save(selected) || !save(replaced)) return;
  const int saved_errno = errno;
  if (setenv(ms::kReplacedVar, situation.corename, 1) == 0 && setenv(ms::kSelectedVar, decision.select, 1) == 0 &&
      setenv(ms::kCoretypeVar, decision.select, 1) == 0) {
    execv("/proc/self/exe", argv);  // returns only on failure
  }
  // Carry on with OpenBLAS's choice and the environment as it was.
  restore(coretype);
  restore(selected);
  restore(replaced);
  errno = saved_errno;
}
