"""The Kubernetes manifests: schema-valid for 1.30 (kubernetes-validate --strict), hardened, by digest, in sync with infra/k8s/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from slipway.deploy import k8s_manifests as m
from slipway.deploy.base import ModelRelease, require_digest
from slipway.errors import DeployError

INFRA = Path(__file__).resolve().parents[2] / "infra" / "k8s"
DIGEST = "sha256:" + "ab" * 32
RELEASE = ModelRelease(
    model_name="m", model_version="7", image_ref=f"reg:5000/slipway/serve@{DIGEST}", env={"A": "1"}
)


def examples() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{name}#{i}", obj) for name, objs in m.example_manifests().items() for i, obj in enumerate(objs)
    ]


@pytest.mark.parametrize(("name", "obj"), examples(), ids=[n for n, _ in examples()])
def test_every_manifest_passes_kubernetes_validate_strict_for_1_30(name: str, obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.30.0", strict=True)


@pytest.mark.parametrize("api_version", m.HPA_API_VERSIONS)
def test_every_hpa_shape_is_valid_where_its_api_exists(api_version: str) -> None:
    obj = m.hpa(app="a", namespace="n", api_version=api_version, min_replicas=9, max_replicas=30)
    # autoscaling/v2beta2 (what 1.20 offers) left the API in 1.26: check it against 1.25's schema
    kubernetes_validate.validate(obj, "1.25.0" if api_version.endswith("beta2") else "1.30.0", strict=True)


def test_the_hpa_scales_on_the_request_rate_per_pod_and_cpu_either_of_which_can_be_off() -> None:
    both = m.hpa(app="a", namespace="n", api_version="autoscaling/v2", min_replicas=3, max_replicas=9)
    assert [metric["type"] for metric in both["spec"]["metrics"]] == ["Pods", "Resource"]
    assert both["spec"]["metrics"][0]["pods"] == {
        "metric": {"name": "slipway_requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "20"},
    }
    rate = m.hpa(
        app="a",
        namespace="n",
        api_version="autoscaling/v2beta2",
        min_replicas=3,
        max_replicas=9,
        autoscaling=m.Autoscaling(requests_per_pod=2.5, cpu_utilization=None),
    )
    assert rate["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "slipway_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "2500m"},
            },
        }
    ]
    with pytest.raises(DeployError, match="request rate or a CPU target"):
        m.hpa(
            app="a",
            namespace="n",
            api_version="autoscaling/v2",
            min_replicas=3,
            max_replicas=9,
            autoscaling=m.Autoscaling(requests_per_pod=None, cpu_utilization=None),
        )


@pytest.mark.parametrize(
    ("stable", "weight", "canary"),
    [
        (9, 10, 1),  # at the floor: the split of 10 pods
        (8, 15, 2),  # at the floor: the split rounds 1.5 up
        (18, 10, 2),  # the HPA doubled the stable: so does the canary
        (12, 10, 1),  # 1.33 rounds down: 1 of 13 pods
        (14, 10, 2),  # 1.56 rounds up: 2 of 16 pods
        (7, 50, 7),  # half the pods, whatever the stable's size
        (30, 90, 40),  # capped at `most`
    ],
)
def test_the_canary_follows_the_stables_size_at_its_weight(stable: int, weight: int, canary: int) -> None:
    assert m.canary_replicas(stable=stable, weight=weight, total=10, most=40) == canary


def test_infra_k8s_files_are_what_the_code_renders() -> None:
    for name, objects in m.example_manifests().items():
        committed = list(yaml.safe_load_all((INFRA / name).read_text()))
        assert committed == objects, f"infra/k8s/{name} is stale: run `.venv/bin/python infra/k8s/render.py`"


def test_the_rendered_pods_write_prediction_records_to_stdout_for_the_log_pipeline() -> None:
    for name in ("rendered/stable.yaml", "rendered/canary.yaml"):
        committed = list(yaml.safe_load_all((INFRA / name).read_text()))
        (container,) = committed[0]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["SLIPWAY_SERVE_LOG_PREDICTIONS"] == "stdout", name
        assert "SLIPWAY_SERVE_LOG_PREDICTIONS_PATH" not in env  # a pod's files are not where logs are read


def test_pods_are_hardened_and_probed() -> None:
    dep = m.deployment(app="a", namespace="n", arm="canary", release=RELEASE, replicas=2)
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"][0]["containerPort"] == 8080
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["image"] == RELEASE.image_ref
    assert container["env"] == [{"name": "A", "value": "1"}]


def test_labels_tie_arms_to_one_service() -> None:
    svc = m.service(app="a", namespace="n")
    for arm in ("stable", "canary"):
        dep = m.deployment(app="a", namespace="n", arm=arm, release=RELEASE, replicas=1)
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["metadata"]["name"] == f"a-{arm}"
        assert dep["spec"]["selector"]["matchLabels"] == {"app": "a", "arm": arm}  # immutable: no version
        assert pod_labels["model-version"] == "7"
        assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["selector"] == {"app": "a"}


@pytest.mark.parametrize(
    "ref",
    [
        "reg/serve:1.0",
        "reg/serve",
        "reg/serve@sha256:abc",
        f"reg/serve@sha512:{'a' * 64}",
        f"https://reg/serve@{DIGEST}",
        f"reg/serve@{DIGEST.upper()}",
        "",
        None,
    ],
)
def test_an_image_not_pinned_by_digest_is_refused(ref: str | None) -> None:
    with pytest.raises(DeployError, match="stable m v1"):
        require_digest(ref, target="kubernetes", what="stable m v1")
    release = ModelRelease(model_name="m", model_version="1", image_ref=ref)
    with pytest.raises(DeployError, match="m v1"):
        m.deployment(app="a", namespace="n", arm="stable", release=release, replicas=1)


@pytest.mark.parametrize(
    "ref", [f"serve@{DIGEST}", f"127.0.0.1:5000/slipway/serve@{DIGEST}", f"r/s:1.0@{DIGEST}"]
)
def test_a_digest_reference_is_accepted(ref: str) -> None:
    assert require_digest(ref, target="kubernetes", what="stable m v1") == ref


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [
        (10, 0, (10, 0)),
        (10, 1, (9, 1)),  # any positive weight gets a pod
        (10, 10, (9, 1)),
        (10, 15, (8, 2)),  # half up
        (10, 25, (7, 3)),
        (10, 50, (5, 5)),
        (10, 94, (1, 9)),
        (10, 100, (1, 9)),  # at least one stable until promote
        (4, 50, (2, 2)),
        (2, 100, (1, 1)),
    ],
)
def test_weight_maps_to_a_replica_ratio(total: int, weight: int, split: tuple[int, int]) -> None:
    assert m.split_replicas(total=total, weight=weight) == split
    assert m.weight_of(stable=split[0], canary=split[1]) == round(100 * split[1] / total)


@pytest.mark.parametrize(("total", "weight"), [(1, 0), (10, -1), (10, 101)])
def test_impossible_splits_are_refused(total: int, weight: int) -> None:
    with pytest.raises(DeployError):
        m.split_replicas(total=total, weight=weight)


def test_model_versions_must_be_label_values() -> None:
    bad = ModelRelease(model_name="m", model_version="v 1/2", image_ref=f"r/s@{DIGEST}")
    with pytest.raises(DeployError, match="model version 'v 1/2'"):
        m.deployment(app="a", namespace="n", arm="stable", release=bad, replicas=1)


def test_the_role_is_namespaced_and_grants_no_secrets_or_rbac() -> None:
    sa, role, binding = m.rbac(namespace="ns")
    assert (sa["kind"], role["kind"], binding["kind"]) == ("ServiceAccount", "Role", "RoleBinding")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {
        ("apps", "deployments"),
        ("", "services"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("", "pods"),
        ("", "pods/proxy"),  # canary analysis scrapes each pod's /metrics through the API server
        ("coordination.k8s.io", "leases"),  # the release lease: one release at a time
    }
    verbs = {r: set(rule["verbs"]) for rule in role["rules"] for r in rule["resources"]}
    assert verbs["pods"] == {"get", "list", "watch"}
    assert verbs["pods/proxy"] == {"get", "create"}  # scrape /metrics, POST /lease; no PUT/DELETE through it
    assert verbs["leases"] == {"get", "create", "update", "delete"}  # compare-and-swap on resourceVersion
    assert "update" not in set().union(*(v for r, v in verbs.items() if r != "leases"))
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "slipway-deployer", "namespace": "ns"}]


def test_yaml_has_no_anchors() -> None:
    text = m.to_yaml(m.example_manifests()["rendered/stable.yaml"])
    assert "&id" not in text and "*id" not in text


def test_a_canary_pods_lease_is_the_targets_and_never_reaches_the_stable() -> None:
    from dataclasses import replace

    from slipway.deploy.kubernetes import _release_of

    leased = replace(RELEASE, env={**RELEASE.env, "SLIPWAY_SERVE_LOG_SAMPLE_RATE": "0.2", m.LEASE_ENV: "135"})
    canary = m.deployment(
        app="serve",
        namespace="ns",
        arm="canary",
        release=leased,
        replicas=1,
        resources=m.PodResources(),
        weight=5,
    )
    assert _release_of(canary).env == {
        **RELEASE.env,
        "SLIPWAY_SERVE_LOG_SAMPLE_RATE": "0.2",
    }  # promote copies this
