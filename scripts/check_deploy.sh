#!/usr/bin/env bash
# Checks deploy/compose.yaml and deploy/k8s with tools (docs/deploy.md):
#   1. kustomize (kubectl kustomize) renders deploy/k8s;
#   2. every rendered object against the Kubernetes API's schemas: kubernetes-models'
#      validators (types, enums, required fields) and the TypeScript compiler over the API's
#      interfaces (unknown, e.g. misspelt, fields), the Prometheus Operator's CRDs included;
#   3. cross-references no schema sees: selectors match the pod labels, named ports exist,
#      gRPC probes hit the gRPC port, the grace period covers preStop + drain, the HPA's
#      custom metric is one the server exports and the adapter serves; in compose, the
#      services, ports, build context and mounted files that are referenced exist, and
#      Prometheus's target and Grafana's data source name compose services.
# Needs kubectl, node/npm (the npm registry, first run only) and python3-yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-/var/tmp/attnserve-check-deploy}
mkdir -p "$WORK"
log() { printf 'check_deploy: %s\n' "$*" >&2; }

# --- Tools (installed the way scripts/setup.sh does, only when missing) ---------------------
apt_pkgs=()
command -v kubectl >/dev/null || apt_pkgs+=(kubernetes-client)
command -v npm >/dev/null || apt_pkgs+=(nodejs npm)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || apt_pkgs+=(python3-yaml)
if ((${#apt_pkgs[@]})); then
  log "installing: ${apt_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}"
fi
# Pinned, so that a new release cannot change the verdict; kept in $WORK between runs.
NPM_PKGS=(kubernetes-models@5.1.0 @kubernetes-models/prometheus-operator@6.0.0 typescript@5.9.3)
if [[ ! -f $WORK/node/.installed-${#NPM_PKGS[@]}-${NPM_PKGS[*]//[@\/ ]/_} ]]; then
  log "npm install ${NPM_PKGS[*]}"
  rm -rf "$WORK/node" && mkdir -p "$WORK/node"
  (cd "$WORK/node" && npm init -y >/dev/null &&
    npm install --no-audit --no-fund --loglevel=error "${NPM_PKGS[@]}" >/dev/null)
  touch "$WORK/node/.installed-${#NPM_PKGS[@]}-${NPM_PKGS[*]//[@\/ ]/_}"
fi

# --- 1. Render -------------------------------------------------------------------------------
kubectl kustomize deploy/k8s >"$WORK/k8s.yaml"
/usr/bin/python3 -c 'import json, sys, yaml
json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)' \
  <"$WORK/k8s.yaml" >"$WORK/node/objects.json"
log "kustomize: $(grep -c '^kind:' "$WORK/k8s.yaml") objects"

# --- 2. Schemas ------------------------------------------------------------------------------
cat >"$WORK/node/schema.mjs" <<'EOF'
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

const objects = JSON.parse(readFileSync("objects.json", "utf8"));
const modulePath = ({ apiVersion, kind }) => {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "monitoring.coreos.com")
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  return `kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`;
};
let failed = 0;
const ts = [];
for (const [i, obj] of objects.entries()) {
  const path = modulePath(obj);
  try {
    new (await import(path))[obj.kind](obj).validate();
  } catch (e) {
    console.error(`${obj.kind}/${obj.metadata?.name}: ${e.message}`);
    failed++;
  }
  ts.push(`import type { I${obj.kind} as T${i} } from "${path}";`,
          `export const o${i}: T${i} = ${JSON.stringify(obj, null, 1)};`);
}
// Object literals typed as the API's interfaces: tsc rejects any property they lack.
writeFileSync("objects.ts", ts.join("\n") + "\n");
try {
  execFileSync("node_modules/.bin/tsc", ["--noEmit", "--strict", "--skipLibCheck",
    "--module", "nodenext", "--moduleResolution", "nodenext", "objects.ts"], { stdio: "pipe" });
} catch (e) {
  console.error(`unknown or mistyped fields (${process.cwd()}/objects.ts):\n${e.stdout}`);
  failed++;
}
if (failed) process.exit(1);
console.log(`${objects.length} objects valid`);
EOF
(cd "$WORK/node" && node schema.mjs) | sed 's/^/check_deploy: schema: /' >&2 ||
  { log "FAIL: schema check"; exit 1; }

# --- 3. Cross-references ---------------------------------------------------------------------
/usr/bin/python3 - "$ROOT" "$WORK/k8s.yaml" <<'EOF'
import re, sys, yaml
from pathlib import Path

root, rendered = Path(sys.argv[1]), sys.argv[2]
errors = []
def check(ok, message):
    if not ok:
        errors.append(message)
    return ok

def duration_s(text):  # "30s", "1m", "1m30s"
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))

def flag(args, name, default=None):  # last --name=value wins, as in Abseil
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return values[-1] if values else default

# What the image and the server define.
dockerfile = (root / "Dockerfile").read_text()
exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", dockerfile, re.M)
           for p in line.split()}
image_uid = int(re.search(r"^USER\s+(\d+)", dockerfile, re.M).group(1))
served = set(re.findall(r'"(attnserve_[a-z_]+)"', (root / "server/prometheus_metrics.cc").read_text()))
# The server's default --metrics_port, read from its flag.
METRICS_PORT = int(re.search(r"ABSL_FLAG\(int, metrics_port, (\d+),", (root / "server/main.cc").read_text()).group(1))
check({50051, 8002} <= exposed, f"Dockerfile EXPOSE {exposed}: expected 50051 and 8002")

# ---- Kubernetes ----
objs = [d for d in yaml.safe_load_all(open(rendered)) if d]
by_kind = {}
for o in objs:
    by_kind.setdefault(o["kind"], []).append(o)
for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"]:
    check(kind in by_kind, f"k8s: no {kind}")
deploy = by_kind["Deployment"][0]
pod = deploy["spec"]["template"]
pod_labels = pod["metadata"]["labels"]
selects = lambda sel: bool(sel) and all(pod_labels.get(k) == v for k, v in sel.items())
check(selects(deploy["spec"]["selector"]["matchLabels"]), "Deployment selector does not match its pods")
c = pod["spec"]["containers"][0]
args = c.get("args", [])
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
grpc_port = int(flag(args, "port", 50051))
check(ports.get("grpc") == grpc_port, f"container port grpc {ports.get('grpc')} != --port {grpc_port}")
check(ports.get("metrics") == int(flag(args, "metrics_port", METRICS_PORT)), "container port metrics != --metrics_port")
check(set(ports.values()) <= exposed, f"container ports {ports} not all EXPOSEd by the Dockerfile")
for kind in ["cpu", "memory"]:
    for side in ["requests", "limits"]:
        check(kind in c.get("resources", {}).get(side, {}), f"container has no {side}.{kind}")
for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
    p = c.get(probe, {} if probe != "startupProbe" else {"grpc": {"port": grpc_port}})
    check(p.get("grpc", {}).get("port") == grpc_port, f"{probe} is not a gRPC probe on port {grpc_port}")
sc = {**pod["spec"].get("securityContext", {}), **c.get("securityContext", {})}
check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == image_uid,
      f"pod must run as non-root uid {image_uid}")
