// mergescope-cli subcommands. Each takes the arguments after its name and returns the exit code;
// errors are thrown as ms::Error and printed by main.
#pragma once

#include "args.h"

#include <memory>
#include <string>
#include <vector>

namespace ms {
class Model;
}

namespace ms::cli {

int cmd_classify(const std::vector<std::string>& argv);
int cmd_eval(const std::vector<std::string>& argv);
int cmd_bench(const std::vector<std::string>& argv);
int cmd_trace(const std::vector<std::string>& argv);
int cmd_compare(const std::vector<std::string>& argv);
int cmd_spectrum(const std::vector<std::string>& argv);
int cmd_calibrate(const std::vector<std::string>& argv);
int cmd_sweep(const std::vector<std::string>& argv);  // plan | run | merge | slurm
// `sweep slurm`: the sbatch scripts of a sweep (sweep_slurm.cpp).
int sweep_slurm(const std::vector<std::string>& argv);

// Options every model-using command shares.
extern const std::set<std::string> kModelOptions;  // model, random-weights, arch, threads, seed

// Loads --model (folder, file or name; --arch for a bare .pth) or --random-weights ARCH, after setting threads.
std::shared_ptr<const Model> load_model_from_args(const Args& args);

}  // namespace ms::cli
