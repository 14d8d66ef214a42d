"""Cross-resource checks of one rendered kustomization (the schemas cannot see these).

    check_manifests.py RENDERED.yaml --name NAME --stages-from shared/messages/src/lib.rs \
        --split-to DIR [--external-secret NAME=KEY,KEY ...] [--expect-namespace NS] [--production]

Writes DIR/NAME.core.yaml (core kinds, for kubernetes-validate) and DIR/NAME.crd.json (KEDA
custom resources, for validate-keda.mjs). Prints every problem found and exits 1 if any.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

# The worker's defaults when a variable is not set (shared/runtime/src/config.rs).
DEFAULT_DRAIN_DEADLINE_SECS = 25
DEFAULT_PREFETCH = 8

CONFIG_KEYS = {"REDIS_URL", "S3_ENDPOINT", "S3_BUCKET", "S3_REGION", "ADMIN_ADDR", "LOG_FORMAT", "RUST_LOG"}
SECRET_KEYS = {"AMQP_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
PART_OF = ("app.kubernetes.io/part-of", "sightline")
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1"}

# KEDA's models accept unknown fields, as a CRD without strict validation would: these lists
# catch typos such as `minReplicasCount` that KEDA would silently ignore.
SCALEDOBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                     "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced",
                     "triggers"}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
RABBITMQ_METADATA = {"host", "hostFromEnv", "protocol", "mode", "value", "activationValue", "queueName",
                     "vhostName", "useRegex", "excludeUnacknowledged", "pageSize", "operation", "timeout",
                     "unsafeSsl", "usernameFromEnv", "passwordFromEnv"}
TRIGGERAUTH_SPEC = {"secretTargetRef", "env", "configMapTargetRef", "podIdentity", "hashiCorpVault",
                    "azureKeyVault", "awsSecretManager", "gcpSecretManager", "boundServiceAccountToken"}
RABBITMQ_AUTH_PARAMS = {"host", "username", "password", "tls", "ca", "cert", "key", "keyPassword",
                        "unsafeSsl", "workloadIdentityResource"}


def quantity(q):
    """Kubernetes quantity -> float (cores or bytes)."""
    q = str(q)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", q)
    if not m or (m.group(2) and m.group(2) not in units):
        raise ValueError(f"bad quantity {q!r}")
    return float(m.group(1)) * units.get(m.group(2), 1)


class Checker:
    def __init__(self, name, docs, stages, external_secrets, namespace, production):
        self.name, self.docs, self.stages = name, docs, stages
        self.namespace, self.production = namespace, production
        self.errors = []
        self.by_kind = {}
        for d in docs:
            self.by_kind.setdefault(d["kind"], {})
            n = d["metadata"]["name"]
            if n in self.by_kind[d["kind"]]:
                self.err(f"{d['kind']}/{n} appears twice")
            self.by_kind[d["kind"]][n] = d
        # Secret name -> set of keys (rendered ones, plus those created out of band).
        self.secrets = {n: set(s.get("data", {})) | set(s.get("stringData", {}))
                        for n, s in self.of("Secret").items()}
        for n, keys in external_secrets.items():
            if n in self.secrets:
                self.err(f"Secret/{n} is rendered, but this overlay says it is created out of band")
            self.secrets[n] = keys
        self.configmaps = {n: c.get("data", {}) for n, c in self.of("ConfigMap").items()}

    def of(self, kind):
        return self.by_kind.get(kind, {})

    def err(self, msg):
        self.errors.append(msg)

    # ------------------------------------------------------------------ pods
    def env_of(self, container):
        """The container's environment as the kubelet builds it: envFrom in order, then env."""
        env = {}
        for src in container.get("envFrom", []):
            if "configMapRef" in src:
                env.update(self.configmaps.get(src["configMapRef"]["name"], {}))
            if "secretRef" in src:
                env.update({k: "<secret>" for k in self.secrets.get(src["secretRef"]["name"], ())})
        for e in container.get("env", []):
            env[e["name"]] = e.get("value", "<ref>")
        return env

    def check_pod(self, where, pod_spec, labels):
        if not pod_spec.get("securityContext", {}).get("runAsNonRoot"):
            self.err(f"{where}: pod securityContext.runAsNonRoot is not true")
        if labels.get(PART_OF[0]) != PART_OF[1]:
            self.err(f"{where}: pod template lacks label {PART_OF[0]}={PART_OF[1]}")
        volumes = {v["name"] for v in pod_spec.get("volumes", [])}
        for v in pod_spec.get("volumes", []):
            if "secret" in v and v["secret"].get("secretName") not in self.secrets:
                self.err(f"{where}: volume {v['name']} mounts Secret {v['secret'].get('secretName')}, which does not exist")
        for c in pod_spec.get("containers", []):
            cw = f"{where} container {c['name']}"
            for src in c.get("envFrom", []):
                if "configMapRef" in src and src["configMapRef"]["name"] not in self.configmaps:
                    self.err(f"{cw}: envFrom ConfigMap {src['configMapRef']['name']} does not exist")
                if "secretRef" in src and src["secretRef"]["name"] not in self.secrets:
                    self.err(f"{cw}: envFrom Secret {src['secretRef']['name']} does not exist")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    if r["key"] not in self.secrets.get(r["name"], ()):
                        self.err(f"{cw}: env {e['name']} refers to missing Secret key {r['name']}/{r['key']}")
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if r["key"] not in self.configmaps.get(r["name"], {}):
                        self.err(f"{cw}: env {e['name']} refers to missing ConfigMap key {r['name']}/{r['key']}")
            env_names = {e["name"] for e in c.get("env", [])}
            for arg in c.get("command", []) + c.get("args", []):
                for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                    if var not in env_names:
                        self.err(f"{cw}: command uses $({var}) but env has no {var}")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if port is None:
                    continue
                if isinstance(port, str) and port not in ports:
                    self.err(f"{cw}: {probe} uses port {port!r}, which the container does not name")
                if isinstance(port, int) and port not in ports.values():
                    self.err(f"{cw}: {probe} uses port {port}, which the container does not expose")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                self.err(f"{cw}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem"):
                mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                if "/tmp" not in mounts:
                    self.err(f"{cw}: read-only root filesystem without a volume on /tmp")
                elif mounts["/tmp"] not in volumes:
                    self.err(f"{cw}: /tmp mounts volume {mounts['/tmp']}, which the pod does not define")
            else:
                self.err(f"{cw}: readOnlyRootFilesystem is not true")
            res = c.get("resources", {})
            for kind in ("cpu", "memory"):
                req, lim = res.get("requests", {}).get(kind), res.get("limits", {}).get(kind)
                if req is None or lim is None:
                    self.err(f"{cw}: resources need a {kind} request and limit")
                elif quantity(lim) < quantity(req):
                    self.err(f"{cw}: {kind} limit {lim} is below the request {req}")
            image = c.get("image", "")
            if self.production and (image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
                                    and "@" not in image):
                self.err(f"{cw}: production image {image!r} is not pinned")

    # ------------------------------------------------------------ deployments
    def check_deployments(self):
        components = {}
        for n, d in self.of("Deployment").items():
            where = f"Deployment/{n}"
            spec = d["spec"]
            tmpl_labels = spec["template"]["metadata"].get("labels", {})
            sel = spec["selector"].get("matchLabels", {})
            if not sel or any(tmpl_labels.get(k) != v for k, v in sel.items()):
                self.err(f"{where}: selector {sel} does not match the template labels {tmpl_labels}")
            if "replicas" in spec:
                self.err(f"{where}: sets replicas, which its ScaledObject owns (an apply would reset it)")
            pod = spec["template"]["spec"]
            self.check_pod(where, pod, tmpl_labels)
            workers = [c for c in pod["containers"] if c["name"] == "worker"]
            if len(workers) != 1:
                self.err(f"{where}: expected one container named worker")
                continue
            c = workers[0]
            component = tmpl_labels.get("app.kubernetes.io/component")
            components[component] = n
            if n != f"sightline-{component}":
                self.err(f"{where}: name should be sightline-{component}")
            if c.get("command") != [f"sightline-{component}"]:
                self.err(f"{where}: command {c.get('command')} should be [sightline-{component}]")
            env = self.env_of(c)
            try:
                drain = int(env.get("DRAIN_DEADLINE_SECS", DEFAULT_DRAIN_DEADLINE_SECS))
            except ValueError:
                self.err(f"{where}: DRAIN_DEADLINE_SECS {env['DRAIN_DEADLINE_SECS']!r} is not an integer")
                continue
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if not isinstance(grace, int):
                self.err(f"{where}: terminationGracePeriodSeconds {grace!r} is not an integer")
            elif grace <= drain:
                self.err(f"{where}: terminationGracePeriodSeconds {grace} must exceed DRAIN_DEADLINE_SECS {drain}")
            missing = (CONFIG_KEYS | SECRET_KEYS) - set(env)
            if missing:
                self.err(f"{where}: environment lacks {sorted(missing)}")
            admin = env.get("ADMIN_ADDR", "127.0.0.1:9100")
            host, _, port = admin.rpartition(":")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if host in ("127.0.0.1", "localhost", "[::1]"):
                self.err(f"{where}: ADMIN_ADDR {admin} listens on loopback: probes and scrapes cannot reach it")
            if ports.get("admin") != int(port):
                self.err(f"{where}: port admin is {ports.get('admin')} but ADMIN_ADDR is {admin}")
            ann = spec["template"]["metadata"].get("annotations", {})
            if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != port:
                self.err(f"{where}: prometheus.io annotations do not point at the admin port {port}")
        if set(components) != set(self.stages):
            self.err(f"worker Deployments cover {sorted(components)}, the stages are {sorted(self.stages)}")
        return components

    # ---------------------------------------------------------- PDBs and KEDA
    def check_pdbs(self):
        covered = set()
        for n, p in self.of("PodDisruptionBudget").items():
            sel = p["spec"].get("selector", {}).get("matchLabels", {})
            hits = [dn for dn, d in self.of("Deployment").items()
                    if sel and all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v
                                   for k, v in sel.items())]
            if len(hits) != 1:
                self.err(f"PodDisruptionBudget/{n}: selector {sel} matches Deployments {hits}, expected exactly one")
            covered.update(hits)
        for dn in set(self.of("Deployment")) - covered:
            self.err(f"Deployment/{dn} has no PodDisruptionBudget")

    def check_keda(self):
        scaled = set()
        for n, so in self.of("ScaledObject").items():
            where = f"ScaledObject/{n}"
            spec = so["spec"]
            for k in set(spec) - SCALEDOBJECT_SPEC:
                self.err(f"{where}: unknown spec field {k!r}")
            target = spec.get("scaleTargetRef", {}).get("name")
            dep = self.of("Deployment").get(target)
            if dep is None:
                self.err(f"{where}: scaleTargetRef {target} is not a Deployment here")
                continue
            if target in scaled:
                self.err(f"{where}: Deployment {target} has two ScaledObjects")
            scaled.add(target)
            component = dep["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
            lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
            if not (isinstance(lo, int) and isinstance(hi, int)):
                self.err(f"{where}: minReplicaCount {lo!r} / maxReplicaCount {hi!r} must be integers")
            elif not 0 <= lo <= hi:
                self.err(f"{where}: minReplicaCount {lo} / maxReplicaCount {hi}")
            worker = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "worker")
            try:
                prefetch = int(self.env_of(worker).get("PREFETCH", DEFAULT_PREFETCH))
            except ValueError:
                self.err(f"{where}: PREFETCH of {target} is not an integer")
                continue
            triggers = spec.get("triggers", [])
            if len(triggers) != 1:
                self.err(f"{where}: expected one trigger, found {len(triggers)}")
            for t in triggers:
                for k in set(t) - TRIGGER:
                    self.err(f"{where}: unknown trigger field {k!r}")
                md = t.get("metadata", {})
                if t.get("type") != "rabbitmq":
                    self.err(f"{where}: trigger type {t.get('type')!r}, expected rabbitmq")
                    continue
                for k in set(md) - RABBITMQ_METADATA:
                    self.err(f"{where}: unknown rabbitmq trigger parameter {k!r}")
                if md.get("protocol") != "http":
                    self.err(f"{where}: protocol must be http (AMQP mode ignores unacknowledged messages)")
                if md.get("mode") != "QueueLength":
                    self.err(f"{where}: mode must be QueueLength")
                if md.get("excludeUnacknowledged") not in (None, "false"):
                    self.err(f"{where}: excludeUnacknowledged would scale busy workers away")
                if md.get("queueName") != f"sightline.{component}":
                    self.err(f"{where}: queueName {md.get('queueName')!r}, expected sightline.{component}")
                try:
                    value = float(md.get("value", ""))
                except ValueError:
                    self.err(f"{where}: value {md.get('value')!r} is not a number")
                    value = None
                if value is not None and value <= prefetch:
                    self.err(f"{where}: value {value:g} must exceed PREFETCH {prefetch}: one busy replica "
                             f"holds PREFETCH unacknowledged messages and would ask for a second")
                auth = t.get("authenticationRef", {}).get("name")
                if auth is None and "host" not in md and "hostFromEnv" not in md:
                    self.err(f"{where}: no authenticationRef and no host")
                if auth is not None and auth not in self.of("TriggerAuthentication"):
                    self.err(f"{where}: authenticationRef {auth} is not a TriggerAuthentication here")
        for dn in set(self.of("Deployment")) - scaled:
            self.err(f"Deployment/{dn} has no ScaledObject")
        for n, ta in self.of("TriggerAuthentication").items():
            where = f"TriggerAuthentication/{n}"
            for k in set(ta["spec"]) - TRIGGERAUTH_SPEC:
                self.err(f"{where}: unknown spec field {k!r}")
            for ref in ta["spec"].get("secretTargetRef", []):
                if ref.get("parameter") not in RABBITMQ_AUTH_PARAMS:
                    self.err(f"{where}: parameter {ref.get('parameter')!r} is not one the rabbitmq scaler reads")
                if ref["key"] not in self.secrets.get(ref["name"], ()):
                    self.err(f"{where}: Secret key {ref['name']}/{ref['key']} does not exist")

    def check_cronjobs(self):
        for n, cj in self.of("CronJob").items():
            tmpl = cj["spec"]["jobTemplate"]["spec"]["template"]
            self.check_pod(f"CronJob/{n}", tmpl["spec"], tmpl["metadata"].get("labels", {}))
            if n == "sightline-dlq-replay" and cj["spec"].get("suspend") is not True:
                self.err(f"CronJob/{n} must stay suspended: it is a template for manual runs")

    def check_common(self):
        for d in self.docs:
            where = f"{d['kind']}/{d['metadata']['name']}"
            if d["metadata"].get("labels", {}).get(PART_OF[0]) != PART_OF[1]:
                self.err(f"{where}: lacks label {PART_OF[0]}={PART_OF[1]}")
            ns = d["metadata"].get("namespace")
            if d["kind"] != "Namespace" and ns != self.namespace:
                self.err(f"{where}: namespace {ns!r}, expected {self.namespace!r}")
        for n, keys in self.secrets.items():
            if n == "sightline-secrets" and SECRET_KEYS - keys:
                self.err(f"Secret/{n} lacks {sorted(SECRET_KEYS - keys)}")
        if self.production and self.of("Secret"):
            self.err(f"production renders Secrets {sorted(self.of('Secret'))}: an apply would overwrite the real ones")

    # ---------------------------------------------------------- NetworkPolicies
    def check_network_policies(self):
        """Every pod template is under a default deny (a policy selecting it with both policy
        types and no rules), and every named port a policy allows exists on the pods it selects."""
        pods = [(f"Deployment/{n}", d["spec"]["template"]) for n, d in self.of("Deployment").items()]
        pods += [(f"CronJob/{n}", c["spec"]["jobTemplate"]["spec"]["template"]) for n, c in self.of("CronJob").items()]
        policies = self.of("NetworkPolicy")

        def selects(pol, tmpl):
            sel = pol["spec"].get("podSelector", {}).get("matchLabels", {})
            labels = tmpl["metadata"].get("labels", {})
            return all(labels.get(k) == v for k, v in sel.items())

        for where, tmpl in pods:
            deny = [n for n, p in policies.items() if selects(p, tmpl)
                    and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
                    and not p["spec"].get("ingress") and not p["spec"].get("egress")]
            if not deny:
                self.err(f"{where}: no default-deny NetworkPolicy selects its pods")
            ports = {p.get("name") for c in tmpl["spec"].get("containers", []) for p in c.get("ports", [])}
            for n, pol in policies.items():
                if not selects(pol, tmpl):
                    continue
                for rule in pol["spec"].get("ingress", []):
                    for port in rule.get("ports", []):
                        if where.startswith("Deployment/") and isinstance(port.get("port"), str) \
                                and port["port"] not in ports:
                            self.err(f"NetworkPolicy/{n}: allows port {port['port']!r}, which {where} does not name")
        if not policies:
            self.err("no NetworkPolicy rendered")

    def run(self):
        self.check_common()
        self.check_network_policies()
        self.check_deployments()
        self.check_pdbs()
        self.check_keda()
        self.check_cronjobs()
        return self.errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--name", required=True)
    ap.add_argument("--stages-from", required=True)
    ap.add_argument("--split-to", required=True)
    ap.add_argument("--external-secret", action="append", default=[])
    ap.add_argument("--expect-namespace", default=None)
    ap.add_argument("--production", action="store_true")
    a = ap.parse_args()

    src = Path(a.stages_from).read_text()
    m = re.search(r"pub const STAGES: \[&str; \d+\] = \[(.*?)\];", src, re.S)
    if not m:
        sys.exit(f"check_manifests.py: cannot find STAGES in {a.stages_from}")
    stages = re.findall(r'"([a-z]+)"', m.group(1))
    external = {}
    for spec in a.external_secret:
        n, _, keys = spec.partition("=")
        external[n] = set(keys.split(",")) if keys else set()

    docs = [d for d in yaml.safe_load_all(Path(a.rendered).read_text()) if d]
    try:
        errors = Checker(a.name, docs, stages, external, a.expect_namespace, a.production).run()
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as e:
        # Malformed input the checks did not foresee: report it, do not pass.
        errors = [f"cannot check {a.rendered}: {type(e).__name__}: {e} (malformed manifest?)"]

    out = Path(a.split_to)
    core = [d for d in docs if d["apiVersion"] in CORE_GROUPS]
    crd = [d for d in docs if d["apiVersion"] not in CORE_GROUPS]
    (out / f"{a.name}.core.yaml").write_text(yaml.safe_dump_all(core, sort_keys=False))
    (out / f"{a.name}.crd.json").write_text(json.dumps(crd))

    kinds = {}
    for d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
    if errors:
        print(f"  {a.name}: {len(errors)} problem(s):", *errors, sep="\n    ", file=sys.stderr)
        sys.exit(1)
    print(f"  {a.name}: ok ({summary})")


if __name__ == "__main__":
    main()