# SIGKILL comes terminationGracePeriodSeconds after the preStop hook starts: it must cover
# the hook, the drain (--shutdown_grace) and the server's last second of closing streams.
pre_stop = c.get("lifecycle", {}).get("preStop", {})
sleep = pre_stop.get("sleep", {}).get("seconds") or int(pre_stop.get("exec", {}).get("command", ["", "0"])[-1])
grace = duration_s(flag(args, "shutdown_grace", "30s"))
tgps = pod["spec"].get("terminationGracePeriodSeconds", 30)
check(sleep > 0, "no preStop delay")
check(tgps > sleep + grace + 1,
      f"terminationGracePeriodSeconds {tgps} <= preStop {sleep}s + drain {grace}s + 1s")

services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
check(any(s["spec"].get("clusterIP") == "None" for s in services.values()), "no headless Service")
check(any(s["spec"].get("clusterIP") != "None" for s in services.values()), "no ClusterIP Service")
for name, s in services.items():
    check(selects(s["spec"]["selector"]), f"Service {name} selects no pod of the Deployment")
    for p in s["spec"]["ports"]:
        check(p.get("targetPort") in ports or p.get("targetPort") in ports.values(),
              f"Service {name} targets port {p.get('targetPort')}, which the container lacks")

hpa = by_kind["HorizontalPodAutoscaler"][0]["spec"]
check(hpa["scaleTargetRef"]["name"] == deploy["metadata"]["name"], "HPA scales another Deployment")
check(hpa.get("minReplicas", 1) >= 2, "HPA minReplicas < 2: a drain or a disruption leaves nothing")
types = {m["type"]: m for m in hpa["metrics"]}
check(types.get("Resource", {}).get("resource", {}).get("name") == "cpu", "HPA does not scale on CPU")
custom = [m[m["type"].lower()]["metric"]["name"] for m in hpa["metrics"] if m["type"] in ("Pods", "External", "Object")]
check(custom, "HPA has no custom metric")
adapter = yaml.safe_load(open(root / "deploy/k8s/prometheus-adapter-values.yaml"))
adapted = set()
for rule in adapter["rules"]["custom"]:
    series = re.match(r"[a-z_:]+", rule["seriesQuery"]).group(0)
    check(series in served, f"adapter rule reads {series}, which the server does not export")
    adapted.add(rule.get("name", {}).get("as") or series)
for m in custom:
    check(m in adapted, f"HPA metric {m} is not served by prometheus-adapter-values.yaml")

