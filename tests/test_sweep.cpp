// Sweeps without Slurm (analysis/sweep.h, `mergescope-cli sweep`): plan expansion (ranges, lists, pitome
// matched to ToMe's GMACs, per-model methods, chunks), the plan hash, sharding (every unit in exactly one
// shard), unit files (atomic, bit-exact round trip, corrupt and foreign files told apart), a shard killed
// between units resuming without redoing or losing work, merged tables and per-image results equal to one
// `eval` (and `spectrum`) process on the same images, the Slurm scripts' text, and bad input as one-line errors.
// The same binary holds the real-Slurm suite (test_sweep_slurm.cpp), run as its own CTest test.
#include "batch.h"
#include "error.h"
#include "evaluation.h"
#include "flops.h"
#include "io.h"
#include "reduce/reducer.h"
#include "sweep.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

// Helpers shared with test_sweep_slurm.cpp (declared there).
namespace ms::sweep_test {

namespace fs = std::filesystem;

const std::string kImages = "../shared/data/imagenet-sample";
const std::string kModel = "deit_tiny_patch16_224";

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

test::CommandResult cli(const std::string& args) { return test::run_command(quote(test::cli_path()) + " " + args); }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<std::string> accuracy_table(const std::string& out, const std::string& model_line) {
  std::vector<std::string> rows;
  std::istringstream in(out);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside) {
      inside = line == model_line;
      continue;
    }
    if (line.rfind("method ", 0) == 0) continue;
    if (line.empty() || line.rfind("model ", 0) == 0) break;
    std::istringstream fields(line);
    std::string method, top1, top5, gmacs;
    fields >> method >> top1 >> top5 >> gmacs;
    rows.push_back(method + " " + top1 + " " + top5 + " " + gmacs);
  }
  return rows;
}

// eval's paired comparison: from its "top-1 against" line to the next empty line or the end.
std::string paired_block(const std::string& out) {
  const size_t start = out.find("top-1 against ");
  if (start == std::string::npos) return "";
  const size_t end = out.find("\n\n", start);
  return out.substr(start, end == std::string::npos ? std::string::npos : end + 1 - start);
}

void expect_merge_equals_eval(const std::string& merge_out, const std::string& eval_out, const std::string& report_dir,
                              const std::string& model, const std::string& eval_csv,
                              const std::vector<std::string>& specs, int images) {
  // eval's first line names the model and the image count; the merged table must carry the same line.
  const std::string model_line = eval_out.substr(0, eval_out.find('\n'));
  ASSERT_EQ(model_line.rfind("model ", 0), 0u) << eval_out;
  const auto merged = accuracy_table(merge_out, model_line);
  EXPECT_EQ(merged.size(), specs.size()) << "merge output has no table for '" << model_line << "':\n" << merge_out;
  EXPECT_EQ(merged, accuracy_table(eval_out, model_line)) << "merge:\n" << merge_out << "\neval:\n" << eval_out;
  // The paired comparison below the table (two methods or more): the same lines from both.
  const std::string paired = paired_block(eval_out);
  EXPECT_EQ(paired.empty(), specs.size() < 2) << eval_out;
  EXPECT_NE(merge_out.find(paired), std::string::npos) << "merge:\n" << merge_out << "\neval:\n" << eval_out;
  for (const auto& spec : specs) {
    const std::string tag = spec_file_tag(spec);
    const std::string dot = eval_csv.substr(0, eval_csv.rfind('.'));
    const std::string from_eval = read_text(dot + "." + tag + ".csv");
    const std::string from_merge = read_text(report_dir + "/" + spec_file_tag(model) + "/" + tag + ".csv");
    EXPECT_FALSE(from_eval.empty()) << "eval wrote no CSV for " << spec;
    // Top-5 classes and probabilities of every image, in eval's order.
    EXPECT_EQ(from_merge, from_eval) << spec << ": per-image results differ from eval's";
    std::istringstream in(from_merge);
    std::string line;
    std::getline(in, line);
    std::set<std::string> files;
    int rows = 0;
    while (std::getline(in, line)) ++rows, files.insert(line.substr(0, line.find(',')));
    EXPECT_EQ(rows, images) << spec << ": every image once";
    EXPECT_EQ(static_cast<int>(files.size()), images) << spec << ": an image counted twice";
  }
}

}  // namespace ms::sweep_test

