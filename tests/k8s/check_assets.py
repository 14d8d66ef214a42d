"""Checks of the deployment assets beside the manifests.

    check_assets.py dashboard REPO        Grafana dashboard: structure, PromQL parses, metric
                                          names match docs/metrics.md (both ways)
    check_assets.py dockerfile REPO       deploy/Dockerfile parses (Docker's parser) and agrees
                                          with the models manifest and the Kubernetes manifests
    check_assets.py docs REPO KUBECTL     every `kubectl kustomize ...` line in the code blocks of
                                          docs/kubernetes.md runs

Prints the problems and exits 1 if any.
"""

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

errors = []


def err(msg):
    errors.append(msg)


def documented_metrics(repo):
    """Metric names in the first column of the tables of docs/metrics.md."""
    text = (repo / "docs/metrics.md").read_text()
    return set(re.findall(r"^\| `((?:sightline|rabbitmq)_[a-z0-9_]+)` \|", text, re.M))


# Grafana's variables and macros, replaced by something PromQL accepts before parsing.
GRAFANA_VARS = [
    (r"\$\{stage(:regex)?\}", "[a-z]+"),
    (r"\$stage\b", "[a-z]+"),
    (r"\$__rate_interval\b", "5m"),
    (r"\$__interval\b", "1m"),
    (r"\$__range\b", "1h"),
]


def check_dashboard(repo):
    import promql_parser

    path = repo / "deploy/grafana/sightline-dashboard.json"
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        err(f"{path}: not JSON: {e}")
        return
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dash:
            err(f"dashboard has no {key}")
    variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    ids, used = set(), set()
    for p in dash.get("panels", []):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            err(f"{where}: duplicate id")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24:
            err(f"{where}: wider than the 24-column grid")
        if p["type"] in ("row", "text"):
            continue
        targets = p.get("targets", [])
        if not targets:
            err(f"{where}: no queries")
        if len({t.get("refId") for t in targets}) != len(targets):
            err(f"{where}: duplicate refIds")
        for t in targets:
            expr = t.get("expr", "")
            for var in re.findall(r"\$\{?([A-Za-z_]\w*)", expr):
                if not var.startswith("__") and var not in variables:
                    err(f"{where}: uses ${var}, which is not a dashboard variable")
            concrete = expr
            for pattern, value in GRAFANA_VARS:
                concrete = re.sub(pattern, value, concrete)
            try:
                promql_parser.parse(concrete)
            except Exception as e:  # the parser raises ValueError with its message
                err(f"{where}: PromQL does not parse: {e}\n      {concrete}")
            for name in re.findall(r"\b((?:sightline|rabbitmq)_[a-z0-9_]+)", expr):
                used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    documented = documented_metrics(repo)
    if not documented:
        err("docs/metrics.md lists no metrics")
    for name in sorted(used - documented):
        err(f"dashboard queries {name}, which docs/metrics.md does not list")
    for name in sorted(documented - used):
        err(f"docs/metrics.md lists {name}, which no dashboard panel shows")
    if not errors:
        print(f"  dashboard: ok ({len(ids)} panels, {len(used)} metrics, all PromQL parses)")