pdb = by_kind["PodDisruptionBudget"][0]["spec"]
check(selects(pdb["selector"]["matchLabels"]), "PodDisruptionBudget selects no pod")
for sm in by_kind["ServiceMonitor"]:
    picked = [s for s in services.values()
              if all(s["metadata"].get("labels", {}).get(k) == v
                     for k, v in sm["spec"]["selector"]["matchLabels"].items())]
    for e in sm["spec"]["endpoints"]:
        check(any(p.get("name") == e["port"] for s in picked for p in s["spec"]["ports"]),
              f"ServiceMonitor port {e['port']} is no port of a Service it selects")

# ---- compose ----
compose_file = root / "deploy/compose.yaml"
compose = yaml.safe_load(open(compose_file))
base = compose_file.parent
svcs = compose.get("services", {})
for name in ["attnserve", "prometheus", "grafana"]:
    check(name in svcs, f"compose: no service {name}")
named_volumes = set((compose.get("volumes") or {}).keys())
for name, s in svcs.items():
    check("image" in s or "build" in s, f"compose {name}: neither image nor build")
    if "build" in s:
        ctx = base / s["build"]["context"]
        check((ctx / s["build"].get("dockerfile", "Dockerfile")).is_file(), f"compose {name}: no Dockerfile in {ctx}")
    for dep in s.get("depends_on", []):
        check(dep in svcs, f"compose {name}: depends on unknown service {dep}")
    for v in s.get("volumes", []):
        source = v.split(":")[0]
        if source.startswith((".", "/")):
            check((base / source).exists(), f"compose {name}: mounted {source} does not exist")
        else:
            check(source in named_volumes, f"compose {name}: volume {source} is not declared")
    for p in s.get("ports", []):
        check(re.fullmatch(r"(\d+\.\d+\.\d+\.\d+:)?\d+:\d+(/tcp|/udp)?", str(p)), f"compose {name}: bad port {p}")

def container_path(service, host_path):  # where compose mounts deploy/<host_path>
    for v in svcs[service].get("volumes", []):
        src, dst = v.split(":")[:2]
        if (base / host_path).resolve().is_relative_to((base / src).resolve()):
            return dst + str((base / host_path).resolve())[len(str((base / src).resolve())):]
    return None

a = svcs["attnserve"]
a_args = a.get("command", [])
a_ports = {int(flag(a_args, "port", 50051)), int(flag(a_args, "metrics_port", METRICS_PORT))}
check(a_ports <= exposed, f"compose attnserve listens on {a_ports}, not all EXPOSEd")
published = {int(str(p).split(":")[-1].split("/")[0]) for p in a.get("ports", [])}
check(int(flag(a_args, "port", 50051)) in published, "compose attnserve: gRPC port not published")
check(duration_s(a.get("stop_grace_period", "10s")) > duration_s(flag(a_args, "shutdown_grace", "30s")),
      "compose attnserve: stop_grace_period does not exceed --shutdown_grace")

# Prometheus: loads deploy/prometheus/prometheus.yml and its rules, scrapes attnserve.
prom_args = svcs["prometheus"].get("command", [])
config = flag(prom_args, "config.file", "/etc/prometheus/prometheus.yml")
check(container_path("prometheus", "prometheus/prometheus.yml") == config,
      f"compose prometheus: {config} is not deploy/prometheus/prometheus.yml")
check(container_path("prometheus", "prometheus/rules/attnserve_alerts.yml") is not None,
      "compose prometheus: the rules are not mounted")
prom = yaml.safe_load(open(base / "prometheus/prometheus.yml"))
targets = [t for job in prom["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
for t in targets:
    host, port = t.rsplit(":", 1)
    check(host in svcs, f"prometheus.yml target {t}: no compose service {host}")
    if host == "attnserve":
        check(int(port) == int(flag(a_args, "metrics_port", METRICS_PORT)), f"prometheus.yml target {t}: not the metrics port")

# Grafana: the provisioning and the dashboard where the provisioning says they are.
check(container_path("grafana", "grafana/provisioning/datasources/prometheus.yml") ==
      "/etc/grafana/provisioning/datasources/prometheus.yml", "compose grafana: provisioning not mounted")
providers = yaml.safe_load(open(base / "grafana/provisioning/dashboards/attnserve.yml"))["providers"]
dash = container_path("grafana", "grafana/dashboards/attnserve.json")
check(dash is not None and any(dash.startswith(p["options"]["path"]) for p in providers),
      "compose grafana: dashboards not mounted where the provider reads them")
for ds in yaml.safe_load(open(base / "grafana/provisioning/datasources/prometheus.yml"))["datasources"]:
    m = re.match(r"https?://([^:/]+):(\d+)", ds["url"])
    check(m and m.group(1) in svcs, f"grafana data source {ds['url']}: no compose service")

for e in errors:
    print(f"check_deploy: FAIL: {e}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"check_deploy: cross-references: {len(objs)} Kubernetes objects and "
      f"{len(svcs)} compose services consistent", file=sys.stderr)
EOF
log "PASS"
