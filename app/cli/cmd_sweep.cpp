// mergescope-cli sweep plan|run|merge|slurm: sweeps over models x methods x image chunks, run as shards
// (analysis/sweep.h), merged into eval's and spectrum's tables and the accuracy-vs-GMACs figures.
#include "commands.h"
#include "error.h"
#include "labels.h"
#include "model.h"
#include "runtime.h"
#include "sweep.h"

#include <ATen/Parallel.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace ms::cli {
namespace {

namespace fs = std::filesystem;

std::string sweep_file_arg(const Args& args, const std::string& command) {
  if (args.positionals().size() != 1)
    fail("sweep " + command, "give one sweep file (usage: sweep " + command + " SWEEP.json ...)");
  return args.positionals()[0];
}

std::string out_dir(const Args& args, const SweepPlan& plan, const std::string& command) {
  const std::string out = args.get("out", plan.sweep.out);
  if (out.empty()) fail("sweep " + command, "--out DIR is required (or \"out\" in " + plan.sweep.path + ")");
  return out;
}

Labels sweep_labels(const SweepPlan& plan) {
  return plan.sweep.labels.empty() ? Labels::load_default() : Labels::load(plan.sweep.labels);
}

std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

int sweep_plan(const std::vector<std::string>& argv) {
  const Args args(argv, {"json"}, {"shards"});
  const SweepPlan plan = expand_sweep(read_sweep_file(sweep_file_arg(args, "plan")));
  const int n = args.get_int("shards", 0, 1, 1 << 20);
  if (args.flag("json")) {
    std::printf("{\"hash\": \"%s\", \"plan\": %s}\n", plan.hash.c_str(), plan.canonical.c_str());
    return 0;
  }
  const SweepFile& sw = plan.sweep;
  std::printf("sweep %s (%s), plan %s\n", sw.name.c_str(), sw.path.c_str(), plan.hash.c_str());
  for (const auto& m : plan.models)
    std::printf("  model %s: %zu method specs (%s)\n", m.name.c_str(), m.methods.size(), m.weights.c_str());
  std::printf(
      "  %zu images from %s in chunks of %d (random: one unit over all images), batch %d; analyses: accuracy%s\n",
      plan.images.size(), sw.image_folder.c_str(), sw.chunk, sw.batch, sw.spectrum ? ", spectrum" : "");
  std::printf("  %zu units\n\n", plan.units.size());
  std::printf("%6s %7s  %-42s %-36s %s\n", "unit", n ? "shard" : "", "model", "method", "images");
  for (const auto& u : plan.units) {
    char shard[32] = "";
    if (n) std::snprintf(shard, sizeof shard, "%d/%d", u.index % n, n);
    std::printf("%6d %7s  %-42s %-36s %d-%d\n", u.index, shard, plan.models[u.model].name.c_str(), u.method.c_str(),
                u.first, u.first + u.count - 1);
  }
  if (n) {
    std::printf("\n");
    for (int k = 0; k < n; ++k) {
      long images = 0;
      const auto ids = shard_units(plan, k, n);
      for (int i : ids) images += plan.units[i].count;
      std::printf("shard %d/%d: %zu units, %ld image passes\n", k, n, ids.size(), images);
    }
  }
  return 0;
}

// Temporaries a killed run of these units left behind (write_unit renames them into place when it finishes).
void remove_stale_temporaries(const std::string& out, const std::vector<int>& ids) {
  const fs::path dir = fs::path(out) / "units";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<std::string> prefixes;
  for (int i : ids) prefixes.push_back(fs::path(unit_path(out, i)).filename().string() + ".tmp.");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    for (const auto& p : prefixes)
      if (name.compare(0, p.size(), p) == 0) fs::remove(entry.path(), ec);
  }
}

