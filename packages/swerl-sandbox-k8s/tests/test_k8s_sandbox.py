"""k8s sandbox options and preflight checks, with kubeconfig files written per test."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from swerl.config.load import ConfigError
from swerl.errors import NotYetAvailable
from swerl.preflight import Status
from swerl_sandbox_k8s.component import K8sSandboxOptions


def k8s(**options):
    return {"name": "k8s", "options": options}


def kubeconfig(path: Path, contexts: dict[str, str], current: str | None = None, **extra) -> Path:
    """A kubeconfig with one cluster per context (context name -> cluster name)."""
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": c, "cluster": {"server": f"https://{c}.example:6443"}}
            for c in sorted(set(contexts.values()))
        ],
        "contexts": [
            {"name": n, "context": {"cluster": c, "user": "admin"}} for n, c in contexts.items()
        ],
        "users": [{"name": "admin", "user": {"token": "not-a-real-token"}}],
        **extra,
    }
    if current is not None:
        data["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME without KUBECONFIG, and a PATH that holds a fake kubectl."""
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text("#!/bin/sh\nexit 0\n")
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return home


def context_row(report):
    (row,) = [c for c in report.checks if c.name == "kube context"]
    return row


# --- options ------------------------------------------------------------------------------------


def test_bad_options_name_their_key_path(load, cfg):
    text = cfg(
        sandbox=k8s(
            namespace="Team_A",
            cpu_limit="two",
            memory_limit="4GB",
            labels={"team/": "x", "ok": "-bad"},
            image_pull_secret="My Secret",
        )
    )
    with pytest.raises(ConfigError) as info:
        load(text)
    issues = {i.path: i.message for i in info.value.issues}
    assert set(issues) == {
        "sandbox.options.namespace",
        "sandbox.options.cpu_limit",
        "sandbox.options.memory_limit",
        "sandbox.options.labels",
        "sandbox.options.image_pull_secret",
    }
    assert "'Team_A' is not a valid namespace" in issues["sandbox.options.namespace"]
    assert "'500m'" in issues["sandbox.options.cpu_limit"]
    assert "'4Gi'" in issues["sandbox.options.memory_limit"]


@pytest.mark.parametrize(("cpu", "memory"), [("2", "4Gi"), ("0.5", "512Mi"), ("250m", "1G")])
def test_kubernetes_quantities_are_accepted(cpu, memory):
    opts = K8sSandboxOptions(cpu_limit=cpu, memory_limit=memory)
    assert (opts.cpu_limit, opts.memory_limit) == (cpu, memory)


@pytest.mark.parametrize("cpu", ["0", "0m", "-1", "1.5m", "1 core"])
def test_bad_cpu_quantities_are_refused(cpu):
    with pytest.raises(ValueError, match="not a CPU quantity"):
        K8sSandboxOptions(cpu_limit=cpu)


def test_labels_with_prefixes_and_empty_values_are_valid():
    labels = {"example.com/team": "rl", "tier": ""}
    assert K8sSandboxOptions(labels=labels, node_selector={"gpu": "none"}).labels == labels


def test_defaults(load, cfg):
    opts = load(cfg(sandbox=k8s())).options["sandbox"]
    assert isinstance(opts, K8sSandboxOptions)
    assert (opts.namespace, opts.context, opts.kubeconfig) == ("swerl", None, None)


def test_running_trials_is_not_available_yet(pm):
    with pytest.raises(NotYetAvailable, match=r"sandbox 'k8s' cannot run yet: .*not built yet"):
        pm.get("sandbox", "k8s").cls.require("run")


# --- preflight ----------------------------------------------------------------------------------


def test_checks_only_run_when_k8s_is_selected(check, cfg, home):
    assert [c for c in check(cfg()).checks if c.source == "k8s"] == []


def test_current_context_of_the_default_kubeconfig(check, cfg, home):
    kubeconfig(home / ".kube" / "config", {"kind-swerl": "kind"}, current="kind-swerl")
    report = check(cfg(sandbox=k8s(namespace="rl")))
    row = context_row(report)
    assert row.status is Status.PASS
    assert "context 'kind-swerl' -> cluster 'kind' (https://kind.example:6443)" in row.detail
    assert "namespace 'rl'" in row.detail
    assert str(home / ".kube" / "config") in row.detail
    assert "not-a-real-token" not in str(report.to_json())
    assert [c.status for c in report.checks if c.name == "kubectl"] == [Status.PASS]