namespace ms {
namespace {

using namespace sweep_test;

std::string sweep_json(const std::string& name, const std::string& methods, int limit, int chunk, int batch,
                       const std::string& extra = "") {
  return "{\"name\": \"" + name + "\", \"models\": [\"" + kModel + "\"], \"images\": {\"folder\": \"" + kImages +
         "\", \"limit\": " + std::to_string(limit) + ", \"chunk\": " + std::to_string(chunk) +
         "}, \"batch\": " + std::to_string(batch) + extra + ", \"methods\": [" + methods + "]}";
}

class SweepTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = test::make_temp_dir("ms_sweep_"); }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::string dir_;
};
std::string SweepTest::dir_;

TEST_F(SweepTest, ExpandsRangesListsMatchesAndChunks) {
  const SweepFile sw = parse_sweep(
      sweep_json("expand",
                 "\"none\", {\"method\": \"tome\", \"r\": [8, 13, 16]}, {\"method\": \"pitome\", \"match\": \"tome\"},"
                 "{\"method\": \"pitome-code\", \"match\": \"tome:r=13\"}, {\"method\": \"random\", \"r\": {\"from\": "
                 "2, \"to\": 6, \"step\": 2}},"
                 "{\"method\": \"tome\", \"r\": 16, \"inflect\": [-1, 0.5]},"
                 "{\"method\": \"ltmp\", \"thresholds\": [\"docs/results/learned_thresholds/ltmp_t0.5.json\"], "
                 "\"models\": [\"" +
                     kModel + "\"]}",
                 10, 4, 2),
      "inline");
  const SweepPlan plan = expand_sweep(sw);
  ASSERT_EQ(plan.models.size(), 1u);
  // The keep ratios eval --match-flops gives at ToMe r = 8, 13, 16 on DeiT-Ti (README, "Accuracy of the reducers");
  // "match": "tome" takes every tome spec of the model, the inflected ones included (listed later in the file).
  const std::vector<std::string> expected = {"none",
                                             "tome:r=8",
                                             "tome:r=13",
                                             "tome:r=16",
                                             "pitome:ratio=0.9464",
                                             "pitome:ratio=0.9047",
                                             "pitome:ratio=0.8734",
                                             "pitome:ratio=0.7903",
                                             "pitome:ratio=0.9120",
                                             "pitome-code:ratio=0.9047",
                                             "random:r=2",
                                             "random:r=4",
                                             "random:r=6",
                                             "tome:r=16,inflect=-1",
                                             "tome:r=16,inflect=0.5",
                                             "ltmp:thresholds=docs/results/learned_thresholds/ltmp_t0.5.json"};
  EXPECT_EQ(plan.models[0].methods, expected);

  std::vector<std::string> images = list_images(kImages);
  images.resize(10);
  EXPECT_EQ(plan.images, images);
  // Chunks of 4 cut where eval's batches of 2 do; random is one unit over all images (its draws are sequential).
  size_t random_units = 0, other_units = 0;
  for (const auto& u : plan.units) {
    EXPECT_EQ(u.index, &u - plan.units.data());
    if (u.method.rfind("random:", 0) == 0) {
      ++random_units;
      EXPECT_EQ(u.first, 0);
      EXPECT_EQ(u.count, 10);
    } else {
      ++other_units;
      EXPECT_EQ(u.first % 4, 0);
      EXPECT_EQ(u.count, u.first == 8 ? 2 : 4);
    }
  }
  EXPECT_EQ(random_units, 3u);
  EXPECT_EQ(other_units, (expected.size() - 3) * 3);
}

TEST_F(SweepTest, PlanHashNamesWhatResultsDependOn) {
  const std::string methods = "\"none\", \"tome:r=8\"";
  const std::string base = sweep_json("hash", methods, 6, 2, 2);
  const std::string hash = expand_sweep(parse_sweep(base, "a")).hash;
  EXPECT_EQ(hash.size(), 16u);
  EXPECT_EQ(expand_sweep(parse_sweep(base, "b")).hash, hash) << "the file's path is not part of the plan";
  EXPECT_EQ(expand_sweep(parse_sweep(sweep_json("hash", methods, 6, 2, 2, ", \"out\": \"elsewhere\""), "c")).hash, hash)
      << "the output folder is not part of the plan";
  EXPECT_NE(expand_sweep(parse_sweep(sweep_json("hash", "\"none\", \"tome:r=9\"", 6, 2, 2), "d")).hash, hash);
  EXPECT_NE(expand_sweep(parse_sweep(sweep_json("hash", methods, 8, 2, 2), "e")).hash, hash);
  EXPECT_NE(expand_sweep(parse_sweep(sweep_json("hash", methods, 6, 6, 2), "f")).hash, hash);
  EXPECT_NE(expand_sweep(parse_sweep(sweep_json("hash", methods, 6, 2, 2, ", \"analyses\": [\"spectrum\"]"), "g")).hash,
            hash);
}

