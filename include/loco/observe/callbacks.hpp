#pragma once
// Every observe callback: progress_bar, csv_log, evaluate_every, early_stop,
// time_limit. Each works with all three drivers (docs/observe.md).
#include <loco/observe/csv_log.hpp>
#include <loco/observe/early_stop.hpp>
#include <loco/observe/evaluate_every.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/observe/progress_bar.hpp>
#include <loco/observe/time_limit.hpp>
