// Local SGD with decaying steps: how many rounds of averaging does it need?
// (ALGORITHMS.md sections 2 and 7, Patel and Dieuleveut.)
//
// P workers each draw one fresh sample per step from the same population
// (least squares or logistic), step with gamma_t = C t^-alpha, and average
// their models at the rounds of a schedule: every step (mini-batch), once at
// the end (one-shot), or N rounds evenly spaced or with growing gaps
// (boundaries at ceil(T (k/N)^2)). The error is ||x_bar - w*||^2 of the
// Polyak-Ruppert averaged iterate, at equal N, averaged over seeds. Every
// method sees the same samples for a given seed (worker p's stream is
// (seed, p)), so differences between methods are not sampling noise.
//
//   local_sgd_schedules [--quick] [--out DIR] [--steps T] [--workers 4,16]
//                       [--alphas 0.51,0.75] [--rounds 10,30,...] [--seeds 3]
//
// Writes runs.csv (one row per run), summary.csv (mean and spread per
// method and N), trace.csv (error against N, one line per schedule family:
// plot with tools/plot.py --x round --y error --log round,error).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <limits>
#include <loco/aliases.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "experiment.hpp"
#include "streaming.hpp"

namespace {

namespace alg = loco::algorithm;

struct settings {
  std::size_t steps = 100000;
  std::vector<int> workers{4, 16};
  std::vector<double> alphas{0.51, 0.75};
  std::vector<std::size_t> rounds{10, 30, 100, 300, 1000, 3000, 10000};
  std::vector<std::string> problems{"least_squares", "logistic"};
  int seeds = 5;
  std::size_t dim = 10;
  double h_min = 0.25;  // smallest feature variance (largest is 1)
  // Large steps (the paper's regime): C E||a||^2 is about 1.6 for least
  // squares (stable up to about 2) and 16 for logistic (bounded gradients).
  double c_least_squares = 0.3;
  double c_logistic = 3.0;
  double norm = 2.0;               // ||w*||, with x0 = 0
  double growing_power = 2.0;      // growing gaps: boundaries at ceil(T (k/N)^p)
  double tolerance = 1.1;          // "reaches mini-batch level": error <= tolerance x mini-batch's
  std::string comm = "simulated";  // or in_process: same results, different speed
};

struct run_result {
  double error_polyak = 0.0;
  double error_last = 0.0;
  std::uint64_t bytes = 0;  // all workers
  std::size_t rounds = 0;
  double seconds = 0.0;
};

// One rank's run; rank 0 reports.
template <class Comm>
void run_rank(Comm& comm, const std::string& problem, const experiment::population& pop,
              const alg::local_sgd_options& opt, double c, double alpha, run_result& out,
              std::shared_ptr<const experiment::population> shared) {
  loco::local_sgd_dense<Comm> algo({}, {}, loco::stepsize::polynomial(c, alpha), opt);
  const std::vector<double> x0(pop.dimension(), 0.0);
  const auto finish = [&](const alg::local_sgd_result<double>& r) {
    if (comm.rank() != 0) return;
    out.error_polyak = pop.error(r.polyak);
    out.error_last = pop.error(r.average);
    out.bytes = r.ledger.totals().bytes_sent * static_cast<std::uint64_t>(comm.size());
    out.rounds = r.stats.rounds;
  };
  if (problem == "least_squares") {
    experiment::streaming_least_squares f(shared);
    finish(algo.run(comm, f, std::span<const double>(x0)));
  } else {
    experiment::streaming_logistic f(shared);
    finish(algo.run(comm, f, std::span<const double>(x0)));
  }
}

run_result run_one(const settings& s, const std::string& problem,
                   std::shared_ptr<const experiment::population> pop, int workers, double c,
                   double alpha, alg::schedule schedule, std::uint64_t seed) {
  alg::local_sgd_options opt;
  opt.schedule = std::move(schedule);
  opt.polyak_average = true;
  opt.seed = seed;
  run_result out;
  const auto start = std::chrono::steady_clock::now();
  if (s.comm == "simulated") {
    // No compute or link model: virtual time is not what is measured here,
    // and one rank runs at a time, which is the fastest way on few cores.
    loco::comm::run_simulated(workers, [&](loco::comm::simulated& comm) {
      run_rank(comm, problem, *pop, opt, c, alpha, out, pop);
    });
  } else {
    loco::comm::run_in_process(workers, [&](loco::comm::in_process& comm) {
      run_rank(comm, problem, *pop, opt, c, alpha, out, pop);
    });
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

struct method {
  std::string family;  // one-shot, mini-batch, evenly, growing
  std::size_t rounds;
  alg::schedule schedule;
};

std::vector<method> methods_for(const settings& s) {
  std::vector<method> m;
  m.push_back({"one-shot", 1, alg::schedule::once(s.steps)});
  m.push_back({"mini-batch", s.steps, alg::schedule::every_step(s.steps)});
  for (std::size_t n : s.rounds) {
    if (n < 2 || n >= s.steps) continue;
    m.push_back({"evenly", n, alg::schedule::evenly(s.steps, n)});
    m.push_back({"growing", n, alg::schedule::growing(s.steps, n, s.growing_power)});
  }
  return m;
}

struct stats {
  double mean = 0, sd = 0, min = 0, max = 0;
};
stats summarize(const std::vector<double>& v) {
  stats s;
  if (v.empty()) {
    s.mean = s.sd = s.min = s.max = std::nan("");
    return s;
  }
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

std::string format_alpha(double a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", a);
  return buf;
}

// One run: its configuration and the errors of its averaged models.
struct record {
  std::string problem;
  int workers = 0;
  double alpha = 0;
  std::string family;
  std::size_t rounds = 0;
  std::uint64_t seed = 0;
  double error = 0, last_error = 0;
  std::uint64_t bytes = 0;
};

// Reads the runs.csv this program writes (no quoted cells).
std::vector<record> read_records(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw loco::config_error("--summarize: cannot open " + path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<record> out;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    if (cells.size() < 9)
      throw loco::config_error("--summarize: short row in " + path + ": " + line);
    out.push_back({cells[0], std::stoi(cells[1]), std::stod(cells[2]), cells[3],
                   static_cast<std::size_t>(std::stoull(cells[4])), std::stoull(cells[5]),
                   std::stod(cells[6]), std::stod(cells[7]), std::stoull(cells[8])});
  }
  return out;
}

// Phase 2: per (problem, P, alpha) and method, the mean error over seeds and
// the error relative to mini-batch's on the same seed (the same samples), so
// the spread shown is that of the method, not of the seeds.
void summarize_records(const std::vector<record>& records, const settings& s,
                       const experiment::common_flags& flags) {
  loco::observe::csv_writer summary(
      flags.file("summary.csv"),
      {"problem", "workers", "alpha", "method", "rounds", "seeds", "error_mean", "error_sd",
       "ratio_mean", "ratio_min", "ratio_max", "last_error_mean", "bytes"});
  auto columns = experiment::trace_columns();
  for (const char* c : {"error", "ratio", "ratio_min", "ratio_max"}) columns.push_back(c);
  loco::observe::csv_writer trace(flags.file("trace.csv"), columns);
  loco::observe::table table{"problem",      "P",  "alpha",        "method", "N",
                             "error (mean)", "sd", "x mini-batch", "min",    "max"};
  loco::observe::table reach{"problem",
                             "P",
                             "alpha",
                             "evenly: N to reach",
                             "growing: N to reach",
                             "one-shot x mini-batch"};
  // Groups in the order they appear.
  std::vector<std::tuple<std::string, int, double>> groups;
  for (const auto& r : records) {
    const auto g = std::tuple{r.problem, r.workers, r.alpha};
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  }
  std::vector<std::size_t> tried;
  for (const auto& [problem, p, alpha] : groups) {
    std::vector<std::pair<std::string, std::size_t>> methods;  // (family, N) in order
    std::map<std::pair<std::string, std::size_t>, std::map<std::uint64_t, const record*>> by;
    for (const auto& r : records) {
      if (r.problem != problem || r.workers != p || r.alpha != alpha) continue;
      const auto key = std::pair{r.family, r.rounds};
      if (!by.count(key)) methods.push_back(key);
      by[key][r.seed] = &r;
      if ((r.family == "evenly" || r.family == "growing") &&
          std::find(tried.begin(), tried.end(), r.rounds) == tried.end())
        tried.push_back(r.rounds);
    }
    const std::map<std::uint64_t, const record*>* mb = nullptr;
    for (const auto& [key, seeds] : by)
      if (key.first == "mini-batch") mb = &seeds;
    if (mb == nullptr) continue;
    const std::string prefix =
        problem + " P=" + std::to_string(p) + " alpha=" + format_alpha(alpha);
    std::map<std::string, std::size_t> first_reach;
    std::map<std::string, std::vector<std::pair<std::size_t, std::array<double, 4>>>> curves;
    double one_shot_ratio = std::nan("");
    for (const auto& key : methods) {
      std::vector<double> errors, lasts, ratios;
      std::uint64_t bytes = 0;
      for (const auto& [seed, r] : by[key]) {
        errors.push_back(r->error);
        lasts.push_back(r->last_error);
        bytes = r->bytes;
        if (auto it = mb->find(seed); it != mb->end())
          ratios.push_back(r->error / it->second->error);
      }
      const auto e = summarize(errors), q = summarize(ratios);
      summary.row(problem, p, alpha, key.first, key.second, errors.size(), e.mean, e.sd, q.mean,
                  q.min, q.max, summarize(lasts).mean, bytes);
      table.add_row(problem, p, format_alpha(alpha), key.first, key.second, e.mean, e.sd, q.mean,
                    q.min, q.max);
      const std::array<double, 4> point{e.mean, q.mean, q.min, q.max};
      if (key.first == "evenly" || key.first == "growing") {
        curves[key.first].push_back({key.second, point});
        if (q.mean <= s.tolerance && !first_reach.count(key.first))
          first_reach[key.first] = key.second;
      } else {
        // Mini-batch and one-shot are the two ends of every schedule's curve.
        for (const char* c : {"evenly", "growing"}) curves[c].push_back({key.second, point});
        if (key.first == "one-shot") one_shot_ratio = q.mean;
      }
    }
    for (auto& [curve, pts] : curves) {
      std::sort(pts.begin(), pts.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& [n, v] : pts)
        trace.row(prefix + " " + curve, n, "", "", "", "", "", v[0], v[1], v[2], v[3]);
    }
    const auto reached = [&](const std::string& family) -> std::string {
      auto it = first_reach.find(family);
      std::size_t largest = 0;
      for (auto n : tried) largest = std::max(largest, n);
      return it == first_reach.end() ? "> " + std::to_string(largest) : std::to_string(it->second);
    };
    reach.add_row(problem, p, format_alpha(alpha), reached("evenly"), reached("growing"),
                  one_shot_ratio);
  }
  std::cout << "Polyak-Ruppert averaged iterate, error ||x - w*||^2: mean and sd over seeds;\n"
               "'x mini-batch': error / mini-batch's error on the same seed (mean, min, max)\n\n";
  table.print(std::cout);
  std::sort(tried.begin(), tried.end());
  std::cout << "\nsmallest N whose mean paired ratio is within " << s.tolerance
            << " of mini-batch (N tried:";
  for (auto n : tried) std::cout << " " << n;
  std::cout << ")\n\n";
  reach.print(std::cout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"local SGD schedules with decaying steps (Patel and Dieuleveut)"};
  experiment::common_flags flags;
  flags.add_to(app);
  settings s;
  app.add_option("--steps", s.steps, "T, local steps per worker")->capture_default_str();
  app.add_option("--workers", s.workers, "worker counts P")->delimiter(',')->capture_default_str();
  app.add_option("--alphas", s.alphas, "step decay exponents")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rounds", s.rounds, "N values for the evenly / growing schedules")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--problems", s.problems, "least_squares, logistic")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--seeds", s.seeds, "repetitions (sampling seeds)")->capture_default_str();
  app.add_option("--dim", s.dim, "dimension d")->capture_default_str();
  app.add_option("--c-least-squares", s.c_least_squares, "C of gamma_t = C t^-alpha")
      ->capture_default_str();
  app.add_option("--c-logistic", s.c_logistic, "C for logistic")->capture_default_str();
  app.add_option("--tolerance", s.tolerance, "reaching mini-batch level: error <= tol x theirs")
      ->capture_default_str();
  app.add_option("--comm", s.comm, "simulated or in_process (identical results)")
      ->check(CLI::IsMember({"simulated", "in_process"}))
      ->capture_default_str();
  app.add_option("--norm", s.norm, "||w*|| (x0 = 0)")->capture_default_str();
  app.add_option("--growing-power", s.growing_power, "p of the growing schedule (>= 1)")
      ->capture_default_str();
  app.add_option("--h-min", s.h_min, "smallest feature variance")->capture_default_str();
  std::string from;
  app.add_option("--summarize", from, "summarize an earlier runs.csv instead of running");
  CLI11_PARSE(app, argc, argv);
  if (flags.quick) {
    s.steps = 2000;
    s.workers = {4};
    s.alphas = {0.75};
    s.rounds = {10, 100};
    s.seeds = 1;
  }
  for (const auto& p : s.problems) {
    if (p != "least_squares" && p != "logistic") {
      std::cerr << "local_sgd_schedules: unknown problem '" << p << "'\n";
      return 2;
    }
  }

  // Phase 1: one record per run (run now, or read from an earlier runs.csv).
  std::vector<record> records;
  const auto all_start = std::chrono::steady_clock::now();
  if (!from.empty()) {
    records = read_records(from);
  } else {
    loco::observe::csv_writer runs(flags.file("runs.csv"),
                                   {"problem", "workers", "alpha", "method", "rounds", "seed",
                                    "error_polyak", "error_last", "bytes", "wall_s"});
    const auto methods = methods_for(s);
    for (const auto& problem : s.problems) {
      const auto pop = std::make_shared<const experiment::population>(
          experiment::population::make(s.dim, s.h_min, s.norm, 1.0));
      const double c = problem == "least_squares" ? s.c_least_squares : s.c_logistic;
      for (int p : s.workers) {
        for (double alpha : s.alphas) {
          for (const auto& m : methods) {
            for (int k = 0; k < s.seeds; ++k) {
              const std::uint64_t seed = flags.seed + static_cast<std::uint64_t>(k);
              const auto r = run_one(s, problem, pop, p, c, alpha, m.schedule, seed);
              runs.row(problem, p, alpha, m.family, r.rounds, seed, r.error_polyak, r.error_last,
                       r.bytes, r.seconds);
              records.push_back({problem, p, alpha, m.family, r.rounds, seed, r.error_polyak,
                                 r.error_last, r.bytes});
            }
            runs.flush();  // a sweep that is stopped keeps what it measured
            std::cerr << problem << " P=" << p << " alpha=" << alpha << " " << m.family << "/"
                      << m.rounds << " done\n";
          }
        }
      }
    }
  }
  summarize_records(records, s, flags);
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - all_start).count();
  std::cout << "\nwall time " << total << " s; CSV in " << flags.out << "/\n";
  return 0;
}