TEST_F(SweepTest, ShardsCoverEveryUnitExactlyOnce) {
  const SweepPlan plan =
      expand_sweep(parse_sweep(sweep_json("shards", "\"none\", \"tome:r=8\", \"random:r=8\"", 10, 2, 2), "inline"));
  const int units = static_cast<int>(plan.units.size());
  ASSERT_EQ(units, 11);
  for (int n = 1; n <= units + 2; ++n) {
    std::vector<int> seen(units, 0);
    size_t smallest = units, largest = 0;
    for (int k = 0; k < n; ++k) {
      const auto ids = shard_units(plan, k, n);
      smallest = std::min(smallest, ids.size());
      largest = std::max(largest, ids.size());
      for (int i : ids) {
        ASSERT_GE(i, 0);
        ASSERT_LT(i, units);
        ++seen[i];
      }
    }
    for (int i = 0; i < units; ++i) EXPECT_EQ(seen[i], 1) << "unit " << i << " with " << n << " shards";
    EXPECT_LE(largest - smallest, 1u) << n << " shards";
  }
}

TEST_F(SweepTest, ParsesShardKOfN) {
  EXPECT_EQ(parse_shard("0/4", "--shard"), std::make_pair(0, 4));
  EXPECT_EQ(parse_shard("3/4", "--shard"), std::make_pair(3, 4));
  for (const char* bad : {"4/4", "5/4", "-1/4", "1/0", "1", "a/b", "1/4x", "/4", ""}) {
    try {
      parse_shard(bad, "--shard");
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--shard: ", 0), 0u) << e.what();
    }
  }
}

