// Sweeps on a real Slurm: a one-node cluster started for the test on 127.0.0.1 in a temporary folder (munged
// with a generated key and its own socket; slurmctld and slurmd from a generated slurm.conf with
// proctrack/linuxproc, task/none, select/cons_tres and free ports; state, spool and logs inside the folder).
// The test submits the two commands `sweep slurm` prints: a 4-shard array over 8 shared images and 2 methods
// (plus none, which eval prints as its baseline), and the merge that waits for it; the merged table and
// per-image results must equal one `eval` process.
// Then one shard is cancelled (scancel) after its first unit, the sweep is submitted again, and nothing may be
// lost, redone or counted twice. Every daemon started here is stopped by its pid when the test ends, failed or
// not (LocalSlurm's destructor). Needs root and Debian's slurmctld, slurmd, slurm-client and munge
// (scripts/install-deps.sh); without them the test reports itself skipped with the reason.
#include "sweep.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

namespace ms::sweep_test {
// Defined in test_sweep.cpp (the same test binary).
std::string quote(const std::string& s);
test::CommandResult cli(const std::string& args);
void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);
std::vector<std::string> accuracy_table(const std::string& out, const std::string& model_line);
void expect_merge_equals_eval(const std::string& merge_out, const std::string& eval_out, const std::string& report_dir,
                              const std::string& model, const std::string& eval_csv,
                              const std::vector<std::string>& specs, int images);
}  // namespace ms::sweep_test

namespace ms {
namespace {

namespace fs = std::filesystem;
using namespace sweep_test;
using Clock = std::chrono::steady_clock;

std::string find_program(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin";  // the daemons live in sbin, often not on a test's PATH
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  return "";
}

// A TCP port on 127.0.0.1 that nothing uses right now (the kernel's choice).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  return ok ? ntohs(a.sin_port) : 0;
}

std::string tail(const std::string& path, size_t bytes = 2500) {
  const std::string text = read_text(path);
  return "---- " + path + "\n" + (text.size() > bytes ? text.substr(text.size() - bytes) : text) + "\n";
}

// munged, slurmctld and slurmd as children of the test, in the foreground (so their pids are ours), logging
// into the folder. They die with the test process too (PR_SET_PDEATHSIG) should it be killed outright.
class LocalSlurm {
 public:
  explicit LocalSlurm(std::string dir) : dir_(std::move(dir)) {}
  LocalSlurm(const LocalSlurm&) = delete;
  LocalSlurm& operator=(const LocalSlurm&) = delete;

