"""The Helm chart, rendered by Helm's own engine (helm-python-sdk: Helm v4's Go SDK), linted,
validated against the Kubernetes JSON schemas, and checked for what docs/deploy.md promises."""

import re

import kubernetes_validate
import pytest
from helm_python import chart as helm_chart
from helm_python.errors import HelmError

from conftest import CHART, REQUIRED, by_kind, container, env_of, merge, render

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version()]

VARIATIONS = {
    "defaults": {},
    "five-replicas": {"replicaCount": 5},
    "no-networkpolicy-no-pdb": {"networkPolicy": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
    "existing-secrets": {
        "tls": {"existingSecret": "vault-cert"},
        "store": {"existingSecret": "pg-url", "key": "DATABASE_URL", "caSecret": "pg-ca", "caKey": "root.pem"},
    },
    "hard-anti-affinity": {"podAntiAffinity": "hard"},
    "config-file": {
        "server": {
            "publicUrl": "https://vault.example.com",
            "config": "max_connections = 512\nheader_read_timeout_secs = 15\n",
        }
    },
    "narrowed-network": {
        "networkPolicy": {
            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}],
            "database": {"ports": [5432, 6432], "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}]},
        }
    },
    "own-service-account": {"serviceAccount": {"create": False, "name": "enclava-sa"}},
}


@pytest.mark.parametrize("name", sorted(VARIATIONS))
def test_every_variation_meets_the_values_schema(name):
    with helm_chart.Chart.load(CHART) as chart:
        chart.validate_schema(merge(REQUIRED, VARIATIONS[name]))


def test_helm_lint_strict_has_no_warnings():
    report = helm_chart.lint(CHART, REQUIRED, strict=True)
    assert report["errors"] == [], report
    # Severity 1 is informational ("icon is recommended"); warnings (2) and errors (3) fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize("name", sorted(VARIATIONS))
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(name, kube):
    docs = render(VARIATIONS[name])
    assert docs
    for doc in docs:
        # strict: unknown fields (a typo such as `readOnlyRootFileSystem`) are errors too.
        kubernetes_validate.validate(doc, kube, strict=True)


def test_the_schema_check_rejects_a_broken_object():
    """The validator really fails: a misspelled field and a wrong type are caught."""
    docs = by_kind(render())
    dep = docs["Deployment"]
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSIONS[-1], strict=True)
    dep = by_kind(render())["Deployment"]
    dep["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    "values,message",
    [
        ({"store": {"existingSecret": "db"}}, "tls.existingSecret is required"),
        ({"tls": {"existingSecret": "tls"}}, "store.existingSecret is required"),
        (
            {"tls": {"existingSecret": "tls"}, "store": {"existingSecret": "db"}, "podAntiAffinity": "sometimes"},
            "at '/podAntiAffinity': value must be one of 'soft', 'hard'",
        ),
        # values.schema.json: a misspelled key is an error, not a silently ignored setting.
        (
            {"tls": {"existingSecret": "tls"}, "store": {"existingSecret": "db"}, "replicas": 5},
            "additional properties 'replicas' not allowed",
        ),
        (
            {"tls": {"existingSecret": "tls"}, "store": {"existingSecret": "db"}, "replicaCount": "3"},
            "at '/replicaCount': got string, want integer",
        ),
        (
            {"tls": {"existingSecret": "tls"}, "store": {"existingSecret": "db"}, "server": {"config": {"max_connections": 5}}},
            "at '/server/config': got object, want string",
        ),
        (
            {"tls": {"existingSecret": "tls"}, "store": {"existingSecret": "db"}, "server": {"publicUrl": "https://v.example/path"}},
            "at '/server/publicUrl'",
        ),
    ],
)
def test_missing_secrets_and_bad_values_refuse_to_render(values, message):
    """`required` in the templates and values.schema.json, as Helm applies them."""
    with pytest.raises(HelmError) as e:
        render(values, required=False)
    assert message in str(e.value)


