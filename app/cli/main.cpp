// mergescope-cli: every analysis of mergescope without a window.
#include "commands.h"
#include "error.h"
#include "reduce/reducer.h"
#include "runtime.h"

#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

namespace {

const char* kUsage =
    "usage: mergescope-cli COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  classify --model M [--labels FILE] IMAGE...      top-5 classes of each image\n"
    "  eval --model M --images DIR [--batch B] [--csv F] [--json F] [--offset N] [--limit N] [--paired-against SPEC]\n"
    "                                                    top-1/top-5 over images named <wnid>_*.JPEG\n"
    "  bench --model M | --random-weights ARCH [--batch B] [--warmup W] [--repeat R] [--json]\n"
    "                                                    images/s: methods take turns in R timed rounds after W "
    "warm-ups; medians\n"
    "  trace --model M --method SPEC IMAGE --out F.json [--keys]\n"
    "                                                    per-layer tokens, clusters, sizes, PiToMe energies, margins\n"
    "  compare --model M --reference FILE [--method SPEC] [--setting NAME] [--images DIR] [--tolerance T]\n"
    "  compare --model M --dtype bf16 --against fp32 --method SPEC --images DIR [--offset N] [--limit N]\n"
    "                                                    partitions vs a reference implementation's (golden layout);\n"
    "                                                    near-ties (decision margin < T, default 2e-4) counted apart;\n"
    "                                                    both top-1s on labelled images, paired\n"
    "  spectrum --model M --method SPEC [--method ...] IMAGE|DIR --out DIR [--kernel "
    "one-minus-cos|clipped-cos|gaussian]\n"
    "           [--layer L] [--limit N] [--no-baselines]  Laplacian spectra of merged token graphs, energies, plots\n"
    "  calibrate --model M --method ltmp|ltp --images DIR --out F.json [--target-macs R] [--distill]\n"
    "           [--offset N] [--limit N] [--epochs E] [--batch B] [--seed S] [--lambda X] [--lr-merge X] [--lr-prune "
    "X]\n"
    "           [--mask ste|soft] [--tau-merge T] [--tau-prune T]\n"
    "                                                    learn LTMP/LTP thresholds (frozen model, CPU autograd)\n"
    "  sweep plan|run|merge|slurm SWEEP.json            sweeps of models x methods x image chunks, run as shards:\n"
    "           plan [--shards N] [--json]                the work units (and which shard runs each)\n"
    "           run --shard K/N [--out DIR] [--threads T] one shard (K from 0); finished units are skipped\n"
    "           merge [--out DIR] [--report DIR] [--shards N] [--per-image]\n"
    "                                                    eval's (and spectrum's) tables, top-1/SD/speed vs GMACs "
    "figures\n"
    "           slurm --shards N [--out DIR] [--cpus-per-task C] [--time T] [--mem M] [--partition P] [--account A]\n"
    "                                                    sbatch scripts: a job array and a merge that waits for it\n"
    "  methods                                           the token reducers and their keys\n"
    "\n"
    "eval and bench take repeated --method SPEC (none, tome:r=13, tome:r=16,inflect=-1, tome:r=8,prop_attn=0,\n"
    "pitome:ratio=0.9, pitome-code:ratio=0.9, random:r=13, ltmp:thresholds=F, ltp:thresholds=F, tofu:ratio=0.9,\n"
    "mctf:r=16, dct:ratio=0.9, diffrate:ratio=0.9, evit:keep=0.7; `methods` lists every key) and print one row per\n"
    "method; a bare tome, pitome, pitome-code, tofu, mctf, dct, diffrate or evit with --match-macs SPEC gets the r,\n"
    "keep ratio or keep rate whose GMACs come closest to SPEC's; --match-gmacs G matches a given GMACs figure instead "
    "(e.g. an ltmp run's mean).\n"
    "eval --offset N skips the first N images (sorted by name), --limit N keeps N after that. With two methods or\n"
    "more, eval prints each one's top-1 paired against the first (or --paired-against SPEC): the difference, its 95%\n"
    "interval and McNemar's p on the same images. A method given twice is an error. Blocks are numbered from 0; "
    "spectrum --layer L means the partition after block L.\n"
    "  --version                                         LibTorch, BLAS and thread count\n"
    "\n"
    "model options (all commands):\n"
    "  --model M            a model folder (config.json + model.safetensors), a weights file, or a name\n"
    "                       looked up in $MERGESCOPE_MODELS, ./models, ../shared/models\n"
    "  --arch NAME          architecture for a weights file without config.json (e.g. deit_small_patch16_224)\n"
    "  --random-weights ARCH  timm shapes with random weights (bench)\n"
    "  --threads T          intra-op threads (default: all cores)\n"
    "  --img-size S         run at another input size (position embedding resampled)\n"
    "  --device cpu|cuda    cuda needs a CUDA LibTorch; this build says if it has none\n"
    "  --dtype fp32|bf16    compute precision (default fp32, the reference); bf16: linear layers and attention\n"
    "                       products in bf16, reducers on fp32 inputs (README, Precision); not for calibrate\n";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (command == "--version" || command == "version") {
      ms::init_runtime();
      std::fputs(ms::version_report().c_str(), stdout);
      return 0;
    }
    if (command == "classify") return ms::cli::cmd_classify(rest);
    if (command == "eval") return ms::cli::cmd_eval(rest);
    if (command == "bench") return ms::cli::cmd_bench(rest);
    if (command == "trace") return ms::cli::cmd_trace(rest);
    if (command == "compare") return ms::cli::cmd_compare(rest);
    if (command == "spectrum") return ms::cli::cmd_spectrum(rest);
    if (command == "calibrate") return ms::cli::cmd_calibrate(rest);
    if (command == "sweep") return ms::cli::cmd_sweep(rest);
    if (command == "methods") {
      for (const auto& [name, text] : ms::reducer_methods()) std::printf("%-12s %s\n", name.c_str(), text.c_str());
      return 0;
    }
    std::fprintf(stderr, "mergescope-cli: error: unknown command '%s' (see --help)\n", command.c_str());
    return 2;
  } catch (const ms::Error& e) {
    std::fprintf(stderr, "mergescope-cli: error: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    // The loaders name their file (ms::with_file_errors); this is an allocation nothing caught on the way.
    std::fprintf(stderr, "mergescope-cli: error: out of memory (std::bad_alloc)\n");
  } catch (const std::exception& e) {
    // LibTorch and the standard library: keep the first line, never abort.
    std::fprintf(stderr, "mergescope-cli: error: %s\n", ms::one_line(e).c_str());
  }
  return 1;
}