def check_dockerfile(repo):
    import dockerfile

    path = repo / "deploy/Dockerfile"
    try:
        cmds = dockerfile.parse_file(str(path))
    except dockerfile.GoParseError as e:
        err(f"{path}: {e}")
        return
    stages, current, env, user = [], None, {}, None
    runs = []
    for c in cmds:
        if c.cmd == "FROM":
            name = c.value[2] if len(c.value) >= 3 and c.value[1].upper() == "AS" else None
            current = {"image": c.value[0], "name": name}
            stages.append(current)
            env, user = {}, None
        elif c.cmd == "ENV":
            env.update(dict(zip(c.value[::2], c.value[1::2])))
            current["env"] = env
        elif c.cmd == "USER":
            user = c.value[0]
            current["user"] = user
        elif c.cmd == "RUN":
            runs.append((current["name"], c.value[0]))
        elif c.cmd == "COPY":
            src_from = [f.split("=", 1)[1] for f in c.flags if f.startswith("--from=")]
            if src_from:
                if src_from[0] not in {s["name"] for s in stages[:-1]}:
                    err(f"Dockerfile line {c.start_line}: COPY --from={src_from[0]} names no earlier stage")
            else:
                for src in c.value[:-1]:
                    if not (repo / src).exists():
                        err(f"Dockerfile line {c.start_line}: COPY source {src} does not exist")
    names = [s["name"] for s in stages]
    if names[:2] != ["builder", "models"] or len(stages) != 3:
        err(f"Dockerfile stages {names}: expected builder, models, then the runtime")
    if stages and stages[0]["image"] != "rust:1.95-bookworm":
        err(f"builder image {stages[0]['image']}, expected rust:1.95-bookworm")
    if not any(n == "builder" and "cargo build --release --locked" in r for n, r in runs):
        err("builder does not run cargo build --release --locked")
    if not any(n == "models" and "models/fetch.sh" in r for n, r in runs):
        err("models stage does not run models/fetch.sh")
    runtime = stages[-1] if stages else {}
    if runtime.get("user", "").split(":")[0] != "10001":
        err(f"runtime USER is {runtime.get('user')!r}, expected 10001 (numeric, for runAsNonRoot)")
    manifest = tomllib.loads((repo / "models/manifest.toml").read_text())
    renv = runtime.get("env", {})
    models = renv.get("SIGHTLINE_MODELS")
    want_lib = f"{models}/{manifest['onnxruntime']['local']}"
    if renv.get("ORT_DYLIB_PATH") != want_lib:
        err(f"ORT_DYLIB_PATH is {renv.get('ORT_DYLIB_PATH')!r}; models/fetch.sh puts the library at {want_lib}")
    ignore = [ln.strip() for ln in (repo / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.lstrip().startswith("#")]
    for must in ("target/", ".git/"):
        if must not in ignore:
            err(f".dockerignore does not exclude {must}")
    for keep in ("models/", "shared/", "services/", "Cargo.lock", "Cargo.toml"):
        if keep in ignore or keep.rstrip("/") in ignore:
            err(f".dockerignore excludes {keep}, which the build needs")

    # The binaries the manifests run must be ones the workspace builds.
    commands = set()
    for f in (repo / "k8s/base").rglob("*.yaml"):
        commands.update(re.findall(r'command: \["(sightline[a-z-]*)"', f.read_text()))
    try:
        meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
                                         cwd=repo, capture_output=True, text=True, check=True).stdout)
        bins = {t["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
        missing = sorted(commands - bins)
        if missing:
            # The stage binaries are being written; until they exist this is a warning.
            print(f"  WARN: the manifests run {missing}, which the workspace does not build (yet)")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"  WARN: cannot list the workspace's binaries with cargo metadata: {e}")
    if not errors:
        print(f"  Dockerfile: ok (stages {names}, USER {runtime.get('user')}, ORT_DYLIB_PATH {want_lib})")


def check_docs(repo, kubectl):
    for doc in ("docs/kubernetes.md", "README.md"):
        text = (repo / doc).read_text()
        blocks = re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```", text, re.M | re.S)
        lines = [ln.strip() for b in blocks for ln in b.splitlines()]
        renders = [ln for ln in lines if ln.startswith("kubectl kustomize ")]
        if not renders:
            err(f"{doc} shows no `kubectl kustomize` command")
        for ln in renders:
            argv = shlex.split(ln.split(" #", 1)[0].split("|", 1)[0].split(">", 1)[0])
            r = subprocess.run([kubectl, *argv[1:]], cwd=repo, capture_output=True, text=True)
            if r.returncode != 0:
                err(f"{doc}: `{ln}` failed: {r.stderr.strip()[:300]}")
        if not errors:
            print(f"  {doc}: ok ({len(renders)} render commands run)")


def main():
    what, repo = sys.argv[1], Path(sys.argv[2]).resolve()
    if what == "dashboard":
        check_dashboard(repo)
    elif what == "dockerfile":
        check_dockerfile(repo)
    elif what == "docs":
        check_docs(repo, sys.argv[3])
    else:
        sys.exit(f"unknown check {what}")
    if errors:
        print(f"  {what}: {len(errors)} problem(s):", *errors, sep="\n    ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