TEST_F(SweepTest, UnitFilesRoundTripExactlyAndTellCorruptFromForeign) {
  const SweepPlan plan = expand_sweep(parse_sweep(
      sweep_json("files", "\"none\", \"tome:r=8\"", 4, 2, 2, ", \"analyses\": [\"accuracy\", \"spectrum\"]"), "x"));
  const std::string out = path("files");
  UnitResult r;
  r.unit = 3;
  r.shard = 1;
  r.shards = 2;
  r.threads = 1;
  r.host = "h";
  r.seconds = 1.25;
  r.forward_seconds = 0.5;
  for (int i = 0; i < 2; ++i) {
    UnitImage im;
    im.index = 2 + i;
    im.label = 7;
    im.prediction.classes = {7, 1, 2, 3, 999};
    im.prediction.probs = {0.7312345f, 1e-7f, 3.3333333e-2f, 0.1f + i, 0.0f};
    im.prediction.probs[3] = 0.01f;
    im.macs = 928576512.0 + i;
    for (int l = 0; l < 12; ++l) {
      im.sd_theorem.push_back(l == 5 ? std::nan("") : 0.1 * l + 1e-17 * i);
      im.sd_layer.push_back(std::sqrt(l + 0.5));
    }
    r.images.push_back(im);
  }
  write_unit(plan, r, out);
  const std::string file = unit_path(out, 3);
  for (const auto& e : fs::directory_iterator(fs::path(file).parent_path()))
    EXPECT_EQ(e.path().string(), file) << "a temporary file was left behind";

  UnitResult back;
  std::string problem;
  ASSERT_EQ(inspect_unit(plan, 3, out, &back, &problem), UnitFileState::Done) << problem;
  ASSERT_EQ(back.images.size(), 2u);
  EXPECT_EQ(back.shard, 1);
  EXPECT_EQ(back.shards, 2);
  EXPECT_EQ(back.forward_seconds, 0.5);
  for (int i = 0; i < 2; ++i) {
    const UnitImage &a = r.images[i], &b = back.images[i];
    EXPECT_EQ(b.index, a.index);
    EXPECT_EQ(b.prediction.classes, a.prediction.classes);
    EXPECT_EQ(0, std::memcmp(b.prediction.probs.data(), a.prediction.probs.data(), 5 * sizeof(float)))
        << "probabilities not bit-exact";
    EXPECT_EQ(b.macs, a.macs);
    for (int l = 0; l < 12; ++l) {
      if (std::isnan(a.sd_theorem[l]))
        EXPECT_TRUE(std::isnan(b.sd_theorem[l]));
      else
        EXPECT_EQ(b.sd_theorem[l], a.sd_theorem[l]);
      EXPECT_EQ(b.sd_layer[l], a.sd_layer[l]);
    }
  }
  EXPECT_EQ(inspect_unit(plan, 2, out), UnitFileState::Missing);

  const std::string good = read_text(file);
  auto state_of = [&](const std::string& text) {
    write_text(file, text);
    return inspect_unit(plan, 3, out, nullptr, &problem);
  };
  EXPECT_EQ(state_of(good.substr(0, good.size() / 2)), UnitFileState::Corrupt);
  EXPECT_EQ(state_of(good.substr(0, good.rfind("{\"end\""))), UnitFileState::Corrupt) << "no end line";
  EXPECT_NE(problem.find("end line"), std::string::npos) << problem;
  EXPECT_EQ(state_of(good + "{}\n"), UnitFileState::Corrupt) << "text after the end line";
  EXPECT_EQ(state_of(""), UnitFileState::Corrupt);
  std::string other = good;
  other.replace(other.find(plan.hash), plan.hash.size(), "0123456789abcdef");
  EXPECT_EQ(state_of(other), UnitFileState::Foreign);
  EXPECT_NE(problem.find("another sweep"), std::string::npos) << problem;
  std::string moved = good;
  moved.replace(moved.find("\"unit\":3"), 8, "\"unit\":1");
  EXPECT_EQ(state_of(moved), UnitFileState::Foreign);
  std::string bad_class = good;
  bad_class.replace(bad_class.find("999"), 3, "1000");
  EXPECT_EQ(state_of(bad_class), UnitFileState::Corrupt);
  EXPECT_NE(problem.find("line 2"), std::string::npos) << problem;
}

// Two shards side by side, merged, against one eval process on the same images, batch and threads.
TEST_F(SweepTest, MergeEqualsEval) {
  const std::string file = path("merge.json"), out = path("merge_out");
  write_text(
      file, sweep_json("merge", "\"none\", \"tome:r=8\", {\"method\": \"pitome\", \"match\": \"tome\"}, \"random:r=8\"",
                       6, 2, 2));
  const std::string run =
      quote(test::cli_path()) + " sweep run " + quote(file) + " --out " + quote(out) + " --threads 1 --shard ";
  const auto shards = test::run_command(run + "0/2 & pid=$!; " + run + "1/2; b=$?; wait $pid; exit $(($? | b))");
  ASSERT_EQ(shards.exit_code, 0) << shards.err;
  const auto merged = cli("sweep merge " + quote(file) + " --out " + quote(out) + " --per-image");
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const std::string csv = path("eval.csv");
  const auto eval = cli("eval --model " + kModel + " --images " + kImages +
                        " --limit 6 --batch 2 --threads 1 --method tome:r=8 --method pitome --match-flops tome:r=8 "
                        "--method random:r=8 --csv " +
                        quote(csv));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  expect_merge_equals_eval(merged.out, eval.out, out + "/report", kModel, csv,
                           {"none", "tome:r=8", "pitome:ratio=0.9464", "random:r=8"}, 6);
  for (const char* figure : {"top1_vs_gmacs_", "speed_vs_gmacs_"})
    for (const char* ext : {".svg", ".png"})
      EXPECT_TRUE(fs::exists(out + "/report/" + figure + kModel + ext)) << figure << ext;
  // The legend names each family and what varies in it.
  const std::string svg = read_text(out + "/report/top1_vs_gmacs_" + kModel + ".svg");
  for (const char* label : {"no reduction", "ToMe, r = 8", "PiToMe (paper) at ToMe", "random merging, r = 8"})
    EXPECT_NE(svg.find(label), std::string::npos) << "legend entry '" << label << "' missing";
  EXPECT_EQ(read_text(out + "/report/tables.txt") + "\nwrote " + out +
                "/report (tables.txt, summary.csv, figures, per-image CSV and JSON)\n",
            merged.out);
}