def test_no_kubeconfig_anywhere_fails(check, cfg, home):
    row = context_row(check(cfg(sandbox=k8s())))
    assert row.status is Status.FAIL
    assert row.detail == f"no kubeconfig found (looked at {home / '.kube' / 'config'})"
    assert "KUBECONFIG" in row.fix


def test_kubeconfig_list_merges_like_kubectl(check, cfg, home, tmp_path, monkeypatch):
    first = kubeconfig(tmp_path / "a.yaml", {"prod": "big"}, current="prod")
    second = kubeconfig(tmp_path / "b.yaml", {"dev": "small", "prod": "other"}, current="dev")
    missing = tmp_path / "missing.yaml"
    monkeypatch.setenv("KUBECONFIG", f"{missing}:{first}:{second}")
    # The first file that sets current-context wins, and so does its 'prod'.
    row = context_row(check(cfg(sandbox=k8s())))
    assert row.status is Status.PASS
    assert "context 'prod' -> cluster 'big'" in row.detail
    assert f"from {first}, {second}" in row.detail
    # A context that only the second file defines is found too.
    row = context_row(check(cfg(sandbox=k8s(context="dev"))))
    assert "context 'dev' -> cluster 'small'" in row.detail


def test_unknown_context_fails_with_did_you_mean(check, cfg, home):
    kubeconfig(home / ".kube" / "config", {"kind-swerl": "kind", "gke-a": "a"}, current="gke-a")
    row = context_row(check(cfg(sandbox=k8s(context="kind-swrel"))))
    assert row.status is Status.FAIL
    assert "sandbox.options.context 'kind-swrel' is not in" in row.detail
    assert "Did you mean 'kind-swerl'?" in row.detail
    assert row.fix == "set sandbox.options.context to one of: gke-a, kind-swerl"


def test_no_current_context_and_no_option_fails(check, cfg, home):
    kubeconfig(home / ".kube" / "config", {"a": "x", "b": "y"})
    row = context_row(check(cfg(sandbox=k8s())))
    assert row.status is Status.FAIL
    assert "sets no current-context" in row.detail
    assert row.fix.endswith("one of: a, b")


def test_option_path_wins_and_must_exist(check, cfg, home, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "env.yaml", {"env": "e"}, "env")))
    own = kubeconfig(tmp_path / "own.yaml", {"own": "o"}, current="own")
    row = context_row(check(cfg(sandbox=k8s(kubeconfig=str(own)))))
    assert "context 'own'" in row.detail
    row = context_row(check(cfg(sandbox=k8s(kubeconfig=str(tmp_path / "typo.yaml")))))
    assert row.status is Status.FAIL
    assert row.detail == f"sandbox.options.kubeconfig {tmp_path / 'typo.yaml'} does not exist"


def test_broken_yaml_names_file_and_line(check, cfg, home):
    path = home / ".kube" / "config"
    path.parent.mkdir()
    path.write_text("apiVersion: v1\ncontexts:\n  - name: a\n   context: [\n")
    row = context_row(check(cfg(sandbox=k8s())))
    assert row.status is Status.FAIL
    assert row.detail.startswith(f"{path}:")
    assert "not valid YAML" in row.detail


def test_context_whose_cluster_is_missing_fails(check, cfg, home):
    path = kubeconfig(home / ".kube" / "config", {"a": "x"}, current="a")
    data = yaml.safe_load(path.read_text())
    data["clusters"] = []
    path.write_text(yaml.safe_dump(data))
    row = context_row(check(cfg(sandbox=k8s())))
    assert row.status is Status.FAIL
    assert "names cluster 'x', which" in row.detail
    assert "kubectl config set-cluster x" in row.fix


def test_missing_kubectl_warns(check, cfg, home, tmp_path, monkeypatch):
    kubeconfig(home / ".kube" / "config", {"a": "x"}, current="a")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (row,) = [c for c in check(cfg(sandbox=k8s())).checks if c.name == "kubectl"]
    assert row.status is Status.WARN
    assert "apt-get install kubectl" in row.fix