int sweep_run(const std::vector<std::string>& argv) {
  const Args args(argv, {}, {"shard", "out", "threads"});
  const SweepPlan plan = expand_sweep(read_sweep_file(sweep_file_arg(args, "run")));
  if (!args.has("shard")) fail("sweep run", "--shard K/N is required (e.g. --shard 0/4)");
  const auto [k, n] = parse_shard(args.get("shard"), "--shard");
  const std::string out = out_dir(args, plan, "run");
  const Labels labels = sweep_labels(plan);
  init_runtime(args.get_int("threads", 0, 1, 1024));
  const int threads = at::get_num_threads();
  // A testing override (tests/test_sweep*): seconds to wait between units, so that a test can kill a shard
  // between two units.
  const char* pause_env = std::getenv("MERGESCOPE_SWEEP_UNIT_PAUSE");
  const double pause = pause_env ? std::atof(pause_env) : 0.0;

  const std::vector<int> ids = shard_units(plan, k, n);
  remove_stale_temporaries(out, ids);
  const std::string who = "shard " + std::to_string(k) + "/" + std::to_string(n);
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<const Model> model;
  int loaded = -1, ran = 0, skipped = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    const WorkUnit& u = plan.units[ids[j]];
    std::string problem;
    const UnitFileState state = inspect_unit(plan, u.index, out, nullptr, &problem);
    if (state == UnitFileState::Done) {
      ++skipped;
      continue;
    }
    if (state == UnitFileState::Foreign) fail(unit_path(out, u.index), problem + "; give this sweep its own --out");
    if (state == UnitFileState::Corrupt)
      std::fprintf(stderr, "%s: %s: %s; running the unit again\n", who.c_str(), unit_path(out, u.index).c_str(),
                   problem.c_str());
    if (ran > 0 && pause > 0) std::this_thread::sleep_for(std::chrono::duration<double>(pause));
    if (loaded != u.model) {
      model = Model::load(plan.models[u.model].name);
      loaded = u.model;
    }
    UnitResult r = run_unit(plan, u, *model, labels);
    r.shard = k;
    r.shards = n;
    r.threads = threads;
    r.host = host_name();
    write_unit(plan, r, out);
    ++ran;
    std::fprintf(stderr, "%s: unit %d (%zu of %zu): %s %s, images %d-%d: %.1f s, %.1f images/s\n", who.c_str(), u.index,
                 j + 1, ids.size(), plan.models[u.model].name.c_str(), u.method.c_str(), u.first, u.first + u.count - 1,
                 r.seconds, u.count / r.forward_seconds);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s of sweep %s (plan %s): %zu units, %d run, %d already done; %.1f s, %d thread(s)\n", who.c_str(),
              plan.sweep.name.c_str(), plan.hash.c_str(), ids.size(), ran, skipped, seconds, threads);
  return 0;
}

int sweep_merge(const std::vector<std::string>& argv) {
  const Args args(argv, {"per-image"}, {"out", "report", "shards"});
  const SweepPlan plan = expand_sweep(read_sweep_file(sweep_file_arg(args, "merge")));
  const std::string out = out_dir(args, plan, "merge");
  const MergedSweep merged = merge_sweep(plan, out, args.get_int("shards", 0, 1, 1 << 20));
  const std::string report = args.get("report", (fs::path(out) / "report").string());
  write_merged_report(plan, merged, report, sweep_labels(plan), args.flag("per-image"));
  std::fputs(format_merged_tables(plan, merged).c_str(), stdout);
  std::printf("\nwrote %s (tables.txt, summary.csv, figures%s)\n", report.c_str(),
              args.flag("per-image") ? ", per-image CSV and JSON" : "");
  return 0;
}

}  // namespace

int cmd_sweep(const std::vector<std::string>& argv) {
  if (argv.empty()) fail("sweep", "give plan, run, merge or slurm (see --help)");
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (argv[0] == "plan") return sweep_plan(rest);
  if (argv[0] == "run") return sweep_run(rest);
  if (argv[0] == "merge") return sweep_merge(rest);
  if (argv[0] == "slurm") return sweep_slurm(rest);
  fail("sweep " + excerpt(argv[0]), "unknown sweep command (plan, run, merge or slurm)");
}

}  // namespace ms::cli