def test_defaults():
    docs = render()
    kinds = by_kind(docs)
    assert set(kinds) == {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"}
    dep = kinds["Deployment"]
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert dep["spec"]["replicas"] == 3
    # Rolling update that never drops below N ready replicas (new pods wait to be unsealed).
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}

    c = container(docs)
    assert c["args"] == ["server"]
    [port] = c["ports"]
    assert port == {"name": "https", "containerPort": 8443, "protocol": "TCP"}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}

    env = env_of(c)
    assert env["ENCLAVA_ADDR"]["value"] == "0.0.0.0:8443"
    assert env["ENCLAVA_STORE"]["valueFrom"] == {"secretKeyRef": {"name": "enclava-store", "key": "url"}}
    assert "value" not in env["ENCLAVA_STORE"]

    # TLS from the mounted kubernetes.io/tls Secret; the env paths point into that mount.
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["tls"]["secret"]["secretName"] == "enclava-tls"
    assert mounts["tls"]["readOnly"] is True
    for var, key in (("ENCLAVA_TLS_CERT", "tls.crt"), ("ENCLAVA_TLS_KEY", "tls.key")):
        assert env[var]["value"] == f"{mounts['tls']['mountPath']}/{key}"
    # The data directory is a volume: the root filesystem stays read-only.
    assert env["ENCLAVA_DATA_DIR"]["value"] == mounts["data"]["mountPath"]
    assert "emptyDir" in vols["data"]

    # Resources: requests and limits.
    assert set(c["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])

    # Hardening.
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    psc = pod["spec"]["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    sa = kinds["ServiceAccount"]
    assert sa["automountServiceAccountToken"] is False
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]

    # Anti-affinity on this release's pods, per node.
    [term] = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector

    # Service and PDB select exactly these pods.
    svc = kinds["Service"]
    assert svc["spec"]["selector"] == selector
    assert svc["spec"]["ports"][0]["targetPort"] == "https"
    pdb = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["maxUnavailable"] == 1


def test_network_policy_allows_the_server_port_in_and_only_database_and_dns_out():
    np = by_kind(render())["NetworkPolicy"]["spec"]
    assert sorted(np["policyTypes"]) == ["Egress", "Ingress"]
    [ingress] = np["ingress"]
    assert ingress["ports"] == [{"port": "https", "protocol": "TCP"}]
    assert "from" not in ingress  # any source by default (every request is authenticated)
    db, dns = np["egress"]
    assert db["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    # No egress rule without ports (that would open every port).
    assert all(rule.get("ports") for rule in np["egress"])


def test_network_policy_narrowed():
    np = by_kind(render(VARIATIONS["narrowed-network"]))["NetworkPolicy"]["spec"]
    assert np["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}]
    db = np["egress"][0]
    assert [p["port"] for p in db["ports"]] == [5432, 6432]
    assert db["to"] == [{"ipBlock": {"cidr": "10.20.0.0/24"}}]


def test_replicas_variation():
    assert by_kind(render({"replicaCount": 5}))["Deployment"]["spec"]["replicas"] == 5


def test_without_network_policy_and_pdb():
    kinds = by_kind(render(VARIATIONS["no-networkpolicy-no-pdb"]))
    assert "NetworkPolicy" not in kinds and "PodDisruptionBudget" not in kinds
    assert "Deployment" in kinds


def test_existing_secret_names():
    docs = render(VARIATIONS["existing-secrets"])
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    c = container(docs)
    env = env_of(c)
    assert env["ENCLAVA_STORE"]["valueFrom"]["secretKeyRef"] == {"name": "pg-url", "key": "DATABASE_URL"}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["tls"]["secret"]["secretName"] == "vault-cert"
    assert vols["store-ca"]["secret"]["secretName"] == "pg-ca"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["ENCLAVA_STORE_CA_FILE"]["value"] == f"{mounts['store-ca']}/root.pem"


def test_hard_anti_affinity():
    pod = by_kind(render({"podAntiAffinity": "hard"}))["Deployment"]["spec"]["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]
    assert list(anti) == ["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_config_file_variation():
    docs = render(VARIATIONS["config-file"])
    kinds = by_kind(docs)
    toml = kinds["ConfigMap"]["data"]["enclava.toml"]
    assert re.search(r"(?m)^max_connections = 512$", toml), toml
    c = container(docs)
    env = env_of(c)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["ENCLAVA_CONFIG"]["value"] == f"{mounts['config']}/enclava.toml"
    assert env["ENCLAVA_PUBLIC_URL"]["value"] == "https://vault.example.com"
    # A configuration change rolls the pods.
    assert "checksum/config" in kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]


def test_own_service_account():
    kinds = by_kind(render(VARIATIONS["own-service-account"]))
    assert "ServiceAccount" not in kinds
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "enclava-sa"
    assert pod["automountServiceAccountToken"] is False


def test_no_secret_material_in_the_chart_output():
    """The chart renders no Secret and no literal database URL or key: they come from Secrets."""
    for name, values in VARIATIONS.items():
        text = repr(render(values))
        kinds = {d["kind"] for d in render(values)}
        assert "Secret" not in kinds, name
        assert "postgres://" not in text and "PRIVATE KEY" not in text, name


def test_every_env_var_is_a_server_setting(server_help):
    """Each ENCLAVA_* variable the chart sets is one the server reads (`enclava server --help`
    names them as [env: ...]; ENCLAVA_CONFIG is the --config flag's)."""
    known = set(re.findall(r"ENCLAVA_[A-Z_]+", server_help))
    assert {"ENCLAVA_STORE", "ENCLAVA_CONFIG", "ENCLAVA_TLS_CERT"} <= known, sorted(known)
    for name, values in VARIATIONS.items():
        for var in env_of(container(render(values))):
            assert var in known, f"{name}: {var} is not a setting of `enclava server`"
