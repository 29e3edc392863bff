// OpenBLAS kernel selection (core/blas_select.h): the pure decision as a table, cpuid against /proc/cpuinfo,
// and end to end through the real mergescope-cli and this test binary. This machine's OpenBLAS may well
// recognise its CPU, so the end-to-end tests simulate one it does not know: OPENBLAS_CORETYPE=Prescott (the
// kernel OpenBLAS 0.3.21 falls back to) with MERGESCOPE_BLAS_ASSUME_GENERIC=1 (treat it as that fallback).
#include "blas_select.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace ms {
namespace {

enum class Isa { sse, avx, avx2, avx512 };

CpuInfo make_cpu(const char* vendor, int family, int model, Isa isa, bool os_saves_zmm = true,
                 bool os_saves_ymm = true) {
  CpuInfo c;
  std::strncpy(c.vendor, vendor, sizeof c.vendor - 1);
  c.family = family;
  c.model = model;
  c.avx = isa >= Isa::avx;
  c.avx2 = c.fma = isa >= Isa::avx2;
  c.avx512f = c.avx512dq = c.avx512cd = c.avx512bw = c.avx512vl = isa >= Isa::avx512;
  c.os_saves_ymm = os_saves_ymm;
  c.os_saves_zmm = os_saves_ymm && os_saves_zmm;
  return c;
}

BlasSituation openblas_running(const char* corename) {
  BlasSituation s;
  s.corename = corename;
  s.coretype_honoured = true;
  return s;
}

struct DecisionCase {
  const char* label;
  BlasSituation situation;
  CpuInfo cpu;
  const char* expected;  // nullptr: keep
  BlasReason reason;
};

TEST(BlasKernelDecision, Table) {
  const CpuInfo sapphire_rapids = make_cpu("GenuineIntel", 6, 207, Isa::avx512);  // the CPU 0.3.21 does not know
  const CpuInfo intel_avx2 = make_cpu("GenuineIntel", 6, 190, Isa::avx2);
  const CpuInfo zen2 = make_cpu("AuthenticAMD", 0x17, 0x31, Isa::avx2);
  const CpuInfo zen3 = make_cpu("AuthenticAMD", 0x19, 0x01, Isa::avx2);
  const CpuInfo zen4 = make_cpu("AuthenticAMD", 0x19, 0x11, Isa::avx512);
  const CpuInfo hygon = make_cpu("HygonGenuine", 0x18, 0x02, Isa::avx2);
  const CpuInfo excavator = make_cpu("AuthenticAMD", 0x15, 0x60, Isa::avx2);
  const CpuInfo avx512_os_off = make_cpu("GenuineIntel", 6, 207, Isa::avx512, /*os_saves_zmm=*/false);
  const CpuInfo avx_only = make_cpu("GenuineIntel", 6, 45, Isa::avx);
  const CpuInfo avx_os_off = make_cpu("GenuineIntel", 6, 207, Isa::avx512, false, /*os_saves_ymm=*/false);
  const CpuInfo sse_only = make_cpu("GenuineIntel", 6, 26, Isa::sse);

  BlasSituation prescott = openblas_running("Prescott");
  BlasSituation user_prescott = prescott;
  user_prescott.user_set_coretype = true;
  BlasSituation simulated = user_prescott;  // the testing override
  simulated.assume_generic = true;
  BlasSituation reexecuted = simulated;  // OPENBLAS_CORETYPE == MERGESCOPE_BLAS_SELECTED
  reexecuted.user_set_coretype = false;
  reexecuted.selected_by_mergescope = true;
  BlasSituation fixed_build = prescott;
  fixed_build.coretype_honoured = false;
  BlasSituation zen_assumed_generic = openblas_running("Zen");
  zen_assumed_generic.assume_generic = true;
  BlasSituation haswell_assumed_generic = openblas_running("Haswell");
  haswell_assumed_generic.assume_generic = true;

  using R = BlasReason;
  const std::vector<DecisionCase> cases = {
      {"generic on AVX-512 Intel", prescott, sapphire_rapids, "SkylakeX", R::generic_fallback},
      {"generic on AVX2 Intel", prescott, intel_avx2, "Haswell", R::generic_fallback},
      {"generic on AMD family 17h", prescott, zen2, "Zen", R::generic_fallback},
      {"generic on AMD family 19h", prescott, zen3, "Zen", R::generic_fallback},
      {"generic on AMD family 19h with AVX-512", prescott, zen4, "SkylakeX", R::generic_fallback},
      {"generic on Hygon family 18h", prescott, hygon, "Zen", R::generic_fallback},
      {"generic on AMD family 15h with AVX2", prescott, excavator, "Haswell", R::generic_fallback},
      {"AVX-512F without OS ZMM state", prescott, avx512_os_off, "Haswell", R::generic_fallback},
      {"generic on AVX-only CPU", prescott, avx_only, "Sandybridge", R::generic_fallback},
      {"other generic names", openblas_running("Nehalem"), intel_avx2, "Haswell", R::generic_fallback},
      {"", openblas_running("Core2"), sapphire_rapids, "SkylakeX", R::generic_fallback},
      {"", openblas_running("Barcelona"), zen3, "Zen", R::generic_fallback},
      {"OS without YMM state", prescott, avx_os_off, nullptr, R::nothing_better},
      {"SSE-only CPU", prescott, sse_only, nullptr, R::nothing_better},
      {"recognised SkylakeX", openblas_running("SkylakeX"), sapphire_rapids, nullptr, R::detected_by_openblas},
      {"recognised Zen", openblas_running("Zen"), zen3, nullptr, R::detected_by_openblas},
      {"recognised Haswell", openblas_running("Haswell"), intel_avx2, nullptr, R::detected_by_openblas},
      {"recognised Sandybridge", openblas_running("Sandybridge"), sapphire_rapids, nullptr, R::detected_by_openblas},
      {"Unknown: cannot tell", openblas_running("Unknown"), sapphire_rapids, nullptr, R::detected_by_openblas},
      {"user-set OPENBLAS_CORETYPE", user_prescott, sapphire_rapids, nullptr, R::set_by_user},
      {"non-OpenBLAS", BlasSituation{}, sapphire_rapids, nullptr, R::not_openblas},
      {"OpenBLAS without DYNAMIC_ARCH", fixed_build, sapphire_rapids, nullptr, R::coretype_ignored},
      {"override: user-set Prescott", simulated, sapphire_rapids, "SkylakeX", R::generic_fallback},
      {"override: user-set Prescott on Zen 3", simulated, zen3, "Zen", R::generic_fallback},
      {"override: running kernel is the best", zen_assumed_generic, zen3, nullptr, R::nothing_better},
      {"override: any running kernel", haswell_assumed_generic, zen3, "Zen", R::generic_fallback},
      {"re-executed process never decides again", reexecuted, sapphire_rapids, nullptr, R::already_selected},
  };
  for (const auto& c : cases) {
    const BlasDecision d = decide_blas_kernel(c.situation, c.cpu);
    const std::string got = d.select ? d.select : "keep", want = c.expected ? c.expected : "keep";
    EXPECT_EQ(got, want) << c.label << " (corename " << (c.situation.corename ? c.situation.corename : "none") << ", "
                         << describe_cpu(c.cpu) << ")";
    EXPECT_EQ(static_cast<int>(d.reason), static_cast<int>(c.reason)) << c.label;
  }
}

TEST(BlasKernelDecision, WhichKernelsACpuCanRun) {
  const CpuInfo sse = make_cpu("GenuineIntel", 6, 26, Isa::sse), avx2 = make_cpu("AuthenticAMD", 0x19, 1, Isa::avx2);
  const CpuInfo avx512 = make_cpu("GenuineIntel", 6, 207, Isa::avx512);
  const CpuInfo avx512_os_off = make_cpu("GenuineIntel", 6, 207, Isa::avx512, /*os_saves_zmm=*/false);
  for (const CpuInfo* cpu : {&sse, &avx2, &avx512}) EXPECT_TRUE(cpu_runs_openblas_kernel("Prescott", *cpu));
  EXPECT_FALSE(cpu_runs_openblas_kernel("Haswell", sse));
  EXPECT_TRUE(cpu_runs_openblas_kernel("Haswell", avx2));
  EXPECT_TRUE(cpu_runs_openblas_kernel("Zen", avx512));
  EXPECT_FALSE(cpu_runs_openblas_kernel("SkylakeX", avx2));
  EXPECT_TRUE(cpu_runs_openblas_kernel("SkylakeX", avx512));
  EXPECT_FALSE(cpu_runs_openblas_kernel("SkylakeX", avx512_os_off));
  EXPECT_FALSE(cpu_runs_openblas_kernel("NoSuchKernel", avx512));
}

TEST(BlasKernelDecision, GenericCorenamesOfOpenBlas0321) {
  // Every name OpenBLAS 0.3.21's DYNAMIC_ARCH openblas_get_corename() can return.
  const std::set<std::string> generic = {"Katmai", "Coppermine", "Northwood",    "Prescott", "Banias", "Atom",
                                         "Core2",  "Penryn",     "Dunnington",   "Nehalem",  "Athlon", "Opteron",
                                         "Nano",   "Bobcat",     "Opteron_SSE3", "Barcelona"};
  const std::vector<std::string> all = {
      "Katmai",    "Coppermine",  "Northwood", "Prescott",   "Banias",     "Atom",         "Core2",
      "Penryn",    "Dunnington",  "Nehalem",   "Athlon",     "Opteron",    "Opteron_SSE3", "Barcelona",
      "Nano",      "Sandybridge", "Bobcat",    "Bulldozer",  "Piledriver", "Haswell",      "Steamroller",
      "Excavator", "Zen",         "SkylakeX",  "Cooperlake", "Unknown"};
  for (const auto& name : all) EXPECT_EQ(is_generic_openblas_core(name.c_str()), generic.count(name) == 1) << name;
  EXPECT_FALSE(is_generic_openblas_core(nullptr));
  EXPECT_FALSE(is_generic_openblas_core(""));
}

TEST(BlasKernelDecision, WhichOpenBlasHonoursCoretype) {
  EXPECT_TRUE(
      openblas_honours_coretype("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Zen MAX_THREADS=64"));
  EXPECT_TRUE(openblas_honours_coretype("OpenBLAS 0.3.10 DYNAMIC_ARCH Haswell"));
  EXPECT_TRUE(openblas_honours_coretype("OpenBLAS 0.3.28.dev DYNAMIC_ARCH NO_AFFINITY SkylakeX"));
  EXPECT_TRUE(openblas_honours_coretype("OpenBLAS 0.4.0 DYNAMIC_ARCH Zen"));
  EXPECT_FALSE(openblas_honours_coretype("OpenBLAS 0.3.21 NO_AFFINITY USE_OPENMP Prescott MAX_THREADS=64"));
  EXPECT_FALSE(openblas_honours_coretype("OpenBLAS 0.3.9 DYNAMIC_ARCH Haswell"));
  EXPECT_FALSE(openblas_honours_coretype("OpenBLAS 0.2.20 DYNAMIC_ARCH Haswell"));
  EXPECT_FALSE(openblas_honours_coretype("OpenBLAS x DYNAMIC_ARCH"));
  EXPECT_FALSE(openblas_honours_coretype("BLIS DYNAMIC_ARCH"));
  EXPECT_FALSE(openblas_honours_coretype(""));
  EXPECT_FALSE(openblas_honours_coretype(nullptr));
}

TEST(BlasKernelDecision, DescribeCpu) {
  EXPECT_EQ(describe_cpu(make_cpu("GenuineIntel", 6, 207, Isa::avx512)), "Intel family 6 model 207, AVX-512");
  EXPECT_EQ(describe_cpu(make_cpu("AuthenticAMD", 25, 1, Isa::avx2)), "AMD family 25 model 1, AVX2");
  EXPECT_EQ(describe_cpu(make_cpu("GenuineIntel", 6, 207, Isa::avx512, false)), "Intel family 6 model 207, AVX2");
  EXPECT_EQ(describe_cpu(make_cpu("CentaurHauls", 6, 15, Isa::sse)), "CentaurHauls family 6 model 15, SSE");
}

// cpuid as read here against the kernel's view in /proc/cpuinfo (which also drops features the OS disabled).
TEST(BlasKernelDecision, CpuidAgreesWithProcCpuinfo) {
#if defined(__x86_64__)
  std::ifstream f("/proc/cpuinfo");
  if (!f) GTEST_SKIP() << "no /proc/cpuinfo";
  std::string line, vendor, flags;
  int family = -1, model = -1;
  auto value = [](const std::string& l) { return l.substr(l.find(':') + 2); };
  while (std::getline(f, line) && !line.empty()) {
    if (line.rfind("vendor_id", 0) == 0) vendor = value(line);
    if (line.rfind("cpu family", 0) == 0) family = std::stoi(value(line));
    if (line.rfind("model\t", 0) == 0) model = std::stoi(value(line));
    if (line.rfind("flags", 0) == 0) flags = " " + value(line) + " ";
  }
  auto has = [&](const char* flag) { return flags.find(std::string(" ") + flag + " ") != std::string::npos; };
  const CpuInfo cpu = read_cpu_info();
  EXPECT_EQ(cpu.vendor, vendor);
  EXPECT_EQ(cpu.family, family);
  EXPECT_EQ(cpu.model, model);
  EXPECT_EQ(cpu.avx && cpu.os_saves_ymm, has("avx"));
  EXPECT_EQ(cpu.avx2 && cpu.os_saves_ymm, has("avx2"));
  EXPECT_EQ(cpu.fma && cpu.os_saves_ymm, has("fma"));
  EXPECT_EQ(cpu.avx512f && cpu.os_saves_zmm, has("avx512f"));
  EXPECT_EQ(cpu.avx512bw && cpu.os_saves_zmm, has("avx512bw"));
  EXPECT_EQ(cpu.avx512vl && cpu.os_saves_zmm, has("avx512vl"));
#else
  GTEST_SKIP() << "x86-64 only";
#endif
}

// Runs in every run of this binary, and alone in a re-executed copy (TestBinaryIsReexecutedWhenSimulated):
// the kernel OpenBLAS runs agrees with the environment, and the load-time hook left nothing to do.
TEST(BlasKernelProcess, RunningKernelMatchesEnvironment) {
  const BlasSituation s = current_blas_situation();
  if (!s.corename) GTEST_SKIP() << "the BLAS is not OpenBLAS";
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const char* selected = std::getenv("MERGESCOPE_BLAS_SELECTED");
  std::printf("running kernel: %s\nOPENBLAS_CORETYPE=%s\nMERGESCOPE_BLAS_SELECTED=%s\n", s.corename,
              coretype ? coretype : "(unset)", selected ? selected : "(unset)");
  if (s.selected_by_mergescope) EXPECT_STRCASEEQ(s.corename, coretype);
  const BlasDecision d = decide_blas_kernel(s, read_cpu_info());
  EXPECT_EQ(d.select, nullptr) << "the load-time hook should have selected " << d.select
                               << " and re-executed this process: is mergescope_blas_select_at_load linked in?";
}

// ---- end to end ------------------------------------------------------------------------------------------

namespace fs = std::filesystem;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

// Every variable the selection reads removed, so the tests start from a plain environment whatever ran them.
const std::string kCleanEnv =
    "env -u OPENBLAS_CORETYPE -u MERGESCOPE_BLAS_SELECTED -u MERGESCOPE_BLAS_REPLACED "
    "-u MERGESCOPE_BLAS_ASSUME_GENERIC ";
const std::string kSimulateUnknownCpu = "OPENBLAS_CORETYPE=Prescott MERGESCOPE_BLAS_ASSUME_GENERIC=1 ";

// The first line of `text` that starts with `prefix` ("" when none).
std::string line_starting(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return line;
  return "";
}

class BlasKernelEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    const BlasSituation s = current_blas_situation();
    if (!s.corename || !s.coretype_honoured) GTEST_SKIP() << "the BLAS is not a DYNAMIC_ARCH OpenBLAS";
    // What mergescope must choose here once OpenBLAS has fallen back to Prescott: the same pure function.
    BlasSituation fallback = openblas_running("Prescott");
    fallback.user_set_coretype = true;
    fallback.assume_generic = true;
    expected_ = decide_blas_kernel(fallback, read_cpu_info()).select;
    if (!expected_) GTEST_SKIP() << "this CPU has no kernel better than Prescott";
    cli_ = test::cli_path();
    ASSERT_TRUE(fs::exists(cli_)) << cli_ << " not built";
  }

  test::CommandResult version(const std::string& env) {
    return test::run_command(kCleanEnv + env + quote(cli_) + " --version");
  }

  const char* expected_ = nullptr;
  std::string cli_;
};

