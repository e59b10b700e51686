#pragma once
// Process exit codes shared by attnserve-cli and attnserve-bench
// (docs/client.md lists them). They are distinct so that a script or a
// container health check can tell "you called it wrong" from "no server there"
// from "the server said no".

namespace attnserve::client {

inline constexpr int kExitOk = 0;
// The server answered with a non-OK status, or health is not SERVING, or
// (bench) no call succeeded.
inline constexpr int kExitFailed = 1;
// No connection to the address (refused, unresolvable, or not within the
// timeout).
inline constexpr int kExitUnreachable = 2;
// Bad flags or arguments: sysexits.h's EX_USAGE.
inline constexpr int kExitUsage = 64;

}  // namespace attnserve::client