TEST_F(SweepTest, SpectrumSweepEqualsSpectrum) {
  const std::string file = path("spectrum.json"), out = path("spectrum_out");
  const std::string ltmp = "ltmp:thresholds=docs/results/learned_thresholds/ltmp_t0.5.json";
  write_text(file, sweep_json("spectrum", "\"none\", \"tome:r=8\", \"" + ltmp + "\"", 2, 2, 2,
                              ", \"analyses\": [\"spectrum\"]"));
  ASSERT_EQ(cli("sweep run " + quote(file) + " --shard 0/1 --out " + quote(out) + " --threads 1").exit_code, 0);
  const auto merged = cli("sweep merge " + quote(file) + " --out " + quote(out));
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const auto spectrum =
      cli("spectrum --model " + kModel +
          " --limit 2 --batch 2 --threads 1 --no-baselines --method none --method tome:r=8 --method " + ltmp + " " +
          kImages + " --out " + quote(path("spectrum_cmd")));
  ASSERT_EQ(spectrum.exit_code, 0) << spectrum.err;
  // spectrum's first five lines: the model line, the header and one row per method.
  std::istringstream in(spectrum.out);
  std::string line;
  for (int i = 0; i < 5 && std::getline(in, line); ++i)
    EXPECT_NE(merged.out.find(line + "\n"), std::string::npos) << "merge lacks: " << line;
  EXPECT_TRUE(fs::exists(out + "/report/sd_vs_gmacs_" + kModel + ".png"));
}

