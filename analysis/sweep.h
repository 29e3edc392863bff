// Sweeps: one JSON file names models, methods with their strengths, an image folder and the analyses; it
// expands into work units (model x method spec x image chunk) that shards run independently (a Slurm job
// array, or processes side by side). Every unit's per-image results go to their own JSONL file, written
// atomically, so a killed shard resumes where it stopped; merging reads them all back into the tables
// `eval` and `spectrum` print and into the accuracy-vs-GMACs figures.
//
// Relative paths in a sweep file (image folder, labels, threshold files, model folders) are relative to the
// directory the CLI runs in, as on its command line; the Slurm scripts run in the directory they were made in.
#pragma once

#include "config.h"
#include "evaluation.h"
#include "spectral_report.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ms {

class Labels;
class Model;

// One entry of a sweep file's "methods" list, before expansion.
struct SweepMethodRule {
  std::string where;   // "methods[3]", for messages
  std::string spec;    // a whole spec string ("none", "tome:r=13"); empty for an object entry
  std::string method;  // object entries: the method name ("tome")
  // Object entries: each key with its values; every combination becomes one spec (first key outermost).
  std::vector<std::pair<std::string, std::vector<std::string>>> keys;
  std::string match;                // pitome/pitome-code: a method name or spec whose GMACs each row takes
  std::vector<std::string> models;  // only these models (empty: all)
};

struct SweepFile {
  std::string path;  // where it was read from (messages)
  std::string name;  // [A-Za-z0-9._-]+, names jobs and every unit file
  std::vector<std::string> models;
  std::vector<SweepMethodRule> methods;
  std::string image_folder;
  int offset = 0, limit = 0;  // as eval's --offset/--limit (limit 0: all)
  int chunk = 256;            // images per unit (default 8 batches); a multiple of batch so batches are eval's
  int batch = 32;
  std::string labels;  // empty: synset_words.txt on the data search path
  bool spectrum = false;
  std::string kernel = "one-minus-cos";
  double sigma = 0.5;
  std::string out;  // default results folder (empty: give --out)
};

// Parses a sweep file; throws ms::Error("<path>: <key>: <problem>") for bad JSON, unknown keys, bad values.
SweepFile read_sweep_file(const std::string& path);
SweepFile parse_sweep(const std::string& text, const std::string& source);

struct SweepModel {
  std::string name;     // as the sweep file writes it
  std::string weights;  // the weights file it resolves to (what eval prints as the model)
  VitConfig config;
  std::vector<std::string> methods;  // expanded specs, in the sweep file's order
};

struct WorkUnit {
  int index = 0;
  int model = 0;  // into SweepPlan::models
  std::string method;
  int first = 0, count = 0;  // images [first, first + count) of SweepPlan::images
};

struct SweepPlan {
  SweepFile sweep;
  std::vector<std::string> images;  // the image files in eval's order (sorted, after offset and limit)
  std::vector<SweepModel> models;
  std::vector<WorkUnit> units;  // model-major, then method, then chunk
  std::string canonical;        // everything results depend on, as JSON text
  std::string hash;             // 16 hex digits of FNV-1a 64 over `canonical`: names the plan, not a signature
  int chunks() const;           // chunks of a chunked method
};

// Expands a sweep: finds each model's config (weights are not read), builds every method spec (ranges,
// lists, pitome matched to another method's GMACs), checks each spec, lists the images and cuts the chunks.
// Methods that draw random numbers in sequence (`random`) get one unit over all images, so they draw what
// eval draws. Throws ms::Error naming the sweep file, key and problem (also for a threshold file whose recorded
// model is not the one its rule applies to).
SweepPlan expand_sweep(const SweepFile& sweep);

// Parses "K/N" with 0 <= K < N; throws ms::Error naming `option` otherwise.
std::pair<int, int> parse_shard(const std::string& text, const std::string& option);

// The units shard k of n runs: index % n == k. Round robin, so every shard mixes cheap and costly methods.
std::vector<int> shard_units(const SweepPlan& plan, int k, int n);

// One image of a unit.
struct UnitImage {
  int index = 0;  // into SweepPlan::images
  int label = -1;
  Prediction prediction;                     // top-5
  double macs = 0;                           // this image's MACs (integer-valued)
  std::vector<double> sd_theorem, sd_layer;  // per block, when the sweep asks for the spectrum
};

struct UnitResult {
  int unit = 0;
  int shard = 0, shards = 1;  // who wrote it
  int threads = 0;
  std::string host;
  double seconds = 0;          // the whole unit: decoding, forwards, spectra
  double forward_seconds = 0;  // forward passes only (eval's images/s)
  std::vector<UnitImage> images;
};

// Runs one unit on its model (loaded from plan.models[unit.model]) in batches of the sweep's batch size.
UnitResult run_unit(const SweepPlan& plan, const WorkUnit& unit, const Model& model, const Labels& labels);

// OUT/units/u00012.jsonl
std::string unit_path(const std::string& out, int unit);

// Writes the unit's JSONL (a header naming the sweep, plan hash, unit and shard; one line per image; an end
// line) to a temporary file in the same folder, flushes it to disk and renames it into place: a unit file
// is complete or absent.
void write_unit(const SweepPlan& plan, const UnitResult& result, const std::string& out);

enum class UnitFileState { Missing, Done, Foreign, Corrupt };

// What is at unit_path(out, unit): Done (read into *result when given), Foreign (another sweep's plan or
// another unit), Corrupt (with the reason in *problem, "line N: ..."), or Missing.
UnitFileState inspect_unit(const SweepPlan& plan, int unit, const std::string& out, UnitResult* result = nullptr,
                           std::string* problem = nullptr);

// Every method of one model, merged over its units.
struct MergedMethod {
  MethodTotals totals;
  std::vector<ImageResult> results;               // image order
  std::vector<RunningStat> sd_theorem, sd_layer;  // per block (spectrum sweeps)
};

struct MergedModel {
  const SweepModel* model = nullptr;
  std::vector<MergedMethod> methods;  // the model's specs, in order
};

struct MergedSweep {
  std::vector<MergedModel> models;
  std::vector<int> threads;  // thread counts the units ran with (ascending, distinct)
  double unit_seconds = 0;   // summed over units (wall time of the work, not of the sweep)
};

// Reads every unit of the plan from `out`. Throws ms::Error naming the file when one is corrupt or belongs
// to another sweep, and naming the missing shards (of `shards`, or of the count the unit files record when
// 0) and units when some are missing.
MergedSweep merge_sweep(const SweepPlan& plan, const std::string& out, int shards = 0);

// The tables `eval` prints (and, for spectrum sweeps, those `spectrum --no-baselines` prints), per model.
std::string format_merged_tables(const SweepPlan& plan, const MergedSweep& merged);

// Writes into `dir`: tables.txt, summary.csv, and per model the figures top-1 vs GMACs, images/s vs GMACs
// and (spectrum sweeps) SD vs GMACs through save_figure; with `per_image`, eval's per-image CSV and JSON of
// every method under <model>/.
void write_merged_report(const SweepPlan& plan, const MergedSweep& merged, const std::string& dir, const Labels& labels,
                         bool per_image);

}  // namespace ms
