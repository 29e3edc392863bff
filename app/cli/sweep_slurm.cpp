// mergescope-cli sweep slurm: an sbatch job array with one task per shard, and a merge job that starts once
// every shard has succeeded (afterok). The scripts carry absolute paths and run in the directory they were
// written from, where the sweep file's relative paths point.
#include "commands.h"
#include "error.h"
#include "sweep.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace ms::cli {
namespace {

namespace fs = std::filesystem;

// sbatch reads #SBATCH lines without a shell and expands %-patterns in file names; the commands below quote
// with single quotes. Paths with these characters would need escaping rules that differ between the two.
void check_script_safe(const std::string& value, const std::string& what) {
  const std::string unsafe = " \t\n\r%'\"\\$`";
  const auto at = value.find_first_of(unsafe);
  if (at != std::string::npos)
    fail(what, "'" + excerpt(value, 80) + "' holds " +
                   (value[at] == ' ' ? std::string("a space") : "'" + excerpt(value.substr(at, 1)) + "'") +
                   ", which the sbatch scripts cannot carry");
}

void write_script(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) fail(path, "cannot open for writing");
  f << text;
  f.close();
  if (!f) fail(path, "write failed");
  chmod(path.c_str(), 0755);
}

}  // namespace

int sweep_slurm(const std::vector<std::string>& argv) {
  const Args args(argv, {}, {"shards", "out", "cpus-per-task", "time", "mem", "partition", "account"});
  if (args.positionals().size() != 1)
    fail("sweep slurm", "give one sweep file (usage: sweep slurm SWEEP.json --shards N ...)");
  const std::string file = args.positionals()[0];
  const SweepPlan plan = expand_sweep(read_sweep_file(file));
  if (!args.has("shards")) fail("sweep slurm", "--shards N is required (one array task per shard)");
  const int n = args.get_int("shards", 0, 1, 100000);
  if (n > static_cast<int>(plan.units.size()))
    fail("--shards", std::to_string(n) + " is more than the sweep's " + std::to_string(plan.units.size()) + " units");
  const int cpus = args.get_int("cpus-per-task", 1, 1, 1024);
  const std::string out = args.get("out", plan.sweep.out);
  if (out.empty()) fail("sweep slurm", "--out DIR is required (or \"out\" in " + file + ")");

  const std::string cwd = fs::current_path().string();
  const std::string abs_out = fs::absolute(out).lexically_normal().string();
  const std::string abs_file = fs::absolute(file).lexically_normal().string();
  std::error_code ec;
  const std::string exe = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) fail("/proc/self/exe", "cannot find this program's path: " + ec.message());
  check_script_safe(cwd, "the current directory");
  check_script_safe(abs_out, "--out");
  check_script_safe(abs_file, file);
  check_script_safe(exe, "mergescope-cli's path");
  std::string extra;
  for (const char* option : {"time", "mem", "partition", "account"})
    if (args.has(option)) {
      check_script_safe(args.get(option), std::string("--") + option);
      extra += std::string("#SBATCH --") + option + "=" + args.get(option) + "\n";
    }

  for (const char* sub : {"slurm", "logs"}) {
    fs::create_directories(fs::path(abs_out) / sub, ec);
    if (ec) fail(abs_out + "/" + sub, "cannot create folder: " + ec.message());
  }
  const std::string header = "# mergescope sweep '" + plan.sweep.name + "' (plan " + plan.hash +
                             "), written by `mergescope-cli sweep slurm`.\n";
  const std::string common = "#SBATCH --ntasks=1\n#SBATCH --chdir=" + cwd + "\n" + extra;
  const std::string shards_script =
      "#!/bin/bash\n" + header +
      "# One array task per shard; %a in the log name is the shard. A shard that is cancelled or\n" +
      "# fails keeps its finished units: submitting it again runs only the rest.\n" + "#SBATCH --job-name=ms-" +
      plan.sweep.name + "\n#SBATCH --array=0-" + std::to_string(n - 1) + "\n" +
      "#SBATCH --cpus-per-task=" + std::to_string(cpus) + "\n#SBATCH --output=" + abs_out + "/logs/shard-%a.%A.log\n" +
      common +
      "set -eu\n"
      "echo \"shard ${SLURM_ARRAY_TASK_ID}/" +
      std::to_string(n) +
      " on $(hostname), job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n"
      "exec '" +
      exe + "' sweep run '" + abs_file + "' --shard \"${SLURM_ARRAY_TASK_ID}/" + std::to_string(n) + "\" --out '" +
      abs_out + "' --threads \"${SLURM_CPUS_PER_TASK:-" + std::to_string(cpus) + "}\"\n";
  const std::string merge_script =
      "#!/bin/bash\n" + header +
      "# Submitted with --dependency=afterok:<array job>: it starts once every shard succeeded and is\n" +
      "# cancelled (kill-on-invalid-dep) when one failed.\n" + "#SBATCH --job-name=ms-" + plan.sweep.name +
      "-merge\n#SBATCH --cpus-per-task=1\n#SBATCH --kill-on-invalid-dep=yes\n" + "#SBATCH --output=" + abs_out +
      "/logs/merge.%j.log\n" + common + "set -eu\n" + "exec '" + exe + "' sweep merge '" + abs_file + "' --out '" +
      abs_out + "' --shards " + std::to_string(n) + "\n";
  const std::string shards_path = (fs::path(out) / "slurm" / "shards.sbatch").string();
  const std::string merge_path = (fs::path(out) / "slurm" / "merge.sbatch").string();
  write_script(shards_path, shards_script);
  write_script(merge_path, merge_script);

  std::printf("wrote %s (array of %d shards, %d CPU(s) each, %zu units) and %s (merge, after every shard succeeded)\n",
              shards_path.c_str(), n, cpus, plan.units.size(), merge_path.c_str());
  std::printf("submit both (the merge waits for the array):\n");
  std::printf("  jid=$(sbatch --parsable %s)\n", shards_path.c_str());
  std::printf("  sbatch --dependency=afterok:${jid%%%%;*} %s\n", merge_path.c_str());
  std::printf("logs: %s/logs/; to rerun failed shards: sbatch --array=K,... %s (done units are skipped)\n", out.c_str(),
              shards_path.c_str());
  return 0;
}

}  // namespace ms::cli