TEST_F(BlasKernelEndToEnd, SimulatedUnknownCpuGetsTheBestKernel) {
  const auto r = version(kSimulateUnknownCpu);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // the hook never prints
  EXPECT_NE(line_starting(r.out, "BLAS: OpenBLAS").find(std::string(" ") + expected_ + " "), std::string::npos)
      << r.out;
  EXPECT_EQ(line_starting(r.out, "BLAS kernel: "),
            std::string("BLAS kernel: ") + expected_ +
                ", chosen by mergescope: OpenBLAS picked Prescott on this CPU (" + describe_cpu(read_cpu_info()) +
                ") [simulated with MERGESCOPE_BLAS_ASSUME_GENERIC=1]")
      << r.out;
}

TEST_F(BlasKernelEndToEnd, UserCoretypeIsObeyed) {
  const auto r = version("OPENBLAS_CORETYPE=Prescott ");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(line_starting(r.out, "BLAS: OpenBLAS").find(" Prescott "), std::string::npos) << r.out;
  EXPECT_EQ(line_starting(r.out, "BLAS kernel: "), "BLAS kernel: Prescott, set by OPENBLAS_CORETYPE") << r.out;
}

TEST_F(BlasKernelEndToEnd, PlainRunSaysWhoChose) {
  const auto r = version("");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string line = line_starting(r.out, "BLAS kernel: ");
  // This machine's OpenBLAS may or may not know its CPU; either way the hook left nothing undone.
  EXPECT_TRUE(line.find(", detected by OpenBLAS") != std::string::npos ||
              line.find(", chosen by mergescope: ") != std::string::npos)
      << r.out;
  EXPECT_EQ(line.find("would select"), std::string::npos) << r.out;
}

