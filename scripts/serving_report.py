#!/usr/bin/env python3
"""Prints the serving benchmark's figures from the reports scripts/benchmark_serving.sh keeps.

  scripts/serving_report.py OUT_DIR ROUNDS "OPEN_LOOP_FRACTIONS"

OUT_DIR holds, for each round r, engine-r.json (generator_benchmark --json) and the
attnserve-bench reports c1-r, c32-r, mix-continuous-r and mix-dynamic-r; and, for each open-loop
rate fraction f, open-continuous-f and open-dynamic-f. Kept apart from the shell script so that
a run's figures can be printed again (or differently) without serving anything.
"""
import json
import statistics
import sys

SERVED = ("c1", "c32", "mix-continuous", "mix-dynamic")


def load(out, name, tag):
    with open(f"{out}/{name}-{tag}.json") as f:
        return json.load(f)


def load_rounds(out, repeats):
    rounds = []
    for r in range(1, repeats + 1):
        engine = load(out, "engine", r)
        threads = next(k for k in engine if k.startswith("threads_"))
        rounds.append({"threads": threads,
                       "b1": engine[threads]["greedy_tokens_per_s_b1"],
                       "b32": engine[threads]["greedy_tokens_per_s_b32"],
                       **{n: load(out, n, r) for n in SERVED}})
    return rounds


def tps(name):
    return lambda x: x[name]["generated_tokens_per_s"]


def latency(name, quantile):
    return lambda x: x[name]["latency_ms"][quantile]


def engine_b1_ms(x):
    return 32 / x["b1"] * 1000  # one 32-token request alone


# Each ratio is taken within a round, then the median over rounds is quoted.
RATIOS = [
    ("batching gain: c32 / c1 tokens/s", lambda x: tps("c32")(x) / tps("c1")(x), ">= 8"),
    ("serving overhead: c32 / engine batch 32", lambda x: tps("c32")(x) / x["b32"], ">= 0.8"),
    ("low-load latency: c1 p50 / engine batch 1",
     lambda x: latency("c1", "p50")(x) / engine_b1_ms(x), "<= 1.15"),
    ("continuous / dynamic tokens/s (4..64 mix)",
     lambda x: tps("mix-continuous")(x) / tps("mix-dynamic")(x), ">= 1.5"),
    ("continuous / dynamic p99 (4..64 mix)",
     lambda x: latency("mix-continuous", "p99")(x) / latency("mix-dynamic", "p99")(x), "<= 1"),
    ("engine ceiling: batch 32 / batch 1 tokens/s", lambda x: x["b32"] / x["b1"],
     "(bounds the gain)"),
]


def print_closed_loop(rounds):
    def med(get):
        return statistics.median(get(x) for x in rounds)

    print(f"\n== serving figures (medians of {len(rounds)} rounds; {rounds[0]['threads']}) ==")
    print(f"engine offline: batch 1 {med(lambda x: x['b1']):.1f} tokens/s "
          f"({med(engine_b1_ms):.0f} ms per request), "
          f"batch 32 {med(lambda x: x['b32']):.1f} tokens/s")
    for name in SERVED:
        print(f"served {name:<15} {med(tps(name)):8.1f} tokens/s"
              f"  p50 {med(latency(name, 'p50')):8.1f} ms"
              f"  p99 {med(latency(name, 'p99')):8.1f} ms")
    print("\n== serving ratios (each taken within a round; median, then every round) ==")
    for label, get, target in RATIOS:
        each = " ".join(f"{get(x):.2f}" for x in rounds)
        print(f"{label:<44}{med(get):8.2f}   target {target:<18} rounds: {each}")


# An open-loop run whose last calls ended more than this after its window closed had a
# backlog: arrivals outran the server. The longest request under full load takes about 1.7 s.
BACKLOG_S = 2.0


def sound(report):
    """No call failed or was dropped and the server kept up with the arrivals: otherwise the
    run was overloaded and the p99 of the calls that got through means nothing."""
    kept_up = (report["config"].get("mode") != "open"
               or report["elapsed_s"] <= report["config"]["duration_s"] + BACKLOG_S)
    return report["ok"] == report["count"] and not report.get("dropped_by_client") and kept_up


def dynamic_within(points, p99_bound):
    """The most tokens/s dynamic batching sustains with p99 <= p99_bound, read off its points
    (rising rates): the fastest sound point within the bound, and from there linearly towards
    the next faster point, which misses it. p99 over a few hundred calls is noisy, so a
    slower point may miss a bound that a faster one meets; the fastest point that meets it
    counts. Returns (value, kind): kind "=" as read off; ">" when no point meets the bound
    (value is the slowest point's tokens/s, more than dynamic batching sustains within it);
    "<" when the fastest sound point meets it and the next rate overloaded the server (the
    most it sustains lies between the two). None when no point is sound."""
    tokens = lambda x: x["generated_tokens_per_s"]
    p99 = lambda x: x["latency_ms"]["p99"]
    if not points or not sound(points[0]):
        return None
    meeting = [i for i, x in enumerate(points) if sound(x) and p99(x) <= p99_bound]
    if not meeting:
        return tokens(points[0]), ">"
    i = meeting[-1]
    if i + 1 == len(points):
        return tokens(points[i]), "="
    a, b = points[i], points[i + 1]
    if not sound(b):
        return tokens(a), "<"
    share = (p99_bound - p99(a)) / (p99(b) - p99(a))
    return tokens(a) + (tokens(b) - tokens(a)) * share, "="


def print_open_loop(out, fractions):
    points = {m: [load(out, f"open-{m}", f) for f in fractions] for m in ("continuous", "dynamic")}
    print("\n== open loop (Poisson arrivals): each mode's tokens/s, p50 and p99 ==")
    print("rate: a fraction of dynamic batching's closed-loop capacity; p50, p99 c/d: continuous")
    print("batching's over dynamic batching's at that rate; ratio: continuous batching's tokens/s")
    print("over the most dynamic batching sustains within the same p99")
    print(f"{'rate':>6} {'continuous':>45} {'dynamic':>45}  p50, p99 c/d   ratio")
    for f, c, d in zip(fractions, points["continuous"], points["dynamic"]):
        cells = []
        for x in (c, d):
            lat = x["latency_ms"]
            flag = "" if sound(x) else " overloaded"
            cells.append(f"{x['generated_tokens_per_s']:7.1f} tok/s "
                         f"{lat['p50']:6.0f} {lat['p99']:6.0f} ms{flag}")
        ratio = "-"
        within = dynamic_within(points["dynamic"], c["latency_ms"]["p99"]) if sound(c) else None
        if within:
            value, kind = within
            ratio = c["generated_tokens_per_s"] / value
            ratio = {"=": f"{ratio:.2f}",
                     ">": f"> {ratio:.2f} (dynamic misses this p99 even at its lowest rate)",
                     "<": f"<= {ratio:.2f} (dynamic's next rate overloaded it)"}[kind]
        c_lat, d_lat = c["latency_ms"], d["latency_ms"]
        same_rate = f"{c_lat['p50'] / d_lat['p50']:.2f}, {c_lat['p99'] / d_lat['p99']:.2f}"
        print(f"{f:>6} {cells[0]:>45} {cells[1]:>45}  {same_rate:<13}  {ratio}")


def main():
    out, repeats, fractions = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
    rounds = load_rounds(out, repeats)
    print_closed_loop(rounds)
    if fractions:
        print_open_loop(out, fractions)
    errors = sum(x[n]["count"] - x[n]["ok"] for x in rounds for n in SERVED)
    print(f"\ncalls that failed in the closed loop: {errors}")


if __name__ == "__main__":
    main()
