#pragma once
// How the engine's idle OpenMP workers wait, for programs that serve a model
// (the server, the engine benchmark). libgomp reads its waiting settings from
// the environment once, before main, so a program can only choose them by
// re-executing itself.
//
// Between two parallel ops of a token step the workers idle for microseconds.
// Sleeping at once (OMP_WAIT_POLICY=passive alone) makes each op pay a futex
// wake-up, about 60 us on the 2-core VMs we measured; a decode step has ~50
// such ops. Spinning long (libgomp's default, or active) steals the cores
// from the gRPC threads and from other processes. A short spin then sleep
// covers the gaps inside a step and costs at most tens of microseconds after
// it. docs/engine.md has the measurements.

#include <string>

namespace attnserve::engine {

// libgomp spin iterations before a waiting worker sleeps: 20-40 us here.
inline constexpr const char* kServingSpinCount = "1000";

// When neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, sets
// OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=kServingSpinCount and
// re-executes the program with the same arguments. Returns when either is
// already set (the user's choice wins) or when re-executing fails. Call first
// in main, before any thread starts.
void UseServingOpenMpWaiting(char** argv);

// The settings in force, for the startup log: e.g.
// "OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000" ("unset" for a missing one).
std::string OpenMpWaitingDescription();

}  // namespace attnserve::engine