TEST_F(BlasKernelEndToEnd, ReexecutesAtMostOnce) {
  // A process that looks like mergescope's re-exec (OPENBLAS_CORETYPE equals the marker) keeps its kernel,
  // even when the override calls that kernel a fallback.
  const auto guard = version(kSimulateUnknownCpu + "MERGESCOPE_BLAS_SELECTED=Prescott MERGESCOPE_BLAS_REPLACED=Core2 ");
  ASSERT_EQ(guard.exit_code, 0) << guard.err;
  EXPECT_NE(line_starting(guard.out, "BLAS: OpenBLAS").find(" Prescott "), std::string::npos) << guard.out;
  const std::string guard_line = line_starting(guard.out, "BLAS kernel: ");
  EXPECT_EQ(guard_line.rfind("BLAS kernel: Prescott, chosen by mergescope: OpenBLAS picked Core2", 0), 0u) << guard.out;

  // Counted: the simulated run executes the CLI once, then /proc/self/exe once.
  if (test::run_command("strace -V").exit_code != 0) GTEST_SKIP() << "no strace to count the execve calls";
  const std::string dir = test::make_temp_dir("ms_blas_strace");
  const std::string trace = dir + "/execve.txt";
  // LeakSanitizer cannot run under ptrace: a sanitizer build's CLI skips its leak check here (no-op otherwise).
  const auto r =
      test::run_command(kCleanEnv + kSimulateUnknownCpu + "ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 " +
                        "strace -f -qq -e trace=execve -o " + quote(trace) + " " + quote(cli_) + " --version");
  std::ifstream f(trace);
  std::string line;
  int execs = 0, reexecs = 0;
  while (std::getline(f, line)) {
    if (line.find("execve(") == std::string::npos || line.find("= 0") == std::string::npos) continue;
    ++execs;
    if (line.find("execve(\"/proc/self/exe\"") != std::string::npos) ++reexecs;
  }
  fs::remove_all(dir);
  if (r.exit_code != 0 && execs == 0) GTEST_SKIP() << "strace cannot trace here: " << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(execs, 2);
  EXPECT_EQ(reexecs, 1);
  EXPECT_NE(line_starting(r.out, "BLAS kernel: ").find(std::string(expected_) + ", chosen by mergescope"),
            std::string::npos)
      << r.out;
}

// The GoogleTest process itself is re-executed too (gtest_main has no idea): run this binary with only the
// process check, under the simulation, and read what it saw.
TEST_F(BlasKernelEndToEnd, TestBinaryIsReexecutedWhenSimulated) {
  char self[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof self - 1), 0);
  const auto r = test::run_command(kCleanEnv + kSimulateUnknownCpu + quote(self) +
                                   " --gtest_filter=BlasKernelProcess.RunningKernelMatchesEnvironment");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(std::string("running kernel: ") + expected_ + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::string("OPENBLAS_CORETYPE=") + expected_ + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::string("MERGESCOPE_BLAS_SELECTED=") + expected_ + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[  PASSED  ] 1 test."), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ms