  ~LocalSlurm() {
    if (ctld_up_) {
      // Jobs first, so that no slurmstepd or shard outlives the daemons that track them.
      run("scancel --user=root");
      for (const auto until = Clock::now() + std::chrono::seconds(30); Clock::now() < until;) {
        if (run("squeue -h -o %i").out.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
    }
    for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) stop(it->first, it->second);
  }

  // Starts the three daemons and waits until the node is idle; false with the reason otherwise.
  bool start(std::string* why) {
    chmod(dir_.c_str(), 0755);  // munged wants every directory above its socket searchable by all
    for (const char* sub : {"munge", "sock", "state", "spool", "log"}) fs::create_directories(dir_ + "/" + sub);
    chmod((dir_ + "/munge").c_str(), 0700);
    chmod((dir_ + "/sock").c_str(), 0755);
    {
      std::random_device rd;
      std::string key(1024, '\0');
      for (char& ch : key) ch = static_cast<char>(rd());
      write_text(dir_ + "/munge/munge.key", key);
      chmod((dir_ + "/munge/munge.key").c_str(), 0400);
    }
    const int ctld_port = free_port(), slurmd_port = free_port();
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::string short_host = host;
    short_host = short_host.substr(0, short_host.find('.'));
    const unsigned cpus = std::max(1u, std::min(2u, std::thread::hardware_concurrency()));
    socket_ = dir_ + "/sock/munge.socket";
    conf_ = dir_ + "/slurm.conf";
    write_text(conf_,
               "ClusterName=mstest\n"
               "SlurmctldHost=" +
                   short_host +
                   "(127.0.0.1)\n"
                   "SlurmctldPort=" +
                   std::to_string(ctld_port) + "\nSlurmdPort=" + std::to_string(slurmd_port) +
                   "\n"
                   "SlurmUser=root\nSlurmdUser=root\n"
                   "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket=" +
                   socket_ +
                   "\n"
                   // Bind to the configured addresses (127.0.0.1) instead of every interface.
                   "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny\n"
                   "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
                   "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
                   "JobAcctGatherType=jobacct_gather/none\nMpiDefault=none\nMailProg=/bin/true\nReturnToService=2\n"
                   "StateSaveLocation=" +
                   dir_ + "/state\nSlurmdSpoolDir=" + dir_ +
                   "/spool\n"
                   "SlurmctldPidFile=" +
                   dir_ + "/slurmctld.pid\nSlurmdPidFile=" + dir_ +
                   "/slurmd.pid\n"
                   "SlurmctldLogFile=" +
                   dir_ + "/log/slurmctld.log\nSlurmdLogFile=" + dir_ +
                   "/log/slurmd.log\n"
                   "NodeName=msnode NodeHostname=" +
                   short_host + " NodeAddr=127.0.0.1 CPUs=" + std::to_string(cpus) +
                   " State=UNKNOWN\n"
                   "PartitionName=debug Nodes=msnode Default=YES MaxTime=INFINITE State=UP\n");

    spawn({find_program("munged"), "--foreground", "--socket=" + socket_, "--key-file=" + dir_ + "/munge/munge.key",
           "--pid-file=" + dir_ + "/munge/munged.pid", "--log-file=" + dir_ + "/log/munged.log",
           "--seed-file=" + dir_ + "/munge/seed"},
          "munged");
    if (!wait_for(
            "munged", [&] { return fs::exists(socket_); }, 15, why))
      return false;
    spawn({find_program("slurmctld"), "-D", "-i", "-f", conf_}, "slurmctld");
    if (!wait_for(
            "slurmctld", [&] { return run("scontrol ping").out.find("is UP") != std::string::npos; }, 30, why))
      return false;
    ctld_up_ = true;
    spawn({find_program("slurmd"), "-D", "-N", "msnode", "-f", conf_}, "slurmd");
    return wait_for(
        "slurmd", [&] { return run("sinfo -h -o %T").out == "idle\n"; }, 60, why);
  }

  // A shell command with this cluster's slurm.conf.
  test::CommandResult run(const std::string& command) const {
    return test::run_command("SLURM_CONF=" + quote(conf_) + " " + command);
  }
  const std::string& dir() const { return dir_; }

  std::string logs() const {
    std::string out;
    for (const char* name : {"munged.log", "munged.out", "slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out"})
      if (fs::exists(dir_ + "/log/" + name)) out += tail(dir_ + "/log/" + name);
    return out;
  }

  // "...:<port>" listeners of our daemons that are not on 127.0.0.1 (ss output), for the loopback check.
  std::string listeners_beyond_loopback() const {
    std::string out;
    for (const auto& [pid, name] : pids_) {
      const auto r = test::run_command("ss -Hltnup 2>/dev/null | grep 'pid=" + std::to_string(pid) +
                                       ",' | grep -v ' 127\\.0\\.0\\.1:' || true");
      out += r.out;
    }
    return out;
  }

 private:
  void spawn(const std::vector<std::string>& argv, const std::string& name) {
    const std::string log = dir_ + "/log/" + name + ".out";
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(127);  // the test died between fork and prctl
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("SLURM_CONF", conf_.c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    pids_.emplace_back(pid, name);
  }

  // Polls `ready` for up to `seconds`; fails early when the daemon `name` has exited.
  template <typename F>
  bool wait_for(const std::string& name, F ready, int seconds, std::string* why) {
    for (const auto until = Clock::now() + std::chrono::seconds(seconds); Clock::now() < until;) {
      if (ready()) return true;
      for (auto& [pid, n] : pids_) {
        int status = 0;
        if (n == name && pid > 0 && waitpid(pid, &status, WNOHANG) == pid) {
          *why = name + " exited (status " + std::to_string(status) + ") before it was ready";
          pid = -1;
          return false;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    *why = name + " was not ready after " + std::to_string(seconds) + " s";
    return false;
  }

  // SIGTERM, then SIGKILL if the daemon is still there after 15 s; always reaped.
  static void stop(pid_t pid, const std::string& name) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    for (const auto until = Clock::now() + std::chrono::seconds(15); Clock::now() < until;) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::fprintf(stderr, "test_sweep_slurm: %s (pid %d) ignored SIGTERM for 15 s; killing it\n", name.c_str(), pid);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }

  std::string dir_, conf_, socket_;
  std::vector<std::pair<pid_t, std::string>> pids_;
  bool ctld_up_ = false;
};

// Waits until none of `jobs` is queued or running; false after `seconds`.
bool wait_for_jobs(const LocalSlurm& cluster, const std::string& jobs, int seconds) {
  for (const auto until = Clock::now() + std::chrono::seconds(seconds); Clock::now() < until;) {
    if (cluster.run("squeue -h -j " + jobs + " -o %i").out.empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return false;
}

// JobState of every task of `job` ("COMPLETED", ...), one per line, sorted.
std::string job_states(const LocalSlurm& cluster, const std::string& job) {
  const auto r = cluster.run("scontrol -o show job " + job);
  std::vector<std::string> states;
  for (size_t at = r.out.find("JobState="); at != std::string::npos; at = r.out.find("JobState=", at + 1))
    states.push_back(r.out.substr(at, r.out.find_first_of(" \n", at) - at));
  std::sort(states.begin(), states.end());
  std::string out;
  for (const auto& st : states) out += st + "\n";
  // Empty: scontrol knew no such job; say what it printed instead.
  return out.empty() ? "(scontrol -o show job " + job + ": exit " + std::to_string(r.exit_code) + ", out '" + r.out +
                           "', err '" + r.err + "')"
                     : out;
}

struct Submitted {
  std::string array, merge;
};

// Runs the two lines `sweep slurm` printed for the user ("  jid=$(sbatch ...)", "  sbatch --dependency=...").
Submitted submit(const LocalSlurm& cluster, const std::string& printed, std::string* err) {
  std::istringstream in(printed);
  std::string line, commands;
  while (std::getline(in, line))
    if (line.rfind("  ", 0) == 0) commands += line.substr(2) + "\n";
  const auto r = cluster.run("bash -c " + quote("set -e\n" + commands + "echo \"array ${jid%%;*}\""));
  *err = r.err + r.out;
  Submitted s;
  std::istringstream out(r.out);
  while (std::getline(out, line)) {
    if (line.rfind("Submitted batch job ", 0) == 0) s.merge = line.substr(20);
    if (line.rfind("array ", 0) == 0) s.array = line.substr(6);
  }
  return s;
}

TEST(SweepSlurm, ArrayOnALocalClusterMergesToEvalAndSurvivesACancelledShard) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: slurmd runs the jobs and munged and the daemons run as root here";
  for (const char* p : {"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo"})
    if (find_program(p).empty())
      GTEST_SKIP() << p << " not found: install slurmctld, slurmd, slurm-client and munge (scripts/install-deps.sh)";

  const std::string dir = test::make_temp_dir("ms_slurm_");
  {
    LocalSlurm cluster(dir);
    std::string why;
    ASSERT_TRUE(cluster.start(&why)) << why << "\n" << cluster.logs();
    EXPECT_EQ(cluster.listeners_beyond_loopback(), "") << "a daemon listens beyond 127.0.0.1";

    const std::string model = "deit_tiny_patch16_224";
    const std::string file = dir + "/sweep.json", out = dir + "/out";
    write_text(
        file,
        "{\"name\": \"slurm-test\", \"models\": [\"" + model +
            "\"],"
            " \"images\": {\"folder\": \"../shared/data/imagenet-sample\", \"limit\": 8, \"chunk\": 2}, \"batch\": 2,"
            " \"methods\": [\"none\", \"tome:r=8\", {\"method\": \"pitome\", \"match\": \"tome\"}]}");
    const auto scripts = cli("sweep slurm " + quote(file) + " --shards 4 --cpus-per-task 1 --out " + quote(out));
    ASSERT_EQ(scripts.exit_code, 0) << scripts.err;

    // 3 methods (eval prints "none" as its baseline too) x 4 chunks of 2 images = 12 units; shard k runs units
    // k, k + 4 and k + 8.
    std::string err;
    const Submitted first = submit(cluster, scripts.out, &err);
    ASSERT_FALSE(first.array.empty() || first.merge.empty()) << err;
    ASSERT_TRUE(wait_for_jobs(cluster, first.array + "," + first.merge, 600)) << cluster.logs();
    EXPECT_EQ(job_states(cluster, first.array),
              "JobState=COMPLETED\nJobState=COMPLETED\nJobState=COMPLETED\nJobState=COMPLETED\n")
        << cluster.logs();
    EXPECT_EQ(job_states(cluster, first.merge), "JobState=COMPLETED\n") << cluster.logs();
    const std::string merge_log = read_text(out + "/logs/merge." + first.merge + ".log");

    const std::string csv = dir + "/eval.csv";
    const auto eval =
        cli("eval --model " + model +
            " --images ../shared/data/imagenet-sample --limit 8 --batch 2 --threads 1 --method tome:r=8 --method pitome"
            " --match-flops tome:r=8 --csv " +
            quote(csv));
    ASSERT_EQ(eval.exit_code, 0) << eval.err;
    const std::string model_line = eval.out.substr(0, eval.out.find('\n'));
    EXPECT_EQ(accuracy_table(merge_log, model_line), accuracy_table(eval.out, model_line)) << "the merge job's table:\n"
                                                                                           << merge_log;
    const auto merged = cli("sweep merge " + quote(file) + " --out " + quote(out) + " --per-image");
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    expect_merge_equals_eval(merged.out, eval.out, out + "/report", model, csv,
                             {"none", "tome:r=8", "pitome:ratio=0.9464"}, 8);

    // Shard 1 again from nothing, cancelled after the first of its three units.
    for (int u : {1, 5, 9}) fs::remove(unit_path(out, u));
    std::map<int, struct stat> kept;
    for (int u : {0, 2, 3, 4, 6, 7, 8, 10, 11}) ASSERT_EQ(stat(unit_path(out, u).c_str(), &kept[u]), 0);
    const auto again = cluster.run("MERGESCOPE_SWEEP_UNIT_PAUSE=300 sbatch --parsable --array=1 " +
                                   quote(out + "/slurm/shards.sbatch"));
    const std::string slow = again.out.substr(0, again.out.find_first_of(";\n"));
    ASSERT_FALSE(slow.empty()) << again.err;
    for (const auto until = Clock::now() + std::chrono::seconds(300);
         Clock::now() < until && !fs::exists(unit_path(out, 1));)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(fs::exists(unit_path(out, 1))) << cluster.logs();
    EXPECT_EQ(cluster.run("scancel " + slow).exit_code, 0);
    ASSERT_TRUE(wait_for_jobs(cluster, slow, 60));
    EXPECT_EQ(job_states(cluster, slow), "JobState=CANCELLED\n");
    EXPECT_FALSE(fs::exists(unit_path(out, 5)) || fs::exists(unit_path(out, 9)))
        << "the cancelled shard went on anyway";
    const auto incomplete = cli("sweep merge " + quote(file) + " --out " + quote(out));
    EXPECT_NE(incomplete.err.find("incomplete sweep: 2 of 12 units missing: shard 1/4 (units 5, 9)"), std::string::npos)
        << incomplete.err;

    // The user submits the two commands again: shards 0, 2, 3 find their units done, shard 1 runs units 5 and 9 only.
    struct stat unit1 {};
    ASSERT_EQ(stat(unit_path(out, 1).c_str(), &unit1), 0);
    const Submitted second = submit(cluster, scripts.out, &err);
    ASSERT_FALSE(second.array.empty() || second.merge.empty()) << err;
    ASSERT_TRUE(wait_for_jobs(cluster, second.array + "," + second.merge, 600)) << cluster.logs();
    EXPECT_EQ(job_states(cluster, second.merge), "JobState=COMPLETED\n") << cluster.logs();
    for (int k = 0; k < 4; ++k) {
      const std::string log = read_text(out + "/logs/shard-" + std::to_string(k) + "." + second.array + ".log");
      EXPECT_NE(log.find(k == 1 ? "3 units, 2 run, 1 already done" : "3 units, 0 run, 3 already done"),
                std::string::npos)
          << "shard " << k << ":\n"
          << log;
    }
    for (auto& [u, before] : kept) {
      struct stat now {};
      ASSERT_EQ(stat(unit_path(out, u).c_str(), &now), 0);
      EXPECT_EQ(now.st_ino, before.st_ino) << "unit " << u << " was written again";
    }
    struct stat unit1_now {};
    ASSERT_EQ(stat(unit_path(out, 1).c_str(), &unit1_now), 0);
    EXPECT_EQ(unit1_now.st_ino, unit1.st_ino) << "the cancelled shard's finished unit was written again";
    const auto remerged = cli("sweep merge " + quote(file) + " --out " + quote(out) + " --per-image");
    ASSERT_EQ(remerged.exit_code, 0) << remerged.err;
    expect_merge_equals_eval(remerged.out, eval.out, out + "/report", model, csv,
                             {"none", "tome:r=8", "pitome:ratio=0.9464"}, 8);
    EXPECT_EQ(accuracy_table(read_text(out + "/logs/merge." + second.merge + ".log"), model_line),
              accuracy_table(eval.out, model_line));
  }  // the daemons stop here, failed or not
  if (!::testing::Test::HasFailure())
    fs::remove_all(dir);
  else
    std::fprintf(stderr, "test_sweep_slurm: kept %s for inspection\n", dir.c_str());
}

}  // namespace
}  // namespace ms