// A shard killed between two units (as scancel or a node failure would) keeps the finished one; run again,
// it runs only the rest, and the merge has every image once.
TEST_F(SweepTest, KilledShardResumesWithoutRedoingOrLosingUnits) {
  const std::string file = path("resume.json"), out = path("resume_out");
  write_text(file, sweep_json("resume", "\"none\", \"tome:r=8\"", 4, 2, 2));
  const std::string first = unit_path(out, 0);
  const auto killed = test::run_command("MERGESCOPE_SWEEP_UNIT_PAUSE=60 " + quote(test::cli_path()) + " sweep run " +
                                        quote(file) + " --shard 0/1 --out " + quote(out) +
                                        " --threads 1 & pid=$!; "
                                        "for i in $(seq 600); do [ -e " +
                                        quote(first) +
                                        " ] && break; sleep 0.1; done; "
                                        "kill -9 $pid; wait $pid; exit 0");
  ASSERT_EQ(killed.exit_code, 0) << killed.err;
  ASSERT_TRUE(fs::exists(first)) << killed.err;
  for (int u = 1; u < 4; ++u) EXPECT_FALSE(fs::exists(unit_path(out, u))) << "unit " << u << " should not have run";
  const std::string merge = "sweep merge " + quote(file) + " --out " + quote(out);
  const auto incomplete = cli(merge);
  EXPECT_EQ(incomplete.exit_code, 1);
  EXPECT_NE(incomplete.err.find("incomplete sweep: 3 of 4 units missing: shard 0/1 (units 1, 2, 3)"), std::string::npos)
      << incomplete.err;

  struct stat before {};
  ASSERT_EQ(stat(first.c_str(), &before), 0);
  const auto resumed = cli("sweep run " + quote(file) + " --shard 0/1 --out " + quote(out) + " --threads 1");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("4 units, 3 run, 1 already done"), std::string::npos) << resumed.out;
  struct stat after {};
  ASSERT_EQ(stat(first.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the finished unit was written again";
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  const auto again = cli("sweep run " + quote(file) + " --shard 0/1 --out " + quote(out) + " --threads 1");
  EXPECT_NE(again.out.find("4 units, 0 run, 4 already done"), std::string::npos) << again.out;

  const auto merged = cli(merge + " --per-image");
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const std::string csv = path("resume_eval.csv");
  const auto eval = cli("eval --model " + kModel + " --images " + kImages +
                        " --limit 4 --batch 2 --threads 1 --method tome:r=8 --csv " + quote(csv));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  expect_merge_equals_eval(merged.out, eval.out, out + "/report", kModel, csv, {"none", "tome:r=8"}, 4);
}

TEST_F(SweepTest, SlurmScriptsRunShardsAsAnArrayAndMergeAfterThem) {
  const std::string file = path("slurm.json"), out = path("slurm_out");
  write_text(file, sweep_json("slurm", "\"none\", \"tome:r=8\"", 8, 2, 2));
  const auto r =
      cli("sweep slurm " + quote(file) + " --shards 4 --cpus-per-task 3 --time 01:00:00 --out " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string shards = read_text(out + "/slurm/shards.sbatch"), merge = read_text(out + "/slurm/merge.sbatch");
  for (const std::string& want :
       {std::string("#SBATCH --array=0-3\n"), std::string("#SBATCH --cpus-per-task=3\n"),
        "#SBATCH --output=" + out + "/logs/shard-%a.%A.log\n", std::string("#SBATCH --time=01:00:00\n"),
        "#SBATCH --chdir=" + fs::current_path().string() + "\n", std::string("--shard \"${SLURM_ARRAY_TASK_ID}/4\""),
        std::string("--threads \"${SLURM_CPUS_PER_TASK:-3}\"")})
    EXPECT_NE(shards.find(want), std::string::npos) << "shards.sbatch lacks " << want << "\n" << shards;
  for (const std::string& want :
       {std::string("#SBATCH --kill-on-invalid-dep=yes\n"), std::string("sweep merge "), std::string("--shards 4\n")})
    EXPECT_NE(merge.find(want), std::string::npos) << "merge.sbatch lacks " << want << "\n" << merge;
  EXPECT_NE(r.out.find("  jid=$(sbatch --parsable " + out + "/slurm/shards.sbatch)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  sbatch --dependency=afterok:${jid%%;*} " + out + "/slurm/merge.sbatch\n"), std::string::npos)
      << r.out;
}

// ---- bad input: exit status 1, nothing on stdout, one line on stderr naming the file or option ----------

void expect_one_line_error(const test::CommandResult& r, const std::string& names, const std::string& problem) {
  SCOPED_TRACE("stderr: " + r.err);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr is not one line";
  EXPECT_EQ(r.err.rfind("mergescope-cli: error: ", 0), 0u);
  EXPECT_NE(r.err.find(names), std::string::npos) << "does not name " << names;
  EXPECT_NE(r.err.find(problem), std::string::npos) << "does not say " << problem;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(SweepTest, BadSweepFiles) {
  struct Case {
    std::string text, names, problem;
  };
  const std::string f = path("bad.json");
  const std::vector<Case> cases = {
      {sweep_json("b", "\"none\", {\"method\": \"tomee\", \"r\": 8}", 4, 2, 2), "methods[1]", "unknown method 'tomee'"},
      {sweep_json("b", "\"none\", \"tome:r=8,speed=2\"", 4, 2, 2), "methods[1]", "speed"},
      {sweep_json("b", "\"ltmp:thresholds=no_such_file.json\"", 4, 2, 2), "no_such_file.json", "cannot open"},
      {sweep_json("b", "\"none\"", 4, 3, 2), "images.chunk", "not a multiple of batch 2"},
      {sweep_json("b", "{\"method\": \"random\", \"match\": \"tome\"}", 4, 2, 2), "methods[0].match",
       "only tome, pitome"},
      {sweep_json("b", "{\"method\": \"pitome\", \"match\": \"tome\"}", 4, 2, 2), "methods[0].match",
       "no 'tome' method"},
      {sweep_json("b", "\"tome:r=8\", \"tome:r=8\"", 4, 2, 2), "methods[1]", "already in the sweep"},
      {sweep_json("b", "{\"method\": \"tome\", \"r\": {\"from\": 2, \"to\": 1, \"step\": 1}}", 4, 2, 2), "methods[0].r",
       "below"},
      {sweep_json("b c", "\"none\"", 4, 2, 2), "name", "letters"},
      {"{\"name\": \"b\", \"models\": [\"" + kModel + "\"], \"images\": \"" + kImages +
           "\", \"methods\": [\"none\"], \"shards\": 4}",
       "shards", "unknown key"},
      {"{\"name\": \"b\", \"models\": [\"no_such_model\"], \"images\": \"" + kImages + "\", \"methods\": [\"none\"]}",
       "no_such_model", "not found"},
      {"{\"name\": \"b\", \"models\": [\"" + kModel + "\"], \"images\": \"" + path("no_such_folder") +
           "\", \"methods\": [\"none\"]}",
       path("no_such_folder"), "image folder not found"},
      {"{\"name\": \"b\", ", f, "not valid JSON"},
      {"[1, 2]", f, "expected a JSON object"},
      // Both tiny models have 12 blocks; a threshold file calibrated on the other one is refused all the same.
      {"{\"name\": \"b\", \"models\": [\"vit_tiny_patch16_224.augreg_in21k_ft_in1k\"], \"images\": \"" + kImages +
           "\", \"methods\": [\"ltmp:thresholds=docs/results/learned_thresholds/ltmp_t0.75.json\"]}",
       "methods[0]", "calibrated on ../shared/models/deit_tiny_patch16_224"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    write_text(f, c.text);
    expect_one_line_error(cli("sweep plan " + quote(f)), c.names, c.problem);
  }
  expect_one_line_error(cli("sweep plan " + quote(path("missing.json"))), path("missing.json"), "cannot open");
}

TEST_F(SweepTest, BadShardsAndOptions) {
  const std::string f = path("opts.json"), out = path("opts_out");
  write_text(f, sweep_json("opts", "\"none\"", 4, 2, 2));
  expect_one_line_error(cli("sweep run " + quote(f) + " --shard 4/4 --out " + quote(out)), "--shard",
                        "K must be in 0..3");
  expect_one_line_error(cli("sweep run " + quote(f) + " --shard 1 --out " + quote(out)), "--shard", "not K/N");
  expect_one_line_error(cli("sweep run " + quote(f) + " --out " + quote(out)), "sweep run", "--shard K/N is required");
  expect_one_line_error(cli("sweep run " + quote(f) + " --shard 0/1"), "sweep run", "--out DIR is required");
  expect_one_line_error(cli("sweep slurm " + quote(f) + " --shards 3 --out " + quote(out)), "--shards",
                        "more than the sweep's 2 units");
  expect_one_line_error(cli("sweep frobnicate " + quote(f)), "sweep frobnicate", "unknown sweep command");
  expect_one_line_error(cli("sweep merge " + quote(f) + " --out " + quote(out)), out, "no unit is done yet");
}

// Shard files at merge: a corrupt one, one of another sweep, one past the plan, missing shards.
TEST_F(SweepTest, MergeRefusesCorruptForeignAndIncompleteShards) {
  const std::string f = path("m.json"), other = path("m_other.json"), out = path("m_out"),
                    other_out = path("m_other_out");
  write_text(f, sweep_json("m", "\"none\", \"tome:r=8\"", 4, 2, 2));
  write_text(other, sweep_json("m", "\"none\", \"tome:r=9\"", 4, 2, 2));
  ASSERT_EQ(cli("sweep run " + quote(f) + " --shard 0/1 --out " + quote(out) + " --threads 1").exit_code, 0);
  ASSERT_EQ(cli("sweep run " + quote(other) + " --shard 0/1 --out " + quote(other_out) + " --threads 1").exit_code, 0);
  const std::string merge = "sweep merge " + quote(f) + " --out " + quote(out);
  ASSERT_EQ(cli(merge).exit_code, 0);

  const std::string u2 = unit_path(out, 2), good = read_text(u2);
  write_text(u2, good.substr(0, good.size() / 2));
  expect_one_line_error(cli(merge), u2, "corrupt unit file: line ");
  write_text(u2, "not json at all\n");
  expect_one_line_error(cli(merge), u2, "not JSON");

  write_text(u2, read_text(unit_path(other_out, 2)));
  expect_one_line_error(cli(merge), u2, "belongs to another sweep");
  // A run refuses to overwrite another sweep's results.
  expect_one_line_error(cli("sweep run " + quote(f) + " --shard 0/1 --out " + quote(out)), u2, "another sweep");
  write_text(u2, good);

  const std::string past = unit_path(out, 7);
  write_text(past, read_text(unit_path(other_out, 1)));
  expect_one_line_error(cli(merge), past, "is not a unit of this sweep");
  fs::remove(past);

  fs::remove(unit_path(out, 1));
  fs::remove(unit_path(out, 3));
  expect_one_line_error(cli(merge + " --shards 2"), out,
                        "incomplete sweep: 2 of 4 units missing: shard 1/2 (units 1, 3)");
  expect_one_line_error(cli(merge + " --shards 4"), out, "shards 1/4 (unit 1), 3/4 (unit 3)");
}

}  // namespace
}  // namespace ms
